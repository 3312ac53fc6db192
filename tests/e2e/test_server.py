"""The whole lifecycle over HTTP against real server processes, with mail over SMTP."""

from __future__ import annotations

import time
from email.header import decode_header, make_header
from typing import Any

import requests

from delegauth.tokens import TokenService
from tests.conftest import PASSWORD
from tests.e2e.conftest import Server


class Client:
    def __init__(self, server: Server, minter: TokenService) -> None:
        self.server = server
        self.minter = minter

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(
            method, self.server.url(path), json=json, headers=headers, timeout=10
        )

    def user_token(self, user_id: str, area_id: str) -> str:
        return self.minter.issue(sub=user_id, client_id="e2e", scope=["openid"], area=area_id)

    def service_token(self) -> str:
        return self.minter.issue(sub="svc", client_id="svc", scope=["decisions"])

    def decide(self, user_id: str, area_id: str, rtype: str, action: str) -> bool:
        res = self.call(
            "POST",
            "/access/v1/evaluation",
            self.service_token(),
            json={
                "subject": {"type": "user", "id": user_id},
                "action": {"name": action},
                "resource": {"type": rtype, "id": "x", "properties": {"area": area_id}},
            },
        )
        assert res.status_code == 200, res.text
        return bool(res.json()["decision"])


def _until(predicate: Any, timeout: float = 10.0) -> float:
    """Poll until predicate() is true; return the seconds it took (fail after timeout)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
    return time.monotonic() - start


def test_lifecycle_across_two_servers(servers: list[Server], minter: TokenService, smtp) -> None:
    inbox, _port = smtp
    a, b = Client(servers[0], minter), Client(servers[1], minter)
    # `serve` runs granian unless DELEGAUTH_SERVER names another server.
    assert a.call("GET", "/healthz").headers["server"] == "granian"

    res = a.call(
        "POST",
        "/v1/signup",
        json={"email": "owner@example.com", "password": PASSWORD, "name": "Olivia"},
    )
    assert res.status_code == 201, res.text
    owner_id, owner_area = res.json()["user"]["id"], res.json()["area"]["id"]
    verify = inbox.wait_for("owner@example.com", "confirm")
    res = b.call("POST", "/v1/email-verifications", json={"token": inbox.token(verify)})
    assert res.status_code == 200 and res.json()["user"]["email_verified"]

    owner_token = a.user_token(owner_id, owner_area)
    res = a.call(
        "POST",
        f"/v1/areas/{owner_area}/invitations",
        owner_token,
        json={"email": "Helper@Example.com", "permissions": ["invoices", "tickets"]},
    )
    assert res.status_code == 201, res.text
    invite_mail = inbox.wait_for("helper@example.com", "invitation to manage")
    assert "Olivia" in str(make_header(decode_header(invite_mail["Subject"])))
    token = inbox.token(invite_mail)

    # The invitee has no account: signs up with the invitation token, then accepts.
    res = b.call(
        "POST",
        "/v1/signup",
        json={
            "email": "helper@example.com",
            "password": PASSWORD,
            "invitation_token": token,
            "locale": "es",
        },
    )
    assert res.status_code == 201, res.text
    helper_id, helper_area = res.json()["user"]["id"], res.json()["area"]["id"]
    assert res.json()["user"]["email_verified"] is True
    helper_token = b.user_token(helper_id, helper_area)
    res = b.call("POST", "/v1/invitations/accept", helper_token, json={"token": token})
    assert res.status_code == 201, res.text

    # Written through B: decided through A.
    _until(lambda: a.decide(helper_id, owner_area, "invoice", "pay"))
    assert not a.decide(helper_id, owner_area, "domain", "read")

    me = a.call("GET", "/v1/me", helper_token).json()
    assert {x["id"]: x["role"] for x in me["areas"]} == {
        helper_area: "owner",
        owner_area: "delegate",
    }

    # Narrowed through A: seen by B.
    res = a.call(
        "PATCH",
        f"/v1/areas/{owner_area}/members/{helper_id}",
        owner_token,
        json={"permissions": ["tickets"]},
    )
    assert res.status_code == 200
    _until(lambda: not b.decide(helper_id, owner_area, "invoice", "pay"))
    assert b.decide(helper_id, owner_area, "ticket", "reply")

    # Removed through B: denied by A.
    res = b.call("DELETE", f"/v1/areas/{owner_area}/members/{helper_id}", owner_token)
    assert res.status_code == 200
    _until(lambda: not a.decide(helper_id, owner_area, "ticket", "reply"))

    members = a.call("GET", f"/v1/areas/{owner_area}/members", owner_token).json()["members"]
    assert [m["user"]["id"] for m in members] == [owner_id]
    audit = a.call("GET", f"/v1/areas/{owner_area}/audit", owner_token).json()["events"]
    assert [e["action"] for e in audit][:3] == ["grant.removed", "grant.updated", "grant.created"]


def test_wrong_account_and_errors_over_http(
    servers: list[Server], minter: TokenService, smtp
) -> None:
    inbox, _ = smtp
    a = Client(servers[0], minter)
    ids = {}
    for email in ("o@example.com", "i@example.com", "m@example.com"):
        res = a.call("POST", "/v1/signup", json={"email": email, "password": PASSWORD})
        assert res.status_code == 201
        ids[email] = (res.json()["user"]["id"], res.json()["area"]["id"])
        msg = inbox.wait_for(email, "confirm")
        assert (
            a.call("POST", "/v1/email-verifications", json={"token": inbox.token(msg)}).status_code
            == 200
        )
    o_id, o_area = ids["o@example.com"]
    m_id, m_area = ids["m@example.com"]
    res = a.call(
        "POST",
        f"/v1/areas/{o_area}/invitations",
        a.user_token(o_id, o_area),
        json={"email": "i@example.com", "permissions": "all"},
    )
    inv_id = res.json()["invitation"]["id"]
    res = a.call("POST", f"/v1/invitations/{inv_id}/accept", a.user_token(m_id, m_area))
    assert res.status_code == 403
    assert res.headers["Content-Type"] == "application/problem+json"
    res = requests.post(
        a.server.url("/v1/signup"),
        data=b"{oops",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert res.status_code == 400
    res = requests.post(
        a.server.url("/v1/signup"),
        data=b"x" * 200_000,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert res.status_code == 413
