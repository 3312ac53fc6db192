"""Access requests in a real browser, walked by visible labels from the root URL and the
emailed links, in English and Spanish, each page checked at desktop and phone sizes:

- someone without access signs up, confirms their email from the mail, and from My access
  requests asks the owner of an address for two permissions, with a message;
- the owner follows the emailed link (signing in first) and approves only one of the two;
- the requester follows their emailed link and sees it approved, then, now a delegate,
  uses Request access from the area's home and withdraws it; asks again, and the owner
  declines it from User Management; the requester's mail says so;
- every page on the way passes axe (WCAG 2.1 AA) and has no sideways scroll.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from delegauth.pages.text import t
from tests.browser import walk
from tests.browser.conftest import Snap
from tests.e2e.conftest import _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Page

axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright")
AXE = axe_playwright.Axe()
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
# The words of this work, written out: a lost translation fails the test.
WORDS = {
    "en": {
        "mine": "My access requests",
        "ask_owner": "Ask an owner for access",
        "owner_email": "Owner's email address",
        "message": "Message (optional)",
        "send": "Send request",
        "asked": "Your request was recorded. If that address belongs to an owner, they have"
        " been told by email.",
        "owner_subject": "Access request for the Client Area “{area}”",
        "approve": "Approve",
        "decline": "Decline",
        "approved": "Request approved: the new permissions apply now.",
        "approved_subject": "Your access request for “{area}”: approved",
        "request": "Request access",
        "requested": "Your request was sent to the owner.",
        "withdraw": "Withdraw",
        "withdrawn": "Request withdrawn.",
        "review": "Review",
        "declined": "Request declined.",
        "declined_subject": "Your access request for “{area}”: declined",
        "status_approved": "Approved",
        "status_declined": "Declined",
        "some": "Choose permissions from the list",
        "first": "Contacts",
        "second": "View domains",
        "third": "Support tickets",
    },
    "es": {
        "mine": "Mis solicitudes de acceso",
        "ask_owner": "Pedir acceso a un propietario",
        "owner_email": "Correo del propietario",
        "message": "Mensaje (opcional)",
        "send": "Enviar solicitud",
        "asked": "Tu solicitud ha quedado registrada. Si esa dirección pertenece a un"
        " propietario, ha recibido un correo.",
        "owner_subject": "Solicitud de acceso al Área de Cliente «{area}»",
        "approve": "Aprobar",
        "decline": "Rechazar",
        "approved": "Solicitud aprobada: los nuevos permisos ya se aplican.",
        "approved_subject": "Tu solicitud de acceso a «{area}»: aprobada",
        "request": "Solicitar acceso",
        "requested": "Tu solicitud se ha enviado al propietario.",
        "withdraw": "Retirar",
        "withdrawn": "Solicitud retirada.",
        "review": "Revisar",
        "declined": "Solicitud rechazada.",
        "declined_subject": "Tu solicitud de acceso a «{area}»: rechazada",
        "status_approved": "Aprobada",
        "status_declined": "Rechazada",
        "some": "Elegir permisos de la lista",
        "first": "Contactos",
        "second": "Ver dominios",
        "third": "Tickets de soporte",
    },
}
_ids = itertools.count(1)


def _check(page: Page, snap: Snap, name: str) -> None:
    """A step: both sizes fit and are screenshotted, and axe finds nothing."""
    walk.step(page, snap, name)
    results = AXE.run(page, options=AXE_OPTIONS)
    assert results.violations_count == 0, f"{name}:\n{results.generate_snapshot()}"


def _mail(inbox: _Inbox, to: str, subject: str) -> str:
    """The newest mail to ``to`` with exactly this (decoded) subject, waiting for it."""
    deadline = time.monotonic() + 20
    while not (mails := walk.mails_to(inbox, to, subject)):
        assert time.monotonic() < deadline, f"no mail to {to}: {subject}"
        time.sleep(0.1)
    return mails[-1]


def _path(text: str, pattern: str) -> str:
    """A link of the mail as a path on our server, with its query (the mail's language)."""
    match = re.search(r"https?://[^/\s]+(" + pattern + r"(?:\?\S*)?)(?=\s)", text)
    assert match, text
    return match.group(1)


def _to_area(page: Page, area: str) -> None:
    """From the root URL: the chooser (several areas), then the area's home."""
    page.goto("/")
    page.get_by_role("link", name=re.compile(re.escape(area))).first.click()
    page.wait_for_url("**/areas/a_*")


def _ask_for(page: Page, w: dict[str, str], *labels: str) -> None:
    page.get_by_role("radio", name=w["some"], exact=True).check()
    for label in labels:
        walk.permission(page, label).check()


def test_request_approve_and_decline_walk(
    person: walk.Person, lang: str, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    w = WORDS[lang]
    inbox = mailbox[0]
    n = next(_ids)
    owner_name, owner_email = f"Olivia Owner {lang}{n}", f"o-ask-{lang}-{n}@example.com"
    asker_name, asker_email = f"Sam Asker {lang}{n}", f"s-ask-{lang}-{n}@example.com"

    owner = walk.owner(person, lang, owner_name, owner_email)
    walk.verify_from_email(owner, inbox, owner_email)

    # Someone without access signs up from the root URL and confirms from the mail.
    asker = walk.owner(person, lang, asker_name, asker_email)
    walk.verify_from_email(asker, inbox, asker_email)
    asker.goto("/")
    asker.wait_for_url("**/areas/a_*")
    asker.get_by_role("link", name=w["mine"], exact=True).click()
    asker.wait_for_url("**/access-requests")
    _check(asker, snap, "my-requests-empty")
    asker.get_by_role("link", name=w["ask_owner"], exact=True).click()
    asker.wait_for_url("**/access-requests/new")
    asker.get_by_label(w["owner_email"], exact=True).fill(owner_email)
    _ask_for(asker, w, w["first"], w["second"])
    asker.get_by_label(w["message"], exact=True).fill(
        "Hi Olivia, it's Sam <b>from acme.example</b>"
    )
    _check(asker, snap, "ask-owner-filled")
    asker.get_by_role("button", name=w["send"], exact=True).click()
    asker.wait_for_url("**/access-requests?done=asked")
    assert walk.status(asker) == w["asked"]
    _check(asker, snap, "asked")

    # The owner follows the emailed link: sign in first, then the review.
    mail = _mail(inbox, owner_email, w["owner_subject"].format(area=owner_name))
    assert asker_email in mail and "acme[.]example" in mail and asker_name not in mail
    review = _path(mail, r"/areas/a_[a-z2-7]+/access-requests/r_[a-z2-7]+")
    owner.context.clear_cookies()
    owner.goto(review)
    owner.wait_for_url(lambda u: walk.path(owner) == "/signin")
    walk.sign_in(owner, lang, owner_email)
    owner.wait_for_url(lambda u: walk.path(owner) == urlsplit(review).path)
    assert asker_email in walk.heading(owner)
    assert owner.get_by_text("from acme.example", exact=False).first.is_visible()
    _check(owner, snap, "review")
    walk.permission(owner, w["second"]).uncheck()
    owner.get_by_role("button", name=w["approve"], exact=True).click()
    owner.wait_for_url("**/users?done=approved")
    assert walk.status(owner) == w["approved"]
    _check(owner, snap, "approved")

    # The requester follows their emailed link and sees what they were given.
    answer = _mail(inbox, asker_email, w["approved_subject"].format(area=owner_name))
    assert w["first"] in answer and w["second"] not in answer
    asker.goto(_path(answer, r"/access-requests"))
    card = asker.get_by_role("listitem").filter(has_text=owner_name)
    assert w["status_approved"] in card.inner_text()
    _check(asker, snap, "approved-seen")

    # Now a delegate: Request access from the area's home, withdraw it, ask again.
    _to_area(asker, owner_name)
    asker.get_by_role("link", name=w["request"], exact=True).click()
    asker.wait_for_url("**/request-access")
    _ask_for(asker, w, w["third"])
    _check(asker, snap, "request-access")
    asker.get_by_role("button", name=w["send"], exact=True).click()
    asker.wait_for_url("**/access-requests?done=requested")
    assert walk.status(asker) == w["requested"]
    asker.get_by_role("button", name=w["withdraw"], exact=True).click()
    asker.wait_for_url("**/access-requests?done=withdrawn")
    assert walk.status(asker) == w["withdrawn"]
    _to_area(asker, owner_name)
    asker.get_by_role("link", name=w["request"], exact=True).click()
    _ask_for(asker, w, w["third"])
    asker.get_by_role("button", name=w["send"], exact=True).click()
    asker.wait_for_url("**/access-requests?done=requested")

    # The owner declines it from User Management.
    owner.goto("/")
    walk.user_management(owner)
    _check(owner, snap, "user-management-with-request")
    walk.row(owner, asker_email).last.get_by_role("link", name=w["review"], exact=True).click()
    owner.get_by_role("button", name=w["decline"], exact=True).click()
    owner.wait_for_url("**/users?done=request_declined")
    assert walk.status(owner) == w["declined"]

    declined = _mail(inbox, asker_email, w["declined_subject"].format(area=owner_name))
    asker.goto(_path(declined, r"/access-requests"))
    assert w["status_declined"] in asker.get_by_role("listitem").first.inner_text()
    _check(asker, snap, "declined-seen")
    assert t(lang, "ar.mine_title") == w["mine"]
