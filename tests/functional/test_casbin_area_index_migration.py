"""Migration 0015: casbin_rule's unique index leads with the area (v2, ptype, v0, v1, v3, v4,
v5) and replaces migration 0007's covering (v2, ptype, v0, v1, v3) index; a narrow v0 index
serves the reads by user. The rows stay, a duplicate g line is still refused, and every
query shape on casbin_rule reads an index, not the table (SQLite's EXPLAIN QUERY PLAN,
PostgreSQL's EXPLAIN with sequential scans priced out). Undoing it restores both old
indexes."""

from __future__ import annotations

from typing import Any

import peewee
import pytest
from playhouse.migrations import Runner

from delegauth.storage.casbin_adapter import PeeweeCasbinAdapter
from delegauth.storage.db import is_postgres
from delegauth.storage.records import CasbinRuleRecord as Rule
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import MIGRATIONS_DIR, migrate
from tests.functional.test_revocation_migration import legacy  # noqa: F401 - the fixture

THIS = "0015_casbin_rule_area_first"
USER, AREA = "user:u_" + "b" * 26, "area:a_" + "q" * 26


def _add(db: peewee.Database, *rows: tuple[str, str, str, str]) -> None:
    p = db.param
    for row in rows:
        db.execute_sql(
            f"INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES"
            f" ('g', {p}, {p}, {p}, {p}, '', '')",
            row,
        )


def _rows(db: peewee.Database) -> list[tuple[Any, ...]]:
    sql = "SELECT ptype, v0, v1, v2, v3 FROM casbin_rule ORDER BY v2, v0, v1"
    return [tuple(r) for r in db.execute_sql(sql).fetchall()]


def _indexes(db: peewee.Database) -> dict[str, tuple[bool, str]]:
    """{index name: (unique, its columns)} of casbin_rule, the primary key's left out."""
    if is_postgres(db):
        rows = db.execute_sql(
            "SELECT i.relname, x.indisunique, pg_get_indexdef(x.indexrelid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " WHERE t.relname = 'casbin_rule' AND t.relnamespace = CAST(current_schema() AS"
            " regnamespace) AND NOT x.indisprimary"
        ).fetchall()
        return {n: (u, d[d.index("(") + 1 : -1].replace('"', "")) for n, u, d in rows}
    names = db.execute_sql(
        "SELECT name, \"unique\" FROM pragma_index_list('casbin_rule') WHERE origin = 'c'"
    ).fetchall()
    found = {}
    for name, unique in names:
        cols = db.execute_sql(f"SELECT name FROM pragma_index_info('{name}') ORDER BY seqno")
        found[name] = (bool(unique), ", ".join(c for (c,) in cols.fetchall()))
    return found


def _plans(db: peewee.Database) -> dict[str, str]:
    """Each query shape on casbin_rule, as the code builds it, and its plan as text."""
    database_proxy.initialize(db)  # the models build their SQL for this database
    p = db.param
    pg = is_postgres(db)
    adapter = PeeweeCasbinAdapter(db)
    whole = Rule.delete().where(Rule.ptype == "g")
    rule = (USER, "perm:x", AREA, "", "", "")
    for name, value in zip(("v0", "v1", "v2", "v3", "v4", "v5"), rule, strict=True):
        whole = whole.where(getattr(Rule, name) == value)
    shapes: dict[str, tuple[str, tuple[Any, ...]]] = {
        # PeeweePolicyFeed: an area's g lines, and the warm-up's pages in domain order
        "area's g lines": (f"SELECT v0, v1, v3 FROM casbin_rule WHERE v2 = {p} AND ptype = 'g'",
                           (AREA,)),
        "warm-up page": (f"SELECT v2, v0, v1, v3 FROM casbin_rule WHERE v2 > {p} AND"
                         f" {'' if pg else '+'}ptype = 'g' ORDER BY v2 LIMIT 20000", ("",)),
        # BulkImporter: a re-imported pair's old g lines
        "import's delete": (f"DELETE FROM casbin_rule WHERE ptype = 'g' AND v0 = {p} AND v2 = {p}",
                            (USER, AREA)),
    }  # fmt: skip
    built = {
        "areas a user holds": Rule.select(Rule.v2)
        .where((Rule.ptype == "g") & (Rule.v0 == USER) & Rule.v2.startswith("area:"))
        .distinct(),
        "users of an area": Rule.select(Rule.v0)
        .where((Rule.ptype == "g") & (Rule.v2 == AREA) & Rule.v0.startswith("user:"))
        .distinct(),
        "a grant's removal": adapter._filtered_rows(Rule.delete(), "g", 0, (USER, "", AREA)),
        "a user's lines": adapter._filtered_rows(Rule.delete(), "g", 0, (USER,)),
        "one rule's removal": whole,
    }
    for label, query in built.items():
        sql, params = query.sql()
        shapes[label] = (sql, tuple(params))
    plans = {}
    with db.atomic() as tx:  # the deletes are only explained, but roll back all the same
        if pg:
            db.execute_sql("SET LOCAL enable_seqscan = off")
        for label, (sql, params) in shapes.items():
            explain = "EXPLAIN " if pg else "EXPLAIN QUERY PLAN "
            rows = db.execute_sql(explain + sql, params).fetchall()
            plans[label] = "\n".join(str(r[0] if pg else r[-1]) for r in rows)
        tx.rollback()
    return plans


def test_the_area_led_unique_index_replaces_both_and_every_query_reads_an_index(
    legacy: peewee.Database,  # noqa: F811 - the fixture
) -> None:
    with legacy.connection_context():
        Runner(legacy, MIGRATIONS_DIR).up(target="0013_time_zones_and_mail_language")
        _add(legacy, (USER, "perm:x", AREA, ""), ("user:u_c", "perm:y", AREA, "2030-01-01"))
        before = _rows(legacy)
    assert THIS in migrate(legacy)
    with legacy.connection_context():
        assert _rows(legacy) == before
        assert _indexes(legacy) == {
            "casbinrulerecord_v2_ptype_v0_v1_v3_v4_v5": (True, "v2, ptype, v0, v1, v3, v4, v5"),
            "casbinrulerecord_v0": (False, "v0"),
        }
        with pytest.raises(peewee.IntegrityError), legacy.atomic():
            _add(legacy, (USER, "perm:x", AREA, ""))
        for label, plan in _plans(legacy).items():
            if is_postgres(legacy):
                assert "Seq Scan" not in plan and "Index" in plan, (label, plan)
            else:
                assert "casbinrulerecord_" in plan and "SCAN" not in plan, (label, plan)
        assert Runner(legacy, MIGRATIONS_DIR).down(target=THIS) == [THIS]
        assert _indexes(legacy) == {
            "casbinrulerecord_ptype_v0_v1_v2_v3_v4_v5": (True, "ptype, v0, v1, v2, v3, v4, v5"),
            "casbinrulerecord_v2_ptype_v0_v1_v3": (False, "v2, ptype, v0, v1, v3"),
        }
        assert _rows(legacy) == before
