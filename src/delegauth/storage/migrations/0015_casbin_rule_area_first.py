"""casbin_rule: the unique index leads with the area (v2, ptype, v0, v1, v3, v4, v5).

Before, the unique index led with the user (ptype, v0, v1, v2, …), and a second index
(v2, ptype, v0, v1, v3) of migration 0007 covered an area's g lines. An import writes an
area's g lines together, but users are spread over the whole user-led index, so each g line
landed on a page of its own there. Led by the area, the unique index takes an import's rows
in order and covers the area read too (its prefix is the old covering index's, which goes).
A narrow index on v0 keeps the reads by user (the areas where a user holds a g line) an
index lookup.
"""


def up(migrator, db):
    db.execute_sql(
        "CREATE UNIQUE INDEX casbinrulerecord_v2_ptype_v0_v1_v3_v4_v5"
        " ON casbin_rule (v2, ptype, v0, v1, v3, v4, v5)"
    )
    db.execute_sql("DROP INDEX casbinrulerecord_ptype_v0_v1_v2_v3_v4_v5")
    db.execute_sql("DROP INDEX casbinrulerecord_v2_ptype_v0_v1_v3")
    db.execute_sql("CREATE INDEX casbinrulerecord_v0 ON casbin_rule (v0)")


def down(migrator, db):
    db.execute_sql(
        "CREATE INDEX casbinrulerecord_v2_ptype_v0_v1_v3 ON casbin_rule (v2, ptype, v0, v1, v3)"
    )
    db.execute_sql(
        "CREATE UNIQUE INDEX casbinrulerecord_ptype_v0_v1_v2_v3_v4_v5"
        " ON casbin_rule (ptype, v0, v1, v2, v3, v4, v5)"
    )
    db.execute_sql("DROP INDEX casbinrulerecord_v0")
    db.execute_sql("DROP INDEX casbinrulerecord_v2_ptype_v0_v1_v3_v4_v5")
