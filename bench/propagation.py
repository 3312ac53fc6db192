"""How long a grant change takes to reach the decisions of another server process.

Starts two `delegauth serve` processes (each with its own workers) on one database,
changes a grant through server A, and polls an AuthZEN decision on server B until
it flips. Prints p50/p99/max of the time from A's acknowledgement to B's change.

    .venv/bin/python bench/propagation.py [--db sqlite|postgresql://…] [--rounds 50] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` (requests, PyJWT, Falcon) finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import statistics
import tempfile
import time

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ISSUER, Server, start_server  # noqa: E402

from delegauth.tokens import KeyRing, TokenService  # noqa: E402

PASSWORD = "correct horse battery staple"


def _decide(server: Server, token: str, user: str, area: str) -> bool:
    res = requests.post(
        server.url("/access/v1/evaluation"),
        timeout=5,
        headers={"Authorization": f"Bearer {token}"},
        json={
            "subject": {"type": "user", "id": user},
            "action": {"name": "pay"},
            "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
        },
    )
    res.raise_for_status()
    return bool(res.json()["decision"])


def run(db_url: str, rounds: int, poll_ms: int, workers: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="delegauth-bench-"))
    if db_url == "sqlite":
        db_url = f"sqlite:///{tmp}/bench.sqlite3"
    env = {
        "DELEGAUTH_DATABASE_URL": db_url,
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": str(ROOT / "policies"),
        "DELEGAUTH_KEY_DIR": str(tmp / "keys"),
        "DELEGAUTH_SMTP_URL": "log:",
        "DELEGAUTH_CHANGE_POLL_MS": str(poll_ms),
        "DELEGAUTH_LOG_LEVEL": "WARNING",
    }
    a = start_server(env, tmp / "a.log", workers=workers)
    b = start_server(env, tmp / "b.log", workers=workers)
    try:
        mint = TokenService(KeyRing.load_or_create(env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)
        svc = mint.issue(sub="bench", client_id="bench", scope=["decisions"])
        s = requests.Session()
        tag = str(int(time.time()))
        owner = s.post(
            a.url("/v1/signup"), json={"email": f"o{tag}@example.com", "password": PASSWORD}
        ).json()
        helper = s.post(
            a.url("/v1/signup"), json={"email": f"h{tag}@example.com", "password": PASSWORD}
        ).json()
        o_id, o_area = owner["user"]["id"], owner["area"]["id"]
        h_id = helper["user"]["id"]
        from delegauth.storage.db import open_database
        from delegauth.storage.records import UserRecord, database_proxy

        db = open_database(db_url)
        database_proxy.initialize(db)
        with db.connection_context():
            UserRecord.update(email_verified=True).where(UserRecord.id == h_id).execute()
        otok = mint.issue(sub=o_id, client_id="bench", scope=[], area=o_area)
        htok = mint.issue(sub=h_id, client_id="bench", scope=[], area=helper["area"]["id"])
        inv = s.post(
            a.url(f"/v1/areas/{o_area}/invitations"),
            headers={"Authorization": f"Bearer {otok}"},
            json={"email": f"h{tag}@example.com", "permissions": ["tickets"]},
        ).json()
        r = s.post(
            a.url(f"/v1/invitations/{inv['invitation']['id']}/accept"),
            headers={"Authorization": f"Bearer {htok}"},
        )
        r.raise_for_status()

        samples = []
        allowed = False
        for i in range(rounds):
            perms = ["invoices"] if not allowed else ["tickets"]
            r = s.patch(
                a.url(f"/v1/areas/{o_area}/members/{h_id}"),
                headers={"Authorization": f"Bearer {otok}"},
                json={"permissions": perms},
            )
            r.raise_for_status()
            acked = time.perf_counter()
            allowed = not allowed
            polls = 0
            while _decide(b, svc, h_id, o_area) != allowed:
                polls += 1
                if time.perf_counter() - acked > 10:
                    raise SystemExit(f"round {i}: B did not see the change in 10 s")
            samples.append((time.perf_counter() - acked) * 1000)
        samples.sort()
        p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
        kind = "PostgreSQL" if db_url.startswith("postgres") else "SQLite"
        print(
            f"propagation A->B on {kind}, {workers} workers each, poll {poll_ms} ms, "
            f"{rounds} changes"
        )
        print(
            f"  p50 {p(0.50):7.1f} ms   p99 {p(0.99):7.1f} ms   max {samples[-1]:7.1f} ms   "
            f"mean {statistics.mean(samples):7.1f} ms"
        )
        print("  (includes one HTTP decision round-trip on B per poll)")
    finally:
        a.stop()
        b.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="sqlite")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--poll-ms", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--smoke", action="store_true", help="3 changes, 1 worker each (run by the test suite)"
    )
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.workers, args.poll_ms = 3, 1, 20
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    run(args.db, args.rounds, args.poll_ms, args.workers)


if __name__ == "__main__":
    main()
