"""Migration 0012 moves revoked access tokens to oauth_access_revocations, named by the
SHA-256 of their jti: the ones still live are carried over, no jti stays in the clear."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peewee
import pytest
from playhouse.migrations import Runner

from delegauth.domain.revocations import jti_hash
from delegauth.storage.db import open_database
from delegauth.storage.schema import MIGRATIONS_DIR, migrate

BEFORE = "0006_import"


def _close(db: peewee.Database) -> None:
    if hasattr(db, "close_all"):
        db.close_all()
    elif not db.is_closed():
        db.close()


@pytest.fixture
def legacy(database_url: str, tmp_path: Path) -> Iterator[peewee.Database]:
    """A database migrated up to 0006 (in a schema of its own on PostgreSQL)."""
    admin = None
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/legacy.sqlite3"
    else:
        schema = f"legacy_{uuid.uuid4().hex[:12]}"
        admin = open_database(database_url)
        with admin.connection_context():
            admin.execute_sql(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in database_url else "?"
        url = f"{database_url}{sep}options=-csearch_path%3D{schema}"
    db = open_database(url)
    with db.connection_context():
        Runner(db, MIGRATIONS_DIR).up(target=BEFORE)
    try:
        yield db
    finally:
        _close(db)
        if admin is not None:
            with admin.connection_context():
                admin.execute_sql(f"DROP SCHEMA {schema} CASCADE")
            _close(admin)


def test_live_revocations_are_carried_over_hashed(legacy: peewee.Database) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with legacy.connection_context():
        for jti, expires in (("live-jti", now + timedelta(minutes=5)), ("old-jti", now)):
            legacy.execute_sql(
                f"INSERT INTO oauth_revoked_access (jti, expires_at) VALUES ({legacy.param},"
                f" {legacy.param})",
                (jti, expires - timedelta(seconds=1) if jti == "old-jti" else expires),
            )
    applied = migrate(legacy)
    assert "0012_access_revocations" in applied
    with legacy.connection_context():
        rows = legacy.execute_sql(
            "SELECT jti_hash, version FROM oauth_access_revocations"
        ).fetchall()
    assert [tuple(r) for r in rows] == [(jti_hash("live-jti"), 0)]
    with legacy.connection_context(), pytest.raises(peewee.DatabaseError):
        legacy.execute_sql("SELECT jti FROM oauth_revoked_access")  # gone, jtis and all
