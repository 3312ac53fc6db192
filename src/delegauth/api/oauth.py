"""OAuth 2.0 / OpenID Connect endpoints and the Client Area chooser.

/oauth/authorize signs the user in (through /signin), then shows the chooser when
the user can reach more than one area or ``prompt=select_account`` is sent, and a
consent step for third-party clients. The code it issues is bound to one area.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

import falcon
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InsecureTransportError

from delegauth.api.auth import Authenticator
from delegauth.api.body import read_form, send_json
from delegauth.api.catalogue import negotiate_locale
from delegauth.api.pages import error_page, field_value, render
from delegauth.domain.accounts import Accounts, AreaAccess
from delegauth.domain.ports import Store
from delegauth.errors import Forbidden
from delegauth.oauth.clients import GRANT_TYPES, SCOPES
from delegauth.oauth.issuing import Principal
from delegauth.oauth.server import AuthlibResponse, DelegauthAuthorizationServer, oauth_request
from delegauth.pages.sessions import BrowserSessions
from delegauth.pages.text import t
from delegauth.tokens import KeyRing

__all__ = [
    "AuthorizeResource",
    "DiscoveryResource",
    "EndpointResource",
    "JwksResource",
    "TokenResource",
    "UserinfoResource",
    "metadata",
]

_UI_FIELDS = ("csrf", "area", "consent")


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


class AuthorizeResource:
    def __init__(
        self,
        server: DelegauthAuthorizationServer,
        accounts: Accounts,
        store: Store,
        sessions: BrowserSessions,
        public_url: str,
        issuer: str,
    ) -> None:
        self._server = server
        self._accounts = accounts
        self._store = store
        self._sessions = sessions
        self._base = public_url
        self._issuer = issuer

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._handle(req, resp, None)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._handle(req, resp, read_form(req))

    def _handle(
        self, req: falcon.Request, resp: falcon.Response, form: dict[str, list[str]] | None
    ) -> None:
        locale = negotiate_locale(req)
        resp.set_header("Referrer-Policy", "no-referrer")
        try:
            oreq = oauth_request(req, self._base, form or {}, allow_http=self._server.allow_http)
        except InsecureTransportError as err:
            error_page(resp, locale, f"{err.error}: {err.description}", 400)
            return
        try:
            grant = self._server.get_consent_grant(request=oreq)
        except OAuth2Error as err:
            self._error(resp, locale, oreq, err)
            return
        session = self._sessions.current(req)
        data = oreq.payload.data
        if session is None or data.get("prompt") == "login":
            if form is not None:  # a chooser post without a session: start over
                error_page(resp, locale, t(locale, "error.csrf"), 403)
                return
            target = "/oauth/authorize?" + urlencode(
                [(k, v) for k, v in oreq.payload.data.items() if k != "prompt"]
            )
            raise falcon.HTTPSeeOther("/signin?return_to=" + quote(target, safe=""))
        areas = self._accounts.areas_of(session.user_id)
        client = grant.client
        chosen = self._choice(areas, data, form)
        needs_consent = not client.first_party
        if form is None:
            show_chooser = len(areas) > 1 or data.get("prompt") == "select_account"
            if show_chooser or needs_consent or chosen is None:
                self._chooser(resp, locale, oreq, areas, chosen, session.csrf, client)
                return
        else:
            if not self._sessions.check_csrf(session, field_value(form, "csrf")):
                error_page(resp, locale, t(locale, "error.csrf"), 403)
                return
            if chosen is None:
                self._chooser(
                    resp,
                    locale,
                    oreq,
                    areas,
                    None,
                    session.csrf,
                    client,
                    error=t(locale, "error.area"),
                    status=400,
                )
                return
            if needs_consent and field_value(form, "consent") != "allow":
                self._error(
                    resp,
                    locale,
                    oreq,
                    AccessDeniedError(state=data.get("state"), redirect_uri=grant.redirect_uri),
                )
                return
        assert chosen is not None
        principal = Principal(
            session.user_id,
            chosen.area.id,
            chosen.role,
            chosen.permissions,
            auth_time=session.created_at,
            nonce=data.get("nonce"),
        )
        result = self._server.create_authorization_response(request=oreq, grant_user=principal)
        result.render(resp)

    @staticmethod
    def _choice(
        areas: list[AreaAccess], data: dict[str, str], form: dict[str, list[str]] | None
    ) -> AreaAccess | None:
        by_id = {a.area.id: a for a in areas}
        if form is not None:
            return by_id.get(field_value(form, "area"))
        if data.get("area") in by_id:
            return by_id[data["area"]]
        return areas[0] if len(areas) == 1 else None

    def _chooser(
        self,
        resp: falcon.Response,
        locale: str,
        oreq: Any,
        areas: list[AreaAccess],
        chosen: AreaAccess | None,
        csrf: str,
        client: Any,
        error: str = "",
        status: int = 200,
    ) -> None:
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in oreq.payload.data.items()
            if k not in _UI_FIELDS
        )
        hidden += f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        options = []
        for i, access in enumerate(areas):
            checked = (
                " checked"
                if (chosen and chosen.area.id == access.area.id) or (chosen is None and i == 0)
                else ""
            )
            role = t(locale, f"role.{access.role}")
            options.append(
                f'<div class="choice"><input type="radio" id="area-{i}" name="area"'
                f' value="{escape(access.area.id)}"{checked} required>'
                f'<label for="area-{i}">{escape(access.area.name)}'
                f' <span class="role">({escape(role)})</span></label></div>'
            )
        alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
        consent = ""
        buttons = f'<button type="submit">{t(locale, "chooser.submit")}</button>'
        if not client.first_party:
            scopes = "".join(f"<li>{escape(s)}</li>" for s in (oreq.scope or "").split())
            consent = (
                f"<p>{escape(t(locale, 'consent.asks', client=client.row.name))}"
                f"</p><ul>{scopes}</ul>"
            )
            buttons = (
                f'<button type="submit" name="consent" value="allow">'
                f"{t(locale, 'consent.allow')}</button> "
                f'<button type="submit" name="consent" value="deny" class="secondary">'
                f"{t(locale, 'consent.deny')}</button>"
            )
        body = (
            f'{alert}<form method="post" action="/oauth/authorize">{hidden}'
            f"<fieldset><legend>{t(locale, 'chooser.legend')}</legend>{''.join(options)}"
            f"</fieldset>{consent}{buttons}</form>"
        )
        title = t(locale, "chooser.title") if client.first_party else t(locale, "consent.title")
        render(resp, locale, title, body, status)

    def _error(self, resp: falcon.Response, locale: str, oreq: Any, err: OAuth2Error) -> None:
        redirect_uri = getattr(err, "redirect_uri", None)
        if redirect_uri:
            # The redirect URI was checked against the client's: safe to send the error back.
            params = dict(err.get_body())
            params["iss"] = self._issuer
            state = oreq.payload.data.get("state")
            if state:
                params["state"] = state
            raise falcon.HTTPFound(add_params_to_uri(redirect_uri, params))
        error_page(resp, locale, f"{err.error}: {err.description or ''}", 400)
