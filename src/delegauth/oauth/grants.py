"""RFC 6749 grants with RFC 7636 PKCE (S256 only, required for every client).

- Authorization codes live at most 10 minutes and are single-use; presenting a used
  code again revokes the tokens it issued (RFC 9700 §4.5).
- Refresh tokens rotate on every use; presenting a rotated one revokes its whole
  family. A family has an absolute lifetime.
- Client credentials issue a token for the service itself, with the scopes the client
  asked for, or all its registered scopes when it asked for none (RFC 6749 §3.3 lets
  the server pick a default). A scope the client was not registered for is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7636 import CodeChallenge

from delegauth.domain.ports import Store
from delegauth.domain.tokens import hash_secret
from delegauth.oauth.issuing import Principal, TokenIssuer, principal_for
from delegauth.storage.oauth_store import CodeRow, PeeweeOAuthStore, RefreshRow

__all__ = ["CODE_LIFETIME", "StrictPkce", "make_grants"]

CODE_LIFETIME = timedelta(minutes=10)


class StrictPkce(CodeChallenge):
    """PKCE required of every client, and only S256: ``plain`` and no challenge are refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge(self, authorization_code: CodeRow) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: CodeRow) -> str:
        return authorization_code.code_challenge_method


class _Code:
    """Authlib's view of a stored authorization code."""

    def __init__(self, row: CodeRow) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time.timestamp())


class _Refresh:
    def __init__(self, row: RefreshRow) -> None:
        self.row = row

    def get_scope(self) -> str:
        return self.row.scope

    def check_client(self, client: Any) -> bool:
        return bool(self.row.client_id == client.get_client_id())

    def is_expired(self) -> bool:
        return False  # checked in authenticate_refresh_token

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None


def make_grants(
    store: Store,
    oauth: PeeweeOAuthStore,
    issuer: TokenIssuer,
    clock: Callable[[], datetime],
) -> tuple[
    type[grants.AuthorizationCodeGrant],
    type[grants.RefreshTokenGrant],
    type[grants.ClientCredentialsGrant],
]:
    """Grant classes bound to this server's stores (Authlib instantiates them per request)."""

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

        def save_authorization_code(self, code: str, request: Any) -> None:
            user: Principal = request.user
            data = request.payload.data
            now = clock()
            oauth.add_code(
                CodeRow(
                    code_hash=hash_secret(code),
                    client_id=request.client.get_client_id(),
                    user_id=user.user_id,
                    area_id=user.area_id,
                    redirect_uri=data.get("redirect_uri") or "",
                    scope=request.scope or "",
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method") or "S256",
                    auth_time=user.auth_time or now,
                    expires_at=now + CODE_LIFETIME,
                    used_at=None,
                    family_id=None,
                )
            )

        def query_authorization_code(self, code: str, client: Any) -> _Code | None:
            row = oauth.get_code(hash_secret(code)) if isinstance(code, str) else None
            if row is None or row.client_id != client.get_client_id():
                return None
            if row.used_at is not None:
                # Replay: whatever the first redemption issued is no longer trusted.
                if row.family_id:
                    oauth.revoke_family(row.family_id, clock())
                return None
            if clock() >= row.expires_at:
                return None
            return _Code(row)

        def delete_authorization_code(self, authorization_code: _Code) -> None:
            pass  # use_code() in save_token already consumed it, atomically

        def authenticate_user(self, authorization_code: _Code) -> Principal | None:
            row = authorization_code.row
            return principal_for(
                store, row.user_id, row.area_id, clock(), auth_time=row.auth_time, nonce=row.nonce
            )

        def save_token(self, token: dict[str, Any]) -> None:
            code: _Code = self.request.authorization_code
            family = issuer.save(token, self.client.get_client_id(), self.request.user)
            if not oauth.use_code(code.row.code_hash, family or "", clock()):
                # Lost a race with another redemption of the same code.
                if family:
                    oauth.revoke_family(family, clock())
                raise InvalidGrantError("The authorization code was already used.")

    class RefreshGrant(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> _Refresh | None:
            if not isinstance(refresh_token, str):
                return None
            row = oauth.get_refresh(hash_secret(refresh_token))
            if row is None:
                return None
            now = clock()
            if row.rotated_at is not None and row.revoked_at is None:
                oauth.revoke_family(row.family_id, now)  # reuse of a rotated token
                return None
            if row.revoked_at is not None or now >= row.expires_at:
                return None
            if principal_for(store, row.user_id, row.area_id, now) is None:
                return None  # the grant was removed, or has ended
            return _Refresh(row)

        def authenticate_user(self, refresh_token: _Refresh) -> Principal | None:
            row = refresh_token.row
            return principal_for(store, row.user_id, row.area_id, clock())

        def revoke_old_credential(self, refresh_token: _Refresh) -> None:
            pass  # rotated in save_token, before the new token is recorded

        def save_token(self, token: dict[str, Any]) -> None:
            old: _Refresh = self.request.refresh_token
            if not oauth.rotate_refresh(old.row.token_hash, clock()):
                oauth.revoke_family(old.row.family_id, clock())
                raise InvalidGrantError("The refresh token was already used.")
            issuer.save(token, self.client.get_client_id(), self.request.user, old.row)

    class ServiceGrant(grants.ClientCredentialsGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def validate_token_request(self) -> None:
            super().validate_token_request()
            registered = list(self.request.client.row.scopes)
            requested = (self.request.payload.scope or "").split()
            unknown = sorted(set(requested) - set(registered))
            if unknown:
                raise InvalidScopeError(f"The client is not registered for: {' '.join(unknown)}")
            self.request.scope = " ".join(requested or registered)

        @hooked
        def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
            # Authlib's would issue the scope as sent; this issues the one validated above.
            token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
            self.save_token(token)
            return 200, token, self.TOKEN_RESPONSE_HEADER

        def save_token(self, token: dict[str, Any]) -> None:
            token.pop("_jti", None)
            token.pop("_exp", None)

    return CodeGrant, RefreshGrant, ServiceGrant
