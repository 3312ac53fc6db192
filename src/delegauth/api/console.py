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
from delegauth.api.pages_text import TEXT, t
from delegauth.api.params import parse_count
from delegauth.api.problems import status_for
from delegauth.api.sessions import BrowserSessions
from delegauth.domain.accounts import Accounts
from delegauth.domain.catalogue import ALL, Catalogue, PermissionSet
from delegauth.domain.entities import Role
from delegauth.domain.invitations import Invitations
from delegauth.domain.members import Member, Members
from delegauth.domain.ports import Store
from delegauth.errors import DelegauthError, InvalidInput
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
        user = self._accounts.get_user(session.user_id)
        areas = self._accounts.areas_of(user.id)
        current = area_id or (areas[0].area.id if areas else "")
        items = [
            f'<li><a href="/areas/{escape(current)}/users">'
            f"{t(locale, 'nav.user_management')}</a></li>"
        ]
        if len(areas) > 1:
            items.append(f'<li><a href="/areas">{t(locale, "nav.switch")}</a></li>')
        items.append(f'<li><a href="/invitations">{t(locale, "mine.title")}</a></li>')
        items.append(
            f'<li><form method="post" action="/signout">{_hidden("csrf", session.csrf)}'
            f'<button type="submit" class="link">{t(locale, "signout")}</button></form></li>'
        )
        who = escape(user.name or user.email)
        return (
            f'<header class="top"><nav aria-label="{escape(t(locale, "nav.account"))}">'
            '<details class="menu">'
            f"<summary>{who}</summary><ul>{''.join(items)}</ul></details></nav></header>"
        )

    def perms_text(self, locale: str, perms: PermissionSet) -> str:
        if perms.all:
            return t(locale, "um.all")
        catalogue = self.catalogue()
        labels = [
            catalogue.get(n).label(locale) if n in catalogue else n
            for n in catalogue.names() + sorted(perms.names - set(catalogue.names()))
            if n in perms.names
        ]
        return ", ".join(labels)

    def chooser(self, locale: str, selected: PermissionSet | None, error: str = "") -> str:
        """The "all or some from the list" control, grouped, with descriptions and bundles."""
        catalogue = self.catalogue()
        all_checked = selected is None or selected.all
        names = set() if selected is None or selected.all else set(selected.names)
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
            f' name="permission" value="bundle:{b.name}" aria-describedby="bundle-{b.name}-hint">'
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
        return (
            f"<fieldset><legend>{t(locale, 'invite.access')}</legend>{alert}"
            f'<div class="choice"><input type="radio" id="access-all" name="access" value="all"'
            f'{" checked" if all_checked else ""}><label for="access-all">'
            f"{t(locale, 'invite.all')}</label></div>"
            f'<div class="choice"><input type="radio" id="access-some" name="access"'
            f' value="some"{"" if all_checked else " checked"}><label for="access-some">'
            f"{t(locale, 'invite.some')}</label></div>"
            f'<div class="permissions">{listing}</div></fieldset>'
        )

    @staticmethod
    def chosen(form: dict[str, list[str]]) -> object:
        if field_value(form, "access") == "all":
            return ALL
        return form.get("permission", [])

    def fail(self, resp: falcon.Response, locale: str, ex: DelegauthError) -> None:
        error_page(resp, locale, ex.detail, status_for(ex))


class _Base:
    def __init__(self, console: Console) -> None:
        self.c = console


