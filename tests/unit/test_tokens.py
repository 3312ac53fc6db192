"""Attacks on access-token verification (RFC 9068 profile, RFC 8725 best practices).

Each forged token differs from a valid one in exactly one respect, and every rejection must
be ``Unauthenticated``. Where PyJWT on its own would accept the forgery, the test first proves
that with ``_pyjwt_accepts``: then only delegauth's own check stands between the attacker and
a session, and removing that check makes the test fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given
from hypothesis import strategies as st

from delegauth.errors import Unauthenticated
from delegauth.tokens import LEEWAY_SECONDS, REQUIRED_CLAIMS, KeyRing, TokenService

ISSUER = "https://delegauth.test"
# Deliberately not the issuer, so a token with the two swapped is caught.
AUDIENCE = "https://api.delegauth.test"
LIFETIME = 600
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# -- builders --------------------------------------------------------------------------------


def _service(keys: KeyRing, clock: Callable[[], float] = time.time) -> TokenService:
    return TokenService(keys, ISSUER, AUDIENCE, lifetime_s=LIFETIME, clock=clock)


def _claims(*, drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """Valid access-token claims as of now, with ``overrides`` applied and ``drop`` removed."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "u_alice",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "client_id": "tests",
        "scope": "openid",
    }
    claims.update(overrides)
    for name in drop:
        del claims[name]
    return claims


def _headers(keys: KeyRing, **overrides: Any) -> dict[str, Any]:
    """The headers delegauth itself signs with; an override of None removes that header."""
    headers: dict[str, Any] = {"typ": "at+jwt", "kid": keys.current.kid, **overrides}
    return {name: value for name, value in headers.items() if value is not None}


