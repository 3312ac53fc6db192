"""RFC 7662 token introspection.

``active`` is false for expired, revoked or unknown tokens, and for access tokens
whose grant was removed or narrowed after they were issued.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from delegauth.domain.catalogue import ALL, PermissionSet
from delegauth.domain.ports import Store
from delegauth.domain.tokens import hash_secret
from delegauth.errors import Unauthenticated
from delegauth.storage.oauth_store import PeeweeOAuthStore
from delegauth.tokens import AccessClaims, TokenService

__all__ = ["Introspection", "TokenView"]


class TokenView:
    """A token as introspection sees it: its claims and whether it still stands."""

    def __init__(self, claims: dict[str, Any], active: bool) -> None:
        self.claims = claims
        self.active = active

    def is_expired(self) -> bool:
        return False  # verification already refused expired tokens

    def is_revoked(self) -> bool:
        return not self.active


def _held(value: object) -> PermissionSet | None:
    if value == ALL:
        return PermissionSet.everything()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return PermissionSet.of(value)
    return None


def access_still_valid(store: Store, oauth: PeeweeOAuthStore, claims: AccessClaims) -> bool:
    """An access token stands while it is not revoked and its grant still covers it."""
    if oauth.is_access_revoked(claims.jti):
        return False
    if claims.area is None:
        return True  # a service token: no grant behind it
    grant = store.get_grant(claims.area, claims.sub)
    if grant is None:
        return False
    held = _held(claims.raw.get("permissions"))
    return held is not None and grant.held().covers(held)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def __init__(
        self,
        server: Any,
        tokens: TokenService,
        store: Store,
        oauth: PeeweeOAuthStore,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(server)
        self._tokens = tokens
        self._store = store
        self._oauth = oauth
        self._clock = clock

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        if token_type_hint != "refresh_token":  # noqa: S105 - a hint name
            try:
                claims = self._tokens.verify(token_string)
            except Unauthenticated:
                claims = None
            if claims is not None:
                active = access_still_valid(self._store, self._oauth, claims)
                return TokenView(dict(claims.raw), active)
        row = self._oauth.get_refresh(hash_secret(token_string))
        if row is None:
            return None
        active = (
            row.revoked_at is None
            and row.rotated_at is None
            and self._clock() < row.expires_at
            and self._store.get_grant(row.area_id, row.user_id) is not None
        )
        claims_view = {
            "sub": row.user_id,
            "client_id": row.client_id,
            "scope": row.scope,
            "area": row.area_id,
            "token_type": "refresh_token",
            "exp": int(row.expires_at.timestamp()),
        }
        return TokenView(claims_view, active)

    def check_permission(self, token: TokenView, client: Any, request: Any) -> bool:
        # A client may introspect its own tokens; a resource server needs "introspect".
        return bool(
            token.claims.get("client_id") == client.get_client_id()
            or "introspect" in client.row.scopes
        )

    def introspect_token(self, token: TokenView) -> dict[str, Any]:
        keep = (
            "sub",
            "client_id",
            "scope",
            "exp",
            "iat",
            "iss",
            "aud",
            "jti",
            "area",
            "role",
            "permissions",
        )
        body = {k: token.claims[k] for k in keep if k in token.claims}
        body["token_type"] = token.claims.get("token_type", "Bearer")
        body["active"] = True
        return body
