"""A grant on single domains in a real browser, from the root URL, by visible labels, in
English and Spanish, each step checked at desktop (1280×800) and phone (390×844) sizes:

- the owner invites choosing "Manage domains" and typing two domains beside it in
  "Only these"; a typed id that is not a resource id comes back on the form, in their
  language, with what they typed kept;
- the pending invitation and, once accepted, the member's row name the domains;
- the owner's edit page shows the domains in the field, and changing them saves.

The words of this work are written out here, so a lost translation fails the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from delegauth.pages.text import t
from tests.browser import walk
from tests.browser.conftest import Snap
from tests.e2e.conftest import Server, _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@dataclass(frozen=True)
class Words:
    lang: str
    manage: str
    only_these: str
    bad_id: str
    saved: str


WORDS = {
    "en": Words(
        lang="en",
        manage="Manage domains",
        only_these="Manage domains: only these (optional)",
        bad_id="The ids beside “Manage domains” may hold only letters, digits",
        saved="Permissions saved.",
    ),
    "es": Words(
        lang="es",
        manage="Gestionar dominios",
        only_these="Gestionar dominios: solo estos (opcional)",
        bad_id="Los identificadores junto a «Gestionar dominios» solo pueden llevar",
        saved="Permisos guardados.",
    ),
}
_ids = itertools.count(1)


@pytest.fixture(params=sorted(WORDS))
def words(request: pytest.FixtureRequest) -> Words:
    return WORDS[request.param]


@pytest.fixture
def person(browser: Browser, live_server: Server, words: Words) -> Iterator[walk.Person]:
    yield from walk.people(browser, live_server, words.lang)


def test_invite_and_edit_a_grant_on_two_domains(
    person: walk.Person,
    words: Words,
    live_server: Server,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    lang, n = words.lang, next(_ids)
    owner_name, owner_email = f"Rosa Resources {lang}{n}", f"o-res-{lang}-{n}@example.com"
    guest_name, guest_email = f"Dora Domains {lang}{n}", f"d-res-{lang}-{n}@example.com"

    owner = walk.owner(person, lang, owner_name, owner_email)
    walk.user_management(owner)
    walk.open_invite_form(owner)
    owner.get_by_label(t(lang, "invite.email"), exact=True).fill(guest_email)
    owner.get_by_role("radio", name=t(lang, "invite.some"), exact=True).check()
    walk.permission(owner, words.manage).check()
    only = owner.get_by_role("textbox", name=words.only_these, exact=True)
    assert only.is_visible()
    only.fill("example.com, münchen.de")
    walk.step(owner, snap, "invite-domains-typed")
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    alert = owner.get_by_role("alert")
    assert words.bad_id in alert.inner_text()
    assert only.input_value() == "example.com, münchen.de"
    walk.step(owner, snap, "invite-bad-domain-refused")
    only.fill("example.com, example.net")
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    owner.wait_for_url("**/users?*")
    pending = owner.get_by_role("row").filter(has_text=guest_email).inner_text()
    assert f"{words.manage} (example.com, example.net)" in pending
    walk.step(owner, snap, "invitation-names-the-domains")

    guest = person()
    guest.goto(walk.invitation_link(mailbox[0], guest_email, owner_name))
    walk.fill_signup(guest, lang, guest_name, guest_email)
    card = guest.get_by_role("listitem").filter(has_text=owner_name)
    assert f"{words.manage} (example.com, example.net)" in card.inner_text()
    card.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    guest.wait_for_url("**/invitations?accepted=*")

    owner.reload()
    member = owner.get_by_role("row").filter(has_text=guest_name)
    assert f"{words.manage} (example.com, example.net)" in member.inner_text()
    member.get_by_role("link", name=t(lang, "um.modify"), exact=True).click()
    owner.wait_for_url("**/edit")
    assert walk.permission(owner, words.manage).is_checked()
    field = owner.get_by_role("textbox", name=words.only_these, exact=True)
    assert field.input_value() == "example.com, example.net"
    walk.step(owner, snap, "edit-shows-the-domains")
    field.fill("example.org")
    owner.get_by_role("button", name=t(lang, "edit.save"), exact=True).click()
    owner.wait_for_url("**/users?*")
    assert words.saved in walk.status(owner)
    member = owner.get_by_role("row").filter(has_text=guest_name)
    assert f"{words.manage} (example.org)" in member.inner_text()
    walk.step(owner, snap, "member-moved-to-another-domain")
