"""``privacy-ops``: the project's command line.

The product's own commands live here; the development kit (``devkit``) adds its commands (demo data, the
stand-ins, the demo, the local UI) through the ``privacy_ops.commands`` entry point, so that an
installation without the kit (the Airflow image) has exactly the product's commands and nothing here
imports the kit.

Every command answers in one sentence on stderr when it cannot do its work, and exits with one of:

    0  done (or the check passed)
    1  the check failed (the audit chain is broken, the data map does not match the database), or the id asked
       for names nothing (a what-if run, a finding, a vendor or run no deletion notice names)
    2  usage: a flag is missing or malformed
    3  cannot reach or configure: the database or the anchors' bucket does not answer, the URL in the
       environment ($PRIVACY_PG_URL) is malformed, the store is missing
    4  the database refused the work for good (over one of its limits, an object not in the required state)
    130  interrupted (Ctrl-C) before it finished

A sentence quotes what was typed (to show a typo) up to 120 characters of each word, then says how long it was.
A malformed ``--url`` is a usage error (2): the flag is wrong; the same URL from the environment is a set-up
problem (3).

URLs are libpq URLs (``postgresql://user@host:port/dbname``); the default is ``$PRIVACY_PG_URL``, else
``postgresql://postgres@127.0.0.1:5432/postgres``. Passwords in URLs are never printed. Object-store
locations (``--anchors``) are ``gs://bucket[/prefix]`` or ``file:///folder``, default
``$PRIVACY_EVIDENCE_LOCATION``.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import textwrap
from importlib.metadata import entry_points
from typing import Callable, Sequence

from include import pg_url
from include.errors import NeedsOperator, PrivacyOpsError, database_trouble

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_OVER_LIMIT = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
EXIT_CODES = {
    EXIT_OK: "done, or the check passed",
    EXIT_CHECK_FAILED: "the check failed (audit chain broken, data map mismatch), or the id asked for names nothing "
                       "(whatif --run-id, dismiss-finding --id, a --vendor or --run no deletion notice names)",
    EXIT_USAGE: "usage: a flag is missing or malformed",
    EXIT_UNREACHABLE: "cannot reach or configure (database or bucket down, malformed $PRIVACY_PG_URL, store missing), "
                      "or the database could not do it now (out of disk or memory, a statement timeout)",
    EXIT_OVER_LIMIT: "the database refused the work as over one of its limits (a value over 1 GB, too many "
                     "columns) or as an object it needs is not in the state the work requires: running it again "
                     "repeats it",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C) before it finished: run it again to finish it",
}
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
URL_ENV = "PRIVACY_PG_URL"
EVIDENCE_ENV = "PRIVACY_EVIDENCE_LOCATION"
ANCHOR_RETRY_SECONDS = 20.0  # an operator is waiting: give up on an unreachable bucket sooner than a task would
COMMANDS_GROUP = "privacy_ops.commands"

log = logging.getLogger(__name__)


class CommandFailed(Exception):
    """A command's one-sentence answer and its exit code."""

    def __init__(self, sentence: str, code: int = EXIT_UNREACHABLE):
        super().__init__(sentence)
        self.code = code


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for anything printed or logged)."""
    return pg_url.redact(url)


def database_url(args) -> str:
    return args.url or os.environ.get(URL_ENV) or DEFAULT_URL


def url_source(args) -> str:
    """Where :func:`database_url` took the URL from, as a message names it."""
    return "--url" if args.url else f"${URL_ENV}" if os.environ.get(URL_ENV) else "the default URL"


def open_database(args):
    """:func:`connect` to the command's database (``--url``, else ``$PRIVACY_PG_URL``, else the default)."""
    return connect(database_url(args), url_source(args))


def database_label(url: str) -> str:
    name = pg_url.database_name(url)
    return name if name == "<malformed URL>" else repr(name)


def checked_url(url: str, source: str = "--url") -> str:
    """``url`` when libpq can use it, else :class:`CommandFailed` naming ``source`` and the wrong part (never the
    URL's text: libpq's own messages quote it, password included). A malformed ``--url`` (or ``--pg-url``)
    exits 2 (usage), a malformed URL from the environment 3 (set-up)."""
    try:
        pg_url.check(url)
    except pg_url.UrlProblem as exc:
        raise CommandFailed(f"{source} {exc}", EXIT_USAGE if source.startswith("--") else EXIT_UNREACHABLE) from None
    return url


