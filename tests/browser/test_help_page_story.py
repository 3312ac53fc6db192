"""The help page's story in a real browser, in English and Spanish, as two people.

From the root URL, emailed links and the application's "Sign in" link only, by role
and visible label. An owner signs up and invites a user with two permissions; the
invitee follows the emailed link, signs up, accepts, and signs in through OAuth
choosing between two Client Areas; the owner changes the invitee's permissions and
then removes their access; the invitee's next sign-in goes straight back to the
application, with no chooser.

The words on screen are written out here rather than read from the catalogues, so a
lost translation fails the test instead of following it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.browser import walk
from tests.browser.conftest import Snap
from tests.conftest import PASSWORD
from tests.e2e.conftest import Server, _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Route

CLIENT_ID = "web"
APP = "https://app.example.com"
REDIRECT_URI = f"{APP}/callback"


@dataclass(frozen=True)
class Words(walk.FormWords):
    # sign-up and sign-in
    check_continue: str
    invited_by: str
    # User Management and Invite New User
    user_management: str
    invite: str
    invite_email: str
    some: str
    send: str
    sent: str
    pending: str
    modify: str
    modify_title: str
    save: str
    saved: str
    remove: str
    removed: str
    remove_confirm: str
    remove_yes: str
    # My invitations
    mine: str
    invites_you: str
    accept: str
    accepted: str
    switch: str
    # the Client Area chooser
    chooser_title: str
    chooser_continue: str
    owner: str
    delegate: str
    your_role: str
    # permissions, by their catalogue labels
    first: str
    second: str
    third: str


WORDS = {
    "en": Words(
        **asdict(walk.FORM_WORDS["en"]),
        check_continue="Continue to your Client Area",
        invited_by="{who} invited you to manage the Client Area {area}.",
        user_management="User Management",
        invite="Invite New User",
        invite_email="Email of the user to invite",
        some="Choose permissions from the list",
        send="Send Invitation",
        sent="Invitation sent to {email}.",
        pending="Pending invitations",
        modify="Modify permissions",
        modify_title="Modify permissions of {who}",
        save="Save permissions",
        saved="Permissions saved.",
        remove="Remove access",
        removed="Access removed.",
        remove_confirm="Remove the access of {who} to this Client Area?",
        remove_yes="Yes, remove access",
        mine="My invitations",
        invites_you="{who} invites you to manage {area}",
        accept="Accept Invitation",
        accepted="Invitation accepted: you can now choose {area} when you sign in.",
        switch="Switch account",
        chooser_title="Choose a Client Area",
        chooser_continue="Continue",
        owner="Owner",
        delegate="Delegate",
        your_role="Your role: {role}",
        first="Contacts",
        second="View domains",
        third="View and pay invoices",
    ),
    "es": Words(
        **asdict(walk.FORM_WORDS["es"]),
        check_continue="Ir a tu Área de Cliente",
        invited_by="{who} te ha invitado a gestionar el Área de Cliente {area}.",
        user_management="Gestión de usuarios",
        invite="Invitar Nuevo Usuario",
        invite_email="Correo del usuario que quieres invitar",
        some="Elegir permisos de la lista",
        send="Enviar Invitación",
        sent="Invitación enviada a {email}.",
        pending="Invitaciones pendientes",
        modify="Modificar permisos",
        modify_title="Modificar los permisos de {who}",
        save="Guardar permisos",
        saved="Permisos guardados.",
        remove="Eliminar acceso",
        removed="Acceso eliminado.",
        remove_confirm="¿Eliminar el acceso de {who} a esta Área de Cliente?",
        remove_yes="Sí, eliminar el acceso",
        mine="Mis invitaciones",
        invites_you="{who} te invita a gestionar {area}",
        accept="Aceptar Invitación",
        accepted="Invitación aceptada: ya puedes elegir {area} al iniciar sesión.",
        switch="Cambiar de cuenta",
        chooser_title="Elige un Área de Cliente",
        chooser_continue="Continuar",
        owner="Propietario",
        delegate="Usuario asociado",
        your_role="Tu rol: {role}",
        first="Contactos",
        second="Ver dominios",
        third="Ver y pagar facturas",
    ),
}

_ids = itertools.count(1)


@pytest.fixture
def words(lang: str) -> Words:
    return WORDS[lang]


@pytest.fixture(scope="module")
def web_client(live_server: Server) -> str:
    """A first-party OAuth client registered with the CLI, as an operator would."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "delegauth",
            "clients",
            "create",
            CLIENT_ID,
            "--first-party",
            "--redirect-uri",
            REDIRECT_URI,
        ],
        env={**os.environ, **live_server.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return CLIENT_ID


@pytest.fixture
def contexts(browser: Browser, live_server: Server, words: Words) -> Iterator[Callable[[], Page]]:
    """A maker of people (own cookies) speaking the test's language; the application
    behind the redirect URI is answered for by the browser."""

    def app(route: Route) -> None:
        _fulfil_app(route, live_server.base)

    yield from walk.people(
        browser, live_server, words.lang, prepare=lambda c: c.route(f"{APP}/**", app)
    )


def _fulfil_app(route: Route, server: str) -> None:
    """The application: a page whose "Sign in" link starts the OAuth flow, and its callback."""
    if urlsplit(route.request.url).path == "/callback":
        body = "<h1>Back in the app</h1>"
    else:
        url = _authorize_url(server, parse_qs(urlsplit(route.request.url).query)["state"][0])
        body = f"<h1>App</h1><a href='{html.escape(url)}'>Sign in</a>"
    route.fulfill(
        status=200,
        content_type="text/html; charset=utf-8",
        body=f"<!doctype html><html lang='en'><title>App</title>{body}</html>",
    )


def _signup(page: Page, words: Words, name: str, email: str, *, invited: bool = False) -> None:
    """Sign up; from an invitation link the email is the invitation's, shown and fixed."""
    assert walk.heading(page) in ("Create your account", "Crea tu cuenta")
    page.get_by_label(words.name, exact=True).fill(name)
    field = page.get_by_label(words.email, exact=True)
    if invited:
        assert field.input_value() == email
        assert not field.is_editable()
    else:
        field.fill(email)
    page.get_by_label(words.password, exact=True).fill(PASSWORD)
    page.get_by_role("button", name=words.signup, exact=True).click()
    page.wait_for_url(lambda url: urlsplit(url).path != "/signup")
    page.wait_for_load_state()
    if urlsplit(page.url).path == "/verify-email/sent":  # "check your email": go on
        page.get_by_role("link", name=words.check_continue, exact=True).click()
        page.wait_for_url(lambda url: not urlsplit(url).path.startswith("/verify-email"))


def _authorize_url(server: str, state: str) -> str:
    """The application's authorization request, as its "Sign in" link (PKCE S256)."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{server}/oauth/authorize?" + query


def _oauth_signin(page: Page, words: Words, email: str) -> str:
    """From the application's page, its "Sign in" link; sign in. Returns the state."""
    state = secrets.token_urlsafe(12)
    page.goto(f"{APP}/?state={state}")
    page.get_by_role("link", name="Sign in", exact=True).click()
    page.wait_for_url(lambda u: urlsplit(u).path == "/signin")
    page.get_by_label(words.email, exact=True).fill(email)
    page.get_by_label(words.password, exact=True).fill(PASSWORD)
    page.get_by_role("button", name=words.signin, exact=True).click()
    return state


def _assert_back_in_app(page: Page, state: str) -> None:
    page.wait_for_url(f"{REDIRECT_URI}?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == [state]
    assert query["code"][0]


def _description(page: Page, control: Locator) -> str:
    """The text a control is described by (aria-describedby), as a screen reader reads it."""
    return page.locator("#" + (control.get_attribute("aria-describedby") or "")).inner_text()


def test_help_page_story(
    contexts: Callable[[], Page],
    words: Words,
    live_server: Server,
    mailbox: tuple[_Inbox, int],
    web_client: str,
    snap: Snap,
):
    n = next(_ids)
    owner_name, owner_email = f"Olivia Owner {words.lang}{n}", f"owner-{words.lang}-{n}@example.com"
    guest_name, guest_email = (
        f"Iñigo Invitee {words.lang}{n}",
        f"guest-{words.lang}-{n}@example.com",
    )
    inbox = mailbox[0]

    # 1. The owner signs up from the root URL, opens User Management from the area home
    # and invites with two permissions.
    owner = contexts()
    owner.goto("/")
    owner.get_by_role("link", name=words.signup_link, exact=True).click()
    _signup(owner, words, owner_name, owner_email)
    assert re.fullmatch(r"/areas/[^/]+", walk.path(owner)), owner.url  # the area home
    owner.get_by_role("main").get_by_role("link", name=words.user_management, exact=True).click()
    owner.wait_for_url("**/users")
    assert walk.heading(owner) == words.user_management
    assert walk.lang_of(owner) == words.lang
    walk.step(owner, snap, "owner-user-management")

    owner.get_by_role("link", name=words.invite, exact=True).click()
    owner.wait_for_url("**/users/invite")
    assert walk.heading(owner) == words.invite
    owner.get_by_label(words.invite_email, exact=True).fill(guest_email)
    owner.get_by_role("radio", name=words.some, exact=True).check()
    walk.permission(owner, words.first).check()
    walk.permission(owner, words.second).check()
    walk.step(owner, snap, "owner-invite-filled")
    owner.get_by_role("button", name=words.send, exact=True).click()
    owner.wait_for_url("**/users?sent=*")
    assert walk.status(owner) == words.sent.format(email=guest_email)
    owner.get_by_role("heading", name=words.pending, exact=True).wait_for()
    pending = walk.row(owner, guest_email)
    assert pending.count() == 1
    assert words.first in pending.inner_text() and words.second in pending.inner_text()
    walk.step(owner, snap, "owner-invitation-pending")

    # 2. The invitee follows the emailed link, signs up with that address and accepts.
    guest = contexts()
    guest.goto(walk.invitation_link(inbox, guest_email, owner_name))
    guest.wait_for_url(lambda u: urlsplit(u).path == "/signup")
    assert "invitation_token=" in guest.url
    assert guest.get_by_text(
        words.invited_by.format(who=owner_name, area=owner_name), exact=True
    ).is_visible()
    walk.step(guest, snap, "invitee-asked-to-sign-up")
    _signup(guest, words, guest_name, guest_email, invited=True)
    assert walk.path(guest) == "/invitations"
    assert walk.heading(guest) == words.mine
    card = guest.get_by_role("listitem").filter(
        has_text=words.invites_you.format(who=owner_name, area=owner_name)
    )
    assert card.count() == 1
    walk.step(guest, snap, "invitee-my-invitations")
    card.get_by_role("button", name=words.accept, exact=True).click()
    guest.wait_for_url("**/invitations?accepted=*")
    assert walk.status(guest) == words.accepted.format(area=owner_name)
    # The account menu now offers to switch between the two Client Areas.
    guest.get_by_role("banner").get_by_text(guest_name, exact=True).click()
    assert guest.get_by_role("link", name=words.switch, exact=True).is_visible()
    walk.step(guest, snap, "invitee-accepted")

    # 3. In a fresh browser, the invitee signs in from the application and chooses the
    # owner's area.
    app = contexts()
    state = _oauth_signin(app, words, guest_email)
    app.wait_for_url(lambda u: urlsplit(u).path == "/oauth/authorize")
    assert walk.heading(app) == words.chooser_title
    radios = app.get_by_role("radio")
    assert radios.count() == 2
    # Each Client Area by its account name, the person's role there underneath.
    mine = app.get_by_role("radio", name=guest_name, exact=True)
    theirs = app.get_by_role("radio", name=owner_name, exact=True)
    assert mine.count() == 1 and theirs.count() == 1
    assert _description(app, mine) == words.your_role.format(role=words.owner)
    assert _description(app, theirs) == words.your_role.format(role=words.delegate)
    assert "(" not in app.get_by_role("group").inner_text()  # no "Name (Role)" labels
    theirs.check()
    walk.step(app, snap, "invitee-chooser")
    app.get_by_role("button", name=words.chooser_continue, exact=True).click()
    _assert_back_in_app(app, state)

    # 4. The owner changes the invitee's permissions, then removes their access.
    walk.user_management(owner)
    member = walk.row(owner, guest_email)
    assert member.count() == 1
    member.get_by_role("link", name=words.modify, exact=True).click()
    owner.wait_for_url("**/edit")
    assert walk.heading(owner) == words.modify_title.format(who=guest_name)
    assert owner.get_by_role("radio", name=words.some, exact=True).is_checked()
    assert walk.permission(owner, words.first).is_checked()
    assert walk.permission(owner, words.second).is_checked()
    walk.permission(owner, words.first).uncheck()
    walk.permission(owner, words.third).check()
    walk.step(owner, snap, "owner-modify-permissions")
    owner.get_by_role("button", name=words.save, exact=True).click()
    owner.wait_for_url("**/users?done=saved")
    assert walk.status(owner) == words.saved
    cell = walk.row(owner, guest_email).inner_text()
    assert words.second in cell and words.third in cell and words.first not in cell
    walk.step(owner, snap, "owner-permissions-changed")

    walk.row(owner, guest_email).get_by_role("link", name=words.remove, exact=True).click()
    owner.wait_for_url("**/remove")
    assert walk.heading(owner) == words.remove
    assert owner.get_by_text(words.remove_confirm.format(who=guest_name), exact=True).is_visible()
    walk.step(owner, snap, "owner-remove-confirm")
    owner.get_by_role("button", name=words.remove_yes, exact=True).click()
    owner.wait_for_url("**/users?done=removed")
    assert walk.status(owner) == words.removed
    assert walk.row(owner, guest_email).count() == 0
    walk.step(owner, snap, "owner-access-removed")

    # 5. The invitee's next sign-in has one Client Area left: no chooser.
    again = contexts()
    state = _oauth_signin(again, words, guest_email)
    _assert_back_in_app(again, state)
