"""Grants that end: grants.valid_until (and invitations.valid_until, copied to the grant on
acceptance), what the expiry sweep has done for which end (reminder_for, lapse_for), the
end in the change log (policy_changes.valid_until), and the g lines' end (v3) in the
covering index the decision index reads areas through.

The index keeps the (v2, ptype, v0, v1) prefix of migration 0003, so SQLite still picks it
without statistics, and adds v3 so that an area load still reads the index alone.
"""

from peewee import CharField, DateTimeField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("grants", "valid_until", DateTimeField(null=True)),
        migrator.add_column("grants", "reminder_for", DateTimeField(null=True)),
        migrator.add_column("grants", "lapse_for", DateTimeField(null=True)),
        migrator.add_column("invitations", "valid_until", DateTimeField(null=True)),
        migrator.add_column("policy_changes", "valid_until", CharField(max_length=20, null=True)),
    )
    db.execute_sql(
        "CREATE INDEX casbinrulerecord_v2_ptype_v0_v1_v3 ON casbin_rule (v2, ptype, v0, v1, v3)"
    )
    db.execute_sql("DROP INDEX casbinrulerecord_v2_ptype_v0_v1")
    db.execute_sql("CREATE INDEX grants_valid_until ON grants (valid_until)")


def down(migrator, db):
    db.execute_sql("DROP INDEX grants_valid_until")
    db.execute_sql(
        "CREATE INDEX casbinrulerecord_v2_ptype_v0_v1 ON casbin_rule (v2, ptype, v0, v1)"
    )
    db.execute_sql("DROP INDEX casbinrulerecord_v2_ptype_v0_v1_v3")
    migrator.migrate(
        migrator.drop_column("policy_changes", "valid_until"),
        migrator.drop_column("invitations", "valid_until"),
        migrator.drop_column("grants", "lapse_for"),
        migrator.drop_column("grants", "reminder_for"),
        migrator.drop_column("grants", "valid_until"),
    )
