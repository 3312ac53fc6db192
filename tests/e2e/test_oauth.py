"""Login with Client Area selection, driven from outside by Authlib's OAuth client.

A real server on a loopback port; tokens verified with PyJWT's PyJWKClient against
the served JWKS.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import BaseApp, OAuth2Mixin, OAuthError, OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session

from tests.conftest import PASSWORD, POLICIES
from tests.e2e.browser import Browser, parse
from tests.e2e.conftest import ISSUER, REDIRECT, Server, _cli, free_port, start_server


def _signup(server: Server, email: str) -> tuple[str, str]:
    res = requests.post(
        server.url("/v1/signup"), json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert res.status_code == 201, res.text
    return res.json()["user"]["id"], res.json()["area"]["id"]


def _oauth(server: Server, client: dict[str, Any], **kw: Any) -> OAuth2Session:
    return OAuth2Session(
        client["client_id"],
        client.get("client_secret"),
        redirect_uri=client["redirect_uris"][0],
        code_challenge_method="S256",
        **kw,
    )


def _login(
    server: Server,
    browser: Browser,
    client: dict[str, Any],
    email: str,
    scope: str = "openid profile email offline_access",
    choose: str | None = None,
    extra: dict[str, str] | None = None,
) -> tuple[OAuth2Session, dict[str, Any], str]:
    """Walk authorize, sign-in, chooser; return the session, the token and the chooser page."""
    session = _oauth(server, client, scope=scope)
    verifier = generate_token(48)
    url, state = session.create_authorization_url(
        server.url("/oauth/authorize"), code_verifier=verifier, **(extra or {})
    )
    location, chooser = _authorize_in_browser(browser, url, client, email, choose)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    assert query["iss"] == [ISSUER]
    token = session.fetch_token(
        server.url("/oauth/token"), authorization_response=location, code_verifier=verifier
    )
    return session, dict(token), chooser


def _authorize_in_browser(
    browser: Browser, url: str, client: dict[str, Any], email: str, choose: str | None = None
) -> tuple[str, str]:
    """Follow an authorization URL (whichever client made it) through sign-in, the Client
    Area chooser (picking ``choose``) and consent; return the redirect back to the client
    and the chooser page ("" when none was shown)."""
    res = browser.follow(browser.get(url), stop_at=client["redirect_uris"][0])
    if "/signin" in res.url and res.status_code == 200:
        res = browser.follow(
            browser.submit(res, {"email": email, "password": PASSWORD}),
            stop_at=client["redirect_uris"][0],
        )
    chooser = ""
    if res.status_code == 200:
        chooser = res.text
        values = {"area": choose} if choose else {}
        button = ("consent", "allow") if "consent" in res.text else None
        res = browser.submit(res, values, button)
    assert res.status_code == 302, res.text[:2000]
    location = res.headers["Location"]
    assert location.startswith(client["redirect_uris"][0])
    return location, chooser


def _verify(server: Server, token: str) -> dict[str, Any]:
    jwks = jwt.PyJWKClient(server.url("/.well-known/jwks.json"))
    key = jwks.get_signing_key_from_jwt(token)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    return dict(jwt.decode(token, key.key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER))


def _flow_token(server: Server, clients: dict, email: str) -> str:
    """An access token obtained through the real flow (a user with a single area)."""
    _session, token, _page = _login(server, Browser(server.base), clients["web"], email)
    return str(token["access_token"])


def _invite_and_accept(
    server: Server,
    clients: dict,
    owner_email: str,
    owner: tuple[str, str],
    email: str,
    user: tuple[str, str],
    perms: Any,
) -> str:
    """Invite ``email`` and accept, with tokens from the real flow; return the owner's token."""
    otok = _flow_token(server, clients, owner_email)
    res = requests.post(
        server.url(f"/v1/areas/{owner[1]}/invitations"),
        timeout=10,
        headers={"Authorization": f"Bearer {otok}"},
        json={"email": email, "permissions": perms},
    )
    assert res.status_code == 201, res.text
    inv = res.json()["invitation"]["id"]
    # Verify the invitee's email straight in the database (the mail flow has its own tests).
    from delegauth.storage.db import open_database
    from delegauth.storage.records import UserRecord, database_proxy

    db = open_database(server.env["DELEGAUTH_DATABASE_URL"])
    database_proxy.initialize(db)
    with db.connection_context():
        UserRecord.update(email_verified=True).where(UserRecord.id == user[0]).execute()
    utok = _flow_token(server, clients, email)
    res = requests.post(
        server.url(f"/v1/invitations/{inv}/accept"),
        timeout=10,
        headers={"Authorization": f"Bearer {utok}"},
    )
    assert res.status_code == 201, res.text
    return otok


