"""Read a policies/ directory into a PolicyBundle: model text, catalogue and p lines.

The directory is read once into a PolicySnapshot (the bytes of each file that
decides); checking and building a bundle both work on that snapshot, never on the
files again, so a file replaced in between cannot slip in unchecked. The version is
a hash of the snapshot's bytes.

p lines come from the catalogue (one per permission and action, plus the "all"
and owner roles), then from an optional policy.csv.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from delegauth.domain.catalogue import Catalogue, CatalogueError, loads_catalogue
from delegauth.domain.ids import PERM_ALL, ROLE_OWNER, casbin_perm
from delegauth.policy.mapping import (
    IDENTITIES_FILE,
    MAPPING_FILE,
    RESOURCES_FILE,
    RequestMapping,
    parse_mapping,
)

__all__ = [
    "PolicyBundle",
    "PolicyError",
    "PolicySnapshot",
    "bundle_from_snapshot",
    "catalogue_p_lines",
    "definition_tokens",
    "load_bundle",
    "read_snapshot",
]

MODEL_FILE = "model.conf"
MAPPING_FILES = (MAPPING_FILE, IDENTITIES_FILE, RESOURCES_FILE)
CATALOGUE_FILE = "catalogue.toml"
EXTRA_POLICY_FILE = "policy.csv"
ANY_DOMAIN = "*"
# The files decisions are built from, in the order they are read and hashed.
POLICY_FILES = (
    MODEL_FILE,
    CATALOGUE_FILE,
    EXTRA_POLICY_FILE,
    MAPPING_FILE,
    IDENTITIES_FILE,
    RESOURCES_FILE,
)


class PolicyError(ValueError):
    """The policies directory cannot be loaded."""


@dataclass(frozen=True)
class PolicySnapshot:
    """The policy files of a directory as read at one moment: what is checked, hashed
    and installed. A file absent from both ``files`` and ``unreadable`` was missing."""

    root: Path
    is_dir: bool
    entries: tuple[str, ...]  # names at the top of the directory
    files: tuple[tuple[str, bytes], ...]
    unreadable: tuple[tuple[str, str], ...]  # (name, why)
    version: str

    def data(self, name: str) -> bytes | None:
        return dict(self.files).get(name)

    def problem(self, name: str) -> str | None:
        """Why ``name`` could not be read, or None."""
        return dict(self.unreadable).get(name)


def _read_file(path: Path) -> bytes:
    return path.read_bytes()


def read_snapshot(
    directory: str | Path, *, read_file: Callable[[Path], bytes] = _read_file
) -> PolicySnapshot:
    """Read each policy file of ``directory`` once (``read_file`` is the test seam)."""
    root = Path(directory)
    try:
        entries = tuple(sorted(entry.name for entry in root.iterdir()))
        is_dir = True
    except OSError:
        entries, is_dir = (), False
    files: list[tuple[str, bytes]] = []
    unreadable: list[tuple[str, str]] = []
    digest = hashlib.sha256()
    for name in POLICY_FILES if is_dir else ():
        try:
            data = read_file(root / name)
        except FileNotFoundError:
            digest.update(f"{name}\0missing\0".encode())
            continue
        except OSError as ex:
            unreadable.append((name, str(ex)))
            digest.update(f"{name}\0unreadable\0".encode())
            continue
        files.append((name, data))
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    return PolicySnapshot(
        root=root,
        is_dir=is_dir,
        entries=entries,
        files=tuple(files),
        unreadable=tuple(unreadable),
        version="sha256:" + digest.hexdigest()[:16],
    )


@dataclass(frozen=True)
class PolicyBundle:
    model_text: str
    catalogue: Catalogue
    p_lines: tuple[tuple[str, ...], ...]  # each starts with its ptype: ("p", sub, dom, obj, act)
    version: str  # the version of the snapshot it was built from
    source: str
    snapshot: PolicySnapshot
    # How AuthZEN requests map onto the model (authzen.toml, identities.toml, resources.toml).
    mapping: RequestMapping = RequestMapping()
    g_lines: tuple[tuple[str, ...], ...] = ()  # the listed identities' roles


def catalogue_p_lines(catalogue: Catalogue) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = []
    for perm in catalogue:
        for rtype, act in perm.actions:
            lines.append(("p", casbin_perm(perm.name), ANY_DOMAIN, rtype, act))
    for rtype, act in catalogue.all_actions():
        lines.append(("p", PERM_ALL, ANY_DOMAIN, rtype, act))
        lines.append(("p", ROLE_OWNER, ANY_DOMAIN, rtype, act))
    return lines


def _read_extra(text: str, path: Path) -> list[tuple[str, ...]]:
    out = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in row]
        if not fields or not fields[0] or fields[0].startswith("#"):
            continue
        if fields[0] != "p" and not fields[0].startswith("p"):
            raise PolicyError(f"{path}:{lineno}: only p lines belong in {EXTRA_POLICY_FILE}")
        out.append(tuple(fields))
    return out


def _text(snapshot: PolicySnapshot, name: str, *, required: bool) -> str | None:
    problem = snapshot.problem(name)
    data = snapshot.data(name)
    if problem is not None or (data is None and required):
        why = problem or "missing"
        raise PolicyError(f"cannot read policies from {snapshot.root}: {name}: {why}")
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise PolicyError(f"{snapshot.root / name}: not UTF-8: {ex}") from ex


def bundle_from_snapshot(snapshot: PolicySnapshot) -> PolicyBundle:
    """The bundle built from exactly the snapshot's bytes (no file is read)."""
    if not snapshot.is_dir:
        raise PolicyError(f"cannot read policies from {snapshot.root}: not a directory")
    model_text = _text(snapshot, MODEL_FILE, required=True) or ""
    _text(snapshot, CATALOGUE_FILE, required=True)
    try:
        catalogue = loads_catalogue(
            snapshot.data(CATALOGUE_FILE) or b"", str(snapshot.root / CATALOGUE_FILE)
        )
    except CatalogueError as ex:
        raise PolicyError(str(ex)) from ex
    extra = _read_extra(
        _text(snapshot, EXTRA_POLICY_FILE, required=False) or "", snapshot.root / EXTRA_POLICY_FILE
    )
    mapping = read_mapping(snapshot, model_text)
    # Without domains the catalogue only names things: its generated lines
    # (p, perm:<name>, *, <type>, <action>) are rules of the domain-per-area shape.
    generated = catalogue_p_lines(catalogue) if mapping.domain != "none" else []
    return PolicyBundle(
        model_text=model_text,
        catalogue=catalogue,
        p_lines=tuple(generated + extra),
        version=snapshot.version,
        source=str(snapshot.root),
        snapshot=snapshot,
        mapping=mapping,
        g_lines=tuple(mapping.g_lines()),
    )


