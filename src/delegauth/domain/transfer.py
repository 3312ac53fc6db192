"""The import and export format: one record per line, each naming its ``kind``.

JSONL (one JSON object a line) or CSV (a header naming the columns, a ``kind`` column,
cells left empty where a kind has no such field). Kinds and their fields:

- ``user``: ``email`` (required), ``id`` (``u_…``), ``name``, ``email_verified``
  (true/false), ``language`` (``en`` or ``es``);
- ``area``: ``id`` (``a_…``) and/or ``key`` (the provider's own key for it), ``name``,
  ``owner`` (an email or ``u_…``);
- ``grant``: ``user`` (an email or ``u_…``), ``area`` (``a_…`` or a key), ``permissions``
  (``"all"`` or catalogue names, ``bundle:<name>`` expands), ``valid_until`` (when the
  grant ends; whole seconds, an end already past imports a grant that has ended);
- ``invitation``: ``area``, ``email``, ``permissions``, ``invited_by`` (default: the
  area's owner), ``expires_at``.

In CSV, ``permissions`` is ``all`` or names separated by spaces. Times are ISO 8601 with
a time zone. This module checks each line on its own (the domain's rules for emails,
ids, names, languages and permissions); what a line refers to is checked by the importer.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from delegauth.domain.accounts import clean_text
from delegauth.domain.catalogue import ALL, Catalogue, PermissionSet
from delegauth.domain.emails import canonical_email
from delegauth.domain.ids import AREA, USER, is_id
from delegauth.errors import InvalidInput

__all__ = [
    "CSV_COLUMNS",
    "AreaLine",
    "BadLine",
    "FormatError",
    "GrantLine",
    "InvitationLine",
    "Line",
    "UserLine",
    "format_record",
    "format_time",
    "is_area_id",
    "read_records",
    "RecordWriter",
]

LANGUAGES = ("en", "es")
MAX_KEY = 128
MAX_AREA_NAME = 320
# Every field of every kind, in the order CSV files and exports use.
CSV_COLUMNS = (
    "kind",
    "id",
    "key",
    "email",
    "name",
    "email_verified",
    "language",
    "owner",
    "user",
    "area",
    "permissions",
    "valid_until",
    "invited_by",
    "expires_at",
)
_FIELDS = {
    "user": {"kind", "id", "email", "name", "email_verified", "language"},
    "area": {"kind", "id", "key", "name", "owner"},
    "grant": {"kind", "user", "area", "permissions", "valid_until"},
    "invitation": {"kind", "area", "email", "permissions", "invited_by", "expires_at"},
}


class FormatError(ValueError):
    """The file as a whole cannot be read (a CSV header without ``kind``, say)."""


@dataclass(frozen=True, slots=True)
class UserLine:
    line: int
    email: str  # canonical
    id: str | None
    name: str
    email_verified: bool
    language: str


@dataclass(frozen=True, slots=True)
class AreaLine:
    line: int
    id: str | None
    key: str | None
    name: str
    owner: str  # u_… or an email as written (matched exactly first, then canonicalised)


@dataclass(frozen=True, slots=True)
class GrantLine:
    line: int
    user: str
    area: str  # a_… or a key
    permissions: PermissionSet
    valid_until: datetime | None = None  # naive UTC, whole seconds


@dataclass(frozen=True, slots=True)
class InvitationLine:
    line: int
    area: str
    email: str  # canonical
    permissions: PermissionSet
    invited_by: str | None
    expires_at: datetime | None  # naive UTC


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    reason: str


Line = UserLine | AreaLine | GrantLine | InvitationLine | BadLine


def is_area_id(ref: str) -> bool:
    return is_id(ref, AREA)


# -- reading ---------------------------------------------------------------------------------


def read_records(stream: IO[str], catalogue: Catalogue) -> Iterator[Line]:
    """Yield each record of a JSONL or CSV stream, checked on its own, or a BadLine.

    The format is told by the first character: ``{`` is JSONL, anything else CSV.
    Raises FormatError when a CSV header is unusable.
    """
    lines = iter(stream)
    head: list[str] = []
    for text in lines:
        head.append(text)
        if text.strip():
            break
    everything = itertools.chain(head, lines)
    if head and head[-1].lstrip().startswith("{"):
        yield from _read_jsonl(everything, catalogue)
    else:
        yield from _read_csv(everything, catalogue)


def _read_jsonl(stream: Iterable[str], catalogue: Catalogue) -> Iterator[Line]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as ex:
            yield BadLine(number, f"not valid JSON: {ex}")
            continue
        if not isinstance(data, dict):
            yield BadLine(number, "a line must be a JSON object")
            continue
        yield _record(number, data, catalogue, csv=False)


def _read_csv(stream: Iterable[str], catalogue: Catalogue) -> Iterator[Line]:
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip() for h in header]
    if "kind" not in header:
        raise FormatError("the CSV header must name a 'kind' column")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise FormatError(f"unknown CSV column(s): {', '.join(unknown)}")
    if len(set(header)) != len(header):
        raise FormatError("a CSV column is named twice")
    start = reader.line_num + 1
    for row in reader:
        number, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield BadLine(number, f"{len(row)} cells where the header has {len(header)}")
            continue
        data = {h: cell for h, cell in zip(header, row, strict=True) if cell != ""}
        yield _record(number, data, catalogue, csv=True)


def _record(number: int, data: dict[str, Any], catalogue: Catalogue, *, csv: bool) -> Line:
    kind = data.get("kind")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None  # a list is no key
    if fields is None:
        return BadLine(number, "kind must be one of user, area, grant, invitation")
    if not data.keys() <= fields:
        unknown = sorted(set(data) - fields)
        return BadLine(number, f"{kind}: unknown field(s) {', '.join(unknown)}")
    try:
        if kind == "user":
            return _user(number, data, csv)
        if kind == "area":
            return _area(number, data)
        if kind == "grant":
            return _grant(number, data, catalogue, csv)
        return _invitation(number, data, catalogue, csv)
    except InvalidInput as ex:
        return BadLine(number, f"{kind}: {ex.detail}")


def _user(number: int, data: dict[str, Any], csv: bool) -> UserLine:
    email = canonical_email(data.get("email"))
    user_id = data.get("id")
    if user_id is not None and not is_id(user_id, USER):
        raise InvalidInput("id must be a user id (u_…)", field="id")
    language = data.get("language", "en")
    if language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    return UserLine(
        number,
        email,
        user_id,
        clean_text(data.get("name"), field="name"),
        _bool(data.get("email_verified", False), "email_verified", csv),
        language,
    )


def _area(number: int, data: dict[str, Any]) -> AreaLine:
    area_id = data.get("id")
    if area_id is not None and not is_area_id(area_id):
        raise InvalidInput("id must be an area id (a_…)", field="id")
    key = data.get("key")
    if key is not None:
        key = _key(key, "key")
        if is_area_id(key):
            raise InvalidInput("key looks like an area id; put that in id", field="key")
    if area_id is None and key is None:
        raise InvalidInput("an area needs an id (a_…) or a key", field="id")
    name = clean_text(data.get("name"), field="name", max_len=MAX_AREA_NAME)
    if not name:
        raise InvalidInput("name is required", field="name")
    return AreaLine(number, area_id, key, name, _user_ref(data.get("owner"), "owner"))


def _grant(number: int, data: dict[str, Any], catalogue: Catalogue, csv: bool) -> GrantLine:
    user = _user_ref(data.get("user"), "user")
    area = _area_ref(data.get("area"))
    permissions = _permissions(data.get("permissions"), catalogue, csv)
    until = data.get("valid_until")
    if until is None or until == "":
        return GrantLine(number, user, area, permissions)
    # Whole seconds, as grants' ends are stored (domain.expiry): dropping the fraction
    # ends the grant earlier, never later.
    end = _when(until, "valid_until").replace(microsecond=0)
    return GrantLine(number, user, area, permissions, end)


def _invitation(
    number: int, data: dict[str, Any], catalogue: Catalogue, csv: bool
) -> InvitationLine:
    area = _area_ref(data.get("area"))
    email = canonical_email(data.get("email"))
    permissions = _permissions(data.get("permissions"), catalogue, csv)
    inviter = data.get("invited_by")
    expires = data.get("expires_at")
    return InvitationLine(
        number,
        area,
        email,
        permissions,
        None if inviter is None else _user_ref(inviter, "invited_by"),
        None if expires is None else _when(expires, "expires_at"),
    )


def _user_ref(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} is required (an email or a user id)", field=field)
    ref = value.strip()
    if ref.startswith("u_") and "@" not in ref and not is_id(ref, USER):
        raise InvalidInput(f"{field} is not a valid user id", field=field)
    if len(ref) > 320:
        raise InvalidInput(f"{field} is too long", field=field)
    return ref


def _area_ref(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("area is required (an area id or key)", field="area")
    return _key(value, "area")


def _key(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    key = value.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidInput(f"{field} must be 1 to {MAX_KEY} printable characters", field=field)
    return key


def _permissions(value: object, catalogue: Catalogue, csv: bool) -> PermissionSet:
    if csv and isinstance(value, str) and value.strip() != ALL:
        value = value.split()
    # Files repeat a few sets many times: parse each once (per catalogue, a bounded cache).
    key = tuple(value) if isinstance(value, list) else value
    try:
        cached = _PARSED.get((id(catalogue), key))
    except TypeError:  # unhashable items: let the catalogue refuse them
        return catalogue.parse(value)
    if cached is not None and cached[0] is catalogue:
        return cached[1]
    perms = catalogue.parse(value)
    if len(_PARSED) >= 4096:
        _PARSED.clear()
    _PARSED[(id(catalogue), key)] = (catalogue, perms)
    return perms


_PARSED: dict[tuple[int, object], tuple[Catalogue, PermissionSet]] = {}


def _bool(value: object, field: str, csv: bool) -> bool:
    if isinstance(value, bool):
        return value
    if csv and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"{field} must be true or false", field=field)


def _when(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be an ISO 8601 time", field=field)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as ex:
        raise InvalidInput(f"{field} must be an ISO 8601 time", field=field) from ex
    if when.tzinfo is None:
        raise InvalidInput(f"{field} needs a time zone (Z or +hh:mm)", field=field)
    return when.astimezone(UTC).replace(tzinfo=None)


# -- writing ---------------------------------------------------------------------------------


def format_time(when: datetime) -> str:
    """A naive UTC time as ISO 8601 with Z."""
    return when.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def format_record(record: dict[str, Any]) -> str:
    """One JSONL line (with its newline)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


class RecordWriter:
    """Writes records as JSONL or CSV (a header, then one row each)."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError("format must be jsonl or csv")
        self._out = out
        self._csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(CSV_COLUMNS)

    def write(self, record: dict[str, Any]) -> None:
        if self._csv is None:
            self._out.write(format_record(record))
            return
        self._csv.writerow([_cell(record.get(c)) for c in CSV_COLUMNS])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(value)
    return str(value)
