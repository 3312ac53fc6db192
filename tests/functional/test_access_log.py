"""Structured request logs: one JSON line per request, with its id, and no secrets."""

from __future__ import annotations

import json
import logging
import re

import pytest

from tests.conftest import PASSWORD, Api


def test_one_json_line_per_request_without_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="delegauth.access")
    token = api.service_token()
    api.call(
        "POST",
        "/v1/signup",
        json={"email": "a@example.com", "password": PASSWORD},
        headers={"X-Request-ID": "req-log-1"},
    )
    api.call("GET", "/invitations/accept?token=very-secret-link-token")
    api.call("GET", "/v1/me", token)
    lines = [r.getMessage() for r in caplog.records if r.name == "delegauth.access"]
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    assert entries[0]["request_id"] == "req-log-1"
    assert entries[0]["path"] == "/v1/signup" and entries[0]["status"] == 201
    assert entries[1]["path"] == "/invitations/accept"
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "very-secret-link-token" not in everything
    assert PASSWORD not in everything
    assert token not in everything


def test_a_line_is_the_json_document_of_the_request(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """The line is written by hand for speed: it must still be the document json.dumps
    writes, whatever the path holds (quotes, backslashes, control and non-ASCII characters)."""
    caplog.set_level(logging.INFO, logger="delegauth.access")
    path = '/v1/q"uo\\te\x01/ñandú/€'
    api.call("GET", path, headers={"X-Request-ID": "req:2.x_y-z"})
    [line] = [r.getMessage() for r in caplog.records if r.name == "delegauth.access"]
    entry = json.loads(line)
    assert entry["path"] == path and entry["status"] == 404
    assert entry["request_id"] == "req:2.x_y-z" and entry["method"] == "GET"
    assert isinstance(entry["ms"], float) and entry["remote"]
    assert line == json.dumps(entry, separators=(",", ":"))


def test_request_ids_are_made_unique_when_none_or_a_bad_one_is_given(api: Api) -> None:
    given = api.call("GET", "/healthz", headers={"X-Request-ID": "mine-1"})
    assert given.headers["x-request-id"] == "mine-1"
    made = [
        api.call("GET", "/healthz", headers=headers).headers["x-request-id"]
        for headers in ({}, {}, {"X-Request-ID": "bad id"}, {"X-Request-ID": "x" * 129})
    ]
    assert len(set(made)) == 4
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in made)