def test_discovery_and_jwks(server: Server) -> None:
    meta = requests.get(server.url("/.well-known/oauth-authorization-server"), timeout=10).json()
    assert meta["issuer"] == ISSUER
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    oidc = requests.get(server.url("/.well-known/openid-configuration"), timeout=10).json()
    assert oidc["id_token_signing_alg_values_supported"] == ["ES256"]  # the default
    jwks = requests.get(server.url("/.well-known/jwks.json"), timeout=10).json()
    assert jwks["keys"] and all("d" not in k and "p" not in k for k in jwks["keys"])


def test_single_area_user_gets_no_chooser(server: Server, clients: dict) -> None:
    email = f"solo-{secrets.token_hex(4)}@example.com"
    uid, area = _signup(server, email)
    _s, token, chooser = _login(server, Browser(server.base), clients["web"], email)
    assert chooser == ""
    claims = _verify(server, token["access_token"])
    assert (claims["sub"], claims["area"], claims["role"]) == (uid, area, "owner")
    assert claims["permissions"] == "all" and claims["client_id"] == "web"
    assert "refresh_token" in token and "id_token" in token
    idt = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert idt["aud"] == "web" and idt["sub"] == uid
    # The ID token is not an access token.
    res = requests.get(
        server.url("/v1/me"), headers={"Authorization": f"Bearer {token['id_token']}"}, timeout=10
    )
    assert res.status_code == 401
    me = requests.get(
        server.url("/v1/me"),
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 200 and me.json()["current_area"] == area
    info = requests.get(
        server.url("/oauth/userinfo"),
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert info.json()["email"] == email


def test_chooser_refresh_exchange_and_removal(server: Server, clients: dict) -> None:
    owner_email = f"owner-{secrets.token_hex(4)}@example.com"
    helper_email = f"helper-{secrets.token_hex(4)}@example.com"
    owner = _signup(server, owner_email)
    helper = _signup(server, helper_email)
    otok = _invite_and_accept(
        server, clients, owner_email, owner, helper_email, helper, ["invoices"]
    )

    browser = Browser(server.base)
    session, token, chooser = _login(server, browser, clients["web"], helper_email, choose=owner[1])
    form = parse(chooser)
    assert [r["value"] for r in form.forms[0]["radios"]] == [helper[1], owner[1]]
    assert all(r.get("name") == "area" for r in form.forms[0]["radios"])
    claims = _verify(server, token["access_token"])
    assert (claims["area"], claims["role"], claims["permissions"]) == (
        owner[1],
        "delegate",
        ["invoices"],
    )

    # A backend service decides with its own client-credentials token.
    svc = OAuth2Session("billing", clients["billing"]["client_secret"], scope="decisions")
    svc_token = svc.fetch_token(server.url("/oauth/token"), grant_type="client_credentials")
    decision = lambda: requests.post(  # noqa: E731
        server.url("/access/v1/evaluation"),
        timeout=10,
        headers={"Authorization": f"Bearer {svc_token['access_token']}"},
        json={
            "subject": {"type": "user", "id": helper[0]},
            "action": {"name": "pay"},
            "resource": {"type": "invoice", "id": "1", "properties": {"area": owner[1]}},
        },
    ).json()["decision"]
    assert decision() is True

    # Token exchange: switch to the helper's own area without signing in again.
    web = clients["web"]
    res = requests.post(
        server.url("/oauth/token"),
        auth=(web["client_id"], web["client_secret"]),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token["access_token"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": helper[1],
        },
        timeout=10,
    )
    assert res.status_code == 200, res.text
    assert _verify(server, res.json()["access_token"])["area"] == helper[1]
    stranger = _signup(server, f"x-{secrets.token_hex(4)}@example.com")
    res = requests.post(
        server.url("/oauth/token"),
        auth=(web["client_id"], web["client_secret"]),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token["access_token"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": stranger[1],
        },
        timeout=10,
    )
    assert res.status_code == 400 and res.json()["error"] == "invalid_target"
    res = requests.post(
        server.url("/oauth/token"),
        auth=(web["client_id"], web["client_secret"]),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token["access_token"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": helper[1],
            "scope": "openid decisions",
        },
        timeout=10,
    )
    assert res.status_code == 400 and res.json()["error"] == "invalid_scope"

    # Refresh rotates.
    refreshed = session.refresh_token(
        server.url("/oauth/token"), refresh_token=token["refresh_token"]
    )
    assert refreshed["refresh_token"] != token["refresh_token"]

    # The owner removes the helper: refresh refused, introspection inactive, decision deny.
    res = requests.delete(
        server.url(f"/v1/areas/{owner[1]}/members/{helper[0]}"),
        timeout=10,
        headers={"Authorization": f"Bearer {otok}"},
    )
    assert res.status_code == 200
    res = requests.post(
        server.url("/oauth/token"),
        auth=(web["client_id"], web["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
        timeout=10,
    )
    assert res.status_code == 400 and res.json()["error"] == "invalid_grant"
    res = requests.post(
        server.url("/oauth/introspect"),
        timeout=10,
        auth=("billing", clients["billing"]["client_secret"]),
        data={"token": refreshed["access_token"]},
    )
    assert res.json() == {"active": False}
    import time

    deadline = time.monotonic() + 10
    while decision() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert decision() is False


def test_third_party_client_shows_consent(server: Server, clients: dict) -> None:
    email = f"tp-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    _s, token, page = _login(
        server, Browser(server.base), clients["thirdparty"], email, scope="openid profile"
    )
    assert 'name="consent"' in page and "openid" in page
    assert "access_token" in token


def test_client_credentials_without_scope_gets_the_registered_scopes(
    server: Server, clients: dict
) -> None:
    """RFC 6749 §3.3: a client that sends no scope gets its registered ones (not none)."""
    billing = clients["billing"]  # registered with "decisions introspect"
    url = server.url("/oauth/token")
    bare = OAuth2Session(billing["client_id"], billing["client_secret"])
    token = bare.fetch_token(url, grant_type="client_credentials")
    assert token["scope"] == "decisions introspect"
    claims = _verify(server, token["access_token"])
    assert claims["scope"] == "decisions introspect" and claims["sub"] == "billing"
    res = requests.post(
        server.url("/access/v1/evaluation"),
        headers={"Authorization": f"Bearer {token['access_token']}"},
        json={
            "subject": {"type": "user", "id": "u_" + "a" * 26},
            "action": {"name": "pay"},
            "resource": {"type": "invoice", "id": "1", "properties": {"area": "a_" + "b" * 26}},
        },
        timeout=10,
    )
    assert res.status_code == 200 and res.json() == {"decision": False}

    narrow = OAuth2Session(billing["client_id"], billing["client_secret"], scope="decisions")
    token = narrow.fetch_token(url, grant_type="client_credentials")
    assert token["scope"] == "decisions"
    assert _verify(server, token["access_token"])["scope"] == "decisions"

    # A scope the client was not registered for is refused, not granted.
    for scope in ("openid", "decisions areas"):
        wider = OAuth2Session(billing["client_id"], billing["client_secret"], scope=scope)
        with pytest.raises(OAuthError) as refused:
            wider.fetch_token(url, grant_type="client_credentials")
        assert refused.value.error == "invalid_scope"


class _RelyingParty(OpenIDMixin, OAuth2Mixin, BaseApp):
    """Authlib's own OpenID Connect client (as its Flask and Django clients assemble it),
    on requests: discovery, code flow with PKCE, and ID token validation."""

    client_cls = OAuth2Session


def _discovery_login(base: str, rp: _RelyingParty, email: str) -> dict[str, Any]:
    """Walk the code flow from the discovery document; return the token response."""
    start = rp.create_authorization_url(REDIRECT)
    browser = Browser(base)
    res = browser.follow(browser.get(start["url"]), stop_at=REDIRECT)
    res = browser.follow(
        browser.submit(res, {"email": email, "password": PASSWORD}), stop_at=REDIRECT
    )
    assert res.status_code == 302, res.text[:2000]
    query = parse_qs(urlsplit(res.headers["Location"]).query)
    assert query["state"] == [start["state"]]
    token = rp.fetch_access_token(
        REDIRECT, code=query["code"][0], code_verifier=start["code_verifier"]
    )
    token["nonce"] = start["nonce"]
    return dict(token)


def test_rs256_id_tokens_match_the_discovery_document(tmp_path: Path) -> None:
    """With RS256 keys (chosen; ES256 is the default), discovery says RS256, and an
    unmodified Authlib client accepts the ID tokens (it refused ES256 ones while discovery
    said RS256)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DELEGAUTH_ISSUER": base,  # so that every endpoint in discovery is reachable
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        "DELEGAUTH_SIGNING_ALGORITHM": "RS256",
    }
    srv = start_server(env, tmp_path / "server.log", workers=1, port=port)
    try:
        web = _cli(
            env, "clients", "create", "web", "--first-party", "--redirect-uri", REDIRECT,
            "--scope", "openid profile email",
        )  # fmt: skip
        email = f"rs-{secrets.token_hex(4)}@example.com"
        uid, area = _signup(srv, email)
        discovery = srv.url("/.well-known/openid-configuration")
        meta = requests.get(discovery, timeout=10).json()
        jwks = requests.get(meta["jwks_uri"], timeout=10).json()
        assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
        assert [k["alg"] for k in jwks["keys"]] == ["RS256"]
        in_use = {k["alg"] for k in jwks["keys"]}
        for name, value in meta.items():
            if name.endswith("_alg_values_supported"):
                assert set(value) <= in_use, name

        rp = _RelyingParty(
            None,
            client_id=web["client_id"],
            client_secret=web["client_secret"],
            server_metadata_url=discovery,
            client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
        )
        token = _discovery_login(base, rp, email)
        assert jwt.get_unverified_header(token["id_token"])["alg"] == "RS256"
        userinfo = rp.parse_id_token(token, nonce=token["nonce"])
        assert (userinfo["sub"], userinfo["email"], userinfo["area"]) == (uid, email, area)
        # The same with PyJWT, trusting only the algorithms the discovery document names.
        key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token["id_token"])
        claims = jwt.decode(
            token["id_token"],
            key.key,
            algorithms=meta["id_token_signing_alg_values_supported"],
            audience="web",
            issuer=base,
        )
        assert claims["sub"] == uid and claims["nonce"] == token["nonce"]

        # After a rotation to EdDSA, discovery names both keys' algorithms, the new first.
        rotated = _cli(env, "keys", "rotate", "--alg", "EdDSA")["rotated"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = requests.get(discovery, timeout=10).json()
            if meta["id_token_signing_alg_values_supported"] != ["RS256"]:
                break
            time.sleep(0.2)
        assert meta["id_token_signing_alg_values_supported"] == ["EdDSA", "RS256"]
        jwks = requests.get(meta["jwks_uri"], timeout=10).json()
        assert {k["kid"]: k["alg"] for k in jwks["keys"]}[rotated] == "EdDSA"
    finally:
        srv.stop()


def test_plain_http_beyond_loopback_needs_the_development_switch(tmp_path: Path) -> None:
    """With DELEGAUTH_INSECURE_HTTP=1 an http issuer on a real host name serves tokens
    (they were all 500 before); without it `serve` refuses to start (tests/functional)."""
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DELEGAUTH_ISSUER": "http://auth.example.test",
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        "DELEGAUTH_INSECURE_HTTP": "1",
    }
    srv = start_server(env, tmp_path / "server.log", workers=1)
    try:
        svc = _cli(env, "clients", "create", "svc", "--grant-type", "client_credentials",
                   "--scope", "decisions")  # fmt: skip
        res = requests.post(
            srv.url("/oauth/token"),
            auth=("svc", svc["client_secret"]),
            data={"grant_type": "client_credentials"},
            timeout=10,
        )
        assert res.status_code == 200, res.text
        claims = jwt.decode(res.json()["access_token"], options={"verify_signature": False})
        assert claims["iss"] == "http://auth.example.test" and claims["scope"] == "decisions"
    finally:
        srv.stop()
