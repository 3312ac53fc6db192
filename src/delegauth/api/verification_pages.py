"""Email verification pages: the emailed link, "check your email" and "send me a new link".

GET /verify-email never uses the link up: it shows the address and a button, and only
the POST verifies, so a mail scanner that fetches the link changes nothing. A new link
can be asked for with or without a session; the answer never says whether an address
has an account, and the mails are rate-limited per address and per client.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from urllib.parse import quote

import falcon

from delegauth.api.body import read_form
from delegauth.api.catalogue import negotiate_locale
from delegauth.api.pages import check_email_url, error_page, field_value, render, safe_return
from delegauth.domain.accounts import Accounts
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import User
from delegauth.errors import InvalidInput, InvalidToken
from delegauth.pages.sessions import BrowserSessions, SignInLimiter
from delegauth.pages.text import t
from delegauth.storage.oauth_store import SessionRow

__all__ = [
    "CheckEmailPage",
    "ResendVerificationPage",
    "VerifyEmailPage",
    "mask_email",
]

# Builds the signed-in header (the account menu): Console.header.
Header = Callable[[str, SessionRow, str | None], str]


def mask_email(email: str) -> str:
    """j•••@example.com: enough for its owner to recognise, not enough to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else f"{email[:1]}•••"


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


class _VerificationPages:
    def __init__(
        self,
        accounts: Accounts,
        sessions: BrowserSessions,
        limiter: SignInLimiter,
        header: Header,
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._limiter = limiter
        self._header = header

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
        locale: str,
        title: str,
        body: str,
        status: int = 200,
    ) -> None:
        session = self._sessions.current(req)
        header = self._header(locale, session, None) if session is not None else ""
        render(resp, locale, title, body, status, header=header)

    def _resend_form(
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
    ) -> str:
        csrf = self._sessions.pre_csrf(req, resp)
        field = ""
        if ask_email:
            described = ' aria-describedby="resend-error"' if error else ""
            field = (
                f'<label for="email">{t(locale, "signin.email")}</label>'
                f'<input id="email" name="email" type="email" autocomplete="email" required'
                f' value="{escape(email)}"{described}>'
            )
        alert = (
            f'<p class="error" role="alert" id="resend-error">{escape(error)}</p>' if error else ""
        )
        css = ' class="secondary"' if secondary else ""
        return (
            f'{alert}<form method="post" action="/verify-email/resend">'
            + _hidden("csrf", csrf)
            + _hidden("return_to", return_to)
            + f'{field}<button type="submit"{css}>{escape(label)}</button></form>'
        )

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
        title = t(locale, "verify.spent_title")
        if signed_in is not None and signed_in[1].email_verified:
            body = (
                f'<p class="notice" role="status">{t(locale, "verify.already")}</p>'
                f'<p><a class="button" href="{escape(return_to)}">'
                f"{t(locale, 'verify.continue')}</a></p>"
            )
            self._render(req, resp, locale, title, body, status)
            return
        text = f"<p>{t(locale, 'verify.spent')}</p>"
        if signed_in is not None:
            text += f"<p>{escape(t(locale, 'verify.new_to', email=signed_in[1].email))}</p>"
        else:
            text += (
                f"<p>{t(locale, 'verify.new_ask')}</p>"
                f'<p class="hint">{t(locale, "verify.new_private")}</p>'
            )
        form = self._resend_form(
            req,
            resp,
            locale,
            return_to,
            t(locale, "verify.new_link"),
            ask_email=signed_in is None,
            email=email,
            error=error,
        )
        self._render(req, resp, locale, title, text + form, status)


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
        csrf = self._sessions.pre_csrf(req, resp)
        body = (
            f"<p>{escape(t(locale, 'verify.intro', email=user.email))}</p>"
            '<form method="post" action="/verify-email">'
            + _hidden("csrf", csrf)
            + _hidden("token", token)
            + _hidden("return_to", return_to)
            + f'<button type="submit">{t(locale, "verify.submit")}</button></form>'
        )
        self._render(req, resp, locale, t(locale, "verify.title"), body)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            error_page(resp, locale, t(locale, "error.csrf"), 403)
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
        flash = (
            f'<p class="notice" role="status">{escape(t(locale, "check.resent", email=user.email))}'
            "</p>"
            if resent
            else ""
        )
        later = "check.continue" if return_to == "/" else "verify.continue"
        body = (
            flash
            + f"<p>{escape(t(locale, 'check.sent_to', email=user.email))}</p>"
            + f"<p>{t(locale, 'check.why')}</p>"
            + f'<p class="hint">{t(locale, "check.not_there")}</p>'
            + self._resend_form(
                req,
                resp,
                locale,
                return_to,
                t(locale, "check.resend"),
                ask_email=False,
                error=error,
                secondary=True,
            )
            + f'<p class="later"><a href="{escape(return_to)}">{t(locale, later)}</a></p>'
        )
        self._render(req, resp, locale, t(locale, "check.title"), body, status)


class ResendVerificationPage(CheckEmailPage):
    """POST /verify-email/resend: a new link, to the signed-in user or to a typed address."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPSeeOther("/verify-email/sent")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            error_page(resp, locale, t(locale, "error.csrf"), 403)
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
        except InvalidInput:
            error = t(locale, "check.bad_email")
            self._spent(req, resp, locale, return_to, email=typed, error=error, status=400)
            return
        if self._limiter.blocked(email, address):
            resp.set_header("Retry-After", "900")
            error = t(locale, "check.limited")
            self._spent(req, resp, locale, return_to, email=typed, error=error, status=429)
            return
        self._limiter.failed(email, address)
        self._accounts.resend_verification(email, return_to)
        body = (
            f"<p>{escape(t(locale, 'check.if_account', email=email))}</p>"
            f'<p><a href="/signin?return_to={escape(quote(return_to, safe=""))}">'
            f"{t(locale, 'signin.title')}</a></p>"
        )
        self._render(req, resp, locale, t(locale, "check.title"), body)
