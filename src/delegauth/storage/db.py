"""Open the database named by a URL, with every call bounded in time.

A database that hangs (a network partition, a server stopped with SIGSTOP) must make its
callers fail fast with ``peewee.OperationalError``, never wait with them:

- SQLite: the busy timeout bounds the wait for another writer's lock.
- PostgreSQL: the server cancels statements and lock waits past the statement timeout,
  and ends sessions left idle inside a transaction. A frozen server enforces none of that,
  so the client bounds every wait as well (connecting, each statement, the commit) in
  psycopg2's wait callback, and closes the connection once the bound has passed: the
  transaction on it can then never commit. After such a timeout the database is treated
  as down for a moment (``_Gate``): new checkouts fail at once, so a hung database costs
  one bounded wait, not one per queued caller.
"""

from __future__ import annotations

import contextlib
import math
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee
from playhouse.db_url import parse
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase

from delegauth.errors import Unavailable

__all__ = ["DatabaseProbe", "connected", "is_postgres", "is_sqlite", "open_database"]

# The client's own bound on a statement exceeds the server's by this much, so that a slow
# statement is cancelled by the server (the connection stays usable) and only a server that
# does not answer at all trips the client's bound.
_CLIENT_GRACE_S = 0.5
# How long the database counts as down after it failed to answer: matches Retry-After.
_COOLDOWN_S = 1.0
# Idle pooled connections to a host that vanished are found by TCP keepalives (seconds).
_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


def open_database(
    url: str,
    *,
    connect_timeout_s: float = 2.0,
    statement_timeout_ms: int = 2000,
    busy_timeout_ms: int = 1000,
) -> peewee.Database:
    """Return an unconnected peewee Database for ``sqlite:///path`` or ``postgresql://…``.

    ``statement_timeout_ms=0`` leaves statements unbounded (migrations); connecting and
    waiting for a free pooled connection stay bounded by ``connect_timeout_s``.
    """
    scheme = urlparse(url).scheme
    if scheme.startswith("sqlite"):
        path = url.split("://", 1)[1].lstrip("/") if url.startswith("sqlite:///") else ""
        if url.startswith("sqlite:////"):
            path = "/" + url[len("sqlite:////") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(
            path or ":memory:",
            pragmas={
                "journal_mode": "wal",
                "synchronous": "normal",
                "foreign_keys": 1,
                "busy_timeout": busy_timeout_ms,
            },
            timeout=busy_timeout_ms / 1000,
            # BEGIN IMMEDIATE: a write transaction takes the lock up front instead of
            # failing with "database is locked" when it upgrades from a read.
            lock_type="IMMEDIATE",
            check_same_thread=False,
        )
    if scheme in {"postgres", "postgresql"}:
        return _postgres(url, connect_timeout_s, statement_timeout_ms)
    raise ValueError(f"unsupported database URL scheme: {scheme!r}")


@contextlib.contextmanager
def connected(db: peewee.Database) -> Iterator[None]:
    """A connection for the block; a database that is down raises Unavailable."""
    try:
        with db.connection_context():
            yield
    except (peewee.OperationalError, peewee.InterfaceError) as ex:
        raise Unavailable("the database is unavailable") from ex


def is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase)


def is_postgres(db: peewee.Database) -> bool:
    return isinstance(db, peewee.PostgresqlDatabase)


class DatabaseProbe:
    """Whether the database answers ``SELECT 1`` within ``timeout_s``; never waits longer.

    The query runs in a thread of its own, which may stay blocked (up to the database's
    own bounds) after the caller has had its answer. Callers that come while a probe is
    under way share it, so a flood of callers cannot open a flood of connections.
    """

    def __init__(self, db: peewee.Database, timeout_s: float) -> None:
        self._db = db
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._ok = False

    def __call__(self) -> bool:
        with self._lock:
            done = self._done
            if done.is_set():
                done = self._done = threading.Event()
                threading.Thread(
                    target=self._run, args=(done,), name="database-probe", daemon=True
                ).start()
        return done.wait(self._timeout) and self._ok

    def _run(self, done: threading.Event) -> None:
        try:
            with self._db.connection_context():
                self._db.execute_sql("SELECT 1")
            self._ok = True
        except Exception:  # noqa: BLE001 - any failure means the database is not there
            self._ok = False
        finally:
            done.set()


# -- PostgreSQL ------------------------------------------------------------------------


