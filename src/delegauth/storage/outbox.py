"""PeeweeOutbox: the mail_outbox table as a work queue, on SQLite or PostgreSQL.

A worker owns a row once its conditional UPDATE (still pending, due and unleased)
changes exactly that row. Both engines serialize the UPDATE against concurrent
writers and re-check its WHERE clause, so no two workers or replicas hold the same
message at once; a crashed worker's lease simply runs out.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import peewee

from delegauth.mail.sender import QueuedMail
from delegauth.storage.db import connected
from delegauth.storage.records import MailRecord

__all__ = ["PeeweeOutbox"]

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


def _claimable(now: datetime) -> peewee.Expression:
    return (
        (MailRecord.status == PENDING)
        & (MailRecord.next_attempt_at <= now)
        & (MailRecord.locked_until.is_null() | (MailRecord.locked_until < now))
    )


class PeeweeOutbox:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def claim_due(self, now: datetime, limit: int, lease_s: float) -> list[QueuedMail]:
        """Lease up to ``limit`` due messages to the caller until ``now + lease_s``."""
        locked_until = now + timedelta(seconds=lease_s)
        claimed: list[QueuedMail] = []
        with connected(self._db):
            while len(claimed) < limit:
                candidates: list[int] = [
                    r.id
                    for r in MailRecord.select(MailRecord.id)
                    .where(_claimable(now))
                    .order_by(MailRecord.next_attempt_at, MailRecord.id)
                    .limit(limit - len(claimed))
                ]
                if not candidates:
                    break
                # Each round claims a candidate or sees another worker take it, so that
                # row no longer matches: the loop always ends.
                for row_id in candidates:
                    mail = self._claim(row_id, now, locked_until)
                    if mail is not None:
                        claimed.append(mail)
        return claimed

    def _claim(self, row_id: int, now: datetime, locked_until: datetime) -> QueuedMail | None:
        with self._db.atomic():
            won = (
                MailRecord.update(locked_until=locked_until, attempts=MailRecord.attempts + 1)
                .where((MailRecord.id == row_id) & _claimable(now))
                .execute()
            )
            if won != 1:
                return None
            row = MailRecord.get_by_id(row_id)
        return QueuedMail(
            id=row.id,
            to=row.to,
            subject=row.subject,
            text=row.text,
            html=row.html,
            kind=row.kind,
            headers=json.loads(row.headers or "{}"),
            attempts=row.attempts,
            created_at=row.created_at,
        )

    def mark_sent(self, mail_id: int, now: datetime) -> None:
        self._finish(mail_id, status=SENT, sent_at=now)

    def mark_retry(self, mail_id: int, error_text: str, next_attempt_at: datetime) -> None:
        self._finish(
            mail_id, status=PENDING, last_error=error_text, next_attempt_at=next_attempt_at
        )

    def mark_failed(self, mail_id: int, error_text: str) -> None:
        self._finish(mail_id, status=FAILED, last_error=error_text)

    def _finish(self, mail_id: int, **fields: object) -> None:
        with connected(self._db), self._db.atomic():
            MailRecord.update(locked_until=None, **fields).where(MailRecord.id == mail_id).execute()

    def depth(self) -> int:
        """Count the messages still waiting to be sent."""
        with connected(self._db):
            return int(MailRecord.select().where(MailRecord.status == PENDING).count())
