"""OAuth settings the service must not get wrong: the transport Authlib insists on, and
discovery metadata that names the algorithms of the keys really in use."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import falcon.testing
import pytest

from delegauth.api.app import Services, build_services, create_app
from delegauth.passwords import Argon2Hasher
from delegauth.tokens import KeyRing, new_key
from tests.conftest import FrozenClock

PLAIN = "http://auth.example.test"


@contextmanager
def _app(
    services: Services, clock: FrozenClock, keys: KeyRing, **settings: Any
) -> Iterator[tuple[Services, falcon.testing.TestClient]]:
    """Another app on the same database, with these settings and keys."""
    other = build_services(
        services.settings.with_overrides(**settings),
        db=services.db,
        clock=clock,
        keys=keys,
        start_background=False,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    try:
        yield other, falcon.testing.TestClient(create_app(other.settings, services=other))
    finally:
        other.close()


@pytest.mark.parametrize("insecure_http", [False, True])
def test_a_plain_http_issuer_beyond_loopback_is_a_clear_400_never_a_500(
    services: Services, clock: FrozenClock, insecure_http: bool
) -> None:
    """`serve` refuses this setting (tests/functional/test_cli.py); an app built with it
    anyway answers Authlib's insecure_transport error, and DELEGAUTH_INSECURE_HTTP=1
    (development) serves it."""
    settings = {"issuer": PLAIN, "public_url": PLAIN, "insecure_http": insecure_http}
    with _app(services, clock, services.keys, **settings) as (svc, client):
        _row, secret = svc.clients.create(
            "svc", grant_types=["client_credentials"], scopes=["decisions"]
        )
        basic = base64.b64encode(f"svc:{secret}".encode()).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        token = client.simulate_post(
            "/oauth/token", body="grant_type=client_credentials", headers=headers
        )
        if insecure_http:
            assert token.status_code == 200, token.text
            assert token.json["scope"] == "decisions"
            return
        assert token.status_code == 400, token.text
        assert token.json["error"] == "insecure_transport"
        for path in ("/oauth/introspect", "/oauth/revoke"):
            res = client.simulate_post(path, body="token=x", headers=headers)
            assert res.status_code == 400 and res.json["error"] == "insecure_transport"
        page = client.simulate_get(
            "/oauth/authorize", params={"response_type": "code", "client_id": "svc"}
        )
        assert page.status_code == 400 and "insecure_transport" in page.text


@pytest.mark.parametrize(
    ("algorithms", "published"),
    [
        (["ES256"], ["ES256"]),
        (["EdDSA"], ["EdDSA"]),
        # Rotated from RS256: the new key signs, the old one still verifies.
        (["RS256", "ES256"], ["ES256", "RS256"]),
        (["ES256", "ES256"], ["ES256"]),
    ],
)
def test_discovery_names_the_algorithms_of_the_keys_in_use(
    services: Services, clock: FrozenClock, algorithms: list[str], published: list[str]
) -> None:
    keys = KeyRing(
        [new_key(alg, created=i + 1) for i, alg in enumerate(algorithms)], retire_after_s=2**40
    )
    with _app(services, clock, keys) as (_svc, client):
        oidc = client.simulate_get("/.well-known/openid-configuration").json
        assert oidc["id_token_signing_alg_values_supported"] == published
        jwks = client.simulate_get("/.well-known/jwks.json").json
        assert {k["alg"] for k in jwks["keys"]} == set(published)
        for path in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ):
            doc = client.simulate_get(path).json
            for name, value in doc.items():
                if name.endswith("_alg_values_supported"):
                    assert set(value) <= set(published), (path, name)
