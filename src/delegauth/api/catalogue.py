"""GET /v1/permissions: the catalogue with labels in the requested language."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from delegauth.api.body import send_json
from delegauth.api.views import catalogue_view
from delegauth.domain.catalogue import Catalogue

__all__ = ["PermissionsResource", "negotiate_locale"]

LOCALES = ("en", "es")


def negotiate_locale(req: falcon.Request) -> str:
    """?lang= wins; else the best Accept-Language match among en and es; else en."""
    lang = (req.get_param("lang") or "").lower()[:2]
    if lang in LOCALES:
        return lang
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
