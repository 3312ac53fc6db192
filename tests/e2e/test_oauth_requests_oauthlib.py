"""The login and service flows driven by an unmodified requests-oauthlib client.

The same real server as tests/e2e/test_oauth.py (its fixtures and helpers): authorization
code with PKCE (requests-oauthlib's own ``pkce="S256"``) for a user who can reach two
Client Areas and picks one, refresh, client credentials through ``BackendApplicationClient``;
every access token verified with PyJWT's PyJWKClient against the served JWKS.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from oauthlib.oauth2 import BackendApplicationClient, InvalidGrantError
from requests_oauthlib import OAuth2Session

from tests.e2e.browser import Browser, parse
from tests.e2e.conftest import Server
from tests.e2e.test_oauth import _authorize_in_browser, _invite_and_accept, _signup, _verify

SCOPE = ["openid", "profile", "email", "offline_access"]


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses plain http token endpoints unless told; the server is on loopback."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _session(client: dict[str, Any], **kw: Any) -> OAuth2Session:
    return OAuth2Session(
        client["client_id"],
        redirect_uri=client["redirect_uris"][0],
        scope=SCOPE,
        pkce="S256",
        **kw,
    )


def _checked(server: Server, token: str) -> dict[str, Any]:
    """The claims of ``token`` verified by PyJWKClient (iss, aud, typ), with a live exp."""
    claims = _verify(server, token)
    assert claims["exp"] > time.time()
    return claims


def test_code_flow_with_pkce_refresh_and_client_credentials(server: Server, clients: dict) -> None:
    owner_email = f"ro-{secrets.token_hex(4)}@example.com"
    helper_email = f"rh-{secrets.token_hex(4)}@example.com"
    owner = _signup(server, owner_email)
    helper = _signup(server, helper_email)
    _invite_and_accept(server, clients, owner_email, owner, helper_email, helper, ["invoices"])
    web = clients["web"]
    authorize, token_url = server.url("/oauth/authorize"), server.url("/oauth/token")

    # The helper reaches two areas and picks the owner's in the chooser.
    session = _session(web)
    url, state = session.authorization_url(authorize)
    assert "code_challenge_method=S256" in url and "code_challenge=" in url
    location, chooser = _authorize_in_browser(
        Browser(server.base), url, web, helper_email, choose=owner[1]
    )
    radios = parse(chooser).forms[0]["radios"]
    assert {r["value"] for r in radios} == {helper[1], owner[1]}
    token = session.fetch_token(
        token_url, authorization_response=location, client_secret=web["client_secret"]
    )
    claims = _checked(server, token["access_token"])
    assert (claims["sub"], claims["area"], claims["role"]) == (helper[0], owner[1], "delegate")
    assert claims["permissions"] == ["invoices"] and claims["client_id"] == "web"
    me = session.get(server.url("/v1/me"), timeout=10)  # the session sends its bearer
    assert me.status_code == 200 and me.json()["current_area"] == owner[1]

    # Refresh rotates and stays in the chosen area.
    refreshed = session.refresh_token(
        token_url,
        refresh_token=token["refresh_token"],
        auth=(web["client_id"], web["client_secret"]),
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]
    assert _checked(server, refreshed["access_token"])["area"] == owner[1]
    # The rotated-out refresh token is refused, as requests-oauthlib reports it.
    with pytest.raises(InvalidGrantError):
        session.refresh_token(
            token_url,
            refresh_token=token["refresh_token"],
            auth=(web["client_id"], web["client_secret"]),
        )

    # A backend service: client credentials through BackendApplicationClient.
    billing = clients["billing"]
    service = OAuth2Session(client=BackendApplicationClient(client_id=billing["client_id"]))
    svc = service.fetch_token(
        token_url,
        client_id=billing["client_id"],
        client_secret=billing["client_secret"],
        scope=["decisions"],
    )
    svc_claims = _checked(server, svc["access_token"])
    assert svc_claims["sub"] == "billing" and svc_claims["scope"] == "decisions"
    assert "area" not in svc_claims and "refresh_token" not in svc
    decision = service.post(
        server.url("/access/v1/evaluation"),
        json={
            "subject": {"type": "user", "id": helper[0]},
            "action": {"name": "pay"},
            "resource": {"type": "invoice", "id": "1", "properties": {"area": owner[1]}},
        },
        timeout=10,
    )
    assert decision.status_code == 200 and decision.json() == {"decision": True}


def test_a_wrong_code_verifier_is_refused(server: Server, clients: dict) -> None:
    """PKCE is enforced at the token endpoint: a code redeemed with another session's
    verifier is refused (invalid_grant), and no token is handed out."""
    email = f"rv-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    web = clients["web"]
    authorize, token_url = server.url("/oauth/authorize"), server.url("/oauth/token")

    session = _session(web)
    url, state = session.authorization_url(authorize)
    location, _chooser = _authorize_in_browser(Browser(server.base), url, web, email)
    # Another session, same state, with its own verifier (from its own authorization URL).
    other = _session(web)
    other.authorization_url(authorize, state=state)
    with pytest.raises(InvalidGrantError):
        other.fetch_token(
            token_url, authorization_response=location, client_secret=web["client_secret"]
        )
    assert not other.token

    # The same walk with the session's own verifier is answered with a token.
    session = _session(web)
    url, state = session.authorization_url(authorize)
    location, _chooser = _authorize_in_browser(Browser(server.base), url, web, email)
    token = session.fetch_token(
        token_url, authorization_response=location, client_secret=web["client_secret"]
    )
    assert _checked(server, token["access_token"])["client_id"] == "web"
