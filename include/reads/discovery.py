"""Personal-data discovery: the open findings and their age, the last runs and their orphans.

For the compliance page, the command line and the demo's summary: connections, tables, columns, kinds, counts and
dates only (discovery never stores a value).
"""
from __future__ import annotations

TABLES = ("compliance.discovery_findings", "compliance.discovery_runs")
DAG_ID = "personal_data_discovery"


def open_findings(conn, *, limit: int = 50) -> list[dict]:
    """The open findings, oldest first, with their age in whole days."""
    return _rows(conn, limit, 0)


def finding_page(conn, *, limit: int = 50, offset: int = 0) -> dict:
    """One page of the open findings, oldest first, and how many are open in all."""
    total = open_count(conn)
    return {"total": total, "rows": _rows(conn, limit, offset)}


def _rows(conn, limit: int, offset: int) -> list[dict]:
    cur = conn.execute(
        """select finding_id, connection_id, schema_name, table_name, column_name, finding, kind, confidence, matched,
                  sampled, first_seen_at, last_seen_at, last_run_id, notice,
                  (current_date - (first_seen_at at time zone 'UTC')::date) as age_days
           from compliance.discovery_findings where status = 'open'
           order by first_seen_at, finding_id limit %s offset %s""", (limit, offset))
    names = [c.name for c in cur.description]
    rows = [dict(zip(names, r)) for r in cur]
    for row in rows:
        table = row["table_name"] if row["schema_name"] == "public" else f"{row['schema_name']}.{row['table_name']}"
        row["where"] = f"{table}.{row['column_name']}" if row["column_name"] else table
    return rows


def open_count(conn) -> int:
    return conn.execute("select count(*) from compliance.discovery_findings where status = 'open'").fetchone()[0]


def status_counts(conn) -> dict[str, int]:
    """Findings by status (open, dismissed, resolved)."""
    return dict(conn.execute("select status, count(*) from compliance.discovery_findings group by 1 order by 1"))


def last_run(conn) -> dict | None:
    cur = conn.execute("""select run_id, scanned_at, connections, tables, columns, sampled_rows, findings, new_findings,
                                 orphans
                          from compliance.discovery_runs order by scanned_at desc limit 1""")
    row = cur.fetchone()
    return dict(zip([c.name for c in cur.description], row)) if row else None
