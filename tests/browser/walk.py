"""The steps people take through the pages, shared by the browser walks.

Everything starts from the root URL or from a link taken out of a mail caught by the
SMTP inbox, and finds what it needs by role and visible label, in the page's language
(labels are read from the catalogues with ``t``; each test writes out the words it is
about, so a lost translation fails there).

Each builder is a person's step: sign up from the root URL, sign in, open the account
menu, invite, accept from My invitations. ``step`` checks the page at desktop and
phone sizes (no sideways scrolling) and saves a screenshot of each.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from delegauth.pages.text import t
from tests.browser.conftest import Snap
from tests.conftest import PASSWORD
from tests.e2e.conftest import Server, _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

DESKTOP, PHONE = (1280, 800), (390, 844)
SIZES = (DESKTOP, PHONE)
ACCEPT_LANGUAGE = {"en": "en-US,en;q=0.9", "es": "es-ES,es;q=0.9"}
OTHER = {"en": "es", "es": "en"}  # a browser that does not speak the mail's language
Person = Callable[[], "Page"]


@dataclass(frozen=True)
class FormWords:
    """The sign-up and sign-in forms' words, written out (a lost translation fails)."""

    lang: str
    name: str
    email: str
    password: str
    signup: str
    signup_link: str
    signin: str


FORM_WORDS = {
    "en": FormWords(
        lang="en",
        name="Your name",
        email="Email",
        password="Password",
        signup="Sign up",
        signup_link="Sign up",
        signin="Sign in",
    ),
    "es": FormWords(
        lang="es",
        name="Tu nombre",
        email="Correo electrónico",
        password="Contraseña",
        signup="Registrarme",
        signup_link="Regístrate",
        signin="Entrar",
    ),
}


def people(
    browser: Browser,
    server: Server,
    lang: str,
    size: tuple[int, int] = DESKTOP,
    prepare: Callable[[BrowserContext], None] | None = None,
    timezone_id: str | None = None,
) -> Iterator[Person]:
    """A maker of people, each a browser context of their own speaking ``lang`` (made
    ready by ``prepare``, in ``timezone_id`` if given); for a fixture to ``yield from``:
    the contexts close after."""
    made: list[BrowserContext] = []

    def new_page() -> Page:
        context = browser.new_context(
            base_url=server.base,
            locale=ACCEPT_LANGUAGE[lang].split(",")[0],
            extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE[lang]},
            viewport={"width": size[0], "height": size[1]},
            **({"timezone_id": timezone_id} if timezone_id else {}),
        )
        context.set_default_timeout(10_000)
        if prepare is not None:
            prepare(context)
        made.append(context)
        return context.new_page()

    try:
        yield new_page
    finally:
        for context in made:
            context.close()


# -- what a page shows -------------------------------------------------------------


def heading(page: Page) -> str:
    return page.get_by_role("heading", level=1).inner_text()


def path(page: Page) -> str:
    return urlsplit(page.url).path


def lang_of(page: Page) -> str:
    return page.locator("html").get_attribute("lang") or "en"


def status(page: Page) -> str:
    return page.get_by_role("status").inner_text()


def permission(page: Page, label: str) -> Locator:
    """A permission's checkbox by its label (its name runs on into its description)."""
    return page.get_by_role("checkbox", name=re.compile("^" + re.escape(label)))


def row(page: Page, text: str) -> Locator:
    return page.get_by_role("row").filter(has_text=text)


def fits(page: Page) -> None:
    """No sideways scrolling: the document is no wider than the viewport."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None and width <= viewport["width"], (page.url, width, viewport)


def step(page: Page, snap: Snap, name: str) -> None:
    """Check the page at each size (it fits, it has the switcher) and screenshot it."""
    page.wait_for_load_state()
    assert lang_of(page) in ACCEPT_LANGUAGE
    assert page.get_by_role("navigation", name="language").count() == 1, page.url
    before = page.viewport_size
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        fits(page)
        snap(page, f"{name}-{width}x{height}")
    if before is not None:
        page.set_viewport_size(before)


# -- signing up and in ---------------------------------------------------------------


def signup_from_root(page: Page, lang: str, name: str, email: str) -> None:
    """From the root URL: the sign-in page's "Sign up" link, then the form."""
    page.goto("/")
    page.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    page.get_by_role("link", name=t(lang, "signin.signup_link"), exact=True).click()
    fill_signup(page, lang, name, email)


