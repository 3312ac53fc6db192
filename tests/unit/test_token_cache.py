"""The cache of verified access tokens never weakens verification: a cached token still
expires on time, a changed key set drops it, a revoked one is forgotten, and any token not
seen before (a changed signature included) is verified in full."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from delegauth.errors import Unauthenticated
from delegauth.tokens import LEEWAY_SECONDS, KeyRing, TokenService


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _service(keys: KeyRing, clock: Clock, cache_size: int = 10_000) -> TokenService:
    return TokenService(
        keys, "https://issuer.test", "https://issuer.test", clock=clock, cache_size=cache_size
    )


def _token(service: TokenService, **kw: object) -> str:
    return service.issue(sub="svc", client_id="svc", scope=["decisions"], **kw)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token PyJWT is asked to verify (the real jwt.decode still does the work)."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("delegauth.tokens.jwt.decode", counting)
    return seen


def test_a_second_verification_of_the_same_token_is_answered_from_the_cache(
    clock: Clock, decodes: list[str]
) -> None:
    service = _service(KeyRing.generate(), clock)
    token = _token(service)
    first = service.verify(token)
    second = service.verify(token)
    assert second == first
    assert decodes == [token]
    assert service.cached_verifications == 1


def test_a_cached_token_still_expires_on_time(clock: Clock) -> None:
    service = _service(KeyRing.generate(), clock)
    token = _token(service, lifetime_s=60)
    service.verify(token)
    clock.now += 60 + LEEWAY_SECONDS - 1
    service.verify(token)  # within the leeway, as without a cache
    clock.now += 1
    with pytest.raises(Unauthenticated, match="expired"):
        service.verify(token)
    assert service.cached_verifications == 0


def test_a_token_not_seen_before_is_verified_even_when_it_differs_only_in_its_signature(
    clock: Clock, decodes: list[str]
) -> None:
    service = _service(KeyRing.generate(), clock)
    token = _token(service)
    service.verify(token)
    head, body, sig = token.split(".")
    tampered = f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(Unauthenticated):
        service.verify(tampered)
    assert decodes == [token, tampered]


def test_a_changed_key_set_drops_cached_verifications(tmp_path: Path, clock: Clock) -> None:
    keys = KeyRing.load_or_create(tmp_path / "keys", clock=clock)
    service = _service(keys, clock)
    token = _token(service)
    service.verify(token)
    # The key that signed it is withdrawn (deleted from the directory other replicas share),
    # and a new one takes its place.
    for pem in (tmp_path / "keys").glob("*.pem"):
        pem.unlink()
    KeyRing.rotate(tmp_path / "keys")
    clock.now += 6  # past the key ring's refresh interval
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        service.verify(token)
    assert service.cached_verifications == 0


def test_a_forgotten_jti_is_verified_again(clock: Clock, decodes: list[str]) -> None:
    service = _service(KeyRing.generate(), clock)
    token = _token(service)
    jti = service.verify(token).jti
    service.forget(jti)
    assert service.cached_verifications == 0
    service.verify(token)
    assert decodes == [token, token]


def test_the_cache_is_bounded(clock: Clock) -> None:
    service = _service(KeyRing.generate(), clock, cache_size=8)
    tokens = [_token(service) for _ in range(20)]
    for token in tokens:
        service.verify(token)
    assert service.cached_verifications == 8
    for token in tokens:  # evicted ones are verified in full again, and still pass
        service.verify(token)


def test_a_zero_sized_cache_verifies_every_time(clock: Clock, decodes: list[str]) -> None:
    service = _service(KeyRing.generate(), clock, cache_size=0)
    token = _token(service)
    service.verify(token)
    service.verify(token)
    assert decodes == [token, token]
