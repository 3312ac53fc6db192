"""delegauth.client against the real server: verification, decisions, cache, guards.

Each test starts from real grants (sign-up, invite, accept over HTTP) and real tokens
(signed with the server's own key directory); decisions come from the running server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import falcon
import falcon.testing
import httpx
import pytest
import requests

from delegauth.client import (
    AccessDenied,
    ASGIMiddleware,
    DecisionUnavailable,
    Delegauth,
    Evaluation,
    ExpiredToken,
    InvalidToken,
    KeysUnavailable,
    Requirement,
    WSGIMiddleware,
)
from delegauth.client.falcon import DelegauthMiddleware, requires
from delegauth.tokens import KeyRing, TokenService
from tests.conftest import POLICIES
from tests.e2e.conftest import ISSUER, Server, _cli, start_server
from tests.e2e.test_oauth import _signup


class FakeClock:
    """A monotonic clock the test moves by hand (for the JWKS refetch interval)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """An owner's area with one delegate holding ``invoices``."""

    server: Server
    minter: TokenService
    owner: str
    area: str
    delegate: str
    delegate_area: str
    granted_at: int  # the policy_version the accept answered with

    def token(self, user: str, area: str | None = None, **claims: Any) -> str:
        area = area or self.area
        role = "owner" if user == self.owner and area == self.area else "delegate"
        perms: Any = "all" if role == "owner" else ["invoices"]
        fields = {"role": role, "permissions": perms, **claims}
        return self.minter.issue(sub=user, client_id="web", scope=["openid"], area=area, **fields)

    def remove_delegate(self) -> int:
        res = requests.delete(
            self.server.url(f"/v1/areas/{self.area}/members/{self.delegate}"),
            headers={"Authorization": f"Bearer {self.token(self.owner)}"},
            timeout=10,
        )
        assert res.status_code == 200, res.text
        return int(res.json()["policy_version"])


def _verify_email(server: Server, user_id: str) -> None:
    from delegauth.storage.db import open_database
    from delegauth.storage.records import UserRecord, database_proxy

    db = open_database(server.env["DELEGAUTH_DATABASE_URL"])
    database_proxy.initialize(db)
    with db.connection_context():
        UserRecord.update(email_verified=True).where(UserRecord.id == user_id).execute()


def _world(server: Server, minter: TokenService) -> World:
    owner, area = _signup(server, f"owner-{secrets.token_hex(4)}@example.com")
    email = f"clerk-{secrets.token_hex(4)}@example.com"
    delegate, delegate_area = _signup(server, email)
    _verify_email(server, delegate)
    world = World(server, minter, owner, area, delegate, delegate_area, 0)
    res = requests.post(
        server.url(f"/v1/areas/{area}/invitations"),
        headers={"Authorization": f"Bearer {world.token(owner)}"},
        json={"email": email, "permissions": ["invoices"]},
        timeout=10,
    )
    assert res.status_code == 201, res.text
    invitation = res.json()["invitation"]["id"]
    res = requests.post(
        server.url(f"/v1/invitations/{invitation}/accept"),
        headers={"Authorization": f"Bearer {world.token(delegate, delegate_area)}"},
        timeout=10,
    )
    assert res.status_code == 201, res.text
    world.granted_at = int(res.json()["policy_version"])
    return world


@pytest.fixture(scope="module")
def service(server: Server) -> dict[str, Any]:
    """The backend service's OAuth client (client credentials, scope decisions)."""
    return _cli(
        server.env,
        "clients",
        "create",
        "orders-service",
        "--grant-type",
        "client_credentials",
        "--scope",
        "decisions",
    )


@pytest.fixture
def world(server: Server, module_minter: TokenService) -> World:
    return _world(server, module_minter)


def _client(server: Server, service: dict[str, Any], **kw: Any) -> Delegauth:
    # A generous bound: the machine running the suite may be loaded (not a speed test).
    kw.setdefault("timeout_s", 20)
    return Delegauth(server.base, service["client_id"], service["client_secret"], **kw)


