"""What callers with a consistency token ahead of the change log cost everyone else.

Starts one `delegauth serve` process and measures one caller's decisions (one request
at a time) alone; beside callers that each send ordinary evaluations as fast as they
are answered (the control: a busy server); and beside as many callers whose
context.policy_version is far ahead of the change log. Those get 409 at once and cost
the database one read of the change log per round of the follower, however many they
are: the caller should fare as well beside them as beside ordinary callers (before the
fix each held a worker thread for 1 s of polling the database, then got 503).

    .venv/bin/python bench/consistency.py [--db sqlite|postgresql://…] [--seconds 5]
        [--others 8] [--workers 2] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` (requests, PyJWT, Falcon) finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ISSUER, Server, start_server  # noqa: E402

from delegauth.tokens import KeyRing, TokenService  # noqa: E402

PASSWORD = "correct horse battery staple"
AHEAD = 10**12  # far ahead of any change log


def _body(user: str, area: str, version: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": user},
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
    }
    if version is not None:
        body["context"] = {"policy_version": version}
    return body


def _measure(server: Server, token: str, user: str, area: str, seconds: float) -> dict[str, Any]:
    """One caller's decisions, one request at a time, for ``seconds``."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    latencies: list[float] = []
    wrong = 0
    end = time.perf_counter() + seconds
    while (started := time.perf_counter()) < end:
        res = s.post(server.url("/access/v1/evaluation"), json=_body(user, area), timeout=10)
        latencies.append(time.perf_counter() - started)
        if res.status_code != 200 or res.json() != {"decision": True}:
            wrong += 1
    latencies.sort()
    return {
        "per_s": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        "wrong": wrong,
    }


def _hammer(
    server: Server,
    token: str,
    body: dict[str, Any],
    stop: threading.Event,
    seen: Counter[int],
) -> None:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    while not stop.is_set():
        res = s.post(server.url("/access/v1/evaluation"), json=body, timeout=10)
        seen[res.status_code] += 1


def _beside(
    server: Server,
    token: str,
    user: str,
    area: str,
    seconds: float,
    others: int,
    version: int | None,
) -> tuple[dict[str, Any], float, Counter[int]]:
    """The caller's figures while ``others`` callers send evaluations with ``version``;
    with their answers per second and statuses."""
    stop = threading.Event()
    seen: Counter[int] = Counter()
    body = _body(user, area, version)
    threads = [
        threading.Thread(target=_hammer, args=(server, token, body, stop, seen))
        for _ in range(others)
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)  # let them start
    counted = sum(seen.values())
    figures = _measure(server, token, user, area, seconds)
    per_s = (sum(seen.values()) - counted) / seconds
    stop.set()
    for t in threads:
        t.join(15)
    return figures, per_s, seen


def run(db_url: str, seconds: float, others: int, workers: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="delegauth-bench-"))
    if db_url == "sqlite":
        db_url = f"sqlite:///{tmp}/bench.sqlite3"
    env = {
        "DELEGAUTH_DATABASE_URL": db_url,
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": str(ROOT / "policies"),
        "DELEGAUTH_KEY_DIR": str(tmp / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        "DELEGAUTH_LOG_LEVEL": "WARNING",
    }
    server = start_server(env, tmp / "server.log", workers=workers)
    try:
        mint = TokenService(KeyRing.load_or_create(env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)
        token = mint.issue(sub="bench", client_id="bench", scope=["decisions"])
        tag = str(time.time_ns())
        owner = requests.post(
            server.url("/v1/signup"),
            json={"email": f"o{tag}@example.com", "password": PASSWORD},
            timeout=10,
        ).json()
        user, area = owner["user"]["id"], owner["area"]["id"]
        _measure(server, token, user, area, min(seconds, 1.0))  # warm up: load the area

        alone = _measure(server, token, user, area, seconds)
        busy, busy_per_s, busy_seen = _beside(server, token, user, area, seconds, others, None)
        ahead, ahead_per_s, ahead_seen = _beside(server, token, user, area, seconds, others, AHEAD)

        kind = "PostgreSQL" if db_url.startswith("postgres") else "SQLite"
        busy_label = f"beside {others} ordinary callers"
        ahead_label = f"beside {others} far-future callers"
        rows = [
            ("decisions/s, alone", f"{alone['per_s']:,.1f}"),
            ("p50 / p99 ms, alone", f"{alone['p50_ms']:.1f} / {alone['p99_ms']:.1f}"),
            (f"decisions/s, {busy_label}", f"{busy['per_s']:,.1f}"),
            (f"p50 / p99 ms, {busy_label}", f"{busy['p50_ms']:.1f} / {busy['p99_ms']:.1f}"),
            (f"decisions/s, {ahead_label}", f"{ahead['per_s']:,.1f}"),
            (f"p50 / p99 ms, {ahead_label}", f"{ahead['p50_ms']:.1f} / {ahead['p99_ms']:.1f}"),
            ("throughput ratio (far-future / alone)", f"{ahead['per_s'] / alone['per_s']:.2f}"),
            (
                "throughput ratio (far-future / ordinary)",
                f"{ahead['per_s'] / busy['per_s']:.2f}",
            ),
            ("ordinary callers' answers/s", f"{busy_per_s:,.1f}"),
            ("far-future answers/s", f"{ahead_per_s:,.1f}"),
            ("far-future answers that were not 409", str(ahead_seen.total() - ahead_seen[409])),
            ("ordinary answers that were not 200", str(busy_seen.total() - busy_seen[200])),
            ("wrong decisions", str(alone["wrong"] + busy["wrong"] + ahead["wrong"])),
        ]
        print(
            f"consistency tokens ahead of the change log on {kind}, {workers} workers, "
            f"{seconds:g} s per run"
        )
        for name, value in rows:
            print(f"  {name:<48}  {value}")
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="sqlite")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--others", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--smoke", action="store_true", help="1 s per run, 1 worker (run by the test suite)"
    )
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.workers = 1.0, 1
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    run(args.db, args.seconds, args.others, args.workers)


if __name__ == "__main__":
    main()
