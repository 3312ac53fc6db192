"""Deliver queued webhooks: claim a due delivery, sign it, POST it, record the outcome.

Delivery is at least once, with the same ``webhook-id`` every time (receivers use it to
drop duplicates): a delivery whose POST succeeded but whose outcome was not recorded, or
whose dispatcher died, is claimed again once its lease runs out. Failures are retried
with exponential backoff (base * 2**(attempt-1), capped) up to ``max_attempts``; each
attempt is signed with its own timestamp, as Standard Webhooks receivers reject old ones.
While an endpoint's rotated-out secret is in its grace period, each attempt is signed with
the new secret and the previous one (two signatures in ``webhook-signature``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from delegauth import metrics
from delegauth.errors import WebhookDeliveryError
from delegauth.webhooks.signing import signed_headers

__all__ = ["ClaimedDelivery", "DeliveryQueue", "Sender", "WebhookDispatcher"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class ClaimedDelivery:
    """A leased delivery with what sending it needs; ``attempts`` counts this one."""

    id: int
    endpoint_id: str
    url: str
    secret_salt: str
    msg_id: str
    body: str
    attempts: int
    event_created_at: datetime
    previous_salt: str | None = None  # a rotated-out secret's, signing until previous_until
    previous_until: datetime | None = None


class DeliveryQueue(Protocol):
    def claim_due(self, now: datetime, lease_s: float) -> ClaimedDelivery | None: ...
    def mark_delivered(self, delivery_id: int, now: datetime, response_code: int) -> None: ...
    def mark_retry(
        self,
        delivery_id: int,
        error_text: str,
        response_code: int | None,
        next_attempt_at: datetime,
    ) -> None: ...
    def mark_failed(self, delivery_id: int, error_text: str, response_code: int | None) -> None: ...


class Sender(Protocol):
    def send(self, url: str, headers: dict[str, str], body: bytes) -> int: ...


class WebhookDispatcher:
    def __init__(
        self,
        queue: DeliveryQueue,
        sender: Sender,
        secret: Callable[[str, str], str],
        *,
        clock: Clock,
        wall_clock: Clock | None = None,
        max_attempts: int = 8,
        base_delay_s: float = 5,
        max_delay_s: float = 3600,
        lease_s: float = 60,
    ) -> None:
        """``secret(endpoint_id, salt)`` gives an endpoint's whsec_ secret; ``wall_clock``
        (default: ``clock``) measures lag against the events' commit times."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._queue = queue
        self._sender = sender
        self._secret = secret
        self._clock = clock
        self._wall_clock = wall_clock or clock
        self._max_attempts = max_attempts
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._lease_s = lease_s
        self._wake = threading.Event()

    def retry_delay(self, attempts: int) -> timedelta:
        """Wait ``base * 2**(attempts-1)`` seconds, capped at ``max_delay_s``."""
        exponent = min(max(attempts - 1, 0), 32)
        return timedelta(seconds=min(self._base_delay_s * 2**exponent, self._max_delay_s))

    def wake(self) -> None:
        """Look for due deliveries now (a transaction that queued some has committed)."""
        self._wake.set()

    def deliver_due(self, limit: int = 50) -> int:
        """Send up to ``limit`` due deliveries, one lease at a time; return how many took."""
        delivered = 0
        for _ in range(limit):
            claimed = self._queue.claim_due(self._clock(), self._lease_s)
            if claimed is None:
                break
            if self._deliver(claimed):
                delivered += 1
        return delivered

    def _deliver(self, item: ClaimedDelivery) -> bool:
        body = item.body.encode("utf-8")
        try:
            salts = [item.secret_salt]
            if item.previous_salt and item.previous_until and item.previous_until > self._clock():
                salts.append(item.previous_salt)
            headers = signed_headers(
                [self._secret(item.endpoint_id, salt) for salt in salts],
                item.msg_id,
                self._wall_clock(),
                body,
            )
            status = self._sender.send(item.url, headers, body)
        except WebhookDeliveryError as ex:
            self._record_failure(item, str(ex), ex.status, transient=ex.transient)
            return False
        except Exception as ex:
            # A bug must not stall the queue: retry it like a transient failure.
            logger.exception("unexpected error delivering webhook delivery=%s", item.id)
            self._record_failure(item, f"unexpected {type(ex).__name__}", None, transient=True)
            return False
        delivered_at = self._wall_clock()
        self._queue.mark_delivered(item.id, self._clock(), status)
        lag = (delivered_at - item.event_created_at).total_seconds()
        metrics.observe_webhook("delivered", max(lag, 0.0))
        logger.info(
            "webhook delivered delivery=%s endpoint=%s attempts=%s lag=%.3fs",
            item.id,
            item.endpoint_id,
            item.attempts,
            lag,
        )
        return True

    def _record_failure(
        self, item: ClaimedDelivery, error: str, status: int | None, *, transient: bool
    ) -> None:
        error = error[:_MAX_ERROR_CHARS]
        if not transient or item.attempts >= self._max_attempts:
            self._queue.mark_failed(item.id, error, status)
            metrics.observe_webhook("failed")
            logger.error(
                "webhook failed delivery=%s endpoint=%s attempts=%s: %s",
                item.id,
                item.endpoint_id,
                item.attempts,
                error,
            )
            return
        next_attempt_at = self._clock() + self.retry_delay(item.attempts)
        self._queue.mark_retry(item.id, error, status, next_attempt_at)
        metrics.observe_webhook("retry")
        logger.warning(
            "webhook retry delivery=%s endpoint=%s attempts=%s next=%s: %s",
            item.id,
            item.endpoint_id,
            item.attempts,
            next_attempt_at.isoformat(),
            error,
        )

    def start(self, interval_s: float = 1.0, *, batch: int = 50) -> Callable[[], None]:
        """Deliver in a daemon thread: at each wake-up, else every ``interval_s``."""
        stopping = threading.Event()

        def run() -> None:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    if self.deliver_due(batch) >= batch:
                        continue  # more may be waiting
                except Exception:
                    logger.exception("webhook delivery loop failed; retrying in %ss", interval_s)
                self._wake.wait(interval_s)

        thread = threading.Thread(target=run, name="delegauth-webhooks", daemon=True)
        thread.start()

        def stop(timeout_s: float | None = 30.0) -> None:
            stopping.set()
            self._wake.set()
            thread.join(timeout_s)

        return stop
