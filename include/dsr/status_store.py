"""Write evaluations to the compliance store and keep the run watermark in ``compliance.dsr_runs``.

Live evaluations update ``compliance.dsr_status`` (a row only where its evaluation changed); a what-if
(evaluated as of another day than the run's own) goes to ``compliance.dsr_whatif`` under its run id and
never touches the live status.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Iterable

from psycopg import sql
from psycopg.types.json import Jsonb

from include.deadlines import Evaluation
from include.dsr.source import Selection

CLOSED_STATES = ("closed_on_time", "closed_late")
# completed_at and the run clock come from two databases; a day's margin absorbs any skew between them.
_WATERMARK_MARGIN = timedelta(days=1)

_STATUS_COLUMNS = ("request_id", "regime", "request_type", "status", "clock_start", "ack_due", "statutory_due",
                   "policy_due", "effective_due", "state", "days_left", "extension", "flags", "invalid_reason",
                   "assignee_email", "as_of", "evaluated_at", "run_id")
# Only these decide whether a row changed: a repeated run with the same inputs writes nothing.
_COMPARED = _STATUS_COLUMNS[1:16]


def full_run_selection(store) -> Selection:
    """What a full run must look at, from what earlier runs recorded."""
    tracked = [r[0] for r in store.execute(
        "select request_id from compliance.dsr_status where state <> all(%s)", (list(CLOSED_STATES),))]
    newest_id, last_start = store.execute(
        """select max(max_request_id), max(started_at) from compliance.dsr_runs
           where max_request_id is not null and finished_at is not null""").fetchone()
    if newest_id is None:
        return Selection(tracked_ids=tuple(tracked))
    return Selection(tracked_ids=tuple(tracked), newer_than_id=newest_id,
                     completed_since=last_start - _WATERMARK_MARGIN)


def start_run(store, run_id: str, as_of: date, dry_run: bool, started_at: datetime, what_if: bool = False) -> None:
    # A retried task reuses its run row: the run is one unit however many attempts it takes.
    store.execute(
        """insert into compliance.dsr_runs (run_id, as_of, dry_run, what_if, started_at) values (%s, %s, %s, %s, %s)
           on conflict (run_id) do update set as_of = excluded.as_of, dry_run = excluded.dry_run,
                                              what_if = excluded.what_if, finished_at = null""",
        (run_id, as_of, dry_run, what_if, started_at))


def finish_run(store, run_id: str, *, max_request_id: int | None, evaluated: int, changed: int,
               counts: dict, finished_at: datetime) -> None:
    store.execute(
        """update compliance.dsr_runs set max_request_id = %s, evaluated = %s, changed = %s, counts = %s,
                  finished_at = %s where run_id = %s""",
        (max_request_id, evaluated, changed, Jsonb(counts), finished_at, run_id))


def write_statuses(store, rows: Iterable[tuple[Evaluation, str | None]], *, as_of: date,
                   evaluated_at: datetime, run_id: str, what_if: bool = False) -> tuple[int, int]:
    """Record evaluations (with the assignee each escalation goes to); returns (written, changed).

    Live: upsert into ``dsr_status`` where the evaluation changed. What-if: into ``dsr_whatif``.
    """
    written = 0
    with store.transaction():
        store.execute("""create temporary table dsr_status_incoming
                         (like compliance.dsr_status including defaults) on commit drop""")
        columns = sql.SQL(", ").join(map(sql.Identifier, _STATUS_COLUMNS))
        copy_sql = sql.SQL("copy dsr_status_incoming ({}) from stdin").format(columns)
        with store.cursor().copy(copy_sql) as copy:
            for ev, assignee in rows:
                copy.write_row((ev.request_id, ev.regime, ev.request_type, ev.status, ev.clock_start,
                                ev.ack_due, ev.statutory_due, ev.policy_due, ev.effective_due, ev.state,
                                ev.days_left, ev.extension, list(ev.flags), ev.invalid_reason, assignee,
                                as_of, evaluated_at, run_id))
                written += 1
        if what_if:
            cur = store.execute(sql.SQL(
                """insert into compliance.dsr_whatif as w ({columns}) select {columns} from dsr_status_incoming
                   on conflict (run_id, request_id) do update set {updates}""").format(
                columns=columns, updates=sql.SQL(", ").join(
                    sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in _STATUS_COLUMNS[1:])))
            return written, cur.rowcount
        cur = store.execute(sql.SQL(
            """insert into compliance.dsr_status as s ({columns})
               select {columns} from dsr_status_incoming
               on conflict (request_id) do update set {updates} where {changed}""").format(
            columns=columns,
            updates=sql.SQL(", ").join(
                sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in _STATUS_COLUMNS[1:]),
            changed=sql.SQL(" or ").join(
                sql.SQL("s.{0} is distinct from excluded.{0}").format(sql.Identifier(c)) for c in _COMPARED)))
        changed = cur.rowcount
    return written, changed


def prune_whatifs(store, *, older_than: datetime) -> int:
    """Drop what-if results evaluated before ``older_than``; returns how many rows went."""
    return store.execute("delete from compliance.dsr_whatif where evaluated_at < %s", (older_than,)).rowcount
