"""The one tolerant way to read operational rows: a bad value spoils its row, never the read.

PostgreSQL holds dates and timestamps that Python's types cannot (``infinity``, ``-infinity``, BC dates,
years after 9999). Loaded as they are, one such value makes the driver raise in the middle of a stream,
so nothing is written and every retry fails the same way. Every reader of operational rows therefore
selects its columns through :func:`select_list`: a temporal column out of Python's range comes back
NULL, and the extra column ``_problems`` (a text array, empty for a clean row) says which column held
what, in a sentence without the value itself (a birth date is personal data). The caller records the
row as ``invalid`` with those sentences and goes on with the others.

A column that holds a code (a request's ``regime``, ``request_type``, ``status``: :data:`CODE_COLUMNS`) is read as
itself only when it looks like one (a letter, then letters, digits, ``_`` or ``-``, white space around it kept as
it is); anything else (an address
or a name typed into the field) comes back NULL with a ``_problems`` sentence that does not repeat it: the rules
used to quote an unknown value in the request's reason, and the reason is shown on the page, in the what-ifs and
in the audit log.
"""
from __future__ import annotations

from typing import Sequence

from psycopg import sql

from include.datamap import TEMPORAL_COLUMNS, RecordSource

PROBLEMS = "_problems"
CODE_COLUMNS = {"privacy_requests": frozenset({"regime", "request_type", "status"})}
# Other codes, read as the text of their values (an array of codes as text[]): a column of an enum type (as an
# application's schema often makes a kind or a category) would otherwise come back from the driver as the array's
# literal, one string ('{contact,account}'), not as its elements.
TEXT_CODES = {"vendors": {"kind": "text", "allowed_categories": "text[]"}}
CODE = "^\\s*[A-Za-z][A-Za-z0-9_-]{0,39}\\s*$"  # white space around it is a row's, and the rules say so
# The temporal columns that hold a calendar day, not an instant: read as the type they are (a ``date``).
DAYS = frozenset({"birth_date", "dpa_signed_on"})
# Inclusive lower and exclusive upper bound of what datetime/date can hold (UTC).
_LOW = sql.SQL("'0001-01-01 00:00:00+00'::timestamptz")
_HIGH = sql.SQL("'10000-01-01 00:00:00+00'::timestamptz")


def as_text(column: sql.Composable, *, array: bool = False) -> sql.Composable:
    """A code column as the text of its value (``array``: an array of codes as ``text[]``). A PostgreSQL enum (the
    type an application's schema often gives a status, a kind or a category) has no ``=`` with ``text``, no
    ``btrim``, no ``~``, takes no text parameter, and an array of one comes back from the driver as the array's
    literal, one string: compared, grouped or read as it is, it failed the whole statement. A text column is
    unchanged by the cast."""
    return sql.SQL("{}::text[]" if array else "{}::text").format(column)


def in_range(column: sql.Composable) -> sql.Composable:
    return sql.SQL("({c} >= {low} and {c} < {high})").format(c=column, low=_LOW, high=_HIGH)


def out_of_range(column: sql.Composable) -> sql.Composable:
    """True where a value is outside what Python can hold (NULL stays NULL); two range conditions, so an
    index on the column serves it (e.g. finding the few undatable rows of a large table)."""
    return sql.SQL("({c} < {low} or {c} >= {high})").format(c=column, low=_LOW, high=_HIGH)


def unreadable(column: sql.Composable, name: str) -> sql.Composable:
    return sql.SQL(
        "case when {c} is null or {ok} then null"
        " when {c} = 'infinity' then {inf} when {c} = '-infinity' then {ninf}"
        " when {c} < {low} then {bc} else {late} end").format(
        c=column, ok=in_range(column), low=_LOW,
        inf=sql.Literal(f"{name} holds infinity"), ninf=sql.Literal(f"{name} holds -infinity"),
        bc=sql.Literal(f"{name} is a BC date"), late=sql.Literal(f"{name} is after the year 9999"))


def local_day(column: sql.Composable) -> sql.Composable:
    """SQL for the calendar day of a timestamp column in the zone of the ``%(tz)s`` parameter.

    A column without a time zone (``timestamp``, not ``timestamptz``) is read as UTC, as every reader reads it (the
    connection's zone is UTC: ``include/seam/connections.py``): cast first, since ``AT TIME ZONE`` on such a value
    would take it for a time *in* that zone and shift the day the other way."""
    return sql.SQL("({}::timestamptz at time zone %(tz)s)::date").format(column)


