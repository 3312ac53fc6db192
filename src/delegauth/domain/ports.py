"""What the domain needs from the outside world, as Protocols.

Storage implements Store (delegauth.storage.store.PeeweeStore); the mail package
implements MailComposer; delegauth.passwords implements PasswordHasher.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from delegauth.domain.catalogue import PermissionSet
from delegauth.domain.entities import (
    AccessRequest,
    AccessRequestStatus,
    Area,
    AuditEvent,
    Grant,
    Invitation,
    InvitationStatus,
    OutgoingMail,
    User,
)

__all__ = [
    "Clock",
    "MailComposer",
    "PasswordHasher",
    "PolicyListener",
    "Store",
    "TokenFactory",
    "ignore_change",
]

Clock = Callable[[], datetime]
TokenFactory = Callable[[], str]
# Called after a grant change commits, with the change-log version it produced.
PolicyListener = Callable[[int], None]


def ignore_change(version: int) -> None:
    """The default PolicyListener: other processes learn from the change log."""


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


class MailComposer(Protocol):
    def verification(self, user: User, token: str, return_to: str = "") -> OutgoingMail: ...

    def invitation(
        self,
        invitation: Invitation,
        area: Area,
        inviter: User,
        token: str,
        locale: str,
        invitee: User | None = None,
    ) -> OutgoingMail: ...

    def grant_ending(
        self, grant: Grant, area: Area, delegate: User, owner: User | None = None
    ) -> OutgoingMail: ...

    def access_request(
        self, request: AccessRequest, area: Area, requester: User, owner: User
    ) -> OutgoingMail: ...

    def access_request_answered(
        self,
        request: AccessRequest,
        area: Area,
        requester: User,
        until: datetime | None = None,
    ) -> OutgoingMail: ...


class Store(Protocol):
    """Persistence for the domain. Every method joins the caller's transaction."""

    def transaction(self) -> AbstractContextManager[None]: ...

    # users and areas
    def add_user(self, user: User) -> None: ...
    def update_user(self, user: User) -> None: ...
    def set_user_time_zone(self, user_id: str, zone: str) -> None: ...
    def get_user(self, user_id: str) -> User | None: ...
    def find_user_by_email(self, email: str) -> User | None: ...
    def add_area(self, area: Area) -> None: ...
    def get_area(self, area_id: str) -> Area | None: ...

    # one-time tokens (email verification); only hashes are stored
    def add_secret(
        self, kind: str, token_hash: str, user_id: str, expires_at: datetime
    ) -> None: ...
    def consume_secret(self, kind: str, token_hash: str, now: datetime) -> str | None: ...
    def peek_secret(self, kind: str, token_hash: str, now: datetime) -> str | None: ...

    # invitations
    def add_invitation(self, invitation: Invitation) -> None: ...
    def update_invitation(self, invitation: Invitation) -> None: ...
    def transition_invitation(
        self, invitation_id: str, to: InvitationStatus, now: datetime
    ) -> bool: ...
    def get_invitation(self, invitation_id: str) -> Invitation | None: ...
    def find_invitation_by_token(self, token_hash: str) -> Invitation | None: ...
    def find_pending_invitation(self, area_id: str, email: str) -> Invitation | None: ...
    def list_area_invitations(self, area_id: str) -> list[Invitation]: ...
    def list_invitations_for(self, email: str) -> list[Invitation]: ...

    # access requests
    def add_access_request(self, request: AccessRequest) -> None: ...
    def get_access_request(self, request_id: str) -> AccessRequest | None: ...
    def finish_access_request(
        self,
        request_id: str,
        to: AccessRequestStatus,
        now: datetime,
        decided_by: str | None = None,
        granted: PermissionSet | None = None,
    ) -> bool: ...
    def list_area_access_requests(self, area_id: str, now: datetime) -> list[AccessRequest]: ...
    def list_user_access_requests(self, user_id: str, limit: int) -> list[AccessRequest]: ...
    def find_open_access_request(
        self, requester_id: str, area_id: str | None, asked_email: str, now: datetime
    ) -> AccessRequest | None: ...
    def count_access_requests(
        self,
        since: datetime,
        *,
        requester_id: str | None = None,
        area_id: str | None = None,
        asked_email: str | None = None,
        by_email: bool | None = None,
    ) -> int: ...
    def first_owned_area(self, user_id: str) -> Area | None: ...

    # grants: writing one writes its Casbin rules and a change-log entry too
    def get_grant(self, area_id: str, user_id: str) -> Grant | None: ...
    def list_area_grants(self, area_id: str) -> list[Grant]: ...
    def list_user_grants(self, user_id: str) -> list[Grant]: ...
    def put_grant(self, grant: Grant, previous: Grant | None) -> int: ...
    def delete_grant(self, grant: Grant) -> int: ...

    # grants that end: what the expiry sweep reads and marks
    def grants_to_remind(self, now: datetime, ahead: timedelta, limit: int) -> list[Grant]: ...
    def grants_lapsed(self, now: datetime, limit: int) -> list[Grant]: ...
    def mark_grant(self, grant: Grant, what: str) -> bool: ...

    # audit and mail
    def append_audit(self, event: AuditEvent) -> None: ...
    def list_audit(self, area_id: str, before_id: int | None, limit: int) -> list[AuditEvent]: ...
    def enqueue_mail(self, mail: OutgoingMail, now: datetime) -> None: ...
