"""Hot reload of policies/: notice a change (polling, or at once on SIGHUP), check it,
and swap it in atomically. A policy that fails `check` is refused: the last good one
stays in force, and the error is logged and reported (health and metrics).

Each look reads the directory once into a PolicySnapshot; that snapshot is what is
checked and exactly what is installed, so a file replaced while the check runs cannot
decide unchecked (it is read, and checked, on the next look).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from delegauth.policy.bundle import PolicyError, PolicySnapshot, bundle_from_snapshot, read_snapshot
from delegauth.policy.check import ERROR, Diagnostic, check_snapshot
from delegauth.policy.decider import Decider

__all__ = ["PolicyWatcher", "ReloadStatus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadStatus:
    version: str  # the version installed in the Decider, the one deciding
    reloads: int = 0
    failures: int = 0
    last_error: str | None = None  # set while the latest change on disk is refused
    refused_version: str | None = None  # that refused change's version


class PolicyWatcher:
    def __init__(
        self,
        directory: str | Path,
        decider: Decider,
        *,
        read: Callable[[Path], PolicySnapshot] = read_snapshot,
        check: Callable[[PolicySnapshot], Sequence[Diagnostic]] = check_snapshot,
    ) -> None:
        self._dir = Path(directory)
        self._decider = decider
        self._read = read
        self._check = check
        self._seen = decider.policy_hash  # the hash of the last snapshot looked at
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one look at a time
        self._counts = threading.Lock()  # the status, which /healthz reads during a look
        self._reloads = 0
        self._failures = 0
        self._last_error: str | None = None
        self._refused: str | None = None

    @property
    def status(self) -> ReloadStatus:
        """How reloads went; ``version`` is always read from the Decider."""
        with self._counts:
            return ReloadStatus(
                self._decider.policy_hash,
                self._reloads,
                self._failures,
                self._last_error,
                self._refused,
            )

    def check_now(self) -> bool:
        """Reload if the directory changed; True when a new policy was installed."""
        with self._lock:
            snapshot = self._read(self._dir)
            if snapshot.version == self._seen:
                return False
            self._seen = snapshot.version
            if snapshot.version == self._decider.policy_hash:
                # Back to the policy in force (a refused change was undone): nothing to do.
                with self._counts:
                    self._last_error = self._refused = None
                return False
            errors = [d for d in self._check(snapshot) if d.severity == ERROR]
            if errors:
                return self._refuse(snapshot, "; ".join(str(d) for d in errors[:5]))
            try:
                bundle = bundle_from_snapshot(snapshot)
                self._decider.install(bundle)
            except PolicyError as ex:
                return self._refuse(snapshot, str(ex))
            with self._counts:
                self._reloads += 1
                self._last_error = self._refused = None
            log.info("policy reloaded: version %s", bundle.version)
            return True

    def _refuse(self, snapshot: PolicySnapshot, error: str) -> bool:
        with self._counts:
            self._failures += 1
            self._last_error = error
            self._refused = snapshot.version
        log.error(
            "policy change %s refused, keeping policy %s: %s",
            snapshot.version,
            self._decider.policy_hash,
            error,
        )
        return False

    def trigger(self) -> None:
        """Check at once (a SIGHUP handler calls this)."""
        self._wake.set()

    def start(self, interval_s: float) -> Callable[[], None]:
        """Watch in a daemon thread: once at once (a worker may have started from an
        older snapshot than the files now hold), then every ``interval_s`` or on trigger."""
        stop = threading.Event()
        self._wake.set()

        def run() -> None:
            while not stop.is_set():
                self._wake.wait(interval_s)
                self._wake.clear()
                if stop.is_set():
                    break
                try:
                    self.check_now()
                except Exception:  # noqa: BLE001 - keep watching; the old policy stays
                    log.exception("policy check failed")

        thread = threading.Thread(target=run, name="policy-watcher", daemon=True)
        thread.start()

        def _stop() -> None:
            stop.set()
            self._wake.set()
            thread.join(timeout=5)

        return _stop
