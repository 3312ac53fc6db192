"""Explain a decision the Decider has just made, for the AuthZEN Decision ``context``.

The explanation is read from what the Decider holds: the policy hash (of the files'
bytes; the change-log version is another thing, ``policy_version``), the area's
g lines that give the subject its roles (followed through custom roles as Casbin
does), the p lines those roles hold for the resource type and action, and where each
comes from (a catalogue permission, "all", the owner, or policy.csv). When nothing
matched it says why. It is cheap: no enforcer is built and no file is read, unlike
``delegauth policy explain`` (policy.explain), which also checks Casbin's answer.

It is a JSON object::

    {"policy_hash": "sha256:…",
     "grants": [["g", "user:u_…", "perm:invoices", "area:a_…"]],
     "rules": [{"rule": ["p", "perm:invoices", "*", "invoice", "pay"],
                "source": "catalogue permission invoices (\\"View and pay invoices\\")"}],
     "permissions": ["invoices"],
     "reasons": []}

A rule matched through a grant on single resources (``perm:managedomains@example.com``)
says so: its entry has ``"resource": "example.com"`` and its source ends "on example.com
only". When such grants exist for other resources, a reason names them.

``permissions`` names the catalogue permissions that come with the resource action;
``reasons`` is empty when the decision is an allow with matching rules.

Models the index does not implement are explained from Casbin's own answer
(explain_question): the rule that matched, the subject's roles, and when nothing
matched, the rules that name the resource and action, and the request's properties
the matcher read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from delegauth.domain.catalogue import ALL, Catalogue
from delegauth.domain.ids import PERM_ALL, ROLE_OWNER, SCOPE_SEP, is_casbin_name
from delegauth.policy.bundle import ANY_DOMAIN, EXTRA_POLICY_FILE
from delegauth.policy.decider import Decider
from delegauth.policy.index import closure
from delegauth.policy.mapping import MISSING, Question

__all__ = ["explain_decision", "explain_question", "explain_refusal"]

_PERM_PREFIX = "perm:"
_MAX_LISTED = 5


def explain_refusal(decider: Decider, reason: str) -> dict[str, Any]:
    """The explanation of a request denied before it reached the policy."""
    return _document(decider.policy_hash, (), (), (), [reason])


def explain_decision(
    decider: Decider, request: tuple[str, str, str, str], decision: bool, resource_id: str = ""
) -> dict[str, Any]:
    """Explain ``decision``, the Decider's answer to ``request`` (subject, domain, obj, act)
    about the resource ``resource_id``."""
    subject, domain, obj, act = request
    bundle = decider.bundle  # one snapshot: the policy can be reloaded at any time
    # decide() denies these before looking at any rule; so does the explanation.
    decidable = (
        subject.startswith("user:") and domain.startswith("area:") and is_casbin_name(domain)
    )
    links = decider.area_links(domain) if decidable else {}
    reach = closure(subject, links)
    held = sorted(reach - {subject})
    grants = [
        ("g", sub, role, domain) for sub in sorted(reach) for role in sorted(links.get(sub, ()))
    ]
    candidates = [
        line
        for line in bundle.p_lines
        if line[0] == "p"
        and len(line) >= 5
        and line[2] in (ANY_DOMAIN, domain)
        and line[3:5] == (obj, act)
        and (len(line) < 6 or line[5] == "allow")
    ]
    matched = [line for line in candidates if line[1] in reach] if decidable else []
    # Grants on single resources: roles <p subject>@<resource id> (index.honours_resource_ids).
    scoped = decider.resource_scoped and decidable
    on_resource = [
        line
        for line in candidates
        if scoped and line not in matched and f"{line[1]}{SCOPE_SEP}{resource_id}" in reach
    ]
    permissions = [perm.name for perm in bundle.catalogue if (obj, act) in perm.actions]

    reasons: list[str] = []
    if not subject.startswith("user:"):
        reasons.append("only users are subjects: every other subject is denied")
    elif not domain.startswith("area:") or not is_casbin_name(domain):
        reasons.append(f"{domain} is not an area name")
    elif not held:
        reasons.append(f"{subject} holds no grant in {domain}: it is not a member")
    if not permissions:
        reasons.append(f"no catalogue permission lists {obj}:{act}")
    if not matched and scoped and not on_resource:
        elsewhere = _resources_held(held, {line[1] for line in candidates})
        for base, ids in elsewhere.items():
            reasons.append(
                f"it holds {base} on {_listed(ids)} only; resource.id {resource_id!r} is not "
                "one of them"
            )
    if not matched and not on_resource:
        holders = sorted({line[1] for line in candidates})
        if not holders:
            reasons.append(f"no rule allows {obj}:{act} in {domain}, not even to the owner")
        elif held:
            reasons.append(
                f"it holds {_listed(held)}; {obj}:{act} comes only with {_listed(holders)}"
            )
    if not decider.fast:
        reasons.append(
            "the model is not the standard RBAC-with-domains shape: the grants and rules "
            "are read as if it were; the decision is Casbin's own"
        )
    elif decision != bool(matched or on_resource) and decidable:
        # The Decider answers from the same links and p lines: they can only disagree
        # when the area or the policy changed between the decision and this explanation.
        reasons.append("the grants or the policy changed while this explanation was made")
    rules = [{"rule": list(line), "source": _source(bundle.catalogue, line)} for line in matched]
    rules += [
        {
            "rule": list(line),
            "source": f"{_source(bundle.catalogue, line)} on {resource_id} only",
            "resource": resource_id,
        }
        for line in on_resource
    ]
    return _document(bundle.version, grants, rules, permissions, reasons)


def _resources_held(held: Sequence[str], bases: set[str]) -> dict[str, list[str]]:
    """The resource ids each of ``bases`` is held on through roles <base>@<id>."""
    found: dict[str, list[str]] = {}
    for role in held:
        base, sep, rid = role.partition(SCOPE_SEP)
        if sep and base in bases:
            found.setdefault(base, []).append(rid)
    return found


def explain_question(decider: Decider, question: Question, decision: bool) -> dict[str, Any]:
    """Explain ``decision`` for a model decided by Casbin itself (no decision index)."""
    bundle = decider.bundle
    engine = decider.engine_for(question.domain)
    reasons: list[str] = []
    if engine is None:
        return _document(
            bundle.version, (), (), (), [f"{question.domain} is not an area name: denied"]
        )
    allowed, rule, problem = engine.explain(*question.values)
    roles = engine.roles(question.subject, question.domain)
    grants = [
        ("g", question.subject, role, question.domain)
        if question.domain
        else ("g", question.subject, role)
        for role in roles
    ]
    rules = [{"rule": ["p", *rule], "source": EXTRA_POLICY_FILE}] if allowed and rule else []
    if problem is not None:
        reasons.append(problem)
    elif not allowed:
        naming = [
            list(line)
            for line in bundle.p_lines
            if question.obj in line[1:] and question.act in line[1:]
        ]
        if not roles:
            reasons.append(f"{question.subject} holds no role")
        if naming:
            held = ", ".join(roles) or "no role"
            reasons.append(
                f"no rule matched: {question.subject} holds {held}; the rules naming "
                f"{question.obj} and {question.act} are {_listed([', '.join(r) for r in naming])}"
            )
        else:
            reasons.append(f"no rule names {question.obj} and {question.act}")
        missing = _missing_properties(question)
        if missing:
            reasons.append("the request did not give " + ", ".join(missing))
    if allowed != decision:
        reasons.append("the policy changed while this explanation was made")
    return _document(bundle.version, grants, rules, [], reasons)


def _missing_properties(question: Question) -> list[str]:
    """The declared properties nobody supplied (they match nothing)."""
    out: list[str] = []
    for value in question.values:
        attrs = getattr(value, "__dict__", {})
        out.extend(f"{name}" for name, v in attrs.items() if v is MISSING)
    return out


def _document(
    policy_hash: str,
    grants: Sequence[Sequence[str]],
    rules: Sequence[dict[str, Any]],
    permissions: Sequence[str],
    reasons: list[str],
) -> dict[str, Any]:
    return {
        "policy_hash": policy_hash,
        "grants": [list(g) for g in grants],
        "rules": list(rules),
        "permissions": list(permissions),
        "reasons": reasons,
    }


def _source(catalogue: Catalogue, rule: tuple[str, ...]) -> str:
    """Where a p line comes from (as policy.explain says it, without file line numbers)."""
    sub, dom, obj, act = rule[1:5]
    in_catalogue = dom == ANY_DOMAIN and (obj, act) in catalogue.all_actions()
    name = sub[len(_PERM_PREFIX) :] if sub.startswith(_PERM_PREFIX) else ""
    if in_catalogue and name in catalogue and (obj, act) in catalogue.get(name).actions:
        return f'catalogue permission {name} ("{catalogue.get(name).label("en")}")'
    if in_catalogue and sub == PERM_ALL:
        return f'catalogue: "{ALL}" covers every catalogue action'
    if in_catalogue and sub == ROLE_OWNER:
        return "catalogue: the owner may do every catalogue action"
    return EXTRA_POLICY_FILE


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")