class _Areas(_Base):
    """Switch account: every Client Area the user can reach, with their role there."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        areas = self.c._accounts.areas_of(session.user_id)
        items = "".join(
            f'<li class="choice"><a href="/areas/{escape(a.area.id)}/users">'
            f'{escape(a.area.name)}</a> <span class="role">'
            f"({escape(t(locale, f'role.{a.role}'))})</span></li>"
            for a in areas
        )
        render(
            resp,
            locale,
            t(locale, "areas.title"),
            f'<ul class="plain">{items}</ul>',
            header=self.c.header(locale, session, None),
        )


class _UserManagement(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        try:
            members = self.c._members.listing(session.user_id, area_id)
            pending = self.c._invitations.list_for_area(session.user_id, area_id)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        csrf = _hidden("csrf", session.csrf)
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
                f'<tr><td>{who}<br><span class="hint">{email}</span></td>'
                f"<td>{escape(self.c.perms_text(locale, m.grant.held()))}</td>"
                f"<td>{actions}</td></tr>"
            )
        table = (
            f"<h2>{t(locale, 'um.linked')}</h2><table><thead><tr>"
            f'<th scope="col">{t(locale, "um.user")}</th>'
            f'<th scope="col">{t(locale, "um.permissions")}</th>'
            f'<th scope="col">{t(locale, "um.actions")}</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        inv_rows = "".join(
            f"<tr><td>{escape(i.email)}</td>"
            f"<td>{escape(self.c.perms_text(locale, i.permissions))}</td>"
            f"<td>{i.expires_at:%Y-%m-%d}</td><td>"
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
            f'<table><thead><tr><th scope="col">{t(locale, "signin.email")}</th>'
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
            else ""
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
        email: str = "",
        selected: PermissionSet | None = None,
        email_error: str = "",
        perm_error: str = "",
        status: int = 200,
    ) -> None:
        locale = negotiate_locale(req)
        email_alert = (
            f'<p class="error" role="alert" id="email-error">{escape(email_error)}</p>'
            if email_error
            else ""
        )
        described = ' aria-describedby="email-error"' if email_error else ""
        body = (
            f'<form method="post" action="/areas/{area_id}/users/invite">'
            f"{_hidden('csrf', session.csrf)}"
            f'<label for="email">{t(locale, "invite.email")}</label>{email_alert}'
            f'<input id="email" name="email" type="email" required value="{escape(email)}"'
            f"{described}>"
            f"{self.c.chooser(locale, selected, perm_error)}"
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
            self.c.fail(resp, negotiate_locale(req), ex)
            return
        self._form(req, resp, session, area_id)

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        email = field_value(form, "email")
        chosen = self.c.chosen(form)
        if chosen == []:
            self._form(
                req,
                resp,
                session,
                area_id,
                email,
                PermissionSet.of(()),
                perm_error=t(locale, "invite.pick"),
                status=400,
            )
            return
        try:
            inv, _created = self.c._invitations.invite(session.user_id, area_id, email, chosen)
        except InvalidInput as ex:
            on_email = ex.field == "email"
            self._form(
                req,
                resp,
                session,
                area_id,
                email,
                email_error=ex.detail if on_email else "",
                perm_error="" if on_email else ex.detail,
                status=400,
            )
            return
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?sent={quote(inv.email)}")


class _Edit(_Base):
    def _member(self, session: SessionRow, area_id: str, user_id: str) -> Member | None:
        for m in self.c._members.listing(session.user_id, area_id):
            if m.user.id == user_id:
                return m
        return None

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        try:
            member = self._member(session, area_id, user_id)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        if member is None or member.grant.role is Role.OWNER:
            error_page(resp, locale, t(locale, "error.title"), 404)
            return
        who = member.user.name or member.user.email
        body = (
            f'<form method="post" action="/areas/{area_id}/users/{user_id}/edit">'
            f"{_hidden('csrf', session.csrf)}{self.c.chooser(locale, member.grant.permissions)}"
            f'<button type="submit">{t(locale, "edit.save")}</button></form>'
        )
        render(
            resp,
            locale,
            t(locale, "edit.title", who=who),
            body,
            header=self.c.header(locale, session, area_id),
            wide=True,
        )

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        try:
            self.c._members.change(session.user_id, area_id, user_id, self.c.chosen(form))
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/users")


class _Remove(_Base):
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        user = self.c._store.get_user(user_id) if user_id.startswith("u_") else None
        who = (user.name or user.email) if user else user_id
        body = (
            f"<p>{escape(t(locale, 'remove.confirm', who=who))}</p>"
            f'<form method="post" action="/areas/{area_id}/users/{escape(user_id)}/remove">'
            f'{_hidden("csrf", session.csrf)}<button type="submit">{t(locale, "remove.yes")}'
            f'</button> <a href="/areas/{area_id}/users">{t(locale, "remove.back")}</a></form>'
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
            self.c.fail(resp, locale, ex)
            return
        target = "/areas" if user_id == session.user_id else f"/areas/{area_id}/users"
        raise falcon.HTTPSeeOther(target)


class _InvitationAction(_Base):
    def on_get(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        area_id: str,
        invitation_id: str,
        action: str,
    ) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        if action != "edit":
            raise falcon.HTTPNotFound()
        try:
            pending = self.c._invitations.list_for_area(session.user_id, area_id)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        inv = next((i for i in pending if i.id == invitation_id), None)
        if inv is None:
            error_page(resp, locale, t(locale, "error.title"), 404)
            return
        body = (
            f'<form method="post" action="/areas/{area_id}/invitations/{inv.id}/edit">'
            f"{_hidden('csrf', session.csrf)}{self.c.chooser(locale, inv.permissions)}"
            f'<button type="submit">{t(locale, "edit.save")}</button></form>'
        )
        render(
            resp,
            locale,
            t(locale, "edit.title", who=inv.email),
            body,
            header=self.c.header(locale, session, area_id),
            wide=True,
        )

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
        try:
            if action == "resend":
                self.c._invitations.resend(session.user_id, area_id, invitation_id)
            elif action == "cancel":
                self.c._invitations.cancel(session.user_id, area_id, invitation_id)
            elif action == "edit":
                self.c._invitations.edit(
                    session.user_id, area_id, invitation_id, self.c.chosen(form)
                )
            else:
                raise falcon.HTTPNotFound()
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/users")


class _Activity(_Base):
    """The area's audit trail, newest first, paged."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        before = parse_count(req.get_param("before"))
        try:
            events = self.c._members.audit(session.user_id, area_id, before, PAGE)
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        rows = []
        for e in events:
            actor = self.c._store.get_user(e.actor_id) if e.actor_id else None
            who = (actor.name or actor.email) if actor else "—"
            rows.append(
                f"<tr><td>{e.at:%Y-%m-%d %H:%M}</td><td>{escape(who)}</td>"
                f"<td>{escape(_action_label(locale, e.action))}</td>"
                f"<td>{escape(_describe(e.after or e.before or {}))}</td></tr>"
            )
        more = (
            f'<p><a href="/areas/{area_id}/activity?before={events[-1].id}">'
            f"{t(locale, 'activity.older')}</a></p>"
            if len(events) == PAGE
            else ""
        )
        table = (
            f'<table><thead><tr><th scope="col">{t(locale, "activity.when")}</th>'
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
        locale = negotiate_locale(req)
        session = self.c.session(req)
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
        notice = req.get_param("accepted")
        flash = (
            f'<p class="notice" role="status">{escape(t(locale, "mine.accepted", area=notice))}</p>'
            if notice
            else ""
        )
        body = flash + (
            f'<ul class="plain">{"".join(items)}</ul>'
            if items
            else f"<p>{t(locale, 'mine.none')}</p>"
        )
        render(
            resp, locale, t(locale, "mine.title"), body, header=self.c.header(locale, session, None)
        )


class _Answer(_Base):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, invitation_id: str, action: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, _form = posted
        try:
            if action == "accept":
                grant = self.c._invitations.accept(session.user_id, invitation_id).grant
                assert grant is not None
                area = self.c._store.get_area(grant.area_id)
                raise falcon.HTTPSeeOther(
                    "/invitations?accepted=" + quote(area.name if area else "")
                )
            if action == "decline":
                self.c._invitations.decline(session.user_id, invitation_id)
                raise falcon.HTTPSeeOther("/invitations")
        except DelegauthError as ex:
            self.c.fail(resp, locale, ex)
            return
        raise falcon.HTTPNotFound()


class _AcceptLink(_Base):
    """The emailed link: sign in (or sign up with the token) first, then the same page."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        token = (req.get_param("token") or "")[:200]
        session = self.c._sessions.current(req)
        if session is None:
            back = "/invitations/accept?token=" + quote(token, safe="")
            raise falcon.HTTPSeeOther(
                "/signup?invitation_token="
                + quote(token, safe="")
                + "&return_to="
                + quote(back, safe="")
            )
        raise falcon.HTTPSeeOther("/invitations")
