"""The Decider's fast path agrees with Casbin's own enforce (../shared/DESIGN.md, "Decisions at
speed"): same bundle, same g lines, random requests, grants added and removed through the
change log.

The reference is a plain ``casbin.Enforcer`` built by ``build_enforcer`` from the current
rule set, rebuilt after every change. The Decider under test is driven through an in-memory
feed with a change log, synced after each batch of changes, exactly as the follower would.

Grants on single resources are roles ``perm:<name>@<resource id>`` that the shipped matcher
honours only where the request's resource id (r.obj.id) is that id; requests carry random
resource ids, and grants random scoped roles, odd ones included (an empty id, an id with
an "@", a scoped role of a permission the catalogue does not scope).

One deliberate difference is asserted on its own and kept out of the comparison: Casbin's
``g(x, x, dom)`` is always true, so a request whose subject is a role name ("perm:all",
"role:owner") is allowed everywhere by plain Casbin. Only ``user:`` subjects are people, and
the Decider denies every other subject ("Casbin field notes": role names as subjects).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import casbin
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from delegauth.domain.ids import PERM_ALL, ROLE_OWNER
from delegauth.errors import Unavailable
from delegauth.policy.bundle import PolicyBundle, PolicyError, load_bundle
from delegauth.policy.casbin_engine import build_enforcer
from delegauth.policy.decider import AreaChange, Decider
from delegauth.policy.mapping import resource_value

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SHIPPED = load_bundle(POLICIES)
CATALOGUE = SHIPPED.catalogue


def _id(kind: str, n: int) -> str:
    """A well-formed id (kind + "_" + 26 chars of [a-z2-7]), fixed so failures replay."""
    return f"{kind}_" + chr(ord("a") + n) * 26


# -- the request and grant universe -------------------------------------------------------

USERS = [f"user:{_id('u', n)}" for n in range(4)]
UNKNOWN_USER = f"user:{_id('u', 20)}"  # well-formed, never granted anything
AREAS = [f"area:{_id('a', n)}" for n in range(3)]
UNKNOWN_AREA = f"area:{_id('a', 20)}"  # well-formed, never holds a g line
TEAMS = ["role:team_a", "role:team_b"]  # custom roles: g lines role -> role (a hierarchy)
CATALOGUE_PERMS = [f"perm:{name}" for name in CATALOGUE.names()]
RETIRED_PERM = "perm:retired"  # a g line naming a permission no longer in the catalogue
AUDITOR = "role:auditor"  # has p lines only in the policy.csv variant
# Grants on single resources (perm:<name>@<id>), the odd ones included: Casbin honours any
# role "<p subject>@<id>" the same way, so the index must too.
SCOPED_ROLES = [
    "perm:managedomains@example.com",
    "perm:managedomains@other.org",
    "perm:manageproducts@p-1",
    "perm:invoices@example.com",  # a permission the catalogue does not scope
    f"{ROLE_OWNER}@example.com",
    "perm:domains@",  # an empty resource id
    "perm:managedomains@a@b",  # an id holding the separator
    f"{AUDITOR}@example.com",
]
GRANTABLE = [ROLE_OWNER, PERM_ALL, *CATALOGUE_PERMS, RETIRED_PERM, AUDITOR, *TEAMS, *SCOPED_ROLES]
RESOURCE_IDS = ["", "example.com", "other.org", "p-1", "a@b", "b", "EXAMPLE.COM"]

# Subjects that are not people. Plain Casbin allows role names via g(x, x, dom); the
# Decider must deny all of them. They are asserted separately, never compared.
NON_USER_SUBJECTS = [
    PERM_ALL,
    ROLE_OWNER,
    "perm:invoices",
    *TEAMS,
    AUDITOR,
    _id("u", 0),  # a bare id, without the user: namespace
    "USER:" + _id("u", 0),
    " " + USERS[0],
    "",
]
# user:-prefixed subjects that match no grant: compared like real users.
ODD_USER_SUBJECTS = ["user:", USERS[0] + " ", "user:" + _id("u", 0).upper()]
COMPARED_SUBJECTS = [*USERS, UNKNOWN_USER, *ODD_USER_SUBJECTS]
DOMAINS = [*AREAS, UNKNOWN_AREA, "*", _id("a", 0), "area:", "", AREAS[0].upper()]
ACTIONS = [
    *CATALOGUE.all_actions(),
    ("invoice", "delete"),
    ("server", "reboot"),
    ("report", "read"),  # allowed only by the policy.csv variant, and only in AREAS[0]
    ("*", "*"),
    ("invoice", "*"),
]

compared_requests = st.tuples(
    st.sampled_from(COMPARED_SUBJECTS),
    st.sampled_from(DOMAINS),
    st.sampled_from(ACTIONS),
    st.sampled_from(RESOURCE_IDS),
)
non_user_requests = st.tuples(
    st.sampled_from(NON_USER_SUBJECTS),
    st.sampled_from(DOMAINS),
    st.sampled_from(ACTIONS),
    st.sampled_from(RESOURCE_IDS),
)
PROBES = [
    (sub, dom, action, rid)
    for sub in [*USERS[:3], UNKNOWN_USER]
    for dom in [*AREAS, UNKNOWN_AREA]
    for action, rid in [
        (("invoice", "read"), ""),
        (("domain", "update"), ""),
        (("domain", "update"), "example.com"),
        (("domain", "read"), "other.org"),
        (("product", "cancel"), "p-1"),
        (("audit", "read"), ""),
        (("report", "read"), ""),
    ]
]
Request = tuple[str, str, tuple[str, str], str]  # subject, domain, (obj, act), resource id
role_sets = st.frozensets(st.sampled_from(GRANTABLE), max_size=5)
user_role_sets = st.one_of(
    st.just(frozenset({ROLE_OWNER})),
    st.just(frozenset({PERM_ALL})),
    st.frozensets(st.sampled_from(CATALOGUE_PERMS), min_size=1, max_size=4),
    st.frozensets(st.sampled_from(SCOPED_ROLES), min_size=1, max_size=3),
    st.frozensets(st.sampled_from(TEAMS), min_size=1),  # members of a custom role
    role_sets,
)
# A change is the full new role set of one subject (user or team role) in one area.
changes = st.tuples(
    st.sampled_from([*USERS, *TEAMS]), st.sampled_from(AREAS), st.one_of(user_role_sets, role_sets)
)


# -- an in-memory feed ------------------------------------------------------------------


@dataclass
class FakeFeed:
    """The storage side of the Decider: g lines by domain plus a versioned change log."""

    links: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (sub, dom)
    log: list[AreaChange] = field(default_factory=list)
    fail: bool = False

    def _check(self) -> None:
        if self.fail:
            raise ConnectionError("the policy database is down")

    def domain_links(self, domain: str) -> list[tuple[str, str]]:
        self._check()
        return [
            (sub, role)
            for (sub, dom), roles in sorted(self.links.items())
            if dom == domain
            for role in sorted(roles)
        ]

    def latest_version(self) -> int:
        self._check()
        return self.log[-1].version if self.log else 0

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        self._check()
        return [c for c in self.log if c.version > version][:limit]

    # What a grant store does in one transaction: write the g lines, log the new role set.
    def set_roles(self, subject: str, domain: str, roles: Iterable[str]) -> None:
        roles = frozenset(roles)
        if roles:
            self.links[(subject, domain)] = roles
        else:
            self.links.pop((subject, domain), None)
        version = (self.log[-1].version if self.log else 0) + 1
        self.log.append(AreaChange(version, domain, subject, tuple(sorted(roles))))

    def g_lines(self) -> list[tuple[str, str, str, str]]:
        return [
            ("g", sub, role, dom)
            for (sub, dom), roles in sorted(self.links.items())
            for role in sorted(roles)
        ]


def _decider(bundle: PolicyBundle, feed: FakeFeed) -> Decider:
    # A frozen clock: staleness is tested on its own below.
    decider = Decider(bundle, feed, max_staleness=5.0, monotonic=lambda: 100.0)
    decider.sync()
    return decider


class Reference:
    """Plain Casbin over the feed's current g lines, rebuilt whenever they change.

    Answers are memoized by the request and the g lines of the request's domain: pycasbin's
    domain role manager builds each domain's links from that domain's g lines alone (no
    domain matching function is set), so nothing else can change the answer. The memo makes
    the many replays of hypothesis' shrinking cheap; a miss always asks a freshly built
    enforcer.
    """

    _memo: dict[tuple[object, ...], bool] = {}

    def __init__(self, bundle: PolicyBundle, feed: FakeFeed) -> None:
        self.bundle = bundle
        self.feed = feed
        self._built: tuple[frozenset[tuple[str, ...]], casbin.Enforcer] | None = None

    def enforce(self, sub: str, dom: str, obj: str, act: str, rid: str = "") -> bool:
        lines = frozenset(g for g in self.feed.g_lines() if g[3] == dom)
        key = (self.bundle.version, self.bundle.model_text, lines, sub, dom, obj, act, rid)
        found = self._memo.get(key)
        if found is None:
            every = frozenset(self.feed.g_lines())
            if self._built is None or self._built[0] != every:
                self._built = (every, build_enforcer(self.bundle, sorted(every)))
            # r.obj as the AuthZEN mapping passes it: the type, with the resource's id.
            obj_value = resource_value(obj, rid)
            found = self._memo[key] = bool(self._built[1].enforce(sub, dom, obj_value, act))
        return found


def _assert_agree(
    bundle: PolicyBundle,
    feed: FakeFeed,
    deciders: Sequence[Decider],
    requests: Iterable[tuple[str, str, tuple[str, str]] | Request],
    reference: Reference | None = None,
) -> None:
    reference = reference or Reference(bundle, feed)
    asked: list[tuple[str, str, str, str, str]] = []
    for request in requests:
        sub, dom, (obj, act) = request[:3]
        rid = request[3] if len(request) > 3 else ""  # type: ignore[misc]
        asked.append((sub, dom, obj, act, rid))
    expected_all = [reference.enforce(*request) for request in asked]
    for decider in deciders:
        # A batch's decide_all first (areas and memos maybe cold), then one by one, then the
        # batch again (every answer memoized): the same answers each time.
        assert decider.decide_all(asked) == expected_all, asked
    for request, expected in zip(asked, expected_all, strict=True):
        sub, dom, obj, act, rid = request
        for decider in deciders:
            got = decider.decide(sub, dom, obj, act, rid)
            assert got == expected, (
                f"decide{(sub, dom, obj, act, rid)} = {got}, casbin says {expected}; "
                f"g lines of {dom!r}: {[g for g in feed.g_lines() if g[3] == dom]}"
            )
    for decider in deciders:
        assert decider.decide_all(asked) == expected_all, asked


# -- bundles: the shipped one and variants of the model and policy files ------------------

SHIPPED_MODEL = (POLICIES / "model.conf").read_text("utf-8")
SCOPED_G = '(g(r.sub, p.sub, r.dom) || g(r.sub, p.sub + "@" + r.obj.id, r.dom))'
SHIPPED_MATCHER = (
    f'm = {SCOPED_G} && (p.dom == "*" || r.dom == p.dom) && r.obj == p.obj && r.act == p.act'
)
assert SHIPPED_MATCHER in SHIPPED_MODEL, "update the model variants below"


def _bundle(directory: Path, model: str = SHIPPED_MODEL, policy_csv: str | None = None):
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(POLICIES / "catalogue.toml", directory / "catalogue.toml")
    (directory / "model.conf").write_text(model, "utf-8")
    if policy_csv is not None:
        (directory / "policy.csv").write_text(policy_csv, "utf-8")
    return load_bundle(directory)


@pytest.fixture(scope="module")
def variant_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policies")


# Area-specific p lines and a p line for a custom role, from policy.csv.
EXTRA_POLICY = f"""\
# extra p lines
p, {AUDITOR}, *, audit, read
p, {AUDITOR}, *, invoice, read
p, perm:invoices, {AREAS[0]}, report, read
"""
# Same meaning as the shipped matcher, written so the fast path does not recognise it:
# the Decider falls back to a Casbin engine per area.
REORDERED_MODEL = SHIPPED_MODEL.replace(
    SHIPPED_MATCHER,
    f'm = r.obj == p.obj && r.act == p.act && {SCOPED_G} && (p.dom == "*" || r.dom == p.dom)',
)
# The matcher before grants on single resources: a perm:<name>@<id> role gives nothing.
UNSCOPED_MODEL = SHIPPED_MODEL.replace(
    SHIPPED_MATCHER,
    'm = g(r.sub, p.sub, r.dom) && (p.dom == "*" || r.dom == p.dom) '
    "&& r.obj == p.obj && r.act == p.act",
)
# A matcher the fast path claims to implement (index.FAST_MATCHERS), where "*" is not a
# wildcard: the catalogue's p lines (domain "*") match no area.
STRICT_DOMAIN_MODEL = SHIPPED_MODEL.replace(
    SHIPPED_MATCHER,
    f"m = {SCOPED_G} && r.dom == p.dom && r.obj == p.obj && r.act == p.act",
)
EFT_MODEL = SHIPPED_MODEL.replace("p = sub, dom, obj, act", "p = sub, dom, obj, act, eft")


# -- the property: a state machine of grant changes and decisions -------------------------


class DecisionAgreement(RuleBasedStateMachine):
    """Grants change through the change log; every check compares with plain Casbin."""

    bundle: PolicyBundle = SHIPPED
    expect_fast = True

    def __init__(self) -> None:
        super().__init__()
        self.feed = FakeFeed()
        self.reference = Reference(self.bundle, self.feed)
        self.decider: Decider | None = None

    @initialize(
        initial=st.lists(
            st.tuples(st.sampled_from([*USERS, *TEAMS]), st.sampled_from(AREAS), user_role_sets),
            max_size=8,
        )
    )
    def start(self, initial: list[tuple[str, str, frozenset[str]]]) -> None:
        # Grants that exist before the process starts: g lines only, no change-log rows.
        for sub, dom, roles in initial:
            self.feed.links[(sub, dom)] = roles
        self.decider = _decider(self.bundle, self.feed)
        assert self.decider.fast is self.expect_fast

    @property
    def live(self) -> Decider:
        assert self.decider is not None
        return self.decider

    @rule(batch=st.lists(changes, min_size=1, max_size=3))
    def change_roles(self, batch: list[tuple[str, str, frozenset[str]]]) -> None:
        for sub, dom, roles in batch:
            self.feed.set_roles(sub, dom, roles)
        self.live.sync()

    @precondition(lambda self: bool(self.feed.links))
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        sub, dom = data.draw(st.sampled_from(sorted(self.feed.links)))
        self.feed.set_roles(sub, dom, ())
        self.live.sync()

    @precondition(lambda self: bool(self.feed.links))
    @rule(data=st.data())
    def narrow_or_widen(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.feed.links)))
        role = data.draw(st.sampled_from(GRANTABLE))
        self.feed.set_roles(*key, self.feed.links[key] ^ {role})
        self.live.sync()

    @rule(batch=st.lists(changes, min_size=1, max_size=3), touch=st.sampled_from(USERS))
    def load_during_change(self, batch: list[tuple[str, str, frozenset[str]]], touch: str) -> None:
        """An area loaded between a write and the sync must not replay or lose entries."""
        self.live.install(self.bundle)  # drop every loaded area
        for sub, dom, roles in batch:
            self.feed.set_roles(sub, dom, roles)
            self.live.decide(touch, dom, "invoice", "read")  # loads dom mid-batch; not compared
        self.live.sync()

    @rule(requests=st.lists(compared_requests, min_size=1, max_size=12))
    def agree(self, requests: list[Request]) -> None:
        fresh = _decider(self.bundle, self.feed)  # loads every area from the g lines alone
        _assert_agree(self.bundle, self.feed, [self.live, fresh], requests, self.reference)

    @rule(requests=st.lists(non_user_requests, min_size=1, max_size=6))
    def non_user_subjects_denied(self, requests: list[Request]) -> None:
        for sub, dom, (obj, act), rid in requests:
            assert self.live.decide(sub, dom, obj, act, rid) is False, (sub, dom, obj, act, rid)
        asked = [(sub, dom, obj, act, rid) for sub, dom, (obj, act), rid in requests]
        assert self.live.decide_all(asked) == [False] * len(asked)

    @invariant()
    def probes_agree(self) -> None:
        """Every user and area on a few actions, after every step.

        Besides checking, this fills the live Decider's per-subject caches, so the next change
        finds cached answers to invalidate.
        """
        if self.decider is not None:
            _assert_agree(self.bundle, self.feed, [self.live], PROBES, self.reference)

    @invariant()
    def owners_and_all_cover_the_catalogue(self) -> None:
        # A cheap whole-area check after every step, on top of the sampled requests.
        if self.decider is None:
            return
        for (sub, dom), roles in self.feed.links.items():
            if sub.startswith("user:") and roles & {ROLE_OWNER, PERM_ALL}:
                for obj, act in CATALOGUE.all_actions():
                    assert self.live.decide(sub, dom, obj, act), (sub, dom, obj, act)


_STATEFUL = settings(
    max_examples=80,
    stateful_step_count=15,
    deadline=None,
    # No explain phase: it traces every line Casbin runs and turns a report of a few seconds
    # into five minutes.
    phases=[p for p in Phase if p is not Phase.explain],
    suppress_health_check=[HealthCheck.too_slow],
)

TestShippedPolicyAgreesWithCasbin = DecisionAgreement.TestCase
TestShippedPolicyAgreesWithCasbin.settings = _STATEFUL


def test_extra_policy_csv_agrees_with_casbin(variant_dir: Path) -> None:
    """Area-specific p lines and custom-role p lines from policy.csv."""

    class ExtraPolicy(DecisionAgreement):
        bundle = _bundle(variant_dir / "extra", policy_csv=EXTRA_POLICY)

    run_state_machine_as_test(ExtraPolicy, settings=settings(_STATEFUL, max_examples=40))


def test_matcher_without_single_resources_agrees_with_casbin(variant_dir: Path) -> None:
    """Under the older matcher a perm:<name>@<id> role gives nothing, in both."""

    class Unscoped(DecisionAgreement):
        bundle = _bundle(variant_dir / "unscoped", UNSCOPED_MODEL)

    run_state_machine_as_test(Unscoped, settings=settings(_STATEFUL, max_examples=30))


def test_model_outside_the_fast_path_agrees_with_casbin(variant_dir: Path) -> None:
    """A model the index does not recognise runs on a Casbin engine per area, same answers."""

    class Reordered(DecisionAgreement):
        bundle = _bundle(variant_dir / "reordered", REORDERED_MODEL, EXTRA_POLICY)
        expect_fast = False

    run_state_machine_as_test(
        Reordered, settings=settings(_STATEFUL, max_examples=15, stateful_step_count=10)
    )


# -- role hierarchies --------------------------------------------------------------------

HIERARCHY_ROLES = [f"role:r{n}" for n in range(6)]


@settings(_STATEFUL, max_examples=60)
@given(
    edges=st.lists(
        st.tuples(
            st.sampled_from([*USERS[:2], *HIERARCHY_ROLES]),
            st.sampled_from([*HIERARCHY_ROLES, ROLE_OWNER, PERM_ALL, *CATALOGUE_PERMS]),
        ),
        max_size=14,
    ),
    requests=st.lists(
        st.tuples(st.sampled_from(USERS[:3]), st.sampled_from(ACTIONS)), min_size=1, max_size=10
    ),
)
def test_role_hierarchy_agrees_with_casbin(
    edges: list[tuple[str, str]], requests: list[tuple[str, tuple[str, str]]]
) -> None:
    """Random role -> role graphs in one area, cycles included."""
    feed = FakeFeed()
    for sub, role in edges:
        feed.links[(sub, AREAS[0])] = feed.links.get((sub, AREAS[0]), frozenset()) | {role}
    decider = _decider(SHIPPED, feed)
    _assert_agree(SHIPPED, feed, [decider], [(u, AREAS[0], a) for u, a in requests])


@pytest.mark.parametrize("depth", range(1, 13))
def test_hierarchy_depth_limit_matches_casbin(depth: int) -> None:
    """Casbin's conditional role manager (the shipped g = _, _, _, (_)) follows at most 10
    links up from the subject; so must the index."""
    feed = FakeFeed()
    chain = [USERS[0], *(f"role:level{n}" for n in range(1, depth)), "perm:invoices"]
    for sub, role in zip(chain, chain[1:], strict=False):
        feed.links[(sub, AREAS[0])] = frozenset({role})
    decider = _decider(SHIPPED, feed)
    _assert_agree(SHIPPED, feed, [decider], [(USERS[0], AREAS[0], ("invoice", "read"))])
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read") is (depth <= 10)


def test_changing_an_inherited_role_reaches_its_members() -> None:
    """Cached answers of users below a role are dropped when that role's links change."""
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({"role:team_a"})
    feed.links[(USERS[1], AREAS[0])] = frozenset({"perm:invoices"})
    feed.links[("role:team_a", AREAS[0])] = frozenset({"perm:invoices"})
    decider = _decider(SHIPPED, feed)
    requests = [
        (u, AREAS[0], a) for u in USERS[:2] for a in [("invoice", "read"), ("domain", "read")]
    ]
    _assert_agree(SHIPPED, feed, [decider], requests)  # fills the caches
    feed.set_roles("role:team_a", AREAS[0], {"perm:domains"})
    decider.sync()
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read") is False
    assert decider.decide(USERS[0], AREAS[0], "domain", "read") is True
    _assert_agree(SHIPPED, feed, [decider], requests)
    feed.set_roles("role:team_a", AREAS[0], ())
    decider.sync()
    _assert_agree(SHIPPED, feed, [decider], requests)


