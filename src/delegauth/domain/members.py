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
from delegauth.domain.catalogue import Catalogue, CatalogueSource, as_source
from delegauth.domain.entities import AuditEvent, Grant, Role, User
from delegauth.domain.expiry import (
    KEEP,
    parse_valid_until,
    require_may_give_until,
    valid_until_text,
)
from delegauth.domain.ids import USER, parse_id
from delegauth.domain.ports import Clock, PolicyListener, Store, ignore_change
from delegauth.errors import InvalidInput, NotFound

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
            require_may_give(actor, wanted)
            if valid_until is KEEP:
                until = target.valid_until
            require_may_give_until(actor, until)
            before = _snapshot(target)
            previous = Grant(**vars(target))
            target.permissions = wanted
            target.valid_until = until
            target.updated_at = now
            target.version += 1
            version = self._store.put_grant(target, previous)
            self._audit(actor_id, "grant.updated", target, before, _snapshot(target), now)
        self._changed(version)
        return Change(target, version)

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
