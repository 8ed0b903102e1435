"""The development kit's commands, added to ``privacy-ops`` through the ``privacy_ops.commands`` entry point.

    privacy-ops init-ops   reference operational schema      privacy-ops demo      the whole demo
    privacy-ops seed       deterministic, dirty demo data    privacy-ops ui        airflow standalone on it
    privacy-ops standins   local SendGrid and GCS servers    privacy-ops stop-db   stop the embedded PostgreSQL
"""
from __future__ import annotations

import argparse
import contextlib
import errno
from datetime import date

from devkit.seed.vocabulary import MAX_USERS, REACH_AHEAD_YEARS, REACH_BACK_YEARS
from include.cli import (EXIT_OK, EXIT_USAGE, CommandFailed, _given, checked_url, connect, database_label,
                         database_url, url_source, with_url)

# The anchors whose rows all fit in the calendar (see REACH_BACK_YEARS): 0101-01-01 to 9989-12-31.
ANCHORS = (date(1 + REACH_BACK_YEARS, 1, 1), date(9999 - REACH_AHEAD_YEARS, 12, 31))


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _users(text: str) -> int:
    """A number of users the seed can hold in memory (:data:`MAX_USERS`): a billion was killed by the kernel."""
    value = _positive(text)
    if value > MAX_USERS:
        raise argparse.ArgumentTypeError(f"{value:,} is more users than a seed holds in memory: give at most "
                                         f"{MAX_USERS:,}")
    return value


def _random_seed(text: str) -> int:
    """A random seed numpy takes (0 or more): a negative one was its traceback."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a random seed: give a whole number from 0 up")
    return int(text)


def _anchor(text: str) -> date:
    """A seed's anchor that leaves its rows room in the calendar: at its edges, date arithmetic overflowed."""
    day = _date(text)
    if not ANCHORS[0] <= day <= ANCHORS[1]:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date from {ANCHORS[0]} to {ANCHORS[1]} (the demo data "
                                         f"reaches {REACH_BACK_YEARS} years before its anchor and {REACH_AHEAD_YEARS} "
                                         "after)")
    return day


