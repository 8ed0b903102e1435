"""Benchmark: seed the reference operational schema with N users and their related rows.

    .venv/bin/python bench/bench_seed.py --users 1000000

Creates (and afterwards drops) the database ``privacy_bench_seed`` on the server of
``PRIVACY_BENCH_PG_URL`` (default: the local PostgreSQL), prints rows per table, total rows, wall time
and peak RSS of this process, and appends one JSON line to ``bench/results/seed.jsonl``.
The target is a million users in under 180 s on a 2-core machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from devkit import database
from devkit.seed import demo_data

BENCH_DB = "privacy_bench_seed"
RESULTS = Path(__file__).resolve().parent / "results" / "seed.jsonl"
TARGET_SECONDS = 180.0


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--anchor", type=dt.date.fromisoformat, default=dt.date(2026, 11, 25))
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args(argv)

    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    url = database.create_database(server, BENCH_DB, replace=True)
    try:
        started = time.perf_counter()
        summary = demo_data.seed(url, users=args.users, seed=args.seed, anchor=args.anchor,
                                 requests=args.requests)
        seconds = time.perf_counter() - started
    finally:
        if not args.keep:
            database.drop_database(server, BENCH_DB)

    # ru_maxrss is in KiB on Linux
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    width = max(map(len, summary["rows"]))
    for table, count in summary["rows"].items():
        print(f"{table:<{width}}  {count:>12,}")
    print(f"{'total':<{width}}  {summary['total_rows']:>12,}")
    print(f"users {args.users:,}: {seconds:.1f} s wall ({summary['total_rows'] / seconds:,.0f} rows/s), "
          f"peak RSS {peak_rss_mb:,.0f} MiB")
    print("phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["timings"].items()
                                  if k in ("load", "indexes", "analyze", "csv_render")))
    verdict = "OK" if seconds < TARGET_SECONDS else "OVER TARGET"
    print(f"target < {TARGET_SECONDS:.0f} s: {verdict}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "bench": "seed",
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "users": args.users,
        "seed": args.seed,
        "anchor": args.anchor.isoformat(),
        "rows": summary["rows"],
        "total_rows": summary["total_rows"],
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "timings": summary["timings"],
    }
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
    return 0 if seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
