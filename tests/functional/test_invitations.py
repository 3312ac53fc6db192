"""The invitation lifecycle: invite, re-invite, edit, resend, cancel, accept, decline."""

from __future__ import annotations

import threading

import jsonschema
import pytest

from delegauth.storage.records import AuditRecord, GrantRecord, InvitationRecord, MailRecord
from tests.conftest import PASSWORD, Api, FrozenClock


def test_invite_queues_mail_and_reinvite_updates_and_resends(api: Api) -> None:
    owner = api.signup("owner@example.com", name="Olivia")
    res = api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        api.token(owner),
        json={"email": "Dev@Example.com", "permissions": ["invoices", "tickets"]},
    )
    assert res.status_code == 201, res.text
    inv = res.json["invitation"]
    assert inv["email"] == "dev@example.com"
    assert inv["permissions"] == ["invoices", "tickets"]
    assert "token" not in inv and "token_hash" not in inv
    mail = api.last_mail("dev@example.com")
    assert mail.kind == "invitation"
    assert "Olivia" in mail.subject and "View and pay invoices" in mail.text
    first_token = api.mail_token("dev@example.com")

    again = api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        api.token(owner),
        json={"email": "dev@EXAMPLE.com", "permissions": "all"},
    )
    assert again.status_code == 200
    assert again.json["invitation"]["id"] == inv["id"]
    assert again.json["invitation"]["permissions"] == "all"
    assert again.json["invitation"]["sends"] == 2
    assert api.mail_token("dev@example.com") != first_token

    # The first link died with the resend.
    invitee = api.signup("dev@example.com")
    res = api.call(
        "POST", "/v1/invitations/accept", api.token(invitee), json={"token": first_token}
    )
    assert res.status_code == 400

    listing = api.call("GET", f"/v1/areas/{owner.area_id}/invitations", api.token(owner))
    assert [i["id"] for i in listing.json["invitations"]] == [inv["id"]]


def test_unknown_permission_is_400(api: Api) -> None:
    owner = api.signup("o@example.com")
    for perms in (["invoices", "nukes"], [], "everything", None, [1], ["perm:all"], ["*"]):
        res = api.call(
            "POST",
            f"/v1/areas/{owner.area_id}/invitations",
            api.token(owner),
            json={"email": "x@example.com", "permissions": perms},
        )
        assert res.status_code == 400, perms
    with api.services.db.connection_context():
        assert InvitationRecord.select().count() == 0
        assert MailRecord.select().where(MailRecord.kind == "invitation").count() == 0


def test_inviting_a_member_is_409(api: Api) -> None:
    owner = api.signup("o@example.com")
    api.link(owner, "m@example.com", ["tickets"])
    for email in ("m@example.com", "o@example.com"):
        res = api.call(
            "POST",
            f"/v1/areas/{owner.area_id}/invitations",
            api.token(owner),
            json={"email": email, "permissions": "all"},
        )
        assert res.status_code == 409
        assert res.json["code"] == "already_member"


def test_edit_resend_cancel(api: Api) -> None:
    owner = api.signup("o@example.com")
    inv = api.invite(owner, "x@example.com", ["tickets"])
    base = f"/v1/areas/{owner.area_id}/invitations/{inv['id']}"
    res = api.call("PATCH", base, api.token(owner), json={"permissions": ["invoices"]})
    assert res.status_code == 200 and res.json["invitation"]["permissions"] == ["invoices"]
    old = api.mail_token("x@example.com")
    res = api.call("POST", base + "/resend", api.token(owner))
    assert res.status_code == 200 and res.json["invitation"]["sends"] == 2
    assert api.mail_token("x@example.com") != old
    res = api.call("DELETE", base, api.token(owner))
    assert res.status_code == 200 and res.json["invitation"]["status"] == "cancelled"
    assert api.call("DELETE", base, api.token(owner)).status_code == 409
    assert api.call("PATCH", base, api.token(owner), json={"permissions": "all"}).status_code == 409
    listing = api.call("GET", f"/v1/areas/{owner.area_id}/invitations", api.token(owner))
    assert listing.json["invitations"] == []


