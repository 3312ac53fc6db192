"""audit_events.policy_version becomes policy_hash (issue 13).

The column holds the hash of the policy files in force when the change was made;
"policy_version" names only the change log's version. A rename: every row keeps its
value (ALTER TABLE … RENAME COLUMN on SQLite 3.25+ and PostgreSQL).
"""


def up(migrator, db):
    migrator.migrate(migrator.rename_column("audit_events", "policy_version", "policy_hash"))


def down(migrator, db):
    migrator.migrate(migrator.rename_column("audit_events", "policy_hash", "policy_version"))
