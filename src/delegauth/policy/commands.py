"""The ``delegauth policy`` commands: check, test and explain a policies directory.

    delegauth policy check [DIR]       validate DIR (default: the configured policies)
    delegauth policy test [DIR]        run DIR/tests/*.yaml decision tables
    delegauth policy diff OLD NEW      the decisions a rollout would flip for today's grants
    delegauth policy explain --user U --area A --resource-type T --action X
                                       why U may or may not do T:X in A

diff and explain decide at ``--at`` (an RFC 3339 instant), now by default: a grant
whose end has come no longer counts.

Exit codes: 0 success (for explain: an explanation was printed, whatever the
decision), 1 errors found or tables failed, 2 the policies or grants cannot be read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

from delegauth.domain.catalogue import ALL, Catalogue
from delegauth.domain.ids import (
    CASBIN_NO_END,
    NAME_RE,
    PERM_ALL,
    ROLE_OWNER,
    SCOPE_SEP,
    casbin_perm,
    is_casbin_name,
    is_id,
)
from delegauth.errors import InvalidInput

if TYPE_CHECKING:
    from datetime import datetime

    from delegauth.config import Settings

__all__ = ["add_policy_commands", "run_policy_command"]


def add_policy_commands(subparsers: Any) -> None:
    """Add ``policy check|test|explain`` to the CLI's subparsers."""
    policy = subparsers.add_parser(
        "policy", help="check, test and explain a policies directory before deploying it"
    )
    psub = policy.add_subparsers(dest="policy_command", required=True)
    check = psub.add_parser("check", help="validate model, catalogue and policy lines")
    check.add_argument("dir", nargs="?", help="policies directory (DELEGAUTH_POLICIES_DIR)")
    check.add_argument("--quiet", "-q", action="store_true", help="print errors only")
    check.add_argument(
        "--held",
        action="store_true",
        help="also report permissions still held in the database (DELEGAUTH_DATABASE_URL) "
        "that the catalogue no longer has",
    )
    test = psub.add_parser("test", help="run the decision tables in DIR/tests")
    test.add_argument("dir", nargs="?", help="policies directory (DELEGAUTH_POLICIES_DIR)")
    test.add_argument("--tables", help="directory of *.yaml tables (default: DIR/tests)")
    test.add_argument("--verbose", "-v", action="store_true", help="list every table")
    diff = psub.add_parser("diff", help="show which decisions would change for the current grants")
    diff.add_argument("old", help="the policies directory in force")
    diff.add_argument("new", help="the policies directory to roll out")
    diff.add_argument(
        "--sample", type=int, metavar="N", help="only N areas of the database (default: all)"
    )
    diff.add_argument("--at", metavar="TIME", help=_AT_HELP)
    explain = psub.add_parser("explain", help="say why a request is allowed or denied")
    explain.add_argument("--user", required=True, help="user id (u_… or user:u_…)")
    explain.add_argument("--area", required=True, help="area id (a_… or area:a_…)")
    explain.add_argument("--resource-type", required=True, help="e.g. invoice")
    explain.add_argument("--action", required=True, help="e.g. read")
    explain.add_argument(
        "--resource-id",
        default="",
        metavar="ID",
        help="the resource's id, for grants on single resources (managedomains@example.com)",
    )
    explain.add_argument("--at", metavar="TIME", help=_AT_HELP)
    explain.add_argument("--policies", help="policies directory (DELEGAUTH_POLICIES_DIR)")
    explain.add_argument(
        "--grant",
        action="append",
        metavar="ROLE",
        help="explain with these grants instead of the database's: owner, all, a "
        "permission name, name@resource-id or role:<name> (repeat)",
    )


_AT_HELP = "decide at this instant, e.g. 2026-12-09T10:00:00Z (default: now)"


def _instant(value: str | None) -> datetime | None:
    """--at as naive UTC (None: now); ValueError with a message for the user."""
    if value is None:
        return None
    from delegauth.domain.expiry import parse_instant
    from delegauth.errors import InvalidInput

    try:
        return parse_instant(value, field="--at")
    except InvalidInput as ex:
        raise ValueError(ex.detail) from ex


