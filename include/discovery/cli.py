"""``privacy-ops discover``, ``findings`` and ``dismiss-finding``: personal-data discovery from the command line.

``discover`` runs the DAG's classification on a database (``--url``; other stores the map names from
``$PRIVACY_STORE_URL_<CONNECTION>``, as ``check-datamap`` does) and prints the findings as a table, or with
``--format yaml`` the suggested data-map entries; it stores nothing. ``findings`` lists the stored open findings
with their age; ``dismiss-finding`` records a person's dismissal, with a reason, in the store and the audit log.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone


def cmd_discover(args) -> int:
    from include.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, CommandFailed, connect, open_database
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
            url = os.environ.get(store_env(connection))
            if not url:
                skipped.append(connection)
                continue
            opened = connect(url, f"${store_env(connection)}")
        with opened as conn:
            conn.execute("set time zone 'UTC'")
            reports.append(findings.scan_connection(conn, dm, connection, rows=args.sample_rows, today=today,
                                                    tables=tuple(args.table or ())))
    every = [f for r in reports for f in r.findings]
    if args.format == "yaml":
        print_yaml(every)
    else:
        print_table(every)
    tables = sum(r.tables for r in reports)
    columns = sum(r.columns for r in reports)
    note = (f"; not scanned: {', '.join(skipped)} (set " + ", ".join(f"${store_env(c)}" for c in skipped) + ")"
            if skipped else "")
    comment = "# " if args.format == "yaml" else ""  # the YAML stays pastable whole
    print(f"{comment}{len(every)} finding(s) in {tables} table(s), {columns} column(s) sampled at most "
          f"{args.sample_rows} row(s) each{note}")
    for r in reports:
        for problem in r.problems:
            print(f"{comment}  skipped: {problem}")
    return EXIT_OK


def print_table(every) -> None:
    if not every:
        return
    print(f"{'connection':14} {'column':40} {'finding':20} {'kind':18} {'conf':>5} {'matched':>12}")
    for f in sorted(every, key=lambda f: (f.connection, f.schema, f.table, f.column or "")):
        print(f"{f.connection[:14]:14} {f.where[:40]:40} {f.finding:20} {(f.kind or '-'):18} {f.confidence:5.2f} "
              f"{f'{f.matched}/{f.sampled}':>12}")


def print_yaml(every) -> None:
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


def store_env(connection: str) -> str:
    return f"PRIVACY_STORE_URL_{connection.upper().replace('-', '_')}"


def cmd_findings(args) -> int:
    from include.cli import EXIT_OK, database_url, open_database, require_store
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


def cmd_dismiss(args) -> int:
    from include.cli import EXIT_CHECK_FAILED, EXIT_OK, CommandFailed, database_url, open_database, require_store
    from include.discovery.findings import FindingError, dismiss

    url = database_url(args)
    with open_database(args) as conn:
        require_store(conn, url)
        try:
            done = dismiss(conn, args.id, args.reason, by=f"person:{args.by}")
        except FindingError as exc:
            raise CommandFailed(str(exc), EXIT_CHECK_FAILED) from None
    table = done["table_name"] if done["schema_name"] == "public" else f"{done['schema_name']}.{done['table_name']}"
    print(f"finding {done['finding_id']} ({done['connection_id']} {table}.{done['column_name'] or '*'}, "
          f"{done['finding']}) dismissed; recorded in the audit log, later runs keep it dismissed")
    return EXIT_OK


def add_commands(sub) -> None:
    from include.cli import _positive, with_url

    p = with_url(sub.add_parser(
        "discover", help="find personal data the data map does not name (prints; stores nothing)",
        description="Sample every table of the database (and of the other stores the data map names, from "
                    "$PRIVACY_STORE_URL_<CONNECTION>), classify each column by its values and print what the data "
                    "map misses: names, kinds, confidences and counts, never a value."))
    p.add_argument("--format", choices=("table", "yaml"), default="table",
                   help="table: the findings; yaml: the suggested data-map entries (default: table)")
    p.add_argument("--sample-rows", type=_positive, default=1000, metavar="N",
                   help="rows sampled per table at most (default: 1000)")
    p.add_argument("--table", action="append", metavar="NAME", help="only this table (repeatable)")
    p.add_argument("--datamap", metavar="FILE", help="data map file (default: $PRIVACY_DATAMAP, else the packaged one)")
    p.set_defaults(func=cmd_discover)

    p = with_url(sub.add_parser("findings", help="list the open personal-data discovery findings and their age",
                                description="The open findings of personal_data_discovery, oldest first."))
    p.add_argument("--limit", type=_positive, default=100, metavar="N", help="at most this many (default: 100)")
    p.set_defaults(func=cmd_findings)

    p = with_url(sub.add_parser(
        "dismiss-finding", help="dismiss a discovery finding with a reason (audit-logged; later runs keep it)",
        description="Record that a finding is not a subject's personal data (or is handled elsewhere)."))
    p.add_argument("--id", type=_positive, required=True, metavar="N", help="the finding's id (privacy-ops findings)")
    p.add_argument("--reason", required=True, help="why it is dismissed (at most 500 characters)")
    p.add_argument("--by", required=True, metavar="NAME", help="who dismisses it")
    p.set_defaults(func=cmd_dismiss)