# Verification


def test_a_token_verifies_with_its_area_role_and_permissions(
    server: Server, service: dict, world: World
) -> None:
    with _client(server, service) as delegauth:  # issuer from the discovery document
        owner = delegauth.verify(world.token(world.owner))
        delegate = delegauth.verify(world.token(world.delegate))
    assert (owner.sub, owner.area, owner.role) == (world.owner, world.area, "owner")
    assert owner.all_permissions and owner.holds("invoices") and owner.holds("domains")
    assert owner.user_id == world.owner and owner.client_id == "web"
    assert (delegate.role, delegate.permissions) == ("delegate", frozenset({"invoices"}))
    assert not delegate.all_permissions and not delegate.holds("domains")


def test_a_token_for_another_issuer_or_audience_is_refused(
    server: Server, service: dict, world: World
) -> None:
    token = world.token(world.owner)
    other_issuer = _client(server, service, issuer="https://other.example")
    with other_issuer, pytest.raises(InvalidToken, match="another issuer"):
        other_issuer.verify(token)
    other_audience = _client(server, service, audience="https://billing.example")
    with other_audience, pytest.raises(InvalidToken, match="another audience"):
        other_audience.verify(token)


def test_an_expired_token_is_refused(server: Server, service: dict, world: World) -> None:
    keys = KeyRing.load_or_create(server.env["DELEGAUTH_KEY_DIR"])
    an_hour_ago = TokenService(keys, ISSUER, ISSUER, clock=lambda: time.time() - 3600)
    old = an_hour_ago.issue(
        sub=world.owner, client_id="web", scope=["openid"], area=world.area, role="owner"
    )
    with _client(server, service) as delegauth:
        with pytest.raises(ExpiredToken):
            delegauth.verify(old)
        # Well within the leeway the same token still verifies.
        lenient = _client(server, service, leeway_s=3600)
        assert lenient.verify(old).sub == world.owner
        lenient.close()
        res = _falcon_client(delegauth).simulate_post(
            "/invoices/7/pay", headers={"Authorization": f"Bearer {old}"}
        )
    assert res.status_code == 401
    assert res.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert "expired" in res.headers["WWW-Authenticate"]


_THROWAWAY: list[TokenService] = []


def _with_kid(kid: str) -> str:
    """A token naming a key id delegauth never had (signed by a throwaway key)."""
    if not _THROWAWAY:
        _THROWAWAY.append(TokenService(KeyRing.generate(), ISSUER, ISSUER))
    token = _THROWAWAY[0].issue(sub="u_x", client_id="web", scope=[])
    header = {"alg": "RS256", "typ": "at+jwt", "kid": kid}
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return ".".join([encoded, *token.split(".")[1:]])


def test_a_rotated_key_is_fetched_once_and_unknown_kids_are_rate_limited(
    server: Server, service: dict, world: World
) -> None:
    clock = FakeClock()
    delegauth = _client(server, service, monotonic=clock, jwks_min_refetch_s=10)
    old_token = world.token(world.owner)
    assert delegauth.verify(old_token).sub == world.owner
    assert delegauth.keys.fetches == 1

    rotated = _cli(server.env, "keys", "rotate")["rotated"]
    # Every server worker looks at its key directory at most every 5 s (KeyRing.refresh).
    time.sleep(5.5)
    jwks = requests.get(server.url("/.well-known/jwks.json"), timeout=10).json()
    assert rotated in {k["kid"] for k in jwks["keys"]}
    new_ring = KeyRing.load_or_create(server.env["DELEGAUTH_KEY_DIR"])
    assert new_ring.current.kid == rotated
    new_token = TokenService(new_ring, ISSUER, ISSUER).issue(
        sub=world.owner, client_id="web", scope=["openid"], area=world.area, role="owner"
    )

    # Within the refetch interval an unknown kid costs delegauth nothing: refused at once.
    with pytest.raises(InvalidToken, match="unknown signing key"):
        delegauth.verify(new_token)
    assert delegauth.keys.fetches == 1
    # After it, one refetch finds the rotated key.
    clock.now += 10
    assert delegauth.verify(new_token).area == world.area
    assert delegauth.keys.fetches == 2
    assert delegauth.verify(old_token).sub == world.owner  # old key still in its overlap
    assert delegauth.keys.fetches == 2

    # A stream of made-up kids: at most one JWKS request per interval.
    clock.now += 10
    for _ in range(20):
        with pytest.raises(InvalidToken, match="unknown signing key"):
            delegauth.verify(_with_kid(secrets.token_hex(8)))
    assert delegauth.keys.fetches == 3
    delegauth.close()


