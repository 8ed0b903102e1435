"""Benchmark: request fulfilment — one subject's export package with 100,000 usage events and 100,000 access-log
rows, and 1,000 access requests in one run — each against a COPY floor measured in the same run.

    .venv/bin/python bench/bench_fulfilment.py [--events 100000] [--logs 100000] [--requests 1000] [--users 100000]
                                               [--airflow]

Creates its own database on $PRIVACY_BENCH_PG_URL (default: the local server; dropped afterwards) and loads it
with SQL (``generate_series``): ``--users`` accounts with a footprint like the demo's (an upload, usage events,
access logs, a social profile, shares, some support messages), one large subject holding ``--events`` usage
events and ``--logs`` access-log rows, and ``--requests`` open access requests of other accounts. Then, in a
fresh child process (so that its peak memory is the fulfilment's own, not the loader's):

1. **One large subject.** Measured: ``steps.act_on_request`` for its access request, end to end — claim,
   the package streamed into a zip (JSON per category, CSV per table, shared-with, README), SHA-256, upload to a
   ``file://`` evidence location, the request completed, the record. Floor: ``COPY`` of the very statements
   the package's CSV files are written by (the subject's rows of every mapped table) into files — the fastest
   way those rows leave PostgreSQL. The package reads each table twice (CSV and JSON) and compresses, so a
   ratio (floor / export) near 0.4 would be the package's natural cost. Memory: the child's peak resident
   memory (VmHWM) before and after the export, and the Python heap's peak while the same package is built
   again (tracemalloc, in an untimed pass: it slows Python down).
2. **1,000 access requests in one run.** Measured: ``plan_requests`` + ``fulfil_requests`` + ``finish_run``, the
   tasks' bodies, for all of them. Floor: the same CSV statements for every one of those subjects, COPY into
   files, one after another on one connection.

With ``--airflow``, another ``--requests`` access requests are then fulfilled by one real DAG run (``airflow
dags test dsr_fulfilment``), timed whole, Airflow's start-up included.

The floors run before and after the measured pass (the better counts). Prints time, floor and ratio for each,
and appends a JSON line to bench/results/fulfilment.jsonl with the machine (cores, RAM). Targets:
the large export under 10 s with bounded memory; 1,000 access requests under 5 minutes.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fulfilment.jsonl"
KEY = b"bench-subject-key-0123456789"
TARGET_EXPORT_S = 10.0
TARGET_RUN_S = 300.0


def load(conn, *, users: int, events: int, logs: int, requests: int) -> dict:
    """Accounts with a footprint, one large subject, and open access requests (all with SQL)."""
    from devkit.operational_schema import index_statements

    conn.execute("""insert into vendors (id, name, kind, dpa_signed_on, allowed_categories, active)
                    select g, 'Vendor ' || g, (array['service_provider','channel_partner','consultant'])[1 + g % 3],
                           date '2024-01-01', '{contact,account,usage}', true from generate_series(1, 20) g""")
    conn.execute("""insert into users (id, email, full_name, company_name, phone, address, country, birth_date,
                                       created_at)
                    select g, 'user' || g || '@example.org', 'User ' || g, 'Company ' || (g %% 997), '+49 30 ' || g,
                           'Street ' || g, 'DE', date '1980-01-01' + (g %% 9000), now() - (g %% 700) * interval '1 day'
                    from generate_series(1, %s) g""", (users + 1,))
    big = users + 1
    conn.execute("""insert into uploads (user_id, filename, source, storage_uri, size_bytes, created_at)
                    select g, 'file' || g || '.pdf', 'upload', 'gs://uploads/' || g, 1000 + g, now()
                    from generate_series(1, %s) g""", (users + 1,))
    conn.execute("""insert into support_messages (user_id, email, phone, subject, body, created_at)
                    select g, 'user' || g || '@example.org', '+49 30 ' || g, 'Help', 'Please help with ' || g, now()
                    from generate_series(1, %s, 3) g""", (users + 1,))
    conn.execute("""insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at)
                    select 1 + (g %% %s), 'feature_used', 'feature_' || (g %% 17), g %% 5, g %% 100000,
                           now() - (g %% 100000) * interval '1 minute'
                    from generate_series(1, %s) g""", (users, users * 10))
    conn.execute("""insert into access_logs (user_id, ip_address, user_agent, isp, referrer, occurred_at)
                    select 1 + (g %% %s), ('10.' || (g %% 250) || '.' || (g / 250 %% 250) || '.1')::inet,
                           'Mozilla/5.0 agent ' || (g %% 40), 'ISP ' || (g %% 9), null,
                           now() - (g %% 100000) * interval '1 minute'
                    from generate_series(1, %s) g""", (users, users * 5))
    conn.execute("""insert into social_profiles (user_id, network, handle, profile_url)
                    select g, 'github', 'handle' || g, 'https://github.com/handle' || g
                    from generate_series(1, %s) g""", (users + 1,))
    conn.execute("""insert into data_shares (vendor_id, user_id, category, purpose, legal_basis, record_count, shared_at)
                    select 1 + g %% 20, 1 + (g %% %s), (array['contact','account','usage'])[1 + g %% 3], 'service',
                           'contract', 1 + g %% 50, now() - (g %% 300) * interval '1 day'
                    from generate_series(1, %s) g""", (users + 1, users * 2))
    # The large subject.
    conn.execute("""insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at)
                    select %s, 'api_call', 'feature_' || (g %% 37), g %% 11, g, now() - g * interval '1 second'
                    from generate_series(1, %s) g""", (big, events))
    conn.execute("""insert into access_logs (user_id, ip_address, user_agent, isp, referrer, occurred_at)
                    select %s, '198.51.100.7', 'Mozilla/5.0 (X11; Linux x86_64) agent/' || (g %% 50), 'Big ISP',
                           case when g %% 4 = 0 then 'https://www.example.com/' || g end,
                           now() - g * interval '1 second'
                    from generate_series(1, %s) g""", (big, logs))
    big_request = conn.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type,
                                                                received_at, status)
                                  values (%s, 'big@example.org', 'gdpr', 'access', now() - interval '3 days',
                                          'in_progress') returning id""", (big,)).fetchone()[0]
    # Open access requests of other accounts, spread over the table.
    step = max(1, users // requests)
    conn.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at, status)
                    select g, 'user' || g || '@example.org', case when g %% 2 = 0 then 'gdpr' else 'ccpa' end,
                           case when g %% 2 = 0 then 'access' else 'know' end, now() - interval '5 days', 'in_progress'
                    from generate_series(1, %s, %s) g limit %s""", (users, step, requests))
    for statement in index_statements():
        conn.execute(statement)
    conn.execute("analyze")
    return {"big_user": big, "big_request": big_request}


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, loaded: dict, evidence: str, workdir: str, out: multiprocessing.Queue) -> None:
    """In a fresh process: floors and measured passes for the large export and the 1,000-request run."""
    import psycopg

    from include.audit import RunContext
    from include.step import Step
    from include.config import Settings
    from include.datamap import load_datamap
    from include.fulfilment import ledger, package, steps
    from include.fulfilment.params import FulfilmentParams
    from include.objectstore import FileObjectStore
    from include.fulfilment.right_to_know import last_twelve_months, shared_with

    settings, dm = Settings(), load_datamap()
    today = datetime.now(timezone.utc).date()
    objects = FileObjectStore(f"file://{evidence}")
    result: dict = {}
    with psycopg.connect(url, autocommit=True) as ops, psycopg.connect(url, autocommit=True) as store:
        for conn in (ops, store):
            conn.execute("set time zone 'UTC'")

        def floor(user_ids) -> tuple[float, int]:
            """COPY of the package's own CSV statements for these subjects, into files."""
            started, size = time.perf_counter(), 0
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                for uid in user_ids:
                    who = package.subject(ops, dm, uid)
                    params = {"user_id": uid, "email": who.address}
                    for i, part in enumerate(package.parts(dm)):
                        with open(os.path.join(tmp, f"{uid}-{i}.csv"), "wb") as fh, ops.cursor() as cur:
                            with cur.copy(package._csv_statement(part), params) as copy:  # noqa: SLF001
                                for chunk in copy:
                                    size += fh.write(chunk)
            return time.perf_counter() - started, size

        # 1. One large subject.
        big = loaded["big_user"]
        floor_before, csv_bytes = floor([big])
        p = FulfilmentParams(as_of=today, request_ids=(loaded["big_request"],))
        ctx = RunContext(run_id="bench_big", actor="bench", dag_id="dsr_fulfilment")
        step = Step(ctx=ctx, settings=settings, params=p, ops=ops, store=store, datamap=dm, key=KEY, objects=objects)
        steps.plan_requests(step)
        (row,) = ledger.plan_rows(store, "bench_big", acting=True)
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        outcome = steps.act_on_request(step, row, workdir=workdir)
        export_s = time.perf_counter() - started
        assert outcome == "exported", outcome
        rss_after = peak_rss_mb()
        record = store.execute("""select package_bytes, package_rows from compliance.dsr_fulfilments
                                  where request_id = %s""", (loaded["big_request"],)).fetchone()
        floor_after, _ = floor([big])
        # The Python heap's peak while the same package is built again (tracemalloc slows Python down, so this
        # pass is not the timed one).
        who = package.subject(ops, dm, big)
        shared = shared_with(ops, dm, big, last_twelve_months(today, settings.tz))
        about = package.About(loaded["big_request"], "access", "gdpr", today)
        tracemalloc.start()
        package.build(ops, dm, about, who, shared, os.path.join(workdir, "again.zip"))
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        steps.finish_run(step)
        result["export"] = {
            "rows": sum(n for t in record[1].values() for n in t.values()), "package_mb": round(record[0] / 1e6, 2),
            "seconds": round(export_s, 3), "floor_s": round(min(floor_before, floor_after), 3),
            "floor_before_s": round(floor_before, 3), "floor_after_s": round(floor_after, 3),
            "csv_mb": round(csv_bytes / 1e6, 1), "rss_before_mb": round(rss_before), "rss_after_mb": round(rss_after),
            "python_heap_peak_mb": round(heap_peak / 1e6, 1)}

        # 2. 1,000 access requests in one run.
        subjects = [r[0] for r in ops.execute("""select user_id from privacy_requests where status = 'in_progress'
                                                 and user_id <> %s order by id""", (big,))]
        floor_before, _ = floor(subjects)
        p = FulfilmentParams(as_of=today)
        ctx = RunContext(run_id="bench_run", actor="bench", dag_id="dsr_fulfilment")
        step = Step(ctx=ctx, settings=settings, params=p, ops=ops, store=store, datamap=dm, key=KEY, objects=objects)
        started = time.perf_counter()
        steps.plan_requests(step)
        planned_s = time.perf_counter() - started
        fulfilled = steps.fulfil_requests(step, workdir=workdir)
        finished = steps.finish_run(step)
        run_s = time.perf_counter() - started
        floor_after, _ = floor(subjects)
        result["run"] = {"requests": len(subjects), "exported": finished["outcomes"].get("exported", 0),
                         "seconds": round(run_s, 2), "plan_s": round(planned_s, 2),
                         "per_request_ms": round(1000 * run_s / max(1, len(subjects)), 1),
                         "floor_s": round(min(floor_before, floor_after), 2),
                         "floor_before_s": round(floor_before, 2), "floor_after_s": round(floor_after, 2),
                         "outcomes": fulfilled["outcomes"]}
    result["peak_rss_mb"] = round(peak_rss_mb())
    out.put(result)