def day_of(column: sql.Composable) -> sql.Composable:
    """SQL for the calendar day a column holding a day (``birth_date``) names, whatever its type: a ``date`` as it
    is, a ``timestamp`` (no zone) as the day written, a ``timestamptz`` as its day in the zone of the ``%(tz)s``
    parameter (a birthday stored as midnight there, east of UTC, is not the UTC day before; west of UTC, not a time
    after that day's UTC midnight). The type is asked of the value (``pg_typeof``, as cheap as the plain cast on a
    million rows), so one expression serves every type the column may have."""
    return sql.SQL("(case when pg_typeof({c}) = 'timestamp with time zone'::regtype "
                   "then ({c}::timestamptz at time zone %(tz)s)::date else {c}::date end)").format(c=column)


def temporal(src: RecordSource) -> frozenset[str]:
    return TEMPORAL_COLUMNS.get(src.role, frozenset())


def select_list(src: RecordSource, columns: Sequence[str], *, alias: str | None = None,
                epoch_micros: bool = False, problems_as_text: bool = False) -> sql.Composable:
    """``physical AS logical, ...`` with temporal columns guarded, and a final ``_problems`` column.

    A column holding a day (:data:`DAYS`) comes back as a ``date``, its day in the zone of the ``%(tz)s`` parameter
    when it is a ``timestamptz`` (:func:`day_of`): a query selecting one needs that parameter.

    ``_problems`` is a text array (empty for a clean row), or with ``problems_as_text`` the sentences
    joined by ``"; "`` (NULL for a clean row). ``epoch_micros`` gives temporal columns as microseconds
    since 1970 UTC (bigint), for bulk readers that build columns without a Python object per value.
    """
    items, problems = [], []
    for name in columns:
        physical = sql.Identifier(alias, src.physical(name)) if alias else src.col(name)
        if name in temporal(src):
            # An instant comes back as a timestamptz even from a column without a zone (``timestamp``), read as UTC
            # (the connection's zone) as deadline tracking and the rules' SQL read it: Python then never compares
            # a naive time with an aware one (fulfilment's and the campaign's "is it after now").
            # A day is the day it names, whatever the column's type (:func:`day_of`: the query then needs the
            # ``%(tz)s`` parameter): a DPA stored as a timestamptz is not read as the UTC day before, east of UTC.
            instant = day_of(physical) if name in DAYS else sql.SQL("{}::timestamptz").format(physical)
            value = sql.SQL("case when {ok} then {c} end").format(ok=in_range(physical), c=instant)
            if epoch_micros:
                value = sql.SQL("(extract(epoch from {v}) * 1000000)::bigint").format(v=value)
            items.append(sql.SQL("{} as {}").format(value, sql.Identifier(name)))
            problems.append(unreadable(physical, name))
        elif name in CODE_COLUMNS.get(src.role, ()):
            text = as_text(physical)
            items.append(sql.SQL("case when {t} ~ {code} then {t} end as {n}").format(
                t=text, code=sql.Literal(CODE), n=sql.Identifier(name)))
            problems.append(sql.SQL("case when {t} !~ {code} then {said} end").format(
                t=text, code=sql.Literal(CODE), said=sql.Literal(
                    f"{name} is not a code (its value is not repeated: it may be personal data); correct it")))
        elif name in TEXT_CODES.get(src.role, {}):
            items.append(sql.SQL("{} as {}").format(as_text(physical, array=TEXT_CODES[src.role][name] == "text[]"),
                                                    sql.Identifier(name)))
        else:
            items.append(sql.SQL("{} as {}").format(physical, sql.Identifier(name)))
    problem_array = (sql.SQL("array_remove(array[{}]::text[], null)").format(sql.SQL(", ").join(problems))
                     if problems else sql.SQL("'{}'::text[]"))
    if problems_as_text:
        problem_array = sql.SQL("nullif(array_to_string({}, '; '), '')").format(problem_array)
    items.append(sql.SQL("{} as {}").format(problem_array, sql.Identifier(PROBLEMS)))
    return sql.SQL(", ").join(items)
