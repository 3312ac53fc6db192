"""Users' time zones: IANA names (Europe/Madrid) that zoneinfo knows, and instants shown in
them.

The pages learn a user's zone from their browser (pages/zones.py) and the account keeps
the last one reported, so that mail, written where no browser is, shows times in the
recipient's zone: "2026-12-09 11:00 (Europe/Madrid)". An unknown zone ("") is UTC, named.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

__all__ = ["MAX_ZONE", "UTC_NAME", "known_zone", "shown_in", "zone_info"]

MAX_ZONE = 64
UTC_NAME = "UTC"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


@cache
def _names() -> frozenset[str]:
    return frozenset(available_timezones())


def known_zone(value: object) -> str:
    """``value`` if it names a zone zoneinfo knows; else "" (unknown: never guessed)."""
    if not isinstance(value, str) or not value or len(value) > MAX_ZONE:
        return ""
    if not _NAME.match(value) or value not in _names():
        return ""
    return value


def zone_info(name: str) -> tuple[str, tzinfo]:
    """The zone a known name stands for, with its name; UTC for "" or a name not known."""
    known = known_zone(name)
    return (known, ZoneInfo(known)) if known else (UTC_NAME, UTC)


def shown_in(when: datetime, zone: str) -> str:
    """An instant (naive UTC) in ``zone``, with the zone's name: "2026-12-09 11:00
    (Europe/Madrid)"; in UTC when the zone is not known."""
    name, tz = zone_info(zone)
    local = when.replace(tzinfo=UTC).astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} ({name})"
