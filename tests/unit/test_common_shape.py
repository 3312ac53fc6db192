"""api.common_shape reads exactly what json.loads reads, or refuses.

Whatever body its readers accept, json.loads reads as the same objects, member for member,
with nothing more in them; and authzen.plain_requests then gives the requests
plain_evaluation gives for those objects. Bodies are generated near and around the common
shape: members in any order, repeated, missing or added, values of other types, odd
strings, escapes, whitespace of every kind JSON has and some it has not."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from delegauth.api import authzen, common_shape

_SETTINGS = settings(max_examples=400, deadline=None)

_WS = st.sampled_from(["", "", "", " ", "\n  ", "\t", "\r\n"] * 4 + ["\x0c", "\u00a0"])
_ODD_TEXT = st.sampled_from(
    [
        "",
        "a b",
        "A",
        "\u00e9",
        "\U0001f642",
        "\x01",
        "\x7f",
        "\u2028",
        '"',
        "\\",
        "\ud800",
        "x" * 70,
    ]
)
_TEXT = st.integers(0, 3).flatmap(
    lambda i: (
        _ODD_TEXT
        if i == 3
        else st.sampled_from(["u_1", "a_1", "user", "invoice", "pay", "1", "example.com"])
    )
)
_VALUE = st.one_of(
    _TEXT,
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.just(1e400),
    st.just(float("nan")),
    st.just([]),
    st.just({}),
    st.just({"area": "a_1"}),
)


def _usually(value: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    return st.integers(0, 15).flatmap(lambda i: odd if i == 15 else value)


@st.composite
def _obj(draw: st.DrawFn, members: list[tuple[str, st.SearchStrategy[Any]]]) -> str:
    """A JSON object as text: ``members`` mostly in order, sometimes dropped, repeated,
    shuffled, or with another member added."""
    chosen = [(k, draw(v)) for k, v in members if draw(st.integers(0, 31)) != 31]
    if draw(st.integers(0, 15)) == 15 and chosen:
        chosen.append(chosen[draw(st.integers(0, len(chosen) - 1))])  # repeated
    if draw(st.integers(0, 15)) == 15:
        key = draw(st.sampled_from(["context", "properties", "x", "area", "id", "subject"]))
        chosen.insert(draw(st.integers(0, len(chosen))), (key, draw(_VALUE)))
    if draw(st.integers(0, 15)) == 15:
        chosen = draw(st.permutations(chosen))
    ws = draw(_WS)
    ascii_only = draw(st.booleans())

    def dump(v: Any) -> str:
        return v if isinstance(v, _Raw) else json.dumps(v, ensure_ascii=ascii_only)

    inner = ("," + ws).join(f"{ws}{dump(k)}{ws}:{ws}{dump(v)}" for k, v in chosen)
    return _Raw("{" + inner + ws + "}")


class _Raw(str):
    """JSON text already written."""


def _evaluation() -> st.SearchStrategy[str]:
    text = _usually(_TEXT, _VALUE)
    return _obj(
        [
            (
                "subject",
                _usually(_obj([("type", _usually(st.just("user"), _VALUE)), ("id", text)]), _VALUE),
            ),
            ("action", _usually(_obj([("name", text)]), _VALUE)),
            (
                "resource",
                _usually(
                    _obj(
                        [
                            ("type", text),
                            ("id", text),
                            ("properties", _usually(_obj([("area", text)]), _VALUE)),
                        ]
                    ),
                    _VALUE,
                ),
            ),
        ]
    )


@st.composite
def _batch(draw: st.DrawFn) -> str:
    items = draw(st.lists(_usually(_evaluation(), _VALUE), min_size=0, max_size=4))
    ws = draw(_WS)
    array = _Raw(
        "[" + ws + ("," + ws).join(i if isinstance(i, _Raw) else json.dumps(i) for i in items) + "]"
    )
    options = _obj(
        [("evaluations_semantic", _usually(st.sampled_from(["execute_all", "x"]), _VALUE))]
    )
    members: list[tuple[str, st.SearchStrategy[Any]]] = [("evaluations", st.just(array))]
    if draw(st.booleans()):
        members.append(("options", _usually(options, _VALUE)))
    return str(draw(_usually(_obj(members), _VALUE.map(json.dumps))))


def _as_json(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


def _same_requests(structs: list[common_shape.Evaluation], objects: list[Any]) -> None:
    plain = [authzen.plain_evaluation(o) for o in objects]
    expected = None if None in plain else plain
    assert authzen.plain_requests(structs) == expected


@_SETTINGS
@given(_evaluation(), st.booleans())
def test_an_evaluation_it_reads_is_what_json_loads_reads(text: str, padded: bool) -> None:
    raw = ((" " if padded else "") + text).encode("utf-8", "surrogatepass")
    try:
        read = common_shape.read_evaluation(raw)
    except common_shape.NotCommon:
        event("refused")
        return
    event("read")
    loaded = _as_json(raw)
    assert msgspec.to_builtins(read) == loaded  # the same members, and no other
    _same_requests([read], [loaded])


@_SETTINGS
@given(_batch())
def test_a_batch_it_reads_is_what_json_loads_reads(text: str) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    try:
        items, semantic = common_shape.read_batch(raw)
    except common_shape.NotCommon:
        event("refused")
        return
    event("read")
    loaded = _as_json(raw)
    expected: dict[str, Any] = {"evaluations": [msgspec.to_builtins(i) for i in items]}
    if semantic is not None:
        expected["options"] = {"evaluations_semantic": semantic}
    assert loaded == expected
    _same_requests(items, loaded["evaluations"])


COMMON = {
    "subject": {"type": "user", "id": "u_1"},
    "action": {"name": "pay"},
    "resource": {"type": "invoice", "id": "7", "properties": {"area": "a_1"}},
}


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(COMMON))
    place = body
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = value
    return body


@pytest.mark.parametrize(
    "body",
    [
        _with(("context",), {}),
        _with(("subject", "properties"), {}),
        _with(("action", "properties"), {}),
        _with(("resource", "properties", "other"), "x"),
        _with(("resource", "x"), json.loads("[" * 40 + "]" * 40)),
        _with(("subject", "id"), 7),
        _with(("resource", "id"), None),
        _with(("resource", "properties"), None),
    ],
    ids=[
        "context",
        "subject properties",
        "action properties",
        "another property",
        "deep unknown member",
        "number id",
        "null resource id",
        "null properties",
    ],
)
def test_what_the_route_must_look_at_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(common_shape.NotCommon):
        common_shape.read_evaluation(json.dumps(body).encode())
    with pytest.raises(common_shape.NotCommon):
        common_shape.read_batch(json.dumps({"evaluations": [COMMON, body]}).encode())


@pytest.mark.parametrize(
    "raw",
    [
        b'{"evaluations":[%s],"options":null}',
        b'{"evaluations":[%s],"options":{"evaluations_semantic":"execute_all","x":1}}',
        b'{"evaluations":[%s],"context":{}}',
        b'\xef\xbb\xbf{"evaluations":[%s]}',
        b'{"evaluations":[%s]} x',
        b'{"evaluations":[%s],"x":NaN}',
        b'{"evaluations":null}',
    ],
)
def test_a_batch_with_anything_more_or_odd_is_refused(raw: bytes) -> None:
    if b"%s" in raw:
        raw = raw % json.dumps(COMMON).encode()
    with pytest.raises(common_shape.NotCommon):
        common_shape.read_batch(raw)


def test_a_repeated_member_counts_the_last_time_as_json_loads_counts_it() -> None:
    raw = json.dumps(COMMON).replace('"id": "u_1"', '"id": "u_0", "id": "u_1"').encode()
    assert _as_json(raw) == COMMON
    assert msgspec.to_builtins(common_shape.read_evaluation(raw)) == COMMON
