"""Read privacy requests from the operational database through the data map."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from psycopg import sql

from include import reading
from include.datamap import DataMap
from include.deadlines import OPEN_STATUSES, RequestFacts

FACT_COLUMNS = ("id", "regime", "request_type", "status", "received_at", "acknowledged_at",
                "identity_requested_at", "identity_verified_at", "extended_at", "completed_at",
                "assignee_email")


@dataclass(frozen=True)
class Selection:
    """Which requests a run evaluates.

    A full run takes every open request, every request the store still tracks as not closed (it may
    have closed since), every request newer than the last run saw, and every one completed since the
    last run started. A targeted run (``request_ids``) takes exactly those.
    """

    request_ids: tuple[int, ...] = ()
    tracked_ids: tuple[int, ...] = ()
    newer_than_id: int = -1
    completed_since: datetime | None = None

    @property
    def targeted(self) -> bool:
        return bool(self.request_ids)


def fetch_requests(conn, dm: DataMap, selection: Selection, batch: int = 20_000
                   ) -> Iterator[tuple[RequestFacts, str | None]]:
    """Yield (facts, assignee email) for the selected requests, streamed with a server-side cursor.

    Read through :mod:`include.reading`: a timestamp Python cannot hold comes back None with a sentence
    in ``facts.read_problems``, so that row is invalid and the others go on.
    """
    src = dm.record("privacy_requests")
    ident = src.col("id")
    if selection.targeted:
        where = sql.SQL("{} = any(%(ids)s)").format(ident)
    else:
        where = sql.SQL(" or ").join([
            sql.SQL("{} = any(%(open)s)").format(src.col("status")),
            sql.SQL("{} = any(%(tracked)s)").format(ident),
            sql.SQL("{} > %(newer)s").format(ident),
            sql.SQL("{} >= %(since)s").format(src.col("completed_at")),
        ])
    query = sql.SQL("select {cols} from {table} where {where}").format(
        cols=reading.select_list(src, FACT_COLUMNS), table=src.ident, where=where)
    params = {"ids": list(selection.request_ids), "open": sorted(OPEN_STATUSES),
              "tracked": list(selection.tracked_ids), "newer": selection.newer_than_id,
              "since": selection.completed_since}
    with conn.transaction(), conn.cursor(name="dsr_requests") as cur:
        cur.itersize = batch
        cur.execute(query, params)
        for (rid, regime, rtype, status, received, acked, id_req, id_ver, extended, completed,
             assignee, problems) in cur:
            yield RequestFacts(request_id=rid, regime=regime, request_type=rtype, status=status,
                               received_at=received, acknowledged_at=acked,
                               identity_requested_at=id_req, identity_verified_at=id_ver,
                               extended_at=extended, completed_at=completed,
                               read_problems=tuple(problems)), assignee


def max_request_id(conn, dm: DataMap) -> int:
    src = dm.record("privacy_requests")
    query = sql.SQL("select coalesce(max({}), -1) from {}").format(src.col("id"), src.ident)
    return conn.execute(query).fetchone()[0]
