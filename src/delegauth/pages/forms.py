"""What the pages' forms carry: posted fields, and where a page may send the browser back."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

__all__ = ["check_email_url", "field_value", "safe_return", "without_lang"]

# Where a sign-in may send the browser back to: our own pages only (no open redirects).
_RETURN_RE = re.compile(
    r"^/(oauth/authorize\?[^\s\\#]*|invitations(/[^\s\\#]*)?|areas(/[a-z0-9_/-]*)?"
    r"|access-requests(/[a-z0-9_/-]*)?|)$"
)


def safe_return(value: object) -> str:
    if (
        isinstance(value, str)
        and len(value) <= 4096
        and _RETURN_RE.match(value)
        and not value.startswith("//")
    ):
        return value
    return "/"


def without_lang(uri: str) -> str:
    """``uri`` without its ``lang`` parameter: what a page sends to sign-in as the way back
    (the language cookie set on the way keeps the language; an area page's return_to
    carries no query)."""
    parts = urlsplit(uri)
    params = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k == "lang" for k, _ in params):
        return uri
    query = urlencode([(k, v) for k, v in params if k != "lang"], quote_via=quote)
    return parts.path + ("?" + query if query else "")


def check_email_url(return_to: str, resent: bool = False) -> str:
    """The "check your email" page, coming back to return_to afterwards."""
    query = ["resent=1"] if resent else []
    if return_to != "/":
        query.append("return_to=" + quote(return_to, safe=""))
    return "/verify-email/sent" + ("?" + "&".join(query) if query else "")


def field_value(form: dict[str, list[str]] | None, name: str) -> str:
    values = (form or {}).get(name) or [""]
    return values[0]
