"""What the grants issue: area-scoped RFC 9068 access tokens, rotating refresh tokens
and OpenID Connect ID tokens, all signed by delegauth.tokens (PyJWT)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from delegauth import metrics
from delegauth.domain.accounts import Accounts
from delegauth.domain.catalogue import PermissionSet
from delegauth.domain.entities import Role
from delegauth.domain.ports import Store
from delegauth.domain.tokens import hash_secret
from delegauth.storage.oauth_store import PeeweeOAuthStore, RefreshRow
from delegauth.tokens import LEEWAY_SECONDS, TokenService

__all__ = ["Principal", "TokenIssuer", "principal_for", "sign_access"]


@dataclass(frozen=True)
class Principal:
    """A signed-in user acting in one chosen Client Area."""

    user_id: str
    area_id: str
    role: Role
    permissions: PermissionSet
    auth_time: datetime | None = None
    nonce: str | None = None
    valid_until: datetime | None = None  # the grant's end (naive UTC): no token outlives it

    def get_user_id(self) -> str:  # Authlib asks this of users
        return self.user_id


def principal_for(
    store: Store, user_id: str, area_id: str, now: datetime, **extra: Any
) -> Principal | None:
    """The user's current standing in the area, or None when they have no grant there, or
    it ends within LEEWAY_SECONDS of ``now``: verifiers accept a token that long after its
    exp, so that is when issuing stops (see sign_access)."""
    grant = store.get_grant(area_id, user_id)
    if grant is None or grant.ended(now + timedelta(seconds=LEEWAY_SECONDS)):
        return None
    return Principal(
        user_id, area_id, grant.role, grant.held(), valid_until=grant.valid_until, **extra
    )


def sign_access(
    tokens: TokenService, client_id: str, scopes: list[str], user: Principal | None
) -> tuple[str, dict[str, Any]]:
    """An access token and its claims: for a user, scoped to their area with their role
    and permissions there; without one, for the client itself (client credentials)."""
    if user is None:
        return tokens.issue_access(sub=client_id, client_id=client_id, scope=scopes)
    # No token outlives its grant, even by the clock-skew leeway verifiers allow after exp.
    not_after = (
        None
        if user.valid_until is None
        else int(user.valid_until.replace(tzinfo=UTC).timestamp()) - LEEWAY_SECONDS
    )
    return tokens.issue_access(
        not_after=not_after,
        sub=user.user_id,
        client_id=client_id,
        scope=scopes,
        area=user.area_id,
        role=str(user.role),
        permissions=user.permissions.to_json(),
    )


class TokenIssuer:
    """Authlib's token generator, plus the bookkeeping of refresh-token families."""

    def __init__(
        self,
        tokens: TokenService,
        oauth: PeeweeOAuthStore,
        accounts: Accounts,
        clock: Callable[[], datetime],
        *,
        refresh_lifetime: timedelta = timedelta(days=30),
    ) -> None:
        self._tokens = tokens
        self._oauth = oauth
        self._accounts = accounts
        self._clock = clock
        self._refresh_lifetime = refresh_lifetime

    @property
    def access_lifetime(self) -> int:
        return self._tokens.lifetime_s

    def __call__(
        self,
        grant_type: str,
        client: Any,
        user: Principal | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        scopes = (scope or "").split()
        metrics.count_token(grant_type)
        access, claims = sign_access(self._tokens, client.client_id, scopes, user)
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": claims["exp"] - claims["iat"],
            "scope": " ".join(scopes),
            # Taken out again by save() before the response is sent.
            "_jti": claims["jti"],
            "_exp": claims["exp"],
        }
        if user is not None and include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)
        if user is not None and "openid" in scopes:
            who = self._accounts.get_user(user.user_id)
            token["id_token"] = self._tokens.issue_id_token(
                sub=user.user_id,
                client_id=client.client_id,
                nonce=user.nonce,
                auth_time=user.auth_time,
                email=who.email if "email" in scopes else None,
                email_verified=who.email_verified if "email" in scopes else None,
                name=who.name if "profile" in scopes else None,
                area=user.area_id,
            )
        return token

    def save(
        self,
        token: dict[str, Any],
        client_id: str,
        user: Principal | None,
        family: RefreshRow | None = None,
    ) -> str | None:
        """Record what was issued: its access token's jti and any refresh token, in the
        family of ``family`` (a rotated refresh token) or a new one. Return the family id."""
        if user is None:
            return None
        refresh = token.get("refresh_token")
        now = self._clock()
        family_id = family.family_id if family else secrets.token_urlsafe(16)
        family_end = family.expires_at if family else now + self._refresh_lifetime
        if user.valid_until is not None:
            family_end = min(family_end, user.valid_until)  # refresh ends with the grant
        jti, exp = token.pop("_jti"), token.pop("_exp")
        self._oauth.record_access(
            jti, family_id, datetime.fromtimestamp(exp, UTC).replace(tzinfo=None)
        )
        if refresh:
            self._oauth.add_refresh(
                RefreshRow(
                    token_hash=hash_secret(refresh),
                    family_id=family_id,
                    client_id=client_id,
                    user_id=user.user_id,
                    area_id=user.area_id,
                    scope=token.get("scope", ""),
                    created_at=now,
                    expires_at=family_end,
                    rotated_at=None,
                    revoked_at=None,
                )
            )
        return family_id
