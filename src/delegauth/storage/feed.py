"""PeeweePolicyFeed: a domain's g lines and the policy change log, for the Decider."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import peewee

from delegauth.policy.decider import AreaChange
from delegauth.storage.db import is_sqlite
from delegauth.storage.records import CasbinRuleRecord, ChangeRecord

__all__ = ["PeeweePolicyFeed"]


class PeeweePolicyFeed:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db
        self._keep_open = is_sqlite(db)

    def _connection(self) -> contextlib.AbstractContextManager[object]:
        # SQLite: keep this thread's connection. Closing the last connection to a WAL
        # database checkpoints it and deletes the -wal file, so a connection per call costs
        # about 0.6 ms: most of a cold area load. PostgreSQL: the pool makes that cheap.
        if self._keep_open:
            self._db.connect(reuse_if_open=True)
            return contextlib.nullcontext()
        return self._db.connection_context()

    def domain_links(self, domain: str) -> list[tuple[str, str]]:
        with self._connection():
            query: Any = (
                CasbinRuleRecord.select(CasbinRuleRecord.v0, CasbinRuleRecord.v1)
                .where((CasbinRuleRecord.v2 == domain) & (CasbinRuleRecord.ptype == "g"))
                .tuples()
            )
            return [(sub, role) for sub, role in query]

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
                )
                .where(ChangeRecord.version > version)
                .order_by(ChangeRecord.version)
                .limit(limit)
                .tuples()
            )
            return [AreaChange(v, d, s, tuple(json.loads(r))) for v, d, s, r in query]
