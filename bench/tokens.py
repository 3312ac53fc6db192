"""Access-token signing and verification throughput, per algorithm (one core).

.venv/bin/python bench/tokens.py [--seconds 2] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` (requests, PyJWT, Falcon) finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import time

from delegauth.tokens import ALGORITHMS, KeyRing, TokenService


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--smoke", action="store_true", help="0.05 s per figure (run by the tests)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds = 0.05
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
        sign_rate, sign_p50 = _rate(sign, args.seconds)
        verify_rate, verify_p50 = _rate(lambda svc=svc, t=token: svc.verify(t), args.seconds)
        print(
            f"{alg:6} {sign_rate:10,.0f} {sign_p50:9.1f} {verify_rate:10,.0f} "
            f"{verify_p50:9.1f}  {len(token)}"
        )


if __name__ == "__main__":
    main()
