"""RevokedTokens: the access tokens revoked before their expiry, as this process knows them.

A revocation is recorded in the database and announced in the policy change log (as
the entry of the reserved domain ``REVOKED_DOMAIN``); each process's change-log follower
adds it here, so a revocation made through any worker or replica reaches every one.
Tokens are known by the SHA-256 of their ``jti`` only (``jti_hash``), never by the token.

Fail closed: once the change log has not been read for ``max_staleness`` seconds, the
list may be missing revocations, and ``check`` raises Unavailable instead of answering.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable

from delegauth.errors import Unavailable

__all__ = ["REVOKED_DOMAIN", "RevokedTokens", "jti_hash"]

# The change log's domain for access-token revocations: never an area ("area:…"), so no
# area's policy reads it. Each entry's subject is the jti_hash, its one "role" the token's
# expiry (unix seconds), after which the entry can be forgotten.
REVOKED_DOMAIN = "token:revoked"


def jti_hash(jti: str) -> str:
    """How a revoked token is named at rest and in the change log (64 hex digits)."""
    return hashlib.sha256(jti.encode("utf-8")).hexdigest()


class RevokedTokens:
    def __init__(
        self,
        *,
        max_staleness: float = 5.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._expiry: dict[str, int] = {}  # jti_hash -> exp (unix seconds)
        self._max_staleness = max_staleness
        self._clock = clock
        self._monotonic = monotonic
        self._current_at = float("-inf")
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(jti_hash)`` for each revocation learnt from now on."""
        self._listeners.append(listener)

    def add(self, jti_hash: str, exp: int) -> None:
        """Record a revocation (from the change log, or the snapshot a process starts from)."""
        with self._lock:
            known = jti_hash in self._expiry
            self._expiry[jti_hash] = max(exp, self._expiry.get(jti_hash, exp))
            self._prune()
        if not known:
            for listener in self._listeners:
                listener(jti_hash)

    def load(self, revoked: Iterable[tuple[str, int]]) -> None:
        for digest, exp in revoked:
            self.add(digest, exp)

    def mark_current(self) -> None:
        """The change log was read up to its head just now (the follower calls this)."""
        self._current_at = self._monotonic()

    def check(self, jti_hash: str) -> bool:
        """Whether the token is revoked. Raises Unavailable if this list may be stale."""
        if self._monotonic() - self._current_at > self._max_staleness:
            raise Unavailable("the token revocation list is not current")
        return jti_hash in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def _prune(self) -> None:
        """Forget revocations of tokens that have expired anyway (at most once a minute)."""
        now = self._clock()
        if now < self._next_prune:
            return
        self._next_prune = now + 60
        # A token is refused until exp + the verifier's leeway: keep each entry past that.
        cutoff = now - 300
        for digest in [d for d, exp in self._expiry.items() if exp < cutoff]:
            del self._expiry[digest]
