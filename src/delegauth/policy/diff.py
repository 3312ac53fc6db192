"""Which decisions a policy change would flip, for the grants that exist now.

Both policies decide every (user, area) of the given g lines against every action
either policy knows, at one instant (now by default): a grant whose end has come counts
as each policy's model says. Only the answers that differ are reported, each with the
end of the grant it concerns, if it has one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from delegauth.policy.bundle import PolicyBundle
from delegauth.policy.decider import Decider, end_seconds
from delegauth.policy.memory_feed import MemoryPolicyFeed

__all__ = ["DecisionChange", "diff_policies", "grant_ends"]


@dataclass(frozen=True, order=True)
class DecisionChange:
    subject: str
    domain: str
    obj: str
    act: str
    before: bool
    after: bool
    end: str = ""  # the grant's end (a g line's end field), "" for none
    ended: bool = False  # the end had come at the instant decided

    def __str__(self) -> str:
        word = {True: "allow", False: "deny"}
        text = (
            f"{self.subject} {self.domain} {self.obj}:{self.act}: "
            f"{word[self.before]} -> {word[self.after]}"
        )
        if self.end:
            text += f" (grant {'ended' if self.ended else 'ends'} {self.end})"
        return text


def _actions(bundle: PolicyBundle) -> set[tuple[str, str]]:
    found = set(bundle.catalogue.all_actions())
    found.update((line[3], line[4]) for line in bundle.p_lines if line[0] == "p" and len(line) > 4)
    return found


def grant_ends(g_lines: Iterable[Sequence[str]]) -> dict[tuple[str, str], str]:
    """(subject, domain) -> the earliest end on its g lines, for those that have one."""
    ends: dict[tuple[str, str], tuple[float, str]] = {}
    for line in g_lines:
        text = line[4] if len(line) > 4 else ""
        when = end_seconds(text)
        key = (line[1], line[3])
        if when < math.inf and (key not in ends or when < ends[key][0]):
            ends[key] = (when, text)
    return {key: text for key, (_, text) in ends.items()}


def diff_policies(
    old: PolicyBundle,
    new: PolicyBundle,
    g_lines: Iterable[Sequence[str]],
    at: datetime | None = None,
) -> list[DecisionChange]:
    """The decisions ``new`` would answer differently from ``old`` at ``at`` (naive UTC;
    default now). g lines may carry their grant's end as a fifth field."""
    lines = [tuple(line) for line in g_lines]
    instant = time.time() if at is None else at.replace(tzinfo=UTC).timestamp()
    feed = MemoryPolicyFeed(lines)
    before = Decider(old, feed, clock=lambda: instant)
    after = Decider(new, feed, clock=lambda: instant)
    before.sync()
    after.sync()
    ends = grant_ends(lines)
    pairs = sorted({(line[1], line[3]) for line in lines if line[1].startswith("user:")})
    actions = sorted(_actions(old) | _actions(new))
    changes = []
    for subject, domain in pairs:
        end = ends.get((subject, domain), "")
        ended = bool(end) and end_seconds(end) <= instant
        for obj, act in actions:
            was = before.decide(subject, domain, obj, act)
            now = after.decide(subject, domain, obj, act)
            if was != now:
                changes.append(DecisionChange(subject, domain, obj, act, was, now, end, ended))
    return changes
