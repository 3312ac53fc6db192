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
