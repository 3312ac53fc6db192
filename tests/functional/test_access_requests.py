"""Access requests through the JSON API: ask, review, approve (no escalation, one
transaction), decline, withdraw, rate limits and no disclosure of who has an account."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from delegauth.domain.entities import AccessRequest, Area, OutgoingMail, User
from delegauth.errors import Conflict
from delegauth.mail.composer import MailComposer
from delegauth.storage.records import (
    AccessRequestRecord,
    AuditRecord,
    CasbinRuleRecord,
    ChangeRecord,
    GrantRecord,
    MailRecord,
)
from tests.conftest import Api, Person


def _ask(
    api: Api, who: Person, resource: dict[str, str], permissions: Any, message: str | None = None
) -> Any:
    body: dict[str, Any] = {"resource": resource, "requested_access": {"permissions": permissions}}
    if message is not None:
        body["context"] = {"message": message}
    return api.call("POST", "/access/v1/requests", api.token(who), json=body)


def _ask_area(api: Api, who: Person, area_id: str, permissions: Any, **kw: Any) -> Any:
    return _ask(api, who, {"type": "area", "id": area_id}, permissions, **kw)


def _ask_owner(api: Api, who: Person, email: str, permissions: Any, **kw: Any) -> Any:
    return _ask(api, who, {"type": "owner", "id": email}, permissions, **kw)


def _pending(api: Api, who: Person, area_id: str = "") -> list[dict[str, Any]]:
    area_id = area_id or who.area_id
    res = api.call("GET", f"/v1/areas/{area_id}/access-requests", api.token(who, area_id))
    assert res.status_code == 200, res.text
    return list(res.json["access_requests"])


def _answer(
    api: Api, approver: Person, area_id: str, request_id: str, verb: str, body: Any = None
) -> Any:
    return api.call(
        "POST",
        f"/v1/areas/{area_id}/access-requests/{request_id}/{verb}",
        api.token(approver, area_id),
        json=body,
    )


def _mails(api: Api, to: str) -> list[MailRecord]:
    with api.services.db.connection_context():
        return list(MailRecord.select().where(MailRecord.to == to).order_by(MailRecord.id))


def _counts(api: Api) -> dict[str, int]:
    return api.row_counts(
        AccessRequestRecord, GrantRecord, CasbinRuleRecord, AuditRecord, MailRecord, ChangeRecord
    )


def _audit_actions(api: Api, area_id: str) -> list[str]:
    with api.services.db.connection_context():
        rows = AuditRecord.select().where(AuditRecord.area_id == area_id).order_by(AuditRecord.id)
        return [r.action for r in rows]


def test_a_delegate_asks_and_the_owner_approves_everything(api: Api) -> None:
    owner = api.signup("owner@example.com", name="Olivia")
    d = api.link(owner, "d@example.com", ["tickets"])
    res = _ask_area(api, d, owner.area_id, ["invoices", "quotes"], message="For the audit")
    assert res.status_code == 202, res.text
    task = res.json["task"]
    assert task["status"] == "pending"
    assert res.headers["Location"] == task["status_endpoint"]
    assert task["links"]["cancel"].endswith(f"/access/v1/requests/{task['id']}/cancel")
    assert res.json["request"]["context"] == {"message": "For the audit"}

    mail = api.last_mail("owner@example.com")
    assert mail.kind == "access_request"
    assert "d@example.com" in mail.text and "> For the audit" in mail.text
    assert f"/areas/{owner.area_id}/access-requests/{task['id']}" in mail.text

    [pending] = _pending(api, owner)
    assert pending["id"] == task["id"]
    assert pending["requester"]["email"] == "d@example.com"
    assert pending["permissions"] == ["invoices", "quotes"]
    assert not api.decide(d, owner.area_id, "invoice", "read")

    res = _answer(api, owner, owner.area_id, task["id"], "approve")
    assert res.status_code == 200, res.text
    assert res.json["member"]["permissions"] == ["invoices", "quotes", "tickets"]
    assert api.decide(d, owner.area_id, "invoice", "read")
    assert api.decide(d, owner.area_id, "ticket", "read")
    assert _pending(api, owner) == []

    status = api.call("GET", f"/access/v1/requests/{task['id']}", api.token(d)).json
    assert status["task"]["status"] == "approved"
    assert "cancel" not in status["task"]["links"]
    assert status["result"]["mode"] == "reevaluate"
    assert status["result"]["approval"]["permissions"] == ["invoices", "quotes"]

    answer = api.last_mail("d@example.com")
    assert answer.kind == "access_request_answer"
    assert "approved" in answer.subject and "View and pay invoices" in answer.text
    assert "http://localhost/access-requests" in answer.text
    actions = _audit_actions(api, owner.area_id)
    assert actions[-3:] == [
        "access_request.created",
        "grant.updated",
        "access_request.approved",
    ]


def test_the_approver_may_give_part_of_it_but_never_more(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices", "quotes"]).json["task"]["id"]
    res = _answer(api, owner, owner.area_id, rid, "approve", {"permissions": ["orders"]})
    assert res.status_code == 403 and res.json["code"] == "beyond_request"
    res = _answer(api, owner, owner.area_id, rid, "approve", {"permissions": "all"})
    assert res.status_code == 403 and res.json["code"] == "beyond_request"
    res = _answer(api, owner, owner.area_id, rid, "approve", {"permissions": ["quotes"]})
    assert res.status_code == 200, res.text
    assert res.json["member"]["permissions"] == ["quotes", "tickets"]
    assert not api.decide(d, owner.area_id, "invoice", "read")


def test_approval_cannot_escalate(api: Api) -> None:
    """A manager holding users and tickets cannot approve invoices; the owner can."""
    owner = api.signup("owner@example.com")
    manager = api.link(owner, "m@example.com", ["users", "tickets"])
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    assert [r["id"] for r in _pending(api, manager, owner.area_id)] == [rid]
    before = _counts(api)
    res = _answer(api, manager, owner.area_id, rid, "approve")
    assert res.status_code == 403 and res.json["code"] == "escalation"
    assert _counts(api) == before
    assert not api.decide(d, owner.area_id, "invoice", "read")
    # the request is still there for someone who holds invoices
    res = _answer(api, owner, owner.area_id, rid, "approve")
    assert res.status_code == 200, res.text
    assert api.decide(d, owner.area_id, "invoice", "read")


def test_a_plain_delegate_cannot_see_or_answer_requests(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    other = api.link(owner, "e@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    res = api.call(
        "GET", f"/v1/areas/{owner.area_id}/access-requests", api.token(other, owner.area_id)
    )
    assert res.status_code == 403
    assert _answer(api, other, owner.area_id, rid, "approve").status_code == 403
    assert _answer(api, other, owner.area_id, rid, "decline").status_code == 403
    # nor can the requester approve their own
    assert _answer(api, d, owner.area_id, rid, "approve").status_code == 403
    # and another area's owner gets 404 for it
    stranger = api.signup("s@example.com")
    assert _answer(api, stranger, stranger.area_id, rid, "approve").status_code == 404


class _BrokenAnswer(MailComposer):
    def access_request_answered(
        self,
        request: AccessRequest,
        area: Area,
        requester: User,
        until: datetime | None = None,
    ) -> OutgoingMail:
        raise RuntimeError("template exploded")


def test_a_failure_mid_approval_leaves_nothing_half_written(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    before = _counts(api)
    requests = api.services.access_requests
    requests._mail = _BrokenAnswer(  # type: ignore[attr-defined]
        api.services.decider.bundle.catalogue, "http://x"
    )
    with pytest.raises(RuntimeError):
        requests.approve(owner.user_id, owner.area_id, rid)
    assert _counts(api) == before
    with api.services.db.connection_context():
        assert AccessRequestRecord.get_by_id(rid).status == "pending"
        roles = [
            r.v1
            for r in CasbinRuleRecord.select().where(CasbinRuleRecord.v0 == f"user:{d.user_id}")
            if r.v2 == f"area:{owner.area_id}"
        ]
    assert roles == ["perm:tickets"]
    assert not api.decide(d, owner.area_id, "invoice", "read")


def test_a_conflict_after_the_grant_rolls_back_the_approval(api: Api, monkeypatch: Any) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    before = _counts(api)
    store = api.services.store
    real = store.append_audit

    def fail_on_approval(event: Any) -> None:
        real(event)
        if event.action == "access_request.approved":
            raise Conflict("simulated failure after the grant was written")

    monkeypatch.setattr(store, "append_audit", fail_on_approval)
    res = _answer(api, owner, owner.area_id, rid, "approve")
    assert res.status_code == 409
    monkeypatch.undo()
    assert _counts(api) == before
    assert not api.decide(d, owner.area_id, "invoice", "read")
    assert [r["id"] for r in _pending(api, owner)] == [rid]


def test_decline_tells_the_requester_and_changes_nothing(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    res = _answer(api, owner, owner.area_id, rid, "decline")
    assert res.status_code == 200, res.text
    assert res.json["access_request"]["status"] == "declined"
    assert not api.decide(d, owner.area_id, "invoice", "read")
    mail = api.last_mail("d@example.com")
    assert mail.kind == "access_request_answer" and "declined" in mail.subject
    status = api.call("GET", f"/access/v1/requests/{rid}", api.token(d)).json
    assert status["task"]["status"] == "denied" and "result" not in status
    again = _answer(api, owner, owner.area_id, rid, "approve")
    assert again.status_code == 409 and again.json["code"] == "request_answered"
    assert _audit_actions(api, owner.area_id)[-1] == "access_request.declined"


def test_the_requester_can_withdraw_a_pending_request(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    # an open request there already: a second one is refused
    assert _ask_area(api, d, owner.area_id, ["quotes"]).status_code == 409
    other = api.signup("x@example.com")
    assert (
        api.call("POST", f"/access/v1/requests/{rid}/cancel", api.token(other)).status_code == 404
    )
    assert api.call("GET", f"/access/v1/requests/{rid}", api.token(other)).status_code == 404
    res = api.call("POST", f"/access/v1/requests/{rid}/cancel", api.token(d))
    assert res.status_code == 200, res.text
    assert res.json["task"]["status"] == "cancelled"
    assert _pending(api, owner) == []
    res = _answer(api, owner, owner.area_id, rid, "approve")
    assert res.status_code == 409
    assert api.call("POST", f"/access/v1/requests/{rid}/cancel", api.token(d)).status_code == 409
    assert _audit_actions(api, owner.area_id)[-1] == "access_request.withdrawn"
    mine = api.call("GET", "/v1/me/access-requests", api.token(d)).json["access_requests"]
    assert [m["task"]["status"] for m in mine] == ["cancelled"]
    # withdrawn: asking again is allowed
    assert _ask_area(api, d, owner.area_id, ["quotes"]).status_code == 202


def test_a_request_expires(api: Api, clock: Any) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    clock.advance(days=15)
    assert _pending(api, owner) == []
    res = _answer(api, owner, owner.area_id, rid, "approve")
    assert res.status_code == 409 and res.json["code"] == "request_expired"
    status = api.call("GET", f"/access/v1/requests/{rid}", api.token(d)).json
    assert status["task"]["status"] == "expired"


def test_someone_without_access_asks_the_owner_by_email(api: Api) -> None:
    owner = api.signup("owner@example.com", name="Olivia")
    stranger = api.signup("s@example.com")
    res = _ask_owner(api, stranger, "Owner@Example.com", ["tickets"], message="Hi, it's Sam")
    assert res.status_code == 202, res.text
    assert res.json["request"]["resource"] == {"type": "owner", "id": "owner@example.com"}
    rid = res.json["task"]["id"]
    assert "s@example.com" in api.last_mail("owner@example.com").text
    res = _answer(api, owner, owner.area_id, rid, "approve")
    assert res.status_code == 200, res.text
    assert res.json["member"]["role"] == "delegate"
    assert res.json["member"]["permissions"] == ["tickets"]
    assert api.decide(stranger, owner.area_id, "ticket", "read")
    assert not api.decide(stranger, owner.area_id, "invoice", "read")


def _shape(body: Any) -> Any:
    """The response with everything that differs per request blanked out."""
    text = json.dumps(body, sort_keys=True)
    text = text.replace(body["task"]["id"], "ID")
    text = text.replace(body["request"]["resource"]["id"], "EMAIL")
    return json.loads(text)


def test_asking_by_email_does_not_disclose_whether_it_has_an_account(api: Api) -> None:
    api.signup("owner@example.com")
    api.signup("unverified@example.com", verify=False)
    asker = api.signup("asker@example.com")
    answers = [
        _ask_owner(api, asker, email, ["tickets"], message="hello")
        for email in ("owner@example.com", "nobody@example.com", "unverified@example.com")
    ]
    assert {r.status_code for r in answers} == {202}
    shapes = [_shape(r.json) for r in answers[:3]]
    assert shapes[0] == shapes[1] == shapes[2]
    assert set(answers[0].headers) == set(answers[1].headers)
    # only the real, verified owner is mailed
    assert _mails(api, "nobody@example.com") == []
    assert [m.kind for m in _mails(api, "unverified@example.com")] == ["verification"]
    assert [m.kind for m in _mails(api, "owner@example.com")][-1] == "access_request"
    # the asker's own Activity records each the same way
    with api.services.db.connection_context():
        own = (
            AuditRecord.select()
            .where(AuditRecord.area_id == asker.area_id)
            .order_by(AuditRecord.id)
        )
        events = [(r.action, sorted(json.loads(r.after))) for r in own]
    created = ("access_request.created", ["email", "permissions", "requester", "status"])
    assert events[-3:] == [created] * 3
    # and the task status reads the same later on
    paths = [r.headers["Location"].removeprefix("http://localhost") for r in answers[:2]]
    later = [api.call("GET", path, api.token(asker)).json for path in paths]
    assert _shape(later[0]) == _shape(later[1])
    # asking one's own address is answered the same way too, and mails nobody
    owner_mails = len(_mails(api, "owner@example.com"))
    own = _ask_owner(api, api.signup("self@example.com"), "self@example.com", ["tickets"])
    assert own.status_code == 202 and own.json["task"]["status"] == "pending"
    assert [m.kind for m in _mails(api, "self@example.com")] == ["verification"]
    assert len(_mails(api, "owner@example.com")) == owner_mails


def test_rate_limits_per_requester_and_per_address(api: Api, clock: Any) -> None:
    asker = api.signup("asker@example.com")
    for n in range(3):
        assert _ask_owner(api, asker, f"n{n}@example.com", ["tickets"]).status_code == 202
    res = _ask_owner(api, asker, "n9@example.com", ["tickets"])
    assert res.status_code == 429 and res.json["code"] == "rate_limited"
    assert res.headers["Retry-After"]
    clock.advance(hours=25)
    assert _ask_owner(api, asker, "n9@example.com", ["tickets"]).status_code == 202

    # per address: the same limit whether or not the address has an account
    api.signup("owner@example.com")
    for target in ("owner@example.com", "ghost@example.com"):
        codes = []
        for n in range(6):
            who = api.signup(f"{target.split('@')[0]}-{n}@example.com")
            codes.append(_ask_owner(api, who, target, ["tickets"]).status_code)
        assert codes == [202] * 5 + [429], target


def test_rate_limit_per_requester_counts_withdrawn_requests(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    for _ in range(10):
        rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
        api.call("POST", f"/access/v1/requests/{rid}/cancel", api.token(d))
    res = _ask_area(api, d, owner.area_id, ["invoices"])
    assert res.status_code == 429


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("see https://evil.example/x", "message_has_link"),
        ("go to www.evil.example", "message_has_link"),
        ("x" * 501, "message_too_long"),
        ("\n".join(["line"] * 11), "message_too_long"),
    ],
)
def test_messages_are_plain_short_and_linkless(api: Api, message: str, code: str) -> None:
    owner = api.signup("owner@example.com")
    asker = api.signup("asker@example.com")
    res = _ask_owner(api, asker, "owner@example.com", ["tickets"], message=message)
    assert res.status_code == 400 and res.json["code"] == code
    assert res.json["field"] == "message"
    assert [m.kind for m in _mails(api, "owner@example.com")] == ["verification"]
    assert owner


def test_the_owners_mail_shows_the_message_as_inert_text(api: Api) -> None:
    api.signup("owner@example.com")
    asker = api.signup("asker@example.com", name="Click evil.example now")
    message = "<b>Hi</b> I work at acme.example\u202e\u200b\nThanks\x07"
    assert _ask_owner(api, asker, "owner@example.com", "all", message=message).status_code == 202
    mail = api.last_mail("owner@example.com")
    assert "> <b>Hi</b> I work at acme[.]example\n> Thanks" in mail.text
    assert "acme.example" not in mail.text and "evil" not in mail.text
    assert mail.html is not None
    assert "&lt;b&gt;Hi&lt;/b&gt;" in mail.html and "<b>" not in mail.html
    assert mail.html.count("<a ") == 1  # the review link, nothing else


def test_what_may_be_asked(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    res = _ask_area(api, d, owner.area_id, ["tickets"])
    assert res.status_code == 409 and res.json["code"] == "already_held"
    res = _ask_area(api, owner, owner.area_id, ["tickets"])
    assert res.status_code == 409 and res.json["code"] == "already_held"
    stranger = api.signup("s@example.com")
    assert _ask_area(api, stranger, owner.area_id, ["tickets"]).status_code == 404
    res = _ask_area(api, d, owner.area_id, ["nope"])
    assert res.status_code == 400 and res.json["code"] == "unknown_permission"
    res = _ask(api, d, {"type": "group", "id": "x"}, ["invoices"])
    assert res.status_code == 400
    res = _ask(api, d, {"type": "area", "id": "owner@example.com"}, ["invoices"])
    assert res.status_code == 400 and res.json["field"] == "resource"
    unverified = api.signup("u@example.com", verify=False)
    res = _ask_owner(api, unverified, "owner@example.com", ["tickets"])
    assert res.status_code == 403 and res.json["code"] == "email_unverified"
    service = api.service_token()
    res = api.call(
        "POST",
        "/access/v1/requests",
        service,
        json={"resource": {"type": "area", "id": owner.area_id}, "requested_access": {}},
    )
    assert res.status_code == 403


def test_approval_with_an_end_for_someone_without_a_grant(api: Api, clock: Any) -> None:
    owner = api.signup("owner@example.com")
    stranger = api.signup("s@example.com")
    rid = _ask_owner(api, stranger, "owner@example.com", ["tickets"]).json["task"]["id"]
    until = (clock.now + timedelta(days=2)).replace(microsecond=0).isoformat() + "Z"
    res = _answer(api, owner, owner.area_id, rid, "approve", {"valid_until": until})
    assert res.status_code == 200, res.text
    assert res.json["member"]["valid_until"] == until
    assert api.decide(stranger, owner.area_id, "ticket", "read")
    # a member's grant keeps its own end: an end on an approval for them is refused
    d = api.link(owner, "d@example.com", ["tickets"])
    rid = _ask_area(api, d, owner.area_id, ["invoices"]).json["task"]["id"]
    before = _counts(api)
    res = _answer(api, owner, owner.area_id, rid, "approve", {"valid_until": until})
    assert res.status_code == 409 and res.json["code"] == "member_has_grant"
    assert _counts(api) == before


def test_the_pdp_metadata_names_the_access_request_endpoint(api: Api) -> None:
    res = api.call("GET", "/.well-known/authzen-configuration")
    assert res.json["access_request_endpoint"] == "http://localhost/access/v1/requests"
    assert res.json["search_subject_endpoint"].endswith("/access/v1/search/subject")
