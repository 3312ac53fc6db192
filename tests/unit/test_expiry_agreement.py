"""Grants that end: the Decider agrees with plain Casbin at every instant, caches warm.

The reference is a plain ``casbin.Enforcer`` loaded from files (policies/model.conf and a
policy.csv holding the catalogue's p lines and the g lines with their ends), the way any
Casbin user would load it; each link with an end gets a condition written here, apart
from delegauth's code, that reads the end and compares it with the same test clock. The
Decider under test is asked first (its answers memoized, its area loaded), then the clock
moves to the exact instant of an end, one second before it, and after it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import casbin
import pytest

from delegauth.domain.ids import PERM_ALL, ROLE_OWNER
from delegauth.policy.bundle import load_bundle
from delegauth.policy.casbin_engine import build_enforcer
from delegauth.policy.decider import AreaChange, Decider
from delegauth.policy.mapping import resource_value

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SHIPPED = load_bundle(POLICIES)
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


def _id(kind: str, n: int) -> str:
    return f"{kind}_" + chr(ord("a") + n) * 26


USERS = [f"user:{_id('u', n)}" for n in range(5)]
AREAS = [f"area:{_id('a', n)}" for n in range(2)]
ROLES = [ROLE_OWNER, PERM_ALL, *(f"perm:{n}" for n in SHIPPED.catalogue.names())]
# A few actions: one per kind of grant that allows it, and one nothing allows.
ACTIONS = [("invoice", "read"), ("domain", "read"), ("ticket", "create"), ("server", "reboot")]


def _end(offset: int) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.now = T0 - 3600.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Feed:
    """g lines (subject, role, end) by domain, and a change log."""

    links: dict[tuple[str, str], tuple[frozenset[str], str]] = field(default_factory=dict)
    log: list[AreaChange] = field(default_factory=list)

    def domain_links(self, domain: str) -> list[tuple[str, str, str]]:
        return [
            (sub, role, end)
            for (sub, dom), (roles, end) in sorted(self.links.items())
            if dom == domain
            for role in sorted(roles)
        ]

    def latest_version(self) -> int:
        return len(self.log)

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        return self.log[version : version + limit]

    def set(self, sub: str, dom: str, roles: frozenset[str], end: str = "") -> None:
        if roles:
            self.links[(sub, dom)] = (roles, end)
        else:
            self.links.pop((sub, dom), None)
        self.log.append(AreaChange(len(self.log) + 1, dom, sub, tuple(sorted(roles)), end))

    def g_lines(self) -> list[tuple[str, ...]]:
        return [
            ("g", sub, role, dom, end or "_")
            for (sub, dom), (roles, end) in sorted(self.links.items())
            for role in sorted(roles)
        ]


def plain_casbin(directory: Path, feed: Feed, clock: Clock) -> casbin.Enforcer:
    """Casbin as its documentation shows it: a model file, a policy file, conditions."""
    lines = [", ".join(line) for line in (*SHIPPED.p_lines, *feed.g_lines())]
    (directory / "policy.csv").write_text("\n".join(lines) + "\n", "utf-8")
    enforcer = casbin.Enforcer(str(POLICIES / "model.conf"), str(directory / "policy.csv"))

    def before_end(end: str) -> bool:
        if end == "_":
            return True
        when = datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return clock() < when.timestamp()

    for _, sub, role, dom, _ in feed.g_lines():
        enforcer.add_named_domain_link_condition_func("g", sub, role, dom, before_end)
    return enforcer


def _decider(feed: Feed, clock: Clock) -> Decider:
    decider = Decider(SHIPPED, feed, monotonic=lambda: 0.0, clock=clock)
    decider.sync()
    return decider


def _requests() -> list[tuple[str, str, str, str]]:
    return [(u, a, obj, act) for u in USERS for a in AREAS for obj, act in ACTIONS]


def _enforce(reference: casbin.Enforcer, sub: str, dom: str, obj: str, act: str) -> bool:
    """Plain Casbin; r.obj carries the resource's id and type (the matcher reads r.obj.id)."""
    return bool(reference.enforce(sub, dom, resource_value(obj), act))


def _assert_agree(decider: Decider, reference: casbin.Enforcer, when: str) -> None:
    asked = [(*request, "") for request in _requests()]  # no resource id
    expected_all = [_enforce(reference, *request[:4]) for request in asked]
    assert decider.decide_all(asked) == expected_all, f"decide_all at {when}"
    for request, expected in zip(asked, expected_all, strict=True):
        assert decider.decide(*request) is expected, f"{request} at {when}: casbin {expected}"
    assert decider.decide_all(asked) == expected_all, f"decide_all again at {when}"