# -- fail closed ---------------------------------------------------------------------------


def test_never_synced_decider_is_unavailable() -> None:
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({ROLE_OWNER})
    decider = Decider(SHIPPED, feed, monotonic=lambda: 100.0)
    with pytest.raises(Unavailable):
        decider.decide(USERS[0], AREAS[0], "invoice", "read")


def test_decider_whose_feed_raises_is_unavailable() -> None:
    feed = FakeFeed(fail=True)
    decider = Decider(SHIPPED, feed, monotonic=lambda: 100.0)
    with pytest.raises(Exception):  # noqa: B017 - whatever storage raised; see the next test
        decider.sync()
    with pytest.raises(Unavailable):
        decider.decide(USERS[0], AREAS[0], "invoice", "read")


def test_feed_failing_after_sync_is_unavailable_for_unloaded_areas() -> None:
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({ROLE_OWNER})
    feed.links[(USERS[0], AREAS[1])] = frozenset({ROLE_OWNER})
    decider = _decider(SHIPPED, feed)
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read") is True
    feed.fail = True
    with pytest.raises(Unavailable):
        decider.decide(USERS[0], AREAS[1], "invoice", "read")  # needs the store: fail closed


def test_stale_decider_is_unavailable() -> None:
    now = [100.0]
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({ROLE_OWNER})
    decider = Decider(SHIPPED, feed, max_staleness=5.0, monotonic=lambda: now[0])
    decider.sync()
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read") is True
    feed.fail = True
    now[0] += 4.0
    with pytest.raises((ConnectionError, Unavailable)):
        decider.sync()  # the follower logs this and retries; time passes
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read") is True  # within the bound
    now[0] += 2.0
    with pytest.raises(Unavailable):
        decider.decide(USERS[0], AREAS[0], "invoice", "read")
    with pytest.raises(Unavailable):  # a batch too, though every answer is memoized
        decider.decide_all([(USERS[0], AREAS[0], "invoice", "read", "")])


