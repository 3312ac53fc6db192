"""Open the database named by a URL, with the settings each engine needs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

__all__ = ["is_postgres", "is_sqlite", "open_database"]


def open_database(url: str) -> peewee.Database:
    """Return an unconnected peewee Database for ``sqlite:///path`` or ``postgresql://…``."""
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
                "busy_timeout": 10_000,
            },
            # BEGIN IMMEDIATE: a write transaction takes the lock up front instead of
            # failing with "database is locked" when it upgrades from a read.
            lock_type="IMMEDIATE",
            check_same_thread=False,
        )
    if scheme in {"postgres", "postgresql"}:
        # A pool: every transaction opens and closes a connection context cheaply.
        url = "postgresql+pool://" + url.split("://", 1)[1]
        return connect(
            url,
            max_connections=32,
            stale_timeout=300,
            timeout=10,
            connect_timeout=5,
        )
    raise ValueError(f"unsupported database URL scheme: {scheme!r}")


def is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase)


def is_postgres(db: peewee.Database) -> bool:
    return isinstance(db, peewee.PostgresqlDatabase)
