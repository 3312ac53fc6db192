"""Bulk import and export of users, areas, grants and pending invitations.

The file is streamed and written in batches of lines. Each batch commits in one
transaction: users, areas, grant rows, their Casbin g lines, audit events (one
``grants.imported`` event per area and batch, mapping each user to what they now hold),
change-log entries (each subject's full role set in the area, as every grant write logs
them, but one entry an area and batch: see store.group_roles; running Deciders apply the
batch as soon as it commits) and the run's
checkpoint. Rows go through the driver in bulk (executemany on SQLite; on PostgreSQL one
statement a table over unnested arrays), and what a batch refers to is read in a few
queries (on PostgreSQL, one a kind): per-row ORM calls are an order of magnitude slower.

A line may refer only to users and areas already in the database or defined on an
earlier line. What a line says is compared with what is stored: equal is "unchanged"
(so importing a file twice changes nothing), different is an update.

A dry run plans every batch the same way, but writes what later lines may look up
(users, areas, grants, invitations) to a scratch SQLite file instead of the database:
memory stays flat however long the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, NamedTuple

import peewee

from delegauth.domain.catalogue import ALL, MANAGE_USERS, Catalogue, PermissionSet
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import AuditEvent, Grant, InvitationStatus, Role
from delegauth.domain.events import event_type
from delegauth.domain.ids import AREA, INVITATION, USER, IdFactory, casbin_until, is_id, new_id
from delegauth.domain.transfer import (
    AreaLine,
    BadLine,
    GrantLine,
    InvitationLine,
    Line,
    RecordWriter,
    UserLine,
    format_time,
    is_area_id,
    read_records,
)
from delegauth.errors import InvalidInput
from delegauth.storage.db import is_postgres
from delegauth.storage.store import CHANGE_CHANNEL, CHANGE_LOCK_KEY, GROUP_SUBJECT, group_roles
from delegauth.storage.webhooks import (
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    delivery_row,
    event_row,
    receives,
)

__all__ = ["BulkImporter", "ImportSummary", "export_records"]

# Imported users have no password until they set one: no hash ever verifies against this.
NO_PASSWORD = "!imported"  # noqa: S105 - a marker, not a secret
_CHUNK = 2000  # values per lookup query (SQLite allows 32766 parameters)
_BATCH = 5000  # lines per transaction, unless sized (the first SQLite batch, PostgreSQL)
_MIN_BATCH, _MAX_BATCH = 1000, 50_000  # the bounds of SQLite's sized batches
_WAL_PAGES = 20_000  # SQLite: the WAL's pages that start a checkpoint during an import
_PENDING = str(InvitationStatus.PENDING)
_DELEGATE = str(Role.DELEGATE)
_ID_LEN = len(new_id(USER))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _perms_text(perms: PermissionSet) -> str:
    return json.dumps(perms.to_json())  # as PeeweeStore writes it


def _perms(text: str) -> PermissionSet:
    """The PermissionSet a stored permissions column holds (few distinct texts: cached)."""
    perms = _STORED_PERMS.get(text)
    if perms is None:
        value = json.loads(text)
        perms = PermissionSet.everything() if value == ALL else PermissionSet.of(value)
        if len(_STORED_PERMS) >= 4096:
            _STORED_PERMS.clear()
        _STORED_PERMS[text] = perms
    return perms


_STORED_PERMS: dict[str, PermissionSet] = {}


def _is_user_id(ref: str) -> bool:
    # Most references are emails: the length and prefix tell them apart before the pattern.
    return len(ref) == _ID_LEN and ref.startswith("u_") and is_id(ref, USER)


def _is_area_id(ref: str) -> bool:
    return len(ref) == _ID_LEN and ref.startswith("a_") and is_area_id(ref)


def _text(when: datetime | None) -> str | None:
    """A timestamp as the text both drivers store (as _Batch._at is made)."""
    return None if when is None else when.isoformat(" ")


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@dataclass
class ImportSummary:
    lines: int = 0
    bad: int = 0
    batches: int = 0
    resumed_after: int = 0  # the last line an interrupted run had committed
    written: bool = False
    policy_version: int = 0  # the change log's head after the last batch
    outcomes: Counter[str] = field(default_factory=Counter)  # "grant created" -> n

    def count(self, kind: str, outcome: str) -> None:
        self.outcomes[f"{kind} {outcome}"] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "bad_lines": self.bad,
            "batches": self.batches,
            "resumed_after_line": self.resumed_after,
            "written": self.written,
            "policy_version": self.policy_version,
            "outcomes": dict(sorted(self.outcomes.items())),
        }


# -- what is stored, read in bulk -------------------------------------------------------------


# Named tuples rather than dataclasses: a batch builds thousands of them from rows, and a
# tuple is several times cheaper to make than a frozen dataclass.
class _User(NamedTuple):
    id: str
    email: str
    name: str
    locale: str
    verified: bool
    line: int = 0  # defined on this line of the file (0: already stored)


class _Area(NamedTuple):
    id: str
    name: str
    owner_id: str
    key: str | None
    line: int = 0


class _Grant(NamedTuple):
    role: str
    permissions: PermissionSet
    version: int
    line: int = 0
    valid_until: datetime | None = None


class _Invitation(NamedTuple):
    id: str
    permissions: PermissionSet
    invited_by: str
    expires_at: datetime
    line: int = 0


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


_USER_COLUMNS = "SELECT id, email, name, locale, email_verified FROM users"
_COLUMN_TYPES: dict[str, dict[str, str]] = {}  # PostgreSQL: table -> column -> type
# PostgreSQL: a column of values travels as one text, the values joined by _SEP (None as
# _NULL), split by the server (string_to_array). psycopg2 quotes a list item by item into
# an array literal that the server then parses: sending casbin_rule's seven columns cost
# about 20 µs a row that way, against 1-3 µs joined. No stored value holds these control
# characters (names and keys are printable); a column where one did would go as a list.
_SEP, _NULL = "\x1f", "\x1e"


def _pg_arrays(columns: Iterable[Sequence[Any]], types: Sequence[str]) -> tuple[str, list[Any]]:
    """The SQL of one array per column (``unnest``'s arguments) and its parameters."""
    sql: list[str] = []
    params: list[Any] = []
    for column, kind in zip(columns, types, strict=True):
        nulls = 0
        try:
            joined = _SEP.join(column)  # most columns hold texts only: joined in C
        except TypeError:  # a number, a flag or a None among them: each made a text
            texts = []
            for v in column:
                if v is None:
                    nulls += 1
                    texts.append(_NULL)
                else:
                    texts.append(("t" if v else "f") if v is True or v is False else str(v))
            joined = _SEP.join(texts)
        # Each separator and null mark is ours; an empty text would be no value at all.
        if joined and joined.count(_SEP) == len(column) - 1 and joined.count(_NULL) == nulls:
            sql.append(f"string_to_array(%s, E'\\x1f', E'\\x1e')::{kind}[]")
            params.append(joined)
        else:
            sql.append(f"%s::{kind}[]")
            params.append(list(column))
    return ", ".join(sql), params


class _Tables:
    """Reads and writes the tables an import touches, on one DB-API connection."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres
        self.mark = "%s" if postgres else "?"

    def _select(
        self, sql: str, probe: str, values: Sequence[Any], width: int = 1
    ) -> list[tuple[Any, ...]]:
        """The rows stored for ``values`` (one column each, or ``width`` columns of tuples).

        SQLite runs ``sql``, whose ``{}`` stands for a row set of them, in chunks. PostgreSQL
        runs ``probe`` (its keys named p.k0, p.k1 …) once per value over unnested arrays,
        in one statement: each probe is an index lookup at most one row long (LIMIT 1 keeps
        the planner from turning them into a hash join over the whole table, as it does
        whenever the table's statistics are older than the import's first batches).
        """
        rows: list[tuple[Any, ...]] = []
        if not values:
            return rows
        cur = self.conn.cursor()
        if self.postgres:
            try:
                columns = list(zip(*values, strict=True)) if width > 1 else [values]
                arrays, params = _pg_arrays(columns, ["text"] * width)
                keys = ", ".join(f"k{n}" for n in range(width))
                cur.execute(
                    f"SELECT r.* FROM unnest({arrays}) AS p({keys})"
                    f" CROSS JOIN LATERAL ({probe} LIMIT 1) r",
                    params,
                )
                return list(cur.fetchall())
            finally:
                cur.close()
        one = "(" + ",".join([self.mark] * width) + ")" if width > 1 else self.mark
        try:
            for part in _chunks(list(values), _CHUNK // width):
                if width > 1:
                    marks = "VALUES " + ",".join([one] * len(part))
                    params = [v for item in part for v in item]
                else:
                    marks = ",".join([one] * len(part))
                    params = list(part)
                cur.execute(sql.format(marks), params)
                rows.extend(cur.fetchall())
        finally:
            cur.close()
        return rows

    def users_by_email(self, emails: Iterable[str]) -> dict[str, _User]:
        rows = self._select(
            f"{_USER_COLUMNS} WHERE email IN ({{}})",
            f"{_USER_COLUMNS} WHERE email = p.k0",
            sorted(set(emails)),
        )
        return {r[1]: _User(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows}

    def users_by_id(self, ids: Iterable[str]) -> dict[str, _User]:
        rows = self._select(
            f"{_USER_COLUMNS} WHERE id IN ({{}})",
            f"{_USER_COLUMNS} WHERE id = p.k0",
            sorted(set(ids)),
        )
        return {r[0]: _User(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows}

    def areas_by_id(self, ids: Iterable[str]) -> dict[str, _Area]:
        rows = self._select(
            "SELECT a.id, a.name, a.owner_id, k.key FROM areas a"
            " LEFT JOIN area_keys k ON k.area_id = a.id WHERE a.id IN ({})",
            "SELECT a.id, a.name, a.owner_id, (SELECT k.key FROM area_keys k"
            " WHERE k.area_id = a.id) FROM areas a WHERE a.id = p.k0",
            sorted(set(ids)),
        )
        return {r[0]: _Area(r[0], r[1], r[2], r[3]) for r in rows}

    def areas_by_key(self, keys: Iterable[str]) -> dict[str, _Area]:
        rows = self._select(
            "SELECT a.id, a.name, a.owner_id, k.key FROM area_keys k"
            " JOIN areas a ON a.id = k.area_id WHERE k.key IN ({})",
            "SELECT a.id, a.name, a.owner_id, k.key FROM area_keys k"
            " JOIN areas a ON a.id = k.area_id WHERE k.key = p.k0",
            sorted(set(keys)),
        )
        return {r[3]: _Area(r[0], r[1], r[2], r[3]) for r in rows}

    def grants(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], _Grant]:
        # A join from the pairs, not "(area_id, user_id) IN (VALUES …)": SQLite scans the
        # whole table for that. CROSS JOIN keeps SQLite's loop order (pairs outside).
        columns = "g.area_id, g.user_id, g.role, g.permissions, g.version, g.valid_until"
        rows = self._select(
            f"WITH p(a, u) AS ({{}}) SELECT {columns} FROM p CROSS JOIN grants g"
            " ON g.area_id = p.a AND g.user_id = p.u",
            f"SELECT {columns} FROM grants g WHERE g.area_id = p.k0 AND g.user_id = p.k1",
            sorted(set(pairs)),
            width=2,
        )
        return {
            (r[0], r[1]): _Grant(
                r[2], _perms(r[3]), int(r[4]), 0, None if r[5] is None else _when(r[5])
            )
            for r in rows
        }

    def invitations(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], _Invitation]:
        # At most one pending invitation a pair (the invitations_one_pending index).
        columns = "i.area_id, i.email, i.id, i.permissions, i.invited_by, i.expires_at"
        rows = self._select(
            f"WITH p(a, e) AS ({{}}) SELECT {columns} FROM p CROSS JOIN invitations i"
            f" ON i.area_id = p.a AND i.email = p.e WHERE i.status = '{_PENDING}'",
            f"SELECT {columns} FROM invitations i WHERE i.area_id = p.k0 AND i.email = p.k1"
            f" AND i.status = '{_PENDING}'",
            sorted(set(pairs)),
            width=2,
        )
        return {(r[0], r[1]): _Invitation(r[2], _perms(r[3]), r[4], _when(r[5])) for r in rows}

    def insert(self, table: str, columns: str, rows: list[tuple[Any, ...]], tail: str = "") -> None:
        """Insert ``rows``; ``tail`` is an ON CONFLICT clause."""
        if rows:
            self._insert(table, columns, rows, tail)

    def insert_ids(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert ``rows`` into a table with an autoincrementing ``id``; their ids, in order.

        PostgreSQL numbers the rows of one INSERT … SELECT in the order it reads them, each
        from the sequence, so sorting what RETURNING gives pairs the ids with the rows. On
        SQLite the rows go one after the other while this connection holds the only write
        lock: each takes the next id, the last one being last_insert_rowid().
        """
        if not rows:
            return []
        if self.postgres:
            return sorted(int(r[0]) for r in self._insert(table, columns, rows, " RETURNING id"))
        self._insert(table, columns, rows, "")
        last = int(self.execute("SELECT last_insert_rowid()")[0][0])
        return list(range(last - len(rows) + 1, last + 1))

    def _insert(
        self, table: str, columns: str, rows: list[tuple[Any, ...]], tail: str
    ) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            if self.postgres:
                # One array a column, unnested by the server: far cheaper to parse and plan
                # than a VALUES list of thousands of rows. (COPY would be cheaper still, but
                # psycopg2 refuses it under the wait callback that bounds every call.)
                types = self._column_types(table)
                kinds = [types[c.strip()] for c in columns.split(",")]
                values = list(zip(*rows, strict=True))
                # A column with one value in every row (a batch's role, times, version, an
                # empty Casbin field…) goes once, as a scalar: the server then reads and
                # casts it once, not once a row (a tenth of a casbin_rule row's insert).
                varying = [n for n, v in enumerate(values) if v.count(v[0]) != len(v)]
                if varying:
                    arrays, params = _pg_arrays(
                        [values[n] for n in varying], [kinds[n] for n in varying]
                    )
                    picked = ", ".join(
                        f"u.c{n}" if n in varying else f"%s::{kind}" for n, kind in enumerate(kinds)
                    )
                    scalars = [v[0] for n, v in enumerate(values) if n not in varying]
                    names = ", ".join(f"c{n}" for n in varying)
                    cur.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {picked}"
                        f" FROM unnest({arrays}) AS u({names}) {tail}",
                        scalars + params,
                    )
                else:  # every row the same (one row, most often)
                    arrays, params = _pg_arrays(values, kinds)
                    cur.execute(
                        f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) {tail}",
                        params,
                    )
            else:
                marks = ",".join("?" * (columns.count(",") + 1))
                cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}) {tail}", rows)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def _column_types(self, table: str) -> dict[str, str]:
        types = _COLUMN_TYPES.get(table)
        if types is None:
            rows = self.execute(
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
                " WHERE attrelid = CAST(? AS regclass) AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            types = _COLUMN_TYPES[table] = {name: kind for name, kind in rows}
        return types

    def execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cur = self.conn.cursor()
        try:
            cur.executemany(sql.replace("?", self.mark), rows)
        finally:
            cur.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql.replace("?", self.mark), params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()


class _Layered:
    """Lookups through ``top`` first, then the database: a dry run's scratch tables, or the
    batch being written (_InFlight)."""

    def __init__(self, top: Any, below: _Tables) -> None:
        self._top = top
        self._below = below

    def __getattr__(self, name: str) -> Callable[[Iterable[Any]], dict[Any, Any]]:
        def lookup(keys: Iterable[Any]) -> dict[Any, Any]:
            keys = list(keys)
            found = getattr(self._top, name)(keys)
            rest = [k for k in keys if k not in found]
            return {**getattr(self._below, name)(rest), **found}

        return lookup


class _InFlight:
    """What the batch being written holds for the keys it touched (PostgreSQL's pipeline),
    for the next batch's lookups, which take it before the database's.

    That batch looked up, and planned, every user, area, grant and invitation its lines
    touch, so for those keys its dicts hold what the database will hold once it commits;
    every other key it leaves as stored. Its entries come back as stored ones (line 0): by
    the time the next batch commits, this one has.
    """

    _KINDS = ("users_by_email", "users_by_id", "areas_by_id", "areas_by_key", "grants",
              "invitations")  # fmt: skip

    def __init__(self, batch: _Batch) -> None:
        # Its dicts, not the batch: the batch's own lookups hold the batch before it, and
        # so on, which would keep every batch of the run in memory.
        self._held: dict[str, dict[Any, Any]] = {k: getattr(batch, k) for k in self._KINDS}

    def __getattr__(self, name: str) -> Callable[[Iterable[Any]], dict[Any, Any]]:
        held = self._held[name]

        def lookup(keys: Iterable[Any]) -> dict[Any, Any]:
            found = {}
            for key in keys:
                entry = held.get(key)
                if entry is not None:
                    found[key] = entry._replace(line=0) if entry.line else entry
            return found

        return lookup


_SCRATCH_SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE, name TEXT, locale TEXT,
    password_hash TEXT, email_verified INTEGER, created_at TEXT);
