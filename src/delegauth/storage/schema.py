"""Create or upgrade the schema with the versioned migrations in ./migrations."""

from __future__ import annotations

from pathlib import Path

import peewee
from playhouse.migrations import Runner

from delegauth.storage.db import is_postgres

__all__ = ["MIGRATIONS_DIR", "migrate", "pending_migrations"]

MIGRATIONS_DIR = str(Path(__file__).with_name("migrations"))
# Any fixed number: every delegauth process that migrates a PostgreSQL database takes it.
_PG_LOCK_KEY = 0x64656C65


def migrate(db: peewee.Database) -> list[str]:
    """Apply the pending migrations in order; safe to run again and from several processes."""
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
