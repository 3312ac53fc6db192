"""RFC 7009 token revocation: refresh tokens end their family; access tokens by jti."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint

from delegauth.domain.tokens import hash_secret
from delegauth.errors import Unauthenticated
from delegauth.storage.oauth_store import PeeweeOAuthStore, RefreshRow
from delegauth.tokens import AccessClaims, TokenService

__all__ = ["Revocation"]


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def __init__(
        self,
        server: Any,
        tokens: TokenService,
        oauth: PeeweeOAuthStore,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(server)
        self._tokens = tokens
        self._oauth = oauth
        self._clock = clock

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        row = self._oauth.get_refresh(hash_secret(token_string))
        if row is not None:
            return row
        try:
            return self._tokens.verify(token_string)
        except Unauthenticated:
            return None

    def authenticate_token(self, request: Any, client: Any) -> Any:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # Only the client the token was issued to may revoke it (RFC 7009 §2.1).
        if token is not None and token.client_id == client.get_client_id():
            return token
        return None

    def revoke_token(self, token: Any, request: Any) -> None:
        if isinstance(token, RefreshRow):
            self._oauth.revoke_family(token.family_id, self._clock())
        elif isinstance(token, AccessClaims):
            expires = datetime.fromtimestamp(token.exp, UTC).replace(tzinfo=None)
            self._oauth.revoke_access(token.jti, expires)
            self._tokens.forget(token.jti)  # this worker's cache of verified tokens
