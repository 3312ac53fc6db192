"""Create or upgrade the schema with the versioned migrations in ./migrations.

A migration that finds something an operator must act on (rows it could not convert, say)
calls ``report(message)``: the message is logged at WARNING and handed to ``migrate``'s
caller, which `delegauth migrate` prints on stdout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

import peewee
from playhouse.migrations import Runner

from delegauth.storage.db import is_postgres

__all__ = ["MIGRATIONS_DIR", "migrate", "pending_migrations", "report"]

MIGRATIONS_DIR = str(Path(__file__).with_name("migrations"))
# Any fixed number: every delegauth process that migrates a PostgreSQL database takes it.
_PG_LOCK_KEY = 0x64656C65

log = logging.getLogger("delegauth.storage.migrations")
_reported: ContextVar[Callable[[str], None] | None] = ContextVar("_reported", default=None)


def report(message: str) -> None:
    """For migrations: tell the operator something (logged at WARNING, passed to the caller)."""
    log.warning("%s", message)
    sink = _reported.get()
    if sink is not None:
        sink(message)


def migrate(db: peewee.Database, on_report: Callable[[str], None] | None = None) -> list[str]:
    """Apply the pending migrations in order; safe to run again and from several processes.

    ``on_report`` receives each message the migrations ``report``.
    """
    reset = _reported.set(on_report)
    try:
        return _migrate(db)
    finally:
        _reported.reset(reset)


def _migrate(db: peewee.Database) -> list[str]:
    with db.connection_context():
        if is_postgres(db):
            # Serialize concurrent `migrate` runs (several replicas starting at once).
            db.execute_sql("SELECT pg_advisory_lock(%s)", (_PG_LOCK_KEY,))
            try:
                return list(Runner(db, MIGRATIONS_DIR).up())
            finally:
                db.execute_sql("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_KEY,))
        return list(Runner(db, MIGRATIONS_DIR).up())


def pending_migrations(db: peewee.Database) -> list[str]:
    with db.connection_context():
        return [m.name for m in Runner(db, MIGRATIONS_DIR).status() if not m.applied]
