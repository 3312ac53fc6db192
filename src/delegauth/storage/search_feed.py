"""PeeweeSearchFeed: who holds grants where, for the AuthZEN search endpoints.

The search endpoints only take candidates from here; every result is confirmed by
the Decider before it is returned.
"""

from __future__ import annotations

import contextlib
from typing import Any

import peewee

from delegauth.errors import Unavailable
from delegauth.storage.db import is_sqlite
from delegauth.storage.records import CasbinRuleRecord, UserRecord

__all__ = ["PeeweeSearchFeed"]

_USER_PREFIX = "user:"
_AREA_PREFIX = "area:"
_IDS_PER_QUERY = 500  # under every SQLite build's limit on bound parameters


class PeeweeSearchFeed:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db
        self._keep_open = is_sqlite(db)

    def _connection(self) -> contextlib.AbstractContextManager[object]:
        # As PeeweePolicyFeed: keep SQLite's connection (closing it checkpoints the WAL).
        if self._keep_open:
            self._db.connect(reuse_if_open=True)
            return contextlib.nullcontext()
        return self._db.connection_context()

    def subject_domains(self, subject: str) -> list[str]:
        """The areas (``area:<id>``) where ``subject`` holds a g line, sorted."""
        rule = CasbinRuleRecord
        query: Any = (
            rule.select(rule.v2)
            .where((rule.ptype == "g") & (rule.v0 == subject) & rule.v2.startswith(_AREA_PREFIX))
            .distinct()
            .tuples()
        )
        return sorted(self._run(query))

    def domain_subjects(self, domain: str) -> list[str]:
        """The users (``user:<id>``) holding a g line in ``domain``, sorted."""
        rule = CasbinRuleRecord
        query: Any = (
            rule.select(rule.v0)
            .where((rule.ptype == "g") & (rule.v2 == domain) & rule.v0.startswith(_USER_PREFIX))
            .distinct()
            .tuples()
        )
        return sorted(self._run(query))

    def verified_emails(self, subjects: list[str]) -> dict[str, str]:
        """The canonical email of each of ``subjects`` (``user:<id>``) that has verified
        it; users without a verified email are left out."""
        ids = [s[len(_USER_PREFIX) :] for s in subjects if s.startswith(_USER_PREFIX)]
        found: dict[str, str] = {}
        for start in range(0, len(ids), _IDS_PER_QUERY):
            user = UserRecord
            query: Any = (
                user.select(user.id, user.email)
                .where(user.id.in_(ids[start : start + _IDS_PER_QUERY]) & user.email_verified)
                .tuples()
            )
            try:
                with self._connection():
                    found.update({_USER_PREFIX + uid: email for uid, email in query})
            except peewee.PeeweeException as ex:
                raise Unavailable("the user store is unavailable") from ex
        return found

    def _run(self, query: Any) -> list[str]:
        try:
            with self._connection():
                return [value for (value,) in query]
        except peewee.PeeweeException as ex:
            raise Unavailable("the policy store is unavailable") from ex
