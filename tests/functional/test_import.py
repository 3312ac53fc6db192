"""delegauth import and export: every bad line reported, dry run and strict write nothing,
idempotent, atomic resumable batches that running Deciders follow, and a lossless round trip.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import io
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee
import pytest

from delegauth.domain.transfer import BadLine
from delegauth.policy.bundle import PolicyBundle, load_bundle
from delegauth.policy.decider import Decider
from delegauth.storage import transfer
from delegauth.storage.db import open_database
from delegauth.storage.feed import PeeweePolicyFeed
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import migrate
from delegauth.storage.transfer import BulkImporter, ImportSummary, export_records
from tests.conftest import POLICIES, _fresh_pg

TABLES = (
    "users",
    "areas",
    "area_keys",
    "grants",
    "casbin_rule",
    "audit_events",
    "policy_changes",
    "invitations",
)
U = {n: f"u_{c * 26}" for n, c in (("ana", "a"), ("bo", "b"), ("cy", "c"), ("dee", "d"))}
AREA = "a_" + "q" * 26


def _lines(*records: dict[str, Any] | str) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


GOOD = _lines(
    {"kind": "user", "id": U["ana"], "email": "Ana@Example.com", "name": "Ana", "language": "es",
     "email_verified": True},
    {"kind": "user", "id": U["bo"], "email": "bo@example.com", "name": "Bo"},
    {"kind": "user", "id": U["cy"], "email": "cy@example.com", "email_verified": True},
    {"kind": "area", "id": AREA, "key": "cust-1", "name": "Acme", "owner": "ana@example.com"},
    {"kind": "area", "key": "cust-2", "name": "Beta", "owner": U["bo"]},
    {"kind": "grant", "user": "bo@example.com", "area": "cust-1",
     "permissions": ["invoices", "tickets"]},
    {"kind": "grant", "user": "CY@example.com", "area": AREA, "permissions": "all"},
    {"kind": "grant", "user": U["cy"], "area": "cust-2", "permissions": ["bundle:billing"]},
    {"kind": "invitation", "area": "cust-1", "email": "dee@example.com",
     "permissions": ["domains"], "expires_at": "2099-01-01T00:00:00Z"},
)  # fmt: skip

BAD = [
    ("{not json", "not valid JSON"),
    ({"kind": "robot"}, "kind must be one of"),
    ({"kind": ["grant"]}, "kind must be one of"),
    ({"kind": "user", "email": "ｆｕｌｌ@example.com"}, "compatibility characters"),
    ({"kind": "user", "email": "eve@example.com", "language": "fr"}, "language must be"),
    ({"kind": "user", "email": "eve@example.com", "nmae": "typo"}, "unknown field(s) nmae"),
    ({"kind": "grant", "user": "bo@example.com", "area": "cust-1", "permissions": ["root"]},
     "unknown permission: root"),
    ({"kind": "grant", "user": "bo@example.com", "area": "cust-1", "permissions": "all",
      "valid_until": "2030-01-01T00:00:00"}, "needs a time zone"),
    ({"kind": "grant", "user": "nobody@example.com", "area": "cust-1", "permissions": "all"},
     "no such user: nobody@example.com"),
    ({"kind": "grant", "user": "bo@example.com", "area": "cust-9", "permissions": "all"},
     "no such area: cust-9"),
    ({"kind": "grant", "user": "ana@example.com", "area": "cust-1", "permissions": "all"},
     "owns the area"),
    ({"kind": "area", "key": "cust-1", "name": "Acme", "owner": "bo@example.com"},
     "cannot be changed"),
    ({"kind": "invitation", "area": "cust-1", "email": "bo@example.com", "permissions": "all"},
     "already a member"),
    ({"kind": "grant", "user": "late@example.com", "area": "cust-1", "permissions": "all"},
     "no such user: late@example.com"),
    ({"kind": "user", "email": "late@example.com"}, None),  # good: line 24
]  # fmt: skip


def _mixed() -> tuple[str, dict[int, str]]:
    """GOOD, then the BAD lines: the file and {line number: expected reason}."""
    text = GOOD
    expected: dict[int, str] = {}
    number = GOOD.count("\n")
    for record, reason in BAD:
        number += 1
        text += _lines(record)
        if reason is not None:
            expected[number] = reason
    return text, expected


@pytest.fixture
def bundle() -> PolicyBundle:
    return load_bundle(POLICIES)


class Target:
    """One empty, migrated database, and ways to look at it."""

    def __init__(self, url: str, bundle: PolicyBundle) -> None:
        self.url = url
        self.db = open_database(url)
        database_proxy.initialize(self.db)
        migrate(self.db)
        self.bundle = bundle

    def importer(self, **kw: Any) -> BulkImporter:
        return BulkImporter(self.db, self.bundle.catalogue, **kw)

    def run(self, path: Path, ids: Any = None, **kw: Any) -> tuple[ImportSummary, list[BadLine]]:
        bad: list[BadLine] = []
        importer = self.importer() if ids is None else self.importer(ids=ids)
        summary = importer.run(path, on_bad=bad.append, **kw)
        return summary, bad

    def counts(self) -> dict[str, int]:
        with self.db.connection_context():
            return {
                t: int(self.db.execute_sql(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in TABLES
            }

    def head(self) -> int:
        with self.db.connection_context():
            sql = "SELECT COALESCE(MAX(version), 0) FROM policy_changes"
            return int(self.db.execute_sql(sql).fetchone()[0])

    def rules(self) -> list[tuple[str, ...]]:
        with self.db.connection_context():
            sql = "SELECT ptype, v0, v1, v2 FROM casbin_rule ORDER BY ptype, v0, v1, v2"
            return [tuple(r) for r in self.db.execute_sql(sql).fetchall()]

    def export(self, fmt: str = "jsonl") -> str:
        out = io.StringIO()
        export_records(self.db, out, fmt)
        return out.getvalue()

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()
        if isinstance(self.db, peewee.PostgresqlDatabase):
            self.db.close_all()  # type: ignore[attr-defined]


@pytest.fixture
def fresh(database_url: str, tmp_path: Path, bundle: PolicyBundle) -> Iterator[Any]:
    """fresh(): an empty database on the same engine (PostgreSQL: the test database, emptied)."""
    made: list[Target] = []

    def make() -> Target:
        if database_url.startswith("postgres"):
            for old in made:
                old.close()
            _fresh_pg().close_all()
            url = database_url
        else:
            url = f"sqlite:///{tmp_path}/db{len(made)}.sqlite3"
        made.append(Target(url, bundle))
        return made[-1]

    yield make
    for target in made:
        target.close()


def _counting_ids() -> Any:
    """An id factory numbering ids from 0: the same lines get the same ids in each run."""
    numbers = itertools.count()
    letters = str.maketrans("01234567", "abcdefgh")
    return lambda kind: f"{kind}_{next(numbers):026o}".translate(letters)


def _file(tmp_path: Path, text: str, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- validation ----------------------------------------------------------------------------------


def test_a_dry_run_reports_every_bad_line_and_writes_nothing(fresh: Any, tmp_path: Path) -> None:
    target = fresh()
    text, expected = _mixed()
    summary, bad = target.run(_file(tmp_path, text), dry_run=True, batch_size=4)
    assert {b.line for b in bad} == set(expected), bad
    for b in bad:
        assert expected[b.line] in b.reason, (b.line, b.reason)
    assert summary.bad == len(expected) and not summary.written
    assert summary.outcomes["grant created"] == 3 and summary.outcomes["user created"] == 4
    assert set(target.counts().values()) == {0}


def test_strict_writes_nothing_when_any_line_is_bad(fresh: Any, tmp_path: Path) -> None:
    target = fresh()
    text, expected = _mixed()
    summary, bad = target.run(_file(tmp_path, text), strict=True, batch_size=4)
    assert {b.line for b in bad} == set(expected)
    assert not summary.written
    assert set(target.counts().values()) == {0}
    # The same file without its bad lines goes in under --strict.
    summary, bad = target.run(_file(tmp_path, GOOD, "good.jsonl"), strict=True)
    assert bad == [] and summary.written
    assert target.counts()["grants"] == 5  # two owners, three delegates


def test_without_strict_the_good_lines_are_written(
    fresh: Any, tmp_path: Path, bundle: PolicyBundle
) -> None:
    target = fresh()
    text, expected = _mixed()
    summary, bad = target.run(_file(tmp_path, text), batch_size=4)
    assert {b.line for b in bad} == set(expected) and summary.written
    counts = target.counts()
    assert counts["users"] == 4 and counts["areas"] == 2 and counts["invitations"] == 1
    # One change-log entry an area and batch: cust-1 in batch 1, cust-1 and cust-2 in batch 2.
    assert counts["grants"] == 5 and counts["policy_changes"] == 3
    decider = Decider(bundle, PeeweePolicyFeed(target.db), max_staleness=3600)
    decider.sync()
    assert decider.decide(f"user:{U['bo']}", f"area:{AREA}", "invoice", "pay")
    assert not decider.decide(f"user:{U['bo']}", f"area:{AREA}", "domain", "read")
    assert decider.decide(f"user:{U['cy']}", f"area:{AREA}", "domain", "read")  # all


# -- idempotence and updates ---------------------------------------------------------------------


def test_importing_the_same_file_again_changes_nothing(fresh: Any, tmp_path: Path) -> None:
    target = fresh()
    path = _file(tmp_path, GOOD)
    first, _ = target.run(path)
    counts, head, exported = target.counts(), target.head(), target.export()
    second, bad = target.run(path)
    assert bad == [] and second.written
    assert set(second.outcomes) == {f"{k} unchanged" for k in ("user", "area", "grant",
                                                                "invitation")}  # fmt: skip
    assert target.counts() == counts and target.head() == head and target.export() == exported
    assert sum(first.outcomes.values()) == sum(second.outcomes.values())


def test_a_changed_grant_is_updated_with_its_rules_audit_and_change_log(
    fresh: Any, tmp_path: Path
) -> None:
    target = fresh()
    target.run(_file(tmp_path, GOOD))
    before = target.counts()
    narrowed = GOOD.replace('["invoices", "tickets"]', '["tickets"]')
    summary, bad = target.run(_file(tmp_path, narrowed, "narrowed.jsonl"))
    assert bad == [] and summary.outcomes["grant updated"] == 1
    after = target.counts()
    assert after["casbin_rule"] == before["casbin_rule"] - 1
    assert after["policy_changes"] == before["policy_changes"] + 1
    assert after["audit_events"] == before["audit_events"] + 1
    with target.db.connection_context():
        rules = target.db.execute_sql(
            "SELECT v1 FROM casbin_rule WHERE v0 = ? AND v2 = ?".replace(
                "?", "%s" if target.url.startswith("postgres") else "?"
            ),
            (f"user:{U['bo']}", f"area:{AREA}"),
        ).fetchall()
    assert [r[0] for r in rules] == ["perm:tickets"]


def test_strict_and_dry_runs_update_a_stored_grant_as_the_write_does(
    fresh: Any, tmp_path: Path
) -> None:
    # The check pass of --strict (and --dry-run) plans updates to grants stored before the
    # run; it used to fail on them ("a grant was changed while it was imported").
    target = fresh()
    target.run(_file(tmp_path, GOOD))
    bo = {"kind": "grant", "user": "bo@example.com", "area": "cust-1", "permissions": ["quotes"]}
    changed = GOOD.replace('["invoices", "tickets"]', '["tickets"]') + _lines(bo, bo)
    path = _file(tmp_path, changed, "changed.jsonl")
    checked, bad = target.run(path, dry_run=True, batch_size=5)
    assert bad == [] and not checked.written
    summary, bad = target.run(path, strict=True, batch_size=5)
    assert bad == [] and summary.written
    # Line 11, in a batch of its own, saw line 10's update in both passes: unchanged.
    assert checked.outcomes == summary.outcomes
    assert summary.outcomes["grant updated"] == 2 and summary.outcomes["grant unchanged"] == 3
    assert (f"user:{U['bo']}", "perm:quotes", f"area:{AREA}") in {r[1:] for r in target.rules()}


def _sql(target: Target, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with target.db.connection_context():
        mark = "%s" if target.url.startswith("postgres") else "?"
        return list(target.db.execute_sql(sql.replace("?", mark), params).fetchall())


def _audit(target: Target, action: str, *areas: str) -> list[tuple[str, str, Any, Any]]:
    """(area, target, before, after) of each audit event of ``action`` in ``areas``, in order.

    Only the test's own areas: the database may be shared with another writer (bench/import.py
    pointed at the tests' PostgreSQL database imports areas of its own, with their events).
    """
    rows = _sql(
        target,
        "SELECT area_id, target, before, after FROM audit_events WHERE action = ?"
        f" AND area_id IN ({', '.join('?' * len(areas))}) ORDER BY id",
        (action, *areas),
    )
    return [(a, t, b and json.loads(b), json.loads(after)) for a, t, b, after in rows]


def test_each_batch_audits_its_grants_in_one_event_per_area(fresh: Any, tmp_path: Path) -> None:
    target = fresh()
    target.run(_file(tmp_path, GOOD))  # one batch
    bo, cy = f"user:{U['bo']}", f"user:{U['cy']}"
    [(area2,)] = _sql(target, "SELECT area_id FROM area_keys WHERE key = ?", ("cust-2",))
    events = _audit(target, "grants.imported", AREA, area2)
    assert events == [
        (AREA, f"area:{AREA}", None, {
            bo: {"role": "delegate", "permissions": ["invoices", "tickets"]},
            cy: {"role": "delegate", "permissions": "all"}}),
        (area2, f"area:{area2}", None, {
            cy: {"role": "delegate", "permissions": ["affiliates", "invoices", "quotes"]}}),
    ]  # fmt: skip
    narrowed = GOOD.replace('["invoices", "tickets"]', '["tickets"]')
    target.run(_file(tmp_path, narrowed, "narrowed.jsonl"))
    assert _audit(target, "grants.imported", AREA, area2)[2:] == [
        (AREA, f"area:{AREA}",
         {bo: {"role": "delegate", "permissions": ["invoices", "tickets"]}},
         {bo: {"role": "delegate", "permissions": ["tickets"]}}),
    ]  # fmt: skip


def test_two_lines_for_one_grant_in_a_batch_leave_the_last_ones_rules(
    fresh: Any, tmp_path: Path, bundle: PolicyBundle
) -> None:
    target = fresh()
    again = _lines(
        {"kind": "grant", "user": "bo@example.com", "area": "cust-1", "permissions": ["domains"]},
        {"kind": "grant", "user": "bo@example.com", "area": "cust-1", "permissions": ["quotes"]},
    )
    summary, bad = target.run(_file(tmp_path, GOOD + again))
    assert bad == [] and summary.outcomes["grant updated"] == 2
    with target.db.connection_context():
        rules = target.db.execute_sql(
            "SELECT v1 FROM casbin_rule WHERE v0 = %s AND v2 = %s".replace(
                "%s", "%s" if target.url.startswith("postgres") else "?"
            ),
            (f"user:{U['bo']}", f"area:{AREA}"),
        ).fetchall()
    assert [r[0] for r in rules] == ["perm:quotes"]
    decider = Decider(bundle, PeeweePolicyFeed(target.db), max_staleness=3600)
    decider.sync()
    bo, area = f"user:{U['bo']}", f"area:{AREA}"
    assert decider.decide(bo, area, "quote", "read")
    assert not decider.decide(bo, area, "domain", "read")
    assert not decider.decide(bo, area, "invoice", "pay")
    after = _audit(target, "grants.imported", AREA)[0][3]
    assert after[bo] == {"role": "delegate", "permissions": ["quotes"]}


# -- batches: atomic, resumable, followed by running Deciders ------------------------------------


def test_an_interrupted_import_resumes_to_the_state_of_an_uninterrupted_one(
    fresh: Any, tmp_path: Path
) -> None:
    path = _file(tmp_path, GOOD)
    target = fresh()

    def crash(batch: int) -> None:
        if batch == 3:
            raise KeyboardInterrupt  # after batch 3's rows were written, before its commit

    with pytest.raises(KeyboardInterrupt):
        target.importer(ids=_counting_ids()).run(path, batch_size=2, before_commit=crash)
    partial = target.counts()
    assert partial["users"] == 3 and partial["areas"] == 1  # batches 1 and 2 only: lines 1-4
    assert partial["grants"] == 1 and partial["policy_changes"] == 1
    summary, bad = target.run(path, ids=_counting_ids(), batch_size=2)
    assert bad == [] and summary.resumed_after == 4 and summary.lines == 5
    resumed = (target.counts(), target.export())

    again = fresh()
    again.run(path, ids=_counting_ids(), batch_size=2)
    assert (again.counts(), again.export()) == resumed


# Imports FILE into URL in batches of 3 lines, and stops inside batch 3 (its rows written,
# not committed) after creating READY, until it is killed.
_KILLED_MID_BATCH = """
import sys, time
from pathlib import Path
from delegauth.policy.bundle import load_bundle
from delegauth.storage.db import open_database
from delegauth.storage.transfer import BulkImporter

