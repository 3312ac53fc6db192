"""PeeweeWebhookStore: webhook endpoints, the event outbox and the delivery queue.

``publish`` runs inside the audit event's own transaction (PeeweeStore.append_audit): the
event and one delivery per subscribed endpoint commit with the change or not at all.
Deliveries are claimed like mail (storage/outbox.py): a conditional UPDATE takes a lease,
so several workers and replicas can dispatch at once; a dispatcher that dies mid-send
leaves a lease that runs out, and its delivery is sent again (at least once).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee

from delegauth.domain.entities import AuditEvent
from delegauth.domain.events import event_payload, event_type
from delegauth.domain.webhooks import Delivery, Endpoint
from delegauth.storage.db import connected
from delegauth.storage.records import (
    WebhookDeliveryRecord,
    WebhookEndpointRecord,
    WebhookEventRecord,
)
from delegauth.webhooks.dispatcher import ClaimedDelivery

__all__ = [
    "DELIVERY_COLUMNS",
    "EVENT_COLUMNS",
    "PeeweeWebhookStore",
    "delivery_row",
    "event_row",
    "receives",
]

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


def _wall_clock() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _claimable(now: datetime) -> peewee.Expression:
    return (
        (WebhookDeliveryRecord.status == PENDING)
        & (WebhookDeliveryRecord.next_attempt_at <= now)
        & (
            WebhookDeliveryRecord.locked_until.is_null()
            | (WebhookDeliveryRecord.locked_until < now)
        )
    )


def _endpoint(row: WebhookEndpointRecord) -> Endpoint:
    data = dict(row.__data__)
    types = data.pop("event_types", None)
    return Endpoint(**data, event_types=None if types is None else tuple(json.loads(types)))


def _columns(endpoint: Endpoint) -> dict[str, Any]:
    data = vars(endpoint).copy()
    types = data.pop("event_types")
    data["event_types"] = None if types is None else json.dumps(list(types))
    return data


def receives(event_types: str | None, kind: str) -> bool:
    """Whether an endpoint whose stored filter is ``event_types`` (JSON, None: every type)
    receives events of ``kind``."""
    return event_types is None or kind in json.loads(event_types)


# The columns of an event row and of a delivery row, in the order bulk writers insert them.
EVENT_COLUMNS = ("msg_id", "audit_id", "type", "area_id", "payload", "created_at")
DELIVERY_COLUMNS = ("event_id", "endpoint_id", "status", "attempts", "next_attempt_at",
                    "created_at")  # fmt: skip


def event_row(event: AuditEvent, audit_id: int, now: datetime) -> dict[str, Any]:
    """The outbox row of audit event ``audit_id``, published at ``now`` (the wall clock)."""
    payload = event_payload(event, audit_id, now)
    return {
        "msg_id": "msg_" + secrets.token_urlsafe(18),
        "audit_id": audit_id,
        "type": payload["type"],
        "area_id": event.area_id,
        "payload": json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str),
        "created_at": now,
    }


def delivery_row(event_id: int, endpoint_id: str, at: datetime) -> dict[str, Any]:
    """A pending delivery of an event to an endpoint, due from the audit event's time ``at``."""
    return {
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": at - timedelta(seconds=1),
        "created_at": at,
    }


