"""An area's webhooks (its owner only) and the export of its audit trail for a SIEM."""

from __future__ import annotations

from typing import Any

import falcon

from delegauth.api.auth import Authenticator
from delegauth.api.body import read_json, send_json
from delegauth.api.params import count_param, parse_count
from delegauth.domain.audit_trail import FORMATS, AuditTrail, to_csv, to_ndjson
from delegauth.domain.webhooks import Delivery, Endpoint, Webhooks
from delegauth.errors import InvalidInput, NotFound

__all__ = [
    "AuditExportResource",
    "DeliveriesResource",
    "RedeliverResource",
    "WebhookResource",
    "WebhooksResource",
    "delivery_view",
    "webhook_view",
]

# The header that carries the cursor of an export: pass it back as ``after``.
CURSOR_HEADER = "Audit-Cursor"


def _ts(value: Any) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def webhook_view(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "area": endpoint.area_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "created_at": _ts(endpoint.created_at),
    }


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
        send_json(resp, {"webhooks": [webhook_view(e) for e in items]})

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        data = read_json(req, self._max, ("url", "description"))
        endpoint, secret = self._webhooks.add(
            claims.sub, area_id, data.get("url"), data.get("description", "")
        )
        send_json(resp, {"webhook": webhook_view(endpoint), "secret": secret}, 201)


class WebhookResource:
    def __init__(self, auth: Authenticator, webhooks: Webhooks) -> None:
        self._auth = auth
        self._webhooks = webhooks

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        send_json(
            resp, {"webhook": webhook_view(self._webhooks.get(claims.sub, area_id, webhook_id))}
        )

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        removed = self._webhooks.remove(claims.sub, area_id, webhook_id)
        send_json(resp, {"removed": removed.id})


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
