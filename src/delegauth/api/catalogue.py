"""GET /v1/permissions: the catalogue with labels in the requested language."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from delegauth.api.body import send_json
from delegauth.api.views import catalogue_view
from delegauth.domain.catalogue import Catalogue

__all__ = [
    "LANG_COOKIE",
    "LOCALES",
    "LanguageMiddleware",
    "PermissionsResource",
    "negotiate_locale",
]

LOCALES = ("en", "es")


LANG_COOKIE = "delegauth_lang"


def negotiate_locale(req: falcon.Request) -> str:
    """?lang= wins, then the language the user picked before (a cookie), then the best
    Accept-Language match among en and es; else en."""
    lang = (req.get_param("lang") or "").lower()[:2]
    if lang in LOCALES:
        return lang
    picked = req.get_cookie_values(LANG_COOKIE)
    if picked and picked[0] in LOCALES:
        return picked[0]
    best, best_q = "en", -1.0
    for part in (req.get_header("Accept-Language") or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        short = tag.strip().lower()[:2]
        if short in LOCALES and q > best_q:
            best, best_q = short, q
    return best


class PermissionsResource:
    def __init__(self, catalogue_source: Callable[[], Catalogue]) -> None:
        self._catalogue = catalogue_source

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        catalogue: Catalogue = self._catalogue()
        send_json(resp, catalogue_view(catalogue, negotiate_locale(req)))


class LanguageMiddleware:
    """A language picked with ?lang= sticks (a cookie). The switcher itself is in the
    pages' base layout (delegauth.pages)."""

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if not req.query_string:  # most requests: nothing to parse
            return
        lang = (req.get_param("lang") or "").lower()
        if lang in LOCALES:
            resp.set_cookie(
                LANG_COOKIE,
                lang,
                max_age=365 * 24 * 3600,
                path="/",
                http_only=True,
                same_site="Lax",
                secure=req.scheme == "https",
            )
