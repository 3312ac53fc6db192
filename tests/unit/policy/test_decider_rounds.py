"""Rounds of the change log in the Decider: waiting callers share them, and a slower round
never takes the policy back in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from delegauth.errors import VersionAhead
from delegauth.policy.bundle import load_bundle
from delegauth.policy.decider import AreaChange, Decider

POLICIES = Path(__file__).resolve().parents[3] / "policies"
AREA = "area:a1"
USER = "user:u1"
WAIT = 30.0  # bounds every wait so that a broken build fails instead of hanging


class HeldFeed:
    """A change log in memory whose reads can be held at a gate, and counted."""

    def __init__(self) -> None:
        self.log: list[AreaChange] = []
        self.reads = 0
        self.holding = False  # reads that begin while this is set wait for the gate
        self.gate = threading.Event()
        self.at_gate = threading.Event()

    def domain_links(self, domain: str) -> list[tuple[str, str]]:
        return []

    def latest_version(self) -> int:
        self.reads += 1
        return self.log[-1].version if self.log else 0

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        self.reads += 1
        held = self.holding
        seen = [c for c in self.log if c.version > version][:limit]  # read before the gate
        if held:
            self.at_gate.set()
            assert self.gate.wait(WAIT)
        return seen

    def hold(self) -> None:
        self.gate.clear()
        self.at_gate.clear()
        self.holding = True

    def release(self) -> None:
        self.holding = False
        self.gate.set()

    def grant(self, roles: tuple[str, ...]) -> int:
        version = len(self.log) + 1
        self.log.append(AreaChange(version, AREA, USER, roles))
        return version


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.002)


def _decider(feed: HeldFeed) -> Decider:
    decider = Decider(load_bundle(POLICIES), feed, wait_timeout=WAIT)
    decider.sync()
    assert not decider.decide(USER, AREA, "invoice", "pay")  # loads the area
    return decider


def test_a_slower_round_never_takes_the_policy_back() -> None:
    feed = HeldFeed()
    decider = _decider(feed)
    feed.grant(("role:owner",))
    feed.hold()
    slow = threading.Thread(target=decider.sync)
    slow.start()
    assert feed.at_gate.wait(WAIT)  # it has read entry 1 and is held before applying it
    feed.holding = False
    feed.grant(())  # entry 2 takes the role away again
    decider.sync()  # a second round reads entries 1 and 2 and applies them
    assert decider.applied_version == 2
    feed.release()
    slow.join(WAIT)
    assert decider.applied_version == 2
    assert not decider.decide(USER, AREA, "invoice", "pay")


@pytest.mark.parametrize("callers", [1, 16])
def test_waiters_without_a_follower_share_one_round(callers: int) -> None:
    feed = HeldFeed()
    decider = _decider(feed)
    version = feed.grant(("role:owner",))
    feed.hold()
    reads = feed.reads
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            decider.wait_for(version)
        except BaseException as ex:  # noqa: BLE001 - reported below
            errors.append(ex)

    threads = [threading.Thread(target=wait) for _ in range(callers)]
    for t in threads:
        t.start()
    _until(lambda: decider.waiting == callers)
    feed.release()
    for t in threads:
        t.join(WAIT)
    assert errors == []
    assert decider.decide(USER, AREA, "invoice", "pay")
    assert feed.reads - reads == 1  # one caller read the log for all of them


@pytest.mark.parametrize("callers", [1, 16])
def test_waiters_ahead_of_the_log_share_one_round(callers: int) -> None:
    feed = HeldFeed()
    decider = _decider(feed)
    feed.hold()
    reads = feed.reads
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            decider.wait_for(10**9)
        except BaseException as ex:  # noqa: BLE001 - checked below
            errors.append(ex)

    threads = [threading.Thread(target=wait) for _ in range(callers)]
    for t in threads:
        t.start()
    _until(lambda: decider.waiting == callers)
    feed.release()
    for t in threads:
        t.join(WAIT)
    assert len(errors) == callers and all(isinstance(e, VersionAhead) for e in errors)
    # The round the first caller ran, and at most one for those that came during it.
    assert feed.reads - reads <= 2