def test_decide_all_stops_after_the_first_answer_it_is_told_to() -> None:
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({"perm:invoices"})
    decider = _decider(SHIPPED, feed)
    asked = [
        (USERS[0], AREAS[0], "invoice", "read", ""),
        (USERS[0], AREAS[0], "domain", "read", ""),
        (USERS[0], AREAS[0], "invoice", "read", ""),
        (USERS[0], AREAS[1], "domain", "read", ""),
    ]
    assert decider.decide_all(asked, until=False) == [True, False]
    assert decider.decide_all(asked, until=True) == [True]
    assert decider.decide_all(asked[1:], until=True) == [False, True]
    # What comes after the stop is not decided: AREAS[1] has not been read.
    assert decider.areas_held == 1
    assert decider.decide_all(asked) == [True, False, True, False]
    assert decider.areas_held == 2


def test_sync_wraps_storage_errors_in_unavailable() -> None:
    decider = Decider(SHIPPED, FakeFeed(fail=True), monotonic=lambda: 100.0)
    with pytest.raises(Unavailable):
        decider.sync()


# -- no line silently dropped --------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        ("g2", USERS[0], ROLE_OWNER, AREAS[0]),
        ("p2", "perm:invoices", "*", "invoice", "read"),
        ("h", USERS[0], ROLE_OWNER, AREAS[0]),
        ("", USERS[0], ROLE_OWNER, AREAS[0]),
    ],
)
def test_rule_with_unknown_ptype_is_rejected(line: tuple[str, ...]) -> None:
    with pytest.raises(PolicyError):
        build_enforcer(SHIPPED, [line])


