"""The Client Area pages: User Management, Invite New User, modify and remove access,
My invitations and Switch account. Server-rendered over the same domain services as
the JSON API; every form has CSRF protection; English or Spanish.

The current Client Area of a browser session is in the URL (/areas/<id>/…); every page
checks that the signed-in user may act there, as the API does.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from urllib.parse import quote

import falcon

from delegauth.api.body import read_form
from delegauth.api.catalogue import negotiate_locale
from delegauth.api.pages import error_page, field_value, render
from delegauth.api.params import parse_count
from delegauth.api.problems import status_for
from delegauth.api.verification_pages import mask_email
from delegauth.domain.accounts import Accounts, AreaAccess
from delegauth.domain.catalogue import ALL, MANAGE_USERS, Catalogue, PermissionSet
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import Role, User
from delegauth.domain.invitations import Invitations
from delegauth.domain.members import Member, Members
from delegauth.domain.ports import Store
from delegauth.errors import (
    AlreadyMember,
    DelegauthError,
    Escalation,
    Forbidden,
    InvalidInput,
    NotFound,
)
from delegauth.pages.sessions import BrowserSessions
from delegauth.pages.text import TEXT, error_text, t
from delegauth.storage.oauth_store import SessionRow

__all__ = ["Console"]


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


class Console:
    """All the Client Area pages; ``routes()`` lists them for the app."""

    def __init__(
        self,
        accounts: Accounts,
        invitations: Invitations,
        members: Members,
        store: Store,
        sessions: BrowserSessions,
        catalogue: Callable[[], Catalogue],
    ) -> None:
        self._accounts = accounts
        self._invitations = invitations
        self._members = members
        self._store = store
        self._sessions = sessions
        self._catalogue = catalogue

    def routes(self) -> list[tuple[str, object]]:
        return [
            ("/areas", _Areas(self)),
            ("/areas/{area_id}", _AreaHome(self)),
            ("/areas/{area_id}/users", _UserManagement(self)),
            ("/areas/{area_id}/activity", _Activity(self)),
            ("/areas/{area_id}/users/invite", _Invite(self)),
            ("/areas/{area_id}/users/{user_id}/edit", _Edit(self)),
            ("/areas/{area_id}/users/{user_id}/remove", _Remove(self)),
            ("/areas/{area_id}/invitations/{invitation_id}/{action}", _InvitationAction(self)),
            ("/invitations", _Mine(self)),
            ("/invitations/accept", _AcceptLink(self)),
            ("/invitations/{invitation_id}/{action}", _Answer(self)),
        ]

    # -- shared pieces ---------------------------------------------------------------

    def catalogue(self) -> Catalogue:
        return self._catalogue()  # the policy in force, after any reload

    def session(self, req: falcon.Request) -> SessionRow:
        session = self._sessions.current(req)
        if session is None:
            raise falcon.HTTPSeeOther("/signin?return_to=" + quote(req.relative_uri, safe=""))
        return session

    def csrf_ok(self, session: SessionRow, form: dict[str, list[str]]) -> bool:
        return self._sessions.check_csrf(session, field_value(form, "csrf"))

    def posted(
        self, req: falcon.Request, resp: falcon.Response
    ) -> tuple[str, SessionRow, dict[str, list[str]]] | None:
        """A form post from a signed-in user with the session's CSRF token; else None
        (after answering 403)."""
        locale = negotiate_locale(req)
        session = self.session(req)
        form = read_form(req)
        if not self.csrf_ok(session, form):
            error_page(resp, locale, t(locale, "error.csrf"), 403)
            return None
        return locale, session, form

    def header(self, locale: str, session: SessionRow, area_id: str | None) -> str:
        """The account menu, offering only what the user may do in the current area."""
        user = self._accounts.get_user(session.user_id)
        areas = self._accounts.areas_of(user.id)
        current = self.access(areas, area_id)
        items = []
        where = ""
        if current is not None:
            home = f"/areas/{escape(current.area.id)}"
            items.append(f'<li><a href="{home}">{t(locale, "area.home")}</a></li>')
            if may_manage(current):
                items.append(
                    f'<li><a href="{home}/users">{t(locale, "nav.user_management")}</a></li>'
                )
                items.append(
                    f'<li><a href="{home}/activity">{t(locale, "activity.title")}</a></li>'
                )
            where = (
                f'<p class="where"><span class="hint">{t(locale, "area.current")}:</span> '
                f'<a href="{home}">{escape(current.area.name)}</a></p>'
            )
        items.append(f'<li><a href="/invitations">{t(locale, "mine.title")}</a></li>')
        if len(areas) > 1:
            items.append(f'<li><a href="/areas">{t(locale, "nav.switch")}</a></li>')
        items.append(
            f'<li><form method="post" action="/signout">{_hidden("csrf", session.csrf)}'
            f'<button type="submit" class="link">{t(locale, "signout")}</button></form></li>'
        )
        who = escape(user.name or user.email)
        return (
            f'<header class="top">{where}'
            f'<nav aria-label="{escape(t(locale, "nav.account"))}">'
            '<details class="menu">'
            f"<summary>{who}</summary><ul>{''.join(items)}</ul></details></nav></header>"
        )

    @staticmethod
    def access(areas: list[AreaAccess], area_id: str | None) -> AreaAccess | None:
        """The user's access to ``area_id``; with no area named, their only area if one."""
        if area_id is None:
            return areas[0] if len(areas) == 1 else None
        return next((a for a in areas if a.area.id == area_id), None)

    def perms_text(self, locale: str, perms: PermissionSet) -> str:
        return ", ".join(self.perm_labels(locale, perms))

    def perm_labels(self, locale: str, perms: PermissionSet) -> list[str]:
        if perms.all:
            return [t(locale, "um.all")]
        catalogue = self.catalogue()
        return [
            catalogue.get(n).label(locale) if n in catalogue else n
            for n in catalogue.names() + sorted(perms.names - set(catalogue.names()))
            if n in perms.names
        ]

    def chooser(
        self,
        locale: str,
        selected: PermissionSet | None,
        error: str = "",
        *,
        access: str | None = None,
        ticked: list[str] | None = None,
    ) -> str:
        """The "all, or some from a list that drops down" control, grouped, with bundles.

        The list shows only while "some" is chosen (CSS :has()); a refused post comes
        back as it was sent (``access`` and ``ticked``), with the list open if ambiguous.
        """
        catalogue = self.catalogue()
        if access is None:
            access = "all" if selected is None or selected.all else "some"
            ticked = [] if selected is None or selected.all else sorted(selected.names)
        names = set(ticked or ())
        groups: dict[str, list[str]] = {}
        for perm in catalogue:
            checked = " checked" if perm.name in names else ""
            groups.setdefault(perm.group, []).append(
                f'<div class="choice"><input type="checkbox" id="perm-{perm.name}"'
                f' name="permission" value="{perm.name}"{checked}'
                f' aria-describedby="perm-{perm.name}-hint">'
                f'<div><label for="perm-{perm.name}">{escape(perm.label(locale))}</label>'
                f'<span class="hint" id="perm-{perm.name}-hint">'
                f"{escape(perm.description(locale))}</span></div></div>"
            )
        bundles = "".join(
            f'<div class="choice"><input type="checkbox" id="bundle-{b.name}"'
            f' name="permission" value="bundle:{b.name}"'
            f"{' checked' if 'bundle:' + b.name in names else ''}"
            f' aria-describedby="bundle-{b.name}-hint">'
            f'<div><label for="bundle-{b.name}">{escape(b.label(locale))}</label>'
            f'<span class="hint" id="bundle-{b.name}-hint">{escape(b.description(locale))}'
            f"</span></div></div>"
            for b in catalogue.bundles.values()
        )
        listing = "".join(
            f'<fieldset class="group"><legend>{escape(_group_label(locale, group))}</legend>'
            f"{''.join(items)}</fieldset>"
            for group, items in groups.items()
        )
        if bundles:
            listing = (
                f'<fieldset class="group"><legend>{t(locale, "invite.bundles")}</legend>'
                f"{bundles}</fieldset>{listing}"
            )
        alert = (
            f'<p class="error" role="alert" id="perm-error">{escape(error)}</p>' if error else ""
        )
        ambiguous = access == "all" and bool(names)
        described = ' aria-describedby="perm-error"' if error else ""
        return (
            f'<fieldset class="access{" ambiguous" if ambiguous else ""}"{described}>'
            f"<legend>{t(locale, 'invite.access')}</legend>{alert}"
            f'<div class="choice"><input type="radio" id="access-all" name="access" value="all"'
            f'{" checked" if access == "all" else ""} required><label for="access-all">'
            f"{t(locale, 'invite.all')}</label></div>"
            f'<div class="choice"><input type="radio" id="access-some" name="access"'
            f' value="some"{" checked" if access == "some" else ""} required>'
            f'<label for="access-some">{t(locale, "invite.some")}</label></div>'
            f'<div class="permissions">{listing}</div></fieldset>'
        )

    @staticmethod
    def choice(locale: str, form: dict[str, list[str]]) -> tuple[object, str]:
        """What the chooser asks for ("all" or the ticked names), or an error to show on
        the form: "all" with ticks is ambiguous and refused, never guessed."""
        access = field_value(form, "access")
        ticked = form.get("permission", [])
        if access == "all":
            return (ALL, "") if not ticked else (None, t(locale, "invite.ambiguous"))
        if access == "some":
            return (ticked, "") if ticked else (None, t(locale, "invite.pick"))
        return None, t(locale, "invite.pick_access")

    def fail(
        self,
        resp: falcon.Response,
        locale: str,
        ex: DelegauthError,
        session: SessionRow | None = None,
        area_id: str | None = None,
    ) -> None:
        """An error page in the user's words, with the menu and a way back."""
        header, back = "", ""
        if session is not None:
            header = self.header(locale, session, area_id)
            areas = self._accounts.areas_of(session.user_id)
            current = self.access(areas, area_id)
            if current is not None:
                back = (
                    f'<p><a href="/areas/{escape(current.area.id)}">'
                    f"{escape(t(locale, 'area.back', area=current.area.name))}</a></p>"
                )
            elif areas:
                back = f'<p><a href="/">{t(locale, "area.home")}</a></p>'
        status = status_for(ex)
        title = {403: "error.forbidden_title", 404: "error.not_found_title"}.get(
            status, "error.title"
        )
        render(
            resp,
            locale,
            t(locale, title),
            f'<p class="error" role="alert">{escape(error_text(locale, ex))}</p>{back}',
            status,
            header=header,
        )


