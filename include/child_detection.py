"""Finding children in the operational database: the rules of :mod:`include.child_rules`, in SQL.

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

from include import operational_rows as reading
from include.addresses import comparable_sql
from include.child_rules import (BIRTH_DATE_BEFORE_1900, BIRTH_DATE_IN_FUTURE, CHILD_AGE, CREATED_BEFORE_BIRTH,
                                    DECLARED_AGE_NEGATIVE, DECLARED_UNDER_13, EARLIEST_BIRTH_DATE, REPORTED,
                                    UNDER_13_AT_SIGNUP, UNDER_13_NOW)
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


# The accounts' columns the child rules and the reports' matching read.
_RULE_COLUMNS = ("id", "email", "birth_date", "declared_age", "created_at")


def _account_columns(accounts: RecordSource, alias: str) -> dict[str, sql.Composable]:
    return {name: sql.Identifier(alias, accounts.physical(name)) for name in _RULE_COLUMNS}


def reported_accounts_cte(dm: DataMap, *, only_ids: bool = False, within: sql.Composable | None = None,
                          confirmed: Sequence[int] = ()) -> sql.Composable:
    """``reported(user_id, report_ids)``: accounts named by an unresolved report, by id, or by address where the
    address names that account alone and its own data does not say adult (:func:`include.child_rules.
    reported_by_address`). An address-only report naming several accounts (a household) or an adult names none
    of them here: it needs a person (:func:`reports_needing_review`), unless ``confirmed`` holds the account ids a
    person confirmed. An address that is blank (empty or only white space) names nobody: :func:`empty_reports`
    records such a report invalid.

    ``only_ids`` limits it to the accounts in the ``%(ids)s`` parameter (all when it is empty), so that
    looking at a few accounts reads them by key instead of matching every account's address. ``within``: a
    relation that holds some accounts' columns under their physical names and ``email_key``, the trimmed
    lower-case address (a caller's CTE of a batch's accounts): only those accounts are looked at, read from it
    and not from the accounts table again (how many accounts an address names is still counted over them all).
    Needs the ``%(as_of)s`` parameter (a date).
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
                select a.report_id, {u_id}
                from ({by_address}) a join {accounts} u on {u_key} = a.address
                where ({u_id} = any({confirmed}) or (a.named = 1 and not a.stale_id and not {adult})) {only}
            ) m group by user_id)""").format(
        r_id=r["id"], r_user=r["user_id"], r_resolved=r["resolved_at"], u_id=u["id"], reports=reports.ident,
        accounts=accounts.ident if within is None else within, only=only, by_address=_address_reports(dm),
        u_key=comparable_sql(u["email"]) if within is None else sql.Identifier("u", "email_key"),
        confirmed=sql.SQL("{}::bigint[]").format(sql.Literal(sorted(set(confirmed)))), adult=_says_adult(dm, "u"))


def _address_reports(dm: DataMap) -> sql.Composable:
    """``(report_id, address, named, stale_id)`` of each open report that names an account by its address alone:
    the trimmed lower-case address, how many accounts hold it (by the accounts' index on that expression; open
    reports are few), and whether the report also gives an account id that names no account (``stale_id``: the
    id and the address disagree, so only a person can say which child the report means)."""
    accounts, reports = dm.record("accounts"), dm.record("child_reports")
    r = {n: sql.Identifier("r", reports.physical(n)) for n in ("id", "user_id", "reported_email", "resolved_at")}
    return sql.SQL("""
        select {r_id} as report_id, {r_key} as address,
               (select count(*) from {accounts} n where {n_key} = {r_key}) as named, {r_user} is not null as stale_id
        from {reports} r
        where {r_resolved} is null and {r_key} <> ''
          and ({r_user} is null or not exists (select 1 from {accounts} n where {n_id} = {r_user}))""").format(
        r_id=r["id"], r_key=comparable_sql(r["reported_email"]), r_resolved=r["resolved_at"], r_user=r["user_id"],
        reports=reports.ident, accounts=accounts.ident, n_id=sql.Identifier("n", accounts.physical("id")),
        n_key=comparable_sql(sql.Identifier("n", accounts.physical("email"))))


def _says_adult(dm: DataMap, alias: str) -> sql.Composable:
    """SQL for :func:`include.child_rules.says_adult` on the account aliased ``alias`` (needs ``%(as_of)s`` and
    ``%(tz)s``)."""
    u = _account_columns(dm.record("accounts"), alias)
    b, d = reading.day_of(u["birth_date"]), u["declared_age"]
    return sql.SQL("(coalesce({d} >= {age}, false) or coalesce({b} >= {earliest} and {b} <= %(as_of)s::date "
                   "and {b} <= (select (%(as_of)s::date - interval {years})::date), false))").format(
        d=d, b=b, age=sql.Literal(CHILD_AGE), earliest=sql.Literal(EARLIEST_BIRTH_DATE),
        years=sql.Literal(f"{CHILD_AGE} years"))


@dataclass(frozen=True)
class ReportReview:
    """An open address-only report that names several accounts, or an adult: nothing is erased on its word
    until a person says which account it meant (``confirmed``: the ids of those a person already confirmed)."""

    report_id: int
    user_ids: tuple[int, ...]
    confirmed: tuple[int, ...]
    reason: str


def reports_needing_review(ops, dm: DataMap, *, as_of: date, tz: str,
                           confirmed: Sequence[int] = ()) -> list[ReportReview]:
    """Every open address-only report that names more than one account, or one whose own data says adult, and every
    report whose account id names no account while its address names one or more (the two disagree)."""
    u = _account_columns(dm.record("accounts"), "u")
    query = sql.SQL("""
        select a.report_id, a.named, array_agg({u_id} order by {u_id}),
               array_agg({u_id} order by {u_id}) filter (where {adult}), a.stale_id
        from ({by_address}) a join {accounts} u on {u_key} = a.address
        group by a.report_id, a.named, a.stale_id
        having a.named > 1 or bool_or({adult}) or a.stale_id
        order by a.report_id""").format(
        u_id=u["id"], u_key=comparable_sql(u["email"]), adult=_says_adult(dm, "u"), by_address=_address_reports(dm),
        accounts=dm.record("accounts").ident)
    wanted = set(confirmed)
    found = []
    for report_id, named, user_ids, adults, stale_id in ops.execute(query, {"as_of": as_of, "tz": tz}):
        adults = adults or []
        why = (f"the address names {named} accounts ({', '.join(map(str, user_ids))})" if named > 1 else
               f"the address names account {user_ids[0]}")
        if stale_id:
            why = f"the report's account id names no account, and {why}"
        if adults:
            why += f", whose own data says adult ({', '.join(map(str, adults))})" if named > 1 else \
                ", whose own data says adult"
        found.append(ReportReview(report_id, tuple(user_ids), tuple(i for i in user_ids if i in wanted),
                                  f"{why}: a person must confirm which account the report means "
                                  "(confirm_user_ids); nothing of theirs is erased on the report's word"))
    return found


def named_by_open_reports(ops, dm: DataMap, user_ids: Sequence[int]) -> set[int]:
    """Of these accounts, those an open report names: by its account id, or by its address alone (an address-only
    report, or one whose account id names no account: :func:`_address_reports`), whatever the accounts' own data
    says. The only accounts a person can confirm as the one a report means (``confirm_user_ids``)."""
    if not user_ids:
        return set()
    accounts, reports = dm.record("accounts"), dm.record("child_reports")
    u = _account_columns(accounts, "u")
    query = sql.SQL("""
        select {u_id} from {accounts} u
        where {u_id} = any(%(ids)s::bigint[])
          and (exists (select 1 from {reports} r where {r_user} = {u_id} and {r_resolved} is null)
               or exists (select 1 from ({by_address}) a where a.address = {u_key}))""").format(
        u_id=u["id"], accounts=accounts.ident, reports=reports.ident,
        r_user=sql.Identifier("r", reports.physical("user_id")),
        r_resolved=sql.Identifier("r", reports.physical("resolved_at")), by_address=_address_reports(dm),
        u_key=comparable_sql(u["email"]))
    return {row[0] for row in ops.execute(query, {"ids": sorted(set(user_ids))})}


def verdict_column_names(dm: DataMap) -> list[str]:
    """The accounts' physical columns :func:`verdict_columns` and :func:`reported_accounts_cte` read."""
    return [dm.record("accounts").physical(name) for name in _RULE_COLUMNS]


def _rule_conditions(dm: DataMap, alias: str = "u") -> list[tuple[str, sql.Composable]]:
    """Each child rule's name and its condition on the account aliased ``alias`` (true: the rule catches it).

    Needs the ``reported`` CTE joined as ``rp`` and the parameters ``%(as_of)s`` (a date) and ``%(tz)s``.

    Under 13 on a day <=> born after that day 13 years earlier: PostgreSQL takes 29 February back to
    28 February in a year without one, so a 29 February birthday is reached on 1 March there, as
    :func:`include.child_rules.birthday` says (the two forms agree for every pair of days over twelve
    years, and a property test holds this SQL to the rules). Written so, the day 13 years before the
    evaluation date is computed once per statement instead of each account's thirteenth birthday.
    """
    u = _account_columns(dm.record("accounts"), alias)
    birth, created, declared = reading.day_of(u["birth_date"]), u["created_at"], u["declared_age"]
    as_of = sql.SQL("%(as_of)s::date")
    years = sql.SQL("interval {}").format(sql.Literal(f"{CHILD_AGE} years"))
    # Between 1900 and the evaluation date: also within what Python holds, so no separate range check.
    usable = sql.SQL("({b} <= {as_of} and {b} >= {earliest})").format(
        b=birth, as_of=as_of, earliest=sql.Literal(EARLIEST_BIRTH_DATE))
    signup = reading.local_day(created)
    return [
        (UNDER_13_NOW, sql.SQL("{usable} and {b} > (select ({as_of} - {years})::date)").format(
            usable=usable, b=birth, as_of=as_of, years=years)),
        (UNDER_13_AT_SIGNUP, sql.SQL("{usable} and {created_ok} and {signup} >= {b} "
                                     "and {b} > ({signup} - {years})::date").format(
            usable=usable, created_ok=reading.in_range(created), b=birth, signup=signup, years=years)),
        (DECLARED_UNDER_13, sql.SQL("{d} >= 0 and {d} < {age}").format(d=declared, age=sql.Literal(CHILD_AGE))),
        (REPORTED, sql.SQL("rp.user_id is not null")),
    ]


def caught_column(dm: DataMap, alias: str = "u") -> sql.Composable:
    """SQL for a boolean: does any child rule catch the account aliased ``alias`` (the rules array, not built)."""
    return sql.SQL("coalesce({}, false)").format(
        sql.SQL(" or ").join(sql.SQL("({})").format(c) for _, c in _rule_conditions(dm, alias)))


def verdict_columns(dm: DataMap, alias: str = "u") -> tuple[sql.Composable, sql.Composable]:
    """SQL for the ``rules`` and ``problems`` text arrays of the account aliased ``alias``.

    Needs the ``reported`` CTE joined as ``rp`` and the parameters ``%(as_of)s`` (a date) and ``%(tz)s``.
    """
    u = _account_columns(dm.record("accounts"), alias)
    birth, created, declared = u["birth_date"], u["created_at"], u["declared_age"]
    as_of = sql.SQL("%(as_of)s::date")
    birth_readable = reading.in_range(birth)
    rules = sql.SQL("array_remove(array[{}]::text[], null)").format(sql.SQL(", ").join(
        sql.SQL("case when {} then {} end").format(c, sql.Literal(name)) for name, c in _rule_conditions(dm, alias)))
    problems = sql.SQL("""array_remove(array[
            {birth_unreadable}, {created_unreadable},
            case when {birth_ok} and {b} > {as_of} then {future} end,
            case when {birth_ok} and {b} < {earliest} then {early} end,
            case when {b} <= {as_of} and {b} >= {earliest} and {created_ok}
                      and {signup} < {b} then {before_birth} end,
            case when {declared} < 0 then {negative} end]::text[], null)""").format(
        birth_unreadable=reading.unreadable(birth, "birth_date"), created_unreadable=reading.unreadable(created, "created_at"),
        birth_ok=birth_readable, b=reading.day_of(birth), as_of=as_of, earliest=sql.Literal(EARLIEST_BIRTH_DATE),
        future=sql.Literal(BIRTH_DATE_IN_FUTURE), early=sql.Literal(BIRTH_DATE_BEFORE_1900),
        created_ok=reading.in_range(created), signup=reading.local_day(created),
        before_birth=sql.Literal(CREATED_BEFORE_BIRTH),
        declared=declared, negative=sql.Literal(DECLARED_AGE_NEGATIVE))
    return rules, problems


def _plainly_readable(dm: DataMap, alias: str = "u") -> sql.Composable:
    """SQL for a boolean that, where true, says the account has no problem (the ``problems`` array would be
    empty), in cheap comparisons: a birth date absent or between 1900 and the evaluation date, a creation time
    Python holds and not before the birth date, a declared age absent or not negative. :func:`detect` builds
    the arrays only for the accounts a rule catches or this does not clear (a few in a hundred), not for every
    account. A problem added to
    :func:`verdict_columns` must be excluded here too, or :func:`detect` misses it on the accounts this clears;
    the property test (tests/test_children_rules.py) compares :func:`detect` with the rules' reference
    functions on generated accounts, so give its generator the new problem's values."""
    u = _account_columns(dm.record("accounts"), alias)
    return sql.SQL("(({b} is null or ({b} >= {earliest} and {b} <= %(as_of)s::date)) and ({c} is null or {c_ok})"
                   " and ({b} is null or {c} is null or {signup} >= {b})"
                   " and ({d} is null or {d} >= 0))").format(
        b=reading.day_of(u["birth_date"]), earliest=sql.Literal(EARLIEST_BIRTH_DATE), c=u["created_at"],
        c_ok=reading.in_range(u["created_at"]), signup=reading.local_day(u["created_at"]), d=u["declared_age"])


def detect(ops, dm: DataMap, *, as_of: date, tz: str, user_ids: Sequence[int] = (),
           confirmed: Sequence[int] = ()) -> list[Subject]:
    """Every child (and every account no rule can judge), by user id; ``user_ids`` limits the search;
    ``confirmed``: accounts a person confirmed as the one an address-only report means."""
    accounts = dm.record("accounts")
    rules, problems = verdict_columns(dm)
    query = sql.SQL("""
        with {reported}
        select v.user_id, v.rules, v.problems, v.report_ids from (
            select {u_id} as user_id, {rules} as rules, {problems} as problems,
                   coalesce(rp.report_ids, '{{}}') as report_ids
            from {accounts} u left join reported rp on rp.user_id = {u_id}
            where (cardinality(%(ids)s::bigint[]) = 0 or {u_id} = any(%(ids)s::bigint[]))
              and ({caught} or not {plain})) v
        where cardinality(v.rules) > 0 or cardinality(v.problems) > 0
        order by v.user_id""").format(
        reported=reported_accounts_cte(dm, only_ids=True, confirmed=confirmed),
        u_id=sql.Identifier("u", accounts.physical("id")), rules=rules,
        problems=problems, accounts=accounts.ident, caught=caught_column(dm), plain=_plainly_readable(dm))
    rows = ops.execute(query, {"as_of": as_of, "tz": tz, "ids": list(user_ids)})
    return [Subject(uid, tuple(r), tuple(p), tuple(ids)) for uid, r, p, ids in rows]


def still_a_child(conn, dm: DataMap, user_id: int, *, as_of: date, tz: str, confirmed: Sequence[int] = ()) -> bool:
    """Does a rule still catch this account? (Asked again under the purge's claim, in its transaction.)"""
    return any(s.child for s in detect(conn, dm, as_of=as_of, tz=tz, user_ids=[user_id], confirmed=confirmed))


def unmatched_reports(ops, dm: DataMap) -> list[ReportOutcome]:
    """Open reports that name no existing account: ``no_match`` (by email) or ``already_gone`` (by id, and by its
    address if it gives one: a report whose id is gone but whose address names an account goes to a person,
    :func:`reports_needing_review`)."""
    accounts, reports = dm.record("accounts"), dm.record("child_reports")
    r = {n: sql.Identifier("r", reports.physical(n)) for n in ("id", "user_id", "reported_email", "resolved_at")}
    u = _account_columns(accounts, "u")
    query = sql.SQL("""
        select {r_id}, case when {r_user} is not null then {gone} else {no_match} end
        from {reports} r
        where {r_resolved} is null
          and ({r_user} is not null or {r_key} <> '')
          and not exists (select 1 from {accounts} u
                          where ({r_user} is not null and {u_id} = {r_user})
                             or ({r_key} <> '' and {u_key} = {r_key}))
        order by {r_id}""").format(
        r_id=r["id"], r_user=r["user_id"], r_key=comparable_sql(r["reported_email"]), r_resolved=r["resolved_at"],
        gone=sql.Literal(ALREADY_GONE), no_match=sql.Literal(NO_MATCH), reports=reports.ident,
        accounts=accounts.ident, u_id=u["id"], u_key=comparable_sql(u["email"]))
    return [ReportOutcome(rid, outcome) for rid, outcome in ops.execute(query)]


def empty_reports(ops, dm: DataMap) -> list[int]:
    """Open reports naming neither an account id nor an email: nothing to match (recorded as invalid).

    A blank address (empty, or only white space) names nobody: matched against accounts, it would name every
    account whose own address is blank.
    """
    reports = dm.record("child_reports")
    query = sql.SQL("select {id} from {t} where {resolved} is null and {user} is null "
                    "and coalesce({key}, '') = '' order by {id}").format(
        id=reports.col("id"), t=reports.ident, resolved=reports.col("resolved_at"), user=reports.col("user_id"),
        key=comparable_sql(reports.col("reported_email")))
    return [row[0] for row in ops.execute(query)]


def child_user_ids_sql(dm: DataMap) -> sql.Composable:
    """A ``with`` clause body defining ``children(user_id)``: every account a rule catches now.

    For other queries (manifests flag shares of children, notifications leave children out); needs the
    ``%(as_of)s`` and ``%(tz)s`` parameters. Use as ``with {reported}, children as (...)``.
    """
    accounts = dm.record("accounts")
    return sql.SQL("""{reported},
        children as (
            select {u_id} as user_id from {accounts} u left join reported rp on rp.user_id = {u_id}
            where {caught})""").format(
        reported=reported_accounts_cte(dm), u_id=sql.Identifier("u", accounts.physical("id")),
        accounts=accounts.ident, caught=caught_column(dm))


def ids(subjects: Iterable[Subject]) -> list[int]:
    return [s.user_id for s in subjects]
