"""The hosted pages: the HTML edge beside the JSON API (delegauth.api).

Falcon resources rendered from Jinja2 templates (templates/, one base layout), with
their stylesheet and script (static/) and their words in gettext catalogues (locale/).
They call the same domain services as the JSON API; ``add_routes`` wires them.
"""

from __future__ import annotations

from collections.abc import Callable

import falcon

from delegauth.domain.access_requests import AccessRequests
from delegauth.domain.accounts import Accounts
from delegauth.domain.catalogue import Catalogue
from delegauth.domain.invitations import Invitations
from delegauth.domain.members import Members
from delegauth.domain.ports import Store
from delegauth.domain.webhooks import Webhooks
from delegauth.oauth.server import DelegauthAuthorizationServer
from delegauth.pages.access_requests import AccessRequestPages
from delegauth.pages.authorize import AuthorizeResource
from delegauth.pages.console import Console
from delegauth.pages.rendering import Renderer
from delegauth.pages.sessions import BrowserSessions, SignInLimiter
from delegauth.pages.signin import HomePage, SignInPage, SignOutPage, SignUpPage
from delegauth.pages.static import StaticCss, StaticLogo, StaticScript
from delegauth.pages.verification import CheckEmailPage, ResendVerificationPage, VerifyEmailPage
from delegauth.pages.webhooks import webhook_routes

__all__ = ["BrowserSessions", "Renderer", "SignInLimiter", "add_routes"]


def add_routes(
    app: falcon.App,
    *,
    accounts: Accounts,
    invitations: Invitations,
    members: Members,
    access_requests: AccessRequests,
    store: Store,
    sessions: BrowserSessions,
    limiter: SignInLimiter,
    mail_limiter: SignInLimiter,
    catalogue: Callable[[], Catalogue],
    authorization_server: DelegauthAuthorizationServer,
    public_url: str,
    issuer: str,
    brand_css: str = "",
    brand_name: str = "",
    brand_logo: str = "",
    webhooks: Webhooks | None = None,
) -> Renderer:
    """Add every page's route to ``app``; returns the renderer they share.

    ``limiter`` bounds failed sign-ins; ``mail_limiter`` the verification mails asked
    for from the pages."""
    pages = Renderer(brand_name=brand_name, brand_logo=bool(brand_logo))
    app.add_route(
        "/oauth/authorize",
        AuthorizeResource(
            pages, authorization_server, accounts, store, sessions, public_url, issuer
        ),
    )
    app.add_route("/signin", SignInPage(pages, accounts, sessions, limiter))
    app.add_route("/signup", SignUpPage(pages, accounts, sessions, invitations))
    app.add_route("/signout", SignOutPage(pages, sessions))
    app.add_route("/", HomePage(pages, accounts, sessions))
    app.add_route("/static/delegauth.css", StaticCss(brand_css))
    app.add_route("/static/delegauth.js", StaticScript())
    if brand_logo:
        app.add_route("/static/logo", StaticLogo(brand_logo))
    console = Console(
        pages, accounts, invitations, members, store, sessions, catalogue, access_requests
    )
    for path, resource in console.routes() + AccessRequestPages(console, access_requests).routes():
        app.add_route(path, resource)
    if webhooks is not None:
        for path, resource in webhook_routes(console, webhooks):
            app.add_route(path, resource)
    verifying = (pages, accounts, sessions, mail_limiter)
    app.add_route("/verify-email", VerifyEmailPage(*verifying))
    app.add_route("/verify-email/sent", CheckEmailPage(*verifying))
    app.add_route("/verify-email/resend", ResendVerificationPage(*verifying))
    return pages
