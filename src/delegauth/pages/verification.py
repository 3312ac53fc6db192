"""Email verification pages: the emailed link, "check your email" and "send me a new link".

GET /verify-email never uses the link up: it shows the address and a button, and only
the POST verifies, so a mail scanner that fetches the link changes nothing. A new link
can be asked for with or without a session; the answer never says whether an address
has an account, and the mails are rate-limited per address and per client.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import falcon

from delegauth.api.body import read_form
from delegauth.api.catalogue import negotiate_locale
from delegauth.domain.accounts import Accounts
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import User
from delegauth.errors import InvalidInput, InvalidToken
from delegauth.pages.forms import check_email_url, field_value, safe_return
from delegauth.pages.menu import AccountMenu
from delegauth.pages.rendering import Flash, Renderer
from delegauth.pages.sessions import BrowserSessions, SignInLimiter
from delegauth.pages.text import error_text, t
from delegauth.storage.oauth_store import SessionRow

__all__ = [
    "CheckEmailPage",
    "ResendVerificationPage",
    "VerifyEmailPage",
    "mask_email",
]


def mask_email(email: str) -> str:
    """j•••@example.com: enough for its owner to recognise, not enough to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else f"{email[:1]}•••"


class _VerificationPages:
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
        self._menu = AccountMenu(accounts)

    def _signed_in(self, req: falcon.Request) -> tuple[SessionRow, User] | None:
        session = self._sessions.current(req)
        if session is None:
            return None
        user = self._accounts.get_user(session.user_id)
        return session, user

    def _render(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        template: str,
        title: str,
        status: int = 200,
        **context: Any,
    ) -> None:
        """A page with the account menu when signed in."""
        session = self._sessions.current(req)
        menu = self._menu(session, None) if session is not None else None
        self._pages.render(req, resp, template, title=title, status=status, menu=menu, **context)

    def _resend(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        locale: str,
        return_to: str,
        label: str,
        *,
        ask_email: bool,
        email: str = "",
        error: str = "",
        secondary: bool = False,
    ) -> dict[str, Any]:
        """The "send me a new link" form (resend.html)."""
        return {
            "csrf": self._sessions.pre_csrf(req, resp),
            "return_to": return_to,
            "label": label,
            "ask_email": ask_email,
            "email_label": t(locale, "signin.email"),
            "email": email,
            "error": error,
            "secondary": secondary,
        }

    def _spent(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        locale: str,
        return_to: str,
        *,
        email: str = "",
        error: str = "",
        status: int = 410,
    ) -> None:
        """The page for a used, expired or unknown link: ask for a new one."""
        signed_in = self._signed_in(req)
        already = signed_in is not None and signed_in[1].email_verified
        self._render(
            req,
            resp,
            "spent.html",
            t(locale, "verify.spent_title"),
            status,
            here=None if req.method == "GET" else "/verify-email",
            already=already,
            return_to=return_to,
            signed_in_email=signed_in[1].email if signed_in is not None else "",
            resend=self._resend(
                req,
                resp,
                locale,
                return_to,
                t(locale, "verify.new_link"),
                ask_email=signed_in is None,
                email=email,
                error=error,
            ),
        )


class VerifyEmailPage(_VerificationPages):
    """GET /verify-email?token=…: the address and a button; POST: verify."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        token = (req.get_param("token") or "")[:200]
        return_to = safe_return(req.get_param("return_to"))
        user = self._accounts.pending_verification(token)
        if user is None:
            self._spent(req, resp, locale, return_to)
            return
        self._render(
            req,
            resp,
            "verify.html",
            t(locale, "verify.title"),
            email=user.email,
            csrf=self._sessions.pre_csrf(req, resp),
            token=token,
            return_to=return_to,
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            self._pages.error(req, resp, t(locale, "error.csrf"), 403, here="/verify-email")
            return
        try:
            user = self._accounts.verify_email(field_value(form, "token")[:200])
        except (InvalidInput, InvalidToken):
            self._spent(req, resp, locale, return_to)
            return
        session = self._sessions.current(req)
        if session is None or session.user_id != user.id:
            raise falcon.HTTPSeeOther("/signin?verified=1&return_to=" + quote(return_to, safe=""))
        if return_to == "/":
            raise falcon.HTTPSeeOther("/invitations?verified=1")
        if return_to.startswith("/invitations"):
            raise falcon.HTTPSeeOther(return_to + ("&" if "?" in return_to else "?") + "verified=1")
        raise falcon.HTTPSeeOther(return_to)


class CheckEmailPage(_VerificationPages):
    """GET /verify-email/sent: after sign-up, "check your email", with a way to resend."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        return_to = safe_return(req.get_param("return_to"))
        signed_in = self._signed_in(req)
        if signed_in is None:
            raise falcon.HTTPSeeOther("/signin")
        if signed_in[1].email_verified:
            raise falcon.HTTPSeeOther(return_to)
        self._page(req, resp, locale, signed_in[1], return_to, resent=bool(req.get_param("resent")))

    def _page(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        locale: str,
        user: User,
        return_to: str,
        *,
        resent: bool = False,
        error: str = "",
        status: int = 200,
    ) -> None:
        here = "/verify-email/sent" + (
            "?return_to=" + quote(return_to, safe="") if return_to != "/" else ""
        )
        self._render(
            req,
            resp,
            "check_email.html",
            t(locale, "check.title"),
            status,
            here=here,
            flashes=[Flash("notice", t(locale, "check.resent", email=user.email))]
            if resent
            else [],
            email=user.email,
            return_to=return_to,
            later="check.continue" if return_to == "/" else "verify.continue",
            resend=self._resend(
                req,
                resp,
                locale,
                return_to,
                t(locale, "check.resend"),
                ask_email=False,
                error=error,
                secondary=True,
            ),
        )


class ResendVerificationPage(CheckEmailPage):
    """POST /verify-email/resend: a new link, to the signed-in user or to a typed address."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPSeeOther("/verify-email/sent")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            self._pages.error(req, resp, t(locale, "error.csrf"), 403, here="/verify-email")
            return
        address = req.remote_addr or "unknown"
        signed_in = self._signed_in(req)
        if signed_in is not None:
            user = signed_in[1]
            if user.email_verified:
                raise falcon.HTTPSeeOther(return_to)
            if self._limiter.blocked(user.email, address):
                resp.set_header("Retry-After", "900")
                error = t(locale, "check.limited")
                self._page(req, resp, locale, user, return_to, error=error, status=429)
                return
            self._limiter.failed(user.email, address)
            self._accounts.resend_verification(user.email, return_to)
            raise falcon.HTTPSeeOther(check_email_url(return_to, resent=True))
        typed = field_value(form, "email")[:320]
        try:
            email = canonical_email(typed)
        except InvalidInput as ex:
            error = error_text(locale, ex)
            self._spent(req, resp, locale, return_to, email=typed, error=error, status=400)
            return
        if self._limiter.blocked(email, address):
            resp.set_header("Retry-After", "900")
            error = t(locale, "check.limited")
            self._spent(req, resp, locale, return_to, email=typed, error=error, status=429)
            return
        self._limiter.failed(email, address)
        self._accounts.resend_verification(email, return_to)
        self._render(
            req,
            resp,
            "check_if_account.html",
            t(locale, "check.title"),
            here="/verify-email",
            email=email,
            signin="/signin?return_to=" + quote(return_to, safe=""),
        )
