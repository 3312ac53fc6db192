"""WCAG checks with axe-core on every kind of page, in English and Spanish."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")

from axe_playwright_python.sync_playwright import Axe  # noqa: E402

from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.conftest import Server  # noqa: E402

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
