"""The layout is the architecture: the domain core imports no framework or adapter."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
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
    "jwt": {"tokens.py", "client/_verify.py"},
    "httpx": {"client/_transport.py", "webhooks/http.py"},
    "standardwebhooks": {"webhooks/signing.py"},
    "argon2": {"passwords.py"},
    "smtplib": {"mail/transport.py"},
    "prometheus_client": {"metrics.py"},
    "gunicorn": {"serving.py"},
    "granian": {"serving.py"},
    "email_validator": {"domain/emails.py"},
    "precis_i18n": {"domain/emails.py"},
    "confusable_homoglyphs": {"domain/emails.py"},
    "jinja2": {"pages/rendering.py"},
}
# The two edges: the JSON API (api/) and the hosted pages (pages/). Only the composition
# root (api/app.py) sees both; the pages borrow the API's request plumbing, no resource.
API_PLUMBING_FOR_PAGES = {
    "delegauth.api.body",
    "delegauth.api.catalogue",
    "delegauth.api.params",
    "delegauth.api.problems",
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


def test_the_client_package_needs_nothing_of_the_server_side() -> None:
    """delegauth.client is what a backend service installs: httpx, PyJWT and itself only
    (Falcon only in its own integration module, imported on demand)."""
    allowed = ("delegauth.client", "httpx", "jwt", "falcon")
    offenders = []
    for path in sorted((SRC / "client").glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            server_side = name.startswith("delegauth") and not name.startswith(allowed)
            stray_falcon = top == "falcon" and path.name != "falcon.py"
            foreign = top not in sys.stdlib_module_names and not name.startswith(allowed)
            if server_side or stray_falcon or foreign:
                offenders.append(f"{path.name}: {name}")
    assert offenders == []
    code = "import sys, delegauth.client; print(sorted(m.split('.')[0] for m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert not {"falcon", "peewee", "casbin", "authlib", "gunicorn"} & set(eval(loaded))  # noqa: S307


def test_the_json_api_and_the_pages_stay_apart() -> None:
    offenders = []
    for path in sorted((SRC / "api").glob("*.py")):
        if path.name == "app.py":
            continue
        offenders += [
            f"api/{path.name}: {n}" for n in _imports(path) if n.startswith("delegauth.pages")
        ]
    for path in sorted((SRC / "pages").glob("*.py")):
        offenders += [
            f"pages/{path.name}: {n}"
            for n in _imports(path)
            if n.startswith("delegauth.api") and n not in API_PLUMBING_FOR_PAGES
        ]
    assert offenders == []


def test_no_html_is_assembled_in_python() -> None:
    """Pages are templates (pages/templates/, autoescaped): no f-string starts a tag."""
    tag_in_fstring = re.compile(r"""\bf(["']{1,3})\s*<[a-zA-Z/!]""")
    offenders = [
        f"{path.relative_to(SRC).as_posix()}:{n}"
        for edge in ("api", "pages")
        for path in sorted((SRC / edge).glob("*.py"))
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if tag_in_fstring.search(line)
    ]
    assert offenders == []
