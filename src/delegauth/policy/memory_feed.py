"""MemoryPolicyFeed: a PolicyFeed over a fixed list of g lines, for checks, tables and explain.

It has no change log: a Decider built on it sees the g lines as they were given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from delegauth.policy.decider import AreaChange

__all__ = ["MemoryPolicyFeed"]


class MemoryPolicyFeed:
    def __init__(self, g_lines: Iterable[Sequence[str]] = ()) -> None:
        self._links: dict[str, list[tuple[str, ...]]] = {}
        for line in g_lines:
            ptype, sub, role, dom = line[0], line[1], line[2], line[3]
            if ptype != "g":
                raise ValueError(f"not a g line: {tuple(line)!r}")
            end = line[4] if len(line) > 4 else ""  # the grant's end, if any
            self._links.setdefault(dom, []).append((sub, role, end))

    def domain_links(self, domain: str) -> list[tuple[str, ...]]:
        return list(self._links.get(domain, ()))

    def latest_version(self) -> int:
        return 0

    def changes_since(self, version: int, limit: int) -> list[AreaChange]:
        return []
