"""The fast path of one evaluation (api/fast.py) against the Falcon route alone, over
generated requests near and around the common shape: whatever it answers or leaves to the
route, the served app gives the route's status, body and headers, counts the same
decisions and writes the same access line ("what decides is exactly what was checked").

The requests vary every slot (subject.id, action.name, resource.type, resource.id,
properties.area) over ids that exist, do not exist or name a resource-scoped grant, empty,
long, non-ASCII, Casbin-significant and non-string values; add unknown members at each
level and drop required ones; repeat members (raw bodies: the last one counts for
json.loads); write the body with or without escapes, with a BOM or surrounding whitespace;
and vary the Content-Type, the token and the Content-Length (too short, too long, no
number). A grant that ends is asked about with the clock just before, at and after its end.

150 examples a database and path; DELEGAUTH_AGREEMENT_EXAMPLES=2500 runs more by hand.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import falcon.testing
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from delegauth.api.authzen import SEMANTICS
from delegauth.api.fast import BATCH_PATH, PATH
from tests.conftest import Api, FrozenClock
from tests.functional.test_expiry import _delegate_until, _end
from tests.functional.test_fast_path import _both, _decisions

_SETTINGS = settings(
    max_examples=int(os.environ.get("DELEGAUTH_AGREEMENT_EXAMPLES", "150")),
    deadline=None,
    phases=[p for p in Phase if p is not Phase.explain],
    # The fixtures build the people and tokens once; the examples only read them (the
    # decider's memo and the metrics counters aside, which both apps share).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class _Obj:
    """A JSON object as its members in order, repeats allowed (json.dumps cannot write
    two members of one name)."""

    def __init__(self, members: Iterable[tuple[str, Any]]) -> None:
        self.members = list(members)


def _dump(value: Any, ascii_only: bool, sep: str) -> str:
    if isinstance(value, _Obj):
        inner = ("," + sep).join(
            json.dumps(k, ensure_ascii=ascii_only) + ":" + sep + _dump(v, ascii_only, sep)
            for k, v in value.members
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v, ascii_only, sep) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


# -- values -------------------------------------------------------------------------------

_ODD = [
    "",
    " ",
    ",",
    ":",
    "@",
    "*",
    '"',
    "'",
    "\t",
    "\n",
    "\u00e9",  # é, precomposed
    "e\u0301",  # e and a combining acute
    "\u202e",  # right-to-left override
    "\u05d0",  # Hebrew alef
    "\U0001f642",  # an emoji
    "\x01",
    "\u200b",  # zero-width space
    "user:",
    "area:",
    "role:owner",
    "perm:all",
    "A",
    "managedomains@example.com",
    "perm:managedomains@example.com",
    "example.com,other.com",
    "\ud800",  # a lone surrogate: an escape, or (unescaped) bytes that are not UTF-8
]
# What the route's JSON checks look at: escapes (written when the body is ASCII only), a lone
# surrogate, a quote, a NUL, a line separator.
_TRICKY = ["\ud800", "\udc00", "\\", '"', "\x00", "\u2028"]
_LONG = ["a" * 65, "a" * 129, "x" * 300]
_HUGE = "y" * 70_000  # past the 64 KiB body limit


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], odds: int = 4) -> Any:
    """``usual``, and one time in ``odds`` ``odd`` (st.one_of flattens nested choices and
    so weighs each of odd's branches as much as usual)."""
    return st.integers(1, odds).flatmap(lambda i: odd if i == odds else usual)


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_ODD + _LONG),
        st.text(max_size=6),  # surrogates too: see _request's encoding
    )


def _around(known: list[str], odds: int) -> st.SearchStrategy[Any]:
    """A known value, itself or with something odd before or after it, or another text."""
    plain = st.sampled_from(known)
    return _mostly(
        plain,
        st.one_of(
            st.builds(lambda k, o: k + o, plain, st.sampled_from(_ODD)),
            st.builds(lambda o, k: o + k, st.sampled_from(_ODD), plain),
            st.builds(lambda k: k.upper(), plain),
            st.builds(lambda k, t: k + t, plain, st.sampled_from(_TRICKY)),
            _text(),
        ),
        odds=odds,
    )


