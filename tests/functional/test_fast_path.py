"""The fast path of one evaluation and of a batch (api/fast.py) answers exactly as the
Falcon routes do: the same status, body and headers (the request id aside, when none is
given), the same metrics and access line, for the requests it takes and for every kind it
must leave to the route. The suite's other functional tests call the served app too
(tests/conftest.py Api), so every evaluation they make goes through it."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon.testing
import pytest

from delegauth import metrics
from delegauth.api.app import create_app, serving_app
from delegauth.api.auth import Authenticator
from delegauth.api.fast import FastEvaluation
from tests.conftest import Api, Person
from tests.functional import test_authzen
from tests.functional.test_authzen import _req

world = test_authzen.world  # the same two people

PATH = "/access/v1/evaluation"


class _Route:
    """The Falcon app, counting the requests the fast path handed it."""

    def __init__(self, api: Api) -> None:
        self.app = create_app(api.services.settings, services=api.services)
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls += 1
        return self.app(environ, start_response)


def _both(api: Api) -> tuple[falcon.testing.TestClient, falcon.testing.TestClient, _Route]:
    """A client of the served app (fast path in front), one of the route alone, and the
    counter of what the fast path left to the route."""
    services = api.services
    inner = _Route(api)
    fast = FastEvaluation(
        inner, Authenticator(services.tokens), services.decider, services.settings.max_body_bytes
    )
    return falcon.testing.TestClient(fast), falcon.testing.TestClient(inner.app), inner


def test_the_served_app_has_the_fast_path(api: Api) -> None:
    assert isinstance(serving_app(api.services.settings, api.services), FastEvaluation)


def _decisions() -> tuple[float, float]:
    text = metrics.render(lambda: iter(())).decode()
    found = {"allow": 0.0, "deny": 0.0}
    for line in text.splitlines():
        for outcome in found:
            if line.startswith(f'delegauth_decisions_total{{outcome="{outcome}"}} '):
                found[outcome] = float(line.split()[-1])
    return found["allow"], found["deny"]


def _answer(res: falcon.testing.Result) -> tuple[int, bytes, dict[str, str]]:
    headers = {k.lower(): v for k, v in res.headers.items()}
    return res.status_code, res.content, headers


def _compare(
    clients: tuple[falcon.testing.TestClient, falcon.testing.TestClient],
    path: str,
    body: dict[str, Any],
    token: str,
    caplog: pytest.LogCaptureFixture,
    counted: tuple[float, float],
) -> list[Any]:
    """Each client's answer and access line (its time aside) to ``body``, checked to be the
    same and to count ``counted`` (allowed, denied) decisions."""
    answers = []
    for client in clients:
        before = _decisions()
        caplog.clear()
        res = client.simulate_post(
            path,
            body=json.dumps(body),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "X-Request-ID": "same-id",
            },
        )
        after = _decisions()
        assert (after[0] - before[0], after[1] - before[1]) == counted
        [line] = [r.getMessage() for r in caplog.records if r.name == "delegauth.access"]
        entry = json.loads(line)
        del entry["ms"]
        answers.append((_answer(res), entry))
    assert answers[0] == answers[1]
    return answers


def test_the_common_case_is_answered_as_the_route_answers_it(
    api: Api, world: dict[str, Person], caplog: pytest.LogCaptureFixture
) -> None:
    fast, route, inner = _both(api)
    token = api.service_token()
    area = world["owner"].area_id
    caplog.set_level(logging.INFO, logger="delegauth.access")
    for body, allowed in (
        (_req(world["billing"], area, "invoice", "pay"), True),
        (_req(world["billing"], area, "invoice", "refund"), False),
        (_req("u_aaaaaaaaaaaaaaaaaaaaaaaaaa", area, "invoice", "read"), False),
        (_req(world["owner"], "a_aaaaaaaaaaaaaaaaaaaaaaaaaa", "invoice", "read"), False),
    ):
        # One decision counted, under its outcome.
        answers = _compare((fast, route), PATH, body, token, caplog, (allowed, not allowed))
        assert answers[0][0][1] == (b'{"decision":true}' if allowed else b'{"decision":false}')
    assert inner.calls == 0  # every one answered by the fast path


def test_a_made_request_id_has_the_same_form(api: Api, world: dict[str, Person]) -> None:
    fast, _route, inner = _both(api)
    body = _req(world["billing"], world["owner"].area_id, "invoice", "pay")
    res = fast.simulate_post(
        PATH,
        json=body,
        headers={"Authorization": f"Bearer {api.service_token()}"},
    )
    assert res.status_code == 200 and len(res.headers["x-request-id"]) == 32
    assert (
        fast.simulate_post(
            PATH, json=body, headers={"Authorization": f"Bearer {api.service_token()}"}
        ).headers["x-request-id"]
        != res.headers["x-request-id"]
    )


def _cases(api: Api, world: dict[str, Person]) -> list[tuple[str, dict[str, Any]]]:
    """Requests the fast path must leave to the route, each as simulate_post's kwargs."""
    token = api.service_token()
    auth = {"Authorization": f"Bearer {token}"}
    area = world["owner"].area_id
    good = _req(world["billing"], area, "invoice", "pay")
    text = json.dumps(good)

    def with_(**changes: Any) -> dict[str, Any]:
        return {**good, **changes}

    return [
        ("no token", {"json": good}),
        ("not a bearer", {"json": good, "headers": {"Authorization": "Basic eDp5"}}),
        ("a forged token", {"json": good, "headers": {"Authorization": f"Bearer {token}x"}}),
        (
            "no decisions scope",
            {
                "json": good,
                "headers": {"Authorization": f"Bearer {api.service_token('openid')}"},
            },
        ),
        ("a query string", {"json": good, "headers": auth, "query_string": "lang=es"}),
        (
            "another media type",
            {"body": text, "headers": {**auth, "Content-Type": "text/plain"}},
        ),
        (
            "json with a charset",
            {"body": text, "headers": {**auth, "Content-Type": "application/json; charset=utf-8"}},
        ),
        ("no body", {"headers": {**auth, "Content-Type": "application/json"}}),
        (
            "too large",
            {"body": text + " " * 70_000, "headers": {**auth, "Content-Type": "application/json"}},
        ),
        ("not json", {"body": "{nope", "headers": {**auth, "Content-Type": "application/json"}}),
        ("an array", {"body": "[1]", "headers": {**auth, "Content-Type": "application/json"}}),
        (
            "an escape",
            {
                "body": text.replace('"pay"', '"p\\u0061y"'),
                "headers": {**auth, "Content-Type": "application/json"},
            },
        ),
        (
            "a lone surrogate",
            {
                "body": text.replace('"pay"', '"\\ud800"'),
                "headers": {**auth, "Content-Type": "application/json"},
            },
        ),
        ("deep nesting", {"json": with_(x=json.loads("[" * 40 + "]" * 40)), "headers": auth}),
        ("a context", {"json": with_(context={}), "headers": auth}),
        ("an explanation", {"json": with_(context={"explain": True}), "headers": auth}),
        (
            "a consistency token ahead",
            {"json": with_(context={"policy_version": 10**9}), "headers": auth},
        ),
        (
            "no subject",
            {"json": {k: v for k, v in good.items() if k != "subject"}, "headers": auth},
        ),
        (
            "a subject of another type",
            {"json": with_(subject={"type": "svc", "id": "x"}), "headers": auth},
        ),
        ("a number as id", {"json": with_(subject={"type": "user", "id": 7}), "headers": auth}),
        (
            "subject properties",
            {
                "json": with_(
                    subject={"type": "user", "id": world["billing"].user_id, "properties": 1}
                ),
                "headers": auth,
            },
        ),
        ("no area", {"json": with_(resource={"type": "invoice", "id": "42"}), "headers": auth}),
        (
            "an area that is no id",
            {
                "json": with_(
                    resource={"type": "invoice", "id": "42", "properties": {"area": "A B"}}
                ),
                "headers": auth,
            },
        ),
        (
            "a user id that is no id",
            {"json": with_(subject={"type": "user", "id": "role:owner"}), "headers": auth},
        ),
        (
            "no resource id",
            {
                "json": with_(resource={"type": "invoice", "properties": {"area": area}}),
                "headers": auth,
            },
        ),
    ]


