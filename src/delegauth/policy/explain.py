"""Say why a decision came out as it did: ``delegauth policy explain``.

The explanation reads the policy as the shipped model means it (RBAC with domains):
the subject's grants in the area (g lines, followed through custom roles as Casbin
does), the rules (p lines) those grants hold for the resource type and action, and
where each rule comes from: a catalogue entry, "all", the owner, or a line of
policy.csv. The decision shown is plain Casbin's, with the Decider's answer beside
it; the two must agree.

It is made at one instant (now by default): a grant whose end has come is listed, said
to have lapsed, and gives nothing; one that ends later says when. A request may name a
resource id, where grants on single resources (``perm:<name>@<id>``) count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from delegauth.domain.catalogue import ALL
from delegauth.domain.ids import CASBIN_NO_END, PERM_ALL, ROLE_OWNER, SCOPE_SEP, is_id
from delegauth.policy.bundle import (
    ANY_DOMAIN,
    CATALOGUE_FILE,
    EXTRA_POLICY_FILE,
    PolicyBundle,
    PolicyError,
)
from delegauth.policy.casbin_engine import build_enforcer, parse_model
from delegauth.policy.decider import Decider, end_seconds
from delegauth.policy.index import closure, supports_fast_path
from delegauth.policy.mapping import resource_value
from delegauth.policy.memory_feed import MemoryPolicyFeed
from delegauth.policy.sources import toml_line

__all__ = ["Explanation", "MatchedRule", "explain"]

_MAX_LISTED = 5


@dataclass(frozen=True)
class MatchedRule:
    rule: tuple[str, ...]  # the p line, led by its ptype
    source: str  # where the rule comes from, e.g. catalogue.toml:52 permission invoices


@dataclass(frozen=True)
class Explanation:
    subject: str
    domain: str
    obj: str
    act: str
    resource_id: str  # the request's resource id ("" for none)
    allowed: bool  # plain Casbin's answer
    decider_allowed: bool | None  # the service's answer (None: it could not be asked)
    grants: tuple[tuple[str, ...], ...]  # the g lines that give the subject its roles here
    # (with the grant's end as a fifth field when it has one, lapsed ones included)
    matched: tuple[MatchedRule, ...]
    catalogue_entries: tuple[tuple[str, str], ...]  # (permission, English label)
    reasons: tuple[str, ...]

    def lines(self) -> list[str]:
        """The explanation as text, one line each."""
        agree = (
            ""
            if self.decider_allowed is None
            else "; the Decider agrees"
            if self.decider_allowed == self.allowed
            else f"; the Decider {'allows' if self.decider_allowed else 'denies'}"
        )
        out = [
            f"decision: {'allow' if self.allowed else 'deny'} (Casbin{agree})",
            f"request: {self.subject} in {self.domain}: {self.obj}:{self.act}"
            + (f" on {self.resource_id}" if self.resource_id else ""),
            f"grants in {self.domain}:" if self.grants else f"grants in {self.domain}: none",
            *(f"  {', '.join(g)}" for g in self.grants),
            "rules that match:" if self.matched else "rules that match: none",
            *(f"  {', '.join(m.rule)}  <- {m.source}" for m in self.matched),
        ]
        if self.catalogue_entries:
            listed = ", ".join(
                f'permission {name} ("{label}")' for name, label in self.catalogue_entries
            )
            out.append(
                f'catalogue: {self.obj}:{self.act} comes with {listed}, and with "{ALL}" '
                "and the owner"
            )
        else:
            out.append(f"catalogue: no permission lists {self.obj}:{self.act}")
        out.extend(f"why: {reason}" for reason in self.reasons)
        return out


def _namespaced(value: str, kind: str, namespace: str) -> str:
    return f"{namespace}:{value}" if is_id(value, kind) else value


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


class _Sources:
    """Where a p line of the bundle comes from."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self._bundle = bundle
        # Line numbers from the bytes the bundle was built from, not the files as they are now.
        self._catalogue_lines = _lines(bundle, CATALOGUE_FILE)
        self._csv: list[tuple[tuple[str, ...], int]] = [
            (tuple(f.strip() for f in text.split(",")), n)
            for n, text in enumerate(_lines(bundle, EXTRA_POLICY_FILE), start=1)
        ]

    def of(self, rule: tuple[str, ...]) -> str:
        catalogue = self._bundle.catalogue
        sub, dom, obj, act = rule[1:5]
        in_catalogue = dom == ANY_DOMAIN and (obj, act) in catalogue.all_actions()
        name = sub[len("perm:") :] if sub.startswith("perm:") else ""
        if in_catalogue and name in catalogue and (obj, act) in catalogue.get(name).actions:
            line = toml_line(self._catalogue_lines, ("permissions", name, "actions"))
            where = CATALOGUE_FILE if line is None else f"{CATALOGUE_FILE}:{line}"
            return f'{where} permission {name} ("{catalogue.get(name).label("en")}")'
        if in_catalogue and sub == PERM_ALL:
            return f'{CATALOGUE_FILE}: "{ALL}" covers every catalogue action'
        if in_catalogue and sub == ROLE_OWNER:
            return f"{CATALOGUE_FILE}: the owner may do every catalogue action"
        for fields, n in self._csv:
            if fields == rule:
                return f"{EXTRA_POLICY_FILE}:{n}"
        return EXTRA_POLICY_FILE


