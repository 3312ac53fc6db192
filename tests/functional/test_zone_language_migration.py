"""Migration 0013 adds users.time_zone and invitations.mail_locale, both '' for the rows
that were there (nothing guessed) and by default for inserts that do not name them (the
bulk import's), on SQLite and PostgreSQL; undoing it drops them."""

from __future__ import annotations

from datetime import datetime

import peewee
import pytest
from playhouse.migrations import Runner

from delegauth.storage.schema import MIGRATIONS_DIR
from tests.functional.test_revocation_migration import legacy  # noqa: F401 - the fixture

NOW = datetime(2026, 12, 6, 10, 0)
THIS = "0013_time_zones_and_mail_language"  # up to it only: later ones come after


def _insert(db: peewee.Database, user: str, invitation: str) -> None:
    p = db.param
    db.execute_sql(
        "INSERT INTO users (id, email, name, locale, password_hash, email_verified, created_at)"
        f" VALUES ({p}, {p}, '', 'en', '!', {p}, {p})",
        (user, f"{user}@example.com", True, NOW),
    )
    db.execute_sql(
        "INSERT INTO invitations (id, area_id, email, permissions, invited_by, status,"
        " token_hash, expires_at, created_at, updated_at, sends) VALUES"
        f" ({p}, 'a_x', {p}, '\"all\"', {p}, 'pending', {p}, {p}, {p}, {p}, 1)",
        (invitation, f"{user}@example.com", user, invitation, NOW, NOW, NOW),
    )


def _columns(db: peewee.Database) -> list[tuple[str, str]]:
    return [
        tuple(r)
        for r in db.execute_sql(
            "SELECT u.time_zone, i.mail_locale FROM users u JOIN invitations i"
            " ON i.invited_by = u.id ORDER BY u.id"
        ).fetchall()
    ]


def test_existing_and_unnamed_rows_get_empty_values(
    legacy: peewee.Database,  # noqa: F811 - the fixture
) -> None:
    with legacy.connection_context():
        Runner(legacy, MIGRATIONS_DIR).up(target="0012_access_revocations")
        _insert(legacy, "u_before", "i_before")
    with legacy.connection_context():
        assert Runner(legacy, MIGRATIONS_DIR).up(target=THIS) == [THIS]
        _insert(legacy, "u_after", "i_after")  # as the bulk import writes: columns named
        assert _columns(legacy) == [("", ""), ("", "")]
        legacy.execute_sql("UPDATE users SET time_zone = 'Europe/Madrid' WHERE id = 'u_after'")
        assert _columns(legacy)[0] == ("Europe/Madrid", "")
        assert Runner(legacy, MIGRATIONS_DIR).down() == [THIS]
    with legacy.connection_context(), pytest.raises(peewee.DatabaseError):
        legacy.execute_sql("SELECT time_zone FROM users")