def test_every_line_reaches_the_enforcer() -> None:
    """A g line given without its end has none ("_"); one with an end keeps it."""
    rules = [
        ("g", USERS[0], ROLE_OWNER, AREAS[0]),
        ("g", USERS[1], "perm:invoices", AREAS[0]),
        ("g", USERS[2], "perm:quotes", AREAS[0], "2030-01-02T03:04:05Z"),
    ]
    enforcer = build_enforcer(SHIPPED, rules)
    assert sorted(map(tuple, enforcer.get_policy())) == sorted(line[1:] for line in SHIPPED.p_lines)
    assert sorted(map(tuple, enforcer.get_grouping_policy())) == sorted(
        [(*rules[0][1:], "_"), (*rules[1][1:], "_"), rules[2][1:]]
    )


def test_unknown_ptype_in_policy_csv_is_rejected_by_build_enforcer(variant_dir: Path) -> None:
    bundle = _bundle(variant_dir / "p2", policy_csv="p2, perm:invoices, *, invoice, read\n")
    with pytest.raises(PolicyError):
        build_enforcer(bundle, [])


def test_unknown_ptype_in_policy_csv_is_rejected_by_the_decider(variant_dir: Path) -> None:
    bundle = _bundle(variant_dir / "p2d", policy_csv="p2, perm:invoices, *, invoice, read\n")
    with pytest.raises(PolicyError):
        Decider(bundle, FakeFeed())


