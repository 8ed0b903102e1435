"""Benchmark: erasure and export across SPEC §3.1's stores, each against a bare floor measured in the same run.

    .venv/bin/python bench/bench_stores.py                                   # the defaults below
    .venv/bin/python bench/bench_stores.py --subjects 1000 --files 10000 --analytics-rows 50000000 --export-mib 2048

Seeds an operational database (``devkit.seed.demo_data.seed``), the support desk and analytics beside it
(``devkit.seed.stores``), grows analytics to ``--analytics-rows`` rows of ``daily_usage`` (``COPY`` with the
primary key dropped, then the key built once; the load's figures are recorded), and starts the GCS emulator in
this process. Then:

- **erasure**: ``--subjects`` accounts, each with uploads whose files are in the emulator (``--files`` in all),
  tickets by address with events, and analytics rows, erased through the engine
  (``include.erasure.erase_subject`` with the other stores and the Google provider's client: claim, holds,
  files found and recorded, one transaction per store with its residual, each file deleted (the delete's answer
  is its verification: GCS's read-after-delete is strongly consistent), the operational rows, the account last, residual zero) — against a **floor**: as many other such accounts
  whose same rows are deleted by the same statements issued bare (one transaction per store and subject, no
  residual, no records) and whose files are deleted by one bare ``Blob.delete`` each; and, for the record, the
  same floor with each file also looked up again after its delete (the request the engine made before it took
  the delete's answer as the verification), on a third set of accounts. The three go in ten alternating batches, so that the
  machine's other work falls on all alike;
- **export**: one subject with ``--export-mib`` MiB of files (64 MiB objects of random bytes), its package built
  (``include.fulfilment.package.build``: each file streamed from the emulator into its zip entry) in a child
  process whose own peak RSS is read — against two **floors**, each in a child process of its own with the
  same client (``GCSBuckets``, the ranged downloads of ``download_to``) downloading the same objects: to
  ``/dev/null``, and one after the other into one file (as the package holds them). ``--export-repeats``
  rounds of (null, file, export), the ratios taken round by round and their median kept; then once with the
  files deflated instead of stored (``package.FILES_STORED = False``), for the record.

Prints each time, floor and ratio and appends one JSON line to bench/results/stores.jsonl (with the machine's
load average at the start and end, and per run).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
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


def grow_analytics(conn, rows: int) -> dict:
    """Fill daily_usage up to ``rows`` rows (accounts 10,000,001 on, a year each) by ``COPY`` with the primary key
    dropped, then the key built once (an index built by sorting, not row by row: 326,984 rows/s through
    ``insert ... select`` with the key in place against 1,110,750 by ``COPY`` and a build, at 3 M rows here).
    The table ends as the schema makes it (same key, same name). Returns the load's figures."""
    have = conn.execute("select count(*) from daily_usage").fetchone()[0]
    need = max(0, rows - have)
    if not need:
        return {"rows_loaded": 0}
    started = time.perf_counter()
    conn.execute("alter table daily_usage drop constraint daily_usage_pkey")
    days = [(ANCHOR - dt.timedelta(days=d)).isoformat() for d in range(365)]
    with conn.cursor() as cur, cur.copy("copy daily_usage (user_id, day, feature, api_calls, seconds_active) "
                                        "from stdin") as copy:
        left, user = need, 10_000_001
        while left:
            take = min(left, 365)
            copy.write("".join(f"{user}\t{d}\tbulk\t1\t1\n" for d in days[:take]))
            left -= take
            user += 1
    copied = time.perf_counter()
    conn.execute("set maintenance_work_mem = '1GB'")
    conn.execute("alter table daily_usage add constraint daily_usage_pkey primary key (user_id, day, feature)")
    keyed = time.perf_counter()
    conn.execute("reset maintenance_work_mem")
    conn.execute("vacuum analyze daily_usage")
    done = time.perf_counter()
    return {"rows_loaded": need, "copy_seconds": round(copied - started, 1), "key_seconds": round(keyed - copied, 1),
            "vacuum_analyze_seconds": round(done - keyed, 1),
            "rows_per_s": round(need / (keyed - started))}


def floor_erase(conns, buckets, ids: list[int], files_each: int, look_up: bool = False) -> float:
    """The same rows and files gone by the same statements, issued bare; with ``look_up``, each file also looked up
    again after its delete (the request the engine adds to verify it gone: not part of the floor proper)."""
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
            if look_up:
                bucket.exists(f"bench/{uid}/{n}")
        with ops.transaction():
            for table in tables:
                ops.execute(f"delete from {table} where user_id = %s", (uid,))
            ops.execute("delete from users where id = %s", (uid,))
    return time.perf_counter() - started


