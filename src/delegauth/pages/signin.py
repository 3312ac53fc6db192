"""Sign-in, sign-up, sign-out and the landing page (/).

Plain accessible forms (a <label> for every field), CSRF on every POST, English or
Spanish by the switcher or Accept-Language.
"""

from __future__ import annotations

from urllib.parse import quote

import falcon

from delegauth.api.body import read_form
from delegauth.api.catalogue import negotiate_locale
from delegauth.api.problems import status_for
from delegauth.domain.accounts import Accounts
from delegauth.domain.emails import canonical_email
from delegauth.domain.invitations import Invitations
from delegauth.errors import DelegauthError, InvalidInput
from delegauth.pages.forms import check_email_url, field_value, safe_return
from delegauth.pages.rendering import Flash, Renderer
from delegauth.pages.sessions import BrowserSessions, SignInLimiter
from delegauth.pages.text import error_text, t

__all__ = ["HomePage", "SignInPage", "SignOutPage", "SignUpPage"]

_SIGNUP_FIELDS = ("name", "email", "password")


class SignInPage:
    def __init__(
        self,
        pages: Renderer,
        accounts: Accounts,
        sessions: BrowserSessions,
        limiter: SignInLimiter,
    ) -> None:
        self._pages = pages
        self._accounts = accounts
        self._sessions = sessions
        self._limiter = limiter

    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        return_to: str,
        email: str = "",
        error: str = "",
        status: int = 200,
        notice: str = "",
    ) -> None:
        locale = negotiate_locale(req)
        back = quote(return_to, safe="")
        self._pages.render(
            req,
            resp,
            "signin.html",
            title=t(locale, "signin.title"),
            status=status,
            flashes=[Flash("notice", notice)] if notice and not error else [],
            here="/signin" + ("?return_to=" + back if return_to != "/" else ""),
            csrf=self._sessions.pre_csrf(req, resp),
            return_to=return_to,
            email=email,
            error=error,
            signup="/signup?return_to=" + back,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        notice = t(locale, "verify.signin") if req.get_param("verified") else ""
        self._form(req, resp, safe_return(req.get_param("return_to")), notice=notice)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            self._pages.error(req, resp, t(locale, "error.csrf"), 403, here="/signin")
            return
        email_raw, password = field_value(form, "email"), field_value(form, "password")
        try:
            email = canonical_email(email_raw)
        except InvalidInput:
            email = email_raw.strip().lower()[:320]
        address = req.remote_addr or "unknown"
        if self._limiter.blocked(email, address):
            self._form(req, resp, return_to, email_raw, t(locale, "signin.limited"), 429)
            resp.set_header("Retry-After", "900")
            return
        user = self._accounts.authenticate(email, password)
        if user is None:
            self._limiter.failed(email, address)
            self._form(req, resp, return_to, email_raw, t(locale, "signin.failed"), 401)
            return
        self._limiter.succeeded(email, address)
        self._sessions.start(req, resp, user.id)
        raise falcon.HTTPSeeOther(return_to)


class SignUpPage:
    def __init__(
        self,
        pages: Renderer,
        accounts: Accounts,
        sessions: BrowserSessions,
        invitations: Invitations,
    ) -> None:
        self._pages = pages
        self._accounts = accounts
        self._sessions = sessions
        self._invitations = invitations

    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        return_to: str,
        invitation: str,
        values: dict[str, str] | None = None,
        error: DelegauthError | None = None,
        status: int = 200,
    ) -> None:
        """The form, empty or as posted (name and email kept); an error sits by its field
        (name, email or password) or, for any other, above the form."""
        locale = negotiate_locale(req)
        values = values or {}
        errors, field_errors = [], {}
        if error is not None:
            if error.field in _SIGNUP_FIELDS:
                field_errors[error.field] = error_text(locale, error)
            else:
                errors.append(error_text(locale, error))
        invited = None
        if invitation:
            preview = self._invitations.preview(invitation)
            if preview is None:  # a dead link still lets the person sign up
                invitation = ""
                errors.append(t(locale, "signup.invitation_gone"))
            else:
                invited = {"who": preview.inviter_name, "area": preview.area_name}
                values["email"] = preview.invitation.email
        query = [("return_to", return_to)]
        if invitation:
            query.append(("invitation_token", invitation))
        self._pages.render(
            req,
            resp,
            "signup.html",
            title=t(locale, "signup.title"),
            status=status,
            here="/signup?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query),
            csrf=self._sessions.pre_csrf(req, resp),
            return_to=return_to,
            invitation=invitation,
            invited=invited,
            errors=errors,
            field_errors=field_errors,
            name=values.get("name", ""),
            email=values.get("email", ""),
            signin="/signin?return_to=" + quote(return_to, safe=""),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        invitation = (req.get_param("invitation_token") or "")[:200]
        self._form(req, resp, safe_return(req.get_param("return_to")), invitation)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        invitation = field_value(form, "invitation_token")[:200]
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            self._pages.error(req, resp, t(locale, "error.csrf"), 403, here="/signup")
            return
        values = {k: field_value(form, k) for k in ("name", "email")}
        try:
            user, _area = self._accounts.signup(
                values["email"],
                field_value(form, "password"),
                values["name"],
                locale,
                invitation or None,
            )
        except DelegauthError as ex:
            self._form(req, resp, return_to, invitation, values, ex, status_for(ex))
            return
        self._sessions.start(req, resp, user.id)
        if user.email_verified:  # signed up through an invitation sent to this address
            raise falcon.HTTPSeeOther(return_to)
        raise falcon.HTTPSeeOther(check_email_url(return_to))


class SignOutPage:
    def __init__(self, pages: Renderer, sessions: BrowserSessions) -> None:
        self._pages = pages
        self._sessions = sessions

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self._sessions.current(req)
        form = read_form(req)
        if session is not None and not self._sessions.check_csrf(
            session, field_value(form, "csrf")
        ):
            locale = negotiate_locale(req)
            self._pages.error(req, resp, t(locale, "error.csrf"), 403, here="/")
            return
        self._sessions.end(req, resp)
        back = safe_return(field_value(form, "return_to"))
        raise falcon.HTTPSeeOther(back if back != "/" else "/signin")


class HomePage:
    """/: the area home of the only Client Area, the chooser between several."""

    def __init__(self, pages: Renderer, accounts: Accounts, sessions: BrowserSessions) -> None:
        self._pages = pages
        self._accounts = accounts
        self._sessions = sessions

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        session = self._sessions.current(req)
        if session is None:
            raise falcon.HTTPSeeOther("/signin")
        user = self._accounts.get_user(session.user_id)
        areas = self._accounts.areas_of(user.id)
        if areas:  # one area: its home; several: choose one first
            raise falcon.HTTPSeeOther(f"/areas/{areas[0].area.id}" if len(areas) == 1 else "/areas")
        self._pages.render(
            req,
            resp,
            "home.html",
            title=t(locale, "home.title"),
            email=user.email,
            csrf=session.csrf,
        )
