"""The Decider's area cache: a bound with eviction, an evicted area that comes back
current, a warm-up that loads exactly what lazy loading would, and no change lost when the
follower applies one while an area is being read (../shared/DESIGN.md, "Scale").

The store is the real one (PeeweePolicyFeed over SQLite, and PostgreSQL when
DELEGAUTH_TEST_PG_URL is set); g lines and change-log entries are written as the grant
store writes them, one subject's full role set at a time.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee
import pytest

from delegauth.domain.ids import PERM_ALL, ROLE_OWNER
from delegauth.policy.bundle import load_bundle
from delegauth.policy.decider import AREA_BYTES, SUBJECT_BYTES, AreaChange, Decider
from delegauth.storage.db import open_database
from delegauth.storage.feed import PeeweePolicyFeed
from delegauth.storage.records import CasbinRuleRecord, ChangeRecord, database_proxy
from delegauth.storage.schema import migrate

POLICIES = Path(__file__).resolve().parents[3] / "policies"
BUNDLE = load_bundle(POLICIES)
PERMS = [f"perm:{name}" for name in BUNDLE.catalogue.names()]
WAIT = 30.0  # bounds every wait so that a broken build fails instead of hanging


def _id(kind: str, n: int) -> str:
    """A well-formed id: kind + "_" + 26 characters of [a-z2-7]."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    digits = []
    for _ in range(26):
        n, r = divmod(n, 32)
        digits.append(alphabet[r])
    return f"{kind}_" + "".join(reversed(digits))


def area(n: int) -> str:
    return "area:" + _id("a", n)


def user(n: int) -> str:
    return "user:" + _id("u", n)


