"""The access-request pages: Request access (from an area), Ask an owner for access (by
email), My access requests (with Withdraw), and the owner's review (Approve / Decline).

The owner's list is part of User Management (console.py); the emailed links lead here:
the owner's to the review page, the requester's to My access requests.
"""

from __future__ import annotations

from typing import Any

import falcon

from delegauth.api.catalogue import negotiate_locale
from delegauth.api.problems import status_for
from delegauth.domain.access_requests import MAX_MESSAGE, AccessRequests
from delegauth.domain.catalogue import PermissionSet
from delegauth.domain.entities import AccessRequest, AccessRequestStatus
from delegauth.errors import DelegauthError, NotFound
from delegauth.pages.console import Console
from delegauth.pages.forms import field_value
from delegauth.pages.menu import access_in
from delegauth.pages.rendering import Flash
from delegauth.pages.text import error_text, t
from delegauth.pages.zones import zone_of
from delegauth.storage.oauth_store import SessionRow

__all__ = ["AccessRequestPages"]

MINE = "/access-requests"


class AccessRequestPages:
    """``routes()`` lists the pages for the app; they share the Console's pieces."""

    def __init__(self, console: Console, requests: AccessRequests) -> None:
        self.c = console
        self.requests = requests

    def routes(self) -> list[tuple[str, object]]:
        return [
            (MINE, _Mine(self)),
            (MINE + "/new", _AskOwner(self)),
            (MINE + "/{request_id}/withdraw", _Withdraw(self)),
            ("/areas/{area_id}/request-access", _AskArea(self)),
            ("/areas/{area_id}/access-requests/{request_id}", _Review(self)),
            ("/areas/{area_id}/access-requests/{request_id}/{action}", _Review(self)),
        ]

    def form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str | None,
        *,
        title: str,
        intro: str,
        action: str,
        form: dict[str, list[str]] | None = None,
        error: DelegauthError | None = None,
        perm_error: str = "",
        ask_email: bool = False,
    ) -> None:
        """A request form, empty or as posted, with the error shown at its field."""
        locale = negotiate_locale(req)
        message = error_text(locale, error) if error is not None else ""
        where = error.field if error is not None else None
        self.c.page(
            req,
            resp,
            "request_access.html",
            session,
            area_id,
            title=title,
            status=status_for(error) if error is not None else (400 if perm_error else 200),
            wide=True,
            intro=intro,
            action=action,
            ask_email=ask_email,
            email=field_value(form, "email"),
            email_error=message if where == "email" else "",
            message=field_value(form, "message"),
            message_error=message if where == "message" else "",
            max_message=MAX_MESSAGE,
            general_error=message if where not in ("email", "message", "permissions") else "",
            chooser=self.c.chooser(
                locale,
                PermissionSet.of([]),
                perm_error or (message if where == "permissions" else ""),
                form=form,
            ),
        )


class _Base:
    def __init__(self, pages: AccessRequestPages) -> None:
        self.p = pages
        self.c = pages.c


