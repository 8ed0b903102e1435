"""Benchmark: erasure and export across SPEC §3.1's stores (issue 28), each against a bare floor measured in the
same run.

    .venv/bin/python bench/bench_stores.py                                   # the defaults below
    .venv/bin/python bench/bench_stores.py --subjects 1000 --analytics-rows 50000000 --export-mib 2048   # the issue's

Seeds an operational database (``devkit.seed.demo_data.seed``), the support desk and analytics beside it
(``devkit.seed.stores``), grows analytics to ``--analytics-rows`` rows of ``daily_usage`` (the rate is printed:
the issue's 50 M rows take that long to load here), and starts the GCS emulator in this process. Then:

- **erasure**: ``--subjects`` accounts, each with uploads whose files are in the emulator (``--files`` in all),
  tickets by address with events, and analytics rows, erased through the engine
  (``include.erasure.erase_subject`` with the other stores and the Google provider's client: claim, holds,
  files found and recorded, one transaction per store with its residual, each file deleted and looked up again,
  the operational rows, the account last, residual zero) — against a **floor**: as many other such accounts
  whose same rows are deleted by the same statements issued bare (one transaction per store and subject, no
  residual, no records) and whose files are deleted by one bare ``Blob.delete`` each;
- **export**: one subject with ``--export-mib`` MiB of files, its package built (``include.fulfilment.package.build``,
  files downloaded a block at a time and streamed into the zip) in a child process whose peak RSS is read —
  against a **floor**: a bare download of the same objects (``Blob.download_to_file`` into a file).

Prints each time, floor and ratio and appends one JSON line to bench/results/stores.jsonl.
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
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit import database  # noqa: E402
from devkit.seed import demo_data  # noqa: E402
from devkit.seed.stores import seed_stores  # noqa: E402

RESULTS = REPO / "bench" / "results" / "stores.jsonl"
ANCHOR = dt.date(2026, 11, 25)
KEY = b"bench-subject-key-0123456789abcdef"
BASE = 5_000_000  # planted accounts' ids start here


def machine() -> dict:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "ram_gib": round(ram, 1), "python": platform.python_version()}


def plant(conns, buckets, ids: list[int], files_each: int) -> None:
    """Accounts with uploads (files in the emulator), two tickets by address with three events, analytics rows."""
    ops, support, analytics = conns["ops_db"], conns["support_db"], conns["analytics_db"]
    with ops.cursor() as cur, cur.copy("copy users (id, email, full_name, created_at) from stdin") as copy:
        for uid in ids:
            copy.write_row((uid, f"bench{uid}@example.org", f"Bench {uid}", "2025-01-01T00:00:00Z"))
    with ops.cursor() as cur, cur.copy("copy uploads (id, user_id, filename, source, storage_uri, size_bytes, "
                                       "created_at) from stdin") as copy:
        for uid in ids:
            for n in range(files_each):
                copy.write_row((uid * 100 + n, uid, "f.bin", "upload", f"gs://acme-uploads/bench/{uid}/{n}", 16,
                                "2025-01-01T00:00:00Z"))
    with support.cursor() as cur, cur.copy("copy tickets (id, requester_email, subject, body, created_at) "
                                           "from stdin") as copy:
        for uid in ids:
            for n in range(2):
                copy.write_row((uid * 10 + n, f" BENCH{uid}@example.org\t", "s", "b", "2025-01-01T00:00:00Z"))
    with support.cursor() as cur, cur.copy("copy ticket_events (id, ticket_id, note, created_at) from stdin") as copy:
        for uid in ids:
            for n in range(2):
                for e in range(3):
                    copy.write_row((uid * 100 + n * 10 + e, uid * 10 + n, "n", "2025-01-01T00:00:00Z"))
    with analytics.cursor() as cur, cur.copy("copy daily_usage from stdin") as copy:
        for uid in ids:
            for d in range(30):
                copy.write_row((uid, ANCHOR - dt.timedelta(days=d), "api", 1, 1))
    bucket = buckets.bucket("acme-uploads")
    for uid in ids:
        for n in range(files_each):
            bucket.put(f"bench/{uid}/{n}", b"0123456789abcdef")


def grow_analytics(conn, rows: int) -> float:
    """Fill daily_usage up to ``rows`` rows (accounts 1..rows/365, a year each); returns rows per second."""
    have = conn.execute("select count(*) from daily_usage").fetchone()[0]
    need = max(0, rows - have)
    started = time.perf_counter()
    if need:
        users = need // 365 + 1
        conn.execute("""insert into daily_usage
                        select 10000000 + u, date '2026-11-25' - d, 'bulk', 1, 1
                        from generate_series(1, %s) u, generate_series(0, 364) d limit %s""", (users, need))
        conn.execute("analyze daily_usage")
    return need / max(time.perf_counter() - started, 1e-9)


def floor_erase(conns, buckets, ids: list[int], files_each: int) -> float:
    """The same rows and files gone by the same statements, issued bare."""
    ops, support, analytics = conns["ops_db"], conns["support_db"], conns["analytics_db"]
    bucket = buckets.bucket("acme-uploads")
    from include.addresses import comparable_sql
    from psycopg import sql

    key = comparable_sql(sql.Identifier("requester_email"))
    events = sql.SQL("delete from ticket_events where ticket_id in (select id from tickets where {} = %s)").format(key)
    tickets = sql.SQL("delete from tickets where {} = %s").format(key)
    tables = ["uploads", "support_messages", "usage_events", "access_logs", "social_profiles", "data_shares",
              "legal_holds"]
    started = time.perf_counter()
    for uid in ids:
        address = f"bench{uid}@example.org"
        with support.transaction():
            support.execute(events, (address,))
            support.execute(tickets, (address,))
        with analytics.transaction():
            analytics.execute("delete from daily_usage where user_id = %s", (uid,))
        for n in range(files_each):
            bucket.delete(f"bench/{uid}/{n}")
        with ops.transaction():
            for table in tables:
                ops.execute(f"delete from {table} where user_id = %s", (uid,))
            ops.execute("delete from users where id = %s", (uid,))
    return time.perf_counter() - started


def erase_all(conns, store, buckets, dm, ids: list[int]) -> float:
    from include import erasure

    access = erasure.StoreAccess(connect=conns.__getitem__, buckets=buckets, allowed=frozenset(dm.buckets),
                                 progress=store)
    unmapped = erasure.discover_unmapped(conns["ops_db"], dm)
    now = dt.datetime.now(dt.timezone.utc)
    profile = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    started = time.perf_counter()
    for uid in ids:
        result = erasure.erase_subject(conns["ops_db"], dm, uid, KEY, at=now,
                                       options=erasure.EraseOptions(unmapped=unmapped, stores=access))
        assert result.outcome == erasure.PURGED, result.outcome
    took = time.perf_counter() - started
    if profile is not None:
        import pstats

        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return took


_EXPORT = """
import json, resource, sys, time
from datetime import date, timezone
from devkit.database import connect
from include.datamap import load_datamap
from include.fulfilment import package
from include.seam.storage import GCSBuckets
from include.fulfilment.right_to_know import SharedWith, last_twelve_months
urls, uid, path = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns = {c: connect(u, autocommit=True) for c, u in urls.items()}
dm = load_datamap()
who = package.subject(conns["ops_db"], dm, uid)
shared = SharedWith(uid, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ())
buckets = GCSBuckets()
buckets.bucket("acme-uploads").exists("warm-up")  # the Google provider's imports and client, as a task has them
import tracemalloc
before = int([l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1])
tracemalloc.start()
import cProfile, os as _os
prof = cProfile.Profile() if _os.environ.get("BENCH_PROFILE") else None
prof and prof.enable()
started = time.perf_counter()
built = package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm,
                      package.About(1, "access", "gdpr", date(2026, 11, 25)), who, shared, path)
