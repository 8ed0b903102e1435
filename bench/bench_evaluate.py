"""Benchmark: evaluate N open privacy requests, end to end (read, evaluate, record, audit), against its floor.

    ./dev python bench/bench_evaluate.py --requests 200000
    ./dev python bench/bench_evaluate.py --requests 1000000

Creates its own database (dropped afterwards) on $PRIVACY_BENCH_PG_URL (default: the local server) and
loads N open requests of every regime and type. Then, in the same run on the same server:

- the floor: the same N rows copied out of PostgreSQL to the client (``COPY … TO STDOUT``) and the same
  bytes copied back into a table of the same shape with a primary key and three secondary indexes, as
  the status table has (``COPY … FROM STDIN``): what moving the rows costs; and the bare floor, the same
  with a primary key only (reported beside it, the strictest comparison);
- the first run of ``tracking.evaluate_requests`` (the whole body of the DAG's evaluate task), which
  writes every row; and a repeat run in which nothing changed.

Prints the times and the ratios (first / floor: target at most 3; repeat / first: target at most 0.5)
and the peak RSS of the process, and appends a JSON line to bench/results/evaluate.jsonl.
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

from devkit import database
from devkit.operational_schema import create_reference_schema
from include import compliance_store
from include.audit import RunContext
from include.config import Settings
from include.datamap import load_datamap
from include.deadlines import tracking
from include.deadlines.params import DsrParams

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


def copy_round_trip(conn, *, indexed: bool) -> float:
    """A floor: every request row out to the client and the same bytes back in, with COPY.

    "Back in" goes to a regular table with a primary key and, when ``indexed``, three secondary indexes of
    the same widths as ``compliance.dsr_status``'s: the status table's writes pay for those indexes and
    the evaluation cannot skip them, so that floor is the like-for-like one; the bare one (primary key
    only) is the strictest.
    """
    conn.execute("drop table if exists requests_again")
    conn.execute("create table requests_again (like privacy_requests including defaults, primary key (id))")
    if indexed:
        conn.execute("create index on requests_again (status, received_at, id)")
        conn.execute("create index on requests_again (request_type, received_at, id)")
        conn.execute("create index on requests_again (regime, request_type, status, received_at, id)")
    t0 = time.perf_counter()
    with conn.cursor().copy("copy privacy_requests to stdout") as copy:
        data = b"".join(bytes(block) for block in copy)
    with conn.transaction():
        with conn.cursor().copy("copy requests_again from stdin") as copy:
            copy.write(data)
    seconds = time.perf_counter() - t0
    conn.execute("drop table requests_again")
    return seconds


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
            copy_round_trip(ops, indexed=False)  # warm the table into the cache, as the runs below find it
            bare_s = copy_round_trip(ops, indexed=False)
            floor_s = copy_round_trip(ops, indexed=True)
            dm, settings = load_datamap(), Settings()
            timings = {}
            for run in ("first", "repeat"):
                ctx = RunContext(run_id=f"bench-{run}", actor="bench")
                t0 = time.perf_counter()
                summary = tracking.evaluate_requests(ops, store, dm, settings, ctx, DsrParams(as_of, what_if=False))
                timings[run] = (time.perf_counter() - t0, summary["evaluated"], summary["changed"])
    finally:
        database.drop_database(server, name)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first_s, repeat_s = timings["first"][0], timings["repeat"][0]
    print(f"floor   : {args.requests:>9,} rows COPY out and back in, indexed like dsr_status  {floor_s:6.2f} s")
    print(f"bare    : {args.requests:>9,} rows COPY out and back in, primary key only     {bare_s:6.2f} s")
    for run, (seconds, evaluated, changed) in timings.items():
        print(f"{run:8}: {evaluated:>9,} evaluated, {changed:>9,} changed  {seconds:6.2f} s "
              f"({evaluated / seconds:,.0f}/s)")
    print(f"ratios  : first / floor {first_s / floor_s:.2f} (target <= 3; first / bare {first_s / bare_s:.2f}); "
          f"repeat / first {repeat_s / first_s:.2f} (target <= 0.5)")
    print(f"loading the requests took {load_s:.1f} s; peak RSS of the process {peak_mb:.0f} MB")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "requests": args.requests, "floor_s": round(floor_s, 2), "bare_floor_s": round(bare_s, 2),
                             "first_s": round(first_s, 2), "first_over_bare": round(first_s / bare_s, 2),
                             "repeat_s": round(repeat_s, 2), "first_over_floor": round(first_s / floor_s, 2),
                             "repeat_over_first": round(repeat_s / first_s, 2), "peak_rss_mb": round(peak_mb),
                             "cpus": os.cpu_count(),
                             "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)}) + "\n")


if __name__ == "__main__":
    main()
