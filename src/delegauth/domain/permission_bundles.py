"""Named bundles of catalogue permissions that an owner can grant in one click.

They are read from the ``[bundles.NAME]`` tables of ``policies/catalogue.toml``::

    [bundles.billing]
    label = { en = "Billing", es = "Facturación" }
    description = { en = "...", es = "..." }
    permissions = ["invoices", "quotes"]

A bundle is only a shortcut: granting it grants its permissions, each by name, so
a grant never refers to the bundle and later edits of the bundle change no grant.
"all" is a grant of its own and cannot be part of a bundle.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from delegauth.domain.catalogue import (
    ALL,
    SUPPORTED_LOCALES,
    Catalogue,
    CatalogueError,
    PermissionSet,
)
from delegauth.domain.ids import NAME_RE

__all__ = ["PermissionBundle", "load_bundles", "parse_bundles"]


@dataclass(frozen=True)
class PermissionBundle:
    name: str
    labels: Mapping[str, str]
    descriptions: Mapping[str, str]
    permissions: tuple[str, ...]  # catalogue names, in file order

    def label(self, locale: str) -> str:
        return self.labels.get(locale) or self.labels["en"]

    def description(self, locale: str) -> str:
        return self.descriptions.get(locale) or self.descriptions.get("en", "")

    def permission_set(self) -> PermissionSet:
        return PermissionSet.of(self.permissions)


def parse_bundles(data: Mapping[str, object], catalogue: Catalogue) -> dict[str, PermissionBundle]:
    """Read the ``bundles`` table of parsed catalogue data; raise CatalogueError."""
    raw = data.get("bundles", {})
    if not isinstance(raw, dict):
        raise CatalogueError("bundles must be a table of [bundles.NAME] tables")
    bundles: dict[str, PermissionBundle] = {}
    for name, body in raw.items():
        where = f"bundles.{name}"
        if not NAME_RE.match(name) or name == ALL:
            raise CatalogueError(f"{where}: invalid bundle name")
        if name in catalogue:
            raise CatalogueError(f"{where}: a bundle cannot share a permission's name")
        if not isinstance(body, dict):
            raise CatalogueError(f"{where}: must be a table")
        labels = body.get("label")
        if not isinstance(labels, dict) or not all(
            isinstance(labels.get(loc), str) and labels.get(loc) for loc in SUPPORTED_LOCALES
        ):
            raise CatalogueError(f"{where}: label.en and label.es are required")
        descriptions = body.get("description", {})
        if not isinstance(descriptions, dict):
            raise CatalogueError(f"{where}: description must be a table")
        names = body.get("permissions")
        if not isinstance(names, list) or not names:
            raise CatalogueError(f"{where}: permissions must be a non-empty list of names")
        for item in names:
            if item == ALL:
                raise CatalogueError(f"{where}: '{ALL}' is a grant of its own, not bundle content")
            if not isinstance(item, str) or item not in catalogue:
                raise CatalogueError(f"{where}: unknown permission {item!r}")
        bundles[name] = PermissionBundle(
            name=name,
            labels=dict(labels),
            descriptions={str(k): str(v) for k, v in descriptions.items()},
            permissions=tuple(dict.fromkeys(names)),
        )
    return bundles


def load_bundles(path: str | Path, catalogue: Catalogue) -> dict[str, PermissionBundle]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as ex:
        raise CatalogueError(f"{path}: {ex}") from ex
    return parse_bundles(data, catalogue)
