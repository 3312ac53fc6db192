"""Webhook endpoints: an area's, registered by its owner, or the service's, by an operator.

An endpoint receives the grant-change events of its area (or of every area): every type,
or only the types its filter names (``event_types``; unknown types are refused). Each is
signed with the endpoint's own secret (Standard Webhooks). The secret is shown once, when
the endpoint is created or its secret rotated; the server can always re-derive it
(webhooks/signing.py) but never shows it again.

Rotation follows Standard Webhooks: a new salt makes a new secret, and for a grace period
the previous salt is kept, so deliveries carry a signature by each secret (the
``webhook-signature`` header lists both) and the receiver can switch at its own pace.

URLs must be https, and must not name a loopback, private, link-local or otherwise
non-public address or a local-only host name; the dispatcher checks the addresses a name
resolves to again at each delivery and connects to the address it checked (SSRF). A
development setting (DELEGAUTH_WEBHOOKS_INSECURE=1) lifts both rules, for tests on loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from delegauth.domain.access import require_grant
from delegauth.domain.entities import Role
from delegauth.domain.events import PUBLISHED_TYPES
from delegauth.domain.ids import WEBHOOK, new_id, parse_id
from delegauth.domain.ports import Clock, Store
from delegauth.errors import Conflict, Forbidden, InvalidInput, NotFound

__all__ = [
    "DEFAULT_GRACE",
    "MAX_GRACE",
    "Delivery",
    "Endpoint",
    "WebhookStore",
    "Webhooks",
    "check_event_types",
    "check_url",
    "is_public_address",
]

MAX_URL = 2000
MAX_DESCRIPTION = 200
MAX_PAGE = 100
# How long a rotated-out secret keeps signing deliveries beside the new one.
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=7)
# Host names that only ever mean this machine or a private network.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


@dataclass(frozen=True)
class Endpoint:
    id: str
    area_id: str | None  # None: the whole service's
    url: str
    description: str
    secret_salt: str
    created_by: str | None
    created_at: datetime
    event_types: tuple[str, ...] | None = None  # None: every type
    previous_salt: str | None = None  # the rotated-out secret's, while it still signs
    previous_until: datetime | None = None

    def receives(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    def previous_until_at(self, now: datetime) -> datetime | None:
        """Until when the previous secret still signs, or None if it no longer does."""
        if self.previous_salt is None or self.previous_until is None:
            return None
        return self.previous_until if self.previous_until > now else None


@dataclass(frozen=True)
class Delivery:
    """One event to one endpoint, as the delivery log shows it."""

    id: int
    endpoint_id: str
    msg_id: str
    type: str
    status: str  # pending, delivered, failed
    attempts: int
    last_error: str | None
    response_code: int | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


class WebhookStore(Protocol):
    def add_endpoint(self, endpoint: Endpoint) -> None: ...
    def update_endpoint(self, endpoint: Endpoint) -> None: ...
    def get_endpoint(self, endpoint_id: str) -> Endpoint | None: ...
    def list_endpoints(self, area_id: str | None, *, every: bool = False) -> list[Endpoint]: ...
    def remove_endpoint(self, endpoint_id: str) -> None: ...
    def list_deliveries(
        self, endpoint_id: str, before_id: int | None, limit: int
    ) -> list[Delivery]: ...
    def get_delivery(self, delivery_id: int) -> Delivery | None: ...
    def redeliver(self, delivery_id: int, now: datetime) -> Delivery: ...


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet (not loopback, private, link-local...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(value: object, *, insecure: bool) -> str:
    """Return ``value`` if it may receive webhooks, else raise InvalidInput (field url)."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise InvalidInput(
            f"url must be a URL of at most {MAX_URL} characters", field="url", code="webhook_url"
        )
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as ex:
        raise InvalidInput("url is not a valid URL", field="url", code="webhook_url") from ex
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidInput("url must be an https URL", field="url", code="webhook_url_https")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "url must not carry a user name or password", field="url", code="webhook_url"
        )
    if parts.fragment:
        raise InvalidInput("url must not have a fragment", field="url", code="webhook_url")
    if insecure:
        return value
    if parts.scheme != "https":
        raise InvalidInput("url must be an https URL", field="url", code="webhook_url_https")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.rstrip(".").lower()
        if name == "localhost" or name.endswith(_LOCAL_SUFFIXES) or "." not in name:
            raise InvalidInput(
                "url must name a public host", field="url", code="webhook_url_public"
            ) from None
        return value
    if not is_public_address(address):
        raise InvalidInput("url must name a public address", field="url", code="webhook_url_public")
    return value


