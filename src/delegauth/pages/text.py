"""The hosted pages' words: gettext catalogues (Babel), one per language.

The catalogues are ``locale/<lang>/LC_MESSAGES/delegauth.po`` beside this module;
message ids are stable keys ("signin.title"), so translators edit only msgstr.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po

from delegauth.errors import DelegauthError

__all__ = ["LOCALES", "TEXT", "error_text", "t"]

LOCALES = ("en", "es")
_DIR = Path(__file__).with_name("locale")


def _load(locale: str) -> dict[str, str]:
    with open(_DIR / locale / "LC_MESSAGES" / "delegauth.po", "rb") as fh:
        catalog = read_po(fh, locale=locale, domain="delegauth")
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


TEXT: dict[str, dict[str, str]] = {locale: _load(locale) for locale in LOCALES}


def t(locale: str, key: str, **values: str) -> str:
    text = TEXT.get(locale, TEXT["en"]).get(key) or TEXT["en"][key]
    return text.format(**values) if values else text


def error_text(locale: str, ex: DelegauthError) -> str:
    """The user's words for a domain error, by its code ("problem.<code>"), falling back
    to its parent classes' codes; never the English ``detail``."""
    codes = [ex.code] + [getattr(c, "code", "") for c in type(ex).__mro__]
    for code in codes:
        if "problem." + code in TEXT["en"]:
            return t(locale, "problem." + code)
    return t(locale, "problem.error")
