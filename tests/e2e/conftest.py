"""Real servers on loopback ports and a real SMTP server (aiosmtpd) for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller

from delegauth.tokens import KeyRing, TokenService
from tests.conftest import POLICIES, _fresh_pg, _require_pg

ISSUER = "http://localhost"  # shared by the replicas, as behind a load balancer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._cond:
            self.messages.append(message_from_bytes(envelope.content))
            self._cond.notify_all()
        return "250 OK"

    def wait_for(self, to: str, kind_hint: str = "", timeout: float = 20.0) -> Message:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in reversed(self.messages):
                    if msg["To"] == to and kind_hint.lower() in str(msg["Subject"]).lower():
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {to} within {timeout}s")
                self._cond.wait(left)

    @staticmethod
    def text(msg: Message) -> str:
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload.decode(part.get_content_charset() or "utf-8")
        raise AssertionError("no text part")

    def token(self, msg: Message) -> str:
        match = re.search(r"token=([A-Za-z0-9_\-]+)", self.text(msg))
        assert match
        return match.group(1)


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    env: dict[str, str],
    log: Path,
    workers: int = 2,
    port: int | None = None,
    on_spawn: Callable[[Server], object] | None = None,
) -> Server:
    """Start ``delegauth serve`` and wait until it answers; ``on_spawn`` is called with the
    server as soon as its process exists (before it answers)."""
    port = port or free_port()
    full_env = {
        **os.environ,
        **env,
        "DELEGAUTH_BIND": f"127.0.0.1:{port}",
        "DELEGAUTH_WORKERS": str(workers),
    }
    fh = open(log, "ab")  # noqa: SIM115 - kept open for the process's life
    proc = subprocess.Popen(
        [sys.executable, "-m", "delegauth", "serve"], env=full_env, stdout=fh, stderr=fh
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log, env)
    if on_spawn is not None:
        on_spawn(server)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited:\n" + log.read_text(errors="replace")[-4000:])
        try:
            if requests.get(server.url("/healthz"), timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError("server did not start:\n" + log.read_text(errors="replace")[-4000:])


@pytest.fixture
def server_env(database_url: str, tmp_path: Path, smtp: tuple[_Inbox, int]) -> dict[str, str]:
    return {
        "DELEGAUTH_DATABASE_URL": database_url,
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_SMTP_URL": f"smtp://127.0.0.1:{smtp[1]}",
        "DELEGAUTH_CHANGE_POLL_MS": "20",
    }


@pytest.fixture
def servers(server_env: dict[str, str], tmp_path: Path) -> Iterator[list[Server]]:
    """Two server processes (two workers each) on the same database."""
    started: list[Server] = []
    try:
        started.append(start_server(server_env, tmp_path / "server-a.log"))
        started.append(start_server(server_env, tmp_path / "server-b.log"))
        yield started
    finally:
        for s in started:
            s.stop()


@pytest.fixture
def minter(server_env: dict[str, str], servers: list[Server]) -> TokenService:
    return TokenService(KeyRing.load_or_create(server_env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)


REDIRECT = "https://app.example.com/callback"


def _cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-m", "delegauth", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("oauth")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp}/db.sqlite3"
    else:
        _fresh_pg().close_all()  # type: ignore[attr-defined]
        url = _require_pg()
    env = {
        "DELEGAUTH_DATABASE_URL": url,
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        "DELEGAUTH_CHANGE_POLL_MS": "20",
    }
    srv = start_server(env, tmp / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def clients(server: Server) -> dict[str, dict[str, Any]]:
    env = server.env
    return {
        "web": _cli(
            env,
            "clients",
            "create",
            "web",
            "--first-party",
            "--redirect-uri",
            REDIRECT,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "--scope",
            "openid profile email offline_access",
        ),
        "spa": _cli(
            env,
            "clients",
            "create",
            "spa",
            "--public",
            "--first-party",
            "--redirect-uri",
            "http://127.0.0.1:9999/cb",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid",
        ),
        "thirdparty": _cli(
            env,
            "clients",
            "create",
            "thirdparty",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            "openid profile",
        ),
        "billing": _cli(
            env,
            "clients",
            "create",
            "billing",
            "--grant-type",
            "client_credentials",
            "--scope",
            "decisions introspect",
        ),
    }


@pytest.fixture(scope="module")
def module_minter(server: Server) -> Any:
    from delegauth.tokens import KeyRing, TokenService

    return TokenService(KeyRing.load_or_create(server.env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)