def through_airflow(url: str, evidence: str, requests: int, users: int) -> dict:
    """Another ``requests`` access requests (accounts not asked about yet), fulfilled by one real DAG run."""
    import psycopg

    from devkit import local_airflow

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                      status)
                        select u.id, 'user' || u.id || '@example.org', 'gdpr', 'access', now() - interval '1 day',
                               'in_progress'
                        from users u where u.id <= %s and not exists (select from privacy_requests r
                                                                     where r.user_id = u.id)
                        order by u.id desc limit %s""", (users, requests))
        with tempfile.TemporaryDirectory(prefix="bench-airflow-") as home:
            services = local_airflow.LocalServices(ops_url=url, compliance_url=url, sendgrid_url="http://127.0.0.1:9",
                                                   sendgrid_api_key="SG.unused")
            env = local_airflow.airflow_env(Path(home), services, settings={"evidence_location": f"file://{evidence}"})
            local_airflow.migrate_metadata(env)
            started = time.perf_counter()
            done = local_airflow.dags_test("dsr_fulfilment", env, timeout=1800)
            seconds = time.perf_counter() - started
        run_id = conn.execute("""select run_id from compliance.dsr_fulfilment_runs order by started_at desc
                                 limit 1""").fetchone()[0]
        counts = dict(conn.execute("select outcome, count(*) from compliance.dsr_fulfilments where run_id = %s "
                                   "group by 1", (run_id,)).fetchall())
    return {"requests": requests, "seconds": round(seconds, 1), "state": local_airflow.run_state(done),
            "outcomes": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="usage events of the large subject")
    parser.add_argument("--logs", type=int, default=100_000, help="access-log rows of the large subject")
    parser.add_argument("--requests", type=int, default=1000, help="open access requests in the run")
    parser.add_argument("--users", type=int, default=100_000, help="accounts (each with a footprint)")
    parser.add_argument("--airflow", action="store_true",
                        help="then also fulfil another --requests access requests in one real DAG run (`airflow "
                             "dags test dsr_fulfilment`, file:// evidence) and time it whole, start-up included")
    parser.add_argument("--keep", action="store_true", help="keep the database (for EXPLAIN and repeated runs)")
    args = parser.parse_args()

    from devkit import database
    from devkit.operational_schema import create_reference_schema
    from include import compliance_store

    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    name = "privacy_bench_fulfilment"
    url = database.create_database(server, name, replace=True)
    try:
        with database.connect(url, autocommit=True) as conn:
            create_reference_schema(conn, with_indexes=False)
            compliance_store.migrate(conn)
            t0 = time.perf_counter()
            loaded = load(conn, users=args.users, events=args.events, logs=args.logs, requests=args.requests)
            load_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="bench-evidence-") as evidence, \
                tempfile.TemporaryDirectory(prefix="bench-work-") as workdir:
            queue = multiprocessing.get_context("spawn").Queue()
            child = multiprocessing.get_context("spawn").Process(target=measure,
                                                                 args=(url, loaded, evidence, workdir, queue))
            child.start()
            result = queue.get()
            child.join()
            if args.airflow:
                result["airflow"] = through_airflow(url, evidence, args.requests, args.users)
    finally:
        if not args.keep:
            database.drop_database(server, name)

    e, r = result["export"], result["run"]
    e["ratio"] = round(e["floor_s"] / e["seconds"], 3)
    r["ratio"] = round(r["floor_s"] / r["seconds"], 3)
    print(f"loaded {args.users:,} accounts with their rows, a subject with {args.events:,} usage events and "
          f"{args.logs:,} access-log rows, and {r['requests']:,} access requests in {load_s:.1f} s")
    print(f"export of the large subject ({e['rows']:,} rows; package {e['package_mb']} MB): {e['seconds']:.2f} s "
          f"(target < {TARGET_EXPORT_S:.0f} s)")
    print(f"  floor (COPY of the package's CSV statements into files, {e['csv_mb']} MB): {e['floor_s']:.2f} s "
          f"(before {e['floor_before_s']:.2f} s, after {e['floor_after_s']:.2f} s); ratio floor/export {e['ratio']:.2f}")
    print(f"  memory: peak RSS {e['rss_before_mb']} MB before the export, {e['rss_after_mb']} MB after; Python heap "
          f"peak while building it again {e['python_heap_peak_mb']} MB")
    print(f"{r['requests']:,} access requests in one run (plan, fulfil, finish): {r['seconds']:.1f} s "
          f"({r['per_request_ms']} ms a request; plan {r['plan_s']:.1f} s; target < {TARGET_RUN_S:.0f} s); "
          f"outcomes {r['outcomes']}")
    print(f"  floor (COPY of the same statements for every subject, one connection): {r['floor_s']:.1f} s "
          f"(before {r['floor_before_s']:.1f} s, after {r['floor_after_s']:.1f} s); ratio floor/run {r['ratio']:.2f}")
    print(f"peak RSS of the measuring process: {result['peak_rss_mb']} MB")
    if "airflow" in result:
        a = result["airflow"]
        print(f"through Airflow: {a['requests']:,} access requests in one `airflow dags test` run: {a['seconds']:.1f} s "
              f"wall, start-up included ({a['state']}; outcomes {a['outcomes']})")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({
            "bench": "fulfilment", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
                     "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
            "users": args.users, "export": e, "run": r, "airflow": result.get("airflow"),
            "peak_rss_mb": result["peak_rss_mb"],
            "targets": {"export_s": TARGET_EXPORT_S, "run_s": TARGET_RUN_S}}) + "\n")


if __name__ == "__main__":
    main()
