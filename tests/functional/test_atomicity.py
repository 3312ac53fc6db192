"""Each change commits whole or not at all: rows, Casbin rules, audit, change log and mail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from delegauth.domain.entities import Area, Invitation, OutgoingMail, User
from delegauth.errors import Conflict
from delegauth.mail.composer import MailComposer
from delegauth.storage.records import (
    AuditRecord,
    CasbinRuleRecord,
    ChangeRecord,
    GrantRecord,
    InvitationRecord,
    MailRecord,
)
from tests.conftest import Api


class _BrokenComposer(MailComposer):
    def invitation(
        self,
        invitation: Invitation,
        area: Area,
        inviter: User,
        token: str,
        locale: str,
        invitee: User | None = None,
    ) -> OutgoingMail:
        raise RuntimeError("template exploded")


def _counts(api: Api) -> dict[str, int]:
    return api.row_counts(
        InvitationRecord, GrantRecord, CasbinRuleRecord, AuditRecord, MailRecord, ChangeRecord
    )


def test_failing_mail_rolls_back_the_invitation(api: Api) -> None:
    owner = api.signup("o@example.com")
    before = _counts(api)
    api.services.invitations._mail = _BrokenComposer(  # type: ignore[attr-defined]
        api.services.decider.bundle.catalogue, "http://x"
    )
    with pytest.raises(RuntimeError):
        api.services.invitations.invite(owner.user_id, owner.area_id, "x@example.com", "all")
    assert _counts(api) == before


def test_conflicting_grant_write_rolls_back_rules_and_audit(api: Api, monkeypatch: Any) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    before = _counts(api)
    store = api.services.store
    real = store.append_audit

    def fail_after_rules(event: Any) -> None:
        real(event)
        raise Conflict("simulated failure after the rules were written")

    monkeypatch.setattr(store, "append_audit", fail_after_rules)
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{d.user_id}",
        api.token(owner),
        json={"permissions": "all"},
    )
    assert res.status_code == 409
    monkeypatch.undo()
    assert _counts(api) == before
    with api.services.db.connection_context():
        roles = [
            r.v1
            for r in CasbinRuleRecord.select().where(CasbinRuleRecord.v0 == f"user:{d.user_id}")
            if r.v2 == f"area:{owner.area_id}"
        ]
    assert roles == ["perm:tickets"]
    assert not api.decide(d, owner.area_id, "invoice", "read")


def test_invitation_mail_uses_the_invitees_language(api: Api) -> None:
    owner = api.signup("o@example.com", name="Olivia")
    api.signup("es@example.com", locale="es")
    api.invite(owner, "es@example.com", ["invoices"])
    mail = api.last_mail("es@example.com")
    assert "Invitación para gestionar" in mail.subject
    assert "Ver y pagar facturas" in mail.text
    api.invite(owner, "stranger@example.com", "all")
    mail = api.last_mail("stranger@example.com")
    assert "Invitation to manage" in mail.subject and "All permissions" in mail.text


def test_a_new_invitee_gets_the_inviters_language(api: Api) -> None:
    owner = api.signup("propietaria@example.com", name="Olivia", locale="es")
    api.invite(owner, "nueva@example.com", ["invoices"])
    mail = api.last_mail("nueva@example.com")
    assert mail.subject == "Invitación para gestionar el Área de Cliente «Olivia»"
    assert "Ver y pagar facturas" in mail.text
    assert json.loads(mail.headers) == {"Content-Language": "es"}