class Store:
    """Writes g lines and change-log entries in one transaction, as PeeweeStore does."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    def set_roles(self, subject: str, domain: str, roles: list[str]) -> int:
        with self.db.connection_context(), self.db.atomic():
            CasbinRuleRecord.delete().where(
                (CasbinRuleRecord.ptype == "g")
                & (CasbinRuleRecord.v0 == subject)
                & (CasbinRuleRecord.v2 == domain)
            ).execute()
            for role in roles:
                CasbinRuleRecord.insert(ptype="g", v0=subject, v1=role, v2=domain).execute()
            return int(
                ChangeRecord.insert(
                    domain=domain,
                    subject=subject,
                    roles=json.dumps(sorted(roles)),
                    at=datetime.now(UTC).replace(tzinfo=None),
                ).execute()
            )

    def bulk(self, lines: list[tuple[str, str, str]]) -> None:
        """g lines (subject, role, domain) written without change-log entries: a population
        that was there before the process started."""
        with self.db.connection_context(), self.db.atomic():
            for i in range(0, len(lines), 500):
                rows = [{"ptype": "g", "v0": s, "v1": r, "v2": d} for s, r, d in lines[i : i + 500]]
                CasbinRuleRecord.insert_many(rows).execute()


@pytest.fixture
def db(database_url: str) -> Iterator[peewee.Database]:
    database = open_database(database_url)
    database_proxy.initialize(database)
    migrate(database)
    yield database
    if not database.is_closed():
        database.close()


@pytest.fixture
def store(db: peewee.Database) -> Store:
    return Store(db)


def _decider(feed: Any, **bound: int) -> Decider:
    decider = Decider(BUNDLE, feed, max_staleness=3600, wait_timeout=WAIT, **bound)
    decider.sync()
    return decider


# -- the bound --------------------------------------------------------------------------


def test_an_evicted_area_comes_back_current(db: peewee.Database, store: Store) -> None:
    store.set_roles(user(1), area(1), ["perm:invoices"])
    store.set_roles(user(2), area(2), [ROLE_OWNER])
    decider = _decider(PeeweePolicyFeed(db), max_areas=1)
    assert decider.decide(user(1), area(1), "invoice", "pay")
    assert decider.decide(user(2), area(2), "invoice", "pay")  # evicts area 1
    assert decider.areas_held == 1 and decider.area_evictions == 1
    # Changed while evicted: the follower has nothing held to apply it to.
    store.set_roles(user(1), area(1), ["perm:domains"])
    decider.sync()
    assert not decider.decide(user(1), area(1), "invoice", "pay")
    assert decider.decide(user(1), area(1), "domain", "read")
    # And removed while evicted again.
    assert decider.decide(user(2), area(2), "invoice", "pay")
    store.set_roles(user(1), area(1), [])
    decider.sync()
    assert not decider.decide(user(1), area(1), "domain", "read")
    assert decider.area_links(area(1)) == {}


@pytest.mark.parametrize("bound", [1, 5, 40])
def test_the_area_bound_holds(db: peewee.Database, store: Store, bound: int) -> None:
    lines = [(user(n), PERMS[n % len(PERMS)], area(n)) for n in range(100)]
    store.bulk(lines)
    decider = _decider(PeeweePolicyFeed(db), max_areas=bound)
    rng = random.Random(bound)
    for _ in range(400):
        n = rng.randrange(100)
        assert decider.decide(user(n), area(n), "nothing", "at-all") is False
        assert decider.areas_held <= bound
    assert decider.area_evictions >= 100 - bound


def test_the_bytes_bound_holds(db: peewee.Database, store: Store) -> None:
    # Areas of 1 to 6 subjects: the estimate grows with the subjects held.
    lines = [(user(n * 10 + k), PERMS[k], area(n)) for n in range(60) for k in range(n % 6 + 1)]
    store.bulk(lines)
    limit = 6 * (AREA_BYTES + 3 * SUBJECT_BYTES)
    decider = _decider(PeeweePolicyFeed(db), max_bytes=limit)
    for n in range(60):
        assert decider.decide(user(n * 10), area(n), "invoice", "pay") is (
            PERMS[0] == "perm:invoices"
        )
        assert 0 < decider.held_bytes <= limit
    assert 2 <= decider.areas_held < 60


def test_an_area_in_use_outlives_a_scan(db: peewee.Database, store: Store) -> None:
    """Least recently used goes first: an area asked about between the others stays."""
    store.bulk([(user(n), ROLE_OWNER, area(n)) for n in range(50)])
    decider = _decider(PeeweePolicyFeed(db), max_areas=10)
    assert decider.decide(user(0), area(0), "invoice", "pay")
    for n in range(1, 50):
        assert decider.decide(user(n), area(n), "invoice", "pay")
        assert decider.decide(user(0), area(0), "invoice", "pay")
    assert decider.area_loads == 50  # area 0 was read once


# -- no change lost while an area is read --------------------------------------------------


class HeldReads:
    """The real feed, whose area reads (one at a time, or the warm-up's pages) can be held
    after they have read, while the test writes and the follower applies."""

    def __init__(self, feed: PeeweePolicyFeed) -> None:
        self.feed = feed
        self.gate = threading.Event()
        self.gate.set()
        self.read_done = threading.Event()
        self.area_reads = 0

    def hold(self) -> None:
        self.gate.clear()
        self.read_done.clear()

    def _held(self, value: Any) -> Any:
        if not self.gate.is_set():
            self.read_done.set()
            assert self.gate.wait(WAIT)
        return value

    def area(self, domain: str) -> tuple[int, list[tuple[str, str]]]:
        self.area_reads += 1
        return self._held(self.feed.area(domain))

    def links_after(self, domain: str, limit: int) -> list[tuple[str, str, str]]:
        return self._held(self.feed.links_after(domain, limit))

    def domain_links(self, domain: str) -> list[tuple[str, str]]:
        return self.feed.domain_links(domain)

    def latest_version(self) -> int:
        return self.feed.latest_version()

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        return self.feed.changes_since(version, limit)


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


def test_a_change_applied_while_an_area_is_read_is_not_lost(
    db: peewee.Database, store: Store
) -> None:
    store.set_roles(user(1), area(1), ["perm:invoices"])
    store.set_roles(user(9), area(9), [ROLE_OWNER])
    feed = HeldReads(PeeweePolicyFeed(db))
    decider = _decider(feed)
    assert decider.decide(user(9), area(9), "invoice", "pay")  # something held: no skipping
    feed.hold()
    thread, answers = _in_thread(lambda: decider.decide(user(1), area(1), "invoice", "pay"))
    assert feed.read_done.wait(WAIT)
    # The area was read; before it is installed, its grant is removed and the follower
    # applies that (which it can: no lock is held across the read).
    store.set_roles(user(1), area(1), [])
    assert decider.sync() == 1
    feed.gate.set()
    thread.join(WAIT)
    assert answers == [False]  # installed with the change applied
    assert not decider.decide(user(1), area(1), "invoice", "pay")
    assert decider.area_links(area(1)) == {}


def test_callers_of_one_cold_area_share_one_read(db: peewee.Database, store: Store) -> None:
    store.set_roles(user(1), area(1), ["perm:invoices"])
    feed = HeldReads(PeeweePolicyFeed(db))
    decider = _decider(feed)
    feed.hold()
    threads = [
        _in_thread(lambda: decider.decide(user(1), area(1), "invoice", "pay")) for _ in range(8)
    ]
    assert feed.read_done.wait(WAIT)
    feed.gate.set()
    for thread, answers in threads:
        thread.join(WAIT)
        assert answers == [True]
    assert feed.area_reads == 1 and decider.area_loads == 1


def test_a_change_applied_during_the_warm_up_is_not_lost(db: peewee.Database, store: Store) -> None:
    store.bulk([(user(n), "perm:invoices", area(n)) for n in range(30)])
    feed = HeldReads(PeeweePolicyFeed(db))
    decider = _decider(feed)
    feed.hold()
    thread, loaded = _in_thread(lambda: decider.warm_up(1000, page=10))
    assert feed.read_done.wait(WAIT)  # the first page is read, not installed
    assert decider.areas_held == 0
    first = min(area(n) for n in range(30))
    owner = next(user(n) for n in range(30) if area(n) == first)
    store.set_roles(owner, first, [])
    store.set_roles(owner, first, ["perm:domains"])
    assert decider.sync() == 2
    feed.gate.set()
    thread.join(WAIT)
    assert loaded == [30] and decider.areas_held == 30
    assert decider.area_links(first) == {owner: frozenset({"perm:domains"})}
    assert not decider.decide(owner, first, "invoice", "pay")
    assert decider.area_loads == 0


# -- the warm-up ----------------------------------------------------------------------------


def _population(store: Store, seed: int) -> list[str]:
    """Random areas: owners, delegates with 1-4 permissions, shared users, custom roles,
    one area larger than a warm-up page, and a g line in a domain that is not an area."""
    rng = random.Random(seed)
    lines: list[tuple[str, str, str]] = []
    areas = [area(n) for n in range(120)]
    for a in areas:
        lines.append((user(rng.randrange(400)), ROLE_OWNER, a))
        for _ in range(rng.randrange(5)):
            roles = [PERM_ALL] if rng.random() < 0.1 else rng.sample(PERMS, rng.randint(1, 4))
            who = user(rng.randrange(400))
            if rng.random() < 0.1:
                who = "role:team_a"
                lines.append((user(rng.randrange(400)), "role:team_a", a))
            lines.extend((who, r, a) for r in roles)
    big = areas[7]
    lines.extend((user(1000 + k), "perm:invoices", big) for k in range(45))
    lines.append((user(1), ROLE_OWNER, "tenant:" + _id("t", 1)))
    store.bulk(sorted(set(lines)))
    return areas


@pytest.mark.parametrize("page", [16, 20_000])
def test_the_warm_up_loads_exactly_what_lazy_loading_would(
    db: peewee.Database, store: Store, page: int
) -> None:
    areas = _population(store, seed=page)
    store.set_roles(user(3), areas[3], ["perm:domains"])  # the change log is not empty
    warm = _decider(PeeweePolicyFeed(db))
    lazy = _decider(PeeweePolicyFeed(db))
    assert warm.warm_up(10_000, page=page) == len(areas)
    assert warm.areas_held == len(areas) and warm.area_loads == 0
    rng = random.Random(page)
    actions = [*BUNDLE.catalogue.all_actions(), ("server", "reboot")]
    for a in areas:
        assert warm.area_links(a) == lazy.area_links(a), a
        subjects = [*warm.area_links(a), user(rng.randrange(400))]
        for _ in range(8):
            sub, (obj, act) = rng.choice(subjects), rng.choice(actions)
            assert warm.decide(sub, a, obj, act) == lazy.decide(sub, a, obj, act)
    assert warm.area_loads == 0  # every answer came from the warm-up
    assert lazy.area_loads == len(areas)


def test_the_warm_up_stops_at_the_bound(db: peewee.Database, store: Store) -> None:
    _population(store, seed=3)
    decider = _decider(PeeweePolicyFeed(db), max_areas=50)
    assert decider.warm_up(10_000, page=16) == 50
    assert decider.areas_held == 50
    assert decider.warm_up(10_000, page=16) == 0  # full: nothing more, nothing evicted
    assert decider.area_evictions == 0
    small = _decider(PeeweePolicyFeed(db))
    assert small.warm_up(20, page=16) == 20


def test_start_warm_up_reports_until_done(db: peewee.Database, store: Store) -> None:
    store.bulk([(user(n), ROLE_OWNER, area(n)) for n in range(20)])
    feed = HeldReads(PeeweePolicyFeed(db))
    decider = _decider(feed)
    assert not decider.warming
    feed.hold()
    stop = decider.start_warm_up(1000)
    try:
        assert decider.warming
        assert feed.read_done.wait(WAIT)
        assert decider.warming
        feed.gate.set()
        deadline = threading.Event()
        for _ in range(int(WAIT / 0.01)):
            if not decider.warming:
                break
            deadline.wait(0.01)
        assert not decider.warming and decider.warmed_areas == 20
    finally:
        feed.gate.set()
        stop()
