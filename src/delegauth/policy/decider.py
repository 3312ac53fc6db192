"""Decisions: the live Casbin policy, loaded per Client Area on demand and kept current
from the change log.

Each process holds the areas it has been asked about. A background follower reads
the change log (entries newer than the last one applied) and applies each entry,
the full role set of one subject in one domain, to the areas it holds. An area is
loaded with the change-log version current before its rules were read, and skips
entries up to that version, so a load racing the follower never goes back in time.

Fail closed: if the change log has not been read within ``max_staleness`` seconds,
or the store cannot be reached, decide() raises Unavailable instead of answering.

Consistency tokens (wait_for): every read of the change log is a numbered round. A
caller waiting for a version waits on one condition that each finished round signals;
it never reads the change log itself. When no round is under way it asks the follower
for one (a single wake, shared by every waiter), or, in a process without a follower,
one waiter runs the round for all. A round that began after the caller arrived has
read the whole log as it stood then: if the version is still not applied, no write
has produced it, and the caller is told so at once (VersionAhead).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from delegauth.domain.ids import is_casbin_name
from delegauth.errors import Unavailable, VersionAhead
from delegauth.policy.bundle import PolicyBundle
from delegauth.policy.casbin_engine import CasbinEngine, build_enforcer, parse_model
from delegauth.policy.index import ActionTable, closure, supports_fast_path

__all__ = ["AreaChange", "Decider", "PolicyFeed"]

log = logging.getLogger(__name__)

_EMPTY: frozenset[tuple[str, str]] = frozenset()
_MAX_EMPTY_AREAS = 100_000


@dataclass(frozen=True)
class AreaChange:
    version: int
    domain: str
    subject: str
    roles: tuple[str, ...]


class PolicyFeed(Protocol):
    """Where the g lines and their change log live (storage implements it).

    A feed may also have ``wait_for_change(timeout)``, which blocks until a change is
    announced, ``timeout`` passes or ``wake()`` is called; the follower then waits on it.
    """

    def domain_links(self, domain: str) -> list[tuple[str, str]]: ...
    def latest_version(self) -> int: ...
    def changes_since(self, version: int, limit: int) -> list[AreaChange]: ...


class _Area:
    """One domain's links (subject -> roles) and, per subject, the (obj, act) it may do."""

    __slots__ = ("links", "allowed", "loaded_version", "engine")

    def __init__(self, links: dict[str, frozenset[str]], loaded_version: int) -> None:
        self.links = links
        self.allowed: dict[str, frozenset[tuple[str, str]]] = {}
        self.loaded_version = loaded_version
        self.engine: CasbinEngine | None = None


class _Policy:
    """One installed policy and the areas loaded under it, swapped as one reference."""

    __slots__ = ("bundle", "fast", "table", "areas", "role_sets", "empty_areas")

    def __init__(self, bundle: PolicyBundle, fast: bool, table: ActionTable) -> None:
        self.bundle = bundle
        self.fast = fast
        self.table = table
        self.areas: dict[str, _Area] = {}
        self.role_sets: dict[frozenset[str], frozenset[str]] = {}
        self.empty_areas = 0

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
    ) -> None:
        self._feed = feed
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
        fast = supports_fast_path(sections)
        policy = _Policy(bundle, fast, ActionTable(bundle.p_lines))
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
    def policy_version(self) -> str:
        return self._policy.bundle.version

    @property
    def areas_held(self) -> int:
        """How many areas this process holds in memory under the current policy.

        Kept public on purpose for bench/decisions.py and operators' diagnostics.
        """
        return len(self._policy.areas)

    # -- deciding --------------------------------------------------------------------

    def decide(self, subject: str, domain: str, obj: str, act: str) -> bool:
        """Whether ``subject`` may do ``act`` on ``obj`` in ``domain``. Raises Unavailable."""
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
        if not policy.fast:
            engine = area.engine
            if engine is None:
                engine = area.engine = self._engine_for(policy, domain, area)
            return engine.enforce(subject, domain, obj, act)
        allowed = area.allowed.get(subject)
        if allowed is None:
            roles = area.links.get(subject)
            if roles is None and subject not in policy.table.subjects:
                return False  # no g line here and no p line naming the subject itself
            allowed = area.allowed[subject] = policy.table.allowed(
                closure(subject, area.links), domain
            )
        return (obj, act) in allowed

    def area_links(self, domain: str) -> dict[str, frozenset[str]]:
        """The subjects of a domain and their roles (g lines), as this process holds them."""
        policy = self._policy
        area = policy.areas.get(domain)
        if area is None:
            if not domain.startswith("area:") or not is_casbin_name(domain):
                return {}
            area = self._load(policy, domain)
        return dict(area.links)

    @staticmethod
    def _engine_for(policy: _Policy, domain: str, area: _Area) -> CasbinEngine:
        rules = [("g", sub, role, domain) for sub, roles in area.links.items() for role in roles]
        return CasbinEngine(policy.bundle, rules)

    def _load(self, policy: _Policy, domain: str) -> _Area:
        with self._lock:
            area = policy.areas.get(domain)
            if area is not None:
                return area
            try:
                version = self._latest_version()
                pairs = self._feed.domain_links(domain)
            except Exception as ex:  # noqa: BLE001 - storage failure: fail closed
                raise Unavailable("the policy store is unavailable") from ex
            links: dict[str, set[str]] = {}
            for sub, role in pairs:
                links.setdefault(sub, set()).add(role)
            area = _Area({s: policy.shared(frozenset(r)) for s, r in links.items()}, version)
            if not links:
                policy.empty_areas += 1
                if policy.empty_areas > _MAX_EMPTY_AREAS:
                    policy.areas = {d: a for d, a in policy.areas.items() if a.links}
                    policy.empty_areas = 0
            policy.areas[domain] = area
            return area

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
        with self._lock:
            if not self._policy.areas:
                # Nothing is loaded, so nothing needs the old entries: skip to the end.
                self.applied_version = max(self.applied_version, self._latest_version())
        while True:
            changes = self._changes_since(self.applied_version, batch)
            with self._lock:
                for change in changes:
                    # A slower round running beside this one may hold older entries:
                    # never go back to them.
                    if change.version > self.applied_version:
                        self._apply(change)
                        self.applied_version = change.version
            applied += len(changes)
            if len(changes) < batch:
                break
        self._last_sync = self._monotonic()
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
        area = policy.areas.get(change.domain)
        if area is None or change.version <= area.loaded_version:
            return
        links = dict(area.links)
        if change.roles:
            links[change.subject] = policy.shared(frozenset(change.roles))
        else:
            links.pop(change.subject, None)
        new = _Area(links, area.loaded_version)
        # Other subjects keep their answers unless the change touched a role they inherit.
        if policy.fast and not any(change.subject in roles for roles in links.values()):
            new.allowed = {s: a for s, a in area.allowed.items() if s != change.subject}
        if not area.links:
            policy.empty_areas = max(0, policy.empty_areas - 1)
        policy.areas[change.domain] = new

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
