"""README's examples paste and work from zero: the shell blocks of "Trying it" run word for
word (only the addresses changed to free ports) against a fresh `delegauth serve` on
SQLite, mail read from var/mail.mbox, and the printed authorize URL signs Ana in; then
every later shell block runs in document order in the same terminal (its variables kept),
the service restarted where the text says to restart it, and each block's output is
checked. A README edit that breaks an example, or a new block without a check here, fails.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.browser import Browser
from tests.e2e.conftest import free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
README_URL = "http://127.0.0.1:8000"
# Other loopback addresses the README's examples listen on: the webhook receiver, the
# billing service.
README_LISTEN = ("127.0.0.1:9001", "127.0.0.1:9002")
# Words before a block that has the reader save the python block above it as a file.
SAVE = re.compile(r"save the example above as `([a-z_]+\.py)`")
# The words after which the README has the reader restart the service with a setting.
RESTART = "`DELEGAUTH_WEBHOOKS_INSECURE=1 .venv/bin/delegauth serve`"


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("## Trying it\n") : text.index("\n## ", text.index("## Trying it\n"))]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def _later_blocks() -> list[tuple[str, str, str]]:
    """(heading, words before it, block) of every sh block after "Trying it", in order."""
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index("\n## ", text.index("## Trying it\n") + 1)
    found, prose_from = [], start
    for match in re.finditer(r"```sh\n(.*?)```", text[start:], re.S):
        at = start + match.start()
        heading = re.findall(r"(?m)^#{2,3} (.+)$", text[:at])[-1]
        found.append((heading, text[prose_from:at], match.group(1)))
        prose_from = start + match.end()
    return found


def _saved(words: str, tmp_path: Path) -> None:
    """Save the python block the words speak of, as the reader was told to."""
    if saved := SAVE.search(words):
        blocks = re.findall(r"```python\n(.*?)```", words, re.S)
        (tmp_path / saved.group(1)).write_text(blocks[-1])


def _kept_names() -> str:
    """The names the README's blocks assign, for `declare -p` between blocks."""
    text = (ROOT / "README.md").read_text("utf-8")
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", text, re.S))
    names = set(re.findall(r"(?:^|[\s;])([A-Z][A-Z0-9_]*)=", blocks))
    names |= set(re.findall(r"\bfor ([A-Z][A-Z0-9_]*) in\b", blocks))
    return " ".join(sorted(names))


def _bash(script: str, cwd: Path, env: dict[str, str], codes: tuple[int, ...] = (0,)) -> str:
    res = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode in codes and not res.stderr.strip(), res.stdout + res.stderr
    return res.stdout


def _checks(tmp_path: Path) -> dict[str, Callable[[list[str]], None]]:
    """What each later section's block prints, by its heading."""
    ana = _id(tmp_path / "ana.json", "user")
    bo = _id(tmp_path / "bo.json", "user")
    area = _id(tmp_path / "ana.json", "area")
    until = datetime.date.today() + datetime.timedelta(days=30)

    def webhooks(out: list[str]) -> None:
        # The receiver checked the signature with the secret Ana was shown; after the
        # rotation, with the old secret and the new one, both on the same delivery.
        before = '{"permissions": ["invoices", "tickets"], "role": "delegate"}'
        after = '{"permissions": ["invoices"], "role": "delegate"}'
        assert out == [
            f"grant.changed user:{bo} {before}",
            '["grant.changed","grant.removed"]',
            f"grant.changed user:{bo} {after}",
        ], out

    def backend(out: list[str]) -> None:
        assert out == ['{"decision":true}']

    def single_resources(out: list[str]) -> None:
        assert out == [
            '["invoices","managedomains@example.com"]',
            '{"decision":true} example.com',
            '{"decision":false} example.org',
        ]

    def grants_that_end(out: list[str]) -> None:
        assert out == [
            f'[["invoices","managedomains@example.com"],"{until}T17:00:00Z"]',
            "400 past_time",
        ]

    def guarded_route(out: list[str]) -> None:
        assert out == [f'{{"paid": "42", "by": "{bo}"}}', "401"]

    def policy(out: list[str]) -> None:
        assert out[0].endswith(": 0 errors, 0 warnings: ok"), out
        assert out[1].endswith(" 0 tables failed: ok"), out
        assert out[2] == "decision: allow (Casbin; the Decider agrees)", out
        ends = f"{until}T17:00:00Z"
        assert any(line.startswith(f"why: the grant of perm:invoices ends at {ends} (in ")
                   for line in out), out  # fmt: skip
        on_one = "why: perm:managedomains is granted on example.com only; the request is on"
        assert f"{on_one} example.org" in out, out
        # The rollout would deny paying to Bo and Ana in Ana's area (and Bo in his own);
        # at the instant Bo's access ends, only to Ana there.
        totals = [n for n, line in enumerate(out) if " decision(s) change across " in line]
        now, at_end = out[: totals[0] + 1], out[totals[0] + 1 :]
        ana_line, bo_line = (
            f"user:{who} area:{area} invoice:pay: allow -> deny" for who in (ana, bo)
        )
        assert ana_line in now and f"{bo_line} (grant ends {ends})" in now, out
        assert ana_line in at_end and not any(line.startswith(bo_line) for line in at_end), out
        flips = [line for line in now if " invoice:pay: allow -> deny" in line]
        assert now[-1].endswith(
            f": {len(flips)} decision(s) change across {len(flips)} grant(s) in 2 area(s)"
        ), out

    return {
        "Webhooks and the audit export": webhooks,
        "A backend service asks: may this user pay this invoice in this Client Area?": backend,
        "Grants on single resources": single_resources,
        "Grants that end": grants_that_end,
        "Protecting a route in a backend service": guarded_route,
        "For security teams: policy as code": policy,
    }