@pytest.mark.parametrize("seed", range(3))
def test_ends_agree_with_plain_casbin_at_each_instant(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    feed, clock = Feed(), Clock()
    offsets = [-60, 0, 1, 3600]
    for user in USERS:
        for area in AREAS:
            if rng.random() < 0.8:
                roles = frozenset(rng.sample(ROLES, rng.randint(1, 3)))
                end = "" if rng.random() < 0.3 else _end(rng.choice(offsets))
                feed.set(user, area, roles, end)
    decider = _decider(feed, clock)
    reference = plain_casbin(tmp_path, feed, clock)
    for at in (-3600, -61, -60, -1, 0, 1, 3599, 3600):
        clock.now = T0 + at
        _assert_agree(decider, reference, f"T0{at:+d}s")


def test_decision_denies_at_the_exact_instant_with_the_area_warm(tmp_path: Path) -> None:
    feed, clock = Feed(), Clock()
    feed.set(USERS[0], AREAS[0], frozenset({"perm:invoices"}), _end(0))
    feed.set(USERS[1], AREAS[0], frozenset({"perm:invoices"}))
    decider = _decider(feed, clock)
    reference = plain_casbin(tmp_path, feed, clock)
    clock.now = T0 - 0.001
    for _ in range(3):  # the area loaded, the answer memoized
        assert decider.decide(USERS[0], AREAS[0], "invoice", "read")
    assert _enforce(reference, USERS[0], AREAS[0], "invoice", "read")
    clock.now = T0
    assert not decider.decide(USERS[0], AREAS[0], "invoice", "read")
    assert not _enforce(reference, USERS[0], AREAS[0], "invoice", "read")
    assert decider.decide(USERS[1], AREAS[0], "invoice", "read")  # no end: unaffected
    assert decider.area_links(AREAS[0]) == {USERS[1]: frozenset({"perm:invoices"})}


def test_an_extension_through_the_change_log_brings_access_back(tmp_path: Path) -> None:
    feed, clock = Feed(), Clock()
    feed.set(USERS[0], AREAS[0], frozenset({"perm:invoices"}), _end(0))
    decider = _decider(feed, clock)
    clock.now = T0
    assert not decider.decide(USERS[0], AREAS[0], "invoice", "read")
    feed.set(USERS[0], AREAS[0], frozenset({"perm:invoices"}), _end(3600))
    decider.sync()
    reference = plain_casbin(tmp_path, feed, clock)
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read")
    assert _enforce(reference, USERS[0], AREAS[0], "invoice", "read")
    clock.now = T0 + 3600
    assert not decider.decide(USERS[0], AREAS[0], "invoice", "read")
    assert not _enforce(reference, USERS[0], AREAS[0], "invoice", "read")
    # Taking the end away (no end at all) through the log: allowed for good.
    feed.set(USERS[0], AREAS[0], frozenset({"perm:invoices"}))
    decider.sync()
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read")


def test_the_engine_path_and_explanations_see_ends_too() -> None:
    """Casbin's own engine (build_enforcer, as the policy tests and check use it) honours a
    g line's end with the same clock."""
    clock = Clock()
    rules = [("g", USERS[0], "perm:invoices", AREAS[0], _end(0))]
    enforcer = build_enforcer(SHIPPED, rules, clock=clock)
    clock.now = T0 - 1
    assert enforcer.enforce(USERS[0], AREAS[0], resource_value("invoice"), "read")
    clock.now = T0
    assert not enforcer.enforce(USERS[0], AREAS[0], resource_value("invoice"), "read")


def test_an_unreadable_end_denies() -> None:
    """Only a hand-edited rule could hold one; it must not allow (fail closed)."""
    feed, clock = Feed(), Clock()
    feed.set(USERS[0], AREAS[0], frozenset({"perm:invoices"}), "next tuesday")
    assert not _decider(feed, clock).decide(USERS[0], AREAS[0], "invoice", "read")
    rules = [("g", USERS[0], "perm:invoices", AREAS[0], "next-tuesday")]
    assert not build_enforcer(SHIPPED, rules, clock=clock).enforce(
        USERS[0], AREAS[0], resource_value("invoice"), "read"
    )


def test_a_grant_without_end_ignores_the_clock(tmp_path: Path) -> None:
    feed, clock = Feed(), Clock()
    feed.set(USERS[0], AREAS[0], frozenset({PERM_ALL}))
    decider = _decider(feed, clock)
    clock.now = T0 + 10 * 365 * 86400
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read")
    assert _enforce(plain_casbin(tmp_path, feed, clock), USERS[0], AREAS[0], "invoice", "read")