url, path, ready, policies = sys.argv[1:5]

def hold(batch):
    if batch == 3:
        Path(ready).touch()
        time.sleep(120)

catalogue = load_bundle(policies).catalogue
BulkImporter(open_database(url), catalogue).run(path, batch_size=3, before_commit=hold)
"""


def test_an_import_killed_mid_batch_resumes_to_the_state_of_an_uninterrupted_one(
    fresh: Any, tmp_path: Path
) -> None:
    other = "a_" + "r" * 26
    path = _file(tmp_path, _lines(
        *({"kind": "user", "id": U[n], "email": f"{n}@example.com"} for n in U),
        {"kind": "area", "id": AREA, "name": "Acme", "owner": "ana@example.com"},
        {"kind": "area", "id": other, "name": "Beta", "owner": U["bo"]},
        {"kind": "grant", "user": "bo@example.com", "area": AREA, "permissions": ["invoices"]},
        {"kind": "grant", "user": "cy@example.com", "area": AREA, "permissions": "all"},
        {"kind": "grant", "user": U["dee"], "area": AREA, "permissions": ["tickets"]},
        {"kind": "grant", "user": "ana@example.com", "area": other, "permissions": ["quotes"]},
        {"kind": "grant", "user": "cy@example.com", "area": other, "permissions": ["invoices"]},
        {"kind": "grant", "user": "bo@example.com", "area": AREA, "permissions": ["domains"]},
    ))  # fmt: skip
    target = fresh()
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", _KILLED_MID_BATCH, target.url, str(path), str(ready), POLICIES]
    with subprocess.Popen(cmd, env=env) as proc:
        for _ in range(600):  # until batch 3 is written (or the child ended early)
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), "the import did not reach batch 3"
        proc.kill()
    partial = target.counts()
    assert partial["users"] == 4 and partial["areas"] == 2  # batches 1 and 2: lines 1-6
    assert partial["grants"] == 2 and partial["policy_changes"] == 2
    summary, bad = target.run(path, batch_size=3)
    assert bad == [] and summary.resumed_after == 6 and summary.lines == 6
    resumed = (target.counts(), target.export(), target.rules())

    again = fresh()
    again.run(path, batch_size=3)
    assert (again.counts(), again.export(), again.rules()) == resumed
    assert resumed[0]["grants"] == 7 and resumed[0]["policy_changes"] == 5  # an area a batch


def test_decisions_follow_each_committed_batch(
    fresh: Any, tmp_path: Path, bundle: PolicyBundle
) -> None:
    target = fresh()
    people = GOOD.split("\n")[:5]  # users and area cust-1 (AREA)
    target.run(_file(tmp_path, "\n".join(people) + "\n", "people.jsonl"))
    decider = Decider(bundle, PeeweePolicyFeed(target.db), max_staleness=3600)
    decider.sync()
    bo, area = f"user:{U['bo']}", f"area:{AREA}"
    assert not decider.decide(bo, area, "invoice", "pay")  # the area is loaded now
    grants = _lines(
        {"kind": "grant", "user": "bo@example.com", "area": AREA, "permissions": ["invoices"]},
        {"kind": "grant", "user": "cy@example.com", "area": AREA, "permissions": ["tickets"]},
        {"kind": "grant", "user": "bo@example.com", "area": AREA, "permissions": ["tickets"]},
    )
    seen = []

    def after(batch: int) -> None:
        decider.sync()
        seen.append(
            (
                decider.decide(bo, area, "invoice", "pay"),
                decider.decide(f"user:{U['cy']}", area, "ticket", "read"),
            )
        )

    target.importer().run(_file(tmp_path, grants, "grants.jsonl"), batch_size=1, after_commit=after)
    assert seen == [(True, False), (True, True), (False, True)]


def test_each_batch_sees_what_the_batch_before_it_made(fresh: Any, tmp_path: Path) -> None:
    """Batches of one line, each using what the line before it made: users, an area, a
    grant, that grant changed, an invitation by its holder. On PostgreSQL each batch is
    planned while the one before it is still being written (_Pipeline): it must plan as if
    that one had committed, and give what one batch of every line gives."""
    text = _lines(
        {"kind": "user", "id": U["ana"], "email": "ana@example.com"},
        {"kind": "user", "id": U["bo"], "email": "bo@example.com"},
        {"kind": "area", "id": AREA, "key": "cust-1", "name": "Acme", "owner": "ana@example.com"},
        {"kind": "grant", "user": "bo@example.com", "area": "cust-1", "permissions": ["invoices"]},
        {"kind": "grant", "user": "bo@example.com", "area": "cust-1",
         "permissions": ["invoices", "users"]},
        {"kind": "invitation", "area": "cust-1", "email": "dee@example.com",
         "permissions": ["invoices"], "invited_by": "bo@example.com",
         "expires_at": "2099-01-01T00:00:00Z"},
    )  # fmt: skip
    path = _file(tmp_path, text)
    whole = fresh()
    summary, bad = whole.run(path, ids=_counting_ids())
    assert bad == [] and summary.batches == 1
    expected = whole.export()

    target = fresh()
    summary, bad = target.run(path, ids=_counting_ids(), batch_size=1)
    assert bad == [] and summary.batches == 6
    assert summary.outcomes == {
        "user created": 2, "area created": 1, "grant created": 1, "grant updated": 1,
        "invitation created": 1,
    }  # fmt: skip
    assert target.export() == expected
    bo = f"user:{U['bo']}"
    # The change's audit event says what the grant was: the batch before made it.
    assert [(before, after) for _, _, before, after in _audit(target, "grants.imported", AREA)] == [
        (None, {bo: {"role": "delegate", "permissions": ["invoices"]}}),
        ({bo: {"role": "delegate", "permissions": ["invoices"]}},
         {bo: {"role": "delegate", "permissions": ["invoices", "users"]}}),
    ]  # fmt: skip
    # Again: the grant goes back to its first line's permissions, then to its second's.
    summary, bad = target.run(path, batch_size=1)
    assert bad == [] and summary.outcomes == {
        "user unchanged": 2, "area unchanged": 1, "grant updated": 2, "invitation unchanged": 1,
    }  # fmt: skip
    assert target.export() == expected


def test_postgres_plans_each_batch_while_the_batch_before_it_is_written(
    fresh: Any, tmp_path: Path
) -> None:
    """The first batch's transaction waits, before it commits, until the second batch is
    being planned: which happens only when planning and writing overlap."""
    target = fresh()
    if not target.url.startswith("postgres"):
        pytest.skip("SQLite writes in this process: one batch after the other")
    planning = [0]
    second = threading.Event()

    def clock() -> datetime:
        planning[0] += 1  # once a batch, as its planning starts
        if planning[0] == 2:
            second.set()
        return datetime.now(UTC).replace(tzinfo=None)

    overlapped = []

    def hold(batch: int) -> None:
        if batch == 1:
            overlapped.append(second.wait(10))

    importer = target.importer(clock=clock)
    summary = importer.run(_file(tmp_path, _many_grants(20)), batch_size=10, before_commit=hold)
    assert overlapped == [True]
    assert summary.outcomes["grant created"] == 20 and summary.batches == 5
    assert target.counts()["grants"] == 21  # the owner's and the 20 delegates'

    # Memory stays flat: only the batch being written and the one being planned are held,
    # not every batch of the run (each batch's lookups go through the one before it).
    alive = []

    def count(batch: int) -> None:
        if batch == 30:
            gc.collect()
            alive.append(sum(isinstance(o, transfer._Batch) for o in gc.get_objects()))

    flat = fresh()
    path = _file(tmp_path, _many_grants(20), "flat.jsonl")
    summary = flat.importer().run(path, batch_size=1, before_commit=count)
    assert summary.batches == 42 and 1 <= alive[0] <= 3

    # The write of a batch fails: nothing planned after it is written, and the error is the
    # caller's; the run resumes after the last batch that committed.
    def fail(batch: int) -> None:
        if batch == 2:
            raise RuntimeError("the disk is full")

    again = fresh()
    path = _file(tmp_path, _many_grants(20), "again.jsonl")
    with pytest.raises(RuntimeError, match="the disk is full"):
        again.importer().run(path, batch_size=10, before_commit=fail)
    assert again.counts()["users"] == 9  # batch 1: ana, her area and 8 delegates
    summary, bad = again.run(path, batch_size=10)
    assert bad == [] and summary.resumed_after == 10
    assert again.counts()["grants"] == 21


def test_a_batch_logs_one_change_an_area_which_deciders_apply_whole(
    fresh: Any, tmp_path: Path, bundle: PolicyBundle
) -> None:
    """A batch's grants in one area make one change-log entry holding every subject's role
    set (an area with one subject in the batch: an ordinary entry); a Decider holding the
    area applies all of them at that entry's version."""
    target = fresh()
    people = GOOD.split("\n")[:5]  # users and area cust-1 (AREA)
    target.run(_file(tmp_path, "\n".join(people) + "\n", "people.jsonl"))
    decider = Decider(bundle, PeeweePolicyFeed(target.db), max_staleness=3600)
    decider.sync()
    bo, cy, area = f"user:{U['bo']}", f"user:{U['cy']}", f"area:{AREA}"
    assert not decider.decide(bo, area, "invoice", "pay")  # the area is loaded now
    before = target.counts()["policy_changes"]
    grants = _lines(
        {"kind": "grant", "user": "bo@example.com", "area": AREA, "permissions": ["invoices"]},
        {"kind": "grant", "user": "cy@example.com", "area": AREA, "permissions": ["tickets"],
         "valid_until": "2099-01-01T00:00:00Z"},
        {"kind": "grant", "user": "bo@example.com", "area": "cust-3", "permissions": "all"},
    )  # fmt: skip
    people = _lines({"kind": "area", "key": "cust-3", "name": "Gamma", "owner": "cy@example.com"})
    target.run(_file(tmp_path, people + grants, "grants.jsonl"))
    with target.db.connection_context():
        entries = target.db.execute_sql(
            "SELECT domain, subject, roles, valid_until FROM policy_changes"
            " WHERE version > 0 ORDER BY version"
        ).fetchall()[before:]
    cust3 = next(d for d, *_ in entries if d != area)
    assert [(d, s, json.loads(r), e or "") for d, s, r, e in entries] == [
        (cust3, "*", [[cy, ["role:owner"], ""], [bo, ["perm:all"], ""]], ""),
        (area, "*", [[bo, ["perm:invoices"], ""], [cy, ["perm:tickets"], "2099-01-01T00:00:00Z"]],
         ""),
    ]  # fmt: skip
    assert decider.sync() == 4  # the subjects of two entries
    assert decider.decide(bo, area, "invoice", "pay")
    assert decider.decide(cy, area, "ticket", "read")
    assert not decider.decide(cy, area, "invoice", "pay")


