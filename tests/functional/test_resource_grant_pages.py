"""Grants on single resources in the pages: the invite form and the grant edit page take
the ids beside a scoped permission ("Only these"), refuse bad ones on the form in the
user's language, and show them in the listings. SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from delegauth.storage.records import GrantRecord, InvitationRecord
from tests.conftest import Api
from tests.functional.test_console_forms import Pages, _checked, _owner, _text

REFUSALS = {
    "en": {
        "invalid": "The ids beside “Manage domains” may hold only letters, digits",
        "unticked": "You typed ids beside “Manage domains” without ticking it.",
    },
    "es": {
        "invalid": "Los identificadores junto a «Gestionar dominios» solo pueden llevar",
        "unticked": "Escribiste identificadores junto a «Gestionar dominios» sin marcarlo.",
    },
}


def _invite(pages: Pages, path: str, scope: str, *, tick: bool = True):
    form = [("csrf", pages.csrf(path)), ("email", "dns@example.com"), ("access", "some")]
    form += [("permission", "domains")]
    if tick:
        form.append(("permission", "managedomains"))
    form.append(("scope-managedomains", scope))
    return pages.post(path, form)


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_invite_form_limits_a_permission_to_the_ids_typed(api: Api, language: str) -> None:
    owner, pages = _owner(api, language)
    path = f"/areas/{owner.area_id}/users/invite"
    form = pages.get(path).text
    assert 'name="scope-managedomains"' in form and 'name="scope-invoices"' not in form
    label = {
        "en": "Manage domains: only these (optional)",
        "es": "Gestionar dominios: solo estos (opcional)",
    }[language]
    assert label in _text(form)

    for scope, refusal in (("münchen.de", "invalid"), ("a.example, -b", "invalid")):
        res = _invite(pages, path, scope)
        assert res.status_code == 400
        assert REFUSALS[language][refusal] in _text(res.text)
        assert f'value="{scope}"' in res.text  # kept as typed
    res = _invite(pages, path, "example.com", tick=False)
    assert res.status_code == 400 and REFUSALS[language]["unticked"] in _text(res.text)
    with api.services.db.connection_context():
        assert InvitationRecord.select().count() == 0

    res = _invite(pages, path, " example.com,example.net  example.com ")
    assert res.status_code == 303, res.text
    with api.services.db.connection_context():
        [inv] = InvitationRecord.select()
    assert json.loads(inv.permissions) == [
        "domains",
        "managedomains@example.com",
        "managedomains@example.net",
    ]
    listing = pages.get(f"/areas/{owner.area_id}/users").text
    manage = {"en": "Manage domains", "es": "Gestionar dominios"}[language]
    assert f"{manage} (example.com, example.net)" in _text(listing)


def test_an_empty_field_grants_the_permission_on_every_resource(api: Api) -> None:
    owner, pages = _owner(api)
    res = _invite(pages, f"/areas/{owner.area_id}/users/invite", "")
    assert res.status_code == 303, res.text
    with api.services.db.connection_context():
        [inv] = InvitationRecord.select()
    assert json.loads(inv.permissions) == ["domains", "managedomains"]


def test_the_edit_page_shows_and_changes_the_ids(api: Api) -> None:
    owner, pages = _owner(api)
    member = api.link(owner, "m@example.com", ["managedomains@example.com"])
    edit = f"/areas/{owner.area_id}/users/{member.user_id}/edit"
    page = pages.get(edit).text
    assert _checked(page, "managedomains")
    assert 'name="scope-managedomains" value="example.com"' in page
    res = pages.post(
        edit,
        [
            ("csrf", pages.csrf(edit)),
            ("access", "some"),
            ("permission", "managedomains"),
            ("scope-managedomains", "example.org"),
        ],
    )
    assert res.status_code == 303, res.text
    with api.services.db.connection_context():
        grant = GrantRecord.get(
            (GrantRecord.area_id == owner.area_id) & (GrantRecord.user_id == member.user_id)
        )
    assert json.loads(grant.permissions) == ["managedomains@example.org"]
    assert not api.decide(member, owner.area_id, "domain", "update")  # resource id "1"
