"""Structured request logs: one JSON line per request, with its id, and no secrets."""

from __future__ import annotations

import json
import logging

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