CREATE TABLE areas (id TEXT PRIMARY KEY, name TEXT, owner_id TEXT, created_at TEXT);
CREATE TABLE area_keys (key TEXT PRIMARY KEY, area_id TEXT UNIQUE);
CREATE TABLE grants (id INTEGER PRIMARY KEY, area_id TEXT, user_id TEXT, role TEXT,
    permissions TEXT, granted_by TEXT, invitation_id TEXT, version INTEGER,
    created_at TEXT, updated_at TEXT, valid_until TEXT, UNIQUE (area_id, user_id));
CREATE TABLE invitations (id TEXT PRIMARY KEY, area_id TEXT, email TEXT, permissions TEXT,
    invited_by TEXT, status TEXT, token_hash TEXT, expires_at TEXT, created_at TEXT,
    updated_at TEXT, sends INTEGER);
CREATE INDEX invitations_area_email ON invitations (area_id, email);
"""


@dataclass(frozen=True, slots=True)
class _Texts:
    """What a grant of one role and permission set writes, computed once per set."""

    permissions: str  # the grants.permissions column
    roles: tuple[str, ...]  # its Casbin roles (Grant.casbin_roles)
    roles_json: str  # the change log's roles column
    snapshot: str  # the audit event's after


class _TextCache:
    """_Texts by (role, permissions): a catalogue has few distinct sets, so lines share them."""

    def __init__(self, limit: int = 65536) -> None:
        self._by_set: dict[tuple[Role, PermissionSet], _Texts] = {}
        self._limit = limit

    def __call__(self, role: Role, perms: PermissionSet) -> _Texts:
        texts = self._by_set.get((role, perms))
        if texts is None:
            if len(self._by_set) >= self._limit:
                self._by_set.clear()
            epoch = datetime(1970, 1, 1)
            roles = Grant("a", "u", role, perms, None, None, epoch, epoch).casbin_roles()
            snapshot = {"role": str(role), "permissions": perms.to_json()}
            texts = self._by_set[(role, perms)] = _Texts(
                _perms_text(perms),
                tuple(roles),
                json.dumps(sorted(roles)),
                json.dumps(snapshot, sort_keys=True),
            )
        return texts


def _snapshots(by_subject: dict[str, str]) -> str:
    """{subject: snapshot JSON} as BulkImporter.dump writes it (keys sorted), joined as text."""
    # The keys are "user:" and a checked id: nothing in them needs escaping.
    return "{" + ", ".join(f'"{k}": {by_subject[k]}' for k in sorted(by_subject)) + "}"


# -- one batch: from lines to rows --------------------------------------------------------------


class _Bad(Exception):
    """This line cannot be imported; the message says why."""


@dataclass
class _Rows:
    """Everything one batch writes, in the order it is written."""

    users: list[tuple[Any, ...]] = field(default_factory=list)
    user_updates: list[tuple[Any, ...]] = field(default_factory=list)
    areas: list[tuple[Any, ...]] = field(default_factory=list)
    area_updates: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    grants: list[tuple[Any, ...]] = field(default_factory=list)
    grant_updates: list[tuple[Any, ...]] = field(default_factory=list)
    unlinked: list[tuple[Any, ...]] = field(default_factory=list)  # (user id, area id)
    # (area id, user id) -> the role set its g lines and change-log entry record: a later
    # line of the batch for the same pair replaces an earlier one's.
    # The second of each value is the g lines' end ("" for none).
    linked: dict[tuple[str, str], tuple[_Texts, str]] = field(default_factory=dict)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    changes: list[tuple[Any, ...]] = field(default_factory=list)
    invitations: list[tuple[Any, ...]] = field(default_factory=list)
    invitation_updates: list[tuple[Any, ...]] = field(default_factory=list)
    expired: list[tuple[Any, ...]] = field(default_factory=list)
    audit: list[tuple[Any, ...]] = field(default_factory=list)
    # area id -> (before, after), each {"user:u_…": snapshot JSON}: one grants.imported
    # event per area and batch (_Batch.finish turns them into audit rows).
    granted: dict[str, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not any(vars(self).values())


class _Batch:
    """Plans one batch of lines against what is stored and what earlier lines defined."""

    def __init__(self, importer: BulkImporter, lookup: Any, now: datetime) -> None:
        self._imp = importer
        self._lookup = lookup
        self.now = now
        # now as text, made once rather than by the driver for each row: sqlite3's adapter
        # makes the same text, and PostgreSQL reads it as the timestamp
        self._at = now.isoformat(" ")
        self._policy_hash = importer.policy_hash() or None
        self._texts = importer.texts
        self.rows = _Rows()
        self.users_by_email: dict[str, _User] = {}
        self.users_by_id: dict[str, _User] = {}
        self.areas_by_id: dict[str, _Area] = {}
        self.areas_by_key: dict[str, _Area] = {}
        self.grants: dict[tuple[str, str], _Grant] = {}
        self.invitations: dict[tuple[str, str], _Invitation] = {}

    # -- looking things up --------------------------------------------------------------------

    def prefetch(self, lines: Sequence[Line]) -> None:
        """Read, in a few queries, everything the batch's lines refer to."""
        emails: set[str] = set()
        user_ids: set[str] = set()
        area_ids: set[str] = set()
        area_keys: set[str] = set()
        for line in lines:
            if type(line) is GrantLine:  # most lines: first
                (user_ids if _is_user_id(line.user) else emails).add(line.user)
                (area_ids if _is_area_id(line.area) else area_keys).add(line.area)
            elif isinstance(line, UserLine):
                emails.add(line.email)
                if line.id:
                    user_ids.add(line.id)
            elif isinstance(line, AreaLine):
                (user_ids if _is_user_id(line.owner) else emails).add(line.owner)
                if line.id:
                    area_ids.add(line.id)
                if line.key:
                    area_keys.add(line.key)
            elif isinstance(line, InvitationLine):
                emails.add(line.email)
                if line.invited_by:
                    ref = line.invited_by
                    (user_ids if _is_user_id(ref) else emails).add(ref)
                (area_ids if _is_area_id(line.area) else area_keys).add(line.area)
        self.users_by_email.update(self._lookup.users_by_email(emails))
        # Emails as written that are not stored as such: look up their canonical form too.
        self._canonical: dict[str, str | Exception] = {}
        extra = set()
        for email in emails - self.users_by_email.keys():
            try:
                self._canonical[email] = canon = canonical_email(email)
                extra.add(canon)
            except InvalidInput as ex:
                self._canonical[email] = ex
        self.users_by_email.update(self._lookup.users_by_email(extra - emails))
        self.users_by_id.update(self._lookup.users_by_id(user_ids))
        self.areas_by_id.update(self._lookup.areas_by_id(area_ids))
        self.areas_by_key.update(self._lookup.areas_by_key(area_keys))
        pairs: set[tuple[str, str]] = set()
        invited: set[tuple[str, str]] = set()
        for line in lines:
            if type(line) is GrantLine:
                area = self._area_or_none(line.area)
                user = self._user_or_none(line.user)
                if area is not None and user is not None:
                    pairs.add((area.id, user.id))
            elif isinstance(line, InvitationLine):
                area = self._area_or_none(line.area)
                if area is not None:
                    invited.add((area.id, line.email))
                    invitee = self.users_by_email.get(line.email)
                    if invitee is not None:
                        pairs.add((area.id, invitee.id))
                    inviter = self._user_or_none(line.invited_by) if line.invited_by else None
                    if inviter is not None:
                        pairs.add((area.id, inviter.id))
        self.grants.update(self._lookup.grants(pairs))
        self.invitations.update(self._lookup.invitations(invited))

    def _user_or_none(self, ref: str) -> _User | None:
        # An email first (most references): no user id is an email, nor the reverse.
        user = self.users_by_email.get(ref)
        if user is not None:
            return user
        if _is_user_id(ref):
            return self.users_by_id.get(ref)
        canon = self._canonical.get(ref)
        return self.users_by_email.get(canon) if isinstance(canon, str) else None

    def _user(self, ref: str, line: int, field_name: str) -> _User:
        user = self._user_or_none(ref)
        if user is None or user.line > line:
            canon = self._canonical.get(ref)
            if isinstance(canon, Exception):
                raise _Bad(f"{field_name}: {canon}")
            later = f" (it is defined on line {user.line}, after this one)" if user else ""
            raise _Bad(f"{field_name}: no such user: {ref}{later}")
        return user

    def _area_or_none(self, ref: str) -> _Area | None:
        # A key first (most references): no key looks like an area id (AreaLine refuses it).
        area = self.areas_by_key.get(ref)
        if area is None and _is_area_id(ref):
            return self.areas_by_id.get(ref)
        return area

    def _area(self, ref: str, line: int) -> _Area:
        area = self._area_or_none(ref)
        if area is None or area.line > line:
            later = f" (it is defined on line {area.line}, after this one)" if area else ""
            raise _Bad(f"no such area: {ref}{later}")
        return area

    # -- planning each kind -----------------------------------------------------------------

    def plan(self, line: Line, summary: ImportSummary) -> None:
        """Plan one good line's rows; raise _Bad saying why it cannot be imported."""
        if type(line) is GrantLine:  # most lines: first
            summary.count("grant", self.plan_grant(line))
        elif isinstance(line, UserLine):
            summary.count("user", self.plan_user(line))
        elif isinstance(line, AreaLine):
            summary.count("area", self.plan_area(line))
        elif isinstance(line, InvitationLine):
            summary.count("invitation", self.plan_invitation(line))

    def _audit(
        self,
        area_id: str,
        action: str,
        target: str,
        before: dict[str, Any] | str | None,
        after: dict[str, Any] | str | None,
    ) -> None:
        dump = self._imp.dump
        self.rows.audit.append(
            (
                area_id,
                None,
                action,
                target,
                before if before is None or isinstance(before, str) else dump(before),
                after if after is None or isinstance(after, str) else dump(after),
                self._at,
                self._policy_hash,
            )
        )

    def _link(self, area_id: str, user_id: str, texts: _Texts, end: datetime | None = None) -> None:
        """Record a grant's role set and end: its g lines and change-log entry (ids checked
        already)."""
        self.rows.linked[(area_id, user_id)] = (texts, "" if end is None else casbin_until(end))

    def finish(self) -> None:
        """Turn what the batch linked and granted into g lines, change-log entries (one an
        area: the last role set of each of its pairs, as one entry for several subjects
        when it has more than one) and audit rows (one grants.imported event per area)."""
        links, changes, at = self.rows.links, self.rows.changes, self._at
        by_area: dict[str, list[tuple[str, _Texts, str]]] = {}
        for (area_id, user_id), (texts, end) in self.rows.linked.items():
            subject, domain = f"user:{user_id}", f"area:{area_id}"
            links += [("g", subject, role, domain, end, "", "") for role in texts.roles]
            by_area.setdefault(domain, []).append((subject, texts, end))
        for domain, entries in by_area.items():
            if len(entries) == 1:
                subject, texts, end = entries[0]
                changes.append((domain, subject, texts.roles_json, at, end))
            else:
                changes.append((domain, GROUP_SUBJECT, group_roles(
                    (subject, texts.roles_json, end) for subject, texts, end in entries
                ), at, None))  # fmt: skip
        for area_id, (before, after) in self.rows.granted.items():
            self._audit(area_id, "grants.imported", f"area:{area_id}",
                        _snapshots(before) if before else None, _snapshots(after))  # fmt: skip

    def plan_user(self, line: UserLine) -> str:
        stored = self.users_by_email.get(line.email)
        if line.id is not None:
            by_id = self.users_by_id.get(line.id)
            if by_id is not None and by_id.email != line.email:
                raise _Bad(f"id {line.id} belongs to another email address")
            if stored is not None and stored.id != line.id:
                raise _Bad(f"{line.email} is already user {stored.id}, not {line.id}")
        if stored is None:
            user = _User(
                line.id or self._imp.ids(USER),
                line.email,
                line.name,
                line.language,
                line.email_verified,
                line.line,
            )
            self.rows.users.append(
                (user.id, user.email, user.name, user.locale, NO_PASSWORD, user.verified, self._at)
            )
            outcome = "created"
        else:
            user = _User(
                stored.id, stored.email, line.name, line.language, line.email_verified, stored.line
            )
            if (stored.name, stored.locale, stored.verified) == (
                user.name,
                user.locale,
                user.verified,
            ):
                return "unchanged"
            self.rows.user_updates.append((user.name, user.locale, user.verified, user.id))
            outcome = "updated"
        self.users_by_email[user.email] = user
        self.users_by_id[user.id] = user
        return outcome

    def plan_area(self, line: AreaLine) -> str:
        owner = self._user(line.owner, line.line, "owner")
        by_id = self.areas_by_id.get(line.id) if line.id else None
        by_key = self.areas_by_key.get(line.key) if line.key else None
        if by_id and by_key and by_id.id != by_key.id:
            raise _Bad(f"key {line.key} belongs to area {by_key.id}, not {line.id}")
        stored = by_id or by_key
        if stored is not None:
            if line.id and stored.id != line.id:
                raise _Bad(f"key {line.key} belongs to area {stored.id}, not {line.id}")
            if line.key and stored.key and stored.key != line.key:
                raise _Bad(f"area {stored.id} already has the key {stored.key}")
            if stored.owner_id != owner.id:
                raise _Bad(f"the owner of {stored.id} cannot be changed")
            changed = False
            if line.key and not stored.key:
                self.rows.keys.append((line.key, stored.id))
                changed = True
            if stored.name != line.name:
                self.rows.area_updates.append((line.name, stored.id))
                self._audit(stored.id, "area.updated", f"area:{stored.id}", {"name": stored.name},
                            {"name": line.name})  # fmt: skip
                changed = True
            area = _Area(stored.id, line.name, owner.id, line.key or stored.key, stored.line)
            outcome = "updated" if changed else "unchanged"
        else:
            area = _Area(line.id or self._imp.ids(AREA), line.name, owner.id, line.key, line.line)
            self.rows.areas.append((area.id, area.name, owner.id, self._at))
            if line.key:
                self.rows.keys.append((line.key, area.id))
            self.rows.grants.append(
                (area.id, owner.id, str(Role.OWNER), _perms_text(PermissionSet.everything()),
                 None, None, 1, self._at, self._at, None)
            )  # fmt: skip
            self._link(area.id, owner.id, self._texts(Role.OWNER, PermissionSet.everything()))
            self._audit(area.id, "area.imported", f"user:{owner.id}", None,
                        {"name": area.name, "role": "owner", "key": line.key})  # fmt: skip
            self.grants[(area.id, owner.id)] = _Grant(
                str(Role.OWNER), PermissionSet.everything(), 1, line.line
            )
            outcome = "created"
        self.areas_by_id[area.id] = area
        if area.key:
            self.areas_by_key[area.key] = area
        return outcome

    def plan_grant(self, line: GrantLine) -> str:
        user = self._user(line.user, line.line, "user")
        area = self._area(line.area, line.line)
        if user.id == area.owner_id:
            raise _Bad("this user owns the area and holds every permission there")
        stored = self.grants.get((area.id, user.id))
        if stored is not None and stored.line > line.line:
            stored = None  # only a later line of this batch made it; cannot happen in line order
        texts = self._texts(Role.DELEGATE, line.permissions)
        subject = f"user:{user.id}"
        before: str | None = None
        if stored is None:
            self.rows.grants.append(
                (area.id, user.id, _DELEGATE, texts.permissions, None, None, 1, self._at,
                 self._at, _text(line.valid_until))
            )  # fmt: skip
            outcome, version = "created", 1
        else:
            if stored.role != _DELEGATE:
                raise _Bad("this user owns the area and holds every permission there")
            if stored.permissions == line.permissions and stored.valid_until == line.valid_until:
                return "unchanged"
            version = stored.version + 1
            self.rows.grant_updates.append(
                (texts.permissions, version, self._at, _text(line.valid_until), area.id, user.id,
                 stored.version)
            )  # fmt: skip
            self.rows.unlinked.append((user.id, area.id))
            if not stored.line:  # as stored before this batch (not made by an earlier line)
                before = self._texts(Role.DELEGATE, stored.permissions).snapshot
            outcome = "updated"
        granted = self.rows.granted.get(area.id)
        if granted is None:
            granted = self.rows.granted[area.id] = ({}, {})
        if before is not None:
            granted[0][subject] = before
        granted[1][subject] = texts.snapshot
        self._link(area.id, user.id, texts, line.valid_until)
        self.grants[(area.id, user.id)] = _Grant(
            _DELEGATE, line.permissions, version, line.line, line.valid_until
        )
        return outcome

    def plan_invitation(self, line: InvitationLine) -> str:
        area = self._area(line.area, line.line)
        inviter_id = area.owner_id
        if line.invited_by is not None:
            inviter_id = self._user(line.invited_by, line.line, "invited_by").id
        if inviter_id != area.owner_id:
            held = self.grants.get((area.id, inviter_id))
            if held is None or held.line > line.line:
                raise _Bad("invited_by: that user is not a member of the area")
            if not held.permissions.has(MANAGE_USERS):
                raise _Bad(f"invited_by: inviting needs the '{MANAGE_USERS}' permission")
            if not held.permissions.covers(line.permissions):
                raise _Bad("invited_by: that user cannot give permissions they do not hold")
        invitee = self.users_by_email.get(line.email)
        if invitee is not None and invitee.line <= line.line:
            member = self.grants.get((area.id, invitee.id))
            if member is not None and member.line <= line.line:
                raise _Bad("this person is already a member of the area")
        if line.expires_at is not None and line.expires_at <= self.now:
            raise _Bad("expires_at has already passed")
        stored = self.invitations.get((area.id, line.email))
        if stored is not None and stored.expires_at <= self.now:
            self.rows.expired.append((self.now, stored.id))
            stored = None
        snapshot = {
            "email": line.email,
            "permissions": line.permissions.to_json(),
            "status": _PENDING,
        }
        if stored is None:
            expires = line.expires_at or self.now + self._imp.invitation_ttl
            inv = _Invitation(self._imp.ids(INVITATION), line.permissions, inviter_id, expires,
                              line.line)  # fmt: skip
            self.rows.invitations.append(
                (inv.id, area.id, line.email, _perms_text(inv.permissions), inviter_id, _PENDING,
                 None, expires, self.now, self.now, 0)
            )  # fmt: skip
            snapshot["expires_at"] = expires.isoformat()
            self._audit(area.id, "invitation.imported", f"invitation:{inv.id}", None, snapshot)
            outcome = "created"
        else:
            expires = line.expires_at or stored.expires_at
            inv = _Invitation(stored.id, line.permissions, inviter_id, expires, stored.line)
            if (stored.permissions, stored.invited_by, stored.expires_at) == (
                inv.permissions,
                inv.invited_by,
                inv.expires_at,
            ):
                return "unchanged"
            self.rows.invitation_updates.append(
                (_perms_text(inv.permissions), inviter_id, expires, self.now, inv.id)
            )
            before = {
                "email": line.email,
                "permissions": stored.permissions.to_json(),
                "status": _PENDING,
                "expires_at": stored.expires_at.isoformat(),
            }
            snapshot["expires_at"] = expires.isoformat()
            self._audit(area.id, "invitation.updated", f"invitation:{inv.id}", before, snapshot)
            outcome = "updated"
        self.invitations[(area.id, line.email)] = inv
        return outcome


