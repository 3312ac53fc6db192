"""Shared fixtures: the same suite runs on SQLite and on a real PostgreSQL.

PostgreSQL tests use the database named by DELEGAUTH_TEST_PG_URL (.ci/run creates a
throwaway one). Without it they skip, except under CI, where they must run.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import falcon.testing
import peewee
import pytest

from delegauth.api.app import Services, build_services, serving_app, utcnow
from delegauth.config import Settings
from delegauth.passwords import Argon2Hasher
from delegauth.storage.db import open_database
from delegauth.storage.records import MODELS, MailRecord, database_proxy
from delegauth.storage.schema import migrate
from delegauth.tokens import KeyRing

PG_URL = os.environ.get("DELEGAUTH_TEST_PG_URL", "")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICIES = os.path.join(REPO, "policies")
PASSWORD = "correct horse battery staple"


def _require_pg() -> str:
    if PG_URL:
        return PG_URL
    if os.environ.get("CI"):
        pytest.fail("DELEGAUTH_TEST_PG_URL must be set in CI: PostgreSQL tests cannot skip there")
    pytest.skip("no PostgreSQL: set DELEGAUTH_TEST_PG_URL to run the PostgreSQL half")


_pg_migrated = False


def _fresh_pg() -> peewee.Database:
    global _pg_migrated
    db = open_database(_require_pg())
    database_proxy.initialize(db)
    if not _pg_migrated:
        migrate(db)
        _pg_migrated = True
    with db.connection_context():
        tables = ", ".join(m._meta.table_name for m in MODELS)
        db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/delegauth.sqlite3"
    db = _fresh_pg()
    db.close_all()  # type: ignore[attr-defined]  # a pool: drop connections before the test
    return _require_pg()


@pytest.fixture(scope="session")
def keyring() -> KeyRing:
    return KeyRing.generate()


class FrozenClock:
    """A clock tests can move forward."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    return Settings(
        database_url=database_url,
        # Loopback: Authlib accepts plain http only there (RFC 8252 §7.3).
        issuer="http://localhost",
        public_url="http://localhost",
        policies_dir=POLICIES,
        key_dir=str(tmp_path / "keys"),
        smtp_url="log:",
        background=False,
        # No follower thread here: writes sync the decider themselves (see build_services).
        max_staleness_s=3600,
    )


@pytest.fixture
def services(settings: Settings, keyring: KeyRing, clock: FrozenClock) -> Iterator[Services]:
    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    migrate(db)
    svc = build_services(
        settings,
        db=db,
        clock=clock,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
        keys=keyring,
        start_background=False,
    )
    yield svc
    svc.close()
    if not db.is_closed():
        db.close()


@dataclass
class Person:
    user_id: str
    area_id: str
    email: str


class Api:
    """A small builder over the in-process app: sign people up, mint tokens, call routes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        # The app a server runs (the fast path of one evaluation in front of Falcon's).
        self.client = falcon.testing.TestClient(serving_app(services.settings, services))

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> falcon.testing.Result:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        return self.client.simulate_request(method, path, json=json, headers=hdrs, **kw)

    def token(self, person: Person, area_id: str | None = None) -> str:
        return self.services.tokens.issue(
            sub=person.user_id,
            client_id="tests",
            scope=["openid"],
            area=area_id or person.area_id,
        )

    def service_token(self, scope: str = "decisions") -> str:
        return self.services.tokens.issue(
            sub="billing-service", client_id="billing-service", scope=scope.split()
        )

    def row_counts(self, *models: type[peewee.Model]) -> dict[str, int]:
        """How many rows each table holds: equal before and after a rolled-back change."""
        with self.services.db.connection_context():
            return {m.__name__: m.select().count() for m in models}

    def last_mail(self, to: str) -> MailRecord:
        with self.services.db.connection_context():
            return (
                MailRecord.select().where(MailRecord.to == to).order_by(MailRecord.id.desc()).get()
            )

    def mail_token(self, to: str) -> str:
        match = re.search(r"token=([A-Za-z0-9_\-]+)", self.last_mail(to).text)
        assert match, "no link in the mail"
        return match.group(1)

    def signup(self, email: str, *, verify: bool = True, name: str = "", **extra: Any) -> Person:
        res = self.call(
            "POST", "/v1/signup", json={"email": email, "password": PASSWORD, "name": name, **extra}
        )
        assert res.status_code == 201, res.text
        body = res.json
        person = Person(body["user"]["id"], body["area"]["id"], body["user"]["email"])
        if verify and not body["user"]["email_verified"]:
            res = self.call(
                "POST", "/v1/email-verifications", json={"token": self.mail_token(person.email)}
            )
            assert res.status_code == 200, res.text
        return person

    def invite(self, owner: Person, email: str, permissions: Any = "all") -> dict[str, Any]:
        res = self.call(
            "POST",
            f"/v1/areas/{owner.area_id}/invitations",
            self.token(owner),
            json={"email": email, "permissions": permissions},
        )
        assert res.status_code in (200, 201), res.text
        return dict(res.json["invitation"])

    def link(self, owner: Person, email: str, permissions: Any = "all") -> Person:
        """Sign up ``email`` and make them a delegate of owner's area."""
        invitee = self.signup(email)
        inv = self.invite(owner, email, permissions)
        res = self.call("POST", f"/v1/invitations/{inv['id']}/accept", self.token(invitee))
        assert res.status_code == 201, res.text
        return invitee

    def decide(self, person: Person, area_id: str, rtype: str, action: str) -> bool:
        res = self.call(
            "POST",
            "/access/v1/evaluation",
            self.service_token(),
            json={
                "subject": {"type": "user", "id": person.user_id},
                "action": {"name": action},
                "resource": {"type": rtype, "id": "1", "properties": {"area": area_id}},
            },
        )
        assert res.status_code == 200, res.text
        return bool(res.json["decision"])


@pytest.fixture
def api(services: Services) -> Api:
    return Api(services)


def api_with_mapping(
    settings: Settings, keyring: KeyRing, clock: Any, tmp_path: Any, mapping: str
) -> Iterator[Api]:
    """An Api over the shipped model and catalogue with ``mapping`` as its authzen.toml
    (a generator for a fixture to delegate to with ``yield from``)."""
    policies = Path(tmp_path) / "policies"
    policies.mkdir()
    for name in ("model.conf", "catalogue.toml"):
        shutil.copy(Path(POLICIES) / name, policies / name)
    (policies / "authzen.toml").write_text(mapping)
    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    migrate(db)
    services = build_services(
        settings.with_overrides(policies_dir=str(policies)),
        db=db,
        clock=clock,
        keys=keyring,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    yield Api(services)
    services.close()


def close_database(db: peewee.Database) -> None:
    """Close ``db``: every pooled connection (PostgreSQL), or the one connection."""
    if hasattr(db, "close_all"):
        db.close_all()
    elif not db.is_closed():
        db.close()


def database_of_its_own(database_url: str, tmp_path: Any) -> Iterator[str]:
    """The URL of an empty database beside the suite's: a SQLite file, or a PostgreSQL
    schema dropped afterwards (the shared test database's tables are not touched). For a
    migration test to migrate up to where it starts (a generator for ``yield from``)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/own.sqlite3"
        return
    schema = f"own_{uuid.uuid4().hex[:12]}"
    admin = open_database(database_url)
    with admin.connection_context():
        admin.execute_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connection_context():
            admin.execute_sql(f"DROP SCHEMA {schema} CASCADE")
        close_database(admin)