def test_invitee_lists_and_accepts_by_id(api: Api) -> None:
    owner = api.signup("o@example.com", name="Olivia")
    invitee = api.signup("i@example.com")
    inv = api.invite(owner, "I@example.com", ["invoices"])
    mine = api.call("GET", "/v1/me/invitations", api.token(invitee))
    assert [i["id"] for i in mine.json["invitations"]] == [inv["id"]]
    assert mine.json["invitations"][0]["area_name"] == "Olivia"

    assert not api.decide(invitee, owner.area_id, "invoice", "read")
    res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(invitee))
    assert res.status_code == 201, res.text
    assert res.json["grant"]["permissions"] == ["invoices"]
    assert api.decide(invitee, owner.area_id, "invoice", "pay")
    assert not api.decide(invitee, owner.area_id, "domain", "read")

    again = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(invitee))
    assert again.status_code == 409
    me = api.call("GET", "/v1/me", api.token(invitee))
    assert [(a["id"], a["role"]) for a in me.json["areas"]] == [
        (invitee.area_id, "owner"),
        (owner.area_id, "delegate"),
    ]


def test_unverified_invitee_sees_nothing_and_cannot_accept(api: Api) -> None:
    owner = api.signup("o@example.com")
    invitee = api.signup("i@example.com", verify=False)
    inv = api.invite(owner, "i@example.com")
    assert api.call("GET", "/v1/me/invitations", api.token(invitee)).json["invitations"] == []
    res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(invitee))
    assert res.status_code == 403


def test_wrong_account_gets_403_and_invitation_stays_pending(api: Api) -> None:
    owner = api.signup("o@example.com")
    api.signup("i@example.com")
    mallory = api.signup("mallory@example.com")
    inv = api.invite(owner, "i@example.com")
    token = api.mail_token("i@example.com")
    res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(mallory))
    assert res.status_code == 403
    res = api.call("POST", "/v1/invitations/accept", api.token(mallory), json={"token": token})
    assert res.status_code == 403
    res = api.call("POST", f"/v1/invitations/{inv['id']}/decline", api.token(mallory))
    assert res.status_code == 403
    with api.services.db.connection_context():
        assert InvitationRecord.get_by_id(inv["id"]).status == "pending"
        assert GrantRecord.select().where(GrantRecord.user_id == mallory.user_id).count() == 1
    assert not api.decide(mallory, owner.area_id, "invoice", "read")


def test_accept_by_emailed_token_is_single_use(api: Api) -> None:
    owner = api.signup("o@example.com")
    invitee = api.signup("i@example.com")
    api.invite(owner, "i@example.com", ["tickets"])
    token = api.mail_token("i@example.com")
    res = api.call("POST", "/v1/invitations/accept", api.token(invitee), json={"token": token})
    assert res.status_code == 201
    assert api.decide(invitee, owner.area_id, "ticket", "reply")
    reuse = api.call("POST", "/v1/invitations/accept", api.token(invitee), json={"token": token})
    assert reuse.status_code == 400
    for bad in ({"token": ""}, {"token": 5}, {}, {"token": "A" * 43}):
        assert (
            api.call("POST", "/v1/invitations/accept", api.token(invitee), json=bad).status_code
            == 400
        )


def test_expired_invitation_cannot_be_accepted(api: Api, clock) -> None:
    owner = api.signup("o@example.com")
    invitee = api.signup("i@example.com")
    inv = api.invite(owner, "i@example.com")
    clock.advance(days=7, seconds=1)
    res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(invitee))
    assert res.status_code == 409
    with api.services.db.connection_context():
        assert InvitationRecord.get_by_id(inv["id"]).status == "expired"
    assert api.call("GET", "/v1/me/invitations", api.token(invitee)).json["invitations"] == []
    # Inviting again makes a fresh pending invitation.
    again = api.invite(owner, "i@example.com")
    assert again["id"] != inv["id"] and again["status"] == "pending"


