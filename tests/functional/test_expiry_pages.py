"""Access until, in the pages: User Management says "expires in 3 days" (English and
Spanish) in the browser's time zone, the grant edit extends it, the invite form and the
access-request review set it, the delegate's area home shows it, and a bad value comes
back on the form in the user's language.

Through HTTP against the in-process app and a real database (SQLite and PostgreSQL); the
browser's zone is the ``tz`` cookie the pages' script sets.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
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


def _review_link(api: Api, owner_area: str, boss: Pages) -> str:
    match = re.search(
        r'href="(/areas/[^"]+/access-requests/r_[a-z2-7]+)"',
        boss.get(f"/areas/{owner_area}/users").text,
    )
    assert match
    return match.group(1)


@pytest.mark.parametrize(
    ("language", "words"),
    [
        (
            "en",
            (
                "Access until (optional)",
                "Date and time in Europe/Madrid.",
                "Choose a date and time in the future.",
                "Choose a date and time within ten years.",
                "Access until",
                "expires in 3 days",
            ),
        ),
        (
            "es",
            (
                "Acceso hasta (opcional)",
                "Fecha y hora en Europe/Madrid.",
                "Elige una fecha y una hora futuras.",
                "Elige una fecha y una hora dentro de los próximos diez años.",
                "Acceso hasta",
                "caduca en 3 días",
            ),
        ),
    ],
)
def test_the_review_approves_a_subset_until_an_end_in_the_owners_zone(
    api: Api, clock: FrozenClock, language: str, words: tuple[str, ...]
) -> None:
    label, hint, past_message, far_message, until_label, remaining = words
    owner = api.signup("o@example.com", name="Olivia")
    asker = api.signup("s@example.com", name="Sam")
    them = Pages(api, language)
    them.cookies["tz"] = "America/New_York"
    them.signin(asker.email)
    ask = "/access-requests/new"
    res = them.post(
        ask,
        [
            ("csrf", them.csrf(ask)),
            ("email", owner.email),
            ("access", "some"),
            ("permission", "invoices"),
            ("permission", "quotes"),
        ],
    )
    assert res.status_code == 303, res.text

    boss = Pages(api, language)
    boss.cookies["tz"] = "Europe/Madrid"
    boss.signin(owner.email)
    review = _review_link(api, owner.area_id, boss)
    form = unescape(boss.get(review).text)
    assert label in form and hint in form and 'type="datetime-local"' in form

    def approve(typed: str) -> object:
        return boss.post(
            review + "/approve",
            [
                ("csrf", boss.csrf(review)),
                ("access", "some"),
                ("permission", "quotes"),
                ("valid_until", typed),
            ],
        )

    now_madrid = clock().replace(tzinfo=UTC).astimezone(MADRID)
    for typed, message in (
        ((now_madrid - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), past_message),
        ((now_madrid + timedelta(days=3700)).strftime("%Y-%m-%dT%H:%M"), far_message),
        ("tomorrow", None),
    ):
        res = approve(typed)
        assert res.status_code == 400, res.text  # type: ignore[attr-defined]
        page = unescape(res.text)  # type: ignore[attr-defined]
        assert f'value="{typed}"' in page  # kept as typed, at its field
        if message:
            assert re.search(r'id="valid-until-error">' + re.escape(message), page), page
        assert not api.decide(asker, owner.area_id, "quote", "read")

    end_madrid = now_madrid + timedelta(days=3, minutes=5)
    res = approve(end_madrid.strftime("%Y-%m-%dT%H:%M"))
    assert res.status_code == 303, res.text  # type: ignore[attr-defined]
    end_utc = end_madrid.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0)
    assert _grant_until(api, owner.area_id, asker.user_id) == end_utc
    assert api.decide(asker, owner.area_id, "quote", "read")
    assert not api.decide(asker, owner.area_id, "invoice", "read")

    # The requester sees the end on the area's home, in their own zone.
    home = unescape(them.get(f"/areas/{owner.area_id}").text)
    end_ny = end_utc.replace(tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    assert re.search(
        rf'<dt>{until_label}</dt><dd>{remaining} · <span class="instant">'
        rf"{end_ny:%Y-%m-%d %H:%M}</span> \(America/New_York\)</dd>",
        home,
    ), home


def test_a_members_review_keeps_their_end_and_offers_no_field(api: Api, clock: FrozenClock) -> None:
    owner = api.signup("o@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    boss = Pages(api)
    boss.signin(owner.email)
    edit = f"/areas/{owner.area_id}/users/{d.user_id}/edit"
    end = (clock() + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    res = boss.post(
        edit,
        [
            ("csrf", boss.csrf(edit)),
            ("access", "some"),
            ("permission", "tickets"),
            ("valid_until", end),
        ],
    )
    assert res.status_code == 303
    them = Pages(api)
    them.signin(d.email)
    ask = f"/areas/{owner.area_id}/request-access"
    res = them.post(ask, [("csrf", them.csrf(ask)), ("access", "some"), ("permission", "quotes")])
    assert res.status_code == 303, res.text
    review = _review_link(api, owner.area_id, boss)
    page = unescape(boss.get(review).text)
    assert 'name="valid_until"' not in page
    assert "it keeps its own end" in page
    when = end.replace("T", " ")
    assert f'expires in 5 days · <span class="instant">{when}</span> (UTC)' in page
    # An end posted anyway is refused at the field, in the user's words.
    later = (clock() + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M")
    res = boss.post(
        review + "/approve",
        [
            ("csrf", boss.csrf(review)),
            ("access", "some"),
            ("permission", "quotes"),
            ("valid_until", later),
        ],
    )
    assert res.status_code == 400
    assert "An end applies to a whole grant" in unescape(res.text)
    res = boss.post(
        review + "/approve",
        [("csrf", boss.csrf(review)), ("access", "some"), ("permission", "quotes")],
    )
    assert res.status_code == 303
    assert _grant_until(api, owner.area_id, d.user_id) == datetime.fromisoformat(end)
    assert api.decide(d, owner.area_id, "quote", "read")
