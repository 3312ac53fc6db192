"""How an AuthZEN request becomes a Casbin request: ``authzen.toml`` in policies/.

The security team declares it, beside the model (every key optional; these are the
defaults, which are the shipped delegation policy's)::

    [subjects.user]                # the subject types this policy knows
    ids = "users"                  # "users": delegauth user ids (user:<id>)
                                   # "emails": a delegauth user's verified email
                                   # "identities": listed in identities.toml
    [domain]
    from = "resource.properties.area"   # or "token" (the caller's token's area),
                                        # "fixed" (with value = "a_…"), "none"
    [request]
    object = "resource.type"       # what r.obj compares as: or "resource.id"

    [properties]                   # what the matcher may read (Casbin ABAC)
    subject = []                   # r.sub.<name>
    resource = []                  # r.obj.<name>
    action = []                    # r.act.<name>
    context = []                   # r.ctx.<name>, when the model's r has ctx

``identities.toml`` lists identities by subject type and id, each with its ``roles``
(g lines ``g, <type>:<id>, role:<name>``) and any other keys as properties::

    [user."CiRmZDA2…"]
    roles = ["admin"]
    email = "rick@the-citadel.com"

``resources.toml`` lists resources by type and id with their properties; resource
search returns them, and a request naming one gets its listed properties::

    [record.101]
    owner = "alice"

A request field the matcher reads compares as its string (r.obj == p.obj) and has
the declared properties as attributes (r.obj.ownerID); a property the request and
the lists lack equals nothing, not even itself, so an absent owner never matches.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from delegauth.domain.entities import User
from delegauth.domain.ids import is_casbin_name
from delegauth.errors import InvalidInput

__all__ = [
    "DEFAULT_MAPPING",
    "DOMAIN_SOURCES",
    "EmailLookup",
    "IDENTITIES_FILE",
    "MAPPING_FILE",
    "RESOURCES_FILE",
    "Identity",
    "MappingProblem",
    "Question",
    "Refused",
    "RequestMapping",
    "Value",
    "parse_mapping",
    "resource_value",
]

MAPPING_FILE = "authzen.toml"
IDENTITIES_FILE = "identities.toml"
RESOURCES_FILE = "resources.toml"

AREA_PROPERTY = "resource.properties.area"
DOMAIN_SOURCES = (AREA_PROPERTY, "token", "fixed", "none")
RESOLVERS = ("users", "emails", "identities")
# The delegauth user whose canonical email equals the given address (None: nobody);
# InvalidInput when the text is not an address delegauth accepts. The service passes
# it (Accounts.user_by_email); without one no email resolves.
EmailLookup = Callable[[str], User | None]
OBJECT_SOURCES = ("resource.type", "resource.id")
PROPERTY_KINDS = {"subject": "sub", "resource": "obj", "action": "act", "context": "ctx"}
REQUEST_TOKENS = ("sub", "dom", "obj", "act", "ctx")
# Subject types that would read as the policy's own names (role:…, perm:…, area:…).
_RESERVED_TYPES = frozenset({"role", "perm", "area", "user_", "identity_"})
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_PROP_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_MAX_ID = 256


class _Missing:
    """A property nobody supplied: equal to nothing, containing nothing."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    def __contains__(self, item: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


class Value(str):
    """A request field as the matcher sees it: a string with attributes."""

    def __new__(cls, text: str, attributes: Mapping[str, object]) -> Value:
        value = super().__new__(cls, text)
        value.__dict__.update(attributes)  # instance attributes win over str's methods
        return value


def resource_value(rtype: str, resource_id: str | None = None) -> Value:
    """r.obj for a resource type asked about directly (tables, checks, explain): the shipped
    matcher reads r.obj.id, which is "" when no single resource is named."""
    return Value(rtype, {"id": resource_id if resource_id is not None else "", "type": rtype})


@dataclass(frozen=True)
class MappingProblem:
    file: str  # MAPPING_FILE, IDENTITIES_FILE or RESOURCES_FILE
    line: int | None
    message: str


@dataclass(frozen=True)
class Identity:
    roles: tuple[str, ...]
    properties: Mapping[str, object]


