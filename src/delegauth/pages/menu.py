"""The signed-in header: which Client Area you are in, and an account menu of only what
you may do there."""

from __future__ import annotations

from delegauth.domain.accounts import Accounts, AreaAccess
from delegauth.domain.catalogue import MANAGE_USERS
from delegauth.domain.entities import Role
from delegauth.pages.rendering import Menu
from delegauth.storage.oauth_store import SessionRow

__all__ = ["AccountMenu", "access_in", "may_manage"]


def may_manage(access: AreaAccess) -> bool:
    """Whether User Management and Activity are open to this user in this area."""
    return access.role is Role.OWNER or access.permissions.has(MANAGE_USERS)


def access_in(areas: list[AreaAccess], area_id: str | None) -> AreaAccess | None:
    """The user's access to ``area_id``; with no area named, their only area if one."""
    if area_id is None:
        return areas[0] if len(areas) == 1 else None
    return next((a for a in areas if a.area.id == area_id), None)


class AccountMenu:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    def __call__(self, session: SessionRow, area_id: str | None) -> Menu:
        user = self._accounts.get_user(session.user_id)
        areas = self._accounts.areas_of(user.id)
        current = access_in(areas, area_id)
        items: list[tuple[str, str]] = []
        where = None
        if current is not None:
            home = f"/areas/{current.area.id}"
            items.append((home, "area.home"))
            if may_manage(current):
                items.append((home + "/users", "nav.user_management"))
                items.append((home + "/activity", "activity.title"))
            if current.role is Role.OWNER:
                items.append((home + "/webhooks", "webhooks.title"))
            where = (current.area.id, current.area.name)
        items.append(("/invitations", "mine.title"))
        if len(areas) > 1:
            items.append(("/areas", "nav.switch"))
        return Menu(who=user.name or user.email, csrf=session.csrf, area=where, items=items)
