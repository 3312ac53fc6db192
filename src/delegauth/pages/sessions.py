"""Browser sessions for the hosted pages, their CSRF tokens, and the sign-in rate limit."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import falcon

from delegauth.domain.tokens import hash_secret, same_hash
from delegauth.pages.zones import reported_zone
from delegauth.storage.oauth_store import PeeweeOAuthStore, SessionRow

__all__ = ["BrowserSessions", "SignInLimiter"]

SESSION_COOKIE = "delegauth_session"
PRE_CSRF_COOKIE = "delegauth_csrf"


class BrowserSessions:
    def __init__(
        self,
        oauth: PeeweeOAuthStore,
        clock: Callable[[], datetime],
        *,
        secure: bool,
        lifetime: timedelta = timedelta(hours=12),
        on_zone: Callable[[str, str], None] | None = None,
    ) -> None:
        self._oauth = oauth
        self._clock = clock
        self._secure = secure
        self._lifetime = lifetime
        # Told (user id, zone) on each signed-in page the browser reports its zone for:
        # the account keeps it for mail (Accounts.remember_time_zone).
        self._on_zone = on_zone

    def now(self) -> datetime:
        """The sessions' clock (naive UTC): what the pages compare grants' ends with."""
        return self._clock()

    def current(self, req: falcon.Request) -> SessionRow | None:
        """The signed-in session, if any; its user's account is told the zone the browser
        reports (``on_zone``)."""
        value = req.get_cookie_values(SESSION_COOKIE)
        if not value or len(value[0]) > 100:
            return None
        session = self._oauth.get_session(hash_secret(value[0]), self._clock())
        if session is not None:
            self._remember_zone(req, session.user_id)
        return session

    def _remember_zone(self, req: falcon.Request, user_id: str) -> None:
        zone = reported_zone(req)
        if zone and self._on_zone is not None:
            self._on_zone(user_id, zone)

    def start(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> SessionRow:
        """Sign ``user_id`` in (the session cookie); their account is told the zone the
        browser reports, as on every signed-in page."""
        self._remember_zone(req, user_id)
        value = secrets.token_urlsafe(32)
        now = self._clock()
        row = SessionRow(
            hash_secret(value), user_id, secrets.token_urlsafe(24), now, now + self._lifetime
        )
        self._oauth.add_session(row)
        resp.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(self._lifetime.total_seconds()),
            secure=self._secure,
            http_only=True,
            same_site="Lax",
            path="/",
        )
        return row

    def end(self, req: falcon.Request, resp: falcon.Response) -> None:
        value = req.get_cookie_values(SESSION_COOKIE)
        if value:
            self._oauth.delete_session(hash_secret(value[0]))
        resp.unset_cookie(SESSION_COOKIE, path="/")

    # CSRF before a session exists: a double-submit cookie, HttpOnly and SameSite=Strict.
    def pre_csrf(self, req: falcon.Request, resp: falcon.Response) -> str:
        existing = req.get_cookie_values(PRE_CSRF_COOKIE)
        token = existing[0] if existing and 20 <= len(existing[0]) <= 64 else None
        if token is None:
            token = secrets.token_urlsafe(24)
            resp.set_cookie(
                PRE_CSRF_COOKIE,
                token,
                secure=self._secure,
                http_only=True,
                same_site="Strict",
                path="/",
            )
        return token

    def check_pre_csrf(self, req: falcon.Request, submitted: str | None) -> bool:
        cookie = req.get_cookie_values(PRE_CSRF_COOKIE)
        return bool(cookie and submitted and same_hash(cookie[0], submitted))

    @staticmethod
    def check_csrf(session: SessionRow, submitted: str | None) -> bool:
        return bool(submitted) and same_hash(session.csrf, submitted or "")


class SignInLimiter:
    """At most ``limit`` failed sign-ins per email, and ``address_limit`` per client
    address (many people may share one), in ``window``. Counted in the database, so
    the limits hold across workers and replicas."""

    def __init__(
        self,
        oauth: PeeweeOAuthStore,
        clock: Callable[[], datetime],
        *,
        limit: int = 5,
        address_limit: int = 50,
        window: timedelta = timedelta(minutes=15),
        prefix: str = "",
    ) -> None:
        self._oauth = oauth
        self._clock = clock
        self._limits = (limit, address_limit)
        self._window = window
        self._prefix = prefix  # another limit on the same table (say, verification mails)

    def _keys(self, email: str, address: str) -> list[str]:
        p = self._prefix
        return [p + "email:" + hash_secret(email)[:32], p + "addr:" + address[:64]]

    def blocked(self, email: str, address: str) -> bool:
        since = self._clock() - self._window
        return any(
            self._oauth.count_failures(key, since) >= limit
            for key, limit in zip(self._keys(email, address), self._limits, strict=True)
        )

    def failed(self, email: str, address: str) -> None:
        for key in self._keys(email, address):
            self._oauth.add_failure(key, self._clock())

    def succeeded(self, email: str, address: str) -> None:
        self._oauth.clear_failures(self._keys(email, address)[0])
