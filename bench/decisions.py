"""How fast the Decider answers at N grants, next to plain Casbin on the same queries.

For each size: builds a fresh SQLite database with N grants as g lines (one owner and three
delegates per area, so N/4 areas), then measures in fresh processes so that memory figures
belong to what is measured:

- decider: startup (construct + sync), cold (first touch of an area) and warm decisions,
  decisions/s on one core, p50/p99 per decision, RSS, and every area loaded at once;
- casbin: the same query stream through plain casbin.Enforcer.enforce (build_enforcer);
- warm-up: Decider.warm_up (every area read in bulk) then the same stream's first pass;
- bounded: an area cache smaller than the stream's working set (--bound, default half of
  it): the hit ratio and what a miss (a first touch, read on its own) costs.

Then, once, the cost of grants' ends (expiry): the same warm stream through two Deciders
in one process, one whose areas hold only grants without an end and one whose delegates'
grants all end (in a year: every decision compares the area's next end with the clock),
in alternating rounds; the difference per decision is what the expiry check costs.

Then, once, the models other than the delegation policy (each policies/examples/ directory
with decision tables): their AuthZEN requests, mapped by the example's authzen.toml and
decided by Casbin itself (Decider.decide_question, matchers compiled once), next to plain
casbin.Enforcer.enforce on the same requests, every answer checked against the tables.

With --pg URL, the warm-up and bounded phases also run on PostgreSQL (the same g lines,
copied into that database, which must be a throwaway one: its tables are emptied).

    .venv/bin/python bench/decisions.py [--sizes 1000,1000000] [--queries N] [--pg URL]

bench/README.md says what each figure means.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` (requests, PyJWT, Falcon) finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import base64
import json
import os
import pickle
import random
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from delegauth.domain.ids import PERM_ALL, ROLE_OWNER

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"

DELEGATES_PER_AREA = 3
ALL_SHARE = 0.10  # delegates holding perm:all
UNKNOWN_POOL = 1000  # distinct never-granted users and areas in the query stream
REUSED_USER_SHARE = 0.20  # delegates who already belong to another area
# The query mix: allowed for a member, denied for a member, unknown user, unknown area.
MIX = (("allow", 0.50), ("member-deny", 0.20), ("unknown-user", 0.15), ("unknown-area", 0.15))
UNKNOWN_ACTIONS = [("invoice", "delete"), ("server", "reboot")]
INSERT_BATCH = 250_000
BULK_CACHE_KIB = 512 * 1024
PERCENTILE_SAMPLES = 200_000
# Up to this many g lines, the Casbin enforcer is built over all of them; past it, over the
# g lines of the areas its sample asks about. build_enforcer is quadratic in lines
# (pycasbin's Model.add_policy checks for duplicates with a list scan).
CASBIN_ALL_LINES_MAX = 10_000
PROBE_AREAS = 10  # areas whose loading from the store is timed on its own


# -- measuring --------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timer_overhead_ns() -> int:
    pc = time.perf_counter_ns
    deltas = []
    for _ in range(100_000):
        t0 = pc()
        deltas.append(pc() - t0)
    deltas.sort()
    return deltas[len(deltas) // 2]


def percentiles(samples_ns: list[int], overhead_ns: int) -> dict[str, float]:
    s = sorted(max(0, x - overhead_ns) for x in samples_ns)
    if not s:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "mean": 0.0}
    return {
        "p50": s[len(s) // 2] / 1000,
        "p99": s[min(len(s) - 1, int(len(s) * 0.99))] / 1000,
        "max": s[-1] / 1000,
        "mean": sum(s) / len(s) / 1000,
    }


def per_call(fn: Callable[..., object], queries: Sequence[tuple[str, str, str, str]]):
    """Answers and per-call nanoseconds."""
    pc = time.perf_counter_ns
    answers, samples = [], []
    for q in queries:
        t0 = pc()
        a = fn(*q)
        t1 = pc()
        answers.append(a)
        samples.append(t1 - t0)
    return answers, samples


def pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned"


# -- phase 1: the database and the query stream -------------------------------------------


def _rand_id(rng: random.Random, kind: str) -> str:
    return f"{kind}_" + base64.b32encode(rng.randbytes(16)).decode("ascii").rstrip("=").lower()


def phase_build(
    work: Path, grants: int, queries: int, working_set: int, seed: int
) -> dict[str, object]:
    from delegauth.policy.bundle import load_bundle
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy
    from delegauth.storage.schema import migrate

    rng = random.Random(seed)
    catalogue = load_bundle(POLICIES).catalogue
    perm_actions = {f"perm:{p.name}": frozenset(p.actions) for p in catalogue}
    every_action = frozenset(catalogue.all_actions())
    perm_names = sorted(perm_actions)

    db = open_database(f"sqlite:///{work / 'bench.sqlite3'}")
    database_proxy.initialize(db)
    migrate(db)

    n_areas = max(1, grants // (1 + DELEGATES_PER_AREA))
    # The areas the query stream is about (the working set), picked up front so only their
    # members are kept in memory.
    hot = rng.sample(range(n_areas), min(working_set, n_areas))
    stream_areas = [rng.choice(hot) for _ in range(queries)]
    wanted = set(stream_areas)
    # A few areas for the store diagnostics, measured before the Decider loads anything.
    probes = set(rng.sample(range(n_areas), min(n_areas, 2 * PROBE_AREAS)))
    probe_names: list[str] = []
    members: dict[int, list[tuple[str, str, frozenset[tuple[str, str]]]]] = {}

    def allowed_by(roles: tuple[str, ...]) -> frozenset[tuple[str, str]]:
        if roles[0] in (ROLE_OWNER, PERM_ALL):
            return every_action
        return frozenset().union(*(perm_actions[r] for r in roles))

    known_users: list[str] = []

    sql = (
        "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES ('g', ?, ?, ?, '', '', '')"
    )
    batch: list[tuple[str, str, str]] = []
    g_lines = 0
    written = 0
    t_insert = 0.0
    t_start = time.perf_counter()

    def flush() -> None:
        nonlocal t_insert, g_lines
        t0 = time.perf_counter()
        with db.atomic():
            db.cursor().executemany(sql, batch)
        t_insert += time.perf_counter() - t0
        g_lines += len(batch)
        batch.clear()

    with db.connection_context():
        # The unique index on every column takes rows in random order (ids are random): a
        # big page cache keeps that from thrashing. Pages beyond it spill to disk as usual.
        db.execute_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        for a in range(n_areas):
            area = "area:" + _rand_id(rng, "a")
            owner = "user:" + _rand_id(rng, "u")
            known_users.append(owner)
            people: list[tuple[str, tuple[str, ...]]] = [(owner, (ROLE_OWNER,))]
            for _ in range(DELEGATES_PER_AREA):
                if rng.random() < REUSED_USER_SHARE and len(known_users) > 10:
                    user = rng.choice(known_users)
                    if any(user == p for p, _ in people):
                        user = "user:" + _rand_id(rng, "u")
                else:
                    user = "user:" + _rand_id(rng, "u")
                known_users.append(user)
                if rng.random() < ALL_SHARE:
                    roles: tuple[str, ...] = (PERM_ALL,)
                else:
                    roles = tuple(rng.sample(perm_names, rng.randint(1, 5)))
                people.append((user, roles))
            for user, roles in people:
                for role in roles:
                    batch.append((user, role, area))
            written += len(people)
            if a in wanted:
                members[a] = [(area, user, allowed_by(roles)) for user, roles in people]
            if a in probes:
                probe_names.append(area)
            if len(batch) >= INSERT_BATCH:
                flush()
        if batch:
            flush()
    build_s = time.perf_counter() - t_start
    db.close()

    # The query stream, with the answer each query must get.
    unknown_users = ["user:" + _rand_id(rng, "u") for _ in range(UNKNOWN_POOL)]
    unknown_areas = ["area:" + _rand_id(rng, "a") for _ in range(UNKNOWN_POOL)]
    actions = sorted(every_action)
    stream: list[tuple[str, str, str, str]] = []
    expected: list[bool] = []
    kinds: list[str] = []
    cut = []
    acc = 0.0
    for name, share in MIX:
        acc += share
        cut.append((acc, name))
    for a in stream_areas:
        area, user, allowed = rng.choice(members[a])
        r = rng.random()
        kind = next(name for limit, name in cut if r < limit) if r < acc else MIX[-1][0]
        if kind == "allow":
            obj, act = rng.choice(sorted(allowed))
            q, ok = (user, area, obj, act), True
        elif kind == "member-deny":
            denied = sorted(every_action - allowed) or UNKNOWN_ACTIONS
            obj, act = rng.choice(denied)
            q, ok = (user, area, obj, act), False
        elif kind == "unknown-user":
            q, ok = (rng.choice(unknown_users), area, *rng.choice(actions)), False
        else:
            q, ok = (user, rng.choice(unknown_areas), *rng.choice(actions)), False
        stream.append(q)
        expected.append(ok)
        kinds.append(kind)
    with open(work / "queries.pickle", "wb") as fh:
        data = {"queries": stream, "expected": expected, "kinds": kinds, "probes": probe_names}
        pickle.dump(data, fh)
    db_bytes = sum(f.stat().st_size for f in work.glob("bench.sqlite3*"))
    return {
        "grants": written,
        "areas": n_areas,
        "g_lines": g_lines,
        "users": len(set(known_users)),
        "build_s": build_s,
        "insert_s": t_insert,
        "grants_per_s": written / t_insert if t_insert else float("nan"),
        "lines_per_s": g_lines / t_insert if t_insert else float("nan"),
        "db_mib": db_bytes / 2**20,
        "stream_areas": len(wanted),
    }


def _load_stream(work: Path) -> dict[str, list]:
    with open(work / "queries.pickle", "rb") as fh:
        return pickle.load(fh)  # noqa: S301 - our own file, written by phase_build


# -- phase 2: the Decider -------------------------------------------------------------------


def _mean_us(fn: Callable[[str], object], args: Sequence[str]) -> float:
    t0 = time.perf_counter_ns()
    for a in args:
        fn(a)
    return (time.perf_counter_ns() - t0) / max(1, len(args)) / 1000


def _plan_key(db: Any, sql: str) -> str:
    """The index condition SQLite chose: "ptype=?" alone means every g line is read."""
    detail = db.execute_sql("EXPLAIN QUERY PLAN " + sql, ("x",)).fetchall()[0][-1]
    return detail.rsplit("(", 1)[-1].rstrip(")") if "(" in detail else detail


def _feed_diagnostics(db: Any, feed: Any, probes: list[str]) -> dict[str, object]:
    """What one cold area load costs in the store, and why; then ANALYZE the database."""
    sql = "SELECT v0, v1 FROM casbin_rule WHERE v2 = ? AND ptype = 'g'"
    first, second = probes[:PROBE_AREAS], probes[PROBE_AREAS:]
    out: dict[str, object] = {}
    with db.connection_context():
        out["plan_before"] = _plan_key(db, sql)
    out["links_before_us"] = _mean_us(feed.domain_links, first)
    t0 = time.perf_counter()
    with db.connection_context():
        db.execute_sql("ANALYZE")
        out["plan_after"] = _plan_key(db, sql)
    out["analyze_s"] = time.perf_counter() - t0
    out["links_after_us"] = _mean_us(feed.domain_links, second)
    out["latest_us"] = _mean_us(lambda _: feed.latest_version(), second)
    with db.connection_context():  # the same calls when a connection is already open
        out["links_open_us"] = _mean_us(feed.domain_links, first)
        out["latest_open_us"] = _mean_us(lambda _: feed.latest_version(), first)
    return out


def phase_decider(work: Path, seconds: float) -> dict[str, object]:
    import sqlite3

    from delegauth.policy.bundle import load_bundle
    from delegauth.policy.decider import Decider
    from delegauth.storage.db import open_database
    from delegauth.storage.feed import PeeweePolicyFeed
    from delegauth.storage.records import database_proxy

    pinned = pin_one_core()
    data = _load_stream(work)
    queries, expected, kinds = data["queries"], data["expected"], data["kinds"]
    bundle = load_bundle(POLICIES)
    overhead = timer_overhead_ns()
    out: dict[str, object] = {"pinned": pinned, "timer_overhead_ns": overhead}
    out["rss_baseline_mib"] = rss_mib()

    t0 = time.perf_counter()
    db = open_database(f"sqlite:///{work / 'bench.sqlite3'}")
    database_proxy.initialize(db)
    feed = PeeweePolicyFeed(db)
    out["open_s"] = time.perf_counter() - t0
    out["diag"] = _feed_diagnostics(db, feed, data["probes"])

    t0 = time.perf_counter()
    decider = Decider(bundle, feed, max_staleness=5.0)
    decider.sync()
    out["startup_s"] = time.perf_counter() - t0
    out["rss_startup_mib"] = rss_mib()
    out["fast_path"] = decider.fast
    stop_follower = decider.start_follower(interval=0.5)
    decide = decider.decide

    # Cold: the first query in each area loads it from the database.
    seen: set[str] = set()
    cold_idx = []
    for i, q in enumerate(queries):
        if q[1] not in seen:
            seen.add(q[1])
            cold_idx.append(i)
    t0 = time.perf_counter()
    answers, samples = per_call(decide, queries)
    out["first_pass_s"] = time.perf_counter() - t0
    out["cold_n"] = len(cold_idx)
    out["cold"] = percentiles([samples[i] for i in cold_idx], overhead)
    out["mismatches"] = sum(a != e for a, e in zip(answers, expected, strict=True))
    out["rss_after_stream_mib"] = rss_mib()

    # Warm throughput: the whole stream again and again, timed per batch.
    done, elapsed, rounds = 0, 0, 0
    pc = time.perf_counter_ns
    best = float("inf")
    while elapsed < seconds * 1e9 or rounds < 2:
        t0 = pc()
        for s, d, o, a in queries:
            decide(s, d, o, a)
        dt = pc() - t0
        best = min(best, dt / len(queries))
        elapsed += dt
        done += len(queries)
        rounds += 1
    out["warm_per_s"] = done / (elapsed / 1e9)
    out["warm_best_round_per_s"] = 1e9 / best
    out["warm_rounds"] = rounds

    # Warm latency, per call, on a subset.
    sample = queries[:PERCENTILE_SAMPLES]
    _, samples = per_call(decide, sample)
    out["warm"] = percentiles(samples, overhead)
    by_kind: dict[str, list[int]] = {}
    for kind, s in zip(kinds, samples, strict=False):
        by_kind.setdefault(kind, []).append(s)
    out["warm_by_kind"] = {k: percentiles(v, overhead) for k, v in by_kind.items()}
    out["rss_warm_mib"] = rss_mib()

    # Every area loaded: a decision for every g line in the database. One connection is held
    # open meanwhile (the feed's own calls nest in it), or this would take minutes at 1M.
    raw = sqlite3.connect(work / "bench.sqlite3")
    t0 = time.perf_counter()
    pairs = 0
    with db.connection_context():
        for sub, dom in raw.execute("SELECT v0, v2 FROM casbin_rule WHERE ptype = 'g'"):
            decide(sub, dom, "invoice", "read")
            pairs += 1
    out["touch_all_s"] = time.perf_counter() - t0
    out["touch_all_lines"] = pairs
    raw.close()
    out["rss_all_loaded_mib"] = rss_mib()
    out["areas_held"] = decider.areas_held
    # Warm again with everything loaded (dicts are bigger now).
    t0 = pc()
    for s, d, o, a in queries:
        decide(s, d, o, a)
    out["all_loaded_per_s"] = len(queries) / ((pc() - t0) / 1e9)
    stop_follower()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# -- phase 4: the warm-up and a bounded area cache -------------------------------------------


def _open(work: Path, pg: str) -> Any:
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy

    db = open_database(pg or f"sqlite:///{work / 'bench.sqlite3'}")
    database_proxy.initialize(db)
    return db


def phase_pgload(work: Path, pg: str) -> dict[str, object]:
    """Copy the g lines into PostgreSQL (COPY), with an empty change log."""
    import io
    import sqlite3

    import psycopg2
    import psycopg2.extensions

    from delegauth.storage.schema import migrate

    migrate(_open(work, pg))
    psycopg2.extensions.set_wait_callback(None)  # COPY needs the plain blocking driver
    raw = sqlite3.connect(work / "bench.sqlite3")
    conn = psycopg2.connect(pg)
    conn.autocommit = True
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("TRUNCATE casbin_rule, policy_changes RESTART IDENTITY")
        rows = raw.execute("SELECT v0, v1, v2 FROM casbin_rule WHERE ptype = 'g'")
        while chunk := rows.fetchmany(200_000):
            text = "".join(f"g\t{a}\t{b}\t{c}\t\t\t\n" for a, b, c in chunk)
            cur.copy_expert(
                "COPY casbin_rule (ptype, v0, v1, v2, v3, v4, v5) FROM STDIN", io.StringIO(text)
            )
        cur.execute("VACUUM ANALYZE casbin_rule")
    conn.close()
    raw.close()
    return {"copy_s": time.perf_counter() - t0}


def phase_warmup(work: Path, pg: str) -> dict[str, object]:
    from delegauth.policy.bundle import load_bundle
    from delegauth.policy.decider import Decider
    from delegauth.storage.feed import PeeweePolicyFeed

    pinned = pin_one_core()
    data = _load_stream(work)
    queries, expected = data["queries"], data["expected"]
    bundle = load_bundle(POLICIES)
    out: dict[str, object] = {"pinned": pinned, "rss_baseline_mib": rss_mib()}
    db = _open(work, pg)
    decider = Decider(bundle, PeeweePolicyFeed(db), max_staleness=3600)
    decider.sync()
    t0 = time.perf_counter()
    stop = decider.start_warm_up(1 << 40)  # as a worker does at start
    while decider.warming:
        time.sleep(0.005)
    out["warm_up_s"] = time.perf_counter() - t0
    stop()
    out["areas"] = decider.warmed_areas
    out["rss_mib"] = rss_mib()
    out["rss_growth_mib"] = float(out["rss_mib"]) - float(out["rss_baseline_mib"])  # type: ignore[arg-type]
    out["bytes_per_area"] = float(out["rss_growth_mib"]) * 2**20 / max(1, decider.areas_held)  # type: ignore[arg-type]
    out["estimated_mib"] = decider.held_bytes / 2**20
    decide = decider.decide
    t0 = time.perf_counter()
    answers = [decide(*q) for q in queries]
    out["first_pass_per_s"] = len(queries) / (time.perf_counter() - t0)
    out["loads_in_first_pass"] = decider.area_loads  # areas the warm-up did not hold
    out["mismatches"] = sum(a != e for a, e in zip(answers, expected, strict=True))
    return out


def phase_bounded(work: Path, pg: str, bound: int) -> dict[str, object]:
    from delegauth.policy.bundle import load_bundle
    from delegauth.policy.decider import Decider
    from delegauth.storage.feed import PeeweePolicyFeed

    pinned = pin_one_core()
    data = _load_stream(work)
    queries, expected = data["queries"], data["expected"]
    bundle = load_bundle(POLICIES)
    overhead = timer_overhead_ns()
    db = _open(work, pg)
    decider = Decider(bundle, PeeweePolicyFeed(db), max_staleness=3600, max_areas=bound)
    decider.sync()
    decide = decider.decide
    pc = time.perf_counter_ns
    misses: list[int] = []
    answers = []
    most = 0
    t_start = time.perf_counter()
    for q in queries:
        before = decider.area_loads
        t0 = pc()
        answers.append(decide(*q))
        dt = pc() - t0
        if decider.area_loads != before:
            misses.append(dt)
            most = max(most, decider.areas_held)
    elapsed = time.perf_counter() - t_start
    return {
        "pinned": pinned,
        "bound": bound,
        "working_set": len({q[1] for q in queries}),
        "per_s": len(queries) / elapsed,
        "hit_ratio": 1 - decider.area_loads / len(queries),
        "first_touch": percentiles(misses, overhead),
        "evictions": decider.area_evictions,
        "most_held": most,
        "mismatches": sum(a != e for a, e in zip(answers, expected, strict=True)),
    }


# -- phase 3: plain Casbin ------------------------------------------------------------------


def phase_casbin(work: Path, n: int) -> dict[str, object]:
    import sqlite3

    from delegauth.policy.bundle import load_bundle
    from delegauth.policy.casbin_engine import build_enforcer
    from delegauth.policy.mapping import resource_value

    pinned = pin_one_core()
    data = _load_stream(work)
    # r.obj as the AuthZEN mapping passes it: the shipped matcher reads r.obj.id.
    queries = [(s, d, resource_value(o), a) for s, d, o, a in data["queries"][:n]]
    expected = data["expected"][:n]
    bundle = load_bundle(POLICIES)
    overhead = timer_overhead_ns()
    raw = sqlite3.connect(work / "bench.sqlite3")
    (total_lines,) = raw.execute("SELECT COUNT(*) FROM casbin_rule WHERE ptype = 'g'").fetchone()
    t0 = time.perf_counter()
    if total_lines <= CASBIN_ALL_LINES_MAX:
        scope = "all"
        rows = raw.execute("SELECT v0, v1, v2 FROM casbin_rule WHERE ptype = 'g'").fetchall()
    else:
        scope = "sample's areas"
        domains = sorted({q[1] for q in queries})
        rows = []
        for i in range(0, len(domains), 500):
            part = domains[i : i + 500]
            rows += raw.execute(
                "SELECT v0, v1, v2 FROM casbin_rule WHERE ptype = 'g' "
                f"AND v2 IN ({','.join('?' * len(part))})",
                part,
            ).fetchall()
    read_s = time.perf_counter() - t0
    raw.close()
    t0 = time.perf_counter()
    enforcer = build_enforcer(bundle, [("g", *r) for r in rows])
    load_s = time.perf_counter() - t0
    enforce = enforcer.enforce
    t0 = time.perf_counter()
    cold_answers, cold_samples = per_call(enforce, queries)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    answers, samples = per_call(enforce, queries)
    warm_s = time.perf_counter() - t0
    return {
        "pinned": pinned,
        "scope": scope,
        "lines_loaded": len(rows),
        "p_lines": len(bundle.p_lines),
        "read_s": read_s,
        "load_s": load_s,
        "queries": len(queries),
        "cold_per_s": len(queries) / cold_s,
        "cold": percentiles(cold_samples, overhead),
        "warm_per_s": len(queries) / warm_s,
        "warm": percentiles(samples, overhead),
        "mismatches": sum(a != e for a, e in zip(answers, expected, strict=True))
        + sum(a != e for a, e in zip(cold_answers, expected, strict=True)),
        "peak_rss_mib": peak_rss_mib(),
    }


# -- other models: the policy examples ------------------------------------------------------


def _example_cases(directory: Path) -> list[tuple[dict[str, Any], bool]]:
    """The AuthZEN requests of an example's decision tables, with the decision they expect."""
    import yaml

    cases: list[tuple[dict[str, Any], bool]] = []
    for table in sorted((directory / "tests").glob("*.yaml")):
        for case in (yaml.safe_load(table.read_text()) or {}).get("cases", []):
            if "request" in case:
                cases.append((case["request"], bool(case["decision"])))
    return cases


