"""RFC 7009 token revocation: refresh tokens end their family; access tokens by jti.

A revoked access token is recorded and announced in the policy change log in one
transaction (storage.oauth_store.revoke_access). This process applies the log before it
answers; every other worker and replica refuses the token after its follower's next round
(domain.revocations). The answer's ``policy_version`` is that entry's version: a caller
passing it back as an AuthZEN request's ``context.policy_version`` is answered only once
the receiving process has applied it (RFC 7009 §2.2 lets clients ignore the body).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from authlib.consts import default_json_headers
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
        on_revoked: Callable[[int], None] = lambda version: None,
    ) -> None:
        """``on_revoked(version)`` runs after a revocation commits: it applies the change
        log in this process."""
        super().__init__(server)
        self._tokens = tokens
        self._oauth = oauth
        self._clock = clock
        self._on_revoked = on_revoked

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

    def create_endpoint_response(self, request: Any) -> tuple[int, Any, Any]:
        """Authlib's, answering the change-log version the revocation is in force at."""
        client = self.authenticate_endpoint_client(request)
        token = self.authenticate_token(request, client)
        version = 0
        if token:
            version = self._revoke(token)
            self.server.send_signal("after_revoke_token", token=token, client=client)
        return 200, {"policy_version": version}, default_json_headers

    def revoke_token(self, token: Any, request: Any) -> None:
        self._revoke(token)

    def _revoke(self, token: Any) -> int:
        if isinstance(token, RefreshRow):
            version = self._oauth.revoke_family(token.family_id, self._clock())
        elif isinstance(token, AccessClaims):
            expires = datetime.fromtimestamp(token.exp, UTC).replace(tzinfo=None)
            version = self._oauth.revoke_access(token.jti, expires)
            self._tokens.forget(token.jti)  # at once, even if the log cannot be read now
        else:
            return 0
        if version:
            self._on_revoked(version)
        return version