def _forge(keys: KeyRing, claims: dict[str, Any] | None = None, **headers: Any) -> str:
    """Sign with the real private key through PyJWT."""
    hdrs = _headers(keys, **headers)
    if "typ" not in hdrs:
        hdrs["typ"] = None  # PyJWT adds typ: JWT unless told not to
    return jwt.encode(
        claims if claims is not None else _claims(),
        keys.current.private(),
        algorithm="RS256",
        headers=hdrs,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _sign_raw(keys: KeyRing, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """RS256 by hand, for headers PyJWT's encoder would rewrite."""
    signing_input = f"{_segment(header)}.{_segment(claims)}".encode("ascii")
    signature = keys.current.private().sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode('ascii')}.{_b64(signature)}"


def _pyjwt_accepts(keys: KeyRing, token: str) -> bool:
    """Whether PyJWT alone, with every claim check on, would accept ``token``."""
    found = keys.public_key(keys.current.kid)
    assert found is not None
    try:
        jwt.decode(
            token,
            found[1],
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.PyJWTError:
        return False
    return True


@pytest.fixture
def service(keyring: KeyRing) -> TokenService:
    return _service(keyring)


# -- what must pass --------------------------------------------------------------------------


def test_an_issued_token_round_trips(keyring: KeyRing, service: TokenService) -> None:
    token = service.issue(
        sub="u_alice",
        client_id="portal",
        scope=["openid", "profile"],
        area="a_main",
        role="owner",
        permissions="all",
    )

    claims = service.verify(token)

    payload = jwt.decode(token, options={"verify_signature": False})
    assert claims.sub == "u_alice"
    assert claims.user_id == "u_alice"
    assert claims.client_id == "portal"
    assert claims.scope == frozenset({"openid", "profile"})
    assert claims.area == "a_main"
    assert claims.jti == payload["jti"] and len(claims.jti) >= 16
    assert claims.exp == payload["iat"] + LIFETIME
    assert jwt.get_unverified_header(token) == {
        "alg": "RS256",
        "typ": "at+jwt",
        "kid": keyring.current.kid,
    }
    assert (
        service.verify(service.issue(sub="u_alice", client_id="portal", scope=[])).jti != claims.jti
    )


def test_a_token_without_an_area_round_trips(service: TokenService) -> None:
    claims = service.verify(service.issue(sub="billing", client_id="billing", scope=["decisions"]))

    assert claims.area is None
    assert claims.user_id is None  # not a u_ subject: a service, not a person
    assert claims.scope == frozenset({"decisions"})


def test_the_forged_baseline_is_accepted(keyring: KeyRing, service: TokenService) -> None:
    """Every forgery below changes one thing in this token, which is valid as it stands."""
    token = _forge(keyring)

    assert _pyjwt_accepts(keyring, token)
    assert service.verify(token).sub == "u_alice"
    assert service.verify(_sign_raw(keyring, {"alg": "RS256", **_headers(keyring)}, _claims()))


# -- algorithm attacks -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_rejected(keyring: KeyRing, service: TokenService, alg: str) -> None:
    header = {"alg": alg, **_headers(keyring)}
    token = f"{_segment(header)}.{_segment(_claims())}."

    with pytest.raises(Unauthenticated):
        service.verify(token)


@pytest.mark.parametrize(
    "public_format",
    [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1],
)
def test_hs256_signed_with_the_public_key_is_rejected(
    keyring: KeyRing, service: TokenService, public_format: serialization.PublicFormat
) -> None:
    """The key-confusion attack: the public key, which anyone can fetch, as an HMAC secret."""
    public_pem = (
        keyring.current.private()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, public_format)
    )
    header = {"alg": "HS256", **_headers(keyring)}
    signing_input = f"{_segment(header)}.{_segment(_claims())}"
    mac = hmac.new(public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()

    with pytest.raises(Unauthenticated):
        service.verify(f"{signing_input}.{_b64(mac)}")


# -- which key -------------------------------------------------------------------------------


def test_an_unknown_kid_is_rejected(keyring: KeyRing, service: TokenService) -> None:
    with pytest.raises(Unauthenticated):
        service.verify(_forge(keyring, kid="not-a-key-of-ours"))


def test_a_missing_kid_is_rejected(keyring: KeyRing, service: TokenService) -> None:
    """Even though the real key signed it: no kid, no guessing which key to try."""
    token = _forge(keyring, kid=None)

    assert _pyjwt_accepts(keyring, token)
    with pytest.raises(Unauthenticated):
        service.verify(token)


def test_a_token_signed_by_another_keyring_under_our_kid_is_rejected(
    keyring: KeyRing, service: TokenService
) -> None:
    other = KeyRing.generate()
    token = jwt.encode(
        _claims(),
        other.current.private(),
        algorithm="RS256",
        headers=_headers(keyring),  # our kid, their key
    )

    with pytest.raises(Unauthenticated):
        service.verify(token)


def test_a_token_issued_on_another_keyring_is_rejected(service: TokenService) -> None:
    token = _service(KeyRing.generate()).issue(sub="u_alice", client_id="tests", scope=["openid"])

    with pytest.raises(Unauthenticated):
        service.verify(token)


# -- headers that point at other keys, or demand extensions -----------------------------------

_ATTACKER = KeyRing.generate()
_FUZZ_SERVICE = _service(KeyRing.generate())  # hypothesis tests take no function-scoped fixtures

FORBIDDEN = {
    "jku": "https://attacker.example/jwks.json",
    "x5u": "https://attacker.example/cert.pem",
    "jwk": _ATTACKER.current.public_jwk(),
    "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_a_header_naming_another_key_is_rejected(
    keyring: KeyRing, service: TokenService, name: str
) -> None:
    token = _forge(keyring, **{name: FORBIDDEN[name]})

    assert _pyjwt_accepts(keyring, token)  # only delegauth's header check stops it
    with pytest.raises(Unauthenticated):
        service.verify(token)


def test_a_crit_header_is_rejected(keyring: KeyRing, service: TokenService) -> None:
    # b64 is the one extension PyJWT understands, so PyJWT alone accepts this token.
    header = {"alg": "RS256", **_headers(keyring), "crit": ["b64"], "b64": True}
    token = _sign_raw(keyring, header, _claims())

    assert _pyjwt_accepts(keyring, token)
    with pytest.raises(Unauthenticated):
        service.verify(token)


def test_a_crit_header_with_an_unknown_extension_is_rejected(
    keyring: KeyRing, service: TokenService
) -> None:
    header = {
        "alg": "RS256",
        **_headers(keyring),
        "crit": ["urn:example:acr"],
        "urn:example:acr": "1",
    }

    with pytest.raises(Unauthenticated):
        service.verify(_sign_raw(keyring, header, _claims()))


# -- token type ------------------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["JWT", "jwt", "id_token+jwt", "secevent+jwt", None])
def test_a_token_that_is_not_an_access_token_is_rejected(
    keyring: KeyRing, service: TokenService, typ: str | None
) -> None:
    """An ID token (typ JWT) or any other JWT from our key is not an access token."""
    token = _forge(keyring, typ=typ)

    assert _pyjwt_accepts(keyring, token)
    with pytest.raises(Unauthenticated):
        service.verify(token)


# -- audience and issuer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud", [ISSUER, "https://other.example", [], ["https://other.example"], ""]
)
def test_a_wrong_audience_is_rejected(keyring: KeyRing, service: TokenService, aud: Any) -> None:
    with pytest.raises(Unauthenticated):
        service.verify(_forge(keyring, _claims(aud=aud)))


@pytest.mark.parametrize("iss", [AUDIENCE, "https://attacker.example", ISSUER + "/", ""])
def test_a_wrong_issuer_is_rejected(keyring: KeyRing, service: TokenService, iss: str) -> None:
    with pytest.raises(Unauthenticated):
        service.verify(_forge(keyring, _claims(iss=iss)))


# -- time ------------------------------------------------------------------------------------


def _issued_at(offset_s: float) -> Callable[[], float]:
    """A clock ``offset_s`` seconds away from now, for the issuing side."""
    return lambda: time.time() + offset_s


def test_an_expired_token_is_rejected(keyring: KeyRing, service: TokenService) -> None:
    # exp lands a minute before now: well past the leeway.
    issuer = _service(keyring, clock=_issued_at(-LIFETIME - LEEWAY_SECONDS - 30))
    token = issuer.issue(sub="u_alice", client_id="tests", scope=["openid"])

    with pytest.raises(Unauthenticated):
        service.verify(token)


def test_a_token_expired_within_the_leeway_is_accepted(
    keyring: KeyRing, service: TokenService
) -> None:
    """The other side of the boundary: a clock a few seconds fast does not log people out."""
    issuer = _service(keyring, clock=_issued_at(-LIFETIME - LEEWAY_SECONDS // 3))
    token = issuer.issue(sub="u_alice", client_id="tests", scope=["openid"])

    assert service.verify(token).sub == "u_alice"


def test_a_token_issued_in_the_future_is_rejected(keyring: KeyRing, service: TokenService) -> None:
    """A token minted by a clock set ahead, or minted early to be used later, is refused now."""
    issuer = _service(keyring, clock=_issued_at(3600))
    token = issuer.issue(sub="u_alice", client_id="tests", scope=["openid"])

    with pytest.raises(Unauthenticated):
        service.verify(token)


def test_verification_follows_the_injected_clock(keyring: KeyRing) -> None:
    now = [time.time()]
    svc = _service(keyring, clock=lambda: now[0])
    token = svc.issue(sub="u_alice", client_id="tests", scope=["openid"])

    now[0] += LIFETIME + LEEWAY_SECONDS + 60

    with pytest.raises(Unauthenticated):
        svc.verify(token)


# -- claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_a_missing_required_claim_is_rejected(
    keyring: KeyRing, service: TokenService, claim: str
) -> None:
    with pytest.raises(Unauthenticated):
        service.verify(_forge(keyring, _claims(drop=(claim,))))


def test_the_required_claims_are_the_rfc_9068_set() -> None:
    assert set(REQUIRED_CLAIMS) == {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
    }


@pytest.mark.parametrize(("claim", "value"), [("scope", ["openid"]), ("sub", 42)])
def test_a_claim_of_the_wrong_type_is_rejected(
    keyring: KeyRing, service: TokenService, claim: str, value: Any
) -> None:
    with pytest.raises(Unauthenticated):
        service.verify(_forge(keyring, _claims(**{claim: value})))


# -- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c",
        "..",
        "a.b.c.d",
        "Bearer x",
        secrets.token_bytes(48).decode("latin-1"),
        _b64(secrets.token_bytes(48)),
        f"{_segment({'alg': 'RS256', 'typ': 'at+jwt'})}.e30.",
        f"{_b64(b'[]')}.e30.",
    ],
)
def test_a_malformed_token_is_rejected(service: TokenService, token: str) -> None:
    with pytest.raises(Unauthenticated):
        service.verify(token)


