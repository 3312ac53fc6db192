"""The access-request pages over HTTP: ask (from an area, or an owner by email), review,
approve part, decline, withdraw; errors on the form in the user's language."""

from __future__ import annotations

import re

from tests.conftest import Api, Person
from tests.functional.test_console_forms import Pages, _text


def _signed_in(api: Api, email: str, language: str = "en") -> Pages:
    pages = Pages(api, language)
    pages.signin(email)
    return pages


def _ask(pages: Pages, path: str, fields: list[tuple[str, str]]) -> object:
    return pages.post(path, [("csrf", pages.csrf(path)), *fields])


def test_a_delegate_asks_in_spanish_and_the_owner_approves_part(api: Api) -> None:
    owner = api.signup("owner@example.com", name="Olivia", locale="es")
    d = api.link(owner, "d@example.com", ["tickets"])
    delegate = _signed_in(api, "d@example.com", "es")
    home = _text(delegate.get(f"/areas/{owner.area_id}").text)
    assert "Solicitar acceso" in home and "Mis solicitudes de acceso" in home
    form = f"/areas/{owner.area_id}/request-access"
    assert "Elige los permisos que necesitas en Olivia" in _text(delegate.get(form).text)
    res = _ask(delegate, form, [("access", "some"), ("permission", "tickets")])
    assert res.status_code == 409  # type: ignore[attr-defined]
    assert "Ya tienes estos permisos." in _text(res.text)  # type: ignore[attr-defined]
    res = _ask(
        delegate,
        form,
        [
            ("access", "some"),
            ("permission", "invoices"),
            ("permission", "quotes"),
            ("message", "Para el cierre"),
        ],
    )
    assert res.status_code == 303, res.text  # type: ignore[attr-defined]
    mine = _text(delegate.get("/access-requests?done=requested").text)
    assert "Tu solicitud se ha enviado al propietario." in mine
    assert "Acceso a Olivia" in mine and "Pendiente" in mine and "Para el cierre" in mine

    boss = _signed_in(api, "owner@example.com", "es")
    users = _text(boss.get(f"/areas/{owner.area_id}/users").text)
    assert "Solicitudes de acceso" in users and "d@example.com" in users
    review = re.search(
        r'href="(/areas/[^"]+/access-requests/r_[a-z2-7]+)"',
        boss.get(f"/areas/{owner.area_id}/users").text,
    )
    assert review
    page = boss.get(review.group(1))
    assert "Solicitud de acceso de d@example.com" in _text(page.text)
    # more than was asked: refused on the form
    res = boss.post(
        review.group(1) + "/approve",
        [("csrf", boss.csrf(review.group(1))), ("access", "some"), ("permission", "orders")],
    )
    assert res.status_code == 400
    assert "Solo puedes aprobar permisos que se hayan solicitado." in _text(res.text)
    res = boss.post(
        review.group(1) + "/approve",
        [("csrf", boss.csrf(review.group(1))), ("access", "some"), ("permission", "quotes")],
    )
    assert res.status_code == 303 and "done=approved" in res.headers["location"]
    assert api.decide(d, owner.area_id, "quote", "read")
    assert not api.decide(d, owner.area_id, "invoice", "read")
    mine = _text(delegate.get("/access-requests").text)
    assert "Aprobada" in mine and "Concedido" in mine


def test_the_form_keeps_what_was_typed_and_says_what_is_wrong(api: Api) -> None:
    api.signup("owner@example.com")
    api.signup("asker@example.com")
    asker = _signed_in(api, "asker@example.com")
    res = _ask(
        asker,
        "/access-requests/new",
        [
            ("email", "owner@example.com"),
            ("access", "all"),
            ("message", "see https://evil.example"),
        ],
    )
    assert res.status_code == 400  # type: ignore[attr-defined]
    text = _text(res.text)  # type: ignore[attr-defined]
    assert "Links are not allowed in the message." in text
    assert 'value="owner@example.com"' in res.text  # type: ignore[attr-defined]
    assert "see https://evil.example</textarea>" in res.text  # type: ignore[attr-defined]


def test_asking_an_owner_by_email_reads_the_same_either_way(api: Api) -> None:
    api.signup("owner@example.com")
    asker = _signed_in(api, api.signup("asker@example.com").email)
    answers = []
    for email in ("owner@example.com", "nobody@example.com"):
        res = _ask(asker, "/access-requests/new", [("email", email), ("access", "all")])
        assert res.status_code == 303  # type: ignore[attr-defined]
        answers.append(res.headers["location"])  # type: ignore[attr-defined]
    assert answers[0] == answers[1] == "/access-requests?done=asked"
    mine = _text(asker.get(answers[0]).text)
    assert "If that address belongs to an owner, they have been told by email." in mine
    assert "To the owner of owner@example.com" in mine
    assert "To the owner of nobody@example.com" in mine
    assert mine.count("Pending") == 2


def _request_id(api: Api, who: Person) -> str:
    """The id of the requester's pending request."""
    res = api.call("GET", "/v1/me/access-requests", api.token(who))
    [task] = [r["task"] for r in res.json["access_requests"] if r["task"]["status"] == "pending"]
    return str(task["id"])


def test_withdraw_and_decline_from_the_pages(api: Api) -> None:
    owner = api.signup("owner@example.com")
    d = api.link(owner, "d@example.com", ["tickets"])
    delegate = _signed_in(api, "d@example.com")
    form = f"/areas/{owner.area_id}/request-access"
    _ask(delegate, form, [("access", "some"), ("permission", "invoices")])
    rid = _request_id(api, d)
    res = delegate.post(
        f"/access-requests/{rid}/withdraw", [("csrf", delegate.csrf("/access-requests"))]
    )
    assert res.headers["location"] == "/access-requests?done=withdrawn"
    assert "Withdrawn" in _text(delegate.get("/access-requests").text)
    again = delegate.post(
        f"/access-requests/{rid}/withdraw", [("csrf", delegate.csrf("/access-requests"))]
    )
    assert again.status_code == 409
    assert "already answered or withdrawn" in _text(again.text)

    _ask(delegate, form, [("access", "some"), ("permission", "invoices")])
    rid = _request_id(api, d)
    boss = _signed_in(api, "owner@example.com")
    review = f"/areas/{owner.area_id}/access-requests/{rid}"
    res = boss.post(review + "/decline", [("csrf", boss.csrf(review))])
    assert res.headers["location"] == f"/areas/{owner.area_id}/users?done=request_declined"
    assert "No access requests are waiting." in _text(
        boss.get(f"/areas/{owner.area_id}/users").text
    )
    assert "Declined" in _text(delegate.get("/access-requests").text)
    assert not api.decide(d, owner.area_id, "invoice", "read")
    # someone who may not manage users cannot open the review
    other = api.link(owner, "e@example.com", ["tickets"])
    assert other
    res = _signed_in(api, "e@example.com").get(review)
    assert res.status_code == 403
