"""policies/authzen.toml: how an AuthZEN request becomes a Casbin request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from delegauth.errors import InvalidInput
from delegauth.policy.bundle import PolicyError, load_bundle
from delegauth.policy.check import check_directory
from delegauth.policy.decider import Decider
from delegauth.policy.mapping import DEFAULT_MAPPING, MISSING, Question, parse_mapping
from delegauth.policy.memory_feed import MemoryPolicyFeed
from delegauth.policy.tables import run_tables
from tests.conftest import POLICIES

EXAMPLES = Path(POLICIES) / "examples"
RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
BETH = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"


def _body(sub: str, act: str, rtype: str = "todo", **props: str) -> dict[str, object]:
    resource: dict[str, object] = {"type": rtype, "id": "t1"}
    if props:
        resource["properties"] = props
    return {"subject": {"type": "user", "id": sub}, "action": {"name": act}, "resource": resource}


def _decider(name: str) -> Decider:
    decider = Decider(load_bundle(EXAMPLES / name), MemoryPolicyFeed(), monotonic=lambda: 0.0)
    decider.sync()
    return decider


def _decide(decider: Decider, body: dict[str, object]) -> bool:
    question = decider.bundle.mapping.question(body)
    return not isinstance(question, str) and decider.decide_question(question)


def test_the_shipped_policy_maps_as_before() -> None:
    mapping = load_bundle(POLICIES).mapping
    body = _body(
        "u_aaaaaaaaaaaaaaaaaaaaaaaaaa", "pay", "invoice", area="a_bbbbbbbbbbbbbbbbbbbbbbbbbb"
    )
    question = mapping.question(body)
    assert isinstance(question, Question)
    assert question.values == (
        "user:u_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "area:a_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "invoice",
        "pay",
    )
    assert mapping.subjects == DEFAULT_MAPPING.subjects


def test_the_shipped_mapping_is_declared_in_policies_and_is_the_default() -> None:
    """policies/authzen.toml states the delegation policy's mapping, where a security team
    reads and changes it; its values are those that apply without the file."""
    text = (Path(POLICIES) / "authzen.toml").read_text("utf-8")
    mapping, problems = parse_mapping(text)
    assert problems == []
    assert mapping.declared and load_bundle(POLICIES).mapping.declared
    for key in ("subjects", "domain", "fixed_domain", "object_source", "properties"):
        assert getattr(mapping, key) == getattr(DEFAULT_MAPPING, key), key


def test_a_missing_area_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        DEFAULT_MAPPING.question(_body("u_aaaaaaaaaaaaaaaaaaaaaaaaaa", "pay", "invoice"))
    assert caught.value.field == "resource.properties.area"
    assert "resource.properties.area is required" in caught.value.detail


def test_unknown_subject_types_and_identities_are_denied_with_a_reason() -> None:
    mapping = load_bundle(EXAMPLES / "todo").mapping
    other = {**_body(RICK, "can_read_todos"), "subject": {"type": "group", "id": RICK}}
    assert mapping.question(other) == (
        'subject type "group" is not known to this policy (known: "user")'
    )
    assert "is not listed in identities.toml" in str(mapping.question(_body("nobody", "x")))


def test_todo_ownership_is_read_from_the_request() -> None:
    decider = _decider("todo")
    mine, theirs = {"ownerID": "morty@the-citadel.com"}, {"ownerID": "rick@the-citadel.com"}
    assert _decide(decider, _body(MORTY, "can_update_todo", **mine))
    assert not _decide(decider, _body(MORTY, "can_update_todo", **theirs))
    assert not _decide(decider, _body(MORTY, "can_update_todo"))  # no owner: matches no one
    assert _decide(decider, _body(RICK, "can_update_todo", **theirs | {"ownerID": "x"}))
    assert not _decide(decider, _body(BETH, "can_update_todo", ownerID="beth@the-smiths.com"))
    assert _decide(decider, _body(BETH, "can_read_todos"))
    assert not _decide(decider, _body(BETH, "can_create_todo"))


def test_listed_resource_properties_win_over_the_request() -> None:
    decider = _decider("search")
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "edit"},
        "resource": {"type": "record", "id": "101", "properties": {"owner": "erin"}},
    }
    assert not _decide(decider, body)  # 101 is alice's, whatever the request says
    body["resource"] = {"type": "record", "id": "105"}
    assert _decide(decider, body)


def test_a_fixed_domain_decides_every_request_in_that_area(tmp_path: Path) -> None:
    """[domain] from = "fixed": the request names no area (one it names is ignored); the
    shipped model decides in the declared one, grants there count and nowhere else."""
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("model.conf", "catalogue.toml"):
        (policies / name).write_text((Path(POLICIES) / name).read_text("utf-8"), "utf-8")
    fixed, other = "a_" + "f" * 26, "a_" + "g" * 26
    (policies / "authzen.toml").write_text(f'[domain]\nfrom = "fixed"\nvalue = "{fixed}"\n')
    bundle = load_bundle(policies)
    user = "u_" + "b" * 26
    g_lines = [("g", f"user:{user}", "perm:invoices", f"area:{fixed}")]
    decider = Decider(bundle, MemoryPolicyFeed(g_lines), monotonic=lambda: 0.0)
    decider.sync()
    pay = _body(user, "pay", "invoice")
    question = bundle.mapping.question(pay)
    assert isinstance(question, Question) and question.domain == f"area:{fixed}"
    assert _decide(decider, pay)
    assert _decide(decider, _body(user, "pay", "invoice", area=other))  # ignored
    assert not _decide(decider, _body(user, "update", "domain"))
    assert not _decide(decider, _body("u_" + "c" * 26, "pay", "invoice"))


def test_missing_properties_equal_nothing() -> None:
    same = MISSING
    assert same != MISSING
    assert (same == MISSING) is False
    assert "admin" not in MISSING


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[subjects.role]\nids = "identities"\n', 1, "subject type 'role'"),
        ('[subjects.user]\nids = "magic"\n', 2, "ids must be one of"),
        ('[domain]\nfrom = "somewhere"\n', 2, "from must be one of"),
        ('[domain]\nfrom = "fixed"\n', 1, 'from = "fixed" needs value'),
        ('[properties]\nresource = ["_x"]\n', 2, "must be identifiers"),
        ('[request]\nobject = "resource.name"\n', 2, "object must be one of"),
        ('[subjects.user]\nids = "users"\ncolour = 1\n', 3, "unknown key 'colour'"),
        ("[stuff]\n", 1, "unknown table 'stuff'"),
    ],
)
def test_mapping_problems_have_lines(text: str, line: int, message: str) -> None:
    _, problems = parse_mapping(text)
    assert problems, text
    assert problems[0].line == line and message in problems[0].message, problems


def test_identities_need_a_declared_type() -> None:
    _, problems = parse_mapping(None, '[identity.x]\nroles = ["viewer"]\n')
    assert problems[0].file == "identities.toml" and problems[0].line == 1
    assert '[subjects.identity] ids = "identities"' in problems[0].message


def test_check_reports_undeclared_property_reads_with_file_and_line(tmp_path: Path) -> None:
    for name in ("model.conf", "catalogue.toml", "policy.csv", "identities.toml"):
        (tmp_path / name).write_bytes((EXAMPLES / "todo" / name).read_bytes())
    (tmp_path / "authzen.toml").write_text(
        '[subjects.user]\nids = "identities"\n[domain]\nfrom = "none"\n'
    )
    errors = [d for d in check_directory(tmp_path) if d.severity == "error"]
    assert any(
        d.file.endswith("model.conf") and d.line == 19 and "r.obj.ownerID" in d.message
        for d in errors
    ), errors


def test_a_bad_mapping_refuses_to_load(tmp_path: Path) -> None:
    for name in os.listdir(POLICIES):
        if name.endswith((".conf", ".toml", ".csv")):
            (tmp_path / name).write_bytes((Path(POLICIES) / name).read_bytes())
    (tmp_path / "authzen.toml").write_text('[domain]\nfrom = "nowhere"\n')
    with pytest.raises(PolicyError, match=r"authzen.toml:2: from must be one of"):
        load_bundle(tmp_path)
    assert any(d.line == 2 and d.severity == "error" for d in check_directory(tmp_path))


@pytest.mark.parametrize("name", ["todo", "gateway", "search", "routes"])
def test_the_examples_pass_check(name: str) -> None:
    assert [str(d) for d in check_directory(EXAMPLES / name) if d.severity == "error"] == []


@pytest.mark.parametrize("name", ["todo", "gateway", "search"])
def test_the_examples_decision_tables_pass(name: str) -> None:
    report = run_tables(EXAMPLES / name)
    assert report.ok, report.lines()
    assert sum(t.decisions for t in report.tables) >= 12
    assert report.uncovered == []


def test_a_request_case_that_expects_the_wrong_decision_fails(tmp_path: Path) -> None:
    (tmp_path / "wrong.yaml").write_text(
        "name: wrong\ncases:\n"
        "  - request:\n"
        f"      subject: {{type: user, id: {MORTY}}}\n"
        "      action: {name: can_update_todo}\n"
        "      resource: {type: todo, id: t1, properties: {ownerID: rick@the-citadel.com}}\n"
        "    decision: true\n"
    )
    (tmp_path / "malformed.yaml").write_text(
        "name: malformed\ncases:\n"
        "  - {request: {subject: {type: user}, action: {name: x}, resource: {type: y}},"
        " decision: true}\n"
    )
    report = run_tables(EXAMPLES / "todo", tmp_path)
    messages = [f.message for f in report.failures]
    assert any("should be allowed, was denied" in m for m in messages), messages
    assert any("request.subject needs type, id" in m for m in messages), messages
