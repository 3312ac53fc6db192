"""GET /openapi.json: the API described in api/openapi.yaml (OpenAPI 3.1).

The permission names a request may grant are data (policies/catalogue.toml, reloaded
while serving), so the served document lists those of the policy in force.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon
import yaml

from delegauth.api.body import send_json
from delegauth.domain.catalogue import Catalogue

__all__ = ["OpenApiResource", "load_document"]

_PATH = Path(__file__).with_name("openapi.yaml")


def load_document() -> dict[str, Any]:
    """The document as written, without the catalogue's names."""
    return dict(yaml.safe_load(_PATH.read_text("utf-8")))


def _with_catalogue(doc: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    served = copy.deepcopy(doc)
    names = [*catalogue.names(), *(f"bundle:{name}" for name in catalogue.bundles)]
    served["components"]["schemas"]["PermissionName"]["enum"] = names
    scoped = [p.name for p in catalogue if p.scoped]
    schemas = served["components"]["schemas"]
    if scoped:
        tail = schemas["ScopedPermission"]["pattern"].split("@", 1)[1]
        schemas["ScopedPermission"]["pattern"] = f"^({'|'.join(scoped)})@{tail}"
    else:
        schemas["ScopedPermission"]["not"] = {}  # no permission of this policy is scoped
    return served


class OpenApiResource:
    def __init__(self, catalogue_source: Callable[[], Catalogue]) -> None:
        self._doc = load_document()
        self._catalogue = catalogue_source
        self._served: tuple[Catalogue, dict[str, Any]] | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        catalogue = self._catalogue()
        served = self._served
        if served is None or served[0] is not catalogue:  # a reload brings a new catalogue
            served = (catalogue, _with_catalogue(self._doc, catalogue))
            self._served = served
        send_json(resp, served[1])
