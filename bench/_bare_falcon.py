"""The baseline of bench/http.py: a bare Falcon JSON endpoint, the least a decision
endpoint can do over HTTP.

It parses the AuthZEN body and answers from a set of the allowed requests (read from the
query stream bench/decisions.py built), echoing X-Request-ID as delegauth does, so both
sides send the same bytes and the same checks apply. No authentication, no logging.

    BENCH_STREAM=<work>/queries.pickle python -m bench._bare_falcon SERVER HOST:PORT WORKERS THREADS

runs it with delegauth.serving.run, the way `delegauth serve` runs delegauth on SERVER
(THREADS 0: the server's default).
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import falcon

with open(os.environ["BENCH_STREAM"], "rb") as _fh:
    _data = pickle.load(_fh)  # noqa: S301 - a file this bench wrote itself
ALLOWED = frozenset(q for q, ok in zip(_data["queries"], _data["expected"], strict=True) if ok)


def _decide(ev: dict[str, Any]) -> bool:
    area = ev["resource"]["properties"]["area"]
    request = ("user:" + ev["subject"]["id"], "area:" + area, ev["resource"]["type"])
    return (*request, ev["action"]["name"]) in ALLOWED


class _Evaluation:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json.loads(req.bounded_stream.read())
        resp.set_header("X-Request-ID", req.get_header("X-Request-ID") or "")
        resp.content_type = "application/json"
        resp.text = json.dumps({"decision": _decide(body)})


class _Evaluations:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json.loads(req.bounded_stream.read())
        resp.set_header("X-Request-ID", req.get_header("X-Request-ID") or "")
        resp.content_type = "application/json"
        results = [{"decision": _decide(ev)} for ev in body["evaluations"]]
        resp.text = json.dumps({"evaluations": results})


class _Token:
    """What a token endpoint costs at the least: read a form, answer a JSON body."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.set_header("X-Request-ID", req.get_header("X-Request-ID") or "")
        resp.content_type = "application/json"
        resp.set_header("Cache-Control", "no-store")
        resp.text = json.dumps({"access_token": "x" * 600, "token_type": "Bearer"})


app = falcon.App()
app.add_route("/access/v1/evaluation", _Evaluation())
app.add_route("/access/v1/evaluations", _Evaluations())
app.add_route("/oauth/token", _Token())


if __name__ == "__main__":
    import sys

    from delegauth.serving import run

    server, bind, workers, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    run(lambda: app, bind, workers, server=server, log_level="WARNING", threads=threads)
