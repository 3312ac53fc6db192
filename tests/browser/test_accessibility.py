"""WCAG checks with axe-core on every kind of page, in English and Spanish."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")

from axe_playwright_python.sync_playwright import Axe  # noqa: E402

from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.conftest import Server, _Inbox  # noqa: E402

AXE = Axe()
# WCAG 2.1 A and AA rules (axe-core tags).
OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}


@pytest.fixture(params=["en-US", "es-ES"])
def page(request: pytest.FixtureRequest, browser, live_server: Server) -> Iterator:  # type: ignore[no-untyped-def]
    language = request.param
    context = browser.new_context(
        locale=language,
        extra_http_headers={"Accept-Language": language.split("-")[0]},
        base_url=live_server.base,
    )
    yield context.new_page()
    context.close()


def _check(page, what: str) -> None:  # type: ignore[no-untyped-def]
    results = AXE.run(page, options=OPTIONS)
    assert results.violations_count == 0, f"{what}:\n{results.generate_snapshot()}"


def test_every_page_passes_axe(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("/signin")
    _check(page, "sign-in")
    page.goto("/signup")
    _check(page, "sign-up")
    page.get_by_label(page.locator("label[for=name]").inner_text()).fill("Ada")
    page.locator("#email").fill(f"axe-{secrets.token_hex(4)}@example.com")
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/verify-email/sent")
    page.goto("/")
    page.wait_for_url("**/areas/**")
    _check(page, "area home")
    page.goto("/areas/" + page.url.split("/areas/")[1].split("/")[0] + "/users")
    _check(page, "user management")
    page.locator("summary").click()
    _check(page, "user management, menu open")
    area_users = page.url
    page.goto(area_users + "/invite")
    _check(page, "invite new user")
    page.locator("form button[type=submit]").last.click()  # empty email: the error state
    _check(page, "invite new user, with an error")
    page.goto(area_users.replace("/users", "/activity"))
    _check(page, "activity")
    page.goto("/invitations")
    _check(page, "my invitations")
    page.goto("/areas")
    _check(page, "switch account")
    page.goto("/areas/a_" + "a" * 26)
    _check(page, "an area that is not yours: the error page with the menu")


def _mail_link(inbox: _Inbox, to: str, path: str, seen: int = 0) -> str:
    """The path of the ``path`` link in the newest mail to ``to`` after ``seen`` of them."""
    inbox.wait_for(to)
    for _ in range(200):
        texts = [inbox.text(m) for m in list(inbox.messages) if m["To"] == to]
        links = [
            m.group(1)
            for text in texts
            if (m := re.search(r"https?://[^/\s]+(" + re.escape(path) + r"\?\S+)", text))
        ]
        if len(links) > seen:
            return links[-1]
        time.sleep(0.1)
    raise AssertionError(f"no new {path} link to {to}")


def _signup(page, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/signup")
    page.locator("#name").fill("Ada")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action='/signup'] button[type=submit]").click()
    page.wait_for_url("**/verify-email/sent")


def test_verification_and_invitation_link_pages_pass_axe(  # type: ignore[no-untyped-def]
    page, mailbox: tuple[_Inbox, int]
) -> None:
    inbox, tag = mailbox[0], secrets.token_hex(4)
    owner, invitee = f"axe-o-{tag}@example.com", f"axe-i-{tag}@example.com"
    _signup(page, owner)
    _check(page, "check your email")
    page.locator("form[action='/verify-email/resend'] button").click()
    page.wait_for_url("**resent=1*")
    _check(page, "check your email, link resent")

    page.goto("/")
    page.wait_for_url("**/areas/**")
    area = page.url.split("/areas/")[1].split("/")[0].split("?")[0]
    page.goto(f"/areas/{area}/users/invite")
    page.locator("#email").fill(invitee)
    page.locator("form[action$='/users/invite'] button[type=submit]").click()
    page.wait_for_url("**/users?*")
    invitation = _mail_link(inbox, invitee, "/invitations/accept")
    page.goto(invitation)
    _check(page, "invitation link, wrong account")
    page.locator("main form[action='/signout'] button").click()
    page.wait_for_url("**/signup?**")
    _check(page, "sign-up from an invitation")

    _signup(page, invitee)  # an ordinary sign-up: unverified
    page.goto(invitation)
    _check(page, "invitation link, verify first")
    page.locator("main form[action='/verify-email/resend'] button").click()
    page.wait_for_url("**/verify-email/sent?**")
    verify = _mail_link(inbox, invitee, "/verify-email", seen=1)
    page.goto(verify)
    _check(page, "verify email")
    page.locator("main form[action='/verify-email'] button").click()
    page.wait_for_url("**/invitations?verified=1")
    _check(page, "my invitations, verified")
    page.goto(verify)
    _check(page, "used link, signed in and verified")
    page.context.clear_cookies()
    page.goto(verify)
    _check(page, "used link, signed out")
    page.locator("#email").fill("not an address")
    page.locator("main form[action='/verify-email/resend'] button").click()
    _check(page, "used link, bad address")
    page.locator("#email").fill(invitee)
    page.locator("main form[action='/verify-email/resend'] button").click()
    _check(page, "new link asked for")
    page.goto(_mail_link(inbox, owner, "/verify-email", seen=1))
    page.locator("main form[action='/verify-email'] button").click()
    page.wait_for_url("**/signin?verified=1**")
    _check(page, "sign-in after verifying")
