"""Access until, in the pages: User Management says "expires in 3 days" (English and
Spanish) in the browser's time zone, the grant edit extends it, the invite form sets it,
and a bad value comes back on the form in the user's language.

Through HTTP against the in-process app and a real database (SQLite and PostgreSQL); the
browser's zone is the ``tz`` cookie the pages' script sets.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from delegauth.storage.records import GrantRecord
from tests.conftest import Api, FrozenClock
from tests.functional.test_console_forms import Pages

MADRID = ZoneInfo("Europe/Madrid")


def _grant_until(api: Api, owner_area: str, user_id: str):  # type: ignore[no-untyped-def]
    with api.services.db.connection_context():
        return GrantRecord.get(
            (GrantRecord.area_id == owner_area) & (GrantRecord.user_id == user_id)
        ).valid_until


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ("Access until", "expires in 3 days", "expires in 10 days")),
        ("es", ("Acceso hasta", "caduca en 3 días", "caduca en 10 días")),
    ],
)
def test_user_management_shows_the_end_and_the_edit_extends_it(
    api: Api, clock: FrozenClock, language: str, words: tuple[str, str, str]
) -> None:
    owner = api.signup("o@example.com", name="Olivia")
    delegate = api.link(owner, "d@example.com", ["invoices"])
    pages = Pages(api, language)
    pages.cookies["tz"] = "Europe/Madrid"
    pages.signin(owner.email)
    edit = f"/areas/{owner.area_id}/users/{delegate.user_id}/edit"
    # The owner sets an end three days from now, typed in Madrid's time.
    end_local = (clock().replace(tzinfo=UTC) + timedelta(days=3, minutes=5)).astimezone(MADRID)
    typed = end_local.strftime("%Y-%m-%dT%H:%M")
    res = pages.post(
        edit,
        [
            ("csrf", pages.csrf(edit)),
            ("access", "some"),
            ("permission", "invoices"),
            ("valid_until", typed),
        ],
    )
    assert res.status_code == 303, res.text
    stored = _grant_until(api, owner.area_id, delegate.user_id)
    assert stored == end_local.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0)
    page = unescape(pages.get(f"/areas/{owner.area_id}/users").text)
    label, remaining, extended = words
    assert f"{label}: {remaining} · {end_local:%Y-%m-%d %H:%M} (Europe/Madrid)" in page
    # The edit page shows the end in the field, in Madrid's time; extending saves.
    assert f'value="{typed}"' in pages.get(edit).text
    later = (end_local + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    res = pages.post(
        edit,
        [
            ("csrf", pages.csrf(edit)),
            ("access", "some"),
            ("permission", "invoices"),
            ("valid_until", later),
        ],
    )
    assert res.status_code == 303, res.text
    assert f"{label}: {extended} · " in unescape(pages.get(f"/areas/{owner.area_id}/users").text)
    # An empty field: no end.
    res = pages.post(
        edit,
        [
            ("csrf", pages.csrf(edit)),
            ("access", "some"),
            ("permission", "invoices"),
            ("valid_until", ""),
        ],
    )
    assert res.status_code == 303
    assert _grant_until(api, owner.area_id, delegate.user_id) is None


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("en", "Choose a date and time in the future."),
        ("es", "Elige una fecha y una hora futuras."),
    ],
)
def test_a_past_end_comes_back_on_the_invite_form(
    api: Api, clock: FrozenClock, language: str, message: str
) -> None:
    owner = api.signup("o@example.com")
    pages = Pages(api, language)
    pages.signin(owner.email)  # no tz cookie: UTC, and the hint says so
    invite = f"/areas/{owner.area_id}/users/invite"
    form = pages.get(invite).text
    assert "UTC" in form and 'type="datetime-local"' in form
    past = (clock() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    res = pages.post(
        invite,
        [
            ("csrf", pages.csrf(invite)),
            ("email", "d@example.com"),
            ("access", "all"),
            ("valid_until", past),
        ],
    )
    assert res.status_code == 400
    assert message in unescape(res.text)
    assert f'value="{past}"' in res.text  # kept as typed
    future = (clock() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    res = pages.post(
        invite,
        [
            ("csrf", pages.csrf(invite)),
            ("email", "d@example.com"),
            ("access", "all"),
            ("valid_until", future),
        ],
    )
    assert res.status_code == 303, res.text
    page = unescape(pages.get(f"/areas/{owner.area_id}/users").text)
    assert f"{future.replace('T', ' ')} (UTC)" in page
