"""Privacy requests and their deadlines: live states, invalid reasons, escalations, digests, what-ifs."""
from __future__ import annotations

from datetime import date
from typing import Mapping

from psycopg import sql

from include.deadline_rules import GONE_STATUS


def request_states(conn) -> dict[str, int]:
    """Live requests by state (from ``compliance.dsr_status``)."""
    return dict(sorted(conn.execute("select state, count(*) from compliance.dsr_status group by state")))


def invalid_reasons(conn) -> list[tuple[str, int]]:
    """Each invalid reason with how many live requests carry it, commonest first."""
    return conn.execute("""select invalid_reason, count(*) from compliance.dsr_status where state = 'invalid'
                           group by 1 order by 2 desc, 1""").fetchall()


def escalation_counts(conn) -> dict[str, int]:
    return dict(conn.execute("select status, count(*) from compliance.dsr_escalations group by status"))


def digests_sent(conn) -> int:
    return conn.execute("select count(*) from compliance.dsr_digests where status = 'sent'").fetchone()[0]


def whatif_runs(conn, limit: int = 50) -> list[dict]:
    """The newest what-if runs whose results are still kept: run id, as-of date, when, how many requests, states.

    Read from ``compliance.dsr_runs`` (one row per run, with its state counts) rather than by grouping
    ``dsr_whatif``, which holds one row per request and run; the ``exists`` probe uses dsr_whatif's key. A run that
    evaluated no request (as of a day before any was received) has no rows to prune and is listed.
    """
    rows = conn.execute(
        """select r.run_id, r.as_of, r.started_at, r.finished_at, r.evaluated, r.counts
           from compliance.dsr_runs r
           where r.what_if and ((r.evaluated = 0 and r.finished_at is not null)
                                or exists (select 1 from compliance.dsr_whatif w where w.run_id = r.run_id))
           order by r.started_at desc, r.run_id limit %s""", (limit,)).fetchall()
    return [{"run_id": r, "as_of": a, "evaluated_at": s, "finished_at": f, "requests": n,
             "states": dict(sorted((c or {}).items()))} for r, a, s, f, n, c in rows]


def whatif_with_no_requests(conn, run_id: str) -> date | None:
    """The day of a finished what-if run that evaluated no request (none had been received by its day and not
    closed before it). A what-if that has not finished (still running, or failed: its row starts at 0) is not one."""
    row = conn.execute("""select as_of from compliance.dsr_runs
                          where run_id = %s and what_if and evaluated = 0 and finished_at is not null""",
                       (run_id,)).fetchone()
    return row and row[0]


def whatif_rows(conn, run_id: str) -> list[dict]:
    """One what-if run's evaluations, by request id."""
    cur = conn.execute(
        """select request_id, regime, request_type, state, effective_due, days_left, as_of, invalid_reason
           from compliance.dsr_whatif where run_id = %s order by request_id""", (run_id,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


# Each state in a few words, for summaries read outside Airflow (the DAG's docs say it at length).
STATE_MEANINGS = {
    "overdue": "past the effective due date; escalated once",
    "ack_overdue": "CCPA: receipt not confirmed within 10 business days; escalated once",
    "due_soon": "due within the due-soon window (7 days by default); escalated once",
    "awaiting_identity": "GDPR: identity not verified yet, so the clock has not started",
    "on_track": "open, with more time left than the due-soon window",
    "invalid": "cannot be evaluated; the reason is recorded",
    "closed_late": "closed after its effective due date",
    "closed_on_time": "closed on or before its effective due date",
}

# "Overdue first": the order the compliance page lists requests in (worst first, closed last).
STATE_ORDER = ("overdue", "ack_overdue", "due_soon", "awaiting_identity", "on_track", "invalid", "closed_late",
               "closed_on_time")
# The same expression is indexed by migration 0007 (dsr_status_page_order): keep the two identical.
_STATE_RANK = sql.SQL("array_position('{" + ",".join(STATE_ORDER) + "}'::text[], state)")
_PAGE_COLUMNS = ("request_id", "regime", "request_type", "state", "days_left", "effective_due", "ack_due",
                 "clock_start", "extension", "flags", "invalid_reason", "as_of", "evaluated_at", "run_id")
REQUEST_FILTERS = ("regime", "request_type", "state", "open")


def closed_state(alias: str) -> str:
    """SQL: the ``dsr_status`` row ``alias`` is of a closed request: evaluated closed, or its status is closed (a
    rejected request whose regime is unknown stays 'invalid' to the deadline rules, and waits for no one), or it is no
    longer in the operational database (:data:`GONE_STATUS`: nothing is left to act on)."""
    return (f"coalesce({alias}.state in ('closed_on_time', 'closed_late'), false) "
            f"or coalesce({alias}.status in ('completed', 'rejected', 'withdrawn', '{GONE_STATUS}'), false)")


def request_page(conn, filters: Mapping[str, str | None] | None = None, *, limit: int = 50, offset: int = 0,
                 total: int | None = None) -> dict:
    """One page of live requests, overdue first (then by days left, then id), with the total that match.

    ``filters``: exact values of ``regime``, ``request_type`` and ``state`` (absent or None: any). Each row: the request's id, regime, type, state, days left, due
    dates, extension, flags, invalid reason and the evaluation that recorded it (as-of date, time, run id);
    never the assignee or the requester. ``total`` (when the caller knows it, e.g. from
    :func:`request_breakdown`) saves a count.

    Index-backed (migration 0007): each combination of filters has an index in the page's order, so a
    page reads ``limit`` index entries after skipping ``offset``; a page past the middle is read from the
    end (the same index backwards), so no page skips more than half of the matching rows.
    """
    unknown = sorted(set(filters or {}) - set(REQUEST_FILTERS))
    if unknown:
        raise ValueError(f"requests cannot be filtered by {', '.join(unknown)} (only by {', '.join(REQUEST_FILTERS)})")
    state = (filters or {}).get("state")
    where, args = _filters({name: (filters or {}).get(name) for name in REQUEST_FILTERS})
    if total is None:
        total = conn.execute(sql.SQL("select count(*) from compliance.dsr_status {}").format(where),
                             args).fetchone()[0]
    # With a state filter the state's rank is one value: ordering by it would only hide the index to use.
    keys = ([] if state is not None else [_STATE_RANK]) + [sql.SQL("days_left"), sql.SQL("request_id")]
    backwards = offset > total // 2 and offset < total
    if backwards:
        limit, offset = min(limit, total - offset), max(total - offset - limit, 0)
    direction = sql.SQL(" desc nulls first" if backwards else " asc nulls last")
    cur = conn.execute(sql.SQL(
        """select {columns} from compliance.dsr_status {where} order by {order} limit %s offset %s""").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, _PAGE_COLUMNS)), where=where,
        order=sql.SQL(", ").join(key + direction for key in keys)), [*args, limit, offset])
    rows = [dict(zip(_PAGE_COLUMNS, row)) for row in cur]
    return {"total": total, "rows": rows[::-1] if backwards else rows}


