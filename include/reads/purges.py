"""Child-data purges (``child_data_purge``, SPEC §4.2), per run. A SKETCH until migration 0003 lands.

The page shows this section only once ``compliance.child_purges`` exists (``reads.missing_tables``). The
columns read here are the ones issue 13 describes; when the real table differs, the section says that its
read does not match the table (and nothing else on the page is affected) until this module is adjusted:

    child_purges(run_id, subject_hash, outcome in ('purged','held','invalid','dry_run','no_match'),
                 detected_at, purged_at, vendors text[] /* downstream deletion notices */,
                 notices_sent_at /* null while outstanding */)
"""
from __future__ import annotations

TABLES = ("compliance.child_purges",)
DAG_ID = "child_data_purge"


def purge_runs(conn, *, limit: int = 20, offset: int = 0) -> dict:
    """The newest purge runs: subjects purged, held, invalid, dry-run, no-match reports, notices outstanding."""
    total = conn.execute("select count(distinct run_id) from compliance.child_purges").fetchone()[0]
    rows = conn.execute(
        """select run_id, min(detected_at), max(purged_at),
                  count(*) filter (where outcome = 'purged'), count(*) filter (where outcome = 'held'),
                  count(*) filter (where outcome = 'invalid'), count(*) filter (where outcome = 'dry_run'),
                  count(*) filter (where outcome = 'no_match'),
                  coalesce(sum(cardinality(vendors)) filter (where notices_sent_at is null), 0)
           from compliance.child_purges group by run_id
           order by min(detected_at) desc, run_id limit %s offset %s""", (limit, offset)).fetchall()
    keys = ("run_id", "detected_at", "purged_at", "purged", "held", "invalid", "dry_run", "no_match",
            "notices_outstanding")
    return {"total": total, "rows": [dict(zip(keys, r)) for r in rows]}


def last_refreshed(conn):
    return conn.execute("select max(coalesce(purged_at, detected_at)) from compliance.child_purges").fetchone()[0]
