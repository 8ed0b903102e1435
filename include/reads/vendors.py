"""Vendor data-sharing manifests: what was shared with whom per period, the rules broken, the runs.

For the compliance page, the command line and the demo's summary. Vendor ids and names (companies), counts,
checksums and object URIs only; newest period first, served by the indexes of migration 0004.
"""
from __future__ import annotations

from datetime import datetime

TABLES = ("compliance.vendor_manifests", "compliance.vendor_manifest_runs")
DAG_ID = "vendor_sharing_manifests"

_COLUMNS = """vendor_id, period_label, period_start, period_end, vendor_known, vendor_name, vendor_kind, row_count,
              subject_count, record_count, violation_rows, violations, invalid_rows, data_sha256, data_uri,
              manifest_uri, revision, run_id, generated_at"""


def manifests(conn, *, vendor_id: int | None = None, with_violations: bool = False, limit: int = 50,
              before: datetime | None = None) -> list[dict]:
    """The newest manifests (by period start; ``undated`` ones last), for one vendor or all.

    ``before``: only periods starting before it (the next page starts at the last row's ``period_start``).
    """
    where = ["(%(vendor)s::bigint is null or vendor_id = %(vendor)s)",
             "(%(before)s::timestamptz is null or period_start < %(before)s)"]
    if with_violations:
        where.append("violation_rows > 0")
    cur = conn.execute(f"""select {_COLUMNS} from compliance.vendor_manifests where {' and '.join(where)}
                           order by period_start desc nulls last, vendor_id limit %(limit)s""",
                       {"vendor": vendor_id, "before": before, "limit": limit})
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def manifest_page(conn, *, vendor_id: int | None = None, with_violations: bool = False, limit: int = 50,
                  offset: int = 0) -> dict:
    """One page of manifests (newest period first, ``undated`` last) and how many there are in all: the page's
    numbered pages over the same order and indexes as :func:`manifests`."""
    where = ["(%(vendor)s::bigint is null or vendor_id = %(vendor)s)"]
    if with_violations:
        where.append("violation_rows > 0")
    args = {"vendor": vendor_id, "limit": limit, "offset": offset}
    total = conn.execute(f"select count(*) from compliance.vendor_manifests where {' and '.join(where)}",
                         args).fetchone()[0]
    cur = conn.execute(f"""select {_COLUMNS} from compliance.vendor_manifests where {' and '.join(where)}
                           order by period_start desc nulls last, vendor_id limit %(limit)s offset %(offset)s""", args)
    names = [c.name for c in cur.description]
    return {"total": total, "rows": [dict(zip(names, row)) for row in cur]}


def vendor_ids(conn) -> list[int]:
    """The vendors that have a manifest, by number: the compliance page's vendor filter lists them (a box to type in
    would put whatever is typed, a phone number too, into the API server's access log with the URL)."""
    return [row[0] for row in conn.execute("select distinct vendor_id from compliance.vendor_manifests order by 1")]


def last_run(conn) -> dict | None:
    """The newest live run that finished: its id and when (a dry run writes no manifest, so it refreshes nothing)."""
    row = conn.execute("""select run_id, finished_at from compliance.vendor_manifest_runs
                          where finished_at is not null and not dry_run order by started_at desc limit 1""").fetchone()
    return None if row is None else {"run_id": row[0], "finished_at": row[1]}


def violation_totals(conn, *, since: datetime | None = None) -> dict[str, int]:
    """Shares breaking each rule, over the manifests of periods starting at or after ``since`` (all if None)."""
    rows = conn.execute("""select rule, sum(count::bigint) from compliance.vendor_manifests,
                                  jsonb_each_text(violations) as v(rule, count)
                           where %(since)s::timestamptz is null or period_start >= %(since)s
                           group by rule having sum(count::bigint) > 0 order by rule""", {"since": since})
    return {rule: int(n) for rule, n in rows}


def runs(conn, *, limit: int = 20) -> list[dict]:
    """The newest runs: period, targets, dry run, what each vendor's step did, shares and violations."""
    cur = conn.execute("""select run_id, period_label, period_start, period_end, vendor_ids, dry_run, started_at,
                                 finished_at, planned, outcomes, shares, shares_without_vendor, undated_shares,
                                 violations
                          from compliance.vendor_manifest_runs order by started_at desc limit %s""", (limit,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def notices(conn) -> dict[str, int]:
    """Violation emails by status."""
    return dict(conn.execute("select status, count(*) from compliance.vendor_violation_notices group by 1"))
