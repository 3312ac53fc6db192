"""Signed JWT access tokens (RFC 9068 profile) on PyJWT, and the keys that sign them.

Keys are created on first start in the key directory with mode 0600. Verification
pins the algorithms, requires every claim, checks ``typ``, ``iss``, ``aud``, ``exp``
and ``iat``, and refuses headers that point at other keys (jku, x5u, jwk, x5c) or
carry ``crit`` extensions we do not implement.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from delegauth.errors import Unauthenticated

__all__ = ["AccessClaims", "KeyRing", "TokenService"]

ACCESS_TYPE = "at+jwt"
# NOTE: the only algorithms ever accepted. Never derive this list from the token.
ALGORITHMS = ("RS256",)
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope")
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_pem: bytes

    def private(self) -> Any:
        return serialization.load_pem_private_key(self.private_pem, password=None)

    def public_jwk(self) -> dict[str, Any]:
        algo = jwt.get_algorithm_by_name(self.algorithm)
        jwk = json.loads(algo.to_jwk(self.private().public_key()))
        jwk.pop("key_ops", None)  # RFC 7517 §4.3: not together with "use"
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return dict(jwk)


class KeyRing:
    """Signing keys in a directory: the newest signs, all of them verify."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("a KeyRing needs at least one key")
        self.keys = keys
        self._by_kid = {k.kid: k for k in keys}
        self._public = {
            k.kid: jwt.get_algorithm_by_name(k.algorithm).from_jwk(json.dumps(k.public_jwk()))
            for k in keys
        }

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def public_key(self, kid: str) -> tuple[SigningKey, Any] | None:
        key = self._by_kid.get(kid)
        return None if key is None else (key, self._public[kid])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    @classmethod
    def generate(cls) -> KeyRing:
        return cls([_new_rsa_key()])

    @classmethod
    def load_or_create(cls, directory: str | Path) -> KeyRing:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = sorted(root.glob("*.pem"))
        if not files:
            key = _new_rsa_key()
            _write_private(root / f"{int(time.time()):012d}-{key.kid}.RS256.pem", key.private_pem)
            files = sorted(root.glob("*.pem"))
        keys = []
        for path in files:
            _stamp, kid_alg = path.stem.split("-", 1)
            kid, alg = kid_alg.rsplit(".", 1)
            keys.append(SigningKey(kid=kid, algorithm=alg, private_pem=path.read_bytes()))
        return cls(keys)


def _new_rsa_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(kid=secrets.token_urlsafe(12), algorithm="RS256", private_pem=pem)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    client_id: str
    scope: frozenset[str]
    area: str | None
    jti: str
    exp: int
    raw: dict[str, Any]

    @property
    def user_id(self) -> str | None:
        return self.sub if self.sub.startswith("u_") else None


class TokenService:
    def __init__(
        self,
        keys: KeyRing,
        issuer: str,
        audience: str,
        *,
        lifetime_s: int = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self._lifetime = lifetime_s
        self._clock = clock
        self._signing: dict[str, Any] = {}  # kid -> loaded private key

    @property
    def lifetime_s(self) -> int:
        return self._lifetime

    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        key = self._keys.current
        private = self._signing.get(key.kid)
        if private is None:
            private = self._signing[key.kid] = key.private()
        return jwt.encode(
            claims, private, algorithm=key.algorithm, headers={"typ": typ, "kid": key.kid}
        )

    def issue_access(
        self,
        *,
        sub: str,
        client_id: str,
        scope: list[str] | tuple[str, ...],
        area: str | None = None,
        role: str | None = None,
        permissions: list[str] | str | None = None,
        lifetime_s: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Sign an access token; return it with its claims."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "iat": now,
            "exp": now + (lifetime_s or self._lifetime),
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            "scope": " ".join(scope),
        }
        if area is not None:
            claims["area"] = area
            claims["role"] = role
            claims["permissions"] = permissions
        return self._sign(claims, ACCESS_TYPE), claims

    def issue(self, **kwargs: Any) -> str:
        """Sign an access token (see issue_access)."""
        return self.issue_access(**kwargs)[0]

    def issue_id_token(
        self,
        *,
        sub: str,
        client_id: str,
        nonce: str | None = None,
        auth_time: Any = None,
        **extra: Any,
    ) -> str:
        """An OpenID Connect ID token: typ JWT, audience the client (never an access token)."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": client_id,
            "iat": now,
            "exp": now + self._lifetime,
        }
        if nonce:
            claims["nonce"] = nonce
        if auth_time is not None:
            claims["auth_time"] = int(auth_time.replace(tzinfo=UTC).timestamp())
        claims.update({k: v for k, v in extra.items() if v is not None})
        return self._sign(claims, "JWT")

    def verify(self, token: str) -> AccessClaims:
        """Return the claims of a valid access token, or raise Unauthenticated."""
        # A JWS in compact form is base64url and dots; anything else (bytes, lone
        # surrogates from a JSON body) must not reach PyJWT's str.encode.
        if not isinstance(token, str) or not token.isascii():
            raise Unauthenticated("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as ex:
            raise Unauthenticated("malformed token") from ex
        if header.get("typ") != ACCESS_TYPE:
            raise Unauthenticated("not an access token")
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated("algorithm not allowed")
        if any(name in header for name in FORBIDDEN_HEADERS) or "crit" in header:
            raise Unauthenticated("token header not allowed")
        found = self._keys.public_key(str(header.get("kid", "")))
        if found is None:
            raise Unauthenticated("unknown signing key")
        key, public = found
        try:
            # NOTE: every security option is spelled out: the key's own algorithm only,
            # all claims required, issuer and audience pinned. Time claims are checked
            # below against the injected clock, which PyJWT cannot take.
            claims = jwt.decode(
                token,
                public,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt.PyJWTError as ex:
            raise Unauthenticated("invalid token") from ex
        _check_times(claims, self._clock())
        scope = claims.get("scope")
        if not isinstance(scope, str) or not isinstance(claims.get("sub"), str):
            raise Unauthenticated("invalid token claims")
        area = claims.get("area")
        return AccessClaims(
            sub=claims["sub"],
            client_id=str(claims["client_id"]),
            scope=frozenset(scope.split()),
            area=area if isinstance(area, str) else None,
            jti=str(claims["jti"]),
            exp=int(claims["exp"]),
            raw=claims,
        )


def _check_times(claims: dict[str, Any], now: float) -> None:
    """Refuse expired or not-yet-valid claims, allowing LEEWAY_SECONDS of clock skew."""
    values = [claims["exp"], claims["iat"], claims.get("nbf", claims["iat"])]
    # NumericDate (RFC 7519 §2): a JSON number; never a string or a boolean.
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise Unauthenticated("invalid token claims")
    try:
        exp, iat, nbf = (int(v) for v in values)
    except (ValueError, OverflowError) as ex:  # NaN and infinities
        raise Unauthenticated("invalid token claims") from ex
    if exp <= now - LEEWAY_SECONDS:
        raise Unauthenticated("token expired")
    if max(iat, nbf) > now + LEEWAY_SECONDS:
        raise Unauthenticated("token not yet valid")
