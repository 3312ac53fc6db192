"""Decisions and tokens over HTTP, next to a bare Falcon endpoint on the same server.

Builds a population with bench/decisions.py's builder (N grants, N/4 Client Areas, a mix of
allows and denies with the answer each query must get), then starts, for each server asked
for (`--server`: gunicorn-gthread, gunicorn-sync, granian, a comma-separated list, or all):

- delegauth, as `delegauth serve` runs it with DELEGAUTH_SERVER set to that server;
- bench/_bare_falcon.py, a bare Falcon JSON endpoint that answers from a set of the allowed
  queries, under the same server configuration (delegauth.serving.run: same server, worker
  class, workers and threads).

Both are driven by wrk (Debian's package) in interleaved rounds: one evaluation per request,
batches of 100 evaluations, and client_credentials tokens. Every answer is checked: wrk's
Lua script compares each decision with the expected one (matched by X-Request-ID), so a
wrong answer, a non-200 or an unknown id is counted, and the report says how many.

Prints req/s (decisions/s for batches), p50 and p99 per round, the medians, and the ratio
of delegauth to the bare endpoint on the same server, and of each server's delegauth to the
first server's, from the same rounds (the machine is noisy; ratios from the same rounds are
what to compare). The servers take turns within each round.

    .venv/bin/python bench/http.py [--server all] [--grants 40000] [--rounds 6]
                                   [--seconds 10] [--connections 16,64] [--workers 2] [--smoke]
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
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ISSUER, Server, free_port, start_server  # noqa: E402

from delegauth.serving import DEFAULT_SERVER, SERVERS  # noqa: E402
from delegauth.tokens import KeyRing, TokenService  # noqa: E402

BATCH = 100
REQUESTS_PER_FILE = 20_000  # distinct requests wrk cycles through

LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  local path, auth = args[1], args[2]
  reqs, expect = {}, {}
  for line in io.lines(path) do
    local id, exp, method, target, ctype, body = line:match(
      "^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
    local headers = {["Content-Type"] = ctype, ["Authorization"] = auth, ["X-Request-ID"] = id}
    reqs[#reqs + 1] = wrk.format(method, target, headers, body)
    expect[id] = exp
  end
  n = #reqs
  i = math.random(n)
  checked, wrong, bad = 0, 0, 0
end

function request()
  i = i % n + 1
  return reqs[i]
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 return end
  local id
  for k, v in pairs(headers) do if k:lower() == "x-request-id" then id = v end end
  local exp = expect[id]
  if exp == nil then bad = bad + 1 return end
  checked = checked + 1
  if exp == "T" then
    if not body:find('"access_token"', 1, true) then wrong = wrong + 1 end
    return
  end
  local got = {}
  for v in body:gmatch('"decision":%s*(%a+)') do got[#got + 1] = (v == "true") and "1" or "0" end
  if table.concat(got) ~= exp then wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local c, w, b = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("checked"); w = w + t:get("wrong"); b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f p50_us=%d p99_us=%d checked=%d wrong=%d bad=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    c, w, b, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Round:
    rps: float
    p50_ms: float
    p99_ms: float
    checked: int
    wrong: int
    bad: int
    cpu_us: float = 0.0  # CPU time of the server's processes per answer (user + system)


def server_cpu_s(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and every process below it (the server's
    master and workers): unlike req/s, it hardly depends on what else the machine runs."""
    total, todo = 0, [pid]
    while todo:
        proc = Path(f"/proc/{todo.pop()}")
        try:
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
            for task in (proc / "task").iterdir():
                todo.extend(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return total / os.sysconf("SC_CLK_TCK")


def build_population(work: Path, grants: int, queries: int, working_set: int) -> dict:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "decisions.py"),
        "--phase",
        "build",
        "--work",
        str(work),
        "--grants",
        str(grants),
        "--queries",
        str(queries),
        "--working-set",
        str(working_set),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit("building the population failed:\n" + res.stdout + res.stderr)
    built = json.loads(res.stdout.strip().splitlines()[-1])
    with open(work / "queries.pickle", "rb") as fh:
        built["stream"] = pickle.load(fh)  # noqa: S301 - written just now by the builder
    return built