def fill_signup(page: Page, lang: str, name: str, email: str) -> None:
    """On the sign-up form: name, email (unless an invitation filled it in), password."""
    page.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    page.get_by_label(t(lang, "signup.name"), exact=True).fill(name)
    email_box = page.get_by_label(t(lang, "signin.email"), exact=True)
    if not email_box.input_value():
        email_box.fill(email)
    page.get_by_label(t(lang, "signin.password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=t(lang, "signup.submit"), exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path != "/signup")


def go_on_from_check_email(page: Page, lang: str) -> None:
    """ "Check your email": go on to the Client Area without verifying yet."""
    if path(page).startswith("/verify-email"):
        page.get_by_role("link", name=t(lang, "check.continue"), exact=True).click()
        page.wait_for_url(lambda u: not urlsplit(u).path.startswith("/verify-email"))


def sign_in(page: Page, lang: str, email: str) -> None:
    """On the sign-in form."""
    page.get_by_label(t(lang, "signin.email"), exact=True).fill(email)
    page.get_by_label(t(lang, "signin.password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=t(lang, "signin.submit"), exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path != "/signin")


def signin_from_root(page: Page, lang: str, email: str) -> None:
    page.goto("/")
    page.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    sign_in(page, lang, email)


def owner(person: Person, lang: str, name: str, email: str) -> Page:
    """A new customer, signed up from the root URL and in their Client Area."""
    page = person()
    signup_from_root(page, lang, name, email)
    go_on_from_check_email(page, lang)
    return page


# -- the account menu and User Management ----------------------------------------------


def open_menu(page: Page) -> Locator:
    menu = page.get_by_role("navigation", name=t(lang_of(page), "nav.account"))
    menu.locator("summary").click()
    return menu


def user_management(page: Page) -> None:
    """Through the account menu."""
    lang = lang_of(page)
    open_menu(page).get_by_role("link", name=t(lang, "nav.user_management"), exact=True).click()
    page.wait_for_url("**/users")


def open_invite_form(page: Page) -> None:
    """From User Management: Invite New User."""
    page.get_by_role("link", name=t(lang_of(page), "um.invite"), exact=True).click()
    page.wait_for_url("**/users/invite")


def invite(
    page: Page,
    email: str,
    permissions: tuple[str, ...] = (),
    *,
    mail_language: str = "",
) -> None:
    """Through the menu: invite ``email`` with all permissions, or with these (by label)."""
    lang = lang_of(page)
    user_management(page)
    open_invite_form(page)
    page.get_by_label(t(lang, "invite.email"), exact=True).fill(email)
    if permissions:
        page.get_by_role("radio", name=t(lang, "invite.some"), exact=True).check()
        for label in permissions:
            permission(page, label).check()
    if mail_language:
        page.get_by_label(t(lang, "invite.language"), exact=True).select_option(
            label=t(mail_language, "language.name")
        )
    page.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    page.wait_for_url("**/users?*")


def my_invitations(page: Page) -> None:
    """Through the account menu."""
    lang = lang_of(page)
    open_menu(page).get_by_role("link", name=t(lang, "mine.title"), exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path == "/invitations")


def accept(page: Page, who: str, area: str) -> None:
    """On My invitations: accept the invitation from ``who`` to ``area``."""
    lang = lang_of(page)
    card = page.get_by_role("listitem").filter(has_text=t(lang, "mine.from", who=who, area=area))
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    page.wait_for_url("**/invitations?accepted=*")


def remove(page: Page, email: str) -> None:
    """Through the menu: User Management, Remove access on ``email``'s row, and yes."""
    lang = lang_of(page)
    user_management(page)
    row(page, email).get_by_role("link", name=t(lang, "um.remove"), exact=True).click()
    page.get_by_role("button", name=t(lang, "remove.yes"), exact=True).click()
    page.wait_for_url("**/users?done=removed")


def sign_out(page: Page) -> None:
    lang = lang_of(page)
    open_menu(page).get_by_role("button", name=t(lang, "signout"), exact=True).click()
    page.wait_for_url("**/signin")


# -- mail --------------------------------------------------------------------------------


def subject(message: Message) -> str:
    """A mail's subject, decoded (RFC 2047)."""
    return str(make_header(decode_header(message["Subject"])))


def mails_to(inbox: _Inbox, to: str, subject_is: str) -> list[str]:
    return [
        inbox.text(m) for m in list(inbox.messages) if m["To"] == to and subject(m) == subject_is
    ]


def mail(inbox: _Inbox, to: str, subject_has: str) -> str:
    """The text of the newest mail to ``to`` whose (decoded) subject has these words."""
    deadline = time.monotonic() + 20
    while True:
        for m in reversed(list(inbox.messages)):
            if m["To"] == to and subject_has in subject(m):
                return inbox.text(m)
        assert time.monotonic() < deadline, f"no mail to {to}: {subject_has}"
        time.sleep(0.1)


def new_mail(inbox: _Inbox, to: str, subject_is: str, seen: int) -> str:
    """The text of the (seen+1)-th mail to ``to`` with this subject, waiting for it."""
    deadline = time.monotonic() + 20
    while True:
        mails = mails_to(inbox, to, subject_is)
        if len(mails) > seen:
            return mails[seen]
        assert time.monotonic() < deadline, f"no new mail to {to}: {subject_is}"
        time.sleep(0.1)


def link(text: str, where: str) -> str:
    """A link in a mail, as a path on our server (the mail names the public URL)."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(where) + r"\?\S+)", text)
    assert match, f"no {where} link in the mail:\n{text}"
    return match.group(1)


def invitation_link(inbox: _Inbox, to: str, inviter: str) -> str:
    """The link in the newest invitation mail to ``to`` (its subject names the area)."""
    return link(mail(inbox, to, inviter), "/invitations/accept")


def verify_link(inbox: _Inbox, to: str, seen: int | None = None) -> str:
    """The link in the newest verification mail to ``to``, or in the (seen+1)-th one."""
    deadline = time.monotonic() + 20
    while True:
        texts = [
            text
            for m in list(inbox.messages)
            if m["To"] == to and "/verify-email?" in (text := inbox.text(m))
        ]
        if texts and (seen is None or len(texts) > seen):
            return link(texts[-1 if seen is None else seen], "/verify-email")
        assert time.monotonic() < deadline, f"no verification mail to {to}"
        time.sleep(0.1)


def verify_from_email(page: Page, inbox: _Inbox, email: str) -> None:
    """Open the emailed verification link and press its button."""
    page.goto(verify_link(inbox, email))
    page.get_by_role("button", name=t(lang_of(page), "verify.submit"), exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path != "/verify-email")
