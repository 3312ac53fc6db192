"""The composition root: create_app(settings, **overrides) builds every collaborator.

``get_app()`` is what the WSGI server imports: it reads the environment once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon
import peewee

from delegauth.api import (
    access_requests,
    accounts,
    areas,
    authzen,
    authzen_search,
    oauth,
    webhooks,
)
from delegauth.api.auth import Authenticator
from delegauth.api.body import send_json
from delegauth.api.catalogue import LanguageMiddleware, PermissionsResource
from delegauth.api.fast import FastEvaluation
from delegauth.api.metrics import MetricsResource
from delegauth.api.middleware import AccessLines, RequestMiddleware
from delegauth.api.openapi import OpenApiResource
from delegauth.api.problems import install_error_handlers
from delegauth.config import Settings, load_settings
from delegauth.domain.access_requests import AccessRequests
from delegauth.domain.accounts import Accounts
from delegauth.domain.audit_trail import AuditTrail
from delegauth.domain.catalogue import Catalogue
from delegauth.domain.expiry import ExpirySweep
from delegauth.domain.invitations import Invitations
from delegauth.domain.members import Members
from delegauth.domain.ports import Clock, PasswordHasher
from delegauth.domain.revocations import RevokedTokens
from delegauth.domain.webhooks import Webhooks
from delegauth.mail.composer import MailComposer
from delegauth.oauth.clients import ClientRegistry
from delegauth.oauth.issuing import TokenIssuer
from delegauth.oauth.server import DelegauthAuthorizationServer
from delegauth.pages import BrowserSessions, SignInLimiter
from delegauth.pages import add_routes as add_page_routes
from delegauth.passwords import Argon2Hasher
from delegauth.policy.bundle import PolicySnapshot, read_snapshot
from delegauth.policy.check import checked_bundle
from delegauth.policy.decider import Decider
from delegauth.policy.watcher import PolicyWatcher
from delegauth.storage.db import DatabaseProbe, open_database
from delegauth.storage.feed import PeeweePolicyFeed
from delegauth.storage.oauth_store import PeeweeOAuthStore
from delegauth.storage.outbox import PeeweeOutbox
from delegauth.storage.records import database_proxy
from delegauth.storage.search_feed import PeeweeSearchFeed
from delegauth.storage.store import PeeweeStore
from delegauth.tokens import KeyRing, TokenService
from delegauth.webhooks import HttpxSender, WebhookDispatcher, WebhookKey, new_salt

__all__ = ["Services", "build_services", "create_app", "get_app", "serving_app", "utcnow"]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """Naive UTC: what every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Services:
    settings: Settings
    db: peewee.Database
    store: PeeweeStore
    decider: Decider
    keys: KeyRing
    tokens: TokenService
    accounts: Accounts
    invitations: Invitations
    members: Members
    access_requests: AccessRequests
    oauth_store: PeeweeOAuthStore
    clients: ClientRegistry
    authorization_server: DelegauthAuthorizationServer
    sessions: BrowserSessions
    limiter: SignInLimiter
    watcher: PolicyWatcher
    # verification mails asked for from the pages: 3 per address, 20 per client, in 15 min
    mail_limiter: SignInLimiter
    webhooks: Webhooks
    dispatcher: WebhookDispatcher
    audit_trail: AuditTrail
    expiry: ExpirySweep
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for stop in reversed(self.stoppers):
            stop()
        self.stoppers.clear()