def _filters(values: dict[str, str | None]) -> tuple[sql.Composable, list]:
    """Exact values, and ``open`` ('only': the requests not closed, :func:`closed_state`)."""
    still_open = values.pop("open", None) is not None
    terms = [sql.SQL("{} = %s").format(sql.Identifier(name)) for name, value in values.items() if value is not None]
    args = [value for value in values.values() if value is not None]
    if still_open:
        terms.append(sql.SQL("not ({})").format(sql.SQL(closed_state("compliance.dsr_status"))))
    return (sql.SQL("where ") + sql.SQL(" and ").join(terms) if terms else sql.SQL("")), args


_BREAKDOWNS: dict[tuple, tuple[tuple, list]] = {}


def request_breakdown(conn) -> list[tuple[str | None, str | None, str, int]]:
    """Live requests by (regime, type, state), counted once per evaluation run and then remembered.

    ``dsr_status`` changes only while a live evaluation run writes, so the counts are kept under the newest
    run's start and finish times and recounted only after another run. While a run started after the newest
    finish (one writing now, or one that failed after its write committed and never finished), every look
    counts afresh: counts kept then could predate its write.
    """
    started, finished, runs = conn.execute("select max(started_at), max(finished_at), count(*) "
                                           "from compliance.dsr_runs where not what_if").fetchone()
    if started is not None and (finished is None or started > finished):
        return _count_breakdown(conn)
    version = (started, finished, runs)
    where = (conn.info.host, conn.info.port, conn.info.dbname)
    cached = _BREAKDOWNS.get(where)
    if cached is not None and cached[0] == version:
        return cached[1]
    rows = _count_breakdown(conn)
    _BREAKDOWNS[where] = (version, rows)
    return rows


def _count_breakdown(conn) -> list[tuple[str | None, str | None, str, int]]:
    """Live requests counted by (regime, request type, state): the page's filter choices and counts."""
    return conn.execute("""select regime, request_type, state, count(*) from compliance.dsr_status
                           group by 1, 2, 3 order by 1, 2, 3""").fetchall()


def last_run(conn, *, what_if: bool = False) -> dict | None:
    """The newest finished ``dsr_deadline_tracking`` run (live, or what-if): when the data was refreshed."""
    row = conn.execute(
        """select run_id, as_of, started_at, finished_at, dry_run, evaluated, changed from compliance.dsr_runs
           where what_if = %s and finished_at is not null order by finished_at desc, run_id limit 1""",
        (what_if,)).fetchone()
    if row is None:
        return None
    return dict(zip(("run_id", "as_of", "started_at", "finished_at", "dry_run", "evaluated", "changed"), row))


def as_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
