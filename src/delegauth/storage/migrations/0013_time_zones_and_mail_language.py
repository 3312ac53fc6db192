"""users.time_zone: the IANA time zone the user's browser last reported (the pages' ``tz``
cookie, checked against zoneinfo), so that mail shows times in it; "" while unknown (mail
then says UTC). invitations.mail_locale: the language the inviter chose for the
invitation's mail, so that a resend keeps it; "" when none was chosen.

Both have a default in the database itself ('' for existing rows and for the bulk
import's inserts, which name their columns): nothing is guessed.
"""


def up(migrator, db):
    db.execute_sql("ALTER TABLE users ADD COLUMN time_zone VARCHAR(64) NOT NULL DEFAULT ''")
    db.execute_sql("ALTER TABLE invitations ADD COLUMN mail_locale VARCHAR(8) NOT NULL DEFAULT ''")


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("invitations", "mail_locale"),
        migrator.drop_column("users", "time_zone"),
    )