def connect(url: str, source: str = "--url"):
    """An autocommit connection, or one sentence saying why there is none.

    ``source`` names where the URL came from: a malformed ``--url`` exits 2 (usage), a malformed URL from the
    environment 3 (set-up).
    """
    import psycopg

    checked_url(url, source)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.ProgrammingError:  # a parse error libpq found and the check did not: its text quotes the URL
        raise CommandFailed(f"{source} is not a usable PostgreSQL URL: libpq cannot parse it",
                            EXIT_USAGE if source.startswith("--") else EXIT_UNREACHABLE) from None
    except psycopg.OperationalError as exc:
        from include.errors import refusal

        said = refusal(exc)
        if said:
            raise CommandFailed(f"the database at {redact_url(url)} refused the connection: "
                                f"{pg_url.scrub(said, url)}; correct the login, password or database name") from None
        raise CommandFailed(f"could not reach the database at {redact_url(url)}: "
                            f"{pg_url.scrub(_first_line(exc), url)}") from None


def unechoed(typed: str) -> str:
    """What was typed (an argument, a sentence quoting one), fit to repeat: a URL cut of its credentials and query
    string, an address (pasted in the wrong place: a run id, a table, a user id) blanked out."""
    return re.sub(r"[^\s'\"]+@[^\s'\"]+", "…", pg_url.withhold_credentials(typed))


QUOTED_MAX = 200  # a word of a sentence longer than this (a value pasted whole, a file read as an argument) ...
QUOTED_KEPT = 120  # ... is quoted this far, then "… (N characters)"


def bounded(sentence: str) -> str:
    """``sentence`` with every word longer than :data:`QUOTED_MAX` characters cut to its first :data:`QUOTED_KEPT`,
    saying how long it was: a sentence quoting what was typed stays one line a person reads, however long the value
    (a run id, a location, a date or a flag of 100,000 characters)."""
    return re.sub(r"[^\s'\"]{%d,}" % (QUOTED_MAX + 1),
                  lambda m: f"{m.group(0)[:QUOTED_KEPT]}… ({len(m.group(0)):,} characters)", sentence)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def require_store(conn, url: str) -> None:
    from include import compliance_store

    if compliance_store.current_version(conn) is None:
        if conn.info.dbname in ("postgres", "template0", "template1"):  # the URL named the server, not a database
            raise CommandFailed(f"database {database_label(url)} has no compliance store (it is the server's own "
                                "database): point --url (or $PRIVACY_PG_URL) at the database that holds schema "
                                "compliance (the demo's: the URL its closing lines print)")
        raise CommandFailed(f"database {database_label(url)} has no compliance store: point --url at the database "
                            "that holds schema compliance, or create it with `privacy-ops migrate-store`")
    try:
        compliance_store.require_current(conn)
    except compliance_store.MigrationError as exc:  # behind the code: its tables may not be there yet
        raise CommandFailed(f"database {database_label(url)}: {exc}") from None


# -- the product's commands -----------------------------------------------------------------------

def cmd_migrate_store(args) -> int:
    from include import compliance_store

    url = database_url(args)
    with open_database(args) as conn:
        applied = compliance_store.migrate(conn)
        version = compliance_store.current_version(conn)
    print(f"compliance store in database {database_label(url)} at migration {version}"
          + (f" (applied now: {', '.join(map(str, applied))})" if applied else " (already current)"))
    return EXIT_OK


