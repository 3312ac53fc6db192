"""Query parameters read strictly: a count is ASCII digits, nothing else.

``str.isdigit`` accepts superscripts and other scripts' digits (``"¹".isdigit()``), which
``int`` then refuses or reads differently: never use it to validate input.
"""

from __future__ import annotations

import re

import falcon

from delegauth.errors import InvalidInput

__all__ = ["count_param", "parse_count"]

_COUNT = re.compile(r"[0-9]{1,18}")  # ASCII only; 18 digits always fit a 64-bit column


def parse_count(raw: str | None) -> int | None:
    """The non-negative integer ``raw`` spells in ASCII digits, else None."""
    if raw is None or not _COUNT.fullmatch(raw):
        return None
    return int(raw)


def count_param(req: falcon.Request, name: str) -> int | None:
    """The query parameter ``name`` as a count; None when absent, InvalidInput when malformed."""
    raw = req.get_param(name)
    if raw is None:
        return None
    value = parse_count(raw)
    if value is None:
        raise InvalidInput(f"{name} must be a positive integer", field=name)
    return value