_NOT_TEXT = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just([]),
    st.just(["a"]),
    st.just(_Obj([])),
)


def _slot(known: list[str], odds: int) -> st.SearchStrategy[Any]:
    return _mostly(_around(known, odds), _NOT_TEXT, odds=2 * odds)


_EXTRA_KEYS = st.sampled_from(
    ["x", "id", "type", "name", "properties", "context", "area", "", "\u00e9", "evaluations"]
)
_EXTRA_VALUE = st.one_of(
    _NOT_TEXT, _text(), st.just(_Obj([("explain", True)])), st.just(_Obj([("a", 1)]))
)


@st.composite
def _members(
    draw: st.DrawFn, required: list[tuple[str, st.SearchStrategy[Any]]], odds: int
) -> _Obj:
    """An object with the required members (each maybe dropped, repeated with another
    value, or replaced), and maybe unknown ones, in a drawn order."""
    members: list[tuple[str, Any]] = []
    for key, values in required:
        how = draw(st.sampled_from(["keep"] * 2 * odds + ["drop", "repeat"]))
        if how == "drop":
            continue
        members.append((key, draw(values)))
        if how == "repeat":
            members.append((key, draw(values)))
    for _ in range(draw(st.integers(0, 2) if draw(st.integers(0, odds)) == odds else st.just(0))):
        members.insert(draw(st.integers(0, len(members))), (draw(_EXTRA_KEYS), draw(_EXTRA_VALUE)))
    return _Obj(members)


# -- the people ----------------------------------------------------------------------------


class _World:
    def __init__(self, api: Api, clock: FrozenClock) -> None:
        self.owner = api.signup("o@example.com")
        self.billing = api.link(self.owner, "b@example.com", ["invoices"])
        self.scoped = api.link(
            self.owner, "s@example.com", ["managedomains@example.com", "products"]
        )
        self.end = _end(clock, minutes=5)
        self.ending = _delegate_until(api, self.owner, "e@example.com", self.end)
        self.other = api.signup("p@example.com")  # another owner, in another area
        self.users = [p.user_id for p in (self.owner, self.billing, self.scoped, self.ending)]
        self.users += [self.other.user_id, "u_aaaaaaaaaaaaaaaaaaaaaaaaaa", self.owner.area_id]
        self.areas = [self.owner.area_id] * 3 + [
            self.other.area_id,
            "a_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            self.owner.user_id,
        ]
        self.allowed = [
            (self.owner.user_id, "member", "invite", "42"),
            (self.billing.user_id, "invoice", "pay", "42"),
            (self.ending.user_id, "invoice", "read", "42"),
            (self.scoped.user_id, "domain", "update", "example.com"),
            (self.scoped.user_id, "product", "read", "42"),
        ]
        self.token = api.service_token()
        self.no_scope = api.service_token("openid")


_TYPES = ["invoice", "domain", "product", "member", "quote", "Invoice", "nothing"]
_ACTIONS = ["read", "pay", "update", "renew", "cancel", "refund", "delete", "*", "sso"]
_RIDS = ["42", "example.com", "other.com", "EXAMPLE.COM", "example.com.", "*"]


@st.composite
def _evaluation(draw: st.DrawFn, world: _World, k: int, change: bool = True) -> _Obj:
    """An evaluation around a request one of the people may make (each slot most often
    that request's value): with ``k`` 40, one thing changed at most (for sure, if
    ``change``); with 6, several."""
    user, rtype, name, rid = draw(st.sampled_from(world.allowed))
    # With few changes, one slot changed for sure.
    one = draw(st.sampled_from(["id", "name", "area", "type", "rid"])) if k == 40 and change else ""

    def slot(which: str, known: list[str]) -> st.SearchStrategy[Any]:
        return _around(known, 1) if which == one else _slot(known, k)

    subject = _members(
        [
            ("type", _mostly(st.just("user"), _slot(["user", "svc"], k), k)),
            ("id", slot("id", [user] * 6 + world.users)),
        ],
        k,
    )
    action = _members([("name", slot("name", [name] * 6 + _ACTIONS))], k)
    props = _members([("area", slot("area", [world.owner.area_id] * 3 + world.areas))], k)
    resource = _members(
        [
            ("type", slot("type", [rtype] * 6 + _TYPES)),
            ("id", slot("rid", [rid] * 6 + _RIDS)),
            ("properties", _mostly(props, _NOT_TEXT, 2 * k)),
        ],
        k,
    )
    return draw(
        _members(
            [
                ("subject", _mostly(subject, _NOT_TEXT, 2 * k)),
                ("action", _mostly(action, _NOT_TEXT, 2 * k)),
                ("resource", _mostly(resource, _NOT_TEXT, 2 * k)),
            ],
            k,
        )
    )


