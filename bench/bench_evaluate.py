"""Benchmark: evaluate N open privacy requests, end to end (read, evaluate, record, audit).

    .venv/bin/python bench/bench_evaluate.py --requests 200000

Creates its own database (dropped afterwards) on $PRIVACY_BENCH_PG_URL (default: the local server),
loads N open requests of every regime and type with COPY, then times ``tracking.evaluate_requests`` —
the whole body of the DAG's evaluate task — twice: the first run writes every row, the second finds
nothing changed. Appends a JSON line to bench/results/evaluate.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from include import compliance_store
from devkit import database
from include.audit import RunContext
from include.config import Settings
from include.datamap import load_datamap
from include.dsr import tracking
from devkit.operational_schema import create_reference_schema

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate.jsonl"
TYPES = [("gdpr", t) for t in ("access", "rectification", "erasure", "restriction", "objection", "portability")] + \
        [("ccpa", t) for t in ("know", "delete", "opt_out_of_sale")]


def load_requests(conn, n: int, as_of: date, rng: random.Random) -> None:
    base = datetime(as_of.year, as_of.month, as_of.day, tzinfo=timezone.utc)
    with conn.cursor().copy(
            "copy privacy_requests (id, user_id, requester_email, regime, request_type, received_at, "
            "acknowledged_at, identity_requested_at, identity_verified_at, extended_at, status, assignee_email) "
            "from stdin") as copy:
        for i in range(1, n + 1):
            regime, rtype = TYPES[i % len(TYPES)]
            received = base - timedelta(days=rng.randint(0, 80), hours=rng.randint(0, 23))
            acked = received + timedelta(days=rng.randint(0, 15)) if rng.random() < 0.7 else None
            id_req = received + timedelta(days=1) if regime == "gdpr" and rng.random() < 0.2 else None
            id_ver = id_req + timedelta(days=rng.randint(1, 10)) if id_req and rng.random() < 0.7 else None
            extended = received + timedelta(days=rng.randint(5, 50)) if rng.random() < 0.05 else None
            copy.write_row((i, i, f"bench{i}@example.com", regime, rtype, received, acked, id_req, id_ver, extended,
                            rng.choice(("received", "verifying", "in_progress")),
                            f"agent{i % 25}@example.com" if i % 3 else None))
    conn.execute("analyze privacy_requests")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    name = "privacy_bench_evaluate"
    url = database.create_database(server, name, replace=True)
    as_of = date(2026, 11, 25)
    try:
        with database.connect(url, autocommit=True) as ops, database.connect(url, autocommit=True) as store:
            create_reference_schema(ops)
            compliance_store.migrate(store)
            t0 = time.perf_counter()
            load_requests(ops, args.requests, as_of, random.Random(args.seed))
            load_s = time.perf_counter() - t0
            dm, settings = load_datamap(), Settings()
            timings = []
            for run in ("first", "repeat"):
                ctx = RunContext(run_id=f"bench-{run}", actor="bench")
                t0 = time.perf_counter()
                summary = tracking.evaluate_requests(ops, store, dm, settings, ctx, as_of=as_of)
                timings.append((run, time.perf_counter() - t0, summary["evaluated"], summary["changed"]))
    finally:
        database.drop_database(server, name)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for run, seconds, evaluated, changed in timings:
        print(f"{run:7} run: {evaluated:>8,} requests evaluated, {changed:>8,} changed in {seconds:6.2f} s "
              f"({evaluated / seconds:,.0f}/s)")
    print(f"loading the requests took {load_s:.1f} s; peak RSS {peak_mb:.0f} MB")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "requests": args.requests, "first_s": round(timings[0][1], 2),
                             "repeat_s": round(timings[1][1], 2), "peak_rss_mb": round(peak_mb),
                             "cpus": os.cpu_count()}) + "\n")


if __name__ == "__main__":
    main()
