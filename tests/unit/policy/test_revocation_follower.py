"""Access-token revocations ride the policy change log: the Decider's rounds bring them to
the process's RevokedTokens, the token service refuses them (cached or not), and a list
that has not been brought current fails closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from delegauth.domain.revocations import REVOKED_DOMAIN, RevokedTokens, jti_hash
from delegauth.errors import Unauthenticated, Unavailable
from delegauth.policy.bundle import load_bundle
from delegauth.policy.decider import AreaChange, Decider
from delegauth.tokens import KeyRing, TokenService

POLICIES = Path(__file__).resolve().parents[3] / "policies"
ISSUER = "https://issuer.test"


class Log:
    """A change log in memory, with the revocation snapshot a process starts from."""

    def __init__(self) -> None:
        self.entries: list[AreaChange] = []
        self.snapshots = 0

    def domain_links(self, domain: str) -> list[tuple[str, str]]:
        return []

    def latest_version(self) -> int:
        return self.entries[-1].version if self.entries else 0

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        return [c for c in self.entries if c.version > version][:limit]

    def revocations(self) -> tuple[int, list[tuple[str, int]]]:
        self.snapshots += 1
        revoked = [(c.subject, int(c.roles[0])) for c in self.entries if c.domain == REVOKED_DOMAIN]
        return self.latest_version(), revoked

    def append(self, domain: str, subject: str, roles: tuple[str, ...]) -> int:
        version = len(self.entries) + 1
        self.entries.append(AreaChange(version, domain, subject, roles))
        return version

    def revoke(self, jti: str, exp: int) -> int:
        return self.append(REVOKED_DOMAIN, jti_hash(jti), (str(exp),))


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _worker(log: Log, monotonic: Monotonic) -> tuple[Decider, TokenService]:
    """One worker process: its own Decider, revocation list and token cache."""
    revoked = RevokedTokens(max_staleness=5.0, monotonic=monotonic)
    decider = Decider(load_bundle(POLICIES), log, revoked=revoked, monotonic=monotonic)
    decider.sync()
    tokens = TokenService(KEYS, ISSUER, ISSUER, revoked=revoked)
    return decider, tokens


KEYS = KeyRing.generate("ES256")


def _token() -> tuple[str, str, int]:
    minter = TokenService(KEYS, ISSUER, ISSUER)
    token, claims = minter.issue_access(sub="svc", client_id="svc", scope=["decisions"])
    return token, claims["jti"], claims["exp"]


def test_a_revocation_in_the_log_is_refused_by_another_worker_after_its_round() -> None:
    log, monotonic = Log(), Monotonic()
    decider, tokens = _worker(log, monotonic)
    token, jti, exp = _token()
    tokens.verify(token)
    assert tokens.cached_verifications == 1
    log.revoke(jti, exp)  # through another worker
    decider.sync()  # this worker's follower round
    assert tokens.cached_verifications == 0  # its cache dropped it
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.verify(token)


def test_a_cached_token_is_refused_once_the_list_has_it() -> None:
    revoked = RevokedTokens(max_staleness=5.0)
    revoked.mark_current()
    tokens = TokenService(KEYS, ISSUER, ISSUER, revoked=revoked)
    token, jti, exp = _token()
    claims = tokens.verify(token)
    revoked.add(jti_hash(jti), exp)
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.verify(token)
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.check_revoked(claims)  # what AuthZEN checks again after a consistency wait


def test_a_process_starting_after_a_revocation_refuses_it() -> None:
    log, monotonic = Log(), Monotonic()
    token, jti, exp = _token()
    log.append("area:a1", "user:u1", ("role:owner",))
    log.revoke(jti, exp)
    log.append("area:a1", "user:u2", ("role:owner",))
    decider, tokens = _worker(log, monotonic)
    assert log.snapshots == 1
    assert decider.applied_version == 3  # from the snapshot's head, nothing skipped
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.verify(token)


def test_the_log_is_never_skipped_past_a_revocation_while_nothing_is_loaded() -> None:
    log, monotonic = Log(), Monotonic()
    decider, tokens = _worker(log, monotonic)
    token, jti, exp = _token()
    for n in range(5):
        log.append("area:a1", f"user:u{n}", ("role:owner",))
    log.revoke(jti, exp)
    decider.sync()  # no area is held: a process without revocations would jump to the head
    assert log.snapshots == 1
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.verify(token)


def test_a_stale_revocation_list_fails_closed() -> None:
    log, monotonic = Log(), Monotonic()
    decider, tokens = _worker(log, monotonic)
    token, _jti, _exp = _token()
    tokens.verify(token)
    monotonic.now += 5.1  # the change log not read for longer than max_staleness
    with pytest.raises(Unavailable):
        tokens.verify(token)
    decider.sync()
    tokens.verify(token)


def test_expired_revocations_are_forgotten() -> None:
    now = [2_000_000_000.0]
    revoked = RevokedTokens(clock=lambda: now[0])
    revoked.add("a" * 64, int(now[0]) - 1000)
    revoked.add("b" * 64, int(now[0]) + 600)
    now[0] += 61  # pruning runs at most once a minute
    revoked.add("c" * 64, int(now[0]) + 600)
    assert len(revoked) == 2
    revoked.mark_current()
    assert not revoked.check("a" * 64)
    assert revoked.check("b" * 64) and revoked.check("c" * 64)
