"""AuthZEN 1.0 access evaluation(s) over the live policy, and failing closed."""

from __future__ import annotations

from typing import Any

import pytest

from delegauth.storage.records import CasbinRuleRecord
from tests.conftest import Api, Person


def _req(person: Person | str, area: str, rtype: str, action: str) -> dict[str, Any]:
    uid = person if isinstance(person, str) else person.user_id
    return {
        "subject": {"type": "user", "id": uid},
        "action": {"name": action},
        "resource": {"type": rtype, "id": "42", "properties": {"area": area}},
    }


@pytest.fixture
def world(api: Api) -> dict[str, Person]:
    owner = api.signup("o@example.com")
    billing = api.link(owner, "b@example.com", ["invoices"])
    return {"owner": owner, "billing": billing}


def test_needs_a_service_token_with_the_decisions_scope(api: Api, world) -> None:
    body = _req(world["owner"], world["owner"].area_id, "invoice", "read")
    assert api.call("POST", "/access/v1/evaluation", json=body).status_code == 401
    no_scope = api.service_token("openid")
    res = api.call("POST", "/access/v1/evaluation", no_scope, json=body)
    assert res.status_code == 403
    assert api.call("POST", "/access/v1/evaluations", no_scope, json=body).status_code == 403


def test_plain_response_is_exactly_the_decision(api: Api, world) -> None:
    res = api.call(
        "POST",
        "/access/v1/evaluation",
        api.service_token(),
        json=_req(world["billing"], world["owner"].area_id, "invoice", "pay"),
        headers={"X-Request-ID": "req-123"},
    )
    assert res.status_code == 200
    assert res.json == {"decision": True}
    assert res.headers["X-Request-ID"] == "req-123"
    # Written as send_json writes every body (compact), with the security headers.
    assert res.content == b'{"decision":true}'
    assert res.headers["content-type"] == "application/json"
    assert res.headers["cache-control"] == "no-store"
    assert res.headers["x-content-type-options"] == "nosniff"
    denied = api.call(
        "POST",
        "/access/v1/evaluation",
        api.service_token(),
        json=_req(world["billing"], world["owner"].area_id, "invoice", "refund"),
    )
    assert denied.content == b'{"decision":false}'
    # A context (here empty) takes the general path: the same answer.
    with_context = {**_req(world["billing"], world["owner"].area_id, "invoice", "pay")}
    with_context["context"] = {}
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=with_context)
    assert res.content == b'{"decision":true}'


def test_unknown_users_areas_actions_and_types_deny(api: Api, world) -> None:
    area = world["owner"].area_id
    cases = [
        _req("u_aaaaaaaaaaaaaaaaaaaaaaaaaa", area, "invoice", "read"),
        _req(world["billing"], "a_aaaaaaaaaaaaaaaaaaaaaaaaaa", "invoice", "read"),
        _req(world["billing"], area, "invoice", "refund"),
        _req(world["billing"], area, "spaceship", "read"),
        _req(world["billing"], world["billing"].area_id.upper(), "invoice", "read"),
        {
            **_req(world["billing"], area, "invoice", "read"),
            "subject": {"type": "group", "id": world["billing"].user_id},
        },
    ]
    for body in cases:
        res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
        assert res.status_code == 200 and res.json == {"decision": False}, body


def test_a_request_without_the_area_the_mapping_needs_is_400_naming_it(api: Api, world) -> None:
    """The shipped mapping takes the domain from resource.properties.area: without it
    the request cannot be decided, and a silent deny would hide the mistake."""
    body = {
        **_req(world["billing"], world["billing"].area_id, "invoice", "read"),
        "resource": {"type": "invoice", "id": "1"},
    }
    for route, payload in (
        ("/access/v1/evaluation", body),
        ("/access/v1/evaluations", body),  # no evaluations: one evaluation
    ):
        res = api.call("POST", route, api.service_token(), json=payload)
        assert res.status_code == 400, res.text
        assert "resource.properties.area" in res.json["detail"]
        assert res.json["field"] == "resource.properties.area"
    # Inside a batch the item is a deny carrying that error (AuthZEN "Errors").
    batch = {**body, "evaluations": [{"action": {"name": "pay"}}]}
    res = api.call("POST", "/access/v1/evaluations", api.service_token(), json=batch)
    assert res.status_code == 200, res.text
    [item] = res.json["evaluations"]
    assert item["decision"] is False
    assert item["context"]["error"]["field"] == "resource.properties.area"


def test_role_names_and_rule_syntax_as_subjects_deny(api: Api, world) -> None:
    area = world["owner"].area_id
    for sub in (
        "perm:all",
        "role:owner",
        "*",
        "",
        f"{world['billing'].user_id}, perm:all",
        "u_x\nperm:all",
        "perm_all",
    ):
        res = api.call(
            "POST",
            "/access/v1/evaluation",
            api.service_token(),
            json=_req(sub, area, "invoice", "read"),
        )
        assert res.json == {"decision": False}, sub
    # A resource area that is a wildcard or a role never matches either.
    for dom in ("*", "area:*", "perm:all", f"{area},x"):
        res = api.call(
            "POST",
            "/access/v1/evaluation",
            api.service_token(),
            json=_req(world["billing"], dom, "invoice", "read"),
        )
        assert res.json == {"decision": False}, dom


