"""Signed JWT access tokens (RFC 9068 profile) on PyJWT, and the keys that sign them.

Keys are created on first start in the key directory with mode 0600. Verification
pins the algorithms, requires every claim, checks ``typ``, ``iss``, ``aud``, ``exp``
and ``iat``, and refuses headers that point at other keys (jku, x5u, jwk, x5c) or
carry ``crit`` extensions we do not implement.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from delegauth.domain.revocations import RevokedTokens, jti_hash
from delegauth.errors import Unauthenticated

__all__ = ["ALGORITHMS", "AccessClaims", "KeyRing", "SigningKey", "TokenService", "new_key"]

ACCESS_TYPE = "at+jwt"
ID_TOKEN_TYPE = "JWT"  # noqa: S105 - a JOSE typ, not a secret
# NOTE: the only algorithms ever accepted. Never derive this list from the token: each
# key carries its own algorithm and a token must use exactly that one.
ALGORITHMS = ("RS256", "ES256", "EdDSA")
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope")
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_pem: bytes
    created: int = 0  # unix seconds

    def private(self) -> Any:
        return serialization.load_pem_private_key(self.private_pem, password=None)

    def public_jwk(self) -> dict[str, Any]:
        algo = jwt.get_algorithm_by_name(self.algorithm)
        jwk = json.loads(algo.to_jwk(self.private().public_key()))
        jwk.pop("key_ops", None)  # RFC 7517 §4.3: not together with "use"
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return dict(jwk)


def new_key(algorithm: str = "RS256", created: int | None = None) -> SigningKey:
    if algorithm == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported algorithm {algorithm!r}; use one of {ALGORITHMS}")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(
        kid=secrets.token_hex(8),
        algorithm=algorithm,
        private_pem=pem,
        created=int(time.time()) if created is None else created,
    )


class KeyRing:
    """Signing keys: the newest signs; older ones still verify until their tokens expire.

    In a directory, each key is a file ``<created>-<kid>.<alg>.pem`` (mode 0600).
    ``retire_after_s`` is how long a replaced key keeps verifying (and stays in the
    JWKS): at least the longest token lifetime.
    """

    def __init__(
        self,
        keys: list[SigningKey],
        *,
        directory: Path | None = None,
        retire_after_s: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._retire_after = retire_after_s
        self._clock = clock
        self._checked = clock()
        self._stamp = self._dir_stamp()
        self.generation = 0  # counts key-set changes
        self._install(keys)

    def _install(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("a KeyRing needs at least one key")
        keys = sorted(keys, key=lambda k: (k.created, k.kid))
        now = self._clock()
        live = [
            k
            for i, k in enumerate(keys)
            if i == len(keys) - 1 or keys[i + 1].created + self._retire_after > now
        ]
        public = {
            k.kid: jwt.get_algorithm_by_name(k.algorithm).from_jwk(json.dumps(k.public_jwk()))
            for k in live
        }
        # One assignment each, so readers in other threads see old or new, never a mix.
        self._state = (live, {k.kid: k for k in live}, public)
        # Verifications cached under the previous key set are dropped (TokenService.verify).
        self.generation += 1

    @property
    def keys(self) -> list[SigningKey]:
        return self._state[0]

    @property
    def current(self) -> SigningKey:
        return self._state[0][-1]

    def public_key(self, kid: str) -> tuple[SigningKey, Any] | None:
        _keys, by_kid, public = self._state
        key = by_kid.get(kid)
        return None if key is None else (key, public[kid])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def _dir_stamp(self) -> float:
        if self._directory is None:
            return 0.0
        try:
            return self._directory.stat().st_mtime
        except OSError:
            return 0.0

    def refresh(self, min_interval_s: float = 5.0) -> None:
        """Pick up keys rotated by another process (at most every ``min_interval_s``)."""
        if self._directory is None or self._clock() - self._checked < min_interval_s:
            return
        self._checked = self._clock()
        stamp = self._dir_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._install(_read_keys(self._directory))

    @classmethod
    def generate(cls, algorithm: str = "RS256") -> KeyRing:
        return cls([new_key(algorithm)])

    @classmethod
    def load_or_create(
        cls,
        directory: str | Path,
        *,
        algorithm: str = "RS256",
        retire_after_s: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> KeyRing:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not any(root.glob("*.pem")):
            os.chmod(root, 0o700)
            with _locked(root):
                if not any(root.glob("*.pem")):
                    _write_key(root, new_key(algorithm))
        # Reading needs no lock: keys appear by atomic rename. (The directory may be a
        # read-only mount, such as a Kubernetes Secret.)
        return cls(_read_keys(root), directory=root, retire_after_s=retire_after_s, clock=clock)

    @staticmethod
    def rotate(directory: str | Path, algorithm: str = "RS256") -> SigningKey:
        """Add a new current key to a key directory; running services pick it up."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(root):
            # Strictly newer than every existing key, so "newest signs" is unambiguous.
            latest = max((k.created for k in _read_keys(root)), default=0)
            key = new_key(algorithm, created=max(int(time.time()), latest + 1))
            _write_key(root, key)
        return key