def _many_grants(count: int) -> str:
    """Ana's area cust-1 and ``count`` delegates, each granted there: users, then grants."""
    people = [
        {"kind": "user", "email": "ana@example.com"},
        {"kind": "area", "key": "cust-1", "name": "Acme", "owner": "ana@example.com"},
    ]
    people += [{"kind": "user", "email": f"d{n}@example.com"} for n in range(count)]
    grants = [
        {"kind": "grant", "user": f"d{n}@example.com", "area": "cust-1", "permissions": "all"}
        for n in range(count)
    ]
    return _lines(*people) + _lines(*grants)


def test_sqlite_sizes_batches_by_how_long_each_holds_the_write_lock(
    fresh: Any, tmp_path: Path
) -> None:
    """Without --batch, SQLite sizes each batch by the last one's write transaction: about
    lock_budget seconds, at most twice the last size, 1,000 to 50,000 lines. PostgreSQL
    (no single write lock) keeps 5,000. Every line is written either way."""
    path = _file(tmp_path, _many_grants(6000))  # 12,002 lines
    ticks = itertools.count()

    def timer() -> float:
        return float(next(ticks))  # each write transaction takes 1 s on this clock

    target = fresh()
    sizes: list[int] = []
    importer = target.importer(lock_budget=0.25, timer=timer)
    summary = importer.run(path, after_commit=lambda n: sizes.append(target.counts()["users"]))
    assert summary.written and summary.outcomes["grant created"] == 6000
    if target.url.startswith("postgres"):
        assert summary.batches == 3  # 5,000 + 5,000 + 2,002
        return
    # 5,000 lines took 1 s: a quarter of that, 1,250; then 1,000 (the floor) each.
    assert summary.batches == 2 + -(-(12_002 - 5000 - 1250) // 1000)
    assert sizes[:2] == [5000 - 2 + 1, 6001]  # users committed after each of the first two
    again = fresh()
    summary = again.importer(lock_budget=100.0, timer=timer).run(path)
    assert summary.batches == 2  # 5,000, then the 7,002 left (up to 10,000: twice the last)
    # The same rows, but for the grants.imported audit events and the change-log entries:
    # one an area and batch.
    ignored = {"audit_events": 0, "policy_changes": 0}
    assert {**again.counts(), **ignored} == {**target.counts(), **ignored}


def test_sqlite_checkpoints_less_often_during_an_import_and_once_at_its_end(
    fresh: Any, tmp_path: Path
) -> None:
    """SQLite: the importer's connection checkpoints the WAL only past _WAL_PAGES pages (a
    request's connection: 1,000), and the import ends with a checkpoint of its own, so that
    a running server's next commit does not copy what it left. A server's connection held
    open keeps the WAL (the last connection to close would checkpoint it anyway)."""
    target = fresh()
    if target.url.startswith("postgres"):
        pytest.skip("SQLite's WAL")
    path = _file(tmp_path, _many_grants(3000))
    file = target.url.removeprefix("sqlite:///")
    server = open_database(target.url)  # a running server's connection, open throughout
    server.connect()
    try:
        before = os.path.getsize(file)
        seen: list[int] = []

        def during(_batch: int) -> None:
            seen.append(int(target.db.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0]))

        summary = target.importer().run(path, batch_size=1000, before_commit=during)
        assert summary.outcomes["grant created"] == 3000
        assert seen == [20_000] * summary.batches
        # The imported pages were copied from the WAL into the database file.
        assert os.path.getsize(file) > before + 500_000
        assert int(server.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0]) == 1000
    finally:
        server.close()


