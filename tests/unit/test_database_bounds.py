"""Every database call is bounded in time (storage/db.py; issue 10, item 5).

The settings reach every connection the service opens, on SQLite and PostgreSQL, and a
transaction cut off by a network partition fails within its bound and never commits,
even once the partition heals and the database hears the rest of what was sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import peewee
import psycopg2
import pytest

from delegauth.api.app import build_services
from delegauth.config import Settings, load_settings
from delegauth.domain.entities import OutgoingMail
from delegauth.errors import Unavailable
from delegauth.passwords import Argon2Hasher
from delegauth.storage.db import is_postgres, open_database
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import migrate
from delegauth.storage.store import PeeweeStore
from delegauth.tokens import KeyRing
from tests.conftest import _fresh_pg, _require_pg
from tests.partition import PartitionProxy


def test_the_settings_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "DELEGAUTH_DB_CONNECT_TIMEOUT_S": "1.5",
            "DELEGAUTH_DB_STATEMENT_TIMEOUT_MS": "1500",
            "DELEGAUTH_DB_BUSY_TIMEOUT_MS": "700",
        }
    )
    assert settings.db_connect_timeout_s == 1.5
    assert settings.db_statement_timeout_ms == 1500
    assert settings.db_busy_timeout_ms == 700


def test_every_connection_of_the_service_carries_the_bounds(
    settings: Settings, keyring: KeyRing, clock: Any
) -> None:
    migrate(open_database(settings.database_url))
    tuned = settings.with_overrides(db_statement_timeout_ms=1500, db_busy_timeout_ms=700)
    services = build_services(
        tuned,  # no db passed: the service opens its own, from the settings
        clock=clock,
        keys=keyring,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    db = services.db
    try:
        with db.connection_context():
            if is_postgres(db):
                shown = {
                    name: db.execute_sql(f"SHOW {name}").fetchone()[0]
                    for name in (
                        "statement_timeout",
                        "lock_timeout",
                        "idle_in_transaction_session_timeout",
                    )
                }
                assert shown == {
                    "statement_timeout": "1500ms",
                    "lock_timeout": "1500ms",
                    "idle_in_transaction_session_timeout": "7500ms",
                }
                client = db.connection().get_dsn_parameters()
                assert client["tcp_user_timeout"] == "2000"  # the statement's, and the grace
                assert client["keepalives"] == "1"
            else:
                assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 700
    finally:
        services.close()
        getattr(db, "close_all", db.close)()


def _busy_sessions(url: str) -> int:
    """Sessions of this database, other than the asker's, inside a statement or transaction."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        conn.close()


def _recipients(url: str) -> set[str]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT "to" FROM mail_outbox')
            return {to for (to,) in cur.fetchall()}
    finally:
        conn.close()


def _behind_proxy(real_url: str) -> tuple[PartitionProxy, peewee.Database]:
    """A PartitionProxy in front of the real database, and a Database reaching it there."""
    real = urlsplit(real_url)
    proxy = PartitionProxy((real.hostname or "127.0.0.1", real.port or 5432))
    userinfo = real.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return proxy, open_database(urlunsplit(real._replace(netloc=netloc)))


def _bounded(work: Callable[[], object]) -> BaseException | None:
    """Run ``work`` in a thread; return what it raised. The 15 s bound is the test's own:
    the database's bounds are seconds shorter, and without them the work hangs."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
        except Exception as ex:  # noqa: BLE001 - handed to the test
            outcome.append(ex)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive(), "the database call hung"
    return outcome[0]


@pytest.mark.postgres
def test_after_a_timeout_callers_fail_without_trying_the_database_again() -> None:
    proxy, db = _behind_proxy(_require_pg())
    try:

        def select_one() -> None:
            with db.connection_context():
                db.execute_sql("SELECT 1")

        select_one()  # one connection, now idle in the pool
        proxy.freeze()
        seen = proxy.accepted
        # Checking that idle connection out times out; no new connection is tried after it,
        # nor for the callers that come next.
        for _ in range(3):
            assert isinstance(_bounded(select_one), peewee.OperationalError)
        assert proxy.accepted == seen
    finally:
        proxy.thaw()
        db.close_all()  # type: ignore[attr-defined]
        proxy.close()


@pytest.mark.postgres
def test_a_transaction_cut_off_by_a_partition_fails_fast_and_never_commits() -> None:
    _fresh_pg().close_all()  # type: ignore[attr-defined]
    real_url = _require_pg()
    proxy, db = _behind_proxy(real_url)
    database_proxy.initialize(db)
    store = PeeweeStore(db)
    now = datetime(2030, 1, 1)

    def write() -> None:
        with store.transaction():
            store.enqueue_mail(OutgoingMail("first@example.com", "s", "t"), now)
            proxy.freeze()  # the partition falls in the middle of the transaction
            store.enqueue_mail(OutgoingMail("second@example.com", "s", "t"), now)

    try:
        assert isinstance(_bounded(write), Unavailable)
    finally:
        proxy.thaw()  # the database now receives what was held, and the disconnection

    deadline = time.monotonic() + 30
    while True:  # the same Database recovers by itself
        try:
            with store.transaction():
                store.enqueue_mail(OutgoingMail("third@example.com", "s", "t"), now)
            break
        except Unavailable:
            assert time.monotonic() < deadline, "writes did not recover"
            time.sleep(0.2)
    while _busy_sessions(real_url):  # the cut-off session has ended, one way or the other
        assert time.monotonic() < deadline, "a session stayed open"
        time.sleep(0.05)
    assert _recipients(real_url) == {"third@example.com"}
    db.close_all()  # type: ignore[attr-defined]
    proxy.close()