def read_mapping(snapshot: PolicySnapshot, model_text: str) -> RequestMapping:
    """The request mapping of ``snapshot``; PolicyError on its first problem."""
    texts = [_text(snapshot, name, required=False) for name in MAPPING_FILES]
    mapping, problems = parse_mapping(*texts)
    if problems:
        first = problems[0]
        where = snapshot.root / first.file
        line = f":{first.line}" if first.line else ""
        raise PolicyError(f"{where}{line}: {first.message}")
    return dataclasses.replace(mapping, tokens=request_tokens(model_text))


def request_tokens(model_text: str) -> tuple[str, ...]:
    """The field names of the model's ``r = …`` (empty when there is none)."""
    return definition_tokens(model_text, "request_definition", "r")


def definition_tokens(model_text: str, section_name: str, key_name: str) -> tuple[str, ...]:
    """The field names of one definition of the model, e.g. ``p = sub, obj, act``."""
    section = ""
    for raw in model_text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == section_name and "=" in line and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            if key == key_name:
                return tuple(t.strip() for t in value.split(","))
    return ()


def load_bundle(directory: str | Path) -> PolicyBundle:
    """Read ``directory`` once and build its bundle (unchecked: see check.checked_bundle)."""
    return bundle_from_snapshot(read_snapshot(directory))