def _evaluation(q: tuple[str, str, str, str]) -> dict:
    user, area, obj, act = q
    return {
        "subject": {"type": "user", "id": user.removeprefix("user:")},
        "action": {"name": act},
        "resource": {"type": obj, "id": "1", "properties": {"area": area.removeprefix("area:")}},
    }


def write_requests(work: Path, stream: dict, rng: random.Random) -> dict[str, Path]:
    """One file per workload: id, expected answer, method, target, content type, body."""
    pairs = list(zip(stream["queries"], stream["expected"], strict=True))
    files = {"single": work / "single.tsv", "batch": work / "batch.tsv", "token": work / "tok.tsv"}
    with open(files["single"], "w") as fh:
        for n in range(min(REQUESTS_PER_FILE, len(pairs))):
            q, ok = pairs[n]
            body = json.dumps(_evaluation(q))
            fh.write(f"s{n}\t{int(ok)}\tPOST\t/access/v1/evaluation\tapplication/json\t{body}\n")
    with open(files["batch"], "w") as fh:
        for n in range(max(1, min(REQUESTS_PER_FILE // 10, len(pairs) // BATCH))):
            chunk = [pairs[rng.randrange(len(pairs))] for _ in range(BATCH)]
            body = json.dumps({"evaluations": [_evaluation(q) for q, _ in chunk]})
            exp = "".join(str(int(ok)) for _, ok in chunk)
            fh.write(f"b{n}\t{exp}\tPOST\t/access/v1/evaluations\tapplication/json\t{body}\n")
    with open(files["token"], "w") as fh:
        form = "grant_type=client_credentials&scope=decisions"
        ctype = "application/x-www-form-urlencoded"
        for n in range(100):
            fh.write(f"t{n}\tT\tPOST\t/oauth/token\t{ctype}\t{form}\n")
    return files


def wrk(base: str, lua: Path, data: Path, auth: str, seconds: float, conns: int) -> Round:
    # A slow answer counts in p99, not as a failure (wrk gives up after 2 s by default).
    cmd = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    cmd += ["-s", str(lua), base, "--", str(data), auth]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"^RESULT (.*)$", res.stdout, re.MULTILINE)
    if res.returncode != 0 or not match:
        raise SystemExit(f"wrk failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    f = {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return Round(
        rps=f["checked"] / f["seconds"],
        p50_ms=f["p50_us"] / 1000,
        p99_ms=f["p99_us"] / 1000,
        checked=int(f["checked"]),
        wrong=int(f["wrong"]),
        bad=int(f["bad"] + f["errors"]),
    )


def start_bare(work: Path, server: str, workers: int, threads: int, log: Path) -> Server:
    """The bare endpoint under the server configuration `delegauth serve` uses."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench._bare_falcon", server, f"127.0.0.1:{port}", str(workers)]
    cmd.append(str(threads))
    env = {**os.environ, "BENCH_STREAM": str(work / "queries.pickle")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    fh = open(log, "ab")  # noqa: SIM115 - kept open for the process's life
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=fh)
    target = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("bare server exited:\n" + log.read_text(errors="replace")[-3000:])
        try:
            requests.post(target.url("/oauth/token"), timeout=1)
            return target
        except requests.RequestException:
            time.sleep(0.1)
    target.stop()
    raise SystemExit("bare server did not start")


def start_pair(
    work: Path, env: dict[str, str], server: str, workers: int, threads: int
) -> tuple[Server, Server]:
    """delegauth and the bare endpoint, both under ``server``."""
    mine = start_server(
        {**env, "DELEGAUTH_SERVER": server, "DELEGAUTH_THREADS": str(threads)},
        work / f"delegauth-{server}.log",
        workers=workers,
    )
    return mine, start_bare(work, server, workers, threads, work / f"bare-{server}.log")


def _client_secret(env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "delegauth", "clients", "create", "bench-svc"]
    cmd += ["--grant-type", "client_credentials", "--scope", "decisions"]
    res = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit("clients create failed:\n" + res.stdout + res.stderr)
    return str(json.loads(res.stdout)["client_secret"])


def _median(rounds: list[Round], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in rounds)


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("SKIP: wrk is not installed (Debian package wrk)")
        return 3
    work = Path(tempfile.mkdtemp(prefix="delegauth-http-bench-"))
    servers: list[Server] = []
    try:
        print(f"[{args.grants:,} grants] building the population in {work} ...", flush=True)
        built = build_population(work, args.grants, args.queries, args.working_set)
        files = write_requests(work, built["stream"], random.Random(args.seed))
        lua = work / "check.lua"
        lua.write_text(LUA)
        env = {
            "DELEGAUTH_DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
            "DELEGAUTH_ISSUER": ISSUER,
            "DELEGAUTH_POLICIES_DIR": str(ROOT / "policies"),
            "DELEGAUTH_KEY_DIR": str(work / "keys"),
            "DELEGAUTH_SMTP_URL": "log:",
            "DELEGAUTH_LOG_LEVEL": "WARNING",
            "DELEGAUTH_ACCESS_TOKEN_MINUTES": "60",
            "PYTHONPATH": str(ROOT / "src"),
        }
        secret = _client_secret(env)
        with ThreadPoolExecutor(len(args.server)) as pool:
            started = [
                pool.submit(start_pair, work, env, server, args.workers, args.threads)
                for server in args.server
            ]
            pairs = {}
            for server, future in zip(args.server, started, strict=True):
                pairs[server] = future.result()
                servers.extend(pairs[server])
        mint = TokenService(KeyRing.load_or_create(work / "keys"), ISSUER, ISSUER)
        bearer = "Bearer " + mint.issue(
            sub="bench-svc", client_id="bench-svc", scope=["decisions"], lifetime_s=3600
        )
        basic = "Basic " + base64.b64encode(f"bench-svc:{secret}".encode()).decode()

        print(
            f"population: {built['grants']:,} grants in {built['areas']:,} areas; "
            f"{len(built['stream']['queries']):,} queries over {built['stream_areas']:,} areas, "
            f"{sum(built['stream']['expected']):,} of them allowed",
            flush=True,
        )
        # Warm each: every area of the stream is loaded once before anything is measured.
        for pair in pairs.values():
            for target in pair:
                wrk(target.base, lua, files["batch"], bearer, args.warmup, 16)

        workloads = [("single", c, bearer) for c in args.connections]
        workloads += [("batch", c, bearer) for c in args.connections]
        workloads += [("token", args.connections[0], basic)]
        results: Results = {}
        for n in range(args.rounds):
            for kind, conns, auth in workloads:
                for server, (delegauth, bare) in pairs.items():
                    for name, target in (("delegauth", delegauth), ("bare", bare)):
                        before = server_cpu_s(target.proc.pid)
                        r = wrk(target.base, lua, files[kind], auth, args.seconds, conns)
                        used = server_cpu_s(target.proc.pid) - before
                        r.cpu_us = used / max(r.checked, 1) * 1e6
                        results.setdefault((kind, conns, server, name), []).append(r)
            print(f"round {n + 1}/{args.rounds} done", flush=True)
        return report(args, results)
    finally:
        for target in servers:
            target.stop()
        shutil.rmtree(work, ignore_errors=True)


Results = dict[tuple[str, int, str, str], list[Round]]
LABEL = {"single": "one evaluation", "batch": f"batch of {BATCH}", "token": "tokens"}


def _same_rounds(mine: list[Round], other: list[Round]) -> float:
    per_round = [m.rps / o.rps for m, o in zip(mine, other, strict=True) if o.rps]
    return statistics.median(per_round) if per_round else 0.0


def report(args: argparse.Namespace, results: Results) -> int:
    from delegauth.serving import worker_options

    print()
    described = []
    for server in args.server:
        opts = worker_options(server, args.threads)
        described.append(f"{server} ({args.workers} workers x {opts['threads']} threads)")
    print("servers: " + ", ".join(args.server))
    print(
        f"  {'; '.join(described)}; "
        f"wrk -t1, {args.seconds:g} s per run, {args.rounds} rounds, servers interleaved"
    )
    header = f"{'workload':<28}{'server':<18}{'target':<11}{'per s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    print(header + f"{'checked':>10}{'wrong':>7}{'bad':>6}")
    wrong_total = bad_total = 0
    order = {server: i for i, server in enumerate(args.server)}
    keys = sorted(results, key=lambda k: (k[0], k[1], order[k[2]], k[3] != "delegauth"))
    for kind, conns, server, name in keys:
        rounds = results[(kind, conns, server, name)]
        scale = BATCH if kind == "batch" else 1
        checked = sum(r.checked for r in rounds)
        wrong = sum(r.wrong for r in rounds)
        bad = sum(r.bad for r in rounds)
        wrong_total += wrong
        if name == "delegauth":
            bad_total += bad
        print(
            f"{f'{LABEL[kind]}, {conns} conns':<28}{server:<18}{name:<11}"
            f"{_median(rounds, 'rps') * scale:>10,.0f}"
            f"{_median(rounds, 'p50_ms'):>9.2f}{_median(rounds, 'p99_ms'):>9.2f}"
            f"{checked * scale:>10,}{wrong:>7}{bad:>6}"
        )
    workloads = sorted({(kind, conns) for kind, conns, _, _ in results})
    print()
    print("ratio delegauth / bare endpoint on the same server (median of the same rounds)")
    for kind, conns in workloads:
        for server in args.server:
            ratio = _same_rounds(
                results[(kind, conns, server, "delegauth")], results[(kind, conns, server, "bare")]
            )
            print(f"  {f'{LABEL[kind]}, {conns} conns':<28}{server:<18}{ratio:>6.2f}")
    print()
    print(
        "server CPU per answer, us (user + system of master and workers; median of rounds),"
        " and bare / delegauth"
    )
    for kind, conns in workloads:
        for server in args.server:
            mine = _median(results[(kind, conns, server, "delegauth")], "cpu_us")
            bare = _median(results[(kind, conns, server, "bare")], "cpu_us")
            print(
                f"  {f'{LABEL[kind]}, {conns} conns':<28}{server:<18}"
                f"{mine:>8.1f}{bare:>8.1f}{bare / mine if mine else 0.0:>7.2f}"
            )
    if len(args.server) > 1:
        first = args.server[0]
        print()
        print(f"ratio delegauth on each server / delegauth on {first} (same rounds)")
        for kind, conns in workloads:
            for server in args.server[1:]:
                ratio = _same_rounds(
                    results[(kind, conns, server, "delegauth")],
                    results[(kind, conns, first, "delegauth")],
                )
                print(f"  {f'{LABEL[kind]}, {conns} conns':<28}{server:<18}{ratio:>6.2f}")
    print()
    print(f"  {'wrong answers':<42}{wrong_total}")
    print(f"  {'refused or failed requests (delegauth)':<42}{bad_total}")
    return 1 if wrong_total or bad_total else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--grants", type=int, default=40_000, help="grants (areas = grants / 4)")
    ap.add_argument("--queries", type=int, default=100_000, help="queries in the stream")
    ap.add_argument("--working-set", type=int, default=10_000, help="areas the stream is about")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    ap.add_argument("--warmup", type=float, default=5.0, help="length of the warm-up run")
    ap.add_argument("--connections", default="16,64", help="wrk connections, comma-separated")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--server",
        help=f"{', '.join(SERVERS)}, a comma-separated list, or all (default: {DEFAULT_SERVER},"
        " what `delegauth serve` runs; all with --smoke)",
    )
    ap.add_argument(
        "--threads", type=int, default=0, help="threads per worker (0: each server's default)"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, a few seconds: the same code paths and figures (run by the test suite)",
    )
    args = ap.parse_args()
    if args.smoke:
        args.grants, args.queries, args.working_set = 2_000, 2_000, 200
        args.rounds, args.seconds, args.warmup, args.connections = 1, 1, 1, "4"
        args.workers = 1
        args.server = args.server or "all"
    args.server = args.server or DEFAULT_SERVER
    args.connections = [int(c) for c in str(args.connections).split(",") if c.strip()]
    names = SERVERS if args.server == "all" else [n.strip() for n in args.server.split(",")]
    if not names or any(n not in SERVERS for n in names):
        ap.error(f"--server: choose from {', '.join(SERVERS)} or all")
    args.server = list(dict.fromkeys(names))
    raise SystemExit(run(args))


if __name__ == "__main__":
    main()
