"""The decision client's fail-closed edges, over httpx's MockTransport (the server side
of these cases, a 5xx or a malformed body, cannot be asked of a healthy delegauth)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from delegauth.client import (
    DecisionUnavailable,
    Delegauth,
    Evaluation,
    RequestRejected,
    ServiceAuthFailed,
)

ASK = ("u_a", "a_b", "invoice", "pay")


class Scripted:
    """A scripted delegauth: the token endpoint always answers; evaluations pop answers."""

    def __init__(self, *answers: httpx.Response | Exception, lifetime: int = 600) -> None:
        self.answers = list(answers)
        self.lifetime = lifetime
        self.tokens = 0
        self.evaluations: list[httpx.Request] = []
        self.slept: list[float] = []
        self.now = 0.0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens += 1
            assert request.headers["Authorization"].startswith("Basic ")
            body = {"access_token": f"svc-{self.tokens}", "expires_in": self.lifetime}
            return httpx.Response(200, json=body)
        self.evaluations.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **kw: Any) -> Delegauth:
        return Delegauth(
            "http://delegauth.test",
            "svc",
            "s3cret-value",
            issuer="http://delegauth.test",
            http_transport=httpx.MockTransport(self.handler),
            sleep=self.slept.append,
            monotonic=lambda: self.now,
            **kw,
        )


def _ok(decision: Any) -> httpx.Response:
    return httpx.Response(200, json={"decision": decision})


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json={"decision": True}),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(503, json={"decision": True}),  # no Retry-After: not retried
        _ok("true"),
        _ok(1),
        httpx.Response(200, json={}),
        httpx.Response(200, json=[True]),
        httpx.Response(200, text="true", headers={"Content-Type": "text/plain"}),
        httpx.Response(200, content=b"{not json", headers={"Content-Type": "application/json"}),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_anything_but_a_well_formed_decision_is_unavailable_never_allow(answer: Any) -> None:
    server = Scripted(answer)
    with pytest.raises(DecisionUnavailable):
        server.client(decision_ttl_s=0).evaluate(*ASK)
    assert len(server.evaluations) == 1  # none of these is retried


def test_a_batch_answer_of_the_wrong_length_or_shape_is_unavailable() -> None:
    asked = [Evaluation(*ASK), Evaluation("u_c", "a_b", "invoice", "pay")]
    for body in ({"evaluations": [{"decision": True}]}, {"evaluations": [{}, {}]}, {}):
        server = Scripted(httpx.Response(200, json=body))
        with pytest.raises(DecisionUnavailable):
            server.client().evaluate_many(asked)
    server = Scripted(httpx.Response(200, json={"evaluations": [{"decision": True}] * 2}))
    assert server.client().evaluate_many(asked) == [True, True]


def test_a_503_with_a_short_retry_after_is_retried_once() -> None:
    busy = httpx.Response(503, headers={"Retry-After": "1"})
    server = Scripted(busy, _ok(True))
    assert server.client().evaluate(*ASK) is True
    assert (len(server.evaluations), server.slept) == (2, [1.0])

    server = Scripted(busy, busy)
    with pytest.raises(DecisionUnavailable, match="503"):
        server.client().evaluate(*ASK)
    assert len(server.evaluations) == 2

    server = Scripted(httpx.Response(503, headers={"Retry-After": "30"}), _ok(True))
    with pytest.raises(DecisionUnavailable):
        server.client().evaluate(*ASK)
    assert (len(server.evaluations), server.slept) == (1, [])


def test_a_connection_that_was_never_made_is_retried_once() -> None:
    refused = httpx.ConnectError("connection refused")
    server = Scripted(refused, _ok(False))
    assert server.client().evaluate(*ASK) is False
    assert len(server.evaluations) == 2
    server = Scripted(refused, refused, _ok(True))
    with pytest.raises(DecisionUnavailable, match="cannot reach"):
        server.client().evaluate(*ASK)
    assert len(server.evaluations) == 2


def test_a_rejected_service_token_is_replaced_once() -> None:
    expired = httpx.Response(401, json={"title": "Unauthorized"})
    server = Scripted(expired, _ok(True))
    assert server.client().evaluate(*ASK) is True
    assert server.tokens == 2
    assert [r.headers["Authorization"] for r in server.evaluations] == [
        "Bearer svc-1",
        "Bearer svc-2",
    ]
    server = Scripted(expired, expired)
    with pytest.raises(ServiceAuthFailed):
        server.client().evaluate(*ASK)


def test_refused_credentials_say_so_without_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    delegauth = Delegauth(
        "http://delegauth.test", "svc", "s3cret-value", http_transport=httpx.MockTransport(handler)
    )
    with pytest.raises(ServiceAuthFailed, match="invalid_client") as caught:
        delegauth.evaluate(*ASK)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ServiceAuthFailed, match="no client credentials"):
        Delegauth("http://delegauth.test").evaluate(*ASK)


def test_a_4xx_is_the_question_rejected() -> None:
    ahead = httpx.Response(
        409,
        json={"title": "Conflict", "detail": "version ahead", "code": "policy_version_ahead"},
        headers={"Content-Type": "application/problem+json"},
    )
    server = Scripted(ahead)
    with pytest.raises(RequestRejected) as caught:
        server.client().evaluate(*ASK, policy_version=10**9)
    assert (caught.value.http_status, caught.value.code) == (409, "policy_version_ahead")


def test_the_service_token_is_kept_until_shortly_before_it_expires() -> None:
    server = Scripted(*[_ok(True)] * 4, lifetime=600)
    delegauth = server.client(decision_ttl_s=0)
    delegauth.evaluate(*ASK)
    server.now += 500
    delegauth.evaluate(*ASK)
    assert server.tokens == 1
    server.now += 80  # 580 s: within the 30 s margin before expiry
    delegauth.evaluate(*ASK)
    assert server.tokens == 2


def test_the_decision_cache_expires_and_can_be_turned_off() -> None:
    server = Scripted(*[_ok(True)] * 5)
    cached = server.client(decision_ttl_s=2)
    assert cached.evaluate(*ASK) and cached.evaluate(*ASK)
    assert len(server.evaluations) == 1
    server.now += 2
    assert cached.evaluate(*ASK)
    assert len(server.evaluations) == 2
    uncached = server.client(decision_ttl_s=0)
    assert uncached.evaluate(*ASK) and uncached.evaluate(*ASK)
    assert len(server.evaluations) == 4


def test_the_consistency_token_travels_in_the_request_context() -> None:
    import json

    server = Scripted(_ok(True), httpx.Response(200, json={"evaluations": [{"decision": True}]}))
    delegauth = server.client()
    delegauth.evaluate(*ASK, policy_version=42)
    delegauth.evaluate_many([Evaluation("u_z", "a_b", "invoice", "read")], policy_version=43)
    bodies = [json.loads(r.content) for r in server.evaluations]
    assert [b["context"] for b in bodies] == [{"policy_version": 42}, {"policy_version": 43}]
    assert bodies[0]["resource"] == {"type": "invoice", "id": "*", "properties": {"area": "a_b"}}
    with pytest.raises(TypeError):
        delegauth.evaluate(*ASK, policy_version="42")  # type: ignore[arg-type]


def test_a_batch_item_the_server_could_not_evaluate_is_the_question_rejected() -> None:
    """Inside a batch the server answers such an item with a deny carrying its error
    (AuthZEN "Errors"); the client raises as for the same question asked alone."""
    error = {"status": 400, "message": "resource is required", "code": "invalid_input"}
    answer = httpx.Response(
        200,
        json={
            "evaluations": [{"decision": True}, {"decision": False, "context": {"error": error}}]
        },
    )
    server = Scripted(answer, httpx.Response(200, json={"evaluations": [{"decision": True}]}))
    delegauth = server.client()
    questions = [Evaluation(*ASK), Evaluation("u_a", "a_b", "invoice", "read")]
    with pytest.raises(RequestRejected, match="resource is required") as caught:
        delegauth.evaluate_many(questions)
    assert (caught.value.http_status, caught.value.code) == (400, "invalid_input")
    # Nothing of the rejected batch was cached: the first question is asked again.
    assert delegauth.evaluate_many(questions[:1]) == [True]
    assert len(server.evaluations) == 2
