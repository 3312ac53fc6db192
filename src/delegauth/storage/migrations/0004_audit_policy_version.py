"""audit_events.policy_version: the policy files' hash in force when the change was made
(renamed policy_hash by 0011)."""

from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("audit_events", "policy_version", CharField(max_length=40, null=True))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("audit_events", "policy_version"))
