"""JSON shapes of domain objects, in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from delegauth.domain.accounts import AreaAccess
from delegauth.domain.catalogue import Catalogue
from delegauth.domain.entities import Area, AuditEvent, Grant, Invitation, User
from delegauth.domain.members import Member

__all__ = [
    "area_view",
    "audit_view",
    "catalogue_view",
    "grant_view",
    "invitation_view",
    "member_view",
    "timestamp",
    "user_view",
]


def timestamp(value: datetime) -> str:
    """RFC 3339 in UTC, to the second."""
    return value.replace(microsecond=0).isoformat() + "Z"


def user_view(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "locale": user.locale,
        "email_verified": user.email_verified,
        "time_zone": user.time_zone or None,
    }


def area_view(area: Area) -> dict[str, Any]:
    return {"id": area.id, "name": area.name, "owner": area.owner_id}


def access_view(access: AreaAccess) -> dict[str, Any]:
    return {
        "id": access.area.id,
        "name": access.area.name,
        "role": str(access.role),
        "permissions": access.permissions.to_json(),
    }


def invitation_view(inv: Invitation, area: Area | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": inv.id,
        "area": inv.area_id,
        "email": inv.email,
        "permissions": inv.permissions.to_json(),
        "status": str(inv.status),
        "invited_by": inv.invited_by,
        "expires_at": timestamp(inv.expires_at),
        "created_at": timestamp(inv.created_at),
        "sends": inv.sends,
        "valid_until": None if inv.valid_until is None else timestamp(inv.valid_until),
        "language": inv.mail_locale or None,
    }
    if area is not None:
        body["area_name"] = area.name
    return body


def grant_view(grant: Grant) -> dict[str, Any]:
    return {
        "area": grant.area_id,
        "user": grant.user_id,
        "role": str(grant.role),
        "permissions": grant.held().to_json(),
        "version": grant.version,
        "created_at": timestamp(grant.created_at),
        "updated_at": timestamp(grant.updated_at),
        "valid_until": None if grant.valid_until is None else timestamp(grant.valid_until),
    }


def member_view(member: Member) -> dict[str, Any]:
    body = grant_view(member.grant)
    body["user"] = {"id": member.user.id, "email": member.user.email, "name": member.user.name}
    body["owner"] = str(member.grant.role) == "owner"
    return body


def audit_view(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "actor": event.actor_id,
        "action": event.action,
        "target": event.target,
        "before": event.before,
        "after": event.after,
        "at": timestamp(event.at),
        "policy_hash": event.policy_hash,
    }


def catalogue_view(catalogue: Catalogue, locale: str) -> dict[str, Any]:
    return {
        "locale": locale,
        "permissions": [
            {
                "name": p.name,
                "label": p.label(locale),
                "description": p.description(locale),
                "group": p.group,
                "actions": [f"{t}:{a}" for t, a in p.actions],
                "scoped": p.scoped,
            }
            for p in catalogue
        ],
        "bundles": [
            {
                "name": b.name,
                "grant_as": f"bundle:{b.name}",
                "label": b.label(locale),
                "description": b.description(locale),
                "permissions": list(b.permissions),
            }
            for b in catalogue.bundles.values()
        ],
    }
