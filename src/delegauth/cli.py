"""The delegauth command line: migrate, serve, and a development token minter."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from delegauth.config import Settings, load_settings
from delegauth.policy.commands import add_policy_commands, run_policy_command

if TYPE_CHECKING:
    from delegauth.oauth.clients import ClientRegistry
    from delegauth.oauth.issuing import Principal
    from delegauth.storage.oauth_store import ClientRow

__all__ = ["main"]


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy
    from delegauth.storage.schema import migrate

    # A migration may rewrite large tables, and waits for another replica's: no statement
    # bound, and a long wait for SQLite's write lock.
    db = open_database(
        settings.database_url,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=0,
        busy_timeout_ms=60_000,
    )
    database_proxy.initialize(db)
    reports: list[str] = []  # what a migration says needs an operator (also logged)
    applied = migrate(db, on_report=reports.append)
    print(json.dumps({"applied": applied, "reports": reports}))
    return 0


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    transport = settings.transport_problem()
    if transport:
        # Authlib refuses OAuth requests on such a URL: every token request would fail.
        print(f"delegauth: refusing to serve: {transport}", file=sys.stderr)
        return 2
    from delegauth.serving import unavailable

    server_problem = unavailable(settings.server)
    if server_problem:
        print(f"delegauth: refusing to serve: {server_problem}", file=sys.stderr)
        return 2
    from delegauth.policy.bundle import PolicyError, bundle_from_snapshot, read_snapshot

    # Fail before forking when the policy is unusable, and create keys exactly once.
    from delegauth.policy.check import check_snapshot
    from delegauth.tokens import KeyRing

    # The workers start from this snapshot, the one checked here, not from a second read.
    policy = read_snapshot(settings.policies_dir)
    errors = [d for d in check_snapshot(policy) if d.severity == "error"]
    if errors:
        for d in errors:
            print(d, file=sys.stderr)
        raise PolicyError(f"{len(errors)} error(s) in {settings.policies_dir}")
    bundle_from_snapshot(policy)
    KeyRing.load_or_create(settings.key_dir, algorithm=settings.signing_algorithm)
    if not args.no_migrate:
        _cmd_migrate(settings, args)

    # Workers share their counters through files (prometheus_client multiprocess mode).
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="delegauth-metrics-")

    bind = args.bind or settings.bind
    workers = args.workers or settings.workers
    from delegauth.serving import serve

    print(
        f"delegauth serving on http://{bind} with {workers} {settings.server} workers",
        file=sys.stderr,
    )
    serve(
        bind,
        workers,
        policy=policy,
        server=settings.server,
        log_level=settings.log_level,
        threads=settings.threads,
    )
    return 0


def _cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    """Mint an access token with the service's own keys (development and tests).

    A user's token is the one the login flow would issue: refused unless the user holds a
    grant in the area, and carrying their role and permissions there.
    """
    from delegauth.oauth.issuing import sign_access
    from delegauth.tokens import KeyRing, TokenService

    user: Principal | None = None
    if args.user:
        if not args.area:
            print("delegauth: --user needs --area, the area the token is for", file=sys.stderr)
            return 2
        refusal, user = _principal(settings, args.user, args.area)
        if user is None:
            print(f"delegauth: {refusal}", file=sys.stderr)
            return 1
    tokens = TokenService(
        KeyRing.load_or_create(settings.key_dir, algorithm=settings.signing_algorithm),
        settings.issuer,
        settings.issuer,
        lifetime_s=settings.access_token_minutes * 60,
    )
    client_id = args.service or "delegauth-cli"
    token, _claims = sign_access(tokens, client_id, args.scope.split(), user)
    print(token)
    return 0


def _principal(settings: Settings, user_id: str, area_id: str) -> tuple[str, Principal | None]:
    """The user's standing in the area, or why there is none."""
    from delegauth.oauth.issuing import principal_for
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy
    from delegauth.storage.store import PeeweeStore

    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    store = PeeweeStore(db)
    with db.connection_context():
        if store.get_user(user_id) is None:
            return f"no such user: {user_id}", None
        if store.get_area(area_id) is None:
            return f"no such area: {area_id}", None
        principal = principal_for(store, user_id, area_id, datetime.now(UTC).replace(tzinfo=None))
    if principal is None:
        return f"user {user_id} holds no grant in area {area_id}", None
    return "", principal


