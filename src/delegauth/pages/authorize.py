"""The Client Area chooser and consent of /oauth/authorize (OAuth 2.0, RFC 6749 §3.1).

The endpoint signs the user in (through /signin), then shows the chooser when the user
can reach more than one area or ``prompt=select_account`` is sent, and a consent step
for third-party clients. The code it issues is bound to one area.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import falcon
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InsecureTransportError

from delegauth.api.body import read_form
from delegauth.api.catalogue import negotiate_locale
from delegauth.domain.accounts import Accounts, AreaAccess
from delegauth.domain.ports import Store
from delegauth.oauth.issuing import Principal
from delegauth.oauth.server import DelegauthAuthorizationServer, oauth_request
from delegauth.pages.forms import field_value
from delegauth.pages.rendering import Renderer
from delegauth.pages.sessions import BrowserSessions
from delegauth.pages.text import t

__all__ = ["AuthorizeResource"]

_UI_FIELDS = ("csrf", "area", "consent")


class AuthorizeResource:
    def __init__(
        self,
        pages: Renderer,
        server: DelegauthAuthorizationServer,
        accounts: Accounts,
        store: Store,
        sessions: BrowserSessions,
        public_url: str,
        issuer: str,
    ) -> None:
        self._pages = pages
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
            self._pages.error(req, resp, f"{err.error}: {err.description}", 400)
            return
        try:
            grant = self._server.get_consent_grant(request=oreq)
        except OAuth2Error as err:
            self._error(req, resp, oreq, err)
            return
        session = self._sessions.current(req)
        data = oreq.payload.data
        if session is None or data.get("prompt") == "login":
            if form is not None:  # a chooser post without a session: start over
                self._pages.error(req, resp, t(locale, "error.csrf"), 403)
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
                self._chooser(req, resp, oreq, areas, chosen, session.csrf, client)
                return
        else:
            if not self._sessions.check_csrf(session, field_value(form, "csrf")):
                self._pages.error(req, resp, t(locale, "error.csrf"), 403)
                return
            if chosen is None:
                self._chooser(
                    req,
                    resp,
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
                    req,
                    resp,
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
        req: falcon.Request,
        resp: falcon.Response,
        oreq: Any,
        areas: list[AreaAccess],
        chosen: AreaAccess | None,
        csrf: str,
        client: Any,
        error: str = "",
        status: int = 200,
    ) -> None:
        locale = negotiate_locale(req)
        hidden = [(k, v) for k, v in oreq.payload.data.items() if k not in _UI_FIELDS]
        self._pages.render(
            req,
            resp,
            "authorize.html",
            title=t(locale, "chooser.title" if client.first_party else "consent.title"),
            status=status,
            here="/oauth/authorize?" + urlencode(hidden),
            error=error,
            hidden=hidden,
            csrf=csrf,
            areas=[
                {
                    "id": access.area.id,
                    "name": access.area.name,
                    "role": str(access.role),
                    "checked": (chosen.area.id == access.area.id) if chosen else i == 0,
                }
                for i, access in enumerate(areas)
            ],
            consent=not client.first_party,
            client_name=client.row.name,
            scopes=(oreq.scope or "").split(),
        )

    def _error(
        self, req: falcon.Request, resp: falcon.Response, oreq: Any, err: OAuth2Error
    ) -> None:
        redirect_uri = getattr(err, "redirect_uri", None)
        if redirect_uri:
            # The redirect URI was checked against the client's: safe to send the error back.
            params = dict(err.get_body())
            params["iss"] = self._issuer
            state = oreq.payload.data.get("state")
            if state:
                params["state"] = state
            raise falcon.HTTPFound(add_params_to_uri(redirect_uri, params))
        self._pages.error(req, resp, f"{err.error}: {err.description or ''}", 400)
