"""Read privacy requests from the operational database through the data map, in Arrow-sized chunks."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Iterator
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
from psycopg import sql

from include import bulk, operational_rows as reading
from include.datamap import DataMap
from include.deadline_rules import OPEN_STATUSES, TIMESTAMP_COLUMNS

# About 25,000 requests a chunk: small enough to keep the pipeline's stages busy at once, large enough
# that per-chunk costs vanish.
CHUNK_BYTES = 2 << 20
# What the evaluation reads of each request (by the data map's logical names).
READ_COLUMNS = ("id", "regime", "request_type", "status", *TIMESTAMP_COLUMNS, "assignee_email")
_SCHEMA = {"request_id": pa.int64(), "regime": pa.string(), "request_type": pa.string(), "status": pa.string(),
           **{name: pa.int64() for name in TIMESTAMP_COLUMNS}, "assignee_email": pa.string(),
           "read_problems": pa.string()}


@dataclass(frozen=True)
class Selection:
    """Which requests a run evaluates.

    A full run takes every open request, every request the store still tracks as not closed (it may
    have closed since), every request newer than the last run saw, and every one completed since the
    last run started. A targeted run (``request_ids``) takes exactly those. A what-if over every request
    (:meth:`as_it_stood`) takes the requests as they stood on its day, whatever the live runs saw.
    """

    request_ids: tuple[int, ...] = ()
    tracked: str = "{}"  # the tracked ids as a PostgreSQL array literal (one value, not one object per id)
    newer_than_id: int = -1
    completed_since: datetime | None = None
    day: tuple[datetime, datetime] | None = None  # a what-if's day: its first instant and the next day's

    @property
    def targeted(self) -> bool:
        return bool(self.request_ids)

    @classmethod
    def as_it_stood(cls, as_of: date, tz: ZoneInfo, request_ids: tuple[int, ...] = ()) -> "Selection":
        """The requests a what-if as of ``as_of`` answers for: every one received by the end of that day and not
        closed before it, in the time zone the rules date events in (``deadline_rules.local_date``). One received
        later had not happened yet; one whose record says it closed before the day was no longer open. A request
        closed that day or later is taken (the rules judge it as of the day); one open now is taken whatever its
        ``completed_at`` (reopened: the rules ignore it), and so is one whose receipt or status is missing (it
        comes back ``invalid`` with its reason). As of a day after today this is the requests open now.
        ``request_ids``: only those (a what-if of named requests), read as they stood all the same.

        Each is read as it stood (:func:`request_frames`): one closed after the day was still open on it, so its
        later completion is not read (the rules would judge a completion after the evaluation day invalid, as a live
        run must: there it is a typo); later acknowledgements, identity steps and extensions the rules leave out
        themselves."""
        start = datetime.combine(as_of, time(), tzinfo=tz)
        return cls(request_ids=tuple(request_ids),
                   day=(start, datetime.combine(as_of + timedelta(days=1), time(), tzinfo=tz)))


def _query(dm: DataMap, selection: Selection) -> tuple[sql.Composable, dict]:
    src = dm.record("privacy_requests")
    ident = src.col("id")
    if selection.targeted:  # a what-if of named requests too: those are its answer, whatever their dates
        where = sql.SQL("{} = any(%(ids)s::bigint[])").format(ident)
    elif selection.day is not None:
        # Each branch can use an index on its column (the reference schema has one on each).
        received, completed = src.col("received_at"), src.col("completed_at")
        where = sql.SQL("({r} < %(day_end)s or {r} is null) and ({c} >= %(day_start)s or {c} is null "
                        "or {s} = any(%(open)s::text[]) or {s} is null)").format(r=received, c=completed,
                                                                                 s=reading.as_text(src.col("status")))
    else:
        where = sql.SQL(" or ").join([
            sql.SQL("{} = any(%(open)s::text[])").format(reading.as_text(src.col("status"))),
            sql.SQL("{} = any(%(tracked)s::bigint[])").format(ident),
            sql.SQL("{} > %(newer)s").format(ident),
            sql.SQL("{} >= %(since)s").format(src.col("completed_at")),
        ])
    # In id order: each chunk then covers an id range of its own, which the store compares in one range scan.
    query = sql.SQL("select {cols} from {table} where {where} order by {ident}").format(
        cols=reading.select_list(src, READ_COLUMNS, epoch_micros=True, problems_as_text=True),
        table=src.ident, where=where, ident=ident)
    params = {"ids": list(selection.request_ids), "open": sorted(OPEN_STATUSES),
              "tracked": selection.tracked, "newer": selection.newer_than_id,
              "since": selection.completed_since, "day_start": selection.day and selection.day[0],
              "day_end": selection.day and selection.day[1]}
    return query, params


def request_frames(conn, dm: DataMap, selection: Selection) -> Iterator[pd.DataFrame]:
    """The selected requests in chunks, as the frames ``include.deadlines.columnar.evaluate_frame`` takes.

    Read with ``COPY`` through :mod:`include.operational_rows`: a timestamp Python cannot hold (``infinity``, a BC
    date) comes back null with a sentence in ``read_problems``, so that row is invalid and the others go on.
    Columns: ``request_id``, ``regime``, ``request_type``, ``status``, the six timestamps as
    ``datetime64[us, UTC]``, ``assignee_email``, ``read_problems``.
    """
    query, params = _query(dm, selection)
    for batch in bulk.read_batches(conn, query, params, _SCHEMA, block_bytes=CHUNK_BYTES):
        columns = {name: batch.column(name) for name in _SCHEMA}
        for name in TIMESTAMP_COLUMNS:
            columns[name] = bulk.epoch_micros_to_timestamps(columns[name])
        frame = pa.table(columns).to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
        yield frame if selection.day is None else _open_on_the_day(frame, selection.day[1])


# The status a request closed after a what-if's day had on it: open (which open status it had is not recorded; the
# rules tell awaiting identity from the identity dates, not from the status).
STILL_OPEN = "in_progress"


def _open_on_the_day(frame: pd.DataFrame, day_end: datetime) -> pd.DataFrame:
    """A what-if's requests as they stood on its day: one completed on or after ``day_end`` (the next day's first
    instant) was still open, so its completion is not read."""
    later = (frame["completed_at"] >= pd.Timestamp(day_end)).fillna(False).to_numpy(dtype=bool)
    if not later.any():
        return frame
    frame = frame.copy()
    frame.loc[later, "completed_at"] = pd.NaT
    frame.loc[later, "status"] = STILL_OPEN
    return frame


def missing_ids(conn, dm: DataMap, ids: str) -> list[int]:
    """Of ``ids`` (a PostgreSQL array literal, as :attr:`Selection.tracked`), those no request of the operational
    database has (deleted since a run recorded them), in order."""
    src = dm.record("privacy_requests")
    query = sql.SQL("select t.id from unnest(%s::bigint[]) t(id) where not exists "
                    "(select 1 from {table} p where p.{ident} = t.id) order by 1").format(table=src.ident,
                                                                                         ident=src.col("id"))
    return [row[0] for row in conn.execute(query, (ids,))]


def max_request_id(conn, dm: DataMap) -> int:
    src = dm.record("privacy_requests")
    query = sql.SQL("select coalesce(max({}), -1) from {}").format(src.col("id"), src.ident)
    return conn.execute(query).fetchone()[0]
