"""`delegauth policy explain`: which grant, which rule and which catalogue entry made the
decision, or why nothing matched."""

from __future__ import annotations

from datetime import datetime

import pytest

from delegauth.domain.ids import PERM_ALL, ROLE_OWNER
from delegauth.policy.bundle import PolicyBundle, load_bundle
from delegauth.policy.explain import explain
from tests.unit.policy.conftest import POLICIES, PoliciesCopy

BOB = "user:u_" + "b" * 26
SHOP = "area:a_" + "s" * 26
STUDIO = "area:a_" + "t" * 26


@pytest.fixture(scope="module")
def shipped() -> PolicyBundle:
    return load_bundle(POLICIES)


def _g(role: str, area: str = SHOP, user: str = BOB) -> tuple[str, str, str, str]:
    return ("g", user, role, area)


def test_allowed_by_a_catalogue_permission(shipped: PolicyBundle) -> None:
    why = explain(shipped, [_g("perm:invoices")], BOB, SHOP, "invoice", "pay")
    assert why.allowed and why.decider_allowed
    assert why.grants == (_g("perm:invoices"),)
    (match,) = why.matched
    assert match.rule == ("p", "perm:invoices", "*", "invoice", "pay")
    line = next(
        n
        for n, text in enumerate((POLICIES / "catalogue.toml").read_text().splitlines(), 1)
        if text.startswith("actions") and "invoice:pay" in text
    )
    assert match.source == f'catalogue.toml:{line} permission invoices ("View and pay invoices")'
    assert why.catalogue_entries == (("invoices", "View and pay invoices"),)
    assert why.reasons == ()
    text = why.lines()
    assert text[0] == "decision: allow (Casbin; the Decider agrees)"
    assert f"  p, perm:invoices, *, invoice, pay  <- {match.source}" in text


@pytest.mark.parametrize(
    ("role", "source"),
    [
        (PERM_ALL, 'catalogue.toml: "all" covers every catalogue action'),
        (ROLE_OWNER, "catalogue.toml: the owner may do every catalogue action"),
    ],
)
def test_allowed_by_all_or_owner(shipped: PolicyBundle, role: str, source: str) -> None:
    why = explain(shipped, [_g(role)], BOB, SHOP, "domain", "transfer")
    assert why.allowed
    assert [m.source for m in why.matched] == [source]


def test_non_member(shipped: PolicyBundle) -> None:
    why = explain(shipped, [_g(ROLE_OWNER, STUDIO)], BOB, SHOP, "invoice", "read")
    assert not why.allowed and why.decider_allowed is False
    assert why.grants == () and why.matched == ()
    assert why.reasons == (
        f"{BOB} holds no grant in {SHOP}: it is not a member",
        f"it holds grants in other areas: {STUDIO}",
    )
    assert f"grants in {SHOP}: none" in why.lines()


def test_member_without_the_permission(shipped: PolicyBundle) -> None:
    why = explain(shipped, [_g("perm:domains"), _g("perm:tickets")], BOB, SHOP, "invoice", "read")
    assert not why.allowed
    assert why.reasons == (
        "it holds perm:domains, perm:tickets; invoice:read comes only with "
        "perm:all, perm:invoices, role:owner",
    )
    assert "why: " + why.reasons[0] in why.lines()


def test_action_nobody_may_do(shipped: PolicyBundle) -> None:
    why = explain(shipped, [_g(ROLE_OWNER)], BOB, SHOP, "invoice", "delete")
    assert not why.allowed
    assert why.catalogue_entries == ()
    assert why.reasons == (
        "no catalogue permission lists invoice:delete",
        f"no rule allows invoice:delete in {SHOP}, not even to the owner",
    )


def test_granted_permission_that_has_no_rules(shipped: PolicyBundle) -> None:
    why = explain(shipped, [_g("perm:retired")], BOB, SHOP, "invoice", "read")
    assert "perm:retired is granted but no rule names it (not in the catalogue?)" in why.reasons


