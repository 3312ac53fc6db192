"""authzen.plain_evaluation maps an evaluation of the common shape to its Casbin names, and
takes nothing else: ids that are no Casbin names, or a body of another shape, give None."""

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


def test_the_same_answer_each_time() -> None:
    first = authzen.plain_evaluation(_ev())
    assert authzen.plain_evaluation(_ev()) == first
    assert first == ("user:" + USER, "area:" + AREA, "invoice", "pay", "42")


def test_ids_that_are_no_casbin_names_are_refused() -> None:
    for bad in ("", "A", "a b", "role:owner", "x" * 65, "a\n", 7, None, ["a"]):
        assert authzen.plain_evaluation(_ev(user=bad)) is None
        assert authzen.plain_evaluation(_ev(area=bad)) is None
        assert authzen.plain_evaluation(_ev(user=bad)) is None  # asked again


def test_an_item_of_another_shape_is_refused() -> None:
    ev = _ev(user="u_bbbbbbbbbbbbbbbbbbbbbbbbbb")
    ev["context"] = {}
    assert authzen.plain_evaluation(ev) is None


def test_many_users_each_get_their_own_names() -> None:
    for i in range(20_000):
        assert authzen.plain_evaluation(_ev(user=f"u_{i}")) == (
            f"user:u_{i}",
            "area:" + AREA,
            "invoice",
            "pay",
            "42",
        )
