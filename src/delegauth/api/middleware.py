"""Request ids and security headers on every response."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

import falcon

__all__ = ["AccessLogMiddleware", "RequestIdMiddleware", "SecurityHeadersMiddleware"]

access_log = logging.getLogger("delegauth.access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Echo a caller's X-Request-ID (AuthZEN "Request Identification") or make one."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-ID")
        req.context.request_id = given if given and _SAFE_ID.match(given) else secrets.token_hex(16)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        rid = getattr(req.context, "request_id", None)
        if rid:
            resp.set_header("X-Request-ID", rid)


class SecurityHeadersMiddleware:
    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")


class AccessLogMiddleware:
    """One JSON line per request, with its request id.

    Only the path is logged, never the query string, headers or bodies: emailed links
    carry secrets in ``?token=`` and requests carry bearer tokens and passwords.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        started = getattr(req.context, "started", None)
        elapsed = (time.perf_counter() - started) * 1000 if started is not None else None
        line = json.dumps(
            {
                "ts": _utc_second(),
                "request_id": getattr(req.context, "request_id", None),
                "method": req.method,
                "path": req.path,
                "status": resp.status_code,
                "ms": round(elapsed, 2) if elapsed is not None else None,
                "remote": req.remote_addr,
            },
            separators=(",", ":"),
        )
        # makeRecord + handle: the same record info() makes, without walking the stack for
        # the caller's file and line, which an access log line never shows.
        access_log.handle(
            access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, line, (), None)
        )


_stamp: tuple[int, str] = (0, "")


def _utc_second() -> str:
    """The current second as ISO 8601 UTC, formatted once per second."""
    global _stamp
    now = int(time.time())
    if _stamp[0] != now:
        _stamp = (now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    return _stamp[1]
