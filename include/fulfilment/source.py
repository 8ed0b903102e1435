"""The operational side of fulfilment, through the data map only: read the open requests, claim one, mark it
completed, and write a restriction or an opt-out of sale on the account.

Reads go through :func:`include.operational_rows.select_list` (a date Python cannot hold spoils its request, never the
read). Writes happen inside the caller's transaction, after :func:`claim` locked the request row
``FOR UPDATE SKIP LOCKED``: the lock is the claim, so two runs at once never act on one request twice, and
it ends with the transaction that does the work.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence
from urllib.parse import urlsplit

from psycopg import sql

from include import operational_rows as reading
from include.datamap import DataMap
from include.deadline_rules import RequestFacts
from include.fulfilment.rules import OPEN_STATUSES

# Every date :func:`include.fulfilment.rules.decide` judges (rules.DATE_COLUMNS) is read, so that an unreadable or
# implausible one spoils its request.
COLUMNS = ("id", "user_id", "regime", "request_type", "status", "received_at", "identity_requested_at",
           "identity_verified_at")


def _request(row) -> RequestFacts:
    rid, uid, regime, rtype, status, received, requested, verified, problems = row
    return RequestFacts(rid, regime, rtype, status, received, identity_requested_at=requested,
                        identity_verified_at=verified, read_problems=tuple(problems or ()), user_id=uid)


def _select(dm: DataMap, where: sql.Composable, *, lock: bool = False) -> sql.Composable:
    src = dm.record("privacy_requests")
    return sql.SQL("select {cols} from {t} where {where} order by {id}{lock}").format(
        cols=reading.select_list(src, COLUMNS), t=src.ident, where=where, id=src.col("id"),
        lock=sql.SQL(" for update skip locked") if lock else sql.SQL(""))


def open_requests(ops, dm: DataMap, request_ids: Sequence[int] = ()) -> list[RequestFacts]:
    """Requests a run picks up (``in_progress``, and ``verifying`` to say they wait), by id; only ``request_ids``
    when given."""
    src = dm.record("privacy_requests")
    where = sql.SQL("{status} = any(%(statuses)s::text[])").format(status=reading.as_text(src.col("status")))
    if request_ids:
        where = sql.SQL("{} and {} = any(%(ids)s::bigint[])").format(where, src.col("id"))
    return [_request(r) for r in ops.execute(_select(dm, where), {"statuses": list(OPEN_STATUSES),
                                                                    "ids": list(request_ids)})]


def redacted_requesters(ops, dm: DataMap, request_ids: Sequence[int]) -> dict[int, str]:
    """Of these requests, those naming no account whose ``requester_email`` an erasure replaced with its keyed hash
    (the data map's ``hash`` rule: 64 hexadecimal digits): that hash, by request id. Never an address."""
    if not request_ids:
        return {}
    src = dm.record("privacy_requests")
    query = sql.SQL("select {id}, {email} from {t} where {id} = any(%s::bigint[]) and {user} is null "
                    "and {email} ~ '^[0-9a-f]{{64}}$'").format(
        id=src.col("id"), email=src.col("requester_email"), t=src.ident, user=src.col("user_id"))
    return dict(ops.execute(query, (list(request_ids),)).fetchall())


def statuses(ops, dm: DataMap, request_ids: Sequence[int]) -> dict[int, str | None]:
    """The status of each of these requests that exists (a targeted run says what it could not pick up)."""
    src = dm.record("privacy_requests")
    query = sql.SQL("select {id}, {status} from {t} where {id} = any(%s::bigint[])").format(
        id=src.col("id"), status=src.col("status"), t=src.ident)
    return dict(ops.execute(query, (list(request_ids),)).fetchall())


def existing_accounts(ops, dm: DataMap, user_ids: Iterable[int], *, hold: bool = False) -> set[int]:
    """The accounts of these that exist; ``hold``: and keep them from an erasure (``FOR KEY SHARE``, inside the
    caller's transaction) until it ends: a request's action holds its subject's account so that an erasure of the
    same account (``FOR UPDATE``) waits for it (an export's package is then deleted with the rest). The
    application's own updates of the row (a login, a new name) do not wait for it. An account an erasure holds
    already is skipped, not waited for: that erasure redacts the subject's requests next, the one the caller has
    claimed among them, and each would wait for the other."""
    accounts = dm.record("accounts")
    query = sql.SQL("select {id} from {t} where {id} = any(%s::bigint[]){lock}").format(
        id=accounts.col("id"), t=accounts.ident, lock=sql.SQL(" for key share skip locked") if hold else sql.SQL(""))
    return {r[0] for r in ops.execute(query, (sorted(set(user_ids)),))}


def claim(ops, dm: DataMap, request_ids: Sequence[int]) -> list[RequestFacts]:
    """Inside the caller's transaction: lock these requests' rows where no one else holds them, and return them
    as they are now (a request another run holds is simply not returned)."""
    src = dm.record("privacy_requests")
    where = sql.SQL("{} = any(%(ids)s::bigint[])").format(src.col("id"))
    return [_request(r) for r in ops.execute(_select(dm, where, lock=True), {"ids": list(request_ids)})]


def complete(ops, dm: DataMap, request_ids: Sequence[int], at: datetime) -> int:
    """Mark the requests ``completed`` at ``at`` (those not completed already); returns how many changed."""
    src = dm.record("privacy_requests")
    query = sql.SQL("update {t} set {status} = 'completed', {completed} = %(at)s "
                    "where {id} = any(%(ids)s::bigint[]) and {status} is distinct from 'completed'").format(
        t=src.ident, status=src.col("status"), completed=src.col("completed_at"), id=src.col("id"))
    return ops.execute(query, {"ids": list(request_ids), "at": at}).rowcount


def restrict(ops, dm: DataMap, user_id: int) -> bool:
    """Set ``processing_restricted`` on the account; False when it was set already (GDPR Art. 18)."""
    accounts = dm.record("accounts")
    query = sql.SQL("update {t} set {flag} = true where {id} = %s and {flag} is not true").format(
        t=accounts.ident, flag=accounts.col("processing_restricted"), id=accounts.col("id"))
    return ops.execute(query, (user_id,)).rowcount == 1


def opt_out_of_sale(ops, dm: DataMap, user_id: int, at: datetime) -> bool:
    """Set ``do_not_sell`` and ``do_not_sell_at``; False when the account had opted out already (its original date
    is kept: it is when the consumer first said so; CCPA §1798.120, §1798.135). An account that had opted out
    once and back in since (the flag off, an old date left) opts out now: the old date would date the opt-out
    before the shares it made while opted in, and the vendor rules would flag them."""
    accounts = dm.record("accounts")
    query = sql.SQL("update {t} set {flag} = true, {at} = case when {flag} is true then coalesce({at}, %(at)s) "
                    "else %(at)s end "
                    "where {id} = %(id)s and ({flag} is not true or {at} is null)").format(
        t=accounts.ident, flag=accounts.col("do_not_sell"), at=accounts.col("do_not_sell_at"), id=accounts.col("id"))
    return ops.execute(query, {"id": user_id, "at": at}).rowcount == 1


def transaction_id(ops) -> int:
    """The id of the caller's open transaction (so the record written before it commits can be settled)."""
    return ops.execute("select txid_current()").fetchone()[0]


def transaction_status(ops, xid: int) -> str | None:
    """'committed', 'aborted', 'in progress', or None when the id is too old for PostgreSQL to say."""
    return ops.execute("select txid_status(%s)", (xid,)).fetchone()[0]


def policy_in_force(ops, dm: DataMap, now: datetime) -> tuple[str, str] | None:
    """The newest privacy policy published by ``now``: its version label and web address (``http(s)``, trimmed), for
    the export package's README to point at what the records do not hold per person (purposes, retention, sources);
    None when no version is published, or the newest has no web address or an undatable publication time."""
    versions = dm.record("policy_versions")
    published = versions.col("published_at")
    query = sql.SQL("select {v}, btrim({u}) from {t} where {ok} and {p} <= %s order by {p} desc, {id} desc "
                    "limit 1").format(v=versions.col("version"), u=versions.col("url"), t=versions.ident,
                                      ok=reading.in_range(published), p=published, id=versions.col("id"))
    row = ops.execute(query, (now,)).fetchone()
    if row is None or not row[1]:
        return None
    parts = urlsplit(row[1])
    return (row[0], row[1]) if parts.scheme.lower() in ("http", "https") and parts.netloc else None
