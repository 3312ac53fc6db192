"""Decision tables: given these grants, these requests must be allowed or denied.

``delegauth policy test`` runs every ``*.yaml`` file in ``policies/tests/``. Each
file is one table::

    name: invoices permission
    grants:                       # the fixtures: who holds what, in which area
      - {user: alice, area: shop, role: owner}
      - {user: bob, area: shop, permissions: [invoices]}
      - {user: carol, area: shop, permissions: all}
      - {user: erin, area: shop, bundle: billing}
    cases:
      - {user: bob, area: shop, allow: [invoice:read, invoice:pay], deny: rest}
      - {user: carol, area: shop, allow: all}
      - {user: dave, area: shop, deny: all}     # dave holds nothing: a non-member

A grant names a user and an area, and gives any of: ``role`` (``owner``, or a
custom role that has rules in policy.csv; a name or a list), ``permissions``
(``all`` or a list of catalogue names), ``bundle``/``bundles`` (catalogue bundles,
granted as their permissions). A case names a user and an area, and lists actions
(``type:action``) under ``allow`` and ``deny``. ``all`` stands for every action in
the catalogue as it is when the table runs, and ``deny: rest`` for every catalogue
action the case does not allow. ``note`` is free text, in grants and cases.

Fixture names (``alice``, ``shop``) become well-formed ids deterministically
(``user:u_…``, ``area:a_…``); a real id (``u_…``, ``a_…``) is used as it is.

A case may instead be an AuthZEN request, for policies whose requests are not
(user, area, type:action) — identities and properties, no areas::

    cases:
      - request: {subject: {type: user, id: CiRm…}, action: {name: can_update_todo},
                  resource: {type: todo, id: t1, properties: {ownerID: morty@…}}}
        decision: true

It is mapped as the service maps it (authzen.toml, identities.toml, resources.toml).

A grant may end (``valid_until``, an RFC 3339 time with an offset) and a case may be
decided at an instant (``at``, likewise; now by default, read once per run)::

    grants:
      - {user: tess, area: shop, permissions: [tickets], valid_until: "2030-01-01T00:00:00Z"}
    cases:
      - {user: tess, area: shop, at: "2029-12-31T23:59:59Z", allow: [ticket:read]}
      - {user: tess, area: shop, at: "2030-01-01T00:00:00Z", deny: all}

Every request is decided twice, by the Decider (the service's own path, with an
in-memory feed) and by plain Casbin (``build_enforcer``). A disagreement between
the two fails the case whatever the table expects.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from delegauth.domain.catalogue import ALL, Catalogue, CatalogueError
from delegauth.domain.expiry import parse_instant
from delegauth.domain.ids import (
    NAME_RE,
    PERM_ALL,
    ROLE_OWNER,
    SCOPE_SEP,
    casbin_perm,
    casbin_until,
    is_id,
)
from delegauth.domain.permission_bundles import PermissionBundle, load_bundles
from delegauth.errors import InvalidInput
from delegauth.policy.bundle import CATALOGUE_FILE, PolicyBundle, PolicyError, load_bundle
from delegauth.policy.casbin_engine import build_enforcer
from delegauth.policy.decider import Decider
from delegauth.policy.explain import explain
from delegauth.policy.mapping import resource_value
from delegauth.policy.memory_feed import MemoryPolicyFeed

__all__ = [
    "TABLES_DIR",
    "Failure",
    "TableReport",
    "TableResult",
    "fixture_area",
    "fixture_user",
    "run_tables",
]

TABLES_DIR = "tests"
_OWNER = "owner"
_REST = "rest"
_LINE = "__line__"
_TABLE_KEYS = {"name", "description", "grants", "cases"}
_GRANT_KEYS = {"user", "area", "role", "permissions", "bundle", "bundles", "valid_until", "note"}
_CASE_KEYS = {"user", "area", "resource", "at", "allow", "deny", "note", "request", "decision"}


# -- fixture names ---------------------------------------------------------------------


def _fixture_id(kind: str, name: object) -> str:
    if isinstance(name, str) and is_id(name, kind):
        return name
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(f"fixture name {name!r} must match [a-z][a-z0-9_]{{0,31}}")
    digest = hashlib.sha256(f"delegauth fixture {kind} {name}".encode()).digest()
    return f"{kind}_" + base64.b32encode(digest).decode("ascii").lower()[:26]


def fixture_user(name: str) -> str:
    """The Casbin subject a table's user name stands for: user:u_<26 chars>."""
    return "user:" + _fixture_id("u", name)


