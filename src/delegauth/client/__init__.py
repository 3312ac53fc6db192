"""The delegauth client for backend services: verify access tokens, ask for decisions,
guard routes.

    from delegauth.client import Delegauth

    delegauth = Delegauth("https://auth.example.com", "billing", secret)
    token = delegauth.verify(bearer)             # RFC 9068 checks, cached JWKS
    delegauth.evaluate(token.sub, token.area, "invoice", "pay")   # True / False, or raises

Guards: WSGIMiddleware, ASGIMiddleware here; Falcon's in ``delegauth.client.falcon``.
Only httpx and PyJWT are needed: nothing of delegauth's server side is imported.
"""

from delegauth.client._asgi import ASGIMiddleware
from delegauth.client._client import Delegauth
from delegauth.client._decisions import Evaluation
from delegauth.client._exceptions import (
    AccessDenied,
    ClientError,
    DecisionUnavailable,
    ExpiredToken,
    InvalidToken,
    KeysUnavailable,
    MissingToken,
    RequestRejected,
    ServiceAuthFailed,
    Unauthenticated,
    Unavailable,
)
from delegauth.client._guard import Requirement
from delegauth.client._verify import AccessToken
from delegauth.client._wsgi import WSGIMiddleware

__all__ = [
    "ASGIMiddleware",
    "AccessDenied",
    "AccessToken",
    "ClientError",
    "DecisionUnavailable",
    "Delegauth",
    "Evaluation",
    "ExpiredToken",
    "InvalidToken",
    "KeysUnavailable",
    "MissingToken",
    "RequestRejected",
    "Requirement",
    "ServiceAuthFailed",
    "Unauthenticated",
    "Unavailable",
    "WSGIMiddleware",
]
