"""Email verification and invitation links in a real browser, walked as people do.

From the root URL and links taken out of mail caught by the SMTP inbox, finding
everything by role and visible label, in English and Spanish. Every step is checked
at 1280×800 and at 390×844 (no sideways scrolling) and saved as a screenshot:

- an existing customer signs up, is told to check their email, verifies through the
  emailed link (the page shows the address and a button), is invited later, sees the
  invitation in My invitations and accepts it from the emailed link;
- an unverified customer opening an invitation link is told to verify first, asks for
  the link, verifies, and comes back to that invitation;
- a used verification link, and an expired one, offer "send me a new link";
- the wrong account opening an invitation link is told where it was sent (masked),
  who they are signed in as, and switches;
- sign-up from an invitation link names the inviter and the Client Area, with the
  email filled in.

The words of this work are written out here, so a lost translation fails the test;
labels from other pages (sign-up, User Management…) are read from the catalogues.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from delegauth.pages.text import t
from tests.browser.conftest import Snap
from tests.conftest import PASSWORD, POLICIES
from tests.e2e.conftest import ISSUER, Server, _Inbox, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page


@dataclass(frozen=True)
class Words:
    lang: str
    accept_language: str
    verify_subject: str
    check_title: str
    check_sent_to: str
    resend: str
    resent: str
    go_on: str
    verify_title: str
    verify_intro: str
    verify_button: str
    verified: str
    verified_signin: str
    spent_title: str
    new_link: str
    if_account: str
    verify_first_title: str
    verify_first: str
    send_me: str
    wrong_title: str
    wrong_sent_to: str
    wrong_signed_in: str
    wrong_button: str
    invited: str
    invited_email: str


WORDS = {
    "en": Words(
        lang="en",
        accept_language="en-US,en;q=0.9",
        verify_subject="Confirm your email address",
        check_title="Check your email",
        check_sent_to="We sent a link to {email}. Open it to verify your email address.",
        resend="Resend the link",
        resent="We sent a new link to {email}.",
        go_on="Continue to your Client Area",
        verify_title="Verify your email address",
        verify_intro=(
            "You are verifying {email}. Press the button to confirm that this address is yours."
        ),
        verify_button="Verify my email",
        verified="Your email address is verified.",
        verified_signin="Your email address is verified. Sign in to continue.",
        spent_title="This link can no longer be used",
        new_link="Send me a new link",
        if_account=(
            "If {email} has an account waiting to be verified, a new link is on its way to it."
        ),
        verify_first_title="Verify your email first",
        verify_first=(
            "Before you can accept it, confirm that {email} is yours: we will email you a "
            "link, and bring you back to this invitation."
        ),
        send_me="Send me the link",
        wrong_title="This invitation is for another address",
        wrong_sent_to="This invitation was sent to {masked}.",
        wrong_signed_in="You are signed in as {email}.",
        wrong_button="Sign out and continue",
        invited="{who} invited you to manage the Client Area {area}.",
        invited_email="The invitation was sent to this address.",
    ),
    "es": Words(
        lang="es",
        accept_language="es-ES,es;q=0.9",
        verify_subject="Confirma tu dirección de correo",
        check_title="Revisa tu correo",
        check_sent_to=(
            "Hemos enviado un enlace a {email}. Ábrelo para verificar tu dirección de correo."
        ),
        resend="Reenviar el enlace",
        resent="Hemos enviado un enlace nuevo a {email}.",
        go_on="Ir a tu Área de Cliente",
        verify_title="Verifica tu dirección de correo",
        verify_intro=(
            "Vas a verificar {email}. Pulsa el botón para confirmar que esta dirección es tuya."
        ),
        verify_button="Verificar mi correo",
        verified="Tu dirección de correo está verificada.",
        verified_signin="Tu dirección de correo está verificada. Entra para continuar.",
        spent_title="Este enlace ya no se puede usar",
        new_link="Envíame un enlace nuevo",
        if_account=(
            "Si {email} tiene una cuenta pendiente de verificar, le hemos enviado un enlace nuevo."
        ),
        verify_first_title="Primero verifica tu correo",
        verify_first=(
            "Antes de aceptarla, confirma que {email} es tuya: te enviaremos un enlace por "
            "correo y te traeremos de vuelta a esta invitación."
        ),
        send_me="Envíame el enlace",
        wrong_title="Esta invitación es para otra dirección",
        wrong_sent_to="Esta invitación se envió a {masked}.",
        wrong_signed_in="Has iniciado sesión como {email}.",
        wrong_button="Cerrar sesión y seguir",
        invited="{who} te ha invitado a gestionar el Área de Cliente {area}.",
        invited_email="La invitación se envió a esta dirección.",
    ),
}
SIZES = ((1280, 800), (390, 844))
_ids = itertools.count(1)


@pytest.fixture(params=sorted(WORDS))
def words(request: pytest.FixtureRequest) -> Words:
    return WORDS[request.param]


def _people(browser: Browser, server: Server, words: Words) -> Iterator[Callable[[], Page]]:
    made: list[BrowserContext] = []

    def new_page() -> Page:
        context = browser.new_context(
            base_url=server.base,
            locale=words.accept_language.split(",")[0],
            extra_http_headers={"Accept-Language": words.accept_language},
            viewport={"width": SIZES[0][0], "height": SIZES[0][1]},
        )
        context.set_default_timeout(10_000)
        made.append(context)
        return context.new_page()

    try:
        yield new_page
    finally:
        for context in made:
            context.close()


@pytest.fixture
def person(browser: Browser, live_server: Server, words: Words) -> Iterator[Callable[[], Page]]:
    """A maker of people: each a browser context of their own, speaking the test's language."""
    yield from _people(browser, live_server, words)