# Decisions


def test_allow_and_deny_single_and_batch(server: Server, service: dict, world: World) -> None:
    with _client(server, service, decision_ttl_s=0) as delegauth:
        assert delegauth.evaluate(world.owner, world.area, "domain", "renew") is True
        assert delegauth.evaluate(world.delegate, world.area, "invoice", "pay", "7") is True
        assert delegauth.evaluate(world.delegate, world.area, "domain", "read") is False
        assert delegauth.evaluate(world.owner, world.delegate_area, "invoice", "pay") is False
        assert delegauth.decisions is not None
        sent = delegauth.decisions.requests
        asked = [
            Evaluation(world.delegate, world.area, "invoice", "read"),
            Evaluation(world.delegate, world.area, "ticket", "reply"),
            Evaluation(world.owner, world.area, "ticket", "reply"),
            Evaluation(world.delegate, world.delegate_area, "ticket", "reply"),
        ]
        assert delegauth.evaluate_many(asked) == [True, False, True, True]
        assert delegauth.decisions.requests == sent + 1  # one round trip for the batch
        # More than one server batch (256) still comes back whole and in order.
        many = [asked[i % 4] for i in range(300)]
        assert delegauth.evaluate_many(many) == [
            [True, False, True, True][i % 4] for i in range(300)
        ]


def test_the_consistency_token_bypasses_the_decision_cache(
    server: Server, service: dict, world: World
) -> None:
    with _client(server, service, decision_ttl_s=300) as delegauth:
        assert delegauth.decisions is not None
        pay = (world.delegate, world.area, "invoice", "pay")
        assert delegauth.evaluate(*pay, policy_version=world.granted_at) is True
        removed_at = world.remove_delegate()
        assert removed_at > world.granted_at
        sent = delegauth.decisions.requests
        # Without a newer token the cached answer stands (that is what the cache is for).
        assert delegauth.evaluate(*pay) is True
        assert delegauth.evaluate(*pay, policy_version=world.granted_at) is True
        assert delegauth.decisions.requests == sent
        # The removal's own version is newer than the cached answer's: asked afresh.
        assert delegauth.evaluate(*pay, policy_version=removed_at) is False
        assert delegauth.decisions.requests == sent + 1
        # ...and that answer is what the cache holds from now on.
        assert delegauth.evaluate(*pay) is False
        assert delegauth.decisions.requests == sent + 1
        # The same holds for a batch.
        batch = [Evaluation(*pay), Evaluation(world.owner, world.area, "invoice", "pay")]
        assert delegauth.evaluate_many(batch, policy_version=removed_at) == [False, True]


def test_a_guard_token_without_an_area_is_denied(
    server: Server, service: dict, module_minter: TokenService
) -> None:
    service_token = module_minter.issue(sub="svc", client_id="svc", scope=["decisions"])
    with _client(server, service) as delegauth:
        token = delegauth.authenticate(f"Bearer {service_token}")
        assert token.area is None and token.user_id is None
        with pytest.raises(AccessDenied, match="not scoped"):
            delegauth.check(token, Requirement("invoice", "pay"))


# Guards: a small Falcon app, a plain WSGI app and a plain ASGI app


