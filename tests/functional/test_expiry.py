"""Grants that end ("access until"), through the JSON API and the token endpoint, with the
clock under test control: decisions deny at the exact instant while the decision index and
the token cache are warm, refresh stops, access tokens never outlive the grant, the owner
extends, and bad values are a clear 400."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest

from delegauth.errors import Unauthenticated
from delegauth.storage.records import CasbinRuleRecord, ChangeRecord, GrantRecord, MailRecord
from delegauth.tokens import LEEWAY_SECONDS
from tests.conftest import Api, Person
from tests.functional.test_oauth_lifetimes import REDIRECT, VERIFIER, _client, _code, _token


def _wire(when: datetime) -> str:
    return when.isoformat() + "Z"


def _end(clock: Any, **delta: float) -> datetime:
    return (clock() + timedelta(**delta)).replace(microsecond=0)


def _invite(api: Api, owner: Person, email: str, until: object, **extra: Any) -> Any:
    return api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        api.token(owner),
        json={"email": email, "permissions": ["invoices"], "valid_until": until, **extra},
    )


def _delegate_until(api: Api, owner: Person, email: str, until: datetime) -> Person:
    invitee = api.signup(email)
    res = _invite(api, owner, email, _wire(until))
    assert res.status_code == 201, res.text
    assert res.json["invitation"]["valid_until"] == _wire(until)
    res = api.call(
        "POST", f"/v1/invitations/{res.json['invitation']['id']}/accept", api.token(invitee)
    )
    assert res.status_code == 201, res.text
    return invitee


def _change(api: Api, owner: Person, who: Person, body: dict[str, Any]) -> Any:
    return api.call(
        "PATCH", f"/v1/areas/{owner.area_id}/members/{who.user_id}", api.token(owner), json=body
    )


def test_decisions_deny_at_the_exact_instant_with_the_index_warm(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com")
    until = _end(clock, days=3)
    d = _delegate_until(api, owner, "d@example.com", until)
    other = api.link(owner, "x@example.com", ["invoices"])
    with api.services.db.connection_context():
        row = GrantRecord.get(
            (GrantRecord.user_id == d.user_id) & (GrantRecord.area_id == owner.area_id)
        )
        rule = CasbinRuleRecord.get(
            (CasbinRuleRecord.v0 == f"user:{d.user_id}")
            & (CasbinRuleRecord.v2 == f"area:{owner.area_id}")
        )
    assert row.valid_until == until
    assert (rule.v1, rule.v3) == ("perm:invoices", until.strftime("%Y-%m-%dT%H:%M:%SZ"))
    clock.now = until - timedelta(microseconds=1)
    for _ in range(2):  # the area is loaded and the answer memoized
        assert api.decide(d, owner.area_id, "invoice", "read")
    changes = api.services.decider.applied_version
    clock.now = until
    assert not api.decide(d, owner.area_id, "invoice", "read")
    assert api.decide(other, owner.area_id, "invoice", "read")
    # No sweep and no change-log entry was needed for it.
    assert api.services.decider.applied_version == changes
    with api.services.db.connection_context():
        assert ChangeRecord.select().where(ChangeRecord.version > changes).count() == 0


def test_an_ended_grant_is_no_area_of_the_delegate(api: Api, clock: Any) -> None:
    """The area chooser, the pages and /v1/me list only areas the user can still act in."""
    owner = api.signup("o@example.com")
    until = _end(clock, days=1)
    d = _delegate_until(api, owner, "d@example.com", until)

    def areas() -> list[str]:
        res = api.call("GET", "/v1/me", api.token(d))
        assert res.status_code == 200, res.text
        return [a["id"] for a in res.json["areas"]]

    assert areas() == [d.area_id, owner.area_id]
    clock.now = until
    assert areas() == [d.area_id]
    later = _end(clock, days=1)
    assert _change(api, owner, d, {"valid_until": _wire(later)}).status_code == 200
    assert areas() == [d.area_id, owner.area_id]


def test_the_owner_sees_the_end_and_extends_it(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com")
    until = _end(clock, days=3)
    d = _delegate_until(api, owner, "d@example.com", until)
    res = api.call("GET", f"/v1/areas/{owner.area_id}/members", api.token(owner))
    ends = {m["user"]["id"]: m["valid_until"] for m in res.json["members"]}
    assert ends == {owner.user_id: None, d.user_id: _wire(until)}
    clock.now = until + timedelta(hours=1)
    assert not api.decide(d, owner.area_id, "invoice", "read")
    later = _end(clock, days=30)
    res = _change(api, owner, d, {"valid_until": _wire(later)})
    assert res.status_code == 200, res.text
    assert res.json["member"]["valid_until"] == _wire(later)
    assert res.json["member"]["permissions"] == ["invoices"]  # kept
    assert api.decide(d, owner.area_id, "invoice", "read")
    # null: no end at all
    res = _change(api, owner, d, {"valid_until": None})
    assert res.status_code == 200 and res.json["member"]["valid_until"] is None
    clock.now = later + timedelta(days=1)
    assert api.decide(d, owner.area_id, "invoice", "read")
    res = api.call("GET", f"/v1/areas/{owner.area_id}/audit", api.token(owner))
    updated = [e for e in res.json["events"] if e["action"] == "grant.updated"]
    assert updated[-1]["after"]["valid_until"] == _wire(later)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2030-01-01T10:00:00", "time zone offset"),
        ("2000-01-01T10:00:00Z", "future"),
        ("next tuesday", "not a date and time"),
        ("2030-02-30T10:00:00Z", "not a date and time"),
        (1767225600, "must be a string"),
        ("9999-01-01T00:00:00Z", "ten years"),
    ],
)
def test_bad_ends_are_a_clear_400(api: Api, value: object, words: str) -> None:
    owner = api.signup("o@example.com")
    res = _invite(api, owner, "d@example.com", value)
    assert res.status_code == 400, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert words in res.json["detail"]
    # The ends no schema can refuse (relative to now) have their own codes, for clients.
    codes = {"future": "past_time", "ten years": "far_time", "time zone offset": "naive_time"}
    assert res.json["code"] == codes.get(words, "invalid_input")
    d = api.link(owner, "e@example.com", ["invoices"])
    res = _change(api, owner, d, {"valid_until": value})
    assert res.status_code == 400 and words in res.json["detail"]
    with api.services.db.connection_context():
        row = GrantRecord.get(
            (GrantRecord.user_id == d.user_id) & (GrantRecord.area_id == owner.area_id)
        )
    assert row.valid_until is None


def test_a_delegate_cannot_give_access_that_outlasts_their_own(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com")
    until = _end(clock, days=3)
    manager = api.signup("m@example.com")
    res = api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        api.token(owner),
        json={
            "email": "m@example.com",
            "permissions": ["users", "invoices"],
            "valid_until": _wire(until),
        },
    )
    inv = res.json["invitation"]["id"]
    assert api.call("POST", f"/v1/invitations/{inv}/accept", api.token(manager)).status_code == 201
    token = api.token(manager, owner.area_id)
    for end in (None, _wire(until + timedelta(seconds=1))):
        res = api.call(
            "POST",
            f"/v1/areas/{owner.area_id}/invitations",
            token,
            json={"email": "z@example.com", "permissions": ["invoices"], "valid_until": end},
        )
        assert res.status_code == 403, res.text
    res = api.call(
        "POST",
        f"/v1/areas/{owner.area_id}/invitations",
        token,
        json={"email": "z@example.com", "permissions": ["invoices"], "valid_until": _wire(until)},
    )
    assert res.status_code == 201, res.text
    clock.now = until  # their own grant has ended: they manage nothing any more
    res = api.call("GET", f"/v1/areas/{owner.area_id}/members", api.token(manager, owner.area_id))
    assert res.status_code == 404


def test_an_invitation_edit_sets_and_keeps_the_end(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com")
    res = _invite(api, owner, "d@example.com", None)
    inv = res.json["invitation"]
    assert inv["valid_until"] is None
    until = _end(clock, days=10)
    path = f"/v1/areas/{owner.area_id}/invitations/{inv['id']}"
    res = api.call("PATCH", path, api.token(owner), json={"valid_until": _wire(until)})
    assert res.status_code == 200 and res.json["invitation"]["valid_until"] == _wire(until)
    res = api.call("PATCH", path, api.token(owner), json={"permissions": ["quotes"]})
    assert res.json["invitation"]["valid_until"] == _wire(until)  # kept
    res = api.call("PATCH", path, api.token(owner), json={"valid_until": "yesterday"})
    assert res.status_code == 400


# -- tokens --------------------------------------------------------------------------------


def test_tokens_end_with_the_grant(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com")
    until = _end(clock, minutes=10)  # sooner than an access token's lifetime would end
    d = _delegate_until(api, owner, "d@example.com", until)
    auth = _client(api)
    _code(api, Person(d.user_id, owner.area_id, d.email), clock)  # a code for the owner's area
    res = _token(
        api,
        auth,
        grant_type="authorization_code",
        code="code-1",
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
    )
    assert res.status_code == 200, res.text
    lifetime = api.services.tokens.lifetime_s
    claims = jwt.decode(res.json["access_token"], options={"verify_signature": False})
    # Capped 30 s (the leeway verifiers allow past exp) before the end: no verifier with
    # that leeway accepts it past the grant.
    end = int((until - datetime(1970, 1, 1)).total_seconds()) - LEEWAY_SECONDS
    assert claims["exp"] == min(end, claims["iat"] + lifetime)
    clock.now = until - timedelta(minutes=2)
    res = _token(api, auth, grant_type="refresh_token", refresh_token=res.json["refresh_token"])
    assert res.status_code == 200, res.text
    access, refresh = res.json["access_token"], res.json["refresh_token"]
    claims = jwt.decode(access, options={"verify_signature": False})
    assert claims["exp"] == end  # capped: the grant ends before the lifetime would
    assert res.json["expires_in"] == end - claims["iat"]
    # The verification cache is warm with this token...
    assert api.call("GET", "/v1/me", access).status_code == 200
    assert api.services.tokens.verify(access).sub == d.user_id
    clock.now = until
    # ...and still it stops at the instant, as does the refresh token (from 30 s before).
    with pytest.raises(Unauthenticated):
        api.services.tokens.verify(access)
    assert api.call("GET", "/v1/me", access).status_code == 401
    res = _token(api, auth, grant_type="refresh_token", refresh_token=refresh)
    assert res.status_code == 400 and res.json["error"] == "invalid_grant"
    clock.now = until - timedelta(seconds=LEEWAY_SECONDS)
    res = _token(api, auth, grant_type="refresh_token", refresh_token=refresh)
    assert res.status_code == 400 and res.json["error"] == "invalid_grant"
    # Extended: a new sign-in works again; the old refresh family stays ended.
    clock.now = until + timedelta(minutes=1)
    later = _end(clock, days=1)
    assert _change(api, owner, d, {"valid_until": _wire(later)}).status_code == 200
    res = _token(api, auth, grant_type="refresh_token", refresh_token=refresh)
    assert res.status_code == 400


# -- the sweep: reminders and the lapse's audit event ----------------------------------------


def _ending_mails(api: Api, to: str) -> list[MailRecord]:
    with api.services.db.connection_context():
        return list(
            MailRecord.select()
            .where((MailRecord.to == to) & (MailRecord.kind == "grant_ending"))
            .order_by(MailRecord.id)
        )


def test_the_delegate_is_reminded_once_per_end(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com", name="Olivia")
    until = _end(clock, days=5)
    d = _delegate_until(api, owner, "d@example.com", until)
    sweep = api.services.expiry
    assert sweep.run_once() == (0, 0)  # five days ahead: not yet (default: 3 days before)
    clock.now = until - timedelta(days=3)
    assert sweep.run_once() == (1, 0)
    assert sweep.run_once() == (0, 0)  # once
    [mail] = _ending_mails(api, d.email)
    assert "ends on " + until.strftime("%Y-%m-%d %H:%M (UTC)") in mail.text
    assert "Olivia (o@example.com)" in mail.text
    # Extended: a reminder again, for the new end.
    later = _end(clock, days=2)
    assert _change(api, owner, d, {"valid_until": _wire(later)}).status_code == 200
    assert sweep.run_once() == (1, 0)
    assert len(_ending_mails(api, d.email)) == 2


def test_the_reminder_is_in_the_delegates_language(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com")
    invitee = api.signup("d@example.com", locale="es")
    until = _end(clock, days=1)
    res = _invite(api, owner, "d@example.com", _wire(until))
    inv = res.json["invitation"]["id"]
    assert api.call("POST", f"/v1/invitations/{inv}/accept", api.token(invitee)).status_code == 201
    api.services.expiry.run_once()
    [mail] = _ending_mails(api, invitee.email)
    assert mail.subject.startswith("Tu acceso a") and "termina el" in mail.text


def test_the_lapse_is_audited_once_after_the_instant(api: Api, clock: Any) -> None:
    owner = api.signup("o@example.com")
    until = _end(clock, hours=2)
    d = _delegate_until(api, owner, "d@example.com", until)
    sweep = api.services.expiry
    clock.now = until - timedelta(seconds=1)
    assert sweep.run_once()[1] == 0
    clock.now = until
    # The decision denies before any sweep ran...
    assert not api.decide(d, owner.area_id, "invoice", "read")
    assert sweep.run_once()[1] == 1
    assert sweep.run_once()[1] == 0
    res = api.call("GET", f"/v1/areas/{owner.area_id}/audit", api.token(owner))
    [event] = [e for e in res.json["events"] if e["action"] == "grant.expired"]
    assert event["actor"] is None and event["target"] == f"user:{d.user_id}"
    assert event["before"]["valid_until"] == _wire(until) and event["after"] is None
