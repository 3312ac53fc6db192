"""The one place that talks to pycasbin: build an Enforcer from a bundle and g lines.

Notes from measurements (../shared/DESIGN.md, "Casbin field notes"):
- the domain role manager's default matching function makes a large area build in
  quadratic time, so it is switched off before the first enforce;
- enforce is not thread-safe on CPython 3.11, so calls are serialized;
- a live enforcer is never reloaded in place: a new one is built and swapped;
- pycasbin parses the matcher again on every enforce (about 30 µs): the service's
  engines parse it once (CompiledEnforcer), which only works because an engine's
  role managers never change after it is built;
- a grant's end is the g line's link condition parameter (``g = _, _, _, (_)`` in
  policies/model.conf): each link with an end gets the condition ``valid_until``, which
  compares it with the engine's clock at every enforce. pycasbin builds conditional links
  only in load_policy (and its incremental add fails on them), so they are built here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from typing import Any

import casbin
from casbin.model import Model

from delegauth.domain.ids import CASBIN_NO_END, until_from_casbin
from delegauth.policy.bundle import PolicyBundle, PolicyError

__all__ = [
    "CasbinEngine",
    "CompiledEnforcer",
    "build_enforcer",
    "parse_model",
    "valid_until",
]


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


class CompiledEnforcer(casbin.Enforcer):
    """An Enforcer that parses each matcher expression once, not on every enforce."""

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        self._compiled: dict[str, Any] = {}

    def _get_expression(self, expr: str, functions: Any = None) -> Any:
        found = self._compiled.get(expr)
        if found is None:
            found = self._compiled[expr] = casbin.Enforcer._get_expression(expr, functions)
        return found


def valid_until(clock: Callable[[], float]) -> Callable[..., bool]:
    """The link condition for a grant's end: true before it, false from the instant on.

    An end that does not read as one (only a hand-edited rule could hold it) is false:
    a rule that cannot be read must not allow."""

    def condition(*params: str) -> bool:
        end = params[0] if params else CASBIN_NO_END
        try:
            when = until_from_casbin(end)
        except ValueError:
            return False
        return when is None or clock() < when.replace(tzinfo=UTC).timestamp()

    return condition


def build_enforcer(
    bundle: PolicyBundle,
    rules: Iterable[Sequence[str]],
    *,
    compiled: bool = False,
    clock: Callable[[], float] = time.time,
) -> casbin.Enforcer:
    """Return an Enforcer holding the bundle's p lines and listed identities' g lines plus
    ``rules`` (each led by its ptype). ``compiled``: parse the matcher once (see the notes).

    With a conditional role definition (``g = _, _, _, (_)``), a g line given without its
    end has none (``_``), and every link with an end is valid until it by ``clock``
    (epoch seconds)."""
    model = parse_model(bundle.model_text)
    enforcer = CompiledEnforcer(model) if compiled else casbin.Enforcer(model)
    for rm in (*enforcer.rm_map.values(), *enforcer.cond_rm_map.values()):
        rm.matching_func = None  # exact role names only: see the module notes
    ending: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, ...]] = set()
    for line in (*bundle.p_lines, *bundle.g_lines, *rules):
        ptype = line[0] if line else ""
        sec = ptype[:1]
        if sec not in ("p", "g") or sec not in model.model or ptype not in model.model[sec]:
            raise PolicyError(f"rule type {ptype!r} is not defined by the model")
        assertion = model.model[sec][ptype]
        fields = [str(f) for f in line[1:]]
        arity = assertion.value.count("_") if sec == "g" else len(assertion.tokens)
        params = len(assertion.params_tokens) if sec == "g" else 0
        if params and len(fields) == arity - params:
            fields += [CASBIN_NO_END] * params  # no end
            line = (ptype, *fields)
        if params and fields[-params] not in (CASBIN_NO_END, ""):
            ending.append((ptype, fields))
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
        if enforcer.cond_rm_map:
            model.build_conditional_role_links(enforcer.cond_rm_map)
    except Exception as ex:  # pycasbin raises bare RuntimeError
        raise PolicyError(f"the role links do not build: {ex}") from ex
    condition = valid_until(clock)
    for ptype, fields in ending:
        if len(model.model["g"][ptype].tokens) > 2:
            enforcer.add_named_domain_link_condition_func(
                ptype, fields[0], fields[1], fields[2], condition
            )
        else:
            enforcer.add_named_link_condition_func(ptype, fields[0], fields[1], condition)
    return enforcer


class CasbinEngine:
    """A compiled Enforcer with serialized calls."""

    def __init__(
        self,
        bundle: PolicyBundle,
        rules: Iterable[Sequence[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._enforcer = build_enforcer(bundle, rules, compiled=True, clock=clock)
        self._lock = threading.Lock()

    def enforce(self, *request: object) -> bool:
        with self._lock:
            try:
                return bool(self._enforcer.enforce(*request))
            except Exception:  # noqa: BLE001 - an engine that cannot decide denies
                return False

    def explain(self, *request: object) -> tuple[bool, list[str], str | None]:
        """The decision, the rule that decided it (empty: none), and why Casbin could not
        decide (None: it could)."""
        with self._lock:
            try:
                allowed, rule = self._enforcer.enforce_ex(*request)
            except Exception as ex:  # noqa: BLE001 - an engine that cannot decide denies
                return False, [], f"Casbin cannot decide: {ex}"
        return bool(allowed), [str(f) for f in rule], None

    def roles(self, subject: str, domain: str | None = None) -> list[str]:
        """The roles ``subject`` holds (directly and through other roles)."""
        with self._lock:
            rm = self._enforcer.rm_map.get("g") or self._enforcer.cond_rm_map.get("g")
            if rm is None:
                return []
            found = rm.get_roles(subject, domain) if domain else rm.get_roles(subject)
            seen: list[str] = []
            frontier = list(found)
            while frontier and len(seen) < 100:
                role = frontier.pop(0)
                if role in seen:
                    continue
                seen.append(role)
                more = rm.get_roles(role, domain) if domain else rm.get_roles(role)
                frontier.extend(more)
            return seen

    @property
    def enforcer(self) -> casbin.Enforcer:
        return self._enforcer
