"""OAuth 2.0 / OpenID Connect endpoints: metadata, keys, token, introspection,
revocation and userinfo. /oauth/authorize, a page, is delegauth.pages.authorize."""

from __future__ import annotations

from typing import Any

import falcon
from authlib.oauth2.rfc6749 import InsecureTransportError

from delegauth.api.auth import Authenticator
from delegauth.api.body import send_json
from delegauth.domain.accounts import Accounts
from delegauth.errors import Forbidden
from delegauth.oauth.clients import GRANT_TYPES, SCOPES
from delegauth.oauth.server import AuthlibResponse, DelegauthAuthorizationServer, oauth_request
from delegauth.tokens import KeyRing

__all__ = [
    "DiscoveryResource",
    "EndpointResource",
    "JwksResource",
    "TokenResource",
    "UserinfoResource",
    "metadata",
]


def metadata(issuer: str, *, openid: bool, signing_algs: list[str]) -> dict[str, Any]:
    """RFC 8414 authorization server metadata (and the OIDC discovery superset).

    ``signing_algs`` are the algorithms of the keys in use, the signing one first: ID
    tokens are signed with the current key, and older ones verify until they expire.
    No other ``*_alg_values_supported`` is published: no endpoint takes signed client
    assertions or request objects, and userinfo and introspection answer plain JSON.
    """
    base = issuer.rstrip("/")
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": ["select_account", "login", "consent"],
    }
    if openid:
        doc.update(
            {
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": signing_algs,
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "email",
                    "email_verified",
                    "name",
                    "area",
                ],
            }
        )
    return doc


class DiscoveryResource:
    def __init__(self, issuer: str, keys: KeyRing, *, openid: bool) -> None:
        self._issuer = issuer
        self._keys = keys
        self._openid = openid

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._keys.refresh()  # keys rotated by `delegauth keys rotate` or another replica
        keys = self._keys.keys
        algs = list(dict.fromkeys(k.algorithm for k in [keys[-1], *keys[:-1]]))
        send_json(resp, metadata(self._issuer, openid=self._openid, signing_algs=algs))
        resp.set_header("Cache-Control", "public, max-age=300")


class JwksResource:
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._keys.refresh()
        send_json(resp, self._keys.jwks())
        resp.set_header("Cache-Control", "public, max-age=300")


class TokenResource:
    def __init__(self, server: DelegauthAuthorizationServer, public_url: str) -> None:
        self._server = server
        self._base = public_url

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            oreq = oauth_request(req, self._base, allow_http=self._server.allow_http)
        except InsecureTransportError as err:
            AuthlibResponse(*err()).render(resp)
            return
        result = self._server.create_token_response(oreq)
        result.render(resp)
        resp.set_header("Pragma", "no-cache")


class EndpointResource:
    """POST /oauth/introspect (RFC 7662) and /oauth/revoke (RFC 7009)."""

    def __init__(self, server: DelegauthAuthorizationServer, public_url: str, name: str) -> None:
        self._server = server
        self._base = public_url
        self._name = name

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            oreq = oauth_request(req, self._base, allow_http=self._server.allow_http)
        except InsecureTransportError as err:
            AuthlibResponse(*err()).render(resp)
            return
        result = self._server.create_endpoint_response(self._name, oreq)
        result.render(resp)


class UserinfoResource:
    def __init__(self, auth: Authenticator, accounts: Accounts) -> None:
        self._auth = auth
        self._accounts = accounts

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        claims = self._auth.user(req)
        if "openid" not in claims.scope:
            raise Forbidden("the token lacks the 'openid' scope")
        user = self._accounts.get_user(claims.sub)
        body: dict[str, Any] = {"sub": user.id, "area": claims.area}
        if "email" in claims.scope:
            body.update(email=user.email, email_verified=user.email_verified)
        if "profile" in claims.scope:
            body.update(name=user.name, locale=user.locale)
        send_json(resp, body)

    on_post = on_get
