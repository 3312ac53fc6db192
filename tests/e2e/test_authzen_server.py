"""AuthZEN search and explanations against the real server."""

from __future__ import annotations

import secrets
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.e2e.conftest import Server
from tests.e2e.test_oauth import _signup


def _svc(server: Server, clients: dict) -> dict[str, str]:
    session = OAuth2Session("billing", clients["billing"]["client_secret"], scope="decisions")
    token = session.fetch_token(server.url("/oauth/token"), grant_type="client_credentials")
    return {"Authorization": f"Bearer {token['access_token']}", "X-Request-ID": "e2e-42"}


def _post(server: Server, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    res = requests.post(server.url(path), headers=headers, json=body, timeout=10)
    assert res.status_code == 200, res.text
    assert res.headers["X-Request-ID"] == "e2e-42"
    return res.json()


def test_search_and_explain_over_http(server: Server, clients: dict) -> None:
    uid, area = _signup(server, f"az-{secrets.token_hex(4)}@example.com")
    headers = _svc(server, clients)
    meta = requests.get(server.url("/.well-known/authzen-configuration"), timeout=10).json()
    assert meta["search_subject_endpoint"].endswith("/access/v1/search/subject")
    request = {
        "subject": {"type": "user", "id": uid},
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
    }
    assert _post(server, "/access/v1/evaluation", headers, request) == {"decision": True}
    explained = _post(
        server, "/access/v1/evaluation", headers, {**request, "context": {"explain": True}}
    )
    assert explained["decision"] is True
    assert explained["context"]["explanation"]["policy_hash"].startswith("sha256:")
    assert "policy_version" not in explained["context"]["explanation"]
    subjects = _post(
        server,
        "/access/v1/search/subject",
        headers,
        {"subject": {"type": "user"}, "action": {"name": "pay"}, "resource": request["resource"]},
    )
    assert {"type": "user", "id": uid} in subjects["results"]
    actions = _post(
        server,
        "/access/v1/search/action",
        headers,
        {"subject": request["subject"], "resource": request["resource"]},
    )
    assert {"name": "pay"} in actions["results"] and {"name": "read"} in actions["results"]
    resources = _post(
        server,
        "/access/v1/search/resource",
        headers,
        {"subject": request["subject"], "action": {"name": "pay"}, "resource": {"type": "invoice"}},
    )
    # Area ids are never results (issue 13): the shipped policy lists no resources.
    assert resources["results"] == [] and resources["page"]["next_token"] == ""
