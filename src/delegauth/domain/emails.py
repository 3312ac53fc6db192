"""Canonical email addresses: NFKC, casefolded, trimmed. Compared only for equality."""

from __future__ import annotations

import re
import unicodedata

from delegauth.errors import InvalidInput

__all__ = ["canonical_email"]

# Deliberately loose: one @, no whitespace or control characters, a dot in the domain.
_SHAPE = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}\.[^@\s\x00-\x1f\x7f.]+$"
)


def canonical_email(value: object, *, field: str = "email") -> str:
    """Return the canonical form of an email, or raise InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput("email must be a string", field=field)
    if any("\ud800" <= ch <= "\udfff" for ch in value):  # lone surrogates: not Unicode
        raise InvalidInput("not a valid email address", field=field)
    canon = unicodedata.normalize("NFKC", value).casefold().strip()
    if len(canon) > 320 or not _SHAPE.match(canon):
        raise InvalidInput("not a valid email address", field=field)
    return canon
