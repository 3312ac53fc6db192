"""Hot reload installs exactly the policy it checked: a file replaced while a reload runs
never decides unchecked (issue 10, item 1)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from delegauth.policy.bundle import PolicyBundle, PolicySnapshot, load_bundle, read_snapshot
from delegauth.policy.check import Diagnostic, check_snapshot
from delegauth.policy.decider import Decider
from delegauth.policy.memory_feed import MemoryPolicyFeed
from delegauth.policy.tables import fixture_area, fixture_user
from delegauth.policy.watcher import PolicyWatcher
from tests.unit.policy.conftest import PoliciesCopy

OUTSIDER = fixture_user("outsider")  # holds no grant anywhere
AREA = fixture_area("shop")
# Two valid policy.csv (a custom role; none: a file being rewritten in place is briefly
# empty), and one that fails the check: a p line naming a user lets that user pay
# invoices in every area without any grant.
GOOD = ("p, role:accountant, *, invoice, pay\n", "")
BAD = f"p, {OUTSIDER}, *, invoice, pay\n"


class _RecordingDecider(Decider):
    """A Decider that asks, after every install, whether the outsider may pay invoices."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.installed: list[tuple[str, bool]] = []
        super().__init__(bundle, MemoryPolicyFeed(), monotonic=lambda: 0.0)
        self.sync()
        self.installed.append((bundle.version, self.decide(OUTSIDER, AREA, "invoice", "pay")))

    def install(self, bundle: PolicyBundle) -> None:
        super().install(bundle)
        if self.installed:  # past __init__
            allowed = self.decide(OUTSIDER, AREA, "invoice", "pay")
            self.installed.append((bundle.version, allowed))


def _replace(path: Path, text: str) -> None:
    """Replace the file the way deployments do: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


def test_the_outsider_line_is_refused_by_the_check(policies: PoliciesCopy) -> None:
    policies.write("policy.csv", BAD)
    assert [d.severity for d in check_snapshot(read_snapshot(policies.root))] == ["error"]
    policies.write("policy.csv", GOOD[0])
    assert all(d.severity != "error" for d in check_snapshot(read_snapshot(policies.root)))


def test_a_file_replaced_during_the_check_is_not_installed(policies: PoliciesCopy) -> None:
    policies.write("policy.csv", GOOD[0])
    decider = _RecordingDecider(load_bundle(policies.root))
    policies.write("policy.csv", GOOD[1])
    checked: list[PolicySnapshot] = []

    def check_then_replace(snapshot: PolicySnapshot) -> Sequence[Diagnostic]:
        checked.append(snapshot)
        diagnostics = check_snapshot(snapshot)
        _replace(policies.path("policy.csv"), BAD)  # lands while the check runs
        return diagnostics

    watcher = PolicyWatcher(policies.root, decider, check=check_then_replace)
    assert watcher.check_now() is True
    # What decides is the very snapshot that was checked, not the file now on disk.
    assert decider.bundle.snapshot is checked[0]
    assert decider.bundle.snapshot.data("policy.csv") == GOOD[1].encode()
    assert decider.installed[1:] == [(checked[0].version, False)]
    assert watcher.status.version == decider.policy_hash == checked[0].version

    # The replacement is read and checked on the next look, and refused.
    assert watcher.check_now() is False
    status = watcher.status
    assert status.version == checked[0].version and status.failures == 1
    assert status.refused_version == checked[1].version != checked[0].version
    assert status.last_error and "naming a user" in status.last_error
    assert decider.decide(OUTSIDER, AREA, "invoice", "pay") is False


def test_each_look_reads_each_file_once(policies: PoliciesCopy) -> None:
    policies.write("policy.csv", GOOD[0])
    decider = _RecordingDecider(load_bundle(policies.root))
    policies.write("policy.csv", GOOD[1])
    reads: list[str] = []

    def read_then_replace(path: Path) -> bytes:
        data = path.read_bytes()
        reads.append(path.name)
        if path.name == "policy.csv":
            _replace(path, BAD)  # replaced the moment after it was read
        return data

    watcher = PolicyWatcher(
        policies.root, decider, read=lambda d: read_snapshot(d, read_file=read_then_replace)
    )
    assert watcher.check_now() is True
    assert sorted(reads) == ["authzen.toml", "catalogue.toml", "model.conf", "policy.csv"]
    assert decider.bundle.snapshot.data("policy.csv") == GOOD[1].encode()
    assert decider.installed[-1][1] is False
    assert watcher.status.version == decider.policy_hash


def test_reloads_racing_file_replacement_never_install_an_unchecked_policy(
    policies: PoliciesCopy,
) -> None:
    """A writer flips policy.csv between good and bad while reloads run, by polling and
    by trigger() and by direct looks; the bad policy never decides, not even briefly."""
    csv = policies.path("policy.csv")
    policies.write("policy.csv", GOOD[0])
    decider = _RecordingDecider(load_bundle(policies.root))
    watcher = PolicyWatcher(policies.root, decider)
    stop = threading.Event()
    rng = random.Random(10)

    def writer() -> None:
        turn = 0
        while not stop.is_set():
            text = BAD if turn % 2 else GOOD[(turn // 2) % 2]
            if rng.random() < 0.8:
                _replace(csv, text)
            else:
                csv.write_text(text, "utf-8")  # in place: a look may see it half-written
            turn += 1
            time.sleep(rng.random() * 0.003)

    writing = threading.Thread(target=writer, daemon=True)
    writing.start()
    stop_watching = watcher.start(0.001)
    try:
        deadline = time.monotonic() + 30  # bounds the loop; it ends on the count
        looks = 0
        while looks < 400 and time.monotonic() < deadline:
            if looks % 2:
                watcher.trigger()
                time.sleep(0.002)
            else:
                watcher.check_now()
            looks += 1
            assert decider.decide(OUTSIDER, AREA, "invoice", "pay") is False
            assert watcher.status.version == decider.policy_hash
    finally:
        stop.set()
        writing.join(timeout=5)
        stop_watching()
    status = watcher.status
    assert looks == 400
    assert status.reloads >= 20 and status.failures >= 20, status
    assert [allowed for _, allowed in decider.installed if allowed] == []

    # Settled on the bad file: refused, and the version reported is the one deciding.
    _replace(csv, BAD)
    watcher.check_now()
    status = watcher.status
    assert status.refused_version == read_snapshot(policies.root).version
    assert status.version == decider.policy_hash != status.refused_version
    assert decider.decide(OUTSIDER, AREA, "invoice", "pay") is False
