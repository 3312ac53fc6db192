"""PeeweeStore: the domain's Store on SQLite or PostgreSQL.

A grant write puts the grant row, its Casbin g lines and a change-log entry in
the caller's transaction, so decisions in every process see all of it or none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee

from delegauth import metrics
from delegauth.domain.catalogue import ALL, PermissionSet
from delegauth.domain.entities import (
    AccessRequest,
    AccessRequestStatus,
    Area,
    AuditEvent,
    Grant,
    Invitation,
    InvitationStatus,
    OutgoingMail,
    Role,
    User,
)
from delegauth.domain.ids import casbin_area, casbin_until, casbin_user
from delegauth.errors import Conflict, Unavailable
from delegauth.storage.casbin_adapter import PeeweeCasbinAdapter
from delegauth.storage.db import is_postgres
from delegauth.storage.records import (
    AccessRequestRecord,
    AreaRecord,
    AuditRecord,
    ChangeRecord,
    GrantRecord,
    InvitationRecord,
    MailRecord,
    RefreshTokenRecord,
    SecretRecord,
    UserRecord,
)
from delegauth.storage.webhooks import PeeweeWebhookStore

__all__ = ["PeeweeStore", "append_change"]

# Held for the rest of the transaction: change-log versions commit in the order they
# are numbered, so a reader polling "version > N" never skips one that commits late.
CHANGE_LOCK_KEY = 0x63686C67
CHANGE_CHANNEL = "delegauth_policy_changes"


def _perms_to_text(perms: PermissionSet) -> str:
    return json.dumps(perms.to_json())


def _perms_from_text(text: str) -> PermissionSet:
    value = json.loads(text)
    return PermissionSet.everything() if value == ALL else PermissionSet.of(value)


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def in_commit_order(db: peewee.Database) -> None:
    """Hold the change lock to the end of the transaction (PostgreSQL; SQLite writers are
    serialized already): change-log versions and audit ids taken under it commit in the
    order they were taken."""
    if is_postgres(db):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOCK_KEY,))


# The subject of a change-log entry that holds several subjects' role sets in its domain
# (an import writes one an area and batch): its roles are group_roles' text.
GROUP_SUBJECT = "*"


def group_roles(entries: Iterable[tuple[str, str, str]]) -> str:
    """The roles text of a GROUP_SUBJECT entry: a JSON list of [subject, roles, end], from
    (subject, roles as JSON text, end) of subjects that are checked ids ("user:" and an id)
    and ends made by casbin_until, which need no escaping."""
    return "[" + ", ".join(f'["{sub}", {roles}, "{end}"]' for sub, roles, end in entries) + "]"


def grouped_changes(roles: str) -> list[tuple[str, tuple[str, ...], str]]:
    """The (subject, roles, end) a GROUP_SUBJECT entry holds, in the order written."""
    return [(str(sub), tuple(held), str(end)) for sub, held, end in json.loads(roles)]


def append_change(
    db: peewee.Database, domain: str, subject: str, roles: list[str], end: str = ""
) -> int:
    """Append a change-log entry in the caller's transaction; return its version.

    Every worker and replica follows the log (storage/feed.py): a subject's full role set
    in a domain (with its g lines' ``end``, "" for none), several subjects' in one entry
    (GROUP_SUBJECT, written by an import), or a revoked access token
    (domain.revocations.REVOKED_DOMAIN).
    """
    in_commit_order(db)
    version = int(
        ChangeRecord.insert(
            domain=domain,
            subject=subject,
            roles=json.dumps(roles),
            at=datetime.now(UTC).replace(tzinfo=None),
            valid_until=end,
        ).execute()
    )
    if is_postgres(db):
        # Delivered at commit, to every replica LISTENing (storage/feed.py).
        db.execute_sql("SELECT pg_notify(%s, %s)", (CHANGE_CHANNEL, str(version)))
    return version


class PeeweeStore:
    def __init__(self, db: peewee.Database, policy_hash: Callable[[], str] | None = None) -> None:
        self.db = db
        self.rules = PeeweeCasbinAdapter(db)
        self._local = threading.local()
        # Audit events record the hash of the policy files in force when they were written.
        self._policy_hash = policy_hash or (lambda: "")
        self.webhooks = PeeweeWebhookStore(db)
        # Called once a transaction that queued webhook deliveries has committed (the
        # dispatcher's wake-up); other processes find them by polling.
        self.on_published: Callable[[], None] = lambda: None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        outermost = not hasattr(self._local, "actions")
        if outermost:
            self._local.actions = []
            self._local.published = False
        try:
            with self.db.connection_context(), self.db.atomic():
                yield
            if outermost:
                for action in self._local.actions:  # counted once committed
                    metrics.count_change(action)
                if self._local.published:
                    self.on_published()
        except peewee.IntegrityError as ex:
            raise Conflict("the change conflicts with a concurrent one; try again") from ex
        except peewee.OperationalError as ex:
            raise Unavailable("the database is unavailable") from ex
        except peewee.InterfaceError as ex:
            raise Unavailable("the database is unavailable") from ex
        finally:
            if outermost:
                del self._local.actions
                del self._local.published

    # -- users and areas -------------------------------------------------------------

    def add_user(self, user: User) -> None:
        UserRecord.insert(**vars(user)).execute()

    def update_user(self, user: User) -> None:
        fields = {k: v for k, v in vars(user).items() if k != "id"}
        UserRecord.update(**fields).where(UserRecord.id == user.id).execute()

    def set_user_time_zone(self, user_id: str, zone: str) -> None:
        UserRecord.update(time_zone=zone).where(UserRecord.id == user_id).execute()

    def get_user(self, user_id: str) -> User | None:
        row = UserRecord.get_or_none(UserRecord.id == user_id)
        return None if row is None else User(**row.__data__)

    def find_user_by_email(self, email: str) -> User | None:
        row = UserRecord.get_or_none(UserRecord.email == email)
        return None if row is None else User(**row.__data__)

    def add_area(self, area: Area) -> None:
        AreaRecord.insert(**vars(area)).execute()

    def get_area(self, area_id: str) -> Area | None:
        row = AreaRecord.get_or_none(AreaRecord.id == area_id)
        return None if row is None else Area(**row.__data__)

    # -- one-time secrets ------------------------------------------------------------

    def add_secret(self, kind: str, token_hash: str, user_id: str, expires_at: datetime) -> None:
        SecretRecord.insert(
            token_hash=token_hash, kind=kind, user_id=user_id, expires_at=expires_at
        ).execute()

    def consume_secret(self, kind: str, token_hash: str, now: datetime) -> str | None:
        row = SecretRecord.get_or_none(
            (SecretRecord.token_hash == token_hash) & (SecretRecord.kind == kind)
        )
        if row is None or row.used_at is not None or row.expires_at <= now:
            return None
        used = (
            SecretRecord.update(used_at=now)
            .where((SecretRecord.token_hash == token_hash) & SecretRecord.used_at.is_null())
            .execute()
        )
        return row.user_id if used == 1 else None

    def peek_secret(self, kind: str, token_hash: str, now: datetime) -> str | None:
        row = SecretRecord.get_or_none(
            (SecretRecord.token_hash == token_hash) & (SecretRecord.kind == kind)
        )
        if row is None or row.used_at is not None or row.expires_at <= now:
            return None
        return str(row.user_id)

    # -- invitations -----------------------------------------------------------------

    @staticmethod
    def _inv_row(inv: Invitation) -> dict[str, Any]:
        data = dict(vars(inv))
        data["permissions"] = _perms_to_text(inv.permissions)
        data["status"] = str(inv.status)
        return data

    @staticmethod
    def _inv(row: InvitationRecord) -> Invitation:
        data = dict(row.__data__)
        data["permissions"] = _perms_from_text(data["permissions"])
        data["status"] = InvitationStatus(data["status"])
        data["token_hash"] = data["token_hash"] or ""
        return Invitation(**data)

    def add_invitation(self, invitation: Invitation) -> None:
        InvitationRecord.insert(**self._inv_row(invitation)).execute()

    def update_invitation(self, invitation: Invitation) -> None:
        data = self._inv_row(invitation)
        del data["id"]
        InvitationRecord.update(**data).where(InvitationRecord.id == invitation.id).execute()

    def transition_invitation(
        self, invitation_id: str, to: InvitationStatus, now: datetime
    ) -> bool:
        """Move a pending invitation to ``to``; False if it was no longer pending.

        The emailed secret dies with the pending state, so a used link cannot be replayed.
        """
        changed = (
            InvitationRecord.update(status=str(to), updated_at=now, token_hash=None)
            .where(
                (InvitationRecord.id == invitation_id)
                & (InvitationRecord.status == str(InvitationStatus.PENDING))
            )
            .execute()
        )
        return changed == 1

    def get_invitation(self, invitation_id: str) -> Invitation | None:
        row = InvitationRecord.get_or_none(InvitationRecord.id == invitation_id)
        return None if row is None else self._inv(row)

    def find_invitation_by_token(self, token_hash: str) -> Invitation | None:
        row = InvitationRecord.get_or_none(InvitationRecord.token_hash == token_hash)
        return None if row is None else self._inv(row)

    def find_pending_invitation(self, area_id: str, email: str) -> Invitation | None:
        row = InvitationRecord.get_or_none(
            (InvitationRecord.area_id == area_id)
            & (InvitationRecord.email == email)
            & (InvitationRecord.status == str(InvitationStatus.PENDING))
        )
        return None if row is None else self._inv(row)

    def list_area_invitations(self, area_id: str) -> list[Invitation]:
        rows = (
            InvitationRecord.select()
            .where(
                (InvitationRecord.area_id == area_id)
                & (InvitationRecord.status == str(InvitationStatus.PENDING))
            )
            .order_by(InvitationRecord.created_at, InvitationRecord.id)
        )
        return [self._inv(r) for r in rows]

    def list_invitations_for(self, email: str) -> list[Invitation]:
        rows = (
            InvitationRecord.select()
            .where(
                (InvitationRecord.email == email)
                & (InvitationRecord.status == str(InvitationStatus.PENDING))
            )
            .order_by(InvitationRecord.created_at, InvitationRecord.id)
        )
        return [self._inv(r) for r in rows]

    # -- access requests -------------------------------------------------------------

    @staticmethod
    def _request(row: AccessRequestRecord) -> AccessRequest:
        data = dict(row.__data__)
        data["permissions"] = _perms_from_text(data["permissions"])
        data["status"] = AccessRequestStatus(data["status"])
        data["granted"] = _perms_from_text(data["granted"]) if data["granted"] else None
        return AccessRequest(**data)

    def add_access_request(self, request: AccessRequest) -> None:
        data = dict(vars(request))
        data["permissions"] = _perms_to_text(request.permissions)
        data["status"] = str(request.status)
        data["granted"] = None if request.granted is None else _perms_to_text(request.granted)
        AccessRequestRecord.insert(**data).execute()

    def get_access_request(self, request_id: str) -> AccessRequest | None:
        row = AccessRequestRecord.get_or_none(AccessRequestRecord.id == request_id)
        return None if row is None else self._request(row)

    def finish_access_request(
        self,
        request_id: str,
        to: AccessRequestStatus,
        now: datetime,
        decided_by: str | None = None,
        granted: PermissionSet | None = None,
    ) -> bool:
        """Move a pending request to ``to``; False if it was no longer pending (one answer)."""
        changed = (
            AccessRequestRecord.update(
                status=str(to),
                updated_at=now,
                decided_by=decided_by,
                granted=None if granted is None else _perms_to_text(granted),
            )
            .where(
                (AccessRequestRecord.id == request_id)
                & (AccessRequestRecord.status == str(AccessRequestStatus.PENDING))
            )
            .execute()
        )
        return changed == 1

    def list_area_access_requests(self, area_id: str, now: datetime) -> list[AccessRequest]:
        """The area's open requests, oldest first."""
        rows = (
            AccessRequestRecord.select()
            .where(
                (AccessRequestRecord.area_id == area_id)
                & (AccessRequestRecord.status == str(AccessRequestStatus.PENDING))
                & (AccessRequestRecord.expires_at > now)
            )
            .order_by(AccessRequestRecord.created_at, AccessRequestRecord.id)
        )
        return [self._request(r) for r in rows]

    def list_user_access_requests(self, user_id: str, limit: int) -> list[AccessRequest]:
        """The user's own requests, newest first."""
        rows = (
            AccessRequestRecord.select()
            .where(AccessRequestRecord.requester_id == user_id)
            .order_by(AccessRequestRecord.created_at.desc(), AccessRequestRecord.id)
            .limit(limit)
        )
        return [self._request(r) for r in rows]

    def find_open_access_request(
        self, requester_id: str, area_id: str | None, asked_email: str, now: datetime
    ) -> AccessRequest | None:
        """The requester's open request to the same area (or, by email, the same address)."""
        query = AccessRequestRecord.select().where(
            (AccessRequestRecord.requester_id == requester_id)
            & (AccessRequestRecord.status == str(AccessRequestStatus.PENDING))
            & (AccessRequestRecord.expires_at > now)
        )
        if asked_email:
            query = query.where(AccessRequestRecord.asked_email == asked_email)
        else:
            query = query.where(
                (AccessRequestRecord.area_id == area_id) & (AccessRequestRecord.asked_email == "")
            )
        row = query.first()
        return None if row is None else self._request(row)

    def count_access_requests(
        self,
        since: datetime,
        *,
        requester_id: str | None = None,
        area_id: str | None = None,
        asked_email: str | None = None,
        by_email: bool | None = None,
    ) -> int:
        """Requests created since ``since`` matching every filter given (for rate limits)."""
        query = AccessRequestRecord.select().where(AccessRequestRecord.created_at >= since)
        if requester_id is not None:
            query = query.where(AccessRequestRecord.requester_id == requester_id)
        if area_id is not None:
            query = query.where(AccessRequestRecord.area_id == area_id)
        if asked_email is not None:
            query = query.where(AccessRequestRecord.asked_email == asked_email)
        if by_email is not None:
            asked = AccessRequestRecord.asked_email
            query = query.where(asked != "" if by_email else asked == "")
        return int(query.count())

    def first_owned_area(self, user_id: str) -> Area | None:
        """The area the user owns (their own, made at sign-up: the oldest if several)."""
        row = (
            AreaRecord.select()
            .where(AreaRecord.owner_id == user_id)
            .order_by(AreaRecord.created_at, AreaRecord.id)
            .first()
        )
        return None if row is None else Area(**row.__data__)

    # -- grants ----------------------------------------------------------------------

    @staticmethod
    def _grant(row: GrantRecord) -> Grant:
        data = dict(row.__data__)
        for bookkeeping in ("id", "reminder_for", "lapse_for"):
            data.pop(bookkeeping, None)
        data["role"] = Role(data["role"])
        data["permissions"] = _perms_from_text(data["permissions"])
        return Grant(**data)

    def get_grant(self, area_id: str, user_id: str) -> Grant | None:
        row = GrantRecord.get_or_none(
            (GrantRecord.area_id == area_id) & (GrantRecord.user_id == user_id)
        )
        return None if row is None else self._grant(row)

    def list_area_grants(self, area_id: str) -> list[Grant]:
        rows = GrantRecord.select().where(GrantRecord.area_id == area_id).order_by(GrantRecord.id)
        return [self._grant(r) for r in rows]

    def list_user_grants(self, user_id: str) -> list[Grant]:
        rows = GrantRecord.select().where(GrantRecord.user_id == user_id).order_by(GrantRecord.id)
        return [self._grant(r) for r in rows]

    def put_grant(self, grant: Grant, previous: Grant | None) -> int:
        """Insert or update a grant with its g lines; return the change-log version."""
        data = dict(vars(grant))
        data["role"] = str(grant.role)
        data["permissions"] = _perms_to_text(grant.permissions)
        if previous is None:
            GrantRecord.insert(**data).execute()
        else:
            changed = (
                GrantRecord.update(**data)
                .where(
                    (GrantRecord.area_id == grant.area_id)
                    & (GrantRecord.user_id == grant.user_id)
                    & (GrantRecord.version == previous.version)
                )
                .execute()
            )
            if changed != 1:
                raise Conflict("the grant was changed concurrently; reload and try again")
        if previous is not None:
            self._revoke_refresh(grant.area_id, grant.user_id)
        old = set(previous.casbin_rules()) if previous is not None else set()
        new = set(grant.casbin_rules())
        if old - new:
            self.rules.remove_policies("g", "g", sorted(old - new))
        if new - old:
            self.rules.add_policies("g", "g", sorted(new - old))
        end = casbin_until(grant.valid_until) if grant.valid_until is not None else ""
        return self._log_change(grant.area_id, grant.user_id, grant.casbin_roles(), end)

    def delete_grant(self, grant: Grant) -> int:
        deleted = (
            GrantRecord.delete()
            .where(
                (GrantRecord.area_id == grant.area_id)
                & (GrantRecord.user_id == grant.user_id)
                & (GrantRecord.version == grant.version)
            )
            .execute()
        )
        if deleted != 1:
            raise Conflict("the grant was changed concurrently; reload and try again")
        self.rules.remove_filtered_policy(
            "g", "g", 0, casbin_user(grant.user_id), "", casbin_area(grant.area_id)
        )
        self._revoke_refresh(grant.area_id, grant.user_id)
        return self._log_change(grant.area_id, grant.user_id, [])

    @staticmethod
    def _revoke_refresh(area_id: str, user_id: str) -> None:
        """A changed or removed grant ends the refresh tokens issued under it."""
        RefreshTokenRecord.update(revoked_at=datetime.now(UTC).replace(tzinfo=None)).where(
            (RefreshTokenRecord.user_id == user_id)
            & (RefreshTokenRecord.area_id == area_id)
            & RefreshTokenRecord.revoked_at.is_null()
        ).execute()

    def _log_change(self, area_id: str, user_id: str, roles: list[str], end: str = "") -> int:
        return append_change(
            self.db, casbin_area(area_id), casbin_user(user_id), sorted(roles), end
        )

    # -- grants that end (the expiry sweep) ----------------------------------------------

    def grants_to_remind(self, now: datetime, ahead: timedelta, limit: int) -> list[Grant]:
        """Grants ending within ``ahead`` of ``now`` (and not yet ended) whose delegate has
        not been reminded of that end."""
        rows = (
            GrantRecord.select()
            .where(
                GrantRecord.valid_until.is_null(False)
                & (GrantRecord.valid_until > now)
                & (GrantRecord.valid_until <= now + ahead)
                & (
                    GrantRecord.reminder_for.is_null()
                    | (GrantRecord.reminder_for != GrantRecord.valid_until)
                )
            )
            .order_by(GrantRecord.valid_until, GrantRecord.id)
            .limit(limit)
        )
        return [self._grant(r) for r in rows]

    def grants_lapsed(self, now: datetime, limit: int) -> list[Grant]:
        """Grants whose end has come and whose lapse is not recorded yet."""
        rows = (
            GrantRecord.select()
            .where(
                GrantRecord.valid_until.is_null(False)
                & (GrantRecord.valid_until <= now)
                & (
                    GrantRecord.lapse_for.is_null()
                    | (GrantRecord.lapse_for != GrantRecord.valid_until)
                )
            )
            .order_by(GrantRecord.valid_until, GrantRecord.id)
            .limit(limit)
        )
        return [self._grant(r) for r in rows]

    def mark_grant(self, grant: Grant, what: str) -> bool:
        """Record that the sweep did ``what`` ("reminder" or "lapse") for the grant's current
        end; False when another sweep did it first or the grant changed meanwhile."""
        column = {"reminder": GrantRecord.reminder_for, "lapse": GrantRecord.lapse_for}[what]
        changed = (
            GrantRecord.update({column: grant.valid_until})
            .where(
                (GrantRecord.area_id == grant.area_id)
                & (GrantRecord.user_id == grant.user_id)
                & (GrantRecord.version == grant.version)
                & (GrantRecord.valid_until == grant.valid_until)
                & (column.is_null() | (column != grant.valid_until))
            )
            .execute()
        )
        return changed == 1

    # -- audit and mail --------------------------------------------------------------

    def append_audit(self, event: AuditEvent) -> None:
        """Record the event and, in the same transaction, publish it (webhook outbox)."""
        getattr(self._local, "actions", []).append(event.action)
        in_commit_order(self.db)  # an export's cursor ("after id N") never skips an event
        audit_id = AuditRecord.insert(
            area_id=event.area_id,
            actor_id=event.actor_id,
            action=event.action,
            target=event.target,
            before=_json(event.before),
            after=_json(event.after),
            at=event.at,
            policy_hash=self._policy_hash() or None,
        ).execute()
        if self.webhooks.publish(event, int(audit_id)) and hasattr(self._local, "published"):
            self._local.published = True

    def list_audit(self, area_id: str, before_id: int | None, limit: int) -> list[AuditEvent]:
        query = AuditRecord.select().where(AuditRecord.area_id == area_id)
        if before_id is not None:
            query = query.where(AuditRecord.id < before_id)
        return self._audit_events(query.order_by(AuditRecord.id.desc()).limit(limit))

    def export_audit(self, area_id: str | None, after_id: int, limit: int) -> list[AuditEvent]:
        """Events with ids past ``after_id``, oldest first (one area's, or all)."""
        query = AuditRecord.select().where(AuditRecord.id > after_id)
        if area_id is not None:
            query = query.where(AuditRecord.area_id == area_id)
        return self._audit_events(query.order_by(AuditRecord.id).limit(limit))

    @staticmethod
    def _audit_events(rows: Any) -> list[AuditEvent]:
        return [
            AuditEvent(
                id=r.id,
                area_id=r.area_id,
                actor_id=r.actor_id,
                action=r.action,
                target=r.target,
                before=json.loads(r.before) if r.before else None,
                after=json.loads(r.after) if r.after else None,
                at=r.at,
                policy_hash=r.policy_hash,
            )
            for r in rows
        ]

    def enqueue_mail(self, mail: OutgoingMail, now: datetime) -> None:
        MailRecord.insert(
            to=mail.to,
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            kind=mail.kind,
            headers=json.dumps(mail.headers),
            status="pending",
            attempts=0,
            next_attempt_at=now - timedelta(seconds=1),
            created_at=now,
        ).execute()