class _Gate:
    """Fails new checkouts at once for a moment after the database stopped answering."""

    def __init__(self, cooldown_s: float) -> None:
        self._cooldown = cooldown_s
        self._until = 0.0

    def trip(self) -> None:
        self._until = time.monotonic() + self._cooldown

    def check(self) -> None:
        if time.monotonic() < self._until:
            raise peewee.OperationalError("the database did not answer; not trying again yet")


def _postgres(url: str, connect_timeout_s: float, statement_timeout_ms: int) -> peewee.Database:
    import psycopg2.extensions

    gate = _Gate(_COOLDOWN_S)
    io_timeout_s = statement_timeout_ms / 1000 + _CLIENT_GRACE_S if statement_timeout_ms else None
    # A connection class per database: it carries the bounds _wait reads.
    factory = type(
        "BoundedConnection",
        (psycopg2.extensions.connection,),
        {"connect_timeout_s": connect_timeout_s, "io_timeout_s": io_timeout_s, "gate": gate},
    )
    # Every psycopg2 connection of the process now waits through _wait (one global hook);
    # connections without the bounds above wait as psycopg2 would, without limit.
    psycopg2.extensions.set_wait_callback(_wait)
    params: dict[str, Any] = parse(url)
    server_limits = (
        f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}"
        f" -c idle_in_transaction_session_timeout={5 * statement_timeout_ms}"
    )
    params["options"] = f"{params.get('options', '')} {server_limits}".strip()
    params.update(_KEEPALIVE)
    # libpq's own bounds, for waits the callback does not see: its connect_timeout counts
    # whole seconds (2 at least), tcp_user_timeout ends a socket whose data goes unacked.
    params["connect_timeout"] = max(2, math.ceil(connect_timeout_s))
    params["tcp_user_timeout"] = int((io_timeout_s or 0) * 1000)
    params["connection_factory"] = factory
    db = _BoundedPool(max_connections=32, stale_timeout=300, **params)
    db.gate = gate
    db._driver_error = psycopg2.OperationalError
    db._wait_timeout = connect_timeout_s  # a bounded wait for a free pooled connection
    return db


def _wait(conn: Any) -> None:
    """psycopg2's wait callback: poll the connection, within the bound its class sets."""
    import psycopg2
    import psycopg2.extensions as ext

    connecting = conn.status == ext.STATUS_SETUP
    limit = getattr(conn, "connect_timeout_s" if connecting else "io_timeout_s", None)
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            gate = getattr(conn, "gate", None)
            if gate is not None:
                gate.trip()
            # Raising here makes psycopg2 close the connection: nothing more is sent on
            # it, so a transaction left open on it is rolled back, never committed.
            what = "connect" if connecting else "answer"
            raise psycopg2.OperationalError(f"the database did not {what} within {limit:g} s")
        if state not in (ext.POLL_READ, ext.POLL_WRITE):
            raise psycopg2.OperationalError(f"bad state from poll: {state}")
        # poll(2), not select(2): a busy process may hold descriptors past FD_SETSIZE.
        waiting = select.poll()
        waiting.register(conn.fileno(), select.POLLIN if state == ext.POLL_READ else select.POLLOUT)
        waiting.poll(None if left is None else math.ceil(left * 1000))


class _GatedPostgresqlDatabase(peewee.PostgresqlDatabase):
    """Opens a new connection only while the gate is open; a failure to connect shuts it."""

    gate: _Gate
    _driver_error: type[Exception]

    def _connect(self) -> Any:
        self.gate.check()
        try:
            return super()._connect()  # type: ignore[misc]  # peewee has no stubs for it
        except self._driver_error:
            self.gate.trip()  # refused, or no answer in time
            raise


class _BoundedPool(PooledPostgresqlDatabase, _GatedPostgresqlDatabase):
    """peewee's pool, failing fast while the gate is shut and when no connection is free.

    The pool opens its new connections through _GatedPostgresqlDatabase (next in the MRO).
    """

    def connect(self, reuse_if_open: bool = False) -> bool:
        if self.is_closed():
            self.gate.check()
        try:
            return bool(super().connect(reuse_if_open))
        except MaxConnectionsExceeded as ex:
            raise peewee.OperationalError("no free database connection") from ex

    def _is_closed(self, conn: Any) -> bool:
        # Checking out an idle connection costs a round trip; once one has timed out,
        # leave the rest for later instead of spending one bound on each. A caller that
        # queued for the pool while the gate shut fails here too.
        try:
            self.gate.check()
        except peewee.OperationalError:
            self._close_raw(conn)
            raise
        return bool(super()._is_closed(conn))
