"""The browser walks go where people go: the root URL, links taken from mail, and the
application's own page; never a typed internal URL (a static check, no browser)."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent


def _gotos() -> list[tuple[str, int, ast.expr]]:
    found = []
    for path in sorted(HERE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "goto"
            ):
                found.append((path.name, node.lineno, node.args[0]))
    return found


def _typed_path(arg: ast.expr) -> bool:
    """A literal (or f-string) path of ours other than the root URL."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value.startswith("/") and arg.value != "/"
    if isinstance(arg, ast.JoinedStr) and arg.values:
        first = arg.values[0]
        return isinstance(first, ast.Constant) and str(first.value).startswith("/")
    if isinstance(arg, ast.BinOp):
        return _typed_path(arg.left)
    return False


def test_walks_never_type_an_internal_url() -> None:
    gotos = _gotos()
    assert len(gotos) > 10
    typed = [(name, line) for name, line, arg in gotos if _typed_path(arg)]
    assert typed == [], typed


def test_the_check_sees_a_typed_url() -> None:
    assert _typed_path(ast.parse('"/signup"', mode="eval").body)
    assert _typed_path(ast.parse('f"/areas/{a}/users"', mode="eval").body)
    assert _typed_path(ast.parse('"/invitations/accept?token=" + t', mode="eval").body)
    assert not _typed_path(ast.parse('"/"', mode="eval").body)
    assert not _typed_path(ast.parse("walk.invitation_link(inbox, to, who)", mode="eval").body)