def may_manage(access: AreaAccess) -> bool:
    """Whether User Management and Activity are open to this user in this area."""
    return access.role is Role.OWNER or access.permissions.has(MANAGE_USERS)


def _flash(locale: str, req: falcon.Request) -> str:
    """The success message of the action that redirected here (?done=<code>)."""
    done = req.get_param("done") or ""
    if done not in _DONE:
        return ""
    return f'<p class="notice" role="status">{escape(t(locale, "done." + done))}</p>'


_DONE = ("saved", "removed", "resent", "cancelled", "left", "declined")


class _Base:
    def __init__(self, console: Console) -> None:
        self.c = console


class _Areas(_Base):
    """Switch account: every Client Area the user can reach, by its account name, with
    their role there; choosing one opens that area's home."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        areas = self.c._accounts.areas_of(session.user_id)
        items = "".join(
            f'<li class="card"><a href="/areas/{escape(a.area.id)}">{escape(a.area.name)}</a>'
            f'<span class="hint">'
            f"{escape(t(locale, 'areas.your_role', role=t(locale, f'role.{a.role}')))}"
            f"</span></li>"
            for a in areas
        )
        render(
            resp,
            locale,
            t(locale, "chooser.title"),
            _flash(locale, req) + f'<ul class="plain">{items}</ul>',
            header=self.c.header(locale, session, None),
        )


class _AreaHome(_Base):
    """Where everyone lands after choosing an area: which Client Area this is, their
    role and permissions in it, and only the things they may do there."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        areas = self.c._accounts.areas_of(session.user_id)
        current = self.c.access(areas, area_id)
        if current is None:
            self.c.fail(resp, locale, NotFound("no such area"), session)
            return
        name = current.area.name
        perms = "".join(
            f"<li>{escape(label)}</li>" for label in self.c.perm_labels(locale, current.permissions)
        )
        home = f"/areas/{escape(area_id)}"
        tasks = []
        if may_manage(current):
            tasks.append((f"{home}/users", "nav.user_management", "area.um_hint"))
            tasks.append((f"{home}/activity", "activity.title", "area.activity_hint"))
        tasks.append(("/invitations", "mine.title", "area.mine_hint"))
        if len(areas) > 1:
            tasks.append(("/areas", "nav.switch", "area.switch_hint"))
        task_items = "".join(
            f'<li><a href="{href}">{t(locale, label)}</a>'
            f'<span class="hint">{t(locale, hint)}</span></li>'
            for href, label, hint in tasks
        )
        body = (
            f"{_flash(locale, req)}<p>{escape(t(locale, 'area.you_are_in', area=name))}</p>"
            f'<dl class="facts"><dt>{t(locale, "area.role")}</dt>'
            f"<dd>{t(locale, f'role.{current.role}')}</dd>"
            f"<dt>{t(locale, 'area.permissions')}</dt><dd><ul>{perms}</ul></dd></dl>"
            f"<h2>{t(locale, 'area.can_do')}</h2>"
            f'<ul class="tasks">{task_items}</ul>'
        )
        render(
            resp,
            locale,
            t(locale, "area.title", area=name),
            body,
            header=self.c.header(locale, session, area_id),
        )


