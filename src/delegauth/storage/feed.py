"""PeeweePolicyFeed: a domain's g lines and the policy change log, for the Decider."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import socket
import threading
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import peewee

from delegauth.policy.decider import AreaChange
from delegauth.storage.db import is_postgres, is_sqlite
from delegauth.storage.records import AccessRevocationRecord, ChangeRecord
from delegauth.storage.store import CHANGE_CHANNEL, GROUP_SUBJECT, grouped_changes

__all__ = ["PeeweePolicyFeed"]

log = logging.getLogger(__name__)


class _Listener:
    """A dedicated PostgreSQL connection LISTENing for change-log notifications."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db
        self._conn: Any = None
        # wake() writes a byte here so that a wait blocked in select() returns at once.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def _connect(self) -> Any:
        import psycopg2

        params = dict(self._db.connect_params)
        params.pop("max_connections", None)
        params.pop("stale_timeout", None)
        params.pop("timeout", None)
        conn = psycopg2.connect(dbname=self._db.database, **params)
        conn.set_session(autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANGE_CHANNEL}")
        return conn

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # buffer full: a wake is pending anyway
            self._wake_w.send(b"\0")

    def _drain_wakes(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def wait(self, timeout: float) -> bool:
        """Block until a change is announced (True), or wake() is called or ``timeout``
        passes (False)."""
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            if not conn.notifies:
                ready, _, _ = select.select([conn, self._wake_r], [], [], timeout)
                if conn in ready:
                    conn.poll()
            got = bool(conn.notifies)
            conn.notifies.clear()
            self._drain_wakes()
            return got
        except Exception:  # noqa: BLE001 - polling carries on; reconnect next time
            log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
            self.close()
            select.select([self._wake_r], [], [], min(timeout, 1.0))
            self._drain_wakes()
            return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


def _driver_errors(db: peewee.Database) -> tuple[type[Exception], ...]:
    """The driver's own errors, which peewee would have wrapped."""
    if is_sqlite(db):
        import sqlite3

        return (sqlite3.Error,)
    import psycopg2

    return (psycopg2.Error,)


_MARK = re.compile(r"%[sd]")


def _marks(sql: str) -> list[str]:
    return _MARK.findall(sql)


def _numbered(sql: str) -> str:
    """psycopg2 placeholders as PostgreSQL's $1, $2 … for PREPARE."""
    count = iter(range(1, 100))
    return _MARK.sub(lambda _: f"${next(count)}", sql)


class PeeweePolicyFeed:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db
        self._listener = _Listener(db) if is_postgres(db) else None
        self._woken = threading.Event()
        self._sqlite = is_sqlite(db)
        mark, limit = ("?", "?") if self._sqlite else ("%s", "%d")
        # v3: the grant's end (policies/model.conf), "" for none
        links = f"SELECT v0, v1, v3 FROM casbin_rule WHERE v2 = {mark} AND ptype = 'g'"
        self._sql = {
            "links": links,
            "area": "SELECT NULL, CAST(COALESCE(MAX(version), 0) AS TEXT), NULL"
            " FROM policy_changes"
            f" UNION ALL {links}",
            # "+ptype" keeps SQLite (without ANALYZE) on the index led by v2, read in order
            # (migration 0015's unique index; before it, one led by ptype was there too).
            "after": f"SELECT v2, v0, v1, v3 FROM casbin_rule WHERE v2 > {mark}"
            f" AND {'+' if self._sqlite else ''}ptype = 'g' ORDER BY v2 LIMIT {limit}",
        }
        self._driver_errors = _driver_errors(db)

    def wait_for_change(self, timeout: float) -> bool:
        """Wait for a change-log notification (PostgreSQL LISTEN/NOTIFY); without one, wait
        ``timeout`` and let the caller poll. Returns early on wake(). True when a change
        was announced."""
        if self._listener is None:
            self._woken.wait(timeout)
            self._woken.clear()
            return False
        return self._listener.wait(timeout)

    def wake(self) -> None:
        """End a wait_for_change() now: a caller is waiting for the change log."""
        if self._listener is None:
            self._woken.set()
        else:
            self._listener.wake()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[None]:
        # Keep this thread's connection open between calls. SQLite: closing the last
        # connection to a WAL database checkpoints it and deletes the -wal file (about
        # 0.6 ms). PostgreSQL: a checkout from peewee's pool pings the server first (a round
        # trip). Either would be most of a cold area load.
        self._db.connect(reuse_if_open=True)
        try:
            yield
        except Exception:
            # The connection may be dead (a server restarted, a bound passed): the next
            # call opens another.
            self.release_connection()
            raise

    def release_connection(self) -> None:
        """Close (or give back to the pool) this thread's kept connection: a thread that
        ends calls it, or the pool would count that connection as in use for good."""
        with contextlib.suppress(Exception):
            self._db.close()

    def domain_links(self, domain: str) -> list[tuple[str, str, str]]:
        """The domain's g lines as (subject, role, end); end "" when the grant has none."""
        with self._connection():
            return [(sub, role, end or "") for sub, role, end in self._rows("links", (domain,))]

    def area(self, domain: str) -> tuple[int, list[tuple[str, str, str]]]:
        """The change-log head and the domain's g lines, read by one statement (one
        snapshot): the lines hold every change up to that version and none after it."""
        with self._connection():
            rows = self._rows("area", (domain,))
        version = 0
        links = []
        for sub, role, end in rows:
            if sub is None:
                version = int(role)
            else:
                links.append((sub, role, end or ""))
        return version, links

    def links_after(self, domain: str, limit: int) -> list[tuple[str, str, str, str]]:
        """Up to ``limit`` g lines (domain, subject, role, end) of the domains after
        ``domain``, in domain order: the warm-up reads every area in pages of these."""
        with self._connection():
            return [(d, s, r, e or "") for d, s, r, e in self._rows("after", (domain, limit))]

    def _rows(self, name: str, params: tuple[object, ...]) -> list[Any]:
        # The driver directly: building the same query with peewee costs several times
        # more than running it (most of a cold area load). Prepared statements: sqlite3
        # keeps them in its per-connection cache; on PostgreSQL each kept connection
        # prepares them once, which saves planning them at every call.
        sql = self._sql[name]
        cursor = self._db.cursor()
        try:
            if not self._sqlite:
                conn = self._db.connection()
                if not getattr(conn, "delegauth_prepared", False):
                    for key, text in self._sql.items():
                        types = ", ".join("text" if p == "%s" else "int" for p in _marks(text))
                        cursor.execute(f"PREPARE delegauth_{key} ({types}) AS {_numbered(text)}")
                    conn.delegauth_prepared = True
                marks = ", ".join(["%s"] * len(params))
                sql = f"EXECUTE delegauth_{name} ({marks})"
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        except self._driver_errors as ex:
            raise peewee.OperationalError(str(ex)) from ex
        finally:
            cursor.close()

    def revocations(self) -> tuple[int, list[tuple[str, int]]]:
        """The change-log head and every revoked access token (jti_hash, exp), read by one
        statement (one snapshot): a revocation is announced in the same transaction that
        records it, so these hold every revocation up to that version."""
        sql = (
            "SELECT NULL, CAST(COALESCE(MAX(version), 0) AS TEXT), NULL FROM policy_changes"
            " UNION ALL SELECT jti_hash, NULL, expires_at FROM oauth_access_revocations"
        )
        with self._connection():
            cursor = self._db.cursor()
            try:
                cursor.execute(sql)
                rows = list(cursor.fetchall())
            except self._driver_errors as ex:
                raise peewee.OperationalError(str(ex)) from ex
            finally:
                cursor.close()
        version = 0
        revoked = []
        as_datetime = AccessRevocationRecord.expires_at.python_value
        for digest, head, expires_at in rows:
            if digest is None:
                version = int(head)
            else:
                exp = as_datetime(expires_at).replace(tzinfo=UTC).timestamp()
                revoked.append((str(digest), int(exp)))
        return version, revoked

    def latest_version(self) -> int:
        with self._connection():
            value = ChangeRecord.select(peewee.fn.MAX(ChangeRecord.version)).scalar()
            return int(value or 0)

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        with self._connection():
            query: Any = (
                ChangeRecord.select(
                    ChangeRecord.version,
                    ChangeRecord.domain,
                    ChangeRecord.subject,
                    ChangeRecord.roles,
                    ChangeRecord.valid_until,
                )
                .where(ChangeRecord.version > version)
                .order_by(ChangeRecord.version)
                .limit(limit)
                .tuples()
            )
            changes = []
            for v, d, s, r, e in query:
                if s == GROUP_SUBJECT:
                    # Several subjects' role sets, one version: the Decider applies them all.
                    changes += [AreaChange(v, d, *change) for change in grouped_changes(r)]
                else:
                    changes.append(AreaChange(v, d, s, tuple(json.loads(r)), e or ""))
            return changes
