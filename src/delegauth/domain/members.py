"""The members of an area: list them, change a delegate's permissions, remove, leave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from delegauth.domain.access import (
    require_grant,
    require_manager,
    require_may_give,
    require_may_touch,
)
from delegauth.domain.catalogue import Catalogue, CatalogueSource, PermissionSet, as_source
from delegauth.domain.entities import AuditEvent, Grant, Role, User
from delegauth.domain.expiry import (
    KEEP,
    parse_valid_until,
    require_may_give_until,
    valid_until_text,
)
from delegauth.domain.ids import USER, parse_id
from delegauth.domain.ports import Clock, PolicyListener, Store, ignore_change
from delegauth.errors import Conflict, Forbidden, InvalidInput, NotFound

__all__ = ["Change", "Member", "Members"]

MAX_PAGE = 100


@dataclass(frozen=True)
class Member:
    user: User
    grant: Grant


@dataclass(frozen=True)
class Change:
    """The result of a grant change, with the change-log version it produced."""

    grant: Grant | None
    version: int


def _snapshot(grant: Grant) -> dict[str, object]:
    out: dict[str, object] = {"role": str(grant.role), "permissions": grant.held().to_json()}
    if grant.valid_until is not None:
        out["valid_until"] = valid_until_text(grant.valid_until)
    return out


class Members:
    def __init__(
        self,
        store: Store,
        catalogue: Catalogue | CatalogueSource,
        clock: Clock,
        *,
        on_policy_change: PolicyListener = ignore_change,
    ) -> None:
        self._store = store
        self._catalogue = as_source(catalogue)
        self._clock = clock
        self._changed = on_policy_change

    def listing(self, actor_id: str, area_id: str) -> list[Member]:
        """The owner first, then delegates in the order they joined."""
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, self._clock())
            out = []
            for grant in self._store.list_area_grants(area_id):
                user = self._store.get_user(grant.user_id)
                if user is not None:
                    out.append(Member(user, grant))
        out.sort(key=lambda m: m.grant.role is not Role.OWNER)  # stable: then in join order
        return out

    def change(
        self,
        actor_id: str,
        area_id: str,
        user_id: object,
        permissions: object,
        valid_until: object = KEEP,
    ) -> Change:
        """Change a delegate's grant: ``permissions`` (None keeps them when only the end
        changes) and ``valid_until`` (KEEP: as it is; None: no end; else a future instant,
        see domain.expiry). An ended grant can be given a new end (extended)."""
        target_id = self._parse_user(user_id)
        now = self._clock()
        until = None if valid_until is KEEP else parse_valid_until(valid_until, now)
        with self._store.transaction():
            actor = require_manager(self._store, area_id, actor_id, now)
            target = self._member(area_id, target_id)
            require_may_touch(actor, target)
            wanted = (
                target.permissions
                if permissions is None and valid_until is not KEEP
                else self._catalogue().parse(permissions)
            )
            if valid_until is KEEP:
                until = target.valid_until
            version = self._set(actor, target, wanted, until, now)
        self._changed(version)
        return Change(target, version)

    def add_within(
        self,
        actor_id: str,
        area_id: str,
        user_id: str,
        adding: PermissionSet,
        valid_until: datetime | None,
        now: datetime,
        because: dict[str, object],
    ) -> Change:
        """Give ``user_id`` ``adding`` on top of what they hold in the area (a delegate grant
        ending at ``valid_until`` if they hold nothing there), under the same rules as
        ``change``.

        An end belongs to a whole grant: for someone who already holds a grant it must be
        None (their grant keeps its own end). It joins the caller's transaction and does not
        notify: the caller commits, then passes the version on. ``because`` goes into the
        audit event (what asked for it).
        """
        actor = require_manager(self._store, area_id, actor_id, now)
        target = self._store.get_grant(area_id, user_id)
        if target is not None:
            if target.role is Role.OWNER:
                raise Forbidden("the owner already holds every permission", code="owner_fixed")
            if valid_until is not None:
                raise Conflict(
                    "an end applies to a whole grant: approve without one, then change the"
                    " member's end",
                    field="valid_until",
                    code="member_has_grant",
                )
            require_may_touch(actor, target)
            wanted = target.permissions.union(adding)
            version = self._set(actor, target, wanted, target.valid_until, now, because)
            return Change(target, version)
        require_may_give(actor, adding)
        require_may_give_until(actor, valid_until)
        grant = Grant(
            area_id=area_id,
            user_id=user_id,
            role=Role.DELEGATE,
            permissions=adding,
            granted_by=actor_id,
            invitation_id=None,
            created_at=now,
            updated_at=now,
            valid_until=valid_until,
        )
        version = self._store.put_grant(grant, None)
        self._audit(actor_id, "grant.created", grant, None, {**_snapshot(grant), **because}, now)
        return Change(grant, version)

    def _set(
        self,
        actor: Grant,
        target: Grant,
        wanted: PermissionSet,
        until: datetime | None,
        now: datetime,
        because: dict[str, object] | None = None,
    ) -> int:
        """The one place a grant's permissions and end change: no giving what the actor
        does not hold, nor access that outlasts theirs."""
        require_may_give(actor, wanted)
        require_may_give_until(actor, until)
        before = _snapshot(target)
        previous = Grant(**vars(target))
        target.permissions = wanted
        target.valid_until = until
        target.updated_at = now
        target.version += 1
        version = self._store.put_grant(target, previous)
        after = {**_snapshot(target), **(because or {})}
        self._audit(actor.user_id, "grant.updated", target, before, after, now)
        return version

    def remove(self, actor_id: str, area_id: str, user_id: object) -> Change:
        """Remove a delegate; a delegate may always remove themselves (leave)."""
        target_id = self._parse_user(user_id)
        now = self._clock()
        with self._store.transaction():
            if actor_id == target_id:
                actor = require_grant(self._store, area_id, actor_id)
            else:
                actor = require_manager(self._store, area_id, actor_id, now)
            target = self._member(area_id, target_id)
            require_may_touch(actor, target)
            before = _snapshot(target)
            version = self._store.delete_grant(target)
            action = "grant.left" if actor_id == target_id else "grant.removed"
            self._audit(actor_id, action, target, before, None, now)
        self._changed(version)
        return Change(None, version)

    def audit(
        self, actor_id: str, area_id: str, before_id: int | None = None, limit: int = 50
    ) -> list[AuditEvent]:
        """Audit events, newest first; page with ``before_id`` (the last id seen)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, self._clock())
            return self._store.list_audit(area_id, before_id, limit)

    def _member(self, area_id: str, user_id: str) -> Grant:
        grant = self._store.get_grant(area_id, user_id)
        if grant is None:
            raise NotFound("no such member")
        return grant

    @staticmethod
    def _parse_user(value: object) -> str:
        try:
            return parse_id(value, USER, field="user")
        except InvalidInput as ex:
            raise NotFound("no such member") from ex

    def _audit(
        self,
        actor_id: str,
        action: str,
        target: Grant,
        before: dict[str, object] | None,
        after: dict[str, object] | None,
        now: datetime,
    ) -> None:
        self._store.append_audit(
            AuditEvent(
                target.area_id, actor_id, action, f"user:{target.user_id}", before, after, now
            )
        )
