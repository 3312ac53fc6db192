"""Approving an access request until an end, in a real browser, from the root URL and the
emailed links, by visible labels, in English and Spanish, each step checked at desktop
(1280×800) and phone (390×844) sizes:

- someone without access (their browser in Madrid's time zone) signs up from the root URL
  and asks the owner of an address for two permissions;
- the owner (their browser in New York's) follows the emailed link, signs in, and sees
  "Access until" on the review beside the permissions, with New York named; an end in the
  past comes back at the field; the owner approves one of the two until three days away;
- a service's decision allows the permission given and denies the other, before the end;
- the requester's mail says when the access ends, in Madrid's time; following its link,
  the area's home says "Access until: expires in 3 days" with the instant in Madrid's time;
- asking for more from inside, now a member, the owner's review offers no end (the grant
  keeps its own) and shows the one they have, in New York's time.

The words of this work are written out here, so a lost translation fails the test.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.browser import walk
from tests.browser.conftest import Snap
from tests.browser.test_access_request_walk import _mail, _path
from tests.e2e.conftest import Server, _cli, _Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

OWNER_ZONE = "America/New_York"
ASKER_ZONE = "Europe/Madrid"


@dataclass(frozen=True)
class Words:
    lang: str
    mine: str
    ask_owner: str
    owner_email: str
    some: str
    first: str
    second: str
    send: str
    owner_subject: str
    answer_subject: str
    until: str
    hint: str
    past: str
    approve: str
    approved: str
    in_3_days: str
    answer_until: str
    request: str
    review: str
    keeps: str


WORDS = {
    "en": Words(
        lang="en",
        mine="My access requests",
        ask_owner="Ask an owner for access",
        owner_email="Owner's email address",
        some="Choose permissions from the list",
        first="View and pay invoices",
        second="View and accept quotes",
        send="Send request",
        owner_subject="Access request for the Client Area “{area}”",
        answer_subject="Your access request for “{area}”: approved",
        until="Access until (optional)",
        hint=f"Date and time in {OWNER_ZONE}.",
        past="Choose a date and time in the future.",
        approve="Approve",
        approved="Request approved: the new permissions apply now.",
        in_3_days="Access until expires in 3 days",
        answer_until="This access ends on {}.",
        request="Request access",
        review="Review",
        keeps="They already have access here: it keeps its own end",
    ),
    "es": Words(
        lang="es",
        mine="Mis solicitudes de acceso",
        ask_owner="Pedir acceso a un propietario",
        owner_email="Correo del propietario",
        some="Elegir permisos de la lista",
        first="Ver y pagar facturas",
        second="Ver y aceptar presupuestos",
        send="Enviar solicitud",
        owner_subject="Solicitud de acceso al Área de Cliente «{area}»",
        answer_subject="Tu solicitud de acceso a «{area}»: aprobada",
        until="Acceso hasta (opcional)",
        hint=f"Fecha y hora en {OWNER_ZONE}.",
        past="Elige una fecha y una hora futuras.",
        approve="Aprobar",
        approved="Solicitud aprobada: los nuevos permisos ya se aplican.",
        in_3_days="Acceso hasta caduca en 3 días",
        answer_until="Este acceso termina el {}.",
        request="Solicitar acceso",
        review="Revisar",
        keeps="Ya tiene acceso aquí: conserva su propia fecha de fin",
    ),
}
_ids = itertools.count(1)


@pytest.fixture(params=sorted(WORDS))
def words(request: pytest.FixtureRequest) -> Words:
    return WORDS[request.param]


@pytest.fixture
def owner_person(browser: Browser, live_server: Server, words: Words) -> Iterator[walk.Person]:
    yield from walk.people(browser, live_server, words.lang, timezone_id=OWNER_ZONE)


@pytest.fixture
def asker_person(browser: Browser, live_server: Server, words: Words) -> Iterator[walk.Person]:
    yield from walk.people(browser, live_server, words.lang, timezone_id=ASKER_ZONE)


def _decide(server: Server, token: str, user: str, area: str, rtype: str, action: str) -> bool:
    res = requests.post(
        server.url("/access/v1/evaluation"),
        headers={"Authorization": f"Bearer {token}"},
        json={
            "subject": {"type": "user", "id": user},
            "action": {"name": action},
            "resource": {"type": rtype, "id": "1", "properties": {"area": area}},
        },
        timeout=10,
    )
    assert res.status_code == 200, res.text
    return bool(res.json()["decision"])


def _service_token(server: Server, name: str) -> str:
    secret = _cli(
        server.env,
        "clients",
        "create",
        name,
        "--grant-type",
        "client_credentials",
        "--scope",
        "decisions",
    )["client_secret"]
    res = requests.post(
        server.url("/oauth/token"),
        auth=(name, secret),
        data={"grant_type": "client_credentials", "scope": "decisions"},
        timeout=10,
    )
    assert res.status_code == 200, res.text
    return str(res.json()["access_token"])


def _typed(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M")


def _area_and_member(page: Page, email: str) -> tuple[str, str]:
    """On User Management: the area's id and the member's, from their Modify link."""
    href = walk.row(page, email).get_by_role("link").first.get_attribute("href") or ""
    match = re.search(r"/areas/(a_[a-z2-7]+)/users/(u_[a-z2-7]+)/", href)
    assert match, href
    return match.group(1), match.group(2)


def test_approve_a_subset_until_an_end_from_the_emailed_link(
    owner_person: walk.Person,
    asker_person: walk.Person,
    words: Words,
    live_server: Server,
    mailbox: tuple[_Inbox, int],
    snap: Snap,
) -> None:
    w, lang, n = words, words.lang, next(_ids)
    inbox = mailbox[0]
    owner_name, owner_email = f"Ona Until {lang}{n}", f"o-apu-{lang}-{n}@example.com"
    asker_name, asker_email = f"Max Asker {lang}{n}", f"m-apu-{lang}-{n}@example.com"

    owner = walk.owner(owner_person, lang, owner_name, owner_email)
    walk.verify_from_email(owner, inbox, owner_email)

    asker = walk.owner(asker_person, lang, asker_name, asker_email)
    walk.verify_from_email(asker, inbox, asker_email)
    asker.goto("/")
    asker.wait_for_url("**/areas/a_*")
    asker.get_by_role("link", name=w.mine, exact=True).click()
    asker.get_by_role("link", name=w.ask_owner, exact=True).click()
    asker.wait_for_url("**/access-requests/new")
    asker.get_by_label(w.owner_email, exact=True).fill(owner_email)
    asker.get_by_role("radio", name=w.some, exact=True).check()
    walk.permission(asker, w.first).check()
    walk.permission(asker, w.second).check()
    asker.get_by_role("button", name=w.send, exact=True).click()
    asker.wait_for_url("**/access-requests?done=asked")

    # The owner follows the emailed link: sign in, then the review with "Access until".
    review = _path(
        _mail(inbox, owner_email, w.owner_subject.format(area=owner_name)),
        r"/areas/a_[a-z2-7]+/access-requests/r_[a-z2-7]+",
    )
    owner.context.clear_cookies()
    owner.goto(review)
    owner.wait_for_url(lambda u: walk.path(owner) == "/signin")
    walk.sign_in(owner, lang, owner_email)
    owner.wait_for_url(lambda u: walk.path(owner) == urlsplit(review).path)
    until = owner.get_by_label(w.until, exact=True)
    assert w.hint in owner.locator("#valid-until-hint").inner_text()
    walk.permission(owner, w.second).uncheck()
    now_owner = datetime.now(ZoneInfo(OWNER_ZONE))
    until.fill(_typed(now_owner - timedelta(hours=2)))
    owner.get_by_role("button", name=w.approve, exact=True).click()
    owner.locator("#valid-until-error").wait_for()
    assert owner.locator("#valid-until-error").inner_text() == w.past
    assert not walk.permission(owner, w.second).is_checked()  # the form as it was sent
    walk.step(owner, snap, "review-past-end-refused")
    end = now_owner + timedelta(days=3, minutes=10)
    owner.get_by_label(w.until, exact=True).fill(_typed(end))
    walk.step(owner, snap, "review-with-access-until")
    owner.get_by_role("button", name=w.approve, exact=True).click()
    owner.wait_for_url("**/users?done=approved")
    assert walk.status(owner) == w.approved
    walk.step(owner, snap, "approved-until")

    # Before the end, a service's decision allows what was given, and only that.
    area_id, asker_id = _area_and_member(owner, asker_email)
    token = _service_token(live_server, f"svc-apu-{lang}-{n}")
    assert _decide(live_server, token, asker_id, area_id, "invoice", "read")
    assert not _decide(live_server, token, asker_id, area_id, "quote", "read")

    # The requester follows their emailed link, and the area's home says when it ends,
    # in their own time zone.
    answer = _mail(inbox, asker_email, w.answer_subject.format(area=owner_name))
    end_there = end.astimezone(ZoneInfo(ASKER_ZONE))
    shown = f"{_typed(end_there).replace('T', ' ')} ({ASKER_ZONE})"
    assert w.answer_until.format(shown) in answer  # the mail too, in the requester's zone
    asker.goto(_path(answer, r"/access-requests"))
    asker.goto("/")
    asker.get_by_role("link", name=re.compile(re.escape(owner_name))).first.click()
    asker.wait_for_url(f"**/areas/{area_id}")
    facts = " ".join(asker.locator("dl.facts").inner_text().split())
    assert f"{w.in_3_days} · {shown}" in facts
    walk.step(asker, snap, "area-home-access-until")

    # Now a member, they ask for the other one from inside: the owner's review offers no
    # end (their grant keeps its own) and shows the one they have.
    asker.get_by_role("link", name=w.request, exact=True).click()
    asker.get_by_role("radio", name=w.some, exact=True).check()
    walk.permission(asker, w.second).check()
    asker.get_by_role("button", name=w.send, exact=True).click()
    asker.wait_for_url("**/access-requests?done=requested")
    owner.goto("/")
    walk.user_management(owner)
    walk.row(owner, asker_email).last.get_by_role("link", name=w.review, exact=True).click()
    owner.wait_for_url("**/access-requests/r_*")
    assert owner.get_by_label(w.until, exact=True).count() == 0
    assert w.keeps in owner.locator("main").inner_text()
    owner_shown = f"{_typed(end).replace('T', ' ')} ({OWNER_ZONE})"
    assert owner_shown in " ".join(owner.locator("dl.facts").inner_text().split())
    walk.step(owner, snap, "review-member-keeps-end")