def test_random_bytes_are_rejected(service: TokenService) -> None:
    token: Any = secrets.token_bytes(64)  # not a str: what a careless caller might pass

    with pytest.raises(Unauthenticated):
        service.verify(token)


# Lone surrogates have their own test below.
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200))
def test_no_string_escapes_as_anything_but_unauthenticated(token: str) -> None:
    with pytest.raises(Unauthenticated):
        _FUZZ_SERVICE.verify(token)


@pytest.mark.parametrize("token", ["\ud800", "a.\udfff.c"])
def test_a_lone_surrogate_is_rejected(service: TokenService, token: str) -> None:
    """json.loads turns "\\ud800" into such a string, so a token read from JSON could hold one."""
    with pytest.raises(Unauthenticated):
        service.verify(token)


@given(st.lists(st.text(alphabet="AZaz09-_=", max_size=40), min_size=1, max_size=5))
def test_no_dotted_string_escapes_as_anything_but_unauthenticated(parts: list[str]) -> None:
    with pytest.raises(Unauthenticated):
        _FUZZ_SERVICE.verify(".".join(parts))


# -- keys on disk and the published JWKS ------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_load_or_create_writes_one_private_key_readable_only_by_us(tmp_path: Path) -> None:
    directory = tmp_path / "keys"

    ring = KeyRing.load_or_create(directory)

    files = list(directory.glob("*.pem"))
    assert len(files) == 1
    assert _mode(files[0]) == 0o600
    assert _mode(directory) == 0o700
    assert files[0].name.endswith(f"-{ring.current.kid}.RS256.pem")


