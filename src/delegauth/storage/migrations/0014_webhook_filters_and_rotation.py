"""Webhook endpoints: which event types each one receives (``event_types``, a JSON list;
NULL for every type), and secret rotation (``previous_salt``, the salt of the secret
deliveries are still signed with beside the new one until ``previous_until``).
"""

from peewee import CharField, DateTimeField, TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("webhook_endpoints", "event_types", TextField(null=True)),
        migrator.add_column(
            "webhook_endpoints", "previous_salt", CharField(max_length=64, null=True)
        ),
        migrator.add_column("webhook_endpoints", "previous_until", DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("webhook_endpoints", "previous_until"),
        migrator.drop_column("webhook_endpoints", "previous_salt"),
        migrator.drop_column("webhook_endpoints", "event_types"),
    )
