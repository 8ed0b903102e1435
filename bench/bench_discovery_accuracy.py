"""Benchmark: how much personal data discovery finds, and how much of what it finds is right, on a labelled schema
the classifier was not written against (bench/labelled_schema.py).

    .venv/bin/python bench/bench_discovery_accuracy.py [--set main|holdout|holdout2] [--seed 20261206] [--sample-rows 1000]
                                                       [--note TEXT] [--no-record]

Makes a database ``privacy_bench_discovery_accuracy`` on ``PRIVACY_BENCH_PG_URL`` (default the local PostgreSQL;
created and dropped through the dev kit, so it is marked as the kit's), seeds the labelled tables into it (their own
schemas, so the shipped data map names none of their columns: every column is "unmapped"), runs
``findings.scan_connection`` as the DAG's scan task and ``privacy-ops discover`` do, and compares its ``unmapped``
findings with the labels:

- recall: personal columns found (as any personal kind) ÷ personal columns;
- precision: findings on truly personal columns ÷ findings;
- kind accuracy: findings of the labelled kind ÷ findings on personal columns.

The targets (issue figures): recall ≥ 0.95, precision ≥ 0.9. Prints the misses, the false positives and the wrong
kinds by column name (never a value) and appends one JSON line to ``bench/results/discovery_accuracy.jsonl``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import labelled_schema as ls  # noqa: E402
from devkit import database  # noqa: E402
from include.datamap import load_datamap  # noqa: E402
from include.discovery import findings  # noqa: E402

BENCH_DB = "privacy_bench_discovery_accuracy"
RESULTS = Path(__file__).resolve().parent / "results" / "discovery_accuracy.jsonl"


def measure(found: dict[tuple[str, str, str], str], truth: dict[tuple[str, str, str], str]) -> dict:
    personal = {k for k, v in truth.items() if v != ls.NONE}
    hits = personal & set(found)
    right = {k for k in hits if found[k] == truth[k]}
    return {"columns": len(truth), "personal": len(personal), "findings": len(found), "found": len(hits),
            "false_positives": len(set(found) - personal), "right_kind": len(right),
            "recall": round(len(hits) / len(personal), 4) if personal else 1.0,
            "precision": round(len(hits) / len(found), 4) if found else 1.0,
            "kind_accuracy": round(len(right) / len(hits), 4) if hits else 1.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=ls.SEED)
    parser.add_argument("--set", choices=("main", "holdout", "holdout2"), default="main",
                        help="holdout: written after the first fixes; holdout2: after every fix (never tuned on)")
    parser.add_argument("--sample-rows", type=int, default=1000)
    parser.add_argument("--note", default="", help="what this run measures (recorded with the figures)")
    parser.add_argument("--no-record", action="store_true", help="print only; append no line to the results")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tables = {"main": ls.build, "holdout": ls.build_holdout, "holdout2": ls.build_holdout2}[args.set](args.seed)
    truth = ls.labels(tables)
    reasons = ls.why(tables)
    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    url = database.create_database(server, BENCH_DB, replace=True)
    try:
        with database.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            written = ls.seed_into(conn, tables, args.seed)
            built = time.perf_counter() - t0
            conn.execute("set time zone 'UTC'")
            t0 = time.perf_counter()
            report = findings.scan_connection(conn, load_datamap(), "ops_db", rows=args.sample_rows, today=ls.TODAY)
            scan_s = time.perf_counter() - t0
    finally:
        if not args.keep:
            database.drop_database(server, BENCH_DB)
    schemas = {t.schema for t in tables}
    found = {(f.schema, f.table, f.column): f.kind for f in report.findings
             if f.finding == findings.UNMAPPED and f.schema in schemas}
    confidence = {(f.schema, f.table, f.column): f.confidence for f in report.findings}
    figures = measure(found, truth)
    by_label = Counter(v for v in truth.values())
    print(f"labelled schema {args.set} (seed {args.seed}): {len(tables)} tables, {len(truth)} columns, {written:,} rows "
          f"(built in {built:.1f} s); scanned in {scan_s:.1f} s; problems: {len(report.problems)}")
    print("labels: " + ", ".join(f"{k} {n}" for k, n in sorted(by_label.items())))

    def name(key):
        return ".".join(key)

    misses = sorted(k for k, v in truth.items() if v != ls.NONE and k not in found)
    false = sorted(k for k in found if truth.get(k, ls.NONE) == ls.NONE)
    wrong = sorted(k for k in found if truth.get(k, ls.NONE) not in (ls.NONE, found[k]))
    print(f"\nmissed personal columns ({len(misses)}):")
    for k in misses:
        print(f"  {name(k):48} {truth[k]:18} {reasons[k]}")
    print(f"\nfalse positives ({len(false)}):")
    for k in false:
        print(f"  {name(k):48} found {found[k]:18} conf {confidence[k]:.2f}  {reasons[k]}")
    print(f"\nwrong kind ({len(wrong)}):")
    for k in wrong:
        print(f"  {name(k):48} {truth[k]:18} found {found[k]}")
    print(f"\nrecall {figures['recall']:.3f} ({figures['found']}/{figures['personal']}; target >= 0.95)   "
          f"precision {figures['precision']:.3f} ({figures['found']}/{figures['findings']}; target >= 0.9)   "
          f"kind accuracy {figures['kind_accuracy']:.3f} ({figures['right_kind']}/{figures['found']})")
    if not args.no_record:
        line = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
                "machine": platform.machine(), "set": args.set, "seed": args.seed, "today": ls.TODAY.isoformat(),
                "tables": len(tables), "sample_rows": args.sample_rows, **figures, "scan_s": round(scan_s, 2),
                "misses": [name(k) for k in misses], "false_positive_columns": [name(k) for k in false],
                "wrong_kind": [name(k) for k in wrong], "note": args.note}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    ok = figures["recall"] >= 0.95 and figures["precision"] >= 0.9
    print("targets met" if ok else "a target is NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
