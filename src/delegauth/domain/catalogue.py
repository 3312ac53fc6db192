"""The permission catalogue: the one vocabulary of permissions and resource actions.

It is read from ``policies/catalogue.toml``. Code refers to permissions by the
names found here, never by scattered literals.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delegauth.domain.ids import NAME_RE
from delegauth.errors import InvalidInput, UnknownPermission

__all__ = [
    "ALL",
    "MANAGE_USERS",
    "Catalogue",
    "CatalogueError",
    "CatalogueSource",
    "as_source",
    "Permission",
    "PermissionSet",
    "load_catalogue",
    "loads_catalogue",
]

ALL = "all"
# "bundle:<name>" in a permissions list grants the bundle's permissions.
BUNDLE_PREFIX = "bundle:"
# The catalogue permission that lets a delegate manage the area's users.
MANAGE_USERS = "users"
SUPPORTED_LOCALES = ("en", "es")


class CatalogueError(ValueError):
    """The catalogue file is malformed."""


@dataclass(frozen=True)
class Permission:
    name: str
    labels: Mapping[str, str]
    descriptions: Mapping[str, str]
    group: str
    actions: tuple[tuple[str, str], ...]  # (resource type, action)

    def label(self, locale: str) -> str:
        return self.labels.get(locale) or self.labels["en"]

    def description(self, locale: str) -> str:
        return self.descriptions.get(locale) or self.descriptions.get("en", "")


@dataclass(frozen=True)
class PermissionSet:
    """What a grant or invitation gives: "all" (including future permissions) or some names."""

    all: bool
    names: frozenset[str] = frozenset()

    @classmethod
    def everything(cls) -> PermissionSet:
        return cls(True)

    @classmethod
    def of(cls, names: Iterable[str]) -> PermissionSet:
        return cls(False, frozenset(names))

    def covers(self, other: PermissionSet) -> bool:
        """True when holding self is enough to give other."""
        if self.all:
            return True
        return not other.all and other.names <= self.names

    def has(self, name: str) -> bool:
        return self.all or name in self.names

    def to_json(self) -> str | list[str]:
        return ALL if self.all else sorted(self.names)


class Catalogue:
    """Permissions by name, in file order, with labels in English and Spanish."""

    def __init__(self, permissions: Iterable[Permission]) -> None:
        self._by_name = {p.name: p for p in permissions}
        # Named sets of permissions an owner can grant in one click (load_catalogue fills it).
        self.bundles: dict[str, Any] = {}
        if ALL in self._by_name:
            raise CatalogueError(f"'{ALL}' is reserved and cannot be a permission name")

    def __iter__(self) -> Iterator[Permission]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Permission:
        return self._by_name[name]

    def names(self) -> list[str]:
        return list(self._by_name)

    def all_actions(self) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for p in self._by_name.values():
            for a in p.actions:
                seen[a] = None
        return list(seen)

    def parse(self, value: object, *, field: str = "permissions") -> PermissionSet:
        """Turn API input ("all" or a list of names) into a PermissionSet, or raise."""
        if value == ALL:
            return PermissionSet.everything()
        if not isinstance(value, list) or not value:
            raise InvalidInput(
                'permissions must be "all" or a non-empty list of names', field=field
            )
        names: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                raise InvalidInput("permission names must be strings", field=field)
            if item.startswith(BUNDLE_PREFIX):
                # A bundle is expanded now: later edits to it do not change this grant.
                bundle = self.bundles.get(item[len(BUNDLE_PREFIX) :])
                if bundle is None:
                    shown = item if NAME_RE.match(item[len(BUNDLE_PREFIX) :]) else "(invalid)"
                    raise UnknownPermission(f"unknown bundle: {shown}", field=field)
                names.update(bundle.permissions)
                continue
            if item not in self._by_name:
                # Echo nothing that is not a plain name back to the caller.
                shown = item if NAME_RE.match(item) else "(invalid name)"
                raise UnknownPermission(f"unknown permission: {shown}", field=field)
            names.add(item)
        return PermissionSet.of(names)


def _parse_action(text: object, where: str) -> tuple[str, str]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise CatalogueError(f"{where}: action must look like 'type:action', got {text!r}")
    rtype, act = text.split(":")
    if not NAME_RE.match(rtype) or not NAME_RE.match(act):
        raise CatalogueError(f"{where}: action {text!r} has an invalid name")
    return rtype, act


CatalogueSource = Callable[[], Catalogue]


def as_source(catalogue: Catalogue | CatalogueSource) -> CatalogueSource:
    """Services read the catalogue through a source, so a policy reload reaches them."""
    if isinstance(catalogue, Catalogue):
        return lambda: catalogue
    return catalogue


def parse_catalogue(data: Mapping[str, object]) -> Catalogue:
    perms_raw = data.get("permissions")
    if not isinstance(perms_raw, dict) or not perms_raw:
        raise CatalogueError("catalogue needs a [permissions.NAME] table")
    perms = []
    for name, body in perms_raw.items():
        where = f"permissions.{name}"
        if not NAME_RE.match(name):
            raise CatalogueError(f"{where}: invalid permission name")
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
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            raise CatalogueError(f"{where}: actions must be a non-empty list")
        perms.append(
            Permission(
                name=name,
                labels=dict(labels),
                descriptions={str(k): str(v) for k, v in descriptions.items()},
                group=str(body.get("group", "general")),
                actions=tuple(_parse_action(a, where) for a in actions),
            )
        )
    return Catalogue(perms)


def loads_catalogue(data: bytes, source: str = "catalogue.toml") -> Catalogue:
    """The catalogue (with its bundles) from the bytes of catalogue.toml."""
    from delegauth.domain.permission_bundles import parse_bundles

    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as ex:
        raise CatalogueError(f"{source}: {ex}") from ex
    catalogue = parse_catalogue(parsed)
    catalogue.bundles = parse_bundles(parsed, catalogue)
    return catalogue


def load_catalogue(path: str | Path) -> Catalogue:
    try:
        data = Path(path).read_bytes()
    except OSError as ex:
        raise CatalogueError(f"{path}: {ex}") from ex
    return loads_catalogue(data, str(path))
