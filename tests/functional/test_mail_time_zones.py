"""Mail in the recipient's time zone, and invitations resent in the language chosen.

- The account keeps the time zone the browser last reported on signing in or up and on
  each signed-in page (the ``tz`` cookie), if zoneinfo knows it; /v1/me shows it.
- The expiry reminder, an invitation with an end (and its link's expiry) and an approval
  with an end state the time in the recipient's zone, named; UTC, named, when unknown.
- The language picked on the invite form (or given as ``language`` to the API) is kept
  on the invitation: a resend goes out in it (Content-Language, subject), whatever the
  invitee's or the inviter's own language.

Through HTTP against the in-process app and a real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from delegauth.storage.records import InvitationRecord, MailRecord, UserRecord
from tests.conftest import PASSWORD, Api, FrozenClock, Person
from tests.functional.test_access_requests import _answer, _ask_owner
from tests.functional.test_console_forms import Pages
from tests.functional.test_expiry import _invite, _wire


def _zone_of(api: Api, person: Person) -> str:
    with api.services.db.connection_context():
        return str(UserRecord.get_by_id(person.user_id).time_zone)


def _browse(api: Api, person: Person, zone: str, language: str = "en") -> Pages:
    """Signed in from a browser whose script reported ``zone``, one page loaded."""
    pages = Pages(api, language)
    pages.cookies["tz"] = zone
    pages.signin(person.email)
    assert pages.get(f"/areas/{person.area_id}").status_code == 200
    return pages


def _mails(api: Api, to: str, kind: str) -> list[MailRecord]:
    with api.services.db.connection_context():
        return list(
            MailRecord.select()
            .where((MailRecord.to == to) & (MailRecord.kind == kind))
            .order_by(MailRecord.id)
        )


def _shown(when: datetime, zone: str) -> str:
    local = when.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} ({zone})"


def test_the_account_keeps_the_zone_its_browser_reports(api: Api) -> None:
    d = api.signup("d@example.com")
    assert _zone_of(api, d) == ""
    assert api.call("GET", "/v1/me", api.token(d)).json["user"]["time_zone"] is None
    pages = _browse(api, d, "Europe%2FMadrid")  # as the script writes it, URL-encoded
    assert _zone_of(api, d) == "Europe/Madrid"
    assert api.call("GET", "/v1/me", api.token(d)).json["user"]["time_zone"] == "Europe/Madrid"
    # A name zoneinfo does not know, or none, changes nothing.
    for unknown in ("Mars/Olympus_Mons", "../../etc/passwd", "Europe/Madrid" + "x" * 80):
        pages.cookies["tz"] = unknown
        assert pages.get(f"/areas/{d.area_id}").status_code == 200
        assert _zone_of(api, d) == "Europe/Madrid"
    # A move is followed.
    pages.cookies["tz"] = "America/New_York"
    pages.get("/invitations")
    assert _zone_of(api, d) == "America/New_York"
    # Signed out, nothing is stored for anyone.
    stranger = Pages(api)
    stranger.cookies["tz"] = "Asia/Tokyo"
    stranger.get("/signin")
    assert _zone_of(api, d) == "America/New_York"


def test_signing_in_or_up_keeps_the_zone_before_any_other_page(api: Api) -> None:
    d = api.signup("d@example.com")
    pages = Pages(api)
    pages.cookies["tz"] = "Pacific/Auckland"
    pages.signin(d.email)  # the post alone: it may lead straight back to an OAuth client
    assert _zone_of(api, d) == "Pacific/Auckland"
    newcomer = Pages(api)
    newcomer.cookies["tz"] = "Africa/Nairobi"
    res = newcomer.post(
        "/signup",
        [
            ("csrf", newcomer.csrf("/signup")),
            ("name", "Nia"),
            ("email", "nia@example.com"),
            ("password", PASSWORD),
        ],
    )
    assert res.status_code == 303, res.text
    with api.services.db.connection_context():
        stored = UserRecord.get(UserRecord.email == "nia@example.com").time_zone
    assert stored == "Africa/Nairobi"


@pytest.mark.parametrize(
    ("language", "words"),
    [("en", ("ends on", "Your access to")), ("es", ("termina el", "Tu acceso a"))],
)
def test_the_reminder_states_the_end_in_the_delegates_zone(
    api: Api, clock: FrozenClock, language: str, words: tuple[str, str]
) -> None:
    owner = api.signup("o@example.com")
    d = api.signup("d@example.com", locale=language)
    _browse(api, d, "Asia/Kolkata", language)  # +05:30: no whole-hour accident
    until = (clock() + timedelta(days=1)).replace(microsecond=0)
    res = _invite(api, owner, d.email, _wire(until))
    invitation = res.json["invitation"]["id"]
    accepted = api.call("POST", f"/v1/invitations/{invitation}/accept", api.token(d))
    assert accepted.status_code == 201
    assert api.services.expiry.run_once() == (1, 0)
    [mail] = _mails(api, d.email, "grant_ending")
    ends_on, subject = words
    assert f"{ends_on} {_shown(until, 'Asia/Kolkata')}" in mail.text
    assert mail.subject.startswith(subject) and "(Asia/Kolkata)" in mail.subject
    assert "UTC" not in mail.text


def test_without_a_known_zone_the_reminder_says_utc(api: Api, clock: FrozenClock) -> None:
    owner = api.signup("o@example.com")
    d = api.signup("d@example.com")
    until = (clock() + timedelta(days=2)).replace(microsecond=0)
    res = _invite(api, owner, d.email, _wire(until))
    api.call("POST", f"/v1/invitations/{res.json['invitation']['id']}/accept", api.token(d))
    api.services.expiry.run_once()
    [mail] = _mails(api, d.email, "grant_ending")
    assert f"ends on {until:%Y-%m-%d %H:%M} (UTC)" in mail.text


def test_an_invitation_with_an_end_is_written_in_the_invitees_zone(
    api: Api, clock: FrozenClock
) -> None:
    owner = api.signup("o@example.com")
    known = api.signup("k@example.com")
    _browse(api, known, "America/Sao_Paulo")
    until = (clock() + timedelta(days=20)).replace(microsecond=0)
    for email, zone in (("k@example.com", "America/Sao_Paulo"), ("new@example.com", "UTC")):
        res = _invite(api, owner, email, _wire(until))
        assert res.status_code == 201, res.text
        [mail] = _mails(api, email, "invitation")
        expires = datetime.fromisoformat(res.json["invitation"]["expires_at"].rstrip("Z"))
        if zone == "UTC":
            assert f"The access ends on {until:%Y-%m-%d %H:%M} (UTC)." in mail.text
            assert f"The link expires on {expires:%Y-%m-%d %H:%M} (UTC)." in mail.text
        else:
            assert f"The access ends on {_shown(until, zone)}." in mail.text
            assert f"The link expires on {_shown(expires, zone)}." in mail.text
    # Without an end, the mail says nothing about one.
    _invite(api, owner, "forever@example.com", None)
    [mail] = _mails(api, "forever@example.com", "invitation")
    assert "access ends" not in mail.text


@pytest.mark.parametrize(
    ("language", "sentence"),
    [("en", "This access ends on {}."), ("es", "Este acceso termina el {}.")],
)
def test_an_approval_with_an_end_is_written_in_the_requesters_zone(
    api: Api, clock: FrozenClock, language: str, sentence: str
) -> None:
    owner = api.signup("o@example.com")
    asker = api.signup("s@example.com", locale=language)
    _browse(api, asker, "Australia/Adelaide", language)
    res = _ask_owner(api, asker, owner.email, ["invoices"])
    assert res.status_code == 202, res.text
    request_id = res.json["task"]["id"]
    until = (clock() + timedelta(days=4)).replace(microsecond=0)
    res = _answer(api, owner, owner.area_id, request_id, "approve", {"valid_until": _wire(until)})
    assert res.status_code == 200, res.text
    [mail] = _mails(api, asker.email, "access_request_answer")
    assert sentence.format(_shown(until, "Australia/Adelaide")) in mail.text


# -- the invitation's language, kept for resends -----------------------------------------


def _headers(mail: MailRecord) -> dict[str, Any]:
    return dict(json.loads(str(mail.headers)))


def _stored_language(api: Api, email: str) -> str:
    with api.services.db.connection_context():
        return str(InvitationRecord.get(InvitationRecord.email == email).mail_locale)


@pytest.mark.parametrize(("chosen", "other"), [("es", "en"), ("en", "es")])
def test_a_resend_from_the_pages_keeps_the_language_chosen(
    api: Api, chosen: str, other: str
) -> None:
    owner = api.signup("o@example.com", name="Olivia", locale=other)
    api.signup("d@example.com", locale=other)  # the invitee reads ``other`` too
    pages = Pages(api, other)
    pages.signin(owner.email)
    invite = f"/areas/{owner.area_id}/users/invite"
    res = pages.post(
        invite,
        [
            ("csrf", pages.csrf(invite)),
            ("email", "d@example.com"),
            ("language", chosen),
            ("access", "all"),
        ],
    )
    assert res.status_code == 303, res.text
    assert _stored_language(api, "d@example.com") == chosen
    [inv] = api.call("GET", f"/v1/areas/{owner.area_id}/invitations", api.token(owner)).json[
        "invitations"
    ]
    assert inv["language"] == chosen
    users = f"/areas/{owner.area_id}/users"
    res = pages.post(
        f"/areas/{owner.area_id}/invitations/{inv['id']}/resend", [("csrf", pages.csrf(users))]
    )
    assert res.status_code == 303, res.text
    first, resent = _mails(api, "d@example.com", "invitation")
    subject = {
        "en": "Invitation to manage the Client Area “Olivia”",
        "es": "Invitación para gestionar el Área de Cliente «Olivia»",
    }[chosen]
    for mail in (first, resent):
        assert _headers(mail)["Content-Language"] == chosen
        assert mail.subject == subject


def test_the_api_takes_the_language_and_a_resend_keeps_it(api: Api) -> None:
    owner = api.signup("o@example.com")
    token = api.token(owner)
    path = f"/v1/areas/{owner.area_id}/invitations"
    res = api.call(
        "POST", path, token, json={"email": "d@example.com", "permissions": "all", "language": "xx"}
    )
    assert res.status_code == 400 and res.json["field"] == "language"
    res = api.call(
        "POST", path, token, json={"email": "d@example.com", "permissions": "all", "language": "es"}
    )
    assert res.status_code == 201 and res.json["invitation"]["language"] == "es"
    inv = res.json["invitation"]["id"]
    # Inviting again without a language keeps the one chosen; a resend uses it.
    res = api.call(
        "POST", path, token, json={"email": "d@example.com", "permissions": ["invoices"]}
    )
    assert res.status_code == 200 and res.json["invitation"]["language"] == "es"
    assert api.call("POST", f"{path}/{inv}/resend", token).status_code == 200
    mails = _mails(api, "d@example.com", "invitation")
    assert len(mails) == 3
    assert all(_headers(m)["Content-Language"] == "es" for m in mails)
    # None chosen: the invitee's own language if they have an account, else the inviter's.
    api.signup("e@example.com", locale="es")
    res = api.call("POST", path, token, json={"email": "e@example.com", "permissions": "all"})
    assert res.json["invitation"]["language"] is None
    inv = res.json["invitation"]["id"]
    assert api.call("POST", f"{path}/{inv}/resend", token).status_code == 200
    assert [
        _headers(m)["Content-Language"] for m in _mails(api, "e@example.com", "invitation")
    ] == [
        "es",
        "es",
    ]
