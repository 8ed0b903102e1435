"""Request fulfilments (``dsr_fulfilment``, SPEC §4.5). A SKETCH until migration 0006 lands.

Shown only once ``compliance.dsr_fulfilments`` exists. Columns read (issue 16; adjust when the table lands):

    dsr_fulfilments(request_id, action, outcome, package_uri, package_sha256, rows_erased jsonb /* table -> n */,
                    fulfilled_at, run_id)
"""
from __future__ import annotations

TABLES = ("compliance.dsr_fulfilments",)
DAG_ID = "dsr_fulfilment"


def fulfilment_page(conn, *, outcome: str | None = None, limit: int = 50, offset: int = 0) -> dict:
    where, args = ("where outcome = %s", [outcome]) if outcome is not None else ("", [])
    total = conn.execute(f"select count(*) from compliance.dsr_fulfilments {where}", args).fetchone()[0]
    rows = conn.execute(
        f"""select request_id, action, outcome, package_uri, package_sha256,
                   (select coalesce(sum(value::bigint), 0) from jsonb_each_text(rows_erased)), fulfilled_at, run_id
            from compliance.dsr_fulfilments {where}
            order by fulfilled_at desc, request_id limit %s offset %s""", [*args, limit, offset]).fetchall()
    keys = ("request_id", "action", "outcome", "package_uri", "package_sha256", "rows_erased", "fulfilled_at",
            "run_id")
    return {"total": total, "rows": [dict(zip(keys, r)) for r in rows]}


def last_refreshed(conn):
    return conn.execute("select max(fulfilled_at) from compliance.dsr_fulfilments").fetchone()[0]
