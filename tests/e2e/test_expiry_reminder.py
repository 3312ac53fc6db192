"""The reminder that access ends, end to end: two real server processes on one database,
the expiry sweep in their background, the mail outbox delivering over SMTP to aiosmtpd.

An owner invites with valid_until a day away (within the default three days), the invitee
verifies and accepts; the reminder reaches the invitee's inbox, in their language, naming
the area and the end in UTC, as no browser ever reported the invitee's time zone (mail in
a known zone: tests/functional/test_mail_time_zones.py). (That it is sent once per grant
and end, and the lapse's audit event, are tested with a controlled clock in
tests/functional/test_expiry.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from delegauth.tokens import TokenService
from tests.conftest import PASSWORD
from tests.e2e.conftest import Server, _Inbox


@pytest.fixture
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    """The e2e servers' settings, sweeping for due reminders five times a second."""
    return {**server_env, "DELEGAUTH_EXPIRY_SWEEP_S": "0.2"}


def _post(server: Server, path: str, body: dict[str, Any], token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    res = requests.post(server.url(path), json=body, headers=headers, timeout=10)
    assert res.status_code in (200, 201), res.text
    return res.json()


def test_the_delegate_is_reminded_over_smtp(
    servers: list[Server], minter: TokenService, smtp: tuple[_Inbox, int]
) -> None:
    inbox = smtp[0]
    a, b = servers
    owner = _post(a, "/v1/signup", {"email": "o@example.com", "password": PASSWORD, "name": "Olga"})
    guest = _post(b, "/v1/signup", {"email": "g@example.com", "password": PASSWORD, "locale": "es"})
    token = inbox.token(inbox.wait_for("g@example.com"))
    _post(b, "/v1/email-verifications", {"token": token})
    area = owner["area"]["id"]
    end = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    owner_token = minter.issue(sub=owner["user"]["id"], client_id="t", scope=["openid"], area=area)
    inv = _post(
        a,
        f"/v1/areas/{area}/invitations",
        {"email": "g@example.com", "permissions": ["invoices"], "valid_until": end.isoformat()},
        owner_token,
    )["invitation"]
    assert inv["valid_until"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    guest_token = minter.issue(
        sub=guest["user"]["id"], client_id="t", scope=["openid"], area=guest["area"]["id"]
    )
    _post(b, f"/v1/invitations/{inv['id']}/accept", {}, guest_token)
    reminder = inbox.wait_for("g@example.com", "termina el")
    text = inbox.text(reminder)
    assert end.strftime("%Y-%m-%d %H:%M (UTC)") in text  # no browser ever named a zone
    assert "Olga (o@example.com)" in text
