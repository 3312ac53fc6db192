"""The command line: versioned, idempotent migrations; serve refuses a broken policy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from delegauth.storage.schema import MIGRATIONS_DIR
from delegauth.tokens import KeyRing, TokenService
from tests.conftest import POLICIES, Api, Person


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


def test_keys_rotate_publishes_both_keys(tmp_path: Path) -> None:
    env = {"DELEGAUTH_KEY_DIR": str(tmp_path / "keys")}
    first = json.loads(_run(["keys", "list"], env).stdout)
    rotated = _run(["keys", "rotate", "--alg", "RS256"], env)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)["rotated"]
    after = json.loads(_run(["keys", "list"], env).stdout)
    assert after["current"] == new_kid
    published = {k["kid"]: k["alg"] for k in after["jwks"]["keys"]}
    assert published == {first["current"]: "ES256", new_kid: "RS256"}  # ES256: the default


def test_clients_create_list_delete(tmp_path: Path) -> None:
    env = {"DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert _run(["migrate"], env).returncode == 0
    made = _run(
        ["clients", "create", "svc", "--grant-type", "client_credentials", "--scope", "decisions"],
        env,
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["type"] == "confidential" and len(created["client_secret"]) >= 40
    listed = json.loads(_run(["clients", "list"], env).stdout)
    assert [c["client_id"] for c in listed] == ["svc"]
    assert "client_secret" not in listed[0] and "secret_hash" not in listed[0]
    bad = _run(["clients", "create", "web", "--redirect-uri", "http://evil.example/cb"], env)
    assert bad.returncode == 2 and "https" in bad.stderr
    bad = _run(["clients", "create", "pub", "--public", "--grant-type", "client_credentials"], env)
    assert bad.returncode == 2
    assert _run(["clients", "delete", "svc"], env).returncode == 0
    assert json.loads(_run(["clients", "list"], env).stdout) == []
    assert _run(["clients", "delete", "svc"], env).returncode == 1


def _store_rules(url: str, *rules: tuple[str, ...]) -> None:
    """Add these g lines (subject, role, area[, end]) to the migrated database at ``url``."""
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy
    from delegauth.storage.store import PeeweeStore

    db = open_database(url)
    database_proxy.initialize(db)
    with PeeweeStore(db).transaction():
        PeeweeStore(db).rules.add_policies("g", "g", list(rules))


def _without_invoice_pay(policies: Path) -> None:
    cat = policies / "catalogue.toml"
    invoices = 'actions = ["invoice:read", "invoice:pay"]'
    cat.write_text(cat.read_text().replace(invoices, 'actions = ["invoice:read"]'))


def test_policy_diff_against_the_database(tmp_path: Path) -> None:
    env = {"DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert _run(["migrate"], env).returncode == 0
    _store_rules(
        env["DELEGAUTH_DATABASE_URL"], ("user:u_" + "a" * 26, "perm:invoices", "area:a_" + "b" * 26)
    )
    new = tmp_path / "new"
    shutil.copytree(POLICIES, new)
    same = _run(["policy", "diff", POLICIES, str(new)], env)
    assert same.returncode == 0 and "0 decision(s) change" in same.stdout
    _without_invoice_pay(new)
    changed = _run(["policy", "diff", POLICIES, str(new), "--sample", "10"], env)
    assert changed.returncode == 1, changed.stderr
    assert "invoice:pay: allow -> deny" in changed.stdout
    assert "1 decision(s) change across 1 grant(s) in 1 area(s)" in changed.stdout


def test_policy_diff_decides_stored_grants_until_their_end(tmp_path: Path) -> None:
    env = {"DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert _run(["migrate"], env).returncode == 0
    end = "2099-01-01T00:00:00Z"
    _store_rules(
        env["DELEGAUTH_DATABASE_URL"],
        ("user:u_" + "a" * 26, "perm:invoices", "area:a_" + "b" * 26, end),
    )
    new = tmp_path / "new"
    shutil.copytree(POLICIES, new)
    _without_invoice_pay(new)
    now = _run(["policy", "diff", POLICIES, str(new)], env)
    assert now.returncode == 1, now.stderr
    assert f"invoice:pay: allow -> deny (grant ends {end})" in now.stdout
    ended = _run(["policy", "diff", POLICIES, str(new), "--at", end], env)
    assert ended.returncode == 0, ended.stderr
    assert "0 decision(s) change" in ended.stdout
    bad = _run(["policy", "diff", POLICIES, str(new), "--at", "soon"], env)
    assert bad.returncode == 2 and "--at is not a date and time" in bad.stderr


def test_policy_check_reports_permissions_still_held(tmp_path: Path) -> None:
    env = {"DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert _run(["migrate"], env).returncode == 0
    _store_rules(
        env["DELEGAUTH_DATABASE_URL"], ("user:u_" + "a" * 26, "perm:emails", "area:a_" + "b" * 26)
    )
    new = tmp_path / "new"
    shutil.copytree(POLICIES, new)
    before = _run(["policy", "check", str(new), "--held"], env)
    assert before.returncode == 0 and "held by" not in before.stderr
    cat = new / "catalogue.toml"
    text = cat.read_text()
    start = text.index("[permissions.emails]")
    end = text.index("[permissions.orders]")
    cat.write_text(text[:start] + text[end:])
    res = _run(["policy", "check", str(new), "--held"], env)
    assert "permission 'emails' is held by 1 grant(s)" in res.stderr, res.stderr
    plain = _run(["policy", "check", str(new)], env)
    assert "held by" not in plain.stderr


@pytest.mark.parametrize("variable", ["DELEGAUTH_ISSUER", "DELEGAUTH_PUBLIC_URL"])
def test_serve_refuses_plain_http_beyond_loopback(tmp_path: Path, variable: str) -> None:
    """Authlib refuses every OAuth request on such a URL: starting would only serve 500s."""
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DELEGAUTH_ISSUER": "https://auth.example.test",
        variable: "http://auth.example.test",
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_BIND": "127.0.0.1:1",
    }
    res = _run(["serve"], env, timeout=30)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"{variable}=http://auth.example.test" in lines[0]
    assert "DELEGAUTH_INSECURE_HTTP=1" in lines[0]


def test_token_command_mints_the_login_flows_claims_and_refuses_strangers(
    api: Api, tmp_path: Path
) -> None:
    owner = api.signup("o@example.com")
    helper = api.link(owner, "h@example.com", ["invoices"])
    stranger = api.signup("s@example.com")
    env = {
        "DELEGAUTH_DATABASE_URL": api.services.settings.database_url,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_ISSUER": "http://x.test",
    }

    def claims(person: Person, area_id: str) -> dict[str, object]:
        res = _run(["token", "--user", person.user_id, "--area", area_id], env)
        assert res.returncode == 0, res.stderr
        ring = KeyRing.load_or_create(tmp_path / "keys")
        return TokenService(ring, "http://x.test", "http://x.test").verify(res.stdout.strip()).raw

    # The same role and permissions as a token from the login flow (issuing.sign_access).
    mine = claims(owner, owner.area_id)
    assert (mine["sub"], mine["area"], mine["role"], mine["permissions"]) == (
        owner.user_id,
        owner.area_id,
        "owner",
        "all",
    )
    delegated = claims(helper, owner.area_id)
    assert (delegated["role"], delegated["permissions"]) == ("delegate", ["invoices"])

    refusals = {
        "no such user": ["--user", "u_" + "a" * 26, "--area", owner.area_id],
        "no such area": ["--user", owner.user_id, "--area", "a_" + "b" * 26],
        "holds no grant": ["--user", stranger.user_id, "--area", owner.area_id],
        "needs --area": ["--user", owner.user_id],
    }
    for reason, args in refusals.items():
        res = _run(["token", *args], env)
        assert res.returncode != 0 and res.stdout == "", (reason, res.stdout)
        assert reason in res.stderr, res.stderr


def test_mail_prints_the_development_mailbox_decoded_with_links_whole(tmp_path: Path) -> None:
    from datetime import datetime

    from delegauth.mail.sender import QueuedMail
    from delegauth.mail.transport import MboxTransport

    box = tmp_path / "mail.mbox"
    link = "http://127.0.0.1:8000/invitations/accept?token=" + "Ab-_9" * 12 + "&return_to=%2F"
    transport = MboxTransport(box, sender="delegauth <no-reply@localhost>")
    for n, subject in enumerate(["Confirma tu dirección de correo", "Invitación «Acmé»"], 1):
        transport.send(
            QueuedMail(
                n,
                f"p{n}@example.com",
                subject,
                f"Hola:\n\n{link}\n",
                None,
                "x",
                {},
                1,
                datetime(2026, 12, 1, 12, 0),
            )  # fmt: skip
        )
    raw = box.read_text("ascii")
    assert "=3D" in raw and link not in raw  # what `cat` shows: not a usable link
    env = {"DELEGAUTH_SMTP_URL": f"file:{box}"}
    everything = _run(["mail"], env)
    assert everything.returncode == 0, everything.stderr
    out = everything.stdout
    assert out.count(link) == 2 and "=3D" not in out
    assert "Subject: Confirma tu dirección de correo" in out and "To: p1@example.com" in out
    last = _run(["mail", "--last", "1"], env)
    assert last.returncode == 0 and "Subject: Invitación «Acmé»" in last.stdout
    assert "p1@example.com" not in last.stdout and link in last.stdout
    elsewhere = _run(["mail"], {"DELEGAUTH_SMTP_URL": "log:"})
    assert elsewhere.returncode == 2 and "not file:" in elsewhere.stderr
