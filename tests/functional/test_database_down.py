"""With the database gone, readiness says so and decisions fail closed (503, never allow)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from delegauth.api.app import build_services
from delegauth.passwords import Argon2Hasher
from delegauth.storage.db import open_database
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import migrate
from tests.conftest import Api, _require_pg


@pytest.mark.postgres
def test_readiness_and_decisions_with_a_stopped_database(settings, keyring, clock) -> None:  # type: ignore[no-untyped-def]
    base = urlsplit(_require_pg())
    name = f"delegauth_down_{secrets.token_hex(4)}"
    admin = psycopg2.connect(urlunsplit(base._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(base._replace(path="/" + name))
    try:
        db = open_database(url)
        database_proxy.initialize(db)
        migrate(db)
        services = build_services(
            settings.with_overrides(database_url=url),
            db=db,
            clock=clock,
            keys=keyring,
            start_background=False,
            hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        api = Api(services)
        owner = api.signup("o@example.com")
        assert api.call("GET", "/readyz").status_code == 200
        db.close_all()  # type: ignore[attr-defined]
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
        ready = api.call("GET", "/readyz")
        assert ready.status_code == 503 and "database unreachable" in ready.json["problems"]
        services.decider.install(services.decider.bundle)  # nothing loaded any more
        res = api.call(
            "POST",
            "/access/v1/evaluation",
            api.service_token(),
            json={
                "subject": {"type": "user", "id": owner.user_id},
                "action": {"name": "pay"},
                "resource": {"type": "invoice", "id": "1", "properties": {"area": owner.area_id}},
            },
        )
        assert res.status_code == 503
        assert api.call("GET", "/healthz").status_code == 200  # alive, just not ready
        services.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