class _UserManagement(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        try:
            members = self.c._members.listing(session.user_id, area_id)
            pending = self.c._invitations.list_for_area(session.user_id, area_id)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        csrf = _hidden("csrf", session.csrf)
        lab = {  # each cell's column, shown beside it when the rows stack on phones
            key: escape(t(locale, msg))
            for key, msg in (
                ("user", "um.user"),
                ("perms", "um.permissions"),
                ("actions", "um.actions"),
                ("email", "signin.email"),
                ("expires", "um.expires"),
            )
        }
        rows = []
        for m in members:
            who = escape(m.user.name or m.user.email)
            email = escape(m.user.email)
            if m.grant.role is Role.OWNER:
                actions = f'<span class="badge">{t(locale, "um.owner")}</span>'
            elif m.user.id == session.user_id:
                actions = (
                    f'<a href="/areas/{area_id}/users/{m.user.id}/remove">'
                    f"{t(locale, 'um.leave')}</a>"
                )
            else:
                actions = (
                    f'<a href="/areas/{area_id}/users/{m.user.id}/edit">'
                    f"{t(locale, 'um.modify')}</a> · "
                    f'<a href="/areas/{area_id}/users/{m.user.id}/remove">'
                    f"{t(locale, 'um.remove')}</a>"
                )
            rows.append(
                f'<tr><td data-label="{lab["user"]}">{who}<br><span class="hint">{email}</span>'
                f'</td><td data-label="{lab["perms"]}">'
                f"{escape(self.c.perms_text(locale, m.grant.held()))}</td>"
                f'<td data-label="{lab["actions"]}">{actions}</td></tr>'
            )
        table = (
            f'<h2>{t(locale, "um.linked")}</h2><table class="stack"><thead><tr>'
            f'<th scope="col">{t(locale, "um.user")}</th>'
            f'<th scope="col">{t(locale, "um.permissions")}</th>'
            f'<th scope="col">{t(locale, "um.actions")}</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        inv_rows = "".join(
            f'<tr><td data-label="{lab["email"]}">{escape(i.email)}</td>'
            f'<td data-label="{lab["perms"]}">'
            f"{escape(self.c.perms_text(locale, i.permissions))}</td>"
            f'<td data-label="{lab["expires"]}">{i.expires_at:%Y-%m-%d}</td>'
            f'<td data-label="{lab["actions"]}">'
            f'<a href="/areas/{area_id}/invitations/{i.id}/edit">{t(locale, "um.edit")}</a> '
            f'<form method="post" action="/areas/{area_id}/invitations/{i.id}/resend"'
            f' class="inline">{csrf}<button type="submit" class="secondary">'
            f"{t(locale, 'um.resend')}</button></form> "
            f'<form method="post" action="/areas/{area_id}/invitations/{i.id}/cancel"'
            f' class="inline">{csrf}<button type="submit" class="secondary">'
            f"{t(locale, 'um.cancel')}</button></form></td></tr>"
            for i in pending
        )
        invitations = f"<h2>{t(locale, 'um.pending')}</h2>" + (
            f'<table class="stack"><thead><tr><th scope="col">{t(locale, "signin.email")}</th>'
            f'<th scope="col">{t(locale, "um.permissions")}</th>'
            f'<th scope="col">{t(locale, "um.expires")}</th>'
            f'<th scope="col">{t(locale, "um.actions")}</th></tr></thead>'
            f"<tbody>{inv_rows}</tbody></table>"
            if pending
            else f"<p>{t(locale, 'um.none_pending')}</p>"
        )
        notice = req.get_param("sent")
        flash = (
            f'<p class="notice" role="status">{escape(t(locale, "invite.sent", email=notice))}</p>'
            if notice
            else _flash(locale, req)
        )
        button = (
            f'<p><a class="button" href="/areas/{area_id}/users/invite">'
            f"{t(locale, 'um.invite')}</a></p>"
        )
        render(
            resp,
            locale,
            t(locale, "um.title"),
            flash + button + table + invitations,
            header=self.c.header(locale, session, area_id),
            wide=True,
        )


class _Invite(_Base):
    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str,
        form: dict[str, list[str]] | None = None,
        email_error: str = "",
        perm_error: str = "",
        status: int = 200,
    ) -> None:
        """The form, empty or as it was posted (email and ticks kept) with its errors."""
        locale = negotiate_locale(req)
        email = field_value(form, "email") if form else ""
        email_alert = (
            f'<p class="error" role="alert" id="email-error">{escape(email_error)}</p>'
            if email_error
            else ""
        )
        described = ' aria-describedby="email-error"' if email_error else ""
        chooser = (
            self.c.chooser(
                locale,
                None,
                perm_error,
                access=field_value(form, "access"),
                ticked=form.get("permission", []),
            )
            if form
            else self.c.chooser(locale, None)
        )
        body = (
            f'<form method="post" action="/areas/{escape(area_id)}/users/invite">'
            f"{_hidden('csrf', session.csrf)}"
            f'<label for="email">{t(locale, "invite.email")}</label>{email_alert}'
            f'<input id="email" name="email" type="email" required value="{escape(email)}"'
            f"{described}>{chooser}"
            f'<button type="submit">{t(locale, "invite.send")}</button></form>'
        )
        render(
            resp,
            locale,
            t(locale, "invite.title"),
            body,
            status,
            header=self.c.header(locale, session, area_id),
            wide=True,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        session = self.c.session(req)
        try:
            self.c._invitations.list_for_area(session.user_id, area_id)  # may they invite?
        except DelegauthError as ex:
            self.c.fail(resp, negotiate_locale(req), ex, session, area_id)
            return
        self._form(req, resp, session, area_id)

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        email = field_value(form, "email")
        chosen, problem = self.c.choice(locale, form)
        if problem:
            self._form(req, resp, session, area_id, form, perm_error=problem, status=400)
            return
        try:
            inv, _created = self.c._invitations.invite(session.user_id, area_id, email, chosen)
        except (InvalidInput, AlreadyMember, Escalation) as ex:
            message = error_text(locale, ex)
            if isinstance(ex, AlreadyMember) and self._is_self(session, email):
                message = t(locale, "problem.invite_self")
            on_email = ex.field == "email"
            self._form(
                req,
                resp,
                session,
                area_id,
                form,
                email_error=message if on_email else "",
                perm_error="" if on_email else message,
                status=status_for(ex),
            )
            return
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?sent={quote(inv.email)}")

    def _is_self(self, session: SessionRow, email: str) -> bool:
        try:
            return canonical_email(email) == self.c._accounts.get_user(session.user_id).email
        except DelegauthError:
            return False


class _Edit(_Base):
    """Modify permissions of a member."""

    def _member(self, session: SessionRow, area_id: str, user_id: str) -> Member | None:
        for m in self.c._members.listing(session.user_id, area_id):
            if m.user.id == user_id:
                return m
        return None

    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str,
        member: Member,
        form: dict[str, list[str]] | None = None,
        error: str = "",
        status: int = 200,
    ) -> None:
        locale = negotiate_locale(req)
        chooser = (
            self.c.chooser(
                locale,
                None,
                error,
                access=field_value(form, "access"),
                ticked=form.get("permission", []),
            )
            if form
            else self.c.chooser(locale, member.grant.permissions)
        )
        body = (
            f'<form method="post" action="/areas/{escape(area_id)}/users/{member.user.id}/edit">'
            f"{_hidden('csrf', session.csrf)}{chooser}"
            f'<button type="submit">{t(locale, "edit.save")}</button></form>'
        )
        render(
            resp,
            locale,
            t(locale, "edit.title", who=member.user.name or member.user.email),
            body,
            status,
            header=self.c.header(locale, session, area_id),
            wide=True,
        )

    def _find(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> tuple[SessionRow, Member] | None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        try:
            member = self._member(session, area_id, user_id)
            if member is None:
                raise NotFound("no such member")
            if member.grant.role is Role.OWNER:
                raise Forbidden("the owner cannot be changed", code="owner_fixed")
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return None
        return session, member

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        found = self._find(req, resp, area_id, user_id)
        if found is not None:
            self._form(req, resp, found[0], area_id, found[1])

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        chosen, problem = self.c.choice(locale, form)
        try:
            if not problem:
                self.c._members.change(session.user_id, area_id, user_id, chosen)
                raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?done=saved")
        except (InvalidInput, Escalation) as ex:
            problem = error_text(locale, ex)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        found = self._find(req, resp, area_id, user_id)
        if found is not None:
            self._form(req, resp, session, area_id, found[1], form, problem, 400)


class _Remove(_Base):
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        try:
            user = _who_in_area(self.c, session.user_id, area_id, user_id)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        who = user.name or user.email
        back = f"/areas/{escape(area_id)}" + ("" if user_id == session.user_id else "/users")
        body = (
            f"<p>{escape(t(locale, 'remove.confirm', who=who))}</p>"
            f'<form method="post" action="/areas/{escape(area_id)}/users/{escape(user_id)}/remove"'
            f' class="actions-row">{_hidden("csrf", session.csrf)}'
            f'<a class="button secondary" href="{back}" autofocus>{t(locale, "remove.back")}</a>'
            f'<button type="submit" class="danger">{t(locale, "remove.yes")}</button></form>'
        )
        render(
            resp,
            locale,
            t(locale, "remove.title"),
            body,
            header=self.c.header(locale, session, area_id),
        )

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, _form = posted
        try:
            self.c._members.remove(session.user_id, area_id, user_id)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        if user_id == session.user_id:
            raise falcon.HTTPSeeOther("/areas?done=left")
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?done=removed")


def _who_in_area(c: Console, actor_id: str, area_id: str, user_id: str) -> User:
    """The member ``user_id`` of an area: oneself (leaving), or one the actor manages."""
    if actor_id == user_id:
        if c.access(c._accounts.areas_of(actor_id), area_id) is None:
            raise NotFound("no such area")
        return c._accounts.get_user(actor_id)
    for m in c._members.listing(actor_id, area_id):
        if m.user.id == user_id:
            return m.user
    raise NotFound("no such member")


class _InvitationAction(_Base):
    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str,
        invitation_id: str,
        form: dict[str, list[str]] | None = None,
        error: str = "",
        status: int = 200,
    ) -> None:
        locale = negotiate_locale(req)
        try:
            pending = self.c._invitations.list_for_area(session.user_id, area_id)
            inv = next((i for i in pending if i.id == invitation_id), None)
            if inv is None:
                raise NotFound("no such invitation")
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        chooser = (
            self.c.chooser(
                locale,
                None,
                error,
                access=field_value(form, "access"),
                ticked=form.get("permission", []),
            )
            if form
            else self.c.chooser(locale, inv.permissions)
        )
        body = (
            f'<form method="post" action="/areas/{escape(area_id)}/invitations/{inv.id}/edit">'
            f"{_hidden('csrf', session.csrf)}{chooser}"
            f'<button type="submit">{t(locale, "edit.save")}</button></form>'
        )
        render(
            resp,
            locale,
            t(locale, "edit.title", who=inv.email),
            body,
            status,
            header=self.c.header(locale, session, area_id),
            wide=True,
        )

    def on_get(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        area_id: str,
        invitation_id: str,
        action: str,
    ) -> None:
        session = self.c.session(req)
        if action != "edit":
            raise falcon.HTTPNotFound()
        self._form(req, resp, session, area_id, invitation_id)

    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        area_id: str,
        invitation_id: str,
        action: str,
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        if action not in ("resend", "cancel", "edit"):
            raise falcon.HTTPNotFound()
        try:
            if action == "resend":
                self.c._invitations.resend(session.user_id, area_id, invitation_id)
                raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?done=resent")
            if action == "cancel":
                self.c._invitations.cancel(session.user_id, area_id, invitation_id)
                raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?done=cancelled")
            chosen, problem = self.c.choice(locale, form)
            if not problem:
                self.c._invitations.edit(session.user_id, area_id, invitation_id, chosen)
                raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?done=saved")
        except (InvalidInput, Escalation) as ex:
            if action != "edit":
                self.c.fail(resp, locale, ex, session, area_id)
                return
            problem = error_text(locale, ex)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        self._form(req, resp, session, area_id, invitation_id, form, problem, 400)