@dataclass(frozen=True)
class Question:
    """One AuthZEN evaluation as Casbin will be asked it."""

    subject: str  # the Casbin subject name
    domain: str | None
    obj: str
    act: str
    # Builds ``values``: only a decision Casbin makes itself needs them, so the delegation
    # model's index never pays for them.
    build: Callable[[], tuple[object, ...]] = field(repr=False, compare=False)
    resource_id: str | None = None  # resource.id: grants on single resources count there

    @cached_property
    def values(self) -> tuple[object, ...]:
        """The request's fields, in the order of the model's request definition."""
        return self.build()


@dataclass(frozen=True)
class RequestMapping:
    subjects: Mapping[str, str] = field(default_factory=lambda: {"user": "users"})
    domain: str = AREA_PROPERTY
    fixed_domain: str | None = None
    object_source: str = "resource.type"
    properties: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {kind: () for kind in PROPERTY_KINDS}
    )
    identities: Mapping[tuple[str, str], Identity] = field(default_factory=dict)
    resources: Mapping[tuple[str, str], Mapping[str, object]] = field(default_factory=dict)
    tokens: tuple[str, ...] = ("sub", "dom", "obj", "act")  # the model's r, set by the bundle
    declared: bool = False  # an authzen.toml was present

    # -- what the policy lists ---------------------------------------------------------

    def g_lines(self) -> list[tuple[str, ...]]:
        """The g lines the identities' roles stand for."""
        lines: list[tuple[str, ...]] = []
        for (kind, ident), identity in self.identities.items():
            for role in identity.roles:
                line: tuple[str, ...] = ("g", subject_name(kind, ident), f"role:{role}")
                if self.domain != "none":
                    line += (self.fixed_domain or "",)
                lines.append(line)
        return lines

    def listed_subjects(self, kind: str) -> list[str]:
        return sorted(ident for k, ident in self.identities if k == kind)

    def listed_resources(self, kind: str) -> list[str]:
        return sorted(ident for k, ident in self.resources if k == kind)

    @cached_property
    def plain(self) -> bool:
        """Whether requests map as the shipped delegation policy's do: subjects of type
        user by delegauth user id, the domain from resource.properties.area, the object from
        resource.type (``question`` is then (user:<id>, area:<area>, type, action name))."""
        return (
            self.subjects.get("user") == "users"
            and self.domain == AREA_PROPERTY
            and self.object_source == "resource.type"
        )

    # -- one evaluation ------------------------------------------------------------------

    def question(
        self,
        body: Mapping[str, Any],
        *,
        token_area: str | None = None,
        users_by_email: EmailLookup | None = None,
    ) -> Question | str:
        """The Casbin request for a validated evaluation, or why it can only be denied.

        Raises InvalidInput naming the field when the request lacks what this mapping
        needs (a 400, never a silent deny)."""
        subject, resource, action = body["subject"], body["resource"], body["action"]
        domain = self._domain(resource, token_area)
        if isinstance(domain, _Refusal):
            return domain.reason
        kind, ident = subject["type"], subject["id"]
        resolve = self.subjects.get(kind)
        if resolve is None:
            known = ", ".join(f'"{k}"' for k in sorted(self.subjects)) or "none"
            return f'subject type "{kind}" is not known to this policy (known: {known})'
        listed: Mapping[str, object] = {}
        if resolve == "users":
            name = "user:" + ident
            if not is_casbin_name(name):
                return f"subject.id {ident!r} is not a delegauth user id"
        elif resolve == "emails":
            found = _user_by_email(ident, users_by_email)
            if isinstance(found, _Refusal):
                return found.reason
            name = "user:" + found
        else:
            identity = self.identities.get((kind, ident))
            if identity is None:
                return f"{kind} {ident!r} is not listed in {IDENTITIES_FILE}"
            name = subject_name(kind, ident)
            listed = {**identity.properties, "roles": list(identity.roles)}
        if self.object_source == "resource.id" and not isinstance(resource.get("id"), str):
            raise InvalidInput(
                f"resource.id is required: this policy decides on it ({MAPPING_FILE})",
                field="resource.id",
            )
        obj_text = resource["type"] if self.object_source == "resource.type" else resource["id"]

        def build() -> tuple[object, ...]:
            listed_resource = self.resources.get((resource["type"], resource.get("id")))
            values: dict[str, object] = {
                "sub": Value(name, self._attributes("subject", subject, listed)),
                "dom": domain,
                "obj": Value(obj_text, self._attributes("resource", resource, listed_resource)),
                "act": Value(action["name"], self._attributes("action", action, None)),
                "ctx": Value("", self._context(body.get("context") or {})),
            }
            return tuple(values[token] for token in self.tokens)

        return Question(
            subject=name,
            domain=domain,
            obj=obj_text,
            act=action["name"],
            build=build,
            resource_id=resource.get("id"),
        )

    def user_of(
        self, subject: Mapping[str, Any], users_by_email: EmailLookup | None = None
    ) -> str | None:
        """The Casbin name of a subject resolved to a delegauth user (user:<id>), or None."""
        resolve = self.subjects.get(subject["type"])
        if resolve == "users" and is_casbin_name("user:" + subject["id"]):
            return "user:" + str(subject["id"])
        if resolve == "emails":
            found = _user_by_email(subject["id"], users_by_email)
            return None if isinstance(found, _Refusal) else "user:" + found
        return None

    def domain_of(self, resource: Mapping[str, Any], token_area: str | None = None) -> str | None:
        """The Casbin domain a request's resource is decided in (None: no domains);
        InvalidInput when the request lacks it, Refused when no decision there could allow."""
        domain = self._domain(resource, token_area)
        if isinstance(domain, _Refusal):
            raise Refused(domain.reason)
        return domain

    def _domain(self, resource: Mapping[str, Any], token_area: str | None) -> str | None | _Refusal:
        if self.domain == "none":
            return None
        if self.domain == "fixed":
            return self.fixed_domain
        if self.domain == "token":
            if token_area is None:
                raise InvalidInput(
                    "the caller's token names no Client Area: this policy takes the area "
                    f"from the token ({MAPPING_FILE})",
                    field="authorization",
                )
            area = token_area
        else:
            props = resource.get("properties") or {}
            if "area" not in props:
                raise InvalidInput(
                    "resource.properties.area is required: this policy decides in the Client "
                    f"Area it names ({MAPPING_FILE})",
                    field="resource.properties.area",
                )
            area = props["area"]
            if not isinstance(area, str):
                raise InvalidInput(
                    "resource.properties.area must be a string", field="resource.properties.area"
                )
        if not is_casbin_name("area:" + area):
            return _Refusal(f"{area!r} is not a Client Area id")
        return "area:" + area

    def _attributes(
        self, kind: str, entity: Mapping[str, Any], listed: Mapping[str, object] | None
    ) -> dict[str, object]:
        """The entity's id, type or name, then its declared properties: the lists first
        (the policy's own word), then what the request sent."""
        sent = entity.get("properties") or {}
        attrs: dict[str, object] = {k: entity[k] for k in ("id", "type", "name") if k in entity}
        for prop in self.properties.get(kind, ()):
            if listed is not None and prop in listed:
                attrs[prop] = listed[prop]
            elif prop in sent:
                attrs[prop] = sent[prop]
            else:
                attrs[prop] = MISSING
        return attrs

    def _context(self, context: Mapping[str, Any]) -> dict[str, object]:
        return {prop: context.get(prop, MISSING) for prop in self.properties.get("context", ())}