def anchor_store(args):
    """The store holding the audit anchors (``--anchors``, else ``$PRIVACY_EVIDENCE_LOCATION``), or None."""
    from include.seam.storage import object_store

    text, source = args.anchors, "--anchors"
    if not text:
        text, source = os.environ.get(EVIDENCE_ENV, "").strip() or None, f"${EVIDENCE_ENV}"
    if not text:
        return None
    try:
        store = object_store(text, retry_timeout=ANCHOR_RETRY_SECONDS)
    except ValueError as exc:
        raise CommandFailed(f"{source}: {exc}", EXIT_USAGE if source == "--anchors" else EXIT_UNREACHABLE) from None
    # GCS goes through Airflow's hook: keep Airflow's and Google's chatter (config read, token refresh) off
    # the command's one-sentence stderr.
    for noisy in ("airflow", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return store


def cmd_verify_audit(args) -> int:
    from include import audit
    from include.objectstore import ObjectStoreError

    url = database_url(args)
    anchors = anchor_store(args)
    with open_database(args) as conn:
        require_store(conn, url)
        try:
            report = audit.verify_chain(conn, anchors=anchors)
        except ObjectStoreError as exc:
            raise CommandFailed(f"could not read the audit anchors: {exc}") from None
    if report.ok:
        summary = f"audit log OK: {report.rows} row(s), chain head {report.head}"
        if anchors is None:
            print(f"{summary}; anchors not checked (no --anchors or ${EVIDENCE_ENV}), so removed newest rows "
                  "or a recomputed chain would go unnoticed")
        elif report.anchors:
            print(f"{summary}; it matches all {report.anchors} anchor(s) at {anchors.location}, the newest at row "
                  f"{report.anchored_row} ({report.rows_since_anchor} row(s) written since)")
        else:
            print(f"{summary}; the log is empty and there is no anchor at {anchors.location} yet")
        return EXIT_OK
    if report.anchor_problem:
        print(f"audit log does not match its anchors at {anchors.location}: {report.problem}", file=sys.stderr)
    else:
        print(f"audit log BROKEN after {report.rows} good row(s): {report.problem}", file=sys.stderr)
    return EXIT_CHECK_FAILED


def cmd_check_datamap(args) -> int:
    from include.datamap import OPS_CONNECTION, DataMapError, load_datamap, validate_against_database, validate_stores

    database_url(args)
    path = args.datamap or os.environ.get("PRIVACY_DATAMAP") or None  # the file the DAGs would read
    try:
        dm = load_datamap(path)
    except DataMapError as exc:
        missing = path is not None and not os.path.isfile(path)
        code = (EXIT_USAGE if args.datamap else EXIT_UNREACHABLE) if missing else EXIT_CHECK_FAILED
        where = "" if args.datamap or path is None else " ($PRIVACY_DATAMAP)"
        raise CommandFailed(f"data map problem{where}: {exc}", code) from None
    @contextlib.contextmanager
    def store(conn_id: str):
        if conn_id == OPS_CONNECTION:
            with open_database(args) as conn:
                yield conn
            return
        entry = dm.entries_on(conn_id)[0]
        url = os.environ.get(_store_env(conn_id))
        if not url:
            raise CommandFailed(f"data map entry {entry.label} is on connection '{conn_id}', which has no URL here: "
                                f"set ${_store_env(conn_id)} to its PostgreSQL URL", EXIT_USAGE)
        try:
            opened = connect(url, f"${_store_env(conn_id)}")
        except CommandFailed as exc:
            raise CommandFailed(f"connection '{conn_id}' (data map entry {entry.label}): {exc}", exc.code) from None
        with opened as conn:
            yield conn

    try:
        # The operational database first: a map that does not fit it is reported as such, whatever the other
        # stores' URLs (each other store is then checked with its own).
        with store(OPS_CONNECTION) as ops:
            validate_against_database(dm, ops)
        validate_stores(dm, store)
    except DataMapError as exc:
        print(f"data map problem: {exc.summary}", file=sys.stderr)
        if args.details:
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
        elif len(exc.problems) > 1:
            print(f"  ({len(exc.problems)} problems; --details lists each)", file=sys.stderr)
        return EXIT_CHECK_FAILED
    others = [c for c in dm.connections if c != OPS_CONNECTION]
    print(f"data map OK: {len(dm.personal_data)} table(s) with personal data, {len(dm.records)} record roles"
          + (f"; {len(dm.other_stores)} more on {', '.join(others)}" if others else ""))
    return EXIT_OK


def _store_env(conn_id: str) -> str:
    """The variable holding the URL of another store's database for this command (the DAGs take it
    from the Airflow connection of that name)."""
    return f"PRIVACY_STORE_URL_{conn_id.upper().replace('-', '_')}"


def cmd_whatif(args) -> int:
    from include.reads import deadlines as dsr_reads

    url = database_url(args)
    with open_database(args) as conn:
        require_store(conn, url)
        if not args.run_id:
            runs = dsr_reads.whatif_runs(conn, limit=args.limit)
            if not runs:
                print("no what-if runs are kept (a run with an as_of other than its own day is one)")
            for run in runs:
                states = ", ".join(f"{k}={v}" for k, v in run["states"].items())
                print(f"{run['run_id']}  as of {run['as_of']}  evaluated {run['evaluated_at']:%Y-%m-%d %H:%M}  "
                      f"{run['requests']} request(s): {states}")
            return EXIT_OK
        rows = dsr_reads.whatif_rows(conn, args.run_id)
        empty_day = None if rows else dsr_reads.whatif_with_no_requests(conn, args.run_id)
    if empty_day:
        print(f"no request had been received by {empty_day} and not closed before it: the what-if evaluated none")
        return EXIT_OK
    if not rows:
        raise CommandFailed(f"no what-if results for run {unechoed(args.run_id)!r} (pruned, or not a what-if run): "
                            "`privacy-ops whatif` lists the runs kept", EXIT_CHECK_FAILED)
    print(f"{'request':>8}  {'regime':6} {'type':16} {'state':18} {'due':10} {'days left':>9}")
    for row in rows[:args.limit]:
        print(f"{row['request_id']:>8}  {dsr_reads.as_text(row['regime']):6} "
              f"{dsr_reads.as_text(row['request_type'])[:16]:16} {row['state']:18} "
              f"{dsr_reads.as_text(row['effective_due']):10} {dsr_reads.as_text(row['days_left']):>9}")
    if len(rows) > args.limit:
        print(f"... and {len(rows) - args.limit} more (--limit)")
    return EXIT_OK


def _day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-25") from None


BIGINT_MAX = 2 ** 63 - 1  # the largest whole number PostgreSQL holds (a LIMIT, an id)


def _given(text: str) -> str:
    """A value that names something: an empty one is a usage error, never a silent fall back to the default (an
    empty --url read $PRIVACY_PG_URL's database, or the server's postgres)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a value, or leave the flag out for its default")
    return text


def _words(limit: int, *, one_line: bool = False):
    """Text a person writes (a reason, a name), at least one character and at most ``limit``. A name
    (``one_line``) is one line of printable characters: recorded as the audit entry's actor, a line break or a
    terminal's control sequence in it would show a second, forged line wherever it is printed."""
    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError("is empty")
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"is {len(text)} characters long; give at most {limit}")
        if one_line and not text.strip().isprintable():
            raise argparse.ArgumentTypeError("holds a line break or control character; give the name on one line")
        return text.strip()
    return check


