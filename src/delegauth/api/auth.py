"""Bearer authentication of API callers with the access tokens of delegauth.tokens."""

from __future__ import annotations

import falcon

from delegauth.domain.ids import USER, is_id
from delegauth.errors import Forbidden, NotFound, Unauthenticated
from delegauth.tokens import AccessClaims, TokenService

__all__ = ["DECISIONS_SCOPE", "Authenticator"]

# The scope a service client needs to call the AuthZEN endpoints.
DECISIONS_SCOPE = "decisions"


class Authenticator:
    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    def claims(self, req: falcon.Request) -> AccessClaims:
        # req.get_header("Authorization"), without its work
        return self.bearer(req.env.get("HTTP_AUTHORIZATION"))

    def bearer(self, header: str | None) -> AccessClaims:
        """The claims of the access token in an Authorization header's value."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("a bearer token is required")
        return self._tokens.verify(token.strip())

    def still_valid(self, claims: AccessClaims) -> None:
        """Check again, after waiting for a consistency token: a revocation it covers
        may have arrived meanwhile."""
        self._tokens.check_revoked(claims)

    def user(self, req: falcon.Request) -> AccessClaims:
        """A token issued to a user (its subject is a user id)."""
        claims = self.claims(req)
        if not is_id(claims.sub, USER):
            raise Forbidden("this endpoint needs a user's token")
        return claims

    def user_in_area(self, req: falcon.Request, area_id: str) -> AccessClaims:
        """A user's token scoped to ``area_id``; any other area does not exist for it."""
        claims = self.user(req)
        if claims.area != area_id:
            raise NotFound("no such area")
        return claims

    def service(self, req: falcon.Request, scope: str = DECISIONS_SCOPE) -> AccessClaims:
        return self.service_bearer(req.env.get("HTTP_AUTHORIZATION"), scope)

    def service_bearer(self, header: str | None, scope: str = DECISIONS_SCOPE) -> AccessClaims:
        """``service`` for an Authorization header's value."""
        claims = self.bearer(header)
        if scope not in claims.scope:
            raise Forbidden(f"the token lacks the '{scope}' scope")
        return claims
