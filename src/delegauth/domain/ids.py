"""Opaque ids and the namespaced names that are allowed to reach Casbin.

Nothing but values matching these patterns ever becomes part of a rule: no
emails, display names or other free text.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from datetime import datetime

from delegauth.errors import InvalidInput

__all__ = [
    "ACCESS_REQUEST",
    "AREA",
    "CASBIN_NO_END",
    "INVITATION",
    "USER",
    "WEBHOOK",
    "IdFactory",
    "casbin_area",
    "casbin_perm",
    "casbin_tail",
    "casbin_until",
    "casbin_user",
    "is_casbin_name",
    "RESOURCE_ID_RE",
    "SCOPE_SEP",
    "new_id",
    "parse_id",
    "until_from_casbin",
    "ROLE_OWNER",
    "PERM_ALL",
]

USER = "u"
AREA = "a"
INVITATION = "i"
AUDIT = "e"
WEBHOOK = "w"
ACCESS_REQUEST = "r"

# 128 random bits, base32 without padding: 26 characters of [a-z2-7].
_ID_RE = re.compile(r"^([uaiewr])_([a-z2-7]{26})$")
_CASBIN_NAME_RE = re.compile(r"^(user|area|perm|role):[a-z0-9_]{1,64}$")
# casbin_tail(x) matches when "user:" + x (or area:, perm:, role:) is a Casbin name, for
# sure: what follows the kind, checked without building the name first. Stricter than
# is_casbin_name by one case: is_casbin_name also takes a final newline ($).
casbin_tail = re.compile(r"[a-z0-9_]{1,64}").fullmatch
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# A resource id a grant may be limited to (a domain name in IDNA form, a product number):
# it becomes part of a Casbin role name, so nothing but these characters, and never SCOPE_SEP.
RESOURCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Joins a permission and a resource id: "managedomains@example.com", in grants, tokens and
# Casbin role names alike ("perm:managedomains@example.com").
SCOPE_SEP = "@"

ROLE_OWNER = "role:owner"
PERM_ALL = "perm:all"

IdFactory = Callable[[str], str]

# A grant's end on its g lines (the model's link condition parameter): UTC, whole seconds.
CASBIN_NO_END = "_"
_CASBIN_TIME = "%Y-%m-%dT%H:%M:%SZ"
_CASBIN_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def new_id(kind: str) -> str:
    """Return a fresh random id such as ``u_…`` for a user."""
    raw = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()
    return f"{kind}_{raw}"


def parse_id(value: object, kind: str, *, field: str = "id") -> str:
    """Return ``value`` when it is a well-formed id of ``kind``, else raise InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    m = _ID_RE.match(value)
    if m is None or m.group(1) != kind:
        raise InvalidInput(f"{field} is not a valid id", field=field)
    return value


def is_id(value: object, kind: str) -> bool:
    if not isinstance(value, str):
        return False
    m = _ID_RE.match(value)
    return m is not None and m.group(1) == kind


def is_casbin_name(value: str) -> bool:
    return _CASBIN_NAME_RE.match(value) is not None


def casbin_user(user_id: str) -> str:
    return "user:" + parse_id(user_id, USER, field="user")


def casbin_area(area_id: str) -> str:
    return "area:" + parse_id(area_id, AREA, field="area")


def casbin_perm(name: str, resource_id: str | None = None) -> str:
    """``perm:<name>``, or ``perm:<name>@<resource id>`` for a grant on one resource."""
    if not NAME_RE.match(name):
        raise InvalidInput("not a valid permission name", field="permissions")
    if resource_id is None:
        return "perm:" + name
    if not RESOURCE_ID_RE.match(resource_id):
        raise InvalidInput("not a valid resource id", field="permissions")
    return f"perm:{name}{SCOPE_SEP}{resource_id}"


def casbin_until(when: datetime) -> str:
    """The g line's fourth field for an end given as naive UTC."""
    return when.strftime(_CASBIN_TIME)


def until_from_casbin(text: str) -> datetime | None:
    """The end (naive UTC) a g line's fourth field names; None for none (``_`` or empty).

    Raises ValueError for anything else: a rule that cannot be read must not allow."""
    if not text or text == CASBIN_NO_END:
        return None
    if not _CASBIN_TIME_RE.match(text):
        raise ValueError(f"not a grant end: {text!r}")
    return datetime.strptime(text, _CASBIN_TIME)