def _listing_code(text: str) -> str:
    """A listing code of privacy-ops deletion-notices: 12 hexadecimal digits."""
    text = text.strip().lower()
    if len(text) != 12 or any(c not in "0123456789abcdef" for c in text):
        raise argparse.ArgumentTypeError("is not a listing code (12 hexadecimal digits, as privacy-ops "
                                         "deletion-notices --vendor N prints it)")
    return text


def _positive(text: str) -> int:
    """A whole number from 1 to :data:`BIGINT_MAX`, else argparse's one-sentence usage error (exit 2)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= BIGINT_MAX:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number from 1 to {BIGINT_MAX}")
    return int(text)


def cmd_right_to_know(args) -> int:
    """CCPA right to know (Cal. Civ. Code §1798.110, §1798.115): what of one user was shared, with whom."""
    from datetime import datetime, timezone

    from include.datamap import DataMapError, load_datamap, validate_against_database
    from include.fulfilment import right_to_know

    until = args.until or datetime.now(timezone.utc).date()
    if args.since and args.since > until:
        raise CommandFailed(f"--since {args.since} is after --until {until}", EXIT_USAGE)
    try:
        period = (right_to_know.days_period(args.since, until, timezone.utc) if args.since
                  else right_to_know.last_twelve_months(until, timezone.utc))
    except ValueError as exc:
        raise CommandFailed(f"--until {until}: {exc}", EXIT_USAGE) from None
    first, last = period.start.date(), until
    with open_database(args) as conn:
        conn.execute("set time zone 'UTC'")
        try:
            dm = load_datamap(os.environ.get("PRIVACY_DATAMAP") or None)
            validate_against_database(dm, conn)
        except DataMapError as exc:
            raise CommandFailed(f"data map problem: {exc.summary} (see privacy-ops check-datamap)") from None
        answer = right_to_know.shared_with(conn, dm, args.user_id, period)
    where = f"from {first} to {last} (UTC, both days included)"
    account = "" if answer.account_exists else " (no account has this id now: deleted, purged or never created)"
    if not answer.vendors:
        print(f"user {args.user_id}{account}: nothing shared {where}")
    else:
        print(f"user {args.user_id}{account}: shared with {len(answer.vendors)} vendor(s) {where}; "
              f"categories: {', '.join(answer.categories)}")
    for v in answer.vendors:
        print(f"  {_vendor_text(v)}: {', '.join(v.categories)} - {v.shares} share(s), {v.records} record(s), "
              f"{v.first_shared:%Y-%m-%d} to {v.last_shared:%Y-%m-%d}")
    for v in answer.undated:
        print(f"  {_vendor_text(v)}: {', '.join(v.categories)} - {v.shares} share(s) whose time the database cannot "
              "place (infinity, BC or after 9999): they may fall in this period")
    return EXIT_OK


def _vendor_text(v) -> str:
    if not v.known:
        return f"vendor {v.vendor_id} (unknown vendor id)"
    return f"vendor {v.vendor_id} {v.name} ({v.kind})"


# -- personal-data discovery (docs/discovery.md) ------------------------------------------------------

def cmd_discover(args) -> int:
    """Personal data the data map does not name (the DAG's classification; prints, stores nothing)."""
    from datetime import datetime, timezone

    from include.datamap import OPS_CONNECTION, DataMapError, load_datamap
    from include.discovery import findings

    try:
        dm = load_datamap(args.datamap or os.environ.get("PRIVACY_DATAMAP") or None)
    except DataMapError as exc:
        raise CommandFailed(f"data map problem: {exc}", EXIT_USAGE if args.datamap else EXIT_CHECK_FAILED) from None
    today = datetime.now(timezone.utc).date()
    reports, skipped = [], []
    for connection in dm.connections:
        if connection == OPS_CONNECTION:
            opened = open_database(args)
        else:
            url = os.environ.get(_store_env(connection))
            if not url:
                skipped.append(connection)
                continue
            opened = connect(url, f"${_store_env(connection)}")
        with opened as conn:
            conn.execute("set time zone 'UTC'")
            reports.append(findings.scan_connection(conn, dm, connection, rows=args.sample_rows, today=today,
                                                    tables=tuple(args.table or ())))
    unknown = findings.tables_not_found(args.table or (), reports)
    if unknown:
        raise CommandFailed(f"--table {', '.join(map(unechoed, unknown))}: no scanned database has such a table "
                            f"(scanned: {', '.join(r.connection for r in reports)})", EXIT_USAGE)
    every = [f for r in reports for f in r.findings]
    if args.format == "yaml":
        _print_entries(every)
    else:
        _print_findings(every)
    tables = sum(r.tables for r in reports)
    columns = sum(r.columns for r in reports)
    note = (f"; not scanned: {', '.join(skipped)} (set " + ", ".join(f"${_store_env(c)}" for c in skipped) + ")"
            if skipped else "")
    comment = "# " if args.format == "yaml" else ""  # the YAML stays pastable whole
    print(f"{comment}{len(every)} finding(s) in {tables} table(s), {columns} column(s) sampled at most "
          f"{args.sample_rows} row(s) each{note}")
    for r in reports:
        for problem in r.problems:
            print(f"{comment}  skipped: {problem}")
    return EXIT_OK


def _print_findings(every) -> None:
    if not every:
        return
    print(f"{'connection':14} {'column':40} {'finding':20} {'kind':18} {'conf':>5} {'matched':>12}")
    for f in sorted(every, key=lambda f: (f.connection, f.schema, f.table, f.column or "")):
        print(f"{f.connection[:14]:14} {f.where[:40]:40} {f.finding:20} {(f.kind or '-'):18} {f.confidence:5.2f} "
              f"{f'{f.matched}/{f.sampled}':>12}")


def _print_entries(every) -> None:
    """The suggested entries, one per table (its unmapped columns merged under their categories), then what to
    remove or check for mapped columns gone or no longer personal."""
    import yaml

    from include.discovery.findings import UNMAPPED

    print("# Suggested data-map entries (include/datamap.yaml personal_data); check each before pasting.")
    tables: dict[tuple, list] = {}
    for f in sorted(every, key=lambda f: (f.connection, f.schema, f.table, f.column or "")):
        if f.finding == UNMAPPED:
            tables.setdefault((f.connection, f.schema, f.table), []).append(f)
    for found in tables.values():
        merged: dict = {}
        for f in found:
            entry = yaml.safe_load(f.suggestion)[0]
            if not merged:
                merged = {**entry, "categories": {}}
            for category, columns in entry["categories"].items():
                merged["categories"].setdefault(category, []).extend(columns)
        first = found[0]
        extend = "subject" not in merged
        print(f"# {first.connection} {first.where.rsplit('.', 1)[0]}: "
              + ", ".join(f"{f.column} {f.kind} {f.confidence:.2f} ({f.matched}/{f.sampled})" for f in found)
              + ("; add to the existing entry" if extend else ""))
        lines = [f"- table: {merged['table']}"]
        if "connection" in merged:
            lines.append(f"  connection: {merged['connection']}")
        if not extend:
            subject = merged["subject"]
            lines.append("  subject: {" + ", ".join(f"{k}: {_scalar(v)}" for k, v in subject.items()) + "}"
                         + ("   # no link to an account found: name the column" if subject.get("column") == "???"
                            else ""))
        lines.append("  categories:")
        lines += [f"    {c}: [{', '.join(cols)}]" for c, cols in merged["categories"].items()]
        if not extend:
            lines.append(f"  erase: {merged.get('erase', 'delete')}")
        print("\n".join(lines))
    for f in every:
        if f.finding != UNMAPPED:
            print(f.suggestion)


def _scalar(value) -> str:
    import json
    import re

    return str(value) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.$-]*", str(value)) else json.dumps(str(value))


