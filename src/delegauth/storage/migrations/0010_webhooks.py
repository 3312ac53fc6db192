"""Webhooks: endpoints, the event outbox and one delivery row per (event, endpoint).

An audit event's webhook event and its deliveries are written in the audit event's own
transaction (storage/store.py), so a rolled-back change publishes nothing and a committed
one is never lost. Deliveries are a leased work queue like mail_outbox.
"""

from peewee import AutoField, CharField, DateTimeField, IntegerField, Model, TextField


def up(migrator, db):
    class WebhookEndpointRecord(Model):
        id = CharField(primary_key=True, max_length=40)
        area_id = CharField(max_length=40, null=True, index=True)
        url = TextField()
        description = CharField(max_length=200, default="")
        secret_salt = CharField(max_length=64)
        created_by = CharField(max_length=40, null=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "webhook_endpoints"

    class WebhookEventRecord(Model):
        id = AutoField()
        msg_id = CharField(max_length=40, unique=True)
        audit_id = IntegerField(null=True)
        type = CharField(max_length=64)
        area_id = CharField(max_length=40)
        payload = TextField()
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "webhook_events"

    class WebhookDeliveryRecord(Model):
        id = AutoField()
        event_id = IntegerField(index=True)
        endpoint_id = CharField(max_length=40)
        status = CharField(max_length=16, default="pending")
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField()
        locked_until = DateTimeField(null=True)
        last_error = TextField(null=True)
        response_code = IntegerField(null=True)
        created_at = DateTimeField()
        delivered_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "webhook_deliveries"
            indexes = (
                (("status", "next_attempt_at"), False),
                (("endpoint_id", "id"), False),
            )

    db.create_tables([WebhookEndpointRecord, WebhookEventRecord, WebhookDeliveryRecord])


def down(migrator, db):
    for table in ("webhook_deliveries", "webhook_events", "webhook_endpoints"):
        migrator.migrate(migrator.drop_table(table))
