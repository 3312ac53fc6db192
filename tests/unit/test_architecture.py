"""The layout is the architecture: the domain core imports no framework or adapter."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "delegauth"
FORBIDDEN_IN_DOMAIN = (
    "falcon",
    "peewee",
    "playhouse",
    "casbin",
    "jwt",
    "authlib",
    "argon2",
    "smtplib",
    "delegauth.api",
    "delegauth.storage",
    "delegauth.policy",
    "delegauth.mail",
    "delegauth.tokens",
    "delegauth.passwords",
    "delegauth.cli",
    "delegauth.config",
)
# One small module of ours per third-party library.
OWNERS = {
    "casbin": {"policy/casbin_engine.py", "storage/casbin_adapter.py"},
    "jwt": {"tokens.py"},
    "argon2": {"passwords.py"},
    "smtplib": {"mail/transport.py"},
    "prometheus_client": {"metrics.py"},
    "gunicorn": {"serving.py"},
    "email_validator": {"domain/emails.py"},
    "precis_i18n": {"domain/emails.py"},
    "confusable_homoglyphs": {"domain/emails.py"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_core_imports_no_adapter_or_framework() -> None:
    offenders = []
    for path in sorted((SRC / "domain").glob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_DOMAIN):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_each_library_stays_behind_its_module() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for name in _imports(path):
            for lib, owners in OWNERS.items():
                if (name == lib or name.startswith(lib + ".")) and rel not in owners:
                    offenders.append(f"{rel}: {name}")
    assert offenders == []
