"""Request fulfilments (``dsr_fulfilment``): what was done for each request, and the runs.

For the compliance page, the command line and the demo's summary. Request ids, actions, outcomes and reasons
(written by the DAG, never personal data), object URIs, checksums, counts and dates; newest first, served by
the indexes of migration 0006 (``dsr_fulfilments_recent``, ``dsr_fulfilments_outcome``, ``dsr_fulfilments_run``).
"""
from __future__ import annotations

from include.reads.deadlines import closed_state

TABLES = ("compliance.dsr_fulfilments", "compliance.erasure_runs")
DAG_ID = "dsr_fulfilment"
# The outcomes (include.fulfilment.rules.OUTCOMES; repeated so that the page needs nothing but the reads).
OUTCOMES = ("exported", "erased", "restricted", "opted_out", "held", "approval_required", "manual", "skipped",
            "invalid", "no_account", "incomplete")

_PAGE_KEYS = ("request_id", "request_type", "action", "outcome", "reason", "package_uri", "package_sha256",
              "rows_erased", "fulfilled_at", "run_id")


# A request a person has since completed, rejected or closed as withdrawn (for the row ``f``): deadline tracking's
# latest evaluation saw it closed, or saw its status closed (a rejected request whose regime is unknown stays
# 'invalid' to the deadline rules, and waits for no one).
CLOSED = f"""select 1 from compliance.dsr_status s
             where s.request_id = f.request_id and ({closed_state("s")})"""


def fulfilment_page(conn, *, outcome: str | None = None, run_id: str | None = None, still_open: bool = False,
                    limit: int = 50, offset: int = 0) -> dict:
    """One page of requests, the newest outcome first; ``fulfilled_at`` is when the outcome was recorded (for a
    fulfilled request: when it was fulfilled). Filters: ``outcome``, ``run_id``, ``still_open`` (only requests
    deadline tracking's latest evaluation has not seen closed: what 'Needs a person' counts)."""
    where, args = [], []
    if still_open:
        where.append(f"not exists ({CLOSED})")
    if outcome is not None:
        where.append("outcome = %s")
        args.append(outcome)
    if run_id is not None:
        where.append("run_id = %s")
        args.append(run_id)
    clause = f"where {' and '.join(where)}" if where else ""
    total = conn.execute(f"select count(*) from compliance.dsr_fulfilments f {clause}", args).fetchone()[0]
    rows = conn.execute(
        f"""select request_id, request_type, action, outcome, reason, package_uri, package_sha256, rows_erased,
                   recorded_at, run_id
            from compliance.dsr_fulfilments f {clause}
            order by recorded_at desc, request_id desc limit %s offset %s""", [*args, limit, offset]).fetchall()
    return {"total": total, "rows": [dict(zip(_PAGE_KEYS, r)) for r in rows]}


def last_refreshed(conn):
    return conn.execute("select max(recorded_at) from compliance.dsr_fulfilments").fetchone()[0]


def last_run(conn) -> dict | None:
    """The newest live run that finished (its id and when): a live run that found nothing new to record still
    refreshed the section; a dry run records no outcome, so it refreshes nothing. None before the first."""
    row = conn.execute("""select run_id, finished_at from compliance.erasure_runs
                          where dag_id = 'dsr_fulfilment' and finished_at is not null and not dry_run
                          order by started_at desc limit 1""").fetchone()
    return None if row is None else {"run_id": row[0], "finished_at": row[1]}


def outcome_counts(conn) -> dict[str, int]:
    """Requests by their latest outcome."""
    return dict(sorted(conn.execute("select outcome, count(*) from compliance.dsr_fulfilments group by 1").fetchall()))


def recent_runs(conn, limit: int = 20) -> list[dict]:
    """The newest runs: dry run, targets, state, erasure plan (hash, subjects, approval), outcomes recorded."""
    cur = conn.execute(
        """select run_id, as_of, dry_run, request_ids, state, plan_hash, erase_subjects, approval, approval_state,
                  approved_by, counts -> 'outcomes' as outcomes, counts -> 'planned' as planned, started_at,
                  finished_at
           from compliance.dsr_fulfilment_runs order by started_at desc limit %s""", (limit,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def awaiting_a_person(conn) -> list[dict]:
    """Requests a person must act on (manual, held, approval_required, no_account, invalid), oldest first."""
    cur = conn.execute("""select request_id, request_type, outcome, reason, recorded_at from compliance.dsr_fulfilments
                          where outcome in ('manual', 'held', 'approval_required', 'no_account', 'invalid')
                          order by recorded_at, request_id""")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]
