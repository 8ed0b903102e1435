"""Benchmark: the manifests of one period of 2,000,000 shares across 50 vendors, against COPY of the same query.

    .venv/bin/python bench/bench_manifests.py [--shares 2000000] [--vendors 50] [--users 500000] [--runs 1]

Creates its own database on $PRIVACY_BENCH_PG_URL (default: the local server; dropped afterwards), loads
the users, vendors and shares with COPY, then, in a fresh child process (so that its peak memory is the
manifests' own, not the loader's), for every vendor in turn:

- floor: ``COPY (the very statement the manifest runs) TO STDOUT`` through psycopg into a file, on the
  same database — the fastest way out of PostgreSQL for those rows, judged by the same SQL;
- measured: ``manifests.write_manifest`` end to end — claim, stream, Parquet, SHA-256, upload to a
  ``file://`` evidence location, manifest.json, record, audit — exactly the mapped task's body.

The floor runs before and after the measured pass (the better of the two counts, so a disturbed floor
cannot flatter the ratio). Prints time, floor and ratio (floor time / manifest time: the manifests'
throughput as a share of COPY's), the child's peak resident memory (VmHWM), and appends a JSON line to
bench/results/manifests.jsonl with the machine (cores, RAM).
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import resource
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

RESULTS = Path(__file__).resolve().parent / "results" / "manifests.jsonl"
DAY = datetime(2026, 11, 24, tzinfo=timezone.utc)
CATEGORIES = ["contact", "account", "content", "usage", "network", "social", "support"]
KINDS = ["service_provider", "channel_partner", "consultant", "implementation_partner", "law_enforcement", "acquirer"]


def _copy_table(conn, table: str, data: pa.Table) -> None:
    buf = io.BytesIO()
    pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    columns = ", ".join(data.column_names)
    with conn.cursor().copy(f"copy {table} ({columns}) from stdin (format csv)") as copy:
        view = buf.getbuffer()
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start:start + (1 << 20)])


def load(conn, *, shares: int, vendors: int, users: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    epoch = np.datetime64("2026-11-24T00:00:00", "us")
    # Users: some children (by birth date or declared age), deleted, opted out, restricted.
    uid = np.arange(1, users + 1, dtype=np.int64)
    created = epoch - rng.integers(30, 700, users).astype("timedelta64[D]")
    age_days = rng.integers(20 * 365, 70 * 365, users)
    child = rng.random(users) < 0.01
    age_days[child] = rng.integers(6 * 365, 12 * 365, child.sum())
    birth = (epoch - age_days.astype("timedelta64[D]")).astype("datetime64[D]")
    deleted = rng.random(users) < 0.02
    dns = rng.random(users) < 0.05
    restricted = rng.random(users) < 0.01
    ts = pa.timestamp("us", tz="UTC")
    _copy_table(conn, "users", pa.table({
        "id": uid, "email": pa.array([None] * users, pa.string()), "created_at": pa.array(created, ts),
        "birth_date": pa.array(birth, pa.date32()),
        "deleted_at": pa.array(np.where(deleted, epoch - np.timedelta64(12, "h"), np.datetime64("NaT", "us")), ts),
        "do_not_sell": pa.array(dns),
        "do_not_sell_at": pa.array(np.where(dns, created + np.timedelta64(1, "D"), np.datetime64("NaT", "us")), ts),
        "processing_restricted": pa.array(restricted)}))
    # Vendors: every kind, some service providers without a DPA or with a late one, a few inactive;
    # the last two vendor ids of the shares are unknown.
    known = vendors - 2
    vid = np.arange(1, known + 1, dtype=np.int64)
    kinds = [KINDS[i % len(KINDS)] for i in range(known)]
    dpa = [None if i % 7 == 3 else (date(2026, 12, 1) if i % 11 == 5 else date(2024, 1, 1)) for i in range(known)]
    allowed = ["{" + ",".join(CATEGORIES[: 3 + i % 5]) + "}" for i in range(known)]
    _copy_table(conn, "vendors", pa.table({
        "id": vid, "name": [f"Vendor {i}" for i in vid], "kind": kinds, "dpa_signed_on": pa.array(dpa, pa.date32()),
        "allowed_categories": allowed, "active": [i % 13 != 0 for i in range(known)]}))
    # Shares: one day, vendor ids 1..vendors (the last two unknown), random users and categories.
    weights = rng.random(vendors) + 0.5
    owner = rng.choice(vendors, shares, p=weights / weights.sum()) + 1
    _copy_table(conn, "data_shares", pa.table({
        "id": np.arange(1, shares + 1, dtype=np.int64), "vendor_id": owner.astype(np.int64) + (owner > known) * 9000,
        "user_id": rng.integers(1, users + 1, shares, dtype=np.int64),
        "category": pa.array(np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), shares)]),
        "purpose": pa.array(np.array(["hosting", "analytics", "support tooling", "co-marketing, EMEA"])[
            rng.integers(0, 4, shares)]),
        "legal_basis": pa.array(np.where(rng.random(shares) < 0.07, None, "contract")),
        "record_count": rng.integers(1, 60, shares, dtype=np.int32),
        "shared_at": pa.array(epoch + rng.integers(0, 86_400_000_000, shares).astype("timedelta64[us]"), ts)}))
    conn.execute("analyze")
    return {"vendor_ids": sorted({int(v) for v in np.unique(owner.astype(np.int64) + (owner > known) * 9000)})}


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). ``ru_maxrss`` would not do: after fork and exec it
    still holds the parent's peak (the loader's arrays), which this process never used."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, vendor_ids: list[int], evidence: str, out: multiprocessing.Queue) -> None:
    """In a fresh process: the floor, the manifests, the floor again; peak RSS of this process."""
    import psycopg

    from include.audit import RunContext
    from include.config import Settings
    from include.datamap import load_datamap
    from include.objectstore import FileObjectStore
    from include.periods import RunTiming
    from include.vendors import manifests, source
    from include.vendors.params import ManifestParams

    settings, dm = Settings(), load_datamap()
    timing = RunTiming(run_after=DAY + timedelta(days=1, hours=1), interval_start=DAY,
                       interval_end=DAY + timedelta(days=1))
    params = ManifestParams.resolve({}, settings, timing)
    scope = params.scope
    statement = source.copy_statement(dm, scope)
    with psycopg.connect(url, autocommit=True) as ops, psycopg.connect(url, autocommit=True) as store:
        for conn in (ops, store):
            conn.execute("set time zone 'UTC'")

        def floor() -> tuple[float, int]:
            started, size = time.perf_counter(), 0
            with tempfile.TemporaryDirectory() as tmp:
                for vendor_id in vendor_ids:
                    with open(os.path.join(tmp, f"{vendor_id}.csv"), "wb") as fh, ops.cursor() as cur:
                        with cur.copy(statement, source.copy_params(vendor_id, scope, settings.timezone)) as copy:
                            for chunk in copy:
                                size += fh.write(chunk)
            return time.perf_counter() - started, size

        floor_before, csv_bytes = floor()
        ctx = RunContext(run_id="bench", actor="bench")
        objects = FileObjectStore(f"file://{evidence}")
        started = time.perf_counter()
        rows, slowest = 0, 0.0
        for vendor_id in vendor_ids:
            t0 = time.perf_counter()
            result = manifests.write_manifest(ops, store, objects, dm, settings, ctx, params, vendor_id, scope.label)
            slowest = max(slowest, time.perf_counter() - t0)
            assert result["outcome"] == manifests.WRITTEN, result
            rows += result["rows"]
        manifests_s = time.perf_counter() - started
        floor_after, _ = floor()
    out.put({"floor_s": min(floor_before, floor_after), "floor_before_s": floor_before, "floor_after_s": floor_after,
             "manifests_s": manifests_s, "rows": rows, "slowest_vendor_s": slowest, "csv_bytes": csv_bytes,
             "peak_rss_mb": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, default=2_000_000)
    parser.add_argument("--vendors", type=int, default=50)
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", action="store_true", help="keep the database (for EXPLAIN and repeated runs)")
    args = parser.parse_args()

    from devkit import database
    from devkit.operational_schema import create_reference_schema
    from include import compliance_store

    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    name = "privacy_bench_manifests"
    url = database.create_database(server, name, replace=True)
    try:
        with database.connect(url, autocommit=True) as conn:
            create_reference_schema(conn)
            compliance_store.migrate(conn)
            t0 = time.perf_counter()
            loaded = load(conn, shares=args.shares, vendors=args.vendors, users=args.users, seed=args.seed)
            load_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="bench-evidence-") as evidence:
            queue = multiprocessing.get_context("spawn").Queue()
            child = multiprocessing.get_context("spawn").Process(
                target=measure, args=(url, loaded["vendor_ids"], evidence, queue))
            child.start()
            result = queue.get()
            child.join()
            written = sum(f.stat().st_size for f in Path(evidence).rglob("*.parquet"))
    finally:
        if not args.keep:
            database.drop_database(server, name)

    ratio = result["floor_s"] / result["manifests_s"]
    print(f"{result['rows']:,} shares across {len(loaded['vendor_ids'])} vendors ({args.users:,} users), one period; "
          f"loaded in {load_s:.1f} s")
    print(f"manifests (write_manifest for every vendor, end to end): {result['manifests_s']:.2f} s "
          f"({result['rows'] / result['manifests_s']:,.0f} shares/s; slowest vendor {result['slowest_vendor_s']:.2f} s)")
    print(f"floor (COPY of the same statements TO STDOUT into files): {result['floor_s']:.2f} s "
          f"(before {result['floor_before_s']:.2f} s, after {result['floor_after_s']:.2f} s; "
          f"{result['csv_bytes'] / 1e6:.0f} MB of CSV)")
    print(f"ratio (floor / manifests = throughput as a share of COPY's): {ratio:.2f}  (target >= 0.50)")
    print(f"peak RSS of the measuring process: {result['peak_rss_mb']:.0f} MB (target < 1024 MB per task); "
          f"Parquet written: {written / 1e6:.1f} MB")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "shares": result["rows"],
            "vendors": len(loaded["vendor_ids"]), "users": args.users, "manifests_s": round(result["manifests_s"], 2),
            "floor_s": round(result["floor_s"], 2), "ratio": round(ratio, 3),
            "slowest_vendor_s": round(result["slowest_vendor_s"], 2), "peak_rss_mb": round(result["peak_rss_mb"]),
            "parquet_mb": round(written / 1e6, 1), "cpus": os.cpu_count(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}) + "\n")


if __name__ == "__main__":
    main()