def test_short_g_line_is_rejected() -> None:
    with pytest.raises(PolicyError):
        build_enforcer(SHIPPED, [("g", USERS[0], ROLE_OWNER)])


def test_short_p_line_is_rejected() -> None:
    with pytest.raises(PolicyError):
        build_enforcer(SHIPPED, [("p", "perm:invoices", "*", "invoice")])


# -- model variants where the fast path and Casbin disagree today --------------------------


def test_strict_domain_matcher_agrees_with_casbin(variant_dir: Path) -> None:
    bundle = _bundle(variant_dir / "strict", STRICT_DOMAIN_MODEL)
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({"perm:invoices"})
    _assert_agree(
        bundle, feed, [_decider(bundle, feed)], [(USERS[0], AREAS[0], ("invoice", "read"))]
    )


def test_eft_model_without_eft_fields_is_rejected(variant_dir: Path) -> None:
    bundle = _bundle(variant_dir / "eft", EFT_MODEL)
    with pytest.raises(PolicyError):
        Decider(bundle, FakeFeed())


def test_p_line_naming_a_user_agrees_with_casbin(variant_dir: Path) -> None:
    bundle = _bundle(variant_dir / "userp", policy_csv=f"p, {USERS[3]}, *, invoice, read\n")
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({"perm:domains"})
    _assert_agree(
        bundle, feed, [_decider(bundle, feed)], [(USERS[3], AREAS[0], ("invoice", "read"))]
    )


