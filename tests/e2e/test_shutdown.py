"""Graceful shutdown: on SIGTERM the server stops accepting, finishes what is in flight
(a sign-up hashing its password), and exits cleanly."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import requests

from tests.conftest import PASSWORD, POLICIES
from tests.e2e.conftest import ISSUER, start_server


def test_sigterm_finishes_in_flight_requests(tmp_path: Path) -> None:
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
    }
    server = start_server(env, tmp_path / "server.log", workers=1)
    results: list[int] = []

    def signup(i: int) -> None:
        res = requests.post(
            server.url("/v1/signup"),
            timeout=30,
            json={"email": f"s{i}@example.com", "password": PASSWORD},
        )
        results.append(res.status_code)

    threads = [threading.Thread(target=signup, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    time.sleep(0.05)  # the requests are in flight (argon2 takes a while)
    server.proc.send_signal(signal.SIGTERM)
    for th in threads:
        th.join(timeout=30)
    assert server.proc.wait(timeout=30) == 0
    assert results == [201, 201, 201]
    # And it no longer accepts connections.
    try:
        requests.get(server.url("/healthz"), timeout=2)
        accepted = True
    except requests.ConnectionError:
        accepted = False
    assert not accepted
    assert "Shutting down" in (tmp_path / "server.log").read_text()
