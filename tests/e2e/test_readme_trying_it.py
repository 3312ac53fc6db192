"""README's "Trying it" pastes and works from zero: its shell blocks run word for word
(only the address changed to a free port) against a fresh `delegauth serve` on SQLite,
mail read from var/mail.mbox, and the printed authorize URL signs Ana in."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.browser import Browser
from tests.e2e.conftest import free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
README_URL = "http://127.0.0.1:8000"


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("## Trying it\n") : text.index("\n## ", text.index("## Trying it\n"))]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def _backend_block() -> str:
    """The sh block of "A backend service asks", which runs on in the same terminal."""
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index("### A backend service asks")
    section = text[start : text.index("\n## ", start)]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    return block


def _bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and not res.stderr.strip(), res.stdout + res.stderr
    return res.stdout


@pytest.mark.skipif(
    not shutil.which("jq") or not shutil.which("openssl"), reason="needs jq and openssl"
)
def test_trying_it_works_when_pasted(tmp_path: Path) -> None:
    first, exchange = _blocks()
    assert README_URL in first
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The defaults, made absolute: serve does not run in tmp_path, the pasted commands do.
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/var/delegauth.sqlite3",
        "DELEGAUTH_KEY_DIR": str(tmp_path / "var" / "keys"),
        "DELEGAUTH_SMTP_URL": f"file:{tmp_path}/var/mail.mbox",
        "DELEGAUTH_POLICIES_DIR": str(ROOT / "policies"),
        "DELEGAUTH_ISSUER": base,
    }
    (tmp_path / "var").mkdir()
    server = start_server(env, tmp_path / "server.log", workers=1, port=port)
    shell_env = {**os.environ, **env}
    try:
        keep = "declare -p WEB_SECRET VERIFIER STATE API JSON AREA SERVICE_TOKEN BO_TOKEN > vars.sh"
        out = _bash(first.replace(README_URL, base) + "\n" + keep, tmp_path, shell_env)
        lines = out.strip().splitlines()
        assert '"email_verified":true' in lines[0]  # Ana verified her address
        assert '"status":"pending"' in lines[1]  # the invitation
        assert '"role":"delegate"' in lines[2] and '"policy_version":' in lines[2]  # accepted
        assert lines[3] == '{"decision":true}'  # the decision
        # The backend service's worked example, on in the same terminal: Bo's token verified,
        # its sub asked about in Ana's area.
        backend = _bash("source vars.sh\n" + _backend_block(), tmp_path, shell_env)
        assert backend.strip() == '{"decision":true}', backend
        url = lines[-1]
        query = parse_qs(urlsplit(url).query)
        for name in ("redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"):
            assert query.get(name), name
        # A browser opens the URL and Ana signs in; it lands on the callback with a code.
        browser = Browser(base)
        callback = query["redirect_uri"][0]
        page = browser.follow(browser.get(url), stop_at=callback)
        assert "/signin" in page.url, page.url
        landed = browser.follow(
            browser.submit(page, {"email": "ana@example.com", "password": "correct horse battery"}),
            stop_at=callback,
        )
        location = parse_qs(urlsplit(landed.headers["Location"]).query)
        assert location["state"] == query["state"]
        code = location["code"][0]
        trade = exchange.replace("CODE=…", f"CODE={code}")
        tokens = _bash("source vars.sh\n" + trade, tmp_path, shell_env)
        assert '"access_token"' in tokens and '"token_type": "Bearer"' in tokens.replace(
            '"token_type":"Bearer"', '"token_type": "Bearer"'
        ), tokens
    finally:
        server.stop()


def test_readme_keeps_policy_version_for_the_change_log() -> None:
    """The files' hash is policy_hash; policy_version is only the change-log version."""
    text = (ROOT / "README.md").read_text("utf-8")
    assert "`policy_hash` in `/healthz`" in text and "policy_refused_hash" in text
    assert "policy_refused_version" not in text
    assert not re.search(r"`policy_version` in `/healthz`", text)