# -- grants on single resources -------------------------------------------------------------


def test_grant_on_one_resource_allows_only_there() -> None:
    feed = FakeFeed()
    feed.links[(USERS[0], AREAS[0])] = frozenset({"perm:managedomains@example.com"})
    feed.links[(USERS[1], AREAS[0])] = frozenset({"perm:managedomains"})
    decider = _decider(SHIPPED, feed)
    assert decider.decide(USERS[0], AREAS[0], "domain", "update", "example.com") is True
    assert decider.decide(USERS[0], AREAS[0], "domain", "update", "other.org") is False
    assert decider.decide(USERS[0], AREAS[0], "domain", "update") is False  # no resource named
    assert decider.decide(USERS[0], AREAS[1], "domain", "update", "example.com") is False
    assert decider.decide(USERS[0], AREAS[0], "invoice", "read", "example.com") is False
    assert decider.decide(USERS[1], AREAS[0], "domain", "update", "other.org") is True  # unscoped
    requests = [
        (u, AREAS[0], ("domain", "update"), rid)
        for u in USERS[:2]
        for rid in ["example.com", "other.org", ""]
    ]
    _assert_agree(SHIPPED, feed, [decider], requests)
    feed.set_roles(USERS[0], AREAS[0], {"perm:managedomains@other.org"})  # moved: at once
    decider.sync()
    assert decider.decide(USERS[0], AREAS[0], "domain", "update", "example.com") is False
    assert decider.decide(USERS[0], AREAS[0], "domain", "update", "other.org") is True
