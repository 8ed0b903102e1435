"""Resolving ``child_reports`` in the operational database (through the data map's ``child_reports`` and
``accounts`` records).

A report is resolved when it has been dealt with: it named no account (``no_match``), its account was
already deleted (``already_gone``), or the purge it led to is done. A report that names several accounts
(an address shared by several accounts) is resolved by the purge of the last of them, so that an account
it names which is still there (held, say) stays reported.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from psycopg import sql

from include.addresses import comparable_sql
from include.datamap import DataMap


def resolve(ops, dm: DataMap, report_ids: Sequence[int], at: datetime) -> int:
    """Set ``resolved_at`` on these reports where still open; returns how many changed."""
    if not report_ids:
        return 0
    reports = dm.record("child_reports")
    query = sql.SQL("update {t} set {resolved} = %s where {id} = any(%s::bigint[]) and {resolved} is null").format(
        t=reports.ident, resolved=reports.col("resolved_at"), id=reports.col("id"))
    return ops.execute(query, (at, list(report_ids))).rowcount


def resolve_for_subject(conn, dm: DataMap, user_id: int, report_ids: Sequence[int], at: datetime,
                        confirmed: Sequence[int] = ()) -> dict:
    """Inside the subject's erasing transaction: resolve the open reports that led to it, unless a report
    also names another account that still exists. Where a person confirmed which accounts an address-only report
    means (``confirmed``, holding this subject), only those accounts count: the others its address names were
    judged not to be the reported child. Returns ``{"reports_resolved": [ids]}``."""
    if not report_ids:
        return {"reports_resolved": []}
    reports, accounts = dm.record("child_reports"), dm.record("accounts")
    r = {n: sql.Identifier("r", reports.physical(n)) for n in ("id", "user_id", "reported_email", "resolved_at")}
    u = {n: sql.Identifier("u", accounts.physical(n)) for n in ("id", "email")}
    query = sql.SQL("""
        update {reports} r set {resolved_col} = %(at)s
        where {r_id} = any(%(ids)s::bigint[]) and {r_resolved} is null
          and not exists (select 1 from {accounts} u where {u_id} = {r_user} and {u_id} <> %(user_id)s)
          and not (({r_user} is null or not exists (select 1 from {accounts} g where g.{g_id} = {r_user})) and exists (
                select 1 from {accounts} u
                where {u_key} = {r_key} and {u_id} <> %(user_id)s
                  and (not %(user_id)s = any(%(confirmed)s::bigint[]) or {u_id} = any(%(confirmed)s::bigint[]))))
        returning {r_id}""").format(
        reports=reports.ident, resolved_col=reports.col("resolved_at"), r_id=r["id"], r_user=r["user_id"],
        r_key=comparable_sql(r["reported_email"]), r_resolved=r["resolved_at"], accounts=accounts.ident, u_id=u["id"],
        u_key=comparable_sql(u["email"]), g_id=sql.Identifier(accounts.physical("id")))
    rows = conn.execute(query, {"at": at, "ids": list(report_ids), "user_id": user_id,
                                "confirmed": sorted(set(confirmed))}).fetchall()
    return {"reports_resolved": sorted(row[0] for row in rows)}


def resolved_by_erasure(ops, dm: DataMap, report_ids: Sequence[int], at: datetime) -> list[int]:
    """The reports among ``report_ids`` (those that led to a subject) that the subject's committed erasing transaction
    resolved: :func:`resolve_for_subject` stamps them with the erasure's own time ``at``, which the subject's
    ``erasing`` record keeps. What that transaction returned, read again once the attempt that ran it is gone; a
    report resolved before it (by a person, by another account's purge) or left open by it is not among them."""
    if not report_ids:
        return []
    reports = dm.record("child_reports")
    query = sql.SQL("select {id} from {t} where {id} = any(%s::bigint[]) and {resolved} = %s order by {id}").format(
        t=reports.ident, id=reports.col("id"), resolved=reports.col("resolved_at"))
    return [row[0] for row in ops.execute(query, (list(report_ids), at)).fetchall()]