def test_a_batch_of_one_empty_text_and_nulls_are_stored_as_they_were(
    fresh: Any, tmp_path: Path
) -> None:
    """PostgreSQL takes a column of values as one joined text: a column of one empty
    text (not an empty column), None (not a text) and what an array literal would have to
    quote (quotes, braces, a backslash, the word NULL) arrive as they were, and are found
    again by the next import."""
    target = fresh()
    odd = 'Bo "B", {b} \\ NULL'
    one = _file(tmp_path, _lines({"kind": "user", "email": "ana@example.com"}), "one.jsonl")
    summary, bad = target.run(one, batch_size=1)
    assert bad == [] and summary.outcomes["user created"] == 1
    more = _file(
        tmp_path,
        _lines(
            {"kind": "area", "key": "cust-1", "name": "Acme", "owner": "ana@example.com"},
            {"kind": "user", "email": "bo@example.com", "name": odd},
            {"kind": "grant", "user": "bo@example.com", "area": "cust-1", "permissions": "all"},
        ),
        "more.jsonl",
    )
    assert target.run(more)[1] == []
    with target.db.connection_context():
        rows = target.db.execute_sql(
            "SELECT u.email, u.name, g.role, g.valid_until, g.granted_by FROM users u"
            " JOIN grants g ON g.user_id = u.id ORDER BY u.email"
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("ana@example.com", "", "owner", None, None),
        ("bo@example.com", odd, "delegate", None, None),
    ]
    for path in (one, more):
        summary, bad = target.run(path)
        assert bad == [] and set(summary.outcomes) <= {"user unchanged", "area unchanged",
                                                        "grant unchanged"}  # fmt: skip


