"""Write evaluations to the compliance store and keep the run watermark in ``compliance.dsr_runs``.

Live evaluations update ``compliance.dsr_status`` (a row only where its evaluation changed); a what-if
(evaluated as of another day than the run's own) goes to ``compliance.dsr_whatif`` under its run id and
never touches the live status.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.types.json import Jsonb

from include import bulk
from include.deadline_rules import GONE_REASON, GONE_STATUS
from include.deadlines.source import Selection

CLOSED_STATES = ("closed_on_time", "closed_late")
# completed_at and the run clock come from two databases; a day's margin absorbs any skew between them.
_WATERMARK_MARGIN = timedelta(days=1)

_STATUS_COLUMNS = ("request_id", "regime", "request_type", "status", "clock_start", "ack_due", "statutory_due",
                   "policy_due", "effective_due", "state", "days_left", "extension", "flags", "invalid_reason",
                   "assignee_email", "as_of", "evaluated_at", "run_id")
# dsr_status also keeps each row's fingerprint (see StatusWriter); dsr_whatif does not need one.
_WRITTEN = (*_STATUS_COLUMNS, "fingerprint")
_DATE_COLUMNS = ("clock_start", "ack_due", "statutory_due", "policy_due", "effective_due")


def full_run_selection(store) -> Selection:
    """What a full run must look at, from what earlier runs recorded."""
    # The ids travel as one array literal, not as a Python int per request.
    tracked = store.execute("select coalesce(array_agg(request_id)::text, '{}') from compliance.dsr_status "
                            "where state <> all(%s)", (list(CLOSED_STATES),)).fetchone()[0]
    newest_id, last_start = store.execute(
        """select max(max_request_id), max(started_at) from compliance.dsr_runs
           where max_request_id is not null and finished_at is not null""").fetchone()
    if newest_id is None:
        return Selection(tracked=tracked)
    return Selection(tracked=tracked, newer_than_id=newest_id, completed_since=last_start - _WATERMARK_MARGIN)


def mark_gone(store, request_ids: list[int], *, as_of: date, evaluated_at: datetime, run_id: str) -> int:
    """Record the tracked requests the operational database no longer has (:func:`source.missing_ids`) as ``invalid``
    with :data:`GONE_REASON` and status :data:`GONE_STATUS`, no days left: closed to every count (the page's, the
    digest's), never again overdue or due soon. Their due dates are kept for the record; a row evaluated as of a later
    day is left as it is, and one already so recorded is not written again. Its fingerprint is cleared, so that the
    request, restored, is written again. Returns how many rows changed."""
    if not request_ids:
        return 0
    return store.execute(
        """update compliance.dsr_status
           set state = 'invalid', invalid_reason = %(why)s, status = %(gone)s, days_left = null, fingerprint = null,
               as_of = %(as_of)s, evaluated_at = %(at)s, run_id = %(run)s
           where request_id = any(%(ids)s) and as_of <= %(as_of)s
             and (state <> 'invalid' or status is distinct from %(gone)s)""",
        {"why": GONE_REASON, "gone": GONE_STATUS, "as_of": as_of, "at": evaluated_at, "run": run_id,
         "ids": list(request_ids)}).rowcount


def start_run(store, run_id: str, as_of: date, dry_run: bool, started_at: datetime, what_if: bool = False) -> None:
    # A retried task reuses its run row: the run is one unit however many attempts it takes.
    store.execute(
        """insert into compliance.dsr_runs (run_id, as_of, dry_run, what_if, started_at) values (%s, %s, %s, %s, %s)
           on conflict (run_id) do update set as_of = excluded.as_of, dry_run = excluded.dry_run,
                                              what_if = excluded.what_if, finished_at = null""",
        (run_id, as_of, dry_run, what_if, started_at))


@dataclass(frozen=True)
class RunTotals:
    """What one evaluation pass did: the watermark (None for a targeted run or a what-if), the rows evaluated, the
    rows the run changed (over all its attempts: :meth:`StatusWriter._count_for_run`), the count of each state."""

    max_request_id: int | None
    evaluated: int
    changed: int
    counts: dict


def finish_run(store, run_id: str, totals: RunTotals, finished_at: datetime) -> None:
    max_request_id, evaluated, changed, counts = totals.max_request_id, totals.evaluated, totals.changed, totals.counts
    store.execute(
        """update compliance.dsr_runs set max_request_id = %s, evaluated = %s, changed = %s, counts = %s,
                  finished_at = %s where run_id = %s""",
        (max_request_id, evaluated, changed, Jsonb(counts), finished_at, run_id))


_LIVE_STATUS_LOCK = 0x64737273  # 'dsrs'
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _hash_values(column: pd.Series) -> np.ndarray:
    """A stable 64-bit hash per value (each distinct value hashed once)."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    hashed = pd.util.hash_array(np.asarray(uniques, dtype=object).astype(str)) if len(uniques) else np.zeros(0, np.uint64)
    return np.append(hashed, np.uint64(0x5A17))[codes]  # code -1 (missing) takes the last entry


def fingerprints(result: pd.DataFrame, recipients: pd.Series, as_of: date) -> np.ndarray:
    """A 64-bit hash per row of everything that decides whether the stored row must change."""
    parts = [_hash_values(result[c]) for c in ("regime", "request_type", "status", "state", "extension",
                                               "invalid_reason")]
    parts += [pd.util.hash_array(result[c].to_numpy().astype("datetime64[D]").astype("int64")) for c in _DATE_COLUMNS]
    parts.append(pd.util.hash_array(result["days_left"].to_numpy(dtype="float64", na_value=np.nan)))
    parts.append(_hash_values(pd.Series(_flag_literals(result), dtype=object)))
    parts.append(_hash_values(recipients))
    combined = np.full(len(result), np.uint64(as_of.toordinal()), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in parts:
            combined = (combined ^ part) * _MIX
    return combined.view(np.int64)


def _flag_literals(result: pd.DataFrame) -> np.ndarray:
    """Each row's flags as a PostgreSQL array literal, ``{ack_missing,ack_late}``."""
    flags = pa.array(result["flags"])
    joined = pc.binary_join(flags, ",")
    return pc.binary_join_element_wise("{", pc.fill_null(joined, ""), "}", "").to_numpy(zero_copy_only=False)


def status_table(result: pd.DataFrame, recipients: pd.Series, prints: np.ndarray, *, as_of: date,
                 evaluated_at: datetime, run_id: str) -> pa.Table:
    """An ``evaluate_frame`` result as rows of ``dsr_status`` (with the address each escalation goes to)."""
    n = len(result)
    columns = {
        "request_id": pa.array(result["request_id"].to_numpy(), pa.int64()),
        **{c: _text(result[c]) for c in ("regime", "request_type", "status", "state", "extension", "invalid_reason")},
        **{c: pa.array(result[c].to_numpy().astype("datetime64[D]"), pa.date32()) for c in _DATE_COLUMNS},
        "days_left": pa.Array.from_pandas(result["days_left"]).cast(pa.int32()),
        "flags": pa.array(_flag_literals(result), pa.string()),
        "assignee_email": _text(recipients),
        "as_of": pa.array(np.full(n, np.datetime64(as_of, "D")), pa.date32()),
        "evaluated_at": pa.array(np.full(n, np.datetime64(evaluated_at.replace(tzinfo=None), "us")),
                                 pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
        "run_id": pa.array(np.full(n, run_id, dtype=object), pa.string()),
        "fingerprint": pa.array(prints, pa.int64()),
    }
    return pa.table({name: columns[name] for name in _WRITTEN})


def _text(column: pd.Series) -> pa.Array:
    # Few distinct values (states, regimes, assignees): encode once, then expand.
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    dictionary = pa.array(np.asarray(uniques, dtype=object), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32(), mask=codes < 0), dictionary).cast(pa.string())


class StatusWriter:
    """Records evaluations chunk by chunk, in one transaction; ``written`` and ``changed`` count them.

    Live: each chunk's (request id, fingerprint) pairs go to the store first; the store answers which
    differ from the stored rows (compared in SQL), and only those rows are sent in full and upserted into
    ``dsr_status``. A repeated run with nothing changed writes nothing. What-if: every row goes to
    ``dsr_whatif`` under the run id; the live status is never touched.
    """

    def __init__(self, store, *, as_of: date, evaluated_at: datetime, run_id: str, what_if: bool = False):
        self.store, self.as_of, self.evaluated_at, self.run_id, self.what_if = store, as_of, evaluated_at, run_id, what_if
        self.written = self.changed = self.inserted = self.later = 0
        self.run_changed = 0  # what the run changed over all its attempts (see _count_for_run)
        self._tx = None

    def __enter__(self) -> "StatusWriter":
        self._tx = self.store.transaction()
        self._tx.__enter__()
        if not self.what_if:
            # Evaluations of the live status are serialised: a second run at once waits, then finds its rows
            # unchanged (and the new rows this writer COPYs straight into dsr_status cannot collide).
            self.store.execute("select pg_advisory_xact_lock(%s)", (_LIVE_STATUS_LOCK,))
        self.store.execute("""create temporary table dsr_status_incoming
                              (like compliance.dsr_status including defaults) on commit drop""")
        self.store.execute("""create temporary table dsr_status_keys (request_id bigint, fingerprint bigint)
                              on commit drop""")
        return self

    def add(self, result: pd.DataFrame, recipients: pd.Series, prints: np.ndarray) -> None:
        """Record one chunk of evaluations (``prints``: their :func:`fingerprints`)."""
        self.written += len(result)
        if self.what_if:
            self._write(sql.Identifier("dsr_status_incoming"), result, recipients, prints)
            return
        new, changed = self._compare(result["request_id"].to_numpy(), prints)
        # New rows go straight into the live table; changed ones through the upsert at the end.
        self.inserted += self._write(sql.Identifier("compliance", "dsr_status"), result[new], recipients[new],
                                     prints[new])
        self._write(sql.Identifier("dsr_status_incoming"), result[changed], recipients[changed], prints[changed])

    def _write(self, target, result: pd.DataFrame, recipients: pd.Series, prints: np.ndarray) -> int:
        if not len(result):
            return 0
        table = status_table(result, recipients, prints, as_of=self.as_of, evaluated_at=self.evaluated_at,
                             run_id=self.run_id)
        return bulk.write_table(self.store, target, _WRITTEN, table)

    def _compare(self, ids: np.ndarray, prints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the rows the store lacks and of those whose stored fingerprint differs (compared in SQL).

        Only the rows that differ come back, so a repeated run moves a few bytes; a chunk whose id range
        the store has never seen is all new without asking row by row.
        """
        none = np.zeros(len(ids), dtype=bool)
        if not len(ids):
            return none, none
        low, high = int(ids.min()), int(ids.max())
        if not self.store.execute("select exists (select 1 from compliance.dsr_status where request_id between %s "
                                  "and %s)", (low, high)).fetchone()[0]:
            return ~none, none
        keys = pa.table({"request_id": pa.array(ids, pa.int64()), "fingerprint": pa.array(prints, pa.int64())})
        bulk.write_table(self.store, sql.Identifier("dsr_status_keys"), ("request_id", "fingerprint"), keys)
        differing = self.store.execute(
            """select k.request_id, s.request_id is null
               from dsr_status_keys k
               left join (select request_id, fingerprint from compliance.dsr_status
                          where request_id between %s and %s) s using (request_id)
               where s.request_id is null or s.fingerprint is distinct from k.fingerprint""", (low, high)).fetchall()
        self.store.execute("truncate dsr_status_keys")
        new_ids = np.array([rid for rid, new in differing if new], dtype=np.int64)
        changed_ids = np.array([rid for rid, new in differing if not new], dtype=np.int64)
        return np.isin(ids, new_ids), np.isin(ids, changed_ids)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._upsert()
                self._count_for_run()
        finally:
            self._tx.__exit__(exc_type, exc, tb)

    def _count_for_run(self) -> None:
        """The run's count of changed rows in ``dsr_runs``, in the transaction that wrote them: a live run adds this
        attempt's to its earlier attempts' (cleared or retried, it finds their rows there already and changes none of
        them again); a what-if's rows are all its own whatever the attempt."""
        row = self.store.execute(
            """update compliance.dsr_runs set changed = case when %s then 0 else coalesce(changed, 0) end + %s
               where run_id = %s returning changed""", (self.what_if, self.changed, self.run_id)).fetchone()
        self.run_changed = self.changed if row is None else row[0]

    def _upsert(self) -> None:
        if self.what_if:
            cur = self.store.execute(sql.SQL(
                """insert into compliance.dsr_whatif ({columns}) select {columns} from dsr_status_incoming
                   on conflict (run_id, request_id) do update set {updates}""").format(
                columns=sql.SQL(", ").join(map(sql.Identifier, _STATUS_COLUMNS)),
                updates=_updates(_STATUS_COLUMNS)))
            self.changed = cur.rowcount
            return
        # A row evaluated as of a later day is kept: an earlier day's run cleared and run again (Airflow keeps its
        # start, so its day) would set the live status back a day.
        self.later = self.store.execute(
            """select count(*) from dsr_status_incoming i join compliance.dsr_status s using (request_id)
               where s.as_of > i.as_of""").fetchone()[0]
        cur = self.store.execute(sql.SQL(
            """update compliance.dsr_status s set {updates} from dsr_status_incoming i
               where s.request_id = i.request_id and s.as_of <= i.as_of""").format(
            updates=sql.SQL(", ").join(sql.SQL("{0} = i.{0}").format(sql.Identifier(c)) for c in _WRITTEN[1:])))
        self.changed = self.inserted + cur.rowcount


def _updates(names) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in names[1:])


def prune_whatifs(store, *, older_than: datetime) -> int:
    """Drop what-if results evaluated before ``older_than``; returns how many rows went."""
    return store.execute("delete from compliance.dsr_whatif where evaluated_at < %s", (older_than,)).rowcount
