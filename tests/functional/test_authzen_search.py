"""AuthZEN 1.0 search APIs, paging, metadata and decision explanations over HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from delegauth.api.app import create_app
from delegauth.api.auth import Authenticator
from delegauth.api.authzen_search import add_search_routes
from delegauth.policy.bundle import load_bundle
from delegauth.storage.search_feed import PeeweeSearchFeed
from tests.conftest import POLICIES, Api, Person

SUBJECT = "/access/v1/search/subject"
RESOURCE = "/access/v1/search/resource"
ACTION = "/access/v1/search/action"


@pytest.fixture
def search(api: Api) -> Api:
    """The api fixture, over an app with the search routes added."""
    services = api.services
    settings = services.settings
    app = create_app(settings, services=services)
    add_search_routes(
        app,
        Authenticator(services.tokens),
        services.decider,
        PeeweeSearchFeed(services.db),
        settings.max_body_bytes,
        settings.public_url,
    )
    api.client = falcon.testing.TestClient(app)
    return api


@pytest.fixture
def world(search: Api) -> dict[str, Person]:
    owner = search.signup("o@example.com")
    billing = search.link(owner, "b@example.com", ["invoices"])
    tech = search.link(owner, "t@example.com", ["domains"])
    other = search.signup("o2@example.com")
    # billing also manages everything in other's area
    inv = search.invite(other, billing.email, "all")
    res = search.call("POST", f"/v1/invitations/{inv['id']}/accept", search.token(billing))
    assert res.status_code == 201, res.text
    return {"owner": owner, "billing": billing, "tech": tech, "other": other}


def _post(api: Api, path: str, body: dict[str, Any], **kw: Any) -> falcon.testing.Result:
    return api.call("POST", path, api.service_token(), json=body, **kw)


def _subjects(area: str, rtype: str, action: str, **extra: Any) -> dict[str, Any]:
    return {
        "subject": {"type": "user"},
        "action": {"name": action},
        "resource": {"type": rtype, "properties": {"area": area}},
        **extra,
    }


def _resources(person: Person, rtype: str, action: str, **extra: Any) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": person.user_id},
        "action": {"name": action},
        "resource": {"type": rtype},
        **extra,
    }


def _actions(person: Person, area: str, rtype: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"properties": {"area": area}}
    if rtype:
        resource["type"] = rtype
    return {"subject": {"type": "user", "id": person.user_id}, "resource": resource}


def _all_pages(api: Api, path: str, body: dict[str, Any], limit: int) -> list[list[Any]]:
    pages: list[list[Any]] = []
    page: dict[str, Any] = {"limit": limit}
    while True:
        res = _post(api, path, {**body, "page": page})
        assert res.status_code == 200, res.text
        assert list(res.json) == ["page", "results"]  # page first, as the spec recommends
        assert res.json["page"]["count"] == len(res.json["results"])
        pages.append(res.json["results"])
        token = res.json["page"]["next_token"]
        if not token:
            return pages
        assert len(pages) < 50
        page = {"token": token}  # the limit may be left out on later pages


# -- subject search -----------------------------------------------------------------------


def test_subject_search_lists_exactly_the_users_decide_allows(search: Api, world) -> None:
    area = world["owner"].area_id
    res = _post(search, SUBJECT, _subjects(area, "invoice", "pay"))
    assert res.status_code == 200, res.text
    ids = [r["id"] for r in res.json["results"]]
    expected = sorted([world["owner"].user_id, world["billing"].user_id])
    assert ids == expected
    assert all(r["type"] == "user" for r in res.json["results"])
    assert res.json["page"] == {"next_token": "", "count": 2, "total": 2}
    everyone = [world[k] for k in ("owner", "billing", "tech", "other")]
    for person in everyone:
        assert search.decide(person, area, "invoice", "pay") == (person.user_id in ids)
    res = _post(search, SUBJECT, _subjects(area, "domain", "read"))
    assert [r["id"] for r in res.json["results"]] == sorted(
        [world["owner"].user_id, world["tech"].user_id]
    )


def test_subject_search_without_matches_or_users_is_empty(search: Api, world) -> None:
    area = world["owner"].area_id
    for body in (
        _subjects(area, "invoice", "refund"),
        _subjects("a_aaaaaaaaaaaaaaaaaaaaaaaaaa", "invoice", "read"),
        _subjects("*", "invoice", "read"),
        {**_subjects(area, "invoice", "read"), "subject": {"type": "group"}},
    ):
        res = _post(search, SUBJECT, body)
        assert res.status_code == 200, res.text
        assert res.json == {"page": {"next_token": "", "count": 0, "total": 0}, "results": []}
    # Without the area the shipped mapping needs: a 400 naming it, as for an evaluation.
    no_area = {**_subjects(area, "invoice", "read"), "resource": {"type": "invoice"}}
    res = _post(search, SUBJECT, no_area)
    assert res.status_code == 400 and res.json["field"] == "resource.properties.area"


def test_limit_zero_counts_and_hands_out_the_first_page(search: Api, world) -> None:
    body = _subjects(world["owner"].area_id, "domain", "read")
    res = _post(search, SUBJECT, {**body, "page": {"limit": 0}})
    assert res.status_code == 200, res.text
    assert res.json["results"] == [] and res.json["page"]["count"] == 0
    assert res.json["page"]["total"] == 2 and res.json["page"]["next_token"]
    first = _post(search, SUBJECT, {**body, "page": {"token": res.json["page"]["next_token"]}})
    assert first.json["results"] == []  # the token keeps its limit: 0
    token = res.json["page"]["next_token"]
    page = _post(search, SUBJECT, {**body, "page": {"token": token, "limit": 5}}).json
    assert [r["id"] for r in page["results"]] == sorted(
        [world["owner"].user_id, world["tech"].user_id]
    )
    assert page["page"] == {"next_token": "", "count": 2, "total": 2}
    nothing = _post(
        search,
        SUBJECT,
        {**_subjects(world["owner"].area_id, "invoice", "refund"), "page": {"limit": 0}},
    ).json
    assert nothing["page"] == {"next_token": "", "count": 0, "total": 0}


def test_subject_search_pages_in_a_stable_order(search: Api, world) -> None:
    owner = world["owner"]
    extra = [search.link(owner, f"d{i}@example.com", ["invoices"]) for i in range(3)]
    body = _subjects(owner.area_id, "invoice", "read")
    pages = _all_pages(search, SUBJECT, body, limit=2)
    ids = [r["id"] for page in pages for r in page]
    expected = sorted([owner.user_id, world["billing"].user_id, *(p.user_id for p in extra)])
    assert ids == expected
    assert [len(p) for p in pages] == [2, 2, 1]
    assert _all_pages(search, SUBJECT, body, limit=5) == [[{"type": "user", "id": i} for i in ids]]


# -- resource search ----------------------------------------------------------------------


def _listing(search: Api, world: dict[str, Person], tmp: Path) -> None:
    """Serve the shipped policy plus a resources.toml listing invoices in two areas."""
    shutil.copytree(POLICIES, tmp, ignore=shutil.ignore_patterns("examples", "tests"))
    owner, other = world["owner"].area_id, world["other"].area_id
    lines = []
    for ident, area in (("inv-1", owner), ("inv-2", owner), ("inv-3", other), ("inv-4", "a_x")):
        lines += [f'[invoice."{ident}"]', f'area = "{area}"', ""]
    (tmp / "resources.toml").write_text("\n".join(lines))
    search.services.decider.install(load_bundle(tmp))


def test_resource_search_lists_resources_never_areas(search: Api, world, tmp_path) -> None:
    billing, tech = world["billing"], world["tech"]
    # Grants cover areas, not resources: with nothing listed there is nothing to return.
    res = _post(search, RESOURCE, _resources(billing, "invoice", "read"))
    assert res.status_code == 200, res.text
    assert res.json == {"page": {"next_token": "", "count": 0, "total": 0}, "results": []}
    _listing(search, world, tmp_path / "policies")
    res = _post(search, RESOURCE, _resources(billing, "invoice", "read"))
    assert res.json["results"] == [
        {"type": "invoice", "id": i} for i in ("inv-1", "inv-2", "inv-3")
    ]
    # tech holds domains in owner's area: no invoice there.
    assert _post(search, RESOURCE, _resources(tech, "invoice", "read")).json["results"] == []
    assert _post(search, RESOURCE, _resources(billing, "domain", "read")).json["results"] == []
    # Each result, with its listed area, is allowed by an evaluation.
    for result in _post(search, RESOURCE, _resources(billing, "invoice", "pay")).json["results"]:
        area = world["other"].area_id if result["id"] == "inv-3" else world["owner"].area_id
        evaluation = {
            "subject": {"type": "user", "id": billing.user_id},
            "action": {"name": "pay"},
            "resource": {**result, "properties": {"area": area}},
        }
        assert _post(search, "/access/v1/evaluation", evaluation).json == {"decision": True}


def test_resource_search_pages(search: Api, world, tmp_path) -> None:
    _listing(search, world, tmp_path / "policies")
    body = _resources(world["billing"], "invoice", "read")
    pages = _all_pages(search, RESOURCE, body, limit=1)
    assert [[r["id"] for r in p] for p in pages] == [["inv-1"], ["inv-2"], ["inv-3"]]


def test_resource_search_ignores_other_subject_types(search: Api, world) -> None:
    body = _resources(world["billing"], "invoice", "read")
    body["subject"]["type"] = "service"
    assert _post(search, RESOURCE, body).json["results"] == []


# -- action search ------------------------------------------------------------------------


def test_action_search_on_a_type(search: Api, world) -> None:
    billing, area = world["billing"], world["owner"].area_id
    res = _post(search, ACTION, _actions(billing, area, "invoice"))
    assert res.status_code == 200, res.text
    assert res.json["results"] == [{"name": "pay"}, {"name": "read"}]
    assert _post(search, ACTION, _actions(billing, area, "domain")).json["results"] == []
    for name in ("pay", "read"):
        assert search.decide(billing, area, "invoice", name)


def test_action_search_on_every_type_and_paging(search: Api, world) -> None:
    billing, owner, area = world["billing"], world["owner"], world["owner"].area_id
    res = _post(search, ACTION, _actions(billing, area))
    assert res.json["results"] == [
        {"name": "pay", "properties": {"resource_type": "invoice"}},
        {"name": "read", "properties": {"resource_type": "invoice"}},
    ]
    catalogue = search.services.decider.bundle.catalogue
    everything = sorted(catalogue.all_actions())
    pages = _all_pages(search, ACTION, _actions(owner, area), limit=7)
    listed = [(r["properties"]["resource_type"], r["name"]) for page in pages for r in page]
    assert listed == everything
    assert len(pages) == -(-len(everything) // 7)
    # Not a member: nothing.
    assert (
        _post(search, ACTION, _actions(world["tech"], world["other"].area_id)).json["results"] == []
    )


# -- paging errors, input, scope, metadata ------------------------------------------------


def test_page_tokens_are_bound_to_their_query(search: Api, world) -> None:
    owner = world["owner"]
    body = _subjects(owner.area_id, "invoice", "read")
    first = _post(search, SUBJECT, {**body, "page": {"limit": 1}})
    token = first.json["page"]["next_token"]
    assert token
    changed = _subjects(owner.area_id, "invoice", "pay", page={"token": token})
    res = _post(search, SUBJECT, changed)
    assert res.status_code == 400
    assert res.headers["content-type"] == "application/problem+json"
    # A subject-search token is no good for another search either.
    res = _post(search, RESOURCE, _resources(owner, "invoice", "read", page={"token": token}))
    assert res.status_code == 400
    for bad in ("not-a-token", "e30", "!!!!"):
        res = _post(search, SUBJECT, {**body, "page": {"token": bad}})
        assert res.status_code == 400, bad
    # The same query with the token goes on where the first page stopped.
    res = _post(search, SUBJECT, {**body, "page": {"token": token, "limit": 1}})
    assert res.status_code == 200
    assert res.json["results"] != first.json["results"]


def test_bad_input_is_400(search: Api, world) -> None:
    owner, area = world["owner"], world["owner"].area_id
    cases = [
        (SUBJECT, {k: v for k, v in _subjects(area, "invoice", "read").items() if k != "action"}),
        (SUBJECT, {**_subjects(area, "invoice", "read"), "subject": {}}),
        (SUBJECT, {**_subjects(area, "invoice", "read"), "resource": {"properties": {}}}),
        (SUBJECT, {**_subjects(area, "invoice", "read"), "page": []}),
        (SUBJECT, _subjects(area, "invoice", "read", page={"limit": -1})),
        (SUBJECT, _subjects(area, "invoice", "read", page={"limit": "5"})),
        (SUBJECT, _subjects(area, "invoice", "read", page={"limit": True})),
        (SUBJECT, _subjects(area, "invoice", "read", page={"token": 5})),
        (RESOURCE, {**_resources(owner, "invoice", "read"), "subject": {"type": "user"}}),
        (RESOURCE, {**_resources(owner, "invoice", "read"), "resource": {}}),
        (
            RESOURCE,
            {k: v for k, v in _resources(owner, "invoice", "read").items() if k != "action"},
        ),
        (ACTION, {"subject": {"type": "user", "id": owner.user_id}}),
        (ACTION, {**_actions(owner, area), "resource": {"type": 5}}),
        (ACTION, {**_actions(owner, area), "subject": {"id": owner.user_id}}),
        (ACTION, {**_actions(owner, area), "resource": {"properties": "x"}}),
    ]
    for path, body in cases:
        res = _post(search, path, body)
        assert res.status_code == 400, (path, body)
        assert res.headers["content-type"] == "application/problem+json"


def test_unknown_fields_are_ignored_and_request_id_echoed(search: Api, world) -> None:
    body = {
        **_subjects(world["owner"].area_id, "invoice", "pay", extra={"x": 1}),
        "page": {"limit": 10, "properties": {"sort": "desc"}},
    }
    body["subject"] = {"type": "user", "id": "ignored", "nick": "x"}
    res = _post(search, SUBJECT, body, headers={"X-Request-ID": "search-1"})
    assert res.status_code == 200
    assert res.headers["X-Request-ID"] == "search-1"
    assert len(res.json["results"]) == 2


def test_searches_need_the_decisions_scope(search: Api, world) -> None:
    area = world["owner"].area_id
    bodies = {
        SUBJECT: _subjects(area, "invoice", "read"),
        RESOURCE: _resources(world["billing"], "invoice", "read"),
        ACTION: _actions(world["billing"], area),
    }
    no_scope = search.service_token("openid")
    for path, body in bodies.items():
        assert search.call("POST", path, json=body).status_code == 401
        assert search.call("POST", path, no_scope, json=body).status_code == 403
        user = search.token(world["owner"])
        assert search.call("POST", path, user, json=body).status_code == 403


def test_metadata_lists_every_endpoint(search: Api) -> None:
    res = search.call("GET", "/.well-known/authzen-configuration")
    assert res.status_code == 200
    base = "http://localhost"
    assert res.json == {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
        "search_subject_endpoint": f"{base}/access/v1/search/subject",
        "search_resource_endpoint": f"{base}/access/v1/search/resource",
        "search_action_endpoint": f"{base}/access/v1/search/action",
    }
    for key, url in res.json.items():
        if key.endswith("_endpoint"):
            path = url.removeprefix(base)
            assert search.call("POST", path, json={}).status_code == 401, path


# -- explanations -------------------------------------------------------------------------


def _evaluation(person: Person, area: str, rtype: str, action: str, **extra: Any) -> dict:
    return {
        "subject": {"type": "user", "id": person.user_id},
        "action": {"name": action},
        "resource": {"type": rtype, "id": "1", "properties": {"area": area}},
        **extra,
    }


def test_explanations_only_on_request(search: Api, world) -> None:
    billing, area = world["billing"], world["owner"].area_id
    plain = _evaluation(billing, area, "invoice", "pay")
    assert _post(search, "/access/v1/evaluation", plain).json == {"decision": True}
    not_asked = {**plain, "context": {"explain": "yes", "time": "now"}}
    assert _post(search, "/access/v1/evaluation", not_asked).json == {"decision": True}

    res = _post(search, "/access/v1/evaluation", {**plain, "context": {"explain": True}})
    assert res.status_code == 200
    assert res.json["decision"] is True
    explanation = res.json["context"]["explanation"]
    assert explanation["policy_hash"] == search.services.decider.policy_hash
    subject, domain = f"user:{billing.user_id}", f"area:{area}"
    assert explanation["grants"] == [["g", subject, "perm:invoices", domain]]
    assert explanation["rules"] == [
        {
            "rule": ["p", "perm:invoices", "*", "invoice", "pay"],
            "source": 'catalogue permission invoices ("View and pay invoices")',
        }
    ]
    assert explanation["permissions"] == ["invoices"]
    assert explanation["reasons"] == []


def test_explanations_say_why_nothing_matched(search: Api, world) -> None:
    billing, tech, area = world["billing"], world["tech"], world["owner"].area_id
    ask = {"explain": True}

    def explained(body: dict[str, Any]) -> dict[str, Any]:
        res = _post(search, "/access/v1/evaluation", {**body, "context": ask})
        assert res.status_code == 200, res.text
        assert res.json["decision"] is False
        return dict(res.json["context"]["explanation"])

    wrong_perm = explained(_evaluation(tech, area, "invoice", "pay"))
    assert wrong_perm["rules"] == []
    assert wrong_perm["grants"] == [["g", f"user:{tech.user_id}", "perm:domains", f"area:{area}"]]
    assert any("perm:domains" in r and "perm:invoices" in r for r in wrong_perm["reasons"])

    stranger = explained(_evaluation(tech, world["other"].area_id, "invoice", "read"))
    assert stranger["grants"] == []
    assert any("not a member" in r for r in stranger["reasons"])

    unknown = explained(_evaluation(billing, area, "invoice", "refund"))
    assert any("no catalogue permission lists invoice:refund" in r for r in unknown["reasons"])

    group = _evaluation(billing, area, "invoice", "read")
    group["subject"]["type"] = "group"
    assert any("user" in r for r in explained(group)["reasons"])
    no_area = _evaluation(billing, area, "invoice", "read")
    no_area["resource"] = {"type": "invoice", "id": "1"}
    res = _post(search, "/access/v1/evaluation", {**no_area, "context": ask})
    assert res.status_code == 400 and "resource.properties.area" in res.json["detail"]


def test_batch_explains_only_the_evaluations_that_ask(search: Api, world) -> None:
    billing, area = world["billing"], world["owner"].area_id
    body = {
        "subject": {"type": "user", "id": billing.user_id},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": area}},
        "evaluations": [
            {"action": {"name": "read"}},
            {"action": {"name": "delete"}, "context": {"explain": True}},
        ],
    }
    res = _post(search, "/access/v1/evaluations", body)
    assert res.status_code == 200
    first, second = res.json["evaluations"]
    assert first == {"decision": True}
    assert second["decision"] is False and second["context"]["explanation"]["rules"] == []
    # A shared context asks for every evaluation.
    res = _post(search, "/access/v1/evaluations", {**body, "context": {"explain": True}})
    assert all("context" in e for e in res.json["evaluations"])
    assert res.json["evaluations"][0]["context"]["explanation"]["rules"][0]["rule"][1] == (
        "perm:invoices"
    )


def test_searches_fail_closed_on_a_stale_policy(search: Api, world, tmp_path) -> None:
    _listing(search, world, tmp_path / "policies")
    search.services.decider._max_staleness = 0.0  # any time since the last sync is too long
    area = world["owner"].area_id
    for path, body in (
        (SUBJECT, _subjects(area, "invoice", "read")),
        (RESOURCE, _resources(world["billing"], "invoice", "read")),
        (ACTION, _actions(world["billing"], area)),
    ):
        res = _post(search, path, body)
        assert res.status_code == 503, path
        assert res.headers["content-type"] == "application/problem+json"