def cmd_findings(args) -> int:
    from include.reads import discovery

    url = database_url(args)
    with open_database(args) as conn:
        require_store(conn, url)
        rows = discovery.open_findings(conn, limit=args.limit)
        total = discovery.open_count(conn)
    if not rows:
        print("no open findings")
        return EXIT_OK
    print(f"{'id':>6} {'age':>5} {'connection':14} {'column':40} {'finding':20} {'kind':18} {'conf':>5}")
    for r in rows:
        print(f"{r['finding_id']:>6} {r['age_days']:>4}d {r['connection_id'][:14]:14} {r['where'][:40]:40} "
              f"{r['finding']:20} {(r['kind'] or '-'):18} {float(r['confidence']):5.2f}")
    if total > len(rows):
        print(f"... and {total - len(rows)} more (--limit)")
    return EXIT_OK


def _as_a_person(args, act: Callable, refused: type[Exception]):
    """A person's change to the compliance store (``--by`` names them): ``act(conn, "person:<name>")``'s answer, or
    its refusal (an exception of type ``refused``) as one sentence, exit 1."""
    url = database_url(args)
    with open_database(args) as conn:
        require_store(conn, url)
        try:
            return act(conn, f"person:{args.by}")
        except refused as exc:
            raise CommandFailed(unechoed(str(exc)), EXIT_CHECK_FAILED) from None


