"""Every link in every email, followed from the mail aiosmtpd caught, signed in and signed out.

The mails (src/delegauth/mail/composer.py), their links, and where each is followed:

- verification, /verify-email?token=…: signed in in test_verification_walk; signed out
  here, through sign-in to the area's home;
- verification asked for from an invitation, …&return_to=<the invitation link>: signed in
  in test_verification_walk; signed out here, through sign-in back to the invitation;
- invitation, /invitations/accept?token=…: signed in and verified here, straight to My
  invitations (unverified and another account: test_verification_walk); signed out in
  test_verification_walk (sign-up, and sign-in for an existing account);
- access request, to the owner, /areas/<a>/access-requests/<r>: signed in as another
  account here (sign out and continue, then sign-in to the review), and as the owner,
  straight to the review; signed out in test_access_request_walk;
- its outcome, to the requester, /access-requests: signed in in test_access_request_walk;
  signed out here, through sign-in to My access requests;
- access ends soon, to the delegate, /areas/<a>: signed in here, that area's home, which
  shows the end (the delegate has their own area too), and once the access is gone a page
  that says so;
  signed out here, through sign-in to that area's home.

Each runs in English and Spanish, with the mail in the person's language. Every link
carries that language (lang=), and here it is opened in a browser that speaks the other
one: the sign-in page and the pages reached are in the mail's language, checked and
screenshotted at 1280×800 and 390×844. The words of this work (the mails' subjects, the
page for an area out of reach) are written out here.
"""

from __future__ import annotations

import html
import itertools
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from delegauth.pages.text import t
from tests.browser import walk
from tests.browser.conftest import Snap, serve
from tests.e2e.conftest import Server, _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SUBJECTS = {
    "en": {
        "verify": "Confirm your email address",
        "invite": "Invitation to manage the Client Area “{area}”",
        "ask": "Access request for the Client Area “{area}”",
        "approved": "Your access request for “{area}”: approved",
        "ending": "Your access to “{area}” ends on ",
    },
    "es": {
        "verify": "Confirma tu dirección de correo",
        "invite": "Invitación para gestionar el Área de Cliente «{area}»",
        "ask": "Solicitud de acceso al Área de Cliente «{area}»",
        "approved": "Tu solicitud de acceso a «{area}»: aprobada",
        "ending": "Tu acceso a «{area}» termina el ",
    },
}
CONTACTS = {"en": "Contacts", "es": "Contactos"}  # the permission asked for
OUT_OF_REACH = {
    "en": (
        "No access to this Client Area",
        "You cannot reach this Client Area with this account: your access to it has ended",
    ),
    "es": (
        "Sin acceso a esta Área de Cliente",
        "No puedes entrar en esta Área de Cliente con esta cuenta: tu acceso terminó",
    ),
}
OTHER_ACCOUNT = {
    "en": ("This access request is for another account", "Sign out and continue"),
    "es": ("Esta solicitud de acceso es para otra cuenta", "Cerrar sesión y seguir"),
}
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[_Inbox, int]
) -> Iterator[Server]:
    """This module's server sweeps for due reminders five times a second."""
    yield from serve(tmp_path_factory, mailbox[1], DELEGAUTH_EXPIRY_SWEEP_S="0.2")


@pytest.fixture
def person(browser: Browser, live_server: Server, lang: str) -> Iterator[walk.Person]:
    """People whose browsers keep UTC, so the "Access until" typed is UTC."""
    yield from walk.people(browser, live_server, lang, timezone_id="UTC")


@pytest.fixture
def elsewhere(browser: Browser, live_server: Server, lang: str) -> Iterator[walk.Person]:
    """Browsers that speak the other language, where the mails' links are opened."""
    yield from walk.people(browser, live_server, walk.OTHER[lang], timezone_id="UTC")


def _received(inbox: _Inbox, to: str, subject_starts: str) -> Message:
    """The newest mail to ``to`` whose decoded subject starts so, waiting for it."""
    deadline = time.monotonic() + 30
    while True:
        for m in reversed(list(inbox.messages)):
            if m["To"] == to and walk.subject(m).startswith(subject_starts):
                return m
        assert time.monotonic() < deadline, f"no mail to {to}: {subject_starts}"
        time.sleep(0.1)


def _only_link(message: Message) -> str:
    """The mail's one link, the same in its text and in its HTML (where people click it),
    as a path on our server (the mail names the public URL)."""
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
        for p in message.walk()
        if not p.is_multipart()
    }
    in_text = re.findall(r"https?://\S+", parts["text/plain"])
    in_html = [html.unescape(href) for href in re.findall(r'href="([^"]+)"', parts["text/html"])]
    assert len(in_text) == 1 and in_html == in_text, (in_text, in_html)
    url = urlsplit(in_text[0])
    return url.path + (f"?{url.query}" if url.query else "")


def _in(page: Page, lang: str, where: str) -> None:
    """The page reached is ``where``, in the mail's language."""
    page.wait_for_url(lambda u: walk.path(page) == where)
    assert walk.lang_of(page) == lang, page.url


