"""authzen.plain_evaluation's memo of Casbin names: it keeps only ids that are Casbin names,
answers the same whether an id is in it or not, and stays bounded."""

from __future__ import annotations

from typing import Any

from delegauth.api import authzen

USER = "u_abcdefghijklmnopqrstuvwxyz"
AREA = "a_abcdefghijklmnopqrstuvwxyz"


def _ev(user: Any = USER, area: Any = AREA) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": user},
        "action": {"name": "pay"},
        "resource": {"type": "invoice", "id": "42", "properties": {"area": area}},
    }


def test_the_same_answer_with_the_ids_memoized_or_not() -> None:
    authzen._USERS.clear()
    authzen._AREAS.clear()
    first = authzen.plain_evaluation(_ev())
    assert USER in authzen._USERS and AREA in authzen._AREAS
    assert authzen.plain_evaluation(_ev()) == first
    assert first == ("user:" + USER, "area:" + AREA, "invoice", "pay", "42")


def test_ids_that_are_no_casbin_names_are_never_kept() -> None:
    authzen._USERS.clear()
    authzen._AREAS.clear()
    for bad in ("", "A", "a b", "role:owner", "x" * 65, "a\n", 7, None, ["a"]):
        assert authzen.plain_evaluation(_ev(user=bad)) is None
        assert authzen.plain_evaluation(_ev(area=bad)) is None
        assert authzen.plain_evaluation(_ev(user=bad)) is None  # asked again
    assert set(authzen._USERS) <= {USER} and set(authzen._AREAS) <= {AREA}


def test_an_item_of_another_shape_leaves_the_memo_alone() -> None:
    authzen._USERS.clear()
    ev = _ev(user="u_bbbbbbbbbbbbbbbbbbbbbbbbbb")
    ev["context"] = {}
    assert authzen.plain_evaluation(ev) is None
    assert authzen._USERS == {}


def test_the_memo_stays_bounded() -> None:
    authzen._USERS.clear()
    for i in range(authzen._MEMO_SIZE + 10):
        assert authzen.plain_evaluation(_ev(user=f"u_{i}")) is not None
    assert 0 < len(authzen._USERS) <= authzen._MEMO_SIZE
    assert authzen.plain_evaluation(_ev(user="u_0")) == (
        "user:u_0",
        "area:" + AREA,
        "invoice",
        "pay",
        "42",
    )
