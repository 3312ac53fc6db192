"""The consistency token: a caller that passes back the policy version its write
produced never gets a decision from before that write, even from another replica."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from delegauth.api.app import Services, build_services
from delegauth.passwords import Argon2Hasher
from tests.conftest import Api


@pytest.fixture
def replica(services: Services, keyring: Any, clock: Any) -> Iterator[Api]:
    """A second process's view of the same database: its own Decider, no follower.
    (One peewee Database per process: the replica shares the connection settings.)"""
    other = build_services(
        services.settings,
        db=services.db,
        clock=clock,
        keys=keyring,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    yield Api(other)
    other.close()


def _ask(api: Api, person: Any, area: str, context: dict | None = None) -> Any:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": person.user_id},
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
    }
    if context is not None:
        body["context"] = context
    return api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)


def test_a_decision_waits_for_the_callers_write(api: Api, replica: Api) -> None:
    owner = api.signup("o@example.com")
    helper = api.link(owner, "h@example.com", ["invoices"])
    # The replica loads the area now and will not hear of later changes by itself.
    assert _ask(replica, helper, owner.area_id).json == {"decision": True}
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{helper.user_id}",
        api.token(owner),
        json={"permissions": ["tickets"]},
    )
    version = res.json["policy_version"]
    assert _ask(replica, helper, owner.area_id).json == {"decision": True}  # stale, as feared
    fresh = _ask(replica, helper, owner.area_id, {"policy_version": version})
    assert fresh.status_code == 200 and fresh.json == {"decision": False}
    assert replica.services.decider.applied_version >= version


def test_a_version_not_reached_in_time_is_503(api: Api, replica: Api) -> None:
    owner = api.signup("o@example.com")
    res = _ask(replica, owner, owner.area_id, {"policy_version": 10**9})
    assert res.status_code == 503
    for bad in (-1, "7", True, 1.5):
        assert _ask(replica, owner, owner.area_id, {"policy_version": bad}).status_code == 400


def test_readiness(api: Api) -> None:
    res = api.call("GET", "/readyz")
    assert res.status_code == 200 and res.json["status"] == "ready"
    api.services.decider._max_staleness = 0.0  # noqa: SLF001
    api.services.settings = api.services.settings.with_overrides(max_staleness_s=0.0)
    res = api.call("GET", "/readyz")
    assert res.status_code == 503 and "change log" in res.json["problems"][0]
