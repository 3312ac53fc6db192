"""The invitation email: text and HTML, English and Spanish, with everything the invitee
needs to decide (inviter, area, permissions offered, expiry, accept link)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html import escape, unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from delegauth.domain.catalogue import PermissionSet, load_catalogue
from delegauth.domain.entities import (
    AccessRequest,
    AccessRequestStatus,
    Area,
    Grant,
    Invitation,
    InvitationStatus,
    OutgoingMail,
    Role,
    User,
)
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
    link = f"https://panel.example.com/invitations/accept?token=TOKEN-123&lang={locale}"
    assert mail.to == "hugo@example.com" and words[0] in mail.text
    for part in (mail.text, mail.html):
        assert part is not None
        for word in words[1:]:
            assert word in part
        assert "2026-11-30" in part and link in unescape(part)
    assert f'<a href="{escape(link)}">' in mail.html  # type: ignore[operator]
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


def _every_mail(locale: str) -> dict[str, OutgoingMail]:
    """One mail of each kind to someone who reads ``locale``."""
    composer = MailComposer(
        load_catalogue(Path(POLICIES) / "catalogue.toml"), "https://panel.example.com"
    )
    owner = User("u_" + "a" * 26, "olga@example.com", "Olga", locale, "x", True, NOW)
    other = User("u_" + "d" * 26, "hugo@example.com", "Hugo", locale, "x", True, NOW)
    area = Area("a_" + "b" * 26, "Olga's shop", owner.id, NOW)
    perms = PermissionSet.of({"invoices"})
    grant = Grant(area.id, other.id, Role.DELEGATE, perms, owner.id, None, NOW, NOW)
    grant.valid_until = NOW + timedelta(days=2)
    request = AccessRequest(
        "r_" + "e" * 26,
        other.id,
        area.id,
        "",
        perms,
        "",
        AccessRequestStatus.APPROVED,
        NOW,
        NOW,
        NOW + timedelta(days=14),
        owner.id,
        perms,
    )
    return {
        "verification": composer.verification(other, "TOKEN-1", "/invitations/accept?token=T"),
        "invitation": _mail(locale, perms),
        "grant_ending": composer.grant_ending(grant, area, other, owner),
        "access_request": composer.access_request(request, area, other, owner),
        "access_request_answer": composer.access_request_answered(request, area, other),
    }


@pytest.mark.parametrize("locale", ["en", "es"])
def test_every_link_in_every_mail_carries_its_language(locale: str) -> None:
    """So that the pages it opens, sign-in included, speak the mail's language whatever
    the browser's; the reminder's leads to the area whose access ends."""
    paths = {}
    for kind, mail in _every_mail(locale).items():
        assert mail.kind == kind
        links = re.findall(r"https://\S+", mail.text)
        in_html = [unescape(h) for h in re.findall(r'href="([^"]+)"', mail.html or "")]
        assert len(links) == 1 and in_html == links, (kind, links, in_html)
        url = urlsplit(links[0])
        assert parse_qs(url.query)["lang"] == [locale], (kind, links)
        paths[kind] = url.path
    assert paths["grant_ending"] == "/areas/a_" + "b" * 26
    assert paths["access_request"] == "/areas/a_" + "b" * 26 + "/access-requests/r_" + "e" * 26