def _signed_out(
    elsewhere: walk.Person, lang: str, link: str, email: str, snap: Snap, name: str
) -> Page:
    """Opened signed out in a browser of the other language, the link asks for sign-in
    first, in the mail's language."""
    page = elsewhere()
    page.goto(link)
    _in(page, lang, "/signin")
    walk.step(page, snap, f"{name}-signed-out")
    walk.sign_in(page, lang, email)
    return page


def _signed_in(elsewhere: walk.Person, lang: str, email: str, link: str) -> Page:
    """Signed in from the root URL in a browser of the other language (its pages in that
    language), the link opened there."""
    page = elsewhere()
    walk.signin_from_root(page, walk.OTHER[lang], email)
    assert walk.lang_of(page) == walk.OTHER[lang]
    page.goto(link)
    return page


def test_verification_link_signed_out_leads_through_signin_to_the_area(
    person: walk.Person,
    elsewhere: walk.Person,
    lang: str,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    inbox, n = mailbox[0], next(_ids)
    name, email = f"Vic Verify {lang}{n}", f"v-link-{lang}-{n}@example.com"
    walk.signup_from_root(person(), lang, name, email)
    link = _only_link(_received(inbox, email, SUBJECTS[lang]["verify"]))

    page = elsewhere()
    page.goto(link)
    page.get_by_role("button", name=t(lang, "verify.submit"), exact=True).click()
    _in(page, lang, "/signin")
    assert walk.status(page) == t(lang, "verify.signin")
    walk.step(page, snap, "verified-signed-out")
    walk.sign_in(page, lang, email)
    page.wait_for_url("**/areas/a_*")
    assert walk.heading(page) == t(lang, "area.title", area=name)
    assert walk.lang_of(page) == lang
    walk.step(page, snap, "verified-then-signed-in")


def test_invitation_links_signed_out_through_verifying_and_signed_in(
    person: walk.Person,
    elsewhere: walk.Person,
    lang: str,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    """An unverified invitee asks for the link from the invitation; opened signed out, it
    verifies, asks for sign-in and comes back to the invitation; the invitation's own
    link, signed in and verified, goes straight to My invitations."""
    inbox, n = mailbox[0], next(_ids)
    owner_name, owner_email = f"Ines Inviter {lang}{n}", f"o-link-{lang}-{n}@example.com"
    email = f"i-link-{lang}-{n}@example.com"
    invitee = person()
    walk.signup_from_root(invitee, lang, f"Ivo Invitee {lang}{n}", email)
    owner = walk.owner(person, lang, owner_name, owner_email)
    walk.invite(owner, email)
    invited = _received(inbox, email, SUBJECTS[lang]["invite"].format(area=owner_name))
    assert invited["Content-Language"] == lang
    invitation = _only_link(invited)

    invitee.goto(invitation)
    invitee.get_by_role("button", name=t(lang, "link.verify_send"), exact=True).click()
    invitee.wait_for_url("**/verify-email/sent?**")
    walk.verify_link(inbox, email, seen=1)  # the second verification mail came
    verify = _only_link(_received(inbox, email, SUBJECTS[lang]["verify"]))
    assert "return_to=" in verify
    page = elsewhere()
    page.goto(verify)
    page.get_by_role("button", name=t(lang, "verify.submit"), exact=True).click()
    _in(page, lang, "/signin")
    walk.step(page, snap, "verified-from-invitation-signed-out")
    walk.sign_in(page, lang, email)
    _in(page, lang, "/invitations")
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    assert page.get_by_role("listitem").filter(has_text=offer).count() == 1
    walk.step(page, snap, "verified-from-invitation-then-signed-in")

    # Signed in and verified now, the invitation's link goes straight to it.
    page = _signed_in(elsewhere, lang, email, invitation)
    _in(page, lang, "/invitations")
    walk.step(page, snap, "invitation-signed-in")
    walk.accept(page, owner_name, owner_name)


def test_access_request_and_outcome_links_signed_in_and_out(
    person: walk.Person,
    elsewhere: walk.Person,
    lang: str,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    inbox, n = mailbox[0], next(_ids)
    owner_name, owner_email = f"Olga Owner {lang}{n}", f"o-ar-{lang}-{n}@example.com"
    asker_email = f"a-ar-{lang}-{n}@example.com"
    owner = walk.owner(person, lang, owner_name, owner_email)
    walk.verify_from_email(owner, inbox, owner_email)
    asker = walk.owner(person, lang, f"Abel Asker {lang}{n}", asker_email)
    walk.verify_from_email(asker, inbox, asker_email)
    asker.goto("/")
    asker.get_by_role("link", name=t(lang, "ar.mine_title"), exact=True).click()
    asker.get_by_role("link", name=t(lang, "ar.ask_owner"), exact=True).click()
    asker.get_by_label(t(lang, "ar.owner_email"), exact=True).fill(owner_email)
    asker.get_by_role("radio", name=t(lang, "invite.some"), exact=True).check()
    walk.permission(asker, CONTACTS[lang]).check()
    asker.get_by_role("button", name=t(lang, "ar.send"), exact=True).click()
    asker.wait_for_url("**/access-requests?done=asked")

    asked = _received(inbox, owner_email, SUBJECTS[lang]["ask"].format(area=owner_name))
    assert asked["Content-Language"] == lang
    review = _only_link(asked)
    at_review = urlsplit(review).path

    # Opened where another account is signed in (here, the asker's), the link says whose
    # it is and offers to sign out and continue: sign-in, then the review.
    page = _signed_in(elsewhere, lang, asker_email, review)
    title, button = OTHER_ACCOUNT[lang]
    _in(page, lang, at_review)
    assert walk.heading(page) == title
    main = page.get_by_role("main").inner_text()
    assert f"{owner_email[0]}•••@example.com" in main and asker_email in main
    walk.step(page, snap, "review-another-account")
    page.get_by_role("button", name=button, exact=True).click()
    _in(page, lang, "/signin")
    walk.sign_in(page, lang, owner_email)
    _in(page, lang, at_review)
    assert asker_email in page.get_by_role("main").inner_text()

    # The owner, signed in, follows the mail's link: straight to the review.
    page = _signed_in(elsewhere, lang, owner_email, review)
    _in(page, lang, at_review)
    assert asker_email in page.get_by_role("main").inner_text()
    walk.step(page, snap, "review-signed-in")
    page.get_by_role("button", name=t(lang, "ar.approve"), exact=True).click()
    page.wait_for_url("**/users?done=approved")

    # The requester, signed out, follows the outcome's link: sign-in, then the requests.
    answer = _received(inbox, asker_email, SUBJECTS[lang]["approved"].format(area=owner_name))
    assert answer["Content-Language"] == lang
    mine = _only_link(answer)
    page = _signed_out(elsewhere, lang, mine, asker_email, snap, "outcome")
    _in(page, lang, urlsplit(mine).path)
    card = page.get_by_role("listitem").filter(has_text=owner_name)
    assert t(lang, "ar.status.approved") in card.inner_text()
    walk.step(page, snap, "outcome-then-signed-in")


def test_reminder_link_signed_in_and_out(
    person: walk.Person,
    elsewhere: walk.Person,
    lang: str,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    """The reminder that access ends links to that area's home: the delegate, in two
    areas, lands there, not on the chooser; once the access is gone, a page says so."""
    inbox, n = mailbox[0], next(_ids)
    owner_name, owner_email = f"Rosa Reminds {lang}{n}", f"o-end-{lang}-{n}@example.com"
    guest_name, guest_email = f"Gus Guest {lang}{n}", f"g-end-{lang}-{n}@example.com"
    end = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    owner = walk.owner(person, lang, owner_name, owner_email)
    walk.user_management(owner)
    walk.open_invite_form(owner)
    owner.get_by_label(t(lang, "invite.email"), exact=True).fill(guest_email)
    owner.get_by_label(t(lang, "until.label"), exact=True).fill(end)
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    owner.wait_for_url("**/users?*")
    guest = person()
    guest.goto(walk.invitation_link(inbox, guest_email, owner_name))
    walk.fill_signup(guest, lang, guest_name, guest_email)
    walk.accept(guest, owner_name, owner_name)

    reminder = _received(inbox, guest_email, SUBJECTS[lang]["ending"].format(area=owner_name))
    assert reminder["Content-Language"] == lang
    link = _only_link(reminder)
    home = t(lang, "area.title", area=owner_name)
    page = _signed_in(elsewhere, lang, guest_email, link)
    _in(page, lang, urlsplit(link).path)
    assert walk.heading(page) == home
    facts = page.get_by_role("main").locator("dl").inner_text()
    assert t(lang, "um.access_until") in facts and f"{end.replace('T', ' ')} (UTC)" in facts
    walk.step(page, snap, "reminder-signed-in")

    page = _signed_out(elsewhere, lang, link, guest_email, snap, "reminder")
    _in(page, lang, urlsplit(link).path)
    assert walk.heading(page) == home
    walk.step(page, snap, "reminder-then-signed-in")

    # The owner takes the access away before it ends; the link now says it is out of
    # reach, with a way on.
    walk.remove(owner, guest_email)
    page = _signed_in(elsewhere, lang, guest_email, link)
    _in(page, lang, urlsplit(link).path)
    title, why = OUT_OF_REACH[lang]
    assert walk.heading(page) == title
    assert why in page.get_by_role("main").inner_text()
    walk.step(page, snap, "reminder-access-gone")
    page.get_by_role("main").get_by_role("link", name=t(lang, "area.gone_yours")).click()
    page.wait_for_url("**/areas/a_*")
    assert walk.heading(page) == t(lang, "area.title", area=guest_name)