def test_load_or_create_loads_the_same_key_again(tmp_path: Path) -> None:
    first = KeyRing.load_or_create(tmp_path / "keys")

    second = KeyRing.load_or_create(tmp_path / "keys")

    assert second.current.kid == first.current.kid
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 1
    token = _service(first).issue(sub="u_alice", client_id="tests", scope=["openid"])
    assert _service(second).verify(token).sub == "u_alice"  # survives a restart


@pytest.mark.parametrize("source", ["generate", "load_or_create"])
def test_the_jwks_holds_only_public_members(tmp_path: Path, source: str) -> None:
    ring = KeyRing.generate() if source == "generate" else KeyRing.load_or_create(tmp_path)

    jwks = ring.jwks()

    assert len(jwks["keys"]) == 1
    (key,) = jwks["keys"]
    assert not PRIVATE_JWK_MEMBERS & set(key), key
    assert set(key) <= {"kty", "n", "e", "kid", "alg", "use", "key_ops"}
    assert key.get("key_ops", ["verify"]) == ["verify"]  # PyJWT's to_jwk adds it
    assert (key["kty"], key["alg"], key["use"], key["kid"]) == (
        "RSA",
        "RS256",
        "sig",
        ring.current.kid,
    )


def test_the_jwks_verifies_issued_tokens(keyring: KeyRing, service: TokenService) -> None:
    """What a resource server does with /.well-known/jwks.json."""
    token = service.issue(sub="u_alice", client_id="tests", scope=["openid"])
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [k for k in keyring.jwks()["keys"] if k["kid"] == kid]

    payload = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=AUDIENCE)

    assert payload["sub"] == "u_alice"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_each_algorithm_signs_and_verifies_and_pins_itself(algorithm: str) -> None:
    ring = KeyRing.generate(algorithm)
    service = _service(ring)
    token = service.issue(sub="u_alice", client_id="tests", scope=["openid"])
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert service.verify(token).sub == "u_alice"
    (jwk,) = ring.jwks()["keys"]
    assert jwk["alg"] == algorithm and not PRIVATE_JWK_MEMBERS & set(jwk)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_tokens_are_the_bytes_pyjwt_would_sign(algorithm: str) -> None:
    """Signing skips jwt.encode's per-call work but not its output: the same header and
    payload segments, and a signature PyJWT verifies (RS256 and EdDSA are deterministic,
    so there the whole token is the same)."""
    ring = KeyRing.generate(algorithm)
    service = _service(ring)
    key = ring.current
    for token, claims, typ in (
        (*service.issue_access(sub="u_alice", client_id="tests", scope=["openid"]), "at+jwt"),
        (
            *service.issue_access(
                sub="u_bob",
                client_id="web",
                scope=["openid", "areas"],
                area="a_1",
                role="delegate",
                permissions=["invoices:read", "ñandú"],
            ),
            "at+jwt",
        ),
    ):
        expected = jwt.encode(
            claims, key.private(), algorithm=algorithm, headers={"typ": typ, "kid": key.kid}
        )
        assert token.split(".")[:2] == expected.split(".")[:2]
        if algorithm != "ES256":
            assert token == expected
        public = ring.public_key(key.kid)
        assert public is not None
        assert jwt.decode(token, public[1], algorithms=[algorithm], audience=AUDIENCE) == claims
    id_token = service.issue_id_token(sub="u_alice", client_id="web", nonce="n")
    assert jwt.get_unverified_header(id_token) == {"alg": algorithm, "kid": key.kid, "typ": "JWT"}