def test_every_other_request_gets_the_routes_answer(api: Api, world: dict[str, Person]) -> None:
    fast, route, inner = _both(api)
    for name, kwargs in _cases(api, world):
        kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), "X-Request-ID": "r-1"}}
        calls = inner.calls
        answers = [_answer(client.simulate_post(PATH, **kwargs)) for client in (fast, route)]
        assert answers[0] == answers[1], name
        assert inner.calls == calls + 1, f"{name}: not left to the route"


def test_a_stale_policy_gets_the_routes_answer(api: Api, world: dict[str, Person]) -> None:
    """As in test_authzen's stale test: the route answers 503, so must the fast path. (A
    revoked token: test_revocation, whose calls go through the served app.)"""
    fast, route, inner = _both(api)
    body = _req(world["billing"], world["owner"].area_id, "invoice", "pay")
    headers = {"Authorization": f"Bearer {api.service_token()}", "X-Request-ID": "r-2"}
    assert fast.simulate_post(PATH, json=body, headers=headers).status_code == 200
    api.services.decider._max_staleness = 0.0  # any time since the last sync is too long
    answers = [_answer(c.simulate_post(PATH, json=body, headers=headers)) for c in (fast, route)]
    assert answers[0] == answers[1] and answers[0][0] == 503
    assert inner.calls == 1


BATCH = "/access/v1/evaluations"