def test_role_name_as_subject(shipped: PolicyBundle) -> None:
    # Plain Casbin's g(x, x, area) lets a role name match its own rules; the service denies.
    why = explain(shipped, [], "perm:invoices", SHOP, "invoice", "read")
    assert why.allowed is True and why.decider_allowed is False
    assert why.reasons[0].startswith("'perm:invoices' is not a user id")
    assert why.lines()[0] == "decision: allow (Casbin; the Decider denies)"


def test_bare_ids_are_namespaced(shipped: PolicyBundle) -> None:
    why = explain(
        shipped, [_g(ROLE_OWNER)], BOB[len("user:") :], SHOP[len("area:") :], "quote", "read"
    )
    assert (why.subject, why.domain, why.allowed) == (BOB, SHOP, True)


def test_rules_from_policy_csv_and_custom_roles(policies: PoliciesCopy) -> None:
    policies.write("policy.csv", "# auditors\n\np, role:auditor, *, audit, read\n")
    bundle = load_bundle(policies.root)
    team = "role:team_a"
    rules = [_g(team), ("g", team, "role:auditor", SHOP)]
    why = explain(bundle, rules, BOB, SHOP, "audit", "read")
    assert why.allowed and why.decider_allowed
    assert why.grants == tuple(rules)
    assert [(m.rule[1], m.source) for m in why.matched] == [("role:auditor", "policy.csv:3")]


def test_model_outside_the_fast_path_is_noted(policies: PoliciesCopy) -> None:
    policies.replace(
        "model.conf",
        'm = (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub + "@" + r.obj.id, r.dom)) '
        '&& (p.dom == "*" || r.dom == p.dom) && r.obj == p.obj',
        'm = r.obj == p.obj && g(r.sub, p.sub, r.dom) && (p.dom == "*" || r.dom == p.dom)',
    )
    why = explain(load_bundle(policies.root), [_g(ROLE_OWNER)], BOB, SHOP, "invoice", "read")
    assert why.allowed and why.decider_allowed
    assert "not the standard RBAC-with-domains shape" in why.reasons[-1]


def test_a_lapsed_grant_is_listed_and_gives_nothing(shipped: PolicyBundle) -> None:
    end = "2030-01-01T00:00:00Z"
    rules = [("g", BOB, "perm:invoices", SHOP, end)]
    before = explain(shipped, rules, BOB, SHOP, "invoice", "pay", at=datetime(2029, 12, 29))
    assert before.allowed and before.decider_allowed
    assert before.grants == (("g", BOB, "perm:invoices", SHOP, end),)
    assert before.reasons == (f"the grant of perm:invoices ends at {end} (in 3 days)",)
    after = explain(shipped, rules, BOB, SHOP, "invoice", "pay", at=datetime(2030, 1, 1))
    assert not after.allowed and after.decider_allowed is False
    assert after.matched == ()
    assert after.reasons[:2] == (
        f"the grant of perm:invoices ended at {end}: it lapsed and gives nothing",
        f"{BOB} holds nothing in {SHOP} any more: its grant lapsed",
    )
    assert f"  g, {BOB}, perm:invoices, {SHOP}, {end}" in after.lines()


def test_a_grant_on_one_resource_is_explained_on_the_resource_id(shipped: PolicyBundle) -> None:
    rules = [_g("perm:managedomains@example.com")]
    on_it = explain(shipped, rules, BOB, SHOP, "domain", "update", "example.com")
    assert on_it.allowed and on_it.decider_allowed
    assert [m.rule for m in on_it.matched] == [("p", "perm:managedomains", "*", "domain", "update")]
    assert f"request: {BOB} in {SHOP}: domain:update on example.com" in on_it.lines()
    other = explain(shipped, rules, BOB, SHOP, "domain", "update", "example.org")
    assert not other.allowed and other.decider_allowed is False and other.matched == ()
    assert other.reasons[-1] == (
        "perm:managedomains is granted on example.com only; the request is on example.org"
    )
    bare = explain(shipped, rules, BOB, SHOP, "domain", "update")
    assert bare.reasons[-1].endswith("the request is without a resource id")
