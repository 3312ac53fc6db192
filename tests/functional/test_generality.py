"""The engine is not tied to the hosting-panel policy: an API-gateway policy (roles on
route templates with keyMatch2 and method regexes) served through the same AuthZEN
endpoints, grants made through the same invitation API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from delegauth.api.app import Services, build_services
from delegauth.passwords import Argon2Hasher
from delegauth.policy.check import check_directory
from delegauth.storage.db import open_database
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import migrate
from tests.conftest import POLICIES, Api

GATEWAY = os.path.join(POLICIES, "examples", "routes")


@pytest.fixture
def gateway_api(settings: Any, keyring: Any, clock: Any) -> Iterator[Api]:
    gw_settings = settings.with_overrides(policies_dir=GATEWAY)
    db = open_database(gw_settings.database_url)
    database_proxy.initialize(db)
    migrate(db)
    services: Services = build_services(
        gw_settings,
        db=db,
        clock=clock,
        keys=keyring,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    yield Api(services)
    services.close()


def _decide(api: Api, person: Any, area: str, path: str, method: str) -> bool:
    res = api.call(
        "POST",
        "/access/v1/evaluation",
        api.service_token(),
        json={
            "subject": {"type": "user", "id": person.user_id},
            "action": {"name": method},
            "resource": {"type": path, "id": path, "properties": {"area": area}},
        },
    )
    assert res.status_code == 200, res.text
    return bool(res.json["decision"])


def test_the_example_passes_check() -> None:
    assert [d for d in check_directory(GATEWAY) if d.severity == "error"] == []


def test_gateway_routes_through_the_same_endpoints(gateway_api: Api) -> None:
    api = gateway_api
    assert api.services.decider.fast is False  # Casbin's own enforcer decides here
    owner = api.signup("tenant@example.com")
    reader = api.link(owner, "reader@example.com", ["orders_reader"])
    admin = api.link(owner, "admin@example.com", ["orders_admin"])
    area = owner.area_id
    assert _decide(api, reader, area, "/orders/42", "GET")
    assert _decide(api, reader, area, "/orders", "HEAD")
    assert not _decide(api, reader, area, "/orders/42", "DELETE")
    assert not _decide(api, reader, area, "/orders/42/items", "GET")  # :id is one segment
    assert not _decide(api, reader, area, "/reports/q3", "GET")
    assert _decide(api, admin, area, "/orders/42", "DELETE")
    assert not _decide(api, admin, area, "/orders/42", "GETX")  # the method regex is anchored
    assert _decide(api, owner, area, "/anything/at/all", "PATCH")
    other = api.signup("other@example.com")
    assert not _decide(api, reader, other.area_id, "/orders/42", "GET")
    # Changing the grant changes the gateway's answers at once.
    res = api.call(
        "PATCH",
        f"/v1/areas/{area}/members/{reader.user_id}",
        api.token(owner),
        json={"permissions": ["reports"]},
    )
    assert res.status_code == 200
    assert not _decide(api, reader, area, "/orders/42", "GET")
    assert _decide(api, reader, area, "/reports/q3", "GET")
