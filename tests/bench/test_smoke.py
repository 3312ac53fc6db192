"""Every script under bench/ runs in its smoke mode, so that no benchmark can rot unseen.

A smoke run uses tiny sizes and takes seconds, but goes through the same code paths and
prints every figure. Each case below checks that the script exits 0, that each figure it
prints is there and well-formed, and that it reports 0 wrong answers where it checks them.
A new script under bench/ must get a case here (test_every_bench_has_a_smoke_case).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
NUM = r"-?[\d,]+(?:\.\d+)?"


def run_bench(script: str, *args: str, timeout: float = 300) -> str:
    """Runs bench/<script> --smoke and returns what it printed; fails on a non-zero exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert res.returncode == 0, f"{script} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def load(script: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCH / script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def number(text: str) -> float:
    return float(text.replace(",", ""))


def row_value(out: str, label: str) -> str:
    """The value printed after ``label`` in a two-column report row."""
    match = re.search(rf"^\s+{re.escape(label)}\s{{2,}}(\S.*?)\s*$", out, re.MULTILINE)
    assert match, f"figure {label!r} is missing from the report:\n{out}"
    return match.group(1)


# -- the scripts ----------------------------------------------------------------------------


def check_decisions(out: str) -> None:
    table = load("decisions.py").TABLE
    for label, path, spec in table:
        if path is None:
            assert re.search(rf"^{re.escape(label)}$", out, re.MULTILINE), label
            continue
        value = row_value(out, label)
        if spec == "lat":
            assert re.fullmatch(rf"{NUM} / {NUM}", value), (label, value)
        elif spec:
            assert re.fullmatch(NUM, value), (label, value)
            assert number(value) >= 0, (label, value)
    assert number(row_value(out, "wrong answers (vs expected)")) == 0
    assert number(row_value(out, "wrong answers (vs expected, both passes)")) == 0
    assert row_value(out, "fast path") == "True"
    positive = ("warm decisions/s, one core", "second pass, decisions/s", "areas held after that")
    for label in positive:
        assert number(row_value(out, label)) > 0, label
    assert number(row_value(out, "warm throughput ratio")) > 1
    # The warm-up loads every area; a bound smaller than the working set holds and evicts.
    assert number(row_value(out, "wrong answers after the warm-up")) == 0
    assert number(row_value(out, "wrong answers with the bound")) == 0
    assert number(row_value(out, "areas loaded by the warm-up")) == number(row_value(out, "areas"))
    bound = number(row_value(out, "area cache bound (DELEGAUTH_AREA_CACHE)"))
    assert 0 < number(row_value(out, "most areas held")) <= bound
    assert bound < number(row_value(out, "areas in the stream (working set)"))
    assert number(row_value(out, "evictions")) > 0
    assert 0 < number(row_value(out, "hit ratio")) < 1
    # Other models, decided by Casbin itself: each example's table requests, all right.
    for example in ("gateway", "search", "todo"):
        assert number(row_value(out, f"{example}: table requests")) > 0, example
        assert number(row_value(out, f"{example}: mapped and decided, decisions/s")) > 0
        assert number(row_value(out, f"{example}: plain casbin enforce, decisions/s")) > 0
        assert number(row_value(out, f"{example}: wrong answers (vs the tables and Casbin)")) == 0
    # Grants' ends: both sides measured in the same run, the same answers (ends a year away).
    assert number(row_value(out, "warm decision, no grant ends, best round, ns")) > 0
    assert number(row_value(out, "warm decision, every delegate's grant ends, best round, ns")) > 0
    row_value(out, "expiry check cost per decision (best rounds), ns")
    assert number(row_value(out, "answers that differ (ends a year away)")) == 0


def check_tokens(out: str) -> None:
    algorithms = load("tokens.py").ALGORITHMS
    assert algorithms
    for alg in algorithms:
        pattern = rf"^{re.escape(alg)}\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})\s+(\d+)$"
        match = re.search(pattern, out, re.MULTILINE)
        assert match, f"no figures for {alg}:\n{out}"
        assert all(number(g) > 0 for g in match.groups()), match.group(0)
    assert number(row_value(out, "CPU µs a request")) > 0
    assert number(row_value(out, "requests per CPU second")) > 0
    assert number(row_value(out, "wrong answers")) == 0
    shares = [number(row_value(out, label).rstrip("%")) for label in TOKEN_PARTS]
    assert all(share >= 0 for share in shares) and 95 <= sum(shares) <= 105, shares


