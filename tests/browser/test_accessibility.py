"""WCAG checks with axe-core on every kind of page, in English and Spanish.

The pages are reached as people reach them: from the root URL and emailed links, by
role and visible label (tests/browser/walk.py); axe runs at desktop and phone sizes.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")

from axe_playwright_python.sync_playwright import Axe  # noqa: E402

from delegauth.pages.text import t  # noqa: E402
from tests.browser import walk  # noqa: E402
from tests.browser.conftest import Snap  # noqa: E402
from tests.e2e.conftest import _Inbox  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Page

AXE = Axe()
# WCAG 2.1 A and AA rules (axe-core tags).
OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}


def _check(page: Page, snap: Snap, what: str) -> None:
    """axe at each size, with the walk's own checks and a screenshot (walk.step)."""
    page.wait_for_load_state()
    before = page.viewport_size
    for width, height in walk.SIZES:
        page.set_viewport_size({"width": width, "height": height})
        results = AXE.run(page, options=OPTIONS)
        assert results.violations_count == 0, f"{what} ({width}):\n{results.generate_snapshot()}"
    if before is not None:
        page.set_viewport_size(before)
    walk.step(page, snap, re.sub(r"[^a-z]+", "-", what.lower()).strip("-"))


def _menu_link(page: Page, key: str) -> None:
    walk.open_menu(page).get_by_role("link", name=t(walk.lang_of(page), key), exact=True).click()
    page.wait_for_load_state()


def test_every_page_passes_axe(person: walk.Person, lang: str, snap: Snap) -> None:
    email = f"axe-{secrets.token_hex(4)}@example.com"
    page = person()
    page.goto("/")
    _check(page, snap, "sign-in")
    page.get_by_role("link", name=t(lang, "signin.signup_link"), exact=True).click()
    _check(page, snap, "sign-up")
    walk.fill_signup(page, lang, "Ada", email)
    walk.go_on_from_check_email(page, lang)
    _check(page, snap, "area home")
    page.get_by_role("main").get_by_role(
        "link", name=t(lang, "nav.user_management"), exact=True
    ).click()
    _check(page, snap, "user management")
    walk.open_menu(page)
    _check(page, snap, "user management, menu open")
    walk.open_invite_form(page)
    _check(page, snap, "invite new user")
    page.get_by_label(t(lang, "invite.email"), exact=True).fill(email)  # yourself
    page.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    page.get_by_role("alert").wait_for()
    _check(page, snap, "invite new user, with an error")
    _menu_link(page, "activity.title")
    _check(page, snap, "activity")
    _menu_link(page, "mine.title")
    _check(page, snap, "my invitations")


def test_verification_and_invitation_link_pages_pass_axe(
    person: walk.Person, lang: str, mailbox: tuple[_Inbox, int], snap: Snap
) -> None:
    inbox, tag = mailbox[0], secrets.token_hex(4)
    owner, invitee = f"axe-o-{tag}@example.com", f"axe-i-{tag}@example.com"
    page = person()
    walk.signup_from_root(page, lang, "Olga", owner)
    _check(page, snap, "check your email")
    page.get_by_role("button", name=t(lang, "check.resend"), exact=True).click()
    page.wait_for_url("**resent=1*")
    _check(page, snap, "check your email, link resent")
    walk.go_on_from_check_email(page, lang)
    walk.invite(page, invitee)

    invitation = walk.invitation_link(inbox, invitee, "Olga")
    page.goto(invitation)
    _check(page, snap, "invitation link, wrong account")
    page.get_by_role("button", name=t(lang, "link.wrong_button"), exact=True).click()
    page.wait_for_url("**/signup?**")
    _check(page, snap, "sign-up from an invitation")

    walk.signup_from_root(page, lang, "Ada", invitee)  # an ordinary sign-up: unverified
    page.goto(invitation)
    _check(page, snap, "invitation link, verify first")
    page.get_by_role("button", name=t(lang, "link.verify_send"), exact=True).click()
    page.wait_for_url("**/verify-email/sent?**")
    verify = walk.verify_link(inbox, invitee, seen=1)
    page.goto(verify)
    _check(page, snap, "verify email")
    page.get_by_role("button", name=t(lang, "verify.submit"), exact=True).click()
    page.wait_for_url("**/invitations?verified=1")
    _check(page, snap, "my invitations, verified")
    walk.accept(page, "Olga", "Olga")
    _menu_link(page, "nav.switch")
    _check(page, snap, "switch account")
    page.get_by_role("main").get_by_role("link", name="Olga", exact=True).click()
    page.wait_for_url("**/areas/*")
    _check(page, snap, "a delegate's area home")

    # The owner removes the delegate; the delegate's next look at the area is an error
    # page that keeps the menu.
    owner_page = person()
    walk.signin_from_root(owner_page, lang, owner)
    walk.user_management(owner_page)
    walk.row(owner_page, invitee).get_by_role("link", name=t(lang, "um.remove")).click()
    _check(owner_page, snap, "remove access")
    owner_page.get_by_role("button", name=t(lang, "remove.yes"), exact=True).click()
    owner_page.wait_for_url("**/users?done=removed")
    page.reload()
    _check(page, snap, "an area no longer yours: the error page with the menu")

    page.goto(verify)
    _check(page, snap, "used link, signed in and verified")
    page.context.clear_cookies()
    page.goto(verify)
    _check(page, snap, "used link, signed out")
    email_box = page.get_by_label(t(lang, "signin.email"), exact=True)
    new_link = page.get_by_role("button", name=t(lang, "verify.new_link"), exact=True)
    email_box.fill("ada@localhost")  # the browser takes it; we do not (no public domain)
    new_link.click()
    page.get_by_role("alert").wait_for()
    _check(page, snap, "used link, bad address")
    page.get_by_label(t(lang, "signin.email"), exact=True).fill(invitee)
    page.get_by_role("button", name=t(lang, "verify.new_link"), exact=True).click()
    _check(page, snap, "new link asked for")
    page.goto(walk.verify_link(inbox, owner, seen=1))
    page.get_by_role("button", name=t(lang, "verify.submit"), exact=True).click()
    page.wait_for_url("**/signin?verified=1**")
    _check(page, snap, "sign-in after verifying")