def test_decline(api: Api) -> None:
    owner = api.signup("o@example.com")
    invitee = api.signup("i@example.com")
    inv = api.invite(owner, "i@example.com")
    res = api.call("POST", f"/v1/invitations/{inv['id']}/decline", api.token(invitee))
    assert res.status_code == 200 and res.json["invitation"]["status"] == "declined"
    res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(invitee))
    assert res.status_code == 409


def test_unregistered_invitee_signs_up_with_the_token(api: Api) -> None:
    owner = api.signup("o@example.com")
    api.invite(owner, "new@example.com", ["domains"])
    token = api.mail_token("new@example.com")
    res = api.call(
        "POST",
        "/v1/signup",
        json={"email": "NEW@example.com", "password": PASSWORD, "invitation_token": token},
    )
    assert res.status_code == 201, res.text
    assert res.json["user"]["email_verified"] is True
    with api.services.db.connection_context():
        assert MailRecord.select().where(MailRecord.kind == "verification").count() == 1  # owner's
    from tests.conftest import Person

    newbie = Person(res.json["user"]["id"], res.json["area"]["id"], "new@example.com")
    res = api.call("POST", "/v1/invitations/accept", api.token(newbie), json={"token": token})
    assert res.status_code == 201
    assert api.decide(newbie, owner.area_id, "domain", "read")


def test_signup_with_someone_elses_invitation_token_is_refused(api: Api) -> None:
    owner = api.signup("o@example.com")
    api.invite(owner, "target@example.com")
    token = api.mail_token("target@example.com")
    res = api.call(
        "POST",
        "/v1/signup",
        json={"email": "other@example.com", "password": PASSWORD, "invitation_token": token},
    )
    assert res.status_code == 403
    res = api.call(
        "POST",
        "/v1/signup",
        json={"email": "other@example.com", "password": PASSWORD, "invitation_token": "nope"},
    )
    assert res.status_code == 400
    from delegauth.storage.records import UserRecord

    with api.services.db.connection_context():
        assert UserRecord.select().where(UserRecord.email == "other@example.com").count() == 0


def test_invitation_ids_of_another_area_are_404(api: Api) -> None:
    alice = api.signup("alice@example.com")
    bob = api.signup("bob@example.com")
    inv = api.invite(alice, "x@example.com")
    base = f"/v1/areas/{bob.area_id}/invitations/{inv['id']}"
    assert api.call("PATCH", base, api.token(bob), json={"permissions": "all"}).status_code == 404
    assert api.call("DELETE", base, api.token(bob)).status_code == 404
    assert api.call("POST", base + "/resend", api.token(bob)).status_code == 404
    # Alice's own area through Bob's token: the area does not exist for him.
    alice_base = f"/v1/areas/{alice.area_id}/invitations"
    assert api.call("GET", alice_base, api.token(bob)).status_code == 404
    assert (
        api.call(
            "POST",
            alice_base,
            api.token(bob),
            json={"email": "y@example.com", "permissions": "all"},
        ).status_code
        == 404
    )
    # A token for Alice's area held by Bob (who is not a member) is also 404.
    assert api.call("GET", alice_base, api.token(bob, alice.area_id)).status_code == 404
    with api.services.db.connection_context():
        assert InvitationRecord.get_by_id(inv["id"]).status == "pending"