def _step(page: Page, snap: Snap, name: str) -> None:
    """Check the page at desktop and phone sizes (no sideways scrolling); screenshot both."""
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") in ("en", "es")
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, (page.url, width, page.evaluate("document.documentElement.scrollWidth"))
        snap(page, f"{name}-{width}")
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})


def _heading(page: Page) -> str:
    return page.get_by_role("heading", level=1).inner_text()


def _path(page: Page) -> str:
    return urlsplit(page.url).path


def _mails_to(inbox: _Inbox, to: str, subject: str) -> list[str]:
    return [
        inbox.text(m)
        for m in list(inbox.messages)
        if m["To"] == to and str(make_header(decode_header(m["Subject"]))) == subject
    ]


def _mail(inbox: _Inbox, to: str, subject_has: str) -> str:
    """The text of the newest mail to ``to`` whose (decoded) subject has these words."""
    deadline = time.monotonic() + 20
    while True:
        for m in reversed(list(inbox.messages)):
            if m["To"] == to and subject_has in str(make_header(decode_header(m["Subject"]))):
                return inbox.text(m)
        assert time.monotonic() < deadline, f"no mail to {to}: {subject_has}"
        time.sleep(0.1)


def _new_mail(inbox: _Inbox, to: str, subject: str, seen: int) -> str:
    """The text of the (seen+1)-th mail to ``to`` with this subject, waiting for it."""
    deadline = time.monotonic() + 20
    while True:
        mails = _mails_to(inbox, to, subject)
        if len(mails) > seen:
            return mails[seen]
        assert time.monotonic() < deadline, f"no new mail to {to}: {subject}"
        time.sleep(0.1)