def _falcon_app(delegauth: Delegauth) -> falcon.App:
    class Invoice:
        @requires("invoice", "pay", id_param="invoice_id")
        def on_post(self, req: falcon.Request, resp: falcon.Response, invoice_id: str) -> None:
            resp.media = {"paid": invoice_id, "by": req.context.token.sub}

    class Health:
        delegauth_public = True

        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"ok": True}

    class Me:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"area": req.context.token.area}

    app = falcon.App(middleware=[DelegauthMiddleware(delegauth)])
    app.add_route("/invoices/{invoice_id}/pay", Invoice())
    app.add_route("/healthz", Health())
    app.add_route("/me", Me())
    return app


def _falcon_asgi_app(delegauth: Delegauth) -> Any:
    import falcon.asgi

    class Invoice:
        @requires("invoice", "pay", id_param="invoice_id")
        async def on_post(self, req: Any, resp: Any, invoice_id: str) -> None:
            resp.media = {"paid": invoice_id, "by": req.context.token.sub}

    app = falcon.asgi.App(middleware=[DelegauthMiddleware(delegauth)])
    app.add_route("/invoices/{invoice_id}/pay", Invoice())
    return app


def _falcon_client(delegauth: Delegauth) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(_falcon_app(delegauth))


def _wsgi_app(delegauth: Delegauth) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        token = environ["delegauth.token"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"by": token.sub}).encode()]

    def rule(method: str, path: str) -> Requirement | None:
        if path.startswith("/invoices/"):
            return Requirement("invoice", "pay", path.split("/")[2])
        return None  # elsewhere a valid token is enough

    return WSGIMiddleware(app, delegauth, require=rule)


