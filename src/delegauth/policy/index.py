"""The decision index: Casbin's RBAC-with-domains semantics as dictionary lookups.

It answers exactly what the shipped model's matcher says,

    g(r.sub, p.sub, r.dom) && (p.dom == "*" || r.dom == p.dom)
        && r.obj == p.obj && r.act == p.act

for a domain's g lines, without scanning p lines: a subject's roles in the domain
(transitively, as Casbin's role manager does, up to 10 levels) select precomputed
sets of (obj, act). Tests prove it agrees with casbin.Enforcer.enforce.

The shipped model also honours grants on single resources,

    (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub + "@" + r.obj.id, r.dom)) && ...

where a role ``<p subject>@<resource id>`` gives that p subject's (obj, act) only for
that resource id: the same set then also holds (obj, act, resource id).

The role definition may carry a grant's end as a link condition (``g = _, _, _, (_)``):
the Decider keeps each subject's end and drops its links from the instant on (see
delegauth.policy.decider), as Casbin's condition does at each enforce.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "FAST_MATCHERS",
    "ON_RESOURCES",
    "ActionTable",
    "closure",
    "hierarchy_links",
    "honours_resource_ids",
    "supports_fast_path",
]

ANY_DOMAIN = "*"
MAX_HIERARCHY = 10
SCOPE_SEP = "@"  # as in the matcher below (domain.ids.SCOPE_SEP)
# In an allowed set that holds (obj, act, resource id) entries: a deny for a subject without
# grants on single resources then costs one lookup of a str (its hash cached), not a tuple.
ON_RESOURCES = "@on-resources"

_SCOPED_MATCHER = (
    '(g(r.sub,p.sub,r.dom)||g(r.sub,p.sub+"@"+r.obj.id,r.dom))'
    '&&(p.dom=="*"||r.dom==p.dom)&&r.obj==p.obj&&r.act==p.act'
)
# Matchers the index implements, whitespace removed.
FAST_MATCHERS = frozenset(
    {
        'g(r.sub,p.sub,r.dom)&&(p.dom=="*"||r.dom==p.dom)&&r.obj==p.obj&&r.act==p.act',
        _SCOPED_MATCHER,
    }
)
_WS = re.compile(r"\s+")


def supports_fast_path(model_sections: Mapping[str, Mapping[str, str]]) -> bool:
    """True when the model is the RBAC-with-domains shape this index implements."""
    try:
        r = model_sections["r"]["r"]
        p = model_sections["p"]["p"]
        g = model_sections["g"]
        e = model_sections["e"]["e"]
        m = model_sections["m"]["m"]
    except KeyError:
        return False
    norm = lambda s: _WS.sub("", s)  # noqa: E731
    return (
        norm(r) == "sub,dom,obj,act"
        and norm(p) in {"sub,dom,obj,act", "sub,dom,obj,act,eft"}
        and list(g) == ["g"]
        and norm(g["g"]) in {"_,_,_", "_,_,_,(_)"}
        and norm(e) == "some(where(p_eft==allow))"
        and norm(m).replace("_", ".") in FAST_MATCHERS
    )


def honours_resource_ids(model_sections: Mapping[str, Mapping[str, str]]) -> bool:
    """True when the model's matcher gives roles ``<p subject>@<resource id>`` (a fast path
    model whose grants may be on single resources)."""
    matcher = model_sections.get("m", {}).get("m", "")
    return _WS.sub("", matcher).replace("_", ".") == _SCOPED_MATCHER


class ActionTable:
    """p lines grouped by subject and domain: subject -> {domain: frozenset((obj, act))}.

    ``scoped``: the model honours roles on single resources (honours_resource_ids)."""

    def __init__(self, p_lines: Iterable[Sequence[str]], scoped: bool = False) -> None:
        self.scoped = scoped
        table: dict[str, dict[str, set[tuple[str, str]]]] = {}
        for line in p_lines:
            if line[0] != "p":
                continue
            sub, dom, obj, act = line[1:5]
            eft = line[5] if len(line) > 5 else "allow"
            if eft != "allow":
                continue  # some(where (p.eft == allow)): deny lines never allow
            table.setdefault(sub, {}).setdefault(dom, set()).add((obj, act))
        self._table = {
            sub: {dom: frozenset(acts) for dom, acts in doms.items()} for sub, doms in table.items()
        }
        # Only these names can select p lines; memo keys are reduced to them.
        self.subjects = frozenset(self._table)
        self._specific_domains = {
            dom for doms in self._table.values() for dom in doms if dom != ANY_DOMAIN
        }
        self._cache: dict[tuple[frozenset[str], str], frozenset[tuple[str, ...] | str]] = {}

    def _here(self, sub: str, key_dom: str) -> frozenset[tuple[str, str]]:
        doms = self._table.get(sub)
        if not doms:
            return frozenset()
        found = doms.get(ANY_DOMAIN, frozenset())
        if key_dom != ANY_DOMAIN:
            found = found | doms.get(key_dom, frozenset())
        return found

    def allowed(self, subjects: frozenset[str], domain: str) -> frozenset[tuple[str, ...] | str]:
        """What any of ``subjects`` may do in ``domain``: (obj, act) everywhere, and
        (obj, act, resource id) on single resources (with ON_RESOURCES then); memoized per
        distinct subject set."""
        key_dom = domain if domain in self._specific_domains else ANY_DOMAIN
        # Keyed by the roles that have p lines (or are such a role on one resource), not by
        # the whole closure (which holds the user's own id): users with the same roles share
        # one frozenset and one memo entry.
        selecting = subjects & self.subjects
        if self.scoped:
            selecting |= {s for s in subjects if SCOPE_SEP in s}
        key = (selecting, key_dom)
        found = self._cache.get(key)
        if found is None:
            acc: set[tuple[str, ...] | str] = set()
            for sub in key[0]:
                acc.update(self._here(sub, key_dom))
                # Every split, as Casbin compares p.sub + "@" + r.obj.id with the whole name.
                at = sub.find(SCOPE_SEP) if self.scoped else -1
                while at >= 0:
                    resource_id = sub[at + 1 :]
                    on_it = [(o, a, resource_id) for o, a in self._here(sub[:at], key_dom)]
                    if on_it:
                        acc.update(on_it)
                        acc.add(ON_RESOURCES)
                    at = sub.find(SCOPE_SEP, at + 1)
            found = frozenset(acc)
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[key] = found
        return found


def hierarchy_links(model_sections: Mapping[str, Mapping[str, str]]) -> int:
    """How many links up Casbin follows from a subject under this model's role definition.

    pycasbin's domain role manager follows 9 (the subject plus 9 levels, 10 in all); its
    conditional one (``g = _, _, _, (_)``, grants with ends) follows 10."""
    g = model_sections.get("g", {}).get("g", "")
    return MAX_HIERARCHY if "(" in g else MAX_HIERARCHY - 1


def closure(
    subject: str, links: Mapping[str, frozenset[str]], levels: int = MAX_HIERARCHY - 1
) -> frozenset[str]:
    """The subject itself and every role reachable from it in ``levels`` links (Casbin's
    limit: see hierarchy_links)."""
    seen = {subject}
    frontier = [subject]
    for _ in range(levels):
        nxt = []
        for name in frontier:
            for role in links.get(name, ()):
                if role not in seen:
                    seen.add(role)
                    nxt.append(role)
        if not nxt:
            break
        frontier = nxt
    return frozenset(seen)
