"""Ask delegauth for decisions (OpenID AuthZEN Authorization API 1.0, access evaluation
and evaluations), as a service authenticated by client credentials (RFC 6749 §4.4).

Fail closed: a decision is returned only from a well-formed 200 answer; anything else
raises (DecisionUnavailable, ServiceAuthFailed, RequestRejected), never allow.

A short-lived decision cache answers a question asked again within ``cache_ttl_s``.
Each answer remembers the consistency token (``policy_version``) it was asked under; a
caller passing a newer one (the version a grant write answered with) skips the cache,
so it never sees the world from before its own write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from delegauth.client._exceptions import (
    DecisionUnavailable,
    RequestRejected,
    ServiceAuthFailed,
)
from delegauth.client._transport import Reply, Transport

__all__ = ["DecisionClient", "Evaluation", "ServiceCredentials"]

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
MAX_BATCH = 256  # the server's bound on one evaluations request


@dataclass(frozen=True)
class Evaluation:
    """May user ``subject`` do ``action`` on resource ``resource_type``/``resource_id``
    in Client Area ``area``? Also the decision cache's key."""

    subject: str
    area: str
    resource_type: str
    action: str
    resource_id: str = "*"

    def authzen(self) -> dict[str, Any]:
        """The AuthZEN request body delegauth's shipped mapping reads."""
        return {
            "subject": {"type": "user", "id": self.subject},
            "action": {"name": self.action},
            "resource": {
                "type": self.resource_type,
                "id": self.resource_id,
                "properties": {"area": self.area},
            },
        }


