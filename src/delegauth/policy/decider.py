"""Decisions: the live Casbin policy, loaded per Client Area on demand and kept current
from the change log.

Each process holds the areas it has been asked about. A background follower reads
the change log (entries newer than the last one applied) and applies each entry,
the full role set of one subject in one domain, to the areas it holds. (An entry of an
import holds several subjects of one domain: the feed gives them as changes of one version,
all applied.) An area is
loaded with the change-log version current before its rules were read, and skips
entries up to that version, so a load racing the follower never goes back in time.

The areas held are bounded (``max_areas``, ``max_bytes``): past the bound, the least
recently used are evicted (CLOCK: a hit sets a bit, the sweep gives a marked area a second
chance). An evicted area is forgotten, not followed, and comes back current from the
database on its next use. No database read happens under the decision lock: changes the
follower applies while an area is being read are kept aside and applied to it once it is in.

A warm-up (warm_up) reads every g line in domain order, in pages, and installs the areas
without a read per area, so that a restarted process answers at warm speed.

Grants that end: a g line may carry its grant's end (policies/model.conf). Each area keeps
its subjects' ends and the earliest one; a decision compares that with the clock, and from
the instant on the area is used without the ended subjects' links (as Casbin's link
condition decides). No sweep and no change-log entry is needed for it, so every worker and
replica denies at the same instant. A later change (an extension) brings the links back.

Fail closed: if the change log has not been read within ``max_staleness`` seconds,
or the store cannot be reached, decide() raises Unavailable instead of answering.

Access-token revocations ride the same log (entries of domain.revocations.REVOKED_DOMAIN):
the follower adds each to ``revoked``, which the bearer checks of this process consult, so
a token revoked through any worker is refused by this one after its next round. The first
round reads every revocation with the log's head in one snapshot; after that the log is
read entry by entry, never skipped.

Consistency tokens (wait_for): every read of the change log is a numbered round. A
caller waiting for a version waits on one condition that each finished round signals;
it never reads the change log itself. When no round is under way it asks the follower
for one (a single wake, shared by every waiter), or, in a process without a follower,
one waiter runs the round for all. A round that began after the caller arrived has
read the whole log as it stood then: if the version is still not applied, no write
has produced it, and the caller is told so at once (VersionAhead).
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol

from delegauth.domain.ids import is_casbin_name, until_from_casbin
from delegauth.domain.revocations import REVOKED_DOMAIN, RevokedTokens
from delegauth.errors import Unavailable, VersionAhead
from delegauth.policy.bundle import PolicyBundle
from delegauth.policy.casbin_engine import CasbinEngine, build_enforcer, parse_model
from delegauth.policy.index import (
    ON_RESOURCES,
    ActionTable,
    closure,
    hierarchy_links,
    honours_resource_ids,
    supports_fast_path,
)
from delegauth.policy.mapping import Question, resource_value

__all__ = ["AreaChange", "Decider", "PolicyFeed", "end_seconds"]

log = logging.getLogger(__name__)

_EMPTY: frozenset[tuple[str, ...] | str] = frozenset()
_MAX_EMPTY_AREAS = 100_000
# What one area costs in memory, estimated for the bytes bound: the area and its entry in
# the table, and each subject with its links and its memo of answers (measured by
# bench/decisions.py: RSS growth over every area of 1M grants, about 4 subjects per area).
AREA_BYTES = 420
# How long a caller waits for another's read of the same area before reading it itself
# (every database call is bounded well below this).
_READ_WAIT_S = 10.0
SUBJECT_BYTES = 190


@dataclass(frozen=True)
class AreaChange:
    version: int
    domain: str
    subject: str
    roles: tuple[str, ...]
    valid_until: str = ""  # the end on the subject's g lines ("" or "_": none)


def _expiry(change: AreaChange) -> int:
    """A revocation entry's token expiry (unix seconds); unreadable: never forgotten."""
    try:
        return int(change.roles[0])
    except (IndexError, ValueError):
        return 1 << 62


