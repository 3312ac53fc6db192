"""Access until in a real browser, from the root URL, by visible labels, in English and
Spanish, each step checked at desktop (1280×800) and phone (390×844) sizes:

- the owner's browser is in New York's time zone: the invite form says so beside "Access
  until" (the pages' script reported it), and the owner sets an end three days away;
- once the guest accepts, User Management says "expires in 3 days" with the instant in
  New York's time;
- the owner opens Modify, sees the end in the field, moves it a week later and saves:
  "expires in 10 days".

The words of this work are written out here, so a lost translation fails the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from delegauth.pages.text import t
from tests.browser import walk
from tests.browser.conftest import Snap
from tests.e2e.conftest import Server, _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ZONE = "America/New_York"


@dataclass(frozen=True)
class Words:
    lang: str
    until: str
    hint: str
    in_3_days: str
    in_10_days: str
    saved: str


WORDS = {
    "en": Words(
        lang="en",
        until="Access until (optional)",
        hint=f"Date and time in {ZONE}.",
        in_3_days="Access until: expires in 3 days",
        in_10_days="Access until: expires in 10 days",
        saved="Permissions saved.",
    ),
    "es": Words(
        lang="es",
        until="Acceso hasta (opcional)",
        hint=f"Fecha y hora en {ZONE}.",
        in_3_days="Acceso hasta: caduca en 3 días",
        in_10_days="Acceso hasta: caduca en 10 días",
        saved="Permisos guardados.",
    ),
}
_ids = itertools.count(1)


@pytest.fixture(params=sorted(WORDS))
def words(request: pytest.FixtureRequest) -> Words:
    return WORDS[request.param]


@pytest.fixture
def person(browser: Browser, live_server: Server, words: Words) -> Iterator[walk.Person]:
    """People whose browsers are in New York's time zone."""
    yield from walk.people(browser, live_server, words.lang, timezone_id=ZONE)


def test_set_see_and_extend_access_until(
    person: walk.Person,
    words: Words,
    live_server: Server,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    lang, n = words.lang, next(_ids)
    owner_name, owner_email = f"Una Until {lang}{n}", f"o-until-{lang}-{n}@example.com"
    guest_name, guest_email = f"Gil Guest {lang}{n}", f"g-until-{lang}-{n}@example.com"
    local_now = datetime.now(ZoneInfo(ZONE))
    end = (local_now + timedelta(days=3, minutes=10)).strftime("%Y-%m-%dT%H:%M")

    owner = walk.owner(person, lang, owner_name, owner_email)
    walk.user_management(owner)
    walk.open_invite_form(owner)
    owner.get_by_label(t(lang, "invite.email"), exact=True).fill(guest_email)
    until = owner.get_by_label(words.until, exact=True)
    assert words.hint in owner.locator("#valid-until-hint").inner_text()
    until.fill(end)
    walk.step(owner, snap, "invite-with-access-until")
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    owner.wait_for_url("**/users?*")

    guest = person()
    guest.goto(walk.invitation_link(mailbox[0], guest_email, owner_name))
    walk.fill_signup(guest, lang, guest_name, guest_email)
    card = guest.get_by_role("listitem").filter(has_text=owner_name)
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    guest.wait_for_url("**/invitations?accepted=*")

    owner.reload()
    member = owner.get_by_role("row").filter(has_text=guest_name)
    shown = end.replace("T", " ")
    assert f"{words.in_3_days} · {shown} ({ZONE})" in member.inner_text()
    walk.step(owner, snap, "user-management-says-expires-in-3-days")

    member.get_by_role("link", name=t(lang, "um.modify"), exact=True).click()
    owner.wait_for_url("**/edit")
    until = owner.get_by_label(words.until, exact=True)
    assert until.input_value() == end
    later = (datetime.fromisoformat(end) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    until.fill(later)
    walk.step(owner, snap, "edit-extends-access-until")
    owner.get_by_role("button", name=t(lang, "edit.save"), exact=True).click()
    owner.wait_for_url("**/users?*")
    assert words.saved in walk.status(owner)
    member = owner.get_by_role("row").filter(has_text=guest_name)
    assert f"{words.in_10_days} · {later.replace('T', ' ')} ({ZONE})" in member.inner_text()
    walk.step(owner, snap, "user-management-says-expires-in-10-days")