@pytest.mark.parametrize("n", [4])
def test_concurrent_accepts_create_exactly_one_grant(api: Api, n: int) -> None:
    owner = api.signup("o@example.com")
    invitee = api.signup("i@example.com")
    inv = api.invite(owner, "i@example.com")
    token = api.token(invitee)
    barrier = threading.Barrier(n)
    codes: list[int] = []

    def accept() -> None:
        barrier.wait()
        res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", token)
        codes.append(res.status_code)

    threads = [threading.Thread(target=accept) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes).count(201) == 1, codes
    assert all(c in (201, 409) for c in codes), codes
    with api.services.db.connection_context():
        grants = GrantRecord.select().where(
            (GrantRecord.area_id == owner.area_id) & (GrantRecord.user_id == invitee.user_id)
        )
        assert grants.count() == 1
        accepted = AuditRecord.select().where(AuditRecord.action == "invitation.accepted")
        assert accepted.count() == 1


def test_a_bundle_grants_its_permissions_in_one_click(api: Api) -> None:
    owner = api.signup("o@example.com")
    inv = api.invite(owner, "b@example.com", ["bundle:billing", "tickets"])
    assert inv["permissions"] == ["affiliates", "invoices", "quotes", "tickets"]
    res = api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        api.token(owner),
        json={"email": "c@example.com", "permissions": ["bundle:nope"]},
    )
    assert res.status_code == 400 and res.json["code"] == "unknown_permission"
    catalogue = api.call("GET", "/v1/permissions?lang=es").json
    billing = {b["name"]: b for b in catalogue["bundles"]}["billing"]
    assert billing["label"] == "Facturación" and billing["grant_as"] == "bundle:billing"


def _check_documented(api: Api, route: str, body: object) -> None:
    """The body matches the 201 response /openapi.json documents for the route."""
    doc = api.call("GET", "/openapi.json").json

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            target = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    response = resolve(doc["paths"][route]["post"]["responses"]["201"])
    schema = response["content"]["application/json"]["schema"]
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; their $refs point into the document.
    root = {"components": doc.get("components", {}), "allOf": [schema]}
    jsonschema.Draft202012Validator(root).validate(body)
    assert "policy_version" in resolve(schema)["required"]


@pytest.mark.parametrize("how", ["by id", "by emailed token"])
def test_accept_returns_the_policy_version_a_replica_waits_for(
    api: Api, clock: FrozenClock, how: str
) -> None:
    """Accepting is a grant write: its policy_version is a consistency token like the others."""
    from delegauth.api.app import build_services
    from delegauth.passwords import Argon2Hasher

    owner = api.signup("o@example.com")
    invitee = api.signup("i@example.com")
    inv = api.invite(owner, "i@example.com", ["invoices"])
    # A second process's view of the database, with no follower: it loads the area now
    # and hears of the accept only when a caller's token makes it catch up.
    other = build_services(
        api.services.settings,
        db=api.services.db,
        clock=clock,
        keys=api.services.keys,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    try:
        replica = Api(other)
        assert not replica.decide(invitee, owner.area_id, "invoice", "pay")
        if how == "by id":
            res = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(invitee))
        else:
            token = api.mail_token("i@example.com")
            res = api.call(
                "POST", "/v1/invitations/accept", api.token(invitee), json={"token": token}
            )
        assert res.status_code == 201, res.text
        route = (
            "/v1/invitations/{invitation_id}/accept" if how == "by id" else "/v1/invitations/accept"
        )
        _check_documented(api, route, res.json)
        version = res.json["policy_version"]
        assert isinstance(version, int) and version > 0
        assert not replica.decide(invitee, owner.area_id, "invoice", "pay")  # stale, as feared
        fresh = replica.call(
            "POST",
            "/access/v1/evaluation",
            replica.service_token(),
            json={
                "subject": {"type": "user", "id": invitee.user_id},
                "action": {"name": "pay"},
                "resource": {"type": "invoice", "id": "1", "properties": {"area": owner.area_id}},
                "context": {"policy_version": version},
            },
        )
        assert fresh.status_code == 200 and fresh.json == {"decision": True}, fresh.text
    finally:
        other.close()
