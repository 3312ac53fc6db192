"""The command line: versioned, idempotent migrations; serve refuses a broken policy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from delegauth.storage.schema import MIGRATIONS_DIR
from delegauth.tokens import KeyRing, TokenService
from tests.conftest import POLICIES


def _run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "delegauth", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_migrate_is_versioned_and_idempotent(database_url: str, tmp_path: Path) -> None:
    env = {"DELEGAUTH_DATABASE_URL": database_url}
    first = _run(["migrate"], env)
    assert first.returncode == 0, first.stderr
    applied = json.loads(first.stdout)["applied"]
    if database_url.startswith("sqlite"):
        shipped = sorted(p.stem for p in Path(MIGRATIONS_DIR).glob("[0-9]*.py"))
        assert applied == shipped and applied[0] == "0001_initial"
    second = _run(["migrate"], env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["applied"] == []


def test_serve_refuses_to_start_without_a_valid_policy(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICIES, broken)
    (broken / "catalogue.toml").write_text("[permissions.x]\nlabel = 1\n")
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DELEGAUTH_POLICIES_DIR": str(broken),
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_BIND": "127.0.0.1:1",
    }
    res = _run(["serve"], env)
    assert res.returncode == 2
    assert "invalid policy" in res.stderr and "label" in res.stderr


def test_token_command_mints_a_verifiable_token(tmp_path: Path) -> None:
    env = {"DELEGAUTH_KEY_DIR": str(tmp_path / "keys"), "DELEGAUTH_ISSUER": "http://x.test"}
    res = _run(["token", "--service", "billing", "--scope", "decisions"], env)
    assert res.returncode == 0, res.stderr
    tokens = TokenService(
        KeyRing.load_or_create(tmp_path / "keys"), "http://x.test", "http://x.test"
    )
    claims = tokens.verify(res.stdout.strip())
    assert claims.sub == "billing" and "decisions" in claims.scope
