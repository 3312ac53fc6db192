"""OAuth 2.0 server tables: clients, codes, refresh tokens, revocations, sessions."""

from peewee import *


def up(migrator, db):
    class AccessIssueRecord(Model):
        jti = CharField(primary_key=True, max_length=64)
        family_id = CharField(index=True, max_length=64)
        expires_at = DateTimeField()

        class Meta:
            database = db
            table_name = "oauth_access_issues"

    db.create_tables([AccessIssueRecord])

    class AuthCodeRecord(Model):
        code_hash = CharField(primary_key=True, max_length=64)
        client_id = CharField(max_length=64)
        user_id = CharField(max_length=40)
        area_id = CharField(max_length=40)
        redirect_uri = TextField()
        scope = TextField(default="")
        nonce = CharField(null=True)
        code_challenge = CharField(max_length=128)
        code_challenge_method = CharField(max_length=8)
        auth_time = DateTimeField()
        expires_at = DateTimeField()
        used_at = DateTimeField(null=True)
        family_id = CharField(null=True, max_length=64)

        class Meta:
            database = db
            table_name = "oauth_codes"

    db.create_tables([AuthCodeRecord])

    class BrowserSessionRecord(Model):
        id_hash = CharField(primary_key=True, max_length=64)
        user_id = CharField(index=True, max_length=40)
        csrf = CharField(max_length=64)
        created_at = DateTimeField()
        expires_at = DateTimeField()

        class Meta:
            database = db
            table_name = "browser_sessions"

    db.create_tables([BrowserSessionRecord])

    class OAuthClientRecord(Model):
        client_id = CharField(primary_key=True, max_length=64)
        secret_hash = CharField(null=True, max_length=128)
        name = CharField(max_length=100)
        redirect_uris = TextField(default="[]")
        grant_types = TextField(default="[]")
        scopes = TextField(default="[]")
        first_party = BooleanField(default=False)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "oauth_clients"

    db.create_tables([OAuthClientRecord])

    class RefreshTokenRecord(Model):
        token_hash = CharField(primary_key=True, max_length=64)
        family_id = CharField(index=True, max_length=64)
        client_id = CharField(max_length=64)
        user_id = CharField(max_length=40)
        area_id = CharField(max_length=40)
        scope = TextField(default="")
        created_at = DateTimeField()
        expires_at = DateTimeField()
        rotated_at = DateTimeField(null=True)
        revoked_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "oauth_refresh_tokens"
            indexes = ((("user_id", "area_id"), False),)

    db.create_tables([RefreshTokenRecord])

    class RevokedAccessRecord(Model):
        jti = CharField(primary_key=True, max_length=64)
        expires_at = DateTimeField()

        class Meta:
            database = db
            table_name = "oauth_revoked_access"

    db.create_tables([RevokedAccessRecord])

    class SignInFailureRecord(Model):
        key = CharField(index=True, max_length=128)
        at = DateTimeField()

        class Meta:
            database = db
            table_name = "signin_failures"

    db.create_tables([SignInFailureRecord])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("signin_failures"))
    migrator.migrate(migrator.drop_table("oauth_revoked_access"))
    migrator.migrate(migrator.drop_table("oauth_refresh_tokens"))
    migrator.migrate(migrator.drop_table("oauth_clients"))
    migrator.migrate(migrator.drop_table("browser_sessions"))
    migrator.migrate(migrator.drop_table("oauth_codes"))
    migrator.migrate(migrator.drop_table("oauth_access_issues"))