def check_event_types(value: object) -> tuple[str, ...] | None:
    """The filter asked for: None (or "all") for every type, else a non-empty list of
    known types, returned sorted without repeats. Raises InvalidInput (event_types)."""
    if value is None or value == "all":
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(
            'event_types must be "all", null or a non-empty list of event types',
            field="event_types",
            code="event_types",
        )
    unknown = sorted({v for v in value if v not in PUBLISHED_TYPES})
    if unknown:
        # Echo only what looks like a type name; never arbitrary input.
        shown = ", ".join(u for u in unknown[:5] if u.replace(".", "").replace("_", "").isalnum())
        raise InvalidInput(
            f"unknown event type(s): {shown or '(invalid)'}; known: {', '.join(PUBLISHED_TYPES)}",
            field="event_types",
            code="unknown_event_type",
        )
    return tuple(sorted(set(value)))


class Webhooks:
    """Register, list and remove endpoints; read their delivery logs; redeliver.

    Every method takes the acting user (an area's owner), or None for an operator (the
    CLI), and the area (None: the whole service's endpoints, operators only)."""

    def __init__(
        self,
        store: Store,
        webhooks: WebhookStore,
        clock: Clock,
        *,
        insecure: bool = False,
        new_salt: Callable[[], str],
        secret: Callable[[str, str], str],
    ) -> None:
        """``secret(endpoint_id, salt)`` derives an endpoint's signing secret."""
        self._store = store
        self._webhooks = webhooks
        self._clock = clock
        self._insecure = insecure
        self._new_salt = new_salt
        self._secret = secret

    def now(self) -> datetime:
        """The clock endpoints' grace periods are read against."""
        return self._clock()

    # -- an area's, by its owner -----------------------------------------------------

    def _require_owner(self, area_id: str | None, actor_id: str | None) -> None:
        """The actor must own the area; ``actor_id`` None is an operator (the CLI)."""
        if actor_id is None:
            return
        if area_id is None:
            raise Forbidden("only operators manage service-wide webhooks", code="owner_only")
        grant = require_grant(self._store, area_id, actor_id)
        if grant.role is not Role.OWNER:
            raise Forbidden("only the area's owner manages its webhooks", code="owner_only")

    def add(
        self,
        actor_id: str | None,
        area_id: str | None,
        url: object,
        description: object = "",
        event_types: object = None,
    ) -> tuple[Endpoint, str]:
        """Register an endpoint for ``area_id`` (None: every area, for operators only),
        receiving ``event_types`` (None: every type); return it with its signing secret,
        which is shown this once."""
        checked = check_url(url, insecure=self._insecure)
        types = check_event_types(event_types)
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise InvalidInput(
                f"description must be text of at most {MAX_DESCRIPTION} characters",
                field="description",
            )
        endpoint = Endpoint(
            id=new_id(WEBHOOK),
            area_id=area_id,
            url=checked,
            description=description,
            secret_salt=self._new_salt(),
            created_by=actor_id,
            created_at=self._clock(),
            event_types=types,
        )
        with self._store.transaction():
            self._require_owner(area_id, actor_id)
            scope = self._webhooks.list_endpoints(area_id, every=False)
            if any(e.url == checked for e in scope):
                # A form sent twice (a reload) must not register a second endpoint.
                raise Conflict("this URL is already a webhook here", code="webhook_exists")
            self._webhooks.add_endpoint(endpoint)
        return endpoint, self._secret(endpoint.id, endpoint.secret_salt)

    def listing(self, actor_id: str | None, area_id: str | None) -> list[Endpoint]:
        """An area's endpoints, or with ``area_id`` None every endpoint (operators)."""
        with self._store.transaction():
            self._require_owner(area_id, actor_id)
            return self._webhooks.list_endpoints(area_id, every=area_id is None)

    def get(self, actor_id: str | None, area_id: str | None, endpoint_id: object) -> Endpoint:
        with self._store.transaction():
            return self._endpoint(actor_id, area_id, endpoint_id)

    def set_event_types(
        self, actor_id: str | None, area_id: str | None, endpoint_id: object, event_types: object
    ) -> Endpoint:
        """Send the endpoint only ``event_types`` from now on (None: every type)."""
        types = check_event_types(event_types)
        with self._store.transaction():
            endpoint = replace(self._endpoint(actor_id, area_id, endpoint_id), event_types=types)
            self._webhooks.update_endpoint(endpoint)
        return endpoint

    def rotate_secret(
        self,
        actor_id: str | None,
        area_id: str | None,
        endpoint_id: object,
        grace: timedelta = DEFAULT_GRACE,
    ) -> tuple[Endpoint, str]:
        """Give the endpoint a new secret (a new salt), shown this once; deliveries are
        signed with the current one too for ``grace`` (0: not at all), then with the new
        one only. Rotating again within a grace period drops the oldest secret."""
        if not timedelta(0) <= grace <= MAX_GRACE:
            raise InvalidInput(
                f"the grace period must be 0 to {MAX_GRACE.days * 24} hours",
                field="grace_period_s",
                code="grace_period",
            )
        with self._store.transaction():
            endpoint = self._endpoint(actor_id, area_id, endpoint_id)
            keep = grace > timedelta(0)
            endpoint = replace(
                endpoint,
                secret_salt=self._new_salt(),
                previous_salt=endpoint.secret_salt if keep else None,
                previous_until=self._clock() + grace if keep else None,
            )
            self._webhooks.update_endpoint(endpoint)
        return endpoint, self._secret(endpoint.id, endpoint.secret_salt)

    def remove(self, actor_id: str | None, area_id: str | None, endpoint_id: object) -> Endpoint:
        with self._store.transaction():
            endpoint = self._endpoint(actor_id, area_id, endpoint_id)
            self._webhooks.remove_endpoint(endpoint.id)
        return endpoint

    def deliveries(
        self,
        actor_id: str | None,
        area_id: str | None,
        endpoint_id: object,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """The endpoint's delivery log, newest first; page with ``before_id``."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
        with self._store.transaction():
            endpoint = self._endpoint(actor_id, area_id, endpoint_id)
            return self._webhooks.list_deliveries(endpoint.id, before_id, limit)

    def redeliver(
        self, actor_id: str | None, area_id: str | None, endpoint_id: object, delivery_id: int
    ) -> Delivery:
        """Send a delivery's event again (same webhook-id), as a new entry in the log."""
        with self._store.transaction():
            endpoint = self._endpoint(actor_id, area_id, endpoint_id)
            delivery = self._webhooks.get_delivery(delivery_id)
            if delivery is None or delivery.endpoint_id != endpoint.id:
                raise NotFound("no such delivery")
            return self._webhooks.redeliver(delivery_id, self._clock())

    def _endpoint(self, actor_id: str | None, area_id: str | None, endpoint_id: object) -> Endpoint:
        """The endpoint, if it belongs to ``area_id`` (an operator passes None: any)."""
        self._require_owner(area_id, actor_id)
        try:
            wanted = parse_id(endpoint_id, WEBHOOK, field="webhook")
        except InvalidInput as ex:
            raise NotFound("no such webhook") from ex
        endpoint = self._webhooks.get_endpoint(wanted)
        if endpoint is None or (area_id is not None and endpoint.area_id != area_id):
            raise NotFound("no such webhook")
        return endpoint
