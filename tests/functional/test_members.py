"""Members after acceptance: list, change, remove, leave; no escalation; audit."""

from __future__ import annotations

from delegauth.storage.records import CasbinRuleRecord, ChangeRecord, GrantRecord
from tests.conftest import Api


def _members(api: Api, owner, as_person=None):  # type: ignore[no-untyped-def]
    who = as_person or owner
    res = api.call("GET", f"/v1/areas/{owner.area_id}/members", api.token(who, owner.area_id))
    assert res.status_code == 200, res.text
    return res.json["members"]


def test_owner_listed_first_and_marked(api: Api) -> None:
    owner = api.signup("o@example.com", name="Olivia")
    d1 = api.link(owner, "d1@example.com", ["tickets"])
    d2 = api.link(owner, "d2@example.com", "all")
    members = _members(api, owner)
    assert [m["user"]["id"] for m in members] == [owner.user_id, d1.user_id, d2.user_id]
    assert members[0]["owner"] is True and members[0]["role"] == "owner"
    assert members[0]["permissions"] == "all"
    assert members[1]["permissions"] == ["tickets"] and members[2]["permissions"] == "all"


def test_change_permissions_takes_effect_in_decisions_at_once(api: Api) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", ["invoices"])
    assert api.decide(d, owner.area_id, "invoice", "read")
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{d.user_id}",
        api.token(owner),
        json={"permissions": ["domains"]},
    )
    assert res.status_code == 200, res.text
    assert res.json["member"]["permissions"] == ["domains"]
    assert isinstance(res.json["policy_version"], int)
    assert not api.decide(d, owner.area_id, "invoice", "read")
    assert api.decide(d, owner.area_id, "domain", "read")
    # Casbin rules mirror the grant exactly.
    with api.services.db.connection_context():
        rules = sorted(
            (r.v0, r.v1, r.v2)
            for r in CasbinRuleRecord.select().where(
                CasbinRuleRecord.v0 == f"user:{d.user_id}",
                CasbinRuleRecord.v2 == f"area:{owner.area_id}",
            )
        )
    assert rules == [(f"user:{d.user_id}", "perm:domains", f"area:{owner.area_id}")]


def test_all_covers_permissions_added_later(api: Api) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", "all")
    assert api.decide(d, owner.area_id, "order", "create")
    with api.services.db.connection_context():
        rules = [
            (r.v1)
            for r in CasbinRuleRecord.select().where(
                CasbinRuleRecord.v0 == f"user:{d.user_id}",
                CasbinRuleRecord.v2 == f"area:{owner.area_id}",
            )
        ]
    assert rules == ["perm:all"]  # one rule, not a copy of today's list


def test_remove_takes_effect_at_once_and_writes_everything(api: Api) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", "all")
    assert api.decide(d, owner.area_id, "invoice", "pay")
    res = api.call("DELETE", f"/v1/areas/{owner.area_id}/members/{d.user_id}", api.token(owner))
    assert res.status_code == 200
    assert not api.decide(d, owner.area_id, "invoice", "pay")
    with api.services.db.connection_context():
        assert (
            not GrantRecord.select()
            .where((GrantRecord.user_id == d.user_id) & (GrantRecord.area_id == owner.area_id))
            .exists()
        )
        assert (
            not CasbinRuleRecord.select()
            .where(
                (CasbinRuleRecord.v0 == f"user:{d.user_id}")
                & (CasbinRuleRecord.v2 == f"area:{owner.area_id}")
            )
            .exists()
        )
        last = ChangeRecord.select().order_by(ChangeRecord.version.desc()).get()
        assert (last.subject, last.roles) == (f"user:{d.user_id}", "[]")
    assert [m["user"]["id"] for m in _members(api, owner)] == [owner.user_id]
    assert (
        api.call(
            "DELETE", f"/v1/areas/{owner.area_id}/members/{d.user_id}", api.token(owner)
        ).status_code
        == 404
    )


def test_owner_can_be_neither_changed_nor_removed(api: Api) -> None:
    owner = api.signup("o@example.com")
    path = f"/v1/areas/{owner.area_id}/members/{owner.user_id}"
    assert (
        api.call("PATCH", path, api.token(owner), json={"permissions": ["tickets"]}).status_code
        == 403
    )
    assert api.call("DELETE", path, api.token(owner)).status_code == 403
    manager = api.link(owner, "m@example.com", "all")
    token = api.token(manager, owner.area_id)
    assert api.call("PATCH", path, token, json={"permissions": ["tickets"]}).status_code == 403
    assert api.call("DELETE", path, token).status_code == 403
    assert api.decide(owner, owner.area_id, "invoice", "pay")


def test_delegate_may_leave(api: Api) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    res = api.call(
        "DELETE", f"/v1/areas/{owner.area_id}/members/{d.user_id}", api.token(d, owner.area_id)
    )
    assert res.status_code == 200
    assert not api.decide(d, owner.area_id, "ticket", "read")
    audit = api.call("GET", f"/v1/areas/{owner.area_id}/audit", api.token(owner)).json["events"]
    assert audit[0]["action"] == "grant.left"


