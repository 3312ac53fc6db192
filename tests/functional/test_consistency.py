"""The consistency token: a caller that passes back the policy version its write
produced never gets a decision from before that write, even from another replica.
A token ahead of the change log is refused at once, and callers waiting for the change
log share one follower: the database work does not grow with the number of waiters."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from delegauth.api.app import Services, build_services
from delegauth.passwords import Argon2Hasher
from delegauth.policy.decider import AreaChange, Decider
from delegauth.storage.feed import PeeweePolicyFeed
from tests.conftest import Api

WAIT = 30.0  # bounds every wait below so that a broken build fails instead of hanging


@pytest.fixture
def replica(services: Services, keyring: Any, clock: Any) -> Iterator[Api]:
    """A second process's view of the same database: its own Decider, no follower.
    (One peewee Database per process: the replica shares the connection settings.)"""
    other = build_services(
        services.settings,
        db=services.db,
        clock=clock,
        keys=keyring,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    yield Api(other)
    other.close()


def _ask(api: Api, person: Any, area: str, context: dict | None = None) -> Any:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": person.user_id},
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
    }
    if context is not None:
        body["context"] = context
    return api.call("POST", "/access/v1/evaluation", api.service_token(), json=body)


def test_a_decision_waits_for_the_callers_write(api: Api, replica: Api) -> None:
    owner = api.signup("o@example.com")
    helper = api.link(owner, "h@example.com", ["invoices"])
    # The replica loads the area now and will not hear of later changes by itself.
    assert _ask(replica, helper, owner.area_id).json == {"decision": True}
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{helper.user_id}",
        api.token(owner),
        json={"permissions": ["tickets"]},
    )
    version = res.json["policy_version"]
    assert _ask(replica, helper, owner.area_id).json == {"decision": True}  # stale, as feared
    fresh = _ask(replica, helper, owner.area_id, {"policy_version": version})
    assert fresh.status_code == 200 and fresh.json == {"decision": False}
    assert replica.services.decider.applied_version >= version


def test_malformed_tokens_are_400(api: Api, replica: Api) -> None:
    owner = api.signup("o@example.com")
    for bad in (-1, "7", True, 1.5):
        res = _ask(replica, owner, owner.area_id, {"policy_version": bad})
        assert res.status_code == 400, bad


def test_a_version_ahead_of_the_change_log_is_409_at_once(api: Api, replica: Api) -> None:
    owner = api.signup("o@example.com")
    assert _ask(replica, owner, owner.area_id).status_code == 200  # the area is loaded
    decider = replica.services.decider
    head = PeeweePolicyFeed(api.services.db).latest_version()
    assert decider.applied_version < head  # the replica has not read the signup's change
    for version in (head + 1, 10**9):
        reads = decider.changelog_reads
        res = _ask(replica, owner, owner.area_id, {"policy_version": version})
        assert res.status_code == 409, res.text
        assert res.headers["content-type"] == "application/problem+json"
        assert res.json["code"] == "policy_version_ahead" and res.json["field"] == "context"
        assert f"{version} is ahead of the change log (at {head})" in res.json["detail"]
        # One read of the change log decided it (the old code polled it for a second).
        assert decider.changelog_reads - reads == 1
        assert decider.applied_version == head
    res = _ask(replica, owner, owner.area_id, {"policy_version": head})
    assert res.status_code == 200 and res.json == {"decision": True}
    batch = replica.call(
        "POST",
        "/access/v1/evaluations",
        replica.service_token(),
        json={
            "subject": {"type": "user", "id": owner.user_id},
            "resource": {"type": "invoice", "id": "1", "properties": {"area": owner.area_id}},
            "context": {"policy_version": 10**9},
            "evaluations": [{"action": {"name": "pay"}}, {"action": {"name": "view"}}],
        },
    )
    assert batch.status_code == 409 and batch.json["code"] == "policy_version_ahead"


class GatedFeed:
    """The real change log, whose reads the test can hold back while callers line up."""

    def __init__(self, feed: PeeweePolicyFeed) -> None:
        self._feed = feed
        self._open = threading.Event()
        self._open.set()
        self.reads_done = 0

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def domain_links(self, domain: str) -> list[tuple[str, str]]:
        return self._feed.domain_links(domain)

    def latest_version(self) -> int:
        assert self._open.wait(WAIT)
        value = self._feed.latest_version()
        self.reads_done += 1
        return value

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        assert self._open.wait(WAIT)
        value = self._feed.changes_since(version, limit)
        self.reads_done += 1
        return value

    def wait_for_change(self, timeout: float) -> bool:
        return self._feed.wait_for_change(timeout)

    def wake(self) -> None:
        self._feed.wake()


@dataclasses.dataclass
class Following:
    """A replica as `serve` runs it: a follower thread on the change log (its interval is
    an hour, so only a notification or a waiting caller makes it read)."""

    api: Api
    decider: Decider
    feed: GatedFeed


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.005)


@pytest.fixture
def following(services: Services, keyring: Any, clock: Any) -> Iterator[Callable[..., Following]]:
    made: list[tuple[Services, GatedFeed, Callable[[], None]]] = []

    def make(person: Any, wait_timeout: float = WAIT) -> Following:
        other = build_services(
            services.settings,
            db=services.db,
            clock=clock,
            keys=keyring,
            start_background=False,
            hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        feed = GatedFeed(PeeweePolicyFeed(services.db))
        decider = Decider(other.decider.bundle, feed, max_staleness=3600, wait_timeout=wait_timeout)
        decider.sync()
        api = Api(dataclasses.replace(other, decider=decider))
        assert _ask(api, person, person.area_id).status_code == 200  # loads the area
        before = feed.reads_done
        stop = decider.start_follower(3600)
        made.append((other, feed, stop))
        _until(lambda: feed.reads_done > before)  # the follower's first round has read
        return Following(api, decider, feed)

    yield make
    for other, feed, stop in made:
        feed.release()
        stop()
        other.close()


@pytest.mark.parametrize("callers", [1, 16])
def test_waiting_callers_share_one_follower(
    api: Api, following: Callable[..., Following], callers: int
) -> None:
    owner = api.signup("o@example.com")
    helper = api.link(owner, "h@example.com", ["invoices"])
    replica = following(helper)
    replica.feed.hold()  # the replica's next round of the change log waits at the gate
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{helper.user_id}",
        api.token(owner),
        json={"permissions": ["tickets"]},
    )
    version = res.json["policy_version"]
    assert replica.decider.applied_version < version
    reads = replica.decider.changelog_reads
    results: list[Any] = [None] * callers

    def ask(i: int) -> None:
        results[i] = _ask(replica.api, helper, owner.area_id, {"policy_version": version})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    _until(lambda: replica.decider.waiting == callers)  # every caller is waiting
    replica.feed.release()
    for t in threads:
        t.join(WAIT)
    assert [(r.status_code, r.json) for r in results] == [(200, {"decision": False})] * callers
    # One round (two if a notification and a waiter both woke the follower), whatever
    # the number of callers: the old code read the change log at least once per caller.
    assert replica.decider.changelog_reads - reads <= 2


@pytest.mark.parametrize("callers", [1, 16])
def test_callers_ahead_of_the_change_log_share_one_follower(
    api: Api, following: Callable[..., Following], callers: int
) -> None:
    owner = api.signup("o@example.com")
    replica = following(owner)
    replica.feed.hold()
    reads = replica.decider.changelog_reads
    results: list[Any] = [None] * callers

    def ask(i: int) -> None:
        results[i] = _ask(replica.api, owner, owner.area_id, {"policy_version": 10**9})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    _until(lambda: replica.decider.waiting == callers)
    replica.feed.release()
    for t in threads:
        t.join(WAIT)
    assert [r.status_code for r in results] == [409] * callers
    # The round under way when callers arrived, and at most one after it.
    assert replica.decider.changelog_reads - reads <= 2


def test_a_follower_that_cannot_catch_up_in_time_is_503(
    api: Api, following: Callable[..., Following]
) -> None:
    owner = api.signup("o@example.com")
    helper = api.link(owner, "h@example.com", ["invoices"])
    replica = following(helper, wait_timeout=0.2)
    replica.feed.hold()  # the change log cannot be read
    res = api.call(
        "PATCH",
        f"/v1/areas/{owner.area_id}/members/{helper.user_id}",
        api.token(owner),
        json={"permissions": ["tickets"]},
    )
    version = res.json["policy_version"]
    res = _ask(replica.api, helper, owner.area_id, {"policy_version": version})
    assert res.status_code == 503 and res.headers["retry-after"] == "1"
    assert "has not reached policy change" in res.json["detail"]
    replica.feed.release()
    res = _ask(replica.api, helper, owner.area_id, {"policy_version": version})
    assert res.status_code == 200 and res.json == {"decision": False}


def test_readiness(api: Api) -> None:
    res = api.call("GET", "/readyz")
    assert res.status_code == 200 and res.json["status"] == "ready"
    api.services.decider._max_staleness = 0.0  # noqa: SLF001
    api.services.settings = api.services.settings.with_overrides(max_staleness_s=0.0)
    res = api.call("GET", "/readyz")
    assert res.status_code == 503 and "change log" in res.json["problems"][0]
