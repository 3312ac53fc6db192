"""The owner's Webhooks page in a real browser, in English and Spanish: reached from the
account menu, adding a webhook shows its secret once, the delivery log shows the attempt,
the webhook's events are chosen and its secret rotated there; axe at desktop and phone
sizes, no sideways scrolling (walk.step), screenshots."""

from __future__ import annotations

import re
import secrets

import pytest

pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")

from delegauth.pages.text import t  # noqa: E402
from tests.browser import walk  # noqa: E402
from tests.browser.conftest import Snap  # noqa: E402
from tests.browser.test_accessibility import _check  # noqa: E402

URL = "https://hooks.example.com/delegauth-" + "x" * 60  # long: it must wrap on a phone


def test_the_owner_adds_a_webhook_and_reads_its_log(
    person: walk.Person, lang: str, snap: Snap
) -> None:
    tag = secrets.token_hex(4)
    page = walk.owner(person, lang, "Olga", f"wh-{tag}@example.com")
    walk.open_menu(page).get_by_role("link", name=t(lang, "webhooks.title"), exact=True).click()
    page.wait_for_url("**/webhooks")
    assert walk.heading(page) == t(lang, "webhooks.title")
    _check(page, snap, "webhooks, none yet")

    page.get_by_label(t(lang, "webhooks.url"), exact=True).fill("http://hooks.example.com/")
    page.get_by_role("button", name=t(lang, "webhooks.add"), exact=True).click()
    assert page.get_by_role("alert").inner_text() == t(lang, "problem.webhook_url_https")
    _check(page, snap, "webhooks, refused url")

    page.get_by_label(t(lang, "webhooks.url"), exact=True).fill(URL)
    page.get_by_label(t(lang, "webhooks.description"), exact=True).fill("SIEM")
    page.get_by_role("button", name=t(lang, "webhooks.add"), exact=True).click()
    secret = page.locator("code.secret").inner_text()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{44}", secret)
    _check(page, snap, "webhooks, secret shown once")
    page.reload()  # the form again: refused, nothing registered twice, no secret
    assert page.get_by_role("alert").inner_text() == t(lang, "problem.webhook_exists")
    assert page.locator("code.secret").count() == 0
    page.goto(walk.path(page))
    assert page.locator("code.secret").count() == 0
    assert walk.row(page, URL).count() == 1

    walk.invite(page, f"wh-i-{tag}@example.com")  # a grant change: one delivery
    page.goto(walk.path(page).replace("/users", "/webhooks"))
    walk.row(page, URL).get_by_role("link", name=t(lang, "webhooks.deliveries")).click()
    page.wait_for_url(re.compile(r".*/webhooks/w_[a-z2-7]{26}$"))
    assert walk.row(page, "grant.invited").count() == 1
    _check(page, snap, "webhook delivery log")

    # Only some events from now on: the choice is saved and the listing shows it.
    page.get_by_label(t(lang, "webhooks.events_some"), exact=True).check()
    page.get_by_label("grant.changed", exact=True).check()
    page.get_by_label("grant.removed", exact=True).check()
    page.get_by_role("button", name=t(lang, "webhooks.save_events"), exact=True).click()
    assert page.get_by_text(t(lang, "done.events_saved")).count() == 1
    assert page.get_by_label("grant.changed", exact=True).is_checked()
    assert not page.get_by_label("grant.invited", exact=True).is_checked()
    _check(page, snap, "webhook events chosen")

    # A new secret, shown once; the old one still signs until the time it names.
    page.get_by_role("button", name=t(lang, "webhooks.rotate"), exact=True).click()
    rotated = page.locator("code.secret").inner_text()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{44}", rotated) and rotated != secret
    assert walk.heading(page) == t(lang, "webhooks.log_title")
    _check(page, snap, "webhook secret rotated")
    page.get_by_role("link", name=t(lang, "webhooks.back"), exact=True).click()
    assert "grant.changed, grant.removed" in walk.row(page, URL).inner_text()
    _check(page, snap, "webhooks with events")
