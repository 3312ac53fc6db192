"""Canonical email addresses: one address is one person. Compared only for equality.

The canonical form is the local part NFC-normalised and lower-cased (``str.lower``, never
case-folded: ß stays ß), "@", and the domain as its IDNA A-label in lower case. The A-label
is what is stored: ``bücher.example`` and ``xn--bcher-kva.example`` are one domain, an ASCII
local part then needs no SMTPUTF8 to be mailed, and the stored bytes do not depend on how a
Unicode version maps a U-label.

What would have to be mapped is refused instead, each reason with its own error code:

- syntax and domain (email-validator, no DNS): ``invalid_email``; none typed:
  ``email_required``; too long (the whole, or the part before the @-sign): ``email_too_long``;
- compatibility characters, such as fullwidth letters, ligatures and the Kelvin sign (PRECIS
  IdentifierClass, RFC 8264, checked on the address as typed, before any normalisation):
  ``email_compatibility_characters``;
- other code points IdentifierClass disallows (spaces, controls, symbols, unassigned):
  ``email_disallowed_characters``;
- a local part or domain label that mixes scripts with look-alike letters, as a Cyrillic "а"
  among Latin letters (confusable-homoglyphs): ``email_confusable_scripts``. The mixes of
  UTS #39's "highly restrictive" level (Latin with Han and Japanese kana, Bopomofo or Hangul)
  are allowed.

This is the only module that imports email-validator, precis-i18n and confusable-homoglyphs.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from confusable_homoglyphs import categories, confusables
from email_validator import EmailNotValidError, validate_email
from precis_i18n import get_profile

from delegauth.errors import (
    EmailCompatibilityCharacters,
    EmailConfusableScripts,
    EmailDisallowedCharacters,
    InvalidEmail,
)

__all__ = ["canonical_email"]

_MAX_INPUT = 320  # longer than any address: refused before any library sees it
_LOCAL_MAX = 64  # RFC 5321 §4.5.3.1.1, checked again after lower-casing
_SURROUNDING_SPACE = " \t\r\n\f\v"
_IDENTIFIER = get_profile("IdentifierClass")
_NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED"})  # digits, punctuation, combining marks
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def canonical_email(value: object, *, field: str = "email") -> str:
    """Return the canonical form of an email, or raise InvalidEmail saying why not."""
    if not isinstance(value, str):
        raise InvalidEmail("email must be a string", field=field)
    typed = value.strip(_SURROUNDING_SPACE)
    if not typed:
        raise InvalidEmail("an email address is required", field=field, code="email_required")
    if len(typed) > _MAX_INPUT:
        raise InvalidEmail("the email address is too long", field=field, code="email_too_long")
    _refuse_what_precis_disallows(typed, field)
    try:
        # NOTE: no DNS (the mailed link proves deliverability); no quoted local parts, domain
        # literals or display names; special-use domains (.test, .local, localhost) refused;
        # strict keeps the 64-character local-part limit.
        valid = validate_email(
            typed,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
            globally_deliverable=True,
            strict=True,
        )
    except EmailNotValidError as ex:
        raise InvalidEmail(str(ex), field=field) from ex
    local = unicodedata.normalize("NFC", valid.local_part.lower())
    if len(local) > _LOCAL_MAX:
        raise InvalidEmail(
            "the email address is too long before the @-sign", field=field, code="email_too_long"
        )
    for part in (local, *valid.domain.split(".")):
        _refuse_confusable_mix(part, field)
    return f"{local}@{valid.ascii_domain.lower()}"


def _refuse_what_precis_disallows(typed: str, field: str) -> None:
    if typed.isascii() and typed.isprintable() and " " not in typed:
        return  # printable ASCII but space: IdentifierClass's ASCII7, all valid (RFC 8264 §9.11)
    try:
        _IDENTIFIER.enforce(typed)
    except UnicodeEncodeError as ex:
        where = _describe(typed[ex.start])
        if ex.reason == "DISALLOWED/has_compat":
            raise EmailCompatibilityCharacters(
                "the address contains compatibility characters (such as fullwidth letters or"
                f" ligatures): {where}; type it in its plain form",
                field=field,
            ) from None
        raise EmailDisallowedCharacters(
            f"the address contains a character that is not allowed in an email address: {where}",
            field=field,
        ) from None


def _refuse_confusable_mix(part: str, field: str) -> None:
    if part.isascii():
        return  # Latin letters, digits and punctuation: one script
    scripts = categories.unique_aliases(part) - _NEUTRAL_SCRIPTS
    if len(scripts) < 2 or any(scripts <= mix for mix in _ALLOWED_MIXES):
        return
    # Mixed: refuse when a letter of one script looks like a letter of another one present.
    # Name the odd one out: check against the script most of the letters are in first.
    counts = Counter(categories.alias(ch) for ch in part)
    for script in sorted(scripts, key=lambda s: (-counts[s], s)):
        found = confusables.is_confusable(part, preferred_aliases=[script])
        if found:
            raise EmailConfusableScripts(
                f"the address mixes {' and '.join(s.title() for s in sorted(scripts))} letters,"
                f" and {_describe(found[0]['character'])} looks like a {script.title()}"
                " letter; type the address in one script",
                field=field,
            )


def _describe(ch: str) -> str:
    """U+212A KELVIN SIGN: the code point and its name, never the raw character."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}{' ' + name if name else ''}"
