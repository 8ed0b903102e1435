"""Deterministic demo data for the reference operational schema (the reference schema (docs/rules.md)).

``seed(url, users=..., anchor=...)`` creates the schema in the database at ``url``, fills it and returns a
summary. Two kinds of rows are written:

* **Planted rows** (only when ``users >= 200``, from ``devkit.seed.planted``): a fixed, hand-written set
  of users, requests, shares, reports, holds and suppressions that carry every dirty case of the rules
  (docs/rules.md). They take the lowest ids of each table, depend only on the anchor date, and their
  ids are returned in ``summary["planted"]`` so that tests and DAG features can rely on them.
* **Bulk rows** for the remaining users (from ``devkit.seed.bulk``), generated column-wise with numpy
  from ``seed``; the same dirty cases are spread through them at small rates (counted in
  ``summary["bulk_dirty"]``).

The same ``(users, seed, anchor, requests)`` always gives byte-identical table contents: every random
stream is spawned from one ``SeedSequence`` in a fixed order, nothing reads the clock, and the planted
rows are pure functions of the anchor.

Both draw on the word lists and the vendor list of ``devkit.seed.vocabulary``; the rows reach the
database through ``devkit.seed.loading`` (COPY with FREEZE, then the index builds).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator

import psycopg
import pyarrow as pa

from devkit import operational_schema
from devkit.seed.bulk import BulkGenerator
from devkit.seed.layout import TABLES, rows_table
from devkit.seed.loading import advance_sequences_and_analyze, build_indexes, load, row_counts
from devkit.seed.planted import PlantedRows, plant, policy_rows, vendor_rows
from devkit.seed.vocabulary import LEGAL_BASES, PER_USER, UNKNOWN_VENDOR_IDS, VENDORS, WINDOW_DAYS

log = logging.getLogger(__name__)

PLANT_MIN_USERS = 200


def seed(url: str, *, users: int, seed: int = 42, anchor: dt.date, requests: int | None = None,
         replace: bool = False) -> dict:
    """Create the reference schema in the database at ``url`` and fill it; return a summary.

    ``requests`` is the exact total of ``privacy_requests`` rows (planted ones included); by default
    it is the planted set plus 3 % of the bulk users. ``replace=True`` drops existing reference tables
    first; otherwise existing tables are an error.

    Summary: ``rows`` (per table), ``total_rows``, ``planted`` (edge case -> ids: user ids for user
    cases, row ids of the named table for ``request_*``, ``share_*``, ``child_report_*``, ``hold_*``),
    ``planted_counts``, ``planted_rows`` (per table: planted rows hold ids 1..n), ``bulk_dirty`` (how
    many bulk rows carry each dirty case), ``vendors``, ``policy``, ``timings``.
    """
    if users < 0:
        raise ValueError("users must be >= 0")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    planted = plant(anchor) if users >= PLANT_MIN_USERS else PlantedRows(anchor)
    n_planted_users = len(planted.rows["users"])
    n_bulk_users = users - n_planted_users
    n_planted_requests = len(planted.rows["privacy_requests"])
    if requests is None:
        n_bulk_requests = int(round(PER_USER["privacy_requests"] * n_bulk_users))
    elif requests < n_planted_requests:
        raise ValueError(f"requests={requests} is fewer than the {n_planted_requests} planted requests "
                         f"that every seed with users >= {PLANT_MIN_USERS} contains")
    else:
        n_bulk_requests = requests - n_planted_requests
    if n_bulk_requests and n_bulk_users <= 0:
        raise ValueError("bulk requests need bulk users; raise users")

    bulk = BulkGenerator(n_users=n_bulk_users, first_id=n_planted_users + 1, seed=seed, anchor=anchor,
                         planted=planted, n_requests=n_bulk_requests)
    planted_emails = {r["email"] for r in planted.rows["email_suppressions"]}

    def parts() -> Iterator[tuple[str, pa.Table]]:
        def timed(name, make):
            t0 = time.perf_counter()
            table = make()
            timings[f"generate_{name}"] = time.perf_counter() - t0
            return table

        yield "vendors", rows_table("vendors", vendor_rows(anchor))
        yield "policy_versions", rows_table("policy_versions", policy_rows(anchor))
        for table in TABLES:
            if planted.rows.get(table) and table not in ("vendors", "policy_versions"):
                yield table, rows_table(table, planted.rows[table])
        if bulk.n == 0:
            return
        yield "users", timed("users", bulk.users_table)
        yield "privacy_requests", timed("privacy_requests", bulk.requests_table)
        yield "data_shares", timed("data_shares", bulk.shares_table)
        yield "usage_events", timed("usage_events", bulk.usage_table)
        yield "access_logs", timed("access_logs", bulk.access_table)
        yield "uploads", timed("uploads", bulk.uploads_table)
        yield "support_messages", timed("support_messages", bulk.support_table)
        yield "social_profiles", timed("social_profiles", bulk.social_table)
        yield "child_reports", timed("child_reports", bulk.child_reports_table)
        yield "legal_holds", timed("legal_holds", bulk.holds_table)
        yield "email_suppressions", timed("email_suppressions", lambda: bulk.suppressions_table(planted_emails))

    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        # One transaction from CREATE TABLE to the last COPY: FREEZE needs the table created in the
        # loading transaction, and a failed seed leaves no half-filled schema behind.
        with conn.transaction():
            operational_schema.create_reference_schema(conn, with_indexes=False, replace=replace)
            load(conn, parts(), timings)
        timings["load"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        build_indexes(conn)
        timings["indexes"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        conn.autocommit = True
        advance_sequences_and_analyze(conn)
        timings["analyze"] = time.perf_counter() - t0
        rows = row_counts(conn)

    timings["total"] = time.perf_counter() - started
    summary = {
        "users": users,
        "seed": seed,
        "anchor": anchor.isoformat(),
        "rows": rows,
        "total_rows": sum(rows.values()),
        "planted": {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in planted.keys.items()},
        "planted_counts": {k: len(v) for k, v in planted.keys.items()},
        "planted_rows": {t: len(planted.rows.get(t, ())) for t in TABLES},
        "bulk_dirty": dict(bulk.dirty),
        "vendors": {
            "by_kind": {kind: [v.id for v in VENDORS if v.kind == kind] for kind in LEGAL_BASES},
            "without_dpa": [v.id for v in VENDORS if v.dpa_days_before_anchor is None],
            "dpa_after_shares": [v.id for v in VENDORS if v.dpa_days_before_anchor is not None
                                 and v.dpa_days_before_anchor < WINDOW_DAYS // 4],
            "inactive": [v.id for v in VENDORS if not v.active],
            "unknown_ids": list(UNKNOWN_VENDOR_IDS),
        },
        "policy": {"versions": [r["version"] for r in policy_rows(anchor)],
                   "current": policy_rows(anchor)[-1]["version"]},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    log.info("seeded %d rows in %d tables in %.1f s", summary["total_rows"], len(rows), timings["total"])
    return summary