TOKEN_PARTS = (
    "signing (TokenService.issue_access)",
    "client lookup (PeeweeOAuthStore.get_client)",
    "Authlib's request (oauth_request)",
    "Authlib's grant and client checks (the rest of its response)",
    "Falcon, middleware and the response (the rest)",
)


def check_propagation(out: str) -> None:
    match = re.search(
        rf"p50\s+({NUM}) ms\s+p99\s+({NUM}) ms\s+max\s+({NUM}) ms\s+mean\s+({NUM}) ms", out
    )
    assert match, out
    p50, p99, worst, _mean = (number(g) for g in match.groups())
    assert 0 <= p50 <= p99 <= worst
    assert re.search(r"propagation A->B on (SQLite|PostgreSQL), 1 workers each", out), out


def check_http(out: str) -> None:
    listed = re.search(r"^servers: (.+)$", out, re.MULTILINE)
    assert listed, f"no servers line:\n{out}"
    servers = [name.strip() for name in listed.group(1).split(",")]
    workloads = ("one evaluation", "batch of 100", "tokens")
    for workload in workloads:
        for server in servers:
            for target in ("delegauth", "bare"):
                row = re.search(
                    rf"^{re.escape(workload)}, (\d+) conns\s+{re.escape(server)}\s+{target}"
                    rf"\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})\s+(\d+)\s+(\d+)$",
                    out,
                    re.MULTILINE,
                )
                assert row, f"no {server} {target} row for {workload}:\n{out}"
                _conns, per_s, p50, p99, checked, wrong, bad = (number(g) for g in row.groups())
                assert per_s > 0 and checked > 0 and 0 <= p50 <= p99, row.group(0)
                assert wrong == 0 and bad == 0, row.group(0)
            ratio = re.search(
                rf"^  {re.escape(workload)}, \d+ conns\s+{re.escape(server)}\s+({NUM})$",
                out,
                re.MULTILINE,
            )
            assert ratio and number(ratio.group(1)) > 0, f"no {server} ratio for {workload}:\n{out}"
            cpu = re.search(
                rf"^  {re.escape(workload)}, \d+ conns\s+{re.escape(server)}"
                rf"\s+({NUM})\s+({NUM})\s+({NUM})$",
                out,
                re.MULTILINE,
            )
            assert cpu, f"no {server} CPU per answer for {workload}:\n{out}"
            assert all(number(g) > 0 for g in cpu.groups()), cpu.group(0)
    assert number(row_value(out, "wrong answers")) == 0
    assert number(row_value(out, "refused or failed requests (delegauth)")) == 0


def check_consistency(out: str) -> None:
    assert re.search(
        r"consistency tokens ahead of the change log on (SQLite|PostgreSQL), 1 workers", out
    ), out
    for who in ("alone", "beside 8 ordinary callers", "beside 8 far-future callers"):
        assert number(row_value(out, f"decisions/s, {who}")) > 0, who
        value = row_value(out, f"p50 / p99 ms, {who}")
        match = re.fullmatch(rf"({NUM}) / ({NUM})", value)
        assert match and 0 <= number(match[1]) <= number(match[2]), (who, value)
    for label in (
        "throughput ratio (far-future / alone)",
        "throughput ratio (far-future / ordinary)",
        "ordinary callers' answers/s",
        "far-future answers/s",
    ):
        assert number(row_value(out, label)) > 0, label
    # A far-future token is refused (409), never left to time out (503).
    assert number(row_value(out, "far-future answers that were not 409")) == 0
    assert number(row_value(out, "ordinary answers that were not 200")) == 0
    assert number(row_value(out, "wrong decisions")) == 0


