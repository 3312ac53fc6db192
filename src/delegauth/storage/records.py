"""peewee models: one table each for users, areas, invitations, grants, Casbin rules,
audit events, the mail outbox, the policy change log and one-time secrets.

The schema itself is created by the versioned migrations in ./migrations; these
models must match them.
"""

from __future__ import annotations

import peewee as pw

__all__ = [
    "AccessRevocationRecord",
    "MODELS",
    "AccessRequestRecord",
    "AreaRecord",
    "AuditRecord",
    "CasbinRuleRecord",
    "ChangeRecord",
    "GrantRecord",
    "InvitationRecord",
    "MailRecord",
    "SecretRecord",
    "UserRecord",
    "WebhookDeliveryRecord",
    "WebhookEndpointRecord",
    "WebhookEventRecord",
    "OAuthClientRecord",
    "AuthCodeRecord",
    "RefreshTokenRecord",
    "AccessIssueRecord",
    "AreaKeyRecord",
    "BrowserSessionRecord",
    "ImportRunRecord",
    "SignInFailureRecord",
    "database_proxy",
]

database_proxy = pw.DatabaseProxy()


class _Base(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class UserRecord(_Base):
    id = pw.CharField(primary_key=True, max_length=40)
    email = pw.CharField(max_length=320, unique=True)
    name = pw.CharField(max_length=100, default="")
    locale = pw.CharField(max_length=8, default="en")
    password_hash = pw.CharField(max_length=255)
    email_verified = pw.BooleanField(default=False)
    created_at = pw.DateTimeField()
    # migration 0013; "" unknown. The default is the database's: a write that names no
    # time zone (a row built for an older schema, the bulk import) gets "".
    time_zone = pw.CharField(max_length=64, constraints=[pw.SQL("DEFAULT ''")])

    class Meta:
        table_name = "users"


class AreaRecord(_Base):
    id = pw.CharField(primary_key=True, max_length=40)
    name = pw.CharField(max_length=320)
    owner_id = pw.CharField(max_length=40)
    created_at = pw.DateTimeField()

    class Meta:
        table_name = "areas"


class AreaKeyRecord(_Base):
    """The key an importing provider gave an area (migration 0006)."""

    key = pw.CharField(primary_key=True, max_length=128)
    area_id = pw.CharField(max_length=40, unique=True)

    class Meta:
        table_name = "area_keys"


class ImportRunRecord(_Base):
    """How far the import of one file (by SHA-256) got (migration 0006)."""

    digest = pw.CharField(primary_key=True, max_length=64)
    lines_done = pw.IntegerField(default=0)
    started_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()
    finished_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "import_runs"


class SecretRecord(_Base):
    token_hash = pw.CharField(primary_key=True, max_length=64)
    kind = pw.CharField(max_length=16)
    user_id = pw.CharField(max_length=40)
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "secrets"


class InvitationRecord(_Base):
    id = pw.CharField(primary_key=True, max_length=40)
    area_id = pw.CharField(max_length=40, index=True)
    email = pw.CharField(max_length=320, index=True)
    permissions = pw.TextField()  # JSON: "all" or a sorted list of names
    invited_by = pw.CharField(max_length=40)
    status = pw.CharField(max_length=16)
    token_hash = pw.CharField(max_length=64, null=True, unique=True)
    expires_at = pw.DateTimeField()
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()
    sends = pw.IntegerField(default=1)
    valid_until = pw.DateTimeField(null=True)  # migration 0007
    # migration 0013; "" none chosen (the database's default, as users.time_zone)
    mail_locale = pw.CharField(max_length=8, constraints=[pw.SQL("DEFAULT ''")])

    class Meta:
        table_name = "invitations"


class AccessRequestRecord(_Base):
    """A request for permissions in an area (migration 0008)."""

    id = pw.CharField(primary_key=True, max_length=40)
    requester_id = pw.CharField(max_length=40)
    area_id = pw.CharField(max_length=40, null=True)
    asked_email = pw.CharField(max_length=320, default="")
    permissions = pw.TextField()  # JSON: "all" or a sorted list of names
    message = pw.TextField(default="")
    status = pw.CharField(max_length=16)
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()
    expires_at = pw.DateTimeField()
    decided_by = pw.CharField(max_length=40, null=True)
    granted = pw.TextField(null=True)  # what an approval gave, same JSON

    class Meta:
        table_name = "access_requests"
        indexes = (
            (("requester_id", "created_at"), False),
            (("area_id", "status"), False),
            (("area_id", "created_at"), False),
            (("asked_email", "created_at"), False),
        )


class GrantRecord(_Base):
    id = pw.AutoField()
    area_id = pw.CharField(max_length=40)
    user_id = pw.CharField(max_length=40, index=True)
    role = pw.CharField(max_length=16)
    permissions = pw.TextField()
    granted_by = pw.CharField(max_length=40, null=True)
    invitation_id = pw.CharField(max_length=40, null=True)
    version = pw.IntegerField(default=1)
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()
    # migration 0007: the end, and the end the sweep last reminded of and recorded the lapse of
    valid_until = pw.DateTimeField(null=True)  # indexed by migration 0007
    reminder_for = pw.DateTimeField(null=True)
    lapse_for = pw.DateTimeField(null=True)

    class Meta:
        table_name = "grants"
        indexes = ((("area_id", "user_id"), True),)


class CasbinRuleRecord(_Base):
    """One Casbin policy line, one column per field: never a joined string."""

    id = pw.AutoField()
    ptype = pw.CharField(max_length=16)
    v0 = pw.CharField(max_length=255, default="")
    v1 = pw.CharField(max_length=255, default="")
    v2 = pw.CharField(max_length=255, default="")
    v3 = pw.CharField(max_length=255, default="")
    v4 = pw.CharField(max_length=255, default="")
    v5 = pw.CharField(max_length=255, default="")

    class Meta:
        table_name = "casbin_rule"
        indexes = (
            # led by the area (migration 0015): covers domain_links, and an import's rows
            # land together in it
            (("v2", "ptype", "v0", "v1", "v3", "v4", "v5"), True),
            (("v0",), False),  # the reads by user
        )


class AuditRecord(_Base):
    id = pw.AutoField()
    area_id = pw.CharField(max_length=40)
    actor_id = pw.CharField(max_length=40, null=True)
    action = pw.CharField(max_length=64)
    target = pw.CharField(max_length=80)
    before = pw.TextField(null=True)
    after = pw.TextField(null=True)
    at = pw.DateTimeField()
    policy_hash = pw.CharField(max_length=40, null=True)  # migrations 0004 and 0011

    class Meta:
        table_name = "audit_events"
        indexes = ((("area_id", "id"), False),)


class MailRecord(_Base):
    id = pw.AutoField()
    to = pw.CharField(max_length=320)
    subject = pw.CharField(max_length=255)
    text = pw.TextField()
    html = pw.TextField(null=True)
    kind = pw.CharField(max_length=32)
    headers = pw.TextField(default="{}")
    status = pw.CharField(max_length=16, default="pending", index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField()
    locked_until = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField()
    sent_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "mail_outbox"


class ChangeRecord(_Base):
    """The policy change log: after each grant change, the subject's full role set in a domain."""

    version = pw.BigAutoField()
    domain = pw.CharField(max_length=64)
    subject = pw.CharField(max_length=64)
    roles = pw.TextField()  # JSON list of role names
    at = pw.DateTimeField()
    # the g lines' end (migration 0007); NULL or "" for none
    valid_until = pw.CharField(max_length=20, null=True)

    class Meta:
        table_name = "policy_changes"


class OAuthClientRecord(_Base):
    client_id = pw.CharField(primary_key=True, max_length=64)
    secret_hash = pw.CharField(max_length=128, null=True)  # None: a public client
    name = pw.CharField(max_length=100)
    redirect_uris = pw.TextField(default="[]")  # JSON list, matched exactly
    grant_types = pw.TextField(default="[]")
    scopes = pw.TextField(default="[]")
    first_party = pw.BooleanField(default=False)
    created_at = pw.DateTimeField()

    class Meta:
        table_name = "oauth_clients"


class AuthCodeRecord(_Base):
    code_hash = pw.CharField(primary_key=True, max_length=64)
    client_id = pw.CharField(max_length=64)
    user_id = pw.CharField(max_length=40)
    area_id = pw.CharField(max_length=40)
    redirect_uri = pw.TextField()
    scope = pw.TextField(default="")
    nonce = pw.CharField(max_length=255, null=True)
    code_challenge = pw.CharField(max_length=128)
    code_challenge_method = pw.CharField(max_length=8)
    auth_time = pw.DateTimeField()
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)
    family_id = pw.CharField(max_length=64, null=True)  # what redeeming it issued

    class Meta:
        table_name = "oauth_codes"


class RefreshTokenRecord(_Base):
    token_hash = pw.CharField(primary_key=True, max_length=64)
    family_id = pw.CharField(max_length=64, index=True)
    client_id = pw.CharField(max_length=64)
    user_id = pw.CharField(max_length=40)
    area_id = pw.CharField(max_length=40)
    scope = pw.TextField(default="")
    created_at = pw.DateTimeField()
    expires_at = pw.DateTimeField()  # the family's absolute end
    rotated_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "oauth_refresh_tokens"
        indexes = ((("user_id", "area_id"), False),)


class AccessRevocationRecord(_Base):
    """Access tokens revoked before their expiry (by jti or by refresh family), named by the
    SHA-256 of their jti; ``version`` is the change-log entry that announced it (migration
    0012)."""

    jti_hash = pw.CharField(primary_key=True, max_length=64)
    expires_at = pw.DateTimeField(index=True)
    version = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "oauth_access_revocations"


class AccessIssueRecord(_Base):
    """Which refresh family (if any) an access token came from, for family revocation."""

    jti = pw.CharField(primary_key=True, max_length=64)
    family_id = pw.CharField(max_length=64, index=True)
    expires_at = pw.DateTimeField()

    class Meta:
        table_name = "oauth_access_issues"


class BrowserSessionRecord(_Base):
    id_hash = pw.CharField(primary_key=True, max_length=64)
    user_id = pw.CharField(max_length=40, index=True)
    csrf = pw.CharField(max_length=64)
    created_at = pw.DateTimeField()
    expires_at = pw.DateTimeField()

    class Meta:
        table_name = "browser_sessions"


class SignInFailureRecord(_Base):
    """Failed sign-ins per key (canonical email, client address) for rate limiting."""

    id = pw.AutoField()
    key = pw.CharField(max_length=128, index=True)
    at = pw.DateTimeField()

    class Meta:
        table_name = "signin_failures"


class WebhookEndpointRecord(_Base):
    """Where events go: one area's (area_id) or the whole service's (None). Migration 0010.

    The signing secret is not stored: it is derived from the server's webhook key and
    ``secret_salt`` (webhooks/signing.py). Migration 0014: ``event_types`` (a JSON list,
    NULL: every type) and, after a rotation, the previous secret's salt and until when
    deliveries are signed with it too."""

    id = pw.CharField(primary_key=True, max_length=40)
    area_id = pw.CharField(max_length=40, null=True, index=True)
    url = pw.TextField()
    description = pw.CharField(max_length=200, default="")
    secret_salt = pw.CharField(max_length=64)
    created_by = pw.CharField(max_length=40, null=True)
    created_at = pw.DateTimeField()
    event_types = pw.TextField(null=True)
    previous_salt = pw.CharField(max_length=64, null=True)
    previous_until = pw.DateTimeField(null=True)

    class Meta:
        table_name = "webhook_endpoints"


class WebhookEventRecord(_Base):
    """The event outbox: one row per published audit event, written in its transaction."""

    id = pw.AutoField()
    msg_id = pw.CharField(max_length=40, unique=True)
    audit_id = pw.IntegerField(null=True)
    type = pw.CharField(max_length=64)
    area_id = pw.CharField(max_length=40)
    payload = pw.TextField()  # the exact JSON body sent (and signed)
    created_at = pw.DateTimeField()  # wall clock at write: delivery lag is measured from it

    class Meta:
        table_name = "webhook_events"


class WebhookDeliveryRecord(_Base):
    """One event to one endpoint: a leased work queue, and the endpoint's delivery log."""

    id = pw.AutoField()
    event_id = pw.IntegerField(index=True)
    endpoint_id = pw.CharField(max_length=40)
    status = pw.CharField(max_length=16, default="pending")
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField()
    locked_until = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    response_code = pw.IntegerField(null=True)
    created_at = pw.DateTimeField()
    delivered_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "webhook_deliveries"
        indexes = (
            (("status", "next_attempt_at"), False),
            (("endpoint_id", "id"), False),
        )


MODELS: list[type[pw.Model]] = [
    UserRecord,
    AreaRecord,
    SecretRecord,
    InvitationRecord,
    GrantRecord,
    CasbinRuleRecord,
    AuditRecord,
    MailRecord,
    ChangeRecord,
    OAuthClientRecord,
    AuthCodeRecord,
    RefreshTokenRecord,
    AccessRevocationRecord,
    AccessIssueRecord,
    BrowserSessionRecord,
    SignInFailureRecord,
    AreaKeyRecord,
    ImportRunRecord,
    WebhookEndpointRecord,
    WebhookEventRecord,
    WebhookDeliveryRecord,
    AccessRequestRecord,
]
