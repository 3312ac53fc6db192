"""The audit trail for a SIEM: oldest first after a cursor, as NDJSON or CSV.

The cursor is the last exported event's id; events are numbered in commit order (storage
takes the change-log lock for each audit write on PostgreSQL), so "after N" never skips an
event that commits later with a smaller id. An area's owner exports their area; an
operator (the CLI) exports every area.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from delegauth.domain.access import require_grant
from delegauth.domain.entities import AuditEvent, Role
from delegauth.domain.events import event_type
from delegauth.domain.ports import Store
from delegauth.errors import Forbidden, InvalidInput

__all__ = ["AuditTrail", "FORMATS", "MAX_EXPORT", "audit_record", "to_csv", "to_ndjson"]

MAX_EXPORT = 10_000
FORMATS = ("ndjson", "csv")
COLUMNS = (
    "id",
    "at",
    "area",
    "actor",
    "action",
    "type",
    "target",
    "before",
    "after",
    "policy_hash",
)


class AuditSource(Protocol):
    def export_audit(self, area_id: str | None, after_id: int, limit: int) -> list[AuditEvent]: ...


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds") + "Z"


def audit_record(event: AuditEvent) -> dict[str, Any]:
    """One exported event (the same fields in both formats)."""
    return {
        "id": event.id,
        "at": _ts(event.at),
        "area": event.area_id,
        "actor": event.actor_id,
        "action": event.action,
        "type": event_type(event.action),
        "target": event.target,
        "before": event.before,
        "after": event.after,
        "policy_hash": event.policy_hash,
    }


def to_ndjson(events: Iterable[AuditEvent]) -> str:
    return "".join(
        json.dumps(audit_record(e), sort_keys=True, separators=(",", ":")) + "\n" for e in events
    )


def to_csv(events: Iterable[AuditEvent], *, header: bool = True) -> str:
    """RFC 4180 CSV; before and after are JSON texts in their cells."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    for event in events:
        row = audit_record(event)
        for name in ("before", "after"):
            row[name] = "" if row[name] is None else json.dumps(row[name], sort_keys=True)
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return out.getvalue()


class AuditTrail:
    def __init__(self, store: Store, source: AuditSource) -> None:
        self._store = store
        self._source = source

    def export(
        self, actor_id: str | None, area_id: str | None, after: int = 0, limit: int = 1000
    ) -> list[AuditEvent]:
        """Events after ``after``, oldest first: an area's for its owner, or with
        ``area_id`` None (operators only) every area's."""
        if not 1 <= limit <= MAX_EXPORT:
            raise InvalidInput(f"limit must be 1 to {MAX_EXPORT}", field="limit")
        with self._store.transaction():
            if actor_id is not None:  # None: an operator
                if area_id is None:
                    raise Forbidden("only operators export every area", code="owner_only")
                grant = require_grant(self._store, area_id, actor_id)
                if grant.role is not Role.OWNER:
                    raise Forbidden(
                        "only the area's owner exports its audit trail", code="owner_only"
                    )
            return self._source.export_audit(area_id, after, limit)
