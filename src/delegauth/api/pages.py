"""The page shell of the pages not yet on templates (being moved to delegauth.pages)."""

from __future__ import annotations

from html import escape

import falcon

from delegauth.pages.forms import check_email_url, field_value, safe_return
from delegauth.pages.rendering import CSP
from delegauth.pages.text import t

__all__ = ["check_email_url", "error_page", "field_value", "render", "safe_return"]


# Set by the app from DELEGAUTH_BRAND_NAME / DELEGAUTH_BRAND_LOGO.
BRAND: dict[str, str] = {"name": "", "logo": ""}


def render(
    resp: falcon.Response,
    locale: str,
    title: str,
    body: str,
    status: int = 200,
    header: str = "",
    wide: bool = False,
) -> None:
    main_class = ' class="wide"' if wide else ""
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Frame-Options", "DENY")
    resp.text = (
        f'<!doctype html><html lang="{locale}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/static/delegauth.css"></head>'
        f"<body>{_brand_bar()}{header}<main{main_class}><h1>{escape(title)}</h1>"
        f"{body}</main></body></html>"
    )


def _brand_bar() -> str:
    if not BRAND["logo"] and not BRAND["name"]:
        return ""
    name = escape(BRAND["name"] or "")
    logo = f'<img src="/static/logo" alt="{name}" height="32">' if BRAND["logo"] else name
    return f'<div class="brand"><a href="/">{logo}</a></div>'


def error_page(resp: falcon.Response, locale: str, message: str, status: int) -> None:
    render(
        resp,
        locale,
        t(locale, "error.title"),
        f'<p class="error" role="alert">{escape(message)}</p>',
        status,
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
