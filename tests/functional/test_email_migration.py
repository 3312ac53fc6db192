"""Migration 0005 recomputes stored emails, and reports rather than merges collisions.

Runs on SQLite and on PostgreSQL (in a schema of its own, so the shared test database's
tables are not touched), from a database left at 0004 with legacy rows in it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playhouse.migrations import Runner

from delegauth.storage.db import open_database
from delegauth.storage.records import InvitationRecord, UserRecord
from delegauth.storage.schema import MIGRATIONS_DIR, migrate
from tests.conftest import close_database, database_of_its_own

BEFORE = "0004_audit_policy_version"
THIS = "0005_canonical_emails"
T0 = datetime(2026, 1, 1)

USERS = {
    "u_same": "strasse@example.com",  # already canonical: stays
    "u_upper": "STRASSE@example.com",  # legacy spelling of u_same: a collision
    "u_sharp": "STRAßE@example.com",  # legacy, another person: becomes straße@
    "u_idn_u": "bob@bücher.example",  # two spellings of one IDN address: a collision
    "u_idn_a": "bob@xn--bcher-kva.example",
    "u_idn": "carol@bücher.example",  # becomes the A-label
    "u_case": "Dave@Example.COM",  # becomes dave@example.com
    "u_mixed": "p\u0430ypal@example.com",  # Cyrillic а: now refused, kept
}
INVITATIONS = {
    # id: (area, status, email)
    "i_u": ("a_1", "pending", "bob@bücher.example"),  # collide in a_1
    "i_a": ("a_1", "pending", "bob@xn--bcher-kva.example"),
    "i_other_area": ("a_2", "pending", "bob@bücher.example"),  # alone in a_2: moves
    "i_done": ("a_1", "accepted", "bob@bücher.example"),  # history: moves, no uniqueness
    "i_case": ("a_1", "pending", "Eve@Example.com"),  # moves
    "i_test": ("a_1", "pending", "x@example.test"),  # special-use domain: refused, kept
    "i_sharp": ("a_2", "pending", "STRAßE@example.com"),  # moves to straße@, beside strasse@
    "i_ss": ("a_2", "pending", "strasse@example.com"),
}
EXPECTED_USERS = {
    **USERS,
    "u_sharp": "straße@example.com",
    "u_idn": "carol@xn--bcher-kva.example",
    "u_case": "dave@example.com",
}
EXPECTED_INVITATIONS = {
    **{i: email for i, (_, _, email) in INVITATIONS.items()},
    "i_other_area": "bob@xn--bcher-kva.example",
    "i_done": "bob@xn--bcher-kva.example",
    "i_case": "eve@example.com",
    "i_sharp": "straße@example.com",
}


@pytest.fixture
def legacy_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database migrated up to 0004, holding the legacy rows above."""
    for url in database_of_its_own(database_url, tmp_path):
        db = open_database(url)
        with db.connection_context():
            Runner(db, MIGRATIONS_DIR).up(target=BEFORE)
            with db.bind_ctx([UserRecord, InvitationRecord]):
                for uid, email in USERS.items():
                    UserRecord.create(id=uid, email=email, password_hash="x", created_at=T0)
                for iid, (area, status, email) in INVITATIONS.items():
                    InvitationRecord.create(
                        id=iid,
                        area_id=area,
                        email=email,
                        permissions='"all"',
                        invited_by="u_same",
                        status=status,
                        token_hash=None,
                        expires_at=T0 + timedelta(days=7),
                        created_at=T0,
                        updated_at=T0,
                    )
        close_database(db)
        yield url


def _stored(url: str) -> tuple[dict[str, str], dict[str, str]]:
    db = open_database(url)
    try:
        with db.connection_context(), db.bind_ctx([UserRecord, InvitationRecord]):
            users = {u.id: u.email for u in UserRecord.select()}
            invitations = {i.id: i.email for i in InvitationRecord.select()}
    finally:
        close_database(db)
    return users, invitations


def test_recomputes_and_reports_collisions_without_merging(
    legacy_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(legacy_url)
    reports: list[str] = []
    try:
        with caplog.at_level(logging.WARNING, logger="delegauth.storage.migrations"):
            assert migrate(db, on_report=reports.append)[0] == THIS  # later ones may follow
        assert migrate(db, on_report=reports.append) == []  # applied once
    finally:
        close_database(db)

    users, invitations = _stored(legacy_url)
    assert users == EXPECTED_USERS
    assert invitations == EXPECTED_INVITATIONS
    assert reports == [
        "user u_mixed: address now refused (email_confusable_scripts); stored form kept",
        "users u_idn_a, u_idn_u: one address after recomputing; not merged, kept",
        "users u_same, u_upper: one address after recomputing; not merged, kept",
        "invitation i_test: address now refused (invalid_email); stored form kept",
        "invitations i_a, i_u pending in area a_1: one address after recomputing; not merged, kept",
    ]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == reports
    assert not any("@" in line for line in reports)  # ids and codes, never addresses


def test_the_cli_prints_the_reports(legacy_url: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "delegauth", "migrate"],
        env={**os.environ, "DELEGAUTH_DATABASE_URL": legacy_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["applied"][0] == THIS  # later migrations may follow
    assert len(out["reports"]) == 5
    assert "users u_same, u_upper: one address" in "\n".join(out["reports"])
    assert "u_upper" in res.stderr  # and logged at WARNING
    assert _stored(legacy_url) == (EXPECTED_USERS, EXPECTED_INVITATIONS)
