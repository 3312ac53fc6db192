"""Line numbers of what a policies directory defines, for file:line messages.

tomllib gives values without positions, so a table or key is found again in the
file's text. The lookup understands the layouts catalogue.toml uses: ``[a.b]``
headers with ``key = value`` lines under them, and inline tables as values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["toml_line"]

# One part of a dotted TOML key: "basic string", 'literal string' or bare-key.
_PART = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*""")


def _header_path(line: str) -> tuple[str, ...] | None:
    """The dotted key of a ``[table]`` header line, or None for any other line."""
    text = line.strip()
    if not text.startswith("[") or text.startswith("[["):
        return None
    parts: list[str] = []
    pos = 1
    while True:
        m = _PART.match(text, pos)
        if m is None:
            return None
        basic, literal, bare = m.groups()
        if basic is not None:
            parts.append(re.sub(r"\\(.)", r"\1", basic))
        else:
            parts.append(literal if literal is not None else bare)
        pos = m.end()
        if text.startswith(".", pos):
            pos += 1
            continue
        rest = text[pos + 1 :].strip() if text.startswith("]", pos) else "x"
        return tuple(parts) if not rest or rest.startswith("#") else None


def _key_line(lines: Sequence[str], start: int, key: str) -> int | None:
    """The 1-based line of ``key = …`` in the table body that begins at index ``start``."""
    pattern = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*[.=]")
    for index in range(start, len(lines)):
        if _header_path(lines[index]) is not None:
            return None
        if pattern.match(lines[index]):
            return index + 1
    return None


def toml_line(lines: Sequence[str], path: Sequence[str]) -> int | None:
    """The 1-based line defining ``path`` (e.g. permissions, invoices, actions), or its
    nearest enclosing table's line, or None."""
    headers: dict[tuple[str, ...], int] = {}
    for index, line in enumerate(lines):
        found = _header_path(line)
        if found is not None and found not in headers:
            headers[found] = index
    for depth in range(len(path), 0, -1):
        header = headers.get(tuple(path[:depth]))
        if header is None:
            continue
        if depth == len(path):
            return header + 1
        return _key_line(lines, header + 1, path[depth]) or header + 1
    # A key of the root table (before any header), or a table written inline there.
    return _key_line(lines, 0, path[0]) if path else None
