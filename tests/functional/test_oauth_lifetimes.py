"""Lifetimes in the token endpoint, with the clock under test control."""

from __future__ import annotations

import base64
from datetime import timedelta

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from delegauth.domain.tokens import hash_secret
from delegauth.storage.oauth_store import CodeRow, RefreshRow
from tests.conftest import Api

REDIRECT = "https://app.example.com/cb"
VERIFIER = "v" * 50


def _client(api: Api) -> str:
    _row, secret = api.services.clients.create(
        "web",
        redirect_uris=[REDIRECT],
        first_party=True,
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid"],
    )
    assert secret is not None
    return "Basic " + base64.b64encode(f"web:{secret}".encode()).decode()


def _token(api: Api, auth: str, **form: str):  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    return api.client.simulate_post(
        "/oauth/token",
        body=urlencode(form),
        headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
    )


def _code(api: Api, person, clock, code: str = "code-1") -> None:  # type: ignore[no-untyped-def]
    api.services.oauth_store.add_code(
        CodeRow(
            code_hash=hash_secret(code),
            client_id="web",
            user_id=person.user_id,
            area_id=person.area_id,
            redirect_uri=REDIRECT,
            scope="openid",
            nonce=None,
            code_challenge=create_s256_code_challenge(VERIFIER),
            code_challenge_method="S256",
            auth_time=clock(),
            expires_at=clock() + timedelta(minutes=10),
            used_at=None,
            family_id=None,
        )
    )


def test_a_code_lives_ten_minutes(api: Api, clock) -> None:
    auth = _client(api)
    person = api.signup("o@example.com")
    _code(api, person, clock, "late")
    _code(api, person, clock, "early")
    clock.advance(minutes=10, seconds=1)
    res = _token(
        api,
        auth,
        grant_type="authorization_code",
        code="late",
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
    )
    assert res.status_code == 400 and res.json["error"] == "invalid_grant"
    clock.advance(minutes=-1)
    res = _token(
        api,
        auth,
        grant_type="authorization_code",
        code="early",
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
    )
    assert res.status_code == 200, res.text
    assert res.json["expires_in"] == 600


def test_a_refresh_family_has_an_absolute_lifetime(api: Api, clock) -> None:
    auth = _client(api)
    person = api.signup("o@example.com")
    _code(api, person, clock)
    first = _token(
        api,
        auth,
        grant_type="authorization_code",
        code="code-1",
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
    ).json
    # Rotating keeps the family's end: 29 days in, a refresh still works...
    clock.advance(days=29)
    second = _token(api, auth, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200, second.text
    # ...and past 30 days from the sign-in, the rotated token is refused too.
    clock.advance(days=1, seconds=1)
    third = _token(
        api, auth, grant_type="refresh_token", refresh_token=second.json["refresh_token"]
    )
    assert third.status_code == 400 and third.json["error"] == "invalid_grant"


def test_refresh_tokens_are_stored_hashed(api: Api, clock) -> None:
    auth = _client(api)
    person = api.signup("o@example.com")
    _code(api, person, clock)
    tok = _token(
        api,
        auth,
        grant_type="authorization_code",
        code="code-1",
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
    ).json
    row = api.services.oauth_store.get_refresh(hash_secret(tok["refresh_token"]))
    assert isinstance(row, RefreshRow)
    from delegauth.storage.records import RefreshTokenRecord

    with api.services.db.connection_context():
        stored = [r.token_hash for r in RefreshTokenRecord.select()]
    assert tok["refresh_token"] not in stored
