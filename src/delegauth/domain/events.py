"""Grant-change events for other systems: which audit kinds publish as which event type.

Every audit event is published (webhooks, see storage/webhooks.py); its ``type`` is the
name below, or the audit kind itself for a kind this table does not know yet, so a kind
added later is published rather than dropped. The payload follows the Standard Webhooks
shape (``type``, ``timestamp``, ``data``) and always carries the audit kind as well.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from delegauth.domain.entities import AuditEvent

__all__ = ["EVENT_TYPES", "PUBLISHED_TYPES", "event_payload", "event_type"]

# audit kind -> published event type (the grant-change vocabulary of issue 14).
EVENT_TYPES: dict[str, str] = {
    "invitation.created": "grant.invited",
    "invitation.accepted": "grant.accepted",
    "invitation.declined": "grant.declined",
    "grant.created": "grant.created",
    "grant.updated": "grant.changed",
    "grant.removed": "grant.removed",
    "grant.left": "grant.removed",
    "grant.expired": "grant.expired",
    "access_request.created": "grant.requested",
    "access_request.approved": "grant.approved",
    "access_request.declined": "grant.request_declined",
    "access_request.withdrawn": "grant.request_withdrawn",
}


# Audit kinds published under their own names (the table above does not rename them).
_OWN_NAMES = (
    "area.created",
    "area.imported",
    "area.updated",
    "grants.imported",
    "invitation.cancelled",
    "invitation.expired",
    "invitation.imported",
    "invitation.resent",
    "invitation.updated",
)

# Every event type a webhook may ask for (its filter), in order.
PUBLISHED_TYPES: tuple[str, ...] = tuple(sorted({*EVENT_TYPES.values(), *_OWN_NAMES}))


def event_type(action: str) -> str:
    """The event type an audit kind publishes as: the table's name, else the kind itself."""
    return EVENT_TYPES.get(action, action)


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds") + "Z"


def event_payload(event: AuditEvent, audit_id: int, published_at: datetime) -> dict[str, Any]:
    """The JSON body of the webhook for ``event`` (stored as sent, and signed as stored)."""
    return {
        "type": event_type(event.action),
        "timestamp": _ts(published_at),
        "data": {
            "audit_id": audit_id,
            "action": event.action,
            "area": event.area_id,
            "actor": event.actor_id,
            "target": event.target,
            "before": event.before,
            "after": event.after,
            "at": _ts(event.at),
        },
    }