@dataclass(frozen=True)
class _Refusal:
    reason: str


def _user_by_email(email: str, lookup: EmailLookup | None) -> str | _Refusal:
    """The id of the delegauth user whose verified email ``email`` is, or why none is."""
    if lookup is None:
        return _Refusal(f"no delegauth user has the verified email {email!r} (no user lookup)")
    try:
        user = lookup(email)
    except InvalidInput as ex:
        return _Refusal(f"subject.id {email!r} is not an email address delegauth accepts: {ex}")
    if user is None:
        return _Refusal(f"no delegauth user has the email {email!r}")
    if not user.email_verified:
        return _Refusal(f"the delegauth user with the email {email!r} has not verified it")
    return user.id


class Refused(Exception):
    """The request names something no decision could allow (an area id that is none)."""


def subject_name(kind: str, ident: str) -> str:
    """The Casbin subject of a listed identity: namespaced by its type, never a role name."""
    return f"{kind}:{ident}"


DEFAULT_MAPPING = RequestMapping()


# -- reading the files -------------------------------------------------------------------


def parse_mapping(
    mapping_text: str | None,
    identities_text: str | None = None,
    resources_text: str | None = None,
) -> tuple[RequestMapping, list[MappingProblem]]:
    """The mapping the files declare, and every problem found (file, line, message)."""
    reader = _Reader()
    mapping = reader.read(mapping_text, identities_text, resources_text)
    return mapping, reader.problems


