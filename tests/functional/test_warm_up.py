"""A process starts warm: it loads the areas in bulk, and /readyz says not ready (503) until
that warm-up is done, then ready (200)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from delegauth.api.app import Services, build_services
from delegauth.passwords import Argon2Hasher
from delegauth.policy.decider import AreaChange, Decider
from delegauth.storage.feed import PeeweePolicyFeed
from tests.conftest import Api

WAIT = 30.0  # bounds every wait so that a broken build fails instead of hanging


class HeldPages:
    """The real feed, whose warm-up pages wait at a gate the test opens."""

    def __init__(self, feed: PeeweePolicyFeed) -> None:
        self._feed = feed
        self.gate = threading.Event()
        self.reading = threading.Event()

    def links_after(self, domain: str, limit: int) -> list[tuple[str, str, str]]:
        self.reading.set()
        assert self.gate.wait(WAIT)
        return self._feed.links_after(domain, limit)

    def area(self, domain: str) -> tuple[int, list[tuple[str, str]]]:
        return self._feed.area(domain)

    def domain_links(self, domain: str) -> list[tuple[str, str]]:
        return self._feed.domain_links(domain)

    def latest_version(self) -> int:
        return self._feed.latest_version()

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        return self._feed.changes_since(version, limit)


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def _replica(services: Services, keyring: Any, clock: Any, **overrides: Any) -> Services:
    return build_services(
        services.settings.with_overrides(**overrides),
        db=services.db,
        clock=clock,
        keys=keyring,
        start_background=overrides.get("background", False),
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )


def test_readiness_waits_for_the_warm_up(
    api: Api, services: Services, keyring: Any, clock: Any
) -> None:
    owners = [api.signup(f"o{n}@example.com") for n in range(3)]
    other = _replica(services, keyring, clock)
    feed = HeldPages(PeeweePolicyFeed(services.db))
    decider = Decider(other.decider.bundle, feed, max_staleness=3600)
    decider.sync()
    replica = Api(dataclasses.replace(other, decider=decider))
    stop = decider.start_warm_up(1000)
    try:
        assert feed.reading.wait(WAIT)
        res = replica.call("GET", "/readyz")
        assert res.status_code == 503 and res.json["status"] == "not ready"
        assert res.json["problems"] == ["warming up: 0 areas loaded"]
        feed.gate.set()
        _until(lambda: not decider.warming)
        res = replica.call("GET", "/readyz")
        assert res.status_code == 200 and res.json["problems"] == []
        assert decider.areas_held == len(owners) and decider.area_loads == 0
        assert replica.decide(owners[0], owners[0].area_id, "invoice", "pay")
        assert decider.area_loads == 0  # answered from the warm-up
    finally:
        feed.gate.set()
        stop()
        other.close()


def test_a_process_warms_up_by_default(
    api: Api, services: Services, keyring: Any, clock: Any
) -> None:
    owners = [api.signup(f"o{n}@example.com") for n in range(4)]
    helper = api.link(owners[0], "h@example.com", ["invoices"])
    started = _replica(services, keyring, clock, background=True, change_poll_ms=20)
    try:
        _until(lambda: not started.decider.warming)
        assert started.decider.warmed_areas == len(owners) + 1  # the helper has its own
        res = Api(started).call("GET", "/readyz")
        assert res.status_code == 200, res.json
        assert started.decider.area_links(f"area:{owners[0].area_id}") == {
            f"user:{owners[0].user_id}": frozenset({"role:owner"}),
            f"user:{helper.user_id}": frozenset({"perm:invoices"}),
        }
        assert started.decider.area_loads == 0
    finally:
        started.close()
    off = _replica(services, keyring, clock, background=True, warmup_areas=0)
    try:
        assert not off.decider.warming and off.decider.warmed_areas == 0
    finally:
        off.close()
