"""Access-token signing and verification per algorithm, and the token endpoint's CPU cost.

.venv/bin/python bench/tokens.py [--seconds 2] [--requests 5000] [--smoke]

The second part drives the WSGI app itself (no server, no socket) with one prebuilt
client_credentials request, on SQLite with the default signing algorithm, and prints the
CPU time per request (process time, so other load on the machine does not count) and,
from a cProfile run of the same loop, the share of each part of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` (requests, PyJWT, Falcon) finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import base64
import cProfile
import io
import json
import pstats
import tempfile
import time
from typing import Any

from falcon.testing import create_environ

from delegauth.api.app import build_services, create_app
from delegauth.config import Settings
from delegauth.errors import Unauthenticated
from delegauth.oauth.clients import CLIENT_CREDENTIALS
from delegauth.storage.db import open_database
from delegauth.storage.schema import migrate
from delegauth.tokens import ALGORITHMS, KeyRing, TokenService

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "https://delegauth.example"
# The parts of a token request, each by the function (file, name) whose cumulative time it
# is; "the rest" rows are what their caller spent outside the rows above them.
PARTS = (
    ("signing (TokenService.issue_access)", ("delegauth/tokens.py", "issue_access")),
    ("client lookup (PeeweeOAuthStore.get_client)", ("oauth_store.py", "get_client")),
    ("Authlib's request (oauth_request)", ("delegauth/oauth/server.py", "oauth_request")),
)
GRANT = ("authlib/oauth2/rfc6749/authorization_server.py", "create_token_response")


def _rate(fn, seconds: float) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Calls per second and median µs per call, over about ``seconds``."""
    samples = []
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
        n += 1
    samples.sort()
    total = sum(samples) / 1e9
    return n / total, samples[len(samples) // 2] / 1000


def signing(seconds: float) -> None:
    print(f"{'alg':6} {'sign/s':>10} {'p50 µs':>9} {'verify/s':>10} {'p50 µs':>9}  token bytes")
    for alg in ALGORITHMS:
        svc = TokenService(KeyRing.generate(alg), "https://issuer", "https://issuer")

        def sign(svc: TokenService = svc) -> str:
            return svc.issue(
                sub="u_" + "a" * 26,
                client_id="web",
                scope=["openid", "profile"],
                area="a_" + "b" * 26,
                role="delegate",
                permissions=["invoices", "tickets"],
            )

        token = sign()
        sign_rate, sign_p50 = _rate(sign, seconds)
        verify_rate, verify_p50 = _rate(lambda svc=svc, t=token: svc.verify(t), seconds)
        print(
            f"{alg:6} {sign_rate:10,.0f} {sign_p50:9.1f} {verify_rate:10,.0f} "
            f"{verify_p50:9.1f}  {len(token)}"
        )


def _cumulative(stats: pstats.Stats, where: tuple[str, str]) -> float:
    path, name = where
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats' own table
    return sum(
        entry[3]
        for (file, _line, func), entry in table.items()
        if func == name and file.endswith(path)
    )


def endpoint(requests: int, rounds: int) -> None:
    """CPU per client_credentials request through the whole WSGI app."""
    work = Path(tempfile.mkdtemp(prefix="delegauth-tokens-bench-"))
    settings = Settings(
        database_url=f"sqlite:///{work / 'bench.sqlite3'}",
        issuer=ISSUER,
        public_url=ISSUER,
        policies_dir=str(ROOT / "policies"),
        key_dir=str(work / "keys"),
        smtp_url="log:",
        log_level="WARNING",
    )
    db = open_database(settings.database_url)
    migrate(db)
    db.close()
    services = build_services(settings, start_background=False)
    try:
        _row, secret = services.clients.create(
            "bench-svc", grant_types=[CLIENT_CREDENTIALS], scopes=["decisions"]
        )
        app = create_app(settings, services=services)
        body = b"grant_type=client_credentials&scope=decisions"
        basic = base64.b64encode(f"bench-svc:{secret}".encode()).decode()
        environ = create_environ(
            path="/oauth/token",
            method="POST",
            host="delegauth.example",
            scheme="https",
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=body,
        )
        answers: list[bytes] = []
        status: list[str] = []

        def start_response(code: str, headers: Any, exc_info: Any = None) -> None:
            status.append(code)

        def one() -> None:
            request = dict(environ)
            request["wsgi.input"] = io.BytesIO(body)
            answers.append(b"".join(app(request, start_response)))

        for _ in range(min(200, requests)):
            one()
        best = float("inf")
        for _ in range(rounds):
            answers.clear()
            status.clear()
            started = time.process_time()
            for _ in range(requests):
                one()
            best = min(best, (time.process_time() - started) / requests)
        wrong = sum(code != "200 OK" for code in status)
        # Checked as a resource server would (this process follows no revocations).
        verifier = TokenService(services.keys, services.tokens.issuer, services.tokens.audience)
        for answer in answers[:: max(1, len(answers) // 50)]:
            try:
                verifier.verify(json.loads(answer)["access_token"])
            except (Unauthenticated, KeyError, ValueError):
                wrong += 1
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        for _ in range(requests):
            one()
        profile.disable()
        stats = pstats.Stats(profile)
        total = _cumulative(stats, ("bench/tokens.py", "one"))
        parts = [(label, _cumulative(stats, where)) for label, where in PARTS]
        grant_rest = _cumulative(stats, GRANT) - parts[0][1] - parts[1][1]
        rest = total - parts[2][1] - _cumulative(stats, GRANT)
        algorithm = services.keys.current.algorithm
        print()
        print(f"token endpoint: POST /oauth/token, client_credentials, {algorithm}, SQLite,")
        print(f"  the WSGI app driven in-process, {requests:,} requests a round, best of {rounds}")
        print(f"  {'CPU µs a request':<58}{best * 1e6:>10.1f}")
        print(f"  {'requests per CPU second':<58}{1 / best:>10,.0f}")
        print(f"  {'wrong answers':<58}{wrong:>10}")
        print("  share of a request under cProfile (thread CPU time):")
        rows = [
            *parts,
            ("Authlib's grant and client checks (the rest of its response)", grant_rest),
            ("Falcon, middleware and the response (the rest)", rest),
        ]
        for label, seconds in rows:
            print(f"    {label:<56}{seconds / total * 100:>9.0f}%")
        if wrong:
            raise SystemExit(1)
    finally:
        services.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--requests", type=int, default=5000, help="token requests a round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="0.05 s per figure (run by the tests)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.requests, args.rounds = 0.05, 100, 2
    signing(args.seconds)
    endpoint(args.requests, args.rounds)


if __name__ == "__main__":
    main()
