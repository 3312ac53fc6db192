"""Webhook URLs and addresses (SSRF), secrets, signatures and the event-type table."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from standardwebhooks.webhooks import Webhook

from delegauth.domain.events import PUBLISHED_TYPES, event_type
from delegauth.domain.webhooks import check_event_types, check_url
from delegauth.errors import InvalidInput, WebhookDeliveryError
from delegauth.webhooks import HttpxSender, WebhookKey, signed_headers


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # not https
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://[::1]/x",
        "https://[::ffff:192.168.0.1]/x",
        "https://localhost/x",
        "https://db.internal/x",
        "https://intranet/x",
        "https://user:pw@hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://hooks.example.com:99999/x",
        "",
        42,
    ],
)
def test_refused_urls(url: object) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, insecure=False)


def test_public_https_urls_and_the_development_setting() -> None:
    assert check_url("https://hooks.example.com/x?a=1", insecure=False)
    assert check_url("https://93.184.216.34/x", insecure=False)
    assert check_url("http://127.0.0.1:8080/x", insecure=True)
    with pytest.raises(InvalidInput):
        check_url("ftp://127.0.0.1/x", insecure=True)


def test_a_name_resolving_to_a_private_address_is_refused_at_send_time() -> None:
    sender = HttpxSender(resolve=lambda host, port: ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(WebhookDeliveryError) as info:
        sender.send("https://rebind.example.com/x", {}, b"{}")
    assert info.value.transient is False
    sender.close()


def test_each_endpoint_has_its_own_derived_secret() -> None:
    key = WebhookKey(b"k" * 32)
    first = key.secret("w_a", "salt1")
    assert first == key.secret("w_a", "salt1")
    assert first.startswith("whsec_")
    assert len({first, key.secret("w_b", "salt1"), key.secret("w_a", "salt2")}) == 3
    assert WebhookKey(b"j" * 32).secret("w_a", "salt1") != first
    with pytest.raises(ValueError):
        WebhookKey(b"short")
    assert "k" * 32 not in repr(key)


def test_the_key_file_is_created_once_and_private(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    a = WebhookKey.load_or_create("", str(root))
    b = WebhookKey.load_or_create("", str(root))
    assert a.secret("w_a", "s") == b.secret("w_a", "s")
    assert (root / "webhook.key").stat().st_mode & 0o777 == 0o600


def test_signed_headers_verify_with_standardwebhooks() -> None:
    secret = WebhookKey(b"k" * 32).secret("w_a", "s")
    body = b'{"type":"grant.changed"}'
    headers = signed_headers([secret], "msg_1", datetime.now(UTC), body)
    assert Webhook(secret).verify(body, headers) == {"type": "grant.changed"}
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body + b" ", headers)


def test_during_a_rotation_either_secret_verifies() -> None:
    key = WebhookKey(b"k" * 32)
    new, old, other = key.secret("w_a", "new"), key.secret("w_a", "old"), key.secret("w_a", "x")
    body = b'{"type":"grant.changed"}'
    headers = signed_headers([new, old], "msg_1", datetime.now(UTC), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(sig.startswith("v1,") for sig in headers["webhook-signature"].split(" "))
    assert Webhook(new).verify(body, headers) == Webhook(old).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(other).verify(body, headers)


def test_event_types_map_audit_kinds_and_default_to_the_kind() -> None:
    assert event_type("grant.updated") == "grant.changed"
    assert event_type("grant.left") == "grant.removed"
    assert event_type("invitation.created") == "grant.invited"
    assert event_type("access_request.created") == "grant.requested"
    assert event_type("access_request.approved") == "grant.approved"
    assert event_type("grant.expired") == "grant.expired"
    assert event_type("something.new") == "something.new"


def test_a_key_directory_it_cannot_write_asks_for_the_setting(tmp_path: object) -> None:
    from pathlib import Path

    # Nothing can be created under a regular file (even by root): like a read-only mount.
    blocked = Path(str(tmp_path)) / "not-a-directory"
    blocked.write_text("")
    with pytest.raises(ValueError, match="DELEGAUTH_WEBHOOK_KEY"):
        WebhookKey.load_or_create("", str(blocked / "keys"))
    configured = WebhookKey.load_or_create("a2V5" * 11, str(blocked / "keys"))
    assert configured.secret("w_a", "s").startswith("whsec_")


def test_every_audit_kind_is_a_type_a_filter_may_name() -> None:
    # The kinds the domain and the importer audit (string literals such as
    # "grant.updated") all publish as a type in PUBLISHED_TYPES, so a filter can ask for
    # any event that is sent.
    src = Path(__file__).resolve().parents[2] / "src" / "delegauth"
    pattern = re.compile(r'"((?:area|grants?|invitation|access_request)\.[a-z_]+)"')
    files = [*(src / "domain").glob("*.py"), src / "storage" / "transfer.py"]
    kinds = {k for path in files for k in pattern.findall(path.read_text("utf-8"))}
    assert kinds and {event_type(k) for k in kinds} <= set(PUBLISHED_TYPES), sorted(
        {event_type(k) for k in kinds} - set(PUBLISHED_TYPES)
    )
    spec = yaml.safe_load((src / "api" / "openapi.yaml").read_text("utf-8"))
    assert tuple(spec["components"]["schemas"]["EventType"]["enum"]) == PUBLISHED_TYPES


def test_a_filter_names_known_types_or_none() -> None:
    assert check_event_types(None) is None and check_event_types("all") is None
    assert check_event_types(["grant.removed", "grant.changed", "grant.removed"]) == (
        "grant.changed",
        "grant.removed",
    )
    for bad in ([], "grant.changed", ["grant.nope"], [1], {"a": 1}):
        with pytest.raises(InvalidInput) as caught:
            check_event_types(bad)
        assert caught.value.field == "event_types"
