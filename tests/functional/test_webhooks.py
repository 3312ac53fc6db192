"""Grant changes reach webhooks: signed (Standard Webhooks), retried, never for a change
that rolled back, never lost by a dispatcher that dies mid-send."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
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


# -- the JSON API ---------------------------------------------------------------------


def test_the_owner_manages_webhooks_and_redelivers_over_the_api(
    api: Api, receiver: Receiver
) -> None:
    owner = api.signup("o@example.com")
    hooks = f"/v1/areas/{owner.area_id}/webhooks"
    res = api.call(
        "POST", hooks, api.token(owner), json={"url": receiver.url, "description": "SIEM"}
    )
    assert res.status_code == 201, res.text
    webhook, secret = res.json["webhook"], res.json["secret"]
    assert webhook["area"] == owner.area_id and webhook["description"] == "SIEM"
    listed = api.call("GET", hooks, api.token(owner)).json["webhooks"]
    assert listed == [webhook]  # never the secret again
    assert "secret" not in api.call("GET", f"{hooks}/{webhook['id']}", api.token(owner)).json

    api.invite(owner, "x@example.com")
    assert api.services.dispatcher.deliver_due() == 1
    log = api.call("GET", f"{hooks}/{webhook['id']}/deliveries", api.token(owner)).json
    (first,) = log["deliveries"]
    assert log["next_before"] is None
    assert first["status"] == "delivered" and first["type"] == "grant.invited"
    assert (first["attempts"], first["response_code"], first["last_error"]) == (1, 200, None)

    res = api.call(
        "POST",
        f"{hooks}/{webhook['id']}/deliveries/{first['id']}/redeliver",
        api.token(owner),
    )
    assert res.status_code == 202, res.text
    assert res.json["delivery"]["message_id"] == first["message_id"]
    assert api.services.dispatcher.deliver_due() == 1
    one, two = receiver.wait_for(2)
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == first["message_id"]
    Webhook(secret).verify(two.body, two.headers)

    missing = f"{hooks}/{webhook['id']}/deliveries/999999/redeliver"
    assert api.call("POST", missing, api.token(owner)).status_code == 404
    assert api.call("DELETE", f"{hooks}/{webhook['id']}", api.token(owner)).json == {
        "removed": webhook["id"]
    }
    api.invite(owner, "y@example.com")
    assert api.services.dispatcher.deliver_due() == 0
    assert api.call("GET", hooks, api.token(owner)).json["webhooks"] == []


def test_only_the_owner_manages_webhooks_and_only_their_own(api: Api, receiver: Receiver) -> None:
    owner = api.signup("o@example.com")
    manager = api.link(owner, "m@example.com", ["users", "tickets"])
    hooks = f"/v1/areas/{owner.area_id}/webhooks"
    created = api.call("POST", hooks, api.token(owner), json={"url": receiver.url}).json
    as_manager = api.token(manager, owner.area_id)
    assert api.call("GET", hooks, as_manager).status_code == 403
    res = api.call("POST", hooks, as_manager, json={"url": receiver.url})
    assert res.status_code == 403 and res.json["code"] == "owner_only"

    stranger = api.signup("s@example.com")
    theirs = f"/v1/areas/{stranger.area_id}/webhooks/{created['webhook']['id']}"
    assert api.call("GET", theirs, api.token(stranger)).status_code == 404
    assert api.call("DELETE", theirs, api.token(stranger)).status_code == 404
    assert len(api.call("GET", hooks, api.token(owner)).json["webhooks"]) == 1


# -- the audit export -----------------------------------------------------------------


def _export(api: Api, owner: Person, query: str) -> tuple[str, int]:
    res = api.call("GET", f"/v1/areas/{owner.area_id}/audit/export?{query}", api.token(owner))
    assert res.status_code == 200, res.text
    return res.text, int(res.headers["Audit-Cursor"])


def test_the_owner_exports_their_areas_audit_trail_with_a_cursor(api: Api) -> None:
    owner = api.signup("o@example.com")
    other = api.signup("p@example.com")
    api.link(owner, "d@example.com", ["tickets"])  # invited, accepted, created
    api.invite(other, "x@example.com")  # another area's: never in this export

    text, cursor = _export(api, owner, "format=ndjson&limit=2")
    first = [json.loads(line) for line in text.splitlines()]
    assert [e["action"] for e in first] == ["area.created", "invitation.created"]
    assert cursor == first[-1]["id"]
    text, cursor = _export(api, owner, f"format=ndjson&after={cursor}")
    rest = [json.loads(line) for line in text.splitlines()]
    assert [e["action"] for e in rest] == ["invitation.accepted", "grant.created"]
    assert [e["type"] for e in rest] == ["grant.accepted", "grant.created"]
    assert {e["area"] for e in first + rest} == {owner.area_id}
    assert _export(api, owner, f"after={cursor}") == ("", cursor)  # nothing new: same cursor

    api.invite(owner, "y@example.com")
    text, later = _export(api, owner, f"after={cursor}")
    assert [json.loads(line)["action"] for line in text.splitlines()] == ["invitation.created"]
    assert later > cursor


def test_the_export_as_csv(api: Api) -> None:
    import csv
    import io

    owner = api.signup("o@example.com")
    api.link(owner, "d@example.com", ["tickets"])
    text, cursor = _export(api, owner, "format=csv&after=1")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["action"] for r in rows] == [
        "invitation.created",
        "invitation.accepted",
        "grant.created",
    ]
    assert int(rows[-1]["id"]) == cursor
    assert json.loads(rows[-1]["after"])["permissions"] == ["tickets"]
    assert rows[0]["before"] == ""


def test_the_export_is_the_owners_only(api: Api) -> None:
    owner = api.signup("o@example.com")
    manager = api.link(owner, "m@example.com", ["users"])
    res = api.call(
        "GET", f"/v1/areas/{owner.area_id}/audit/export", api.token(manager, owner.area_id)
    )
    assert res.status_code == 403
    res = api.call("GET", f"/v1/areas/{owner.area_id}/audit/export?format=xml", api.token(owner))
    assert res.status_code == 400 and res.json["field"] == "format"


def test_a_grant_that_lapses_publishes_grant_expired(
    api: Api, receiver: Receiver, clock: FrozenClock
) -> None:
    from tests.functional.test_expiry import _delegate_until, _end

    owner = api.signup("o@example.com")
    _, secret = _endpoint(api, owner, receiver.url)
    until = _end(clock, hours=2)
    delegate = _delegate_until(api, owner, "d@example.com", until)
    sent = api.services.dispatcher.deliver_due()
    clock.now = until
    assert api.services.expiry.run_once()[1] == 1
    assert api.services.dispatcher.deliver_due() == 1
    event = Webhook(secret).verify(
        receiver.wait_for(sent + 1)[-1].body, receiver.received[-1].headers
    )
    assert event["type"] == "grant.expired"
    assert event["data"]["target"] == f"user:{delegate.user_id}"


def test_metrics_show_the_queue_and_the_delivery_lag(api: Api, receiver: Receiver) -> None:
    def scrape(name: str) -> float:
        text = api.call("GET", "/metrics").text
        match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    owner = api.signup("o@example.com")
    _endpoint(api, owner, receiver.url)
    delivered = scrape("delegauth_webhook_delivery_lag_seconds_count")
    api.invite(owner, "x@example.com")
    assert scrape("delegauth_webhook_queue_depth") == 1
    assert api.services.dispatcher.deliver_due() == 1
    assert scrape("delegauth_webhook_queue_depth") == 0
    assert scrape("delegauth_webhook_delivery_lag_seconds_count") == delivered + 1


# -- event-type filters and secret rotation ---------------------------------------------


def test_an_endpoint_receives_only_the_event_types_it_asked_for(
    api: Api, receiver: Receiver
) -> None:
    owner = api.signup("o@example.com")
    hooks = f"/v1/areas/{owner.area_id}/webhooks"
    body = {"url": receiver.url, "event_types": ["grant.removed", "grant.changed"]}
    res = api.call("POST", hooks, api.token(owner), json=body)
    assert res.status_code == 201, res.text
    webhook, secret = res.json["webhook"], res.json["secret"]
    assert webhook["event_types"] == ["grant.changed", "grant.removed"]
    everything = api.call("POST", hooks, api.token(owner), json={"url": receiver.url + "/all"})
    assert everything.json["webhook"]["event_types"] is None  # the default: every type

    delegate = api.link(owner, "d@example.com", ["tickets"])  # invited, accepted, created
    member = f"/v1/areas/{owner.area_id}/members/{delegate.user_id}"
    changed = api.call("PATCH", member, api.token(owner), json={"permissions": ["invoices"]})
    assert changed.status_code == 200, changed.text
    assert api.services.dispatcher.deliver_due() == 5  # four to the unfiltered one
    got = receiver.wait_for(5)
    mine = [Webhook(secret).verify(r.body, r.headers) for r in got if r.path == "/hook"]
    assert [e["type"] for e in mine] == ["grant.changed"]

    # From now on, every type; the change applies to events published after it.
    res = api.call(
        "PATCH", f"{hooks}/{webhook['id']}", api.token(owner), json={"event_types": None}
    )
    assert res.status_code == 200 and res.json["webhook"]["event_types"] is None
    api.invite(owner, "x@example.com")
    assert api.services.dispatcher.deliver_due() == 2
    assert [r.path for r in receiver.wait_for(7)[5:]].count("/hook") == 1


@pytest.mark.parametrize(
    "event_types",
    [["grant.changed", "grant.exploded"], [], "grant.changed", [7], ["<script>"]],
)
def test_unknown_event_types_are_refused_with_problem_json(
    api: Api, receiver: Receiver, event_types: object
) -> None:
    owner = api.signup("o@example.com")
    hooks = f"/v1/areas/{owner.area_id}/webhooks"
    body = {"url": receiver.url, "event_types": event_types}
    res = api.call("POST", hooks, api.token(owner), json=body)
    assert res.status_code == 400, res.text
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json["field"] == "event_types" and "<script>" not in res.text
    assert api.call("GET", hooks, api.token(owner)).json["webhooks"] == []
    created = api.call("POST", hooks, api.token(owner), json={"url": receiver.url}).json
    res = api.call(
        "PATCH",
        f"{hooks}/{created['webhook']['id']}",
        api.token(owner),
        json={"event_types": event_types},
    )
    assert res.status_code == 400 and res.json["field"] == "event_types", res.text
    unknown = ["grant.changed", "grant.exploded"]
    if event_types == unknown:
        assert res.json["code"] == "unknown_event_type"
        assert "grant.exploded" in res.json["detail"]


def test_a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends(
    api: Api, receiver: Receiver, clock: FrozenClock
) -> None:
    owner = api.signup("o@example.com")
    hooks = f"/v1/areas/{owner.area_id}/webhooks"
    created = api.call("POST", hooks, api.token(owner), json={"url": receiver.url}).json
    hook, old = f"{hooks}/{created['webhook']['id']}", created["secret"]
    res = api.call("POST", f"{hook}/rotate-secret", api.token(owner), json={"grace_period_s": 3600})
    assert res.status_code == 200, res.text
    new = res.json["secret"]
    assert new.startswith("whsec_") and new != old
    until = (clock() + timedelta(seconds=3600)).replace(microsecond=0).isoformat() + "Z"
    assert res.json["webhook"]["previous_secret_until"] == until
    assert api.call("GET", hook, api.token(owner)).json["webhook"]["previous_secret_until"] == until

    # During the grace period: two signatures, so the receiver verifies with either secret.
    api.invite(owner, "x@example.com")
    assert api.services.dispatcher.deliver_due() == 1
    (during,) = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(during.body, during.headers)["type"] == "grant.invited"
    assert Webhook(new).verify(during.body, during.headers)["type"] == "grant.invited"

    # From its end on, only the new secret signs.
    clock.advance(seconds=3600)
    api.invite(owner, "y@example.com")
    assert api.services.dispatcher.deliver_due() == 1
    after = receiver.wait_for(2)[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(after.body, after.headers)["type"] == "grant.invited"
    with pytest.raises(Exception, match="signature"):
        Webhook(old).verify(after.body, after.headers)
    assert api.call("GET", hook, api.token(owner)).json["webhook"]["previous_secret_until"] is None

    # Without a grace period the old secret stops at once; a bad one is a 400.
    res = api.call("POST", f"{hook}/rotate-secret", api.token(owner), json={"grace_period_s": 0})
    assert res.status_code == 200 and res.json["webhook"]["previous_secret_until"] is None
    res = api.call("POST", f"{hook}/rotate-secret", api.token(owner), json={"grace_period_s": 60.0})
    assert res.status_code == 200, res.text  # JSON Schema's integer: 60.0 is one
    for bad in (-1, 8 * 86400, "1h", True, 1.5):
        res = api.call(
            "POST", f"{hook}/rotate-secret", api.token(owner), json={"grace_period_s": bad}
        )
        assert res.status_code == 400 and res.json["field"] == "grace_period_s", res.text
    # The default grace period is a day; only the owner rotates.
    res = api.call("POST", f"{hook}/rotate-secret", api.token(owner))
    day = (clock() + timedelta(days=1)).replace(microsecond=0).isoformat() + "Z"
    assert res.status_code == 200 and res.json["webhook"]["previous_secret_until"] == day
    manager = api.link(owner, "m@example.com", ["users"])
    res = api.call("POST", f"{hook}/rotate-secret", api.token(manager, owner.area_id))
    assert res.status_code == 403
