"""A writable copy of the shipped policies/ for each test that breaks it on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[3] / "policies"

BUNDLES = """
[bundles.money]
label = { en = "Money", es = "Dinero" }
description = { en = "Invoices and quotes.", es = "Facturas y presupuestos." }
permissions = ["invoices", "quotes"]
"""


class PoliciesCopy:
    """policies/ copied into a temporary directory, with small editing helpers."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def replace(self, name: str, old: str, new: str) -> None:
        text = self.path(name).read_text("utf-8")
        assert old in text, f"{old!r} is not in {name}: update the test"
        self.path(name).write_text(text.replace(old, new, 1), "utf-8")

    def append(self, name: str, text: str) -> None:
        path = self.path(name)
        before = path.read_text("utf-8") if path.exists() else ""
        path.write_text(before + text, "utf-8")

    def write(self, name: str, text: str) -> None:
        self.path(name).parent.mkdir(parents=True, exist_ok=True)
        self.path(name).write_text(text, "utf-8")

    def line_of(self, name: str, needle: str) -> int:
        for number, line in enumerate(self.path(name).read_text("utf-8").splitlines(), start=1):
            if needle in line:
                return number
        raise AssertionError(f"{needle!r} is not in {name}")


@pytest.fixture
def policies(tmp_path: Path) -> PoliciesCopy:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    return PoliciesCopy(root)
