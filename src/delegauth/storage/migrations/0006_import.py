"""area_keys: the key an importing provider gave an area; import_runs: how far an import got.

An area imported under the provider's own key (a customer number, say) gets a random
``a_…`` id like any other; the key maps to it, so importing the same file again finds the
same area. An import records, per file (by SHA-256), the last line it committed, so an
interrupted run resumes after it.
"""

from peewee import CharField, DateTimeField, IntegerField, Model


def up(migrator, db):
    class AreaKeyRecord(Model):
        key = CharField(primary_key=True, max_length=128)
        area_id = CharField(max_length=40, unique=True)

        class Meta:
            database = db
            table_name = "area_keys"

    class ImportRunRecord(Model):
        digest = CharField(primary_key=True, max_length=64)
        lines_done = IntegerField(default=0)
        started_at = DateTimeField()
        updated_at = DateTimeField()
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "import_runs"

    db.create_tables([AreaKeyRecord, ImportRunRecord])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("import_runs"))
    migrator.migrate(migrator.drop_table("area_keys"))
