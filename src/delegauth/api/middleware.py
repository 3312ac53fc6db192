"""Request ids, security headers and the JSON access line, on every response.

One middleware does all three: Falcon calls each middleware's hooks on every request, and at
the speed of a decision (a few µs) every call shows.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import threading
import time
from json.encoder import encode_basestring_ascii as _json_string

import falcon

__all__ = ["SECURITY_HEADERS", "AccessLines", "RequestMiddleware", "log_access", "request_id"]

access_log = logging.getLogger("delegauth.access")

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class RequestMiddleware:
    """Echo a caller's X-Request-ID (AuthZEN "Request Identification") or make one, set the
    security headers, and log one JSON line per request with its request id.

    Only the path is logged, never the query string, headers or bodies: emailed links
    carry secrets in ``?token=`` and requests carry bearer tokens and passwords.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        context = req.context
        context.started = time.perf_counter()
        context.request_id = request_id(req.env.get("HTTP_X_REQUEST_ID"))

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_headers(SECURITY_HEADERS)
        context = req.context
        rid = getattr(context, "request_id", None)
        if rid:
            resp.set_header("X-Request-ID", rid)
        if access_log.isEnabledFor(logging.INFO):
            started = getattr(context, "started", None)
            log_access(rid, req.method, req.path, resp.status_code, started, req.remote_addr)


def request_id(given: str | None) -> str:
    """The caller's X-Request-ID when it is a safe one, else a new one."""
    return given if given and _SAFE_ID.fullmatch(given) else _new_request_id()


def log_access(
    rid: str | None,
    method: str,
    path: str,
    status: int,
    started: float | None,
    remote: str | None,
) -> None:
    """Write the request's access line (when the access logger takes INFO)."""
    ms = round((time.perf_counter() - started) * 1000, 2) if started is not None else None
    # The line json.dumps(..., separators=(",", ":")) would write, at a fraction of its
    # cost: the strings through the json module's own escaping (ASCII, as dumps does).
    line = (
        f'{{"ts":"{_utc_second()}","request_id":{_json_string(rid) if rid else "null"},'
        f'"method":{_json_string(method)},"path":{_json_string(path)},'
        f'"status":{status},"ms":{"null" if ms is None else repr(ms)},'
        f'"remote":{_json_string(remote) if remote is not None else "null"}}}'
    )
    handlers = access_log.handlers
    if len(handlers) == 1 and type(handlers[0]) is AccessLines and not access_log.propagate:
        handlers[0].write(line)  # serve's own handler: no LogRecord to build
        return
    # makeRecord + handle: the same record info() makes, without walking the stack for
    # the caller's file and line, which an access log line never shows.
    access_log.handle(
        access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, line, (), None)
    )


class AccessLines(logging.Handler):
    """Writes access lines as they are, one ``write`` each, to a file descriptor (stderr
    under ``serve``). ``RequestMiddleware`` hands it lines directly when it is the access
    logger's only handler; other loggers' records come through ``emit`` as usual."""

    def __init__(self, fd: int = 2) -> None:
        super().__init__()
        self._fd = fd
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must not fail the request
            self.handleError(record)

    def write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "backslashreplace")
        with self._write_lock:  # one line at a time, even past the pipe's atomic size
            while data:
                data = data[os.write(self._fd, data) :]


# Request ids made here: a random prefix per process and a counter, 32 hex digits as before.
# They only need to be unique (logs, the X-Request-ID header), and os.urandom per request
# cost more than the rest of the id.
_ids: tuple[int, str, itertools.count[int]] = (0, "", itertools.count())


def _new_request_id() -> str:
    global _ids
    pid, prefix, counter = _ids
    if pid != os.getpid():  # a new worker (fork): its own prefix
        pid, prefix, counter = os.getpid(), secrets.token_hex(8), itertools.count()
        _ids = (pid, prefix, counter)
    return f"{prefix}{next(counter):016x}"


_stamp: tuple[int, str] = (0, "")


def _utc_second() -> str:
    """The current second as ISO 8601 UTC, formatted once per second."""
    global _stamp
    now = int(time.time())
    if _stamp[0] != now:
        _stamp = (now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    return _stamp[1]
