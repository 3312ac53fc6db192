"""The hosted sign-up and sign-in pages in a real browser, in English and Spanish,
from the root URL by role and visible label (and by keyboard alone).

The words a user sees are written out here rather than read from the message catalogues,
so a lost translation fails the test instead of following it.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from email.header import decode_header, make_header
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.browser import walk
from tests.browser.conftest import Snap
from tests.conftest import PASSWORD
from tests.e2e.conftest import _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response


@dataclass(frozen=True)
class Words(walk.FormWords):
    taken: str
    signin_title: str
    signout: str
    failed: str
    verify_subject: str


WORDS = {
    "en": Words(
        **asdict(walk.FORM_WORDS["en"]),
        taken="An account with this email already exists.",
        signin_title="Sign in",
        signout="Sign out",
        failed="The email or password is not right.",
        verify_subject="Confirm your email address",
    ),
    "es": Words(
        **asdict(walk.FORM_WORDS["es"]),
        taken="Ya existe una cuenta con este correo.",
        signin_title="Iniciar sesión",
        signout="Cerrar sesión",
        failed="El correo o la contraseña no son correctos.",
        verify_subject="Confirma tu dirección de correo",
    ),
}

_ids = itertools.count(1)


def _email(words: Words) -> str:
    return f"browser-{words.lang}-{next(_ids)}@example.com"


@pytest.fixture
def words(lang: str) -> Words:
    return WORDS[lang]


@pytest.fixture
def page(person: walk.Person) -> Page:
    """A fresh browser context (own cookies) speaking the user's language."""
    return person()


def _heading(page: Page) -> str:
    return page.get_by_role("heading", level=1).inner_text()


def _leave(page: Page, path: str) -> None:
    """Wait for the browser to land on a page other than path (after redirects)."""
    page.wait_for_url(lambda url: urlsplit(url).path != path)
    page.wait_for_load_state()


def _assert_signed_in(page: Page, words: Words, who: tuple[str, ...]) -> None:
    """A signed-in landing page: its sign-out form, the user named, the user's language."""
    assert page.locator("form[action='/signout']").count() == 1
    text = page.locator("body").inner_text()
    assert any(w in text for w in who), f"none of {who} on {page.url}"
    assert page.locator("html").get_attribute("lang") == words.lang


# The landing page may keep the sign-out button in a disclosure (an account menu).
_MENU = "details:has(form[action='/signout']) > summary"


def _click_sign_out(page: Page, words: Words) -> None:
    button = page.get_by_role("button", name=words.signout, exact=True)
    if not button.is_visible() and page.locator(_MENU).count():
        page.locator(_MENU).click()
    button.click()


def _check_page_headers(response: Response | None, words: Words, page: Page) -> None:
    assert response is not None and response.ok
    headers = response.headers  # lower-cased names
    assert headers["referrer-policy"] == "no-referrer"
    csp = {
        d.strip().split(" ")[0]: d.strip() for d in headers["content-security-policy"].split(";")
    }
    assert csp["default-src"] == "default-src 'none'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["base-uri"] == "base-uri 'none'"
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert page.locator("html").get_attribute("lang") == words.lang


