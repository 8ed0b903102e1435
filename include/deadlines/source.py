"""Read privacy requests from the operational database through the data map, in Arrow-sized chunks."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

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
    last run started. A targeted run (``request_ids``) takes exactly those.
    """

    request_ids: tuple[int, ...] = ()
    tracked: str = "{}"  # the tracked ids as a PostgreSQL array literal (one value, not one object per id)
    newer_than_id: int = -1
    completed_since: datetime | None = None

    @property
    def targeted(self) -> bool:
        return bool(self.request_ids)


def _query(dm: DataMap, selection: Selection) -> tuple[sql.Composable, dict]:
    src = dm.record("privacy_requests")
    ident = src.col("id")
    if selection.targeted:
        where = sql.SQL("{} = any(%(ids)s::bigint[])").format(ident)
    else:
        where = sql.SQL(" or ").join([
            sql.SQL("{} = any(%(open)s::text[])").format(src.col("status")),
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
              "since": selection.completed_since}
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
        yield pa.table(columns).to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)


def max_request_id(conn, dm: DataMap) -> int:
    src = dm.record("privacy_requests")
    query = sql.SQL("select coalesce(max({}), -1) from {}").format(src.col("id"), src.ident)
    return conn.execute(query).fetchone()[0]
