"""Registered OAuth clients: what Authlib asks of them, and how they are created."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin

from delegauth.domain.tokens import hash_secret, same_hash
from delegauth.errors import InvalidInput
from delegauth.storage.oauth_store import ClientRow, PeeweeOAuthStore

__all__ = ["GRANT_TYPES", "SCOPES", "ClientRegistry", "OAuthClient"]

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type name
CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS, TOKEN_EXCHANGE)
# The scopes this server knows. "decisions" lets a service call the AuthZEN API.
SCOPES = ("openid", "profile", "email", "offline_access", "areas", "decisions", "introspect")
_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,62}$")


class OAuthClient(ClientMixin):
    """Authlib's view of a registered client."""

    def __init__(self, row: ClientRow) -> None:
        self.row = row

    @property
    def client_id(self) -> str:
        return self.row.client_id

    @property
    def is_public(self) -> bool:
        return self.row.secret_hash is None

    @property
    def first_party(self) -> bool:
        return self.row.first_party

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous default: with several registered URIs, one must be named.
        uris = self.row.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.row.scopes)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string match (RFC 9700 §4.1.3): no prefix, case folding or normalization.
        return redirect_uri in self.row.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.row.secret_hash is None or not isinstance(client_secret, str):
            return False
        return same_hash(self.row.secret_hash, hash_secret(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none" and endpoint == "token"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and AUTHORIZATION_CODE in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


def _check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.fragment or not parts.netloc or parts.username or parts.password:
        raise InvalidInput(f"redirect URI not allowed: {uri!r}", field="redirect_uris")
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise InvalidInput(
            "redirect URIs must use https (http only on loopback)", field="redirect_uris"
        )
    return uri


class ClientRegistry:
    def __init__(self, store: PeeweeOAuthStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def create(
        self,
        client_id: str,
        *,
        name: str = "",
        public: bool = False,
        redirect_uris: list[str] | tuple[str, ...] = (),
        grant_types: list[str] | tuple[str, ...] = (AUTHORIZATION_CODE, REFRESH_TOKEN),
        scopes: list[str] | tuple[str, ...] = ("openid", "profile", "email", "offline_access"),
        first_party: bool = False,
    ) -> tuple[ClientRow, str | None]:
        """Register a client; return it and its one-time secret (None for public clients)."""
        if not _CLIENT_ID.match(client_id):
            raise InvalidInput("client id must match [a-z0-9][a-z0-9_.-]{1,62}", field="client_id")
        unknown = set(grant_types) - set(GRANT_TYPES)
        if unknown or not grant_types:
            raise InvalidInput(f"unknown grant types: {sorted(unknown)}", field="grant_types")
        bad_scopes = set(scopes) - set(SCOPES)
        if bad_scopes:
            raise InvalidInput(f"unknown scopes: {sorted(bad_scopes)}", field="scopes")
        if public and (CLIENT_CREDENTIALS in grant_types or "decisions" in scopes):
            raise InvalidInput("a public client cannot use client_credentials or decisions")
        if AUTHORIZATION_CODE in grant_types and not redirect_uris:
            raise InvalidInput("authorization_code needs at least one redirect URI")
        uris = tuple(_check_redirect_uri(u) for u in redirect_uris)
        secret = None if public else secrets.token_urlsafe(32)
        row = ClientRow(
            client_id=client_id,
            secret_hash=None if secret is None else hash_secret(secret),
            name=name or client_id,
            redirect_uris=uris,
            grant_types=tuple(grant_types),
            scopes=tuple(scopes),
            first_party=first_party,
            created_at=self._clock(),
        )
        if self._store.get_client(client_id) is not None:
            raise InvalidInput("a client with this id exists", field="client_id")
        self._store.add_client(row)
        return row, secret

    def get(self, client_id: str) -> OAuthClient | None:
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            return None
        row = self._store.get_client(client_id)
        return None if row is None else OAuthClient(row)

    def list(self) -> list[ClientRow]:
        return self._store.list_clients()

    def delete(self, client_id: str) -> bool:
        return self._store.delete_client(client_id, self._clock())
