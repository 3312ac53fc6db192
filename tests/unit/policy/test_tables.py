"""Decision tables: the shipped tables pass against the real engines, and a table that
expects the wrong thing, or is malformed, fails with its file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from delegauth.errors import InvalidInput
from delegauth.policy.bundle import load_bundle
from delegauth.policy.decider import Decider
from delegauth.policy.tables import fixture_area, fixture_user, run_tables
from tests.unit.policy.conftest import BUNDLES, POLICIES, PoliciesCopy

ID = re.compile(r"^(user:u|area:a)_[a-z2-7]{26}$")


def test_shipped_tables_pass_and_cover_the_catalogue() -> None:
    report = run_tables(POLICIES)
    assert report.ok, "\n".join(report.lines())
    assert report.uncovered == []
    names = {Path(t.file).name for t in report.tables}
    assert {"permissions.yaml", "all_and_owner.yaml", "non_members.yaml"} <= names
    assert report.lines()[-1].endswith(": ok")


def test_fixture_names_become_stable_valid_ids() -> None:
    assert fixture_user("alice") == fixture_user("alice")
    assert fixture_user("alice") != fixture_user("bob")
    assert fixture_user("shop")[len("user:") :] != fixture_area("shop")[len("area:") :]
    for value in (fixture_user("alice"), fixture_area("shop"), fixture_user("a" * 32)):
        assert ID.match(value)
    real = "u_" + "b" * 26
    assert fixture_user(real) == "user:" + real
    for bad in ("Alice", "al,ice", "al*", "", "a" * 33, "u_" + "B" * 26):
        with pytest.raises(InvalidInput):
            fixture_user(bad)


def _run(policies: PoliciesCopy, table: str):
    (policies.root / "tests").mkdir(exist_ok=True)
    for old in (policies.root / "tests").glob("*.yaml"):
        old.unlink()
    policies.write("tests/table.yaml", table)
    return run_tables(policies.root)


def test_wrong_expectation_fails_with_line_and_explanation(policies: PoliciesCopy) -> None:
    report = _run(
        policies,
        "name: wrong on purpose\n"
        "grants:\n"
        "  - {user: bob, area: shop, permissions: [invoices]}\n"
        "cases:\n"
        "  - {user: bob, area: shop, allow: [invoice:read]}\n"
        "  - {user: bob, area: shop, allow: [domain:read], deny: [invoice:pay]}\n",
    )
    assert not report.ok
    (table,) = report.tables
    assert (table.name, table.cases, table.decisions) == ("wrong on purpose", 2, 3)
    assert [(f.line, f.message) for f in table.failures] == [
        (6, "bob in shop: domain:read should be allowed, was denied"),
        (6, "bob in shop: invoice:pay should be denied, was allowed"),
    ]
    detail = "\n".join(table.failures[0].detail)
    assert "decision: deny" in detail
    assert "comes only with perm:all, perm:domains, perm:managedomains, role:owner" in detail
    text = "\n".join(report.lines())
    assert f"FAIL {table.file}:6: bob in shop: domain:read should be allowed" in text
    assert text.endswith("FAILED")


def test_deny_rest_and_allow_all_follow_the_catalogue(policies: PoliciesCopy) -> None:
    policies.replace(
        "catalogue.toml",
        'actions = ["order:create"]',
        'actions = ["order:create", "order:cancel"]',
    )
    report = _run(
        policies,
        "grants:\n"
        "  - {user: carol, area: shop, permissions: all}\n"
        "  - {user: olga, area: shop, permissions: [orders]}\n"
        "cases:\n"
        "  - {user: carol, area: shop, allow: all}\n"
        "  - {user: olga, area: shop, allow: [order:create], deny: rest}\n",
    )
    (table,) = report.tables
    assert [f.message for f in table.failures] == [
        "olga in shop: order:cancel should be denied, was allowed"
    ]
    # "all" and "rest" expand to the catalogue as it is now, order:cancel included.
    assert table.decisions == 2 * len(load_bundle(policies.root).catalogue.all_actions())
    assert "permission invoices" in report.uncovered


@pytest.mark.parametrize(
    ("table", "line", "words"),
    [
        ("cases: [", 1, "not valid YAML"),
        ("- just a list\n", 1, "table must be a mapping"),
        ("grants: []\n", 1, "cases must be a non-empty list"),
        ("grant: []\ncases: [{user: a, area: b, deny: all}]\n", 1, "unknown table key(s)"),
        (
            "grants:\n  - {user: bob, area: shop, permissions: [refunds]}\n"
            "cases: [{user: bob, area: shop, deny: all}]\n",
            2,
            "unknown permission 'refunds'",
        ),
        (
            "grants:\n  - {user: bob, area: shop, permissions: [all]}\n"
            "cases: [{user: bob, area: shop, deny: all}]\n",
            2,
            "write permissions: all",
        ),
        (
            "grants:\n  - {user: bob, area: shop, role: admin}\n"
            "cases: [{user: bob, area: shop, deny: all}]\n",
            2,
            "role 'admin' is neither owner nor a role with rules",
        ),
        (
            "grants:\n  - {user: bob, area: shop, bundle: nosuch}\n"
            "cases: [{user: bob, area: shop, deny: all}]\n",
            2,
            "unknown bundle 'nosuch'",
        ),
        (
            "grants:\n  - {user: bob, area: shop}\ncases: [{user: bob, area: shop, deny: all}]\n",
            2,
            "a grant needs role, permissions or bundle",
        ),
        (
            "grants:\n  - {user: Bob, area: shop, role: owner}\n"
            "cases: [{user: bob, area: shop, deny: all}]\n",
            2,
            "fixture name 'Bob'",
        ),
        ("cases:\n  - {user: bob, area: shop, alow: [invoice:read]}\n", 2, "unknown case key"),
        ("cases:\n  - {user: bob, area: shop}\n", 2, "a case needs allow or deny"),
        ("cases:\n  - {area: shop, deny: all}\n", 2, "a case needs user"),
        ("cases:\n  - {user: bob, area: shop, deny: [invoice]}\n", 2, "type:action"),
        ("cases:\n  - {user: bob, area: shop, deny: [invoice:*]}\n", 2, "type:action"),
        ("cases:\n  - {user: bob, area: shop, allow: rest}\n", 2, "allow and deny take"),
        (
            "cases:\n  - {user: bob, area: shop, allow: [invoice:read], deny: all}\n",
            2,
            "both allowed and denied: invoice:read",
        ),
    ],
)
def test_malformed_table_fails(policies: PoliciesCopy, table: str, line: int, words: str) -> None:
    report = _run(policies, table)
    assert not report.ok
    (failure,) = report.failures
    assert failure.file.endswith("table.yaml")
    assert failure.line == line
    assert words in failure.message


class _ContraryDecider(Decider):
    """A Decider that is wrong on purpose: it flips every answer."""

    def decide(self, subject: str, domain: str, obj: str, act: str, resource_id: str = "") -> bool:
        return not super().decide(subject, domain, obj, act, resource_id)


def test_disagreement_between_decider_and_casbin_fails(
    policies: PoliciesCopy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("delegauth.policy.tables.Decider", _ContraryDecider)
    report = _run(
        policies,
        "grants: [{user: bob, area: shop, permissions: [invoices]}]\n"
        "cases: [{user: bob, area: shop, allow: [invoice:read]}]\n",
    )
    (failure,) = report.failures
    assert failure.message == (
        "bob in shop: invoice:read: the Decider and Casbin disagree "
        "(Decider denied, Casbin allowed)"
    )


def test_bundles_are_granted_as_their_permissions(policies: PoliciesCopy) -> None:
    policies.append("catalogue.toml", BUNDLES)
    report = _run(
        policies,
        "grants: [{user: erin, area: shop, bundle: money}]\n"
        "cases:\n"
        "  - user: erin\n"
        "    area: shop\n"
        "    allow: [invoice:read, invoice:pay, quote:read, quote:accept]\n"
        "    deny: rest\n",
    )
    assert report.ok, "\n".join(report.lines())
    assert "bundle money" not in report.uncovered
    assert "permission orders" in report.uncovered


def test_custom_roles_from_policy_csv(policies: PoliciesCopy) -> None:
    policies.write("policy.csv", "p, role:auditor, *, audit, read\n")
    report = _run(
        policies,
        "grants: [{user: ana, area: shop, role: [auditor]}]\n"
        "cases: [{user: ana, area: shop, allow: [audit:read], deny: rest}]\n",
    )
    assert report.ok, "\n".join(report.lines())


def test_policies_that_do_not_load(policies: PoliciesCopy) -> None:
    policies.write("policy.csv", "g, user:x, role:owner, area:y\n")
    report = run_tables(policies.root)
    assert not report.ok
    assert "the policies do not load" in report.errors[0].message


def test_no_tables(tmp_path: Path, policies: PoliciesCopy) -> None:
    report = run_tables(policies.root, tmp_path)
    assert not report.ok
    assert report.errors[0].message == "no decision tables (*.yaml)"


def test_a_grant_on_one_resource_is_decided_on_the_case_resource(policies: PoliciesCopy) -> None:
    report = _run(
        policies,
        "name: one domain\n"
        "grants:\n"
        "  - {user: bob, area: shop, permissions: [managedomains@example.com]}\n"
        "cases:\n"
        "  - {user: bob, area: shop, resource: example.com, allow: [domain:update]}\n"
        "  - {user: bob, area: shop, resource: example.org, allow: [domain:update]}\n",
    )
    assert not report.ok
    failures = [f.message for t in report.tables for f in t.failures]
    assert failures == ["bob in shop: domain:update on example.org should be allowed, was denied"]


@pytest.mark.parametrize(
    ("permission", "words"),
    [("invoices@x", "cannot be limited to single resources"), ("managedomains@", "resource id")],
)
def test_a_bad_grant_on_one_resource_is_a_table_error(
    policies: PoliciesCopy, permission: str, words: str
) -> None:
    report = _run(
        policies,
        "name: bad\n"
        "grants:\n"
        f"  - {{user: bob, area: shop, permissions: ['{permission}']}}\n"
        "cases:\n"
        "  - {user: bob, area: shop, allow: [invoice:read]}\n",
    )
    assert not report.ok and words in "\n".join(report.lines())


def test_a_grant_ends_at_its_instant_and_cases_are_decided_when_they_say(
    policies: PoliciesCopy,
) -> None:
    report = _run(
        policies,
        "name: access until\n"
        "grants:\n"
        "  - {user: tess, area: shop, permissions: [tickets],\n"
        "     valid_until: '2030-01-01T01:00:00+01:00'}\n"
        "  - {user: olga, area: shop, permissions: [tickets], valid_until: 2020-01-01T00:00:00Z}\n"
        "cases:\n"
        "  - {user: tess, area: shop, at: '2029-12-31T23:59:59Z', allow: [ticket:read]}\n"
        "  - {user: tess, area: shop, at: '2030-01-01T00:00:00Z', deny: all}\n"
        "  - {user: tess, area: shop, allow: [ticket:read], deny: [invoice:read]}\n"
        "  - {user: olga, area: shop, deny: all}\n"
        "  - {user: olga, area: shop, at: '2019-12-31T23:59:59Z', allow: [ticket:read]}\n"
        "  - {user: tess, area: shop, at: '2030-01-01T00:00:00Z', allow: [ticket:read]}\n",
    )
    (table,) = report.tables
    # Both engines decide each case at its instant; the last case is wrong on purpose.
    assert [(f.line, f.message) for f in table.failures] == [
        (12, "tess in shop: ticket:read at 2030-01-01T00:00:00Z should be allowed, was denied"),
    ]
    assert (
        "why: the grant of perm:tickets ended at 2030-01-01T00:00:00Z: it lapsed and gives nothing"
        in table.failures[0].detail
    )


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        ("grant", "'2030-01-01T00:00:00'", "valid_until needs a time zone offset"),
        ("grant", "tomorrow", "valid_until is not a date and time"),
        ("case", "'2030-01-01 00:00'", "at needs a time zone offset"),
    ],
)
def test_an_instant_without_an_offset_is_a_table_error(
    policies: PoliciesCopy, where: str, value: str, words: str
) -> None:
    grant_end = f", valid_until: {value}" if where == "grant" else ""
    case_at = f", at: {value}" if where == "case" else ""
    report = _run(
        policies,
        "grants:\n"
        f"  - {{user: bob, area: shop, permissions: [invoices]{grant_end}}}\n"
        "cases:\n"
        f"  - {{user: bob, area: shop, allow: [invoice:read]{case_at}}}\n",
    )
    (table,) = report.tables
    assert [f.line for f in table.failures] == [2 if where == "grant" else 4]
    assert words in table.failures[0].message
