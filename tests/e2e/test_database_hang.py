"""A database that hangs never hangs the service (issue 10, item 5).

PostgreSQL is reached through a PartitionProxy: frozen, it relays nothing and keeps every
socket open, which is what a network partition, or a server stopped with SIGSTOP, looks
like to the client. The real server must then answer: /readyz 503, writes 503 with
Retry-After and nothing committed later, decisions in areas it has not loaded 503, while
areas it holds keep deciding until the staleness bound. SQLite's counterpart is a write
lock held by another connection.

Every request carries a client timeout, so a regression fails the test instead of
hanging it; the assertions are on statuses, never on elapsed times.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import requests

from delegauth.tokens import KeyRing, TokenService
from tests.conftest import PASSWORD, POLICIES, _fresh_pg, _require_pg
from tests.e2e.conftest import ISSUER, Server, start_server
from tests.partition import PartitionProxy

TIMEOUT = 10  # seconds: far past any bound the service keeps, short of a hang


def _env(url: str, tmp: Path) -> dict[str, str]:
    return {
        "DELEGAUTH_DATABASE_URL": url,
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        "DELEGAUTH_CHANGE_POLL_MS": "20",
        # Areas already held keep deciding through the whole test.
        "DELEGAUTH_MAX_STALENESS_S": "300",
    }


class _Client:
    def __init__(self, server: Server, timeout: float = TIMEOUT) -> None:
        self.server = server
        self.timeout = timeout
        self.minter = TokenService(
            KeyRing.load_or_create(server.env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER
        )

    def call(
        self, method: str, path: str, token: str | None = None, json: Any = None
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # A ReadTimeout here is the hang this module exists to prevent.
        return requests.request(
            method, self.server.url(path), json=json, headers=headers, timeout=self.timeout
        )

    def signup(self, email: str) -> tuple[str, str]:
        res = self.call("POST", "/v1/signup", json={"email": email, "password": PASSWORD})
        assert res.status_code == 201, res.text
        return res.json()["user"]["id"], res.json()["area"]["id"]

    def invite(self, owner: tuple[str, str], email: str) -> requests.Response:
        token = self.minter.issue(sub=owner[0], client_id="e2e", scope=["openid"], area=owner[1])
        return self.call(
            "POST",
            f"/v1/areas/{owner[1]}/invitations",
            token,
            json={"email": email, "permissions": "all"},
        )

    def decide(self, user_id: str, area_id: str) -> requests.Response:
        token = self.minter.issue(sub="svc", client_id="svc", scope=["decisions"])
        return self.call(
            "POST",
            "/access/v1/evaluation",
            token,
            json={
                "subject": {"type": "user", "id": user_id},
                "action": {"name": "pay"},
                "resource": {"type": "invoice", "id": "1", "properties": {"area": area_id}},
            },
        )


def _is_503_retry_after(res: requests.Response) -> bool:
    return (
        res.status_code == 503
        and res.headers.get("Content-Type", "").startswith("application/problem+json")
        and res.headers.get("Retry-After", "").isdigit()
    )


def _until_ready(client: _Client) -> None:
    deadline = time.monotonic() + 30
    while client.call("GET", "/readyz").status_code != 200:
        assert time.monotonic() < deadline, "readiness did not come back"
        time.sleep(0.2)


def _until_created(client: _Client, owner: tuple[str, str], email: str) -> None:
    """The service recovers by itself: a write succeeds again soon after the database."""
    deadline = time.monotonic() + 30
    while True:
        res = client.invite(owner, email)
        if res.status_code == 201:
            return
        assert res.status_code == 503, res.text
        assert time.monotonic() < deadline, "writes did not recover"
        time.sleep(0.2)


# -- PostgreSQL, partitioned --------------------------------------------------------------


@pytest.fixture(scope="module")
def partitioned(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PartitionProxy, _Client]]:
    _fresh_pg().close_all()  # type: ignore[attr-defined]
    real = urlsplit(_require_pg())
    proxy = PartitionProxy((real.hostname or "127.0.0.1", real.port or 5432))
    userinfo = real.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    tmp = tmp_path_factory.mktemp("hang")
    server = start_server(
        _env(urlunsplit(real._replace(netloc=netloc)), tmp), tmp / "server.log", workers=1
    )
    try:
        yield proxy, _Client(server)
    finally:
        proxy.thaw()
        server.stop()
        proxy.close()


def _rows(sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Read the database directly, not through the proxy."""
    conn = psycopg2.connect(_require_pg())
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.mark.postgres
def test_readiness_says_503_while_the_database_hangs(
    partitioned: tuple[PartitionProxy, _Client],
) -> None:
    proxy, client = partitioned
    _until_ready(client)
    proxy.freeze()
    try:
        for _ in range(3):  # again and again, not only the first time
            res = client.call("GET", "/readyz")
            assert res.status_code == 503
            assert "database unreachable" in res.json()["problems"]
        assert client.call("GET", "/healthz").status_code == 200  # alive, only not ready
    finally:
        proxy.thaw()
    _until_ready(client)


