"""oauth_access_revocations: revoked access tokens by the SHA-256 of their jti, each with
the change-log version that announced it to every worker and replica.

Replaces oauth_revoked_access, which held jtis in the clear and was read only by
introspection: its entries that have not expired are carried over, hashed (version 0:
a process starting reads them all, it needs no change-log entry). Undoing this drops
the hashed revocations; the old table comes back empty.
"""

import hashlib
from datetime import UTC, datetime

from peewee import BigIntegerField, CharField, DateTimeField, Model


def _tables(db):
    class Revocation(Model):
        jti_hash = CharField(primary_key=True, max_length=64)
        expires_at = DateTimeField(index=True)
        version = BigIntegerField(default=0)

        class Meta:
            database = db
            table_name = "oauth_access_revocations"

    class OldRevocation(Model):
        jti = CharField(primary_key=True, max_length=64)
        expires_at = DateTimeField()

        class Meta:
            database = db
            table_name = "oauth_revoked_access"

    return Revocation, OldRevocation


def up(migrator, db):
    revocation, old = _tables(db)
    db.create_tables([revocation])
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "jti_hash": hashlib.sha256(r.jti.encode("utf-8")).hexdigest(),
            "expires_at": r.expires_at,
            "version": 0,
        }
        for r in old.select().where(old.expires_at > now)
    ]
    if rows:
        revocation.insert_many(rows).on_conflict_ignore().execute()
    migrator.migrate(migrator.drop_table("oauth_revoked_access"))


def down(migrator, db):
    _revocation, old = _tables(db)
    db.create_tables([old])
    migrator.migrate(migrator.drop_table("oauth_access_revocations"))
