"""The Client Area forms refuse what they cannot do on the form itself, in the user's
language, keeping what was typed; every area has a home; every action says it worked.

Through HTTP against the in-process app and a real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import urlencode

import falcon.testing
import pytest

from delegauth.storage.records import GrantRecord, InvitationRecord, MailRecord
from tests.conftest import PASSWORD, Api, FrozenClock, Person

AMBIGUOUS = {
    "en": "You chose “All permissions” and also ticked permissions in the list.",
    "es": "Elegiste «Todos los permisos» y además marcaste permisos de la lista.",
}


class Pages:
    """One browser: a cookie jar over the test client, speaking one language."""

    def __init__(self, api: Api, language: str = "en") -> None:
        self.client: falcon.testing.TestClient = api.client
        self.cookies: dict[str, str] = {}
        self.language = language

    def _keep(self, res: falcon.testing.Result) -> falcon.testing.Result:
        for name, cookie in res.cookies.items():
            self.cookies[name] = cookie.value
        return res

    def get(self, path: str) -> falcon.testing.Result:
        return self._keep(
            self.client.simulate_get(
                path, cookies=self.cookies, headers={"Accept-Language": self.language}
            )
        )

    def post(self, path: str, data: list[tuple[str, str]]) -> falcon.testing.Result:
        return self._keep(
            self.client.simulate_post(
                path,
                cookies=self.cookies,
                body=urlencode(data),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept-Language": self.language,
                },
            )
        )

    def csrf(self, path: str) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert match, path
        return match.group(1)

    def signin(self, email: str) -> None:
        res = self.post(
            "/signin",
            [("csrf", self.csrf("/signin")), ("email", email), ("password", PASSWORD)],
        )
        assert res.status_code == 303, res.text


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _checked(html: str, value: str) -> bool:
    tag = re.search(rf'<input[^>]*value="{re.escape(value)}"[^>]*>', html)
    return bool(tag and " checked" in tag.group(0))


def _invitations(api: Api) -> list[InvitationRecord]:
    with api.services.db.connection_context():
        return list(InvitationRecord.select())


def _mails_to(api: Api, email: str) -> int:
    with api.services.db.connection_context():
        return MailRecord.select().where(MailRecord.to == email).count()


def _owner(api: Api, language: str = "en") -> tuple[Person, Pages]:
    owner = api.signup("olivia@example.com", name="Olivia Owner")
    pages = Pages(api, language)
    pages.signin(owner.email)
    return owner, pages


@pytest.mark.parametrize("language", ["en", "es"])
def test_all_plus_ticked_permissions_is_refused_on_the_form(api: Api, language: str) -> None:
    owner, pages = _owner(api, language)
    path = f"/areas/{owner.area_id}/users/invite"
    csrf = pages.csrf(path)
    res = pages.post(
        path,
        [
            ("csrf", csrf),
            ("email", "dev@example.com"),
            ("access", "all"),
            ("permission", "invoices"),
            ("permission", "tickets"),
        ],
    )
    assert res.status_code == 400
    assert AMBIGUOUS[language] in _text(res.text)
    # What was typed is kept, and the list is shown open so the ticks can be seen.
    assert 'value="dev@example.com"' in res.text
    assert _checked(res.text, "all") and _checked(res.text, "invoices")
    assert _checked(res.text, "tickets") and not _checked(res.text, "domains")
    assert 'class="access ambiguous"' in res.text
    assert f'<html lang="{language}">' in res.text and "<nav" in res.text
    # Nothing was written and nothing was mailed.
    assert _invitations(api) == []
    assert _mails_to(api, "dev@example.com") == 0


def test_the_chooser_needs_a_clear_choice(api: Api) -> None:
    owner, pages = _owner(api)
    path = f"/areas/{owner.area_id}/users/invite"
    csrf = pages.csrf(path)
    some_none = pages.post(path, [("csrf", csrf), ("email", "d@example.com"), ("access", "some")])
    assert some_none.status_code == 400
    assert "Choose at least one permission." in _text(some_none.text)
    neither = pages.post(
        path, [("csrf", csrf), ("email", "d@example.com"), ("permission", "invoices")]
    )
    assert neither.status_code == 400
    assert "Choose “All permissions” or “Choose permissions from the list”." in _text(neither.text)
    assert 'id="email-error"' not in neither.text  # the address was fine
    # Both mistakes at once: the address and the choice, each beside its field.
    both = pages.post(path, [("csrf", csrf), ("email", "d@"), ("access", "some")])
    assert both.status_code == 400
    assert "Choose at least one permission." in _text(both.text)
    assert 'id="email-error"' in both.text and "Type a valid email address" in _text(both.text)
    assert _invitations(api) == []
    # "Some" with two ticked grants exactly those two.
    ok = pages.post(
        path,
        [
            ("csrf", csrf),
            ("email", "d@example.com"),
            ("access", "some"),
            ("permission", "invoices"),
            ("permission", "tickets"),
        ],
    )
    assert ok.status_code == 303, ok.text
    [inv] = _invitations(api)
    assert json.loads(inv.permissions) == ["invoices", "tickets"]


def test_modify_and_edit_invitation_refuse_ambiguity_and_keep_the_grant(api: Api) -> None:
    owner, pages = _owner(api)
    member = api.link(owner, "m@example.com", ["tickets"])
    edit = f"/areas/{owner.area_id}/users/{member.user_id}/edit"
    csrf = pages.csrf(edit)
    res = pages.post(edit, [("csrf", csrf), ("access", "all"), ("permission", "domains")])
    assert res.status_code == 400
    assert AMBIGUOUS["en"] in _text(res.text)
    assert _checked(res.text, "domains")
    with api.services.db.connection_context():
        grant = GrantRecord.get(
            (GrantRecord.area_id == owner.area_id) & (GrantRecord.user_id == member.user_id)
        )
    assert "tickets" in str(grant.permissions) and "domains" not in str(grant.permissions)

    inv = api.invite(owner, "x@example.com", ["quotes"])
    path = f"/areas/{owner.area_id}/invitations/{inv['id']}/edit"
    res = pages.post(path, [("csrf", csrf), ("access", "all"), ("permission", "domains")])
    assert res.status_code == 400 and AMBIGUOUS["en"] in _text(res.text)
    listing = api.call("GET", f"/v1/areas/{owner.area_id}/invitations", api.token(owner))
    assert listing.json["invitations"][0]["permissions"] == ["quotes"]


@pytest.mark.parametrize(
    ("language", "myself", "member"),
    [
        (
            "en",
            "You cannot invite yourself: you already have access to this Client Area.",
            "This person already has access to this Client Area.",
        ),
        (
            "es",
            "No puedes invitarte a ti mismo: ya tienes acceso a esta Área de Cliente.",
            "Esta persona ya tiene acceso a esta Área de Cliente.",
        ),
    ],
)
def test_invite_errors_show_on_the_form_in_the_users_language(
    api: Api, language: str, myself: str, member: str
) -> None:
    owner, pages = _owner(api, language)
    api.link(owner, "m@example.com", ["tickets"])
    path = f"/areas/{owner.area_id}/users/invite"
    csrf = pages.csrf(path)
    for email, message in (("Olivia@Example.com", myself), ("m@example.com", member)):
        res = pages.post(
            path,
            [("csrf", csrf), ("email", email), ("access", "some"), ("permission", "domains")],
        )
        assert res.status_code == 409
        text = _text(res.text)
        assert message in text
        assert "Something went wrong" not in text and "already a member" not in text
        assert f'value="{email}"' in res.text and _checked(res.text, "domains")
        assert 'id="email-error"' in res.text and "<nav" in res.text


def test_a_delegate_without_users_lands_on_the_area_home(api: Api) -> None:
    owner = api.signup("olivia@example.com", name="Olivia Owner")
    delegate = api.link(owner, "dave@example.com", ["invoices", "domains"])
    pages = Pages(api)
    pages.signin(delegate.email)
    landing = pages.get("/")
    assert landing.status_code == 303 and landing.headers["Location"] == "/areas"
    chooser = pages.get("/areas")
    assert f'href="/areas/{owner.area_id}"' in chooser.text
    assert "Olivia Owner (" not in _text(chooser.text)  # no name with the role in brackets
    home = pages.get(f"/areas/{owner.area_id}")
    assert home.status_code == 200
    text = _text(home.text)
    assert "You are in the Client Area of the account Olivia Owner." in text
    assert re.search(r"Your role\s+Delegate", text)
    assert "View and pay invoices" in text and "View domains" in text
    assert "Contacts" not in text
    # The menu offers only what a delegate without "users" may do.
    assert f"/areas/{owner.area_id}/users" not in home.text
    assert f"/areas/{owner.area_id}/activity" not in home.text
    assert 'href="/invitations"' in home.text and 'href="/areas"' in home.text
    assert 'action="/signout"' in home.text
    # Opening User Management anyway is no dead end: the menu and a way back.
    refused = pages.get(f"/areas/{owner.area_id}/users")
    assert refused.status_code == 403
    text = _text(refused.text)
    assert "Managing users needs the “User management” permission" in text
    assert "managing users needs the 'users' permission" not in text
    assert f'href="/areas/{owner.area_id}"' in refused.text and "<nav" in refused.text


def test_the_owner_home_offers_user_management_and_activity(api: Api) -> None:
    owner, pages = _owner(api, "es")
    assert pages.get("/").headers["Location"] == f"/areas/{owner.area_id}"
    home = pages.get(f"/areas/{owner.area_id}")
    text = _text(home.text)
    assert "Estás en el Área de Cliente de la cuenta Olivia Owner." in text
    assert "Propietario" in text and "Todos los permisos" in text
    assert f'href="/areas/{owner.area_id}/users"' in home.text
    assert f'href="/areas/{owner.area_id}/activity"' in home.text
    assert 'href="/areas"' not in home.text  # one area: nothing to switch to
    stranger = Pages(api)
    api.signup("s@example.com")
    stranger.signin("s@example.com")
    assert stranger.get(f"/areas/{owner.area_id}").status_code == 403  # no name, no menu item


def test_wrong_account_and_expired_accept_show_on_my_invitations(
    api: Api, clock: FrozenClock
) -> None:
    owner = api.signup("olivia@example.com", name="Olivia Owner")
    api.signup("ana@example.com")
    api.signup("bea@example.com")
    inv = api.invite(owner, "ana@example.com", ["tickets"])
    bea = Pages(api, "es")
    bea.signin("bea@example.com")
    res = bea.post(f"/invitations/{inv['id']}/accept", [("csrf", bea.csrf("/invitations"))])
    assert res.status_code == 403
    text = _text(res.text)
    assert "Esta invitación se envió a otra dirección de correo." in text
    assert "Mis invitaciones" in text and "<nav" in res.text and "Algo salió mal" not in text

    clock.advance(days=8)
    ana = Pages(api)
    ana.signin("ana@example.com")
    res = ana.post(f"/invitations/{inv['id']}/accept", [("csrf", ana.csrf("/invitations"))])
    assert res.status_code == 409
    text = _text(res.text)
    assert "This invitation has expired: a new one must be sent." in text
    assert "My invitations" in text and "<nav" in res.text


def test_every_action_says_it_worked(api: Api) -> None:
    owner, pages = _owner(api)
    member = api.link(owner, "m@example.com", ["tickets"])
    base = f"/areas/{owner.area_id}"
    csrf = pages.csrf(base + "/users")

    def done(res: falcon.testing.Result, message: str) -> None:
        assert res.status_code == 303, res.text
        page = pages.get(res.headers["Location"])
        assert f'<p class="notice" role="status">{message}</p>' in page.text

    edit = [("csrf", csrf), ("access", "some"), ("permission", "domains")]
    done(pages.post(f"{base}/users/{member.user_id}/edit", edit), "Permissions saved.")
    inv = api.invite(owner, "x@example.com", ["quotes"])
    invitation = f"{base}/invitations/{inv['id']}"
    done(
        pages.post(invitation + "/resend", [("csrf", csrf)]),
        "Invitation sent again, with a new link.",
    )
    done(pages.post(invitation + "/cancel", [("csrf", csrf)]), "Invitation cancelled.")

    confirm = pages.get(f"{base}/users/{member.user_id}/remove")
    assert re.search(
        r'<a class="button secondary" href="[^"]+" autofocus>Keep access</a>', confirm.text
    )
    assert '<button type="submit" class="danger">Yes, remove access</button>' in confirm.text
    done(pages.post(f"{base}/users/{member.user_id}/remove", [("csrf", csrf)]), "Access removed.")
    # A made-up code shows nothing.
    assert 'class="notice"' not in pages.get(base + "/users?done=%3Cb%3Ehi").text


@pytest.mark.parametrize(
    ("page", "chosen", "subject"), [("en", "es", "Invitación"), ("es", "en", "Invitation")]
)
def test_the_invitation_email_goes_in_the_language_chosen_on_the_form(
    api: Api, page: str, chosen: str, subject: str
) -> None:
    owner, pages = _owner(api, page)
    path = f"/areas/{owner.area_id}/users/invite"
    form = pages.get(path).text
    assert re.search(rf'<option value="{page}"[^>]*selected', form)  # the inviter's by default
    for email, language in (("new@example.com", chosen), ("again@example.com", page)):
        fields = [("csrf", pages.csrf(path)), ("email", email), ("access", "all")]
        if language == chosen:
            fields.append(("language", chosen))
        assert pages.post(path, fields).status_code == 303
    with api.services.db.connection_context():
        mails = {m.to: m for m in MailRecord.select().where(MailRecord.kind == "invitation")}
    assert mails["new@example.com"].subject.startswith(subject)
    assert json.loads(mails["new@example.com"].headers)["Content-Language"] == chosen
    assert json.loads(mails["again@example.com"].headers)["Content-Language"] == page


def test_activity_details_are_in_the_users_words(api: Api) -> None:
    owner, pages = _owner(api, "es")
    api.link(owner, "m@example.com", ["contacts", "domains"])
    text = _text(pages.get(f"/areas/{owner.area_id}/activity").text)
    assert "Tu rol: Propietario" in text and "Tu rol: Usuario asociado" in text
    assert "Permisos: Contactos, Ver dominios" in text
    assert "Estado: aceptada" in text
    assert "role:" not in text and "permissions:" not in text and "owner" not in text
