"""How fast `delegauth import` writes grants into SQLite and PostgreSQL, and its memory.

For each database: a fresh schema; a population file (users and areas, with their owners)
imported first and timed on its own; then two grant files over disjoint areas, each
imported in a fresh process: a small one (a tenth of the grants) and the full one (N grant
lines). The figures are grants/s at N grants (the whole import, batches committed as they
go), each process's peak RSS beside its file's size (flat memory: the file is streamed),
and a sample of decisions checked through a Decider reading the imported database.

The baseline, in the same run: a copy of each database taken just before the full file is
imported, into which a fresh process writes that file's grant rows and g lines with the
bare driver (sqlite3 or psycopg2's COPY) in transactions of the importer's size. Its
grants/s and the importer's divided by it are printed beside the importer's figures.

    .venv/bin/python bench/import.py [--grants 1000000] [--db sqlite,postgres] [--pg URL]

PostgreSQL runs when --pg or DELEGAUTH_TEST_PG_URL names a database: a throwaway one, as
every delegauth table in it is emptied first, and its copy (the same name with "_bare") is
dropped and made anew. bench/README.md says what each figure means.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py shares this folder, which Python puts first on sys.path: take the folder off,
# so that `import http` (requests, PyJWT, Falcon) finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import io
import json
import math
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
DELEGATES_PER_AREA = 8
ALL_SHARE = 0.10  # grants of "all"
AREAS_PER_DELEGATE = 4  # how many areas a delegate belongs to, on average
SAMPLE = 2000  # grants whose decisions are checked after the import


def process_cpu(pid: int) -> float:
    """User and system CPU seconds of a process on this machine (/proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the files --------------------------------------------------------------------------------


def uid(kind: str, n: int) -> str:
    """A well-formed id (26 base32 characters) numbered n, so the files need no lookups."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    digits = []
    for _ in range(26):
        n, r = divmod(n, 32)
        digits.append(alphabet[r])
    return f"{kind}_{''.join(reversed(digits))}"


def write_files(
    folder: Path, grants: int, names: list[str], seed: int = 7
) -> tuple[Path, Path, Path, list[dict[str, Any]]]:
    """population.jsonl, small.jsonl (grants/10) and full.jsonl (grants), and a sample."""
    rng = random.Random(seed)
    small = max(grants // 10, 1)
    areas_small = -(-small // DELEGATES_PER_AREA)
    areas_full = -(-grants // DELEGATES_PER_AREA)
    areas = areas_small + areas_full
    delegates = max((grants + small) // AREAS_PER_DELEGATE, DELEGATES_PER_AREA)
    population = folder / "population.jsonl"
    with population.open("w") as out:
        for n in range(areas):
            out.write(
                f'{{"kind":"user","id":"{uid("u", n)}","email":"owner{n}@example.com",'
                f'"name":"Owner {n}","email_verified":true,"language":"en"}}\n'
            )
        for n in range(delegates):
            out.write(
                f'{{"kind":"user","email":"d{n}@example.com","name":"Delegate {n}",'
                f'"email_verified":{"true" if n % 3 else "false"},"language":"es"}}\n'
            )
        for n in range(areas):
            out.write(
                f'{{"kind":"area","id":"{uid("a", n)}","key":"cust-{n}",'
                f'"name":"Customer {n}","owner":"owner{n}@example.com"}}\n'
            )
    sample: list[dict[str, Any]] = []
    seen = 0

    def grant_file(path: Path, first_area: int, count: int) -> None:
        nonlocal seen
        with path.open("w") as out:
            for i in range(count):
                area = first_area + i // DELEGATES_PER_AREA
                # Distinct delegates within an area: consecutive slots, shifted per area.
                user = (area * 7 + i % DELEGATES_PER_AREA) % delegates
                if rng.random() < ALL_SHARE:
                    perms: Any = "all"
                else:
                    perms = sorted(rng.sample(names, rng.randint(1, 3)))
                record = {
                    "kind": "grant",
                    "user": f"d{user}@example.com",
                    "area": f"cust-{area}",
                    "permissions": perms,
                }
                out.write(json.dumps(record, separators=(",", ":")) + "\n")
                seen += 1
                if len(sample) < SAMPLE:
                    sample.append({**record, "area_id": uid("a", area)})
                elif (j := rng.randrange(seen)) < SAMPLE:
                    sample[j] = {**record, "area_id": uid("a", area)}

    small_file, full_file = folder / "small.jsonl", folder / "full.jsonl"
    grant_file(small_file, 0, small)
    grant_file(full_file, areas_small, grants)
    return population, small_file, full_file, sample


# -- one import, in a fresh process ------------------------------------------------------------


def child(url: str, path: str, batch: int) -> None:
    """Import ``path`` into ``url``; print seconds, peak RSS and the summary as JSON."""
    from delegauth.policy.bundle import load_bundle
    from delegauth.storage.db import is_postgres, open_database
    from delegauth.storage.transfer import BulkImporter

    bundle = load_bundle(POLICIES)
    db = open_database(url, statement_timeout_ms=60_000, busy_timeout_ms=10_000)
    importer = BulkImporter(db, bundle.catalogue, policy_hash=lambda: bundle.version)
    bad: list[str] = []
    backends: dict[int, float] = {}  # PostgreSQL: the importer's server processes' CPU

    def seen(_batch: int) -> None:
        if is_postgres(db):
            pid = int(db.execute_sql("SELECT pg_backend_pid()").fetchone()[0])
            backends.setdefault(pid, process_cpu(pid))

    t0, c0 = time.perf_counter(), time.process_time()
    summary = importer.run(
        path,
        batch_size=batch or None,
        on_bad=lambda b: bad.append(f"{b.line}: {b.reason}"),
        before_commit=seen,
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # A backend's CPU before the first batch it served is not the import's (a few ms).
    server = sum(process_cpu(pid) - before for pid, before in backends.items())
    db.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "server_cpu": server,
                "postgres": is_postgres(db),
                "load": "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
                "rss": peak_rss_mib(),
                "summary": summary.as_json(),
                "bad": bad[:5],
            }
        )
    )


def run_child(url: str, path: Path, batch: int, mode: str = "--child") -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, __file__, mode, url, str(path), "--batch", str(batch)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"import of {path.name} failed:\n{res.stdout}\n{res.stderr}")
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


# -- the baseline: the same grants through the bare driver, in a fresh process ------------------


def bare_child(url: str, path: str, batch: int) -> None:
    """Write the grant rows and g lines that importing ``path`` writes, with the driver
    alone, ``batch`` lines a transaction; print seconds and CPU as JSON.

    Users and areas are looked up in dicts read by one query each. Left out, as the
    importer's own work: parsing and validation beyond json.loads, lookups of stored
    grants, audit events, change-log entries and the resumable run's checkpoints.
    """
    from delegauth.domain.catalogue import PermissionSet
    from delegauth.domain.entities import Grant, Role

    # Each distinct permission set's column text and Casbin roles, from delegauth, before
    # the clock starts: this is not the write path.
    sets: dict[Any, tuple[str, tuple[str, ...]]] = {}
    epoch, delegate = datetime(1970, 1, 1), str(Role.DELEGATE)
    with open(path, encoding="utf-8") as fh:
        for text in fh:
            value = json.loads(text)["permissions"]
            key = value if isinstance(value, str) else tuple(value)
            if key not in sets:
                perms = PermissionSet.everything() if value == "all" else PermissionSet.of(value)
                roles = Grant("a", "u", Role.DELEGATE, perms, None, None, epoch, epoch)
                sets[key] = (json.dumps(perms.to_json()), tuple(roles.casbin_roles()))
    postgres = not url.startswith("sqlite:///")
    if postgres:
        import psycopg2

        conn = psycopg2.connect(url)
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        backend = int(cur.fetchone()[0])
        # COPY's text format: a backslash starts an escape (JSON escapes non-ASCII with one).
        sets = {k: (t.replace("\\", "\\\\"), r) for k, (t, r) in sets.items()}
    else:
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        cur = conn.cursor()
        for pragma in (
            "journal_mode = wal",
            "synchronous = normal",
            "cache_size = -65536",
            "wal_autocheckpoint = 20000",
        ):
            cur.execute(f"PRAGMA {pragma}")  # as the importer's connection has them
    server_before = process_cpu(backend) if postgres else 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    cur.execute("SELECT email, id FROM users")
    users = dict(cur.fetchall())
    cur.execute("SELECT key, area_id FROM area_keys")
    areas = dict(cur.fetchall())
    grants: list[tuple[Any, ...]] = []
    links: list[tuple[str, str, str]] = []
    written = 0

    def commit() -> None:
        at = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")  # once a batch, as it does
        # The importer's order: grants as the lines come, g lines sorted (by user first).
        links.sort()
        if postgres:
            copy(
                "grants (area_id, user_id, role, permissions, granted_by, invitation_id,"
                " version, created_at, updated_at, valid_until)",
                "".join(
                    f"{a}\t{u}\t{delegate}\t{p}\t\\N\t\\N\t1\t{at}\t{at}\t\\N\n"
                    for a, u, p in grants
                ),
            )
            copy(
                "casbin_rule (ptype, v0, v1, v2, v3, v4, v5)",
                "".join(f"g\t{u}\t{r}\t{a}\t\t\t\n" for u, r, a in links),
            )
            conn.commit()
        else:
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO grants (area_id, user_id, role, permissions, granted_by,"
                " invitation_id, version, created_at, updated_at, valid_until)"
                " VALUES (?, ?, ?, ?, NULL, NULL, 1, ?, ?, NULL)",
                [(a, u, delegate, p, at, at) for a, u, p in grants],
            )
            cur.executemany(
                "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5)"
                " VALUES ('g', ?, ?, ?, '', '', '')",
                links,
            )
            cur.execute("COMMIT")
        grants.clear()
        links.clear()

    def copy(table: str, rows: str) -> None:
        cur.copy_expert(f"COPY {table} FROM STDIN", io.StringIO(rows))

    with open(path, encoding="utf-8") as fh:
        for text in fh:
            line = json.loads(text)
            user, area = users[line["user"]], areas[line["area"]]
            value = line["permissions"]
            permissions, roles = sets[value if isinstance(value, str) else tuple(value)]
            grants.append((area, user, permissions))
            subject, domain = f"user:{user}", f"area:{area}"
            links.extend((subject, role, domain) for role in roles)
            written += 1
            if len(grants) >= batch:
                commit()
    if grants:
        commit()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    server = process_cpu(backend) - server_before if postgres else 0.0
    conn.close()
    print(json.dumps({"grants": written, "seconds": seconds, "cpu": cpu, "server_cpu": server}))


def copy_database(url: str) -> tuple[str, Any]:
    """A copy of the database at ``url`` as it is now: (its URL, a function deleting it)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as conn:  # the WAL's pages into the file, then none left
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        bare = path.with_name(f"{path.stem}-bare{path.suffix}")
        shutil.copyfile(path, bare)

        def delete() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{bare}{suffix}").unlink(missing_ok=True)

        return f"sqlite:///{bare}", delete
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import make_dsn, parse_dsn

    name = parse_dsn(url)["dbname"]
    bare_name = f"{name}_bare"

    def run(statement: sql.Composable) -> None:
        conn = psycopg2.connect(url, dbname="postgres")  # CREATE DATABASE runs outside it
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    # A copy left by an interrupted run goes first. TEMPLATE needs the source unused: the
    # bench's children have exited and fresh() closed its connections.
    run(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(bare_name)))
    run(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(bare_name), sql.Identifier(name)
        )
    )
    return make_dsn(url, dbname=bare_name), lambda: run(
        sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(bare_name))
    )