def _registry(settings: Settings) -> ClientRegistry:
    from delegauth.api.app import utcnow
    from delegauth.oauth.clients import ClientRegistry
    from delegauth.storage.db import open_database
    from delegauth.storage.oauth_store import PeeweeOAuthStore
    from delegauth.storage.records import database_proxy

    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    return ClientRegistry(PeeweeOAuthStore(db), utcnow)


def _client_json(row: ClientRow, secret: str | None = None) -> dict[str, object]:
    data = {k: v for k, v in vars(row).items() if k not in ("secret_hash", "created_at")}
    data["type"] = "public" if row.secret_hash is None else "confidential"
    data["created_at"] = str(row.created_at)
    if secret is not None:
        data["client_secret"] = secret  # shown once, stored only as a hash
    return data


def _cmd_clients(settings: Settings, args: argparse.Namespace) -> int:
    from delegauth.errors import InvalidInput

    registry = _registry(settings)
    if args.action == "list":
        print(json.dumps([_client_json(r) for r in registry.list()], indent=2))
        return 0
    if args.action == "delete":
        if not registry.delete(args.client_id):
            print(f"no such client: {args.client_id}", file=sys.stderr)
            return 1
        print(json.dumps({"deleted": args.client_id}))
        return 0
    try:
        row, secret = registry.create(
            args.client_id,
            name=args.name or "",
            public=args.public,
            redirect_uris=args.redirect_uri or [],
            grant_types=args.grant_type or ["authorization_code", "refresh_token"],
            scopes=(args.scope or "openid profile email offline_access").split(),
            first_party=args.first_party,
        )
    except InvalidInput as ex:
        print(f"delegauth: {ex.detail}", file=sys.stderr)
        return 2
    print(json.dumps(_client_json(row, secret), indent=2))
    return 0


def _cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from delegauth.tokens import KeyRing

    if args.action == "rotate":
        key = KeyRing.rotate(settings.key_dir, args.alg or settings.signing_algorithm)
        print(
            json.dumps(
                {
                    "rotated": key.kid,
                    "alg": key.algorithm,
                    "old_keys_verify_for_s": settings.key_overlap_s,
                }
            )
        )
        return 0
    ring = KeyRing.load_or_create(
        settings.key_dir,
        algorithm=settings.signing_algorithm,
        retire_after_s=settings.key_overlap_s,
    )
    print(json.dumps({"current": ring.current.kid, "jwks": ring.jwks()}, indent=2))
    return 0


def _bulk_database(settings: Settings) -> Any:
    """The database for import and export: batches may take longer than a request."""
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy

    db = open_database(
        settings.database_url,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=60_000,
        busy_timeout_ms=10_000,
    )
    database_proxy.initialize(db)
    return db


