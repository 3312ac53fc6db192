"""client_credentials over HTTP while the token endpoint keeps one database connection per
thread: tokens keep coming, a client deleted by `delegauth clients delete` (another
process) is refused at its very next request, and a database that went away is a 503 that
heals once it is back."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from typing import Any

from delegauth.api.app import Services
from delegauth.oauth.clients import CLIENT_CREDENTIALS
from tests.conftest import Api


def _token(api: Api, client_id: str, secret: str) -> Any:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return api.client.simulate_post(
        "/oauth/token",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body="grant_type=client_credentials&scope=decisions",
    )


def _cli(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DELEGAUTH_DATABASE_URL": services.settings.database_url,
        "DELEGAUTH_POLICIES_DIR": services.settings.policies_dir,
        "DELEGAUTH_KEY_DIR": services.settings.key_dir,
    }
    return subprocess.run(
        [sys.executable, "-m", "delegauth", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_deleted_client_gets_no_more_tokens(api: Api, services: Services) -> None:
    _row, secret = services.clients.create(
        "billing", grant_types=[CLIENT_CREDENTIALS], scopes=["decisions"]
    )
    assert secret is not None
    for _ in range(3):  # the same thread's kept connection answers each lookup
        res = _token(api, "billing", secret)
        assert res.status_code == 200 and res.json["access_token"], res.json
    assert _token(api, "billing", "wrong").status_code == 401
    deleted = _cli(services, "clients", "delete", "billing")
    assert deleted.returncode == 0, deleted.stderr
    res = _token(api, "billing", secret)
    assert res.status_code == 401 and res.json["error"] == "invalid_client"


def test_a_lost_connection_is_a_503_then_heals(api: Api, services: Services) -> None:
    _row, secret = services.clients.create(
        "billing", grant_types=[CLIENT_CREDENTIALS], scopes=["decisions"]
    )
    assert secret is not None
    assert _token(api, "billing", secret).status_code == 200
    services.db.connection().close()  # the kept connection dies under the store
    res = _token(api, "billing", secret)
    assert res.status_code == 503
    res = _token(api, "billing", secret)
    assert res.status_code == 200, res.json


def test_a_client_changed_by_another_process_is_read_as_it_is_now(
    api: Api, services: Services
) -> None:
    _row, secret = services.clients.create(
        "billing", grant_types=[CLIENT_CREDENTIALS], scopes=["decisions"]
    )
    assert secret is not None
    assert _token(api, "billing", secret).status_code == 200
    with services.db.connection_context():  # as `delegauth` in another process would
        services.db.execute_sql(
            f"UPDATE oauth_clients SET scopes = {services.db.param} WHERE client_id = "
            f"{services.db.param}",
            ('["introspect"]', "billing"),
        )
    res = _token(api, "billing", secret)
    assert res.status_code == 400 and res.json["error"] == "invalid_scope", res.json