# The interop scenarios and how many cases each has in openid/authzen (1.0 final).
INTEROP_TOTALS = {
    "Todo (1.0-02)": 43,
    "API gateway": 25,
    "search, subject": 60,
    "search, resource": 18,
    "search, action": 120,
}


def check_authzen_interop(out: str) -> None:
    for name, total in INTEROP_TOTALS.items():
        row = re.search(rf"^{re.escape(name)}\s+\w+\s+(\d+) / (\d+)$", out, re.MULTILINE)
        assert row, f"no row for {name}:\n{out}"
        assert (int(row[1]), int(row[2])) == (total, total), row.group(0)
    assert "FAIL" not in out, out


def check_import(out: str) -> None:
    match = re.search(r"^import into (SQLite|PostgreSQL), batches of", out, re.MULTILINE)
    assert match, out
    db = match.group(1)
    rates = re.findall(rf"^\s+{db} grants/s at ({NUM}) grants\s{{2,}}({NUM})$", out, re.MULTILINE)
    assert len(rates) == 2, out
    assert all(number(count) > 0 and number(rate) > 0 for count, rate in rates), rates
    for which in ("small", "full"):
        value = row_value(out, f"{db} peak RSS MiB / file MiB, {which}")
        assert re.fullmatch(rf"{NUM} / {NUM}", value), value
    # The baseline (the bare driver into a copy of the database): a rate and the importer's
    # ratio to it, or n/a with the reason it could not run.
    bare = re.findall(
        rf"^\s+{db} bare driver grants/s at ({NUM}) grants\s{{2,}}(\S.*?)\s*$", out, re.MULTILINE
    )
    assert len(bare) == 1, out
    ratio = row_value(out, f"{db} ratio, importer / bare driver")
    if bare[0][1].startswith("n/a"):
        assert re.fullmatch(r"n/a \(.+\)", bare[0][1]) and ratio == bare[0][1], (bare, ratio)
    else:
        assert number(bare[0][0]) == number(rates[1][0]) and number(bare[0][1]) > 0, bare
        assert re.fullmatch(NUM, ratio) and number(ratio) > 0, ratio
        if db == "PostgreSQL":
            assert row_value(out, f"{db} bare driver grants per server CPU second")
    assert number(row_value(out, f"{db} grants per CPU second of the importer")) > 0
    if db == "PostgreSQL":  # the server's CPU, read from /proc: the server is on loopback
        assert row_value(out, f"{db} grants per CPU second of the server")
        assert number(row_value(out, f"{db} grants per CPU second, both")) > 0
    batches, mean = row_value(out, f"{db} batches, mean lines a batch").split(", ")
    assert number(batches) > 0 and number(mean) > 0
    assert re.fullmatch(
        rf"{NUM} {NUM} {NUM}", row_value(out, f"{db} load average at the end (1, 5, 15 min)")
    )
    assert number(row_value(out, f"{db} decisions checked")) > 0
    assert number(row_value(out, f"{db} wrong decisions")) == 0
    assert number(row_value(out, f"{db} bad lines")) == 0


def check_webhooks(out: str) -> None:
    assert re.search(r"webhook delivery lag on (SQLite|PostgreSQL), serve with \d+ workers", out)
    rows = re.findall(
        rf"^  (write|ack) -> receiver\s+p50\s+({NUM}) ms\s+p99\s+({NUM}) ms\s+max\s+({NUM}) ms$",
        out,
        re.MULTILINE,
    )
    assert len(rows) == 4, out  # write and ack, paced and burst
    for clock, p50, p99, worst in rows:
        assert number(p50) <= number(p99) <= number(worst), rows
        # The event's timestamp is written before the commit, so nothing arrives before it.
        # The API's answer comes after the commit, and the delivery may beat it to the
        # client: a lag from "ack" may be below zero.
        if clock == "write":
            assert number(p50) >= 0, rows
    assert number(row_value(out, "drained").split()[0]) > 0
    assert number(row_value(out, "bad signatures")) == 0


CASES: dict[str, Callable[[str], None]] = {
    "decisions.py": check_decisions,
    "tokens.py": check_tokens,
    "propagation.py": check_propagation,
    "consistency.py": check_consistency,
    "http.py": check_http,
    "authzen_interop.py": check_authzen_interop,
    "import.py": check_import,
    "webhooks.py": check_webhooks,
}


