"""Read a bounded JSON object from a request: malformed or oversized input is a 4xx.

What comes out of ``read_json`` is safe to hand on: at most ``MAX_JSON_DEPTH`` levels deep
(deeper input would exhaust the interpreter's stack, here or in any code walking it), and
every string, key or value, is valid Unicode (JSON's ``\\ud800`` escapes can spell lone
surrogates, which no database driver or encoder accepts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import parse_qs

import falcon

from delegauth.errors import InvalidInput

__all__ = [
    "SHORT_BODY",
    "dump_json",
    "nesting",
    "read_form",
    "read_json",
    "send_json",
    "send_json_text",
]

MAX_FORM_BYTES = 16 * 1024
MAX_JSON_DEPTH = 32


def read_json(
    req: falcon.Request, max_bytes: int, fields: Collection[str] | None = None
) -> dict[str, Any]:
    """The request's JSON object; with ``fields``, a member not among them is a 400."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise falcon.HTTPContentTooLarge(description=f"the body exceeds {max_bytes} bytes")
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise falcon.HTTPUnsupportedMediaType(description="send application/json")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise falcon.HTTPContentTooLarge(description=f"the body exceeds {max_bytes} bytes")
    if not raw:
        raise InvalidInput("a JSON object body is required")
    try:
        # Strict UTF-8 (RFC 8259 §8.1): json.loads on bytes would let surrogates encoded in
        # UTF-8 or UTF-16 through. Decoded strictly, a lone surrogate can only come from a
        # \u escape, and nesting deeper than the limit needs that many brackets: a body with
        # neither (almost every real one) is safe without walking it.
        text = raw.decode("utf-8")
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as ex:
        raise InvalidInput("the body is not valid JSON") from ex
    except RecursionError as ex:
        raise InvalidInput(_TOO_DEEP) from ex
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    if b"\\" in raw:  # one byte: memchr, where a two-byte search walks the whole body
        if b"\\u" in raw or raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:
            # escapes can spell lone surrogates, and hide brackets from nesting
            _check_json(data)
    elif len(raw) > SHORT_BODY or raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:
        depth = nesting(raw)
        if depth is None:
            _check_json(data)
        elif depth > MAX_JSON_DEPTH:
            raise InvalidInput(_TOO_DEEP)
    if fields is not None:
        for name in data:
            if name not in fields:
                shown = name if _FIELD_NAME.fullmatch(name) else "(invalid name)"
                raise InvalidInput(f"unknown field: {shown}", field=shown)
    return data


# Only plain names are echoed back in an error.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


# Up to this many bytes, counting the brackets can spare nesting; a longer body (a batch)
# has more brackets than the limit anyway.
SHORT_BODY = 1024
_TOO_DEEP = f"the body nests more than {MAX_JSON_DEPTH} levels deep"


# nesting keeps brackets and quotes, and reads both kinds of bracket as one.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def nesting(raw: bytes) -> int | None:
    """How deep a parsed JSON document nests (up to MAX_JSON_DEPTH + 1), read from its
    brackets at C speed; None when a string holds a bracket or an escape (walk it then).

    Without escapes, a string is its two quotes and what lies between; once everything
    but brackets and quotes is dropped, a string without brackets is two adjacent quotes.
    Every string is so exactly when, read from the left, every quote is one of a pair of
    adjacent quotes (the first quote opens a string, so it can only pair with the next
    one, its string's closing quote; and so on after it): then the quotes can go. Each
    round then drops the innermost pairs of brackets, one level of nesting per round.
    """
    if b"\\" in raw:
        return None
    shape = raw.translate(_ONE_KIND, _NOT_STRUCTURE)
    if shape.count(b'""') * 2 != shape.count(b'"'):
        return None
    shape = shape.translate(None, b'"')
    depth = 0
    while shape and depth <= MAX_JSON_DEPTH:
        shape = shape.replace(b"[]", b"")
        depth += 1
    return depth


def _check_json(data: Any) -> None:
    """Refuse documents nested too deeply or holding strings that are not valid Unicode."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(_TOO_DEEP)
            items: Iterable[Any] = value
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                items = value.values()
            stack.extend((item, depth + 1) for item in items if isinstance(item, str | dict | list))


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as ex:
        raise InvalidInput("the body holds a string that is not valid Unicode") from ex


def send_json(resp: falcon.Response, body: Any, status: int = 200) -> None:
    send_json_text(resp, dump_json(body), status)


def dump_json(body: Any) -> str:
    """``body`` as the responses write JSON (compact)."""
    return json.dumps(body, separators=(",", ":"))


def send_json_text(resp: falcon.Response, text: str, status: int = 200) -> None:
    """A JSON body already written (by dump_json, or pieces of it joined)."""
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = text


def read_form(req: falcon.Request) -> dict[str, list[str]]:
    """The urlencoded body of a POST (bounded), as lists of values."""
    if req.method != "POST":
        return {}
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise falcon.HTTPUnsupportedMediaType(description="send a urlencoded form")
    raw = req.bounded_stream.read(MAX_FORM_BYTES + 1)
    if len(raw) > MAX_FORM_BYTES:
        raise falcon.HTTPContentTooLarge(description="the form is too large")
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as ex:
        raise falcon.HTTPBadRequest(description="the form is not UTF-8") from ex
