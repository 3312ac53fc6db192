"""The domain's records: users, Client Areas, invitations, grants and audit events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from delegauth.domain.catalogue import PermissionSet
from delegauth.domain.ids import (
    PERM_ALL,
    ROLE_OWNER,
    casbin_area,
    casbin_perm,
    casbin_until,
    casbin_user,
)

__all__ = [
    "AccessRequest",
    "AccessRequestStatus",
    "AuditEvent",
    "Area",
    "Grant",
    "Invitation",
    "InvitationStatus",
    "OutgoingMail",
    "Role",
    "User",
]


class Role(StrEnum):
    OWNER = "owner"
    DELEGATE = "delegate"


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class AccessRequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"  # shown once a pending request passes expires_at; never stored


@dataclass
class User:
    id: str
    email: str  # canonical
    name: str
    locale: str
    password_hash: str
    email_verified: bool
    created_at: datetime
    time_zone: str = ""  # IANA name the browser last reported (domain.time_zones); "" unknown


@dataclass
class Area:
    id: str
    name: str
    owner_id: str
    created_at: datetime


@dataclass
class Invitation:
    id: str
    area_id: str
    email: str  # canonical
    permissions: PermissionSet
    invited_by: str
    status: InvitationStatus
    token_hash: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    sends: int = 1
    valid_until: datetime | None = None  # the grant it becomes ends then (naive UTC)
    mail_locale: str = ""  # the language the inviter chose for its mail ("" none chosen)

    def is_open(self, now: datetime) -> bool:
        return self.status is InvitationStatus.PENDING and now < self.expires_at


@dataclass
class AccessRequest:
    """A user asks for permissions in an area: from inside it, or by its owner's email.

    ``area_id`` is None when the email asked has no account (or is the requester's own):
    such a request is stored and answered exactly like the others, and reaches nobody.
    ``asked_email`` is the canonical email it was addressed to ("" when asked from inside).
    """

    id: str
    requester_id: str
    area_id: str | None
    asked_email: str
    permissions: PermissionSet
    message: str
    status: AccessRequestStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    granted: PermissionSet | None = None

    def is_open(self, now: datetime) -> bool:
        return self.status is AccessRequestStatus.PENDING and now < self.expires_at

    def status_at(self, now: datetime) -> AccessRequestStatus:
        if self.status is AccessRequestStatus.PENDING and now >= self.expires_at:
            return AccessRequestStatus.EXPIRED
        return self.status


@dataclass
class Grant:
    """User ``user_id`` may act in ``area_id`` with ``permissions`` (owners hold everything)."""

    area_id: str
    user_id: str
    role: Role
    permissions: PermissionSet
    granted_by: str | None
    invitation_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    valid_until: datetime | None = None  # access ends at this instant (naive UTC)

    def ended(self, now: datetime) -> bool:
        """True from the instant the grant ends on (never for a grant without an end)."""
        return self.valid_until is not None and now >= self.valid_until

    def casbin_roles(self) -> list[str]:
        """The Casbin roles this grant puts the user in, within the area's domain."""
        if self.role is Role.OWNER:
            return [ROLE_OWNER]
        if self.permissions.all:
            return [PERM_ALL]
        # A permission on single resources is one role per resource: perm:<name>@<id>.
        return [casbin_perm(n) for n in sorted(self.permissions.names)] + [
            casbin_perm(n, rid) for n, rid in sorted(self.permissions.scoped)
        ]

    def casbin_rules(self) -> list[tuple[str, ...]]:
        """The g lines (subject, role, domain[, end]) that record this grant."""
        sub, dom = casbin_user(self.user_id), casbin_area(self.area_id)
        if self.valid_until is None:
            return [(sub, role, dom) for role in self.casbin_roles()]
        end = casbin_until(self.valid_until)
        return [(sub, role, dom, end) for role in self.casbin_roles()]

    def held(self) -> PermissionSet:
        return PermissionSet.everything() if self.role is Role.OWNER else self.permissions


@dataclass
class AuditEvent:
    area_id: str
    actor_id: str | None
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: datetime
    id: int | None = None
    policy_hash: str | None = None  # the policy files in force when it was written


@dataclass
class OutgoingMail:
    to: str
    subject: str
    text: str
    html: str | None = None
    kind: str = "generic"
    headers: dict[str, str] = field(default_factory=dict)
