"""The Client Area pages, walked as two people with a form-filling HTTP client
(the headless-browser walk lives in tests/browser)."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode

from tests.conftest import PASSWORD
from tests.e2e.browser import Browser, parse
from tests.e2e.conftest import Server


def _outbox_token(server: Server, email: str) -> str:
    from delegauth.storage.db import open_database
    from delegauth.storage.records import MailRecord, database_proxy

    db = open_database(server.env["DELEGAUTH_DATABASE_URL"])
    database_proxy.initialize(db)
    with db.connection_context():
        mail = (
            MailRecord.select().where(MailRecord.to == email).order_by(MailRecord.id.desc()).get()
        )
    match = re.search(r"token=([A-Za-z0-9_\-]+)", mail.text)
    assert match
    return match.group(1)


def _signup_page(browser: Browser, email: str, name: str, path: str = "/signup") -> str:
    page = browser.get(path)
    res = browser.submit(page, {"email": email, "password": PASSWORD, "name": name})
    assert res.status_code == 303, res.text
    landing = browser.follow(res)
    assert landing.status_code == 200, landing.text
    if "/verify-email/sent" in landing.url:  # "check your email", then on to the Client Area
        landing = browser.follow(browser.get("/"))
    return landing.url


def test_user_management_story(server: Server) -> None:
    tag = secrets.token_hex(3)
    owner_email, helper_email = f"olga-{tag}@example.com", f"hugo-{tag}@example.com"
    owner = Browser(server.base)
    url = _signup_page(owner, owner_email, "Olga")
    assert re.fullmatch(r".*/areas/a_[a-z2-7]{26}", url)  # the landing page is the area home
    area_path = url[len(server.base) :] + "/users"
    page = owner.get(area_path)
    assert "User Management" in page.text and "Olga" in page.text and "Owner" in page.text
    assert "Invite New User" in page.text

    # Invite New User with two permissions picked from the list.
    form = owner.get(area_path + "/invite")
    labels = parse(form.text).labels
    assert labels.get("email") and labels.get("perm-invoices") and labels.get("access-all")
    res = owner.s.post(
        server.url(area_path + "/invite"),
        allow_redirects=False,
        timeout=10,
        data={
            "csrf": parse(form.text).forms[1]["fields"][0]["value"],
            "email": helper_email,
            "access": "some",
            "permission": ["invoices", "tickets"],
        },
    )
    assert res.status_code == 303, res.text
    listing = owner.follow(res)
    assert helper_email in listing.text and "Pending invitations" in listing.text

    # The invitee follows the emailed link, signs up, and accepts.
    token = _outbox_token(server, helper_email)
    helper = Browser(server.base)
    res = helper.get("/invitations/accept?" + urlencode({"token": token}))
    assert res.status_code == 303 and res.headers["Location"].startswith("/signup?")
    signup = helper.follow(res)
    res = helper.submit(signup, {"email": helper_email, "password": PASSWORD, "name": "Hugo"})
    mine = helper.follow(res)
    assert "Olga" in mine.text and "Accept Invitation" in mine.text
    accepted = helper.follow(helper.submit(mine, {}, form_index=1))
    assert "Invitation accepted" in accepted.text
    areas = helper.get("/areas")
    assert areas.text.count('class="card"') == 2  # his own and Olga's: the chooser

    # The owner sees Hugo with his permissions, changes them, then removes the access.
    page = owner.get(area_path)
    assert "Hugo" in page.text and "View and pay invoices" in page.text
    user_id = re.search(r"/users/(u_[a-z2-7]{26})/edit", page.text).group(1)  # type: ignore[union-attr]
    edit = owner.get(f"{area_path}/{user_id}/edit")
    res = owner.s.post(
        server.url(f"{area_path}/{user_id}/edit"),
        allow_redirects=False,
        timeout=10,
        data={
            "csrf": parse(edit.text).forms[1]["fields"][0]["value"],
            "access": "some",
            "permission": ["domains"],
        },
    )
    assert res.status_code == 303
    assert "View domains" in owner.get(area_path).text
    confirm = owner.get(f"{area_path}/{user_id}/remove")
    assert "Hugo" in confirm.text
    res = owner.submit(confirm, {}, form_index=1)
    assert res.status_code == 303
    assert "Hugo" not in owner.get(area_path).text
    assert helper.get("/areas").text.count('class="card"') == 1


def test_pages_refuse_strangers_and_forged_forms(server: Server) -> None:
    tag = secrets.token_hex(3)
    a, b = Browser(server.base), Browser(server.base)
    a_url = _signup_page(a, f"a-{tag}@example.com", "A")
    _signup_page(b, f"b-{tag}@example.com", "B")
    area_path = a_url[len(server.base) :] + "/users"
    assert b.get(area_path).status_code == 404
    assert b.get(area_path + "/invite").status_code == 404
    res = b.s.post(
        server.url(area_path + "/invite"),
        allow_redirects=False,
        timeout=10,
        data={"csrf": "forged", "email": "x@example.com", "access": "all"},
    )
    assert res.status_code == 403
    anonymous = Browser(server.base)
    res = anonymous.get(area_path)
    assert res.status_code == 303 and res.headers["Location"].startswith("/signin?return_to=")


def test_user_management_in_spanish(server: Server) -> None:
    tag = secrets.token_hex(3)
    owner = Browser(server.base, language="es")
    url = _signup_page(owner, f"es-{tag}@example.com", "Elena")
    page = owner.get(url[len(server.base) :] + "/users")
    assert "Gestión de usuarios" in page.text and "Invitar Nuevo Usuario" in page.text
    assert '<html lang="es">' in page.text


def test_edit_a_pending_invitation_and_read_the_activity(server: Server) -> None:
    tag = secrets.token_hex(3)
    owner = Browser(server.base)
    url = _signup_page(owner, f"act-{tag}@example.com", "Ana")
    area_path = url[len(server.base) :] + "/users"
    form = owner.get(area_path + "/invite")
    csrf = parse(form.text).forms[1]["fields"][0]["value"]
    owner.s.post(
        server.url(area_path + "/invite"),
        timeout=10,
        allow_redirects=False,
        data={"csrf": csrf, "email": f"x-{tag}@example.com", "access": "all"},
    )
    page = owner.get(area_path)
    edit_path = re.search(
        r'href="(/areas/a_[a-z2-7]{26}/invitations/i_[a-z2-7]{26}/edit)"', page.text
    ).group(1)  # type: ignore[union-attr]
    edit = owner.get(edit_path)
    assert edit.status_code == 200
    res = owner.s.post(
        server.url(edit_path),
        timeout=10,
        allow_redirects=False,
        data={"csrf": csrf, "access": "some", "permission": ["quotes"]},
    )
    assert res.status_code == 303
    assert "View and accept quotes" in owner.get(area_path).text
    activity = owner.get(area_path.replace("/users", "/activity"))
    assert activity.status_code == 200
    text = activity.text
    assert (
        text.index("Invitation changed")
        < text.index("Invitation sent")
        < text.index("Client Area created")
    )  # newest first


def test_the_language_switcher_sticks(server: Server) -> None:
    browser = Browser(server.base, language="en")
    page = browser.get("/signin?return_to=%2Fareas")
    assert "Sign in" in page.text
    switch = re.search(r'href="([^"]*lang=es[^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    assert "return_to=%2Fareas" in switch.replace("&amp;", "&")
    spanish = browser.get(switch.replace("&amp;", "&"))
    assert "Iniciar sesión" in spanish.text
    # The choice sticks for later pages, whatever the browser's Accept-Language says.
    assert "Crea tu cuenta" in browser.get("/signup").text
    assert "Create your account" in Browser(server.base).get("/signup").text