def phase_examples(queries: int, seconds: float) -> dict[str, object]:
    """Each example's table requests, repeated to ``queries`` (at most 20,000): mapped and
    decided as the service does (compiled matchers), then through plain Casbin (its
    matcher parsed on every enforce)."""
    pinned = pin_one_core()
    overhead = timer_overhead_ns()
    out: dict[str, object] = {"pinned": pinned}
    for directory in sorted((POLICIES / "examples").iterdir()):
        cases = _example_cases(directory) if (directory / "tests").is_dir() else []
        if cases:
            out[directory.name] = _measure_example(directory, cases, queries, seconds, overhead)
    return out


def _measure_example(
    directory: Path,
    cases: list[tuple[dict[str, Any], bool]],
    queries: int,
    seconds: float,
    overhead: int,
) -> dict[str, object]:
    from delegauth.policy.bundle import load_bundle
    from delegauth.policy.casbin_engine import build_enforcer
    from delegauth.policy.decider import Decider
    from delegauth.policy.memory_feed import MemoryPolicyFeed

    bundle = load_bundle(directory)
    decider = Decider(bundle, MemoryPolicyFeed(), monotonic=lambda: 0.0)
    decider.sync()
    mapping = bundle.mapping
    stream = [cases[i % len(cases)] for i in range(max(min(queries, 20_000), len(cases)))]
    bodies = [body for body, _ in stream]
    expected = [want for _, want in stream]

    def mapped_and_decided(body: dict[str, Any]) -> bool:
        question = mapping.question(body)
        return not isinstance(question, str) and decider.decide_question(question)

    asked = [q for q in map(mapping.question, bodies) if not isinstance(q, str)]
    mapped_and_decided(bodies[0])  # the first call builds the engine: not timed
    rounds, elapsed, answers = 0, 0.0, []
    while elapsed < seconds or rounds == 0:
        t0 = time.perf_counter()
        answers = [mapped_and_decided(body) for body in bodies]
        elapsed += time.perf_counter() - t0
        rounds += 1
    _, samples = per_call(decider.decide_question, [(q,) for q in asked])
    plain = build_enforcer(bundle, ())
    sample = asked[: max(1, min(len(asked), queries // 10))]
    t0 = time.perf_counter()
    plain_answers = [bool(plain.enforce(*q.values)) for q in sample]
    plain_per_s = len(sample) / (time.perf_counter() - t0)
    decided = [decider.decide_question(q) for q in sample]
    per_s = len(bodies) * rounds / elapsed
    return {
        "cases": len(cases),
        "per_s": per_s,
        "decide": percentiles(samples, overhead),
        "plain_per_s": plain_per_s,
        "ratio": per_s / plain_per_s,
        "wrong": sum(a != e for a, e in zip(answers, expected, strict=True))
        + sum(a != d for a, d in zip(plain_answers, decided, strict=True)),
    }


def phase_expiry(queries: int, seconds: float, seed: int) -> dict[str, object]:
    """Warm decisions with and without grants' ends, same stream, alternating rounds."""
    from delegauth.domain.ids import casbin_until
    from delegauth.policy.bundle import load_bundle
    from delegauth.policy.decider import Decider
    from delegauth.policy.memory_feed import MemoryPolicyFeed

    pinned = pin_one_core()
    rng = random.Random(seed)
    bundle = load_bundle(POLICIES)
    perms = [f"perm:{name}" for name in bundle.catalogue.names()]
    actions = sorted(bundle.catalogue.all_actions())
    end = casbin_until(datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(days=365))
    plain: list[tuple[str, ...]] = []
    ending: list[tuple[str, ...]] = []
    stream: list[tuple[str, str, str, str]] = []
    areas = max(10, min(queries // 20, 5_000))
    for _ in range(areas):
        area = f"area:{_rand_id(rng, 'a')}"
        people = [f"user:{_rand_id(rng, 'u')}" for _ in range(DELEGATES_PER_AREA + 1)]
        plain.append(("g", people[0], ROLE_OWNER, area))
        ending.append(("g", people[0], ROLE_OWNER, area))
        for person in people[1:]:
            for role in rng.sample(perms, 2):
                plain.append(("g", person, role, area))
                ending.append(("g", person, role, area, end))
        for _ in range(max(1, queries // areas)):
            obj, act = rng.choice(actions)
            stream.append((rng.choice(people), area, obj, act))
    deciders = {}
    for name, lines in (("without", plain), ("with", ending)):
        decider = Decider(bundle, MemoryPolicyFeed(lines), monotonic=lambda: 0.0)
        decider.sync()
        for query in stream:  # every area loaded, every answer memoized: warm
            decider.decide(*query)
        deciders[name] = decider
    answers = {n: [d.decide(*q) for q in stream] for n, d in deciders.items()}
    # Short alternating rounds, each figure the best round's: on a shared, loaded machine
    # the best round is the one least disturbed, and both sides get the same chances.
    chunk = stream[: min(len(stream), 20_000)]
    per_round: dict[str, list[float]] = {"without": [], "with": []}
    started = time.perf_counter()
    rounds = 0
    while time.perf_counter() - started < 2 * seconds or rounds < 10:
        for name in ("without", "with") if rounds % 2 == 0 else ("with", "without"):
            decide = deciders[name].decide
            t0 = time.perf_counter()
            for query in chunk:
                decide(*query)
            per_round[name].append((time.perf_counter() - t0) / len(chunk) * 1e9)
        rounds += 1
    best = {n: min(v) for n, v in per_round.items()}
    median = {n: sorted(v)[len(v) // 2] for n, v in per_round.items()}
    return {
        "pinned": pinned,
        "areas": areas,
        "decisions": rounds * 2 * len(chunk),
        "without_ns": best["without"],
        "with_ns": best["with"],
        "cost_ns": best["with"] - best["without"],
        "median_cost_ns": median["with"] - median["without"],
        "ratio": best["with"] / best["without"],
        "wrong": sum(a != b for a, b in zip(answers["with"], answers["without"], strict=True)),
    }


def report_expiry(found: dict[str, object]) -> None:
    print("grants' ends (the expiry check), same warm stream, alternating rounds")
    rows = [
        ("areas / decisions timed", f"{found['areas']:,} / {found['decisions']:,}"),
        ("warm decision, no grant ends, best round, ns", f"{found['without_ns']:,.0f}"),
        ("warm decision, every delegate's grant ends, best round, ns", f"{found['with_ns']:,.0f}"),
        ("expiry check cost per decision (best rounds), ns", f"{found['cost_ns']:,.0f}"),
        ("expiry check cost per decision (median rounds), ns", f"{found['median_cost_ns']:,.0f}"),
        ("with / without time ratio", f"{found['ratio']:,.2f}"),
        ("answers that differ (ends a year away)", f"{found['wrong']:,}"),
    ]
    for label, value in rows:
        print(f"  {label:<{LABEL_W - 2}}{value:>{CELL_W}}")


def report_examples(found: dict[str, object]) -> None:
    print("other models (policies/examples/): Casbin itself, matchers compiled once")
    for name, figures in found.items():
        if not isinstance(figures, dict):
            continue
        decide = figures["decide"]
        rows = [
            (f"{name}: table requests", f"{figures['cases']:,}"),
            (f"{name}: mapped and decided, decisions/s", f"{figures['per_s']:,.0f}"),
            (f"{name}: decide p50 / p99, µs", f"{decide['p50']:.2f} / {decide['p99']:.2f}"),
            (f"{name}: plain casbin enforce, decisions/s", f"{figures['plain_per_s']:,.0f}"),
            (f"{name}: compiled / plain throughput ratio", f"{figures['ratio']:,.1f}"),
            (f"{name}: wrong answers (vs the tables and Casbin)", f"{figures['wrong']:,}"),
        ]
        for label, value in rows:
            print(f"  {label:<{LABEL_W - 2}}{value:>{CELL_W}}")


# -- the driver -----------------------------------------------------------------------------


def _child(phase: str, work: Path, args: argparse.Namespace, *extra: str) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--phase", phase, "--work", str(work), *extra]
    cmd += ["--queries", str(args.queries), "--seed", str(args.seed)]
    cmd += ["--seconds", str(args.seconds), "--casbin-queries", str(args.casbin_queries)]
    cmd += ["--working-set", str(args.working_set), "--bound", str(args.bound)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"phase {phase} failed with exit code {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _get(result: dict[str, object], path: str) -> object:
    value: object = result
    for key in path.split("."):
        value = value[key]  # type: ignore[index]
    return value


def _fmt(value: object, spec: str) -> str:
    if spec == "lat":  # a percentiles dict
        assert isinstance(value, dict)
        return f"{value['p50']:.2f} / {value['p99']:.2f}"
    return format(value, spec)


# (label, path into one size's results, format); a None path starts a section.
TABLE: list[tuple[str, str | None, str]] = [
    ("database (SQLite, WAL)", None, ""),
    ("grants written", "build.grants", ",.0f"),
    ("areas", "build.areas", ",.0f"),
    ("distinct users", "build.users", ",.0f"),
    ("g lines (casbin_rule rows)", "build.g_lines", ",.0f"),
    ("DB build time, s", "build.build_s", ".1f"),
    ("  of which INSERT time, s", "build.insert_s", ".1f"),
    ("bulk loader, grants/s", "build.grants_per_s", ",.0f"),
    ("bulk loader, g lines/s", "build.lines_per_s", ",.0f"),
    ("database size, MiB", "build.db_mib", ".0f"),
    ("cold-load cost in the store (PeeweePolicyFeed, SQLite)", None, ""),
    ("domain_links index key, no ANALYZE", "decider.diag.plan_before", ""),
    ("domain_links, no ANALYZE, µs", "decider.diag.links_before_us", ",.0f"),
    ("ANALYZE, s", "decider.diag.analyze_s", ".2f"),
    ("domain_links index key after ANALYZE", "decider.diag.plan_after", ""),
    ("domain_links after ANALYZE, µs", "decider.diag.links_after_us", ",.0f"),
    ("latest_version, µs", "decider.diag.latest_us", ",.0f"),
    ("domain_links, connection already open, µs", "decider.diag.links_open_us", ",.0f"),
    ("latest_version, connection already open, µs", "decider.diag.latest_open_us", ",.0f"),
    ("Decider, one process pinned to one core (after ANALYZE)", None, ""),
    ("fast path", "decider.fast_path", ""),
    ("startup (construct + sync), s", "decider.startup_s", ".3f"),
    ("RSS baseline (harness + stream), MiB", "decider.rss_baseline_mib", ".0f"),
    ("RSS after startup, MiB", "decider.rss_startup_mib", ".0f"),
    ("queries in the stream", "decider.queries", ",.0f"),
    ("areas touched by the stream", "decider.cold_n", ",.0f"),
    ("first pass (warm-up), s", "decider.first_pass_s", ".1f"),
    ("cold (first touch) p50 / p99, µs", "decider.cold", "lat"),
    ("cold (first touch) mean, µs", "decider.cold.mean", ".1f"),
    ("wrong answers (vs expected)", "decider.mismatches", "d"),
    ("warm decisions/s, one core", "decider.warm_per_s", ",.0f"),
    ("  best round, decisions/s", "decider.warm_best_round_per_s", ",.0f"),
    ("warm p50 / p99 per decision, µs", "decider.warm", "lat"),
    ("warm max per decision, µs", "decider.warm.max", ".1f"),
    *((f"  {kind} p50 / p99, µs", f"decider.warm_by_kind.{kind}", "lat") for kind, _ in MIX),
    ("RSS after warm-up, MiB", "decider.rss_warm_mib", ".0f"),
    ("load every area (a decision per g line), s", "decider.touch_all_s", ".1f"),
    ("areas held after that", "decider.areas_held", ",.0f"),
    ("RSS with every area loaded, MiB", "decider.rss_all_loaded_mib", ".0f"),
    ("warm decisions/s, every area loaded", "decider.all_loaded_per_s", ",.0f"),
    ("peak RSS (ru_maxrss), MiB", "decider.peak_rss_mib", ".0f"),
    ("plain casbin.Enforcer.enforce, same stream (its first queries)", None, ""),
    ("g lines loaded", "casbin.lines_loaded", ",.0f"),
    ("  from which areas", "casbin.scope", ""),
    ("p lines (what enforce scans)", "casbin.p_lines", "d"),
    ("read g lines from the database, s", "casbin.read_s", ".2f"),
    ("enforcer load time (build_enforcer), s", "casbin.load_s", ".2f"),
    ("queries", "casbin.queries", ",.0f"),
    ("first pass, decisions/s", "casbin.cold_per_s", ",.0f"),
    ("second pass, decisions/s", "casbin.warm_per_s", ",.0f"),
    ("second pass p50 / p99, µs", "casbin.warm", "lat"),
    ("wrong answers (vs expected, both passes)", "casbin.mismatches", "d"),
    ("peak RSS, MiB", "casbin.peak_rss_mib", ".0f"),
    ("Decider / Casbin", None, ""),
    ("warm throughput ratio", "ratio", ",.0f"),
]


def _store_rows(db: str, key: str) -> list[tuple[str, str | None, str]]:
    return [
        (f"warm-up and a bounded area cache ({db})", None, ""),
        ("warm-up (every area, in bulk), s", f"{key}.warmup.warm_up_s", ".2f"),
        ("areas loaded by the warm-up", f"{key}.warmup.areas", ",.0f"),
        ("RSS after the warm-up, MiB", f"{key}.warmup.rss_mib", ".0f"),
        ("  growth per area, bytes", f"{key}.warmup.bytes_per_area", ",.0f"),
        ("  the bound's estimate of it, MiB", f"{key}.warmup.estimated_mib", ".0f"),
        ("first pass after the warm-up, decisions/s", f"{key}.warmup.first_pass_per_s", ",.0f"),
        ("areas read one by one in that pass", f"{key}.warmup.loads_in_first_pass", ",.0f"),
        ("wrong answers after the warm-up", f"{key}.warmup.mismatches", "d"),
        ("area cache bound (DELEGAUTH_AREA_CACHE)", f"{key}.bounded.bound", ",.0f"),
        ("areas in the stream (working set)", f"{key}.bounded.working_set", ",.0f"),
        ("most areas held", f"{key}.bounded.most_held", ",.0f"),
        ("hit ratio", f"{key}.bounded.hit_ratio", ".3f"),
        ("first touch (a miss) p50 / p99, µs", f"{key}.bounded.first_touch", "lat"),
        ("evictions", f"{key}.bounded.evictions", ",.0f"),
        ("decisions/s with the bound", f"{key}.bounded.per_s", ",.0f"),
        ("wrong answers with the bound", f"{key}.bounded.mismatches", "d"),
    ]


TABLE += _store_rows("SQLite", "sqlite")
PG_TABLE = _store_rows("PostgreSQL", "pg")
LABEL_W, CELL_W = 46, 20


def report(sizes: list[int], results: list[dict[str, object]], table: list[Any]) -> None:
    rule = "=" * (LABEL_W + CELL_W * len(sizes))
    print()
    print(rule)
    print(f"{'grants requested':<{LABEL_W}}" + "".join(f"{n:>{CELL_W},}" for n in sizes))
    for label, path, spec in table:
        if path is None:
            print(label)
            continue
        cells = "".join(f"{_fmt(_get(r, path), spec):>{CELL_W}}" for r in results)
        print(f"  {label:<{LABEL_W - 2}}{cells}")
    print(rule)
    overhead = _get(results[0], "decider.timer_overhead_ns")
    print(
        f"µs figures are per decision, the timer's own cost ({overhead} ns) subtracted.\n"
        "Casbin's enforce cost depends on the p lines it scans, not on the g lines loaded,\n"
        "so its figures from a sample of areas hold for the whole database."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000,1000000", help="grant counts, comma-separated")
    ap.add_argument("--queries", type=int, default=200_000, help="queries in the stream")
    ap.add_argument("--casbin-queries", type=int, default=2_000, help="of those, through casbin")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum warm measuring time")
    ap.add_argument("--working-set", type=int, default=20_000, help="areas the stream is about")
    ap.add_argument(
        "--bound", type=int, default=0, help="area cache bound (default: half the working set)"
    )
    ap.add_argument("--pg", default="", help="also on this throwaway PostgreSQL database URL")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, a few seconds: the same code paths and figures (run by the test suite)",
    )
    ap.add_argument(
        "--phase",
        choices=[
            "build",
            "decider",
            "casbin",
            "pgload",
            "warmup",
            "bounded",
            "examples",
            "expiry",
        ],
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--grants", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke and args.phase is None:
        args.sizes, args.queries, args.working_set = "1000", 2_000, 100
        args.casbin_queries, args.seconds = 200, 0.2
    args.bound = args.bound or max(1, args.working_set // 2)

    if args.phase == "build":
        build = phase_build(args.work, args.grants, args.queries, args.working_set, args.seed)
        print(json.dumps(build))
        return
    if args.phase == "decider":
        print(json.dumps(phase_decider(args.work, args.seconds)))
        return
    if args.phase == "casbin":
        print(json.dumps(phase_casbin(args.work, args.casbin_queries)))
        return
    if args.phase == "pgload":
        print(json.dumps(phase_pgload(args.work, args.pg)))
        return
    if args.phase == "warmup":
        print(json.dumps(phase_warmup(args.work, args.pg)))
        return
    if args.phase == "bounded":
        print(json.dumps(phase_bounded(args.work, args.pg, args.bound)))
        return
    if args.phase == "examples":
        print(json.dumps(phase_examples(args.queries, args.seconds)))
        return
    if args.phase == "expiry":
        print(json.dumps(phase_expiry(args.queries, args.seconds, args.seed)))
        return

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    print(
        f"delegauth decision bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"queries={args.queries:,} over a working set of {args.working_set:,} areas, "
        f"casbin queries={args.casbin_queries:,}, seed={args.seed}"
    )
    print("query mix: " + ", ".join(f"{name} {share:.0%}" for name, share in MIX))
    results: list[dict[str, object]] = []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"delegauth-bench-{n}-"))
        try:
            t0 = time.perf_counter()
            print(f"[{n:,} grants] building the database in {work} ...", flush=True)
            build = _child("build", work, args, "--grants", str(n))
            print(f"[{n:,} grants] measuring the Decider ...", flush=True)
            dec = _child("decider", work, args)
            print(f"[{n:,} grants] measuring plain Casbin ...", flush=True)
            cas = _child("casbin", work, args)
            print(f"[{n:,} grants] the warm-up and a bounded cache (SQLite) ...", flush=True)
            stores = {"sqlite": _stores(work, args, "")}
            if args.pg:
                print(f"[{n:,} grants] copying to PostgreSQL, warm-up, bounded ...", flush=True)
                _child("pgload", work, args, "--pg", args.pg)
                stores["pg"] = _stores(work, args, args.pg)
            print(f"[{n:,} grants] done in {time.perf_counter() - t0:.0f} s", flush=True)
            dec["queries"] = args.queries
            ratio = float(dec["warm_per_s"]) / float(cas["warm_per_s"])  # type: ignore[arg-type]
            results.append(
                {"build": build, "decider": dec, "casbin": cas, "ratio": ratio, **stores}
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print("[policy examples] measuring other models ...", flush=True)
    examples = _child("examples", Path(tempfile.gettempdir()), args)
    print("[expiry] warm decisions with and without grants' ends ...", flush=True)
    expiry = _child("expiry", Path(tempfile.gettempdir()), args)
    report(sizes, results, TABLE + (PG_TABLE if args.pg else []))
    report_expiry(expiry)
    report_examples(examples)


def _stores(work: Path, args: argparse.Namespace, pg: str) -> dict[str, object]:
    extra = ("--pg", pg) if pg else ()
    return {
        "warmup": _child("warmup", work, args, *extra),
        "bounded": _child("bounded", work, args, *extra),
    }


if __name__ == "__main__":
    main()