# -- the importer -----------------------------------------------------------------------------

Hook = Callable[[int], None]
Progress = Callable[[str, int, int, int], None]  # (phase, bytes done, bytes in all, lines)
BadSink = Callable[[BadLine], None]


class BulkImporter:
    """Imports a JSONL or CSV file into the database in atomic batches, resumably."""

    def __init__(
        self,
        db: peewee.Database,
        catalogue: Catalogue,
        *,
        ids: IdFactory = new_id,
        invitation_ttl: timedelta = timedelta(days=7),
        policy_hash: Callable[[], str] = lambda: "",
        clock: Callable[[], datetime] = _now,
        lock_budget: float = 0.25,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """``lock_budget``: on SQLite, the seconds a batch's write transaction aims at when
        the batch size is automatic (other writers wait that long for the lock)."""
        self.db = db
        self.catalogue = catalogue
        self.ids = ids
        self.invitation_ttl = invitation_ttl
        self.policy_hash = policy_hash
        self._clock = clock
        self.lock_budget = lock_budget
        self._timer = timer
        self.postgres = is_postgres(db)
        self.texts = _TextCache()
        self.pipelined = True  # PostgreSQL: plan the next batch while one is written

    @staticmethod
    def dump(value: dict[str, Any]) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    def run(
        self,
        path: str | os.PathLike[str],
        *,
        dry_run: bool = False,
        strict: bool = False,
        batch_size: int | None = None,
        on_bad: BadSink | None = None,
        progress: Progress | None = None,
        before_commit: Hook | None = None,
        after_commit: Hook | None = None,
    ) -> ImportSummary:
        """Import ``path``. A dry run, or a strict run that finds a bad line, writes nothing.

        ``batch_size`` lines go in each transaction. Without it: 5,000 on PostgreSQL; on
        SQLite each batch is sized by the last one's write transaction to take about
        ``lock_budget`` seconds, between 1,000 and 50,000 lines (bigger batches rewrite
        fewer index pages, but hold the only write lock longer).

        ``on_bad`` hears of each bad line as it is found. ``before_commit`` runs inside each
        batch's transaction once its rows are written, ``after_commit`` once it committed
        (each with the batch's number, from 1).
        """
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        report = on_bad or (lambda bad: None)
        if dry_run or strict:
            checked = self._pass(path, batch_size, report, progress, write=None)
            if dry_run or checked.bad:
                return checked
        with open(path, "rb") as fh:
            digest = _digest(fh)
        hooks = (before_commit, after_commit)
        return self._pass(path, batch_size, report, progress, write=(digest, hooks))

    def _pass(
        self,
        path: str | os.PathLike[str],
        batch_size: int | None,
        report: BadSink,
        progress: Progress | None,
        write: tuple[str, tuple[Hook | None, Hook | None]] | None,
    ) -> ImportSummary:
        summary = ImportSummary()
        limit = batch_size or _BATCH
        sized = batch_size is None and write is not None and not self.postgres
        # PostgreSQL: the server writes each batch while this process plans the next one.
        # SQLite writes in this process: a writer thread there took 40-50% more CPU and 30-40%
        # more time at 200k grants (sqlite3 hands the GIL over around every row), so one after
        # the other.
        piped = write is not None and self.postgres and self.pipelined
        phase = "importing" if write else "checking"
        skip = 0
        if write is not None:
            skip = summary.resumed_after = self._resume_point(write[0])
        scratch = None if write else _Scratch()
        try:
            with self.db.connection_context(), open(path, "rb") as raw:
                if not self.postgres:
                    # A bigger page cache than a request needs: index pages stay in memory
                    # across batches (a bound, whatever the file's size).
                    self.db.execute_sql("PRAGMA cache_size = -65536")
                    if write is not None:
                        # Checkpoint the WAL less often than a request's 1,000 pages: each
                        # batch dirties thousands of index pages, so every commit paid a
                        # checkpoint (the WAL's pages copied to the database, two fsyncs);
                        # now one checkpoint copies the pages of several batches, each page
                        # once (at 200k grants, commits 3.4 -> 1.7 s of 10). Journal and
                        # synchronous settings are unchanged: as crash-safe as before.
                        self.db.execute_sql(f"PRAGMA wal_autocheckpoint = {_WAL_PAGES}")
                total = os.fstat(raw.fileno()).st_size
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                pending: list[Line] = []
                pipeline = _Pipeline(self, write, summary, report) if write and piped else None
                try:
                    for line in _decoded(read_records(text, self.catalogue)):
                        if line.line <= skip:
                            continue
                        summary.lines += 1
                        pending.append(line)
                        if len(pending) >= limit:
                            if pipeline is not None:
                                pipeline.send(pending)
                            else:
                                seconds = self._batch(pending, summary, report, scratch, write)
                                if sized:
                                    limit = _next_size(limit, seconds, self.lock_budget)
                            pending = []
                            if progress:
                                progress(phase, raw.tell(), total, summary.lines)
                    if pending and pipeline is not None:
                        pipeline.send(pending)
                    elif pending:
                        self._batch(pending, summary, report, scratch, write)
                    if pipeline is not None:
                        pipeline.land()
                finally:
                    if pipeline is not None:
                        pipeline.close()
                if write is not None:
                    self._checkpoint()
                if progress:
                    progress(phase, total, total, summary.lines)
        finally:
            if scratch is not None:
                scratch.close()
        if write is not None:
            self._finish(write[0])
            summary.written = True
        return summary

    def _checkpoint(self) -> None:
        """SQLite: copy what the import left in the WAL (up to _WAL_PAGES) to the database
        now, so that a running server's next commit does not pay for it. PASSIVE: readers
        and writers are not waited for; what they hold is copied by a later checkpoint."""
        if not self.postgres:
            self.db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _resume_point(self, digest: str) -> int:
        with self.db.connection_context():
            rows = _Tables(self.db.connection(), self.postgres).execute(
                "SELECT lines_done, finished_at FROM import_runs WHERE digest = ?", (digest,)
            )
        if not rows or rows[0][1] is not None:
            return 0  # never run, or finished: a new run goes through every line again
        return int(rows[0][0])

    def _finish(self, digest: str) -> None:
        now = self._clock()
        with self.db.connection_context(), self._transaction():
            _Tables(self.db.connection(), self.postgres).execute(
                "INSERT INTO import_runs (digest, lines_done, started_at, updated_at, finished_at)"
                " VALUES (?, 0, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET"
                " finished_at = excluded.finished_at, updated_at = excluded.updated_at",
                (digest, now, now, now),
            )

    def _transaction(self) -> Any:
        return self.db.atomic()

    def _batch(
        self,
        lines: list[Line],
        summary: ImportSummary,
        report: BadSink,
        scratch: _Scratch | None,
        write: tuple[str, tuple[Hook | None, Hook | None]] | None,
    ) -> float:
        """Plan and write one batch; returns the seconds its write transaction took."""
        now = self._clock()
        seconds = 0.0
        good = [line for line in lines if not isinstance(line, BadLine)]
        bad = [line for line in lines if isinstance(line, BadLine)]
        summary.batches += 1
        if write is None:
            assert scratch is not None
            below = _Tables(self.db.connection(), self.postgres)
            batch = _Batch(self, _Layered(scratch.tables, below), now)
            bad += self._plan(batch, good, summary)
            _write(scratch.tables, batch.rows, full=False)
            scratch.commit()
        else:
            digest, (before_commit, after_commit) = write
            started = self._timer()
            with self._transaction():
                tables = _Tables(self.db.connection(), self.postgres)
                batch = _Batch(self, tables, now)
                bad += self._plan(batch, good, summary)
                version = self._commit(tables, batch, digest, lines[-1].line, summary.batches,
                                       before_commit)  # fmt: skip
            seconds = self._timer() - started
            summary.policy_version = version or summary.policy_version
            if after_commit:
                after_commit(summary.batches)
        _report(bad, summary, report)
        return seconds

    def _commit(
        self,
        tables: _Tables,
        batch: _Batch,
        digest: str,
        last_line: int,
        number: int,
        before_commit: Hook | None,
    ) -> int:
        """Write a planned batch and how far the run got, in the open transaction; the
        change log's head (0 when it logged nothing)."""
        version = _write(tables, batch.rows, full=True)
        tables.execute(
            "INSERT INTO import_runs (digest, lines_done, started_at, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET"
            " lines_done = excluded.lines_done, updated_at = excluded.updated_at,"
            " finished_at = NULL",
            (digest, last_line, batch.now, batch.now),
        )
        if before_commit:
            before_commit(number)
        return version

    def _planned(
        self, lines: list[Line], summary: ImportSummary, flying: _Flight | None
    ) -> _Flight:
        """Plan a batch while ``flying`` (the batch before it) may still be being written:
        outside any transaction, through what that batch planned (_InFlight)."""
        good = [line for line in lines if not isinstance(line, BadLine)]
        bad = [line for line in lines if isinstance(line, BadLine)]
        summary.batches += 1
        lookup: Any = _Tables(self.db.connection(), self.postgres)
        if flying is not None:
            lookup = _Layered(_InFlight(flying.batch), lookup)
        batch = _Batch(self, lookup, self._clock())
        bad += self._plan(batch, good, summary)
        return _Flight(batch, bad, lines[-1].line, summary.batches)

    def _written(
        self,
        flight: _Flight,
        digest: str,
        hooks: tuple[Hook | None, Hook | None],
    ) -> int:
        """Write a planned batch in a transaction of the writer thread's own; its version."""
        before_commit, after_commit = hooks
        with self.db.connection_context():
            with self._transaction():
                tables = _Tables(self.db.connection(), self.postgres)
                version = self._commit(tables, flight.batch, digest, flight.last_line,
                                       flight.number, before_commit)  # fmt: skip
            if after_commit:
                after_commit(flight.number)
        return version

    @staticmethod
    def _plan(batch: _Batch, good: Sequence[Line], summary: ImportSummary) -> list[BadLine]:
        bad = []
        batch.prefetch(good)
        for line in good:
            try:
                batch.plan(line, summary)
            except _Bad as ex:
                kind = type(line).__name__.removesuffix("Line").lower()
                bad.append(BadLine(line.line, f"{kind}: {ex}"))
        batch.finish()
        return bad


class _Pipeline:
    """An import's batches written by one thread of their own, in order, while the caller
    plans the next one (PostgreSQL: the server writes a batch while this process plans the
    next, on two cores at once rather than one after the other).

    One batch at most is in flight. The next one is planned through it (_InFlight), and is
    handed over only once it committed, so batches commit in line order, each in its own
    transaction, as they do one after the other. A write's error (or an interruption in a
    ``before_commit`` hook) comes back to the caller at the next hand-over, and nothing
    planned after it is written. Lookups and writes then run on two connections: a grant
    changed by someone else between the two still fails its update (its version is checked),
    as a row created meanwhile fails its insert, as they would in one transaction.
    """

    def __init__(
        self,
        importer: BulkImporter,
        write: tuple[str, tuple[Hook | None, Hook | None]],
        summary: ImportSummary,
        report: BadSink,
    ) -> None:
        self._imp = importer
        self._digest, self._hooks = write
        self._summary = summary
        self._report = report
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="import-writer")
        self._flying: _Flight | None = None

    def send(self, lines: list[Line]) -> None:
        flight = self._imp._planned(lines, self._summary, self._flying)
        self.land()
        flight.future = self._writer.submit(self._imp._written, flight, self._digest, self._hooks)
        self._flying = flight

    def land(self) -> None:
        """Wait for the batch in flight to commit (raising its error), then report it."""
        flight, self._flying = self._flying, None
        if flight is None or flight.future is None:
            return
        version = flight.future.result()
        self._summary.policy_version = version or self._summary.policy_version
        _report(flight.bad, self._summary, self._report)

    def close(self) -> None:
        """Let a batch still in flight end (committed or not), then stop the thread."""
        self._writer.shutdown(wait=True)


