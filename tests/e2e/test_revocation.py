"""An access token revoked through one server process is refused by another (two workers
each, one database): after the other's follower round without a consistency token, and at
once with the policy_version the revocation answered."""

from __future__ import annotations

import time
from typing import Any

import requests

from tests.e2e.conftest import Server, _cli

ROUNDS_S = 10.0  # bounds the wait for the follower rounds (20 ms each here)


def _token(server: Server, client: dict[str, Any]) -> str:
    res = requests.post(
        server.url("/oauth/token"),
        auth=(client["client_id"], client["client_secret"]),
        data={"grant_type": "client_credentials", "scope": "decisions"},
        timeout=10,
    )
    assert res.status_code == 200, res.text
    return str(res.json()["access_token"])


def _evaluate(server: Server, token: str, policy_version: int | None = None) -> int:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "u_nobody"},
        "action": {"name": "read"},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": "a_nowhere"}},
    }
    if policy_version is not None:
        body["context"] = {"policy_version": policy_version}
    res = requests.post(
        server.url("/access/v1/evaluation"),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return res.status_code


def _revoke(server: Server, client: dict[str, Any], token: str) -> int:
    res = requests.post(
        server.url("/oauth/revoke"),
        auth=(client["client_id"], client["client_secret"]),
        data={"token": token},
        timeout=10,
    )
    assert res.status_code == 200, res.text
    return int(res.json()["policy_version"])


def _each_worker_has_read(server: Server, version: int, workers: int = 2) -> None:
    """Wait until every worker of ``server`` (told apart by the pid /readyz names) has
    applied the change log up to ``version`` in its follower rounds."""
    deadline = time.monotonic() + ROUNDS_S
    done: set[int] = set()
    while len(done) < workers:
        assert time.monotonic() < deadline, f"only workers {sorted(done)} read the change log"
        ready = requests.get(server.url("/readyz"), timeout=10).json()
        if ready["changelog_version"] >= version:
            done.add(ready["worker"])


def test_revoked_on_one_server_refused_on_the_other(servers: list[Server]) -> None:
    a, b = servers
    client = _cli(
        a.env, "clients", "create", "billing",
        "--grant-type", "client_credentials", "--scope", "decisions",
    )  # fmt: skip

    # Without a consistency token: refused once B's followers have read the log.
    token = _token(a, client)
    assert all(_evaluate(b, token) == 200 for _ in range(8))  # cached in both workers
    version = _revoke(a, client, token)
    assert version > 0
    _each_worker_has_read(b, version)
    assert all(_evaluate(b, token) == 401 for _ in range(16))  # and never again accepted

    # With it: refused by every worker of B from the first request on.
    token = _token(a, client)
    assert all(_evaluate(b, token) == 200 for _ in range(8))
    version = _revoke(a, client, token)
    assert all(_evaluate(b, token, policy_version=version) == 401 for _ in range(8))
