"""Grants on single resources (issue 14, part 3): a scoped catalogue permission granted
as ``managedomains@example.com`` allows its actions only where resource.id is example.com,
through the JSON API and the AuthZEN endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from delegauth.oauth.issuing import principal_for, sign_access
from delegauth.oauth.rfc7662 import access_still_valid
from tests.conftest import Api, FrozenClock, Person

DOMAIN_ADMIN = ["domains", "managedomains@example.com"]


def _evaluation(person: Person, area: str, rtype: str, action: str, rid: str) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": person.user_id},
        "action": {"name": action},
        "resource": {"type": rtype, "id": rid, "properties": {"area": area}},
    }


def _decide(api: Api, person: Person, area: str, rtype: str, action: str, rid: str) -> bool:
    res = api.call(
        "POST",
        "/access/v1/evaluation",
        api.service_token(),
        json=_evaluation(person, area, rtype, action, rid),
    )
    assert res.status_code == 200, res.text
    return bool(res.json["decision"])


def test_a_grant_on_one_domain_allows_only_that_domain(api: Api) -> None:
    owner = api.signup("o@example.com")
    admin = api.link(owner, "dns@example.com", DOMAIN_ADMIN)
    area = owner.area_id
    assert _decide(api, admin, area, "domain", "update", "example.com")
    assert _decide(api, admin, area, "domain", "renew", "example.com")
    assert not _decide(api, admin, area, "domain", "update", "example.org")
    assert not _decide(api, admin, area, "domain", "update", "EXAMPLE.COM")  # ids are exact
    assert _decide(api, admin, area, "domain", "read", "example.org")  # "domains": every one
    assert not _decide(api, admin, area, "product", "update", "example.com")
    # Unscoped, the same permission covers every domain.
    whole = api.link(owner, "all-dns@example.com", ["managedomains"])
    assert _decide(api, whole, area, "domain", "update", "example.org")


def test_members_listing_and_the_token_show_the_resource(api: Api) -> None:
    owner = api.signup("o@example.com")
    admin = api.link(owner, "dns@example.com", DOMAIN_ADMIN)
    res = api.call("GET", f"/v1/areas/{owner.area_id}/members", api.token(owner))
    assert res.status_code == 200
    held = {m["user"]["id"]: m["permissions"] for m in res.json["members"]}
    assert held[admin.user_id] == DOMAIN_ADMIN


def test_access_tokens_name_each_resource_and_narrowing_ends_them(
    api: Api, clock: FrozenClock
) -> None:
    """A scoped permission appears in the token's permissions as <name>@<resource id>:
    a resource server that knows only bare names sees no managedomains there."""
    owner = api.signup("o@example.com")
    admin = api.link(owner, "dns@example.com", DOMAIN_ADMIN)
    services = api.services
    with services.db.connection_context():
        principal = principal_for(services.store, admin.user_id, owner.area_id, clock())
    assert principal is not None
    token, _ = sign_access(services.tokens, "tests", ["openid"], principal)
    claims = services.tokens.verify(token)
    assert claims.raw["permissions"] == DOMAIN_ADMIN
    with services.db.connection_context():
        assert access_still_valid(services.store, services.oauth_store, claims)
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{admin.user_id}",
        api.token(owner),
        json={"permissions": ["domains", "managedomains@example.org"]},
    )
    assert res.status_code == 200, res.text
    with services.db.connection_context():
        assert not access_still_valid(services.store, services.oauth_store, claims)


def test_narrowing_to_another_domain_takes_effect_at_once(api: Api) -> None:
    owner = api.signup("o@example.com")
    admin = api.link(owner, "dns@example.com", DOMAIN_ADMIN)
    area = owner.area_id
    assert _decide(api, admin, area, "domain", "update", "example.com")
    res = api.call(
        "PATCH",
        f"/v1/areas/{area}/members/{admin.user_id}",
        api.token(owner),
        json={"permissions": ["managedomains@example.net", "managedomains@example.org"]},
    )
    assert res.status_code == 200, res.text
    assert not _decide(api, admin, area, "domain", "update", "example.com")
    assert _decide(api, admin, area, "domain", "update", "example.org")
    assert _decide(api, admin, area, "domain", "update", "example.net")


def test_explanation_names_the_resource_restriction(api: Api) -> None:
    owner = api.signup("o@example.com")
    admin = api.link(owner, "dns@example.com", DOMAIN_ADMIN)
    body = _evaluation(admin, owner.area_id, "domain", "update", "example.org")
    body["context"] = {"explain": True}
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
    assert res.json["decision"] is False
    reasons = res.json["context"]["explanation"]["reasons"]
    assert any(
        "perm:managedomains on example.com only" in r and "'example.org'" in r for r in reasons
    ), reasons
    body["resource"]["id"] = "example.com"
    res = api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)
    assert res.json["decision"] is True
    rules = res.json["context"]["explanation"]["rules"]
    assert rules and all(r["resource"] == "example.com" for r in rules), rules
    assert all(r["source"].endswith("on example.com only") for r in rules)


def test_a_delegate_holding_one_domain_cannot_give_more(api: Api) -> None:
    owner = api.signup("o@example.com")
    mgr = api.link(owner, "mgr@example.com", ["users", "managedomains@example.com"])
    token = api.token(mgr, owner.area_id)
    base = f"/v1/areas/{owner.area_id}"
    for perms in (["managedomains@example.org"], ["managedomains"], "all"):
        res = api.call(
            "POST",
            base + "/invitations",
            token,
            json={"email": "n@example.com", "permissions": perms},
        )
        assert res.status_code == 403, perms
        assert res.json["code"] == "escalation"
    ok = api.call(
        "POST",
        base + "/invitations",
        token,
        json={"email": "n@example.com", "permissions": ["managedomains@example.com"]},
    )
    assert ok.status_code == 201, ok.text
    inv = ok.json["invitation"]
    assert inv["permissions"] == ["managedomains@example.com"]
    # Widening the pending invitation, or a member, is refused the same way.
    res = api.call(
        "PATCH", f"{base}/invitations/{inv['id']}", token, json={"permissions": ["managedomains"]}
    )
    assert res.status_code == 403
    member = api.link(owner, "m@example.com", ["managedomains@example.com"])
    res = api.call(
        "PATCH",
        f"{base}/members/{member.user_id}",
        token,
        json={"permissions": ["managedomains@example.com", "managedomains@example.org"]},
    )
    assert res.status_code == 403
    assert not _decide(api, member, owner.area_id, "domain", "update", "example.org")


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("managedomains@", "needs a resource id"),
        ("managedomains@" + "a" * 129, "at most 128 characters"),
        ("managedomains@münchen.de", "IDNA"),
        ("managedomains@exa mple.com", "only ASCII letters"),
        ("managedomains@a,b", "only ASCII letters"),
        ("managedomains@.example.com", "starts with a letter or digit"),
        ("invoices@example.com", "cannot be limited to single resources"),
        ("nosuch@example.com", "unknown permission"),
    ],
)
def test_bad_resource_ids_are_a_clear_400(api: Api, item: str, words: str) -> None:
    owner = api.signup("o@example.com")
    res = api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        api.token(owner),
        json={"email": "n@example.com", "permissions": [item]},
    )
    assert res.status_code == 400, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert words in res.json["detail"]
    assert "münchen" not in res.json["detail"]  # what was sent is not echoed


def test_too_many_resource_ids_are_a_400_and_a_whole_permission_covers_them(api: Api) -> None:
    owner = api.signup("o@example.com")
    url = f"/v1/areas/{owner.area_id}/invitations"
    many = [f"managedomains@d{n}.example" for n in range(101)]
    res = api.call(
        "POST", url, api.token(owner), json={"email": "n@example.com", "permissions": many}
    )
    assert res.status_code == 400 and "at most 100 resource ids" in res.json["detail"]
    res = api.call(
        "POST",
        url,
        api.token(owner),
        json={"email": "n@example.com", "permissions": many[:100]},
    )
    assert res.status_code == 201, res.text
    both = ["managedomains", "managedomains@example.com"]
    res = api.call(
        "POST", url, api.token(owner), json={"email": "x@example.com", "permissions": both}
    )
    assert res.status_code == 201, res.text
    assert res.json["invitation"]["permissions"] == ["managedomains"]


def test_resource_search_lists_the_domains_a_grant_names(api: Api) -> None:
    owner = api.signup("o@example.com")
    admin = api.link(
        owner, "dns@example.com", ["managedomains@example.com", "managedomains@example.net"]
    )
    whole = api.link(owner, "all-dns@example.com", ["managedomains"])

    def search(person: Person, action: str, area: str = owner.area_id) -> list[str]:
        res = api.call(
            "POST",
            "/access/v1/search/resource",
            api.service_token(),
            json={
                "subject": {"type": "user", "id": person.user_id},
                "action": {"name": action},
                "resource": {"type": "domain", "properties": {"area": area}},
            },
        )
        assert res.status_code == 200, res.text
        return [r["id"] for r in res.json["results"]]

    assert search(admin, "update") == ["example.com", "example.net"]
    assert search(admin, "transfer") == ["example.com", "example.net"]
    assert search(admin, "update", admin.area_id) == []  # another area: nothing there
    assert search(whole, "update") == []  # every domain: nothing to enumerate
    assert search(owner, "update") == []
