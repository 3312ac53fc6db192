"""Requests refused before the app's routes, on every server `delegauth serve` runs (issue 10,
item 3; issue 12): oversized URLs, headers and bodies, too many headers, malformed HTTP.

Every refusal the app makes itself is problem+json on every server. Under gunicorn its parser's
refusals are ours too. Under granian (the default), what hyper refuses before Python sees the
request gets the right status with an empty body (delegauth.serving says which and why);
each such case is pinned here, so a granian that starts answering them differently is seen.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from delegauth.serving import HEAD_BUFFER, SERVERS
from delegauth.tokens import KeyRing, TokenService
from tests.conftest import POLICIES
from tests.e2e.conftest import ISSUER, Server, start_server

# Answered by hyper under granian, before any Python runs.
HYPER = {"granian"}


@pytest.fixture(scope="module", params=SERVERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("limits")
    env = {
        "DELEGAUTH_SERVER": request.param,
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
    }
    srv = start_server(env, Path(tmp) / "server.log", workers=1)
    try:
        yield srv
    finally:
        srv.stop()


def _name(server: Server) -> str:
    return server.env["DELEGAUTH_SERVER"]


def _raw(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(server.base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        # Refused before it read everything: the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, headers, body


def _assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    doc = json.loads(body)
    assert doc["status"] == expected
    assert doc["title"]
    assert int(headers["content-length"]) == len(body)


def _assert_refused(
    server: Server, answer: tuple[int, dict[str, str], bytes], expected: int
) -> None:
    """What the server's own parser refuses: problem+json from gunicorn's, the status with an
    empty body from granian's (hyper)."""
    status, headers, body = answer
    if _name(server) in HYPER:
        assert status == expected, body
        assert body == b""
        assert "content-type" not in headers
    else:
        _assert_problem(status, headers, body, expected)


def _get(target: str, *fields: str) -> bytes:
    head = "".join(f"{field}\r\n" for field in ("Host: x", *fields, "Connection: close"))
    return f"GET {target} HTTP/1.1\r\n{head}\r\n".encode()


# The app's own limits: problem+json on every server.


def test_an_oversized_url_is_414_problem_json(server: Server) -> None:
    res = requests.get(server.url("/v1/permissions?q=" + "x" * 10_000), timeout=10)
    assert res.status_code == 414
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["status"] == 414


def test_a_url_up_to_64_kib_is_414_problem_json(server: Server) -> None:
    _assert_problem(*_raw(server, _get("/v1/permissions?q=" + "x" * 60_000)), 414)


def test_an_oversized_header_is_431_problem_json(server: Server) -> None:
    res = requests.get(server.url("/v1/permissions"), headers={"X-Big": "x" * 10_000}, timeout=10)
    assert res.status_code == 431
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["status"] == 431


def test_a_header_field_past_hypers_default_buffer_is_431_problem_json(server: Server) -> None:
    # granian's default head buffer is 408 KiB; serving raises it to HEAD_BUFFER.
    big = "X-Big: " + "x" * (HEAD_BUFFER - 100 * 1024)
    _assert_problem(*_raw(server, _get("/v1/permissions", big)), 431)


def test_a_body_over_the_limit_is_413_problem_json(server: Server) -> None:
    mint = TokenService(KeyRing.load_or_create(server.env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)
    token = mint.issue(sub="svc", client_id="svc", scope=["decisions"])
    res = requests.post(
        server.url("/access/v1/evaluation"),
        data=b"{" + b" " * (64 * 1024) + b"}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert res.status_code == 413
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["status"] == 413


# The server's own parser: problem+json under gunicorn, an empty body under granian.


def test_a_head_over_the_buffer_is_431(server: Server) -> None:
    # hyper compares its buffer with the limit between reads: well over it, to be sure.
    big = "X-Big: " + "x" * (2 * HEAD_BUFFER)
    _assert_refused(server, _raw(server, _get("/v1/permissions", big)), 431)


def test_a_url_over_64_kib_is_414(server: Server) -> None:
    _assert_refused(server, _raw(server, _get("/v1/permissions?q=" + "x" * 70_000)), 414)


def test_too_many_headers_is_431(server: Server) -> None:
    fields = [f"X-H{i}: {i}" for i in range(150)]
    _assert_refused(server, _raw(server, _get("/v1/permissions", *fields)), 431)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /v1/permissions HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /v1/permissions HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"POST /v1/signup HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ],
    ids=["request-line", "http-version", "header-name", "content-length"],
)
def test_malformed_http_is_400(server: Server, request_bytes: bytes) -> None:
    _assert_refused(server, _raw(server, request_bytes), 400)


def test_the_server_still_answers_after_refusals(server: Server) -> None:
    assert requests.get(server.url("/v1/permissions"), timeout=10).status_code == 200
