"""AuthZEN error responses: the spec's status codes and "an error message string", in a
body that is problem+json too (or the message alone for a client that prefers text)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api

GOOD = {
    "subject": {"type": "user", "id": "u_aaaaaaaaaaaaaaaaaaaaaaaaaa"},
    "action": {"name": "read"},
    "resource": {
        "type": "invoice",
        "id": "1",
        "properties": {"area": "a_aaaaaaaaaaaaaaaaaaaaaaaaaa"},
    },
}
ROUTES = (
    "/access/v1/evaluation",
    "/access/v1/evaluations",
    "/access/v1/search/subject",
    "/access/v1/search/resource",
    "/access/v1/search/action",
)


def _broken(api: Api) -> list[tuple[int, dict[str, Any]]]:
    """(status, request) for each error the spec lists that a caller can cause."""
    token = {"Authorization": f"Bearer {api.service_token()}"}
    return [
        (400, {"headers": token, "json": {"action": {"name": "read"}}}),  # no subject
        (400, {"headers": token, "body": b"{not json", "content_type": "application/json"}),
        (400, {"headers": token, "body": b"", "content_type": "application/json"}),
        # The certification scenario (c-2-4-3) asks 400 for a body that is not JSON.
        (400, {"headers": token, "body": json.dumps(GOOD), "content_type": "text/plain"}),
        (401, {"json": GOOD}),
        (
            403,
            {"headers": {"Authorization": f"Bearer {api.service_token('openid')}"}, "json": GOOD},
        ),
    ]


def _send(api: Api, route: str, status: int, req: dict[str, Any], accept: str | None) -> Any:
    headers = dict(req.get("headers", {}))
    if "content_type" in req:
        headers["Content-Type"] = req["content_type"]
    if accept:
        headers["Accept"] = accept
    kw = {"json": req["json"]} if "json" in req else {"body": req["body"]}
    res = api.client.simulate_post(route, headers=headers, **kw)
    assert res.status_code == status, (route, req, res.text)
    return res


@pytest.mark.parametrize("route", ROUTES)
def test_errors_carry_the_spec_message_inside_problem_json(api: Api, route: str) -> None:
    for status, req in _broken(api):
        for accept in (None, "*/*", "application/json", "application/problem+json"):
            res = _send(api, route, status, req, accept)
            assert res.headers["content-type"] == "application/problem+json", (route, req)
            body = res.json
            assert body["type"] == "about:blank" and body["status"] == status
            assert isinstance(body["title"], str) and body["title"]
            # AuthZEN "Error Responses": an error message string, under the name its
            # "Errors" section uses; RFC 9457's detail says the same when there is one.
            assert isinstance(body["message"], str) and body["message"]
            assert body["message"] == body.get("detail", body["title"]), body


@pytest.mark.parametrize("route", ROUTES)
def test_a_client_that_prefers_text_gets_the_message_string_alone(api: Api, route: str) -> None:
    for status, req in _broken(api):
        message = _send(api, route, status, req, None).json["message"]
        for accept in ("text/plain", "text/*", "text/plain, application/json;q=0.5"):
            res = _send(api, route, status, req, accept)
            assert res.headers["content-type"] == "text/plain; charset=utf-8"
            assert res.text == message


def test_the_missing_field_is_named_in_the_message(api: Api) -> None:
    body = {**GOOD, "resource": {"type": "invoice", "id": "1"}}
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
    assert res.status_code == 400
    assert "resource.properties.area" in res.json["message"]
    assert res.json["field"] == "resource.properties.area"
    text = api.call(
        "POST",
        "/access/v1/evaluation",
        api.service_token(),
        json=body,
        headers={"Accept": "text/plain"},
    )
    assert text.text == res.json["message"]


def test_the_metadata_endpoint_answers_its_errors_the_same_way(api: Api) -> None:
    res = api.client.simulate_post("/.well-known/authzen-configuration")
    assert res.status_code == 405
    assert res.json["message"] and res.json["status"] == 405


def test_the_rest_of_the_api_keeps_plain_problem_json(api: Api) -> None:
    """The message member and the media-type rule are AuthZEN's, not the /v1 API's."""
    res = api.client.simulate_get("/v1/me", headers={"Accept": "text/plain"})
    assert res.status_code == 401
    assert res.headers["content-type"] == "application/problem+json"
    assert "message" not in res.json
    res = api.client.simulate_post("/v1/signup", body="x", headers={"Content-Type": "text/plain"})
    assert res.status_code == 415


def test_subject_search_checks_the_area_whatever_the_subject_type(api: Api) -> None:
    """A malformed area is a 400 even for a subject type the policy does not know
    (it used to be an empty 200, a schema-violating request accepted)."""
    body = {
        "subject": {"type": "robot"},
        "action": {"name": "read"},
        "resource": {"type": "invoice", "properties": {"area": {}}},
    }
    res = api.call("POST", "/access/v1/search/subject", api.service_token(), json=body)
    assert res.status_code == 400 and res.json["field"] == "resource.properties.area"
