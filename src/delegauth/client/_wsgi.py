"""A plain WSGI middleware (PEP 3333) that guards an application with delegauth."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from delegauth.client._client import Delegauth
from delegauth.client._exceptions import ClientError
from delegauth.client._guard import Refusal, Requirement

__all__ = ["Rule", "WSGIMiddleware", "requirement_for"]

# A fixed requirement, or one per request from (method, path); None: a valid token only.
Rule = Requirement | Callable[[str, str], Requirement | None] | None

ENVIRON_KEY = "delegauth.token"


def requirement_for(rule: Rule, method: str, path: str) -> Requirement | None:
    return rule(method, path) if callable(rule) else rule


class WSGIMiddleware:
    """Answer 401, 403 or 503 (problem+json) unless the request's bearer token is valid
    and delegauth allows what ``require`` names; the verified AccessToken is passed on
    in ``environ["delegauth.token"]``."""

    def __init__(self, app: Any, delegauth: Delegauth, require: Rule = None) -> None:
        self._app = app
        self._delegauth = delegauth
        self._rule = require

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        requirement = requirement_for(
            self._rule, environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        )
        try:
            token = self._delegauth.authorize(environ.get("HTTP_AUTHORIZATION"), requirement)
        except ClientError as ex:
            refusal = Refusal.of(ex)
            start_response(refusal.status_line, list(refusal.headers))
            return [refusal.body]
        environ[ENVIRON_KEY] = token
        result: Iterable[bytes] = self._app(environ, start_response)
        return result