if prof:
    import pstats
    prof.disable()
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(12)
def hwm():  # this process's own peak RSS (ru_maxrss keeps the parent's across exec), in KiB
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
print(json.dumps({"seconds": time.perf_counter() - started, "rss_before_mib": before / 1024,
                  "own_peak_rss_mib": hwm() / 1024,
                  "python_heap_peak_mib": tracemalloc.get_traced_memory()[1] / 2**20, "bytes": built.bytes,
                  "files": len(built.stored_files), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def export_bench(urls: dict, conns, buckets, mib: int) -> dict:
    uid = BASE - 1
    ops = conns["ops_db"]
    ops.execute("insert into users (id, email, full_name, created_at) values (%s, 'export@example.org', 'E', now())",
                (uid,))
    size, count = 64 * 2**20, max(1, mib // 64)
    block = os.urandom(2**20)
    bucket = buckets.bucket("acme-uploads")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.bin"
        with source.open("wb") as fh:
            for _ in range(size // len(block)):
                fh.write(block)
        for n in range(count):
            ops.execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at)
                           values (%s, %s, 'big.bin', 'upload', %s, %s, now())""",
                        (uid * 100 + n, uid, f"gs://acme-uploads/export/{n}", size))
            bucket.put_file(f"export/{n}", source)
        started = time.perf_counter()
        for n in range(count):
            with open(Path(tmp) / "floor.bin", "wb") as out:
                bucket.download_to(f"export/{n}", out)
        floor = time.perf_counter() - started
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-c", _EXPORT, json.dumps(urls), str(uid), str(Path(tmp) / "p.zip")],
                             env=env, capture_output=True, text=True, check=True)
        if os.environ.get("BENCH_PROFILE"):
            print(out.stderr[-6000:], file=sys.stderr)
        measured = json.loads(out.stdout.strip().splitlines()[-1])
    return {"mib": count * 64, "files": count, "seconds": round(measured["seconds"], 2),
            "floor_seconds": round(floor, 2), "speed_vs_floor": round(floor / measured["seconds"], 2),
            "peak_rss_mib": round(measured["own_peak_rss_mib"], 1),
            "rss_before_export_mib": round(measured["rss_before_mib"], 1),
            "python_heap_peak_mib": round(measured["python_heap_peak_mib"], 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="seeded accounts (default 20,000)")
    parser.add_argument("--subjects", type=int, default=200, help="subjects erased (and as many for the floor)")
    parser.add_argument("--files", type=int, default=2_000, help="files of the erased subjects in all")
    parser.add_argument("--analytics-rows", type=int, default=5_000_000, help="rows of daily_usage (default 5 M)")
    parser.add_argument("--export-mib", type=int, default=512, help="MiB of files of the exported subject")
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "bench"}}))
    from devkit.standins.gcs_emulator import GCSEmulator
    from include import compliance_store
    from include.datamap import load_datamap
    from include.seam.storage import GCSBuckets

    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    suffix = uuid.uuid4().hex[:6]
    names = {c: f"privacy_bench_{c}_{suffix}" for c in ("ops_db", "support_db", "analytics_db")}
    urls = {c: database.create_database(server, n) for c, n in names.items()}
    import logging

    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    try:
        demo_data.seed(urls["ops_db"], users=args.users, seed=7, anchor=ANCHOR)
        seed_stores(urls["ops_db"], urls["support_db"], urls["analytics_db"], seed=7)
        with GCSEmulator(default_bucket="acme-uploads", more_buckets=("acme-support-attachments",)) as gcs:
            os.environ["STORAGE_EMULATOR_HOST"] = gcs.base_url
            conns = {c: database.connect(u, autocommit=True) for c, u in urls.items()}
            store = database.connect(urls["ops_db"], autocommit=True)
            compliance_store.migrate(store)
            rate = grow_analytics(conns["analytics_db"], args.analytics_rows)
            buckets = GCSBuckets()
            files_each = max(1, args.files // args.subjects)
            measured = list(range(BASE, BASE + args.subjects))
            floor_ids = list(range(BASE + args.subjects, BASE + 2 * args.subjects))
            plant(conns, buckets, measured + floor_ids, files_each)
            for conn in conns.values():
                conn.execute("vacuum analyze")
            floor = floor_erase(conns, buckets, floor_ids, files_each)
            took = erase_all(conns, store, buckets, load_datamap(), measured)
            export = export_bench(urls, conns, buckets, args.export_mib)
        result = {"at": dt.datetime.now().isoformat(timespec="minutes"), "machine": machine(),
                  "users": args.users, "subjects": args.subjects, "files": files_each * args.subjects,
                  "analytics_rows": args.analytics_rows, "analytics_load_rows_per_s": round(rate),
                  "erase_seconds": round(took, 2), "erase_floor_seconds": round(floor, 2),
                  "erase_ratio": round(took / floor, 2), "export": export}
        print(json.dumps(result, indent=2))
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        return 0
    finally:
        for name in names.values():
            database.drop_database(server, name)


if __name__ == "__main__":
    sys.exit(main())
