"""The common AuthZEN evaluation and batch, answered before Falcon: at a few µs a decision,
building Falcon's request and response objects cost more than everything else delegauth does.

``FastEvaluation`` wraps the Falcon app. It answers only what it recognises as the common
case of ``POST /access/v1/evaluation`` and ``POST /access/v1/evaluations``, exactly as the
Falcon routes would:

- no query string; ``Content-Type: application/json``; a Content-Length within the body limit;
- a bearer token that verifies, with the ``decisions`` scope (the same TokenService checks:
  exp against the clock, the revocation list, the key-set generation, the cache);
- a body that is a JSON object without escapes and without deep nesting (read_json's fast
  case), in the common shape batches also take a short way for (authzen.plain_evaluation:
  subject {type: "user", id}, action {name}, resource {type, id, properties: {area}}, each
  a string, ids that are Casbin names, no ``properties`` on subject or action and no
  ``context``: no consistency token to wait for, no explanation asked);
- for a batch: a body of ``evaluations`` (1 to MAX_EVALUATIONS items, every one of them in
  that shape) and at most ``options`` {``evaluations_semantic``: one of SEMANTICS}; read_json's
  nesting check passed; nothing else at the top (no defaults, no ``context``);
- a policy whose mapping is the shipped one and that the Decider's index decides.

Anything else, and any error on the way (a refused token, a stale policy), goes to the Falcon
app unchanged (the body it read put back), which answers it, refusals included, as it
answers every request. So this only ever answers 200 with ``{"decision": …}`` or
``{"evaluations": […]}``: the same bytes, headers, access line and metrics as the route
(tests/functional/test_fast_path.py compares them).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from delegauth import metrics
from delegauth.api import common_shape
from delegauth.api.auth import Authenticator
from delegauth.api.authzen import (
    MAX_EVALUATIONS,
    SEMANTICS,
    all_plain,
    plain_evaluation,
    plain_requests,
)
from delegauth.api.body import MAX_JSON_DEPTH, SHORT_BODY, nesting
from delegauth.api.middleware import SECURITY_HEADERS, access_log, log_access, request_id
from delegauth.errors import DelegauthError
from delegauth.policy.decider import Decider

__all__ = ["BATCH_PATH", "PATH", "FastEvaluation"]

PATH = "/access/v1/evaluation"
BATCH_PATH = "/access/v1/evaluations"
_PATHS = (PATH, BATCH_PATH)
_UNTIL = {"deny_on_first_deny": False, "permit_on_first_permit": True}
_ANSWERS = {True: b'{"decision":true}', False: b'{"decision":false}'}
_FIXED_HEADERS = [("Content-Type", "application/json"), *SECURITY_HEADERS.items()]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FastEvaluation:
    def __init__(self, app: WSGIApp, auth: Authenticator, decider: Decider, max_body: int) -> None:
        self._app = app
        self._auth = auth
        self._decider = decider
        self._max = max_body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO")
        if (
            path not in _PATHS
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
        ):
            return self._app(environ, start_response)
        started = time.perf_counter()
        try:
            answer = self._answer(environ, path == BATCH_PATH)
        except Exception:  # noqa: BLE001 - the route meets it again and answers as it does
            answer = None
        if answer is None:
            return self._app(environ, start_response)
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        start_response(
            "200 OK",
            [
                *_FIXED_HEADERS,
                ("X-Request-ID", rid),
                ("Content-Length", str(len(answer))),
            ],
        )
        if access_log.isEnabledFor(20):  # logging.INFO
            remote = environ.get("REMOTE_ADDR", "127.0.0.1")  # as Falcon's req.remote_addr
            log_access(rid, "POST", path, 200, started, remote)
        return [answer]

    def _answer(self, environ: dict[str, Any], batch: bool) -> bytes | None:
        """The answer's body, or None to leave the request to the Falcon app (the body, if
        read, put back in ``environ``)."""
        if environ.get("CONTENT_TYPE") != "application/json":
            return None
        length = environ.get("CONTENT_LENGTH")
        if not length or not length.isdigit() or not 0 < int(length) <= self._max:
            return None
        try:
            claims = self._auth.service_bearer(environ.get("HTTP_AUTHORIZATION"))
        except DelegauthError:
            return None  # the route refuses it, as it refuses every such request
        raw = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(raw)  # for the Falcon app, if it answers
        if batch:
            return self._batch(raw, claims)
        asked = self._plain_request(raw)
        if asked is None:
            return None
        decider = self._decider
        try:
            began = time.perf_counter()
            allowed = decider.decide(*asked)
            took = time.perf_counter() - began
            self._auth.still_valid(claims)
        except DelegauthError:
            return None
        metrics.count_decision(allowed, took)
        return _ANSWERS[allowed]

    def _plain_request(self, raw: bytes) -> tuple[str, str, str, str, str] | None:
        """(user:<id>, area:<area>, resource type, action, resource id) for a body in the
        common shape (authzen.plain_evaluation) under a policy the index decides with the
        shipped mapping; None for anything else."""
        decider = self._decider
        if not decider.bundle.mapping.plain or not decider.fast:
            return None
        # read_json's fast case only: escapes or deep nesting get its full checks there.
        if b"\\" in raw:
            return None
        try:  # the common shape, read into structs (common_shape: five levels at most)
            read = plain_requests((common_shape.read_evaluation(raw),))
            return None if read is None else read[0]
        except common_shape.NotCommon:
            pass  # any other shape, or written another way
        if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:
            return None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        return plain_evaluation(body) if type(body) is dict else None

    def _batch(self, raw: bytes, claims: Any) -> bytes | None:
        """The answer to a batch whose every item is in the common shape, without options
        but ``evaluations_semantic``, as EvaluationsResource answers it; None for any other."""
        decider = self._decider
        if not decider.bundle.mapping.plain or not decider.fast or b"\\" in raw:
            return None
        try:  # the common shape, read into structs (common_shape)
            items, semantic = common_shape.read_batch(raw)
        except common_shape.NotCommon:
            read = self._other_batch(raw)  # any other shape, or written another way
        else:
            read = self._common_batch(items, semantic)
        if read is None:
            return None
        asked, until = read
        tally = metrics.DecisionTally()
        try:
            text = all_plain(decider, asked, until, tally)
            self._auth.still_valid(claims)
        except DelegauthError:
            return None
        tally.observe()
        return text.encode()

    @staticmethod
    def _common_batch(
        items: list[common_shape.Evaluation], semantic: str | None
    ) -> tuple[list[Any], bool | None] | None:
        """The requests and the semantic's stop (``_UNTIL``) of a batch common_shape read;
        None for too many or too few items, another semantic, or an id that is no Casbin
        name."""
        if not 0 < len(items) <= MAX_EVALUATIONS:
            return None
        if semantic is not None and semantic not in SEMANTICS:
            return None
        asked = plain_requests(items)
        return None if asked is None else (asked, _UNTIL.get(semantic or ""))

    @staticmethod
    def _other_batch(raw: bytes) -> tuple[list[Any], bool | None] | None:
        """The requests and the semantic's stop (``_UNTIL``) of a batch in the common shape
        written another way (members repeated, other members in resource.properties);
        None for any other body."""
        # read_json's checks of a body without escapes: its nesting, read from the bytes.
        if len(raw) > SHORT_BODY or raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:
            depth = nesting(raw)
            if depth is None or depth > MAX_JSON_DEPTH:
                return None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if type(body) is not dict:
            return None
        items = body.get("evaluations")
        until: bool | None = None
        if len(body) != 1:
            options = body.get("options")
            if len(body) != 2 or type(options) is not dict or len(options) != 1:
                return None
            semantic = options.get("evaluations_semantic")
            if type(semantic) is not str or semantic not in SEMANTICS:
                return None
            until = _UNTIL.get(semantic)
        if type(items) is not list or not 0 < len(items) <= MAX_EVALUATIONS:
            return None
        asked = []
        for item in items:
            plain = plain_evaluation(item) if type(item) is dict else None
            if plain is None:
                return None
            asked.append(plain)
        return asked, until