def _id(path: Path, what: str) -> str:
    import json

    return str(json.loads(path.read_text())[what]["id"])


@pytest.mark.skipif(
    not shutil.which("jq") or not shutil.which("openssl"), reason="needs jq and openssl"
)
def test_trying_it_works_when_pasted(tmp_path: Path) -> None:
    first, exchange = _blocks()
    assert README_URL in first
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    # A copy, not a link: the policy example copies policies/ and edits the copy.
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The defaults, made absolute: serve does not run in tmp_path, the pasted commands do.
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/var/delegauth.sqlite3",
        "DELEGAUTH_KEY_DIR": str(tmp_path / "var" / "keys"),
        "DELEGAUTH_SMTP_URL": f"file:{tmp_path}/var/mail.mbox",
        "DELEGAUTH_POLICIES_DIR": str(tmp_path / "policies"),
        "DELEGAUTH_ISSUER": base,
    }
    (tmp_path / "var").mkdir()
    server = start_server(env, tmp_path / "server.log", workers=1, port=port)
    shell_env = {**os.environ, **env}
    keep = f"\ndeclare -p {_kept_names()} > vars.sh 2> /dev/null || true"
    try:
        out = _bash(first.replace(README_URL, base) + keep, tmp_path, shell_env)
        lines = out.strip().splitlines()
        assert '"email_verified":true' in lines[0]  # Ana verified her address
        assert '"status":"pending"' in lines[1]  # the invitation
        assert '"role":"delegate"' in lines[2] and '"policy_version":' in lines[2]  # accepted
        assert lines[3] == '{"decision":true}'  # the decision
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

        # Every later example, in order, on in the same terminal.
        checks = _checks(tmp_path)
        later = _later_blocks()
        assert [heading for heading, _, _ in later] == list(checks)
        listen = {address: f"127.0.0.1:{free_port()}" for address in README_LISTEN}
        for heading, words, block in later:
            if RESTART in words:  # the reader restarts the service with that setting
                server.stop()
                env["DELEGAUTH_WEBHOOKS_INSECURE"] = "1"
                server = start_server(env, tmp_path / "server.log", workers=1, port=port)
            _saved(words, tmp_path)
            script = block.replace(README_URL, base)
            for address, free in listen.items():
                script = script.replace(address, free)
            # policy diff answers 1 when a rollout flips decisions, as it does here.
            codes = (0, 1) if "policy diff" in block else (0,)
            out = _bash("source vars.sh\n" + script + keep, tmp_path, shell_env, codes)
            checks[heading](out.strip().splitlines())
    finally:
        server.stop()


def test_readme_keeps_policy_version_for_the_change_log() -> None:
    """The files' hash is policy_hash; policy_version is only the change-log version."""
    text = (ROOT / "README.md").read_text("utf-8")
    assert "`policy_hash` in `/healthz`" in text and "policy_refused_hash" in text
    assert "policy_refused_version" not in text
    assert not re.search(r"`policy_version` in `/healthz`", text)