class PeeweeWebhookStore:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    # -- publishing (inside the audit event's transaction) ---------------------------

    def publish(self, event: AuditEvent, audit_id: int) -> bool:
        """Queue ``event`` for every endpoint of its area and every service-wide one that
        receives its type.

        Returns whether anything was queued. The event's ``created_at`` is the wall clock
        (delivery lag is measured from it); its deliveries are due from the audit event's
        time, on the domain's clock like every other schedule.
        """
        kind = event_type(event.action)
        query: Any = (
            WebhookEndpointRecord.select(
                WebhookEndpointRecord.id, WebhookEndpointRecord.event_types
            )
            .where(
                (WebhookEndpointRecord.area_id == event.area_id)
                | WebhookEndpointRecord.area_id.is_null()
            )
            .tuples()
        )
        rows: list[tuple[str, str | None]] = list(query)
        endpoints = [ident for ident, types in rows if receives(types, kind)]
        if not endpoints:
            return False
        event_id = WebhookEventRecord.insert(**event_row(event, audit_id, _wall_clock())).execute()
        WebhookDeliveryRecord.insert_many(
            [delivery_row(event_id, endpoint_id, event.at) for endpoint_id in endpoints]
        ).execute()
        return True

    # -- endpoints ---------------------------------------------------------------------

    def add_endpoint(self, endpoint: Endpoint) -> None:
        WebhookEndpointRecord.insert(**_columns(endpoint)).execute()

    def update_endpoint(self, endpoint: Endpoint) -> None:
        """Store its filter and secrets (the rest never changes)."""
        columns = _columns(endpoint)
        WebhookEndpointRecord.update(
            event_types=columns["event_types"],
            secret_salt=endpoint.secret_salt,
            previous_salt=endpoint.previous_salt,
            previous_until=endpoint.previous_until,
        ).where(WebhookEndpointRecord.id == endpoint.id).execute()

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        row = WebhookEndpointRecord.get_or_none(WebhookEndpointRecord.id == endpoint_id)
        return None if row is None else _endpoint(row)

    def list_endpoints(self, area_id: str | None, *, every: bool = False) -> list[Endpoint]:
        query = WebhookEndpointRecord.select()
        if not every:
            query = query.where(
                WebhookEndpointRecord.area_id.is_null()
                if area_id is None
                else WebhookEndpointRecord.area_id == area_id
            )
        rows = query.order_by(WebhookEndpointRecord.created_at, WebhookEndpointRecord.id)
        return [_endpoint(r) for r in rows]

    def remove_endpoint(self, endpoint_id: str) -> None:
        """Remove it, with its delivery log: nothing more is sent to it."""
        WebhookDeliveryRecord.delete().where(
            WebhookDeliveryRecord.endpoint_id == endpoint_id
        ).execute()
        WebhookEndpointRecord.delete().where(WebhookEndpointRecord.id == endpoint_id).execute()

    # -- the delivery log --------------------------------------------------------------

    @staticmethod
    def _deliveries() -> Any:
        return (
            WebhookDeliveryRecord.select(
                WebhookDeliveryRecord, WebhookEventRecord.msg_id, WebhookEventRecord.type
            )
            .join(WebhookEventRecord, on=WebhookDeliveryRecord.event_id == WebhookEventRecord.id)
            .objects()
        )

    @staticmethod
    def _delivery(row: Any) -> Delivery:
        return Delivery(
            id=row.id,
            endpoint_id=row.endpoint_id,
            msg_id=row.msg_id,
            type=row.type,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            response_code=row.response_code,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
        )

    def list_deliveries(
        self, endpoint_id: str, before_id: int | None, limit: int
    ) -> list[Delivery]:
        query = self._deliveries().where(WebhookDeliveryRecord.endpoint_id == endpoint_id)
        if before_id is not None:
            query = query.where(WebhookDeliveryRecord.id < before_id)
        rows = query.order_by(WebhookDeliveryRecord.id.desc()).limit(limit)
        return [self._delivery(r) for r in rows]

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        row = self._deliveries().where(WebhookDeliveryRecord.id == delivery_id).first()
        return None if row is None else self._delivery(row)

    def redeliver(self, delivery_id: int, now: datetime) -> Delivery:
        """Queue the delivery's event again as a new entry (the old one keeps its history)."""
        old = WebhookDeliveryRecord.get_by_id(delivery_id)
        new_id = WebhookDeliveryRecord.insert(
            event_id=old.event_id,
            endpoint_id=old.endpoint_id,
            status=PENDING,
            attempts=0,
            next_attempt_at=now - timedelta(seconds=1),
            created_at=now,
        ).execute()
        found = self.get_delivery(int(new_id))
        assert found is not None
        return found

    # -- dispatching -------------------------------------------------------------------

    def claim_due(self, now: datetime, lease_s: float) -> ClaimedDelivery | None:
        """Lease the next due delivery to the caller until ``now + lease_s``, or None."""
        locked_until = now + timedelta(seconds=lease_s)
        with connected(self._db):
            while True:
                candidate = (
                    WebhookDeliveryRecord.select(WebhookDeliveryRecord.id)
                    .where(_claimable(now))
                    .order_by(WebhookDeliveryRecord.next_attempt_at, WebhookDeliveryRecord.id)
                    .first()
                )
                if candidate is None:
                    return None
                # Either this caller wins the row or another took it (then it no longer
                # matches): the loop always ends.
                with self._db.atomic():
                    won = (
                        WebhookDeliveryRecord.update(
                            locked_until=locked_until,
                            attempts=WebhookDeliveryRecord.attempts + 1,
                        )
                        .where((WebhookDeliveryRecord.id == candidate.id) & _claimable(now))
                        .execute()
                    )
                    if won != 1:
                        continue
                    row = (
                        WebhookDeliveryRecord.select(
                            WebhookDeliveryRecord,
                            WebhookEventRecord.msg_id,
                            WebhookEventRecord.payload,
                            WebhookEventRecord.created_at.alias("event_created_at"),
                            WebhookEndpointRecord.url,
                            WebhookEndpointRecord.secret_salt,
                            WebhookEndpointRecord.previous_salt,
                            WebhookEndpointRecord.previous_until,
                        )
                        .join(
                            WebhookEventRecord,
                            on=WebhookDeliveryRecord.event_id == WebhookEventRecord.id,
                        )
                        .join(
                            WebhookEndpointRecord,
                            on=WebhookDeliveryRecord.endpoint_id == WebhookEndpointRecord.id,
                        )
                        .where(WebhookDeliveryRecord.id == candidate.id)
                        .objects()
                        .first()
                    )
                if row is None:  # its endpoint was removed meanwhile
                    continue
                return ClaimedDelivery(
                    id=row.id,
                    endpoint_id=row.endpoint_id,
                    url=row.url,
                    secret_salt=row.secret_salt,
                    previous_salt=row.previous_salt,
                    previous_until=row.previous_until,
                    msg_id=row.msg_id,
                    body=row.payload,
                    attempts=row.attempts,
                    event_created_at=row.event_created_at,
                )

    def mark_delivered(self, delivery_id: int, now: datetime, response_code: int) -> None:
        self._finish(
            delivery_id,
            status=DELIVERED,
            delivered_at=now,
            response_code=response_code,
            last_error=None,
        )

    def mark_retry(
        self,
        delivery_id: int,
        error_text: str,
        response_code: int | None,
        next_attempt_at: datetime,
    ) -> None:
        self._finish(
            delivery_id,
            status=PENDING,
            last_error=error_text,
            response_code=response_code,
            next_attempt_at=next_attempt_at,
        )

    def mark_failed(self, delivery_id: int, error_text: str, response_code: int | None) -> None:
        self._finish(delivery_id, status=FAILED, last_error=error_text, response_code=response_code)

    def _finish(self, delivery_id: int, **fields: object) -> None:
        with connected(self._db), self._db.atomic():
            WebhookDeliveryRecord.update(locked_until=None, **fields).where(
                WebhookDeliveryRecord.id == delivery_id
            ).execute()

    def depth(self) -> int:
        """Count the deliveries still waiting to be sent."""
        with connected(self._db):
            return int(
                WebhookDeliveryRecord.select()
                .where(WebhookDeliveryRecord.status == PENDING)
                .count()
            )