# -- export --------------------------------------------------------------------------------------


def test_a_round_trip_is_lossless(fresh: Any, tmp_path: Path) -> None:
    first = fresh()
    first.run(_file(tmp_path, GOOD))
    exported = first.export()
    assert exported.count('"kind":"grant"') == 3 and '"key":"cust-2"' in exported
    as_csv = first.export("csv")
    second = fresh()
    summary, bad = second.run(_file(tmp_path, exported, "export.jsonl"), strict=True)
    assert bad == [] and summary.written
    assert second.export() == exported
    third = fresh()
    summary, bad = third.run(_file(tmp_path, as_csv, "export.csv"), strict=True)
    assert bad == []
    assert third.export() == exported and third.export("csv") == as_csv


def test_grants_that_end_round_trip_and_decide_until_their_end(
    fresh: Any, tmp_path: Path, bundle: PolicyBundle
) -> None:
    """valid_until imports (whole seconds, from any offset), exports as UTC and imports
    again to the same; its g lines carry the end, so decisions deny from that instant."""
    ending = GOOD.replace(
        '"permissions": "all"}',
        '"permissions": "all", "valid_until": "2031-06-01T12:00:00.900+02:00"}',
    )
    assert ending != GOOD
    first = fresh()
    summary, bad = first.run(_file(tmp_path, ending), strict=True)
    assert bad == [] and summary.written
    exported = first.export()
    assert '"valid_until":"2031-06-01T10:00:00.000000Z"' in exported
    assert exported.count("valid_until") == 1
    with first.db.connection_context():
        ends = first.db.execute_sql(
            "SELECT v3 FROM casbin_rule WHERE ptype = 'g' AND v1 = 'perm:all'"
        ).fetchall()
    assert ends == [("2031-06-01T10:00:00Z",)]
    at = datetime(2031, 6, 1, 10, tzinfo=UTC).timestamp()
    now = [at - 1]
    decider = Decider(bundle, PeeweePolicyFeed(first.db), clock=lambda: now[0])
    decider.sync()
    cy, area = f"user:{U['cy']}", f"area:{AREA}"
    assert decider.decide(cy, area, "invoice", "read")
    now[0] = at
    assert not decider.decide(cy, area, "invoice", "read")
    second = fresh()
    summary, bad = second.run(_file(tmp_path, exported, "export.jsonl"), strict=True)
    assert bad == []
    assert second.export() == exported
    # Importing the same file again changes nothing; a new end updates the grant.
    summary, bad = second.run(_file(tmp_path, exported, "again.jsonl"), strict=True)
    assert summary.outcomes["grant unchanged"] == 3, summary.outcomes
    later = exported.replace("2031-06-01T10:00:00.000000Z", "2032-01-01T00:00:00Z")
    summary, bad = second.run(_file(tmp_path, later, "later.jsonl"))
    assert bad == [] and summary.outcomes["grant updated"] == 1, summary.outcomes
    assert '"valid_until":"2032-01-01T00:00:00.000000Z"' in second.export()


