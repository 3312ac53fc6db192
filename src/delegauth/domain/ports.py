"""What the domain needs from the outside world, as Protocols.

Storage implements Store (delegauth.storage.store.PeeweeStore); the mail package
implements MailComposer; delegauth.passwords implements PasswordHasher.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from delegauth.domain.entities import (
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
        self, invitation: Invitation, area: Area, inviter: User, token: str, locale: str
    ) -> OutgoingMail: ...


class Store(Protocol):
    """Persistence for the domain. Every method joins the caller's transaction."""

    def transaction(self) -> AbstractContextManager[None]: ...

    # users and areas
    def add_user(self, user: User) -> None: ...
    def update_user(self, user: User) -> None: ...
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

    # grants: writing one writes its Casbin rules and a change-log entry too
    def get_grant(self, area_id: str, user_id: str) -> Grant | None: ...
    def list_area_grants(self, area_id: str) -> list[Grant]: ...
    def list_user_grants(self, user_id: str) -> list[Grant]: ...
    def put_grant(self, grant: Grant, previous: Grant | None) -> int: ...
    def delete_grant(self, grant: Grant) -> int: ...

    # audit and mail
    def append_audit(self, event: AuditEvent) -> None: ...
    def list_audit(self, area_id: str, before_id: int | None, limit: int) -> list[AuditEvent]: ...
    def enqueue_mail(self, mail: OutgoingMail, now: datetime) -> None: ...
