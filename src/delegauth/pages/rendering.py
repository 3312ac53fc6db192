"""Render the hosted pages from Jinja2 templates on one base layout.

Every page is ``templates/<name>.html`` extending ``base.html``: the provider's brand,
the account menu (when signed in), the page title, flash messages, the page's own
content and the language switcher. Autoescape is on for every template, so values are
escaped where they are written; the words come from the gettext catalogues through
``t`` (bound to the page's language).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode

import falcon
import jinja2

from delegauth.api.catalogue import LOCALES, negotiate_locale
from delegauth.pages.text import t

__all__ = ["CSP", "Flash", "Menu", "Renderer"]

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Flash:
    """A message at the top of a page: "notice" (it worked) or "error"."""

    kind: str
    text: str


@dataclass(frozen=True)
class Menu:
    """The signed-in header: the current Client Area and the account menu's entries,
    (href, message key) pairs, only what the user may do there."""

    who: str
    csrf: str
    area: tuple[str, str] | None = None  # (id, account name)
    items: list[tuple[str, str]] = field(default_factory=list)


class Renderer:
    """The template environment, with the provider's brand for every page."""

    def __init__(self, *, brand_name: str = "", brand_logo: bool = False) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("delegauth.pages", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.globals["brand"] = {"name": brand_name, "logo": brand_logo}

    def render(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        template: str,
        *,
        title: str,
        status: int = 200,
        menu: Menu | None = None,
        flashes: list[Flash] | None = None,
        wide: bool = False,
        here: str | None = None,
        **context: Any,
    ) -> None:
        """Answer with ``template``; ``here`` is the page the language links reload
        (the request's own path by default; a form post names the page it came from)."""
        locale = negotiate_locale(req)
        resp.status = status
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Content-Security-Policy", CSP)
        resp.set_header("X-Frame-Options", "DENY")
        resp.text = self._env.get_template(template).render(
            t=partial(t, locale),
            locale=locale,
            title=title,
            menu=menu,
            flashes=flashes or [],
            wide=wide,
            languages=_languages(req, locale, here),
            **context,
        )

    def error(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        message: str,
        status: int,
        *,
        menu: Menu | None = None,
        back: tuple[str, str] | None = None,
        title_key: str = "error.title",
        here: str | None = None,
    ) -> None:
        """An error page in the user's words, with the menu and a way back (href, text)."""
        locale = negotiate_locale(req)
        self.render(
            req,
            resp,
            "error.html",
            title=t(locale, title_key),
            status=status,
            menu=menu,
            flashes=[Flash("error", message)],
            back=back,
            here=here,
        )


def _languages(req: falcon.Request, locale: str, here: str | None) -> list[dict[str, str]]:
    """This same page in each language: its query kept, ``lang`` replaced."""
    if here is None:
        query = req.query_string if req.method == "GET" else ""
        path = req.path
    else:
        path, _, query = here.partition("?")
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "lang"]
    return [
        {
            "code": code,
            "name": t(code, "language.name"),
            "href": "" if code == locale else path + "?" + urlencode([*params, ("lang", code)]),
        }
        for code in LOCALES
    ]
