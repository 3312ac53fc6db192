"""Which decisions a policy change would flip, for the grants that exist now.

Both policies decide every (user, area) of the given g lines against every action
either policy knows; only the answers that differ are reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from delegauth.policy.bundle import PolicyBundle
from delegauth.policy.decider import Decider
from delegauth.policy.memory_feed import MemoryPolicyFeed

__all__ = ["DecisionChange", "diff_policies"]


@dataclass(frozen=True, order=True)
class DecisionChange:
    subject: str
    domain: str
    obj: str
    act: str
    before: bool
    after: bool

    def __str__(self) -> str:
        word = {True: "allow", False: "deny"}
        return (
            f"{self.subject} {self.domain} {self.obj}:{self.act}: "
            f"{word[self.before]} -> {word[self.after]}"
        )


def _actions(bundle: PolicyBundle) -> set[tuple[str, str]]:
    found = set(bundle.catalogue.all_actions())
    found.update((line[3], line[4]) for line in bundle.p_lines if line[0] == "p" and len(line) > 4)
    return found


def diff_policies(
    old: PolicyBundle, new: PolicyBundle, g_lines: Iterable[Sequence[str]]
) -> list[DecisionChange]:
    lines = [tuple(line) for line in g_lines]
    feed = MemoryPolicyFeed(lines)
    before, after = Decider(old, feed), Decider(new, feed)
    before.sync()
    after.sync()
    pairs = sorted({(line[1], line[3]) for line in lines if line[1].startswith("user:")})
    actions = sorted(_actions(old) | _actions(new))
    changes = []
    for subject, domain in pairs:
        for obj, act in actions:
            was = before.decide(subject, domain, obj, act)
            now = after.decide(subject, domain, obj, act)
            if was != now:
                changes.append(DecisionChange(subject, domain, obj, act, was, now))
    return changes