class ServiceCredentials:
    """This service's own access token (client credentials), kept until shortly before
    it expires."""

    def __init__(
        self,
        transport: Transport,
        client_id: str,
        client_secret: str,
        *,
        scope: str = "decisions",
        margin_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._client = (client_id, client_secret)
        self._scope = scope
        self._margin = margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None  # (token, use until)
        self.fetches = 0  # tokens requested (for tests and metrics)

    def token(self) -> str:
        current = self._token
        if current is not None and self._clock() < current[1]:
            return current[0]
        with self._lock:  # one request for a new token, however many threads need it
            current = self._token
            if current is not None and self._clock() < current[1]:
                return current[0]
            self._token = self._fetch()
            return self._token[0]

    def forget(self, token: str) -> None:
        """Drop ``token`` (delegauth no longer accepts it); the next call gets a new one."""
        current = self._token
        if current is not None and current[0] == token:
            self._token = None

    def _fetch(self) -> tuple[str, float]:
        self.fetches += 1
        reply = self._transport.post(
            TOKEN_PATH,
            form={"grant_type": "client_credentials", "scope": self._scope},
            basic=self._client,
        )
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.status in (400, 401, 403):
            raise ServiceAuthFailed(
                f"delegauth refused the credentials of client {self._client[0]!r}: "
                f"{body.get('error', reply.status)}"
            )
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if reply.status != 200 or not isinstance(token, str) or not token:
            raise DecisionUnavailable(f"delegauth's token endpoint answered {reply.status}")
        if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = 60
        keep = max(lifetime - self._margin, lifetime / 2)
        return token, self._clock() + keep


class DecisionClient:
    """Single and batch evaluations over the transport, with a short decision cache.

    ``cache_ttl_s`` is how long an answer is reused (0 disables the cache): a grant
    removed meanwhile may still be allowed for that long, unless the caller passes the
    ``policy_version`` the removal answered with.
    """

    def __init__(
        self,
        transport: Transport,
        credentials: ServiceCredentials,
        *,
        cache_ttl_s: float = 1.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._credentials = credentials
        self._ttl = cache_ttl_s
        self._size = cache_size
        self._clock = clock
        # question -> (decision, policy_version asked under, expiry); oldest out first
        self._cache: dict[Evaluation, tuple[bool, int, float]] = {}
        self.requests = 0  # evaluation requests sent (for tests and metrics)

    def evaluate(self, evaluation: Evaluation, *, policy_version: int | None = None) -> bool:
        version = _version(policy_version)
        cached = self._cached(evaluation, version)
        if cached is not None:
            return cached
        body = _with_context(evaluation.authzen(), version)
        decision = _decision(self._ask(EVALUATION_PATH, body).body)
        self._remember(evaluation, decision, version)
        return decision

    def evaluate_many(
        self, evaluations: Sequence[Evaluation], *, policy_version: int | None = None
    ) -> list[bool]:
        """Decisions in the order asked; cache misses go out in batches of MAX_BATCH."""
        version = _version(policy_version)
        results = [self._cached(e, version) for e in evaluations]
        missing = [i for i, r in enumerate(results) if r is None]
        for start in range(0, len(missing), MAX_BATCH):
            chunk = missing[start : start + MAX_BATCH]
            body = _with_context(
                {
                    "evaluations": [evaluations[i].authzen() for i in chunk],
                    "options": {"evaluations_semantic": "execute_all"},
                },
                version,
            )
            reply = self._ask(EVALUATIONS_PATH, body)
            answers = reply.body.get("evaluations") if isinstance(reply.body, dict) else None
            if not isinstance(answers, list) or len(answers) != len(chunk):
                raise DecisionUnavailable("malformed answer from delegauth: evaluations")
            for answer in answers:
                _raise_item_error(answer)
            decisions = [_decision(a) for a in answers]  # all checked before any is kept
            for i, decision in zip(chunk, decisions, strict=True):
                results[i] = decision
                self._remember(evaluations[i], decision, version)
        return [bool(r) for r in results]

    def _ask(self, path: str, body: dict[str, Any]) -> Reply:
        token = self._credentials.token()
        self.requests += 1
        reply = self._transport.post(path, json_body=body, bearer=token)
        if reply.status == 401:
            # Our token expired or was revoked; nothing was decided, so asking again with
            # a fresh token is safe. Once.
            self._credentials.forget(token)
            self.requests += 1
            reply = self._transport.post(path, json_body=body, bearer=self._credentials.token())
        return _checked(reply)

    def _cached(self, evaluation: Evaluation, version: int) -> bool | None:
        if self._ttl <= 0:
            return None
        hit = self._cache.get(evaluation)
        if hit is None:
            return None
        decision, asked_under, expires = hit
        if self._clock() >= expires:
            self._cache.pop(evaluation, None)
            return None
        if version > asked_under:  # the caller has seen a newer write than this answer
            return None
        return decision

    def _remember(self, evaluation: Evaluation, decision: bool, version: int) -> None:
        if self._ttl <= 0:
            return
        while len(self._cache) >= self._size:
            try:
                self._cache.pop(next(iter(self._cache)), None)
            except (StopIteration, RuntimeError):  # emptied or changed by another thread
                break
        self._cache[evaluation] = (decision, version, self._clock() + self._ttl)


def _version(policy_version: int | None) -> int:
    if policy_version is None:
        return 0
    if isinstance(policy_version, bool) or not isinstance(policy_version, int):
        raise TypeError("policy_version must be an int (a grant write's policy_version)")
    if policy_version < 0:
        raise ValueError("policy_version must not be negative")
    return policy_version


def _with_context(body: dict[str, Any], version: int) -> dict[str, Any]:
    if version:
        body["context"] = {"policy_version": version}
    return body


def _decision(answer: Any) -> bool:
    """The boolean of a Decision object; anything else is a malformed answer."""
    decision = answer.get("decision") if isinstance(answer, dict) else None
    if not isinstance(decision, bool):
        raise DecisionUnavailable("malformed answer from delegauth: no boolean decision")
    return decision


def _raise_item_error(answer: Any) -> None:
    """An evaluation the server could not evaluate (a deny carrying ``context.error``)
    is a question rejected, as the same evaluation asked alone would be: never cached."""
    context = answer.get("context") if isinstance(answer, dict) else None
    error = context.get("error") if isinstance(context, dict) else None
    if not isinstance(error, dict):
        return
    message = error.get("message") or error.get("detail") or "an evaluation could not be evaluated"
    status, code = error.get("status"), error.get("code")
    raise RequestRejected(
        f"delegauth refused the question: {message}",
        http_status=status if isinstance(status, int) and not isinstance(status, bool) else 400,
        code=code if isinstance(code, str) else None,
    )


def _checked(reply: Reply) -> Reply:
    """The reply when it is a 200; otherwise the exception that says why not."""
    if reply.status == 200:
        return reply
    body = reply.body if isinstance(reply.body, dict) else {}
    detail = body.get("detail") or body.get("title") or f"HTTP {reply.status}"
    if reply.status in (401, 403):
        raise ServiceAuthFailed(f"delegauth refused this service's token: {detail}")
    if 400 <= reply.status < 500:
        code = body.get("code")
        raise RequestRejected(
            f"delegauth refused the question: {detail}",
            http_status=reply.status,
            code=code if isinstance(code, str) else None,
        )
    raise DecisionUnavailable(f"delegauth answered {reply.status}: {detail}")
