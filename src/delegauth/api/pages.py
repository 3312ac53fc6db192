"""Hosted HTML pages: sign-in, sign-up, sign-out and the signed-in landing page.

Plain accessible forms (a <label> for every field), CSRF on every POST, no inline
script or style, English or Spanish by Accept-Language.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from urllib.parse import quote

import falcon

from delegauth.api.body import read_form
from delegauth.api.catalogue import negotiate_locale
from delegauth.api.pages_text import t
from delegauth.api.sessions import BrowserSessions, SignInLimiter
from delegauth.domain.accounts import Accounts
from delegauth.domain.emails import canonical_email
from delegauth.domain.invitations import Invitations
from delegauth.errors import DelegauthError, InvalidInput

__all__ = [
    "HomePage",
    "SignInPage",
    "SignOutPage",
    "SignUpPage",
    "StaticCss",
    "check_email_url",
    "field_value",
    "render",
    "safe_return",
]

_STATIC = Path(__file__).with_name("static")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' http: https:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Where a sign-in may send the browser back to: our own pages only (no open redirects).
_RETURN_RE = re.compile(
    r"^/(oauth/authorize\?[^\s\\#]*|invitations(/[^\s\\#]*)?|areas(/[a-z0-9_/]*)?|)$"
)


def safe_return(value: object) -> str:
    if (
        isinstance(value, str)
        and len(value) <= 4096
        and _RETURN_RE.match(value)
        and not value.startswith("//")
    ):
        return value
    return "/"


def check_email_url(return_to: str, resent: bool = False) -> str:
    """The "check your email" page, coming back to return_to afterwards."""
    query = ["resent=1"] if resent else []
    if return_to != "/":
        query.append("return_to=" + quote(return_to, safe=""))
    return "/verify-email/sent" + ("?" + "&".join(query) if query else "")


def field_value(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0]


# Set by the app from DELEGAUTH_BRAND_NAME / DELEGAUTH_BRAND_LOGO.
BRAND: dict[str, str] = {"name": "", "logo": ""}


def render(
    resp: falcon.Response,
    locale: str,
    title: str,
    body: str,
    status: int = 200,
    header: str = "",
    wide: bool = False,
) -> None:
    main_class = ' class="wide"' if wide else ""
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Frame-Options", "DENY")
    resp.text = (
        f'<!doctype html><html lang="{locale}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/static/delegauth.css"></head>'
        f"<body>{_brand_bar()}{header}<main{main_class}><h1>{escape(title)}</h1>"
        f"{body}</main></body></html>"
    )


def _brand_bar() -> str:
    if not BRAND["logo"] and not BRAND["name"]:
        return ""
    name = escape(BRAND["name"] or "")
    logo = f'<img src="/static/logo" alt="{name}" height="32">' if BRAND["logo"] else name
    return f'<div class="brand"><a href="/">{logo}</a></div>'


def error_page(resp: falcon.Response, locale: str, message: str, status: int) -> None:
    render(
        resp,
        locale,
        t(locale, "error.title"),
        f'<p class="error" role="alert">{escape(message)}</p>',
        status,
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


class StaticCss:
    """The stylesheet: ours, followed by the provider's own (DELEGAUTH_BRAND_CSS), so a
    hosting provider restyles the pages without touching them."""

    def __init__(self, brand_css: str = "") -> None:
        self._brand = Path(brand_css) if brand_css else None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        css = (_STATIC / "delegauth.css").read_text("utf-8")
        if self._brand is not None:
            css += "\n/* provider stylesheet */\n" + self._brand.read_text("utf-8")
        resp.content_type = "text/css; charset=utf-8"
        resp.text = css
        resp.set_header("Cache-Control", "public, max-age=300")


class StaticLogo:
    """The provider's logo (DELEGAUTH_BRAND_LOGO), shown at the top of every page."""

    TYPES = {
        ".png": "image/png",
        ".svg": "image/svg+xml",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".webp": "image/webp",
    }

    def __init__(self, logo: str) -> None:
        self._path = Path(logo)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = self.TYPES.get(self._path.suffix.lower(), "application/octet-stream")
        resp.data = self._path.read_bytes()
        resp.set_header("Cache-Control", "public, max-age=300")


