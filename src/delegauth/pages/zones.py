"""The owner's time zone for "access until": the browser's own, as the pages' script
reports it (the ``tz`` cookie, an IANA name such as Europe/Madrid). Without it (no script,
an unknown name) the pages show and read UTC, and say so beside the field.

Times are shown and typed in that zone; the domain receives an aware datetime and keeps
UTC (domain.expiry). The signed-in user's account keeps the last zone reported
(``reported_zone``, through BrowserSessions), for mail (domain.time_zones).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from urllib.parse import unquote

import falcon

from delegauth.domain.time_zones import MAX_ZONE, known_zone, shown_in, zone_info
from delegauth.errors import InvalidInput
from delegauth.pages.text import t

__all__ = ["Zone", "reported_zone", "zone_of"]

COOKIE = "tz"
_FIELD = "valid_until"


class Zone:
    """A time zone with its name, and the conversions the forms and listings need."""

    def __init__(self, name: str, zone: tzinfo) -> None:
        self.name = name
        self._zone = zone

    def field_value(self, end: datetime | None) -> str:
        """An end (naive UTC) as a datetime-local input's value in this zone."""
        if end is None:
            return ""
        return end.replace(tzinfo=UTC).astimezone(self._zone).strftime("%Y-%m-%dT%H:%M")

    def shown(self, end: datetime) -> str:
        """An end (naive UTC) as the listings show it: date, time and the zone's name."""
        return shown_in(end, self.name)

    def parse(self, value: str) -> datetime | None:
        """A datetime-local value typed in this zone, as an aware datetime; None if empty."""
        value = value.strip()
        if not value:
            return None
        try:
            local = datetime.fromisoformat(value)
        except ValueError as ex:
            raise InvalidInput("not a date and time", field=_FIELD) from ex
        if local.tzinfo is not None:
            raise InvalidInput("not a date and time", field=_FIELD)
        return local.replace(tzinfo=self._zone)


def reported_zone(req: falcon.Request) -> str:
    """The zone the browser reported (the script's cookie), if zoneinfo knows it; else ""."""
    raw = req.cookies.get(COOKIE, "")
    if not raw or len(raw) > 3 * MAX_ZONE:
        return ""
    return known_zone(unquote(raw))  # the script encodes it (the "/")


def zone_of(req: falcon.Request) -> Zone:
    """The zone the browser reported, or UTC."""
    name, zone = zone_info(reported_zone(req))
    return Zone(name, zone)


def remaining(locale: str, end: datetime, now: datetime) -> str:
    """How long until an end, in words: "expires in 3 days", or "expired"."""
    left = (end - now).total_seconds()
    if left <= 0:
        return t(locale, "um.expired")
    days = round(left / 86400)
    if days >= 2:
        return t(locale, "um.expires_in_days", n=str(days))
    if days == 1:
        return t(locale, "um.expires_in_a_day")
    hours = round(left / 3600)
    if hours >= 1:
        return t(locale, "um.expires_in_hours", n=str(hours))
    return t(locale, "um.expires_soon")
