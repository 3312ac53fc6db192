"""Requests gunicorn's parser refuses get problem+json from the real server, not its HTML
page (issue 10, item 3): oversized URLs and headers, too many headers, malformed HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import POLICIES
from tests.e2e.conftest import ISSUER, Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("limits")
    env = {
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


def _raw(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(server.base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
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


def test_an_oversized_url_is_414_problem_json(server: Server) -> None:
    res = requests.get(server.url("/v1/permissions?q=" + "x" * 10_000), timeout=10)
    assert res.status_code == 414
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["status"] == 414


def test_an_oversized_header_is_431_problem_json(server: Server) -> None:
    res = requests.get(server.url("/v1/permissions"), headers={"X-Big": "x" * 10_000}, timeout=10)
    assert res.status_code == 431
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["status"] == 431


def test_too_many_headers_is_431_problem_json(server: Server) -> None:
    headers = "".join(f"X-H{i}: {i}\r\n" for i in range(150))
    request = f"GET /v1/permissions HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
    _assert_problem(*_raw(server, request), 431)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /v1/permissions HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /v1/permissions HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    ],
    ids=["request-line", "http-version", "header-name"],
)
def test_malformed_http_is_400_problem_json(server: Server, request_bytes: bytes) -> None:
    _assert_problem(*_raw(server, request_bytes), 400)


def test_the_server_still_answers_after_refusals(server: Server) -> None:
    assert requests.get(server.url("/v1/permissions"), timeout=10).status_code == 200