@pytest.mark.postgres
def test_a_write_fails_fast_and_never_commits_later(
    partitioned: tuple[PartitionProxy, _Client],
) -> None:
    proxy, client = partitioned
    owner = client.signup("writer@example.com")
    proxy.freeze()
    try:
        lost = client.invite(owner, "lost@example.com")
        assert _is_503_retry_after(lost), (lost.status_code, lost.headers, lost.text)
        again = client.invite(owner, "lost-too@example.com")  # and not only the first
        assert _is_503_retry_after(again), (again.status_code, again.headers, again.text)
    finally:
        proxy.thaw()
    _until_created(client, owner, "kept@example.com")
    # The failed writes' transactions were on connections the service closed: once the
    # database hears from them again, it can only roll them back.
    invited = {
        email for (email,) in _rows("SELECT email FROM invitations WHERE area_id = %s", owner[1])
    }
    assert invited == {"kept@example.com"}
    mailed = {to for (to,) in _rows('SELECT "to" FROM mail_outbox WHERE "to" LIKE \'lost%%\'')}
    assert mailed == set()


@pytest.mark.postgres
def test_decisions_fail_closed_where_not_loaded_and_go_on_where_held(
    partitioned: tuple[PartitionProxy, _Client],
) -> None:
    proxy, client = partitioned
    held = client.signup("held@example.com")
    cold = client.signup("cold@example.com")
    res = client.decide(held[0], held[1])
    assert res.status_code == 200 and res.json()["decision"] is True
    proxy.freeze()
    try:
        for _ in range(3):
            res = client.decide(cold[0], cold[1])
            assert _is_503_retry_after(res), (res.status_code, res.text)  # never an allow
            res = client.decide(held[0], held[1])
            assert res.status_code == 200 and res.json()["decision"] is True
    finally:
        proxy.thaw()
    deadline = time.monotonic() + 30
    while (res := client.decide(cold[0], cold[1])).status_code != 200:
        assert res.status_code == 503 and time.monotonic() < deadline, res.text
        time.sleep(0.2)
    assert res.json()["decision"] is True


# -- SQLite, locked -----------------------------------------------------------------------


def test_a_locked_sqlite_database_fails_writes_fast(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    server = start_server(_env(f"sqlite:///{path}", tmp_path), tmp_path / "server.log", workers=1)
    try:
        # Past the busy timeout (1 s by default), well short of the old one (10 s).
        client = _Client(server, timeout=5)
        owner = client.signup("owner@example.com")
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock, and keeps it
            res = client.invite(owner, "waits@example.com")
            assert _is_503_retry_after(res), (res.status_code, res.headers, res.text)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        _until_created(client, owner, "waits@example.com")
    finally:
        server.stop()
