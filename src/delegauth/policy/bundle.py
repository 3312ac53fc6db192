"""Read a policies/ directory into a PolicyBundle: model text, catalogue and p lines.

p lines come from the catalogue (one per permission and action, plus the "all"
and owner roles), then from an optional policy.csv. The bundle's version is a
hash of everything it was built from.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from delegauth.domain.catalogue import Catalogue, CatalogueError, load_catalogue
from delegauth.domain.ids import PERM_ALL, ROLE_OWNER, casbin_perm

__all__ = ["PolicyBundle", "PolicyError", "load_bundle", "catalogue_p_lines"]

MODEL_FILE = "model.conf"
CATALOGUE_FILE = "catalogue.toml"
EXTRA_POLICY_FILE = "policy.csv"
ANY_DOMAIN = "*"


class PolicyError(ValueError):
    """The policies directory cannot be loaded."""


@dataclass(frozen=True)
class PolicyBundle:
    model_text: str
    catalogue: Catalogue
    p_lines: tuple[tuple[str, ...], ...]  # each starts with its ptype: ("p", sub, dom, obj, act)
    version: str
    source: str


def catalogue_p_lines(catalogue: Catalogue) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = []
    for perm in catalogue:
        for rtype, act in perm.actions:
            lines.append(("p", casbin_perm(perm.name), ANY_DOMAIN, rtype, act))
    for rtype, act in catalogue.all_actions():
        lines.append(("p", PERM_ALL, ANY_DOMAIN, rtype, act))
        lines.append(("p", ROLE_OWNER, ANY_DOMAIN, rtype, act))
    return lines


def _read_extra(path: Path) -> list[tuple[str, ...]]:
    if not path.exists():
        return []
    out = []
    for lineno, row in enumerate(csv.reader(io.StringIO(path.read_text("utf-8"))), start=1):
        fields = [f.strip() for f in row]
        if not fields or not fields[0] or fields[0].startswith("#"):
            continue
        if fields[0] != "p" and not fields[0].startswith("p"):
            raise PolicyError(f"{path}:{lineno}: only p lines belong in {EXTRA_POLICY_FILE}")
        out.append(tuple(fields))
    return out


def load_bundle(directory: str | Path) -> PolicyBundle:
    root = Path(directory)
    try:
        model_text = (root / MODEL_FILE).read_text("utf-8")
        catalogue_bytes = (root / CATALOGUE_FILE).read_bytes()
    except OSError as ex:
        raise PolicyError(f"cannot read policies from {root}: {ex}") from ex
    try:
        catalogue = load_catalogue(root / CATALOGUE_FILE)
    except CatalogueError as ex:
        raise PolicyError(str(ex)) from ex
    extra = _read_extra(root / EXTRA_POLICY_FILE)
    digest = hashlib.sha256()
    for part in (model_text.encode(), catalogue_bytes, repr(extra).encode()):
        digest.update(hashlib.sha256(part).digest())
    return PolicyBundle(
        model_text=model_text,
        catalogue=catalogue,
        p_lines=tuple(catalogue_p_lines(catalogue) + extra),
        version="sha256:" + digest.hexdigest()[:16],
        source=str(root),
    )
