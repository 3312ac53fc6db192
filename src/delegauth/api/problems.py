"""RFC 9457 problem+json: one table mapping delegauth errors to HTTP statuses.

The AuthZEN endpoints answer as the Authorization API 1.0 asks ("Error Responses":
400, 401, 403 and 500, each with "an error message string"). Its "JSON Serialization"
makes every body a JSON object, so the string is the member ``message`` (the name its
"Errors" section gives an error's text: ``{"status": 404, "message": "…"}``), beside
problem+json's ``type``, ``title``, ``status`` and ``detail``: one body valid for both.
A client that prefers ``text/plain`` gets the message string alone. A body of a media
type other than JSON is 400 there (the AuthZEN 1.0 certification scenario, c-2-4-3).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from delegauth import errors

__all__ = [
    "AUTHZEN_PATHS",
    "authzen_error",
    "install_error_handlers",
    "problem",
    "problem_body",
    "problem_fields",
]

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

# The paths whose errors follow AuthZEN's "Error Responses".
AUTHZEN_PATHS = ("/access/v1/", "/.well-known/authzen-configuration")
_AUTHZEN_TYPES = (PROBLEM_TYPE, "application/json", "text/plain")

# Most specific first: the first matching class wins.
_STATUS: list[tuple[type[errors.DelegauthError], int]] = [
    (errors.InvalidInput, 400),
    (errors.InvalidToken, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.NotPending, 409),
    (errors.Conflict, 409),
    (errors.RateLimited, 429),
    (errors.Unavailable, 503),
]


def status_for(ex: errors.DelegauthError) -> int:
    for cls, status in _STATUS:
        if isinstance(ex, cls):
            return status
    return 400


def problem_fields(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The RFC 9457 document for one error."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail and detail != title:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_body(status: int, title: str, detail: str, **extra: Any) -> str:
    """The RFC 9457 document for one error, serialised."""
    return json.dumps(problem_fields(status, title, detail, **extra))


def authzen_error(ex: errors.DelegauthError) -> dict[str, Any]:
    """The error of one evaluation inside a batch (AuthZEN "Errors": ``{"status": 400,
    "message": "…"}``), with the same members a whole request's error body has."""
    status = status_for(ex)
    return problem_fields(
        status, ex.title, ex.detail, code=ex.code, field=ex.field, message=ex.detail or ex.title
    )


def problem(resp: falcon.Response, status: int, title: str, detail: str, **extra: Any) -> None:
    resp.status = status
    resp.content_type = PROBLEM_TYPE
    resp.text = problem_body(status, title, detail, **extra)


def _answer(
    req: falcon.Request, resp: falcon.Response, status: int, title: str, detail: str, **extra: Any
) -> None:
    """problem+json; on the AuthZEN paths with the spec's ``message`` too, or that
    message alone as text/plain when the client prefers it."""
    if not req.path.startswith(AUTHZEN_PATHS):
        problem(resp, status, title, detail, **extra)
        return
    if status == 415:
        status, title, extra["code"] = 400, "Bad Request", "unsupported_media_type"
    message = detail or title
    if req.client_prefers(_AUTHZEN_TYPES) == "text/plain":
        resp.status = status
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = message
        return
    problem(resp, status, title, detail, **extra, message=message)


def _handle_domain(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    assert isinstance(ex, errors.DelegauthError)
    status = status_for(ex)
    _answer(req, resp, status, ex.title, ex.detail, code=ex.code, field=ex.field)
    if isinstance(ex, errors.Unauthenticated):
        resp.set_header("WWW-Authenticate", 'Bearer error="invalid_token"')
    if isinstance(ex, errors.Unavailable):
        resp.set_header("Retry-After", "1")
    if isinstance(ex, errors.RateLimited):
        resp.set_header("Retry-After", "3600")


def _handle_http(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    assert isinstance(ex, falcon.HTTPError)
    status = int(str(ex.status).split()[0]) if not isinstance(ex.status, int) else ex.status
    title = ex.title or "Error"
    _answer(req, resp, status, title, ex.description or "", code=getattr(ex, "code", None))
    for name, value in dict(ex.headers or {}).items():
        resp.set_header(name, value)


def _handle_unexpected(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any
) -> None:
    log.error("unhandled error on %s %s", req.method, req.path, exc_info=ex)
    _answer(req, resp, 500, "Internal Server Error", "")


def install_error_handlers(app: falcon.App) -> None:
    # Falcon consults handlers from the most recently added: add the generic one first.
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(falcon.HTTPError, _handle_http)
    app.add_error_handler(errors.DelegauthError, _handle_domain)
