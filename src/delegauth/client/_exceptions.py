"""Exceptions of the delegauth client: one tree, each branch one answer of a guard.

    ClientError
    ├── Unauthenticated ........... 401: no usable bearer token
    │   ├── MissingToken .......... no Authorization: Bearer header
    │   └── InvalidToken .......... bad signature, issuer, audience, type, algorithm, claims
    │       └── ExpiredToken
    ├── AccessDenied .............. 403: delegauth answered deny (or the token has no area)
    ├── RequestRejected ........... 403: delegauth refused to evaluate the question (a 4xx)
    └── Unavailable ............... 503: delegauth could not be asked; never read as allow
        ├── KeysUnavailable ....... the JWKS (or discovery document) could not be read
        └── DecisionUnavailable ... transport error, timeout, 5xx or a malformed answer
            └── ServiceAuthFailed . delegauth refused this service's own credentials

Every exception from httpx or PyJWT is wrapped into one of these (``raise … from``).
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ClientError",
    "DecisionUnavailable",
    "ExpiredToken",
    "InvalidToken",
    "KeysUnavailable",
    "MissingToken",
    "RequestRejected",
    "ServiceAuthFailed",
    "Unauthenticated",
    "Unavailable",
]


class ClientError(Exception):
    """Base of every exception the delegauth client raises."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthenticated(ClientError):
    """The request carries no usable bearer token."""

    status = 401


class MissingToken(Unauthenticated):
    """No ``Authorization: Bearer`` header."""


class InvalidToken(Unauthenticated):
    """A token that fails verification."""


class ExpiredToken(InvalidToken):
    """A token past its ``exp`` (beyond the leeway)."""


class AccessDenied(ClientError):
    """delegauth answered deny."""

    status = 403


class RequestRejected(ClientError):
    """delegauth refused to evaluate the question (a 4xx such as 400 or 409)."""

    status = 403

    def __init__(self, detail: str, *, http_status: int, code: str | None = None) -> None:
        super().__init__(detail)
        self.http_status = http_status
        self.code = code


class Unavailable(ClientError):
    """delegauth could not be asked: callers must deny (guards answer 503)."""

    status = 503


class KeysUnavailable(Unavailable):
    """The signing keys (JWKS) or the discovery document could not be read."""


class DecisionUnavailable(Unavailable):
    """No well-formed decision came back: transport error, timeout, 5xx, malformed body."""


class ServiceAuthFailed(DecisionUnavailable):
    """delegauth refused this service's client credentials or their scope."""