def build_services(
    settings: Settings,
    *,
    db: peewee.Database | None = None,
    clock: Clock = utcnow,
    hasher: PasswordHasher | None = None,
    keys: KeyRing | None = None,
    start_background: bool | None = None,
    policy: PolicySnapshot | None = None,
) -> Services:
    """Build every collaborator. ``policy`` is the snapshot of policies/ to start from
    (``serve`` passes the one it checked); by default the directory is read now. Either
    way the snapshot is checked and exactly that snapshot decides."""
    db = (
        db
        if db is not None
        else open_database(
            settings.database_url,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            busy_timeout_ms=settings.db_busy_timeout_ms,
        )
    )
    database_proxy.initialize(db)
    bundle = checked_bundle(policy if policy is not None else read_snapshot(settings.policies_dir))
    max_areas, max_bytes = settings.area_cache_bound
    seconds = _seconds(clock)
    # Access tokens revoked through any worker or replica, from the change log.
    revoked = RevokedTokens(max_staleness=settings.max_staleness_s, clock=seconds)
    decider = Decider(
        bundle,
        PeeweePolicyFeed(db),
        max_staleness=settings.max_staleness_s,
        max_areas=max_areas,
        max_bytes=max_bytes,
        revoked=revoked,
        clock=seconds,
    )
    store = PeeweeStore(db, policy_hash=lambda: decider.policy_hash)
    decider.sync()
    keys = (
        keys
        if keys is not None
        else KeyRing.load_or_create(
            settings.key_dir,
            algorithm=settings.signing_algorithm,
            retire_after_s=settings.key_overlap_s,
        )
    )
    tokens = TokenService(
        keys,
        settings.issuer,
        settings.issuer,
        lifetime_s=settings.access_token_minutes * 60,
        clock=seconds,
        revoked=revoked,
    )

    def changed(version: int) -> None:
        # This process sees its own writes at once; others follow the change log.
        try:
            decider.sync()
        except Exception:  # noqa: BLE001 - the follower retries; staleness fails closed
            log.warning("could not apply the change log after a write", exc_info=True)

    def catalogue() -> Catalogue:
        return decider.bundle.catalogue  # the policy in force, after any reload

    composer = MailComposer(catalogue, settings.public_url)
    hasher = hasher if hasher is not None else Argon2Hasher()
    accounts = Accounts(
        store,
        hasher,
        composer,
        clock,
        verification_ttl=timedelta(hours=settings.verification_hours),
        on_policy_change=changed,
    )
    oauth_store = PeeweeOAuthStore(db)
    clients = ClientRegistry(oauth_store, clock)
    issuer = TokenIssuer(
        tokens,
        oauth_store,
        accounts,
        clock,
        refresh_lifetime=timedelta(days=settings.refresh_token_days),
    )
    webhook_key = WebhookKey.load_or_create(settings.webhook_key, settings.key_dir)
    members = Members(store, catalogue, clock, on_policy_change=changed)
    services = Services(
        settings=settings,
        db=db,
        store=store,
        decider=decider,
        keys=keys,
        tokens=tokens,
        accounts=accounts,
        invitations=Invitations(
            store,
            catalogue,
            composer,
            clock,
            ttl=timedelta(days=settings.invitation_days),
            on_policy_change=changed,
        ),
        members=members,
        access_requests=AccessRequests(
            store, catalogue, members, composer, clock, on_policy_change=changed
        ),
        oauth_store=oauth_store,
        clients=clients,
        authorization_server=DelegauthAuthorizationServer(
            clients=clients,
            tokens=tokens,
            store=store,
            oauth=oauth_store,
            issuer=issuer,
            clock=clock,
            allow_http=settings.insecure_http,
            on_revoked=changed,
        ),
        sessions=BrowserSessions(
            oauth_store,
            clock,
            secure=settings.public_url.startswith("https://"),
            on_zone=accounts.remember_time_zone,
        ),
        limiter=SignInLimiter(oauth_store, clock),
        mail_limiter=SignInLimiter(
            oauth_store, clock, limit=3, address_limit=20, prefix="verify-mail:"
        ),
        watcher=PolicyWatcher(settings.policies_dir, decider),
        webhooks=Webhooks(
            store,
            store.webhooks,
            clock,
            insecure=settings.webhooks_insecure,
            new_salt=new_salt,
            secret=webhook_key.secret,
        ),
        dispatcher=_dispatcher(settings, store, clock, webhook_key),
        audit_trail=AuditTrail(store, store),
        expiry=ExpirySweep(
            store,
            composer,
            clock,
            remind_before=timedelta(days=settings.expiry_reminder_days),
        ),
    )
    background = settings.background if start_background is None else start_background
    if background:
        services.stoppers.append(decider.start_follower(settings.change_poll_ms / 1000))
        if settings.warmup_areas > 0:
            services.stoppers.append(decider.start_warm_up(settings.warmup_areas))
        services.stoppers.append(services.watcher.start(settings.policy_poll_s))
        services.stoppers.extend(_start_mail(settings, db, clock))
        # Every worker dispatches (leases keep them apart); its own commits wake it.
        store.on_published = services.dispatcher.wake
        services.stoppers.append(services.dispatcher.start(settings.webhook_poll_ms / 1000))
        services.stoppers.append(services.expiry.start(settings.expiry_sweep_s))
    return services


def _seconds(clock: Clock) -> Callable[[], float]:
    """``clock`` as seconds since the epoch (what tokens and the Decider compare): the real
    clock is read directly, as every bearer check reads it."""
    if clock is utcnow:
        return time.time
    return lambda: clock().replace(tzinfo=UTC).timestamp()


def _dispatcher(
    settings: Settings, store: PeeweeStore, clock: Clock, key: WebhookKey
) -> WebhookDispatcher:
    return WebhookDispatcher(
        store.webhooks,
        HttpxSender(timeout_s=settings.webhook_timeout_s, allow_private=settings.webhooks_insecure),
        key.secret,
        clock=clock,
        wall_clock=utcnow,
        max_attempts=settings.webhook_max_attempts,
    )


