"""A grant on one domain, decided by the real server (SQLite and PostgreSQL): the AuthZEN
evaluation allows managedomains on example.com only, a delegate holding that cannot
invite for another domain, and narrowing the grant reaches the next decision."""

from __future__ import annotations

import secrets
from typing import Any

import requests

from delegauth.tokens import TokenService
from tests.e2e.conftest import Server
from tests.e2e.test_authzen_server import _svc
from tests.e2e.test_client import _verify_email
from tests.e2e.test_oauth import _signup


def _bearer(minter: TokenService, user: str, area: str) -> dict[str, str]:
    token = minter.issue(sub=user, client_id="web", scope=["openid"], area=area)
    return {"Authorization": f"Bearer {token}"}


def _call(server: Server, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    return requests.request(method, server.url(path), headers=headers, json=body, timeout=20)


def test_a_grant_on_one_domain_over_http(
    server: Server, clients: dict, module_minter: TokenService
) -> None:
    owner, area = _signup(server, f"owner-{secrets.token_hex(4)}@example.com")
    email = f"dns-{secrets.token_hex(4)}@example.com"
    admin, admin_area = _signup(server, email)
    _verify_email(server, admin)
    as_owner = _bearer(module_minter, owner, area)
    res = _call(
        server,
        "POST",
        f"/v1/areas/{area}/invitations",
        as_owner,
        {"email": email, "permissions": ["users", "managedomains@example.com"]},
    )
    assert res.status_code == 201, res.text
    assert res.json()["invitation"]["permissions"] == ["users", "managedomains@example.com"]
    accepted = _call(
        server,
        "POST",
        f"/v1/invitations/{res.json()['invitation']['id']}/accept",
        _bearer(module_minter, admin, admin_area),
        None,
    )
    assert accepted.status_code == 201, accepted.text
    version = accepted.json()["policy_version"]

    service = _svc(server, clients)

    def decide(domain: str, action: str = "update", at: int = 0) -> bool:
        body: dict[str, Any] = {
            "subject": {"type": "user", "id": admin},
            "action": {"name": action},
            "resource": {"type": "domain", "id": domain, "properties": {"area": area}},
        }
        if at:
            body["context"] = {"policy_version": at}
        res = _call(server, "POST", "/access/v1/evaluation", service, body)
        assert res.status_code == 200, res.text
        return bool(res.json()["decision"])

    assert decide("example.com", at=version) is True
    assert decide("example.com", "transfer") is True
    assert decide("example.org") is False
    assert decide("EXAMPLE.COM") is False

    # The delegate may invite, but not for a domain (or all domains) they do not hold.
    as_admin = _bearer(module_minter, admin, area)
    for perms in (["managedomains@example.org"], ["managedomains"]):
        res = _call(
            server,
            "POST",
            f"/v1/areas/{area}/invitations",
            as_admin,
            {"email": "n@example.com", "permissions": perms},
        )
        assert res.status_code == 403, res.text
        assert res.json()["code"] == "escalation"
    res = _call(
        server,
        "POST",
        f"/v1/areas/{area}/invitations",
        as_admin,
        {"email": "n@example.com", "permissions": ["managedomains@exa mple.com"]},
    )
    assert res.status_code == 400
    assert res.headers["content-type"].startswith("application/problem+json")

    # The owner moves the grant to example.org: the next decision (at its version) follows.
    res = _call(
        server,
        "PATCH",
        f"/v1/areas/{area}/members/{admin}",
        as_owner,
        {"permissions": ["users", "managedomains@example.org"]},
    )
    assert res.status_code == 200, res.text
    moved = res.json()["policy_version"]
    assert decide("example.com", at=moved) is False
    assert decide("example.org", at=moved) is True