def test_the_command_line_reports_bad_lines_and_exports(tmp_path: Path) -> None:
    text, expected = _mixed()
    path = _file(tmp_path, text)
    env = {
        **os.environ,
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3",
        "DELEGAUTH_POLICIES_DIR": POLICIES,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "delegauth", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    assert cli("migrate").returncode == 0
    res = cli("import", str(path), "--dry-run")
    assert res.returncode == 1, res.stderr
    for line, reason in expected.items():
        assert f"line {line}: " in res.stderr and reason in res.stderr
    assert json.loads(res.stdout)["written"] is False
    assert cli("import", str(path), "--strict").returncode == 1
    assert cli("export").stdout == ""  # nothing was written
    res = cli("import", str(path))
    assert res.returncode == 1 and json.loads(res.stdout)["written"] is True
    assert cli("export").stdout.count('"kind":"grant"') == 3
    assert cli("import", str(tmp_path / "missing.jsonl")).returncode == 2


# -- webhooks ------------------------------------------------------------------------------------


def _endpoints(target: Target) -> dict[str, str]:
    """Three endpoints: one of AREA for every type, one of AREA for grant.changed only, one
    service-wide. {name: id}"""
    from delegauth.domain.webhooks import Endpoint
    from delegauth.storage.webhooks import PeeweeWebhookStore

    made = {"area": (AREA, None), "filtered": (AREA, ("grant.changed",)), "all": (None, None)}
    store = PeeweeWebhookStore(target.db)
    ids = {}
    with target.db.connection_context():
        for name, (area_id, types) in made.items():
            ids[name] = f"wh_{name}_{os.getpid()}"
            store.add_endpoint(Endpoint(ids[name], area_id, "https://hooks.example.com/" + name,
                                        "", "salt", None, datetime(2026, 1, 1), types))  # fmt: skip
    return ids


def _queued(target: Target, endpoint_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(status, payload) of each delivery to ``endpoint_id``, in order."""
    rows = _sql(
        target,
        "SELECT d.status, e.payload FROM webhook_deliveries d"
        " JOIN webhook_events e ON e.id = d.event_id WHERE d.endpoint_id = ? ORDER BY d.id",
        (endpoint_id,),
    )
    return [(status, json.loads(payload)) for status, payload in rows]


def test_an_import_publishes_its_audit_events_to_the_webhooks_that_receive_them(
    fresh: Any, tmp_path: Path
) -> None:
    target = fresh()
    hooks = _endpoints(target)
    target.run(_file(tmp_path, GOOD), batch_size=6)  # two batches: the grants in AREA split
    [(area2,)] = _sql(target, "SELECT area_id FROM area_keys WHERE key = ?", ("cust-2",))
    audit = {
        row[0]: row[1:]
        for row in _sql(
            target,
            "SELECT id, area_id, action, target, before, after, at FROM audit_events"
            " WHERE area_id IN (?, ?) ORDER BY id",
            (AREA, area2),
        )
    }
    # Every event of the area, each payload what PeeweeWebhookStore.publish writes for it.
    queued = _queued(target, hooks["area"])
    assert [p["data"]["audit_id"] for _, p in queued] == [
        i for i, row in audit.items() if row[0] == AREA
    ]
    assert [p["type"] for _, p in queued] == [
        "area.imported", "grants.imported", "invitation.imported", "grants.imported"
    ]  # fmt: skip
    for status, payload in queued:
        area_id, action, target_, before, after, at = audit[payload["data"]["audit_id"]]
        at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        assert status == "pending"
        assert payload["data"] == {
            "audit_id": payload["data"]["audit_id"], "action": action, "area": area_id,
            "actor": None, "target": target_, "before": before and json.loads(before),
            "after": json.loads(after), "at": at.isoformat(timespec="microseconds") + "Z",
        }  # fmt: skip
    grants = [p["data"]["after"] for _, p in queued if p["type"] == "grants.imported"]
    assert {user for after in grants for user in after} == {f"user:{U['bo']}", f"user:{U['cy']}"}
    # The filter asks for grant.changed only: nothing. The service-wide one: every area's.
    assert _queued(target, hooks["filtered"]) == []
    assert [p["data"]["audit_id"] for _, p in _queued(target, hooks["all"])] == list(audit)


def test_no_webhook_delivery_from_a_dry_run_a_failed_strict_run_or_an_unchanged_import(
    fresh: Any, tmp_path: Path
) -> None:
    target = fresh()
    hooks = _endpoints(target)
    text, _ = _mixed()
    mixed = _file(tmp_path, text, "mixed.jsonl")
    checked, _ = target.run(mixed, dry_run=True)
    failed, _ = target.run(mixed, strict=True)
    assert not checked.written and not failed.written
    assert [_queued(target, ident) for ident in hooks.values()] == [[], [], []]
    path = _file(tmp_path, GOOD)
    target.run(path)
    queued = [_queued(target, ident) for ident in hooks.values()]
    assert [len(q) for q in queued] == [3, 0, 5]
    again, _ = target.run(path)
    assert again.written and [_queued(target, ident) for ident in hooks.values()] == queued