@st.composite
def _request(draw: st.DrawFn, world: _World) -> tuple[bytes, dict[str, str], str | None]:
    """A body, headers and a Content-Length (None: none sent) of one evaluation: about
    half of them with one thing changed at most, the others with several."""
    k = draw(st.sampled_from([40, 6]))
    return draw(_sent(world, draw(_evaluation(world, k)), k))


_SEMANTIC = st.sampled_from([*SEMANTICS, "first", "", "EXECUTE_ALL"])


@st.composite
def _batch(draw: st.DrawFn, world: _World) -> tuple[bytes, dict[str, str], str | None]:
    """A batch of evaluations: every one unchanged or with one thing changed at most (half
    of them), or mixing such ones with odd ones (several things changed, not objects);
    no options, ``evaluations_semantic`` or odd options; rarely other members."""
    k = draw(st.sampled_from([40, 6]))
    usual = _evaluation(world, 40, change=False)
    item = (
        _mostly(usual, _evaluation(world, 40), 16)
        if k == 40
        else st.one_of(usual, _evaluation(world, 40), _evaluation(world, 6), _NOT_TEXT)
    )
    items = draw(st.lists(item, min_size=0 if k == 6 else 1, max_size=8))
    if k == 40 and draw(st.booleans()):
        items = items * draw(st.integers(1, 40))  # up to 320: past MAX_EVALUATIONS too
    options = draw(
        st.one_of(
            st.none(),
            st.builds(lambda s: _Obj([("evaluations_semantic", s)]), _SEMANTIC),
            _NOT_TEXT,
            st.builds(
                lambda s, x: _Obj([("evaluations_semantic", s), ("x", x)]), _SEMANTIC, _EXTRA_VALUE
            ),
        )
    )
    members: list[tuple[str, Any]] = [("evaluations", items)]
    if options is not None:
        members.insert(draw(st.integers(0, 1)), ("options", options))
    if draw(st.integers(0, k)) == k:
        extra = draw(st.sampled_from(["subject", "context", "x", "evaluations"]))
        members.append((extra, draw(_EXTRA_VALUE)))
    return draw(_sent(world, _Obj(members), k))


@st.composite
def _sent(
    draw: st.DrawFn, world: _World, top: _Obj, k: int
) -> tuple[bytes, dict[str, str], str | None]:
    """``top`` as a body (written in one of several ways), headers and a Content-Length."""
    text = _dump(top, ascii_only=draw(st.booleans()), sep=draw(st.sampled_from(["", " "])))
    if draw(st.integers(0, 40)) == 40:
        text = text.replace('"y"', json.dumps(_HUGE), 1) if '"y"' in text else text + _HUGE
    shape = draw(st.sampled_from(["plain"] * 2 * k + ["bom", "spaces", "newline", "tail"]))
    raw = {
        "plain": text,
        "bom": "\ufeff" + text,
        "spaces": "  " + text + "  ",
        "newline": text + "\n",
        "tail": text + " x",
    }[shape].encode("utf-8", "surrogatepass")
    headers = {
        "Content-Type": draw(
            st.sampled_from(
                ["application/json"] * 2 * k
                + ["application/json; charset=utf-8", "APPLICATION/JSON", "text/plain"]
                + ["application/merge-patch+json", ""]
            )
        ),
        "Authorization": draw(
            st.sampled_from(
                [f"Bearer {world.token}"] * 2 * k
                + [f"Bearer {world.no_scope}", f"bearer {world.token}", "Bearer x", ""]
            )
        ),
        "X-Request-ID": draw(
            st.sampled_from(["r-1"] * 2 * k + ["", "a b", "r" * 129, "r-\u00e9", "r,1"])
        ),
    }
    exact = str(len(raw))
    length = draw(
        st.sampled_from(
            [exact] * 2 * k
            + [str(max(len(raw) - 1, 0)), str(len(raw) + 3), "0", "", "x", " 5", "-1"]
            + ["\u0663", str(len(raw)).rjust(8, "0")]  # an Arabic-Indic three; leading zeros
        )
    )
    if length == "" and draw(st.booleans()):
        return raw, headers, None
    return raw, headers, length


