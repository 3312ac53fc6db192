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

from delegauth.domain.ids import NAME_RE, RESOURCE_ID_RE, SCOPE_SEP
from delegauth.errors import InvalidInput, UnknownPermission

__all__ = [
    "ALL",
    "MANAGE_USERS",
    "MAX_RESOURCE_IDS",
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
# The most resource ids one grant may name (over all its scoped permissions).
MAX_RESOURCE_IDS = 100


class CatalogueError(ValueError):
    """The catalogue file is malformed."""


@dataclass(frozen=True)
class Permission:
    name: str
    labels: Mapping[str, str]
    descriptions: Mapping[str, str]
    group: str
    actions: tuple[tuple[str, str], ...]  # (resource type, action)
    # A grant may limit it to single resources (of resource_type), e.g. managedomains on
    # example.com only; granted without resource ids it covers every resource.
    scoped: bool = False

    @property
    def resource_type(self) -> str:
        """The one resource type a scoped permission's actions act on."""
        return self.actions[0][0]

    def label(self, locale: str) -> str:
        return self.labels.get(locale) or self.labels["en"]

    def description(self, locale: str) -> str:
        return self.descriptions.get(locale) or self.descriptions.get("en", "")


@dataclass(frozen=True)
class PermissionSet:
    """What a grant or invitation gives: "all" (including future permissions) or some names,
    each on every resource (``names``) or on some resources only (``scoped``).

    Written as a list, a permission on one resource is ``name@resource-id``
    ("managedomains@example.com"): the API, storage, tokens and Casbin role names share it,
    and a reader that knows only bare names sees no permission there (fail closed).
    """

    all: bool
    names: frozenset[str] = frozenset()
    scoped: frozenset[tuple[str, str]] = frozenset()  # (permission, resource id)

    @classmethod
    def everything(cls) -> PermissionSet:
        return cls(True)

    @classmethod
    def of(cls, items: Iterable[str]) -> PermissionSet:
        """From names and ``name@resource-id`` items (a name on every resource wins)."""
        names: set[str] = set()
        scoped: set[tuple[str, str]] = set()
        for item in items:
            name, sep, resource_id = item.partition(SCOPE_SEP)
            if sep:
                scoped.add((name, resource_id))
            else:
                names.add(name)
        return cls(False, frozenset(names), frozenset(s for s in scoped if s[0] not in names))

    def covers(self, other: PermissionSet) -> bool:
        """True when holding self is enough to give other."""
        if self.all:
            return True
        if other.all or not other.names <= self.names:
            return False
        return all(name in self.names or (name, rid) in self.scoped for name, rid in other.scoped)

    def has(self, name: str) -> bool:
        """Whether ``name`` is held at all (on every resource or on some)."""
        return self.all or name in self.names or any(n == name for n, _ in self.scoped)

    def resources(self, name: str) -> list[str]:
        """The resource ids ``name`` is limited to (empty: every resource, or not held)."""
        return sorted(rid for n, rid in self.scoped if n == name)

    def union(self, other: PermissionSet) -> PermissionSet:
        """Both sets (a name on every resource absorbs its single-resource grants)."""
        if self.all or other.all:
            return PermissionSet.everything()
        names = self.names | other.names
        scoped = frozenset(s for s in self.scoped | other.scoped if s[0] not in names)
        return PermissionSet(False, names, scoped)

    def to_json(self) -> str | list[str]:
        if self.all:
            return ALL
        return sorted(self.names) + sorted(f"{n}{SCOPE_SEP}{rid}" for n, rid in self.scoped)


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
        scoped: set[tuple[str, str]] = set()
        for item in value:
            if not isinstance(item, str):
                raise InvalidInput("permission names must be strings", field=field)
            if SCOPE_SEP in item:
                scoped.add(self._parse_scoped(item, field))
                continue
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
        # A permission on every resource covers it on single ones (a bundle holding
        # managedomains beside managedomains@example.com): the union, as PermissionSet.union.
        scoped = {s for s in scoped if s[0] not in names}
        if len(scoped) > MAX_RESOURCE_IDS:
            raise InvalidInput(
                f"a grant names at most {MAX_RESOURCE_IDS} resource ids", field=field
            )
        return PermissionSet(False, frozenset(names), frozenset(scoped))

    def _parse_scoped(self, item: str, field: str) -> tuple[str, str]:
        """``name@resource-id``: a resource-scoped permission on one resource, or raise."""
        name, _, resource_id = item.partition(SCOPE_SEP)
        permission = self._by_name.get(name)
        if permission is None:
            shown = name if NAME_RE.match(name) else "(invalid name)"
            raise UnknownPermission(f"unknown permission: {shown}", field=field)
        if not permission.scoped:
            raise InvalidInput(
                f"{name} cannot be limited to single resources: grant it whole", field=field
            )
        if not resource_id:
            raise InvalidInput(f"{name}@ needs a resource id after the @", field=field)
        if len(resource_id) > 128:
            raise InvalidInput("a resource id has at most 128 characters", field=field)
        if not RESOURCE_ID_RE.match(resource_id):
            # Never echoed: it may hold anything. Domain names go in their IDNA (xn--) form.
            raise InvalidInput(
                "a resource id has only ASCII letters, digits and . _ : - and starts with a "
                "letter or digit (write domain names in their IDNA form, xn--…)",
                field=field,
            )
        return name, resource_id


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
        parsed_actions = tuple(_parse_action(a, where) for a in actions)
        scoped = body.get("scoped", False)
        if not isinstance(scoped, bool):
            raise CatalogueError(f"{where}: scoped must be true or false")
        if scoped and len({rtype for rtype, _ in parsed_actions}) != 1:
            raise CatalogueError(
                f"{where}: a scoped permission's actions must all act on one resource type "
                "(its grants name resource ids of that type)"
            )
        perms.append(
            Permission(
                name=name,
                labels=dict(labels),
                descriptions={str(k): str(v) for k, v in descriptions.items()},
                group=str(body.get("group", "general")),
                actions=parsed_actions,
                scoped=scoped,
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
