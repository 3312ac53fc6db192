"""Grant changes reach webhooks: signed (Standard Webhooks), retried, never for a change
that rolled back, never lost by a dispatcher that dies mid-send."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from delegauth.config import Settings
from delegauth.storage.records import WebhookDeliveryRecord, WebhookEventRecord
from tests.conftest import REPO, Api, FrozenClock, Person
from tests.webhook_receiver import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(webhooks_insecure=True)  # the receiver is on loopback


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def _endpoint(api: Api, owner: Person, url: str) -> tuple[str, str]:
    endpoint, secret = api.services.webhooks.add(owner.user_id, owner.area_id, url)
    return endpoint.id, secret


def _deliveries(api: Api) -> list[WebhookDeliveryRecord]:
    with api.services.db.connection_context():
        return list(WebhookDeliveryRecord.select().order_by(WebhookDeliveryRecord.id))


def test_a_grant_change_reaches_the_receiver_signed(api: Api, receiver: Receiver) -> None:
    owner = api.signup("o@example.com")
    endpoint_id, secret = _endpoint(api, owner, receiver.url)
    assert secret.startswith("whsec_")
    delegate = api.link(owner, "d@example.com", ["tickets"])
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{delegate.user_id}",
        api.token(owner),
        json={"permissions": ["tickets", "invoices"]},
    )
    assert res.status_code == 200, res.text

    assert api.services.dispatcher.deliver_due() == 4  # invited, accepted, created, changed
    got = receiver.wait_for(4)
    events = [Webhook(secret).verify(r.body, r.headers) for r in got]
    assert [e["type"] for e in events] == [
        "grant.invited",
        "grant.accepted",
        "grant.created",
        "grant.changed",
    ]
    changed = events[-1]["data"]
    assert changed["action"] == "grant.updated"
    assert changed["area"] == owner.area_id
    assert changed["target"] == f"user:{delegate.user_id}"
    assert changed["after"]["permissions"] == ["invoices", "tickets"]
    assert len({r.headers["webhook-id"] for r in got}) == 4
    # Another secret does not verify: the signature is the endpoint's own.
    other = "whsec_" + "A" * 43 + "="
    with pytest.raises(Exception, match="signature"):
        Webhook(other).verify(got[0].body, got[0].headers)
    assert {d.status for d in _deliveries(api)} == {"delivered"}
    assert {d.endpoint_id for d in _deliveries(api)} == {endpoint_id}


def test_another_areas_changes_are_not_sent(api: Api, receiver: Receiver) -> None:
    owner = api.signup("o@example.com")
    _endpoint(api, owner, receiver.url)
    other = api.signup("p@example.com")
    api.invite(other, "x@example.com")
    assert api.services.dispatcher.deliver_due() == 0
    assert receiver.received == []


def test_a_failed_delivery_is_retried_with_backoff(
    api: Api, receiver: Receiver, clock: FrozenClock
) -> None:
    owner = api.signup("o@example.com")
    _, secret = _endpoint(api, owner, receiver.url)
    receiver.answers = [500]
    api.invite(owner, "x@example.com")

    assert api.services.dispatcher.deliver_due() == 0
    (delivery,) = _deliveries(api)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, 500)
    assert "500" in delivery.last_error
    assert delivery.next_attempt_at >= clock() + api.services.dispatcher.retry_delay(1)

    assert api.services.dispatcher.deliver_due() == 0  # not due yet
    clock.advance(seconds=api.services.dispatcher.retry_delay(1).total_seconds() + 1)
    assert api.services.dispatcher.deliver_due() == 1

    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert Webhook(secret).verify(second.body, second.headers)["type"] == "grant.invited"
    (delivery,) = _deliveries(api)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 2, 200)


def test_nothing_is_published_for_a_change_that_rolled_back(api: Api, receiver: Receiver) -> None:
    owner = api.signup("o@example.com")
    _endpoint(api, owner, receiver.url)
    delegate = api.link(owner, "d@example.com", ["tickets"])
    assert api.services.dispatcher.deliver_due() == 3
    with api.services.db.connection_context():
        events_before = WebhookEventRecord.select().count()

    with pytest.raises(RuntimeError, match="injected"), api.services.store.transaction():
        api.services.members.change(owner.user_id, owner.area_id, delegate.user_id, ["invoices"])
        # The audit event and its webhook rows are written by now; fail before commit.
        with api.services.db.connection_context():
            assert WebhookEventRecord.select().count() == events_before + 1
        raise RuntimeError("injected after the audit write")

    with api.services.db.connection_context():
        assert WebhookEventRecord.select().count() == events_before
    assert api.services.dispatcher.deliver_due() == 0
    assert len(receiver.received) == 3


def test_redelivery_on_request_sends_the_same_message_again(api: Api, receiver: Receiver) -> None:
    owner = api.signup("o@example.com")
    endpoint_id, secret = _endpoint(api, owner, receiver.url)
    api.invite(owner, "x@example.com")
    assert api.services.dispatcher.deliver_due() == 1
    (log,) = api.services.webhooks.deliveries(owner.user_id, owner.area_id, endpoint_id)
    assert (log.status, log.type) == ("delivered", "grant.invited")

    again = api.services.webhooks.redeliver(owner.user_id, owner.area_id, endpoint_id, log.id)
    assert again.status == "pending" and again.msg_id == log.msg_id
    assert api.services.dispatcher.deliver_due() == 1
    first, second = receiver.wait_for(2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    Webhook(secret).verify(second.body, second.headers)
    newest, oldest = api.services.webhooks.deliveries(owner.user_id, owner.area_id, endpoint_id)
    assert (newest.id, newest.status, oldest.id) == (again.id, "delivered", log.id)


_DIE_MID_SEND = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy
    from delegauth.storage.webhooks import PeeweeWebhookStore
    from delegauth.webhooks import HttpxSender, WebhookDispatcher, WebhookKey

    db = open_database(sys.argv[1])
    database_proxy.initialize(db)
    now = lambda: datetime.now(UTC).replace(tzinfo=None)
    WebhookDispatcher(
        PeeweeWebhookStore(db),
        HttpxSender(allow_private=True),
        WebhookKey.load_or_create("", sys.argv[2]).secret,
        clock=now,
        lease_s=60,
    ).deliver_due(1)
    """
)


def test_a_dispatcher_killed_mid_send_loses_nothing(
    api: Api, receiver: Receiver, clock: FrozenClock
) -> None:
    owner = api.signup("o@example.com")
    _, secret = _endpoint(api, owner, receiver.url)
    api.invite(owner, "x@example.com")
    receiver.hold()  # the request arrives, and no answer comes back
    settings = api.services.settings
    proc = subprocess.Popen(
        [sys.executable, "-c", _DIE_MID_SEND, settings.database_url, settings.key_dir],
        env={**os.environ, "PYTHONPATH": str(Path(REPO) / "src")},
    )
    try:
        (sent,) = receiver.wait_for(1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    receiver.release()
    (delivery,) = _deliveries(api)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.locked_until is not None  # claimed, never finished

    assert api.services.dispatcher.deliver_due() == 0  # its lease still holds it
    clock.now = delivery.locked_until
    clock.advance(seconds=1)
    assert api.services.dispatcher.deliver_due() == 1
    _, again = receiver.wait_for(2)
    assert again.headers["webhook-id"] == sent.headers["webhook-id"]
    assert json.loads(again.body) == Webhook(secret).verify(again.body, again.headers)
    (delivery,) = _deliveries(api)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
