"""The child-data purge: runs, subjects by outcome, outstanding vendor deletion notices (hashes and counts only)."""
from __future__ import annotations


def recent_runs(conn, limit: int = 20) -> list[dict]:
    """The newest purge runs: run id, as-of date, dry run, state, plan hash and size, approval, outcomes."""
    cur = conn.execute(
        """select run_id, as_of, dry_run, state, plan_hash, plan_subjects, approval, approval_state, approved_by,
                  counts -> 'outcomes' as outcomes, started_at, finished_at
           from compliance.child_purge_runs order by started_at desc limit %s""", (limit,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def outcomes(conn, run_id: str | None = None) -> dict[str, int]:
    """Subjects by outcome in one run (default: the newest live run)."""
    if run_id is None:
        row = conn.execute("""select run_id from compliance.child_purge_runs where not dry_run
                              order by started_at desc limit 1""").fetchone()
        if row is None:
            return {}
        run_id = row[0]
    return dict(sorted(conn.execute("""select outcome, count(*) from compliance.child_purges where run_id = %s
                                       group by outcome""", (run_id,)).fetchall()))


def purged_total(conn) -> int:
    """Distinct subjects ever purged (by keyed hash)."""
    return conn.execute("select count(distinct subject_hash) from compliance.child_purges "
                        "where outcome = 'purged'").fetchone()[0]


def outstanding_notices(conn) -> list[dict]:
    """Deletion notices still owed, per vendor: subjects, shares, oldest."""
    cur = conn.execute("""select vendor_id, vendor_name, vendor_known, subjects, shares, oldest
                          from compliance.vendor_deletion_notices_outstanding order by vendor_id""")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def open_records(conn) -> list[tuple[str, str, int]]:
    """(run id, outcome, count) of records still in progress (planned, erasing): a failed run to look at."""
    return conn.execute("""select run_id, outcome, count(*) from compliance.child_purges
                           where outcome in ('planned', 'erasing') group by 1, 2 order by 1, 2""").fetchall()