def eraser(conns, store, buckets, dm):
    """``erase(ids)``: the engine's erasure of each subject (as a fulfilment or purge task calls it), timed."""
    from include import erasure

    access = erasure.StoreAccess(connect=conns.__getitem__, buckets=buckets, allowed=frozenset(dm.buckets),
                                 progress=store)
    unmapped = erasure.discover_unmapped(conns["ops_db"], dm)
    now = dt.datetime.now(dt.timezone.utc)

    def erase(ids: list[int]) -> float:
        started = time.perf_counter()
        for uid in ids:
            result = erasure.erase_subject(conns["ops_db"], dm, uid, KEY, at=now,
                                           options=erasure.EraseOptions(unmapped=unmapped, stores=access))
            assert result.outcome == erasure.PURGED, result.outcome
        return time.perf_counter() - started

    return erase


def erase_interleaved(conns, store, buckets, dm, measured: list[int], floor_ids: list[int], looked_up: list[int],
                      files_each: int, batches: int = 10) -> tuple[float, float, float]:
    """The engine, the floor and the floor with lookups in alternating batches (floor, floor with lookups, engine,
    ...), so that the machine's other work falls on all alike; returns their seconds."""
    erase = eraser(conns, store, buckets, dm)
    profile = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
    took = floor = floor_look = 0.0
    size = -(-len(measured) // batches)
    for i in range(0, len(measured), size):
        floor += floor_erase(conns, buckets, floor_ids[i:i + size], files_each)
        floor_look += floor_erase(conns, buckets, looked_up[i:i + size], files_each, look_up=True)
        profile and profile.enable()
        took += erase(measured[i:i + size])
        profile and profile.disable()
        log(f"erased {min(i + size, len(measured))} of {len(measured)}: engine {took:.1f} s, floor {floor:.1f} s, "
            f"floor with lookups {floor_look:.1f} s")
    if profile is not None:
        import pstats

        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return took, floor, floor_look


def log(text: str) -> None:
    print(f"{dt.datetime.now():%H:%M:%S} {text} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


_CHILD = """
import json, os, sys, time, zipfile
from datetime import date, timezone
from devkit.database import connect
from include.datamap import load_datamap
from include.fulfilment import package
from include.seam.storage import GCSBuckets
from include.fulfilment.right_to_know import SharedWith, last_twelve_months
mode, urls, uid, path = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
keys = json.loads(sys.argv[5])
buckets = GCSBuckets()
bucket = buckets.bucket("acme-uploads")
bucket.exists("warm-up")  # the Google provider's imports and client, as a task has them
conns = {c: connect(u, autocommit=True) for c, u in urls.items()}
dm = load_datamap()
who = package.subject(conns["ops_db"], dm, uid)
shared = SharedWith(uid, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ())
if mode == "export-deflate":
    package.FILES_STORED = False
def hwm():  # this process's own peak RSS (ru_maxrss keeps the parent's across exec), in KiB
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = hwm()
cpu = os.times()
started = time.perf_counter()
if mode.startswith("export"):
    built = package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm,
                          package.About(1, "access", "gdpr", date(2026, 11, 25)), who, shared, path)
    size = built.bytes
elif mode == "null":  # the same client, the same objects, to /dev/null
    with open(os.devnull, "wb") as out:
        size = sum(bucket.download_to(k, out) for k in keys)
else:  # "file": the same objects one after the other into one file, as the package holds them
    with open(path, "wb") as out:
        size = sum(bucket.download_to(k, out) for k in keys)
took = time.perf_counter() - started
end = os.times()
print(json.dumps({"seconds": took, "bytes": size, "cpu_seconds": end.user + end.system - cpu.user - cpu.system,
                  "rss_before_mib": before / 1024, "peak_rss_mib": hwm() / 1024}))
"""


def export_bench(urls: dict, conns, buckets, mib: int, repeats: int, deflate: bool) -> dict:
    """One subject with ``mib`` MiB of files (64 MiB objects of random bytes: as incompressible as photos); its
    package built in a child process, against the same client downloading the same objects in a child process
    (to /dev/null, and into one file), ``repeats`` times interleaved (floor, floor, export, ...)."""
    uid = BASE - 1
    ops = conns["ops_db"]
    ops.execute("insert into users (id, email, full_name, created_at) values (%s, 'export@example.org', 'E', now())",
                (uid,))
    size, count = 64 * 2**20, max(1, mib // 64)
    bucket = buckets.bucket("acme-uploads")
    keys = [f"export/{n}" for n in range(count)]
    runs: dict[str, list[dict]] = {"null": [], "file": [], "export": []}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.bin"
        with source.open("wb") as fh:
            for _ in range(size // 2**20):
                fh.write(os.urandom(2**20))
        for n, key in enumerate(keys):
            ops.execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at)
                           values (%s, %s, 'big.bin', 'upload', %s, %s, now())""",
                        (uid * 100 + n, uid, f"gs://acme-uploads/{key}", size))
            bucket.put_file(key, source)
        source.unlink()
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        def child(mode: str) -> dict:
            out = Path(tmp) / "out.bin"
            done = subprocess.run([sys.executable, "-c", _CHILD, mode, json.dumps(urls), str(uid), str(out),
                                   json.dumps(keys)], env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the {mode} child failed: {done.stderr[-3000:]}")
            out.unlink(missing_ok=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            measured["load_1min"] = os.getloadavg()[0]
            return measured

        for _ in range(repeats):
            for mode in ("null", "file", "export"):
                runs[mode].append(child(mode))
        deflated = child("export-deflate") if deflate else None

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    export_s = median("export", "seconds")
    result = {"mib": count * 64, "files": count, "repeats": repeats, "seconds": round(export_s, 2),
              "floor_null_seconds": round(median("null", "seconds"), 2),
              "floor_file_seconds": round(median("file", "seconds"), 2),
              "speed_vs_null": round(statistics.median(n["seconds"] / e["seconds"]
                                                       for n, e in zip(runs["null"], runs["export"])), 2),
              "speed_vs_file": round(statistics.median(f["seconds"] / e["seconds"]
                                                       for f, e in zip(runs["file"], runs["export"])), 2),
              "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs["export"]), 1),
              "rss_before_export_mib": round(median("export", "rss_before_mib"), 1),
              "cpu_seconds": {m: round(median(m, "cpu_seconds"), 2) for m in runs},
              "runs": {m: [{"s": round(r["seconds"], 2), "cpu": round(r["cpu_seconds"], 2),
                            "load": round(r["load_1min"], 1)} for r in rs] for m, rs in runs.items()}}
    if deflated is not None:
        result["deflated_files"] = {"seconds": round(deflated["seconds"], 2), "bytes": deflated["bytes"],
                                    "cpu_seconds": round(deflated["cpu_seconds"], 2),
                                    "speed_vs_null": round(median("null", "seconds") / deflated["seconds"], 2)}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="seeded accounts (default 20,000)")
    parser.add_argument("--subjects", type=int, default=200, help="subjects erased (and as many for the floor)")
    parser.add_argument("--files", type=int, default=2_000, help="files of the erased subjects in all")
    parser.add_argument("--analytics-rows", type=int, default=5_000_000, help="rows of daily_usage (default 5 M)")
    parser.add_argument("--export-mib", type=int, default=512, help="MiB of files of the exported subject")
    parser.add_argument("--export-repeats", type=int, default=3, help="export and floors, interleaved (default 3)")
    parser.add_argument("--no-deflate", action="store_true", help="skip the export with its files deflated")
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
    load_at_start = os.getloadavg()
    try:
        log("seeding")
        demo_data.seed(urls["ops_db"], users=args.users, seed=7, anchor=ANCHOR)
        seed_stores(urls["ops_db"], urls["support_db"], urls["analytics_db"], seed=7)
        with GCSEmulator(default_bucket="acme-uploads", more_buckets=("acme-support-attachments",)) as gcs:
            os.environ["STORAGE_EMULATOR_HOST"] = gcs.base_url
            conns = {c: database.connect(u, autocommit=True) for c, u in urls.items()}
            store = database.connect(urls["ops_db"], autocommit=True)
            compliance_store.migrate(store)
            log(f"loading analytics to {args.analytics_rows:,} rows")
            load = grow_analytics(conns["analytics_db"], args.analytics_rows)
            log(f"loaded: {load}")
            buckets = GCSBuckets()
            files_each = max(1, args.files // args.subjects)
            measured = list(range(BASE, BASE + args.subjects))
            floor_ids = list(range(BASE + args.subjects, BASE + 2 * args.subjects))
            looked_up = list(range(BASE + 2 * args.subjects, BASE + 3 * args.subjects))
            started = time.perf_counter()
            plant(conns, buckets, measured + floor_ids + looked_up, files_each)
            planted = time.perf_counter() - started
            for conn in conns.values():
                conn.execute("vacuum analyze")
            log(f"planted {3 * args.subjects} subjects and {3 * files_each * args.subjects} files in {planted:.1f} s")
            took, floor, floor_look = erase_interleaved(conns, store, buckets, load_datamap(), measured, floor_ids,
                                                        looked_up, files_each)
            analytics_rows = conns["analytics_db"].execute("select count(*) from daily_usage").fetchone()[0]
            log("export")
            export = export_bench(urls, conns, buckets, args.export_mib, args.export_repeats, not args.no_deflate)
        result = {"at": dt.datetime.now().isoformat(timespec="minutes"), "machine": machine(),
                  "load_avg_at_start": [round(x, 1) for x in load_at_start],
                  "load_avg_at_end": [round(x, 1) for x in os.getloadavg()],
                  "users": args.users, "subjects": args.subjects, "files": files_each * args.subjects,
                  "analytics_rows": args.analytics_rows, "analytics_rows_during_erase": analytics_rows,
                  "analytics_load": load, "erase_seconds": round(took, 2), "erase_floor_seconds": round(floor, 2),
                  "erase_ratio": round(took / floor, 2), "erase_floor_with_lookups_seconds": round(floor_look, 2),
                  "erase_ratio_vs_floor_with_lookups": round(took / floor_look, 2),
                  "emulator": "in memory, metadata not rewritten per change (devkit GCSEmulator)", "export": export}
        print(json.dumps(result, indent=2))
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        return 0
    finally:
        for name in names.values():
            database.drop_database(server, name)


if __name__ == "__main__":
    sys.exit(main())