class _Activity(_Base):
    """The area's audit trail, newest first, paged."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        before = parse_count(req.get_param("before"))
        try:
            events = self.c._members.audit(session.user_id, area_id, before, PAGE)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex, session, area_id)
            return
        lab = [escape(t(locale, f"activity.{k}")) for k in ("when", "who", "what", "details")]
        rows = []
        for e in events:
            actor = self.c._store.get_user(e.actor_id) if e.actor_id else None
            who = (actor.name or actor.email) if actor else "—"
            rows.append(
                f'<tr><td data-label="{lab[0]}">{e.at:%Y-%m-%d %H:%M}</td>'
                f'<td data-label="{lab[1]}">{escape(who)}</td>'
                f'<td data-label="{lab[2]}">{escape(_action_label(locale, e.action))}</td>'
                f'<td data-label="{lab[3]}">'
                f"{escape(_describe(e.after or e.before or {}))}</td></tr>"
            )
        more = (
            f'<p><a href="/areas/{area_id}/activity?before={events[-1].id}">'
            f"{t(locale, 'activity.older')}</a></p>"
            if len(events) == PAGE
            else ""
        )
        table = (
            f'<table class="stack"><thead><tr><th scope="col">{t(locale, "activity.when")}</th>'
            f'<th scope="col">{t(locale, "activity.who")}</th>'
            f'<th scope="col">{t(locale, "activity.what")}</th>'
            f'<th scope="col">{t(locale, "activity.details")}</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{more}"
        )
        render(
            resp,
            locale,
            t(locale, "activity.title"),
            table,
            header=self.c.header(locale, session, area_id),
            wide=True,
        )


PAGE = 25


def _group_label(locale: str, group: str) -> str:
    key = "group." + group
    return t(locale, key) if key in TEXT["en"] else group.capitalize()


def _action_label(locale: str, action: str) -> str:
    key = "activity." + action
    return t(locale, key) if key in TEXT["en"] else action


def _describe(snapshot: dict[str, object]) -> str:
    parts = []
    for key in ("email", "permissions", "role", "status"):
        if key in snapshot:
            value = snapshot[key]
            parts.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return "; ".join(parts)


class _Mine(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.show(req, resp, self.c.session(req))

    def show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        error: str = "",
        status: int = 200,
    ) -> None:
        """My invitations, with a refused answer's error on the page itself."""
        locale = negotiate_locale(req)
        user = self.c._accounts.get_user(session.user_id)
        csrf = _hidden("csrf", session.csrf)
        items = []
        for inv in self.c._invitations.addressed_to(user):
            area = self.c._store.get_area(inv.area_id)
            inviter = self.c._store.get_user(inv.invited_by)
            who = (inviter.name or inviter.email) if inviter else ""
            line = t(locale, "mine.from", who=who, area=area.name if area else "")
            items.append(
                f'<li class="card"><p>{escape(line)}</p>'
                f'<p class="hint">{escape(self.c.perms_text(locale, inv.permissions))}</p>'
                f'<form method="post" action="/invitations/{inv.id}/accept" class="inline">'
                f'{csrf}<button type="submit">{t(locale, "mine.accept")}</button></form> '
                f'<form method="post" action="/invitations/{inv.id}/decline" class="inline">'
                f'{csrf}<button type="submit" class="secondary">{t(locale, "mine.decline")}'
                f"</button></form></li>"
            )
        notice = req.get_param("accepted") if not error else None
        if error:
            flash = f'<p class="error" role="alert">{escape(error)}</p>'
        elif notice:
            flash = (
                f'<p class="notice" role="status">'
                f"{escape(t(locale, 'mine.accepted', area=notice))}</p>"
            )
        else:
            flash = _flash(locale, req)
        if req.get_param("verified") and user.email_verified and not error:
            flash += f'<p class="notice" role="status">{t(locale, "verify.done")}</p>'
        body = flash + (
            f'<ul class="plain">{"".join(items)}</ul>'
            if items
            else f"<p>{t(locale, 'mine.none')}</p>"
        )
        render(
            resp,
            locale,
            t(locale, "mine.title"),
            body,
            status,
            header=self.c.header(locale, session, None),
        )


