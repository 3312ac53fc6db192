"""Deliver the mail outbox: claim due messages, send them, record the outcome.

Delivery is at least once: a message whose send succeeded but whose ``mark_sent``
failed (or whose worker died) is claimed again when its lease runs out. The lease
only keeps concurrent workers from sending the same message at the same time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from delegauth.mail.transport import DeliveryError, Transport

__all__ = ["Outbox", "OutboxSender", "QueuedMail"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Keep outbox bookkeeping small; SMTP replies can be long.
_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class QueuedMail:
    """One claimed outbox row; ``attempts`` already counts the attempt in progress."""

    id: int
    to: str
    subject: str
    # Bodies hold one-time links: keep them out of reprs, and so out of logs.
    text: str = field(repr=False)
    html: str | None = field(repr=False)
    kind: str
    headers: Mapping[str, str]
    attempts: int
    created_at: datetime


class Outbox(Protocol):
    """The queue of mail written in the domain's transactions (PeeweeOutbox)."""

    def claim_due(self, now: datetime, limit: int, lease_s: float) -> list[QueuedMail]: ...
    def mark_sent(self, mail_id: int, now: datetime) -> None: ...
    def mark_retry(self, mail_id: int, error_text: str, next_attempt_at: datetime) -> None: ...
    def mark_failed(self, mail_id: int, error_text: str) -> None: ...
    def depth(self) -> int: ...


class OutboxSender:
    """Send due outbox mail through a Transport, retrying transient failures."""

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        clock: Clock,
        max_attempts: int = 8,
        base_delay_s: float = 5,
        max_delay_s: float = 3600,
        lease_s: float = 60,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._outbox = outbox
        self._transport = transport
        self._clock = clock
        self._max_attempts = max_attempts
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._lease_s = lease_s

    def retry_delay(self, attempts: int) -> timedelta:
        """Wait ``base * 2**(attempts-1)`` seconds, capped at ``max_delay_s``."""
        exponent = min(max(attempts - 1, 0), 32)  # 2**32 * base is past any sane cap
        return timedelta(seconds=min(self._base_delay_s * 2**exponent, self._max_delay_s))

    def deliver_due(self, limit: int = 50) -> int:
        """Send up to ``limit`` due messages; return how many were sent."""
        sent = 0
        for _ in range(limit):
            # Claim one at a time so each lease starts right before its own send: a
            # batch claimed up front could expire behind slow sends and be sent twice.
            claimed = self._outbox.claim_due(self._clock(), 1, self._lease_s)
            if not claimed:
                break
            if self._deliver(claimed[0]):
                sent += 1
        return sent

    def _deliver(self, mail: QueuedMail) -> bool:
        try:
            self._transport.send(mail)
        except DeliveryError as ex:
            self._record_failure(mail, str(ex), transient=ex.transient)
            return False
        except Exception as ex:
            # A transport bug must not stall the queue: retry it like a transient error.
            logger.exception("unexpected error delivering mail id=%s kind=%s", mail.id, mail.kind)
            self._record_failure(mail, f"unexpected {type(ex).__name__}", transient=True)
            return False
        self._outbox.mark_sent(mail.id, self._clock())
        logger.info("mail sent id=%s kind=%s attempts=%s", mail.id, mail.kind, mail.attempts)
        return True

    def _record_failure(self, mail: QueuedMail, error: str, *, transient: bool) -> None:
        error = error[:_MAX_ERROR_CHARS]
        if not transient or mail.attempts >= self._max_attempts:
            self._outbox.mark_failed(mail.id, error)
            logger.error(
                "mail failed id=%s kind=%s attempts=%s: %s",
                mail.id,
                mail.kind,
                mail.attempts,
                error,
            )
            return
        next_attempt_at = self._clock() + self.retry_delay(mail.attempts)
        self._outbox.mark_retry(mail.id, error, next_attempt_at)
        logger.warning(
            "mail retry id=%s kind=%s attempts=%s next=%s: %s",
            mail.id,
            mail.kind,
            mail.attempts,
            next_attempt_at.isoformat(),
            error,
        )

    def start(self, interval_s: float = 5.0, *, batch: int = 50) -> Callable[[], None]:
        """Deliver in a daemon thread every ``interval_s``; return a callable that stops it."""
        stopping = threading.Event()

        def run() -> None:
            while not stopping.is_set():
                try:
                    # A full batch means more may be waiting: go again without pausing.
                    if self.deliver_due(batch) >= batch:
                        continue
                except Exception:
                    logger.exception("mail delivery loop failed; retrying in %ss", interval_s)
                stopping.wait(interval_s)

        thread = threading.Thread(target=run, name="delegauth-mail", daemon=True)
        thread.start()

        def stop(timeout_s: float | None = 30.0) -> None:
            stopping.set()
            thread.join(timeout_s)

        return stop
