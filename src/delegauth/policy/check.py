"""Validate a policies directory before it is deployed: ``delegauth policy check``.

Casbin forgives too much (../shared/DESIGN.md, "Casbin field notes"): it ignores
unknown sections and keys in the model, drops policy lines whose type the model
lacks, splits quoted fields on commas and nests brackets. Each of those turns a
typo into a silently different policy, so this module reads the files line by
line, reports every problem as ``file:line: error: message``, and then asks the
real engines a few probe questions:

- every catalogue permission, granted in an area, allows its own actions;
- the owner and "all" may do every catalogue action;
- a user without a grant in the area may do nothing;
- the decision index (the Decider's fast path) agrees with Casbin on all of that.

Errors make the directory unfit to deploy; warnings do not. The check reads a
PolicySnapshot (bundle.py), never the files themselves: the service installs the
very snapshot it checked (``checked_bundle``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from delegauth.domain.catalogue import (
    ALL,
    SUPPORTED_LOCALES,
    Catalogue,
    CatalogueError,
    load_catalogue,
    loads_catalogue,
    parse_catalogue,
)
from delegauth.domain.ids import NAME_RE, PERM_ALL, ROLE_OWNER, is_casbin_name, is_id
from delegauth.domain.permission_bundles import parse_bundles
from delegauth.errors import DelegauthError
from delegauth.policy.bundle import (
    CATALOGUE_FILE,
    EXTRA_POLICY_FILE,
    MODEL_FILE,
    PolicyBundle,
    PolicyError,
    PolicySnapshot,
    bundle_from_snapshot,
    catalogue_p_lines,
    read_snapshot,
)
from delegauth.policy.casbin_engine import build_enforcer, parse_model
from delegauth.policy.decider import Decider
from delegauth.policy.index import supports_fast_path
from delegauth.policy.mapping import (
    IDENTITIES_FILE,
    MAPPING_FILE,
    PROPERTY_KINDS,
    REQUEST_TOKENS,
    RESOURCES_FILE,
    RequestMapping,
    parse_mapping,
    resource_value,
)
from delegauth.policy.memory_feed import MemoryPolicyFeed
from delegauth.policy.sources import toml_line
from delegauth.policy.tables import TABLES_DIR, fixture_area, fixture_user

__all__ = ["ERROR", "WARNING", "Diagnostic", "check_directory", "check_snapshot", "checked_bundle"]

ERROR = "error"
WARNING = "warning"

_SECTIONS = {
    "request_definition": "r",
    "policy_definition": "p",
    "role_definition": "g",
    "policy_effect": "e",
    "matchers": "m",
}
_SECTION_OF = {letter: name for name, letter in _SECTIONS.items()}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_KEY = re.compile(r"^([a-z])(\d*)$")
# Functions that make p-line fields patterns instead of names.
_PATTERN_FUNCS = re.compile(
    r"\b(keyMatch\d*|keyGet\d*|regexMatch|globMatch|ipMatch|timeMatch)\s*\(", re.IGNORECASE
)
_KNOWN_FILES = {
    MODEL_FILE,
    CATALOGUE_FILE,
    EXTRA_POLICY_FILE,
    MAPPING_FILE,
    IDENTITIES_FILE,
    RESOURCES_FILE,
    TABLES_DIR,
    "README.md",
    "examples",
}
# r.<field>.<property> in a matcher (after escaping, r_<field>.<property> too).
_PROPERTY_READ = re.compile(r"\br[._](sub|dom|obj|act|ctx)\.([A-Za-z_]\w*)")
_PERMISSION_KEYS = {"group", "label", "description", "actions", "scoped"}
_BUNDLE_KEYS = {"label", "description", "permissions"}
_MAX_EXAMPLES = 3

# Finds the line of a catalogue table or key: at("permissions", name, "actions").
_At = Callable[..., int | None]


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int | None
    severity: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


def check_directory(path: str | Path) -> list[Diagnostic]:
    """Every problem found in the policies directory at ``path``, in file order."""
    return list(check_snapshot(read_snapshot(path)))


def check_snapshot(snapshot: PolicySnapshot) -> tuple[Diagnostic, ...]:
    """Every problem found in ``snapshot``, in file order."""
    unread = [
        Diagnostic(str(snapshot.root / name), None, WARNING, "delegauth does not read this file")
        for name in snapshot.entries
        if name not in _KNOWN_FILES and not name.startswith(".")
    ]
    found = unread + list(_check_files(dataclasses.replace(snapshot, entries=())))
    return tuple(sorted(found, key=lambda d: (d.file, d.line or 0)))


@functools.lru_cache(maxsize=16)
def _check_files(snapshot: PolicySnapshot) -> tuple[Diagnostic, ...]:
    """The problems in the policy files. They depend on the files' bytes alone, so they
    are remembered: the probes cost most of a second, every worker (and test) starts
    from the same files, and a reload back to a version seen before is checked at once."""
    return tuple(_Checker(snapshot).run())


def checked_bundle(snapshot: PolicySnapshot) -> PolicyBundle:
    """The bundle of ``snapshot`` if it passes the check; PolicyError listing why not."""
    errors = [d for d in check_snapshot(snapshot) if d.severity == ERROR]
    if errors:
        shown = "; ".join(str(d) for d in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise PolicyError(f"{len(errors)} error(s) in {snapshot.root}: {shown}{more}")
    return bundle_from_snapshot(snapshot)


def check_held(path: str | Path, held: Mapping[str, int]) -> list[Diagnostic]:
    """Warn about roles still held in grants (role name -> grant count) that the policy
    no longer defines: decisions deny them, which a rollout should do on purpose."""
    file = str(Path(path) / "catalogue.toml")
    try:
        catalogue = load_catalogue(file)
    except CatalogueError:
        return []  # check_directory reports why
    out = []
    for role, count in sorted(held.items()):
        name = role.removeprefix("perm:")
        if role.startswith("perm:") and name != "all" and name not in catalogue:
            out.append(
                Diagnostic(
                    file,
                    None,
                    WARNING,
                    f"permission {name!r} is held by {count} grant(s) but is not in the "
                    "catalogue: decisions deny it",
                )
            )
    return out


def _without_scoped_call(matcher: str) -> str:
    """The matcher without the g call that honours grants on single resources,
    g(r.sub, p.sub + "@" + r.obj.id, r.dom): it too reads r.sub only through g."""
    return matcher.replace('g(r.sub,p.sub+"@"+r.obj.id,r.dom)', "")


@dataclass
class _Model:
    """What the model defines: section letter -> key -> (value, line)."""

    defs: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    header_lines: dict[str, int] = field(default_factory=dict)

    def get(self, sec: str, key: str | None = None) -> tuple[str, int] | None:
        return self.defs.get(sec, {}).get(key or sec)

    def line_of(self, sec: str, key: str | None = None) -> int | None:
        found = self.get(sec, key)
        if found is not None:
            return found[1]
        return self.header_lines.get(sec)

    def tokens(self, sec: str, key: str | None = None) -> list[str]:
        found = self.get(sec, key)
        return [] if found is None else [t.strip() for t in found[0].split(",")]


class _Checker:
    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot
        self.root = snapshot.root
        self.diagnostics: list[Diagnostic] = []
        self._model = _Model()
        # Attribute matchers (keyMatch2, regexMatch...): rule fields are patterns, decided by
        # Casbin's own enforcer per area instead of the decision index.
        self._patterns = False
        self._mapping: RequestMapping | None = None
        # A model without domains (authzen.toml: [domain] from = "none"): no grants from
        # the database, no catalogue rules, no area probes.
        self._general = False

    # -- reporting -------------------------------------------------------------------

    def _file(self, name: str) -> str:
        return str(self.root / name)

    def error(self, name: str, line: int | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(self._file(name), line, ERROR, message))

    def warning(self, name: str, line: int | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(self._file(name), line, WARNING, message))

    def _errors(self) -> int:
        return sum(d.severity == ERROR for d in self.diagnostics)

    # -- the run ---------------------------------------------------------------------

    def run(self) -> list[Diagnostic]:
        if not self.snapshot.is_dir:
            self.diagnostics.append(
                Diagnostic(str(self.root), None, ERROR, "not a directory of policies")
            )
            return self.diagnostics
        self._mapping = self._check_mapping()
        self._general = self._mapping is not None and self._mapping.domain == "none"
        model = self._check_model()
        catalogue = self._check_catalogue()
        self._check_policy_csv(model, catalogue)
        if self._errors() == 0 and catalogue is not None:
            if self._general:
                self._probe_general(model)
            else:
                self._probe(model, catalogue)
        return sorted(self.diagnostics, key=lambda d: (d.file, d.line or 0))

    # -- authzen.toml, identities.toml, resources.toml -------------------------------

    def _check_mapping(self) -> RequestMapping | None:
        texts = []
        for name in (MAPPING_FILE, IDENTITIES_FILE, RESOURCES_FILE):
            lines = self._read(name, required=False)
            texts.append(None if lines is None else "\n".join(lines))
        mapping, problems = parse_mapping(*texts)
        for problem in problems:
            self.error(problem.file, problem.line, problem.message)
        return None if problems else mapping

    # -- model.conf ------------------------------------------------------------------

    def _read(self, name: str, *, required: bool) -> list[str] | None:
        problem = self.snapshot.problem(name)
        if problem is not None:
            self.error(name, None, f"cannot be read: {problem}")
            return None
        data = self.snapshot.data(name)
        if data is None:
            if required:
                self.error(name, None, "missing")
            return None
        try:
            return data.decode("utf-8").splitlines()
        except UnicodeDecodeError as ex:
            self.error(name, None, f"cannot be read: {ex}")
            return None

    def _model_entries(self, lines: list[str]) -> Iterable[tuple[str, str, int]]:
        """(section, text, first line) of each definition, as Casbin's config reader sees
        them: '#' and ';' start comments, a trailing backslash continues a line."""
        section = ""
        buf: list[str] = []
        start = 0
        for lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line[0] in "#;":
                if buf:
                    yield section, "".join(buf), start
                    buf = []
                continue
            if line.startswith("[") and line.endswith("]"):
                if buf:
                    yield section, "".join(buf), start
                    buf = []
                section = line[1:-1]
                if section not in _SECTIONS:
                    self.error(
                        MODEL_FILE,
                        lineno,
                        f"unknown section [{section}]: Casbin ignores it and everything in it "
                        f"(sections: {', '.join(_SECTIONS)})",
                    )
                elif _SECTIONS[section] in self._model.header_lines:
                    self.error(MODEL_FILE, lineno, f"section [{section}] appears twice")
                else:
                    self._model.header_lines[_SECTIONS[section]] = lineno
                continue
            if not buf:
                start = lineno
            if line.endswith("\\"):
                buf.append(line[:-1].strip() + " ")
            else:
                buf.append(line)
                yield section, "".join(buf), start
                buf = []
        if buf:
            yield section, "".join(buf), start

    def _check_model(self) -> _Model | None:
        self._model = _Model()
        lines = self._read(MODEL_FILE, required=True)
        if lines is None:
            return None
        model = self._model
        before = self._errors()
        for section, text, lineno in self._model_entries(lines):
            if section not in _SECTIONS:
                if section == "":
                    self.error(MODEL_FILE, lineno, "definition outside any section")
                continue
            letter = _SECTIONS[section]
            if "=" not in text:
                self.error(MODEL_FILE, lineno, f"expected 'key = value', got {text!r}")
                continue
            key, value = (part.strip() for part in text.split("=", 1))
            if not re.match(r"^\w+$", key):
                self.error(MODEL_FILE, lineno, f"expected 'key = value', got {text!r}")
                continue
            m = _KEY.match(key)
            if m is None or m.group(1) != letter or m.group(2) in ("0", "1"):
                self.error(
                    MODEL_FILE,
                    lineno,
                    f"key {key!r} in [{section}]: Casbin reads only {letter}, {letter}2, "
                    f"{letter}3, … and ignores anything else",
                )
                continue
            if not value:
                self.error(MODEL_FILE, lineno, f"{key} has no value: Casbin stops reading here")
                continue
            if key in model.defs.get(letter, {}):
                self.error(MODEL_FILE, lineno, f"{key} is defined twice; Casbin keeps the last")
            model.defs.setdefault(letter, {})[key] = (value, lineno)
        for letter, keys in model.defs.items():
            for key in keys:
                n = _KEY.match(key)
                index = int(n.group(2) or 1) if n else 1
                if index > 1 and (letter if index == 2 else f"{letter}{index - 1}") not in keys:
                    self.error(
                        MODEL_FILE,
                        keys[key][1],
                        f"{key} follows a missing {letter}{index - 1 if index > 2 else ''}: "
                        "Casbin stops at the first missing key and ignores it",
                    )
        for letter in ("r", "p", "g", "e", "m"):
            if model.get(letter) is None:
                self.error(
                    MODEL_FILE,
                    model.header_lines.get(letter),
                    f"[{_SECTION_OF[letter]}] needs '{letter} = …'",
                )
        self._check_definitions(model)
        if self._errors() > before:
            return model
        try:
            parsed = parse_model("\n".join(lines) + "\n")
        except PolicyError as ex:
            self.error(MODEL_FILE, None, str(ex))
            return model
        sections = {
            sec: {k: ast.value for k, ast in parsed.model[sec].items()} for sec in parsed.model
        }
        if not supports_fast_path(sections):
            self.warning(
                MODEL_FILE,
                model.line_of("m"),
                "the model is not the RBAC-with-domains shape the decision index implements: "
                "each area gets its own Casbin engine, which scans every p line per decision",
            )
        return model

    def _check_definitions(self, model: _Model) -> None:
        if self._general:
            self._check_general_definitions(model)
            return
        self._check_property_reads(model)
        for letter in ("r", "p"):
            found = model.get(letter)
            if found is None:
                continue
            value, lineno = found
            if "#" in value:
                self.error(
                    MODEL_FILE, lineno, f"inline comment in {letter}: Casbin keeps it as a field"
                )
            tokens = model.tokens(letter)
            bad = [t for t in tokens if not _IDENT.match(t)]
            if bad:
                self.error(MODEL_FILE, lineno, f"{letter} has invalid field names: {bad}")
        r_tokens = model.tokens("r")
        if model.get("r") and len(r_tokens) != 4:
            self.error(
                MODEL_FILE,
                model.line_of("r"),
                f"r has {len(r_tokens)} fields: delegauth asks (subject, area, resource type, "
                "action), so r must have 4, e.g. r = sub, dom, obj, act",
            )
        p_tokens = model.tokens("p")
        if model.get("p") and len(p_tokens) != 4:
            self.error(
                MODEL_FILE,
                model.line_of("p"),
                f"p has {len(p_tokens)} fields, but the p lines generated from the catalogue "
                "have 4 (subject, domain, resource type, action): Casbin would report "
                "'invalid policy size' on every decision",
            )
        g = model.get("g")
        if g is not None and [t.strip() for t in g[0].split(",")] not in (
            ["_", "_", "_"],
            ["_", "_", "_", "(_)"],
        ):
            self.error(
                MODEL_FILE,
                g[1],
                "grants are stored as 'g, user:<id>, <role>, area:<id>[, <end>]': "
                "the role definition must be g = _, _, _, (_) (or g = _, _, _ without ends)",
            )
        matcher = model.get("m")
        if matcher is None or len(r_tokens) != 4 or len(p_tokens) != 4:
            return
        value, lineno = matcher
        norm = re.sub(r"\s+", "", value.split("#", 1)[0])
        norm = re.sub(r"\b([rp])_", r"\1.", norm)
        rsub, rdom, psub = f"r.{r_tokens[0]}", f"r.{r_tokens[1]}", f"p.{p_tokens[0]}"
        call = f"g({rsub},{psub},{rdom})"
        if call not in norm:
            self.error(
                MODEL_FILE,
                lineno,
                f"the matcher never calls g({rsub}, {psub}, {rdom}): "
                "grants (g lines in an area) would not count",
            )
        elif re.search(re.escape(rsub) + r"\b", _without_scoped_call(norm.replace(call, ""))):
            self.error(
                MODEL_FILE,
                lineno,
                f"the matcher reads {rsub} outside g({rsub}, {psub}, {rdom}): a request "
                "subject could match a rule's subject (a role name) directly",
            )
        func = _PATTERN_FUNCS.search(value)
        if func:
            self._patterns = True
            self.warning(
                MODEL_FILE,
                lineno,
                f"the matcher calls {func.group(1)}(): rule fields match requests as patterns "
                "(one stray wildcard widens a rule), and decisions use Casbin's enforcer per "
                "area instead of the decision index",
            )

    def _check_general_definitions(self, model: _Model) -> None:
        """A model without domains, fed by the request mapping (authzen.toml)."""
        r_tokens = model.tokens("r")
        if model.get("r"):
            unknown = [t for t in r_tokens if t not in REQUEST_TOKENS or t == "dom"]
            if unknown or not {"sub", "obj", "act"} <= set(r_tokens):
                self.error(
                    MODEL_FILE,
                    model.line_of("r"),
                    f'with [domain] from = "none" ({MAPPING_FILE}) the request is built from '
                    "sub, obj, act and optionally ctx: r = sub, obj, act",
                )
        g = model.get("g")
        if g is not None and [t.strip() for t in g[0].split(",")] != ["_", "_"]:
            self.error(
                MODEL_FILE,
                g[1],
                "without domains roles are 'g, <subject>, role:<name>': g = _, _",
            )
        self._check_property_reads(model)
        matcher = model.get("m")
        if matcher is None:
            return
        value, lineno = matcher
        norm = re.sub(r"\s+", "", value.split("#", 1)[0])
        norm = re.sub(r"\b([rp])_", r"\1.", norm)
        bare = re.sub(r"\br\.sub\.\w+", "", norm.replace("g(r.sub,", "g("))
        if re.search(r"\br\.sub\b", bare):
            self.error(
                MODEL_FILE,
                lineno,
                "the matcher reads r.sub outside g(r.sub, p.sub): a request subject could "
                "match a rule's subject (a role name) directly",
            )
        func = _PATTERN_FUNCS.search(value)
        if func:
            self._patterns = True
            self.warning(
                MODEL_FILE,
                lineno,
                f"the matcher calls {func.group(1)}(): rule fields match requests as patterns "
                "(one stray wildcard widens a rule)",
            )

    def _check_property_reads(self, model: _Model) -> None:
        """Every r.<field>.<property> the matcher reads is declared in authzen.toml."""
        matcher = model.get("m")
        if matcher is None or self._mapping is None:
            return
        value, lineno = matcher
        kinds = {token: kind for kind, token in PROPERTY_KINDS.items()}
        for token, prop in sorted(set(_PROPERTY_READ.findall(value))):
            kind = kinds.get(token)
            if kind is None:
                self.error(MODEL_FILE, lineno, f"r.{token} has no properties")
            elif prop not in ("id", "type", "name") and prop not in self._mapping.properties.get(
                kind, ()
            ):
                self.error(
                    MODEL_FILE,
                    lineno,
                    f"the matcher reads r.{token}.{prop}, which {MAPPING_FILE} does not "
                    f"declare: add it to [properties] {kind}",
                )

    # -- catalogue.toml --------------------------------------------------------------

    def _check_catalogue(self) -> Catalogue | None:
        lines = self._read(CATALOGUE_FILE, required=True)
        if lines is None:
            return None
        try:
            data = tomllib.loads("\n".join(lines))
        except tomllib.TOMLDecodeError as ex:
            m = re.search(r"at line (\d+)", str(ex))
            self.error(CATALOGUE_FILE, int(m.group(1)) if m else None, f"not valid TOML: {ex}")
            return None
        before = self._errors()

        def at(*path: str) -> int | None:
            return toml_line(lines, path)

        for key in data:
            if key not in ("permissions", "bundles"):
                self.warning(
                    CATALOGUE_FILE,
                    at(key),
                    f"unknown table {key!r}: delegauth reads only [permissions.NAME] and "
                    "[bundles.NAME]",
                )
        perms = data.get("permissions")
        if not isinstance(perms, dict) or not perms:
            self.error(CATALOGUE_FILE, at("permissions"), "needs [permissions.NAME] tables")
            return None
        for name, body in perms.items():
            self._check_permission(name, body, at)
        bundles = data.get("bundles", {})
        if not isinstance(bundles, dict):
            self.error(CATALOGUE_FILE, at("bundles"), "bundles must be [bundles.NAME] tables")
            bundles = {}
        seen_sets: dict[frozenset[str], str] = {}
        for name, body in bundles.items():
            names = self._check_bundle(name, body, perms, at)
            if names:
                if names in seen_sets:
                    self.warning(
                        CATALOGUE_FILE,
                        at("bundles", name),
                        f"bundle {name!r} grants the same permissions as {seen_sets[names]!r}",
                    )
                seen_sets.setdefault(names, name)
        if self._errors() > before:
            return None
        # The loaders are what the service runs: they must accept what passed above.
        try:
            catalogue = parse_catalogue(data)
            parse_bundles(data, catalogue)
            loads_catalogue(self.snapshot.data(CATALOGUE_FILE) or b"", self._file(CATALOGUE_FILE))
        except (CatalogueError, DelegauthError) as ex:
            self.error(CATALOGUE_FILE, None, str(ex))
            return None
        return catalogue

    def _check_labels(self, body: dict[str, object], where: str, at_key: int | None) -> None:
        labels = body.get("label")
        if labels is None:
            self.error(CATALOGUE_FILE, at_key, f"{where}: label is missing (en and es)")
        elif not isinstance(labels, dict):
            self.error(CATALOGUE_FILE, at_key, f"{where}: label must be a table of locales")
        else:
            for loc in SUPPORTED_LOCALES:
                text = labels.get(loc)
                if not isinstance(text, str) or not text.strip():
                    self.error(CATALOGUE_FILE, at_key, f"{where}: label.{loc} is missing")
        descriptions = body.get("description")
        if descriptions is None:
            self.warning(CATALOGUE_FILE, at_key, f"{where}: no description")
        elif not isinstance(descriptions, dict) or not all(
            isinstance(v, str) for v in descriptions.values()
        ):
            self.error(CATALOGUE_FILE, at_key, f"{where}: description must be a table of texts")
        else:
            for loc in SUPPORTED_LOCALES:
                if not descriptions.get(loc):
                    self.warning(CATALOGUE_FILE, at_key, f"{where}: description.{loc} is missing")

    def _check_name(self, kind: str, name: str, line: int | None) -> bool:
        if name == ALL:
            self.error(
                CATALOGUE_FILE,
                line,
                f"{kind} name '{ALL}' is reserved: \"all\" is a grant of its own",
            )
            return False
        if not NAME_RE.match(name):
            self.error(CATALOGUE_FILE, line, f"{kind} name {name!r} {_name_problem(name)}")
            return False
        return True

    def _check_permission(self, name: str, body: object, at: _At) -> None:
        where = f"permissions.{name}"
        line = at("permissions", name)
        self._check_name("permission", name, line)
        if not isinstance(body, dict):
            self.error(CATALOGUE_FILE, line, f"{where} must be a table")
            return
        for key in body:
            if key not in _PERMISSION_KEYS:
                self.warning(
                    CATALOGUE_FILE,
                    at("permissions", name, key),
                    f"{where}: unknown key {key!r} "
                    f"(expected {', '.join(sorted(_PERMISSION_KEYS))})",
                )
        self._check_labels(body, where, at("permissions", name, "label"))
        if "group" in body and not (
            isinstance(body["group"], str) and NAME_RE.match(body["group"])
        ):
            self.error(CATALOGUE_FILE, at("permissions", name, "group"), f"{where}: bad group")
        actions = body.get("actions")
        actions_line = at("permissions", name, "actions")
        if not isinstance(actions, list) or not actions:
            self.error(CATALOGUE_FILE, actions_line, f"{where}: actions must be a non-empty list")
            return
        seen: set[str] = set()
        for action in actions:
            problem = _action_problem(action)
            if problem:
                self.error(CATALOGUE_FILE, actions_line, f"{where}: action {action!r} {problem}")
            elif action in seen:
                self.warning(CATALOGUE_FILE, actions_line, f"{where}: {action} is listed twice")
            seen.add(str(action))
        scoped = body.get("scoped", False)
        scoped_line = at("permissions", name, "scoped")
        if not isinstance(scoped, bool):
            self.error(CATALOGUE_FILE, scoped_line, f"{where}: scoped must be true or false")
        elif scoped and len({a.split(":", 1)[0] for a in seen}) > 1:
            self.error(
                CATALOGUE_FILE,
                scoped_line,
                f"{where}: a scoped permission's actions must all act on one resource type "
                "(its grants name resource ids of that type)",
            )

    def _check_bundle(
        self, name: str, body: object, perms: dict[str, object], at: _At
    ) -> frozenset[str]:
        where = f"bundles.{name}"
        line = at("bundles", name)
        self._check_name("bundle", name, line)
        if name in perms:
            self.error(CATALOGUE_FILE, line, f"bundle {name!r} has the name of a permission")
        if not isinstance(body, dict):
            self.error(CATALOGUE_FILE, line, f"{where} must be a table")
            return frozenset()
        for key in body:
            if key not in _BUNDLE_KEYS:
                self.warning(
                    CATALOGUE_FILE,
                    at("bundles", name, key),
                    f"{where}: unknown key {key!r} (expected {', '.join(sorted(_BUNDLE_KEYS))})",
                )
        self._check_labels(body, where, at("bundles", name, "label"))
        names = body.get("permissions")
        names_line = at("bundles", name, "permissions")
        if not isinstance(names, list) or not names:
            self.error(CATALOGUE_FILE, names_line, f"{where}: permissions must be a non-empty list")
            return frozenset()
        seen: set[str] = set()
        for item in names:
            if item == ALL:
                self.error(
                    CATALOGUE_FILE,
                    names_line,
                    f"{where}: '{ALL}' is a grant of its own and cannot be in a bundle",
                )
            elif not isinstance(item, str) or item not in perms:
                shown = item if isinstance(item, str) else repr(item)
                self.error(CATALOGUE_FILE, names_line, f"{where}: unknown permission {shown!r}")
            elif item in seen:
                self.warning(CATALOGUE_FILE, names_line, f"{where}: {item} is listed twice")
            seen.add(str(item))
        return frozenset(seen)

    # -- policy.csv ------------------------------------------------------------------

    def _check_policy_csv(self, model: _Model | None, catalogue: Catalogue | None) -> None:
        lines = self._read(EXTRA_POLICY_FILE, required=False)
        if lines is None:
            return
        generated: dict[tuple[str, ...], None] = {}
        if catalogue is not None and not self._general:
            generated = dict.fromkeys(catalogue_p_lines(catalogue))
        seen: dict[tuple[str, ...], int] = {}
        for lineno, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            fields = tuple(f.strip() for f in text.split(","))
            if self._check_rule(lineno, text, fields, model, catalogue):
                if fields in seen:
                    self.warning(
                        EXTRA_POLICY_FILE, lineno, f"repeats line {seen[fields]}: drop one"
                    )
                elif fields in generated:
                    self.warning(
                        EXTRA_POLICY_FILE,
                        lineno,
                        "the catalogue already generates this rule: drop it",
                    )
                seen.setdefault(fields, lineno)

    def _check_rule(
        self,
        lineno: int,
        text: str,
        fields: tuple[str, ...],
        model: _Model | None,
        catalogue: Catalogue | None,
    ) -> bool:
        """Report what is wrong with one policy.csv line; True when it is a usable rule."""

        def err(message: str) -> bool:
            self.error(EXTRA_POLICY_FILE, lineno, message)
            return False

        if '"' in text or "'" in text:
            return err(
                "quotes are not honoured: Casbin keeps them in the field and still splits "
                "at every comma; names never need quoting"
            )
        if any(c in text for c in "[]()"):
            return err(
                "brackets: Casbin's policy reader nests them and no longer splits at the "
                "commas inside, so the line would not mean what it shows"
            )
        ptype = fields[0]
        if not _KEY.match(ptype):
            return err(f"{ptype!r} is not a rule type")
        sec = ptype[0]
        if sec == "g":
            return err(
                "grants (g lines) live in the database and change through the API; "
                f"{EXTRA_POLICY_FILE} holds only p lines"
            )
        if model is not None and ptype not in model.defs.get(sec, {}):
            return err(
                f"rule type {ptype!r} is not defined by the model: Casbin would drop this "
                "line silently"
            )
        if ptype != "p":
            return err(f"{ptype!r} lines are never consulted: decisions use p lines only")
        values = fields[1:]
        expected = len(model.tokens("p")) if model is not None and model.get("p") else 4
        if len(values) != expected:
            return err(
                f"{len(values)} fields after 'p', the model's p has {expected}: Casbin would "
                "fail every decision with 'invalid policy size'"
            )
        if self._general:
            if any(not v for v in values):
                return err("empty field")
            sub = values[0]
            if not (sub.startswith("role:") and NAME_RE.match(sub[len("role:") :])):
                return err(
                    f"subject {sub!r} must be role:<name>: identities get roles in "
                    f"{IDENTITIES_FILE}, and a rule naming a subject would match it directly"
                )
            return True
        if len(values) != 4:
            return False
        sub, dom, obj, act = values
        ok = True
        for what, value in (("subject", sub), ("domain", dom), ("type", obj), ("action", act)):
            if not value:
                ok = err(f"empty {what}")
        if not ok:
            return False
        if self._patterns:
            return self._check_pattern_rule(lineno, sub, dom, obj, act, catalogue)
        if "*" in sub or "*" in obj or "*" in act or ("*" in dom and dom != "*"):
            return err(
                "stray wildcard: the matcher compares names with ==, so '*' is only allowed "
                "as the whole domain (every area); list types and actions one by one"
            )
        if not is_casbin_name(sub):
            ok = err(f"subject {sub!r} is not perm:<name> or role:<name>")
        elif sub.startswith("user:"):
            ok = err(
                "a p line naming a user lets that request subject match the rule directly, "
                "without any grant in the area: grant the user a permission or role instead"
            )
        elif sub.startswith("area:"):
            ok = err("an area is not a subject: p lines name permissions and roles")
        elif sub.startswith("perm:") and catalogue is not None:
            name = sub[len("perm:") :]
            if name != ALL and name not in catalogue:
                ok = err(f"unknown permission {name!r}: it is not in {CATALOGUE_FILE}")
        if dom != "*" and not (dom.startswith("area:") and is_id(dom[len("area:") :], "a")):
            ok = err(f"domain {dom!r} must be '*' (every area) or area:a_<26 chars of a-z2-7>")
        for what, value in (("type", obj), ("action", act)):
            if not NAME_RE.match(value):
                ok = err(f"{what} {value!r} {_name_problem(value)}")
        if not ok or catalogue is None:
            return ok
        if (obj, act) not in catalogue.all_actions():
            return err(
                f"{obj}:{act} is in no catalogue permission, so neither the owner nor 'all' "
                f"would cover it: add it to a permission in {CATALOGUE_FILE} first"
            )
        if sub.startswith("perm:") and sub != PERM_ALL:
            name = sub[len("perm:") :]
            if (obj, act) not in catalogue.get(name).actions:
                self.warning(
                    EXTRA_POLICY_FILE,
                    lineno,
                    f"widens permission {name!r} beyond the actions its catalogue entry "
                    "(and the label owners see) lists",
                )
        return True

    def _check_pattern_rule(
        self, lineno: int, sub: str, dom: str, obj: str, act: str, catalogue: Catalogue | None
    ) -> bool:
        """A p line under an attribute matcher: the subject and domain are still names;
        the resource and action fields are patterns (route templates, regexes)."""

        def err(message: str) -> bool:
            self.error(EXTRA_POLICY_FILE, lineno, message)
            return False

        if not is_casbin_name(sub) or sub.startswith(("user:", "area:")):
            return err(f"subject {sub!r} must be perm:<name> or role:<name>")
        if sub.startswith("perm:") and catalogue is not None:
            name = sub[len("perm:") :]
            if name != ALL and name not in catalogue:
                return err(f"unknown permission {name!r}: it is not in {CATALOGUE_FILE}")
        if dom != "*" and not (dom.startswith("area:") and is_id(dom[len("area:") :], "a")):
            return err(f"domain {dom!r} must be '*' (every area) or area:a_<26 chars of a-z2-7>")
        for what, value in (("resource", obj), ("action", act)):
            if any(c.isspace() for c in value):
                return err(f"{what} pattern {value!r} holds white space")
            if value in ("*", ".*", "/*"):
                self.warning(
                    EXTRA_POLICY_FILE, lineno, f"{what} pattern {value!r} matches everything"
                )
        return True

    # -- probes ----------------------------------------------------------------------

    def _probe(self, model: _Model | None, catalogue: Catalogue) -> None:
        """Ask Casbin and the decision index a few questions whose answers are known."""
        try:
            bundle = bundle_from_snapshot(self.snapshot)
        except PolicyError as ex:
            self.error(EXTRA_POLICY_FILE, None, str(ex))
            return
        matcher_line = model.line_of("m") if model else None
        area, elsewhere = fixture_area("probe"), fixture_area("probe_elsewhere")
        probes = {  # subject -> who it is, in messages
            fixture_user("probe_owner"): "the owner",
            fixture_user("probe_all"): "a grant of 'all'",
            fixture_user("probe_outsider"): "a user with no grant at all",
            fixture_user("probe_stranger"): "the owner of another area",
        }
        owner, everything, outsider, stranger = probes
        holders = {perm.name: fixture_user(f"probe_{perm.name}") for perm in catalogue}
        probes.update({user: f"a grant of {name!r}" for name, user in holders.items()})
        g_lines = [
            ("g", owner, ROLE_OWNER, area),
            ("g", everything, PERM_ALL, area),
            ("g", stranger, ROLE_OWNER, elsewhere),
            *(("g", user, f"perm:{name}", area) for name, user in holders.items()),
        ]
        try:
            enforcer = build_enforcer(bundle, g_lines)
            decider = Decider(bundle, MemoryPolicyFeed(g_lines), monotonic=lambda: 0.0)
            decider.sync()
        except PolicyError as ex:
            self.error(MODEL_FILE, None, str(ex))
            return
        actions = catalogue.all_actions()
        answers: dict[tuple[str, str, str], bool] = {}
        disagreements: list[str] = []
        for user, who in probes.items():
            for obj, act in actions:
                try:
                    casbin_says = bool(enforcer.enforce(user, area, resource_value(obj), act))
                except Exception as ex:  # noqa: BLE001 - pycasbin raises bare exceptions
                    self.error(MODEL_FILE, matcher_line, f"Casbin cannot evaluate the model: {ex}")
                    return
                answers[(user, obj, act)] = casbin_says
                if decider.decide(user, area, obj, act) != casbin_says:
                    disagreements.append(f"{obj}:{act} for {who} (Casbin: {_verdict(casbin_says)})")

        def missing(user: str, wanted: Iterable[tuple[str, str]]) -> list[str]:
            return [f"{o}:{a}" for o, a in wanted if not answers[(user, o, a)]]

        short = {name: missing(user, catalogue.get(name).actions) for name, user in holders.items()}
        if all(short.values()):
            self.error(
                MODEL_FILE,
                matcher_line,
                "no catalogue permission granted in an area allows its own actions under "
                "this model: is '*' in the rules' domain a wildcard in the matcher?",
            )
        else:
            for name, lacking in short.items():
                if lacking:
                    self.error(
                        CATALOGUE_FILE,
                        self._catalogue_line("permissions", name, "actions"),
                        f"a grant of {name!r} in an area does not allow {_examples(lacking)} "
                        "under this model",
                    )
        for user in (owner, everything):
            lacking = missing(user, actions)
            if lacking:
                self.error(
                    MODEL_FILE,
                    matcher_line,
                    f"{probes[user]} is not allowed {_examples(lacking)} under this model",
                )
        for user in (outsider, stranger):
            extra = [f"{o}:{a}" for o, a in actions if answers[(user, o, a)]]
            if extra:
                self.error(
                    MODEL_FILE,
                    matcher_line,
                    f"{probes[user]} is allowed {_examples(extra)} in the area: the matcher "
                    "lets non-members through",
                )
        if disagreements:
            self.error(
                MODEL_FILE,
                matcher_line,
                "the decision index (the Decider's fast path) and Casbin disagree on "
                f"{_examples(disagreements)}: the index misreads this model",
            )

    def _probe_general(self, model: _Model | None) -> None:
        """Build the engine and ask it about each listed identity: a matcher Casbin cannot
        evaluate fails here rather than on the first request."""
        try:
            bundle = bundle_from_snapshot(self.snapshot)
            enforcer = build_enforcer(bundle, ())
        except PolicyError as ex:
            self.error(MODEL_FILE, None, str(ex))
            return
        mapping = bundle.mapping
        subjects = [(kind, ident) for kind, ident in mapping.identities] or [
            (kind, "probe") for kind in mapping.subjects
        ]
        resources = [(kind, ident) for kind, ident in mapping.resources] or [("probe", "probe")]
        for kind, ident in subjects[:3]:
            for rtype, rid in resources[:3]:
                body = {
                    "subject": {"type": kind, "id": ident},
                    "resource": {"type": rtype, "id": rid},
                    "action": {"name": "probe"},
                }
                question = mapping.question(body)
                if isinstance(question, str):
                    continue
                try:
                    enforcer.enforce(*question.values)
                except Exception as ex:  # noqa: BLE001 - pycasbin raises bare exceptions
                    line = model.line_of("m") if model else None
                    self.error(MODEL_FILE, line, f"Casbin cannot evaluate the model: {ex}")
                    return

    def _catalogue_line(self, *path: str) -> int | None:
        lines = self._read(CATALOGUE_FILE, required=False) or []
        return toml_line(lines, path)


def _verdict(allowed: bool) -> str:
    return "allow" if allowed else "deny"


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_EXAMPLES])
    more = len(items) - _MAX_EXAMPLES
    return f"{shown} and {more} more" if more > 0 else shown


def _name_problem(name: str) -> str:
    """Why ``name`` is not a plain name, in words a policy author can act on."""
    if any(c in name for c in ",\"'"):
        return "contains a comma or quote: Casbin splits at every comma and keeps quotes"
    if any(c in name for c in "[]()"):
        return "contains brackets: Casbin's policy reader nests them"
    if "*" in name or "?" in name:
        return "contains a wildcard: names are compared exactly"
    return "must match [a-z][a-z0-9_]{0,31}"


def _action_problem(action: object) -> str | None:
    if not isinstance(action, str):
        return "must be a string 'type:action'"
    if action.count(":") != 1:
        return "must look like 'type:action'"
    for part in action.split(":"):
        if not NAME_RE.match(part):
            return f"has a bad part {part!r}: it {_name_problem(part)}"
    return None
