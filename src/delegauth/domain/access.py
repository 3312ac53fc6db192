"""Who may manage an area's users, and the no-escalation rule."""

from __future__ import annotations

from datetime import datetime

from delegauth.domain.catalogue import MANAGE_USERS, PermissionSet
from delegauth.domain.entities import Grant, Role
from delegauth.domain.ports import Store
from delegauth.errors import Escalation, Forbidden, NotFound

__all__ = ["require_grant", "require_manager", "require_may_give", "require_may_touch"]


def require_grant(store: Store, area_id: str, actor_id: str, now: datetime | None = None) -> Grant:
    """Return the actor's grant in the area; an area they cannot reach does not exist for them
    (nor does one whose grant has ended by ``now``)."""
    grant = store.get_grant(area_id, actor_id)
    if grant is None or (now is not None and grant.ended(now)):
        raise NotFound("no such area")
    return grant


def require_manager(
    store: Store, area_id: str, actor_id: str, now: datetime | None = None
) -> Grant:
    """Return the actor's grant if they may manage users: the owner, or a delegate with users
    (whose grant has not ended by ``now``)."""
    grant = require_grant(store, area_id, actor_id, now)
    if grant.role is not Role.OWNER and not grant.permissions.has(MANAGE_USERS):
        raise Forbidden("managing users needs the 'users' permission", code="needs_users")
    return grant


def require_may_give(actor: Grant, offered: PermissionSet) -> None:
    if not actor.held().covers(offered):
        raise Escalation("you cannot give permissions you do not hold", field="permissions")


def require_may_touch(actor: Grant, target: Grant) -> None:
    """Nobody changes the owner; a delegate touches only members who hold no more than they do."""
    if target.role is Role.OWNER:
        raise Forbidden("the owner cannot be changed or removed", code="owner_fixed")
    if actor.user_id != target.user_id and not actor.held().covers(target.permissions):
        raise Escalation("this member holds permissions you do not hold")
