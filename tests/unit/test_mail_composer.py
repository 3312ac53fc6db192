"""The invitation email: text and HTML, English and Spanish, with everything the invitee
needs to decide (inviter, area, permissions offered, expiry, accept link)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from delegauth.domain.catalogue import PermissionSet, load_catalogue
from delegauth.domain.entities import Area, Invitation, InvitationStatus, User
from delegauth.mail.composer import MailComposer
from tests.conftest import POLICIES

NOW = datetime(2026, 11, 23, 12, 0)


def _mail(locale: str, perms: PermissionSet):  # type: ignore[no-untyped-def]
    composer = MailComposer(
        load_catalogue(Path(POLICIES) / "catalogue.toml"), "https://panel.example.com"
    )
    inviter = User("u_" + "a" * 26, "olga@example.com", "Olga <Admin>", "en", "x", True, NOW)
    area = Area("a_" + "b" * 26, "Olga's shop", inviter.id, NOW)
    inv = Invitation(
        "i_" + "c" * 26,
        area.id,
        "hugo@example.com",
        perms,
        inviter.id,
        InvitationStatus.PENDING,
        "h",
        datetime(2026, 11, 30, 12, 0),
        NOW,
        NOW,
    )
    return composer.invitation(inv, area, inviter, "TOKEN-123", locale)


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("en", ["invited you to manage", "View and pay invoices", "Support tickets"]),
        ("es", ["te ha invitado a gestionar", "Ver y pagar facturas", "Tickets de soporte"]),
    ],
)
def test_invitation_mail_in_both_parts(locale: str, words: list[str]) -> None:
    mail = _mail(locale, PermissionSet.of({"invoices", "tickets"}))
    link = "https://panel.example.com/invitations/accept?token=TOKEN-123"
    assert mail.to == "hugo@example.com" and words[0] in mail.text
    for part in (mail.text, mail.html):
        assert part is not None
        for word in words[1:]:
            assert word in part
        assert "2026-11-30" in part and link in part
    assert f'<a href="{link}">' in mail.html  # type: ignore[operator]
    assert "Olga &lt;Admin&gt;" in mail.html  # type: ignore[operator]  # escaped
    assert mail.headers["Content-Language"] == locale


@pytest.mark.parametrize(
    ("locale", "subject"),
    [
        ("en", "Invitation to manage the Client Area “Olga's shop”"),
        ("es", "Invitación para gestionar el Área de Cliente «Olga's shop»"),
    ],
)
def test_the_subject_names_the_client_area_by_its_account_name(locale: str, subject: str) -> None:
    """Not "X invited you to manage X" when the area is named after its owner."""
    assert _mail(locale, PermissionSet.of({"invoices"})).subject == subject


def test_all_permissions_wording() -> None:
    assert "All permissions" in _mail("en", PermissionSet.everything()).text
    assert "Todos los permisos" in _mail("es", PermissionSet.everything()).text
