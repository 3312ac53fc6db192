"""No input gets a 500: every client mistake is a 4xx problem+json, whatever the route,
field or encoding (issue 10, item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from delegauth.api.body import MAX_JSON_DEPTH
from tests.conftest import Api, Person

OPENAPI = Path(__file__).resolve().parents[2] / "src" / "delegauth" / "api" / "openapi.yaml"


def _json_operations() -> list[tuple[str, str]]:
    doc = yaml.safe_load(OPENAPI.read_text("utf-8"))
    return [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters"
        and "application/json" in (op.get("requestBody") or {}).get("content", {})
    ]


JSON_OPERATIONS = _json_operations()


def _fill(path: str, owner: Person) -> str:
    return (
        path.replace("{area_id}", owner.area_id)
        .replace("{user_id}", owner.user_id)
        .replace("{invitation_id}", "inv_nonexistent")
        .replace("{request_id}", "r_nonexistent")
    )


def _token_for(api: Api, owner: Person, path: str) -> str:
    # Access requests are a user's own (the decision endpoints are a service's).
    if path.startswith("/access/") and not path.startswith("/access/v1/requests"):
        return api.service_token()
    return api.token(owner)


def _assert_problem(res: Any, status: int = 400) -> dict[str, Any]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == "application/problem+json"
    body = dict(res.json)
    assert body["status"] == status
    return body


def test_every_json_route_is_covered() -> None:
    # Guard: the list above comes from the document; a route dropped from it would escape.
    assert len(JSON_OPERATIONS) >= 10
    assert ("POST", "/v1/signup") in JSON_OPERATIONS


@pytest.mark.parametrize(("method", "path"), JSON_OPERATIONS)
@pytest.mark.parametrize("token", [True, False], ids=["authenticated", "anonymous"])
def test_deeply_nested_json_is_400(api: Api, method: str, path: str, token: bool) -> None:
    owner = api.signup("nest@example.com")
    bearer = _token_for(api, owner, path) if token else None
    for body in ('{"a":' * 100_000 + "1" + "}" * 100_000, "[" * 60_000 + "]" * 60_000):
        res = api.call(
            method,
            _fill(path, owner),
            bearer,
            body=body,
            headers={"Content-Type": "application/json"},
        )
        if not token and res.status_code == 401:
            continue  # refused before the body is read: also not a 500
        assert res.status_code in (400, 413), res.text
        assert res.headers["content-type"] == "application/problem+json"


def test_nesting_just_past_the_limit_is_refused_and_at_the_limit_is_read(api: Api) -> None:
    def nested(depth: int) -> str:
        return (
            '{"email":"x@example.com","password":"p","name":'
            + "[" * (depth - 1)
            + "]" * (depth - 1)
            + "}"
        )

    too_deep = api.call(
        "POST",
        "/v1/signup",
        body=nested(MAX_JSON_DEPTH + 1),
        headers={"Content-Type": "application/json"},
    )
    assert "nests more than" in _assert_problem(too_deep)["detail"]
    # At the limit the body is parsed and refused for what it says, not for its shape.
    at_limit = api.call(
        "POST",
        "/v1/signup",
        body=nested(MAX_JSON_DEPTH),
        headers={"Content-Type": "application/json"},
    )
    assert "nests more than" not in at_limit.text
    assert at_limit.status_code == 400


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("[]," * 40 + "[" * 30 + "]" * 30, False),  # many brackets, 32 deep: read
        ("[]," * 40 + "[" * 31 + "]" * 31, True),  # one level more: refused
        ('"]]]]", "{{", ' + "[" * 31 + "]" * 31, True),  # brackets in strings
        ('"\\"]]", ' + "[" * 31 + "]" * 31, True),  # an escaped quote before them
        ('"\\"]]", ' + "[" * 30 + "]" * 30, False),
        # Long bodies (a batch's size) are measured whatever their bracket count.
        ('"' + "x" * 2000 + '", ' + "[" * 31 + "]" * 31, True),
        ('"' + "x" * 2000 + '", ' + "[" * 30 + "]" * 30, False),
        ('"' + "[" * 2000 + '", ' + "[" * 31 + "]" * 31, True),
        ('"' + "[" * 2000 + '", ' + "[" * 30 + "]" * 30, False),
        ('"\\n' + "x" * 2000 + '", ' + "[" * 31 + "]" * 31, True),
        ('"\\n' + "x" * 2000 + '", ' + "[" * 30 + "]" * 30, False),
    ],
)
def test_nesting_is_measured_past_brackets_in_strings(api: Api, name: str, refused: bool) -> None:
    body = '{"email":"x@example.com","password":"p","name":[' + name + "]}"
    res = api.call("POST", "/v1/signup", body=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 400
    assert ("nests more than" in res.text) is refused, res.text


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "a\\ud800@example.com", "password": "correct horse battery staple"}',
        '{"email": "a@example.com", "password": "x\\udfff"}',
        '{"email": "a@example.com", "password": "pw", "\\ud800": 1}',
        '{"email": "a@example.com", "password": "pw", "name": ["\\udc00"]}',
    ],
)
def test_lone_surrogates_are_400(api: Api, body: str) -> None:
    res = api.call("POST", "/v1/signup", body=body, headers={"Content-Type": "application/json"})
    assert "not valid Unicode" in _assert_problem(res)["detail"]


@pytest.mark.parametrize(
    "body",
    [
        # A surrogate encoded as UTF-8 bytes (not valid UTF-8), with no \\u escape in sight.
        b'{"email": "a@example.com", "password": "correct horse battery", "name": "\xed\xa0\x80"}',
        # UTF-16 with a lone surrogate: JSON between systems is UTF-8 (RFC 8259 section 8.1).
        '{"email": "a@example.com", "password": "x'.encode("utf-16-le")
        + b"\x00\xd8"
        + '"}'.encode("utf-16-le"),
    ],
)
def test_surrogates_in_raw_bytes_are_400(api: Api, body: bytes) -> None:
    res = api.call("POST", "/v1/signup", body=body, headers={"Content-Type": "application/json"})
    assert _assert_problem(res)["status"] == 400


def test_lone_surrogate_in_an_invited_email_is_400(api: Api) -> None:
    owner = api.signup("owner-s@example.com")
    res = api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        api.token(owner),
        body='{"email": "\\ud800@example.com", "permissions": "all"}',
        headers={"Content-Type": "application/json"},
    )
    _assert_problem(res)


def test_canonical_email_refuses_lone_surrogates() -> None:
    from delegauth.domain.emails import canonical_email
    from delegauth.errors import InvalidInput

    with pytest.raises(InvalidInput):
        canonical_email("a\ud800@example.com")


@pytest.mark.parametrize("value", ["¹", "١٢", "٣", "1²", "１", "-1", " 1", "1 ", "1\n", "x"])
@pytest.mark.parametrize("name", ["before", "limit"])
def test_non_ascii_or_malformed_counts_are_400(api: Api, name: str, value: str) -> None:
    owner = api.signup("audit@example.com")
    res = api.call(
        "GET", f"/v1/areas/{owner.area_id}/audit", api.token(owner), params={name: value}
    )
    assert _assert_problem(res)["field"] == name


def test_ascii_counts_still_page(api: Api) -> None:
    owner = api.signup("audit2@example.com")
    res = api.call(
        "GET", f"/v1/areas/{owner.area_id}/audit", api.token(owner), params={"limit": "1"}
    )
    assert res.status_code == 200, res.text
    assert len(res.json["events"]) == 1


def test_console_activity_ignores_non_ascii_digits() -> None:
    from delegauth.api.params import parse_count

    assert parse_count("¹") is None
    assert parse_count("١٢") is None
    assert parse_count("12") == 12
    assert parse_count("1" * 19) is None


def test_search_page_token_nested_deeply_is_400(api: Api) -> None:
    import base64

    owner = api.signup("search@example.com")
    token = base64.urlsafe_b64encode(b"[" * 40_000 + b"]" * 40_000).decode().rstrip("=")
    res = api.call(
        "POST",
        "/access/v1/search/resource",
        api.service_token(),
        json={
            "subject": {"type": "user", "id": owner.user_id},
            "action": {"name": "invoice:view"},
            "resource": {"type": "invoice"},
            "page": {"token": token},
        },
    )
    assert res.status_code in (400, 413), res.text
    assert res.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        "response_type=%E7%8A%99&client_id=x",
        'response_type=a"b&client_id=x',
        "client_id=%C3%A6",
        "client_id=%7F",  # DEL: ASCII, not printable
        "client_id=a%09b",  # a tab
        "client_%0A=x",  # in a name
    ],
)
def test_oauth_parameters_outside_printable_ascii_are_400(api: Api, query: str) -> None:
    # Authlib cannot build an error description echoing them: this was a 500.
    res = api.call("GET", "/oauth/authorize?" + query)
    _assert_problem(res)


def test_v1_bodies_refuse_unknown_fields(api: Api) -> None:
    res = api.call(
        "POST",
        "/v1/signup",
        json={"email": "typo@example.com", "password": "correct horse", "invitationToken": "x"},
    )
    assert _assert_problem(res)["field"] == "invitationToken"


def test_authzen_values_are_checked_as_the_document_says(api: Api) -> None:
    owner = api.signup("shapes@example.com")
    ask = {
        "subject": {"type": "user", "id": owner.user_id},
        "action": {"name": "read"},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": owner.area_id}},
    }
    token = api.service_token()
    for bad in ({"context": 5}, {"resource": {**ask["resource"], "properties": {"area": 5}}}):
        res = api.call("POST", "/access/v1/evaluation", token, json={**ask, **bad})
        assert _assert_problem(res)["field"] in ("context", "resource")
    res = api.call(
        "POST",
        "/access/v1/evaluations",
        token,
        json={**ask, "options": {"evaluations_semantic": 1}},
    )
    assert _assert_problem(res)["field"] == "options"
    # 2.0 is an integer to JSON Schema, and so to the API.
    res = api.call(
        "POST", "/access/v1/evaluation", token, json={**ask, "context": {"policy_version": 0.0}}
    )
    assert res.status_code == 200, res.text
    res = api.call(
        "POST",
        "/access/v1/search/action",
        token,
        json={"subject": ask["subject"], "resource": ask["resource"], "page": {"limit": 2.0}},
    )
    assert res.status_code == 200, res.text


def test_the_served_document_lists_the_permissions_in_force(api: Api) -> None:
    doc = api.call("GET", "/openapi.json").json
    names = doc["components"]["schemas"]["PermissionName"]["enum"]
    catalogue = api.services.decider.bundle.catalogue
    assert set(catalogue.names()) <= set(names)
    assert {f"bundle:{b}" for b in catalogue.bundles} <= set(names)