def fixture_area(name: str) -> str:
    """The Casbin domain a table's area name stands for: area:a_<26 chars>."""
    return "area:" + _fixture_id("a", name)


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    file: str
    line: int | None
    message: str
    detail: tuple[str, ...] = ()  # an explanation, one line each

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


@dataclass
class TableResult:
    file: str
    name: str
    cases: int = 0
    decisions: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class TableReport:
    tables: list[TableResult] = field(default_factory=list)
    errors: list[Failure] = field(default_factory=list)  # not tied to one table
    uncovered: list[str] = field(default_factory=list)  # e.g. "permission orders"

    @property
    def ok(self) -> bool:
        return bool(self.tables) and not self.errors and all(t.ok for t in self.tables)

    @property
    def failures(self) -> list[Failure]:
        return [*self.errors, *(f for t in self.tables for f in t.failures)]

    def lines(self, *, verbose: bool = False) -> list[str]:
        """A human-readable summary: failures with their explanations, then totals."""
        out: list[str] = [f"error: {e}" for e in self.errors]
        for table in self.tables:
            if verbose or not table.ok:
                state = "ok" if table.ok else f"{len(table.failures)} failed"
                out.append(
                    f"{table.file}: {table.name}: {table.cases} cases, "
                    f"{table.decisions} decisions: {state}"
                )
            for failure in table.failures:
                out.append(f"  FAIL {failure}")
                out.extend(f"       {line}" for line in failure.detail)
        if self.uncovered:
            out.append("warning: no table grants " + ", ".join(self.uncovered))
        decisions = sum(t.decisions for t in self.tables)
        failed = sum(not t.ok for t in self.tables)
        verdict = "ok" if self.ok else "FAILED"
        out.append(
            f"{len(self.tables)} tables, {sum(t.cases for t in self.tables)} cases, "
            f"{decisions} decisions, {failed} tables failed: {verdict}"
        )
        return out


# -- reading tables --------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records each mapping's line under ``__line__``."""


def _mapping_with_line(loader: _LineLoader, node: Any) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