def test_missing_required_fields_are_400(api: Api, world) -> None:
    good = _req(world["owner"], world["owner"].area_id, "invoice", "read")
    for broken in (
        {k: v for k, v in good.items() if k != "subject"},
        {**good, "action": {}},
        {**good, "action": {"name": 5}},
        {**good, "resource": "invoice"},
        {**good, "subject": {"type": "user"}},
        {**good, "resource": {**good["resource"], "properties": []}},
    ):
        res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=broken)
        assert res.status_code == 400, broken
        assert res.headers["content-type"] == "application/problem+json"


def test_batch_semantics(api: Api, world) -> None:
    b, area = world["billing"], world["owner"].area_id
    body = {
        "subject": {"type": "user", "id": b.user_id},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
        "evaluations": [
            {"action": {"name": "read"}},
            {"action": {"name": "delete"}},
            {"action": {"name": "pay"}},
            {
                "action": {"name": "read"},
                "resource": {"type": "domain", "id": "d", "properties": {"area": area}},
            },
        ],
    }
    token = api.service_token()
    res = api.call("POST", "/access/v1/evaluations", token, json=body)
    assert res.json == {
        "evaluations": [
            {"decision": True},
            {"decision": False},
            {"decision": True},
            {"decision": False},
        ]
    }
    res = api.call(
        "POST",
        "/access/v1/evaluations",
        token,
        json={**body, "options": {"evaluations_semantic": "deny_on_first_deny"}},
    )
    assert res.json == {"evaluations": [{"decision": True}, {"decision": False}]}
    res = api.call(
        "POST",
        "/access/v1/evaluations",
        token,
        json={**body, "options": {"evaluations_semantic": "permit_on_first_permit"}},
    )
    assert res.json == {"evaluations": [{"decision": True}]}
    res = api.call(
        "POST",
        "/access/v1/evaluations",
        token,
        json={**body, "options": {"evaluations_semantic": "sometimes"}},
    )
    assert res.status_code == 400
    # An item missing what has no default is a deny with its error, not a 400.
    bad = {"evaluations": [{"action": {"name": "read"}}]}
    res = api.call("POST", "/access/v1/evaluations", token, json=bad)
    assert res.status_code == 200, res.text
    assert res.json["evaluations"][0]["context"]["error"]["field"] == "subject"
    # No evaluations array: behaves like a single evaluation.
    single = _req(b, area, "invoice", "read")
    res = api.call("POST", "/access/v1/evaluations", token, json=single)
    assert res.json == {"decision": True}


def test_metadata(api: Api) -> None:
    res = api.call("GET", "/.well-known/authzen-configuration")
    assert res.json["policy_decision_point"] == "http://localhost"
    assert res.json["access_evaluation_endpoint"].endswith("/access/v1/evaluation")
    assert res.json["access_evaluations_endpoint"].endswith("/access/v1/evaluations")


def test_rule_injection_through_emails_and_names_never_reaches_casbin(api: Api) -> None:
    nasty = [
        "evil|perm=all+role=owner@example.com",
        "{a}*`#$%&'^~/?=b@example.com",
        "x*@example.com",
    ]
    owner = api.signup("o@example.com", name='Owner, role:owner ["*"]')
    # Commas, colons and quoted local parts are not email syntax: refused at the door.
    for refused in ["evil,perm:all@example.com", '"a,b"[x]*@example.com']:
        res = api.call("POST", "/v1/signup", json={"email": refused, "password": "x" * 12})
        assert res.status_code == 400 and res.json["field"] == "email", res.text
    for email in nasty:
        person = api.signup(email, name="p:all, *, [x]")
        inv = api.invite(owner, email, ["tickets"])
        res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(person))
        assert res.status_code == 201, res.text
        assert not api.decide(person, owner.area_id, "invoice", "read")
        assert api.decide(person, owner.area_id, "ticket", "read")
    import re

    pattern = re.compile(r"^(user|area|perm|role):[a-z0-9_]{1,64}$")
    with api.services.db.connection_context():
        for rule in CasbinRuleRecord.select():
            assert rule.ptype == "g"
            for value in (rule.v0, rule.v1, rule.v2):
                assert pattern.match(value), value
            assert (rule.v3, rule.v4, rule.v5) == ("", "", "")


def test_storage_unavailable_fails_closed(api: Api, world) -> None:
    """An area the process has not loaded cannot be loaded: 503, never allow."""
    services = api.services
    other = api.signup("x@example.com")
    services.decider.install(services.decider.bundle)  # forget the loaded areas
    services.db.execute_sql("ALTER TABLE casbin_rule RENAME TO casbin_rule_gone")
    try:
        res = api.call(
            "POST",
            "/access/v1/evaluation",
            api.service_token(),
            json=_req(other, other.area_id, "invoice", "read"),
        )
        assert res.status_code == 503
        assert res.headers["content-type"] == "application/problem+json"
    finally:
        services.db.execute_sql("ALTER TABLE casbin_rule_gone RENAME TO casbin_rule")


def test_stale_policy_fails_closed(api: Api, world, monkeypatch) -> None:
    decider = api.services.decider
    decider._max_staleness = 0.0  # any time since the last sync is too long
    body = _req(world["billing"], world["owner"].area_id, "invoice", "read")
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
    assert res.status_code == 503
    res = api.call(
        "POST", "/access/v1/evaluations", api.service_token(), json={**body, "evaluations": [{}]}
    )
    assert res.status_code == 503
