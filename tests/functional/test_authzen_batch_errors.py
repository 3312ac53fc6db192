"""Errors inside a batch (AuthZEN 1.0 "Access Evaluations API", "Errors"): an item that
cannot be evaluated is ``decision: false`` with its error in its own context, the others
are decided and the response is 200 (certification case c-3-4-1); what is wrong with the
payload as a whole stays a 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, Person

ROUTE = "/access/v1/evaluations"


@pytest.fixture
def billing(api: Api) -> tuple[Person, Person]:
    owner = api.signup("o@example.com")
    return owner, api.link(owner, "b@example.com", ["invoices"])


def _resource(area: str) -> dict[str, Any]:
    return {"type": "invoice", "id": "1", "properties": {"area": area}}


def _batch(api: Api, body: Any) -> Any:
    return api.call("POST", ROUTE, api.service_token(), json=body)


def test_an_item_missing_a_field_is_a_deny_with_its_error_and_the_rest_is_decided(
    api: Api, billing: tuple[Person, Person]
) -> None:
    """c-3-4-1: the second item has no resource and there is no default for it."""
    owner, delegate = billing
    body = {
        "subject": {"type": "user", "id": delegate.user_id},
        "action": {"name": "read"},
        "options": {"evaluations_semantic": "execute_all"},
        "evaluations": [{"resource": _resource(owner.area_id)}, {}],
    }
    res = _batch(api, body)
    assert res.status_code == 200, res.text
    first, second = res.json["evaluations"]
    assert first == {"decision": True}
    assert second["decision"] is False
    error = second["context"]["error"]
    # AuthZEN's {"status", "message"}, with the members a whole request's 400 has.
    assert error["status"] == 400 and error["field"] == "resource"
    assert error["message"] == error["detail"] == "resource is required and must be an object"
    assert error["type"] == "about:blank" and error["code"] == "invalid_input"


@pytest.mark.parametrize(
    "item",
    [
        {"subject": "alice"},
        {"subject": {"type": "user"}},
        {"action": {"name": 5}},
        {"action": {}},
        {"resource": {"type": "invoice"}},
        {"resource": {"type": "invoice", "id": "1", "properties": []}},
        {"resource": {"type": "invoice", "id": "1"}},  # no area: the mapping needs it
        {"resource": {"type": "invoice", "id": "1", "properties": {"area": 5}}},
        {"context": 5},
        {"context": {"policy_version": -1}},
    ],
)
def test_each_item_error_is_the_400_the_same_evaluation_alone_gets(
    api: Api, billing: tuple[Person, Person], item: dict[str, Any]
) -> None:
    owner, delegate = billing
    defaults = {
        "subject": {"type": "user", "id": delegate.user_id},
        "action": {"name": "pay"},
        "resource": _resource(owner.area_id),
    }
    alone = api.call(
        "POST", "/access/v1/evaluation", api.service_token(), json={**defaults, **item}
    )
    assert alone.status_code == 400, alone.text
    res = _batch(api, {**defaults, "evaluations": [{}, item, {"action": {"name": "delete"}}]})
    assert res.status_code == 200, res.text
    assert res.json["evaluations"] == [
        {"decision": True},
        {"decision": False, "context": {"error": alone.json}},
        {"decision": False},
    ]


def test_a_failed_item_is_a_denial_for_the_short_circuit_semantics(
    api: Api, billing: tuple[Person, Person]
) -> None:
    owner, delegate = billing
    body = {
        "subject": {"type": "user", "id": delegate.user_id},
        "resource": _resource(owner.area_id),
        "evaluations": [{"action": {"name": "read"}}, {"action": {}}, {"action": {"name": "pay"}}],
    }
    deny_first = _batch(api, {**body, "options": {"evaluations_semantic": "deny_on_first_deny"}})
    assert deny_first.status_code == 200
    first, failed = deny_first.json["evaluations"]  # stopped at the failure
    assert first == {"decision": True} and failed["context"]["error"]["field"] == "action"
    permit_first = {
        **body,
        "evaluations": [{"action": {}}, {"action": {"name": "pay"}}, {"action": {"name": "read"}}],
        "options": {"evaluations_semantic": "permit_on_first_permit"},
    }
    res = _batch(api, permit_first)
    failed, permitted = res.json["evaluations"]  # went past the failure, stopped at the permit
    assert failed["decision"] is False and "error" in failed["context"]
    assert permitted == {"decision": True}


def test_explanations_and_errors_sit_side_by_side(api: Api, billing: tuple[Person, Person]) -> None:
    owner, delegate = billing
    body = {
        "subject": {"type": "user", "id": delegate.user_id},
        "action": {"name": "pay"},
        "context": {"explain": True},
        "evaluations": [{"resource": _resource(owner.area_id)}, {"resource": {"type": "x"}}],
    }
    explained, failed = _batch(api, body).json["evaluations"]
    assert explained["decision"] is True and "explanation" in explained["context"]
    assert list(failed["context"]) == ["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"evaluations": {"subject": {}}}, "evaluations"),
        ({"evaluations": [{}] * 257}, "evaluations"),
        ({"evaluations": [{}, 5]}, "evaluations"),
        ({"evaluations": [{}], "options": {"evaluations_semantic": "all"}}, "options"),
        ({"evaluations": [{}], "subject": "alice"}, "subject"),
        ({"evaluations": [{}], "context": {"policy_version": "x"}}, "context"),
        ({"evaluations": [{}], "resource": {"type": "invoice"}}, "resource"),
    ],
)
def test_what_is_wrong_with_the_payload_as_a_whole_stays_a_400(
    api: Api, body: dict[str, Any], field: str
) -> None:
    res = _batch(api, body)
    assert res.status_code == 400, res.text
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json["field"] == field and res.json["message"]


def test_malformed_json_and_a_body_that_is_no_object_are_400(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.service_token()}", "Content-Type": "application/json"}
    for raw in (b'{"evaluations": [{}', b"[]", b'"evaluations"'):
        res = api.client.simulate_post(ROUTE, body=raw, headers=headers)
        assert res.status_code == 400, raw
