"""/metrics adds up every worker's counters (prometheus_client multiprocess mode)."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from delegauth.tokens import KeyRing, TokenService
from tests.conftest import PASSWORD, POLICIES
from tests.e2e.conftest import ISSUER, start_server


def _value(text: str, pattern: str) -> float:
    match = re.search("^" + pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, pattern
    return float(match.group(1))


def test_counters_add_up_across_workers(tmp_path: Path) -> None:
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
    }
    server = start_server(env, tmp_path / "server.log", workers=2)
    try:
        mint = TokenService(KeyRing.load_or_create(env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)
        svc = mint.issue(sub="svc", client_id="svc", scope=["decisions"])
        owner = requests.post(
            server.url("/v1/signup"),
            timeout=10,
            json={"email": "o@example.com", "password": PASSWORD},
        ).json()
        body = {
            "subject": {"type": "user", "id": owner["user"]["id"]},
            "resource": {"type": "invoice", "id": "1", "properties": {"area": owner["area"]["id"]}},
        }
        session = requests.Session()  # keep-alive would pin one worker: close each time
        for i in range(40):
            action = "pay" if i % 4 else "nothing"  # 30 allow, 10 deny
            r = session.post(
                server.url("/access/v1/evaluation"),
                timeout=10,
                headers={"Authorization": f"Bearer {svc}", "Connection": "close"},
                json={**body, "action": {"name": action}},
            )
            assert r.status_code == 200
        for _ in range(4):  # whichever worker answers, the totals are the same
            text = requests.get(
                server.url("/metrics"), timeout=10, headers={"Connection": "close"}
            ).text
            assert _value(text, r'delegauth_decisions_total\{outcome="allow"\}') == 30
            assert _value(text, r'delegauth_decisions_total\{outcome="deny"\}') == 10
            assert _value(text, r'delegauth_changes_total\{action="area.created"\}') == 1
            assert _value(text, "delegauth_mail_outbox_depth") >= 0
            assert 'delegauth_decision_seconds_bucket{le="0.001",outcome="allow"}' in text
    finally:
        server.stop()