class SignInPage:
    def __init__(
        self, accounts: Accounts, sessions: BrowserSessions, limiter: SignInLimiter
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._limiter = limiter

    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        locale: str,
        return_to: str,
        email: str = "",
        error: str = "",
        status: int = 200,
        notice: str = "",
    ) -> None:
        csrf = self._sessions.pre_csrf(req, resp)
        alert = (
            f'<p class="error" role="alert" id="form-error">{escape(error)}</p>'
            if error
            else (f'<p class="notice" role="status">{escape(notice)}</p>' if notice else "")
        )
        described = ' aria-describedby="form-error"' if error else ""
        signup = "/signup?return_to=" + quote(return_to, safe="")
        body = (
            f'{alert}<form method="post" action="/signin">'
            + _hidden("csrf", csrf)
            + _hidden("return_to", return_to)
            + f'<label for="email">{t(locale, "signin.email")}</label>'
            f'<input id="email" name="email" type="email" autocomplete="username" required'
            f' value="{escape(email)}"{described}>'
            f'<label for="password">{t(locale, "signin.password")}</label>'
            f'<input id="password" name="password" type="password"'
            f' autocomplete="current-password" required>'
            f'<button type="submit">{t(locale, "signin.submit")}</button></form>'
            f"<p>{t(locale, 'signin.no_account')} "
            f'<a href="{escape(signup)}">{t(locale, "signin.signup_link")}</a></p>'
        )
        render(resp, locale, t(locale, "signin.title"), body, status)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        notice = t(locale, "verify.signin") if req.get_param("verified") else ""
        self._form(req, resp, locale, safe_return(req.get_param("return_to")), notice=notice)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            error_page(resp, locale, t(locale, "error.csrf"), 403)
            return
        email_raw, password = field_value(form, "email"), field_value(form, "password")
        try:
            email = canonical_email(email_raw)
        except InvalidInput:
            email = email_raw.strip().lower()[:320]
        address = req.remote_addr or "unknown"
        if self._limiter.blocked(email, address):
            self._form(req, resp, locale, return_to, email_raw, t(locale, "signin.limited"), 429)
            resp.set_header("Retry-After", "900")
            return
        user = self._accounts.authenticate(email, password)
        if user is None:
            self._limiter.failed(email, address)
            self._form(req, resp, locale, return_to, email_raw, t(locale, "signin.failed"), 401)
            return
        self._limiter.succeeded(email, address)
        self._sessions.start(resp, user.id)
        raise falcon.HTTPSeeOther(return_to)


class SignUpPage:
    def __init__(
        self, accounts: Accounts, sessions: BrowserSessions, invitations: Invitations
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._invitations = invitations

    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        locale: str,
        return_to: str,
        invitation: str,
        values: dict[str, str] | None = None,
        error: str = "",
        status: int = 200,
    ) -> None:
        values = values or {}
        csrf = self._sessions.pre_csrf(req, resp)
        alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
        intro, email_attrs = "", ""
        if invitation:
            preview = self._invitations.preview(invitation)
            if preview is None:  # a dead link still lets the person sign up
                invitation = ""
                alert += f'<p class="error" role="alert">{t(locale, "signup.invitation_gone")}</p>'
            else:
                who, area = preview.inviter_name, preview.area_name
                intro = (
                    f'<p class="invited">{escape(t(locale, "signup.invited", who=who, area=area))}'
                    f"</p><p>{t(locale, 'signup.invited_how')}</p>"
                )
                values["email"] = preview.invitation.email
                email_attrs = ' readonly aria-describedby="email-hint"'
        email_hint = (
            f'<span class="hint" id="email-hint">{t(locale, "signup.invited_email")}</span>'
            if email_attrs
            else ""
        )
        body = (
            f'{intro}{alert}<form method="post" action="/signup">'
            + _hidden("csrf", csrf)
            + _hidden("return_to", return_to)
            + _hidden("invitation_token", invitation)
            + f'<label for="name">{t(locale, "signup.name")}</label>'
            f'<input id="name" name="name" type="text" autocomplete="name"'
            f' value="{escape(values.get("name", ""))}">'
            f'<label for="email">{t(locale, "signin.email")}</label>'
            f'<input id="email" name="email" type="email" autocomplete="email" required'
            f' value="{escape(values.get("email", ""))}"{email_attrs}>{email_hint}'
            f'<label for="password">{t(locale, "signin.password")}</label>'
            f'<input id="password" name="password" type="password" autocomplete="new-password"'
            f' minlength="10" required>'
            f'<button type="submit">{t(locale, "signup.submit")}</button></form>'
            f'<p>{t(locale, "signup.have_account")} <a href="/signin?return_to='
            f'{escape(quote(return_to, safe=""))}">{t(locale, "signin.submit")}</a></p>'
        )
        render(resp, locale, t(locale, "signup.title"), body, status)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        invitation = (req.get_param("invitation_token") or "")[:200]
        self._form(req, resp, locale, safe_return(req.get_param("return_to")), invitation)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        locale = negotiate_locale(req)
        form = read_form(req)
        return_to = safe_return(field_value(form, "return_to"))
        invitation = field_value(form, "invitation_token")[:200]
        if not self._sessions.check_pre_csrf(req, field_value(form, "csrf")):
            error_page(resp, locale, t(locale, "error.csrf"), 403)
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
            self._form(req, resp, locale, return_to, invitation, values, ex.detail, 400)
            return
        self._sessions.start(resp, user.id)
        if user.email_verified:  # signed up through an invitation sent to this address
            raise falcon.HTTPSeeOther(return_to)
        raise falcon.HTTPSeeOther(check_email_url(return_to))


class SignOutPage:
    def __init__(self, sessions: BrowserSessions) -> None:
        self._sessions = sessions

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self._sessions.current(req)
        form = read_form(req)
        if session is not None and not self._sessions.check_csrf(
            session, field_value(form, "csrf")
        ):
            error_page(resp, negotiate_locale(req), t(negotiate_locale(req), "error.csrf"), 403)
            return
        self._sessions.end(req, resp)
        back = safe_return(field_value(form, "return_to"))
        raise falcon.HTTPSeeOther(back if back != "/" else "/signin")


class HomePage:
    def __init__(self, accounts: Accounts, sessions: BrowserSessions) -> None:
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
        body = (
            f"<p>{escape(t(locale, 'home.as', email=user.email))}</p>"
            f'<form method="post" action="/signout">{_hidden("csrf", session.csrf)}'
            f'<button type="submit" class="secondary">{t(locale, "signout")}</button></form>'
        )
        render(resp, locale, t(locale, "home.title"), body)
