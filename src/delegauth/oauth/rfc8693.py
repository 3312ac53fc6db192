"""RFC 8693 token exchange: switch an access token to another Client Area.

The client presents its user's current access token (``subject_token``, of type
``urn:ietf:params:oauth:token-type:access_token``) and names the target area in
``audience``. It gets an access token for that area when the user holds a grant
there, for at most the scope of the subject token. Errors follow RFC 8693 §2.2.2:
``invalid_target`` for an area without a grant, ``invalid_scope`` for more scope.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin

from delegauth.domain.ids import AREA, is_id
from delegauth.domain.ports import Store
from delegauth.errors import Unauthenticated
from delegauth.oauth.issuing import principal_for
from delegauth.oauth.rfc7662 import access_still_valid
from delegauth.storage.oauth_store import PeeweeOAuthStore
from delegauth.tokens import TokenService

__all__ = ["ACCESS_TOKEN_TYPE", "InvalidTargetError", "make_token_exchange"]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105


class InvalidTargetError(OAuth2Error):
    error = "invalid_target"
    status_code = 400


def make_token_exchange(
    store: Store,
    oauth: PeeweeOAuthStore,
    tokens: TokenService,
    clock: Callable[[], datetime],
) -> type[BaseGrant]:
    class TokenExchangeGrant(BaseGrant, TokenEndpointMixin):
        GRANT_TYPE = GRANT_TYPE
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

        def validate_token_request(self) -> None:
            client = self.authenticate_token_endpoint_client()
            if not client.check_grant_type(self.GRANT_TYPE):
                raise UnauthorizedClientError(
                    f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
                )
            form = self.request.form
            for name in ("subject_token", "subject_token_type", "audience"):
                if len(self.request.payload.datalist.get(name, [])) > 1:
                    raise InvalidRequestError(f"Multiple '{name}' in request.")
            if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
                raise InvalidRequestError(f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
            if form.get("actor_token"):
                raise InvalidRequestError("delegation with actor_token is not supported")
            requested_type = form.get("requested_token_type")
            if requested_type and requested_type != ACCESS_TOKEN_TYPE:
                raise InvalidRequestError(f"requested_token_type must be {ACCESS_TOKEN_TYPE}")
            try:
                subject = tokens.verify(form.get("subject_token") or "")
            except Unauthenticated as ex:
                raise InvalidGrantError("the subject_token is not a valid access token") from ex
            if subject.client_id != client.get_client_id() or subject.area is None:
                raise InvalidGrantError("the subject_token was not issued to this client")
            if not access_still_valid(store, oauth, subject):
                raise InvalidGrantError("the subject_token is no longer active")
            target = form.get("audience")
            if not target or not is_id(target, AREA):
                raise InvalidTargetError("audience must name a Client Area id")
            principal = principal_for(store, subject.sub, target, clock())
            if principal is None:
                raise InvalidTargetError("the user holds no grant in that Client Area")
            held = set(subject.scope)
            wanted = set((form.get("scope") or " ".join(sorted(held))).split())
            if not wanted <= held:
                raise InvalidScopeError("the requested scope exceeds the subject token's")
            self.request.client = client
            self.request.user = principal
            self.request.scope = " ".join(sorted(wanted))

        def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
            token = self.generate_token(
                user=self.request.user, scope=self.request.scope, include_refresh_token=False
            )
            token.pop("_jti", None)
            token.pop("_exp", None)
            token.pop("id_token", None)
            token["issued_token_type"] = ACCESS_TOKEN_TYPE
            return 200, token, self.TOKEN_RESPONSE_HEADER

    return TokenExchangeGrant
