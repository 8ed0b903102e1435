"""Deadline evaluation column by column: the rules of ``include/deadline_rules.py`` over a chunk of rows at once.

``evaluate_frame`` gives, row for row and field for field, exactly what ``deadlines.evaluate`` gives, but
computes the common case with numpy over whole columns: one time-zone conversion per timestamp column,
month arithmetic on ``datetime64[M]``, working days with ``numpy.busday_offset`` and a business-day
calendar per regime. ``deadlines.py`` stays the readable reference; this module cites the same rules:

* GDPR Art. 12(3) with Regulation 1182/71 Art. 3: one month (three when validly extended) from the
  clock start, the same day number else the month's last day, rolled to the next working day.
* Cal. Code Regs. tit. 11 §7021: acknowledgement within 10 business days; answer within 45 calendar
  days (90 when validly extended), not moved off weekends. §7026(f): opt-out of sale in 15 business days.
* The policy's promise: one month, with the GDPR month rule, from the regime's clock start.

Rows with any problem (everything ``evaluate`` calls ``invalid``, and the odd valid row whose deadlines
run into a pathological calendar) are rare in real data: they are *found* column-wise and then handed to
``deadlines.evaluate`` one by one, so their reasons are the reference's own words. Handing a row over is
always exact, so the test that picks them may include more rows than strictly needed, never fewer.
"""
from __future__ import annotations

import math
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from include.deadline_rules import (
    CCPA,
    CCPA_ACK_BUSINESS_DAYS,
    CCPA_EXTENDED_RESPONSE_DAYS,
    CCPA_OPT_OUT_BUSINESS_DAYS,
    CCPA_OPT_OUT_TYPE,
    CCPA_RESPONSE_DAYS,
    CLOSED_STATUSES,
    EXTENSION_INVALID,
    EXTENSION_NONE,
    EXTENSION_VALID,
    FLAG_ACK_LATE,
    FLAG_ACK_MISSING,
    FLAG_INVALID_EXTENSION,
    GDPR,
    GDPR_EXTENDED_RESPONSE_MONTHS,
    GDPR_RESPONSE_MONTHS,
    LATER_EVENTS,
    OPEN_STATUSES,
    POLICY_RESPONSE_MONTHS,
    REGIME_TYPES,
    STATES,
    TIMESTAMP_COLUMNS,
    DeadlinePolicy,
    Evaluation,
    RequestFacts,
    evaluate,
)

#: The input columns ``evaluate_frame`` reads (others, e.g. an assignee, are ignored). ``read_problems``
#: may be left out: then no row has any.
FACT_COLUMNS = ("request_id", "regime", "request_type", "status", *TIMESTAMP_COLUMNS, "read_problems")
#: The output columns: the fields of ``deadlines.Evaluation``, in its order.
RESULT_COLUMNS = tuple(f.name for f in fields(Evaluation))
#: How the sentences of one row's ``read_problems`` are joined in the input column.
READ_PROBLEM_SEPARATOR = "; "

DATE_COLUMNS = ("clock_start", "ack_due", "statutory_due", "policy_due", "effective_due")
_TEXT_COLUMNS = ("regime", "request_type", "status")

# The deadline rules: Saturday and Sunday are never working days.
_WEEKMASK = "1111100"
_NAT = np.datetime64("NaT", "D")
_DAY = np.timedelta64(1, "D")
# A computed deadline further than this from its clock start only arises with a calendar that has months
# without a working day; such rows go to the scalar (which may refuse the calendar, as its loops do), and
# it keeps every deadline within the year after its start, the years the holiday arrays cover.
_MAX_SPAN = np.timedelta64(180, "D")
# Dates a Python ``date`` can hold, minus a year of room for the deadlines computed from them.
_FIRST_DAY = np.datetime64("0001-01-01", "D")
_LAST_SAFE_DAY = np.datetime64("9998-12-31", "D")
_FIRST_INSTANT = np.datetime64("0001-01-01T00:00:00", "us")
_END_INSTANT = np.datetime64("10000-01-01T00:00:00", "us")

