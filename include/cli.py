"""``privacy-ops``: the project's command line.

    privacy-ops init-ops      --url URL [--create-database] [--replace]   reference operational schema
    privacy-ops seed          --url URL --users N [--seed S] [--if-empty]  demo data (creates the schema)
    privacy-ops migrate-store --url URL                                    create/migrate schema compliance
    privacy-ops verify-audit  --url URL                                    check the audit log's hash chain
    privacy-ops check-datamap --url URL [--datamap FILE]                   data map against a live database
    privacy-ops standins      [--sendgrid-port P] [--gcs-port P]          run the local SendGrid/GCS servers
    privacy-ops demo          [--users N] [--pg-url URL]                   the whole demo, with a summary
    privacy-ops ui            [--port 8080]                                airflow standalone on the demo database

URLs are libpq URLs (postgresql://user@host:port/dbname); the default is $PRIVACY_PG_URL, else
postgresql://postgres@127.0.0.1:5432/postgres.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date

from include import database


def _url(args) -> str:
    return args.url or os.environ.get("PRIVACY_PG_URL") or database.DEFAULT_URL


def cmd_init_ops(args) -> int:
    from include.operational_schema import create_reference_schema

    url = _url(args)
    if args.create_database:
        url = database.create_database(url, database.database_name(url), replace=args.replace)
    with database.connect(url, autocommit=True) as conn:
        create_reference_schema(conn, replace=args.replace)
    print(f"reference operational schema created in database {database.database_name(url)!r}")
    return 0


def cmd_seed(args) -> int:
    from include.seed.demo_data import seed

    anchor = date.fromisoformat(args.anchor) if args.anchor else date.today()
    if args.if_empty:
        from include.operational_schema import existing_tables

        with database.connect(_url(args), autocommit=True) as conn:
            present = existing_tables(conn)
        if present:
            print(f"the database already has reference tables ({', '.join(present)}): not seeding (--if-empty)")
            return 0
    summary = seed(_url(args), users=args.users, seed=args.seed, anchor=anchor, requests=args.requests)
    for table, count in sorted(summary["rows"].items()):
        print(f"  {table:20} {count:>12,}")
    return 0


def cmd_migrate_store(args) -> int:
    from include import compliance_store

    with database.connect(_url(args), autocommit=True) as conn:
        applied = compliance_store.migrate(conn)
        version = compliance_store.current_version(conn)
    print(f"compliance store at migration {version}" + (f" (applied now: {applied})" if applied else " (already current)"))
    return 0


def cmd_verify_audit(args) -> int:
    from include import audit

    with database.connect(_url(args), autocommit=True) as conn:
        report = audit.verify_chain(conn)
    if report.ok:
        print(f"audit log OK: {report.rows} row(s), chain head {report.head}")
        return 0
    print(f"audit log BROKEN after {report.rows} good row(s): {report.problem}", file=sys.stderr)
    return 1


def cmd_check_datamap(args) -> int:
    from include.datamap import DataMapError, load_datamap, validate_against_database

    try:
        dm = load_datamap(args.datamap)
        with database.connect(_url(args), autocommit=True) as conn:
            validate_against_database(dm, conn)
    except DataMapError as exc:
        print(f"data map problem: {exc}", file=sys.stderr)
        return 1
    print(f"data map OK: {len(dm.personal_data)} table(s) with personal data, {len(dm.records)} record roles")
    return 0


def cmd_standins(args) -> int:
    import time

    from include.standins.gcs_emulator import GCSEmulator
    from include.standins.sendgrid_server import SendGridStandIn

    with SendGridStandIn(port=args.sendgrid_port, api_key=args.api_key) as sendgrid, \
            GCSEmulator(default_bucket=args.bucket, port=args.gcs_port) as gcs:
        print(f"SendGrid stand-in: {sendgrid.base_url}  (API key {args.api_key!r})")
        print(f"GCS emulator:      {gcs.base_url}  (bucket {args.bucket!r}; set STORAGE_EMULATOR_HOST)")
        print("Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def cmd_demo(args) -> int:
    from include.demo import run_demo

    return run_demo(users=args.users, seed=args.seed, pg_url=args.pg_url)


def cmd_ui(args) -> int:
    from include.demo import run_ui

    return run_ui(pg_url=args.pg_url, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privacy-ops", description="Privacy-compliance automation on Airflow 3",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_url(p):
        p.add_argument("--url", help="libpq URL of the database (default: $PRIVACY_PG_URL or the local server)")
        return p

    p = with_url(sub.add_parser("init-ops", help="create the reference operational schema"))
    p.add_argument("--create-database", action="store_true", help="create the URL's database first")
    p.add_argument("--replace", action="store_true", help="drop what exists first (destroys data)")
    p.set_defaults(func=cmd_init_ops)

    p = with_url(sub.add_parser("seed", help="load deterministic, realistically dirty demo data"))
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--anchor", help="the date the data is built around (default: today)")
    p.add_argument("--requests", type=int, help="number of privacy requests (default: 3%% of users)")
    p.add_argument("--if-empty", action="store_true", help="do nothing when the schema already exists")
    p.set_defaults(func=cmd_seed)

    with_url(sub.add_parser("migrate-store", help="create or migrate the compliance store")).set_defaults(
        func=cmd_migrate_store)
    with_url(sub.add_parser("verify-audit", help="verify the audit log's hash chain")).set_defaults(
        func=cmd_verify_audit)
    p = with_url(sub.add_parser("check-datamap", help="check the data map against a live database"))
    p.add_argument("--datamap", help="data map file (default: include/datamap.yaml)")
    p.set_defaults(func=cmd_check_datamap)

    p = sub.add_parser("standins", help="run the local SendGrid-compatible server and GCS emulator")
    p.add_argument("--sendgrid-port", type=int, default=3030)
    p.add_argument("--gcs-port", type=int, default=9023)
    p.add_argument("--api-key", default="dev-key")
    p.add_argument("--bucket", default="privacy-manifests")
    p.set_defaults(func=cmd_standins)

    p = sub.add_parser("demo", help="seed a demo database and run every DAG for real")
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pg-url", help="PostgreSQL server to use (default: $PRIVACY_PG_URL, the local server, "
                                    "else an embedded one under .demo/pg)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="airflow standalone on the demo database, with the stand-ins")
    p.add_argument("--pg-url", help="the PostgreSQL server the demo used (default: as for demo)")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except database.psycopg.OperationalError as exc:
        print(f"could not reach the database: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