def test_every_bench_has_a_smoke_case() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(CASES), "each bench/ script needs a smoke case in this file"


@pytest.mark.parametrize("script", ["decisions.py", "tokens.py"])
def test_bench_smoke(script: str) -> None:
    CASES[script](run_bench(script))


def test_propagation_smoke(database_url: str) -> None:
    db = database_url if database_url.startswith("postgres") else "sqlite"
    check_propagation(run_bench("propagation.py", "--db", db))


def test_webhooks_smoke(database_url: str) -> None:
    db = database_url if database_url.startswith("postgres") else "sqlite"
    check_webhooks(run_bench("webhooks.py", "--db", db))


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian package) is not installed")
def test_http_smoke() -> None:
    check_http(run_bench("http.py"))


def test_consistency_smoke(database_url: str) -> None:
    db = database_url if database_url.startswith("postgres") else "sqlite"
    check_consistency(run_bench("consistency.py", "--db", db))


# A clone of openid/authzen, or a bare git directory of it (read at HEAD).
AUTHZEN_REPO = os.environ.get("DELEGAUTH_AUTHZEN_REPO", "")


@pytest.mark.skipif(
    not AUTHZEN_REPO or not Path(AUTHZEN_REPO).exists(),
    reason="no local copy of openid/authzen: set DELEGAUTH_AUTHZEN_REPO to a clone of it",
)
def test_authzen_interop_smoke() -> None:
    check_authzen_interop(run_bench("authzen_interop.py", AUTHZEN_REPO))


def test_ci_gives_the_interop_smoke_case_a_copy() -> None:
    """.ci/run hands the case above a copy of openid/authzen (a shallow clone unless
    DELEGAUTH_AUTHZEN_REPO names one) before it runs the tests, so CI does not skip it
    whenever a copy can be had."""
    script = (ROOT / ".ci" / "run").read_text("utf-8")
    tests_at = script.index("-m pytest")
    export_at = script.find('export DELEGAUTH_AUTHZEN_REPO="$AUTHZEN_COPY"')
    clone_at = script.find("git clone -q --depth 1 https://github.com/openid/authzen")
    assert 0 <= clone_at < export_at < tests_at, "CI must export a copy before the tests"
    guard = script.rfind('if [ -z "${DELEGAUTH_AUTHZEN_REPO:-}" ]', 0, clone_at)
    assert guard >= 0, "a copy CI was given must be used, not replaced"


def test_import_smoke(database_url: str) -> None:
    if database_url.startswith("postgres"):
        check_import(run_bench("import.py", "--db", "postgres", "--pg", database_url))
    else:
        check_import(run_bench("import.py", "--db", "sqlite"))


def test_a_broken_bench_fails_its_case() -> None:
    """The checks can fail: a report with a wrong answer or a missing figure is refused."""
    good = "  wrong answers (vs expected)     3\n"
    with pytest.raises(AssertionError):
        check_decisions(good)
    with pytest.raises(AssertionError):
        check_propagation("p50 nan ms")
    with pytest.raises(AssertionError):
        check_consistency("  far-future answers that were not 409  12\n")
    with pytest.raises(AssertionError):
        check_import("import into SQLite, batches of 500 lines\n  SQLite wrong decisions  3\n")
    with pytest.raises(AssertionError):
        check_authzen_interop("Todo (1.0-02)         todo               42 / 43\n")
    with pytest.raises(AssertionError):
        check_http(
            "servers: granian\n"
            "one evaluation, 4 conns   granian   delegauth   1,262   2.71   11.89   1,275   1   0\n"
        )


def test_benches_read_no_private_attributes() -> None:
    """Benchmarks use public interfaces (or ones kept for them on purpose), never `obj._x`."""
    import ast

    offenders = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            attr = node.attr if isinstance(node, ast.Attribute) else ""
            if attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__")):
                offenders.append(f"{path.name}:{node.lineno} .{attr}")
    assert not offenders, offenders
