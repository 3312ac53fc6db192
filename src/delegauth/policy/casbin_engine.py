"""The one place that talks to pycasbin: build an Enforcer from a bundle and g lines.

Notes from measurements (../shared/DESIGN.md, "Casbin field notes"):
- the domain role manager's default matching function makes a large area build in
  quadratic time, so it is switched off before the first enforce;
- enforce is not thread-safe on CPython 3.11, so calls are serialized;
- a live enforcer is never reloaded in place: a new one is built and swapped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import casbin
from casbin.model import Model

from delegauth.policy.bundle import PolicyBundle, PolicyError

__all__ = ["CasbinEngine", "build_enforcer", "parse_model"]


def parse_model(text: str) -> Model:
    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as ex:  # pycasbin raises bare RuntimeError and friends
        raise PolicyError(f"the Casbin model does not parse: {ex}") from ex
    for sec in ("r", "p", "e", "m"):
        if sec not in model.model:
            raise PolicyError(f"the Casbin model has no [{_SECTION_NAMES[sec]}] section")
    return model


_SECTION_NAMES = {
    "r": "request_definition",
    "p": "policy_definition",
    "g": "role_definition",
    "e": "policy_effect",
    "m": "matchers",
}


def build_enforcer(bundle: PolicyBundle, rules: Iterable[Sequence[str]]) -> casbin.Enforcer:
    """Return an Enforcer holding the bundle's p lines plus ``rules`` (each led by its ptype)."""
    model = parse_model(bundle.model_text)
    enforcer = casbin.Enforcer(model)
    for rm in enforcer.rm_map.values():
        rm.matching_func = None  # exact role names only: see the module notes
    seen: set[tuple[str, ...]] = set()
    for line in (*bundle.p_lines, *rules):
        ptype = line[0] if line else ""
        sec = ptype[:1]
        if sec not in ("p", "g") or sec not in model.model or ptype not in model.model[sec]:
            raise PolicyError(f"rule type {ptype!r} is not defined by the model")
        assertion = model.model[sec][ptype]
        fields = [str(f) for f in line[1:]]
        arity = assertion.value.count("_") if sec == "g" else len(assertion.tokens)
        if len(fields) != arity:
            raise PolicyError(f"{ptype} line {tuple(line)!r}: the model defines {arity} fields")
        key = tuple(line)
        if key in seen:
            continue
        seen.add(key)
        if assertion.priority_index >= 0:
            model.add_policy(sec, ptype, fields)  # keeps priority order
        else:
            # Model.add_policy checks for duplicates with a list scan: quadratic at 10,000s
            # of lines. `seen` does that here; policy_map is what add_policy would fill.
            assertion.policy.append(fields)
            assertion.policy_map[",".join(fields)] = len(assertion.policy) - 1
    try:
        enforcer.build_role_links()
    except Exception as ex:  # pycasbin raises bare RuntimeError
        raise PolicyError(f"the role links do not build: {ex}") from ex
    return enforcer


class CasbinEngine:
    """An Enforcer with serialized calls."""

    def __init__(self, bundle: PolicyBundle, rules: Iterable[Sequence[str]]) -> None:
        self._enforcer = build_enforcer(bundle, rules)
        self._lock = threading.Lock()

    def enforce(self, *request: str) -> bool:
        with self._lock:
            try:
                return bool(self._enforcer.enforce(*request))
            except Exception:  # noqa: BLE001 - an engine that cannot decide denies
                return False

    @property
    def enforcer(self) -> casbin.Enforcer:
        return self._enforcer
