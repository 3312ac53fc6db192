"""Migration 0011 renames audit_events.policy_version to policy_hash, keeping every row.

"policy_version" names only the change log's version; the column holds the hash of the
policy files in force (issue 13). Runs on SQLite and on PostgreSQL (a schema of its own),
from a database left just before 0011 with audit rows in it, and back down again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import peewee
import pytest
from playhouse.migrations import Migration, Runner

from delegauth.api.views import audit_view
from delegauth.domain.entities import AuditEvent
from delegauth.storage.db import open_database
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import MIGRATIONS_DIR, migrate
from delegauth.storage.store import PeeweeStore
from tests.conftest import close_database, database_of_its_own

THIS = "0011_audit_policy_hash"
T0 = datetime(2026, 1, 1)
HASHES = {"u_a": "3f2a9c1d0b7e", "u_b": None, "u_c": "77aa00bb11cc"}


def _before() -> str:
    """The migration just before this one (others may be numbered in between later)."""
    names = [m.name for m in Migration.load_directory(MIGRATIONS_DIR)]
    return names[names.index(THIS) - 1]


def _columns(db: peewee.Database) -> set[str]:
    return {c.name for c in db.get_columns("audit_events")}


@pytest.fixture
def legacy_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database migrated up to just before 0011, with audit events under the old name."""
    for url in database_of_its_own(database_url, tmp_path):
        db = open_database(url)
        with db.connection_context():
            Runner(db, MIGRATIONS_DIR).up(target=_before())
            assert "policy_version" in _columns(db)
            for actor, value in HASHES.items():
                db.execute_sql(
                    "INSERT INTO audit_events (area_id, actor_id, action, target, at, "
                    f"policy_version) VALUES ({', '.join([db.param] * 6)})",
                    ("a_1", actor, "grant.changed", f"user:{actor}", T0, value),
                )
        close_database(db)
        yield url


def _stored(db: peewee.Database, column: str) -> dict[str, str | None]:
    with db.connection_context():
        rows = db.execute_sql(f"SELECT actor_id, {column} FROM audit_events").fetchall()
    return {actor: value for actor, value in rows}


def test_renames_the_column_keeping_every_value_and_goes_back(legacy_url: str) -> None:
    db = open_database(legacy_url)
    database_proxy.initialize(db)
    try:
        assert migrate(db)[0] == THIS  # later migrations may follow
        assert migrate(db) == []  # applied once
        with db.connection_context():
            columns = _columns(db)
        assert "policy_hash" in columns and "policy_version" not in columns
        assert _stored(db, "policy_hash") == HASHES
        # The store reads and writes the new column; the API calls it policy_hash.
        store = PeeweeStore(db, policy_hash=lambda: "feedbeef0001")
        with store.transaction():
            store.append_audit(
                AuditEvent("a_1", "u_d", "grant.changed", "user:u_d", None, None, T0)
            )
        events = store.list_audit("a_1", None, 10)
        assert {e.actor_id: e.policy_hash for e in events} == {**HASHES, "u_d": "feedbeef0001"}
        view = audit_view(next(e for e in events if e.actor_id == "u_a"))
        assert view["policy_hash"] == HASHES["u_a"] and "policy_version" not in view
        # Down again (with whatever came after it): the old name, the same values.
        with db.connection_context():
            assert Runner(db, MIGRATIONS_DIR).down(target=THIS)[-1] == THIS
            assert "policy_version" in _columns(db) and "policy_hash" not in _columns(db)
        assert _stored(db, "policy_version") == {**HASHES, "u_d": "feedbeef0001"}
    finally:
        close_database(db)