def _cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from delegauth.domain.transfer import BadLine, FormatError
    from delegauth.policy.bundle import load_bundle
    from delegauth.progress import ProgressBar
    from delegauth.storage.schema import pending_migrations
    from delegauth.storage.transfer import BulkImporter

    if args.batch is not None and args.batch < 1:
        print("delegauth: --batch must be at least 1", file=sys.stderr)
        return 2
    db = _bulk_database(settings)
    if pending_migrations(db):
        print("delegauth: the database needs `delegauth migrate` first", file=sys.stderr)
        return 2
    bundle = load_bundle(settings.policies_dir)
    importer = BulkImporter(
        db,
        bundle.catalogue,
        invitation_ttl=timedelta(days=settings.invitation_days),
        policy_hash=lambda: bundle.version,
        # SQLite: a batch holds the only write lock; servers wait db_busy_timeout_ms for it.
        lock_budget=settings.db_busy_timeout_ms / 4000,
    )
    with ProgressBar() as bar:

        def bad(line: BadLine) -> None:
            bar.log(f"line {line.line}: {line.reason}")

        try:
            summary = importer.run(
                args.file,
                dry_run=args.dry_run,
                strict=args.strict,
                batch_size=args.batch,
                on_bad=bad,
                progress=bar,
            )
        except (FormatError, OSError) as ex:
            print(f"delegauth: cannot import {args.file}: {ex}", file=sys.stderr)
            return 2
    print(json.dumps(summary.as_json()))
    return 1 if summary.bad else 0


def _cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from delegauth.storage.transfer import export_records

    fmt = args.format or ("csv" if (args.file or "").endswith(".csv") else "jsonl")
    db = _bulk_database(settings)
    if args.file:
        with open(args.file, "w", encoding="utf-8", newline="") as out:
            counts = export_records(db, out, fmt)
    else:
        counts = export_records(db, sys.stdout, fmt)
    print(json.dumps({"exported": dict(counts)}), file=sys.stderr)
    return 0


def _cmd_mail(settings: Settings, args: argparse.Namespace) -> int:
    from delegauth.mail.mbox_reader import read_messages
    from delegauth.mail.transport import MboxTransport, transport_from_url

    transport = transport_from_url(settings.smtp_url, sender=settings.mail_from)
    if not isinstance(transport, MboxTransport):
        print(
            "delegauth mail reads the development mailbox: DELEGAUTH_SMTP_URL is not file:",
            file=sys.stderr,
        )
        return 2
    if not transport.path.exists():
        print(f"no mail yet ({transport.path} does not exist)", file=sys.stderr)
        return 0
    if args.last is not None and args.last < 0:
        print("--last must be 0 or more", file=sys.stderr)
        return 2
    messages = read_messages(transport.path, args.last)
    print(("\n" + "-" * 72 + "\n\n").join(messages), end="")
    return 0


def _operator_store(settings: Settings) -> Any:
    from delegauth.storage.db import open_database
    from delegauth.storage.records import database_proxy
    from delegauth.storage.store import PeeweeStore

    db = open_database(
        settings.database_url,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        busy_timeout_ms=settings.db_busy_timeout_ms,
    )
    database_proxy.initialize(db)
    return PeeweeStore(db)


def _cmd_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    """Operators' webhooks: the whole service's (or, with --area, any area's)."""
    from delegauth.api.app import utcnow
    from delegauth.api.webhooks import delivery_view, webhook_view
    from delegauth.domain.events import PUBLISHED_TYPES
    from delegauth.domain.webhooks import Webhooks
    from delegauth.errors import DelegauthError
    from delegauth.webhooks import WebhookKey, new_salt

    store = _operator_store(settings)
    key = WebhookKey.load_or_create(settings.webhook_key, settings.key_dir)
    hooks = Webhooks(
        store,
        store.webhooks,
        utcnow,
        insecure=settings.webhooks_insecure,
        new_salt=new_salt,
        secret=key.secret,
    )
    now = utcnow()
    try:
        if args.action == "add":
            endpoint, secret = hooks.add(
                None, args.area, args.url, args.description or "", args.event_type
            )
            out: Any = {"webhook": webhook_view(endpoint, now), "secret": secret}
        elif args.action == "types":
            out = list(PUBLISHED_TYPES)
        elif args.action == "events":
            types = None if args.all else args.event_type
            out = {
                "webhook": webhook_view(
                    hooks.set_event_types(None, None, args.webhook_id, types), now
                )
            }
        elif args.action == "rotate":
            grace = timedelta(hours=args.grace_hours)
            endpoint, secret = hooks.rotate_secret(None, None, args.webhook_id, grace)
            out = {"webhook": webhook_view(endpoint, now), "secret": secret}
        elif args.action == "list":
            out = [webhook_view(e, now) for e in hooks.listing(None, args.area)]
        elif args.action == "remove":
            out = {"removed": hooks.remove(None, None, args.webhook_id).id}
        elif args.action == "deliveries":
            found = hooks.deliveries(None, None, args.webhook_id, None, args.limit)
            out = [delivery_view(d) for d in found]
        else:
            again = hooks.redeliver(None, None, args.webhook_id, args.delivery_id)
            out = {"delivery": delivery_view(again)}
    except DelegauthError as ex:
        print(f"delegauth: {ex.detail}", file=sys.stderr)
        return 1 if ex.code == "not_found" else 2
    print(json.dumps(out, indent=2))
    return 0