def cmd_dismiss_finding(args) -> int:
    from include.discovery.findings import FindingError, dismiss

    done = _as_a_person(args, lambda conn, by: dismiss(conn, args.id, args.reason, by=by), FindingError)
    table = done["table_name"] if done["schema_name"] == "public" else f"{done['schema_name']}.{done['table_name']}"
    print(f"finding {done['finding_id']} ({done['connection_id']} {table}.{done['column_name'] or '*'}, "
          f"{done['finding']}) dismissed; recorded in the audit log, later runs keep it dismissed")
    return EXIT_OK


# -- downstream deletion notices (GDPR Art. 17(2), Art. 19) --------------------------------------------

def cmd_deletion_notices(args) -> int:
    """The deletion notices owed to vendors, per vendor (read-only); with --vendor, that vendor's per run."""
    from include.erasure.notices import listing_codes
    from include.reads import children

    url = database_url(args)
    with open_database(args) as conn:
        conn.execute("set time zone 'UTC'")
        require_store(conn, url)
        owed = children.notices_by_vendor(conn, args.vendor)
        if args.vendor is None:
            if not owed:
                print("no deletion notices are owed to any vendor")
            for v in owed:
                print(_owed_text(v))
                runs = v["runs"]
                print(f"    runs: {', '.join(runs[:_RUNS_SHOWN])}"
                      + (f" and {len(runs) - _RUNS_SHOWN} more (--vendor {v['vendor_id']} lists them)"
                         if len(runs) > _RUNS_SHOWN else ""))
            return EXIT_OK
        history = children.vendor_notice_history(conn, args.vendor)
        runs = children.vendor_notice_runs(conn, args.vendor) if owed else []
        code, run_codes = listing_codes(conn, args.vendor) if owed else ("", {})
    if not history["notices"]:
        raise CommandFailed(f"no deletion notice was ever recorded for vendor {args.vendor} (without --vendor the "
                            "command lists the vendors owed one)", EXIT_CHECK_FAILED)
    if not owed:
        when = (f"the last at {history['last_sent']:%Y-%m-%d %H:%M} UTC" if history["last_sent"] else
                "with no time recorded (marked outside privacy-ops mark-notices-sent)")
        print(f"vendor {args.vendor} is owed no deletion notice: its {history['sent']} notice(s) were marked sent, "
              f"{when}")
        return EXIT_OK
    print(_owed_text(owed[0]))
    for r in runs:
        print(f"  run {r['run_id']} ({r['source']}, recorded {r['recorded']:%Y-%m-%d %H:%M} UTC): "
              f"{r['subjects']} subject(s), {r['shares']} share(s); categories: {', '.join(r['categories']) or '-'}")
        if r["share_ids"]:
            print("\n".join(_share_id_lines(r["share_ids"])))
        if r["unlisted"]:
            print(f"    share ids not recorded for {r['unlisted']} subject(s) (erased before migration 0024; their "
                  "shares were erased with them)")
        print(f"    listing code of this run's notices: {run_codes.get(r['run_id'], '-')}")
    print(f"mark them sent once the vendor is told: privacy-ops mark-notices-sent --vendor {args.vendor} "
          f"--listed {code} --by NAME (or one run's: --run RUN_ID --listed its listing code); notices recorded "
          "after this listing change the code and are not marked")
    return EXIT_OK


_RUNS_SHOWN = 3
_LINE = 120


def _share_id_lines(ids) -> list[str]:
    """The share ids a vendor should delete: on the heading's line while they fit, else under it in lines a terminal
    (or a ticket form) shows whole, every id once."""
    line = f"    share ids to delete: {', '.join(map(str, ids))}"
    if len(line) <= _LINE:
        return [line]
    return [f"    share ids to delete ({len(ids)}):",
            *textwrap.wrap(", ".join(map(str, ids)), _LINE, initial_indent=" " * 6, subsequent_indent=" " * 6,
                           break_on_hyphens=False)]


def _owed_text(v: dict) -> str:
    who = f"vendor {v['vendor_id']} {v['vendor_name']}" if v["vendor_known"] else \
        f"vendor {v['vendor_id']} (unknown vendor id)"
    return (f"{who}: {v['subjects']} subject(s), {v['shares']} share(s), {len(v['runs'])} run(s); categories: "
            f"{', '.join(v['categories']) or '-'}; oldest {v['oldest']:%Y-%m-%d %H:%M} UTC")


def cmd_mark_notices_sent(args) -> int:
    from include.erasure.notices import NoticeError, mark_sent

    done = _as_a_person(args, lambda conn, by: mark_sent(conn, args.vendor, args.run, by=by, listed=args.listed),
                        NoticeError)
    of_run = f" of run {unechoed(args.run)!r}" if args.run else ""
    if not done.notices:
        print(f"nothing marked: vendor {args.vendor} has no outstanding deletion notice{of_run} (all were marked "
              "sent already)")
        return EXIT_OK
    print(f"marked {done.notices} deletion notice(s) to vendor {args.vendor} sent ({done.subjects} subject(s); "
          f"run(s) {', '.join(done.run_ids)}); recorded in the audit log")
    return EXIT_OK


