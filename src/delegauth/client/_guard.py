"""What a guard needs, framework-free: the requirement of a route, the bearer token of
a request (RFC 6750 §2.1), and the HTTP answer to each refusal (401, 403, 503)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from delegauth.client._exceptions import (
    ClientError,
    InvalidToken,
    MissingToken,
    RequestRejected,
    Unauthenticated,
    Unavailable,
)

__all__ = ["Refusal", "Requirement", "bearer_token", "challenge", "public_detail"]

log = logging.getLogger("delegauth.client")

# RFC 6750 §2.1: b64token
_BEARER = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *$")
_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Requirement:
    """What a route needs: ``action`` on a resource of ``resource_type`` (and id) in the
    Client Area of the caller's token."""

    resource_type: str
    action: str
    resource_id: str = "*"


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header (MissingToken, InvalidToken)."""
    if authorization is None or not authorization.strip():
        raise MissingToken("a bearer token is required")
    match = _BEARER.match(authorization)
    if match is None:
        if authorization.split(" ", 1)[0].lower() != "bearer":
            raise MissingToken("a bearer token is required")
        raise InvalidToken("malformed Authorization header")
    return match.group(1)


def challenge(ex: Unauthenticated) -> str:
    """The ``WWW-Authenticate`` value for a 401 (RFC 6750 §3)."""
    if isinstance(ex, MissingToken):
        return "Bearer"
    description = ex.detail.replace("\\", "").replace('"', "")
    return f'Bearer error="invalid_token", error_description="{description}"'


@dataclass(frozen=True)
class Refusal:
    """The answer to a refused request, as RFC 9457 problem+json."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def status_line(self) -> str:
        return f"{self.status} {_REASONS.get(self.status, 'Error')}"

    @classmethod
    def of(cls, ex: ClientError) -> Refusal:
        headers: list[tuple[str, str]] = [("Content-Type", "application/problem+json")]
        if isinstance(ex, Unauthenticated):
            headers.append(("WWW-Authenticate", challenge(ex)))
        elif isinstance(ex, Unavailable):
            headers.append(("Retry-After", "1"))
        body = json.dumps(
            {
                "type": "about:blank",
                "title": _REASONS.get(ex.status, "Error"),
                "status": ex.status,
                "detail": public_detail(ex),
            }
        ).encode()
        headers.append(("Content-Length", str(len(body))))
        return cls(ex.status, tuple(headers), body)


def public_detail(ex: ClientError) -> str:
    """What the caller may read about a refusal; what only operators should see is logged."""
    if isinstance(ex, Unavailable):
        log.warning("delegauth unavailable, request refused (fail closed): %s", ex.detail)
        return "authorization is unavailable; try again shortly"
    if isinstance(ex, RequestRejected):
        log.warning("delegauth refused the question, request denied: %s", ex.detail)
        return "access denied"
    return ex.detail