# -- calling both apps -----------------------------------------------------------------------


def _made(rid: str, given: str) -> str:
    """A request id as compared: the one given, or (it was no safe id) the form of one
    made, which differs from request to request."""
    if rid == given:
        return rid
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    return "(made)"


def _call(
    app: Any, raw: bytes, headers: dict[str, str], length: str | None, path: str = PATH
) -> tuple[str, bytes, list[tuple[str, str]]]:
    env = falcon.testing.create_environ(
        path=path, method="POST", body=raw, headers={k: v for k, v in headers.items() if v}
    )
    if not headers["Content-Type"]:
        env.pop("CONTENT_TYPE", None)
    if length is None:
        env.pop("CONTENT_LENGTH", None)
    else:
        env["CONTENT_LENGTH"] = length
    start = falcon.testing.StartResponseMock()
    body = b"".join(app(env, start))
    return start.status, body, sorted((k.lower(), v) for k, v in start.headers)


@pytest.mark.parametrize("path", [PATH, BATCH_PATH])
def test_generated_requests_get_the_routes_answer(
    api: Api, clock: FrozenClock, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """Single evaluations, and batches of them (test_fast_path.py has the batch cases
    written out)."""
    world = _World(api, clock)
    fast_client, _route, inner = _both(api)
    fast = fast_client.app
    caplog.set_level(logging.INFO, logger="delegauth.access")
    seen = {"fast": 0, "route": 0}

    def answer(app: Any, req: tuple[bytes, dict[str, str], str | None]) -> Any:
        before = _decisions()
        caplog.clear()
        status, body, headers = _call(app, *req, path=path)
        after = _decisions()
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "delegauth.access"]
        given_id = req[1]["X-Request-ID"]
        for line in lines:
            del line["ms"], line["ts"]
            line["request_id"] = _made(line["request_id"], given_id)
        headers = [(k, _made(v, given_id) if k == "x-request-id" else v) for k, v in headers]
        counted = (after[0] - before[0], after[1] - before[1])
        return status, body, headers, counted, lines

    @_SETTINGS
    @given(
        req=_request(world) if path == PATH else _batch(world),
        offset=st.sampled_from([-2.0, -1e-6, 0.0, 1e-6, 2.0]),
        route_first=st.booleans(),
    )
    def agree(
        req: tuple[bytes, dict[str, str], str | None], offset: float, route_first: bool
    ) -> None:
        # The grant that ends, asked about just before, at and after its end (both apps
        # read the same frozen clock); either app first (the decider's memo cold or warm).
        clock.now = world.end + timedelta(seconds=offset)
        expected = answer(inner.app, req) if route_first else None
        calls = inner.calls
        got = answer(fast, req)
        taken = inner.calls == calls
        seen["fast" if taken else "route"] += 1
        event("answered by the fast path" if taken else "left to the route")
        assert got == (expected or answer(inner.app, req)), req

    agree()
    # The requests reached both sides of the fast path. About a sixth of the batches reach
    # the fast path (every item and option as it takes them): 10 or fewer of 150 came one
    # time in 50, 5 or fewer would come about once in 100,000.
    assert seen["fast"] >= 5 and seen["route"] >= 5, seen