def _port(text: str) -> int:
    """A TCP port, 0 (the system picks one) to 65535, else argparse's one-sentence usage error (exit 2)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port number from 0 to 65535")
    return int(text)


def _ui_port(text: str) -> int:
    """A port a person opens in a browser, 1 to 65535: 0 (any free port) printed 'open http://localhost:0'."""
    port = _port(text)
    if port == 0:
        raise argparse.ArgumentTypeError("0 is not a port a browser can open: give one from 1 to 65535")
    return port


def _date(text: str) -> date:
    import argparse

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-25") from None


def cmd_init_ops(args) -> int:
    from devkit import database
    from devkit.operational_schema import DependedOn, NotOurTables, SchemaExistsError, create_reference_schema

    url = checked_url(database_url(args), url_source(args))
    if args.create_database:
        connect(database.with_database(url, "postgres"), url_source(args)).close()  # one sentence if the server is down
        name = database.database_name(url)
        try:
            url = database.create_database(url, name, replace=args.replace)
        except database.DatabaseExists:
            raise CommandFailed(f"database {name!r} already exists; pass --replace to drop and recreate it (only a "
                                "database privacy-ops created is dropped)", EXIT_USAGE) from None
        except database.NotOurDatabase as exc:
            raise CommandFailed(str(exc), EXIT_USAGE) from None
    with _one_writer_at_a_time(url, url_source(args)), connect(url, url_source(args)) as conn:
        try:
            create_reference_schema(conn, replace=args.replace)
        except SchemaExistsError as exc:
            raise CommandFailed(f"{exc.table_sentence}; pass --replace to drop and recreate them (destroys their "
                                "data)", EXIT_USAGE) from None
        except (NotOurTables, DependedOn) as exc:
            raise CommandFailed(str(exc), EXIT_USAGE) from None
    print(f"reference operational schema created in database {database_label(url)}")
    return EXIT_OK


def cmd_seed(args) -> int:
    url = database_url(args)
    anchor = args.anchor or date.today()
    _check_requests(args.requests, args.users, anchor)
    with _one_writer_at_a_time(url, url_source(args)):
        return _seed(args, url, anchor)


# Any fixed pair: PostgreSQL keeps advisory locks per database, so this is "the kit writing this database".
SEED_LOCK = (0x70726976, 0x73656564)


@contextlib.contextmanager
def _one_writer_at_a_time(url: str, source: str):
    """Hold the database's kit lock while seed, init-ops or seed-stores writes it, waiting for one already running:
    two at once both found no tables, and the second died creating them (UniqueViolation, with a traceback). The
    one that waited then finds the first one's tables and acts as if run after it (refuses, skips with --if-empty,
    or replaces)."""
    with connect(url, source) as lock:
        if not lock.execute("select pg_try_advisory_lock(%s, %s)", SEED_LOCK).fetchone()[0]:
            print(f"another seed, init-ops or seed-stores of database {database_label(url)} is running: waiting for "
                  "it to finish", flush=True)
            lock.execute("select pg_advisory_lock(%s, %s)", SEED_LOCK)
        yield  # closing the connection releases the lock


def _seed(args, url: str, anchor: date) -> int:
    from devkit import database
    from devkit.operational_schema import (DependedOn, NotOurTables, existing_tables, kit_made,
                                           reference_tables_are_empty)
    from devkit.seed.demo_data import seed
    from devkit.seed.loading import seeded_whole

    with connect(url, url_source(args)) as conn:
        present = existing_tables(conn)
        empty = bool(present) and reference_tables_are_empty(conn)
        ours, foreign = kit_made(conn)
        whole = bool(present) and seeded_whole(conn)
    if present and args.if_empty and whole:
        print(f"database {database_label(url)} already has reference tables ({len(present)}): not seeding (--if-empty)")
        return EXIT_OK
    if present and foreign and not ours:
        # Seeding replaces reference tables, empty or not: only those the kit made, in any database.
        raise CommandFailed(str(NotOurTables(database.database_name(url), foreign)), EXIT_USAGE)
    if present and args.if_empty:  # the kit's own, cut off before its indexes or sequences: made again
        print(f"database {database_label(url)} holds a seed that did not finish: seeding it again (--if-empty)")
    elif present and not (empty or args.replace):
        raise CommandFailed(f"database {database_label(url)} already holds data in the reference tables; pass "
                            "--replace to drop and reseed them (destroys their data)", EXIT_USAGE)
    # An empty reference schema (as `init-ops` leaves it) is replaced by the seeded one.
    try:
        summary = seed(url, users=args.users, seed=args.seed, anchor=anchor,
                       requests=args.requests, replace=bool(present))
    except DependedOn as exc:
        raise CommandFailed(str(exc), EXIT_USAGE) from None
    for table, count in sorted(summary["rows"].items()):
        print(f"  {table:20} {count:>12,}")
    return EXIT_OK


def _check_requests(requests: int | None, users: int, anchor: date) -> None:
    """A usage error when ``--requests`` cannot hold the planted requests of a seed this size (checked before the
    database is touched: the seed itself raised it as a traceback)."""
    from devkit.seed.demo_data import PLANT_MIN_USERS
    from devkit.seed.planted import plant

    if requests is None or users < PLANT_MIN_USERS:
        return
    planted = len(plant(anchor).rows["privacy_requests"])
    if requests < planted:
        raise CommandFailed(f"--requests {requests} is fewer than the {planted} planted requests every seed of "
                            f"{PLANT_MIN_USERS} or more users holds: give at least {planted}, or fewer --users",
                            EXIT_USAGE)


def cmd_seed_stores(args) -> int:
    from devkit import database
    from devkit.seed.stores import SeedFirst, seed_stores_beside, store_urls

    url = checked_url(database_url(args), url_source(args))
    try:
        with _one_writer_at_a_time(url, url_source(args)):  # the stores are made beside it, from it
            summary = seed_stores_beside(url, seed=args.seed, if_empty=args.if_empty)
    except database.DatabaseExists as exc:
        raise CommandFailed(f"{exc}: pass --if-empty to keep seeded stores (a half-seeded one is made again)",
                            EXIT_USAGE) from None
    except (database.NotOurDatabase, SeedFirst) as exc:
        raise CommandFailed(str(exc), EXIT_USAGE) from None
    names = ", ".join(database.database_name(u) for u in store_urls(url).values())
    if summary is None:
        print(f"the support desk and analytics databases ({names}) are seeded already: not seeding (--if-empty)")
        return EXIT_OK
    print(f"seeded {names}: " + ", ".join(f"{t} {n:,}" for t, n in summary.items()))
    return EXIT_OK


def port_in_use(port: int, host: str, flag: str) -> CommandFailed:
    """The one sentence for a port something else listens on (the bind's OSError was a traceback)."""
    return CommandFailed(f"port {port} on {host} is in use: give {flag} another port")


@contextlib.contextmanager
def _listening(server, port: int, flag: str):
    """``server`` started and stopped at the end, or :func:`port_in_use` when its port is taken."""
    try:
        server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise port_in_use(port, "127.0.0.1", flag) from None
    with server:
        yield server


def cmd_standins(args) -> int:
    import time

    from devkit.standins.gcs_emulator import GCSEmulator
    from devkit.standins.sendgrid_server import SendGridStandIn

    with _listening(SendGridStandIn(port=args.sendgrid_port, api_key=args.api_key), args.sendgrid_port,
                    "--sendgrid-port") as sendgrid, \
            _listening(GCSEmulator(default_bucket=args.bucket, port=args.gcs_port), args.gcs_port, "--gcs-port") as gcs:
        print(f"SendGrid stand-in: {sendgrid.base_url}  (it accepts the API key given with --api-key)")
        print(f"GCS emulator:      {gcs.base_url}  (bucket {args.bucket!r}; set STORAGE_EMULATOR_HOST)")
        print("Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return EXIT_OK


def cmd_demo(args) -> int:
    from devkit.demo import run_demo

    return run_demo(users=args.users, seed=args.seed, pg_url=args.pg_url, keep_db=args.keep_db)


def cmd_ui(args) -> int:
    from devkit.demo import run_ui

    return run_ui(pg_url=args.pg_url, port=args.port, host=args.host, unpause=args.unpause)


def cmd_stop_db(args) -> int:
    from devkit.embedded_postgres import default_data_dir, stop_embedded

    if stop_embedded():
        print(f"stopped the embedded PostgreSQL (its data stays in {default_data_dir()})")
    else:
        print("the embedded PostgreSQL was not running")
    return EXIT_OK


DEMO_ENVIRONMENT = """environment variables read:
  PRIVACY_PG_URL    libpq URL of the PostgreSQL when --pg-url is not given (default: the local server,
                    postgresql://postgres@127.0.0.1:5432/postgres, else an embedded one under .demo/pg)
  PRIVACY_DEMO_DB   the demo's database when the URL names the server's `postgres` database
                    (default: privacy_demo)
  PRIVACY_DEMO_DIR  the demo's folder: Airflow's home, task logs, the embedded PostgreSQL (default: .demo)

The demo drops and recreates its database on every run; it drops only a database privacy-ops created
(marked with a COMMENT ON DATABASE) and refuses any other in one sentence."""


def register(sub) -> None:
    """Add the kit's commands to the ``privacy-ops`` parser."""
    p = with_url(sub.add_parser("init-ops", help="create the reference operational schema (tables and indexes)",
                                description="Create the reference operational schema the demo and the tests use."))
    p.add_argument("--create-database", action="store_true", help="create the URL's database first")
    p.add_argument("--replace", action="store_true",
                   help="drop what exists first (the database with --create-database, else the reference tables)")
    p.set_defaults(func=cmd_init_ops)

    p = with_url(sub.add_parser("seed", help="load deterministic, realistically dirty demo data",
                                description="Create the reference schema and fill it with demo data."))
    p.add_argument("--users", type=_users, default=2000,
                   help=f"number of users, at most {MAX_USERS:,} (default: 2000)")
    p.add_argument("--seed", type=_random_seed, default=42,
                   help="random seed of the bulk rows, 0 or more (default: 42)")
    p.add_argument("--anchor", type=_anchor, metavar="DATE",
                   help=f"the date the data is built around, YYYY-MM-DD from {ANCHORS[0]} to {ANCHORS[1]} "
                        "(default: today)")
    p.add_argument("--requests", type=_positive, help="number of privacy requests (default: 3%% of users)")
    p.add_argument("--if-empty", action="store_true", help="do nothing when the reference tables already exist")
    p.add_argument("--replace", action="store_true", help="drop reference tables that hold data and reseed")
    p.set_defaults(func=cmd_seed)

    p = with_url(sub.add_parser("seed-stores", help="create and seed the support desk and analytics databases",
                                description="Create <db>_support and <db>_analytics beside the seeded operational "
                                            "database and fill them from it (the other stores)."))
    p.add_argument("--seed", type=_random_seed, default=42, help="random seed, 0 or more (default: 42)")
    p.add_argument("--if-empty", action="store_true", help="do nothing when they are seeded already")
    p.set_defaults(func=cmd_seed_stores)

    p = sub.add_parser("standins", help="run the local SendGrid-compatible server and GCS emulator",
                       description="Serve the stand-ins on loopback until Ctrl-C.")
    p.add_argument("--sendgrid-port", type=_port, default=3030, help="SendGrid stand-in port (default: 3030)")
    p.add_argument("--gcs-port", type=_port, default=9023, help="GCS emulator port (default: 9023)")
    p.add_argument("--api-key", default="dev-key", help="the API key the SendGrid stand-in accepts")
    p.add_argument("--bucket", default="privacy-evidence", help="bucket the GCS emulator creates")
    p.set_defaults(func=cmd_standins)

    p = sub.add_parser("demo", help="seed a demo database and run every DAG for real, with a summary",
                       description="The whole product on this machine, from nothing.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DEMO_ENVIRONMENT)
    p.add_argument("--users", type=_users, default=5000,
                   help=f"number of demo users, at most {MAX_USERS:,} (default: 5000)")
    p.add_argument("--seed", type=_random_seed, default=42,
                   help="random seed of the demo data, 0 or more (default: 42)")
    p.add_argument("--pg-url", metavar="URL", type=_given,
                   help="libpq URL of the PostgreSQL to use; its database, or the demo's own (privacy_demo) when it "
                        "names `postgres` (default: $PRIVACY_PG_URL, the local server, else an embedded one under "
                        ".demo/pg); the demo drops and recreates that database, and refuses one privacy-ops did not "
                        "create")
    p.add_argument("--keep-db", action="store_true",
                   help="leave an embedded PostgreSQL running afterwards (for `privacy-ops ui`)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="airflow standalone on the demo database, with the stand-ins",
                       description="The Airflow UI on the demo's database until Ctrl-C.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DEMO_ENVIRONMENT)
    p.add_argument("--pg-url", metavar="URL", type=_given,
                   help="the PostgreSQL server the demo used (default: as for demo)")
    p.add_argument("--port", type=_ui_port, default=8080, help="port of the UI, 1 to 65535 (default: 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default: 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--unpause", action="store_true", help="unpause the DAGs so that triggered runs start")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("stop-db", help="stop the embedded PostgreSQL the demo started (its data stays)",
                       description="Stop the embedded PostgreSQL under .demo/pg.")
    p.set_defaults(func=cmd_stop_db)
