"""The request mapping in policies/: other AuthZEN clients served from policy files
only (examples/todo: identities, roles and ownership; no Client Areas)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from delegauth.api.app import Services, build_services
from delegauth.passwords import Argon2Hasher
from delegauth.storage.db import open_database
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import migrate
from tests.conftest import POLICIES, Api

TODO = os.path.join(POLICIES, "examples", "todo")
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"


@pytest.fixture
def todo_api(settings: Any, keyring: Any, clock: Any) -> Iterator[Api]:
    todo_settings = settings.with_overrides(policies_dir=TODO)
    db = open_database(todo_settings.database_url)
    database_proxy.initialize(db)
    migrate(db)
    services: Services = build_services(
        todo_settings,
        db=db,
        clock=clock,
        keys=keyring,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    yield Api(services)
    services.close()


def _update(owner: str | None, explain: bool = False) -> dict[str, Any]:
    resource: dict[str, Any] = {"type": "todo", "id": "7240d0db"}
    if owner is not None:
        resource["properties"] = {"ownerID": owner}
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": MORTY},
        "action": {"name": "can_update_todo"},
        "resource": resource,
    }
    if explain:
        body["context"] = {"explain": True}
    return body


def test_an_editor_changes_only_their_own_todos(todo_api: Api) -> None:
    api = todo_api
    assert api.services.decider.fast is False

    def decide(body: dict[str, Any]) -> Any:
        res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
        assert res.status_code == 200, res.text
        return res.json

    assert decide(_update("morty@the-citadel.com")) == {"decision": True}
    assert decide(_update("rick@the-citadel.com")) == {"decision": False}
    assert decide(_update(None)) == {"decision": False}
    # No area anywhere: this policy has no Client Areas, so none is asked for.
    batch = {
        "subject": {"type": "user", "id": MORTY},
        "action": {"name": "can_update_todo"},
        "evaluations": [
            {"resource": _update(o)["resource"]}
            for o in ("rick@the-citadel.com", "morty@the-citadel.com")
        ],
    }
    res = api.call("POST", "/access/v1/evaluations", api.service_token(), json=batch)
    assert res.status_code == 200 and res.json == {
        "evaluations": [{"decision": False}, {"decision": True}]
    }


def test_explanations_name_the_rule_or_why_nothing_matched(todo_api: Api) -> None:
    api = todo_api
    allowed = api.call(
        "POST",
        "/access/v1/evaluation",
        api.service_token(),
        json=_update("morty@the-citadel.com", True),
    ).json["context"]["explanation"]
    assert allowed["rules"][0]["rule"] == ["p", "role:editor", "todo", "can_update_todo", "own"]
    assert ["g", f"user:{MORTY}", "role:editor"] in allowed["grants"]
    denied = api.call(
        "POST", "/access/v1/evaluation", api.service_token(), json=_update(None, True)
    ).json["context"]["explanation"]
    assert denied["rules"] == []
    assert any("no rule matched" in r and "role:editor" in r for r in denied["reasons"])
    assert "the request did not give ownerID" in denied["reasons"]
    stranger = {**_update(None, True), "subject": {"type": "user", "id": "nobody"}}
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=stranger).json
    assert res["decision"] is False
    assert res["context"]["explanation"]["reasons"] == [
        "user 'nobody' is not listed in identities.toml"
    ]