def _link(text: str, path: str) -> str:
    """A link in a mail, as a path on our server (the mail names the public URL)."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"\?\S+)", text)
    assert match, f"no {path} link in the mail:\n{text}"
    return match.group(1)


def _signup_from_root(page: Page, lang: str, name: str, email: str) -> None:
    page.goto("/")
    page.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    page.get_by_role("link", name=t(lang, "signin.signup_link"), exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    page.get_by_label(t(lang, "signup.name"), exact=True).fill(name)
    page.get_by_label(t(lang, "signin.email"), exact=True).fill(email)
    page.get_by_label(t(lang, "signin.password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=t(lang, "signup.submit"), exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path != "/signup")


def _sign_in(page: Page, lang: str, email: str) -> None:
    page.get_by_label(t(lang, "signin.email"), exact=True).fill(email)
    page.get_by_label(t(lang, "signin.password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=t(lang, "signin.submit"), exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path != "/signin")


def _open_menu(page: Page, lang: str) -> Locator:
    menu = page.get_by_role("navigation", name=t(lang, "nav.account"))
    menu.locator("summary").click()
    return menu


def _invite(owner: Page, lang: str, email: str) -> None:
    """The owner invites ``email`` with all permissions, through the menu."""
    menu = _open_menu(owner, lang)
    menu.get_by_role("link", name=t(lang, "nav.user_management"), exact=True).click()
    owner.get_by_role("link", name=t(lang, "um.invite"), exact=True).click()
    owner.wait_for_url("**/users/invite")
    owner.get_by_label(t(lang, "invite.email"), exact=True).fill(email)
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    owner.wait_for_url("**/users?*")


def _owner(person: Callable[[], Page], lang: str, n: int) -> tuple[Page, str]:
    name = f"Olivia Owner {lang}{n}"
    owner = person()
    _signup_from_root(owner, lang, name, f"o-ver-{lang}-{n}@example.com")
    owner.get_by_role("link", name=t(lang, "check.continue"), exact=True).click()
    owner.wait_for_url(lambda u: not urlsplit(u).path.startswith("/verify-email"))
    return owner, name


def test_existing_customer_verifies_then_accepts_from_my_invitations_and_the_link(
    person: Callable[[], Page], words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    name, email = f"Carmen Customer {lang}{n}", f"c-ver-{lang}-{n}@example.com"

    # The customer signs up from the root URL: "check your email", with a way to resend.
    customer = person()
    _signup_from_root(customer, lang, name, email)
    assert _heading(customer) == words.check_title
    assert customer.get_by_text(words.check_sent_to.format(email=email)).is_visible()
    _step(customer, snap, "check-your-email")
    _new_mail(inbox, email, words.verify_subject, 0)  # the sign-up's mail
    seen = 1
    customer.get_by_role("button", name=words.resend, exact=True).click()
    customer.wait_for_url("**/verify-email/sent?resent=1*")
    assert customer.get_by_role("status").inner_text() == words.resent.format(email=email)
    _step(customer, snap, "link-resent")
    link = _link(_new_mail(inbox, email, words.verify_subject, seen), "/verify-email")

    # The emailed link shows the address and a button; pressing it verifies.
    customer.goto(link)
    assert _heading(customer) == words.verify_title
    assert customer.get_by_text(words.verify_intro.format(email=email)).is_visible()
    _step(customer, snap, "verify-page")
    customer.get_by_role("button", name=words.verify_button, exact=True).click()
    customer.wait_for_url("**/invitations?verified=1")
    assert customer.get_by_role("status").inner_text() == words.verified
    _step(customer, snap, "verified")

    # Later the owner invites the customer's address.
    owner, owner_name = _owner(person, lang, n)
    _invite(owner, lang, email)

    # The invitation shows in My invitations…
    customer.goto("/")
    menu = _open_menu(customer, lang)
    menu.get_by_role("link", name=t(lang, "mine.title"), exact=True).click()
    customer.wait_for_url("**/invitations")
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    card = customer.get_by_role("listitem").filter(has_text=offer)
    assert card.count() == 1
    _step(customer, snap, "my-invitations")

    # …and the emailed link, in a fresh browser, leads through sign-in to it.
    invitation_mail = _mail(inbox, email, owner_name)
    later = person()
    later.goto(_link(invitation_mail, "/invitations/accept"))
    later.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    _step(later, snap, "invitation-link-signed-out")
    later.get_by_role("link", name=t(lang, "signin.submit"), exact=True).click()
    later.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    _sign_in(later, lang, email)
    assert _path(later) == "/invitations"
    card = later.get_by_role("listitem").filter(has_text=offer)
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    later.wait_for_url("**/invitations?accepted=*")
    accepted = t(lang, "mine.accepted", area=owner_name)
    assert accepted in later.get_by_role("status").all_inner_texts()
    _step(later, snap, "accepted")


def test_unverified_customer_is_told_to_verify_and_comes_back_to_the_invitation(
    person: Callable[[], Page], words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    name, email = f"Uma Unverified {lang}{n}", f"u-ver-{lang}-{n}@example.com"
    customer = person()
    _signup_from_root(customer, lang, name, email)
    assert _heading(customer) == words.check_title
    owner, owner_name = _owner(person, lang, n)
    _invite(owner, lang, email)

    # Still unverified, the customer opens the emailed invitation link.
    customer.goto(_link(_mail(inbox, email, owner_name), "/invitations/accept"))
    assert _heading(customer) == words.verify_first_title
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    assert customer.get_by_text(offer, exact=True).is_visible()
    assert customer.get_by_text(words.verify_first.format(email=email)).is_visible()
    _step(customer, snap, "verify-first")
    _new_mail(inbox, email, words.verify_subject, 0)  # the sign-up's mail, without the way back
    seen = 1
    customer.get_by_role("button", name=words.send_me, exact=True).click()
    customer.wait_for_url("**/verify-email/sent?*")
    assert _heading(customer) == words.check_title
    _step(customer, snap, "verify-first-sent")

    # The new link verifies and brings the customer back to that invitation.
    link = _link(_new_mail(inbox, email, words.verify_subject, seen), "/verify-email")
    assert "return_to=" in link
    customer.goto(link)
    _step(customer, snap, "verify-page")
    customer.get_by_role("button", name=words.verify_button, exact=True).click()
    customer.wait_for_url("**/invitations?verified=1")
    assert customer.get_by_role("status").inner_text() == words.verified
    card = customer.get_by_role("listitem").filter(has_text=offer)
    assert card.count() == 1
    _step(customer, snap, "back-at-the-invitation")
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    customer.wait_for_url("**/invitations?accepted=*")
    _step(customer, snap, "accepted")


def test_a_used_link_offers_a_new_one(
    person: Callable[[], Page], words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    email = f"s-ver-{lang}-{n}@example.com"
    _signup_from_root(person(), lang, f"Sam Spent {lang}{n}", email)
    link = _link(_mail(inbox, email, words.verify_subject), "/verify-email")

    # Opened signed out (another device): verifying leads to sign-in, which says so.
    other = person()
    other.goto(link)
    other.get_by_role("button", name=words.verify_button, exact=True).click()
    other.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    assert other.get_by_role("status").inner_text() == words.verified_signin
    _step(other, snap, "verified-signed-out")

    # The same link again: a clear page, and "send me a new link" that reveals nothing.
    again = person()
    again.goto(link)
    assert _heading(again) == words.spent_title
    _step(again, snap, "used-link")
    again.get_by_label(t(lang, "signin.email"), exact=True).fill(email)
    again.get_by_role("button", name=words.new_link, exact=True).click()
    assert _heading(again) == words.check_title
    assert again.get_by_text(words.if_account.format(email=email)).is_visible()
    _step(again, snap, "new-link-asked")


@pytest.fixture(scope="module")
def expiring_server(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[_Inbox, int]
) -> Iterator[Server]:
    """A server whose verification links expire at once (DELEGAUTH_VERIFICATION_HOURS=0)."""
    tmp = tmp_path_factory.mktemp("expiring")
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp / "keys"),
        "DELEGAUTH_SMTP_URL": f"smtp://127.0.0.1:{mailbox[1]}",
        "DELEGAUTH_VERIFICATION_HOURS": "0",
    }
    server = start_server(env, tmp / "server.log")
    try:
        yield server
    finally:
        server.stop()


def test_an_expired_link_sends_a_new_one(
    browser: Browser,
    expiring_server: Server,
    words: Words,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    email = f"e-ver-{lang}-{n}@example.com"
    people = _people(browser, expiring_server, words)
    person = next(people)
    try:
        _signup_from_root(person(), lang, f"Eva Expired {lang}{n}", email)
        link = _link(_mail(inbox, email, words.verify_subject), "/verify-email")
        page = person()
        page.goto(link)
        assert _heading(page) == words.spent_title
        _step(page, snap, "expired-link")
        page.get_by_label(t(lang, "signin.email"), exact=True).fill(email)
        page.get_by_role("button", name=words.new_link, exact=True).click()
        assert _heading(page) == words.check_title
        assert page.get_by_text(words.if_account.format(email=email)).is_visible()
        _step(page, snap, "expired-new-link-sent")
        new = _new_mail(inbox, email, words.verify_subject, 1)
        assert _link(new, "/verify-email") != link
    finally:
        people.close()


def test_the_wrong_account_is_told_and_switches(
    person: Callable[[], Page], words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    invitee, other = f"jane-{lang}-{n}@example.com", f"xavier-{lang}-{n}@example.net"
    # The invitee has an account already, and verifies it.
    first = person()
    _signup_from_root(first, lang, f"Jane {lang}{n}", invitee)
    first.goto(_link(_mail(inbox, invitee, words.verify_subject), "/verify-email"))
    first.get_by_role("button", name=words.verify_button, exact=True).click()
    first.wait_for_url("**/invitations?verified=1")
    owner, owner_name = _owner(person, lang, n)
    _invite(owner, lang, invitee)

    # Someone else, signed in, opens the link (say, on a shared computer).
    wrong = person()
    _signup_from_root(wrong, lang, f"Xavier {lang}{n}", other)
    wrong.goto(_link(_mail(inbox, invitee, owner_name), "/invitations/accept"))
    assert _heading(wrong) == words.wrong_title
    masked = "j•••@example.com"
    assert wrong.get_by_text(words.wrong_sent_to.format(masked=masked)).is_visible()
    assert wrong.get_by_text(words.wrong_signed_in.format(email=other)).is_visible()
    assert invitee not in wrong.locator("body").inner_text()
    _step(wrong, snap, "wrong-account")

    # Sign out and continue: back to the invitation, signed out; sign in as the invitee.
    wrong.get_by_role("button", name=words.wrong_button, exact=True).click()
    wrong.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    _step(wrong, snap, "switched")
    wrong.get_by_role("link", name=t(lang, "signin.submit"), exact=True).click()
    wrong.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    _sign_in(wrong, lang, invitee)
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    card = wrong.get_by_role("listitem").filter(has_text=offer)
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    wrong.wait_for_url("**/invitations?accepted=*")
    _step(wrong, snap, "accepted-as-the-invitee")


def test_signup_from_an_invitation_names_the_inviter_and_area(
    person: Callable[[], Page], words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    newcomer = f"nina-{lang}-{n}@example.com"
    owner, owner_name = _owner(person, lang, n)
    _invite(owner, lang, newcomer)

    page = person()
    page.goto(_link(_mail(inbox, newcomer, owner_name), "/invitations/accept"))
    page.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    invited = words.invited.format(who=owner_name, area=owner_name)
    assert page.get_by_text(invited, exact=True).is_visible()
    email_box = page.get_by_label(t(lang, "signin.email"), exact=True)
    assert email_box.input_value() == newcomer
    assert email_box.get_attribute("readonly") is not None
    assert page.get_by_text(words.invited_email, exact=True).is_visible()
    _step(page, snap, "signup-from-invitation")
    page.get_by_label(t(lang, "signup.name"), exact=True).fill(f"Nina {lang}{n}")
    page.get_by_label(t(lang, "signin.password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=t(lang, "signup.submit"), exact=True).click()
    # Signed up through the link to this address: verified, straight to the invitation.
    page.wait_for_url("**/invitations")
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    assert page.get_by_role("listitem").filter(has_text=offer).count() == 1
    _step(page, snap, "signed-up-from-invitation")