def _start_mail(settings: Settings, db: peewee.Database, clock: Clock) -> list[Callable[[], None]]:
    from delegauth.mail.sender import OutboxSender
    from delegauth.mail.transport import transport_from_url

    sender = OutboxSender(
        PeeweeOutbox(db),
        transport_from_url(settings.smtp_url, sender=settings.mail_from),
        clock=clock,
        max_attempts=settings.mail_max_attempts,
    )
    return [sender.start(1.0)]


class _Ready:
    """Readiness: the database answers, a valid policy is loaded, the change log is current,
    and the warm-up (if any) is done.

    It answers within a second even when the database hangs: a probe that has not answered
    by then counts as unreachable.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._database_answers = DatabaseProbe(services.db, timeout_s=0.8)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        services = self._services
        problems = []
        if not self._database_answers():
            problems.append("database unreachable")
        age = services.decider.sync_age
        if age > services.settings.max_staleness_s:
            problems.append(f"change log not read for {age:.1f} s")
        if services.decider.warming:
            problems.append(f"warming up: {services.decider.warmed_areas} areas loaded")
        body = {
            "status": "ready" if not problems else "not ready",
            "policy_hash": services.decider.policy_hash,
            "changelog_version": services.decider.applied_version,
            "problems": problems,
            "worker": os.getpid(),
        }
        send_json(resp, body, 503 if problems else 200)


class _Health:
    def __init__(self, services: Services) -> None:
        self._services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = self._services.watcher.status
        send_json(
            resp,
            {
                "status": "ok",
                "policy_hash": self._services.decider.policy_hash,
                "policy_reloads": status.reloads,
                "policy_reload_failures": status.failures,
                "policy_reload_error": status.last_error,
                "policy_refused_hash": status.refused_version,
                # Which worker answered: each checks policies/ on its own (SIGHUP, polling).
                "worker": os.getpid(),
            },
        )


def create_app(settings: Settings | None = None, **overrides: Any) -> falcon.App:
    settings = settings or load_settings()
    services = overrides.pop("services", None) or build_services(settings, **overrides)
    auth = Authenticator(services.tokens)
    max_body = settings.max_body_bytes
    app = falcon.App(
        middleware=[RequestMiddleware(), LanguageMiddleware()]  # type: ignore[arg-type]
    )
    app.req_options.strip_url_path_trailing_slash = True
    install_error_handlers(app)

    app.add_route("/healthz", _Health(services))
    app.add_route("/readyz", _Ready(services))
    app.add_route("/openapi.json", OpenApiResource(lambda: services.decider.bundle.catalogue))
    app.add_route(
        "/metrics",
        MetricsResource(
            services.decider,
            services.watcher,
            PeeweePolicyFeed(services.db).latest_version,
            PeeweeOutbox(services.db).depth,
            services.store.webhooks.depth,
        ),
    )
    app.add_route("/v1/signup", accounts.SignupResource(services.accounts, max_body))
    app.add_route(
        "/v1/email-verifications", accounts.VerificationResource(services.accounts, max_body)
    )
    app.add_route("/v1/me", accounts.MeResource(auth, services.accounts))
    app.add_route(
        "/v1/me/invitations",
        accounts.MyInvitationsResource(
            auth, services.accounts, services.invitations, services.store
        ),
    )
    answer = accounts.AnswerInvitationResource(auth, services.invitations)
    app.add_route("/v1/invitations/{invitation_id}/accept", answer, suffix="accept")
    app.add_route("/v1/invitations/{invitation_id}/decline", answer, suffix="decline")
    app.add_route(
        "/v1/invitations/accept",
        accounts.AcceptByTokenResource(auth, services.invitations, max_body),
    )

    app.add_route("/v1/areas/{area_id}/members", areas.MembersResource(auth, services.members))
    app.add_route(
        "/v1/areas/{area_id}/members/{user_id}",
        areas.MemberResource(auth, services.members, max_body),
    )
    app.add_route(
        "/v1/areas/{area_id}/invitations",
        areas.InvitationsResource(auth, services.invitations, max_body),
    )
    invitation = areas.InvitationResource(auth, services.invitations, max_body)
    app.add_route("/v1/areas/{area_id}/invitations/{invitation_id}", invitation)
    app.add_route(
        "/v1/areas/{area_id}/invitations/{invitation_id}/resend", invitation, suffix="resend"
    )
    app.add_route("/v1/areas/{area_id}/audit", areas.AuditResource(auth, services.members))
    app.add_route(
        "/v1/areas/{area_id}/audit/export",
        webhooks.AuditExportResource(auth, services.audit_trail),
    )
    app.add_route(
        "/v1/areas/{area_id}/webhooks",
        webhooks.WebhooksResource(auth, services.webhooks, max_body),
    )
    app.add_route(
        "/v1/areas/{area_id}/webhooks/{webhook_id}",
        webhooks.WebhookResource(auth, services.webhooks, max_body),
    )
    app.add_route(
        "/v1/areas/{area_id}/webhooks/{webhook_id}/rotate-secret",
        webhooks.RotateSecretResource(auth, services.webhooks, max_body),
    )
    app.add_route(
        "/v1/areas/{area_id}/webhooks/{webhook_id}/deliveries",
        webhooks.DeliveriesResource(auth, services.webhooks),
    )
    app.add_route(
        "/v1/areas/{area_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
        webhooks.RedeliverResource(auth, services.webhooks),
    )
    access_requests.add_access_request_routes(
        app, auth, services.access_requests, services.store, max_body, settings.public_url
    )
    app.add_route("/v1/permissions", PermissionsResource(lambda: services.decider.bundle.catalogue))

    emails = services.accounts.user_by_email  # subjects of a type with ids = "emails"
    app.add_route(
        "/access/v1/evaluation",
        authzen.EvaluationResource(auth, services.decider, max_body, emails),
    )
    app.add_route(
        "/access/v1/evaluations",
        authzen.EvaluationsResource(auth, services.decider, max_body, emails),
    )
    authzen_search.add_search_routes(
        app,
        auth,
        services.decider,
        PeeweeSearchFeed(services.db),
        max_body,
        settings.public_url,
        emails,
    )
    app.add_route(
        "/.well-known/authzen-configuration",
        authzen.MetadataResource(
            settings.public_url,
            {
                **authzen_search.metadata(settings.public_url),
                **access_requests.metadata(settings.public_url),
            },
        ),
    )

    server = services.authorization_server
    base = settings.public_url
    app.add_route(
        "/.well-known/oauth-authorization-server",
        oauth.DiscoveryResource(settings.issuer, services.keys, openid=False),
    )
    app.add_route(
        "/.well-known/openid-configuration",
        oauth.DiscoveryResource(settings.issuer, services.keys, openid=True),
    )
    app.add_route("/.well-known/jwks.json", oauth.JwksResource(services.keys))
    app.add_route("/oauth/token", oauth.TokenResource(server, base))
    app.add_route("/oauth/introspect", oauth.EndpointResource(server, base, "introspection"))
    app.add_route("/oauth/revoke", oauth.EndpointResource(server, base, "revocation"))
    app.add_route("/oauth/userinfo", oauth.UserinfoResource(auth, services.accounts))
    add_page_routes(
        app,
        accounts=services.accounts,
        invitations=services.invitations,
        members=services.members,
        access_requests=services.access_requests,
        store=services.store,
        sessions=services.sessions,
        limiter=services.limiter,
        mail_limiter=services.mail_limiter,
        catalogue=lambda: services.decider.bundle.catalogue,
        authorization_server=server,
        public_url=base,
        issuer=settings.issuer,
        brand_css=settings.brand_css,
        brand_name=settings.brand_name,
        brand_logo=settings.brand_logo,
        webhooks=services.webhooks,
    )
    return app


def serving_app(settings: Settings, services: Services) -> FastEvaluation:
    """The WSGI app a server runs: ``create_app``'s, with the common single evaluation
    answered in front of it (api/fast.py)."""
    return FastEvaluation(
        create_app(settings, services=services),
        Authenticator(services.tokens),
        services.decider,
        settings.max_body_bytes,
    )


def get_app(policy: PolicySnapshot | None = None) -> FastEvaluation:
    """The app a server worker runs; ``policy`` is the snapshot ``serve`` checked."""
    settings = load_settings()
    logging.basicConfig(level=settings.log_level)
    # Access lines are JSON documents on their own: no logger prefix.
    access = logging.getLogger("delegauth.access")
    if not access.handlers:
        handler: logging.Handler
        try:  # one write(2) a line, handed the line without a LogRecord (api/middleware.py)
            handler = AccessLines(sys.stderr.fileno())
        except (AttributeError, OSError, ValueError):  # stderr replaced by a non-file
            handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.propagate = False
    services = build_services(settings, policy=policy)
    if threading.current_thread() is threading.main_thread():
        # SIGHUP (forwarded by the serve master to every worker): check policies/ now.
        before = signal.signal(signal.SIGHUP, lambda signum, frame: services.watcher.trigger())
        if getattr(before, "seen", False):  # a SIGHUP while this worker booted (EarlyHup)
            services.watcher.trigger()
    return serving_app(settings, services)
