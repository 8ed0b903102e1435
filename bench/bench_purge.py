"""Benchmark: child detection and the purge of N subjects, each against its floor, and the purge's cost per
subject on a large database against a ten-times-smaller one, measured in the same run.

    .venv/bin/python bench/bench_purge.py                      # 1,000,000 and 100,000 users, 1,000 subjects
    .venv/bin/python bench/bench_purge.py --users 100000 --small-users 10000 --subjects 200   # quicker

Seeds two demo databases (``devkit.seed.demo_data.seed``; about a minute for a million users) on
$PRIVACY_BENCH_PG_URL (default: the local server), each holding its compliance store, then measures:

- **detection** (``include.child_detection.detect``: every account classified, reports matched) on the
  large database, against a floor of one pass over the same accounts table (two predicates per row);
- **purge of N subjects** (N children spread over the id range, none under a legal hold) on each
  database: the DAG's own steps — ``purge_subjects`` (one transaction per subject: claim, re-check, erase
  every mapped table, account row last, residual count, store record before commit, audit entry) and
  ``verify_purge`` — against a floor of the same database work done set-wise: the same N children's rows
  deleted/redacted in every mapped table in one transaction, rolled back (run twice, the second timed,
  so that floor and purge both find those rows in the cache), and against a second floor, one bare
  committed transaction per subject running only the erase statements, on N other accounts (the cost of
  the guards and the evidence: claim, re-checks, residual count, store records, audit);
- **flatness**: the purge's time per subject on the large database over that on the small one (the
  target is at most 1.5: every erase and residual statement goes through an index);
- the planner's choice for each erase and residual statement on the large database (no Seq Scan).

Prints time, floor and ratio for each, and appends one JSON line to bench/results/purge.jsonl with the
machine (cores, RAM). ``--reuse`` keeps seeded databases between invocations (reseeding when the user
count differs); ``--keep`` leaves them behind.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import psycopg
from psycopg import sql

from devkit import database
from devkit.seed import demo_data
from include import compliance_store
from include.audit import RunContext
from include import child_detection as detection
from include.children import purge
from include.children.params import PurgeParams
from include.config import Settings
from include.datamap import load_datamap
from include.erasure.scope import REDACT, residual_query, targets
from include.step import Step

RESULTS = Path(__file__).resolve().parent / "results" / "purge.jsonl"
ANCHOR = dt.date(2026, 11, 25)
KEY = b"bench-subject-key-0123456789abcdef"
TARGETS = {"detection_s": 5.0, "purge_1000_s": 60.0, "flatness": 1.5}


def machine() -> dict:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "ram_gib": round(ram, 1), "python": platform.python_version(),
            "machine": platform.machine()}


def seeded(server: str, name: str, users: int, reuse: bool) -> str:
    url = database.with_database(server, name)
    if reuse and database.answers(url):
        try:
            with database.connect(url) as conn:
                have = conn.execute("select count(*) from users").fetchone()[0]
                marker = conn.execute("select to_regclass('compliance.child_purges') is not null").fetchone()[0]
                used = marker and conn.execute("select count(*) from compliance.child_purges").fetchone()[0] > 0
            if have == users and not used:
                print(f"reusing {name} ({users:,} users)")
                return url
        except psycopg.Error:
            pass
    url = database.create_database(server, name, replace=True)
    t0 = time.perf_counter()
    summary = demo_data.seed(url, users=users, seed=42, anchor=ANCHOR)
    print(f"seeded {name}: {users:,} users, {summary['total_rows']:,} rows in {time.perf_counter() - t0:.1f} s")
    return url


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def detection_figures(url: str, repeat: int) -> dict:
    dm = load_datamap()
    with database.connect(url, autocommit=True) as ops:
        ops.execute("set time zone 'UTC'")
        seconds, found = timed(lambda: detection.detect(ops, dm, as_of=ANCHOR, tz="UTC"), repeat)
        floor, _ = timed(lambda: ops.execute(
            "select count(*) filter (where birth_date > date '1900-01-01'), count(*) filter (where declared_age < 13) "
            "from users").fetchone(), repeat)
        users = ops.execute("select count(*) from users").fetchone()[0]
    children = sum(1 for s in found if s.child)
    return {"users": users, "children": children, "seconds": round(seconds, 3), "floor_s": round(floor, 3),
            "ratio": round(seconds / floor, 2)}


def pick_subjects(ops, n: int) -> list[int]:
    """N children without an active hold, spread over the id range."""
    dm = load_datamap()
    children = [s.user_id for s in detection.detect(ops, dm, as_of=ANCHOR, tz="UTC") if s.child]
    held = {r[0] for r in ops.execute("select user_id from legal_holds where released_at is null")}
    free = [c for c in children if c not in held]
    if len(free) < n:
        raise SystemExit(f"only {len(free)} children without a hold: fewer than {n}; lower --subjects")
    step = len(free) / n
    return [free[int(i * step)] for i in range(n)]


def bulk_floor(ops, dm, ids: list[int]) -> float:
    """The same database work as erasing these subjects, done set-wise in one transaction, rolled back."""
    emails = [r[0] for r in ops.execute("select lower(btrim(email)) from users where id = any(%s) and email is not null",
                                        (ids,))]
    t0 = time.perf_counter()
    with ops.transaction(force_rollback=True):
        for target in targets(dm):
            where = sql.SQL(" or ").join(
                sql.SQL("{} = any(%(ids)s)").format(sql.Identifier(link.column)) if link.match == "key" else
                sql.SQL("lower(btrim({})) = any(%(emails)s)").format(sql.Identifier(link.column))
                for link in target.entry.links)
            if target.action == REDACT:
                sets = [sql.SQL("{} = null").format(sql.Identifier(c)) for c in target.entry.erase.null]
                sets += [sql.SQL("{c} = md5({c})").format(c=sql.Identifier(c)) for c in target.entry.erase.hash]
                ops.execute(sql.SQL("update {} set {} where {}").format(target.entry.ident, sql.SQL(", ").join(sets),
                                                                       where), {"ids": ids, "emails": emails})
            else:
                ops.execute(sql.SQL("delete from {} where {}").format(target.entry.ident, where),
                            {"ids": ids, "emails": emails})
    return time.perf_counter() - t0


def bare_transactions_floor(ops, dm, n: int, exclude: set[int]) -> tuple[float, int]:
    """One committed transaction per subject doing only the erase statements (no claim, re-check, residual
    count, store record or audit), on N other accounts spread over the id range; returns (seconds, rows)."""
    held = {r[0] for r in ops.execute("select user_id from legal_holds")}
    total = ops.execute("select count(*) from users").fetchone()[0]
    step = max(1, total // (n + 1))
    ids = [r[0] for r in ops.execute(
        "select id from users where id %% %s = 7 and id <> all(%s) order by id limit %s",
        (step, sorted(exclude | held), n))]
    statements = []
    for target in targets(dm):
        if target.action == REDACT:
            sets = [sql.SQL("{} = null").format(sql.Identifier(c)) for c in target.entry.erase.null]
            sets += [sql.SQL("{c} = md5({c})").format(c=sql.Identifier(c)) for c in target.entry.erase.hash]
            statements.append(sql.SQL("update {} set {} where {}").format(target.entry.ident, sql.SQL(", ").join(sets),
                                                                         target.where()))
        else:
            statements.append(target.delete())
    rows = 0
    t0 = time.perf_counter()
    for uid in ids:
        with ops.transaction():
            email = ops.execute("select lower(btrim(email)) from users where id = %s", (uid,)).fetchone()[0]
            for statement in statements:
                rows += ops.execute(statement, {"user_id": uid, "email": email}).rowcount
    return time.perf_counter() - t0, rows


def purge_figures(url: str, n: int, label: str) -> dict:
    dm, settings = load_datamap(), Settings(purge_threshold=1_000_000)
    with database.connect(url, autocommit=True) as ops, database.connect(url, autocommit=True) as store:
        for conn in (ops, store):
            conn.execute("set time zone 'UTC'")
        compliance_store.migrate(store)
        chosen = pick_subjects(ops, n)
        bulk_floor(ops, dm, chosen)  # warms the cache for these rows, as the second pass and the purge find it
        floor = bulk_floor(ops, dm, chosen)
        run_id = f"bench-{label}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
        ctx = RunContext(run_id=run_id, actor="bench", dag_id="child_data_purge")
        params = PurgeParams(as_of=ANCHOR, dry_run=False, scheduled=False, run_type="manual", user_ids=tuple(chosen))
        step = Step(ctx=ctx, settings=settings, params=params, ops=ops, store=store, datamap=dm, key=KEY)
        purge.detect_children(step)
        plan_s, plan = timed(lambda: purge.plan_purge(step))
        t0 = time.perf_counter()
        result = purge.purge_subjects(step, progress_every=1e9)
        purge_s = time.perf_counter() - t0
        verify_s, _ = timed(lambda: purge.verify_purge(step))
        bare_s, bare_rows = bare_transactions_floor(ops, dm, n, set(chosen)) if label != "warm-up" else (1.0, 0)
        users = ops.execute("select count(*) from users").fetchone()[0]
    total = purge_s + verify_s
    return {"users": users, "subjects": n, "purged": result["outcomes"].get("purged", 0), "rows": plan["rows"],
            "plan_s": round(plan_s, 3), "purge_s": round(purge_s, 3), "verify_s": round(verify_s, 3),
            "seconds": round(total, 3), "per_subject_ms": round(1000 * total / n, 2), "floor_s": round(floor, 3),
            "ratio": round(total / floor, 2), "bare_floor_s": round(bare_s, 3), "bare_floor_rows": bare_rows,
            "bare_ratio": round(total / bare_s, 2)}


def explain_figures(url: str) -> dict:
    """The plan of every erase and residual statement for one child of the large database."""
    dm = load_datamap()
    found: dict[str, str] = {}
    with database.connect(url, autocommit=True) as ops:
        uid, email = ops.execute("""select id, lower(btrim(email)) from users where declared_age < 13 and email is not null
                                    order by id limit 1""").fetchone()
        params = {"user_id": uid, "email": email}
        statements = {}
        for t in targets(dm):
            statements[f"erase {t.label}"] = t.lock_for_redaction() if t.action == REDACT else t.delete()
            statements[f"count {t.label}"] = sql.SQL("select {}").format(t.count())
        statements["residual (one statement)"] = residual_query(targets(dm), ())
        for name, statement in statements.items():
            with ops.transaction(force_rollback=True):
                text = "\n".join(r[0] for r in ops.execute(sql.SQL("explain ") + statement, params))
            scans = sorted({line.strip().split(" on ")[0].lstrip("-> ").strip() + " " + line.split(" on ")[1].split()[0]
                            for line in text.splitlines() if " on " in line and "Scan" in line})
            found[name] = "; ".join(scans)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000, help="users in the large database")
    parser.add_argument("--small-users", type=int, default=100_000, help="users in the small database")
    parser.add_argument("--subjects", type=int, default=1000, help="subjects purged from each database")
    parser.add_argument("--repeat", type=int, default=3, help="detection timings taken (the best is kept)")
    parser.add_argument("--reuse", action="store_true", help="reuse seeded databases of the right size")
    parser.add_argument("--keep", action="store_true", help="leave the databases behind")
    args = parser.parse_args(argv)
    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    names = {"large": "privacy_bench_purge_large", "small": "privacy_bench_purge_small"}
    urls = {"large": seeded(server, names["large"], args.users, args.reuse),
            "small": seeded(server, names["small"], args.small_users, args.reuse)}
    try:
        detect = detection_figures(urls["large"], args.repeat)
        print(f"detection: {detect['users']:,} users, {detect['children']:,} children in {detect['seconds']:.2f} s; "
              f"floor (one pass over users) {detect['floor_s']:.2f} s; ratio {detect['ratio']:.1f} "
              f"(target < {TARGETS['detection_s']:.0f} s)")
        explain = explain_figures(urls["large"])
        seq = {k: v for k, v in explain.items() if "Seq Scan" in v}
        warm = max(1, min(20, args.subjects // 10))
        purge_figures(urls["small"], warm, "warm-up")  # imports, connections, prepared statements: not measured
        purges = {}
        for label in ("small", "large"):
            purges[label] = p = purge_figures(urls[label], args.subjects, label)
            print(f"purge {label}: {p['purged']:,} of {p['subjects']:,} subjects ({p['rows']:,} rows) from "
                  f"{p['users']:,} users in {p['seconds']:.2f} s (purge {p['purge_s']:.2f} + verify {p['verify_s']:.2f}; "
                  f"plan {p['plan_s']:.2f}), {p['per_subject_ms']:.1f} ms/subject; floor (the same rows set-wise, "
                  f"one transaction, rolled back) {p['floor_s']:.2f} s, ratio {p['ratio']:.1f}; floor (one bare "
                  f"committed transaction per subject, {p['subjects']:,} others, {p['bare_floor_rows']:,} rows) "
                  f"{p['bare_floor_s']:.2f} s, ratio {p['bare_ratio']:.1f}")
        flat = purges["large"]["per_subject_ms"] / purges["small"]["per_subject_ms"]
        print(f"flatness: {purges['large']['per_subject_ms']:.1f} / {purges['small']['per_subject_ms']:.1f} ms per "
              f"subject = {flat:.2f} (target <= {TARGETS['flatness']})")
        print("statements on the large database: " + ("every one uses an index" if not seq else
                                                       f"SEQ SCAN in {', '.join(seq)}"))
        for name, scans in explain.items():
            print(f"  {name:42} {scans}")
    finally:
        if not args.keep and not args.reuse:
            for name in names.values():
                database.drop_database(server, name)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({"bench": "purge", "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             "args": {"users": args.users, "small_users": args.small_users,
                                      "subjects": args.subjects}, "host": machine(), "detection": detect, "purge": purges, "flatness": round(flat, 2),
                             "seq_scans": sorted(seq), "targets": TARGETS}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
