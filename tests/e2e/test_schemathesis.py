"""Schemathesis against the real server and the document it serves (issue 10, item 3).

A server on a loopback port is seeded over HTTP with an owner, a delegate of the
owner's area, a pending invitation and an OAuth client. The schemathesis CLI then
fetches /openapi.json from the server and runs every operation with valid credentials
(the owner's token for /v1/, a client_credentials token with the ``decisions`` scope
for /access/v1/, the client's id and secret for /oauth/), a fixed seed and a bounded
number of examples, with every check (positive_data_acceptance as narrowed in
schemathesis_hooks.py: a well-formed secret this server never issued may be refused).
The run must find nothing: no 5xx, no status, media type, header or body the document
does not list, no schema-valid request refused and no schema-invalid request accepted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.conftest import PASSWORD
from tests.e2e.conftest import _cli, _Inbox, start_server

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SEED = 20261206
MAX_EXAMPLES = 15
# Generous: the run takes one to two minutes on a loaded 2-core machine.
RUN_TIMEOUT_S = 900


def _signup(base: str, inbox: _Inbox, email: str) -> dict[str, Any]:
    res = requests.post(
        base + "/v1/signup", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert res.status_code == 201, res.text
    token = inbox.token(inbox.wait_for(email, "confirm"))
    verified = requests.post(base + "/v1/email-verifications", json={"token": token}, timeout=30)
    assert verified.status_code == 200, verified.text
    return dict(res.json())


def _user_token(env: dict[str, str], user_id: str, area_id: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "delegauth", "token", "--user", user_id, "--area", area_id]
        + ["--scope", "openid profile email"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return res.stdout.strip()


def _call(method: str, url: str, token: str, **kw: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    res = requests.request(method, url, headers=headers, timeout=30, **kw)
    assert res.status_code in (200, 201), res.text
    return dict(res.json())


def _seed(base: str, env: dict[str, str], inbox: _Inbox) -> dict[str, str]:
    """An owner with a delegate, the delegate's access request, a pending invitation, and
    a service client's token."""
    owner = _signup(base, inbox, "owner@example.com")
    delegate = _signup(base, inbox, "delegate@example.com")
    area = owner["area"]["id"]
    owner_token = _user_token(env, owner["user"]["id"], area)
    # Registered first, so that the grant changes below give it deliveries. Its id is not
    # a fixed parameter: a DELETE in one phase would leave a later phase only 404s; the
    # stateful phase reaches it (and the webhooks it creates) through links.
    _call(
        "POST",
        f"{base}/v1/areas/{area}/webhooks",
        owner_token,
        json={"url": "https://hooks.example.com/delegauth"},
    )
    invitations = f"{base}/v1/areas/{area}/invitations"
    invited = _call(
        "POST",
        invitations,
        owner_token,
        json={"email": "delegate@example.com", "permissions": ["invoices", "users"]},
    )
    delegate_token = _user_token(env, delegate["user"]["id"], delegate["area"]["id"])
    _call(
        "POST",
        f"{base}/v1/invitations/{invited['invitation']['id']}/accept",
        delegate_token,
    )
    delegate_in_area = _user_token(env, delegate["user"]["id"], area)
    asked = requests.post(
        base + "/access/v1/requests",
        headers={"Authorization": f"Bearer {delegate_in_area}"},
        json={
            "resource": {"type": "area", "id": area},
            "requested_access": {"permissions": ["tickets"]},
        },
        timeout=30,
    )
    assert asked.status_code == 202, asked.text
    pending = _call(
        "POST",
        invitations,
        owner_token,
        json={"email": "pending@example.com", "permissions": "all"},
    )
    client = _cli(
        env,
        *("clients", "create", "billing", "--grant-type", "client_credentials"),
        *("--scope", "decisions introspect"),
    )
    issued = requests.post(
        base + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "decisions"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )
    assert issued.status_code == 200, issued.text
    return {
        "area": area,
        "delegate": delegate["user"]["id"],
        "invitation": pending["invitation"]["id"],
        "access_request": asked.json()["task"]["id"],
        "user_token": owner_token,
        "service_token": issued.json()["access_token"],
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }


def _config(seed: dict[str, str]) -> str:
    """schemathesis.toml: credentials for each security scheme, and the seeded objects
    as the path parameters (random ids would only ever reach 404)."""
    return f"""
hooks = {json.dumps(str(HOOKS))}
seed = {SEED}

[generation]
database = "none"

[checks]
enabled = true

[auth.openapi.userToken]
bearer = {json.dumps(seed["user_token"])}

[auth.openapi.serviceToken]
bearer = {json.dumps(seed["service_token"])}

[auth.openapi.clientBasic]
username = {json.dumps(seed["client_id"])}
password = {json.dumps(seed["client_secret"])}

[parameters]
"path.area_id" = {json.dumps(seed["area"])}
"path.user_id" = {json.dumps(seed["delegate"])}
"path.invitation_id" = {json.dumps(seed["invitation"])}
"path.request_id" = {json.dumps(seed["access_request"])}
"""


def run_schemathesis(base: str, config: Path, report: Path) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("schemathesis")
    return subprocess.run(
        [str(cli), "--config-file", str(config), "--no-color", "run", base + "/openapi.json"]
        + ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]
        + ["--max-examples", str(MAX_EXAMPLES)]
        # One worker: concurrent ast.parse calls (hypothesis describing strategies) trip a
        # CPython 3.11 race, "SystemError: AST constructor recursion depth mismatch".
        + ["--workers", "1"]
        + ["--report", "json", "--report-json-path", str(report)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=config.parent,
    )


def test_schemathesis_finds_nothing(
    server_env: dict[str, str], smtp: tuple[_Inbox, int], tmp_path: Path
) -> None:
    server = start_server(server_env, tmp_path / "server.log")
    try:
        seed = _seed(server.base, server_env, smtp[0])
        document = requests.get(server.url("/openapi.json"), timeout=30).json()
        operations = sum(
            1
            for item in document["paths"].values()
            for method in item
            if method in ("get", "post", "put", "patch", "delete")
        )
        config = tmp_path / "schemathesis.toml"
        config.write_text(_config(seed), "utf-8")
        report_path = tmp_path / "schemathesis.json"
        run = run_schemathesis(server.base, config, report_path)
    finally:
        server.stop()
    report = json.loads(report_path.read_text("utf-8"))
    figures = (
        f"{report['operations']['tested']} of {operations} documented operations, "
        f"{report['test_cases']['generated']} test cases in {report['running_time']:.0f} s"
    )
    print(f"schemathesis: {figures}")  # noqa: T201 - the run's figures, for the CI log
    assert run.returncode == 0, run.stdout[-20_000:]
    assert report["complete"] and report["stop_reason"] == "completed"
    assert report["failures"] == [] and report["errors"] == []
    assert report["operations"]["tested"] == report["operations"]["total"], report["operations"]
    assert report["operations"]["skipped"] == 0 and report["operations"]["errored"] == 0
    assert report["test_cases"]["errored"] == 0