class PolicyFeed(Protocol):
    """Where the g lines and their change log live (storage implements it).

    A feed may also have ``wait_for_change(timeout)``, which blocks until a change is
    announced, ``timeout`` passes or ``wake()`` is called; the follower then waits on it;
    and ``revocations()``: the log's head and the revoked tokens up to it, in one snapshot.
    """

    def domain_links(self, domain: str) -> Sequence[Sequence[str]]:
        """The domain's g lines: (subject, role) or (subject, role, end)."""
        ...

    def latest_version(self) -> int: ...
    def changes_since(self, version: int, limit: int) -> list[AreaChange]: ...


_NEVER = math.inf
_NO_ENDS: dict[str, float] = {}


def end_seconds(text: str) -> float:
    """A g line's end as epoch seconds (inf: none). One that does not read has passed."""
    try:
        when = until_from_casbin(text)
    except ValueError:
        return -_NEVER  # fail closed: a rule that cannot be read must not allow
    return _NEVER if when is None else when.replace(tzinfo=UTC).timestamp()


class _Area:
    """One domain's links (subject -> roles) and, per subject, the (obj, act) it may do."""

    __slots__ = ("links", "allowed", "loaded_version", "engine", "used", "size", "ends", "next_end")

    def __init__(
        self,
        links: dict[str, frozenset[str]],
        loaded_version: int,
        ends: dict[str, float] = _NO_ENDS,
    ) -> None:
        self.links = links
        # (obj, act), and (obj, act, resource id) for grants on single resources
        self.allowed: dict[str, frozenset[tuple[str, ...] | str]] = {}
        self.loaded_version = loaded_version
        self.engine: CasbinEngine | None = None
        self.used = False  # set by each use; the eviction sweep clears it
        self.size = AREA_BYTES + SUBJECT_BYTES * len(links)
        # The subjects whose links end (epoch seconds), and the earliest end: a decision
        # compares it with the clock (the whole cost of ends for areas without one).
        self.ends = ends
        self.next_end = min(ends.values()) if ends else _NEVER


class _Loading:
    """Changes applied while an area is read from the database, kept for when it is in."""

    __slots__ = ("readers", "changes", "done")

    def __init__(self) -> None:
        self.readers = 0  # the first reads; the others wait for it
        self.changes: list[AreaChange] = []
        self.done = threading.Event()


class _Policy:
    """One installed policy and the areas loaded under it, swapped as one reference."""

    __slots__ = (
        "bundle",
        "fast",
        "table",
        "areas",
        "role_sets",
        "empty_areas",
        "engine",
        "held_bytes",
        "levels",
    )

    def __init__(self, bundle: PolicyBundle, fast: bool, table: ActionTable, levels: int) -> None:
        self.bundle = bundle
        self.fast = fast
        self.table = table
        self.levels = levels  # how many links up Casbin follows (index.hierarchy_links)
        self.engine: CasbinEngine | None = None  # a model without domains: one engine
        self.areas: OrderedDict[str, _Area] = OrderedDict()  # oldest first: the sweep's order
        self.role_sets: dict[frozenset[str], frozenset[str]] = {}
        self.empty_areas = 0
        self.held_bytes = 0  # estimated: the sum of the areas' sizes

    def shared(self, roles: frozenset[str]) -> frozenset[str]:
        """One frozenset per distinct role set, shared by every subject that holds it."""
        return self.role_sets.setdefault(roles, roles)