class _locked:
    """An exclusive lock on a key directory (replicas starting at once create one key)."""

    def __init__(self, root: Path) -> None:
        self._path = root / ".lock"

    def __enter__(self) -> None:
        self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _read_keys(root: Path) -> list[SigningKey]:
    keys = []
    for path in sorted(root.glob("*.pem")):
        stamp, kid_alg = path.stem.split("-", 1)
        kid, alg = kid_alg.rsplit(".", 1)
        if alg in ALGORITHMS:
            keys.append(SigningKey(kid, alg, path.read_bytes(), int(stamp)))
    return keys


def _write_key(root: Path, key: SigningKey) -> None:
    final = root / f"{key.created:012d}-{key.kid}.{key.algorithm}.pem"
    temp = root / f".{key.kid}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, final)  # readers never see a half-written key


def _b64(data: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class _Signer:
    """A signing key loaded once: PyJWT's algorithm for it, the private key, and the
    encoded JOSE header of each token type (``alg``, ``kid``, ``typ``, sorted as PyJWT
    sorts them)."""

    def __init__(self, key: SigningKey) -> None:
        self.algorithm = jwt.get_algorithm_by_name(key.algorithm)
        self.private = self.algorithm.prepare_key(key.private())
        self.headers = {
            typ: _b64(
                json.dumps(
                    {"alg": key.algorithm, "kid": key.kid, "typ": typ},
                    separators=(",", ":"),
                    sort_keys=True,
                ).encode("utf-8")
            )
            for typ in (ACCESS_TYPE, ID_TOKEN_TYPE)
        }


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    client_id: str
    scope: frozenset[str]
    area: str | None
    jti: str
    exp: int
    raw: dict[str, Any]
    jti_hash: str = ""  # how revocations name it (domain.revocations)

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
        cache_size: int = 10_000,
        revoked: RevokedTokens | None = None,
    ) -> None:
        """``revoked``: the revocations this process follows; a token in it is refused."""
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self._lifetime = lifetime_s
        self._clock = clock
        self._signing: dict[str, _Signer] = {}  # kid -> its key, loaded
        # Tokens verified before: the exact token string -> (claims, key-set generation).
        # A hit skips only the signature and claim checks already done on these same bytes;
        # exp is compared with the clock on every hit, and a changed key set or a forget()
        # drops entries. Oldest first out when full (insertion order).
        self._verified: dict[str, tuple[AccessClaims, int]] = {}
        self._cache_size = cache_size
        self._revoked = revoked
        if revoked is not None:
            revoked.subscribe(self._forget_hash)

    @property
    def lifetime_s(self) -> int:
        return self._lifetime

    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        """A compact JWS of ``claims``, signed by the current key with PyJWT's algorithm.

        The bytes are those jwt.encode makes (header keys sorted, compact JSON); only its
        per-call work is done once per key instead: loading the key, building and checking
        the header. That was a third of a client_credentials request.
        """
        self._keys.refresh(60.0)
        key = self._keys.current
        signer = self._signing.get(key.kid)
        if signer is None:
            signer = self._signing[key.kid] = _Signer(key)
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        signing_input = signer.headers[typ] + b"." + payload
        signature = signer.algorithm.sign(signing_input, signer.private)
        return (signing_input + b"." + _b64(signature)).decode("ascii")

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
        not_after: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Sign an access token; return it with its claims. ``not_after`` (epoch seconds,
        the end of the grant behind it) caps its exp: no token outlives its grant."""
        now = int(self._clock())
        exp = now + (lifetime_s or self._lifetime)
        if not_after is not None:
            if not_after <= now:
                raise Unauthenticated("the grant has ended")
            exp = min(exp, not_after)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "iat": now,
            "exp": exp,
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
        return self._sign(claims, ID_TOKEN_TYPE)

    def verify(self, token: str) -> AccessClaims:
        """Return the claims of a valid access token, or raise Unauthenticated.

        A token verified before (these exact bytes, under the current key set) is answered
        from a bounded cache; its expiry is still checked against the clock every time, and
        so is the revocation list. Raises Unavailable when that list may be stale.
        """
        # A JWS in compact form is base64url and dots; anything else (bytes, lone
        # surrogates from a JSON body) must not reach PyJWT's str.encode.
        if not isinstance(token, str) or not token.isascii():
            raise Unauthenticated("malformed token")
        # A rotated or withdrawn key changes the generation; an unreadable key directory
        # leaves the keys already loaded in force. (try, not contextlib.suppress: this runs
        # on every bearer call, and the context manager cost more than the cache lookup.)
        try:  # noqa: SIM105
            self._keys.refresh()
        except (OSError, ValueError):
            pass
        cached = self._verified.get(token)
        if cached is not None:
            claims, generation = cached
            if generation == self._keys.generation:
                if claims.exp <= self._clock() - LEEWAY_SECONDS:
                    self._verified.pop(token, None)
                    raise Unauthenticated("token expired")
                if self._revoked is not None and self._revoked.check(claims.jti_hash):
                    self._verified.pop(token, None)
                    raise Unauthenticated("token revoked")
                return claims
            self._verified.pop(token, None)
        generation = self._keys.generation
        verified = self._verify_fully(token)
        if self._revoked is not None and self._revoked.check(verified.jti_hash):
            raise Unauthenticated("token revoked")
        if self._cache_size > 0:
            while len(self._verified) >= self._cache_size:
                try:
                    self._verified.pop(next(iter(self._verified)), None)
                except (StopIteration, RuntimeError):  # emptied or changed by another thread
                    break
            self._verified[token] = (verified, generation)
        return verified

    def check_revoked(self, claims: AccessClaims) -> None:
        """Raise Unauthenticated if the token has been revoked since it was verified."""
        if self._revoked is not None and self._revoked.check(claims.jti_hash):
            raise Unauthenticated("token revoked")

    def forget(self, jti: str) -> None:
        """Drop cached verifications of the token with this jti (it was revoked)."""
        self._forget_hash(jti_hash(jti))

    def _forget_hash(self, digest: str) -> None:
        for token, (claims, _generation) in list(self._verified.items()):
            if claims.jti_hash == digest:
                self._verified.pop(token, None)

    @property
    def cached_verifications(self) -> int:
        """How many verified tokens are cached (kept for tests and bench/http.py)."""
        return len(self._verified)

    def _verify_fully(self, token: str) -> AccessClaims:
        header = _peek_header(token)
        if header.get("typ") != ACCESS_TYPE:
            raise Unauthenticated("not an access token")
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated("algorithm not allowed")
        if any(name in header for name in FORBIDDEN_HEADERS) or "crit" in header:
            raise Unauthenticated("token header not allowed")
        kid = str(header.get("kid", ""))
        found = self._keys.public_key(kid)
        if found is None:
            self._keys.refresh()  # a replica may have rotated keys
            found = self._keys.public_key(kid)
        if found is None:
            raise Unauthenticated("unknown signing key")
        key, public = found
        if header.get("alg") != key.algorithm:
            raise Unauthenticated("algorithm does not match the key")
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
            jti_hash=jti_hash(str(claims["jti"])),
        )


_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def _peek_header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to pick the key; PyJWT's decode validates everything."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.match(p) for p in parts[:2]):
        raise Unauthenticated("malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error) as ex:
        raise Unauthenticated("malformed token") from ex
    if not isinstance(header, dict):
        raise Unauthenticated("malformed token")
    return header


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