def run_policy_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run the ``policy`` subcommand in ``args``; return the exit code."""
    # pycasbin logs the whole model at INFO for each enforcer; these commands build many.
    logging.getLogger("casbin").setLevel(logging.WARNING)
    command = args.policy_command
    if command == "check":
        held = _held_roles(_settings(settings)) if args.held else None
        return _check(args.dir or _settings(settings).policies_dir, quiet=args.quiet, held=held)
    if command == "test":
        return _test(args.dir or _settings(settings).policies_dir, args.tables, args.verbose)
    if command == "explain":
        return _explain(args, settings)
    if command == "diff":
        return _diff(args, _settings(settings))
    raise ValueError(f"unknown policy command: {command}")


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from delegauth.config import load_settings

    return load_settings()


def _check(directory: str, *, quiet: bool, held: dict[str, int] | None = None) -> int:
    from delegauth.policy.check import ERROR, check_directory, check_held

    diagnostics = check_directory(directory)
    if held is not None:
        diagnostics += check_held(directory, held)
    errors = [d for d in diagnostics if d.severity == ERROR]
    for diagnostic in diagnostics:
        if not quiet or diagnostic.severity == ERROR:
            print(diagnostic, file=sys.stderr)
    warnings = len(diagnostics) - len(errors)
    verdict = "FAILED" if errors else "ok"
    print(f"{directory}: {len(errors)} errors, {warnings} warnings: {verdict}")
    return 1 if errors else 0


def _test(directory: str, tables: str | None, verbose: bool) -> int:
    from delegauth.policy.tables import run_tables

    report = run_tables(directory, tables)
    for line in report.lines(verbose=verbose):
        print(line)
    return 0 if report.ok else 1


def _role(value: str, catalogue: Catalogue) -> str:
    if value == "owner":
        return ROLE_OWNER
    if value == ALL:
        return PERM_ALL
    if NAME_RE.match(value):
        return f"perm:{value}"
    if SCOPE_SEP in value:  # on one resource: managedomains@example.com
        try:
            [(base, resource_id)] = catalogue.parse([value]).scoped
        except InvalidInput as ex:
            raise ValueError(f"--grant {value!r}: {ex.detail}") from ex
        return casbin_perm(base, resource_id)
    if is_casbin_name(value) and value.startswith(("perm:", "role:")):
        return value
    raise ValueError(
        f"--grant {value!r}: use owner, all, a permission name, name@resource-id or role:<name>"
    )


def _explain(args: argparse.Namespace, settings: Settings | None) -> int:
    from delegauth.policy.bundle import PolicyError, load_bundle
    from delegauth.policy.explain import explain

    user = args.user if args.user.startswith("user:") else f"user:{args.user}"
    area = args.area if args.area.startswith("area:") else f"area:{args.area}"
    if not is_id(user[len("user:") :], "u") or not is_id(area[len("area:") :], "a"):
        print("delegauth: --user and --area must be ids (u_…, a_…)", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(args.policies or _settings(settings).policies_dir)
    except PolicyError as ex:
        print(f"delegauth: the policies do not load: {ex}", file=sys.stderr)
        return 2
    rules: list[tuple[str, ...]]
    try:
        at = _instant(args.at)
        if args.grant:
            rules = [("g", user, _role(value, bundle.catalogue), area) for value in args.grant]
    except ValueError as ex:
        print(f"delegauth: {ex}", file=sys.stderr)
        return 2
    if not args.grant:
        try:
            rules = _stored_rules(_settings(settings), area)
        except Exception as ex:  # noqa: BLE001 - report any storage failure and stop
            print(f"delegauth: cannot read the area's grants: {ex}", file=sys.stderr)
            return 2
    result = explain(
        bundle, rules, user, area, args.resource_type, args.action, args.resource_id, at=at
    )
    for line in result.lines():
        print(line)
    return 0


def _stored_rules(settings: Settings, area: str) -> list[tuple[str, ...]]:
    """The area's g lines with their ends, as the service's Decider reads them."""
    from delegauth.storage.db import open_database
    from delegauth.storage.feed import PeeweePolicyFeed
    from delegauth.storage.records import database_proxy

    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    return [
        ("g", sub, role, area, end) for sub, role, end in PeeweePolicyFeed(db).domain_links(area)
    ]


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    """Print the decisions that would change; exit 0 if none, 1 if some, 2 on errors."""
    from delegauth.policy.bundle import PolicyError, load_bundle
    from delegauth.policy.diff import diff_policies

    try:
        old, new = load_bundle(args.old), load_bundle(args.new)
        at = _instant(args.at)
    except (PolicyError, ValueError) as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 2
    rules = _all_stored_rules(settings, args.sample)
    changes = diff_policies(old, new, rules, at)
    for change in changes:
        print(change)
    users = {(line[1], line[3]) for line in rules if line[1].startswith("user:")}
    print(
        f"{old.version} -> {new.version}: {len(changes)} decision(s) change "
        f"across {len(users)} grant(s) in {len({line[3] for line in rules})} area(s)"
    )
    return 1 if changes else 0


def _all_stored_rules(settings: Settings, sample: int | None) -> list[tuple[str, ...]]:
    """The database's g lines with their ends: every area's, or those of ``sample`` areas."""
    from delegauth.storage.db import open_database
    from delegauth.storage.records import CasbinRuleRecord, database_proxy

    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    with db.connection_context():
        query: Any = CasbinRuleRecord.select(
            CasbinRuleRecord.v0, CasbinRuleRecord.v1, CasbinRuleRecord.v2, CasbinRuleRecord.v3
        ).where(CasbinRuleRecord.ptype == "g")
        if sample is not None:
            areas = (
                CasbinRuleRecord.select(CasbinRuleRecord.v2)
                .where(CasbinRuleRecord.ptype == "g")
                .distinct()
                .order_by(CasbinRuleRecord.v2)
                .limit(max(sample, 0))
            )
            query = query.where(CasbinRuleRecord.v2.in_(areas))
        return [("g", v0, v1, v2, v3 or CASBIN_NO_END) for v0, v1, v2, v3 in query.tuples()]


def _held_roles(settings: Settings) -> dict[str, int]:
    """Role name -> how many g lines hold it, from the database."""
    import peewee

    from delegauth.storage.db import open_database
    from delegauth.storage.records import CasbinRuleRecord, database_proxy

    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    with db.connection_context():
        query: Any = (
            CasbinRuleRecord.select(CasbinRuleRecord.v1, peewee.fn.COUNT(CasbinRuleRecord.id))
            .where(CasbinRuleRecord.ptype == "g")
            .group_by(CasbinRuleRecord.v1)
            .tuples()
        )
        return {role: int(count) for role, count in query}