def _asgi_app(delegauth: Delegauth) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps({"by": scope["delegauth.token"].sub}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return ASGIMiddleware(app, delegauth, require=Requirement("invoice", "pay"))


def _asgi_call(app: Any, path: str, headers: dict[str, str]) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.post(path, headers=headers)

    return asyncio.run(call())


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any


T = TypeVar("T")


def _off_loop(call: Callable[[], T]) -> T:
    """Run ``call`` in a thread of its own: an event loop may already be running in this
    one (Playwright's sync API keeps one for the browser tests' session), and asyncio.run,
    which ASGI apps under test need, refuses to start inside it."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def _guarded(delegauth: Delegauth, kind: str, token: str | None, path: str) -> Answer:
    """Call the guarded route of the ``kind`` app (falcon, wsgi or asgi)."""
    return _off_loop(lambda: _guarded_here(delegauth, kind, token, path))


def _guarded_here(delegauth: Delegauth, kind: str, token: str | None, path: str) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if kind == "asgi":
        res = _asgi_call(_asgi_app(delegauth), path, headers)
        return Answer(res.status_code, res.headers, res.json() if res.content else None)
    apps = {"falcon": _falcon_app, "falcon-asgi": _falcon_asgi_app, "wsgi": _wsgi_app}
    app = apps[kind](delegauth)
    result = falcon.testing.TestClient(app).simulate_post(path, headers=headers)
    return Answer(result.status_code, result.headers, result.json if result.content else None)


@pytest.mark.parametrize("kind", ["falcon", "falcon-asgi", "wsgi", "asgi"])
def test_guards_answer_401_403_or_let_through(
    server: Server, service: dict, world: World, kind: str
) -> None:
    with _client(server, service) as delegauth:
        res = _guarded(delegauth, kind, world.token(world.delegate), "/invoices/7/pay")
        assert res.status == 200 and res.body["by"] == world.delegate
        assert _guarded(delegauth, kind, world.token(world.owner), "/invoices/7/pay").status == 200
        res = _guarded(delegauth, kind, None, "/invoices/7/pay")
        assert res.status == 401 and res.headers["WWW-Authenticate"] == "Bearer"
        res = _guarded(delegauth, kind, "not-a-jwt", "/invoices/7/pay")
        assert res.status == 401 and 'error="invalid_token"' in res.headers["WWW-Authenticate"]
        forged = _with_kid(secrets.token_hex(8))
        assert _guarded(delegauth, kind, forged, "/invoices/7/pay").status == 401
        # Deny: a user with no grant in the area, whatever area their token claims.
        stranger, _area = _signup(server, f"s-{secrets.token_hex(4)}@example.com")
        res = _guarded(delegauth, kind, world.token(stranger), "/invoices/7/pay")
        assert res.status == 403 and "WWW-Authenticate" not in res.headers


def test_falcon_public_routes_and_authentication_only_routes(
    server: Server, service: dict, world: World
) -> None:
    with _client(server, service) as delegauth:
        client = _falcon_client(delegauth)
        assert client.simulate_get("/healthz").status_code == 200
        assert client.simulate_get("/me").status_code == 401
        res = client.simulate_get(
            "/me", headers={"Authorization": f"Bearer {world.token(world.delegate)}"}
        )
        assert res.status_code == 200 and res.json == {"area": world.area}
        wsgi = falcon.testing.TestClient(_wsgi_app(delegauth))
        assert wsgi.simulate_get("/me").status_code == 401
        res = wsgi.simulate_get(
            "/me", headers={"Authorization": f"Bearer {world.token(world.delegate)}"}
        )
        assert res.status_code == 200 and res.json == {"by": world.delegate}


# Server down: fail closed


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp_path / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        "DELEGAUTH_CHANGE_POLL_MS": "20",
    }
    srv = start_server(env, tmp_path / "server.log", workers=1)
    try:
        yield srv
    finally:
        srv.stop()


def test_server_down_fails_closed(own_server: Server) -> None:
    svc = _cli(
        own_server.env,
        "clients",
        "create",
        "svc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "decisions",
    )
    minter = TokenService(
        KeyRing.load_or_create(own_server.env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER
    )
    world = _world(own_server, minter)
    token = world.token(world.delegate)
    delegauth = _client(own_server, svc, decision_ttl_s=0)
    cold = _client(own_server, svc, decision_ttl_s=0)  # never saw the keys
    assert _guarded(delegauth, "falcon", token, "/invoices/7/pay").status == 200

    own_server.stop()

    with pytest.raises(DecisionUnavailable, match="cannot reach delegauth"):
        delegauth.evaluate(world.delegate, world.area, "invoice", "pay")
    with pytest.raises(DecisionUnavailable):
        delegauth.evaluate_many([Evaluation(world.delegate, world.area, "invoice", "pay")])
    with pytest.raises(KeysUnavailable):
        cold.verify(token)
    for kind in ("falcon", "falcon-asgi", "wsgi", "asgi"):
        res = _guarded(delegauth, kind, token, "/invoices/7/pay")
        assert res.status == 503, kind
        assert res.headers["Retry-After"] == "1"
        # A guard with no keys yet cannot tell a good token from a bad one: 503, not 401.
        assert _guarded(cold, kind, token, "/invoices/7/pay").status == 503
    delegauth.close()
    cold.close()


# The README's example, as written


def _readme_example() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    section = readme.split("## Protecting a route in a backend service", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_protects_a_route_in_under_ten_lines(
    server: Server, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) < 10
    billing = _cli(
        server.env,
        "clients",
        "create",
        "billing",
        "--grant-type",
        "client_credentials",
        "--scope",
        "decisions",
    )
    monkeypatch.setenv("DELEGAUTH_URL", server.base)
    monkeypatch.setenv("DELEGAUTH_CLIENT_SECRET", billing["client_secret"])
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    client = falcon.testing.TestClient(namespace["app"])
    bearer = {"Authorization": f"Bearer {world.token(world.delegate)}"}
    res = client.simulate_post("/invoices/inv_7/pay", headers=bearer)
    assert res.status_code == 200 and res.json == {"paid": "inv_7", "by": world.delegate}
    stranger, _area = _signup(server, f"r-{secrets.token_hex(4)}@example.com")
    res = client.simulate_post(
        "/invoices/inv_7/pay", headers={"Authorization": f"Bearer {world.token(stranger)}"}
    )
    assert res.status_code == 403
    assert client.simulate_post("/invoices/inv_7/pay").status_code == 401
    namespace["delegauth"].close()