class _Answer(_Base):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, invitation_id: str, action: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, _form = posted
        if action not in ("accept", "decline"):
            raise falcon.HTTPNotFound()
        try:
            if action == "accept":
                change = self.c._invitations.accept(session.user_id, invitation_id)
                area = self.c._store.get_area(change.grant.area_id) if change.grant else None
                raise falcon.HTTPSeeOther(
                    "/invitations?accepted=" + quote(area.name if area else "")
                )
            self.c._invitations.decline(session.user_id, invitation_id)
            raise falcon.HTTPSeeOther("/invitations?done=declined")
        except DelegauthError as ex:
            _Mine(self.c).show(req, resp, session, error_text(locale, ex), status_for(ex))


class _AcceptLink(_Base):
    """The emailed link: sign in (or sign up with the token) first, then My invitations.

    Signed in, the person is told what stands in the way: a dead link, another account
    (the address masked, with a way to switch), or an email still to verify (a link is
    mailed that brings them back here).
    """

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        token = (req.get_param("token") or "")[:200]
        back = "/invitations/accept?token=" + quote(token, safe="")
        session = self.c._sessions.current(req)
        if session is None:
            raise falcon.HTTPSeeOther(
                "/signup?invitation_token="
                + quote(token, safe="")
                + "&return_to="
                + quote(back, safe="")
            )
        user = self.c._accounts.get_user(session.user_id)
        preview = self.c._invitations.preview(token)
        header = self.c.header(locale, session, None)
        if preview is None:
            body = (
                f"<p>{t(locale, 'link.gone')}</p>"
                f'<p><a class="button" href="/invitations">{t(locale, "mine.title")}</a></p>'
            )
            render(resp, locale, t(locale, "link.gone_title"), body, 410, header=header)
            return
        inv = preview.invitation
        if inv.email != user.email:
            masked = mask_email(inv.email)
            body = (
                f"<p>{escape(t(locale, 'link.wrong_sent_to', masked=masked))}</p>"
                f"<p>{escape(t(locale, 'link.wrong_signed_in', email=user.email))}</p>"
                f"<p>{escape(t(locale, 'link.wrong_switch', masked=masked))}</p>"
                f'<form method="post" action="/signout">{_hidden("csrf", session.csrf)}'
                f'{_hidden("return_to", back)}<button type="submit">'
                f"{t(locale, 'link.wrong_button')}</button></form>"
            )
            render(resp, locale, t(locale, "link.wrong_title"), body, 403, header=header)
            return
        if not user.email_verified:
            offer = t(locale, "mine.from", who=preview.inviter_name, area=preview.area_name)
            body = (
                f'<p class="invited">{escape(offer)}</p>'
                f"<p>{escape(t(locale, 'link.verify', email=user.email))}</p>"
                '<form method="post" action="/verify-email/resend">'
                f"{_hidden('csrf', self.c._sessions.pre_csrf(req, resp))}"
                f'{_hidden("return_to", back)}<button type="submit">'
                f"{t(locale, 'link.verify_send')}</button></form>"
            )
            render(resp, locale, t(locale, "link.verify_title"), body, 403, header=header)
            return
        raise falcon.HTTPSeeOther(
            "/invitations" + ("?verified=1" if req.get_param("verified") else "")
        )