def _lines(bundle: PolicyBundle, name: str) -> list[str]:
    try:
        return (bundle.snapshot.data(name) or b"").decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return []


def _shown(line: tuple[str, ...]) -> tuple[str, ...]:
    """A g line as listed: its end only when it has one."""
    return line if len(line) > 4 and line[4] not in ("", CASBIN_NO_END) else line[:4]


def _when(seconds: float, now: float) -> str:
    """How far an end is from now, in the largest whole unit: "3 days", "5 minutes"."""
    left = abs(seconds - now)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if left >= size:
            count = int(left // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def explain(
    bundle: PolicyBundle,
    rules: Iterable[Sequence[str]],
    user: str,
    area: str,
    rtype: str,
    action: str,
    resource_id: str = "",
    *,
    at: datetime | None = None,
) -> Explanation:
    """Explain the decision for ``user`` doing ``rtype:action`` in ``area`` (on the
    resource ``resource_id``, if any) at ``at`` (naive UTC; default now).

    ``rules`` are g lines (``("g", subject, role, domain)``, with the grant's end as a
    fifth field if it has one); lines of other areas are only mentioned. ``user`` and
    ``area`` may be bare ids (u_…, a_…) or namespaced.
    """
    subject = _namespaced(user, "u", "user")
    domain = _namespaced(area, "a", "area")
    now = time.time() if at is None else at.replace(tzinfo=UTC).timestamp()
    every = [tuple(r) for r in rules if len(r) in (4, 5) and r[0] == "g"]
    here = [r for r in every if r[3] == domain]
    ends = {r: end_seconds(r[4]) if len(r) > 4 else math.inf for r in here}
    links: dict[str, frozenset[str]] = {}
    for line in here:
        if ends[line] > now:  # a lapsed grant gives nothing
            links[line[1]] = links.get(line[1], frozenset()) | {line[2]}
    every_link: dict[str, frozenset[str]] = {}
    for line in here:
        every_link[line[1]] = every_link.get(line[1], frozenset()) | {line[2]}
    reach = closure(subject, links)
    grants = tuple(_shown(r) for r in here if r[1] in closure(subject, every_link))
    reasons: list[str] = []
    for line in here:
        if line[1] != subject or ends[line] == math.inf:
            continue
        end = line[4]
        if ends[line] <= now:
            reasons.append(f"the grant of {line[2]} ended at {end}: it lapsed and gives nothing")
        else:
            reasons.append(f"the grant of {line[2]} ends at {end} (in {_when(ends[line], now)})")

    try:
        enforcer = build_enforcer(bundle, here, clock=lambda: now)
        allowed = bool(
            enforcer.enforce(subject, domain, resource_value(rtype, resource_id), action)
        )
    except Exception as ex:  # noqa: BLE001 - pycasbin raises bare exceptions; deny
        allowed = False
        reasons.append(f"Casbin cannot decide: {ex}")
    decider_allowed: bool | None
    try:
        decider = Decider(bundle, MemoryPolicyFeed(here), monotonic=lambda: 0.0, clock=lambda: now)
        decider.sync()
        decider_allowed = decider.decide(subject, domain, rtype, action, resource_id)
    except PolicyError as ex:
        decider_allowed = None
        reasons.append(f"the Decider refuses this policy: {ex}")

    candidates = [
        line
        for line in bundle.p_lines
        if line[0] == "p"
        and len(line) >= 5
        and line[2] in (ANY_DOMAIN, domain)
        and line[3:5] == (rtype, action)
        and (len(line) < 6 or line[5] == "allow")
    ]
    sources = _Sources(bundle)
    on_resource = f"{SCOPE_SEP}{resource_id}" if resource_id else None

    def held_for(rule_subject: str) -> bool:
        return rule_subject in reach or (
            on_resource is not None and rule_subject + on_resource in reach
        )

    matched = tuple(MatchedRule(line, sources.of(line)) for line in candidates if held_for(line[1]))
    catalogue = bundle.catalogue
    entries = tuple(
        (perm.name, perm.label("en")) for perm in catalogue if (rtype, action) in perm.actions
    )

    held = sorted(reach - {subject})
    is_user = subject.startswith("user:")
    if not is_user:
        reasons.append(
            f"{subject!r} is not a user id: the Decider denies every other subject "
            "(plain Casbin's g(x, x, area) would let a role name match its own rules)"
        )
    elif not held and any(line[1] == subject for line in here):
        reasons.append(f"{subject} holds nothing in {domain} any more: its grant lapsed")
    elif not held:
        reasons.append(f"{subject} holds no grant in {domain}: it is not a member")
        elsewhere = sorted({r[3] for r in every if r[1] == subject and r[3] != domain})
        if elsewhere:
            reasons.append(f"it holds grants in other areas: {_listed(elsewhere)}")
    if not entries:
        reasons.append(f"no catalogue permission lists {rtype}:{action}")
    if not matched:
        holders = sorted({line[1] for line in candidates})
        if not holders:
            reasons.append(f"no rule allows {rtype}:{action} in {domain}, not even to the owner")
        elif held:
            reasons.append(
                f"it holds {_listed(held)}; {rtype}:{action} comes only with {_listed(holders)}"
            )
            for holder in holders:
                scoped = sorted(
                    r.split(SCOPE_SEP, 1)[1] for r in held if r.startswith(holder + SCOPE_SEP)
                )
                if scoped:
                    asked = f"on {resource_id}" if resource_id else "without a resource id"
                    reasons.append(
                        f"{holder} is granted on {_listed(scoped)} only; the request is {asked}"
                    )
    with_rules = {line[1] for line in bundle.p_lines}
    for role in held:
        base = role.split(SCOPE_SEP, 1)[0]  # a grant on one resource: its permission's rules
        if base not in with_rules and role not in links:
            reasons.append(f"{role} is granted but no rule names it (not in the catalogue?)")
    if decider_allowed is not None and decider_allowed != allowed and is_user:
        reasons.append(
            "the Decider answers differently from Casbin: that is a bug in the decision "
            "index; please report it with this explanation"
        )
    model = parse_model(bundle.model_text)
    sections = {sec: {k: ast.value for k, ast in model.model[sec].items()} for sec in model.model}
    if not supports_fast_path(sections):
        reasons.append(
            "the model is not the standard RBAC-with-domains shape: the grants and rules "
            "above are read as if it were; the decision is Casbin's own"
        )
    return Explanation(
        subject=subject,
        domain=domain,
        obj=rtype,
        act=action,
        resource_id=resource_id,
        allowed=allowed,
        decider_allowed=decider_allowed,
        grants=grants,
        matched=matched,
        catalogue_entries=entries,
        reasons=tuple(reasons),
    )
