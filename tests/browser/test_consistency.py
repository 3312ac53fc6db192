"""The same page furniture everywhere, in a real browser, English and Spanish, at desktop
(1280×800) and phone (390×844) sizes, reached from the root URL by visible labels:

- the account menu closes on Escape and when focus leaves it (our one script file);
- while "All permissions" is chosen the permission boxes are disabled, so ticks that
  cannot be seen are never sent; choosing from the list enables them again;
- no label appears twice on the invite form (a common set and a group heading);
- after a failed submit the page still has the language switcher, and it works;
- on a phone the person's long name stays on one line in the header.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from delegauth.pages.text import t
from tests.browser import walk
from tests.browser.conftest import Snap
from tests.e2e.conftest import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SIZES = {"desktop": walk.DESKTOP, "phone": walk.PHONE}
_ids = itertools.count(1)


@pytest.fixture(params=sorted(SIZES))
def page(
    request: pytest.FixtureRequest, browser: Browser, live_server: Server, lang: str
) -> Iterator[Page]:
    """One person walking at the test's size (the phone walk clicks on a phone layout)."""
    people = walk.people(browser, live_server, lang, SIZES[request.param])
    yield next(people)()
    people.close()


def _width(page: Page) -> int:
    return (page.viewport_size or {"width": 0})["width"]


def _menu_open(page: Page) -> bool:
    return bool(page.locator("details.menu").evaluate("menu => menu.open"))


def test_menu_script_permission_boxes_labels_and_switcher(
    page: Page, lang: str, snap: Snap
) -> None:
    n = next(_ids)
    name = f"Maximiliano Bartolomé de la Fuente-Hernández {lang}{n}"
    walk.signup_from_root(page, lang, name, f"furniture-{lang}-{n}-{_width(page)}@example.com")
    walk.go_on_from_check_email(page, lang)
    walk.step(page, snap, "area-home")

    # The header keeps the person's name on one line, even on a phone.
    summary = page.get_by_role("navigation", name=t(lang, "nav.account")).locator("summary")
    box = summary.bounding_box()
    line = float(summary.evaluate("s => parseFloat(getComputedStyle(s).lineHeight)"))
    assert box is not None and box["height"] < 1.6 * line + 16, (box, line)

    # The account menu: Escape closes it (focus back on its button); so does leaving it.
    summary.click()
    assert _menu_open(page)
    snap(page, "menu-open")
    page.keyboard.press("Escape")
    assert not _menu_open(page)
    assert summary.evaluate("s => document.activeElement === s")
    summary.click()
    assert _menu_open(page)
    items = page.locator("details.menu li a, details.menu li button")
    items.last.focus()
    page.keyboard.press("Tab")  # past the last entry: focus leaves the menu
    assert not _menu_open(page)

    # Invite New User: under "All permissions" the boxes are off; "choose" turns them on.
    page.get_by_role("main").get_by_role(
        "link", name=t(lang, "nav.user_management"), exact=True
    ).click()
    page.get_by_role("link", name=t(lang, "um.invite"), exact=True).click()
    assert walk.heading(page) == t(lang, "invite.title")
    boxes = page.locator("fieldset.access .permissions input[type=checkbox]")
    assert boxes.count() > 5
    assert page.get_by_role("radio", name=t(lang, "invite.all"), exact=True).is_checked()
    assert all(boxes.nth(i).is_disabled() for i in range(boxes.count()))
    page.get_by_role("radio", name=t(lang, "invite.some"), exact=True).check()
    assert all(boxes.nth(i).is_enabled() for i in range(boxes.count()))
    walk.step(page, snap, "invite-choose")
    page.get_by_role("radio", name=t(lang, "invite.all"), exact=True).check()
    assert boxes.first.is_disabled()

    # No label twice: every legend and label on the form says something different.
    texts = [
        s.strip() for s in page.locator("main legend, main label").all_inner_texts() if s.strip()
    ]
    assert len(texts) == len(set(texts)), sorted(texts)

    # A failed submit (no address) keeps the switcher, which reloads the form translated.
    page.get_by_role("radio", name=t(lang, "invite.some"), exact=True).check()
    page.get_by_label(t(lang, "invite.email"), exact=True).fill("not-an-address@")
    page.locator("form[action$='/users/invite']").evaluate("f => f.noValidate = true")
    page.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").count() >= 1
    walk.step(page, snap, "invite-refused")
    other = "es" if lang == "en" else "en"
    switcher = page.get_by_role("navigation", name="language")
    switcher.get_by_role("link", name=t(other, "language.name")).click()
    page.wait_for_load_state()
    assert walk.lang_of(page) == other
    assert walk.heading(page) == t(other, "invite.title")
    walk.fits(page)
    snap(page, "invite-switched-language")


def test_spanish_words_follow_the_help_page(page: Page, lang: str) -> None:
    if lang != "es":
        pytest.skip("the Spanish wording")
    n = next(_ids)
    walk.signup_from_root(page, lang, f"Elena {n}", f"elena-{n}-{_width(page)}@example.com")
    walk.go_on_from_check_email(page, lang)
    main = page.get_by_role("main")
    main.get_by_role("link", name="Gestión de usuarios", exact=True).click()
    page.get_by_role("link", name="Invitar Nuevo Usuario", exact=True).click()
    assert page.get_by_role("button", name="Enviar Invitación", exact=True).is_visible()
    walk.fits(page)
