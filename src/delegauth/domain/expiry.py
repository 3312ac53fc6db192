"""Grants that end: "access until", as the API and pages give it and as Casbin reads it.

An end is an instant. The domain holds it as naive UTC (what every timestamp column
holds), whole seconds: access tokens carry whole seconds too, so "no token outlives its
grant" compares like with like. On a g line it is the fourth field (the model's link
condition parameter, policies/model.conf), written ``2026-12-09T10:00:00Z``; a line
without an end has ``_`` (or nothing) there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from delegauth.domain.entities import AuditEvent, Grant, Role
from delegauth.domain.ids import casbin_until
from delegauth.domain.ports import Clock, MailComposer, Store
from delegauth.errors import Escalation, InvalidInput

__all__ = [
    "KEEP",
    "ExpirySweep",
    "parse_instant",
    "parse_valid_until",
    "require_may_give_until",
    "valid_until_text",
]

log = logging.getLogger(__name__)

# Further than this is almost certainly a typo (a year 20260): refused, not stored.
_LONGEST = timedelta(days=3660)


class _Keep:
    """Leave the end as it is (an edit that only changes permissions)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


def parse_instant(value: object, *, field: str = "valid_until") -> datetime:
    """An instant given as an aware datetime or an RFC 3339 / ISO 8601 string with an
    offset ("Z" or "+02:00"), as naive UTC whole seconds.

    A value without an offset is refused rather than guessed: whose midnight would it be?
    """
    if isinstance(value, str):
        if len(value) > 40:
            raise InvalidInput(f"{field} is not a date and time", field=field)
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError as ex:
            raise InvalidInput(
                f"{field} is not a date and time (use RFC 3339, e.g. 2026-12-09T10:00:00Z)",
                field=field,
            ) from ex
    elif isinstance(value, datetime):
        when = value
    else:
        raise InvalidInput(f"{field} must be a string (RFC 3339) or null", field=field)
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(
            f"{field} needs a time zone offset (e.g. Z or +02:00)", field=field, code="naive_time"
        )
    return when.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def parse_valid_until(
    value: object, now: datetime, *, field: str = "valid_until"
) -> datetime | None:
    """The end a caller asked for, as naive UTC whole seconds; None for no end.

    Read as parse_instant reads it; an instant that is not after ``now`` is refused.
    """
    if value is None or value == "":
        return None
    utc = parse_instant(value, field=field)
    if utc <= now:
        raise InvalidInput(f"{field} must be in the future", field=field, code="past_time")
    if utc - now > _LONGEST:
        raise InvalidInput(f"{field} is more than ten years away", field=field, code="far_time")
    return utc


def require_may_give_until(actor: Grant, until: datetime | None) -> None:
    """A delegate whose own access ends cannot give access that outlasts theirs."""
    if actor.role is Role.OWNER or actor.valid_until is None:
        return
    if until is None or until > actor.valid_until:
        raise Escalation(
            "you cannot give access that lasts longer than your own", field="valid_until"
        )


def valid_until_text(when: datetime | None) -> str | None:
    """The wire form (RFC 3339, UTC) of an end, for JSON and audit events."""
    return None if when is None else casbin_until(when)


class ExpirySweep:
    """What happens around a grant's end that decisions never wait for: the delegate's
    reminder beforehand (once per grant per end) and the audit event of the lapse (once per
    grant per end, written after the instant). Decisions deny at the instant on their own.

    Each item commits in its own transaction with its mail or audit event; the mark makes a
    second sweep (another worker, a retry) skip it.
    """

    def __init__(
        self,
        store: Store,
        mail: MailComposer,
        clock: Clock,
        *,
        remind_before: timedelta = timedelta(days=3),
        batch: int = 200,
    ) -> None:
        self._store = store
        self._mail = mail
        self._clock = clock
        self._remind_before = remind_before
        self._batch = batch

    def run_once(self) -> tuple[int, int]:
        """Send due reminders and record lapses; return (reminders, lapses)."""
        now = self._clock()
        reminded = lapsed = 0
        if self._remind_before > timedelta(0):
            with self._store.transaction():
                due = self._store.grants_to_remind(now, self._remind_before, self._batch)
            for grant in due:
                reminded += self._remind(grant, now)
        with self._store.transaction():
            ended = self._store.grants_lapsed(now, self._batch)
        for grant in ended:
            lapsed += self._record_lapse(grant, now)
        return reminded, lapsed

    def _remind(self, grant: Grant, now: datetime) -> int:
        with self._store.transaction():
            area = self._store.get_area(grant.area_id)
            user = self._store.get_user(grant.user_id)
            if area is None or user is None or not self._store.mark_grant(grant, "reminder"):
                return 0
            owner = self._store.get_user(area.owner_id)
            self._store.enqueue_mail(self._mail.grant_ending(grant, area, user, owner), now)
        return 1

    def _record_lapse(self, grant: Grant, now: datetime) -> int:
        with self._store.transaction():
            if not self._store.mark_grant(grant, "lapse"):
                return 0
            snapshot: dict[str, object] = {
                "role": str(grant.role),
                "permissions": grant.held().to_json(),
                "valid_until": valid_until_text(grant.valid_until),
            }
            self._store.append_audit(
                AuditEvent(
                    grant.area_id,
                    None,
                    "grant.expired",
                    f"user:{grant.user_id}",
                    snapshot,
                    None,
                    now,
                )
            )
        return 1

    def start(self, interval_s: float) -> Callable[[], None]:
        """Sweep every ``interval_s`` in a daemon thread; return a stopper."""
        stopping = threading.Event()

        def run() -> None:
            while not stopping.is_set():
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - a failed sweep is retried next time
                    log.warning("expiry sweep failed; retrying", exc_info=True)
                stopping.wait(interval_s)

        thread = threading.Thread(target=run, name="delegauth-expiry", daemon=True)
        thread.start()

        def stop() -> None:
            stopping.set()
            thread.join(timeout=5)

        return stop
