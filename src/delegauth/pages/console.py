"""The Client Area pages: the area home, User Management, Invite New User, modify and
remove access, Activity, My invitations, Switch account and the emailed invitation link.

Server-rendered over the same domain services as the JSON API; every form has CSRF
protection. The current Client Area of a browser session is in the URL (/areas/<id>/…);
every page checks that the signed-in user may act there, as the API does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import falcon

from delegauth.api.body import read_form
from delegauth.api.catalogue import negotiate_locale
from delegauth.api.params import parse_count
from delegauth.api.problems import status_for
from delegauth.domain.access_requests import AccessRequests
from delegauth.domain.accounts import Accounts
from delegauth.domain.catalogue import ALL, MAX_RESOURCE_IDS, Catalogue, PermissionSet
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import AccessRequest, Role, User
from delegauth.domain.ids import RESOURCE_ID_RE, SCOPE_SEP
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
from delegauth.pages.forms import field_value, without_lang
from delegauth.pages.menu import AccountMenu, access_in, may_manage
from delegauth.pages.rendering import Flash, Renderer
from delegauth.pages.sessions import BrowserSessions
from delegauth.pages.text import LOCALES, TEXT, error_text, t
from delegauth.pages.verification import mask_email
from delegauth.pages.zones import Zone, remaining, zone_of
from delegauth.storage.oauth_store import SessionRow

__all__ = ["Console"]

# The text field beside a scoped permission's box: the resource ids it is limited to.
SCOPE_FIELD = "scope-"
_SCOPE_SPLIT = re.compile(r"[\s,]+")
_DONE = (
    "saved",
    "removed",
    "resent",
    "cancelled",
    "left",
    "declined",
    # access requests (pages/access_requests.py)
    "requested",
    "asked",
    "withdrawn",
    "approved",
    "request_declined",
)
PAGE = 25


class Console:
    """All the Client Area pages; ``routes()`` lists them for the app."""

    def __init__(
        self,
        pages: Renderer,
        accounts: Accounts,
        invitations: Invitations,
        members: Members,
        store: Store,
        sessions: BrowserSessions,
        catalogue: Callable[[], Catalogue],
        access_requests: AccessRequests,
    ) -> None:
        self.pages = pages
        self.access_requests = access_requests
        self.accounts = accounts
        self.invitations = invitations
        self.members = members
        self.store = store
        self.sessions = sessions
        self.menu = AccountMenu(accounts)
        self._catalogue = catalogue
        self.now: Callable[[], datetime] = sessions.now  # what ends are compared with

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

    @staticmethod
    def flashes(locale: str, req: falcon.Request) -> list[Flash]:
        return _flashes(locale, req)

    def session(self, req: falcon.Request) -> SessionRow:
        session = self.sessions.current(req)
        if session is None:
            back = without_lang(req.relative_uri)
            raise falcon.HTTPSeeOther("/signin?return_to=" + quote(back, safe=""))
        return session

    def posted(
        self, req: falcon.Request, resp: falcon.Response
    ) -> tuple[str, SessionRow, dict[str, list[str]]] | None:
        """A form post from a signed-in user with the session's CSRF token; else None
        (after answering 403)."""
        locale = negotiate_locale(req)
        session = self.session(req)
        form = read_form(req)
        if not self.sessions.check_csrf(session, field_value(form, "csrf")):
            self.pages.error(req, resp, t(locale, "error.csrf"), 403, here="/")
            return None
        return locale, session, form

    def page(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        template: str,
        session: SessionRow,
        where: str | None,
        /,
        **context: Any,
    ) -> None:
        """A signed-in page: the account menu for the area ``where`` and the session's
        CSRF token."""
        context.setdefault("csrf", session.csrf)
        self.pages.render(req, resp, template, menu=self.menu(session, where), **context)

    def wrong_account(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        keys: str,
        sent_to: str,
        back: str,
    ) -> None:
        """An emailed link opened signed in as another account than the one at ``sent_to``:
        a 403 that says so (the address masked) and offers to sign out and come back to
        ``back``. ``keys`` prefixes the page's texts ("link" or "ar")."""
        locale = negotiate_locale(req)
        masked = mask_email(sent_to)
        self.page(
            req,
            resp,
            "link_wrong.html",
            session,
            None,
            title=t(locale, keys + ".wrong_title"),
            status=403,
            sent_to=t(locale, keys + ".wrong_sent_to", masked=masked),
            switch=t(locale, keys + ".wrong_switch", masked=masked),
            email=self.accounts.get_user(session.user_id).email,
            back=back,
        )

    def until_text(self, locale: str, zone: Zone, end: datetime | None) -> str:
        """An end as User Management shows it: "expires in 3 days · <when in the zone>"."""
        if end is None:
            return ""
        return f"{remaining(locale, end, self.now())} · {zone.shown(end)}"

    def until_parts(
        self, req: falcon.Request, locale: str, end: datetime | None
    ) -> dict[str, str] | None:
        """An end as the facts of a page show it (forms.html's ``until_shown``): how long
        is left, the date and time in the browser's zone (kept on one line), the zone."""
        if end is None:
            return None
        zone = zone_of(req)
        return {
            "left": remaining(locale, end, self.now()),
            "at": zone.field_value(end).replace("T", " "),
            "zone": zone.name,
        }

    def until_field(
        self,
        req: falcon.Request,
        locale: str,
        end: datetime | None,
        form: dict[str, list[str]] | None,
        error: str,
    ) -> dict[str, str]:
        """The "Access until" field: its value in the browser's zone (or as posted)."""
        zone = zone_of(req)
        return {
            "value": field_value(form, "valid_until") if form else zone.field_value(end),
            "label": t(locale, "until.label"),
            "hint": t(locale, "until.hint", zone=zone.name),
            "error": error,
        }

    def perms_text(self, locale: str, perms: PermissionSet) -> str:
        return ", ".join(self.perm_labels(locale, perms))

    def perm_labels(self, locale: str, perms: PermissionSet) -> list[str]:
        """Labels in catalogue order; a permission on single resources names them:
        "Manage domains (example.com, example.net)"."""
        if perms.all:
            return [t(locale, "um.all")]
        catalogue = self.catalogue()
        held = perms.names | {n for n, _ in perms.scoped}
        labels = []
        for n in catalogue.names() + sorted(held - set(catalogue.names())):
            if n not in held:
                continue
            label = catalogue.get(n).label(locale) if n in catalogue else n
            ids = [] if n in perms.names else perms.resources(n)
            labels.append(f"{label} ({', '.join(ids)})" if ids else label)
        return labels

    def chooser(
        self,
        locale: str,
        selected: PermissionSet | None,
        error: str = "",
        *,
        form: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        """The "all, or some from a list that drops down" control, grouped, with bundles.

        The list shows only while "some" is chosen; a refused post comes back as it was
        sent (``form``), with the list open if it was ambiguous.
        """
        catalogue = self.catalogue()
        if form is not None:
            access, ticked = field_value(form, "access"), list(form.get("permission", []))
        elif selected is None or selected.all:
            access, ticked = "all", []
        else:
            access = "some"
            ticked = sorted(selected.names | {n for n, _ in selected.scoped})
        groups: dict[str, list[dict[str, str]]] = {}
        for perm in catalogue:
            entry = {
                "id": f"perm-{perm.name}",
                "value": perm.name,
                "label": perm.label(locale),
                "description": perm.description(locale),
            }
            if perm.scoped:
                # The resource ids it is limited to, one text field (empty: every resource).
                if form is not None:
                    entry["scope"] = field_value(form, SCOPE_FIELD + perm.name)
                elif selected is not None:
                    entry["scope"] = ", ".join(selected.resources(perm.name))
                else:
                    entry["scope"] = ""
            groups.setdefault(perm.group, []).append(entry)
        bundles = [
            {
                "id": f"bundle-{b.name}",
                "value": f"bundle:{b.name}",
                "label": b.label(locale),
                "description": b.description(locale),
            }
            for b in catalogue.bundles.values()
        ]
        return {
            "access": access,
            "ticked": set(ticked),
            "groups": [(_group_label(locale, g), perms) for g, perms in groups.items()],
            "bundles": bundles,
            "error": error,
            "ambiguous": access == "all" and bool(ticked),
        }

    def choice(self, locale: str, form: dict[str, list[str]]) -> tuple[object, str]:
        """What the chooser asks for ("all" or the ticked names, a scoped one as
        name@id per id typed beside it), or an error to show on the form: "all" with
        ticks is ambiguous and refused, never guessed; so are ids beside an unticked box."""
        access = field_value(form, "access")
        ticked = form.get("permission", [])
        if access == "all":
            return (ALL, "") if not ticked else (None, t(locale, "invite.ambiguous"))
        if access != "some":
            return None, t(locale, "invite.pick_access")
        if not ticked:
            return None, t(locale, "invite.pick")
        chosen: list[str] = []
        for perm in self.catalogue():
            if not perm.scoped:
                continue
            ids = _SCOPE_SPLIT.split(field_value(form, SCOPE_FIELD + perm.name).strip())
            ids = [i for i in ids if i]
            if ids and perm.name not in ticked:
                return None, t(locale, "scope.unticked", permission=perm.label(locale))
            if any(not RESOURCE_ID_RE.match(i) for i in ids):
                return None, t(locale, "scope.invalid", permission=perm.label(locale))
            chosen += [f"{perm.name}{SCOPE_SEP}{i}" for i in dict.fromkeys(ids)]
        if len(chosen) > MAX_RESOURCE_IDS:
            return None, t(locale, "scope.too_many", limit=str(MAX_RESOURCE_IDS))
        scoped_names = {item.partition(SCOPE_SEP)[0] for item in chosen}
        return [n for n in ticked if n not in scoped_names] + chosen, ""

    def fail(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        ex: DelegauthError,
        session: SessionRow | None = None,
        area_id: str | None = None,
        here: str | None = None,
    ) -> None:
        """An error page in the user's words, with the menu and a way back."""
        locale = negotiate_locale(req)
        menu, back = None, None
        if session is not None:
            menu = self.menu(session, area_id)
            areas = self.accounts.areas_of(session.user_id)
            current = access_in(areas, area_id)
            if current is not None:
                back = (
                    f"/areas/{current.area.id}",
                    t(locale, "area.back", area=current.area.name),
                )
            elif areas:
                back = ("/", t(locale, "area.home"))
        status = status_for(ex)
        self.pages.error(
            req,
            resp,
            error_text(locale, ex),
            status,
            menu=menu,
            back=back,
            title_key={403: "error.forbidden_title", 404: "error.not_found_title"}.get(
                status, "error.title"
            ),
            here=here,
        )


def _flashes(locale: str, req: falcon.Request) -> list[Flash]:
    """The success message of the action that redirected here (?done=<code>)."""
    done = req.get_param("done") or ""
    return [Flash("notice", t(locale, "done." + done))] if done in _DONE else []


class _Base:
    def __init__(self, console: Console) -> None:
        self.c = console


class _Areas(_Base):
    """Switch account: every Client Area the user can reach, by its account name, with
    their role there; choosing one opens that area's home."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        self.c.page(
            req,
            resp,
            "areas.html",
            session,
            None,
            title=t(locale, "chooser.title"),
            flashes=_flashes(locale, req),
            areas=self.c.accounts.areas_of(session.user_id),
        )


class _AreaHome(_Base):
    """Where everyone lands after choosing an area: which Client Area this is, their
    role and permissions in it, and only the things they may do there."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        areas = self.c.accounts.areas_of(session.user_id)
        current = access_in(areas, area_id)
        if current is None:
            self._unreachable(req, resp, session, area_id)
            return
        home = f"/areas/{area_id}"
        tasks = []
        if may_manage(current):
            tasks.append((f"{home}/users", "nav.user_management", "area.um_hint"))
            tasks.append((f"{home}/activity", "activity.title", "area.activity_hint"))
        if current.role is Role.OWNER:
            tasks.append((f"{home}/webhooks", "webhooks.title", "area.webhooks_hint"))
        if current.role is not Role.OWNER:
            tasks.append((f"{home}/request-access", "ar.request", "ar.request_hint"))
        tasks.append(("/access-requests", "ar.mine_title", "ar.mine_hint"))
        tasks.append(("/invitations", "mine.title", "area.mine_hint"))
        if len(areas) > 1:
            tasks.append(("/areas", "nav.switch", "area.switch_hint"))
        self.c.page(
            req,
            resp,
            "area_home.html",
            session,
            area_id,
            title=t(locale, "area.title", area=current.area.name),
            flashes=_flashes(locale, req),
            area_name=current.area.name,
            role=str(current.role),
            permissions=self.c.perm_labels(locale, current.permissions),
            until=self.c.until_parts(req, locale, current.valid_until),
            tasks=tasks,
        )

    def _unreachable(
        self, req: falcon.Request, resp: falcon.Response, session: SessionRow, area_id: str
    ) -> None:
        """An area the user cannot reach (any more), say from the reminder that their access
        ends: when it ended and whom to ask, if it did; else the same words for an area
        taken away, never theirs or not there, so that a page tells nobody more."""
        locale = negotiate_locale(req)
        grant = self.c.store.get_grant(area_id, session.user_id)
        area = self.c.store.get_area(area_id) if grant is not None else None
        ended = ask = ""
        if area is not None and grant is not None and grant.ended(self.c.now()):
            assert grant.valid_until is not None
            ended = t(
                locale,
                "area.gone_ended",
                area=area.name,
                when=zone_of(req).shown(grant.valid_until),
            )
            owner = self.c.store.get_user(area.owner_id)
            if owner is not None:
                ask = t(locale, "area.gone_ask", owner=owner.name or owner.email, email=owner.email)
        self.c.page(
            req,
            resp,
            "area_gone.html",
            session,
            None,
            title=t(locale, "area.gone_title"),
            status=403,
            ended=ended,
            ask=ask,
        )


class _UserManagement(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        zone = zone_of(req)
        session = self.c.session(req)
        try:
            members = self.c.members.listing(session.user_id, area_id)
            pending = self.c.invitations.list_for_area(session.user_id, area_id)
            asking = self.c.access_requests.pending(session.user_id, area_id)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        sent = req.get_param("sent")
        self.c.page(
            req,
            resp,
            "users.html",
            session,
            area_id,
            title=t(locale, "um.title"),
            wide=True,
            flashes=(
                [Flash("notice", t(locale, "invite.sent", email=sent))]
                if sent
                else _flashes(locale, req)
            ),
            area_id=area_id,
            members=[
                {
                    "id": m.user.id,
                    "who": m.user.name or m.user.email,
                    "email": m.user.email,
                    "permissions": self.c.perms_text(locale, m.grant.held()),
                    "owner": m.grant.role is Role.OWNER,
                    "me": m.user.id == session.user_id,
                    "until": self.c.until_text(locale, zone, m.grant.valid_until),
                }
                for m in members
            ],
            pending=[
                {
                    "id": i.id,
                    "email": i.email,
                    "permissions": self.c.perms_text(locale, i.permissions),
                    "expires": f"{i.expires_at:%Y-%m-%d}",
                    "until": self.c.until_text(locale, zone, i.valid_until),
                }
                for i in pending
            ],
            requests=[self._request_row(locale, area_id, r) for r in asking],
        )

    def _request_row(self, locale: str, area_id: str, request: AccessRequest) -> dict[str, str]:
        user = self.c.store.get_user(request.requester_id)
        return {
            "who": (user.name or user.email) if user else "",
            "email": user.email if user else "",
            "permissions": self.c.perms_text(locale, request.permissions),
            "message": request.message,
            "review": f"/areas/{area_id}/access-requests/{request.id}",
        }


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
        until_error: str = "",
    ) -> None:
        """The form, empty or as it was posted (email and ticks kept) with its errors."""
        locale = negotiate_locale(req)
        self.c.page(
            req,
            resp,
            "invite.html",
            session,
            area_id,
            title=t(locale, "invite.title"),
            status=status,
            wide=True,
            area_id=area_id,
            email=field_value(form, "email"),
            email_error=email_error,
            mail_locale=_mail_locale(form, locale),
            mail_locales=[(code, t(code, "language.name")) for code in LOCALES],
            chooser=self.c.chooser(locale, None, perm_error, form=form),
            until=self.c.until_field(req, locale, None, form, until_error),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        session = self.c.session(req)
        try:
            self.c.invitations.list_for_area(session.user_id, area_id)  # may they invite?
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        self._form(req, resp, session, area_id)

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        email = field_value(form, "email")
        chosen, problem = self.c.choice(locale, form)
        if problem:  # say what is wrong with the address too, not one mistake at a time
            email_error = ""
            try:
                canonical_email(email)
            except InvalidInput as ex:
                email_error = error_text(locale, ex)
            self._form(
                req, resp, session, area_id, form, email_error, perm_error=problem, status=400
            )
            return
        try:
            inv, _created = self.c.invitations.invite(
                session.user_id,
                area_id,
                email,
                chosen,
                zone_of(req).parse(field_value(form, "valid_until")),
                mail_locale=_mail_locale(form, locale),
            )
        except (InvalidInput, AlreadyMember, Escalation) as ex:
            message = error_text(locale, ex)
            if isinstance(ex, AlreadyMember) and self._is_self(session, email):
                message = t(locale, "problem.invite_self")
            on_email, on_until = ex.field == "email", ex.field == "valid_until"
            self._form(
                req,
                resp,
                session,
                area_id,
                form,
                email_error=message if on_email else "",
                perm_error="" if on_email or on_until else message,
                status=status_for(ex),
                until_error=message if on_until else "",
            )
            return
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?sent={quote(inv.email)}")

    def _is_self(self, session: SessionRow, email: str) -> bool:
        try:
            return canonical_email(email) == self.c.accounts.get_user(session.user_id).email
        except DelegauthError:
            return False


def _mail_locale(form: dict[str, list[str]] | None, page_locale: str) -> str:
    """The language chosen for the invitation email; the inviter's own by default."""
    chosen = field_value(form, "language")
    return chosen if chosen in LOCALES else page_locale


class _Edit(_Base):
    """Modify permissions of a member."""

    def _member(self, session: SessionRow, area_id: str, user_id: str) -> Member | None:
        for m in self.c.members.listing(session.user_id, area_id):
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
        until_error: str = "",
    ) -> None:
        locale = negotiate_locale(req)
        self.c.page(
            req,
            resp,
            "edit.html",
            session,
            area_id,
            title=t(locale, "edit.title", who=member.user.name or member.user.email),
            status=status,
            wide=True,
            action=f"/areas/{area_id}/users/{member.user.id}/edit",
            chooser=self.c.chooser(locale, member.grant.permissions, error, form=form),
            until=self.c.until_field(req, locale, member.grant.valid_until, form, until_error),
        )

    def _find(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> tuple[SessionRow, Member] | None:
        session = self.c.session(req)
        try:
            member = self._member(session, area_id, user_id)
            if member is None:
                raise NotFound("no such member")
            if member.grant.role is Role.OWNER:
                raise Forbidden("the owner cannot be changed", code="owner_fixed")
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/users")
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
        until_problem = ""
        try:
            if not problem:
                until = zone_of(req).parse(field_value(form, "valid_until"))
                self.c.members.change(session.user_id, area_id, user_id, chosen, until)
                raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?done=saved")
        except (InvalidInput, Escalation) as ex:
            if ex.field == "valid_until":
                until_problem = error_text(locale, ex)
            else:
                problem = error_text(locale, ex)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/users")
            return
        found = self._find(req, resp, area_id, user_id)
        if found is not None:
            self._form(req, resp, session, area_id, found[1], form, problem, 400, until_problem)


class _Remove(_Base):
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        try:
            user = _who_in_area(self.c, session.user_id, area_id, user_id)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        self.c.page(
            req,
            resp,
            "remove.html",
            session,
            area_id,
            title=t(locale, "remove.title"),
            who=user.name or user.email,
            area_id=area_id,
            user_id=user_id,
            back=f"/areas/{area_id}" + ("" if user_id == session.user_id else "/users"),
        )

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        _locale, session, _form = posted
        try:
            self.c.members.remove(session.user_id, area_id, user_id)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/users")
            return
        if user_id == session.user_id:
            raise falcon.HTTPSeeOther("/areas?done=left")
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/users?done=removed")


def _who_in_area(c: Console, actor_id: str, area_id: str, user_id: str) -> User:
    """The member ``user_id`` of an area: oneself (leaving), or one the actor manages."""
    if actor_id == user_id:
        if access_in(c.accounts.areas_of(actor_id), area_id) is None:
            raise NotFound("no such area")
        return c.accounts.get_user(actor_id)
    for m in c.members.listing(actor_id, area_id):
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
            pending = self.c.invitations.list_for_area(session.user_id, area_id)
            inv = next((i for i in pending if i.id == invitation_id), None)
            if inv is None:
                raise NotFound("no such invitation")
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/users")
            return
        self.c.page(
            req,
            resp,
            "edit.html",
            session,
            area_id,
            title=t(locale, "edit.title", who=inv.email),
            status=status,
            wide=True,
            here=f"/areas/{area_id}/invitations/{inv.id}/edit",
            action=f"/areas/{area_id}/invitations/{inv.id}/edit",
            chooser=self.c.chooser(locale, inv.permissions, error, form=form),
            until=self.c.until_field(req, locale, inv.valid_until, form, ""),
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
        users = f"/areas/{area_id}/users"
        try:
            if action == "resend":
                self.c.invitations.resend(session.user_id, area_id, invitation_id)
                raise falcon.HTTPSeeOther(users + "?done=resent")
            if action == "cancel":
                self.c.invitations.cancel(session.user_id, area_id, invitation_id)
                raise falcon.HTTPSeeOther(users + "?done=cancelled")
            chosen, problem = self.c.choice(locale, form)
            if not problem:
                until = zone_of(req).parse(field_value(form, "valid_until"))
                self.c.invitations.edit(session.user_id, area_id, invitation_id, chosen, until)
                raise falcon.HTTPSeeOther(users + "?done=saved")
        except (InvalidInput, Escalation) as ex:
            if action != "edit":
                self.c.fail(req, resp, ex, session, area_id, here=users)
                return
            problem = error_text(locale, ex)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=users)
            return
        self._form(req, resp, session, area_id, invitation_id, form, problem, 400)


class _Activity(_Base):
    """The area's audit trail, newest first, paged."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        before = parse_count(req.get_param("before"))
        try:
            events = self.c.members.audit(session.user_id, area_id, before, PAGE)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        rows = []
        for e in events:
            actor = self.c.store.get_user(e.actor_id) if e.actor_id else None
            rows.append(
                {
                    "when": f"{e.at:%Y-%m-%d %H:%M}",
                    "who": (actor.name or actor.email) if actor else "—",
                    "what": _action_label(locale, e.action),
                    "details": self._describe(locale, e.after or e.before or {}),
                }
            )
        self.c.page(
            req,
            resp,
            "activity.html",
            session,
            area_id,
            title=t(locale, "activity.title"),
            wide=True,
            events=rows,
            older=(
                f"/areas/{area_id}/activity?before={events[-1].id}" if len(events) == PAGE else ""
            ),
        )

    def _describe(self, locale: str, snapshot: dict[str, object]) -> str:
        """An event's before or after, in the user's words: "Permisos: Contactos; Tu rol: …"."""
        parts = []
        if "email" in snapshot:
            parts.append(f"{t(locale, 'signin.email')}: {snapshot['email']}")
        if "permissions" in snapshot:
            try:
                perms = self.c.perms_text(locale, self.c.catalogue().parse(snapshot["permissions"]))
            except DelegauthError:  # a permission since dropped from the catalogue
                raw = snapshot["permissions"]
                perms = ", ".join(raw) if isinstance(raw, list) else str(raw)
            parts.append(f"{t(locale, 'um.permissions')}: {perms}")
        if "role" in snapshot:
            parts.append(f"{t(locale, 'area.role')}: {_known(locale, 'role.', snapshot['role'])}")
        if "status" in snapshot:
            status = _known(locale, "activity.status.", snapshot["status"])
            parts.append(f"{t(locale, 'activity.status')}: {status}")
        return "; ".join(parts)


def _known(locale: str, prefix: str, value: object) -> str:
    """The catalogue's words for a stored value, or the value itself when it has none."""
    key = prefix + str(value)
    return t(locale, key) if key in TEXT["en"] else str(value)


def _group_label(locale: str, group: str) -> str:
    key = "group." + group
    return t(locale, key) if key in TEXT["en"] else group.capitalize()


def _action_label(locale: str, action: str) -> str:
    key = "activity." + action
    return t(locale, key) if key in TEXT["en"] else action


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
        user = self.c.accounts.get_user(session.user_id)
        invitations = []
        for inv in self.c.invitations.addressed_to(user):
            area = self.c.store.get_area(inv.area_id)
            inviter = self.c.store.get_user(inv.invited_by)
            who = (inviter.name or inviter.email) if inviter else ""
            invitations.append(
                {
                    "id": inv.id,
                    "line": t(locale, "mine.from", who=who, area=area.name if area else ""),
                    "permissions": self.c.perms_text(locale, inv.permissions),
                }
            )
        accepted = req.get_param("accepted") if not error else None
        if error:
            flashes = [Flash("error", error)]
        elif accepted:
            flashes = [Flash("notice", t(locale, "mine.accepted", area=accepted))]
        else:
            flashes = _flashes(locale, req)
        if req.get_param("verified") and user.email_verified and not error:
            flashes.append(Flash("notice", t(locale, "verify.done")))
        self.c.page(
            req,
            resp,
            "mine.html",
            session,
            None,
            title=t(locale, "mine.title"),
            status=status,
            here="/invitations",
            flashes=flashes,
            invitations=invitations,
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
                change = self.c.invitations.accept(session.user_id, invitation_id)
                area = self.c.store.get_area(change.grant.area_id) if change.grant else None
                raise falcon.HTTPSeeOther(
                    "/invitations?accepted=" + quote(area.name if area else "")
                )
            self.c.invitations.decline(session.user_id, invitation_id)
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
        session = self.c.sessions.current(req)
        if session is None:
            raise falcon.HTTPSeeOther(
                "/signup?invitation_token="
                + quote(token, safe="")
                + "&return_to="
                + quote(back, safe="")
            )
        user = self.c.accounts.get_user(session.user_id)
        preview = self.c.invitations.preview(token)
        if preview is None:
            title = t(locale, "link.gone_title")
            self.c.page(req, resp, "link_gone.html", session, None, title=title, status=410)
            return
        inv = preview.invitation
        if inv.email != user.email:
            self.c.wrong_account(req, resp, session, "link", inv.email, back)
            return
        if not user.email_verified:
            self.c.page(
                req,
                resp,
                "link_verify.html",
                session,
                None,
                title=t(locale, "link.verify_title"),
                status=403,
                offer=t(locale, "mine.from", who=preview.inviter_name, area=preview.area_name),
                email=user.email,
                back=back,
                # the resend form works without a session too: the pre-session CSRF token
                csrf=self.c.sessions.pre_csrf(req, resp),
            )
            return
        raise falcon.HTTPSeeOther(
            "/invitations" + ("?verified=1" if req.get_param("verified") else "")
        )
