"""Token verification refuses what RFC 9068 and pinned algorithms refuse; the JWKS is
served by MockTransport from keys made here (the real server's keys: tests/e2e)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jwt
import pytest

from delegauth.client import Delegauth, InvalidToken, KeysUnavailable
from delegauth.tokens import KeyRing, TokenService, new_key

ISSUER = "https://auth.example"


class JWKS:
    def __init__(self, ring: KeyRing, extra: list[dict[str, Any]] | None = None) -> None:
        self.document = {"keys": [*ring.jwks()["keys"], *(extra or [])]}
        self.status = 200
        self.fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        return httpx.Response(self.status, json=self.document)


def _client(jwks: JWKS, **kw: Any) -> Delegauth:
    return Delegauth(
        "http://delegauth.test",
        issuer=ISSUER,
        http_transport=httpx.MockTransport(jwks.handler),
        **kw,
    )


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([new_key("RS256")])


def _claims(**extra: Any) -> dict[str, Any]:
    import time

    now = int(time.time())
    base = {"iss": ISSUER, "sub": "u_a", "aud": ISSUER, "iat": now, "exp": now + 600}
    return {**base, "jti": "j", "client_id": "web", "scope": "openid", **extra}


def _sign(ring: KeyRing, claims: dict[str, Any], **headers: Any) -> str:
    key = ring.current
    head = {"typ": "at+jwt", "kid": key.kid, **headers}
    return jwt.encode(claims, key.private(), algorithm=key.algorithm, headers=head)


def test_a_good_token_verifies(ring: KeyRing) -> None:
    token = TokenService(ring, ISSUER, ISSUER).issue(
        sub="u_a",
        client_id="web",
        scope=["openid"],
        area="a_b",
        role="delegate",
        permissions=["invoices"],
    )
    verified = _client(JWKS(ring)).verify(token)
    assert (verified.area, verified.permissions) == ("a_b", frozenset({"invoices"}))


@pytest.mark.parametrize(
    ("headers", "claims", "message"),
    [
        ({"typ": "JWT"}, {}, "not an access token"),
        ({"jku": "https://evil.example/jwks"}, {}, "header not allowed"),
        ({"jwk": {"kty": "oct", "k": "AA"}}, {}, "header not allowed"),
        ({}, {"jti": None}, "lacks the jti claim"),
        ({}, {"area": 7}, "invalid token claims"),
        ({}, {"permissions": "some"}, "invalid token claims"),
        ({}, {"exp": "9999999999"}, "invalid token times"),
        ({}, {"iat": 9_999_999_999}, "not yet valid"),
    ],
)
def test_tokens_outside_the_profile_are_refused(
    ring: KeyRing, headers: dict[str, Any], claims: dict[str, Any], message: str
) -> None:
    body = {k: v for k, v in _claims(**claims).items() if v is not None}
    with pytest.raises(InvalidToken, match=message):
        _client(JWKS(ring)).verify(_sign(ring, body, **headers))


def test_a_missing_claim_is_named(ring: KeyRing) -> None:
    body = {k: v for k, v in _claims().items() if k != "client_id"}
    with pytest.raises(InvalidToken, match="lacks the client_id claim"):
        _client(JWKS(ring)).verify(_sign(ring, body))


def test_algorithms_are_pinned_to_the_key(ring: KeyRing) -> None:
    kid = ring.current.kid
    signing_input = f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{_b64(_claims())}"
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        _client(JWKS(ring)).verify(signing_input + ".")
    # HS256 keyed with the public key's bytes (algorithm confusion).
    public = ring.current.private().public_key()
    from cryptography.hazmat.primitives import serialization

    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "at+jwt", "kid": kid})
    unsigned = f"{header}.{_b64(_claims())}"
    mac = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    forged = unsigned + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        _client(JWKS(ring)).verify(forged)
    # An allowed algorithm that is not the key's own.
    es = KeyRing([new_key("ES256")])
    token = _sign(es, _claims(), kid=kid)  # ES256-signed, naming the RSA key
    with pytest.raises(InvalidToken, match="does not match its key"):
        _client(JWKS(ring)).verify(token)


def test_jwks_keys_outside_the_allow_list_are_ignored(ring: KeyRing) -> None:
    secret = {"kty": "oct", "kid": "hs", "alg": "HS256", "k": "c2VjcmV0"}
    wrong_shape = {**ring.jwks()["keys"][0], "kid": "es", "alg": "ES256"}  # RSA key as ES256
    jwks = JWKS(KeyRing([new_key("RS256")]), extra=[secret, wrong_shape])
    assert _client(jwks).keys.key("hs") is None
    assert _client(jwks).keys.key("es") is None


def test_an_unreadable_jwks_is_unavailable_and_not_hammered(ring: KeyRing) -> None:
    jwks = JWKS(ring)
    jwks.status = 500
    now = [0.0]
    delegauth = _client(jwks, monotonic=lambda: now[0], jwks_min_refetch_s=10)
    token = _sign(ring, _claims())
    for _ in range(5):
        with pytest.raises(KeysUnavailable):
            delegauth.verify(token)
    assert jwks.fetches == 1
    jwks.status = 200
    now[0] += 10
    assert delegauth.verify(token).sub == "u_a"
    assert jwks.fetches == 2
    # A cached set older than its max age is fetched again.
    now[0] += 300
    delegauth.verify(token)
    assert jwks.fetches == 3