def _report(bad: list[BadLine], summary: ImportSummary, report: BadSink) -> None:
    summary.bad += len(bad)
    for line in sorted(bad, key=lambda b: b.line):
        report(line)


@dataclass
class _Flight:
    """A planned batch handed to the writer thread, and what its write came to."""

    batch: _Batch
    bad: list[BadLine]
    last_line: int
    number: int
    future: Future[int] | None = None


def _next_size(size: int, seconds: float, budget: float) -> int:
    """The next SQLite batch's lines: as many as ``budget`` seconds of the last one's pace,
    at most twice as many as it had, within _MIN_BATCH and _MAX_BATCH."""
    fit = size * 2 if seconds <= 0 else int(size * budget / seconds)
    return max(_MIN_BATCH, min(fit, size * 2, _MAX_BATCH))


def _decoded(lines: Iterator[Line]) -> Iterator[Line]:
    try:
        yield from lines
    except UnicodeDecodeError as ex:
        from delegauth.domain.transfer import FormatError

        raise FormatError(f"the file is not UTF-8 text: {ex.reason}") from ex


def _digest(fh: IO[bytes]) -> str:
    sha = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        sha.update(chunk)
    return sha.hexdigest()


class _Scratch:
    """A dry run's scratch SQLite file: what earlier lines defined, for later lines."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="delegauth-import-")
        self._conn = sqlite3.connect(os.path.join(self._dir.name, "scratch.sqlite3"))
        self._conn.executescript("PRAGMA journal_mode = off; PRAGMA synchronous = off;")
        self._conn.executescript(_SCRATCH_SCHEMA)
        self.tables = _Tables(self._conn, postgres=False)

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()
        self._dir.cleanup()


def _write(t: _Tables, rows: _Rows, *, full: bool) -> int:
    """Write a batch's rows; with ``full``, the Casbin lines, audit and change log too.

    Returns the change log's head when it wrote entries to it, else 0.
    """
    t.insert(
        "users", "id, email, name, locale, password_hash, email_verified, created_at", rows.users
    )
    t.execute_many(
        "UPDATE users SET name = ?, locale = ?, email_verified = ? WHERE id = ?",
        rows.user_updates,
    )
    t.insert("areas", "id, name, owner_id, created_at", rows.areas)
    t.insert("area_keys", "key, area_id", rows.keys)
    t.execute_many("UPDATE areas SET name = ? WHERE id = ?", rows.area_updates)
    t.insert(
        "grants",
        "area_id, user_id, role, permissions, granted_by, invitation_id, version,"
        " created_at, updated_at, valid_until",
        rows.grants,
    )
    for update in rows.grant_updates:  # rare: one statement each, so a lost race is seen
        changed = t.conn.cursor()
        try:
            changed.execute(
                "UPDATE grants SET permissions = ?, version = ?, updated_at = ?, valid_until = ?"
                " WHERE area_id = ? AND user_id = ? AND version = ?".replace("?", t.mark),
                update,
            )
            if changed.rowcount != 1:
                if full:
                    raise peewee.IntegrityError("a grant was changed while it was imported")
                # A check pass: the grant is stored below the scratch tables. Put what this
                # update makes of it there, so later batches see it as updated.
                permissions, version, at, valid_until, area_id, user_id, _ = update
                t.insert(
                    "grants",
                    "area_id, user_id, role, permissions, version, updated_at, valid_until",
                    [(area_id, user_id, _DELEGATE, permissions, version, at, valid_until)],
                )
        finally:
            changed.close()
    t.execute_many(
        "UPDATE invitations SET status = 'expired', updated_at = ?, token_hash = NULL WHERE id = ?",
        rows.expired,
    )
    t.insert(
        "invitations",
        "id, area_id, email, permissions, invited_by, status, token_hash, expires_at,"
        " created_at, updated_at, sends",
        rows.invitations,
    )
    t.execute_many(
        "UPDATE invitations SET permissions = ?, invited_by = ?, expires_at = ?,"
        " updated_at = ? WHERE id = ?",
        rows.invitation_updates,
    )
    if not full:
        return 0
    now = _now()
    t.execute_many(
        "UPDATE oauth_refresh_tokens SET revoked_at = ?"
        " WHERE user_id = ? AND area_id = ? AND revoked_at IS NULL",
        [(now, user, area) for user, area in rows.unlinked],
    )
    t.execute_many(
        "DELETE FROM casbin_rule WHERE ptype = 'g' AND v0 = ? AND v2 = ?",
        [(f"user:{user}", f"area:{area}") for user, area in rows.unlinked],
    )
    t.insert(
        "casbin_rule",
        "ptype, v0, v1, v2, v3, v4, v5",
        # v3: the grant's end. Sorted by user, the order of the v0 index: the batch's rows
        # then share pages of it instead of landing on one page each (users are spread
        # over it). The unique index leads with the area, whose rows a batch holds together.
        # No ON CONFLICT: a pair's g lines are written only with its grant row, inserted or
        # updated above (its old lines deleted just before), so none can be there already;
        # PostgreSQL's speculative insertion would cost a third of the insert.
        sorted(rows.links),
    )
    audit = "area_id, actor_id, action, target, before, after, at, policy_hash"
    # Most imports go where no webhook is registered: then one probe a batch is all.
    if rows.audit and t.execute("SELECT 1 FROM webhook_endpoints LIMIT 1"):
        _publish(t, rows.audit, t.insert_ids("audit_events", audit, rows.audit))
    else:
        t.insert("audit_events", audit, rows.audit)
    if not rows.changes:
        return 0
    if t.postgres:
        # As PeeweeStore does: versions commit in the order they are numbered.
        t.execute("SELECT pg_advisory_xact_lock(?)", (CHANGE_LOCK_KEY,))
    t.insert("policy_changes", "domain, subject, roles, at, valid_until", rows.changes)
    head = int(t.execute("SELECT MAX(version) FROM policy_changes")[0][0])
    if t.postgres:
        t.execute("SELECT pg_notify(?, ?)", (CHANGE_CHANNEL, str(head)))
    return head


def _publish(t: _Tables, audit: list[tuple[Any, ...]], ids: list[int]) -> None:
    """Queue the batch's audit events (rows as _Batch._audit makes them, stored as ``ids``)
    for the endpoints that receive them, as PeeweeWebhookStore.publish does each event:
    the endpoints of all the batch's areas and the service-wide ones in one query (a few,
    for many areas), then the event rows and the delivery rows in bulk."""
    endpoints: dict[str, tuple[str | None, str | None]] = {}
    for part in _chunks(sorted({row[0] for row in audit})):
        marks = ",".join("?" * len(part))
        found = t.execute(
            "SELECT id, area_id, event_types FROM webhook_endpoints"
            f" WHERE area_id IS NULL OR area_id IN ({marks})",
            part,
        )
        endpoints.update((ident, (area_id, types)) for ident, area_id, types in found)
    by_area: dict[str | None, list[tuple[str, str | None]]] = {}
    for ident, (area_id, types) in sorted(endpoints.items()):
        by_area.setdefault(area_id, []).append((ident, types))
    everywhere = by_area.get(None, [])
    now = _now()
    events: list[tuple[Any, ...]] = []
    targets: list[tuple[list[str], datetime]] = []  # each event's receivers and time
    for row, audit_id in zip(audit, ids, strict=True):
        area_id, actor_id, action, target, before, after, at, _ = row
        kind = event_type(action)
        receivers = [
            ident for ident, types in by_area.get(area_id, []) + everywhere if receives(types, kind)
        ]
        if not receivers:
            continue
        event = AuditEvent(area_id, actor_id, action, target,
                           before and json.loads(before), after and json.loads(after),
                           datetime.fromisoformat(at))  # fmt: skip
        values = event_row(event, audit_id, now)
        events.append(tuple(values[c] for c in EVENT_COLUMNS))
        targets.append((receivers, event.at))
    if not events:
        return
    event_ids = t.insert_ids("webhook_events", ", ".join(EVENT_COLUMNS), events)
    deliveries = [
        tuple(values[c] for c in DELIVERY_COLUMNS)
        for event_id, (receivers, at) in zip(event_ids, targets, strict=True)
        for values in (delivery_row(event_id, ident, at) for ident in receivers)
    ]
    t.insert("webhook_deliveries", ", ".join(DELIVERY_COLUMNS), deliveries)


# -- export -------------------------------------------------------------------------------------


def export_records(
    db: peewee.Database, out: IO[str], fmt: str = "jsonl", now: datetime | None = None
) -> Counter[str]:
    """Write every user, area, delegate grant and open invitation, from one snapshot.

    Streams each table in id order (the same database gives the same bytes). Returns how
    many records of each kind were written.
    """
    writer = RecordWriter(out, fmt)
    counts: Counter[str] = Counter()
    at = now or _now()
    postgres = is_postgres(db)
    with db.connection_context():
        if postgres:
            tx = db.atomic(isolation_level="REPEATABLE READ")
        else:
            tx = db.atomic(lock_type="DEFERRED")  # a read: never take the write lock
        with tx:
            conn = db.connection()
            for kind, sql, params, shape in _EXPORTS:
                for row in _stream(conn, postgres, sql, params(at)):
                    writer.write(shape(row))
                    counts[kind] += 1
    return counts


def _stream(conn: Any, postgres: bool, sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
    # PostgreSQL: a server-side cursor, so that the rows are not all held at once (WITH
    # HOLD: psycopg2 sees peewee's connection in autocommit, its BEGIN is peewee's own).
    cur = conn.cursor("delegauth_export", withhold=True) if postgres else conn.cursor()
    try:
        cur.execute(sql.replace("?", "%s") if postgres else sql, params)
        while rows := cur.fetchmany(5000):
            yield from rows
    finally:
        cur.close()


def _user_record(r: Any) -> dict[str, Any]:
    return {
        "kind": "user",
        "id": r[0],
        "email": r[1],
        "name": r[2],
        "email_verified": bool(r[4]),
        "language": r[3],
    }


def _area_record(r: Any) -> dict[str, Any]:
    record = {"kind": "area", "id": r[0], "key": r[1], "name": r[2], "owner": r[3]}
    if r[1] is None:
        del record["key"]
    return record


def _grant_record(r: Any) -> dict[str, Any]:
    record = {"kind": "grant", "user": r[0], "area": r[1], "permissions": json.loads(r[2])}
    if r[3] is not None:
        record["valid_until"] = format_time(_when(r[3]))
    return record


def _invitation_record(r: Any) -> dict[str, Any]:
    return {
        "kind": "invitation",
        "area": r[0],
        "email": r[1],
        "permissions": json.loads(r[2]),
        "invited_by": r[3],
        "expires_at": format_time(_when(r[4])),
    }


_EXPORTS: list[tuple[str, str, Callable[[datetime], tuple[Any, ...]], Any]] = [
    (
        "user",
        "SELECT id, email, name, locale, email_verified FROM users ORDER BY id",
        lambda at: (),
        _user_record,
    ),
    (
        "area",
        "SELECT a.id, k.key, a.name, u.email FROM areas a JOIN users u ON u.id = a.owner_id"
        " LEFT JOIN area_keys k ON k.area_id = a.id ORDER BY a.id",
        lambda at: (),
        _area_record,
    ),
    (
        "grant",
        "SELECT u.email, g.area_id, g.permissions, g.valid_until FROM grants g"
        " JOIN users u ON u.id = g.user_id"
        f" WHERE g.role = '{Role.DELEGATE}' ORDER BY g.area_id, g.user_id",
        lambda at: (),
        _grant_record,
    ),
    (
        "invitation",
        "SELECT i.area_id, i.email, i.permissions, u.email, i.expires_at FROM invitations i"
        f" JOIN users u ON u.id = i.invited_by WHERE i.status = '{_PENDING}'"
        " AND i.expires_at > ? ORDER BY i.area_id, i.email",
        lambda at: (at,),
        _invitation_record,
    ),
]
