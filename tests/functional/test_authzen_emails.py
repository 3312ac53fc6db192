"""Subjects resolved by verified email (authzen.toml ``ids = "emails"``), over the
shipped delegation policy, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, api_with_mapping

MAPPING = """\
[subjects.user]
ids = "emails"
"""


@pytest.fixture
def email_api(settings: Any, keyring: Any, clock: Any, tmp_path: Path) -> Iterator[Api]:
    yield from api_with_mapping(settings, keyring, clock, tmp_path, MAPPING)


def _ask(api: Api, email: str, area: str, rtype: str = "invoice") -> dict[str, Any]:
    action = "pay" if rtype == "invoice" else "read"
    body = {
        "subject": {"type": "user", "id": email},
        "action": {"name": action},
        "resource": {"type": rtype, "id": "7", "properties": {"area": area}},
        "context": {"explain": True},
    }
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
    assert res.status_code == 200, res.text
    return dict(res.json)


def test_a_verified_email_decides_as_its_user(email_api: Api) -> None:
    api = email_api
    owner = api.signup("owner@example.com")
    billing = api.link(owner, "billing@example.com", ["invoices"])
    assert _ask(api, "billing@example.com", owner.area_id)["decision"] is True
    # The address is compared in its canonical form: the domain's case does not matter.
    assert _ask(api, "billing@EXAMPLE.com", owner.area_id)["decision"] is True
    assert _ask(api, "billing@example.com", owner.area_id, "domain")["decision"] is False
    assert _ask(api, "owner@example.com", owner.area_id, "domain")["decision"] is True
    # The user id is not an email: under ids = "emails" it names nobody.
    by_id = _ask(api, billing.user_id, owner.area_id)
    assert by_id["decision"] is False
    assert "is not an email address" in by_id["context"]["explanation"]["reasons"][0]
    # A batch resolves each evaluation's subject the same way.
    batch = {
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "id": "7", "properties": {"area": owner.area_id}},
        "evaluations": [
            {"subject": {"type": "user", "id": "billing@example.com"}},
            {"subject": {"type": "user", "id": "nobody@example.com"}},
        ],
    }
    res = api.call("POST", "/access/v1/evaluations", api.service_token(), json=batch)
    assert res.json == {"evaluations": [{"decision": True}, {"decision": False}]}
    # Action search resolves its subject through the same lookup.
    search = {
        "subject": {"type": "user", "id": "billing@example.com"},
        "resource": {"type": "invoice", "id": "7", "properties": {"area": owner.area_id}},
    }
    res = api.call("POST", "/access/v1/search/action", api.service_token(), json=search)
    assert res.status_code == 200, res.text
    assert sorted(r["name"] for r in res.json["results"]) == ["pay", "read"]


def test_unknown_and_unverified_emails_deny_and_say_why(email_api: Api) -> None:
    api = email_api
    unknown = _ask(api, "ghost@example.com", "a_aaaaaaaaaaaaaaaaaaaaaaaaaa")
    assert unknown["decision"] is False
    assert unknown["context"]["explanation"]["reasons"] == [
        "no delegauth user has the email 'ghost@example.com'"
    ]
    # An unverified user owns their own area, yet their address names nobody until verified.
    late = api.signup("late@example.com", verify=False)
    pending = _ask(api, "late@example.com", late.area_id)
    assert pending["decision"] is False
    assert pending["context"]["explanation"]["reasons"] == [
        "the delegauth user with the email 'late@example.com' has not verified it"
    ]
    res = api.call("POST", "/v1/email-verifications", json={"token": api.mail_token(late.email)})
    assert res.status_code == 200, res.text
    assert _ask(api, "late@example.com", late.area_id)["decision"] is True


def test_the_shipped_mapping_still_takes_user_ids(api: Api) -> None:
    """Without ids = "emails" an address is no subject: the lookup is the mapping's choice."""
    owner = api.signup("owner@example.com")
    assert api.decide(owner, owner.area_id, "invoice", "pay") is True
    body = {
        "subject": {"type": "user", "id": "owner@example.com"},
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "id": "7", "properties": {"area": owner.area_id}},
    }
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
    assert res.json == {"decision": False}


def test_subject_search_answers_in_the_id_form_the_mapping_resolves(email_api: Api) -> None:
    """Under ids = "emails" every result is a verified email, one an evaluation takes back
    and allows; a user id never shows, not even inside a page token."""
    api = email_api
    owner = api.signup("owner@example.com")
    api.link(owner, "billing@example.com", ["invoices"])
    api.link(owner, "tech@example.com", ["domains"])
    search = {
        "subject": {"type": "user"},
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "properties": {"area": owner.area_id}},
    }
    res = api.call("POST", "/access/v1/search/subject", api.service_token(), json=search)
    assert res.status_code == 200, res.text
    assert res.json["results"] == [
        {"type": "user", "id": "billing@example.com"},
        {"type": "user", "id": "owner@example.com"},
    ]
    assert res.json["page"]["total"] == 2
    for result in res.json["results"]:
        assert _ask(api, result["id"], owner.area_id)["decision"] is True
    first = api.call(
        "POST",
        "/access/v1/search/subject",
        api.service_token(),
        json={**search, "page": {"limit": 1}},
    )
    token = first.json["page"]["next_token"]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert "u_" not in raw and "billing@example.com" in raw
    second = api.call(
        "POST",
        "/access/v1/search/subject",
        api.service_token(),
        json={**search, "page": {"token": token}},
    )
    assert [r["id"] for r in first.json["results"] + second.json["results"]] == [
        "billing@example.com",
        "owner@example.com",
    ]
    # A user who has not verified their email resolves from no evaluation: no result either.
    late = api.signup("late@example.com", verify=False)
    res = api.call(
        "POST",
        "/access/v1/search/subject",
        api.service_token(),
        json={**search, "resource": {"type": "invoice", "properties": {"area": late.area_id}}},
    )
    assert res.json["results"] == [] and res.json["page"]["total"] == 0
