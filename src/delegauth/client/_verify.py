"""Verify delegauth access tokens (RFC 9068) against its cached JWKS: the only module
of the client that imports PyJWT.

The JWKS is fetched once, kept for ``max_age`` seconds, and fetched again when a token
names a key id it does not hold (a key was rotated in), but never more often than once
every ``min_refetch_s`` seconds: a stream of made-up key ids costs delegauth at most one
JWKS request per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt

from delegauth.client._exceptions import (
    ExpiredToken,
    InvalidToken,
    KeysUnavailable,
)
from delegauth.client._transport import Transport

__all__ = ["ALGORITHMS", "AccessToken", "KeySet", "TokenVerifier"]

log = logging.getLogger("delegauth.client")

JWKS_PATH = "/.well-known/jwks.json"
# NOTE: the only algorithms ever accepted, each with the key it needs. A token must use
# exactly the algorithm its key declares in the JWKS; the token never picks it.
KEY_SHAPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
ALGORITHMS = tuple(KEY_SHAPES)
ACCESS_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 §4: compared case-insensitively
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
MAX_TOKEN_CHARS = 16_384


@dataclass(frozen=True)
class AccessToken:
    """A verified access token: who, for which client, in which Client Area, holding what.

    ``permissions`` are the catalogue names held in ``area``; ``all_permissions`` is the
    "all permissions" grant (an owner's, say), which also covers names added later.
    """

    sub: str
    client_id: str
    area: str | None
    role: str | None
    permissions: frozenset[str]
    all_permissions: bool
    scope: frozenset[str]
    jti: str
    exp: int
    iat: int
    claims: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def user_id(self) -> str | None:
        """The user's id, or None for a service's own (client credentials) token."""
        return self.sub if self.sub.startswith("u_") else None

    def holds(self, permission: str) -> bool:
        """Whether the token lists ``permission`` (decisions still belong to delegauth)."""
        return self.all_permissions or permission in self.permissions


@dataclass(frozen=True)
class _Key:
    algorithm: str
    public: Any  # a cryptography public key, as PyJWT loaded it


class KeySet:
    """delegauth's public signing keys, fetched over the transport and cached."""

    def __init__(
        self,
        transport: Transport,
        *,
        path: str = JWKS_PATH,
        max_age_s: float = 300.0,
        min_refetch_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._path = path
        self._max_age = max_age_s
        self._min_refetch = min_refetch_s
        self._clock = clock
        self._lock = threading.Lock()
        # (keys by kid, when they were loaded); one assignment, so readers see old or new.
        self._state: tuple[dict[str, _Key], float] | None = None
        self._last_attempt: float | None = None
        self.fetches = 0  # JWKS requests made (for tests and metrics)

    def key(self, kid: str) -> _Key | None:
        """The key with this id, fetching the JWKS when stale or when the id is new."""
        state = self._state
        if state is not None and self._clock() - state[1] < self._max_age and kid in state[0]:
            return state[0][kid]
        with self._lock:  # one fetch at a time; the others then read its result
            state = self._state
            now = self._clock()
            stale = state is None or now - state[1] >= self._max_age
            unknown = state is not None and kid not in state[0]
            if (stale or unknown) and self._may_refetch(now):
                state = self._fetch()
            elif stale:  # the last attempt failed moments ago: do not hammer delegauth
                raise KeysUnavailable("the JWKS could not be read; trying again shortly")
            assert state is not None
            return state[0].get(kid)

    def _may_refetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._min_refetch

    def _fetch(self) -> tuple[dict[str, _Key], float]:
        self._last_attempt = self._clock()
        self.fetches += 1
        reply = self._transport.get(self._path, error=KeysUnavailable)
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise KeysUnavailable(f"the JWKS at {self._path} answered {reply.status}")
        keys = _parse_jwks(reply.body)
        if not keys:
            raise KeysUnavailable("the JWKS holds no usable signing key")
        self._state = (keys, self._clock())
        return self._state


def _parse_jwks(document: dict[str, Any]) -> dict[str, _Key]:
    """The usable signing keys of a JWKS by kid; others are skipped with a log line."""
    entries = document.get("keys")
    keys: dict[str, _Key] = {}
    for jwk in entries if isinstance(entries, list) else []:
        if not isinstance(jwk, dict):
            continue
        kid, alg = jwk.get("kid"), jwk.get("alg")
        shape = KEY_SHAPES.get(alg) if isinstance(alg, str) else None
        if not isinstance(kid, str) or not kid or not isinstance(alg, str) or shape is None:
            log.warning("JWKS key skipped: no kid, or an algorithm outside %s", ALGORITHMS)
            continue
        if jwk.get("use", "sig") != "sig" or (jwk.get("kty"), jwk.get("crv")) != shape:
            log.warning("JWKS key %s skipped: not a %s signing key", kid, alg)
            continue
        try:
            keys[kid] = _Key(alg, jwt.PyJWK(jwk, algorithm=alg).key)
        except (jwt.PyJWTError, ValueError, TypeError) as ex:
            log.warning("JWKS key %s skipped: %s", kid, ex)
    return keys


class TokenVerifier:
    """Check delegauth access tokens; raise InvalidToken or ExpiredToken, or return one.

    ``issuer`` is the expected ``iss`` (or a callable that finds it once, from the
    discovery document); ``audience`` the expected ``aud`` (delegauth's own tokens name
    the issuer). ``leeway_s`` allows that much clock skew on ``exp``, ``iat``, ``nbf``.
    """

    def __init__(
        self,
        keys: KeySet,
        issuer: str | Callable[[], str],
        audience: str | None = None,
        *,
        leeway_s: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._clock = clock

    def _expected(self) -> tuple[str, str]:
        issuer = self._issuer if isinstance(self._issuer, str) else self._issuer()
        return issuer, self._audience or issuer

    def verify(self, token: str) -> AccessToken:
        if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as ex:
            raise InvalidToken("malformed token") from ex
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TYPES:
            raise InvalidToken("not an access token (typ must be at+jwt)")
        if any(name in header for name in FORBIDDEN_HEADERS):
            raise InvalidToken("token header not allowed")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise InvalidToken("token algorithm not allowed")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token names no signing key")
        key = self._keys.key(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        if alg != key.algorithm:
            raise InvalidToken("token algorithm does not match its key")
        issuer, audience = self._expected()
        try:
            # NOTE: every security option is spelled out: the key's own algorithm only,
            # the RFC 9068 claims required, issuer and audience pinned. Times are checked
            # below against the injected clock, which PyJWT cannot take.
            claims = jwt.decode(
                token,
                key.public,
                algorithms=[key.algorithm],
                audience=audience,
                issuer=issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError as ex:
            raise InvalidToken("token signature does not verify") from ex
        except jwt.InvalidAudienceError as ex:
            raise InvalidToken("token is for another audience") from ex
        except jwt.InvalidIssuerError as ex:
            raise InvalidToken("token is from another issuer") from ex
        except jwt.MissingRequiredClaimError as ex:
            raise InvalidToken(f"token lacks the {ex.claim} claim") from ex
        except jwt.PyJWTError as ex:
            raise InvalidToken("invalid token") from ex
        exp, iat = self._check_times(claims)
        return _access_token(claims, exp, iat)

    def _check_times(self, claims: dict[str, Any]) -> tuple[int, int]:
        values = [claims["exp"], claims["iat"], claims.get("nbf", claims["iat"])]
        # NumericDate (RFC 7519 §2): a JSON number, never a string or a boolean.
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise InvalidToken("invalid token times")
        try:
            exp, iat, nbf = (int(v) for v in values)
        except (ValueError, OverflowError) as ex:  # NaN, infinities
            raise InvalidToken("invalid token times") from ex
        now = self._clock()
        if exp <= now - self._leeway:
            raise ExpiredToken("token expired")
        if max(iat, nbf) > now + self._leeway:
            raise InvalidToken("token not yet valid")
        return exp, iat


def _access_token(claims: dict[str, Any], exp: int, iat: int) -> AccessToken:
    """The typed view of verified claims; a claim of the wrong JSON type is InvalidToken."""
    sub, client_id, jti = claims["sub"], claims["client_id"], claims["jti"]
    scope, area, role = claims.get("scope", ""), claims.get("area"), claims.get("role")
    permissions = claims.get("permissions")
    if not all(isinstance(v, str) for v in (sub, client_id, jti, scope)):
        raise InvalidToken("invalid token claims")
    if not all(v is None or isinstance(v, str) for v in (area, role)):
        raise InvalidToken("invalid token claims")
    if permissions is None or permissions == "all":
        names: frozenset[str] = frozenset()
    elif isinstance(permissions, list) and all(isinstance(p, str) for p in permissions):
        names = frozenset(permissions)
    else:
        raise InvalidToken("invalid token claims")
    return AccessToken(
        sub=sub,
        client_id=client_id,
        area=area,
        role=role,
        permissions=names,
        all_permissions=permissions == "all",
        scope=frozenset(scope.split()),
        jti=jti,
        exp=exp,
        iat=iat,
        claims=MappingProxyType(claims),
    )
