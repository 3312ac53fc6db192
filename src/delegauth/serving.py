"""Serve the WSGI app with gunicorn: the one module that knows gunicorn.

``serve`` runs the master with threaded workers. SIGHUP is forwarded to the workers (each
re-checks policies/) instead of restarting them. The worker class answers requests that
gunicorn's HTTP parser refuses with problem+json rather than HTML:
gunicorn answers a request line or header block it cannot accept (too long, too many
fields, malformed) before the application sees it, with an HTML page of its own. The JSON
API promises RFC 9457 problem documents for every client mistake, so this worker writes
those answers itself, with the statuses gunicorn chose (414, 431, 400, ...). Errors that
are not the client's (a response header the application got wrong) stay gunicorn's 500.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import types
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker

from delegauth.api.problems import PROBLEM_TYPE, problem_body
from delegauth.policy.bundle import PolicySnapshot

__all__ = ["ProblemThreadWorker", "serve", "worker_options"]

_WORKER_CLASS = f"{__name__}.ProblemThreadWorker"
_THREADS = 4


def worker_options() -> dict[str, Any]:
    """The worker class and threads per worker `serve` runs with (bench/http.py starts its
    baseline with the same, so that the two are compared on one server configuration)."""
    return {"worker_class": _WORKER_CLASS, "threads": _THREADS}


def serve(bind: str, workers: int, policy: PolicySnapshot | None = None) -> None:
    """Run the gunicorn master until it is told to stop; every worker (a respawned one
    too) starts from ``policy``, the snapshot of policies/ the caller checked."""
    _Server(bind, workers, policy).run()


class _Server(BaseApplication):
    def __init__(self, bind: str, workers: int, policy: PolicySnapshot | None) -> None:
        self._bind = bind
        self._workers = workers
        self._policy = policy
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", self._bind)
        self.cfg.set("workers", self._workers)
        for name, value in worker_options().items():
            self.cfg.set(name, value)
        self.cfg.set("graceful_timeout", 20)
        self.cfg.set("accesslog", None)
        self.cfg.set("when_ready", _forward_hup_to_workers)
        self.cfg.set("child_exit", _worker_exited)
        # Several replicas may share a host: no shared per-user control socket.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        from delegauth.api.app import get_app

        return get_app(self._policy)


def _forward_hup_to_workers(arbiter: object) -> None:
    """SIGHUP means "check policies/ now": pass it to the workers instead of gunicorn's
    reload, which would restart them (and an invalid policy would stop them booting)."""

    def handle_hup(self: object) -> None:
        for pid in list(getattr(self, "WORKERS", {})):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    arbiter.handle_hup = types.MethodType(handle_hup, arbiter)  # type: ignore[attr-defined]


def _worker_exited(server: object, worker: object) -> None:
    from delegauth import metrics

    metrics.worker_exited(getattr(worker, "pid", 0))


# Most specific first; any other ParseException is a plain 400.
_STATUS: list[tuple[type[Exception], int, str, str]] = [
    (http_errors.LimitRequestLine, 414, "URI Too Long", "the request line is too long"),
    (
        http_errors.LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        "the request has too many or too large header fields",
    ),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", "only 100-continue is expected"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "proxy requests are refused"),
    (
        http_errors.UnsupportedTransferCoding,
        501,
        "Not Implemented",
        "the transfer coding is not supported",
    ),
]
# Parser exceptions that are the server's doing, not the client's.
_NOT_THE_CLIENTS = (
    http_errors.InvalidResponseHeader,
    http_errors.InvalidResponseHeaderName,
    http_errors.ConfigurationProblem,
)


def client_error(exc: BaseException) -> tuple[int, str, str] | None:
    """(status, title, detail) for a request the parser refused, None if not the client's."""
    if not isinstance(exc, http_errors.ParseException) or isinstance(exc, _NOT_THE_CLIENTS):
        return None
    for cls, status, title, detail in _STATUS:
        if isinstance(exc, cls):
            return status, title, detail
    return 400, "Bad Request", "the request is not valid HTTP/1.1"


class ProblemThreadWorker(ThreadWorker):
    """gunicorn's threaded worker, answering refused requests with problem+json."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        refused = client_error(exc)
        if refused is None:
            super().handle_error(req, client, addr, exc)
            return
        status, title, detail = refused
        ip = addr[0] if addr else ""
        self.log.warning("refused a request from ip=%s: %s %s", ip, status, type(exc).__name__)
        body = problem_body(status, title, detail).encode("utf-8")
        head = (
            f"HTTP/1.1 {status} {title}\r\n"
            "Connection: close\r\n"
            f"Content-Type: {PROBLEM_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "\r\n"
        ).encode("latin-1")
        try:
            util.write_nonblock(client, head + body)
        except OSError:
            self.log.debug("could not send the refusal")
