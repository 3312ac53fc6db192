"""access_requests: a user asks an area's owner for permissions (issue 14, part 2).

``area_id`` is NULL for a request addressed by email to someone without an account: it is
kept like any other so that the answer to the requester cannot tell the two apart. The
indexes serve the rate limits (by requester, by area, by email asked, in a time window)
and the owner's list of pending requests.
"""

from peewee import CharField, DateTimeField, Model, TextField


def up(migrator, db):
    class AccessRequestRecord(Model):
        id = CharField(primary_key=True, max_length=40)
        requester_id = CharField(max_length=40)
        area_id = CharField(max_length=40, null=True)
        asked_email = CharField(max_length=320, default="")
        permissions = TextField()
        message = TextField(default="")
        status = CharField(max_length=16)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        expires_at = DateTimeField()
        decided_by = CharField(max_length=40, null=True)
        granted = TextField(null=True)

        class Meta:
            database = db
            table_name = "access_requests"
            indexes = (
                (("requester_id", "created_at"), False),
                (("area_id", "status"), False),
                (("area_id", "created_at"), False),
                (("asked_email", "created_at"), False),
            )

    db.create_tables([AccessRequestRecord])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("access_requests"))
