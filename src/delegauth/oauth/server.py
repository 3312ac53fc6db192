"""The Authlib AuthorizationServer of delegauth, and its thin Falcon adapter.

The adapter only turns a Falcon request into Authlib's OAuth2Request and hands
back Authlib's (status, body, headers) for the resource to render.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import falcon
from authlib.common.security import is_secure_transport
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc9207 import IssuerParameter

from delegauth.api.body import read_form
from delegauth.domain.ports import Store
from delegauth.errors import InvalidInput
from delegauth.oauth.clients import SCOPES, ClientRegistry
from delegauth.oauth.grants import StrictPkce, make_grants
from delegauth.oauth.issuing import TokenIssuer
from delegauth.oauth.rfc7009 import Revocation
from delegauth.oauth.rfc7662 import Introspection
from delegauth.oauth.rfc8693 import make_token_exchange
from delegauth.storage.oauth_store import PeeweeOAuthStore
from delegauth.tokens import TokenService

__all__ = ["AuthlibResponse", "DelegauthAuthorizationServer", "oauth_request"]


class _Headers(Mapping[str, str]):
    """A request's headers as Authlib reads them (``get``, ``[]``, ``in``, case-insensitive),
    looked up in the WSGI environ when asked rather than copied for every request."""

    __slots__ = ("_req",)

    def __init__(self, req: falcon.Request) -> None:
        self._req = req

    def __getitem__(self, key: str) -> str:
        value = self._req.get_header(key) if isinstance(key, str) else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter([name.lower() for name in self._req.headers])

    def __len__(self) -> int:
        return len(self._req.headers)

    def __bool__(self) -> bool:
        return True  # without counting them (Authlib asks: ``headers or {}``)


class _Payload(OAuth2Payload):
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._datalist = defaultdict(list, values)
        self._data = {k: v[0] for k, v in values.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):
    def __init__(
        self,
        method: str,
        uri: str,
        headers: _Headers,
        args: dict[str, list[str]],
        form: dict[str, list[str]],
        *,
        transport_checked: bool = False,
    ) -> None:
        if transport_checked:
            # Authlib's transport check reads nothing but the URI's scheme and host, which
            # were checked already (see oauth_request): show it one it passes at once, then
            # keep the real one.
            super().__init__(method, _PASSES_TRANSPORT_CHECK, headers=headers)
            self.uri = uri
        else:
            super().__init__(method, uri, headers=headers)  # InsecureTransportError on http
        self._args = {k: v[0] for k, v in args.items() if v}
        self._form = {k: v[0] for k, v in form.items() if v}
        merged: dict[str, list[str]] = {**args, **form}
        self.payload = _Payload(merged)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def oauth_request(
    req: falcon.Request,
    public_url: str,
    form: dict[str, list[str]] | None = None,
    *,
    allow_http: bool = False,
) -> OAuth2Request:
    """Authlib's request for a Falcon request (the URI is rebuilt on the public base URL).

    Raises Authlib's InsecureTransportError when that URL is plain http on a host that
    is not loopback, unless ``allow_http`` (``serve`` refuses to start that way).
    """
    query = req.query_string
    args = parse_qs(query, keep_blank_values=True) if query else {}
    body = read_form(req) if form is None else form
    _check_parameters(args)
    _check_parameters(body)
    base = public_url.rstrip("/")
    # Every URI here is the public base URL and a path, so the base's scheme and host are
    # the URI's: Authlib's verdict on them is asked once. The operator may also have chosen
    # plain http (DELEGAUTH_INSECURE_HTTP, development only).
    checked = (allow_http and base.startswith("http://")) or _secure_transport(base)
    uri = base + req.relative_uri
    return _Request(req.method, uri, _Headers(req), args, body, transport_checked=checked)


_PASSES_TRANSPORT_CHECK = "https://localhost/"


@functools.lru_cache(maxsize=16)
def _secure_transport(base: str) -> bool:
    return is_secure_transport(base + "/")


# RFC 6749 Appendix A: every parameter is printable ASCII (VSCHAR), and response_type,
# grant_type and redirect_uri are names or URIs, which hold no quote or backslash.
# Authlib echoes those three in error descriptions, and cannot build one holding
# anything else (§5.2): refuse them here, before Authlib sees them.
_ECHOED = frozenset({"response_type", "grant_type", "redirect_uri"})


def _vschar(value: str) -> bool:
    # For ASCII, str.isprintable() is exactly %x20-7E (the space included).
    return value.isascii() and value.isprintable()


def _check_parameters(values: dict[str, list[str]]) -> None:
    for name, items in values.items():
        if not (_vschar(name) and all(_vschar(v) for v in items)):
            raise InvalidInput(
                "OAuth parameters are printable ASCII (RFC 6749 Appendix A)",
                field=name if _vschar(name) else "(invalid name)",
            )
        if name in _ECHOED and any('"' in v or "\\" in v for v in items):
            raise InvalidInput(f"{name} holds a quote or a backslash", field=name)


@dataclass
class AuthlibResponse:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "location":
                return value
        return None

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(n, v) for n, v in self.headers if n.lower() != "location"]
        self.headers.append(("Location", value))

    def render(self, resp: falcon.Response) -> None:
        resp.status = self.status
        for name, value in self.headers:
            resp.set_header(name, value)
        if isinstance(self.body, dict):
            resp.content_type = "application/json"
            resp.text = json.dumps(self.body)
        elif self.body:
            resp.text = str(self.body)


class _Issuer(IssuerParameter):
    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def get_issuer(self) -> str:
        return self._issuer


class DelegauthAuthorizationServer(AuthorizationServer):
    def __init__(
        self,
        *,
        clients: ClientRegistry,
        tokens: TokenService,
        store: Store,
        oauth: PeeweeOAuthStore,
        issuer: TokenIssuer,
        clock: Callable[[], datetime],
        allow_http: bool = False,
        on_revoked: Callable[[int], None] = lambda version: None,
    ) -> None:
        """``on_revoked(version)``: a revocation committed at that change-log version."""
        super().__init__(scopes_supported=list(SCOPES))
        # Plain http beyond loopback (DELEGAUTH_INSECURE_HTTP): see oauth_request.
        self.allow_http = allow_http
        self._clients = clients
        self.register_token_generator("default", issuer)
        code, refresh, service = make_grants(store, oauth, issuer, clock)
        self.register_grant(code, [StrictPkce(required=True)])
        self.register_grant(refresh)
        self.register_grant(service)
        self.register_grant(make_token_exchange(store, oauth, tokens, clock))
        self.register_endpoint(Introspection(self, tokens, store, oauth, clock))
        self.register_endpoint(Revocation(self, tokens, oauth, clock, on_revoked))
        self.register_extension(_Issuer(tokens.issuer))

    def query_client(self, client_id: str) -> Any:
        return self._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass  # each grant records what it issued (grants.py)

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request  # already built by oauth_request()

    def handle_response(self, status: int, body: Any, headers: Any) -> AuthlibResponse:
        return AuthlibResponse(status, body, list(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass
