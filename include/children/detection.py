"""Finding children in the operational database: the rules of :mod:`include.children.rules`, in SQL.

One statement classifies every account at once (a sequential scan: a million accounts in well under a
second), so that the purge, the vendor manifests ("a share of a child's data") and the notification
recipients ("minus flagged children") all ask the same question the same way. The pure functions of
``rules`` are the reference; a property test holds this SQL to them row for row.

Tables and columns are reached through the data map (``records.accounts``, ``records.child_reports``).
No birth date, name or email leaves the database: a subject comes back as its id, its rules and its
problems.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable, Sequence

from psycopg import sql

from include import reading
from include.children.rules import (BIRTH_DATE_BEFORE_1900, BIRTH_DATE_IN_FUTURE, CHILD_AGE, DECLARED_AGE_NEGATIVE,
                                    DECLARED_UNDER_13, EARLIEST_BIRTH_DATE, REPORTED, UNDER_13_AT_SIGNUP, UNDER_13_NOW)
from include.datamap import DataMap, RecordSource

NO_MATCH = "no_match"
ALREADY_GONE = "already_gone"


@dataclass(frozen=True)
class Subject:
    """An account that some rule caught (a child), or that no rule could judge (``invalid``)."""

    user_id: int
    rules: tuple[str, ...]
    problems: tuple[str, ...]
    report_ids: tuple[int, ...] = ()

    @property
    def child(self) -> bool:
        return bool(self.rules)


@dataclass(frozen=True)
class ReportOutcome:
    """An open report that names no account to purge: resolved with this outcome."""

    report_id: int
    outcome: str  # NO_MATCH (no account has that id or email) or ALREADY_GONE (the account id no longer exists)


def _thirteenth_birthday(birth: sql.Composable) -> sql.Composable:
    # 29 February + 13 years is never a leap year (13 is odd): the birthday is reached on 1 March.
    return sql.SQL("(case when extract(month from {b}) = 2 and extract(day from {b}) = 29"
                   " then make_date(extract(year from {b})::int + {age}, 3, 1)"
                   " else ({b} + make_interval(years => {age}))::date end)").format(b=birth, age=sql.Literal(CHILD_AGE))


# The accounts' columns the child rules and the reports' matching read.
_RULE_COLUMNS = ("id", "email", "birth_date", "declared_age", "created_at")


def _account_columns(accounts: RecordSource, alias: str) -> dict[str, sql.Composable]:
    return {name: sql.Identifier(alias, accounts.physical(name)) for name in _RULE_COLUMNS}


def reported_accounts_cte(dm: DataMap, *, only_ids: bool = False, within: sql.Composable | None = None) -> sql.Composable:
    """``reported(user_id, report_ids)``: accounts named by an unresolved report, by id or by email.

    ``only_ids`` limits it to the accounts in the ``%(ids)s`` parameter (all when it is empty), so that
    looking at a few accounts reads them by key instead of matching every account's address. ``within``: a
    relation that holds some accounts' columns under their physical names and ``email_key``, the trimmed
    lower-case address (a caller's CTE of a batch's accounts): only those accounts are looked at, read from it
    and not from the accounts table again.
    """
    accounts, reports = dm.record("accounts"), dm.record("child_reports")
    r = {n: sql.Identifier("r", reports.physical(n)) for n in ("id", "user_id", "reported_email", "resolved_at")}
    u = _account_columns(accounts, "u")
    if only_ids and within is None:
        only = sql.SQL("and (cardinality(%(ids)s::bigint[]) = 0 or {} = any(%(ids)s::bigint[]))").format(u["id"])
    else:
        only = sql.SQL("")
    return sql.SQL("""
        reported as (
            select user_id, array_agg(distinct report_id order by report_id) as report_ids from (
                select {r_id} as report_id, {u_id} as user_id
                from {reports} r join {accounts} u on {u_id} = {r_user}
                where {r_resolved} is null {only}
                union all
                select {r_id}, {u_id}
                from {reports} r join {accounts} u on {u_key} = lower(btrim({r_email}))
                where {r_resolved} is null and {r_user} is null and {r_email} is not null {only}
            ) m group by user_id)""").format(
        r_id=r["id"], r_user=r["user_id"], r_email=r["reported_email"], r_resolved=r["resolved_at"],
        u_id=u["id"], reports=reports.ident, accounts=accounts.ident if within is None else within, only=only,
        u_key=sql.SQL("lower(btrim({}))").format(u["email"]) if within is None else sql.Identifier("u", "email_key"))


def verdict_column_names(dm: DataMap) -> list[str]:
    """The accounts' physical columns :func:`verdict_columns` and :func:`reported_accounts_cte` read."""
    return [dm.record("accounts").physical(name) for name in _RULE_COLUMNS]


def verdict_columns(dm: DataMap, alias: str = "u") -> tuple[sql.Composable, sql.Composable]:
    """SQL for the ``rules`` and ``problems`` text arrays of the account aliased ``alias``.

    Needs the ``reported`` CTE joined as ``rp`` and the parameters ``%(as_of)s`` (a date) and ``%(tz)s``.
    """
    u = _account_columns(dm.record("accounts"), alias)
    birth, created, declared = u["birth_date"], u["created_at"], u["declared_age"]
    as_of = sql.SQL("%(as_of)s::date")
    birth_readable = reading.in_range(birth)
    created_readable = reading.in_range(created)
    birth_usable = sql.SQL("({ok} and {b} <= {as_of} and {b} >= {earliest})").format(
        ok=birth_readable, b=birth, as_of=as_of, earliest=sql.Literal(EARLIEST_BIRTH_DATE))
    tb = _thirteenth_birthday(birth)
    signup = sql.SQL("({c} at time zone %(tz)s)::date").format(c=created)
    rules = sql.SQL("""array_remove(array[
            case when {usable} and {as_of} < {tb} then {now} end,
            case when {usable} and {created_ok} and {signup} < {tb} then {at_signup} end,
            case when {declared} >= 0 and {declared} < {age} then {declared_rule} end,
            case when rp.user_id is not null then {reported} end]::text[], null)""").format(
        usable=birth_usable, as_of=as_of, tb=tb, created_ok=created_readable, signup=signup,
        declared=declared, age=sql.Literal(CHILD_AGE), now=sql.Literal(UNDER_13_NOW),
        at_signup=sql.Literal(UNDER_13_AT_SIGNUP), declared_rule=sql.Literal(DECLARED_UNDER_13),
        reported=sql.Literal(REPORTED))
    problems = sql.SQL("""array_remove(array[
            {birth_unreadable}, {created_unreadable},
            case when {birth_ok} and {b} > {as_of} then {future} end,
            case when {birth_ok} and {b} < {earliest} then {early} end,
            case when {declared} < 0 then {negative} end]::text[], null)""").format(
        birth_unreadable=reading.unreadable(birth, "birth_date"), created_unreadable=reading.unreadable(created, "created_at"),
        birth_ok=birth_readable, b=birth, as_of=as_of, earliest=sql.Literal(EARLIEST_BIRTH_DATE),
        future=sql.Literal(BIRTH_DATE_IN_FUTURE), early=sql.Literal(BIRTH_DATE_BEFORE_1900),
        declared=declared, negative=sql.Literal(DECLARED_AGE_NEGATIVE))
    return rules, problems


