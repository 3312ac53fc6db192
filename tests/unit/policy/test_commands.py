"""The `delegauth policy` commands: exit codes and what they print."""

from __future__ import annotations

import argparse

import pytest

from delegauth.config import Settings
from delegauth.policy.commands import add_policy_commands, run_policy_command
from tests.unit.policy.conftest import POLICIES, PoliciesCopy

USER = "u_" + "b" * 26
AREA = "a_" + "s" * 26


def _run(*argv: str, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="delegauth")
    add_policy_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.command == "policy"
    return run_policy_command(args, settings or Settings(policies_dir=str(POLICIES)))


def test_check_passes_on_the_shipped_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("policy", "check") == 0
    assert capsys.readouterr().out.endswith("0 errors, 0 warnings: ok\n")


def test_check_fails_with_file_and_line(
    policies: PoliciesCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    policies.write("policy.csv", "p2, perm:invoices, *, invoice, read\n")
    assert _run("policy", "check", str(policies.root)) == 1
    captured = capsys.readouterr()
    assert f"{policies.path('policy.csv')}:1: error: rule type 'p2'" in captured.err
    assert "1 errors, 0 warnings: FAILED" in captured.out


def test_test_runs_the_tables(policies: PoliciesCopy, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("policy", "test", "-v") == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(": ok")
    policies.write(
        "tests/broken.yaml",
        "grants: [{user: bob, area: shop, permissions: [domains]}]\n"
        "cases: [{user: bob, area: shop, allow: [invoice:read]}]\n",
    )
    assert _run("policy", "test", str(policies.root)) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "invoice:read should be allowed, was denied" in out
    assert "why: it holds perm:domains" in out


def test_explain_with_what_if_grants(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["policy", "explain", "--user", USER, "--area", AREA]
    assert _run(*argv, "--resource-type", "invoice", "--action", "pay", "--grant", "invoices") == 0
    out = capsys.readouterr().out
    assert out.startswith("decision: allow")
    assert "permission invoices" in out
    assert _run(*argv, "--resource-type", "invoice", "--action", "pay", "--grant", "owner") == 0
    assert "the owner may do every catalogue action" in capsys.readouterr().out
    assert _run(*argv, "--resource-type", "invoice", "--action", "pay", "--grant", "x,y") == 2


def test_explain_rejects_malformed_ids(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["policy", "explain", "--user", "bob", "--area", AREA]
    assert _run(*argv, "--resource-type", "invoice", "--action", "pay", "--grant", "all") == 2
    assert "must be ids" in capsys.readouterr().err


def _stored(tmp_path, role: str, end: str = "") -> Settings:
    """Settings whose database holds USER's g line of ``role`` in AREA (ending at ``end``)."""
    from delegauth.storage.db import open_database
    from delegauth.storage.records import CasbinRuleRecord, database_proxy
    from delegauth.storage.schema import migrate

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = open_database(url)
    database_proxy.initialize(db)
    migrate(db)
    with db.connection_context():
        CasbinRuleRecord.create(ptype="g", v0=f"user:{USER}", v1=role, v2=f"area:{AREA}", v3=end)
    return Settings(policies_dir=str(POLICIES), database_url=url)


def test_explain_reads_grants_from_the_database(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _stored(tmp_path, "perm:quotes")
    argv = ["policy", "explain", "--user", USER, "--area", AREA, "--resource-type", "quote"]
    assert _run(*argv, "--action", "accept", settings=settings) == 0
    out = capsys.readouterr().out
    assert out.startswith("decision: allow")
    assert f"g, user:{USER}, perm:quotes, area:{AREA}" in out


def test_explain_on_a_resource_id_with_a_grant_on_it(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["policy", "explain", "--user", USER, "--area", AREA, "--resource-type", "domain"]
    grant = ["--grant", "managedomains@example.com"]
    assert _run(*argv, "--action", "update", "--resource-id", "example.com", *grant) == 0
    out = capsys.readouterr().out
    assert out.startswith("decision: allow")
    assert f"g, user:{USER}, perm:managedomains@example.com, area:{AREA}" in out
    assert _run(*argv, "--action", "update", "--resource-id", "example.org", *grant) == 0
    out = capsys.readouterr().out
    assert out.startswith("decision: deny")
    assert "why: perm:managedomains is granted on example.com only; the request is on " in out
    assert _run(*argv, "--action", "update", "--grant", "invoices@example.com") == 2
    assert "cannot be limited to single resources" in capsys.readouterr().err


def test_explain_says_when_a_stored_grant_lapsed_or_ends(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    end = "2030-01-01T00:00:00Z"
    settings = _stored(tmp_path, "perm:quotes", end)
    argv = ["policy", "explain", "--user", USER, "--area", AREA, "--resource-type", "quote"]
    assert _run(*argv, "--action", "accept", settings=settings) == 0
    out = capsys.readouterr().out
    assert out.startswith("decision: allow")
    assert f"why: the grant of perm:quotes ends at {end} (in " in out
    assert _run(*argv, "--action", "accept", "--at", "2030-01-01T01:00:00+01:00",
                settings=settings) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("decision: deny")
    assert f"g, user:{USER}, perm:quotes, area:{AREA}, {end}" in out
    assert f"why: the grant of perm:quotes ended at {end}: it lapsed and gives nothing" in out
    assert _run(*argv, "--action", "accept", "--at", "2030-01-01", settings=settings) == 2
    assert "--at needs a time zone offset" in capsys.readouterr().err
