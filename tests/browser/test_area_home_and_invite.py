"""The invite form and the area pages in a real browser, as people walk them.

From the root URL and emailed links only, finding everything by role and visible
label, in English and Spanish; every step checked at desktop (1280×800) and phone
(390×844) sizes:

- the owner invites choosing two permissions: the list drops down only after
  "Choose permissions from the list", and the invitation grants exactly those two;
- the invitee signs up from the emailed link and accepts; signing in again they
  choose the owner's Client Area and land on its home: the account's name, their
  role and permissions there, and a menu without User Management;
- the owner's mistakes come back on the form, in their language, with what they
  typed kept; every action says it worked; Remove is red and the focus stays on
  the safe choice.

The words of this work are written out here, so a lost translation fails the test;
labels from elsewhere (sign-up, the Invite button…) are read from the catalogues, so
another change of wording does not.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from delegauth.pages.text import t
from tests.browser import walk
from tests.browser.conftest import Snap
from tests.e2e.conftest import Server, _Inbox

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Words:
    lang: str
    some: str
    everything: str
    invite_self: str
    already_member: str
    you_are_in: str
    role: str
    permissions: str
    delegate: str
    choose_area: str
    home_title: str
    saved: str
    resent: str
    cancelled: str
    removed: str
    first: str
    second: str
    mail_subject: str


WORDS = {
    "en": Words(
        lang="en",
        some="Choose permissions from the list",
        everything="All permissions",
        invite_self="You cannot invite yourself: you already have access to this Client Area.",
        already_member="This person already has access to this Client Area.",
        you_are_in="You are in the Client Area of the account {area}.",
        role="Your role",
        permissions="Your permissions",
        delegate="Delegate",
        choose_area="Choose a Client Area",
        home_title="Client Area: {area}",
        saved="Permissions saved.",
        resent="Invitation sent again, with a new link.",
        cancelled="Invitation cancelled.",
        removed="Access removed.",
        first="Contacts",
        second="View domains",
        mail_subject="Invitation to manage the Client Area “{area}”",
    ),
    "es": Words(
        lang="es",
        some="Elegir permisos de la lista",
        everything="Todos los permisos",
        invite_self="No puedes invitarte a ti mismo: ya tienes acceso a esta Área de Cliente.",
        already_member="Esta persona ya tiene acceso a esta Área de Cliente.",
        you_are_in="Estás en el Área de Cliente de la cuenta {area}.",
        role="Tu rol",
        permissions="Tus permisos",
        delegate="Usuario asociado",
        choose_area="Elige un Área de Cliente",
        home_title="Área de Cliente: {area}",
        saved="Permisos guardados.",
        resent="Invitación reenviada, con un enlace nuevo.",
        cancelled="Invitación cancelada.",
        removed="Acceso eliminado.",
        first="Contactos",
        second="Ver dominios",
        mail_subject="Invitación para gestionar el Área de Cliente «{area}»",
    ),
}
_ids = itertools.count(1)


@pytest.fixture
def words(lang: str) -> Words:
    return WORDS[lang]


def test_invite_two_permissions_and_the_delegate_lands_on_the_area_home(
    person: walk.Person,
    words: Words,
    live_server: Server,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    lang, n = words.lang, next(_ids)
    owner_name, owner_email = f"Olivia Owner {lang}{n}", f"o-home-{lang}-{n}@example.com"
    guest_name, guest_email = f"Dani Delegate {lang}{n}", f"d-home-{lang}-{n}@example.com"

    # The owner signs up from the root URL and lands on their area's home.
    owner = walk.owner(person, lang, owner_name, owner_email)
    assert walk.heading(owner) == words.home_title.format(area=owner_name)
    walk.step(owner, snap, "owner-area-home")

    menu = walk.open_menu(owner)
    menu.get_by_role("link", name=t(lang, "nav.user_management"), exact=True).click()
    owner.get_by_role("link", name=t(lang, "um.invite"), exact=True).click()
    owner.wait_for_url("**/users/invite")
    # "All permissions" is the default, and the list is not shown until "choose".
    assert owner.get_by_role("radio", name=words.everything, exact=True).is_checked()
    assert not walk.permission(owner, words.first).is_visible()
    walk.step(owner, snap, "invite-list-closed")
    owner.get_by_label(t(lang, "invite.email"), exact=True).fill(guest_email)
    owner.get_by_role("radio", name=words.some, exact=True).check()
    assert walk.permission(owner, words.first).is_visible()
    walk.permission(owner, words.first).check()
    walk.permission(owner, words.second).check()
    # The email's language: the owner's own by default, the other one chosen here.
    language = owner.get_by_label(t(lang, "invite.language"), exact=True)
    assert language.input_value() == lang
    other = "es" if lang == "en" else "en"
    language.select_option(label=t(other, "language.name"))
    walk.step(owner, snap, "invite-two-chosen")
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    owner.wait_for_url("**/users?sent=*")
    invitation = mailbox[0].wait_for(guest_email)
    assert walk.subject(invitation) == WORDS[other].mail_subject.format(area=owner_name)
    assert invitation["Content-Language"] == other
    row = owner.get_by_role("row").filter(has_text=guest_email)
    cell = row.inner_text()
    assert words.first in cell and words.second in cell and words.everything not in cell
    walk.step(owner, snap, "invitation-pending")

    # The invitee follows the emailed link, signs up and accepts exactly those two, in
    # the mail's language (the link carries it, and it stays for their next visits).
    theirs = WORDS[other]
    guest = person()
    guest.goto(walk.invitation_link(mailbox[0], guest_email, owner_name))
    walk.fill_signup(guest, other, guest_name, guest_email)
    card = guest.get_by_role("listitem").filter(has_text=owner_name)
    assert theirs.first in card.inner_text() and theirs.second in card.inner_text()
    walk.step(guest, snap, "invitee-my-invitations")
    card.get_by_role("button", name=t(other, "mine.accept"), exact=True).click()
    guest.wait_for_url("**/invitations?accepted=*")
    walk.step(guest, snap, "invitee-accepted")
    walk.sign_out(guest)

    # Signing in again from the root URL, they choose the owner's Client Area…
    walk.signin_from_root(guest, other, guest_email)
    assert walk.heading(guest) == theirs.choose_area
    choices = guest.get_by_role("main").get_by_role("link")
    assert choices.count() == 2
    assert guest.get_by_text(f"{owner_name} (", exact=False).count() == 0
    walk.step(guest, snap, "delegate-chooses-area")
    guest.get_by_role("main").get_by_role("link", name=owner_name, exact=True).click()

    # …and land on its home: the account's name, their role and permissions, a menu.
    guest.wait_for_url(re.compile(r"/areas/a_[a-z2-7]{26}$"))
    assert walk.heading(guest) == theirs.home_title.format(area=owner_name)
    main = guest.get_by_role("main")
    assert main.get_by_text(theirs.you_are_in.format(area=owner_name), exact=True).is_visible()
    facts = main.locator("dl").inner_text()
    assert theirs.role in facts and theirs.delegate in facts
    assert theirs.permissions in facts and theirs.first in facts and theirs.second in facts
    assert t(other, "um.all") not in facts
    menu = walk.open_menu(guest)
    labels = [x.strip() for x in menu.locator("li").all_inner_texts()]
    assert t(other, "nav.user_management") not in labels
    assert t(other, "activity.title") not in labels
    assert t(other, "mine.title") in labels and t(other, "nav.switch") in labels
    assert t(other, "signout") in labels
    assert main.get_by_role("link", name=t(other, "nav.user_management")).count() == 0
    walk.step(guest, snap, "delegate-area-home-menu")


def test_mistakes_come_back_on_the_form_and_actions_say_they_worked(
    person: walk.Person,
    words: Words,
    live_server: Server,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    lang, n = words.lang, next(_ids)
    owner_name, owner_email = f"Olga Owner {lang}{n}", f"o-form-{lang}-{n}@example.com"
    guest_name, guest_email = f"Mia Member {lang}{n}", f"m-form-{lang}-{n}@example.com"
    other_email = f"x-form-{lang}-{n}@example.com"

    owner = walk.owner(person, lang, owner_name, owner_email)
    walk.open_menu(owner).get_by_role("link", name=t(lang, "nav.user_management")).click()
    owner.get_by_role("link", name=t(lang, "um.invite"), exact=True).click()
    email_box = owner.get_by_label(t(lang, "invite.email"), exact=True)

    # Ticks left behind under "All permissions" are never sent: while "All" is chosen the
    # list is hidden and its boxes are off (our script). A post that still carries them
    # is refused on the form, never guessed: tests/functional/test_console_forms.py.
    email_box.fill(other_email)
    owner.get_by_role("radio", name=words.some, exact=True).check()
    walk.permission(owner, words.first).check()
    owner.get_by_role("radio", name=words.everything, exact=True).check()
    assert not walk.permission(owner, words.first).is_visible()
    left_behind = owner.get_by_role(
        "checkbox", name=re.compile("^" + re.escape(words.first)), include_hidden=True
    )
    assert left_behind.is_checked() and left_behind.is_disabled()
    walk.step(owner, snap, "invite-all-boxes-off")

    # Inviting yourself: on the form, in the user's language, with the typed address.
    email_box.fill(owner_email.upper())
    owner.get_by_role("radio", name=words.some, exact=True).check()
    assert walk.permission(owner, words.first).is_enabled()
    walk.permission(owner, words.first).uncheck()
    walk.permission(owner, words.second).check()
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    assert owner.get_by_role("alert").inner_text() == words.invite_self
    assert email_box.input_value() == owner_email.upper()
    assert walk.permission(owner, words.second).is_checked()
    assert walk.heading(owner) == t(lang, "invite.title")
    walk.step(owner, snap, "invite-yourself-refused")

    # A member joins; inviting them again is refused on the form too.
    email_box.fill(guest_email)
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    owner.wait_for_url("**/users?sent=*")
    guest = person()
    guest.goto(walk.invitation_link(mailbox[0], guest_email, owner_name))
    walk.fill_signup(guest, lang, guest_name, guest_email)
    guest.get_by_role("button", name=t(lang, "mine.accept"), exact=True).click()
    guest.wait_for_url("**/invitations?accepted=*")

    owner.get_by_role("link", name=t(lang, "um.invite"), exact=True).click()
    owner.get_by_label(t(lang, "invite.email"), exact=True).fill(guest_email)
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    assert owner.get_by_role("alert").inner_text() == words.already_member
    walk.step(owner, snap, "invite-member-refused")

    # A pending invitation: resend, then cancel, each saying it worked.
    owner.get_by_label(t(lang, "invite.email"), exact=True).fill(other_email)
    owner.get_by_role("button", name=t(lang, "invite.send"), exact=True).click()
    owner.wait_for_url("**/users?sent=*")
    pending = owner.get_by_role("row").filter(has_text=other_email)
    pending.get_by_role("button", name=t(lang, "um.resend"), exact=True).click()
    owner.wait_for_url("**/users?done=resent")
    assert walk.status(owner) == words.resent
    walk.step(owner, snap, "resent")
    pending = owner.get_by_role("row").filter(has_text=other_email)
    pending.get_by_role("button", name=t(lang, "um.cancel"), exact=True).click()
    owner.wait_for_url("**/users?done=cancelled")
    assert walk.status(owner) == words.cancelled
    assert owner.get_by_role("row").filter(has_text=other_email).count() == 0
    walk.step(owner, snap, "cancelled")

    # Modify permissions, then remove: a success message after each.
    member = owner.get_by_role("row").filter(has_text=guest_email)
    member.get_by_role("link", name=t(lang, "um.modify"), exact=True).click()
    owner.wait_for_url("**/edit")
    assert walk.permission(owner, words.second).is_visible()  # "choose" is already selected
    walk.permission(owner, words.first).check()
    owner.get_by_role("button", name=t(lang, "edit.save"), exact=True).click()
    owner.wait_for_url("**/users?done=saved")
    assert walk.status(owner) == words.saved
    cell = owner.get_by_role("row").filter(has_text=guest_email).inner_text()
    assert words.first in cell and words.second in cell
    walk.step(owner, snap, "permissions-saved")

    member = owner.get_by_role("row").filter(has_text=guest_email)
    member.get_by_role("link", name=t(lang, "um.remove"), exact=True).click()
    owner.wait_for_url("**/remove")
    keep = owner.get_by_role("link", name=t(lang, "remove.back"), exact=True)
    remove = owner.get_by_role("button", name=t(lang, "remove.yes"), exact=True)
    assert keep.evaluate("el => el === document.activeElement")  # the safe choice
    red = remove.evaluate("el => getComputedStyle(el).backgroundColor")
    assert red == "rgb(164, 14, 38)", red
    walk.step(owner, snap, "remove-confirm")
    remove.click()
    owner.wait_for_url("**/users?done=removed")
    assert walk.status(owner) == words.removed
    assert owner.get_by_role("row").filter(has_text=guest_email).count() == 0
    walk.step(owner, snap, "removed")