def detect(ops, dm: DataMap, *, as_of: date, tz: str, user_ids: Sequence[int] = ()) -> list[Subject]:
    """Every child (and every account no rule can judge), by user id; ``user_ids`` limits the search."""
    accounts = dm.record("accounts")
    rules, problems = verdict_columns(dm)
    query = sql.SQL("""
        with {reported}
        select v.user_id, v.rules, v.problems, v.report_ids from (
            select {u_id} as user_id, {rules} as rules, {problems} as problems,
                   coalesce(rp.report_ids, '{{}}') as report_ids
            from {accounts} u left join reported rp on rp.user_id = {u_id}
            where cardinality(%(ids)s::bigint[]) = 0 or {u_id} = any(%(ids)s::bigint[])) v
        where cardinality(v.rules) > 0 or cardinality(v.problems) > 0
        order by v.user_id""").format(
        reported=reported_accounts_cte(dm, only_ids=True), u_id=sql.Identifier("u", accounts.physical("id")), rules=rules,
        problems=problems, accounts=accounts.ident)
    rows = ops.execute(query, {"as_of": as_of, "tz": tz, "ids": list(user_ids)})
    return [Subject(uid, tuple(r), tuple(p), tuple(ids)) for uid, r, p, ids in rows]


def still_a_child(conn, dm: DataMap, user_id: int, *, as_of: date, tz: str) -> bool:
    """Does a rule still catch this account? (Asked again under the purge's claim, in its transaction.)"""
    return any(s.child for s in detect(conn, dm, as_of=as_of, tz=tz, user_ids=[user_id]))


def unmatched_reports(ops, dm: DataMap) -> list[ReportOutcome]:
    """Open reports that name no existing account: ``no_match`` (by email) or ``already_gone`` (by id)."""
    accounts, reports = dm.record("accounts"), dm.record("child_reports")
    r = {n: sql.Identifier("r", reports.physical(n)) for n in ("id", "user_id", "reported_email", "resolved_at")}
    u = _account_columns(accounts, "u")
    query = sql.SQL("""
        select {r_id}, case when {r_user} is not null then {gone} else {no_match} end
        from {reports} r
        where {r_resolved} is null
          and ({r_user} is not null or {r_email} is not null)
          and not exists (select 1 from {accounts} u
                          where ({r_user} is not null and {u_id} = {r_user})
                             or ({r_user} is null and lower(btrim({u_email})) = lower(btrim({r_email}))))
        order by {r_id}""").format(
        r_id=r["id"], r_user=r["user_id"], r_email=r["reported_email"], r_resolved=r["resolved_at"],
        gone=sql.Literal(ALREADY_GONE), no_match=sql.Literal(NO_MATCH), reports=reports.ident,
        accounts=accounts.ident, u_id=u["id"], u_email=u["email"])
    return [ReportOutcome(rid, outcome) for rid, outcome in ops.execute(query)]


def empty_reports(ops, dm: DataMap) -> list[int]:
    """Open reports naming neither an account id nor an email: nothing to match (recorded as invalid)."""
    reports = dm.record("child_reports")
    query = sql.SQL("select {id} from {t} where {resolved} is null and {user} is null and {email} is null "
                    "order by {id}").format(id=reports.col("id"), t=reports.ident, resolved=reports.col("resolved_at"),
                                            user=reports.col("user_id"), email=reports.col("reported_email"))
    return [row[0] for row in ops.execute(query)]


def child_user_ids_sql(dm: DataMap) -> sql.Composable:
    """A ``with`` clause body defining ``children(user_id)``: every account a rule catches now.

    For other queries (manifests flag shares of children, notifications leave children out); needs the
    ``%(as_of)s`` and ``%(tz)s`` parameters. Use as ``with {reported}, children as (...)``.
    """
    accounts = dm.record("accounts")
    rules, _ = verdict_columns(dm)
    return sql.SQL("""{reported},
        children as (
            select {u_id} as user_id from {accounts} u left join reported rp on rp.user_id = {u_id}
            where cardinality({rules}) > 0)""").format(
        reported=reported_accounts_cte(dm), u_id=sql.Identifier("u", accounts.physical("id")),
        accounts=accounts.ident, rules=rules)


def ids(subjects: Iterable[Subject]) -> list[int]:
    return [s.user_id for s in subjects]