def failure(ex: BaseException) -> str:
    """Why the baseline could not run, in a line: a failed child's last (its exception),
    else the error's first."""
    lines = [line.strip() for line in str(ex).splitlines() if line.strip()]
    if not lines:
        return type(ex).__name__
    return lines[-1] if isinstance(ex, SystemExit) else lines[0]


# -- the databases -----------------------------------------------------------------------------


def fresh(url: str) -> None:
    from delegauth.storage.db import is_postgres, open_database
    from delegauth.storage.records import database_proxy
    from delegauth.storage.schema import migrate

    db = open_database(url, statement_timeout_ms=0)
    database_proxy.initialize(db)
    migrate(db)
    if is_postgres(db):
        with db.connection_context():
            # Every table but the migration runner's record of what it applied (peewee's
            # runner keeps it in schema_migration): emptying that would make the next
            # migrate() run 0001 again on a full schema.
            kept = {"schema_migration", "migratehistory"}
            tables = ", ".join(t for t in db.get_tables() if t not in kept)
            db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            db.execute_sql("ANALYZE")
        db.close_all()  # the pool's too: copy_database needs the database unused
    db.close()


def check_decisions(url: str, sample: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(decisions checked, wrong, grant rows) through a Decider on the imported database."""
    from delegauth.domain.ids import casbin_area
    from delegauth.policy.bundle import load_bundle
    from delegauth.policy.decider import Decider
    from delegauth.storage.db import open_database
    from delegauth.storage.feed import PeeweePolicyFeed
    from delegauth.storage.records import GrantRecord, UserRecord, database_proxy

    bundle = load_bundle(POLICIES)
    catalogue = bundle.catalogue
    db = open_database(url)
    database_proxy.initialize(db)
    decider = Decider(bundle, PeeweePolicyFeed(db), max_staleness=3600)
    decider.sync()
    checked = wrong = 0
    with db.connection_context():
        rows = GrantRecord.select().count()
        ids = {
            u.email: u.id
            for u in UserRecord.select(UserRecord.id, UserRecord.email).where(
                UserRecord.email.in_([s["user"] for s in sample])
            )
        }
    for s in sample:
        subject = f"user:{ids[s['user']]}"
        domain = casbin_area(s["area_id"])
        held = set(catalogue.names()) if s["permissions"] == "all" else set(s["permissions"])
        for perm in catalogue:
            for rtype, act in perm.actions:
                expected = perm.name in held or any(
                    (rtype, act) in catalogue.get(h).actions for h in held
                )
                checked += 1
                if decider.decide(subject, domain, rtype, act) != expected:
                    wrong += 1
    db.close()
    return checked, wrong, rows


def bench(name: str, url: str, files: tuple[Path, Path, Path], sample: Any, args: Any) -> None:
    population, small, full = files
    fresh(url)
    pop = run_child(url, population, args.batch)
    small_run = run_child(url, small, args.batch)
    try:
        snapshot: tuple[str, Any] | str = copy_database(url)
    except Exception as ex:  # noqa: BLE001 - the baseline never fails the bench
        snapshot = failure(ex)
    full_run = run_child(url, full, args.batch)
    checked, wrong, rows = check_decisions(url, sample)
    batches = full_run["summary"]["batches"]
    # The bare driver's transactions: as many lines as the importer's, on average.
    bare = baseline(snapshot, full, math.ceil(full_run["summary"]["lines"] / max(batches, 1)))
    outcomes = pop["summary"]["outcomes"]
    users, areas = outcomes.get("user created", 0), outcomes.get("area created", 0)
    grants = full_run["summary"]["outcomes"].get("grant created", 0)
    small_grants = small_run["summary"]["outcomes"].get("grant created", 0)
    bad = sum(r["summary"]["bad_lines"] for r in (pop, small_run, full_run))
    mib = 1024 * 1024
    sizes = f"{args.batch:,} lines" if args.batch else "automatic size"
    print(f"\nimport into {name}, batches of {sizes}")
    row(f"{name} population: users, areas", f"{users:,}, {areas:,}")
    row(f"{name} population: seconds", f"{pop['seconds']:.1f}")
    row(f"{name} population: lines/s", f"{(users + areas) / pop['seconds']:,.0f}")
    rate_small = small_grants / small_run["seconds"]
    row(f"{name} grants/s at {small_grants:,} grants", f"{rate_small:,.0f}")
    rate = grants / full_run["seconds"]
    row(f"{name} grants/s at {grants:,} grants", f"{rate:,.0f}")
    if isinstance(bare, str):
        row(f"{name} bare driver grants/s at {grants:,} grants", f"n/a ({bare})")
        row(f"{name} ratio, importer / bare driver", f"n/a ({bare})")
    else:
        bare_rate = bare["grants"] / bare["seconds"]
        row(f"{name} bare driver grants/s at {bare['grants']:,} grants", f"{bare_rate:,.0f}")
        row(f"{name} ratio, importer / bare driver", f"{rate / bare_rate:.2f}")
    row(f"{name} seconds for {grants:,} grants", f"{full_run['seconds']:.1f}")
    row(f"{name} batches, mean lines a batch", f"{batches:,}, {grants / max(batches, 1):,.0f}")
    row(f"{name} grants per CPU second of the importer", f"{grants / full_run['cpu']:,.0f}")
    if full_run["postgres"]:  # the server's processes too: it runs on this machine
        server = full_run["server_cpu"]
        per_cpu = f"{grants / server:,.0f}" if server else "- (no CPU tick seen)"
        row(f"{name} grants per CPU second of the server", per_cpu)
        row(f"{name} grants per CPU second, both", f"{grants / (full_run['cpu'] + server):,.0f}")
        if not isinstance(bare, str):
            server = bare["server_cpu"]
            per_cpu = f"{bare['grants'] / server:,.0f}" if server else "- (no CPU tick seen)"
            row(f"{name} bare driver grants per server CPU second", per_cpu)
    row(f"{name} load average at the end (1, 5, 15 min)", full_run["load"])
    row(
        f"{name} peak RSS MiB / file MiB, small",
        f"{small_run['rss']:.0f} / {small.stat().st_size / mib:.1f}",
    )
    row(
        f"{name} peak RSS MiB / file MiB, full",
        f"{full_run['rss']:.0f} / {full.stat().st_size / mib:.1f}",
    )
    row(f"{name} grant rows (owners included)", f"{rows:,}")
    row(f"{name} decisions checked", f"{checked:,}")
    row(f"{name} wrong decisions", f"{wrong:,}")
    row(f"{name} bad lines", f"{bad:,}")
    if full_run["bad"] or pop["bad"] or small_run["bad"]:
        print("  first bad lines:", pop["bad"] + small_run["bad"] + full_run["bad"])


def baseline(copy: tuple[str, Any] | str, path: Path, batch: int) -> dict[str, Any] | str:
    """The bare driver's run into ``copy`` (then deleted), or why there is none."""
    if isinstance(copy, str):
        return copy
    url, delete = copy
    try:
        return run_child(url, path, batch, mode="--bare")
    except (Exception, SystemExit) as ex:  # noqa: BLE001 - the baseline never fails the bench
        return failure(ex)
    finally:
        try:
            delete()
        except Exception as ex:  # noqa: BLE001
            print(f"  (the baseline's copy was not deleted: {failure(ex)})")


def row(label: str, value: str) -> None:
    print(f"  {label:<52}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=0, help="lines a batch (0: automatic)")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--pg", default=os.environ.get("DELEGAUTH_TEST_PG_URL", ""))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, every figure")
    parser.add_argument("--child", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--bare", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.batch)
        return
    if args.bare:
        bare_child(args.bare[0], args.bare[1], args.batch)
        return
    if args.smoke:
        args.grants, args.batch = 2000, 500
    from delegauth.policy.bundle import load_bundle

    names = load_bundle(POLICIES).catalogue.names()
    load = os.getloadavg()[0]
    print(f"bench/import.py: {args.grants:,} grant lines; load average {load:.1f}")
    with tempfile.TemporaryDirectory(prefix="delegauth-import-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        *files, sample = write_files(folder, args.grants, names)
        print(f"files written in {time.perf_counter() - t0:.1f} s")
        wanted = [d.strip() for d in args.db.split(",") if d.strip()]
        if "sqlite" in wanted:
            bench("SQLite", f"sqlite:///{folder}/bench.sqlite3", tuple(files), sample, args)
        if "postgres" in wanted:
            if args.pg:
                bench("PostgreSQL", args.pg, tuple(files), sample, args)
            else:
                print("\nPostgreSQL: skipped (no --pg URL or DELEGAUTH_TEST_PG_URL)")


if __name__ == "__main__":
    main()