def test_delegate_without_users_permission_cannot_manage(api: Api) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", ["tickets", "invoices"])
    token = api.token(d, owner.area_id)
    base = f"/v1/areas/{owner.area_id}"
    assert api.call("GET", base + "/members", token).status_code == 403
    assert (
        api.call(
            "POST",
            base + "/invitations",
            token,
            json={"email": "x@example.com", "permissions": ["tickets"]},
        ).status_code
        == 403
    )
    assert api.call("GET", base + "/audit", token).status_code == 403


def test_delegate_manager_cannot_escalate(api: Api) -> None:
    owner = api.signup("o@example.com")
    other = api.link(owner, "big@example.com", ["tickets", "domains", "invoices"])
    small = api.link(owner, "small@example.com", ["tickets"])
    mgr = api.link(owner, "mgr@example.com", ["users", "invoices", "tickets"])
    token = api.token(mgr, owner.area_id)
    base = f"/v1/areas/{owner.area_id}"

    # Inviting within what they hold works; anything beyond is refused.
    ok = api.call(
        "POST",
        base + "/invitations",
        token,
        json={"email": "n1@example.com", "permissions": ["invoices"]},
    )
    assert ok.status_code == 201
    for perms in (["domains"], ["invoices", "domains"], "all"):
        res = api.call(
            "POST",
            base + "/invitations",
            token,
            json={"email": "n2@example.com", "permissions": perms},
        )
        assert res.status_code == 403, perms
        assert res.json["code"] == "escalation"
    # Editing a pending invitation beyond what they hold.
    inv_id = ok.json["invitation"]["id"]
    res = api.call("PATCH", f"{base}/invitations/{inv_id}", token, json={"permissions": "all"})
    assert res.status_code == 403
    # Raising a member above what they hold, or touching a member who holds more.
    res = api.call(
        "PATCH",
        f"{base}/members/{small.user_id}",
        token,
        json={"permissions": ["tickets", "domains"]},
    )
    assert res.status_code == 403
    res = api.call(
        "PATCH", f"{base}/members/{other.user_id}", token, json={"permissions": ["tickets"]}
    )
    assert res.status_code == 403
    assert api.call("DELETE", f"{base}/members/{other.user_id}", token).status_code == 403
    # Raising themselves.
    res = api.call("PATCH", f"{base}/members/{mgr.user_id}", token, json={"permissions": "all"})
    assert res.status_code == 403
    # Within bounds is fine.
    res = api.call(
        "PATCH",
        f"{base}/members/{small.user_id}",
        token,
        json={"permissions": ["tickets", "invoices"]},
    )
    assert res.status_code == 200
    assert api.decide(small, owner.area_id, "invoice", "read")
    assert not api.decide(small, owner.area_id, "domain", "read")
    assert not api.decide(mgr, owner.area_id, "domain", "read")


def test_member_ids_of_another_area_are_404(api: Api) -> None:
    alice = api.signup("alice@example.com")
    bob = api.signup("bob@example.com")
    d = api.link(alice, "d@example.com", ["tickets"])
    path = f"/v1/areas/{bob.area_id}/members/{d.user_id}"
    assert api.call("PATCH", path, api.token(bob), json={"permissions": "all"}).status_code == 404
    assert api.call("DELETE", path, api.token(bob)).status_code == 404
    assert api.call("GET", f"/v1/areas/{alice.area_id}/members", api.token(bob)).status_code == 404
    assert api.call("GET", f"/v1/areas/{alice.area_id}/audit", api.token(bob)).status_code == 404
    assert (
        api.call("DELETE", f"/v1/areas/{bob.area_id}/members/not-an-id", api.token(bob)).status_code
        == 404
    )
    assert api.decide(d, alice.area_id, "ticket", "read")


def test_audit_is_paged_newest_first(api: Api) -> None:
    owner = api.signup("o@example.com")
    for i in range(5):
        api.invite(owner, f"x{i}@example.com", ["tickets"])
    base = f"/v1/areas/{owner.area_id}/audit"
    page1 = api.call("GET", base + "?limit=3", api.token(owner)).json
    assert [e["action"] for e in page1["events"]] == ["invitation.created"] * 3
    assert page1["events"][0]["after"]["email"] == "x4@example.com"
    assert page1["events"][0]["actor"] == owner.user_id
    page2 = api.call("GET", f"{base}?limit=3&before={page1['next_before']}", api.token(owner)).json
    assert [e["action"] for e in page2["events"]] == [
        "invitation.created",
        "invitation.created",
        "area.created",
    ]
    assert page2["next_before"] is not None
    page3 = api.call("GET", f"{base}?limit=3&before={page2['next_before']}", api.token(owner)).json
    assert page3["events"] == [] and page3["next_before"] is None
    assert api.call("GET", base + "?limit=0", api.token(owner)).status_code == 400
    assert api.call("GET", base + "?limit=abc", api.token(owner)).status_code == 400


def test_audit_records_before_and_after(api: Api) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{d.user_id}",
        api.token(owner),
        json={"permissions": ["invoices"]},
    )
    events = api.call("GET", f"/v1/areas/{owner.area_id}/audit", api.token(owner)).json["events"]
    change = events[0]
    assert change["action"] == "grant.updated"
    assert change["before"]["permissions"] == ["tickets"]
    assert change["after"]["permissions"] == ["invoices"]
    assert change["target"] == f"user:{d.user_id}"
    assert change["policy_hash"] == api.services.decider.policy_hash
    assert change["policy_hash"].startswith("sha256:")
    assert "policy_version" not in change  # that name is the change log's version