def with_url(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", metavar="URL", type=_given,
                        help="libpq URL of the database (default: $PRIVACY_PG_URL, else the local server)")
    return parser


def _command(sub, name: str, func: Callable[[argparse.Namespace], int], *, help: str,
             description: str) -> argparse.ArgumentParser:
    """A product command: its parser, with ``--url``, which runs ``func``; the caller adds its own arguments."""
    parser = with_url(sub.add_parser(name, help=help, description=description))
    parser.set_defaults(func=func)
    return parser


def add_product_commands(sub) -> None:
    _command(sub, "migrate-store", cmd_migrate_store,
             help="create or migrate the compliance store (schema compliance)",
             description="Create schema compliance or apply the migrations it lacks.")

    p = _command(sub, "verify-audit", cmd_verify_audit,
                 help="verify the audit log's hash chain and its anchors (exit 1 if broken)",
                 description="Recompute every row's hash of compliance.audit_log, then check the chain against the "
                             "anchors the runs wrote outside the database, which reveals removed newest rows and a "
                             "recomputed chain.")
    p.add_argument("--anchors", metavar="LOCATION", type=_given,
                   help=f"where the runs anchor the chain: gs://BUCKET[/PREFIX] (connection google_cloud_default, "
                        f"e.g. from $AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT) or file:///FOLDER (default: "
                        f"${EVIDENCE_ENV}; without either only the chain is checked)")

    p = _command(sub, "check-datamap", cmd_check_datamap, help="check the data map against a live database",
                 description="Check every table and column the data map names.")
    p.add_argument("--datamap", metavar="FILE", type=_given,
                   help="data map file (default: $PRIVACY_DATAMAP, else the packaged include/datamap.yaml)")
    p.add_argument("--details", action="store_true", help="list every problem, not only the summary")

    p = _command(sub, "whatif", cmd_whatif, help="list what-if deadline runs, or show one run's results",
                 description="What-if evaluations (dsr_deadline_tracking with another as_of).")
    p.add_argument("--run-id", metavar="RUN_ID", type=_given, help="show this run's evaluations (default: list the runs)")
    p.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most this many lines (default: 50)")

    p = _command(sub, "right-to-know", cmd_right_to_know,
                 help="CCPA right to know: the categories of one user's data shared, and with which vendors",
                 description="List the categories of one user's personal data shared with vendors over a period, "
                             "and the vendors (from data_shares through the data map; the same data as the vendor "
                             "manifests).")
    p.add_argument("--user-id", type=_positive, required=True, metavar="N", help="the user's internal id")
    p.add_argument("--since", type=_day, metavar="DATE",
                   help="first day, YYYY-MM-DD in UTC (default: 12 months before --until)")
    p.add_argument("--until", type=_day, metavar="DATE", help="last day, included, YYYY-MM-DD in UTC (default: today)")

    p = _command(sub, "discover", cmd_discover,
                 help="find personal data the data map does not name (prints; stores nothing)",
                 description="Sample every table of the database (and of the other stores the data map names, from "
                             "$PRIVACY_STORE_URL_<CONNECTION>), classify each column by its values and print what "
                             "the data map misses: names, kinds, confidences and counts, never a value.")
    p.add_argument("--format", choices=("table", "yaml"), default="table",
                   help="table: the findings; yaml: the suggested data-map entries (default: table)")
    p.add_argument("--sample-rows", type=_positive, default=1000, metavar="N",
                   help="rows sampled per table at most (default: 1000)")
    p.add_argument("--table", action="append", metavar="NAME", help="only this table (repeatable)")
    p.add_argument("--datamap", metavar="FILE", type=_given,
                   help="data map file (default: $PRIVACY_DATAMAP, else the packaged one)")

    p = _command(sub, "findings", cmd_findings, help="list the open personal-data discovery findings and their age",
                 description="The open findings of personal_data_discovery, oldest first.")
    p.add_argument("--limit", type=_positive, default=100, metavar="N", help="at most this many (default: 100)")

    p = _command(sub, "dismiss-finding", cmd_dismiss_finding,
                 help="dismiss a discovery finding with a reason (audit-logged; later runs keep it)",
                 description="Record that a finding is not a subject's personal data (or is handled elsewhere).")
    p.add_argument("--id", type=_positive, required=True, metavar="N", help="the finding's id (privacy-ops findings)")
    p.add_argument("--reason", required=True, type=_words(500), help="why it is dismissed (at most 500 characters)")
    p.add_argument("--by", required=True, metavar="NAME", type=_words(100, one_line=True), help="who dismisses it (at most 100 "
                   "characters)")

    p = _command(sub, "deletion-notices", cmd_deletion_notices,
                 help="list the deletion notices owed to vendors (erased subjects' data they received)",
                 description="The downstream deletion notices still outstanding (GDPR Art. 17(2), Art. 19), per "
                             "vendor: subjects, shares, categories, the oldest and the runs that recorded them; "
                             "with --vendor, that vendor's notices per run. Reads only.")
    p.add_argument("--vendor", type=_positive, metavar="N", help="only this vendor id, its notices per run")

    p = _command(sub, "mark-notices-sent", cmd_mark_notices_sent,
                 help="record that a vendor was sent its deletion notices (audit-logged)",
                 description="Mark a vendor's outstanding deletion notices (of one run, or all) sent now, in one "
                             "transaction with one audit log entry, only if they are still those listed (--listed); "
                             "a second call marks nothing and says so.")
    p.add_argument("--vendor", type=_positive, required=True, metavar="N", help="the vendor's id "
                   "(privacy-ops deletion-notices)")
    p.add_argument("--run", metavar="RUN_ID", type=_given, help="only the notices this run recorded (default: all)")
    p.add_argument("--listed", required=True, metavar="CODE", type=_listing_code,
                   help="the listing code privacy-ops deletion-notices --vendor N printed for what the vendor was "
                        "told (the vendor's, or with --run that run's): nothing is marked if the notices owed "
                        "changed since")
    p.add_argument("--by", required=True, metavar="NAME", type=_words(100, one_line=True), help="who sent them (at most 100 "
                   "characters)")


