"""The Webhooks pages (an area's owner): add a webhook and see its secret once, read the
delivery log, send again, remove; refusals on the form in the user's language."""

from __future__ import annotations

import re

import pytest
from standardwebhooks.webhooks import Webhook

from delegauth.config import Settings
from tests.conftest import Api
from tests.functional.test_console_forms import Pages, _text
from tests.webhook_receiver import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(webhooks_insecure=True)  # the receiver is on loopback


def test_the_owner_adds_a_webhook_reads_its_log_sends_again_and_removes_it(api: Api) -> None:
    receiver = Receiver()
    try:
        owner = api.signup("o@example.com")
        pages = Pages(api)
        pages.signin("o@example.com")
        home = pages.get(f"/areas/{owner.area_id}").text
        assert f"/areas/{owner.area_id}/webhooks" in home  # the owner's home links it
        hooks = f"/areas/{owner.area_id}/webhooks"
        res = pages.post(
            hooks, [("csrf", pages.csrf(hooks)), ("url", receiver.url), ("description", "SIEM")]
        )
        assert res.status_code == 201, res.text
        secret = re.search(r'<code class="secret">(whsec_[^<]+)</code>', res.text)
        assert secret, res.text
        listing = pages.get(hooks).text
        assert receiver.url in listing and "SIEM" in listing
        assert secret.group(1) not in listing  # shown once only

        api.invite(owner, "x@example.com")
        assert api.services.dispatcher.deliver_due() == 1
        (got,) = receiver.wait_for(1)
        Webhook(secret.group(1)).verify(got.body, got.headers)

        (endpoint,) = api.services.webhooks.listing(owner.user_id, owner.area_id)
        log_page = f"{hooks}/{endpoint.id}"
        log = _text(pages.get(log_page).text)
        assert "grant.invited" in log and "Delivered" in log and "200" in log
        again = re.search(r'action="([^"]+/redeliver)"', pages.get(log_page).text)
        assert again
        res = pages.post(again.group(1), [("csrf", pages.csrf(log_page))])
        assert res.status_code == 303 and res.headers["location"].endswith("done=redelivered")
        assert api.services.dispatcher.deliver_due() == 1
        assert receiver.wait_for(2)[1].headers["webhook-id"] == got.headers["webhook-id"]

        res = pages.post(f"{log_page}/remove", [("csrf", pages.csrf(hooks))])
        assert res.status_code == 303
        assert "The webhook was removed." in _text(pages.get(res.headers["location"]).text)
        assert api.services.webhooks.listing(owner.user_id, owner.area_id) == []
    finally:
        receiver.close()


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "The address must start with https://."),
        ("es", "La dirección debe empezar por https://."),
    ],
)
def test_a_refused_url_is_explained_on_the_form(api: Api, language: str, words: str) -> None:
    owner = api.signup("o@example.com")
    pages = Pages(api, language)
    pages.signin("o@example.com")
    hooks = f"/areas/{owner.area_id}/webhooks"
    res = pages.post(hooks, [("csrf", pages.csrf(hooks)), ("url", "ftp://x.example.com/")])
    assert res.status_code == 400
    assert words in _text(res.text)
    assert 'value="ftp://x.example.com/"' in res.text  # what was typed stays


def test_only_the_owner_sees_and_opens_webhooks(api: Api) -> None:
    owner = api.signup("o@example.com")
    api.link(owner, "m@example.com", ["users"])
    pages = Pages(api)
    pages.signin("m@example.com")
    home = pages.get(f"/areas/{owner.area_id}").text
    assert "/webhooks" not in home
    assert pages.get(f"/areas/{owner.area_id}/webhooks").status_code == 403


def test_the_owner_chooses_a_webhooks_events_and_rotates_its_secret(api: Api) -> None:
    receiver = Receiver()
    try:
        owner = api.signup("o@example.com")
        pages = Pages(api)
        pages.signin("o@example.com")
        hooks = f"/areas/{owner.area_id}/webhooks"
        form = [("csrf", pages.csrf(hooks)), ("url", receiver.url), ("events", "some")]
        res = pages.post(hooks, [*form, ("event_type", "grant.removed")])
        assert res.status_code == 201, res.text
        old = re.search(r'<code class="secret">(whsec_[^<]+)</code>', res.text)
        assert old, res.text
        assert "grant.removed" in _text(pages.get(hooks).text)
        (endpoint,) = api.services.webhooks.listing(owner.user_id, owner.area_id)
        assert endpoint.event_types == ("grant.removed",)
        api.invite(owner, "x@example.com")
        assert api.services.dispatcher.deliver_due() == 0  # not asked for

        log_page = f"{hooks}/{endpoint.id}"
        page = pages.get(log_page).text
        assert 'value="grant.removed" checked' in page and 'id="events-some"' in page
        res = pages.post(
            f"{log_page}/events",
            [("csrf", pages.csrf(log_page)), ("events", "some"), ("event_type", "grant.invited")],
        )
        assert res.status_code == 303 and res.headers["location"].endswith("done=events_saved")
        assert "The webhook's events were saved." in _text(pages.get(res.headers["location"]).text)

        res = pages.post(f"{log_page}/rotate", [("csrf", pages.csrf(log_page))])
        assert res.status_code == 200, res.text
        new = re.search(r'<code class="secret">(whsec_[^<]+)</code>', res.text)
        assert new and new.group(1) != old.group(1)
        assert "each delivery is signed with the previous secret too" in _text(res.text)
        assert new.group(1) not in pages.get(log_page).text  # shown once only
        api.invite(owner, "y@example.com")
        assert api.services.dispatcher.deliver_due() == 1
        (got,) = receiver.wait_for(1)
        for secret in (old.group(1), new.group(1)):
            assert Webhook(secret).verify(got.body, got.headers)["type"] == "grant.invited"
    finally:
        receiver.close()


@pytest.mark.parametrize(
    ("language", "ticked", "words"),
    [
        ("en", [], "Tick at least one event type, or choose all events."),
        ("es", [], "Marque al menos un tipo de evento, o elija todos los eventos."),
        ("en", ["grant.exploded"], "That event type does not exist: choose from the list."),
        ("es", ["grant.exploded"], "Ese tipo de evento no existe: elija uno de la lista."),
    ],
)
def test_a_refused_event_choice_is_explained_on_the_form(
    api: Api, language: str, ticked: list[str], words: str
) -> None:
    owner = api.signup("o@example.com")
    pages = Pages(api, language)
    pages.signin("o@example.com")
    hooks = f"/areas/{owner.area_id}/webhooks"
    chosen = [("event_type", name) for name in ticked]
    form = [("csrf", pages.csrf(hooks)), ("url", "https://hooks.example.com/d"), ("events", "some")]
    res = pages.post(hooks, [*form, *chosen])
    assert res.status_code == 400
    assert words in _text(res.text)
    assert 'value="https://hooks.example.com/d"' in res.text  # what was typed stays
    assert api.services.webhooks.listing(owner.user_id, owner.area_id) == []
    endpoint, _secret = api.services.webhooks.add(
        owner.user_id, owner.area_id, "https://hooks.example.com/e"
    )
    log_page = f"{hooks}/{endpoint.id}"
    res = pages.post(
        f"{log_page}/events", [("csrf", pages.csrf(log_page)), ("events", "some"), *chosen]
    )
    assert res.status_code == 400 and words in _text(res.text)
    assert api.services.webhooks.get(owner.user_id, owner.area_id, endpoint.id).event_types is None