_EXTENSIONS = np.array([EXTENSION_NONE, EXTENSION_VALID, EXTENSION_INVALID], dtype=object)
_EXT_NONE, _EXT_VALID, _EXT_INVALID = 0, 1, 2
_STATE_NAMES = np.array(STATES, dtype=object)
_STATE = {name: code for code, name in enumerate(STATES)}
# Flags as bits, listed in the scalar's order: the extension flag, then the acknowledgement flag.
_FLAG_BITS = {FLAG_INVALID_EXTENSION: 1, FLAG_ACK_LATE: 2, FLAG_ACK_MISSING: 4}
_FLAG_LISTS = pa.array(
    [[flag for flag, bit in _FLAG_BITS.items() if code & bit] for code in range(8)], type=pa.list_(pa.string())
)


# --------------------------------------------------------------------------------------------------
# Public API


def evaluate_frame(frame: pd.DataFrame, as_of: date, policy: DeadlinePolicy) -> pd.DataFrame:
    """Evaluate every row of ``frame`` on ``as_of``: exactly ``deadlines.evaluate``, column-wise.

    Input (one ``privacy_requests`` row per frame row; other columns are ignored):

    * ``request_id``: int64;
    * ``regime``, ``request_type``, ``status``: str or missing (None/NaN/NA);
    * ``received_at``, ``acknowledged_at``, ``identity_requested_at``, ``identity_verified_at``,
      ``extended_at``, ``completed_at``: time-zone-aware ``datetime64`` (``datetime64[us, UTC]`` as read;
      any unit or zone, or an ArrowDtype timestamp with a zone), NaT for None; a column of nothing but
      nulls may have any dtype;
    * ``read_problems`` (optional): None or "" when the reader found nothing, else the reader's sentences
      joined with ``"; "`` (see ``RequestFacts`` for what a sentence must be).

    A timestamp no ``datetime`` can hold (before year 1 or after 9999 in UTC) is read as the reader
    would: None, with the read problem "<column> is outside the years 1-9999".

    Output: one row per input row, same order and index, columns ``RESULT_COLUMNS`` (the fields of
    ``Evaluation``): ``request_id`` (as input), ``regime``/``request_type``/``status`` (object: str or
    None), ``clock_start``/``ack_due``/``statutory_due``/``policy_due``/``effective_due``
    (``datetime64[s]`` at midnight, NaT for None), ``state`` and ``extension`` (object: str),
    ``days_left`` (``Int64``, NA for None), ``flags`` (ArrowDtype ``list<string>``: each value a list of
    the flags in the scalar's order) and ``invalid_reason`` (object: str or None).

    Memory and time are proportional to the frame: call it once per chunk of any size (empty included).
    """
    if isinstance(as_of, datetime) or not isinstance(as_of, date):
        raise TypeError("as_of must be a date (not a datetime)")
    missing = [column for column in FACT_COLUMNS[:-1] if column not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the column(s) {', '.join(missing)}; it needs {', '.join(FACT_COLUMNS)}")

    rows = _Rows.read(frame, policy.tz)
    out = _Result.empty(len(frame))
    scalar = _needs_scalar(rows, as_of, policy)
    rows = rows.as_it_stood(as_of)
    _gdpr_deadlines(rows, np.flatnonzero(~scalar & rows.gdpr), policy, out)
    _ccpa_deadlines(rows, np.flatnonzero(~scalar & rows.ccpa), policy, out)
    scalar |= out.runs_far()
    _classify(rows, np.flatnonzero(~scalar), as_of, policy.due_soon_days, out)
    _evaluate_by_row(frame, rows, np.flatnonzero(scalar), as_of, policy, out)
    return out.frame(frame)


# --------------------------------------------------------------------------------------------------
# Reading the columns


@dataclass(frozen=True)
class _Rows:
    """The input as numpy arrays: masks for the text columns, instants and local dates for the timestamps."""

    gdpr: np.ndarray  # bool
    ccpa: np.ndarray
    opt_out: np.ndarray
    known: np.ndarray  # regime, request type and status all valid
    closed: np.ndarray
    read_problems: np.ndarray
    utc: dict[str, np.ndarray]  # column -> datetime64[us] (UTC, naive), NaT for None
    day: dict[str, np.ndarray]  # column -> datetime64[D], the local calendar date in policy.tz

    @classmethod
    def read(cls, frame: pd.DataFrame, tz: ZoneInfo) -> _Rows:
        regime, request_type, status = (frame[column] for column in _TEXT_COLUMNS)
        gdpr = _is_in(regime, [GDPR])
        ccpa = _is_in(regime, [CCPA])
        type_ok = (gdpr & _is_in(request_type, REGIME_TYPES[GDPR])) | (ccpa & _is_in(request_type, REGIME_TYPES[CCPA]))
        utc, day = {}, {}
        for column in TIMESTAMP_COLUMNS:
            instants = _utc_series(frame[column], column)
            utc[column] = instants.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
            day[column] = _local_days(instants, utc[column], tz)
        return cls(
            gdpr=gdpr,
            ccpa=ccpa,
            opt_out=_is_in(request_type, [CCPA_OPT_OUT_TYPE]),
            known=type_ok & _is_in(status, OPEN_STATUSES | CLOSED_STATUSES),
            closed=_is_in(status, CLOSED_STATUSES),
            read_problems=_has_read_problems(frame),
            utc=utc,
            day=day,
        )


    def as_it_stood(self, as_of: date) -> _Rows:
        """The requests as they stood at the end of ``as_of`` (``deadlines._as_it_stood``): the later events dated
        after it had not happened yet. (Receipts and completions after it were judged invalid before.)"""
        day = np.datetime64(as_of, "D")
        seen = {f"{name}_at": np.where(self.day[f"{name}_at"] > day, np.datetime64("NaT", "D"), self.day[f"{name}_at"])
                for name in LATER_EVENTS}
        return replace(self, day={**self.day, **seen})


def _is_in(column: pd.Series, values: Iterable[str]) -> np.ndarray:
    return column.isin(sorted(values)).to_numpy(dtype=bool)


def _has_read_problems(frame: pd.DataFrame) -> np.ndarray:
    if "read_problems" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    column = frame["read_problems"]
    return column.notna().to_numpy(dtype=bool) & (column.fillna("").to_numpy(dtype=object) != "")


def _utc_series(column: pd.Series, name: str) -> pd.Series:
    """The column as ``datetime64[us, UTC]``; refuses naive or non-timestamp columns (a reader bug)."""
    dtype = column.dtype
    aware = isinstance(dtype, pd.DatetimeTZDtype) or (
        isinstance(dtype, pd.ArrowDtype) and pa.types.is_timestamp(dtype.pyarrow_dtype) and dtype.pyarrow_dtype.tz
    )
    if aware:
        return column.astype("datetime64[us, UTC]")
    if column.isna().all():
        return pd.Series(np.full(len(column), np.datetime64("NaT", "us")), index=column.index).dt.tz_localize("UTC")
    raise TypeError(f"{name} must be a time-zone-aware datetime64 column (datetime64[us, UTC]), not {dtype}")


def _local_days(instants: pd.Series, utc: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """The calendar date of each instant in ``tz``: one vectorised conversion per column."""
    if getattr(tz, "key", None) == "UTC" or tz is timezone.utc:
        return utc.astype("datetime64[D]")
    wall = instants.dt.tz_convert(tz).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return wall.astype("datetime64[D]")  # floors, also before 1970


# --------------------------------------------------------------------------------------------------
# Which rows the scalar judges


def _needs_scalar(rows: _Rows, as_of: date, policy: DeadlinePolicy) -> np.ndarray:
    """Every row ``evaluate`` would call ``invalid`` (see ``deadlines._problems``), found column-wise."""
    received, completed = rows.day["received_at"], rows.day["completed_at"]
    day = np.datetime64(as_of, "D")
    return (
        rows.read_problems
        | ~rows.known
        | np.isnat(received)
        | _out_of_order(rows.utc)
        | _outside_calendar(rows)
        | (received > day)
        | (received < np.datetime64(policy.earliest, "D"))
        | (completed > day)
        # A closed request without completed_at is invalid (deadlines._classify).
        | (rows.closed & np.isnat(completed))
    )


def _out_of_order(utc: dict[str, np.ndarray]) -> np.ndarray:
    """Nothing happens before receipt, nor verification before the request for it (compared as instants)."""
    received = utc["received_at"]
    later = [column for column in TIMESTAMP_COLUMNS if column != "received_at"]
    problem = np.zeros(len(received), dtype=bool)
    for column in later:
        problem |= utc[column] < received  # NaT compares False: a missing date is never out of order
    return problem | (utc["identity_verified_at"] < utc["identity_requested_at"])


def _outside_calendar(rows: _Rows) -> np.ndarray:
    """Instants a ``datetime`` cannot hold, and local dates too close to year 9999 for their deadlines."""
    problem = np.zeros(len(rows.gdpr), dtype=bool)
    for column in TIMESTAMP_COLUMNS:
        instants, days = rows.utc[column], rows.day[column]
        problem |= (instants < _FIRST_INSTANT) | (instants >= _END_INSTANT)
        problem |= (days < _FIRST_DAY) | (days > _LAST_SAFE_DAY)
    return problem


# --------------------------------------------------------------------------------------------------
# Calendar arithmetic on columns


def _add_months_clamped(days: np.ndarray, months: int) -> np.ndarray:
    """Same day number ``months`` later, else that month's last day (Regulation 1182/71 Art. 3(2)(c))."""
    month = days.astype("datetime64[M]")
    day_index = days - month.astype("datetime64[D]")  # 0 for the 1st
    target = month + np.timedelta64(months, "M")
    last_index = (target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]") - _DAY
    return target.astype("datetime64[D]") + np.minimum(day_index, last_index)


def _month_deadline(days: np.ndarray, months: int, calendar: np.busdaycalendar) -> np.ndarray:
    """GDPR Art. 12(3) month rule: clamped month, then the next working day (Reg. 1182/71 Art. 3(4)).

    ``roll='forward'`` with offset 0 is ``next_working_day``: the day itself when it is a working day.
    """
    return np.busday_offset(_add_months_clamped(days, months), 0, roll="forward", busdaycal=calendar)


def _add_business_days(days: np.ndarray, n: int, calendar: np.busdaycalendar) -> np.ndarray:
    """The ``n``-th working day after each day, the day itself not counted (§7021(a), §7026(f)); n >= 1.

    ``busday_offset`` first rolls a non-working day onto a working one, then counts. ``roll='forward'``
    would count that next working day twice (Sat + 1 would be Tuesday, not Monday). ``roll='backward'``
    steps back to the last working day before it; no working day lies between that day and ``d``, so
    ``n`` working days after it are ``n`` working days after ``d``: exactly ``add_business_days``.
    """
    if n < 1:
        raise ValueError("roll='backward' counts like add_business_days only for n >= 1")
    return np.busday_offset(days, n, roll="backward", busdaycal=calendar)


def _business_calendar(holidays: Container[date] | None, starts: np.ndarray) -> np.busdaycalendar:
    """Mon-Fri minus the regime's holidays, in every year a deadline from ``starts`` can reach.

    Deadlines end within ``_MAX_SPAN`` of their start (rows running further go to the scalar), so the
    years of the starts and the years after them are all the days numpy needs to know. (The backward
    roll of ``_add_business_days`` may look at days before a start; it counts none of them.)
    """
    years = np.unique(starts.astype("datetime64[Y]").astype(np.int64) + 1970)
    wanted = sorted({int(year) for year in years} | {int(year) + 1 for year in years})
    return np.busdaycalendar(weekmask=_WEEKMASK, holidays=_holiday_days(holidays, wanted))


def _holiday_days(holidays: Container[date] | None, years: Sequence[int]) -> np.ndarray:
    """The holidays of ``years`` as ``datetime64[D]``, from any Container the policy may hold."""
    if not holidays or not years:
        return np.array([], dtype="datetime64[D]")
    if hasattr(holidays, "dates_in_years"):  # deadlines.HolidayCalendar
        listed = holidays.dates_in_years(years)
    elif isinstance(holidays, Iterable):  # a set of dates
        wanted = set(years)
        listed = [d for d in holidays if isinstance(d, date) and not isinstance(d, datetime) and d.year in wanted]
    else:  # only 'in' is known: ask about every day of those years
        listed = [d for year in years for d in _days_of(year) if d in holidays]
    return np.array(sorted(listed), dtype="datetime64[D]")


def _days_of(year: int) -> Iterable[date]:
    if not 1 <= year <= 9999:
        return []
    first = date(year, 1, 1)
    return (first + timedelta(days=i) for i in range((date(year, 12, 31) - first).days + 1))


# --------------------------------------------------------------------------------------------------
# Deadlines (mirroring deadlines._gdpr_deadlines and deadlines._ccpa_deadlines)


@dataclass
class _Result:
    """The output columns being filled in: dates, codes for states, extensions and flag sets, reasons."""

    clock_start: np.ndarray
    ack_due: np.ndarray
    statutory_due: np.ndarray
    policy_due: np.ndarray
    effective_due: np.ndarray
    extension: np.ndarray  # index into _EXTENSIONS
    flags: np.ndarray  # bits of _FLAG_BITS
    state: np.ndarray  # index into STATES
    days_left: np.ndarray  # int64, meaningful where days_known
    days_known: np.ndarray
    invalid_reason: np.ndarray  # object: str or None

    @classmethod
    def empty(cls, n: int) -> _Result:
        def no_dates():
            return np.full(n, _NAT)

        return cls(
            clock_start=no_dates(),
            ack_due=no_dates(),
            statutory_due=no_dates(),
            policy_due=no_dates(),
            effective_due=no_dates(),
            extension=np.zeros(n, dtype=np.int8),
            flags=np.zeros(n, dtype=np.int8),
            state=np.zeros(n, dtype=np.int8),
            days_left=np.zeros(n, dtype=np.int64),
            days_known=np.zeros(n, dtype=bool),
            invalid_reason=np.full(n, None, dtype=object),
        )

    def runs_far(self) -> np.ndarray:
        """Rows whose deadlines end more than ``_MAX_SPAN`` after their clock start (see ``_MAX_SPAN``)."""
        far = np.zeros(len(self.clock_start), dtype=bool)
        for due in (self.ack_due, self.statutory_due, self.policy_due, self.effective_due):
            far |= due - self.clock_start > _MAX_SPAN  # NaT compares False: no clock, no deadlines
        return far

    def frame(self, source: pd.DataFrame) -> pd.DataFrame:
        def text(values: np.ndarray) -> pd.Series:
            # object, not pandas' str dtype: None stays None (a NULL for the writer), as in Evaluation.
            return pd.Series(values, index=source.index, dtype=object)

        columns = {
            "request_id": source["request_id"],
            **{column: text(source[column].to_numpy(dtype=object, na_value=None)) for column in _TEXT_COLUMNS},
            **{column: getattr(self, column).astype("datetime64[s]") for column in DATE_COLUMNS},
            "state": text(_STATE_NAMES[self.state]),
            "days_left": pd.arrays.IntegerArray(self.days_left, ~self.days_known),
            "extension": text(_EXTENSIONS[self.extension]),
            "flags": pd.arrays.ArrowExtensionArray(_FLAG_LISTS.take(pa.array(self.flags))),
            "invalid_reason": text(self.invalid_reason),
        }
        return pd.DataFrame(columns, index=source.index, columns=list(RESULT_COLUMNS))


def _gdpr_deadlines(rows: _Rows, at: np.ndarray, policy: DeadlinePolicy, out: _Result) -> None:
    """GDPR Art. 12(3) for the rows ``at``: one month from the clock start, three when validly extended."""
    received, extended = rows.day["received_at"][at], rows.day["extended_at"][at]
    requested, verified = rows.day["identity_requested_at"][at], rows.day["identity_verified_at"][at]
    # Art. 12(6): identity requested and not yet verified: no clock, no due dates. An extension
    # recorded before the clock has started is necessarily inside the first month.
    awaiting = ~np.isnat(requested) & np.isnat(verified)
    out.extension[at[awaiting]] = np.where(np.isnat(extended[awaiting]), _EXT_NONE, _EXT_VALID)

    started = ~awaiting
    at = at[started]
    clock_start = np.where(np.isnat(requested), received, verified)[started]
    calendar = _business_calendar(policy.holidays.get(GDPR), clock_start)
    one_month = _month_deadline(clock_start, GDPR_RESPONSE_MONTHS, calendar)
    policy_due = _month_deadline(clock_start, POLICY_RESPONSE_MONTHS, calendar)
    extension = _extension_status(extended[started], latest_valid=one_month)
    statutory = one_month.copy()
    valid = extension == _EXT_VALID
    # Art. 12(3): "extended by two further months" = three months from the clock start.
    statutory[valid] = _month_deadline(clock_start[valid], GDPR_EXTENDED_RESPONSE_MONTHS, calendar)
    out.clock_start[at] = clock_start
    _set_deadlines(out, at, statutory, policy_due, extension)


def _ccpa_deadlines(rows: _Rows, at: np.ndarray, policy: DeadlinePolicy, out: _Result) -> None:
    """§7021 and §7026(f) for the rows ``at``; every clock runs from receipt, whatever verification takes."""
    received, extended = rows.day["received_at"][at], rows.day["extended_at"][at]
    opt_out = rows.opt_out[at]
    calendar = _business_calendar(policy.holidays.get(CCPA), received)
    policy_due = _month_deadline(received, POLICY_RESPONSE_MONTHS, calendar)
    statutory = np.full(len(at), _NAT)
    extension = np.zeros(len(at), dtype=np.int8)
    # §7026(f): 15 business days, and the regulation allows no extension for opt-outs.
    statutory[opt_out] = _add_business_days(received[opt_out], CCPA_OPT_OUT_BUSINESS_DAYS, calendar)
    extension[opt_out] = np.where(np.isnat(extended[opt_out]), _EXT_NONE, _EXT_INVALID)
    # §7021(b): calendar days, not moved off weekends or holidays; the extension within the first 45.
    answer = ~opt_out
    unextended = received[answer] + np.timedelta64(CCPA_RESPONSE_DAYS, "D")
    extension[answer] = _extension_status(extended[answer], latest_valid=unextended)
    days = np.where(extension[answer] == _EXT_VALID, CCPA_EXTENDED_RESPONSE_DAYS, CCPA_RESPONSE_DAYS)
    statutory[answer] = received[answer] + days.astype("timedelta64[D]")
    out.clock_start[at] = received
    # §7021(a): confirmation of receipt within 10 business days.
    out.ack_due[at] = _add_business_days(received, CCPA_ACK_BUSINESS_DAYS, calendar)
    _set_deadlines(out, at, statutory, policy_due, extension)


def _extension_status(extended: np.ndarray, latest_valid: np.ndarray) -> np.ndarray:
    return np.where(np.isnat(extended), _EXT_NONE, np.where(extended <= latest_valid, _EXT_VALID, _EXT_INVALID))


def _set_deadlines(out: _Result, at: np.ndarray, statutory, policy_due, extension) -> None:
    out.statutory_due[at] = statutory
    out.policy_due[at] = policy_due
    # The deadline rules: the stricter of the law and the promise, unless a lawful extension replaces the promise.
    out.effective_due[at] = np.where(extension == _EXT_VALID, statutory, np.minimum(statutory, policy_due))
    out.extension[at] = extension


# --------------------------------------------------------------------------------------------------
# States and flags (mirroring deadlines._classify)


def _classify(rows: _Rows, at: np.ndarray, as_of: date, due_soon_days: int, out: _Result) -> None:
    """States, ``days_left`` and flags for the valid rows ``at`` (the states of docs/rules.md)."""
    today = np.datetime64(as_of, "D")
    closed = rows.closed[at]
    acknowledged, completed = rows.day["acknowledged_at"][at], rows.day["completed_at"][at]
    ack_due, effective = out.ack_due[at], out.effective_due[at]
    started = ~np.isnat(out.clock_start[at])
    unacknowledged = ~np.isnat(ack_due) & np.isnat(acknowledged)

    # §7021(a): acknowledged late, or never acknowledged once due (an answer on or before the
    # acknowledgement date needed no separate confirmation).
    last_day_seen = np.where(closed, completed, today)
    ack_late = acknowledged > ack_due
    ack_missing = unacknowledged & (last_day_seen > ack_due)
    extension_flag = out.extension[at] == _EXT_INVALID
    out.flags[at] = (
        extension_flag * _FLAG_BITS[FLAG_INVALID_EXTENSION]
        + ack_late * _FLAG_BITS[FLAG_ACK_LATE]
        + ack_missing * _FLAG_BITS[FLAG_ACK_MISSING]
    )

    days_left = (effective - today).astype(np.int64)  # garbage where NaT; masked below
    is_open = ~closed & started
    # The first state whose condition holds, as in deadlines._classify and deadlines._open_state.
    rules = [
        # GDPR closed before identity was verified: the month never started, so it cannot be late.
        ("closed_on_time", closed & (~started | (completed <= effective))),
        ("closed_late", closed),
        ("awaiting_identity", ~started),
        ("overdue", days_left < 0),
        # A missed §7021(a) confirmation outranks on_track and due_soon, not overdue.
        ("ack_overdue", unacknowledged & (today > ack_due)),
        ("due_soon", days_left <= due_soon_days),
    ]
    state = np.select([rule for _, rule in rules], [_STATE[name] for name, _ in rules], default=_STATE["on_track"])
    out.state[at] = state
    out.days_left[at] = np.where(is_open, days_left, 0)
    out.days_known[at] = is_open


# --------------------------------------------------------------------------------------------------
# The rare rows: the scalar reference, row by row


def _evaluate_by_row(
    frame: pd.DataFrame, rows: _Rows, at: np.ndarray, as_of: date, policy: DeadlinePolicy, out: _Result
) -> None:
    """``deadlines.evaluate`` for the rows ``at`` (the invalid ones and a few oddities), written into ``out``."""
    if not len(at):
        return
    texts = {column: frame[column].iloc[at].to_numpy(dtype=object) for column in _TEXT_COLUMNS}
    ids = frame["request_id"].iloc[at].to_numpy()
    problems = frame["read_problems"].iloc[at].to_numpy(dtype=object) if "read_problems" in frame else [None] * len(at)
    for k, position in enumerate(at):
        facts = _row_facts(
            ids[k],
            *(texts[column][k] for column in _TEXT_COLUMNS),
            {column: rows.utc[column][position] for column in TIMESTAMP_COLUMNS},
            problems[k],
        )
        _store(out, position, evaluate(facts, as_of, policy))


def _row_facts(request_id, regime, request_type, status, instants: dict, read_problems) -> RequestFacts:
    sentences = list(_split_read_problems(read_problems))
    timestamps = {}
    for column, instant in instants.items():
        if np.isnat(instant):
            timestamps[column] = None
        elif not _FIRST_INSTANT <= instant < _END_INSTANT:
            timestamps[column] = None
            sentences.append(f"{column} is outside the years 1-9999")
        else:
            timestamps[column] = instant.astype(datetime).replace(tzinfo=timezone.utc)
    return RequestFacts(
        request_id=int(request_id),
        regime=_missing_as_none(regime),
        request_type=_missing_as_none(request_type),
        status=_missing_as_none(status),
        **timestamps,
        read_problems=tuple(sentences),
    )


def _split_read_problems(value: object) -> Sequence[str]:
    value = _missing_as_none(value)
    if not value:
        return ()
    if isinstance(value, str):
        return value.split(READ_PROBLEM_SEPARATOR)
    return [str(sentence) for sentence in value]  # a list of sentences is understood too


def _missing_as_none(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _store(out: _Result, position: int, result: Evaluation) -> None:
    for column in DATE_COLUMNS:
        value = getattr(result, column)
        getattr(out, column)[position] = _NAT if value is None else np.datetime64(value, "D")
    out.state[position] = _STATE[result.state]
    out.extension[position] = list(_EXTENSIONS).index(result.extension)
    out.flags[position] = sum(_FLAG_BITS[flag] for flag in result.flags)
    out.days_known[position] = result.days_left is not None
    out.days_left[position] = result.days_left or 0
    out.invalid_reason[position] = result.invalid_reason