class _AskArea(_Base):
    """Request access: a member asks their area's owner for more."""

    def _show(self, req: falcon.Request, resp: falcon.Response, area_id: str, **kw: Any) -> None:
        locale = negotiate_locale(req)
        session = kw.pop("session", None) or self.c.session(req)
        current = access_in(self.c.accounts.areas_of(session.user_id), area_id)
        if current is None:
            self.c.fail(req, resp, NotFound("no such area"), session)
            return
        self.p.form(
            req,
            resp,
            session,
            area_id,
            title=t(locale, "ar.request"),
            intro=t(locale, "ar.request_intro", area=current.area.name),
            action=f"/areas/{area_id}/request-access",
            **kw,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        self._show(req, resp, area_id)

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        chosen, problem = self.c.choice(locale, form)
        if problem:
            self._show(req, resp, area_id, session=session, form=form, perm_error=problem)
            return
        try:
            self.p.requests.ask_area(session.user_id, area_id, chosen, field_value(form, "message"))
        except DelegauthError as ex:
            self._show(req, resp, area_id, session=session, form=form, error=ex)
            return
        raise falcon.HTTPSeeOther(MINE + "?done=requested")


class _AskOwner(_Base):
    """Ask an owner for access, by their email: the same answer whether or not it has an
    account (see domain/access_requests.py)."""

    def _show(self, req: falcon.Request, resp: falcon.Response, **kw: Any) -> None:
        locale = negotiate_locale(req)
        session = kw.pop("session", None) or self.c.session(req)
        self.p.form(
            req,
            resp,
            session,
            None,
            title=t(locale, "ar.ask_owner"),
            intro=t(locale, "ar.ask_owner_intro"),
            action=MINE + "/new",
            ask_email=True,
            **kw,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        chosen, problem = self.c.choice(locale, form)
        if problem:
            self._show(req, resp, session=session, form=form, perm_error=problem)
            return
        try:
            self.p.requests.ask_owner(
                session.user_id,
                field_value(form, "email"),
                chosen,
                field_value(form, "message"),
            )
        except DelegauthError as ex:
            self._show(req, resp, session=session, form=form, error=ex)
            return
        raise falcon.HTTPSeeOther(MINE + "?done=asked")


class _Mine(_Base):
    """My access requests, newest first, with Withdraw on the pending ones."""

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
        locale = negotiate_locale(req)
        now = self.p.requests.clock()
        rows = [self._row(locale, r, now) for r in self.p.requests.mine(session.user_id, limit=50)]
        flashes = [Flash("error", error)] if error else self.c.flashes(locale, req)
        self.c.page(
            req,
            resp,
            "access_requests.html",
            session,
            None,
            title=t(locale, "ar.mine_title"),
            status=status,
            wide=True,
            here=MINE,
            flashes=flashes,
            requests=rows,
        )

    def _row(self, locale: str, request: AccessRequest, now: Any) -> dict[str, Any]:
        status = request.status_at(now)
        # A request by email names the address asked, never the area it reached (unless
        # the requester was let in).
        area = self.c.store.get_area(request.area_id) if request.area_id else None
        if request.asked_email and status is not AccessRequestStatus.APPROVED:
            where = t(locale, "ar.to_owner", email=request.asked_email)
        else:
            where = t(locale, "ar.to_area", area=area.name if area else "")
        return {
            "id": request.id,
            "where": where,
            "asked": self.c.perms_text(locale, request.permissions),
            "granted": self.c.perms_text(locale, request.granted) if request.granted else "",
            "status": t(locale, "ar.status." + str(status)),
            "date": f"{request.created_at:%Y-%m-%d}",
            "message": request.message,
            "open": status is AccessRequestStatus.PENDING,
        }


class _Withdraw(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response, request_id: str) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, _form = posted
        try:
            self.p.requests.withdraw(session.user_id, request_id)
        except DelegauthError as ex:
            _Mine(self.p).show(req, resp, session, error_text(locale, ex), status_for(ex))
            return
        raise falcon.HTTPSeeOther(MINE + "?done=withdrawn")


class _Review(_Base):
    """The owner's review of one request (the emailed link): approve all, some, or decline."""

    def _show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str,
        request_id: str,
        form: dict[str, list[str]] | None = None,
        error: str = "",
        status: int = 200,
        until_error: str = "",
    ) -> None:
        locale = negotiate_locale(req)
        users = f"/areas/{area_id}/users"
        try:
            request = self.p.requests.get_in_area(session.user_id, area_id, request_id)
        except DelegauthError as ex:
            if not self._wrong_account(req, resp, session, area_id, request_id):
                self.c.fail(req, resp, ex, session, area_id, here=users)
            return
        requester = self.c.store.get_user(request.requester_id)
        who = requester.email if requester else ""
        now = self.p.requests.clock()
        state = request.status_at(now)
        base = f"/areas/{area_id}/access-requests/{request.id}"
        # An end belongs to a whole grant: it is chosen here only for someone who holds
        # none in the area yet; a member's grant keeps its own (shown, changed by Modify).
        holding = self.c.store.get_grant(area_id, request.requester_id)
        self.c.page(
            req,
            resp,
            "review_request.html",
            session,
            area_id,
            title=t(locale, "ar.review_title", who=who),
            status=status,
            wide=True,
            here=base,
            who=who,
            name=requester.name if requester else "",
            asked=self.c.perms_text(locale, request.permissions),
            message=request.message,
            date=f"{request.created_at:%Y-%m-%d}",
            open=state is AccessRequestStatus.PENDING,
            state=t(locale, "ar.status." + str(state)),
            approve=base + "/approve",
            decline=base + "/decline",
            back=users,
            chooser=self.c.chooser(locale, request.permissions, error, form=form),
            until=(
                None
                if holding is not None
                else self.c.until_field(req, locale, None, form, until_error)
            ),
            member_until=(
                None if holding is None else self.c.until_parts(req, locale, holding.valid_until)
            ),
            member_error=until_error if holding is not None else "",
        )

    def _wrong_account(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str,
        request_id: str,
    ) -> bool:
        """The emailed link opened signed in as another account than the owner it was
        sent to: say so (the address masked) and offer to sign out and come back, as the
        invitation link does. False when there is no such request to review."""
        reviewer = self.p.requests.reviewer(area_id, request_id)
        if reviewer is None or reviewer.id == session.user_id:
            return False
        back = f"/areas/{area_id}/access-requests/{request_id}"
        self.c.wrong_account(req, resp, session, "ar", reviewer.email, back)
        return True

    def on_get(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        area_id: str,
        request_id: str,
        action: str = "",
    ) -> None:
        if action:
            raise falcon.HTTPNotFound()
        self._show(req, resp, self.c.session(req), area_id, request_id)

    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        area_id: str,
        request_id: str,
        action: str = "",
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        if action not in ("approve", "decline"):
            raise falcon.HTTPNotFound()
        users = f"/areas/{area_id}/users"
        problem = until_problem = ""
        try:
            if action == "decline":
                self.p.requests.decline(session.user_id, area_id, request_id)
                raise falcon.HTTPSeeOther(users + "?done=request_declined")
            chosen, problem = self.c.choice(locale, form)
            until = zone_of(req).parse(field_value(form, "valid_until"))
            if not problem:
                self.p.requests.approve(session.user_id, area_id, request_id, chosen, until)
                raise falcon.HTTPSeeOther(users + "?done=approved")
        except DelegauthError as ex:
            if action == "decline" or ex.field not in ("permissions", "valid_until"):
                self.c.fail(req, resp, ex, session, area_id, here=users)
                return
            if ex.field == "valid_until":
                until_problem = error_text(locale, ex)
            else:
                problem = error_text(locale, ex)
        self._show(req, resp, session, area_id, request_id, form, problem, 400, until_problem)
