"""Serve the WSGI app: the one module that knows the HTTP servers (gunicorn and granian).

``serve`` runs a master with worker processes, each building its own app (the change-log
follower, the policy watcher and the SIGHUP handler are per worker). Whichever server runs:

- SIGHUP is forwarded to the workers (each re-checks policies/) instead of restarting them;
- SIGTERM lets in-flight requests finish (up to 20 s) before the workers stop;
- counters are shared through PROMETHEUS_MULTIPROC_DIR, and a dead worker's files are
  marked dead (a crashed worker is replaced);
- the access log is the app's JSON lines; the server's own access log is off;
- requests the server refuses before the app sees them get problem+json where the server
  lets us write the answer (see ``SERVERS`` for what each one keeps).

granian is the default: it serves decisions 2-4 times as fast as gunicorn here (bench/http.py)
and keeps every feature above. gunicorn-gthread and gunicorn-sync stay selectable.

granian parses HTTP in Rust (hyper). The limits the app enforces itself reach Python, where
``_Limits`` refuses them with gunicorn's limits and problem+json: a request line over 4094
bytes is 414, a header field over 8190 bytes is 431 (bodies are the app's own: 413, 415).
hyper's buffer for a request head is raised to ``HEAD_BUFFER`` so that those refusals stay
ours for any head up to that size. What hyper refuses itself gets the right status with an
empty body, since granian offers no hook there: a head over ``HEAD_BUFFER`` (431), a target
over 65534 bytes (414, hyper's own cap), more than 100 header fields (431), and bytes that
do not parse as HTTP/1.1 (400: a bad request line, version, header name, Content-Length or
Transfer-Encoding). Such a request never parsed as HTTP, so it never reached the JSON API.

gunicorn's parser refuses a request line or header block it cannot accept (too long, too
many fields, malformed) with an HTML page of its own; our worker classes write RFC 9457
problem documents instead, with the statuses gunicorn chose (414, 431, 400, ...). Errors
that are not the client's (a response header the application got wrong) stay gunicorn's 500.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import signal
import socket
import types
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from delegauth.api.problems import PROBLEM_TYPE, problem_body
from delegauth.policy.bundle import PolicySnapshot

__all__ = [
    "DEFAULT_SERVER",
    "SERVERS",
    "ProblemSyncWorker",
    "ProblemThreadWorker",
    "run",
    "serve",
    "unavailable",
    "worker_options",
]

WSGIApp = Callable[..., Iterable[bytes]]
_log = logging.getLogger(__name__)

# What `delegauth serve` runs (DELEGAUTH_SERVER), the default first; bench/http.py measures all.
SERVERS = ("granian", "gunicorn-gthread", "gunicorn-sync")
DEFAULT_SERVER = "granian"
GRACEFUL_TIMEOUT_S = 20
# gunicorn's limits (limit_request_line, limit_request_field_size), kept under granian.
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELD = 8190
# hyper's buffer for a request head under granian (its default is 408 KiB): any head up to
# this size reaches _Limits, which answers problem+json. It grows only as a head needs it.
HEAD_BUFFER = 1024 * 1024

_OPTIONS: dict[str, dict[str, Any]] = {
    "gunicorn-gthread": {"worker_class": f"{__name__}.ProblemThreadWorker", "threads": 4},
    # One request at a time per worker, no keep-alive (gunicorn expects a buffering proxy).
    "gunicorn-sync": {"worker_class": f"{__name__}.ProblemSyncWorker", "threads": 1},
    # Python threads per worker (granian's blocking threads); hyper holds the connections.
    "granian": {"threads": 2},
}


def unavailable(server: str) -> str | None:
    """Why ``server`` cannot run here (unknown, or not installed), or None."""
    if server not in SERVERS:
        return f"DELEGAUTH_SERVER={server!r}: choose one of {', '.join(SERVERS)}"
    if server == "granian" and importlib.util.find_spec("granian") is None:
        return "granian is not installed (a dependency of delegauth): pip install -e ."
    return None


def worker_options(server: str = DEFAULT_SERVER, threads: int = 0) -> dict[str, Any]:
    """How ``server`` runs its workers (``threads`` > 0 overrides its threads per worker):
    bench/http.py starts its baseline with the same, so that delegauth and the bare endpoint
    are compared on one server configuration."""
    if server not in _OPTIONS:
        raise ValueError(f"unknown server {server!r}: choose one of {', '.join(SERVERS)}")
    options = {"server": server, **_OPTIONS[server]}
    if threads > 0 and server != "gunicorn-sync":
        options["threads"] = threads
    return options


def serve(
    bind: str,
    workers: int,
    policy: PolicySnapshot | None = None,
    server: str = DEFAULT_SERVER,
    log_level: str = "INFO",
    threads: int = 0,
) -> None:
    """Run the master until it is told to stop; every worker (a respawned one too) builds
    the app from ``policy``, the snapshot of policies/ the caller checked."""
    run(functools.partial(_delegauth_app, policy), bind, workers, server, log_level, threads)


def run(
    load: Callable[[], WSGIApp],
    bind: str,
    workers: int,
    server: str = DEFAULT_SERVER,
    log_level: str = "INFO",
    threads: int = 0,
) -> None:
    """Serve the app ``load()`` builds in each worker, with ``server``'s configuration."""
    options = worker_options(server, threads)
    if server == "granian":
        _run_granian(load, bind, workers, options["threads"], log_level)
    else:
        _Gunicorn(load, bind, workers, options, log_level).run()


def _delegauth_app(policy: PolicySnapshot | None) -> WSGIApp:
    from delegauth.api.app import get_app

    return get_app(policy)


# ---------------------------------------------------------------- gunicorn


