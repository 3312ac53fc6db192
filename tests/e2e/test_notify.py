"""PostgreSQL LISTEN/NOTIFY wakes other replicas at once; polling is only the fallback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from delegauth.tokens import KeyRing, TokenService
from tests.conftest import PASSWORD, POLICIES, _fresh_pg, _require_pg
from tests.e2e.conftest import ISSUER, start_server


@pytest.mark.postgres
def test_a_change_reaches_another_replica_before_its_next_poll(tmp_path: Path) -> None:
    _fresh_pg().close_all()  # type: ignore[attr-defined]
    env = {
        "DELEGAUTH_DATABASE_URL": _require_pg(),
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        # Polling every 4.5 s (within the 5 s staleness bound): only NOTIFY can be quicker.
        "DELEGAUTH_CHANGE_POLL_MS": "4500",
    }
    a = start_server(env, tmp_path / "a.log", workers=1)
    b = start_server(env, tmp_path / "b.log", workers=1)
    try:
        mint = TokenService(KeyRing.load_or_create(env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)
        svc = mint.issue(sub="svc", client_id="svc", scope=["decisions"])
        owner = requests.post(
            a.url("/v1/signup"), timeout=10, json={"email": "o@example.com", "password": PASSWORD}
        ).json()
        helper = requests.post(
            a.url("/v1/signup"), timeout=10, json={"email": "h@example.com", "password": PASSWORD}
        ).json()
        area, hid = owner["area"]["id"], helper["user"]["id"]

        def decide() -> bool:
            r = requests.post(
                b.url("/access/v1/evaluation"),
                timeout=10,
                headers={"Authorization": f"Bearer {svc}"},
                json={
                    "subject": {"type": "user", "id": hid},
                    "action": {"name": "pay"},
                    "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
                },
            )
            assert r.status_code == 200, r.text
            return bool(r.json()["decision"])

        assert decide() is False  # B has now loaded the area
        from delegauth.storage.db import open_database
        from delegauth.storage.records import UserRecord, database_proxy

        db = open_database(env["DELEGAUTH_DATABASE_URL"])
        database_proxy.initialize(db)
        with db.connection_context():
            UserRecord.update(email_verified=True).where(UserRecord.id == hid).execute()
        otok = mint.issue(sub=owner["user"]["id"], client_id="t", scope=[], area=area)
        utok = mint.issue(sub=hid, client_id="t", scope=[], area=helper["area"]["id"])
        inv = requests.post(
            a.url(f"/v1/areas/{area}/invitations"),
            timeout=10,
            headers={"Authorization": f"Bearer {otok}"},
            json={"email": "h@example.com", "permissions": ["invoices"]},
        ).json()
        res = requests.post(
            a.url(f"/v1/invitations/{inv['invitation']['id']}/accept"),
            timeout=10,
            headers={"Authorization": f"Bearer {utok}"},
        )
        assert res.status_code == 201
        # Three changes in a row, each seen by B within 0.5 s. With polling alone each
        # would wait for a random point of a 4.5 s cycle: all three in time ~0.1% of runs.
        expected = True
        for round_ in range(3):
            if round_:
                perms = ["invoices"] if expected else ["tickets"]
                r = requests.patch(
                    a.url(f"/v1/areas/{area}/members/{hid}"),
                    timeout=10,
                    headers={"Authorization": f"Bearer {otok}"},
                    json={"permissions": perms},
                )
                assert r.status_code == 200
            acked = time.monotonic()
            while decide() is not expected:
                waited = time.monotonic() - acked
                assert waited < 0.5, f"no NOTIFY: B waited {waited:.2f} s for its poll"
                time.sleep(0.01)
            expected = not expected
    finally:
        a.stop()
        b.stop()
