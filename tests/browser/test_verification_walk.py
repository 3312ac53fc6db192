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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from delegauth.pages.text import t
from tests.browser import walk
from tests.browser.conftest import Snap, serve
from tests.conftest import PASSWORD
from tests.e2e.conftest import Server, _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@dataclass(frozen=True)
class Words:
    lang: str
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
_ids = itertools.count(1)


@pytest.fixture
def words(lang: str) -> Words:
    return WORDS[lang]


def _owner(person: walk.Person, lang: str, n: int) -> tuple[Page, str]:
    name = f"Olivia Owner {lang}{n}"
    return walk.owner(person, lang, name, f"o-ver-{lang}-{n}@example.com"), name


def test_existing_customer_verifies_then_accepts_from_my_invitations_and_the_link(
    person: walk.Person, words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    name, email = f"Carmen Customer {lang}{n}", f"c-ver-{lang}-{n}@example.com"

    # The customer signs up from the root URL: "check your email", with a way to resend.
    customer = person()
    walk.signup_from_root(customer, lang, name, email)
    assert walk.heading(customer) == words.check_title
    assert customer.get_by_text(words.check_sent_to.format(email=email)).is_visible()
    walk.step(customer, snap, "check-your-email")
    walk.new_mail(inbox, email, words.verify_subject, 0)  # the sign-up's mail
    seen = 1
    customer.get_by_role("button", name=words.resend, exact=True).click()
    customer.wait_for_url("**/verify-email/sent?resent=1*")
    assert customer.get_by_role("status").inner_text() == words.resent.format(email=email)
    walk.step(customer, snap, "link-resent")
    link = walk.link(walk.new_mail(inbox, email, words.verify_subject, seen), "/verify-email")

    # The emailed link shows the address and a button; pressing it verifies.
    customer.goto(link)
    assert walk.heading(customer) == words.verify_title
    assert customer.get_by_text(words.verify_intro.format(email=email)).is_visible()
    walk.step(customer, snap, "verify-page")
    customer.get_by_role("button", name=words.verify_button, exact=True).click()
    customer.wait_for_url("**/invitations?verified=1")
    assert customer.get_by_role("status").inner_text() == words.verified
    walk.step(customer, snap, "verified")

    # Later the owner invites the customer's address.
    owner, owner_name = _owner(person, lang, n)
    walk.invite(owner, email)

    # The invitation shows in My invitations…
    customer.goto("/")
    walk.my_invitations(customer)
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    card = customer.get_by_role("listitem").filter(has_text=offer)
    assert card.count() == 1
    walk.step(customer, snap, "my-invitations")

    # …and the emailed link, in a fresh browser, leads through sign-in to it.
    invitation_mail = walk.mail(inbox, email, owner_name)
    later = person()
    later.goto(walk.link(invitation_mail, "/invitations/accept"))
    later.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    walk.step(later, snap, "invitation-link-signed-out")
    later.get_by_role("link", name=t(lang, "signin.submit"), exact=True).click()
    later.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    walk.sign_in(later, lang, email)
    assert walk.path(later) == "/invitations"
    card = later.get_by_role("listitem").filter(has_text=offer)
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    later.wait_for_url("**/invitations?accepted=*")
    accepted = t(lang, "mine.accepted", area=owner_name)
    assert accepted in later.get_by_role("status").all_inner_texts()
    walk.step(later, snap, "accepted")


def test_unverified_customer_is_told_to_verify_and_comes_back_to_the_invitation(
    person: walk.Person, words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    name, email = f"Uma Unverified {lang}{n}", f"u-ver-{lang}-{n}@example.com"
    customer = person()
    walk.signup_from_root(customer, lang, name, email)
    assert walk.heading(customer) == words.check_title
    owner, owner_name = _owner(person, lang, n)
    walk.invite(owner, email)

    # Still unverified, the customer opens the emailed invitation link.
    customer.goto(walk.invitation_link(inbox, email, owner_name))
    assert walk.heading(customer) == words.verify_first_title
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    assert customer.get_by_text(offer, exact=True).is_visible()
    assert customer.get_by_text(words.verify_first.format(email=email)).is_visible()
    walk.step(customer, snap, "verify-first")
    walk.new_mail(inbox, email, words.verify_subject, 0)  # the sign-up's mail, without the way back
    seen = 1
    customer.get_by_role("button", name=words.send_me, exact=True).click()
    customer.wait_for_url("**/verify-email/sent?*")
    assert walk.heading(customer) == words.check_title
    walk.step(customer, snap, "verify-first-sent")

    # The new link verifies and brings the customer back to that invitation.
    link = walk.link(walk.new_mail(inbox, email, words.verify_subject, seen), "/verify-email")
    assert "return_to=" in link
    customer.goto(link)
    walk.step(customer, snap, "verify-page")
    customer.get_by_role("button", name=words.verify_button, exact=True).click()
    customer.wait_for_url("**/invitations?verified=1")
    assert customer.get_by_role("status").inner_text() == words.verified
    card = customer.get_by_role("listitem").filter(has_text=offer)
    assert card.count() == 1
    walk.step(customer, snap, "back-at-the-invitation")
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    customer.wait_for_url("**/invitations?accepted=*")
    walk.step(customer, snap, "accepted")


def test_a_used_link_offers_a_new_one(
    person: walk.Person, words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    email = f"s-ver-{lang}-{n}@example.com"
    walk.signup_from_root(person(), lang, f"Sam Spent {lang}{n}", email)
    link = walk.link(walk.mail(inbox, email, words.verify_subject), "/verify-email")

    # Opened signed out (another device): verifying leads to sign-in, which says so.
    other = person()
    other.goto(link)
    other.get_by_role("button", name=words.verify_button, exact=True).click()
    other.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    assert other.get_by_role("status").inner_text() == words.verified_signin
    walk.step(other, snap, "verified-signed-out")

    # The same link again: a clear page, and "send me a new link" that reveals nothing.
    again = person()
    again.goto(link)
    assert walk.heading(again) == words.spent_title
    walk.step(again, snap, "used-link")
    again.get_by_label(t(lang, "signin.email"), exact=True).fill(email)
    again.get_by_role("button", name=words.new_link, exact=True).click()
    assert walk.heading(again) == words.check_title
    assert again.get_by_text(words.if_account.format(email=email)).is_visible()
    walk.step(again, snap, "new-link-asked")


@pytest.fixture(scope="module")
def expiring_server(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[_Inbox, int]
) -> Iterator[Server]:
    """A server whose verification links expire at once."""
    yield from serve(tmp_path_factory, mailbox[1], DELEGAUTH_VERIFICATION_HOURS="0")


def test_an_expired_link_sends_a_new_one(
    browser: Browser,
    expiring_server: Server,
    words: Words,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    email = f"e-ver-{lang}-{n}@example.com"
    people = walk.people(browser, expiring_server, words.lang)
    person = next(people)
    try:
        walk.signup_from_root(person(), lang, f"Eva Expired {lang}{n}", email)
        link = walk.link(walk.mail(inbox, email, words.verify_subject), "/verify-email")
        page = person()
        page.goto(link)
        assert walk.heading(page) == words.spent_title
        walk.step(page, snap, "expired-link")
        page.get_by_label(t(lang, "signin.email"), exact=True).fill(email)
        page.get_by_role("button", name=words.new_link, exact=True).click()
        assert walk.heading(page) == words.check_title
        assert page.get_by_text(words.if_account.format(email=email)).is_visible()
        walk.step(page, snap, "expired-new-link-sent")
        new = walk.new_mail(inbox, email, words.verify_subject, 1)
        assert walk.link(new, "/verify-email") != link
    finally:
        people.close()


def test_the_wrong_account_is_told_and_switches(
    person: walk.Person, words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    invitee, other = f"jane-{lang}-{n}@example.com", f"xavier-{lang}-{n}@example.net"
    # The invitee has an account already, and verifies it.
    first = person()
    walk.signup_from_root(first, lang, f"Jane {lang}{n}", invitee)
    walk.verify_from_email(first, inbox, invitee)
    assert walk.path(first) == "/invitations"
    owner, owner_name = _owner(person, lang, n)
    walk.invite(owner, invitee)

    # Someone else, signed in, opens the link (say, on a shared computer).
    wrong = person()
    walk.signup_from_root(wrong, lang, f"Xavier {lang}{n}", other)
    wrong.goto(walk.invitation_link(inbox, invitee, owner_name))
    assert walk.heading(wrong) == words.wrong_title
    masked = "j•••@example.com"
    assert wrong.get_by_text(words.wrong_sent_to.format(masked=masked)).is_visible()
    assert wrong.get_by_text(words.wrong_signed_in.format(email=other)).is_visible()
    assert invitee not in wrong.locator("body").inner_text()
    walk.step(wrong, snap, "wrong-account")

    # Sign out and continue: back to the invitation, signed out; sign in as the invitee.
    wrong.get_by_role("button", name=words.wrong_button, exact=True).click()
    wrong.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    walk.step(wrong, snap, "switched")
    wrong.get_by_role("link", name=t(lang, "signin.submit"), exact=True).click()
    wrong.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    walk.sign_in(wrong, lang, invitee)
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    card = wrong.get_by_role("listitem").filter(has_text=offer)
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    wrong.wait_for_url("**/invitations?accepted=*")
    walk.step(wrong, snap, "accepted-as-the-invitee")


def test_signup_from_an_invitation_names_the_inviter_and_area(
    person: walk.Person, words: Words, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    lang, n, inbox = words.lang, next(_ids), mailbox[0]
    newcomer = f"nina-{lang}-{n}@example.com"
    owner, owner_name = _owner(person, lang, n)
    walk.invite(owner, newcomer)

    page = person()
    page.goto(walk.invitation_link(inbox, newcomer, owner_name))
    page.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    invited = words.invited.format(who=owner_name, area=owner_name)
    assert page.get_by_text(invited, exact=True).is_visible()
    email_box = page.get_by_label(t(lang, "signin.email"), exact=True)
    assert email_box.input_value() == newcomer
    assert email_box.get_attribute("readonly") is not None
    assert page.get_by_text(words.invited_email, exact=True).is_visible()
    walk.step(page, snap, "signup-from-invitation")
    page.get_by_label(t(lang, "signup.name"), exact=True).fill(f"Nina {lang}{n}")
    page.get_by_label(t(lang, "signin.password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=t(lang, "signup.submit"), exact=True).click()
    # Signed up through the link to this address: verified, straight to the invitation.
    page.wait_for_url("**/invitations")
    offer = t(lang, "mine.from", who=owner_name, area=owner_name)
    assert page.get_by_role("listitem").filter(has_text=offer).count() == 1
    walk.step(page, snap, "signed-up-from-invitation")
