"""Hot reload of policies/: notice a change (polling, or at once on SIGHUP), check it,
and swap it in atomically. A policy that fails `check` is refused: the last good one
stays in force, and the error is logged and reported (health and metrics)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from delegauth.policy.bundle import PolicyError, load_bundle
from delegauth.policy.check import check_directory
from delegauth.policy.decider import Decider

__all__ = ["PolicyWatcher", "ReloadStatus"]

log = logging.getLogger(__name__)


@dataclass
class ReloadStatus:
    version: str
    reloads: int = 0
    failures: int = 0
    last_error: str | None = None


def fingerprint(directory: Path) -> str:
    """A hash of every file's name and content under the directory."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0unreadable")
    return digest.hexdigest()


class PolicyWatcher:
    def __init__(self, directory: str | Path, decider: Decider) -> None:
        self._dir = Path(directory)
        self._decider = decider
        self._seen = fingerprint(self._dir)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.status = ReloadStatus(decider.policy_version)

    def check_now(self) -> bool:
        """Reload if the directory changed; True when a new policy was installed."""
        with self._lock:
            current = fingerprint(self._dir)
            if current == self._seen:
                return False
            self._seen = current
            errors = [d for d in check_directory(self._dir) if d.severity == "error"]
            if errors:
                return self._refuse("; ".join(str(d) for d in errors[:5]))
            try:
                bundle = load_bundle(self._dir)
                self._decider.install(bundle)
            except PolicyError as ex:
                return self._refuse(str(ex))
            self.status.version = bundle.version
            self.status.reloads += 1
            self.status.last_error = None
            log.info("policy reloaded: version %s", bundle.version)
            return True

    def _refuse(self, error: str) -> bool:
        self.status.failures += 1
        self.status.last_error = error
        log.error("policy change refused, keeping version %s: %s", self.status.version, error)
        return False

    def trigger(self) -> None:
        """Check at once (a SIGHUP handler calls this)."""
        self._wake.set()

    def start(self, interval_s: float) -> Callable[[], None]:
        stop = threading.Event()

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