def _items(world: dict[str, Person]) -> list[dict[str, Any]]:
    area = world["owner"].area_id
    return [
        _req(world["billing"], area, "invoice", "pay"),
        _req(world["billing"], area, "invoice", "refund"),
        _req("u_aaaaaaaaaaaaaaaaaaaaaaaaaa", area, "invoice", "read"),
        _req(world["owner"], "a_aaaaaaaaaaaaaaaaaaaaaaaaaa", "invoice", "read"),
        _req(world["owner"], area, "member", "invite"),
    ]


def test_a_common_batch_is_answered_as_the_route_answers_it(
    api: Api, world: dict[str, Person], caplog: pytest.LogCaptureFixture
) -> None:
    fast, route, inner = _both(api)
    token = api.service_token()
    caplog.set_level(logging.INFO, logger="delegauth.access")
    items = _items(world)
    for body, counted in (
        ({"evaluations": items}, (2.0, 3.0)),
        ({"evaluations": items * 40}, (80.0, 120.0)),
        ({"evaluations": items[:1]}, (1.0, 0.0)),
        ({"evaluations": items, "options": {"evaluations_semantic": "execute_all"}}, (2.0, 3.0)),
        (
            {"options": {"evaluations_semantic": "deny_on_first_deny"}, "evaluations": items},
            (1.0, 1.0),
        ),
        (
            {
                "evaluations": items[1:],
                "options": {"evaluations_semantic": "permit_on_first_permit"},
            },
            (1.0, 3.0),
        ),
    ):
        answers = _compare((fast, route), BATCH, body, token, caplog, counted)
        assert answers[0][0][0] == 200 and answers[0][1]["path"] == BATCH
    assert inner.calls == 0  # every one answered by the fast path


def _batch_cases(api: Api, world: dict[str, Person]) -> list[tuple[str, dict[str, Any]]]:
    """Batches the fast path must leave to the route, each as simulate_post's kwargs."""
    auth = {"Authorization": f"Bearer {api.service_token()}"}
    items = _items(world)
    good = {"evaluations": items}
    text = json.dumps(good)
    odd = {**items[0], "context": {}}

    def with_(**changes: Any) -> dict[str, Any]:
        return {"json": {**good, **changes}, "headers": auth}

    return [
        ("no token", {"json": good}),
        ("a query string", {"json": good, "headers": auth, "query_string": "x=1"}),
        ("another media type", {"body": text, "headers": {**auth, "Content-Type": "text/plain"}}),
        ("not json", {"body": text[:-1], "headers": {**auth, "Content-Type": "application/json"}}),
        (
            "an escape",
            {
                "body": text.replace('"pay"', '"p\\u0061y"'),
                "headers": {**auth, "Content-Type": "application/json"},
            },
        ),
        (
            "deep nesting in an item",
            with_(evaluations=[*items, {**items[0], "x": json.loads("[" * 40 + "]" * 40)}]),
        ),
        ("no evaluations", with_(evaluations=None)),
        ("empty evaluations", with_(evaluations=[])),
        ("evaluations not an array", with_(evaluations={"a": 1})),
        ("too many", with_(evaluations=items[:1] * 257)),
        ("an item not an object", with_(evaluations=[*items, 1])),
        ("an item with a context", with_(evaluations=[*items, odd])),
        (
            "an item of another subject type",
            with_(evaluations=[{**items[0], "subject": {"type": "svc", "id": "x"}}]),
        ),
        ("a default subject", with_(subject={"type": "user", "id": world["owner"].user_id})),
        ("a top-level context", with_(context={"explain": True})),
        ("another member", with_(x=1)),
        ("options not an object", with_(options=[])),
        ("options null", with_(options=None)),
        ("empty options", with_(options={})),
        ("an unknown semantic", with_(options={"evaluations_semantic": "first"})),
        ("another option", with_(options={"evaluations_semantic": "execute_all", "x": 1})),
    ]


def test_every_other_batch_gets_the_routes_answer(api: Api, world: dict[str, Person]) -> None:
    fast, route, inner = _both(api)
    for name, kwargs in _batch_cases(api, world):
        kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), "X-Request-ID": "r-1"}}
        calls = inner.calls
        answers = [_answer(client.simulate_post(BATCH, **kwargs)) for client in (fast, route)]
        assert answers[0] == answers[1], name
        assert inner.calls == calls + 1, f"{name}: not left to the route"


def test_a_stale_policy_gets_the_routes_answer_to_a_batch(
    api: Api, world: dict[str, Person]
) -> None:
    fast, route, inner = _both(api)
    body = {"evaluations": _items(world)}
    headers = {"Authorization": f"Bearer {api.service_token()}", "X-Request-ID": "r-2"}
    assert fast.simulate_post(BATCH, json=body, headers=headers).status_code == 200
    assert inner.calls == 0
    before = _decisions()
    api.services.decider._max_staleness = 0.0
    answers = [_answer(c.simulate_post(BATCH, json=body, headers=headers)) for c in (fast, route)]
    assert answers[0] == answers[1] and answers[0][0] == 503
    assert inner.calls == 1 and _decisions() == before