def _cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    """Export the audit trail after a cursor, oldest first; the next cursor goes to stderr."""
    from delegauth.domain.audit_trail import AuditTrail, to_csv, to_ndjson

    store = _operator_store(settings)
    trail = AuditTrail(store, store)
    cursor, left, first = args.after, args.limit, True
    while left is None or left > 0:
        page = trail.export(None, args.area, cursor, 1000 if left is None else min(left, 1000))
        if args.format == "csv":
            sys.stdout.write(to_csv(page, header=first))
        else:
            sys.stdout.write(to_ndjson(page))
        first = False
        if not page:
            break
        cursor = page[-1].id or cursor
        left = None if left is None else left - len(page)
    sys.stdout.flush()
    print(json.dumps({"cursor": cursor}), file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="delegauth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database schema")
    serve = sub.add_parser(
        "serve", help="run the service (DELEGAUTH_SERVER: granian, gunicorn-gthread, gunicorn-sync)"
    )
    serve.add_argument("--bind", help="host:port (DELEGAUTH_BIND)")
    serve.add_argument("--workers", type=int, help="worker processes (DELEGAUTH_WORKERS)")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate at start")
    token = sub.add_parser("token", help="mint an access token (development)")
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="user id (u_…); use with --area")
    who.add_argument("--service", help="service client id")
    token.add_argument("--area", help="area id (a_…) the token is scoped to; with --user")
    token.add_argument("--scope", default="", help="space-separated scopes")
    clients = sub.add_parser("clients", help="register and manage OAuth clients")
    csub = clients.add_subparsers(dest="action", required=True)
    create = csub.add_parser("create", help="register a client; prints its one-time secret")
    create.add_argument("client_id")
    create.add_argument("--name")
    create.add_argument("--public", action="store_true", help="no secret (PKCE only)")
    create.add_argument("--redirect-uri", action="append", help="exact redirect URI (repeat)")
    create.add_argument(
        "--grant-type",
        action="append",
        help="authorization_code, refresh_token, client_credentials or "
        "urn:ietf:params:oauth:grant-type:token-exchange (repeat)",
    )
    create.add_argument("--scope", help='space-separated, e.g. "openid decisions"')
    create.add_argument("--first-party", action="store_true", help="skip the consent step")
    csub.add_parser("list", help="list clients (never their secrets)")
    add_policy_commands(sub)
    keys = sub.add_parser("keys", help="signing keys")
    ksub = keys.add_subparsers(dest="action", required=True)
    rotate = ksub.add_parser(
        "rotate", help="add a new signing key; old ones verify until their tokens expire"
    )
    rotate.add_argument("--alg", choices=["RS256", "ES256", "EdDSA"])
    ksub.add_parser("list", help="print the current key id and the public JWKS")
    delete = csub.add_parser("delete", help="delete a client and revoke its refresh tokens")
    delete.add_argument("client_id")
    imp = sub.add_parser(
        "import", help="import users, areas, grants and invitations (JSONL or CSV)"
    )
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="check every line, write nothing")
    imp.add_argument("--strict", action="store_true", help="write nothing if any line is bad")
    imp.add_argument(
        "--batch",
        type=int,
        help="lines per transaction (default: 5000 on PostgreSQL; on SQLite sized so that"
        " each takes about a quarter of DELEGAUTH_DB_BUSY_TIMEOUT_MS)",
    )
    exp = sub.add_parser("export", help="export in the format import reads")
    exp.add_argument("file", nargs="?", help="default: standard output")
    exp.add_argument("--format", choices=["jsonl", "csv"], help="default: by FILE's suffix")
    mail = sub.add_parser(
        "mail", help="print the development mailbox (file: mail URL) decoded, links whole"
    )
    mail.add_argument("--last", type=int, metavar="N", help="only the last N messages")
    hooks = sub.add_parser(
        "webhooks", help="service-wide webhooks (Standard Webhooks) and their delivery logs"
    )
    hsub = hooks.add_subparsers(dest="action", required=True)
    add = hsub.add_parser("add", help="register a webhook; prints its one-time secret")
    add.add_argument("url", help="https URL of a public host")
    add.add_argument("--description")
    add.add_argument("--area", help="an area's webhook (a_…); default: every area's events")
    add.add_argument(
        "--event-type",
        action="append",
        metavar="TYPE",
        help="send only events of this type (repeat; default: every type; see `types`)",
    )
    hsub.add_parser("types", help="the event types a webhook may be limited to")
    events = hsub.add_parser("events", help="change which event types a webhook receives")
    events.add_argument("webhook_id")
    which = events.add_mutually_exclusive_group(required=True)
    which.add_argument("--event-type", action="append", metavar="TYPE", help="(repeat)")
    which.add_argument("--all", action="store_true", help="every type")
    rotate = hsub.add_parser(
        "rotate", help="a new signing secret (printed once); the old one signs too for a while"
    )
    rotate.add_argument("webhook_id")
    rotate.add_argument(
        "--grace-hours",
        type=float,
        default=24.0,
        help="how long deliveries are signed with the old secret too (default 24, 0 to 168)",
    )
    hlist = hsub.add_parser("list", help="every webhook (with --area: that area's)")
    hlist.add_argument("--area")
    remove = hsub.add_parser("remove", help="remove a webhook and its delivery log")
    remove.add_argument("webhook_id")
    log = hsub.add_parser("deliveries", help="a webhook's delivery log, newest first")
    log.add_argument("webhook_id")
    log.add_argument("--limit", type=int, default=50)
    again = hsub.add_parser("redeliver", help="send a delivery's event again")
    again.add_argument("webhook_id")
    again.add_argument("delivery_id", type=int)
    audit = sub.add_parser("audit", help="the audit trail")
    asub = audit.add_subparsers(dest="action", required=True)
    export = asub.add_parser(
        "export",
        help="events after --after, oldest first, on stdout; the next cursor on stderr",
    )
    export.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    export.add_argument("--after", type=int, default=0, metavar="CURSOR")
    export.add_argument("--limit", type=int, help="at most this many events (default: all)")
    export.add_argument("--area", help="only this area's events")
    return parser


_COMMANDS = {
    "migrate": _cmd_migrate,
    "serve": _cmd_serve,
    "token": _cmd_token,
    "clients": _cmd_clients,
    "keys": _cmd_keys,
    "import": _cmd_import,
    "export": _cmd_export,
    "mail": _cmd_mail,
    "webhooks": _cmd_webhooks,
    "audit": _cmd_audit,
    "policy": lambda settings, args: run_policy_command(args, settings),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level)
    from delegauth.policy.bundle import PolicyError

    try:
        return _COMMANDS[args.command](settings, args)
    except PolicyError as ex:
        print(f"delegauth: refusing to run with an invalid policy: {ex}", file=sys.stderr)
        return 2
