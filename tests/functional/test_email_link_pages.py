"""Where the emailed links lead, over HTTP (the browser walks: tests/browser/test_email_links):
the link's language outlasts sign-in and the way back keeps the page; the owner's review
link opened as another account offers to sign out and continue; an area out of reach, as
an old reminder's link may find it, is a page that says why, never a bare 404.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import Api, FrozenClock
from tests.functional.test_access_requests import _ask_area
from tests.functional.test_console_forms import Pages, _text
from tests.functional.test_expiry import _delegate_until, _end


def _link(api: Api, to: str) -> str:
    """The last mail's link to ``to``, as a path on our server."""
    url = urlsplit(re.findall(r"https?://\S+", api.last_mail(to).text)[-1])
    return url.path + "?" + url.query


@pytest.mark.parametrize(("mail", "browser"), [("es", "en"), ("en", "es")])
def test_the_review_link_keeps_its_language_and_the_page_through_signin(
    api: Api, mail: str, browser: str
) -> None:
    owner = api.signup("owner@example.com", name="Olivia", locale=mail)
    d = api.link(owner, "d@example.com", ["tickets"])
    assert _ask_area(api, d, owner.area_id, ["invoices"]).status_code == 202
    link = _link(api, "owner@example.com")
    assert parse_qs(urlsplit(link).query)["lang"] == [mail]
    review = urlsplit(link).path

    pages = Pages(api, browser)
    res = pages.get(link)
    assert res.status_code == 303
    signin = res.headers["Location"]
    assert parse_qs(urlsplit(signin).query)["return_to"] == [review]
    form = pages.get(signin)
    assert f'lang="{mail}"' in form.text
    assert f'name="return_to" value="{review}"' in unescape(form.text)
    pages.signin("owner@example.com")
    page = pages.get(review)
    assert page.status_code == 200 and f'lang="{mail}"' in page.text


@pytest.mark.parametrize(
    ("language", "words"),
    [
        (
            "en",
            (
                "This access request is for another account",
                "This access request was sent to o•••@example.com, the owner of the Client Area.",
                "You are signed in as d@example.com.",
                "To review it, sign out and sign in as o•••@example.com.",
                "Sign out and continue",
            ),
        ),
        (
            "es",
            (
                "Esta solicitud de acceso es para otra cuenta",
                "Esta solicitud de acceso se envió a o•••@example.com, propietario del Área"
                " de Cliente.",
                "Has iniciado sesión como d@example.com.",
                "Para revisarla, cierra la sesión y entra como o•••@example.com.",
                "Cerrar sesión y seguir",
            ),
        ),
    ],
)
def test_the_review_link_as_another_account_offers_to_sign_out_and_continue(
    api: Api, language: str, words: tuple[str, ...]
) -> None:
    owner = api.signup("owner@example.com", name="Olivia")
    d = api.link(owner, "d@example.com", ["tickets"])
    assert _ask_area(api, d, owner.area_id, ["invoices"]).status_code == 202
    review = urlsplit(_link(api, "owner@example.com")).path
    pages = Pages(api, language)
    pages.signin("d@example.com")
    page = pages.get(review)
    assert page.status_code == 403
    text = " ".join(_text(page.text).split())
    for said in words:
        assert said in text, said
    assert f'name="return_to" value="{review}"' in page.text and 'action="/signout"' in page.text
    res = pages.post("/signout", [("csrf", pages.csrf(review)), ("return_to", review)])
    assert res.status_code == 303 and res.headers["Location"] == review
    # No such request in that area: the error it always was, naming nobody.
    other = review[: review.rindex("/") + 1] + "r_" + "a" * 26
    pages.signin("d@example.com")
    res = pages.get(other)
    assert res.status_code == 403 and words[0] not in _text(res.text)
    assert "o•••@example.com" not in _text(res.text)


@pytest.mark.parametrize(
    ("language", "words"),
    [
        (
            "en",
            (
                "No access to this Client Area",
                "Your access to the Client Area “Olivia” ended on ",
                "If you still need it, ask its owner, Olivia (o@example.com), to extend it.",
                "You cannot reach this Client Area with this account",
            ),
        ),
        (
            "es",
            (
                "Sin acceso a esta Área de Cliente",
                "Tu acceso al Área de Cliente «Olivia» terminó el ",
                "Si todavía lo necesitas, pide a su propietario, Olivia (o@example.com), que"
                " lo amplíe.",
                "No puedes entrar en esta Área de Cliente con esta cuenta",
            ),
        ),
    ],
)
def test_an_area_out_of_reach_says_why_and_tells_a_stranger_nothing(
    api: Api, clock: FrozenClock, language: str, words: tuple[str, ...]
) -> None:
    title, ended, ask, gone = words
    owner = api.signup("o@example.com", name="Olivia")
    until = _end(clock, hours=1)  # within the browser session's life
    _delegate_until(api, owner, "d@example.com", until)
    delegate = Pages(api, language)
    delegate.signin("d@example.com")
    home = f"/areas/{owner.area_id}"
    assert delegate.get(home).status_code == 200
    clock.now = until
    page = delegate.get(home)
    assert page.status_code == 403
    text = _text(page.text)
    assert title in text and f"{ended}{until:%Y-%m-%d %H:%M} (UTC)." in text and ask in text
    assert 'href="/"' in page.text and 'href="/access-requests/new"' in page.text

    # Someone who never had it, or an area that is not there: the same words, no name.
    api.signup("s@example.com")
    stranger = Pages(api, language)
    stranger.signin("s@example.com")
    answers = [stranger.get(home), stranger.get("/areas/a_" + "z" * 26)]
    for res in answers:
        assert res.status_code == 403
        text = _text(res.text)
        assert title in text and gone in text and "Olivia" not in text
    assert _text(answers[0].text) == _text(answers[1].text)
