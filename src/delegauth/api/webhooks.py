"""An area's webhooks (its owner only) and the export of its audit trail for a SIEM."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import falcon

from delegauth.api.auth import Authenticator
from delegauth.api.body import read_json, send_json
from delegauth.api.params import count_param, parse_count
from delegauth.domain.audit_trail import FORMATS, AuditTrail, to_csv, to_ndjson
from delegauth.domain.webhooks import DEFAULT_GRACE, MAX_GRACE, Delivery, Endpoint, Webhooks
from delegauth.errors import InvalidInput, NotFound

__all__ = [
    "AuditExportResource",
    "DeliveriesResource",
    "RedeliverResource",
    "RotateSecretResource",
    "WebhookResource",
    "WebhooksResource",
    "delivery_view",
    "webhook_view",
]

# The header that carries the cursor of an export: pass it back as ``after``.
CURSOR_HEADER = "Audit-Cursor"


def _ts(value: Any) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def webhook_view(endpoint: Endpoint, now: datetime) -> dict[str, Any]:
    """The endpoint as the API shows it; ``event_types`` null means every type, and
    ``previous_secret_until`` says until when a rotated-out secret still signs."""
    return {
        "id": endpoint.id,
        "area": endpoint.area_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": None if endpoint.event_types is None else list(endpoint.event_types),
        "previous_secret_until": _ts(endpoint.previous_until_at(now)),
        "created_at": _ts(endpoint.created_at),
    }


def _grace(data: dict[str, Any]) -> timedelta:
    value = data.get("grace_period_s", int(DEFAULT_GRACE.total_seconds()))
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integer: 4980.0 is one
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            "grace_period_s must be a whole number of seconds",
            field="grace_period_s",
            code="grace_period",
        )
    if not 0 <= value <= MAX_GRACE.total_seconds():
        raise InvalidInput(
            f"grace_period_s must be 0 to {int(MAX_GRACE.total_seconds())}",
            field="grace_period_s",
            code="grace_period",
        )
    return timedelta(seconds=value)


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook": delivery.endpoint_id,
        "message_id": delivery.msg_id,
        "type": delivery.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "response_code": delivery.response_code,
        "created_at": _ts(delivery.created_at),
        "next_attempt_at": _ts(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "delivered_at": _ts(delivery.delivered_at),
    }


class WebhooksResource:
    def __init__(self, auth: Authenticator, webhooks: Webhooks, max_body: int) -> None:
        self._auth = auth
        self._webhooks = webhooks
        self._max = max_body

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        items = self._webhooks.listing(claims.sub, area_id)
        now = self._webhooks.now()
        send_json(resp, {"webhooks": [webhook_view(e, now) for e in items]})

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        data = read_json(req, self._max, ("url", "description", "event_types"))
        endpoint, secret = self._webhooks.add(
            claims.sub,
            area_id,
            data.get("url"),
            data.get("description", ""),
            data.get("event_types"),
        )
        send_json(
            resp, {"webhook": webhook_view(endpoint, self._webhooks.now()), "secret": secret}, 201
        )


class WebhookResource:
    def __init__(self, auth: Authenticator, webhooks: Webhooks, max_body: int) -> None:
        self._auth = auth
        self._webhooks = webhooks
        self._max = max_body

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        endpoint = self._webhooks.get(claims.sub, area_id, webhook_id)
        send_json(resp, {"webhook": webhook_view(endpoint, self._webhooks.now())})

    def on_patch(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        """Change which event types it receives (``event_types``: a list, or null for all)."""
        claims = self._auth.user_in_area(req, area_id)
        data = read_json(req, self._max, ("event_types",))
        if "event_types" not in data:
            raise InvalidInput("event_types is required", field="event_types")
        endpoint = self._webhooks.set_event_types(
            claims.sub, area_id, webhook_id, data["event_types"]
        )
        send_json(resp, {"webhook": webhook_view(endpoint, self._webhooks.now())})

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        removed = self._webhooks.remove(claims.sub, area_id, webhook_id)
        send_json(resp, {"removed": removed.id})


class RotateSecretResource:
    """POST: a new signing secret, shown once; the old one signs beside it for the grace
    period (``grace_period_s``, 24 hours by default, 0 to 7 days)."""

    def __init__(self, auth: Authenticator, webhooks: Webhooks, max_body: int) -> None:
        self._auth = auth
        self._webhooks = webhooks
        self._max = max_body

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        data = read_json(req, self._max, ("grace_period_s",)) if req.content_length else {}
        endpoint, secret = self._webhooks.rotate_secret(
            claims.sub, area_id, webhook_id, _grace(data)
        )
        send_json(resp, {"webhook": webhook_view(endpoint, self._webhooks.now()), "secret": secret})


class DeliveriesResource:
    def __init__(self, auth: Authenticator, webhooks: Webhooks) -> None:
        self._auth = auth
        self._webhooks = webhooks

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        before = count_param(req, "before")
        limit = count_param(req, "limit")
        limit = 50 if limit is None else limit
        items = self._webhooks.deliveries(claims.sub, area_id, webhook_id, before, limit)
        next_before = items[-1].id if len(items) == limit else None
        send_json(
            resp, {"deliveries": [delivery_view(d) for d in items], "next_before": next_before}
        )


class RedeliverResource:
    def __init__(self, auth: Authenticator, webhooks: Webhooks) -> None:
        self._auth = auth
        self._webhooks = webhooks

    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        area_id: str,
        webhook_id: str,
        delivery_id: str,
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        number = parse_count(delivery_id)
        if number is None:
            # Still check the caller's right to the webhook first: 403 before 404.
            self._webhooks.get(claims.sub, area_id, webhook_id)
            raise NotFound("no such delivery")
        again = self._webhooks.redeliver(claims.sub, area_id, webhook_id, number)
        send_json(resp, {"delivery": delivery_view(again)}, 202)


class AuditExportResource:
    """GET the area's audit trail after a cursor, oldest first, as NDJSON or CSV."""

    def __init__(self, auth: Authenticator, trail: AuditTrail) -> None:
        self._auth = auth
        self._trail = trail

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        fmt = req.get_param("format") or "ndjson"
        if fmt not in FORMATS:
            raise InvalidInput("format must be ndjson or csv", field="format")
        after = count_param(req, "after") or 0
        limit = count_param(req, "limit")
        events = self._trail.export(claims.sub, area_id, after, 1000 if limit is None else limit)
        resp.status = 200
        if fmt == "csv":
            resp.content_type = "text/csv; charset=utf-8"
            resp.text = to_csv(events)
        else:
            resp.content_type = "application/x-ndjson"
            resp.text = to_ndjson(events)
        cursor = events[-1].id if events else after
        resp.set_header(CURSOR_HEADER, str(cursor))