class _Reader:
    def __init__(self) -> None:
        self.problems: list[MappingProblem] = []
        self._lines: dict[str, list[str]] = {}

    def _problem(self, file: str, path: tuple[str, ...], message: str) -> None:
        from delegauth.policy.sources import toml_line

        lines = self._lines.get(file, [])
        line = toml_line(lines, path) if path else None
        if line is None and path:  # a table known only through its subtables: [kind.id]
            heads = (f"[{path[0]}.", f'["{path[0]}".', f"[{path[0]}]")
            line = next((i for i, t in enumerate(lines, 1) if t.strip().startswith(heads)), None)
        self.problems.append(MappingProblem(file, line, message))

    def _load(self, file: str, text: str | None) -> dict[str, Any]:
        if text is None:
            return {}
        self._lines[file] = text.splitlines()
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as ex:
            m = re.search(r"at line (\d+)", str(ex))
            line = int(m.group(1)) if m else None
            self.problems.append(MappingProblem(file, line, f"not valid TOML: {ex}"))
            return {}

    def read(
        self, mapping_text: str | None, identities_text: str | None, resources_text: str | None
    ) -> RequestMapping:
        data = self._load(MAPPING_FILE, mapping_text)
        for key in data:
            if key not in ("subjects", "domain", "request", "properties"):
                self._problem(
                    MAPPING_FILE,
                    (key,),
                    f"unknown table {key!r} (tables: subjects, domain, request, properties)",
                )
        subjects = self._subjects(data.get("subjects", {"user": {"ids": "users"}}))
        domain, fixed = self._domain_source(data.get("domain", {}))
        obj = self._object(data.get("request", {}))
        properties = self._properties(data.get("properties", {}))
        identities = self._identities(self._load(IDENTITIES_FILE, identities_text), subjects)
        resources = self._resources(self._load(RESOURCES_FILE, resources_text))
        if identities and domain in (AREA_PROPERTY, "token"):
            self._problem(
                IDENTITIES_FILE,
                (),
                f"identities hold their roles everywhere: [domain] from = {domain!r} in "
                f'{MAPPING_FILE} needs "fixed" or "none" for them',
            )
        return RequestMapping(
            subjects=subjects,
            domain=domain,
            fixed_domain=fixed,
            object_source=obj,
            properties=properties,
            identities=identities,
            resources=resources,
            declared=mapping_text is not None,
        )

    def _table(self, value: object, path: tuple[str, ...], keys: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self._problem(MAPPING_FILE, path, f"[{'.'.join(path)}] must be a table")
            return {}
        for key in value:
            if key not in keys:
                self._problem(
                    MAPPING_FILE,
                    (*path, key),
                    f"unknown key {key!r} in [{'.'.join(path)}] (keys: {', '.join(sorted(keys))})",
                )
        return value

    def _subjects(self, value: object) -> dict[str, str]:
        if not isinstance(value, dict) or not value:
            self._problem(MAPPING_FILE, ("subjects",), "needs at least one [subjects.TYPE] table")
            return {}
        out: dict[str, str] = {}
        for kind, body in value.items():
            path = ("subjects", kind)
            if not _TYPE_RE.match(kind) or kind in _RESERVED_TYPES:
                self._problem(
                    MAPPING_FILE,
                    path,
                    f"subject type {kind!r} must match [a-z][a-z0-9_]{{0,31}} and not be "
                    "role, perm or area",
                )
                continue
            table = self._table(body, path, {"ids"})
            ids = table.get("ids", "users")
            if ids not in RESOLVERS:
                self._problem(
                    MAPPING_FILE, (*path, "ids"), f"ids must be one of {', '.join(RESOLVERS)}"
                )
                continue
            if ids in ("users", "emails") and kind != "user":
                self._problem(
                    MAPPING_FILE,
                    (*path, "ids"),
                    f'delegauth users are subjects of type "user", not {kind!r}',
                )
                continue
            out[kind] = ids
        return out

    def _domain_source(self, value: object) -> tuple[str, str | None]:
        table = self._table(value, ("domain",), {"from", "value"})
        source = table.get("from", AREA_PROPERTY)
        if source not in DOMAIN_SOURCES:
            self._problem(
                MAPPING_FILE,
                ("domain", "from"),
                f"from must be one of {', '.join(repr(s) for s in DOMAIN_SOURCES)}",
            )
            return AREA_PROPERTY, None
        fixed = table.get("value")
        if source == "fixed":
            if not isinstance(fixed, str) or not is_casbin_name("area:" + fixed):
                self._problem(
                    MAPPING_FILE,
                    ("domain", "value"),
                    'from = "fixed" needs value = "<area id>" (a_ and 26 chars of a-z2-7)',
                )
                return source, None
            return source, "area:" + fixed
        if fixed is not None:
            self._problem(
                MAPPING_FILE, ("domain", "value"), 'value is read only with from = "fixed"'
            )
        return source, None

    def _object(self, value: object) -> str:
        table = self._table(value, ("request",), {"object"})
        obj = table.get("object", "resource.type")
        if obj not in OBJECT_SOURCES:
            self._problem(
                MAPPING_FILE,
                ("request", "object"),
                f"object must be one of {', '.join(OBJECT_SOURCES)}",
            )
            return "resource.type"
        return str(obj)

    def _properties(self, value: object) -> dict[str, tuple[str, ...]]:
        table = self._table(value, ("properties",), set(PROPERTY_KINDS))
        out: dict[str, tuple[str, ...]] = {}
        for kind in PROPERTY_KINDS:
            names = table.get(kind, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                self._problem(MAPPING_FILE, ("properties", kind), f"{kind} must list names")
                names = []
            bad = [n for n in names if not _PROP_RE.match(n) or n in ("id", "type", "name")]
            if bad:
                self._problem(
                    MAPPING_FILE,
                    ("properties", kind),
                    f"property names {bad} must be identifiers ([A-Za-z][A-Za-z0-9_]*); "
                    "id, type and name are always readable",
                )
            out[kind] = tuple(n for n in names if n not in bad)
        return out

    def _identities(
        self, data: dict[str, Any], subjects: Mapping[str, str]
    ) -> dict[tuple[str, str], Identity]:
        out: dict[tuple[str, str], Identity] = {}
        for kind, entries in data.items():
            if subjects.get(kind) != "identities":
                self._problem(
                    IDENTITIES_FILE,
                    (kind,),
                    f'[{kind}]: {MAPPING_FILE} must declare [subjects.{kind}] ids = "identities"',
                )
                continue
            if not isinstance(entries, dict):
                self._problem(IDENTITIES_FILE, (kind,), f"[{kind}] must hold one table per id")
                continue
            for ident, body in entries.items():
                path = (kind, ident)
                if not _good_id(ident):
                    self._problem(
                        IDENTITIES_FILE, path, f"id {ident!r} must be 1-256 printable characters"
                    )
                    continue
                if not isinstance(body, dict):
                    self._problem(IDENTITIES_FILE, path, "an identity must be a table")
                    continue
                roles = body.get("roles", [])
                if not isinstance(roles, list) or not all(
                    isinstance(r, str) and _TYPE_RE.match(r) for r in roles
                ):
                    self._problem(
                        IDENTITIES_FILE,
                        (*path, "roles"),
                        "roles must list role names ([a-z][a-z0-9_]{0,31})",
                    )
                    continue
                props = {k: v for k, v in body.items() if k != "roles"}
                out[(kind, ident)] = Identity(tuple(roles), props)
        return out

    def _resources(self, data: dict[str, Any]) -> dict[tuple[str, str], Mapping[str, object]]:
        out: dict[tuple[str, str], Mapping[str, object]] = {}
        for kind, entries in data.items():
            if not _TYPE_RE.match(kind) or not isinstance(entries, dict):
                self._problem(
                    RESOURCES_FILE,
                    (kind,),
                    f"[{kind}]: a resource type ([a-z][a-z0-9_]{{0,31}}) with one table per id",
                )
                continue
            for ident, body in entries.items():
                if not _good_id(ident) or not isinstance(body, dict):
                    self._problem(
                        RESOURCES_FILE,
                        (kind, ident),
                        f"{kind} {ident!r}: an id of 1-256 printable characters and a table",
                    )
                    continue
                out[(kind, ident)] = dict(body)
        return out


def _good_id(ident: str) -> bool:
    return 0 < len(ident) <= _MAX_ID and ident.isprintable() and not any(c.isspace() for c in ident)
