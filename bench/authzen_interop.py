"""The OpenID AuthZEN interop scenarios, sent as written to the real server.

Reads the scenario files from a local copy of the openid/authzen repository (a work
tree, or a bare git directory read at HEAD), starts `delegauth serve` once per example
in policies/examples/ (DELEGAUTH_POLICIES_DIR), sends every request of each scenario
byte for byte (the JSON the interop harnesses send) with a service token, and compares
the answers as the harnesses do. Prints passed/total per scenario and every failure.

    .venv/bin/python bench/authzen_interop.py PATH [--smoke] [--workers 2]

The scenario files are never copied into this repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` (requests, PyJWT, Falcon) finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ISSUER, Server, start_server  # noqa: E402

from delegauth.tokens import KeyRing, TokenService  # noqa: E402

TODO = "interop/authzen-todo-backend/test/decisions-authorization-api-1_0-02.json"
GATEWAY = "interop/authzen-api-gateways/test-harness/test/decisions.json"
SEARCH = "interop/authzen-search-demo/test-harness/src/{}/results.json"


@dataclass(frozen=True)
class Scenario:
    name: str
    example: str  # the directory under policies/examples/
    path: str  # the scenario file in the openid/authzen repository
    kind: str  # "decisions" or the search endpoint: "subject", "resource", "action"


SCENARIOS = (
    Scenario("Todo (1.0-02)", "todo", TODO, "decisions"),
    Scenario("API gateway", "gateway", GATEWAY, "decisions"),
    Scenario("search, subject", "search", SEARCH.format("subject"), "subject"),
    Scenario("search, resource", "search", SEARCH.format("resource"), "resource"),
    Scenario("search, action", "search", SEARCH.format("action"), "action"),
)


def read_scenario(repo: Path, path: str) -> dict[str, Any]:
    """A scenario file from a work tree, or from a bare git directory at HEAD."""
    if (repo / path).is_file():
        return dict(json.loads((repo / path).read_text("utf-8")))
    text = subprocess.run(
        ["git", f"--git-dir={repo}", "show", f"HEAD:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(text))


def describe(repo: Path) -> str:
    head = subprocess.run(
        [
            "git",
            f"--git-dir={repo}" if not (repo / ".git").exists() else f"--git-dir={repo / '.git'}",
            "rev-parse",
            "--short",
            "HEAD",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{repo} at {head}" if head else str(repo)


def body_of(request: dict[str, Any]) -> bytes:
    """The bytes the interop harnesses send: JSON.stringify of the request as written."""
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()


def _sorted_results(items: list[dict[str, Any]]) -> str:
    """The harness's comparison: results sorted by (type, id) or name, nulls dropped."""
    key = (
        (lambda r: (r.get("type", ""), r.get("id", "")))
        if items and "type" in items[0]
        else (lambda r: r.get("name", ""))
    )
    cleaned = [{k: v for k, v in r.items() if v is not None} for r in items]
    return json.dumps(sorted(cleaned, key=key))  # key order matters, as in JSON.stringify


@dataclass
class Outcome:
    passed: int = 0
    total: int = 0
    failures: list[str] | None = None


def run_case(
    session: requests.Session, server: Server, token: str, kind: str, group: str, case: Any
) -> str | None:
    """None when the server answers as the scenario expects, else what went wrong."""
    request = case["request"]
    if kind == "decisions":
        route = "/access/v1/evaluations" if group == "evaluations" else "/access/v1/evaluation"
    else:
        route = f"/access/v1/search/{kind}"
    res = session.post(
        server.url(route),
        data=body_of(request),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    if res.status_code != 200:
        return f"HTTP {res.status_code}: {res.text[:200]}"
    got = res.json()
    expected = case["expected"]
    if kind == "decisions" and group == "evaluations":
        answer = [{"decision": e.get("decision")} for e in got.get("evaluations", [])]
        ok = answer == expected
    elif kind == "decisions":
        answer = got.get("decision")
        ok = answer is expected
    else:
        answer = got.get("results") or []
        ok = _sorted_results(answer) == _sorted_results(expected.get("results") or [])
    return None if ok else f"expected {json.dumps(expected)}, got {json.dumps(answer)}"


def run(repo: Path, workers: int) -> dict[str, Outcome]:
    tmp = Path(tempfile.mkdtemp(prefix="delegauth-interop-"))
    keys = tmp / "keys"
    mint = TokenService(KeyRing.load_or_create(str(keys)), ISSUER, ISSUER)
    token = mint.issue(sub="interop", client_id="interop", scope=["decisions"])
    outcomes: dict[str, Outcome] = {}
    for example in dict.fromkeys(s.example for s in SCENARIOS):
        env = {
            "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp}/{example}.sqlite3",
            "DELEGAUTH_ISSUER": ISSUER,
            "DELEGAUTH_POLICIES_DIR": str(ROOT / "policies" / "examples" / example),
            "DELEGAUTH_KEY_DIR": str(keys),
            "DELEGAUTH_SMTP_URL": "log:",
            "DELEGAUTH_LOG_LEVEL": "WARNING",
        }
        server = start_server(env, tmp / f"{example}.log", workers=workers)
        try:
            session = requests.Session()
            for scenario in (s for s in SCENARIOS if s.example == example):
                data = read_scenario(repo, scenario.path)
                outcome = outcomes[scenario.name] = Outcome(failures=[])
                for group, cases in data.items():
                    for case in cases:
                        outcome.total += 1
                        wrong = run_case(session, server, token, scenario.kind, group, case)
                        if wrong is None:
                            outcome.passed += 1
                        else:
                            assert outcome.failures is not None
                            request = json.dumps(case["request"])
                            outcome.failures.append(f"{request}\n      {wrong}")
        finally:
            server.stop()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="a local copy of openid/authzen")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="one worker per server")
    args = parser.parse_args()
    workers = 1 if args.smoke else args.workers
    outcomes = run(args.path, workers)
    print(f"AuthZEN interop scenarios from {describe(args.path)}")
    print(f"{'scenario':<22}{'example':<10}{'passed / total':>16}")
    for scenario in SCENARIOS:
        o = outcomes[scenario.name]
        print(f"{scenario.name:<22}{scenario.example:<10}{f'{o.passed} / {o.total}':>16}")
    for scenario in SCENARIOS:
        for failure in outcomes[scenario.name].failures or []:
            print(f"FAIL {scenario.name}: {failure}")


if __name__ == "__main__":
    main()