class Decider:
    def __init__(
        self,
        bundle: PolicyBundle,
        feed: PolicyFeed,
        *,
        max_staleness: float = 5.0,
        wait_timeout: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_areas: int = 0,
        max_bytes: int = 0,
        revoked: RevokedTokens | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``max_areas`` and ``max_bytes`` bound the areas held (0: no bound of that kind).
        ``revoked`` is kept current with the access-token revocations in the change log;
        ``clock`` (epoch seconds) is what grants' ends are compared with."""
        self._feed = feed
        self._revoked = revoked
        self._revocations_read = False
        self._clock = clock
        self._max_areas = max_areas if max_areas > 0 else 1 << 62
        self._max_bytes = max_bytes if max_bytes > 0 else 1 << 62
        self._loading: dict[str, _Loading] = {}  # areas being read, by domain
        # While a warm-up runs: changes applied to areas not held yet, by domain.
        self._warming: dict[str, list[AreaChange]] | None = None
        self._warm_pending = False
        self._warmed_areas = 0
        self._loads = 0
        self._evictions = 0
        self._max_staleness = max_staleness
        self._wait_timeout = wait_timeout
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._rounds = threading.Condition(self._lock)  # notified when a round ends
        self._started = 0  # rounds begun, numbered from 1
        self._fresh = 0  # the highest-numbered round that completed
        self._running = 0  # rounds under way
        self._wanted = False  # a waiter asked for a round that has not begun yet
        self._followers = 0
        self._wake = threading.Event()  # for feeds without notifications
        self._waiting = 0
        self._reads = 0
        self.applied_version = 0
        self._last_sync = float("-inf")
        self.install(bundle)

    # -- policy ----------------------------------------------------------------------

    def install(self, bundle: PolicyBundle) -> None:
        """Swap in a policy; areas are reloaded lazily under it."""
        model = parse_model(bundle.model_text)
        # The fast path builds no enforcer; build one anyway so that a p line the model cannot
        # hold, or one with the wrong number of fields, fails here instead of being ignored.
        build_enforcer(bundle, ())
        sections = {
            sec: {key: ast.value for key, ast in model.model[sec].items()} for sec in model.model
        }
        # The index reads grants from the database only: identities listed in the policy
        # files (their g lines) are Casbin's to decide.
        fast = supports_fast_path(sections) and not bundle.g_lines
        table = ActionTable(bundle.p_lines if fast else (), scoped=honours_resource_ids(sections))
        policy = _Policy(bundle, fast, table, hierarchy_links(sections))
        with self._lock:
            # One assignment: a decision in flight sees the old policy or the new, never a mix.
            self._policy = policy

    @property
    def bundle(self) -> PolicyBundle:
        return self._policy.bundle

    @property
    def fast(self) -> bool:
        return self._policy.fast

    @property
    def resource_scoped(self) -> bool:
        """Whether grants on single resources (roles perm:<name>@<id>) count in decisions."""
        return self._policy.table.scoped

    @property
    def policy_hash(self) -> str:
        """The hash of the policy files in force (not the change log's version)."""
        return self._policy.bundle.version

    @property
    def areas_held(self) -> int:
        """How many areas this process holds in memory under the current policy.

        Kept public on purpose for bench/decisions.py and operators' diagnostics.
        """
        return len(self._policy.areas)

    @property
    def held_bytes(self) -> int:
        """The estimated memory of the areas held (what ``max_bytes`` bounds)."""
        return self._policy.held_bytes

    @property
    def area_loads(self) -> int:
        """How many areas were read one by one on a miss (for the bench and diagnostics)."""
        return self._loads

    @property
    def area_evictions(self) -> int:
        """How many areas the bound has evicted (for the bench and diagnostics)."""
        return self._evictions

    # -- deciding --------------------------------------------------------------------

    def decide(self, subject: str, domain: str, obj: str, act: str, resource_id: str = "") -> bool:
        """Whether ``subject`` may do ``act`` on ``obj`` (the resource ``resource_id``: grants
        on single resources count there) in ``domain``. Raises Unavailable."""
        if self._monotonic() - self._last_sync > self._max_staleness:
            raise Unavailable("the policy is not current")
        # Only namespaced user ids are subjects: a role name as subject would match itself.
        # (Any other malformed subject is simply absent from the area's links.)
        if not subject.startswith("user:"):
            return False
        policy = self._policy
        area = policy.areas.get(domain)
        if area is None:
            if not domain.startswith("area:") or not is_casbin_name(domain):
                return False
            area = self._load(policy, domain)
        else:
            area.used = True
        if area.next_end < _NEVER and area.next_end <= self._clock():  # no end: no clock read
            area = self._lapse(policy, domain, area)
        if not policy.fast:
            engine = area.engine
            if engine is None:
                engine = area.engine = self._engine_for(policy, domain, area)
            return engine.enforce(subject, domain, resource_value(obj, resource_id), act)
        allowed = area.allowed.get(subject)
        if allowed is None:
            roles = area.links.get(subject)
            if roles is None and subject not in policy.table.subjects:
                return False  # no g line here and no p line naming the subject itself
            allowed = area.allowed[subject] = policy.table.allowed(
                closure(subject, area.links, policy.levels), domain
            )
        return (obj, act) in allowed or (
            ON_RESOURCES in allowed and (obj, act, resource_id) in allowed
        )

    def decide_all(
        self, asked: Sequence[tuple[str, str, str, str, str]], until: bool | None = None
    ) -> list[bool]:
        """``decide(*request)`` for each request in turn, stopping after the first answer
        that is ``until``: the same answers, at less cost each (AuthZEN batches).

        The staleness check and the policy are read once for the run. A request about an
        area already held, without ends, is answered here from the area's memo (or is a
        deny when the subject is neither linked there nor named by a p line, as decide()
        finds); every other one goes to decide(), which also checks staleness again.
        Raises Unavailable."""
        if self._monotonic() - self._last_sync > self._max_staleness:
            raise Unavailable("the policy is not current")
        policy = self._policy
        areas = policy.areas if policy.fast else {}
        named = policy.table.subjects
        answers: list[bool] = []
        for subject, domain, obj, act, resource_id in asked:
            area = areas.get(domain)
            if area is None or area.next_end != _NEVER or not subject.startswith("user:"):
                answer = self.decide(subject, domain, obj, act, resource_id)
            else:
                area.used = True
                allowed = area.allowed.get(subject)
                if allowed is not None:
                    answer = (obj, act) in allowed or (
                        ON_RESOURCES in allowed and (obj, act, resource_id) in allowed
                    )
                elif subject in area.links or subject in named:
                    answer = self.decide(subject, domain, obj, act, resource_id)  # memoizes
                else:
                    answer = False
            answers.append(answer)
            if answer is until:
                break
        return answers

    def decide_question(self, question: Question) -> bool:
        """Decide an AuthZEN request as the policy's mapping put it (policy.mapping).

        The shipped delegation model answers from the index (decide); any other model is
        decided by Casbin itself, with the request's attributes. Raises Unavailable."""
        policy = self._policy
        if question.domain is not None and policy.fast:
            return self.decide(
                question.subject,
                question.domain,
                question.obj,
                question.act,
                question.resource_id or "",
            )
        engine = self.engine_for(question.domain)
        return False if engine is None else engine.enforce(*question.values)

    def engine_for(self, domain: str | None) -> CasbinEngine | None:
        """The Casbin engine deciding in ``domain`` (None: a model without domains), or
        None when no decision there could allow. Raises Unavailable."""
        if self._monotonic() - self._last_sync > self._max_staleness:
            raise Unavailable("the policy is not current")
        policy = self._policy
        if domain is None:
            engine = policy.engine
            if engine is None:
                with self._lock:
                    engine = policy.engine
                    if engine is None:
                        engine = policy.engine = CasbinEngine(policy.bundle, ())
            return engine
        area = policy.areas.get(domain)
        if area is None:
            if not domain.startswith("area:") or not is_casbin_name(domain):
                return None
            area = self._load(policy, domain)
        else:
            area.used = True
        if area.next_end < _NEVER and area.next_end <= self._clock():  # no end: no clock read
            area = self._lapse(policy, domain, area)
        engine = area.engine
        if engine is None:
            engine = area.engine = self._engine_for(policy, domain, area)
        return engine

    def area_links(self, domain: str) -> dict[str, frozenset[str]]:
        """The subjects of a domain and their roles (g lines), as this process holds them."""
        policy = self._policy
        area = policy.areas.get(domain)
        if area is None:
            if not domain.startswith("area:") or not is_casbin_name(domain):
                return {}
            area = self._load(policy, domain)
        else:
            area.used = True
        if area.next_end < _NEVER and area.next_end <= self._clock():  # no end: no clock read
            area = self._lapse(policy, domain, area)
        return dict(area.links)

    def _lapse(self, policy: _Policy, domain: str, area: _Area) -> _Area:
        """The area without the links of subjects whose end has come; held in its place."""
        now = self._clock()
        ended = {s for s, end in area.ends.items() if end <= now}
        links = {s: r for s, r in area.links.items() if s not in ended}
        ends = {s: e for s, e in area.ends.items() if s not in ended}
        new = _Area(links, area.loaded_version, ends)
        new.used = area.used
        with self._lock:
            if policy.areas.get(domain) is area:
                if area.links and not links:
                    policy.empty_areas += 1
                policy.held_bytes += new.size - area.size
                policy.areas[domain] = new  # keeps its place in the sweep's order
        return new

    @staticmethod
    def _engine_for(policy: _Policy, domain: str, area: _Area) -> CasbinEngine:
        # Ended links are gone from area.links (_lapse), and the area is rebuilt at the
        # next end: the engine needs no ends of its own.
        rules = [("g", sub, role, domain) for sub, roles in area.links.items() for role in roles]
        return CasbinEngine(policy.bundle, rules)

    def _load(self, policy: _Policy, domain: str) -> _Area:
        # The database is read outside the lock, so the follower (and other loads) go on
        # meanwhile; what the follower applies to this domain in that time is kept aside.
        with self._lock:
            area = policy.areas.get(domain)
            if area is not None:
                return area
            loading = self._loading.get(domain)
            if loading is None:
                loading = self._loading[domain] = _Loading()
            first = not loading.readers
            loading.readers += 1
        try:
            if not first:
                # Another caller is reading this area: one read serves every caller.
                loading.done.wait(_READ_WAIT_S)
                with self._lock:
                    area = policy.areas.get(domain)
                    if area is not None:
                        return area
            try:
                version, pairs = self._read_area(domain)
            finally:
                loading.done.set()
            with self._lock:
                area = policy.areas.get(domain)
                if area is not None:  # another caller installed it meanwhile
                    return area
                self._loads += 1
                area = self._install_area(policy, domain, pairs, version, loading.changes)
                self._evict(policy)
                return area
        finally:
            with self._lock:
                loading.readers -= 1
                if not loading.readers and self._loading.get(domain) is loading:
                    del self._loading[domain]

    def _read_area(self, domain: str) -> tuple[int, Sequence[Sequence[str]]]:
        """The change-log version the area is read at, and its g lines (subject, role)."""
        try:
            read = getattr(self._feed, "area", None)
            if read is not None:
                with self._lock:
                    self._reads += 1  # it reads the change log's head
                version, pairs = read(domain)  # one statement, one snapshot
                return int(version), list(pairs)
            version = self._latest_version()  # read first: the lines are at least as new
            return version, self._feed.domain_links(domain)
        except Exception as ex:  # noqa: BLE001 - storage failure: fail closed
            raise Unavailable("the policy store is unavailable") from ex

    def _install_area(
        self,
        policy: _Policy,
        domain: str,
        pairs: Iterable[Sequence[str]],
        version: int,
        meanwhile: Iterable[AreaChange],
    ) -> _Area:
        """Hold a domain read at ``version``, with the changes applied since (under the lock).

        ``pairs`` are (subject, role) or (subject, role, end)."""
        links: dict[str, set[str]] = {}
        ends: dict[str, float] = {}
        for line in pairs:
            sub = line[0]
            links.setdefault(sub, set()).add(line[1])
            if len(line) > 2 and line[2] not in ("", "_"):
                ends[sub] = min(ends.get(sub, _NEVER), end_seconds(line[2]))
        area = _Area(
            {s: policy.shared(frozenset(r)) for s, r in links.items()}, version, ends or _NO_ENDS
        )
        for change in meanwhile:
            if change.version > area.loaded_version:
                area = self._changed(policy, area, change)
        if not area.links:
            policy.empty_areas += 1
            if policy.empty_areas > _MAX_EMPTY_AREAS:
                policy.areas = OrderedDict((d, a) for d, a in policy.areas.items() if a.links)
                policy.held_bytes = sum(a.size for a in policy.areas.values())
                policy.empty_areas = 0
        policy.areas[domain] = area
        policy.held_bytes += area.size
        return area

    def _evict(self, policy: _Policy) -> None:
        """Evict areas, least recently used first, until the bound holds (under the lock)."""
        areas = policy.areas
        while len(areas) > self._max_areas or (
            policy.held_bytes > self._max_bytes and len(areas) > 1
        ):
            domain, area = areas.popitem(last=False)
            if area.used:  # used since the sweep last passed: a second chance
                area.used = False
                areas[domain] = area
                continue
            policy.held_bytes -= area.size
            if not area.links:
                policy.empty_areas = max(0, policy.empty_areas - 1)
            self._evictions += 1

    # -- warming up ------------------------------------------------------------------

    def warm_up(self, max_areas: int, page: int = 20_000) -> int:
        """Load areas in bulk, in pages of ``page`` g lines, up to ``max_areas`` and the
        bound; return how many were loaded. Raises Unavailable.

        Needs a feed with ``links_after(domain, limit)``; without one, nothing is loaded.
        """
        links_after = getattr(self._feed, "links_after", None)
        if links_after is None or max_areas <= 0:
            return 0
        with self._lock:
            self._warming = {}
        loaded = 0
        try:
            try:
                version = self._latest_version()  # every page is read at this or later
            except Exception as ex:  # noqa: BLE001 - storage failure: fail closed
                raise Unavailable("the policy store is unavailable") from ex
            after = ""
            while loaded < max_areas:
                try:
                    rows = links_after(after, page)
                    groups: dict[str, list[Sequence[str]]] = {}
                    for row in rows:
                        groups.setdefault(row[0], []).append(row[1:])
                    if len(rows) >= page:
                        # The last domain may go on in the next page: take it from there,
                        # unless it fills the page alone, then read it whole now.
                        last = rows[-1][0]
                        if len(groups) > 1:
                            del groups[last]
                            after = next(reversed(groups))
                        else:
                            groups[last] = list(self._feed.domain_links(last))
                            after = last
                    else:
                        after = ""
                except Exception as ex:  # noqa: BLE001 - storage failure: fail closed
                    raise Unavailable("the policy store is unavailable") from ex
                added, full = self._install_page(groups, version, max_areas - loaded)
                loaded += added
                self._warmed_areas += added
                if full or not after:
                    break
        finally:
            with self._lock:
                self._warming = None
            release = getattr(self._feed, "release_connection", None)
            if release is not None:
                release()  # this thread's connection: the warm-up thread ends
        return loaded

    def _install_page(
        self, groups: dict[str, list[Sequence[str]]], version: int, room: int
    ) -> tuple[int, bool]:
        """Install a page of areas not held yet; (how many, whether the bound was reached)."""
        added = 0
        with self._lock:
            policy = self._policy
            warming = self._warming if self._warming is not None else {}
            for domain, pairs in groups.items():
                if len(policy.areas) >= self._max_areas or policy.held_bytes >= self._max_bytes:
                    return added, True
                if added >= room:
                    return added, True
                if domain in policy.areas or domain in self._loading:
                    continue  # loaded on demand meanwhile, at least as new
                if not domain.startswith("area:") or not is_casbin_name(domain):
                    continue  # never asked for: decide() denies such domains unread
                self._install_area(policy, domain, pairs, version, warming.pop(domain, ()))
                added += 1
        return added, False

    @property
    def warming(self) -> bool:
        """True from start_warm_up() until its warm-up is over (readiness waits for it)."""
        return self._warm_pending

    @property
    def warmed_areas(self) -> int:
        """How many areas warm-ups have loaded."""
        return self._warmed_areas

    def start_warm_up(self, max_areas: int, retry_s: float = 1.0) -> Callable[[], None]:
        """Warm up in a daemon thread (``warming`` is True from now until it is done),
        trying again every ``retry_s`` while the store is unavailable; return a stopper."""
        stop = threading.Event()
        self._warm_pending = True

        def run() -> None:
            try:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        loaded = self.warm_up(max_areas)
                    except Unavailable:
                        log.warning("warm-up failed; trying again", exc_info=True)
                        stop.wait(retry_s)
                        continue
                    # What the warm-up loaded lives as long as it is held: keep the cyclic
                    # collector from scanning it again and again (a full pass over millions
                    # of objects halved the first decisions' speed). Reference counting still
                    # frees evicted areas, which hold no cycles.
                    gc.freeze()
                    took = time.monotonic() - started
                    log.info("warm-up: %d areas loaded in %.1f s", loaded, took)
                    return
            finally:
                self._warm_pending = False

        thread = threading.Thread(target=run, name="policy-warm-up", daemon=True)
        thread.start()

        def _stop() -> None:
            stop.set()
            thread.join(timeout=5)

        return _stop

    # -- following the change log ----------------------------------------------------

    def sync(self, batch: int = 1000) -> int:
        """Apply change-log entries newer than the last applied; return how many."""
        try:
            return self._sync(batch)
        except Exception as ex:  # noqa: BLE001 - storage failure: decide() fails closed
            raise Unavailable("the policy change log cannot be read") from ex

    def _sync(self, batch: int) -> int:
        with self._lock:
            self._started += 1
            number = self._started
            self._running += 1
            self._wanted = False  # this round serves every waiter that asked before it
        done = False
        try:
            applied = self._read_and_apply(batch)
            done = True
            return applied
        finally:
            with self._lock:
                self._running -= 1
                if done:
                    self._fresh = max(self._fresh, number)
                self._rounds.notify_all()

    def _read_and_apply(self, batch: int) -> int:
        applied = 0
        revoked = self._revoked
        with self._lock:
            # Nothing is loaded or being loaded, so no area needs the old entries.
            quiet = not self._policy.areas and not self._loading and self._warming is None
            if revoked is not None and not self._revocations_read:
                # The first round: every revocation up to the head, in one snapshot; the
                # entries after it follow. Without that snapshot, the whole log is read.
                snapshot = getattr(self._feed, "revocations", None)
                if snapshot is not None:
                    self._reads += 1
                    head, rows = snapshot()
                    revoked.load(rows)
                    if quiet:
                        self.applied_version = max(self.applied_version, head)
                self._revocations_read = True
            elif quiet and revoked is None:
                # Skip to the end (with revocations to follow, never: they would be lost).
                self.applied_version = max(self.applied_version, self._latest_version())
        while True:
            changes = self._changes_since(self.applied_version, batch)
            with self._lock:
                taking = -1  # the version this round is applying (one entry may hold several)
                for change in changes:
                    # A slower round running beside this one may hold older entries:
                    # never go back to them.
                    if change.version > self.applied_version or change.version == taking:
                        if change.domain == REVOKED_DOMAIN:
                            if revoked is not None:
                                revoked.add(change.subject, _expiry(change))
                        else:
                            self._apply(change)
                        self.applied_version = taking = change.version
            applied += len(changes)
            if len(changes) < batch:
                break
        self._last_sync = self._monotonic()
        if revoked is not None:
            revoked.mark_current()
        return applied

    def _latest_version(self) -> int:
        with self._lock:
            self._reads += 1
        return self._feed.latest_version()

    def _changes_since(self, version: int, limit: int) -> list[AreaChange]:
        with self._lock:
            self._reads += 1
        return self._feed.changes_since(version, limit)

    @property
    def changelog_reads(self) -> int:
        """How many times this process has read the change log (its head or its entries).

        Kept public on purpose for tests and bench/consistency.py: the database work of
        waiting callers.
        """
        return self._reads

    @property
    def waiting(self) -> int:
        """How many callers are waiting in wait_for() right now (for tests and diagnostics)."""
        return self._waiting

    def _apply(self, change: AreaChange) -> None:
        policy = self._policy
        # A read of this area under way, or a warm-up, installs what it read later: it
        # applies this change then (even if the area is held now, it may be evicted first).
        loading = self._loading.get(change.domain)
        if loading is not None:
            loading.changes.append(change)
        if self._warming is not None:
            self._warming.setdefault(change.domain, []).append(change)
        area = policy.areas.get(change.domain)
        if area is None or change.version <= area.loaded_version:
            return
        if not area.links:
            policy.empty_areas = max(0, policy.empty_areas - 1)
        new = self._changed(policy, area, change)
        if not new.links:
            policy.empty_areas += 1
        policy.held_bytes += new.size - area.size
        policy.areas[change.domain] = new  # keeps its place in the sweep's order

    @staticmethod
    def _changed(policy: _Policy, area: _Area, change: AreaChange) -> _Area:
        """The area with ``change`` (a subject's full role set) applied."""
        links = dict(area.links)
        ends = area.ends
        if change.subject in ends or change.valid_until not in ("", "_"):
            ends = {s: e for s, e in ends.items() if s != change.subject}
        if change.roles:
            links[change.subject] = policy.shared(frozenset(change.roles))
            if change.valid_until not in ("", "_"):
                ends[change.subject] = end_seconds(change.valid_until)
        else:
            links.pop(change.subject, None)
        new = _Area(links, area.loaded_version, ends or _NO_ENDS)
        new.used = area.used
        # Other subjects keep their answers unless the change touched a role they inherit.
        if policy.fast and not any(change.subject in roles for roles in links.values()):
            new.allowed = {s: a for s, a in area.allowed.items() if s != change.subject}
        return new

    def wait_for(self, version: int, timeout: float | None = None) -> None:
        """Return once the change log is applied up to ``version`` (a caller's consistency
        token, from its own write).

        Raises VersionAhead if a round of the change log that began after the call found
        no such version, and Unavailable if none is applied within ``timeout`` seconds
        (default: ``wait_timeout``).
        """
        if self.applied_version >= version:
            return
        # A real clock: this bounds a real wait on a Condition, whatever clock decides staleness.
        deadline = time.monotonic() + (self._wait_timeout if timeout is None else timeout)
        with self._lock:
            arrived = self._started  # a round numbered above this began after the call
            self._waiting += 1
        try:
            while self._await_round(version, arrived, deadline):
                # No follower in this process: this caller runs the round for every waiter.
                self.sync()
        finally:
            with self._lock:
                self._waiting -= 1

    def _await_round(self, version: int, arrived: int, deadline: float) -> bool:
        """Wait until ``version`` is applied (False) or this caller must run a round (True)."""
        with self._rounds:
            while self.applied_version < version:
                if self._fresh > arrived:
                    raise VersionAhead(
                        f"context.policy_version {version} is ahead of the change log "
                        f"(at {self.applied_version}): no write has produced it",
                        field="context",
                    )
                if not self._running and not self._wanted:
                    # Later waiters see the request and wait for the same round.
                    self._wanted = True
                    if not self._followers:
                        return True
                    self._wake_follower()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(f"this replica has not reached policy change {version} yet")
                self._rounds.wait(left)
        return False

    def _wake_follower(self) -> None:
        self._wake.set()
        wake = getattr(self._feed, "wake", None)
        if wake is not None:
            wake()

    @property
    def sync_age(self) -> float:
        """Seconds since the change log was last read."""
        return self._monotonic() - self._last_sync

    def run_follower(self, stop: threading.Event, interval: float) -> None:
        """Follow the change log until ``stop`` is set (run in a daemon thread): woken by
        the feed's notifications where it has them, polling every ``interval`` otherwise."""
        wait = getattr(self._feed, "wait_for_change", None)
        with self._lock:
            self._followers += 1
        try:
            while not stop.is_set():
                try:
                    self.sync()
                except Exception:  # noqa: BLE001 - keep following; staleness makes decide() fail closed
                    log.warning("change log sync failed", exc_info=True)
                    stop.wait(interval)  # a failing store is not retried faster for waiters
                    continue
                with self._lock:
                    if self._wanted:
                        continue  # a waiter asked during that round: one more, at once
                if wait is None:
                    self._wake.wait(interval)
                else:
                    wait(interval)
                self._wake.clear()
        finally:
            with self._lock:
                self._followers -= 1

    def start_follower(self, interval: float) -> Callable[[], None]:
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run_follower, args=(stop, interval), name="policy-follower", daemon=True
        )
        thread.start()

        def _stop() -> None:
            stop.set()
            self._wake_follower()
            thread.join(timeout=5)

        return _stop
