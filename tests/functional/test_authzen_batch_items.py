"""A batch answers each item exactly as the same evaluation sent alone is answered.

Batches take a shorter path for items in the common shape (subject {type: "user", id},
action {name}, resource {type, id, properties: {area}}) and the general one for anything
else; the items below mix both, with the edges of the short path's checks (ids that are
no Casbin names, a final newline, other types, properties, contexts), and every answer is
compared with /access/v1/evaluation's for the same item, under each semantic, with areas
and answers cold and warm, with and without top-level defaults."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, Person

ROUTE = "/access/v1/evaluations"
UNKNOWN_USER = "u_" + "q" * 26
UNKNOWN_AREA = "a_" + "q" * 26


@pytest.fixture
def people(api: Api) -> dict[str, Person]:
    owner = api.signup("o@example.com")
    other = api.signup("x@example.com")
    return {
        "owner": owner,
        "other": other,
        "billing": api.link(owner, "b@example.com", ["invoices"]),
        "domains": api.link(owner, "d@example.com", ["domains", "managedomains@example.com"]),
    }


def _items(people: dict[str, Person]) -> list[dict[str, Any]]:
    area = people["owner"].area_id

    def ev(user: str, action: str, rtype: str, rid: str = "1", **resource: Any) -> dict[str, Any]:
        props = resource.pop("properties", {"area": area})
        return {
            "subject": {"type": "user", "id": user},
            "action": {"name": action},
            "resource": {"type": rtype, "id": rid, "properties": props, **resource},
        }

    billing, domains = people["billing"].user_id, people["domains"].user_id
    owner, other = people["owner"].user_id, people["other"].user_id
    user = {"type": "user", "id": billing}
    items = [
        ev(billing, "read", "invoice"),
        ev(billing, "delete", "invoice"),
        ev(owner, "pay", "invoice"),
        ev(other, "read", "invoice"),
        ev(UNKNOWN_USER, "read", "invoice"),
        ev(billing, "read", "invoice", properties={"area": UNKNOWN_AREA}),
        ev(other, "read", "invoice", properties={"area": people["other"].area_id}),
        ev(domains, "update", "domain", "example.com"),
        ev(domains, "update", "domain", "example.org"),
        ev(domains, "read", "domain", "example.org"),
        ev(billing, "read", "invoice", properties={"area": area, "region": "eu"}),
        ev(billing, "read", "invoice", colour="blue"),
        # The short path's edges: what it must send to the general path.
        ev(billing + "\n", "read", "invoice"),
        ev("Bad Id", "read", "invoice"),
        ev("", "read", "invoice"),
        ev("u_" + "x" * 70, "read", "invoice"),
        ev(billing, "read", "invoice", properties={"area": area + "\n"}),
        ev(billing, "read", "invoice", properties={"area": "A-1"}),
        ev(billing, "read", "invoice", properties={"area": 5}),
        ev(billing, "read", "invoice", properties={}),
        ev(billing, "read", "invoice", properties=None),
        ev(billing, "read", "invoice", properties=["area"]),
        ev(billing, "read", 5),
        ev(billing, "read", "invoice", 5),
        {**ev(billing, "read", "invoice"), "subject": {"type": "service", "id": billing}},
        {**ev(billing, "read", "invoice"), "subject": {"type": "user", "id": billing, "x": 1}},
        {**ev(billing, "read", "invoice"), "subject": {"type": "user"}},
        {**ev(billing, "read", "invoice"), "subject": ["user", billing]},
        {**ev(billing, "read", "invoice"), "action": {"name": "read", "properties": {}}},
        {**ev(billing, "read", "invoice"), "action": {"name": "read", "properties": None}},
        {**ev(billing, "read", "invoice"), "action": {"name": "read", "properties": 5}},
        {**ev(billing, "read", "invoice"), "subject": {**user, "properties": 5}},
        {**ev(billing, "read", "invoice"), "context": None},
        {**ev(billing, "read", "invoice"), "context": {}},
        {**ev(billing, "read", "invoice"), "context": {"explain": True}},
        {**ev(billing, "delete", "invoice"), "context": {"explain": True}},
        {**ev(billing, "read", "invoice"), "context": {"policy_version": 0}},
        {**ev(billing, "read", "invoice"), "context": 5},
        {**ev(billing, "read", "invoice"), "evaluations": []},
        {"action": {"name": "read"}},
        {},
    ]
    return items


def _alone(api: Api, token: str, item: dict[str, Any]) -> dict[str, Any]:
    """What the evaluation endpoint says of ``item``, as a batch item must say it."""
    res = api.call("POST", "/access/v1/evaluation", token, json=item)
    if res.status_code == 400:
        return {"decision": False, "context": {"error": res.json}}
    assert res.status_code == 200, res.text
    return dict(res.json)


def _expected(alone: list[dict[str, Any]], semantic: str) -> list[dict[str, Any]]:
    stop = {"deny_on_first_deny": False, "permit_on_first_permit": True}.get(semantic)
    for n, result in enumerate(alone):
        if result["decision"] is stop:
            return alone[: n + 1]
    return alone


SEMANTICS = ["execute_all", "deny_on_first_deny", "permit_on_first_permit"]


@pytest.mark.parametrize("semantic", SEMANTICS)
def test_each_item_is_answered_as_it_is_alone(
    api: Api, people: dict[str, Person], semantic: str
) -> None:
    token = api.service_token()
    items = _items(people)
    api.services.decider.install(api.services.decider.bundle)  # areas and answers cold
    got = [api.call("POST", ROUTE, token, json={"evaluations": items}) for _ in range(2)]
    alone = [_alone(api, token, item) for item in items]
    assert [a["decision"] for a in alone].count(True) >= 6  # the mix has allows
    every = range(len(items))
    plain = [n for n in every if "context" not in items[n]]
    for order in (list(every), list(reversed(every)), plain):
        answers = [alone[n] for n in order]
        body = {
            "evaluations": [items[n] for n in order],
            "options": {"evaluations_semantic": semantic},
        }
        res = api.call("POST", ROUTE, token, json=body)
        assert res.status_code == 200, res.text
        assert res.json["evaluations"] == _expected(answers, semantic)
    if semantic == "execute_all":
        for res in got:  # the first cold, the second warm
            assert res.status_code == 200, res.text
            assert res.json["evaluations"] == alone


def test_items_filled_from_top_level_defaults_are_answered_as_alone(
    api: Api, people: dict[str, Person]
) -> None:
    token = api.service_token()
    area = people["owner"].area_id
    defaults = {
        "subject": {"type": "user", "id": people["billing"].user_id},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
    }
    items = [
        {"action": {"name": "read"}},
        {"action": {"name": "delete"}},
        {"action": {"name": "read"}, "subject": {"type": "user", "id": people["owner"].user_id}},
        {"action": {"name": "read"}, "resource": {"type": "invoice", "id": "1"}},
        {"action": {"name": "read"}, "context": {"explain": True}},
        {},
    ]
    alone = [_alone(api, token, {**defaults, **item}) for item in items]
    res = api.call("POST", ROUTE, token, json={**defaults, "evaluations": items})
    assert res.status_code == 200, res.text
    assert res.json["evaluations"] == alone
    assert [a["decision"] for a in alone] == [True, False, True, False, True, False]
    explained = {**defaults, "context": {"explain": True}, "evaluations": items[:2]}
    res = api.call("POST", ROUTE, token, json=explained)
    assert [e["context"]["explanation"] for e in res.json["evaluations"]] == [
        _alone(api, token, {**defaults, "context": {"explain": True}, **item})["context"][
            "explanation"
        ]
        for item in items[:2]
    ]


def test_a_batch_in_the_common_shape_counts_its_decisions(
    api: Api, people: dict[str, Person]
) -> None:
    """Each decision reaches the metrics once, allows and denies apart."""
    from delegauth import metrics

    def counts() -> tuple[float, float]:
        text = metrics.render(lambda: iter(())).decode()
        found = {}
        for outcome in ("allow", "deny"):
            line = f'delegauth_decisions_total{{outcome="{outcome}"}} '
            found[outcome] = next(
                (float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0
            )
        return found["allow"], found["deny"]

    items = _items(people)[:5]  # common shape: allow, deny, allow, deny, deny
    before = counts()
    res = api.call("POST", ROUTE, api.service_token(), json={"evaluations": items})
    assert [e["decision"] for e in res.json["evaluations"]] == [True, False, True, False, False]
    after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 3)