# -- assembling the parser --------------------------------------------------------------------------

Registrar = Callable[[object], None]


def _plugin_registrars() -> list[Registrar]:
    """Commands added by installed kits (``privacy_ops.commands`` entry points), e.g. the dev kit."""
    found = []
    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            found.append(ep.load())
        except ImportError:
            # The kit's entry point is declared but its package is not installed (the Airflow image).
            log.debug("command kit %s is not installed", ep.name)
    return found


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # No prefixes: '--user' was taken as '--user-id' (or the demo's '--users'); a typo is said, never guessed.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one sentence, exit 2, no usage dump
        # argparse quotes what was typed ('unrecognized arguments: --url postgresql://u:pw@...', "invalid int value:
        # 'jane@example.com'"): no password or address is repeated.
        self.exit(EXIT_USAGE, f"{self.prog}: {bounded(unechoed(message))} (see {self.prog} --help)\n")


def build_parser(registrars: Sequence[Registrar] | None = None) -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser = _Parser(prog="privacy-ops", description="Privacy-compliance automation on Airflow 3",
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    add_product_commands(sub)
    for register in (_plugin_registrars() if registrars is None else registrars):
        register(sub)
    parser.commands = sub.choices
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line. An option the command does not take is refused first, by name and by that command's
    parser (so the sentence points at its own --help): argparse said only that a required option was missing when
    it was misspelt ('--userid'), and its top-level parser named `privacy-ops --help`."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    command = parser.commands.get(words[0]) if words else None
    if command is not None:
        unknown = [w.split("=", 1)[0] for w in words[1:] if w.startswith("-") and w != "-"
                   and not re.match(r"-\d", w) and w.split("=", 1)[0] not in command._option_string_actions]
        if unknown:
            command.error(f"unrecognized arguments: {' '.join(unknown)}")
    args, extra = parser.parse_known_args(words)
    if extra:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    import psycopg

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse(argv)

    def unsecret(text: str) -> str:  # without the command's URL or its password, and no word past a line's length
        url = database_url(args) if hasattr(args, "url") else getattr(args, "pg_url", None) or ""
        return bounded(pg_url.scrub(text, url))

    def said(exc: BaseException) -> str:  # the driver's first line, without the command's URL or its password
        return unsecret(_first_line(exc))

    try:
        return args.func(args)
    except CommandFailed as exc:
        print(f"privacy-ops {args.command}: {bounded(str(exc))}", file=sys.stderr)
        return exc.code
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        # Lost, or said by its kind (out of resources, a statement canceled, over one of the database's limits).
        failure = database_trouble(exc, "the database", f"lost the database: {_first_line(exc)}")
        print(f"privacy-ops {args.command}: {unsecret(str(failure))}", file=sys.stderr)
        return EXIT_OVER_LIMIT if isinstance(failure, NeedsOperator) else EXIT_UNREACHABLE
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction) as exc:
        # A login without the rights the command needs, or a read-only server (a replica): set-up, not a bug.
        print(f"privacy-ops {args.command}: the database refused: {said(exc)} (the login needs the rights this "
              "command uses, on a server that accepts writes where it writes)", file=sys.stderr)
        return EXIT_UNREACHABLE
    except PrivacyOpsError as exc:  # the product's own one-sentence failures (an edited migration, a setting)
        print(f"privacy-ops {args.command}: {bounded(_first_line(exc))}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print(f"privacy-ops {args.command}: {EXIT_CODES[EXIT_INTERRUPTED]}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