def test_signup_signout_signin(page: Page, words: Words, mailbox: tuple[_Inbox, int], snap: Snap):
    """Sign up, sign out, mistype the password, then sign in, all by the fields' labels."""
    email = _email(words)

    response = page.goto("/")  # signed out: the sign-in page, which links to sign-up
    _check_page_headers(response, words, page)
    page.get_by_role("link", name=words.signup_link, exact=True).click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/signup")
    walk.step(page, snap, "signup-empty")
    page.get_by_label(words.name, exact=True).fill("Ada Lovelace")
    page.get_by_label(words.email, exact=True).fill(email)
    page.get_by_label(words.password, exact=True).fill(PASSWORD)
    walk.step(page, snap, "signup-filled")
    page.get_by_role("button", name=words.signup, exact=True).click()

    _leave(page, "/signup")
    _assert_signed_in(page, words, (email, "Ada Lovelace"))
    walk.step(page, snap, "signed-up")
    inbox = mailbox[0]
    subject = str(make_header(decode_header(inbox.wait_for(email)["Subject"])))
    assert subject == words.verify_subject  # the verification mail, in the user's language

    _click_sign_out(page, words)
    page.wait_for_url("/signin")
    assert _heading(page) == words.signin_title
    walk.step(page, snap, "signed-out")

    # Signing up again with the same address: on the form, in the user's language, beside
    # the email, with what was typed kept.
    page.get_by_role("link", name=words.signup_link, exact=True).click()
    page.get_by_label(words.name, exact=True).fill("Ada Again")
    page.get_by_label(words.email, exact=True).fill(email.upper())
    page.get_by_label(words.password, exact=True).fill(PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name=words.signup, exact=True).click()
    assert posted.value.status == 409
    alert = page.get_by_role("alert")
    assert alert.inner_text() == words.taken
    assert alert.get_attribute("id") in (
        page.get_by_label(words.email, exact=True).get_attribute("aria-describedby") or ""
    )
    assert page.get_by_label(words.email, exact=True).input_value() == email.upper()
    assert page.get_by_label(words.name, exact=True).input_value() == "Ada Again"
    walk.step(page, snap, "signup-taken")

    response = page.goto("/")
    _check_page_headers(response, words, page)
    page.get_by_label(words.email, exact=True).fill(email)
    page.get_by_label(words.password, exact=True).fill("not the password")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name=words.signin, exact=True).click()
    assert posted.value.status == 401
    alert = page.get_by_role("alert")
    assert alert.inner_text() == words.failed
    # The error is tied to the field, and the typed email survives the round trip.
    assert page.get_by_label(words.email, exact=True).get_attribute("aria-describedby") == (
        alert.get_attribute("id")
    )
    assert page.get_by_label(words.email, exact=True).input_value() == email
    walk.step(page, snap, "wrong-password")

    page.get_by_label(words.password, exact=True).fill(PASSWORD)
    page.get_by_role("button", name=words.signin, exact=True).click()
    _leave(page, "/signin")
    _assert_signed_in(page, words, (email, "Ada Lovelace"))
    snap(page, "signed-in")


def _tab_to(page: Page, selector: str, limit: int = 15) -> None:
    """Press Tab until the element matching selector has the focus.

    On the way, a closed disclosure (<details>) holding the target is opened with
    Enter, as a keyboard user would.
    """
    for _ in range(limit):
        page.keyboard.press("Tab")
        where = page.evaluate(
            """selector => {
                const el = document.activeElement;
                if (el && el.matches(selector)) return "target";
                const box = el && el.tagName === "SUMMARY" ? el.parentElement : null;
                return box && !box.open && box.querySelector(selector) ? "menu" : "";
            }""",
            selector,
        )
        if where == "target":
            return
        if where == "menu":
            page.keyboard.press("Enter")
    raise AssertionError(f"Tab never reached {selector}")


def _focused_id(page: Page) -> str:
    return str(page.evaluate("document.activeElement.id"))


def test_keyboard_only(page: Page, words: Words, snap: Snap):
    """Sign up, sign out and sign in again with Tab, typing and Enter: no clicks."""
    email = _email(words)

    page.goto("/")  # signed out: the sign-in page; its sign-up link, by keyboard
    _tab_to(page, "main a[href^='/signup']")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == "/signup")
    page.keyboard.press("Tab")
    assert _focused_id(page) == "name"
    page.keyboard.type("Grace Hopper")
    page.keyboard.press("Tab")
    assert _focused_id(page) == "email"
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert _focused_id(page) == "password"
    page.keyboard.type(PASSWORD)
    _tab_to(page, "form[action='/signup'] button[type=submit]")
    snap(page, "signup-button-focused")
    page.keyboard.press("Enter")
    _leave(page, "/signup")
    _assert_signed_in(page, words, (email, "Grace Hopper"))

    _tab_to(page, "form[action='/signout'] button")
    snap(page, "signout-button-focused")
    page.keyboard.press("Enter")
    page.wait_for_url("/signin")
    assert _heading(page) == words.signin_title

    page.keyboard.press("Tab")
    assert _focused_id(page) == "email"
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert _focused_id(page) == "password"
    page.keyboard.type(PASSWORD)
    snap(page, "signin-password-focused")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == words.signin
    snap(page, "signin-button-focused")
    page.keyboard.press("Enter")
    _leave(page, "/signin")
    _assert_signed_in(page, words, (email, "Grace Hopper"))
    snap(page, "signed-in")
