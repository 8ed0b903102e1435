"""Vendor data-sharing manifests (``vendor_sharing_manifests``, SPEC §4.3). A SKETCH until migration 0004 lands.

Shown only once ``compliance.vendor_manifests`` exists. Columns read (issue 14; adjust when the table lands):

    vendor_manifests(vendor_id, period_start, period_end, row_count, subjects, violations jsonb /* rule -> count */,
                     manifest_uri, data_sha256, generated_at, run_id)
"""
from __future__ import annotations

TABLES = ("compliance.vendor_manifests",)
DAG_ID = "vendor_sharing_manifests"


def manifest_page(conn, *, vendor_id: int | None = None, limit: int = 50, offset: int = 0) -> dict:
    """Manifests per vendor and period, newest period first, with violation counts and the object path."""
    where, args = ("where vendor_id = %s", [vendor_id]) if vendor_id is not None else ("", [])
    total = conn.execute(f"select count(*) from compliance.vendor_manifests {where}", args).fetchone()[0]
    rows = conn.execute(
        f"""select vendor_id, period_start, period_end, row_count, subjects,
                   (select coalesce(sum(value::bigint), 0) from jsonb_each_text(violations)), manifest_uri,
                   generated_at, run_id
            from compliance.vendor_manifests {where}
            order by period_start desc, vendor_id limit %s offset %s""", [*args, limit, offset]).fetchall()
    keys = ("vendor_id", "period_start", "period_end", "rows", "subjects", "violations", "manifest_uri",
            "generated_at", "run_id")
    return {"total": total, "rows": [dict(zip(keys, r)) for r in rows]}


def last_refreshed(conn):
    return conn.execute("select max(generated_at) from compliance.vendor_manifests").fetchone()[0]
