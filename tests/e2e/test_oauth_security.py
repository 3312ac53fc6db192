"""Attacks on the login flow: PKCE downgrade, redirect-URI variants, code replay,
refresh reuse, open redirects, CSRF and sign-in guessing."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.conftest import PASSWORD
from tests.e2e.browser import Browser, parse
from tests.e2e.conftest import REDIRECT, Server
from tests.e2e.test_oauth import _signup
from tests.e2e.test_revocation import _each_worker_has_read


def _signed_in(server: Server, email: str) -> Browser:
    browser = Browser(server.base)
    page = browser.get("/signin")
    res = browser.submit(page, {"email": email, "password": PASSWORD})
    assert res.status_code == 303, res.text
    return browser


def _authorize(browser: Browser, **params: str) -> requests.Response:
    base = {
        "response_type": "code",
        "client_id": "web",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "st4te",
    }
    base.update(params)
    return browser.get("/oauth/authorize?" + urlencode({k: v for k, v in base.items() if v}))


def _pkce() -> tuple[str, str]:
    verifier = generate_token(48)
    return verifier, create_s256_code_challenge(verifier)


def test_pkce_is_required_and_plain_is_refused(server: Server, clients: dict) -> None:
    email = f"p-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    browser = _signed_in(server, email)
    _v, challenge = _pkce()
    for extra in (
        {},
        {"code_challenge": challenge, "code_challenge_method": "plain"},
        {"code_challenge": challenge},
    ):
        res = _authorize(browser, **extra)
        assert res.status_code == 302
        query = parse_qs(urlsplit(res.headers["Location"]).query)
        assert query["error"] == ["invalid_request"], (extra, query)
        assert query["state"] == ["st4te"] and "iss" in query
        assert "code" not in query


def test_redirect_uri_must_match_exactly(server: Server, clients: dict) -> None:
    email = f"r-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    browser = _signed_in(server, email)
    _v, challenge = _pkce()
    variants = [
        REDIRECT + "/extra",
        REDIRECT + "x",
        REDIRECT.replace("app.example.com", "APP.example.com"),
        REDIRECT.replace("/callback", "/CALLBACK"),
        REDIRECT.replace("https://", "https://evil@"),
        REDIRECT.replace("https://app.example.com", "https://app.example.com@evil.example"),
        REDIRECT.replace("/callback", "%2Fcallback"),
        REDIRECT.replace("/callback", "/callback%2F..%2Fevil"),
        REDIRECT + "?next=https://evil.example",
        REDIRECT + "#frag",
        "https://evil.example/callback",
    ]
    for uri in variants:
        res = _authorize(
            browser, redirect_uri=uri, code_challenge=challenge, code_challenge_method="S256"
        )
        # Never a redirect anywhere: an error page on our own origin.
        assert res.status_code == 400, (uri, res.status_code, res.headers.get("Location"))
        assert "Location" not in res.headers
    res = _authorize(
        browser, client_id="nope", code_challenge=challenge, code_challenge_method="S256"
    )
    assert res.status_code == 400 and "Location" not in res.headers


def _code(server: Server, browser: Browser, challenge: str) -> str:
    res = _authorize(browser, code_challenge=challenge, code_challenge_method="S256")
    assert res.status_code == 302, res.text
    return parse_qs(urlsplit(res.headers["Location"]).query)["code"][0]


def _token(clients: dict, server: Server, **data: str) -> requests.Response:
    web = clients["web"]
    return requests.post(
        server.url("/oauth/token"),
        auth=(web["client_id"], web["client_secret"]),
        data=data,
        timeout=10,
    )


def _fresh_tokens(server: Server, clients: dict, prefix: str) -> dict:
    """A new user signed in through the code flow: the token response for client "web"."""
    email = f"{prefix}-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    browser = _signed_in(server, email)
    verifier, challenge = _pkce()
    code = _code(server, browser, challenge)
    res = _token(
        clients,
        server,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_code_replay_revokes_what_it_issued(server: Server, clients: dict) -> None:
    email = f"c-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    browser = _signed_in(server, email)
    verifier, challenge = _pkce()
    code = _code(server, browser, challenge)
    first = _token(
        clients,
        server,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert first.status_code == 200, first.text
    replay = _token(
        clients,
        server,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The refresh token from the first redemption is dead, and so is its access token.
    res = _token(
        clients, server, grant_type="refresh_token", refresh_token=first.json()["refresh_token"]
    )
    assert res.status_code == 400
    web = clients["web"]
    res = requests.post(
        server.url("/oauth/introspect"),
        timeout=10,
        auth=(web["client_id"], web["client_secret"]),
        data={"token": first.json()["access_token"]},
    )
    assert res.json() == {"active": False}


def test_wrong_verifier_and_wrong_client(server: Server, clients: dict) -> None:
    email = f"v-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    browser = _signed_in(server, email)
    _verifier, challenge = _pkce()
    code = _code(server, browser, challenge)
    res = _token(
        clients,
        server,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=generate_token(48),
    )
    assert res.status_code == 400 and res.json()["error"] == "invalid_grant"
    res = _token(clients, server, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert res.status_code == 400


def test_refresh_reuse_revokes_the_family(server: Server, clients: dict) -> None:
    tok = _fresh_tokens(server, clients, "f")
    second = _token(clients, server, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    assert second.status_code == 200
    reuse = _token(clients, server, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    assert reuse.status_code == 400
    # The whole family is gone, including the newest refresh token.
    res = _token(
        clients, server, grant_type="refresh_token", refresh_token=second.json()["refresh_token"]
    )
    assert res.status_code == 400 and res.json()["error"] == "invalid_grant"


def test_prompt_select_account_and_area_hint(server: Server, clients: dict) -> None:
    email = f"s-{secrets.token_hex(4)}@example.com"
    uid, area = _signup(server, email)
    browser = _signed_in(server, email)
    _v, challenge = _pkce()
    res = _authorize(
        browser, code_challenge=challenge, code_challenge_method="S256", prompt="select_account"
    )
    assert res.status_code == 200 and 'name="area"' in res.text
    assert res.headers["Referrer-Policy"] == "no-referrer"
    csp = res.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp  # our one file, never inline
    radios = parse(res.text).forms[0]["radios"]
    assert [r["value"] for r in radios] == [area]
    # A chooser post without the session's CSRF token is refused.
    res2 = requests.post(
        server.url("/oauth/authorize"),
        cookies=browser.s.cookies,
        data={
            **{f["name"]: f.get("value", "") for f in parse(res.text).forms[0]["fields"]},
            "csrf": "forged",
            "area": area,
        },
        allow_redirects=False,
        timeout=10,
    )
    assert res2.status_code == 403
    # An area the user cannot reach is refused, not silently replaced.
    other = _signup(server, f"o-{secrets.token_hex(4)}@example.com")
    res3 = browser.submit(res, {"area": other[1]})
    assert res3.status_code == 400


def test_signin_open_redirects_csrf_and_rate_limit(server: Server) -> None:
    email = f"l-{secrets.token_hex(4)}@example.com"
    _signup(server, email)
    for target in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/oauth/authorize\r\nLocation: https://evil.example",
    ):
        browser = Browser(server.base)
        page = browser.get("/signin?" + urlencode({"return_to": target}))
        res = browser.submit(page, {"email": email, "password": PASSWORD})
        assert res.status_code == 303
        assert res.headers["Location"] == "/", target
    # Without the CSRF cookie the form is refused.
    res = requests.post(
        server.url("/signin"),
        data={"email": email, "password": PASSWORD, "csrf": "x" * 32},
        allow_redirects=False,
        timeout=10,
    )
    assert res.status_code == 403
    # Five failures lock the account's sign-in for a while, even with the right password.
    victim = f"v-{secrets.token_hex(4)}@example.com"
    _signup(server, victim)
    browser = Browser(server.base)
    for _ in range(5):
        page = browser.get("/signin")
        assert (
            browser.submit(page, {"email": victim, "password": "wrong password!"}).status_code
            == 401
        )
    page = browser.get("/signin")
    res = browser.submit(page, {"email": victim, "password": PASSWORD})
    assert res.status_code == 429


def test_pages_have_labels_and_speak_spanish(server: Server) -> None:
    browser = Browser(server.base, language="es-ES,es;q=0.9")
    page = browser.get("/signin")
    assert page.status_code == 200
    assert '<html lang="es">' in page.text and "Iniciar sesión" in page.text
    forms = parse(page.text)
    named = {f["name"]: f.get("id") for f in forms.forms[0]["fields"] if f.get("type") != "hidden"}
    assert set(named) == {"email", "password"}
    for field_id in named.values():
        assert forms.labels.get(field_id), field_id
    assert page.headers["Referrer-Policy"] == "no-referrer"
    signup = Browser(server.base).get("/signup")
    assert 'name="password"' in signup.text and "Create your account" in signup.text


def test_revocation_endpoint(server: Server, clients: dict) -> None:
    tok = _fresh_tokens(server, clients, "rv")
    web = clients["web"]
    billing = clients["billing"]

    def introspect(token: str) -> dict:
        return requests.post(
            server.url("/oauth/introspect"),
            timeout=10,
            auth=("billing", billing["client_secret"]),
            data={"token": token},
        ).json()

    assert introspect(tok["access_token"])["active"] is True
    assert introspect(tok["refresh_token"])["active"] is True
    # Another client cannot revoke it (RFC 7009 §2.1): answered 200, nothing happens.
    res = requests.post(
        server.url("/oauth/revoke"),
        auth=("billing", billing["client_secret"]),
        data={"token": tok["access_token"]},
        timeout=10,
    )
    assert res.status_code == 200
    assert introspect(tok["access_token"])["active"] is True
    res = requests.post(
        server.url("/oauth/revoke"),
        auth=(web["client_id"], web["client_secret"]),
        data={"token": tok["access_token"]},
        timeout=10,
    )
    assert res.status_code == 200
    assert introspect(tok["access_token"]) == {"active": False}
    # Bearer checks consult the revocations too. The worker that revoked refuses the token
    # at once; the server's other worker learns of it from the change log, so /v1/me (which
    # takes no consistency token) may answer 200 there until its follower has read the
    # revocation's version. Once every worker has, the token is refused, every time.
    _each_worker_has_read(server, int(res.json()["policy_version"]))
    for _ in range(8):
        res = requests.get(
            server.url("/v1/me"),
            timeout=10,
            headers={"Authorization": f"Bearer {tok['access_token']}"},
        )
        assert res.status_code == 401
    res = requests.post(
        server.url("/oauth/revoke"),
        auth=(web["client_id"], web["client_secret"]),
        data={"token": tok["refresh_token"], "token_type_hint": "refresh_token"},
        timeout=10,
    )
    assert res.status_code == 200
    assert introspect(tok["refresh_token"]) == {"active": False}
    res = _token(clients, server, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    assert res.status_code == 400


def test_narrowing_a_grant_ends_refresh_and_old_tokens(server: Server, clients: dict) -> None:
    from tests.e2e.test_oauth import _invite_and_accept, _login

    owner_email = f"n-{secrets.token_hex(4)}@example.com"
    helper_email = f"nh-{secrets.token_hex(4)}@example.com"
    owner = _signup(server, owner_email)
    helper = _signup(server, helper_email)
    otok = _invite_and_accept(
        server, clients, owner_email, owner, helper_email, helper, ["invoices", "tickets"]
    )
    _s, tok, _page = _login(
        server, Browser(server.base), clients["web"], helper_email, choose=owner[1]
    )
    res = requests.patch(
        server.url(f"/v1/areas/{owner[1]}/members/{helper[0]}"),
        timeout=10,
        headers={"Authorization": f"Bearer {otok}"},
        json={"permissions": ["tickets"]},
    )
    assert res.status_code == 200
    res = _token(clients, server, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    assert res.status_code == 400
    res = requests.post(
        server.url("/oauth/introspect"),
        timeout=10,
        auth=("billing", clients["billing"]["client_secret"]),
        data={"token": tok["access_token"]},
    )
    assert res.json() == {"active": False}


def test_signup_page_with_an_invitation_token_verifies_the_email(
    server: Server, module_minter
) -> None:
    owner = _signup(server, f"io-{secrets.token_hex(4)}@example.com")
    invitee = f"inv-{secrets.token_hex(4)}@example.com"
    otok = module_minter.issue(sub=owner[0], client_id="t", scope=[], area=owner[1])
    res = requests.post(
        server.url(f"/v1/areas/{owner[1]}/invitations"),
        timeout=10,
        headers={"Authorization": f"Bearer {otok}"},
        json={"email": invitee, "permissions": ["tickets"]},
    )
    assert res.status_code == 201
    # Read the emailed token from the outbox (this server logs mail instead of sending it).
    import re

    from delegauth.storage.db import open_database
    from delegauth.storage.records import MailRecord, database_proxy

    db = open_database(server.env["DELEGAUTH_DATABASE_URL"])
    database_proxy.initialize(db)
    with db.connection_context():
        mail = MailRecord.select().where(MailRecord.to == invitee).get()
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.text).group(1)  # type: ignore[union-attr]
    browser = Browser(server.base)
    page = browser.get("/signup?" + urlencode({"invitation_token": token}))
    res = browser.submit(page, {"email": invitee, "password": PASSWORD, "name": "Ines"})
    assert res.status_code == 303, res.text
    landing = browser.follow(browser.get("/"))
    assert re.fullmatch(r".*/areas/a_[a-z2-7]{26}", landing.url), landing.url  # own area home
    assert "Ines" in landing.text  # signed in as the new person
    # The account is verified: the invitation is listed for it and can be accepted.
    mine = browser.get("/invitations")
    assert mine.status_code == 200 and "Accept Invitation" in mine.text
    from delegauth.storage.records import UserRecord

    with db.connection_context():
        user = UserRecord.get(UserRecord.email == invitee)
    assert user.email_verified is True


def test_area_hint_preselects_a_reachable_area(server: Server, clients: dict) -> None:
    from tests.e2e.test_oauth import _invite_and_accept

    owner_email = f"ho-{secrets.token_hex(4)}@example.com"
    helper_email = f"hh-{secrets.token_hex(4)}@example.com"
    owner = _signup(server, owner_email)
    helper = _signup(server, helper_email)
    _invite_and_accept(server, clients, owner_email, owner, helper_email, helper, ["tickets"])
    browser = _signed_in(server, helper_email)
    _v, challenge = _pkce()
    for hint, expected in (
        (owner[1], owner[1]),
        (helper[1], helper[1]),
        ("a_" + "z" * 26, helper[1]),
    ):
        res = _authorize(browser, code_challenge=challenge, code_challenge_method="S256", area=hint)
        assert res.status_code == 200
        radios = parse(res.text).forms[0]["radios"]
        assert [r["value"] for r in radios if "checked" in r] == [expected], hint
