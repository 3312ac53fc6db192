"""Operators' webhooks (`delegauth webhooks`) and the audit export (`delegauth audit export`)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from delegauth.api.app import utcnow
from delegauth.config import Settings
from tests.conftest import REPO, Api, FrozenClock
from tests.webhook_receiver import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(webhooks_insecure=True)  # the receiver is on loopback


def _cli(api: Api, *args: str, insecure: bool = True) -> subprocess.CompletedProcess[str]:
    settings = api.services.settings
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(REPO) / "src"),
        "DELEGAUTH_DATABASE_URL": settings.database_url,
        "DELEGAUTH_KEY_DIR": settings.key_dir,
        "DELEGAUTH_WEBHOOKS_INSECURE": "1" if insecure else "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "delegauth", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_operator_webhook_gets_every_areas_events(api: Api, clock: FrozenClock) -> None:
    receiver = Receiver()
    try:
        res = _cli(api, "webhooks", "add", receiver.url, "--description", "SOC")
        assert res.returncode == 0, res.stderr
        added = json.loads(res.stdout)
        assert added["webhook"]["area"] is None
        first, second = api.signup("a@example.com"), api.signup("b@example.com")
        api.invite(first, "x@example.com")
        api.invite(second, "y@example.com")
        # the server (here: the in-process services) signs with the same key and secret
        assert api.services.dispatcher.deliver_due() == 4
        got = receiver.wait_for(4)
        events = [Webhook(added["secret"]).verify(r.body, r.headers) for r in got]
        assert {e["data"]["area"] for e in events} == {first.area_id, second.area_id}

        listed = json.loads(_cli(api, "webhooks", "list").stdout)
        assert [w["id"] for w in listed] == [added["webhook"]["id"]]
        log = json.loads(_cli(api, "webhooks", "deliveries", added["webhook"]["id"]).stdout)
        assert [d["status"] for d in log] == ["delivered"] * 4
        res = _cli(api, "webhooks", "redeliver", added["webhook"]["id"], str(log[0]["id"]))
        assert res.returncode == 0, res.stderr
        clock.now = utcnow()  # the CLI queued it on the real clock
        assert api.services.dispatcher.deliver_due() == 1
        assert receiver.wait_for(5)[-1].headers["webhook-id"] == log[0]["message_id"]

        res = _cli(api, "webhooks", "remove", added["webhook"]["id"])
        assert json.loads(res.stdout) == {"removed": added["webhook"]["id"]}
        assert _cli(api, "webhooks", "remove", added["webhook"]["id"]).returncode == 1
    finally:
        receiver.close()


def test_the_cli_refuses_plain_http_and_private_hosts(api: Api) -> None:
    for url in ("http://hooks.example.com/x", "https://10.0.0.1/x", "https://localhost/x"):
        res = _cli(api, "webhooks", "add", url, insecure=False)
        assert res.returncode == 2 and "url" in res.stderr
    assert json.loads(_cli(api, "webhooks", "list").stdout) == []


def test_the_operator_exports_everything_with_a_cursor(api: Api) -> None:
    first, second = api.signup("a@example.com"), api.signup("b@example.com")
    api.invite(first, "x@example.com")
    api.invite(second, "y@example.com")

    res = _cli(api, "audit", "export", "--format", "ndjson", "--limit", "3")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [e["action"] for e in lines] == ["area.created", "area.created", "invitation.created"]
    cursor = json.loads(res.stderr.strip().splitlines()[-1])["cursor"]
    assert cursor == lines[-1]["id"]

    res = _cli(api, "audit", "export", "--format", "csv", "--after", str(cursor))
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["action"], r["area"]) for r in rows] == [("invitation.created", second.area_id)]
    final = json.loads(res.stderr.strip().splitlines()[-1])["cursor"]
    assert final == int(rows[-1]["id"])
    res = _cli(api, "audit", "export", "--after", str(final))
    assert res.stdout == "" and json.loads(res.stderr.strip().splitlines()[-1]) == {"cursor": final}


def test_the_operator_filters_event_types_and_rotates_the_secret(
    api: Api, clock: FrozenClock
) -> None:
    receiver = Receiver()
    try:
        types = json.loads(_cli(api, "webhooks", "types").stdout)
        assert "grant.changed" in types and "grant.invited" in types
        res = _cli(api, "webhooks", "add", receiver.url, "--event-type", "grant.nope")
        assert res.returncode == 2 and "unknown event type(s): grant.nope" in res.stderr
        res = _cli(api, "webhooks", "add", receiver.url, "--event-type", "grant.changed")
        assert res.returncode == 0, res.stderr
        added = json.loads(res.stdout)
        hook, old = added["webhook"]["id"], added["secret"]
        assert added["webhook"]["event_types"] == ["grant.changed"]
        owner = api.signup("a@example.com")
        api.invite(owner, "x@example.com")
        assert api.services.dispatcher.deliver_due() == 0  # grant.invited is not asked for

        res = _cli(api, "webhooks", "events", hook, "--event-type", "grant.invited")
        assert json.loads(res.stdout)["webhook"]["event_types"] == ["grant.invited"]
        res = _cli(api, "webhooks", "rotate", hook, "--grace-hours", "1")
        assert res.returncode == 0, res.stderr
        rotated = json.loads(res.stdout)
        new = rotated["secret"]
        assert new != old and rotated["webhook"]["previous_secret_until"] is not None
        clock.now = utcnow()  # the CLI set the grace period on the real clock
        api.invite(owner, "y@example.com")
        assert api.services.dispatcher.deliver_due() == 1
        (got,) = receiver.wait_for(1)
        assert Webhook(old).verify(got.body, got.headers)["type"] == "grant.invited"
        assert Webhook(new).verify(got.body, got.headers)["type"] == "grant.invited"

        res = _cli(api, "webhooks", "events", hook, "--all")
        assert json.loads(res.stdout)["webhook"]["event_types"] is None
        res = _cli(api, "webhooks", "rotate", hook, "--grace-hours", "200")
        assert res.returncode == 2 and "grace period" in res.stderr
    finally:
        receiver.close()