def test_rotation_keeps_the_old_key_until_its_tokens_expire(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    directory = tmp_path / "keys"
    old_ring = KeyRing.load_or_create(directory)
    service = _service(old_ring)
    old_token = service.issue(sub="u_alice", client_id="tests", scope=[])
    new_key = KeyRing.rotate(directory, "ES256")
    now[0] = new_key.created + 1
    ring = KeyRing(
        [k for k in _read_all(directory)],
        directory=directory,
        retire_after_s=600,
        clock=lambda: now[0],
    )
    # Right after the rotation both keys are published; the new one signs.
    assert ring.current.kid == new_key.kid
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old_ring.current.kid, new_key.kid}
    assert _service(ring).verify(old_token).sub == "u_alice"
    # Once the overlap has passed, the old key is gone from the JWKS and from verification.
    now[0] = new_key.created + 601
    later = KeyRing(_read_all(directory), retire_after_s=600, clock=lambda: now[0])
    assert [k["kid"] for k in later.jwks()["keys"]] == [new_key.kid]
    with pytest.raises(Unauthenticated):
        _service(later).verify(old_token)


def test_a_running_service_picks_up_a_rotated_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ring = KeyRing.load_or_create(directory)
    rotated = KeyRing.rotate(directory, "RS256")
    other = _service(KeyRing.load_or_create(directory))
    token = other.issue(sub="u_bob", client_id="tests", scope=[])
    assert jwt.get_unverified_header(token)["kid"] == rotated.kid
    # The first service has never seen that kid: it rereads the directory and accepts.
    ring._checked = 0.0  # noqa: SLF001 - skip the refresh rate limit in the test
    assert _service(ring).verify(token).sub == "u_bob"


def _read_all(directory: Path) -> list:
    from delegauth.tokens import _read_keys

    return _read_keys(directory)