class _Gunicorn(BaseApplication):
    def __init__(
        self,
        load: Callable[[], WSGIApp],
        bind: str,
        workers: int,
        options: dict[str, Any],
        log_level: str,
    ) -> None:
        self._load = load
        self._bind = bind
        self._workers = workers
        self._options = options
        self._log_level = log_level
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", self._bind)
        self.cfg.set("workers", self._workers)
        self.cfg.set("worker_class", self._options["worker_class"])
        self.cfg.set("threads", self._options["threads"])
        self.cfg.set("graceful_timeout", GRACEFUL_TIMEOUT_S)
        self.cfg.set("accesslog", None)
        self.cfg.set("loglevel", self._log_level.lower())
        self.cfg.set("when_ready", _forward_hup_to_workers)
        self.cfg.set("child_exit", _worker_exited)
        # Several replicas may share a host: no shared per-user control socket.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        return self._load()


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


class EarlyHup:
    """A worker's SIGHUP handler until its app installs its own: it remembers the signal.

    gunicorn's workers reset SIGHUP to the default action (end the process) before they
    build the app, so a SIGHUP forwarded while a worker boots would kill it. This keeps
    it alive and lets the app, on installing its handler, check policies/ at once if a
    SIGHUP came meanwhile (``seen``; see api.app.get_app)."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.seen = True


class _ProblemAnswers:
    """Answers the requests gunicorn's parser refuses with problem+json, and survives a
    SIGHUP that comes while the worker boots (EarlyHup)."""

    log: Any
    # gunicorn resets these to the default action first: not SIGHUP, which EarlyHup takes
    # over before that reset, so that no instant is left where SIGHUP would end the worker.
    SIGNALS = [s for s in SyncWorker.SIGNALS if s != signal.SIGHUP]

    def init_signals(self) -> None:
        signal.signal(signal.SIGHUP, EarlyHup())
        super().init_signals()  # type: ignore[misc]

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        refused = client_error(exc)
        if refused is None:
            super().handle_error(req, client, addr, exc)  # type: ignore[misc]
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


class ProblemThreadWorker(_ProblemAnswers, ThreadWorker):
    """gunicorn's threaded worker, answering refused requests with problem+json."""


class ProblemSyncWorker(_ProblemAnswers, SyncWorker):
    """gunicorn's sync worker, answering refused requests with problem+json."""


# ---------------------------------------------------------------- granian


def _run_granian(
    load: Callable[[], WSGIApp], bind: str, workers: int, threads: int, log_level: str
) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    where: dict[str, Any]
    if bind.startswith("unix:"):
        from pathlib import Path

        where = {"uds": Path(bind.removeprefix("unix:"))}
    else:
        host, _, port = bind.rpartition(":")
        # granian takes an IP address: a name (localhost) binds its first address, as gunicorn.
        found = socket.getaddrinfo(
            host.strip("[]") or "127.0.0.1", int(port), 0, socket.SOCK_STREAM
        )
        where = {"address": found[0][4][0], "port": int(port)}
    server = _granian_server_class()(
        "delegauth",
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(max_buffer_size=HEAD_BUFFER),
        log_level=LogLevels(log_level.lower()),
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_TIMEOUT_S,
        **where,
    )
    server.serve(target_loader=functools.partial(_limited, load), wrap_loader=False)


def _limited(load: Callable[[], WSGIApp]) -> WSGIApp:
    return _Limits(load())


@functools.cache
def _granian_server_class() -> type:
    """granian's process server, with SIGHUP forwarded and dead workers' metrics marked."""
    from granian.server.mp import MPServer

    from delegauth import metrics

    class _Granian(MPServer):
        def _reload(self, spawn_target: Any, target_loader: Any) -> None:
            # granian respawns every worker on SIGHUP; ours means "check policies/ now".
            self.reload_signal = False
            self.main_loop_interrupt.clear()
            if self.interrupt_signal or self.interrupt_children or self.reload_signal:
                self.main_loop_interrupt.set()  # a signal that came in meanwhile
            for wrk in list(self.wrks):
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(wrk.inner.pid, signal.SIGHUP)

        def _respawn_workers(self, workers: list[int], *args: Any, **kwargs: Any) -> None:
            gone = [self.wrks[idx].inner.pid for idx in workers]
            super()._respawn_workers(workers, *args, **kwargs)
            for pid in gone:
                metrics.worker_exited(pid)

        def _stop_workers(self) -> None:
            gone = [wrk.inner.pid for wrk in self.wrks]
            super()._stop_workers()
            for pid in gone:
                metrics.worker_exited(pid)

    return _Granian


class _Limits:
    """gunicorn's request line and header field limits, answered with problem+json, for a
    server whose own limits are larger (granian)."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        target = len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", ""))
        if target + len(environ.get("REQUEST_METHOD", "")) + 11 > MAX_REQUEST_LINE:
            return _refuse(
                environ, start_response, 414, "URI Too Long", "the request line is too long"
            )
        for key, value in environ.items():
            if key[:5] == "HTTP_" and len(key) + len(value) - 3 > MAX_HEADER_FIELD:
                return _refuse(
                    environ,
                    start_response,
                    431,
                    "Request Header Fields Too Large",
                    "the request has too many or too large header fields",
                )
        return self._app(environ, start_response)


def _refuse(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    status: int,
    title: str,
    detail: str,
) -> Any:
    _log.warning("refused a request from ip=%s: %s %s", environ.get("REMOTE_ADDR"), status, title)
    body = problem_body(status, title, detail).encode("utf-8")
    start_response(
        f"{status} {title}",
        [
            ("Content-Type", PROBLEM_TYPE),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", "close"),
        ],
    )
    return [body]
