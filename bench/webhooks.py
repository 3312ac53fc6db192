"""Webhook delivery lag: from a grant change's commit to a receiver on loopback.

Starts `delegauth serve` (2 workers) with a webhook registered for an area, changes a
delegate's grant over the API, and times each delivery at a real HTTP receiver (every
signature is checked with standardwebhooks' Webhook.verify). Two clocks bracket the
commit: the event's timestamp, written in the change's transaction just before it commits
("write"), and the API's answer, just after ("ack"). The delivery may reach the receiver
before the answer reaches the client, so a lag from "ack" can be below zero.

- paced: one change at a time, the next after the previous one arrived;
- burst: the changes sent back to back, then all awaited (the queue's drain rate).

A third figure times the other direction: a worker that did not make the change finds
it by polling (DELEGAUTH_WEBHOOK_POLL_MS) only when its own peer is busy, so "paced"
is the common case: the committing worker wakes its own dispatcher at once.

    .venv/bin/python bench/webhooks.py [--db sqlite|postgresql://…] [--rounds 200] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import tempfile
import time
from datetime import datetime

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from standardwebhooks.webhooks import Webhook  # noqa: E402
from tests.e2e.conftest import ISSUER, start_server  # noqa: E402
from tests.webhook_receiver import Receiver  # noqa: E402

from delegauth.tokens import KeyRing, TokenService  # noqa: E402

PASSWORD = "correct horse battery staple"


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(label: str, samples: list[float]) -> None:
    print(
        f"  {label:<22} p50 {_pct(samples, 0.5):7.1f} ms   p99 {_pct(samples, 0.99):7.1f} ms"
        f"   max {max(samples):7.1f} ms"
    )


def run(db_url: str, rounds: int, workers: int) -> None:
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
        "DELEGAUTH_WEBHOOKS_INSECURE": "1",  # the receiver is on loopback
    }
    receiver = Receiver()
    server = start_server(env, tmp / "server.log", workers=workers)
    try:
        mint = TokenService(KeyRing.load_or_create(env["DELEGAUTH_KEY_DIR"]), ISSUER, ISSUER)
        s = requests.Session()
        tag = str(int(time.time() * 1000))
        owner = s.post(
            server.url("/v1/signup"), json={"email": f"o{tag}@example.com", "password": PASSWORD}
        ).json()
        helper = s.post(
            server.url("/v1/signup"), json={"email": f"h{tag}@example.com", "password": PASSWORD}
        ).json()
        o_id, o_area, h_id = owner["user"]["id"], owner["area"]["id"], helper["user"]["id"]
        from delegauth.storage.db import open_database
        from delegauth.storage.records import UserRecord, database_proxy

        db = open_database(db_url)
        database_proxy.initialize(db)
        with db.connection_context():
            UserRecord.update(email_verified=True).where(UserRecord.id == h_id).execute()
        auth = {
            "Authorization": f"Bearer {mint.issue(sub=o_id, client_id='b', scope=[], area=o_area)}"
        }
        htok = mint.issue(sub=h_id, client_id="b", scope=[], area=helper["area"]["id"])
        inv = s.post(
            server.url(f"/v1/areas/{o_area}/invitations"),
            headers=auth,
            json={"email": f"h{tag}@example.com", "permissions": ["tickets"]},
        ).json()
        s.post(
            server.url(f"/v1/invitations/{inv['invitation']['id']}/accept"),
            headers={"Authorization": f"Bearer {htok}"},
        ).raise_for_status()
        hook = s.post(
            server.url(f"/v1/areas/{o_area}/webhooks"), headers=auth, json={"url": receiver.url}
        )
        hook.raise_for_status()
        verifier = Webhook(hook.json()["secret"])
        member = server.url(f"/v1/areas/{o_area}/members/{h_id}")
        flip = [["invoices"], ["tickets"]]

        def change(i: int) -> float:
            s.patch(member, headers=auth, json={"permissions": flip[i % 2]}).raise_for_status()
            return time.time()

        bad = 0

        def lags(start: int, acks: list[float]) -> tuple[list[float], list[float]]:
            nonlocal bad
            got = receiver.wait_for(start + len(acks), timeout_s=60)[start:]
            from_write, from_ack = [], []
            for received, acked in zip(got, acks, strict=True):
                try:
                    event = verifier.verify(received.body, received.headers)
                except Exception:  # noqa: BLE001 - counted, and the smoke test wants none
                    bad += 1
                    continue
                written = datetime.fromisoformat(event["timestamp"].rstrip("Z") + "+00:00")
                from_write.append((received.at - written.timestamp()) * 1000)
                from_ack.append((received.at - acked) * 1000)
            return from_write, from_ack

        # paced: one at a time
        start = len(receiver.received)
        paced_write: list[float] = []
        paced_ack: list[float] = []
        for i in range(rounds):
            acked = change(i)
            w, a = lags(start + i, [acked])
            paced_write += w
            paced_ack += a
        # burst: back to back
        start = len(receiver.received)
        began = time.perf_counter()
        acks = [change(i) for i in range(rounds)]
        burst_write, burst_ack = lags(start, acks)
        drained = time.perf_counter() - began

        kind = "PostgreSQL" if db_url.startswith("postgres") else "SQLite"
        print(
            f"webhook delivery lag on {kind}, serve with {workers} workers, {rounds} changes each"
        )
        print("paced (one change at a time):")
        _row("write -> receiver", paced_write)
        _row("ack -> receiver", paced_ack)
        print("burst (back to back):")
        _row("write -> receiver", burst_write)
        _row("ack -> receiver", burst_ack)
        print(f"  {'drained':<22} {rounds / drained:7.0f} deliveries/s (change and delivery)")
        print(f"  {'bad signatures':<22} {bad}")
    finally:
        server.stop()
        receiver.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="sqlite")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="a few rounds: check it runs")
    args = ap.parse_args()
    run(args.db, 5 if args.smoke else args.rounds, args.workers)


if __name__ == "__main__":
    main()
