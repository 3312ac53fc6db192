"""One email address is one person, through the JSON API (issue 10, item 4)."""

from __future__ import annotations

from delegauth.storage.records import InvitationRecord, MailRecord
from tests.conftest import PASSWORD, Api, Person


def test_an_invitation_to_strasse_with_sharp_s_is_not_for_strasse_with_ss(api: Api) -> None:
    """Issue 10 item 4: this invitation was once mailed to, and accepted by, "strasse@"."""
    owner = api.signup("o@example.com")
    strasse = api.signup("strasse@example.com")
    inv = api.invite(owner, "STRAßE@example.com", ["invoices"])
    assert inv["email"] == "straße@example.com"
    with api.services.db.connection_context():
        assert [m.to for m in MailRecord.select().where(MailRecord.kind == "invitation")] == [
            "straße@example.com"
        ]
    token = api.mail_token("straße@example.com")
    listed = api.call("GET", "/v1/me/invitations", api.token(strasse))
    assert listed.json["invitations"] == []
    by_id = api.call("POST", f"/v1/invitations/{inv['id']}/accept", api.token(strasse))
    assert by_id.status_code == 403 and by_id.json["code"] == "wrong_account"
    by_link = api.call("POST", "/v1/invitations/accept", api.token(strasse), json={"token": token})
    assert by_link.status_code == 403
    assert not api.decide(strasse, owner.area_id, "invoice", "read")

    # The mailbox it was sent to can sign up through the link, and accept.
    res = api.call(
        "POST",
        "/v1/signup",
        json={"email": "Straße@Example.com", "password": PASSWORD, "invitation_token": token},
    )
    assert res.status_code == 201, res.text
    sharp = Person(res.json["user"]["id"], res.json["area"]["id"], "straße@example.com")
    assert sharp.user_id != strasse.user_id
    res = api.call("POST", "/v1/invitations/accept", api.token(sharp), json={"token": token})
    assert res.status_code == 201, res.text
    assert api.decide(sharp, owner.area_id, "invoice", "read")
    assert not api.decide(strasse, owner.area_id, "invoice", "read")


def test_inviting_a_refused_address_is_400_naming_the_field(api: Api) -> None:
    owner = api.signup("o@example.com")
    for email, code in [
        ("ＳＴＲＡＳＳＥ@example.com", "email_compatibility_characters"),
        ("\u212aelvin@example.com", "email_compatibility_characters"),
        ("p\u0430ypal@example.com", "email_confusable_scripts"),
    ]:
        res = api.call(
            "POST",
            f"/v1/areas/{owner.area_id}/invitations",
            api.token(owner),
            json={"email": email, "permissions": "all"},
        )
        assert res.status_code == 400, res.text
        assert res.headers["content-type"] == "application/problem+json"
        assert (res.json["field"], res.json["code"]) == ("email", code)
    with api.services.db.connection_context():
        assert InvitationRecord.select().count() == 0