class _TableError(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _line(item: object) -> int | None:
    return item.get(_LINE) if isinstance(item, dict) else None


def _require_mapping(item: object, what: str, keys: set[str], line: int | None) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _TableError(line, f"a {what} must be a mapping")
    unknown = sorted(k for k in item if k != _LINE and k not in keys)
    if unknown:
        raise _TableError(
            _line(item), f"unknown {what} key(s) {unknown} (expected {', '.join(sorted(keys))})"
        )
    return item


def _names(value: object, what: str, line: int | None) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise _TableError(line, f"{what} must be a name or a non-empty list of names")
    return list(items)


def _parse_action(text: object, line: int | None) -> tuple[str, str]:
    if isinstance(text, str) and text.count(":") == 1:
        obj, act = text.split(":")
        if NAME_RE.match(obj) and NAME_RE.match(act):
            return obj, act
    raise _TableError(line, f"action {text!r} must look like type:action")


@dataclass
class _Context:
    bundle: PolicyBundle
    catalogue: Catalogue
    bundles: dict[str, PermissionBundle]
    roles: frozenset[str]  # custom roles that have rules
    now: float  # the instant of cases without ``at`` (epoch seconds)
    covered: set[str] = field(default_factory=set)


def _instant(value: object, key: str, line: int | None) -> datetime:
    """An RFC 3339 time with an offset (YAML may hand over a datetime), as naive UTC."""
    try:
        return parse_instant(value, field=key)
    except InvalidInput as ex:
        raise _TableError(line, ex.detail) from ex


def _grant_roles(grant: dict[str, Any], ctx: _Context) -> list[str]:
    line = _line(grant)
    roles: list[str] = []
    if "role" in grant:
        for name in _names(grant["role"], "role", line):
            role = ROLE_OWNER if name == _OWNER else f"role:{name}"
            if role != ROLE_OWNER and (not NAME_RE.match(name) or role not in ctx.roles):
                raise _TableError(line, f"role {name!r} is neither owner nor a role with rules")
            roles.append(role)
            ctx.covered.add(_OWNER if role == ROLE_OWNER else role)
    if "permissions" in grant:
        value = grant["permissions"]
        if value == ALL:
            roles.append(PERM_ALL)
            ctx.covered.add(ALL)
        else:
            for name in _names(value, "permissions", line):
                if name == ALL:
                    raise _TableError(line, 'write permissions: all, not a list holding "all"')
                if SCOPE_SEP in name:  # on one resource: managedomains@example.com
                    try:
                        [(base, resource_id)] = ctx.catalogue.parse([name]).scoped
                    except InvalidInput as ex:
                        raise _TableError(line, ex.detail) from ex
                    roles.append(casbin_perm(base, resource_id))
                    ctx.covered.add(f"perm:{base}")
                    continue
                if name not in ctx.catalogue:
                    raise _TableError(line, f"unknown permission {name!r}")
                roles.append(f"perm:{name}")
                ctx.covered.add(f"perm:{name}")
    for key in ("bundle", "bundles"):
        if key in grant:
            for name in _names(grant[key], key, line):
                found = ctx.bundles.get(name)
                if found is None:
                    raise _TableError(line, f"unknown bundle {name!r}")
                roles.extend(f"perm:{p}" for p in found.permissions)
                ctx.covered.add(f"bundle:{name}")
    if not roles:
        raise _TableError(line, "a grant needs role, permissions or bundle")
    return roles


def _expand(
    value: object, line: int | None, catalogue: Catalogue, *, rest_of: set[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    if value == ALL:
        return catalogue.all_actions()
    if value == _REST and rest_of is not None:
        return [a for a in catalogue.all_actions() if a not in rest_of]
    if not isinstance(value, list) or not value:
        raise _TableError(line, "allow and deny take all, a list of type:action (deny: rest)")
    return [_parse_action(item, line) for item in value]


@dataclass(frozen=True)
class _Case:
    line: int | None
    user: str
    area: str
    subject: str
    domain: str
    expected: tuple[tuple[tuple[str, str], bool], ...]
    resource: str = ""  # the request's resource id (grants on single resources count there)
    at: float = 0.0  # the instant it is decided at (epoch seconds)


@dataclass(frozen=True)
class _RequestCase:
    line: int | None
    body: dict[str, Any]
    expected: bool
    at: float = 0.0


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _moment(at: float) -> str:
    """An instant as the tables write it: 2030-01-01T00:00:00Z."""
    return casbin_until(datetime.fromtimestamp(at, UTC).replace(tzinfo=None))


def _case_instant(case: dict[str, Any], ctx: _Context) -> float:
    if "at" not in case:
        return ctx.now
    return _instant(case["at"], "at", _line(case)).replace(tzinfo=UTC).timestamp()


def _parse_request_case(case: dict[str, Any], ctx: _Context) -> _RequestCase:
    line = _line(case)
    extra = sorted(k for k in case if k in ("user", "area", "allow", "deny"))
    if extra:
        raise _TableError(line, f"a request case takes request and decision, not {extra}")
    body, decision = _strip_lines(case["request"]), case.get("decision")
    if not isinstance(decision, bool):
        raise _TableError(line, "a request case needs decision: true or false")
    for name, keys in (("subject", ("type", "id")), ("action", ("name",)), ("resource", ("type",))):
        part = body.get(name) if isinstance(body, dict) else None
        if not isinstance(part, dict) or not all(isinstance(part.get(k), str) for k in keys):
            raise _TableError(line, f"request.{name} needs {', '.join(keys)} (strings)")
    return _RequestCase(line, body, decision, _case_instant(case, ctx))


def _parse_case(case: dict[str, Any], ctx: _Context) -> _Case | _RequestCase:
    line = _line(case)
    if "request" in case:
        return _parse_request_case(case, ctx)
    for key in ("user", "area"):
        if key not in case:
            raise _TableError(line, f"a case needs {key}")
    if "allow" not in case and "deny" not in case:
        raise _TableError(line, "a case needs allow or deny")
    try:
        subject, domain = fixture_user(case["user"]), fixture_area(case["area"])
    except InvalidInput as ex:
        raise _TableError(line, ex.detail) from ex
    allow = _expand(case["allow"], line, ctx.catalogue, rest_of=None) if "allow" in case else []
    deny = _expand(case["deny"], line, ctx.catalogue, rest_of=set(allow)) if "deny" in case else []
    both = sorted(set(allow) & set(deny))
    if both:
        raise _TableError(line, f"both allowed and denied: {', '.join(map(':'.join, both))}")
    expected = tuple(dict.fromkeys([(a, True) for a in allow] + [(a, False) for a in deny]))
    resource = case.get("resource", "")
    if not isinstance(resource, str):
        raise _TableError(line, "resource is a resource id (a string)")
    at = _case_instant(case, ctx)
    return _Case(
        line, str(case["user"]), str(case["area"]), subject, domain, expected, resource, at
    )


def _load_table(
    path: Path, ctx: _Context
) -> tuple[str, list[tuple[str, ...]], list[_Case | _RequestCase]]:
    try:
        data = yaml.load(path.read_text("utf-8"), Loader=_LineLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None)
        raise _TableError(mark.line + 1 if mark else None, f"not valid YAML: {ex}") from ex
    except (OSError, UnicodeDecodeError) as ex:
        raise _TableError(None, f"cannot be read: {ex}") from ex
    table = _require_mapping(data, "table", _TABLE_KEYS, 1)
    grants, cases = table.get("grants", []), table.get("cases")
    if not isinstance(grants, list):
        raise _TableError(_line(table), "grants must be a list")
    if not isinstance(cases, list) or not cases:
        raise _TableError(_line(table), "cases must be a non-empty list")
    g_lines: dict[tuple[str, ...], None] = {}
    for item in grants:
        grant = _require_mapping(item, "grant", _GRANT_KEYS, _line(table))
        for key in ("user", "area"):
            if key not in grant:
                raise _TableError(_line(grant), f"a grant needs {key}")
        try:
            subject, domain = fixture_user(grant["user"]), fixture_area(grant["area"])
        except InvalidInput as ex:
            raise _TableError(_line(grant), ex.detail) from ex
        end: tuple[str, ...] = ()
        if grant.get("valid_until") is not None:
            end = (casbin_until(_instant(grant["valid_until"], "valid_until", _line(grant))),)
        for role in _grant_roles(grant, ctx):
            g_lines[("g", subject, role, domain, *end)] = None
    parsed = [
        _parse_case(_require_mapping(item, "case", _CASE_KEYS, _line(table)), ctx) for item in cases
    ]
    members = {(g[1], g[3]) for g in g_lines}
    if any(isinstance(c, _Case) and (c.subject, c.domain) not in members for c in parsed):
        ctx.covered.add("non-member")
    return str(table.get("name") or path.stem), list(g_lines), parsed


# -- running ---------------------------------------------------------------------------


def _verdict(allowed: bool) -> str:
    return "allowed" if allowed else "denied"


def _engines(
    bundle: PolicyBundle, g_lines: list[tuple[str, ...]], at: float
) -> tuple[Any, Decider]:
    """Plain Casbin and the Decider over ``g_lines``, both deciding at ``at``."""
    enforcer = build_enforcer(bundle, g_lines, clock=lambda: at)
    decider = Decider(bundle, MemoryPolicyFeed(g_lines), monotonic=lambda: 0.0, clock=lambda: at)
    decider.sync()
    return enforcer, decider


def _run_table(path: Path, ctx: _Context) -> TableResult:
    result = TableResult(file=str(path), name=path.stem)
    try:
        result.name, g_lines, cases = _load_table(path, ctx)
        # One pair of engines per instant the cases are decided at: a Decider drops the
        # links of ended grants for good, so it never goes back in time.
        engines = {case.at: _engines(ctx.bundle, g_lines, case.at) for case in cases}
    except _TableError as ex:
        result.failures.append(Failure(str(path), ex.line, ex.message))
        return result
    except PolicyError as ex:
        result.failures.append(Failure(str(path), None, f"the engine refuses the grants: {ex}"))
        return result
    for case in cases:
        result.cases += 1
        enforcer, decider = engines[case.at]
        if isinstance(case, _RequestCase):
            _run_request_case(path, ctx, case, enforcer, decider, result)
            continue
        for (obj, act), expected in case.expected:
            result.decisions += 1
            try:
                casbin_says = bool(
                    enforcer.enforce(
                        case.subject, case.domain, resource_value(obj, case.resource), act
                    )
                )
            except Exception as ex:  # noqa: BLE001 - pycasbin raises bare exceptions
                result.failures.append(
                    Failure(str(path), case.line, f"Casbin cannot decide {obj}:{act}: {ex}")
                )
                continue
            decider_says = decider.decide(case.subject, case.domain, obj, act, case.resource)
            who = f"{case.user} in {case.area}: {obj}:{act}"
            if case.resource:
                who += f" on {case.resource}"
            if case.at != ctx.now:
                who += f" at {_moment(case.at)}"
            if decider_says != casbin_says:
                message = (
                    f"{who}: the Decider and Casbin disagree (Decider {_verdict(decider_says)}, "
                    f"Casbin {_verdict(casbin_says)})"
                )
            elif casbin_says != expected:
                message = f"{who} should be {_verdict(expected)}, was {_verdict(casbin_says)}"
            else:
                continue
            why = explain(
                ctx.bundle,
                g_lines,
                case.subject,
                case.domain,
                obj,
                act,
                case.resource,
                at=datetime.fromtimestamp(case.at, UTC).replace(tzinfo=None),
            )
            result.failures.append(Failure(str(path), case.line, message, tuple(why.lines())))
    return result


def _run_request_case(
    path: Path,
    ctx: _Context,
    case: _RequestCase,
    enforcer: Any,
    decider: Decider,
    result: TableResult,
) -> None:
    result.decisions += 1
    try:
        question = ctx.bundle.mapping.question(case.body)
    except InvalidInput as ex:
        result.failures.append(
            Failure(str(path), case.line, f"the request is refused: {ex.detail}")
        )
        return
    if isinstance(question, str):
        casbin_says = decider_says = False
        why: tuple[str, ...] = (question,)
    else:
        try:
            casbin_says = bool(enforcer.enforce(*question.values))
        except Exception as ex:  # noqa: BLE001 - pycasbin raises bare exceptions
            result.failures.append(Failure(str(path), case.line, f"Casbin cannot decide: {ex}"))
            return
        decider_says = decider.decide_question(question)
        why = (f"asked Casbin: {', '.join(map(str, question.values))}",)
    subject, resource = case.body["subject"], case.body["resource"]
    who = f"{subject['type']} {subject['id']}: {case.body['action']['name']} on {resource['type']}"
    if case.at != ctx.now:
        who += f" at {_moment(case.at)}"
    if decider_says != casbin_says:
        message = (
            f"{who}: the Decider and Casbin disagree (Decider {_verdict(decider_says)}, "
            f"Casbin {_verdict(casbin_says)})"
        )
    elif casbin_says != case.expected:
        message = f"{who} should be {_verdict(case.expected)}, was {_verdict(casbin_says)}"
    else:
        return
    result.failures.append(Failure(str(path), case.line, message, why))


def _table_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def run_tables(policies_dir: str | Path, tables_dir: str | Path | None = None) -> TableReport:
    """Run the decision tables in ``tables_dir`` (default: policies_dir/tests)."""
    report = TableReport()
    root = Path(policies_dir)
    directory = Path(tables_dir) if tables_dir is not None else root / TABLES_DIR
    try:
        bundle = load_bundle(root)
        bundles = load_bundles(root / CATALOGUE_FILE, bundle.catalogue)
    except (PolicyError, CatalogueError) as ex:
        report.errors.append(Failure(str(root), None, f"the policies do not load: {ex}"))
        return report
    files = _table_files(directory)
    if not files:
        report.errors.append(Failure(str(directory), None, "no decision tables (*.yaml)"))
        return report
    custom_roles = frozenset(
        line[1] for line in bundle.p_lines if line[1].startswith("role:") and line[1] != ROLE_OWNER
    )
    ctx = _Context(bundle, bundle.catalogue, bundles, custom_roles, now=float(int(time.time())))
    report.tables = [_run_table(path, ctx) for path in files]
    # Without domains nothing is granted in areas: the catalogue only names actions.
    report.uncovered = _uncovered(ctx) if bundle.mapping.domain != "none" else []
    return report


def _uncovered(ctx: _Context) -> list[str]:
    wanted: Iterable[tuple[str, str]] = [
        *((f"perm:{name}", f"permission {name}") for name in ctx.catalogue.names()),
        (ALL, f'"{ALL}"'),
        (_OWNER, "owner"),
        *((f"bundle:{name}", f"bundle {name}") for name in ctx.bundles),
        ("non-member", "a non-member (a case whose user holds nothing in its area)"),
    ]
    return [label for key, label in wanted if key not in ctx.covered]
