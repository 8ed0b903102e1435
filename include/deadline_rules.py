"""Deadline rules for privacy requests (docs/rules.md), as pure functions.

Nothing here touches Airflow, a database or the clock: ``evaluate`` takes one ``privacy_requests`` row,
an evaluation date and a policy, and returns what is due when and what state the request is in. The DAG
does the reading, writing and escalating. Keeping the legal arithmetic here means it can be tested
exhaustively (including property tests) without a scheduler.

Legal sources of the rules:

* GDPR Art. 12(3): answer "without undue delay and in any event within one month of receipt", extendable
  "by two further months" provided the data subject is told "within one month of receipt". Months are
  counted as in Regulation (EEC, Euratom) No 1182/71 Art. 3: same day number of the next month, else the
  last day of that month, and a deadline that ends on a non-working day ends on the next working day.
* Cal. Code Regs. tit. 11 §7021: confirm receipt within 10 business days, respond within 45 calendar
  days, extendable once by another 45 (90 in all) when notice is given within the first 45 days.
* Cal. Code Regs. tit. 11 §7026(f): honour a request to opt out of sale within 15 business days.
* The privacy policy's own promise: "we have one month to respond to you", for every request.

the rule "one bad row never stops the others": a row whose values the reader could not read (its
``read_problems``), whose columns are unknown or out of order, or whose dates are implausible (received
in the future or before ``DeadlinePolicy.earliest``, completed after the evaluation date) comes back
``invalid`` with every reason, in the order ``_problems`` documents.
"""
from __future__ import annotations

import calendar
import functools
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

GDPR = "gdpr"
CCPA = "ccpa"

REGIME_TYPES: dict[str, frozenset[str]] = {
    GDPR: frozenset({"access", "rectification", "erasure", "restriction", "objection", "portability"}),
    CCPA: frozenset({"know", "delete", "opt_out_of_sale"}),
}
OPEN_STATUSES = frozenset({"received", "verifying", "in_progress"})
CLOSED_STATUSES = frozenset({"completed", "rejected", "withdrawn"})
# The status the compliance store records for a request it tracked as open that the operational database no longer has
# (deleted while it was open): no request carries it; closed to every count, since nothing is left to act on.
GONE_STATUS = "deleted"
GONE_REASON = ("the request is no longer in the operational database (deleted while it was open): nothing is left to "
               "evaluate or escalate")
STATES = (
    "awaiting_identity",
    "on_track",
    "due_soon",
    "overdue",
    "ack_overdue",
    "closed_on_time",
    "closed_late",
    "invalid",
)
ESCALATION_STATES = frozenset({"ack_overdue", "due_soon", "overdue"})

EXTENSION_NONE = "none"
EXTENSION_VALID = "valid"
EXTENSION_INVALID = "invalid"

FLAG_INVALID_EXTENSION = "invalid_extension"
FLAG_ACK_LATE = "ack_late"
FLAG_ACK_MISSING = "ack_missing"

# Timestamp columns in the order they are checked and reported.
TIMESTAMP_COLUMNS = (
    "received_at",
    "acknowledged_at",
    "identity_requested_at",
    "identity_verified_at",
    "extended_at",
    "completed_at",
)

# §7021(a): confirmation of receipt within 10 business days.
CCPA_ACK_BUSINESS_DAYS = 10
# §7021(b): response within 45 calendar days; one extension of up to 45 more (90 in all).
CCPA_RESPONSE_DAYS = 45
CCPA_EXTENDED_RESPONSE_DAYS = 90
# §7026(f): opt-out of sale honoured within 15 business days; the regulation grants no extension.
CCPA_OPT_OUT_BUSINESS_DAYS = 15
CCPA_OPT_OUT_TYPE = "opt_out_of_sale"
# GDPR Art. 12(3): one month, extendable by two further months (three in all).
GDPR_RESPONSE_MONTHS = 1
GDPR_EXTENDED_RESPONSE_MONTHS = 3
# The policy promises "one month to respond" in both regimes.
POLICY_RESPONSE_MONTHS = 1

# A calendar that has no working day for this long is misconfigured; stop rather than loop for ever.
MAX_NON_WORKING_RUN = 366
# Keep reasons readable when a column holds garbage of arbitrary length.
_MAX_VALUE_REPR = 60

IsWorking = Callable[[date], bool]


# --------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class RequestFacts:
    """One ``privacy_requests`` row, as deadline tracking and fulfilment read it; timestamps are tz-aware
    datetimes or None, and ``user_id`` is the account it names (fulfilment reads it, deadline tracking does not).

    ``read_problems`` are what the reader found wrong in the row's raw values before they became
    Python objects: values PostgreSQL holds and ``datetime`` cannot (``infinity``, ``-infinity``, BC
    dates, years after 9999). The contract with the reader:

    * the reader replaces such a value with None and adds one sentence for it;
    * each sentence starts with the name of the column it is about, then a space
      ("received_at holds infinity", "completed_at is a BC date");
    * a sentence contains no "; " (sentences are joined with it in ``invalid_reason``).

    A row with read problems is always ``invalid``; its reason starts with these sentences, and a column
    they name is not reported a second time as missing (see ``read_problem_columns``).
    """

    request_id: int
    regime: str | None
    request_type: str | None
    status: str | None
    received_at: datetime | None
    acknowledged_at: datetime | None = None
    identity_requested_at: datetime | None = None
    identity_verified_at: datetime | None = None
    extended_at: datetime | None = None
    completed_at: datetime | None = None
    read_problems: tuple[str, ...] = ()
    user_id: int | None = None


@dataclass(frozen=True)
class DeadlinePolicy:
    """Configuration of the evaluation: time zone, due-soon window, per-regime holiday calendars, and
    the earliest plausible receipt date (docs/rules.md: a receipt before it makes the row ``invalid``)."""

    tz: ZoneInfo = ZoneInfo("UTC")
    due_soon_days: int = 7
    # regime -> holiday dates ('in' test); a regime without an entry has no holidays.
    holidays: Mapping[str, Container[date]] = field(default_factory=dict)
    earliest: date = date(2000, 1, 1)

    def __post_init__(self) -> None:
        # A bad policy is a configuration bug, not dirty data: fail when it is built, not per row.
        if not isinstance(self.tz, tzinfo):
            raise TypeError(f"tz must be a tzinfo (e.g. ZoneInfo('UTC')), not {type(self.tz).__name__}")
        if isinstance(self.due_soon_days, bool) or not isinstance(self.due_soon_days, int):
            raise TypeError("due_soon_days must be an int")
        if self.due_soon_days < 0:
            raise ValueError("due_soon_days must be >= 0")
        if isinstance(self.earliest, datetime) or not isinstance(self.earliest, date):
            raise TypeError(f"earliest must be a date (not a datetime), not {type(self.earliest).__name__}")

    def is_working_day(self, regime: str, d: date) -> bool:
        # The deadline rules: a working day excludes Saturday, Sunday and the regime calendar's public holidays.
        if d.weekday() >= 5:
            return False
        return d not in self.holidays.get(regime, frozenset())


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one request on one date."""

    request_id: int
    regime: str | None
    request_type: str | None
    status: str | None
    clock_start: date | None
    ack_due: date | None
    statutory_due: date | None
    policy_due: date | None
    effective_due: date | None
    state: str
    days_left: int | None
    extension: str  # 'none' | 'valid' | 'invalid'
    flags: tuple[str, ...]
    invalid_reason: str | None


@dataclass(frozen=True)
class _LocalDates:
    """The calendar dates (in the policy time zone) of a request's timestamps.

    ``received`` is None only on a row that is invalid anyway (its receipt is missing or unreadable).
    """

    received: date | None
    acknowledged: date | None
    identity_requested: date | None
    identity_verified: date | None
    extended: date | None
    completed: date | None


@dataclass(frozen=True)
class _Deadlines:
    clock_start: date | None
    ack_due: date | None
    statutory_due: date | None
    policy_due: date | None
    effective_due: date | None
    extension: str
    flags: tuple[str, ...] = ()

    @property
    def clock_started(self) -> bool:
        return self.clock_start is not None


# --------------------------------------------------------------------------------------------------
# Calendar arithmetic


def local_date(ts: datetime, tz: ZoneInfo) -> date:
    """The calendar date of ``ts`` in ``tz``."""
    # A naive timestamp would be read in the server's local zone by astimezone(); refuse to guess.
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("timestamp has no time zone")
    return ts.astimezone(tz).date()


def add_months_clamped(d: date, months: int) -> date:
    """Same day number ``months`` later; where that month is shorter, its last day.

    This is the month count of Regulation 1182/71 Art. 3(2)(c), which GDPR Art. 12(3) relies on.
    """
    year, month_index = divmod(d.year * 12 + (d.month - 1) + months, 12)
    if not MINYEAR <= year <= MAXYEAR:
        raise OverflowError("date value out of range")
    month = month_index + 1
    last_day = calendar.monthrange(year, month)[1]
    return date(year, month, min(d.day, last_day))


def next_working_day(d: date, is_working: IsWorking) -> date:
    """``d`` itself if it is a working day, else the first working day after it."""
    candidate = d
    for _ in range(MAX_NON_WORKING_RUN):
        if is_working(candidate):
            return candidate
        candidate += timedelta(days=1)
    raise ValueError(f"no working day in the {MAX_NON_WORKING_RUN} days from {d}; check the holiday calendar")


def add_business_days(d: date, n: int, is_working: IsWorking) -> date:
    """The ``n``-th working day after ``d`` (``d`` itself is not counted; ``n == 0`` gives ``d``).

    §7021/§7026 periods in business days start counting the day after receipt.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    current = d
    for _ in range(n):
        current = next_working_day(current + timedelta(days=1), is_working)
    return current


def month_deadline(start: date, months: int, is_working: IsWorking) -> date:
    """The GDPR month rule: same day number (clamped to month end), rolled to the next working day.

    Regulation 1182/71 Art. 3(4): a period ending on a holiday, Saturday or Sunday ends at the end of
    the following working day.
    """
    return next_working_day(add_months_clamped(start, months), is_working)


# --------------------------------------------------------------------------------------------------
# Evaluation


def evaluate(req: RequestFacts, as_of: date, policy: DeadlinePolicy) -> Evaluation:
    """Deadlines and state of ``req`` on ``as_of``. Never raises for a bad row: it comes back ``invalid``."""
    # as_of and policy come from our own code, so a wrong type there is a bug to surface loudly.
    if isinstance(as_of, datetime) or not isinstance(as_of, date):
        raise TypeError("as_of must be a date (not a datetime)")

    problems, dates = _problems(req, as_of, policy)
    if problems:
        return _invalid(req, problems)
    dates = _as_it_stood(dates, as_of)

    is_working = functools.partial(policy.is_working_day, req.regime)
    try:
        if req.regime == GDPR:
            deadlines = _gdpr_deadlines(dates, is_working)
        else:
            deadlines = _ccpa_deadlines(req.request_type, dates, is_working)
    except OverflowError:
        return _invalid(req, ["a deadline falls beyond the supported calendar (year 9999)"])
    return _classify(req, dates, deadlines, as_of, policy.due_soon_days)


def _problems(req: RequestFacts, as_of: date, policy: DeadlinePolicy) -> tuple[list[str], _LocalDates | None]:
    """Every reason the row cannot be evaluated (all collected), and its local dates when they exist.

    the rule "one bad row never stops the others". The reasons come in this order:

    1. the reader's problems, as the reader worded them (values Python cannot hold);
    2. regime and request type, then status;
    3. timestamps missing (unless a read problem already speaks for the column) or not aware datetimes;
    4. timestamps out of order (compared as instants);
    5. once every timestamp is an aware datetime: a local date outside the calendar (years 1-9999) in the
       policy time zone, else the implausible ones: received in the future, received before
       ``policy.earliest``, completed after ``as_of``.
    """
    read_problems = _read_problems(req)
    covered = read_problem_columns(read_problems)
    type_problems = _timestamp_type_problems(req)
    problems = [
        *read_problems,
        *_regime_type_problems(req.regime, req.request_type, covered),
        *_status_problems(req.status, covered),
        *_receipt_problems(req.received_at, covered),
        *type_problems,
    ]
    if type_problems:
        # Ordering and local dates need aware datetimes; the type problem is already reported.
        return problems, None
    problems += _order_problems(req)
    try:
        dates = _local_dates(req, policy.tz)
    except OverflowError:
        return [*problems, "a timestamp is outside the supported date range in the configured time zone"], None
    return [*problems, *_implausible_dates(dates, as_of, policy.earliest)], dates


def read_problem_columns(read_problems: Iterable[str]) -> frozenset[str]:
    """The columns the reader's sentences are about: the first word of each (see ``RequestFacts``)."""
    return frozenset(problem.split(" ", 1)[0] for problem in read_problems)


def _read_problems(req: RequestFacts) -> list[str]:
    # Tolerate a reader that passes one sentence as a bare string (or anything else) rather than a tuple.
    value = req.read_problems
    if value is None or (isinstance(value, str | tuple | list) and not value):
        return []
    if isinstance(value, tuple | list):
        return [str(problem) for problem in value]
    return [str(value)]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."


def _regime_type_problems(regime: object, request_type: object, covered: frozenset[str]) -> list[str]:
    problems = []
    regime_ok = isinstance(regime, str) and regime in REGIME_TYPES
    if regime is None:
        if "regime" not in covered:
            problems.append("regime is missing")
    elif not regime_ok:
        problems.append(f"unknown regime {_show(regime)}")

    all_types = frozenset().union(*REGIME_TYPES.values())
    if request_type is None:
        if "request_type" not in covered:
            problems.append("request type is missing")
    elif not (isinstance(request_type, str) and request_type in all_types):
        problems.append(f"unknown request type {_show(request_type)}")
    elif regime_ok and request_type not in REGIME_TYPES[regime]:
        problems.append(f"request type {request_type!r} is not a {regime} request type")
    return problems


def _status_problems(status: object, covered: frozenset[str]) -> list[str]:
    if status is None:
        return [] if "status" in covered else ["status is missing"]
    if not (isinstance(status, str) and status in OPEN_STATUSES | CLOSED_STATUSES):
        return [f"unknown status {_show(status)}"]
    return []


def _receipt_problems(received_at: object, covered: frozenset[str]) -> list[str]:
    # A receipt the reader could not read is reported by the reader's sentence, not again as missing.
    if received_at is None and "received_at" not in covered:
        return ["received_at is missing"]
    return []


def _timestamp_type_problems(req: RequestFacts) -> list[str]:
    problems = []
    for column in TIMESTAMP_COLUMNS:
        value = getattr(req, column)
        if value is None:
            continue
        if not isinstance(value, datetime):
            problems.append(f"{column} is not a timestamp")
        elif value.tzinfo is None or value.utcoffset() is None:
            problems.append(f"{column} has no time zone")
    return problems


def _order_problems(req: RequestFacts) -> list[str]:
    """Dates out of order: nothing can happen to a request before it was received."""
    problems = []
    received = req.received_at
    for column in ("acknowledged_at", "identity_requested_at", "identity_verified_at", "extended_at", "completed_at"):
        value = getattr(req, column)
        if value is not None and received is not None and value < received:
            problems.append(f"{column} is before received_at")
    requested, verified = req.identity_requested_at, req.identity_verified_at
    if requested is not None and verified is not None and verified < requested:
        problems.append("identity_verified_at is before identity_requested_at")
    return problems


def _implausible_dates(dates: _LocalDates, as_of: date, earliest: date) -> list[str]:
    """docs/rules.md: dates no real request can have, judged on local calendar dates.

    A receipt after ``as_of`` has not happened yet; nor has a completion after it (in a what-if run
    as of an earlier day, a later completion is equally unknown). A receipt before ``earliest`` (default
    2000-01-01) is a placeholder or a typo, not a request anyone can still answer.
    """
    problems = []
    received, completed = dates.received, dates.completed
    if received is not None and received > as_of:
        problems.append(f"received in the future ({received} is after the evaluation date {as_of})")
    if received is not None and received < earliest:
        problems.append(f"received_at {received} is before the earliest plausible date {earliest}")
    if completed is not None and completed > as_of:
        problems.append(f"completed_at {completed} is after the evaluation date {as_of}")
    return problems


def _local_dates(req: RequestFacts, tz: ZoneInfo) -> _LocalDates:
    def day(ts: datetime | None) -> date | None:
        return None if ts is None else local_date(ts, tz)

    return _LocalDates(
        received=day(req.received_at),
        acknowledged=day(req.acknowledged_at),
        identity_requested=day(req.identity_requested_at),
        identity_verified=day(req.identity_verified_at),
        extended=day(req.extended_at),
        completed=day(req.completed_at),
    )


# The events a request records after its receipt that an evaluation on an earlier day has not seen yet.
LATER_EVENTS = ("acknowledged", "identity_requested", "identity_verified", "extended")


def _as_it_stood(dates: _LocalDates, as_of: date) -> _LocalDates:
    """The request as it stood at the end of ``as_of``: an acknowledgement, an identity request or verification, or
    an extension dated later had not happened yet (a what-if in the past sees the request as it was that day:
    until the verification, ``awaiting_identity``; past the acknowledgement date without one, ``ack_overdue``).
    A receipt or a completion dated later makes the row invalid instead (:func:`_implausible_dates`)."""
    later = {name: None for name in LATER_EVENTS if getattr(dates, name) is not None and getattr(dates, name) > as_of}
    return replace(dates, **later) if later else dates


def _gdpr_deadlines(dates: _LocalDates, is_working: IsWorking) -> _Deadlines:
    # Art. 12(6) lets the controller ask for identity information; the month then runs from
    # verification (docs/rules.md), so until then there is no due date.
    if dates.identity_requested is not None and dates.identity_verified is None:
        # An extension recorded before the clock has started is necessarily inside the first month.
        extension = EXTENSION_NONE if dates.extended is None else EXTENSION_VALID
        return _Deadlines(None, None, None, None, None, extension)
    clock_start = dates.identity_verified if dates.identity_requested is not None else dates.received

    one_month = month_deadline(clock_start, GDPR_RESPONSE_MONTHS, is_working)
    policy_due = month_deadline(clock_start, POLICY_RESPONSE_MONTHS, is_working)
    # Art. 12(3): the extension must be notified "within one month of receipt of the request"; we
    # read that month as the one the clock is running (on or before the unextended due date).
    extension = _extension_status(dates.extended, latest_valid=one_month)
    if extension == EXTENSION_VALID:
        # Art. 12(3): "extended by two further months" = three months from the clock start.
        statutory = month_deadline(clock_start, GDPR_EXTENDED_RESPONSE_MONTHS, is_working)
    else:
        statutory = one_month
    return _Deadlines(
        clock_start=clock_start,
        ack_due=None,  # GDPR has no separate acknowledgement deadline
        statutory_due=statutory,
        policy_due=policy_due,
        effective_due=_effective_due(statutory, policy_due, extension),
        extension=extension,
        flags=_extension_flags(extension),
    )


def _ccpa_deadlines(request_type: str, dates: _LocalDates, is_working: IsWorking) -> _Deadlines:
    # §7021(b): the 45 days run from receipt "regardless of time required to verify the request".
    received = dates.received
    ack_due = add_business_days(received, CCPA_ACK_BUSINESS_DAYS, is_working)
    policy_due = month_deadline(received, POLICY_RESPONSE_MONTHS, is_working)
    if request_type == CCPA_OPT_OUT_TYPE:
        # §7026(f): 15 business days, and the regulation allows no extension for opt-outs.
        statutory = add_business_days(received, CCPA_OPT_OUT_BUSINESS_DAYS, is_working)
        extension = EXTENSION_NONE if dates.extended is None else EXTENSION_INVALID
    else:
        # §7021(b): calendar days, not moved off weekends or holidays.
        unextended = received + timedelta(days=CCPA_RESPONSE_DAYS)
        # The extension notice must be given within the first 45 days.
        extension = _extension_status(dates.extended, latest_valid=unextended)
        days = CCPA_EXTENDED_RESPONSE_DAYS if extension == EXTENSION_VALID else CCPA_RESPONSE_DAYS
        statutory = received + timedelta(days=days)
    return _Deadlines(
        clock_start=received,
        ack_due=ack_due,
        statutory_due=statutory,
        policy_due=policy_due,
        effective_due=_effective_due(statutory, policy_due, extension),
        extension=extension,
        flags=_extension_flags(extension),
    )


def _extension_status(extended: date | None, latest_valid: date) -> str:
    if extended is None:
        return EXTENSION_NONE
    return EXTENSION_VALID if extended <= latest_valid else EXTENSION_INVALID


def _extension_flags(extension: str) -> tuple[str, ...]:
    return (FLAG_INVALID_EXTENSION,) if extension == EXTENSION_INVALID else ()


def _effective_due(statutory: date, policy_due: date, extension: str) -> date:
    # The deadline rules: we keep the stricter of the law and our own promise, except that a lawful extension
    # (which the data subject has been told about) replaces the one-month promise.
    if extension == EXTENSION_VALID:
        return statutory
    return min(statutory, policy_due)


def _ack_flags(dates: _LocalDates, deadlines: _Deadlines, closed: bool, as_of: date) -> tuple[str, ...]:
    """§7021(a) acknowledgement: late, or never sent once it was due."""
    if deadlines.ack_due is None:
        return ()
    if dates.acknowledged is not None:
        return (FLAG_ACK_LATE,) if dates.acknowledged > deadlines.ack_due else ()
    # A request answered on or before the acknowledgement date needed no separate confirmation.
    last_day_seen = dates.completed if closed else as_of
    if last_day_seen is not None and last_day_seen > deadlines.ack_due:
        return (FLAG_ACK_MISSING,)
    return ()


def _classify(
    req: RequestFacts, dates: _LocalDates, deadlines: _Deadlines, as_of: date, due_soon_days: int
) -> Evaluation:
    closed = req.status in CLOSED_STATUSES
    flags = deadlines.flags + _ack_flags(dates, deadlines, closed, as_of)

    if closed:
        if dates.completed is None:
            return _evaluation(req, deadlines, "invalid", None, flags, f"{req.status} request has no completed_at")
        if not deadlines.clock_started:
            # GDPR closed before identity was verified: the month never started, so it cannot be late.
            return _evaluation(req, deadlines, "closed_on_time", None, flags)
        state = "closed_on_time" if dates.completed <= deadlines.effective_due else "closed_late"
        return _evaluation(req, deadlines, state, None, flags)

    if not deadlines.clock_started:
        return _evaluation(req, deadlines, "awaiting_identity", None, flags)
    days_left = (deadlines.effective_due - as_of).days
    return _evaluation(req, deadlines, _open_state(days_left, dates, deadlines, as_of, due_soon_days), days_left, flags)


def _open_state(days_left: int, dates: _LocalDates, deadlines: _Deadlines, as_of: date, due_soon_days: int) -> str:
    if days_left < 0:
        return "overdue"
    # The deadline rules: a missed §7021(a) confirmation outranks on_track and due_soon, not overdue.
    if deadlines.ack_due is not None and dates.acknowledged is None and as_of > deadlines.ack_due:
        return "ack_overdue"
    if days_left <= due_soon_days:
        return "due_soon"
    return "on_track"


def _evaluation(
    req: RequestFacts,
    deadlines: _Deadlines,
    state: str,
    days_left: int | None,
    flags: tuple[str, ...],
    invalid_reason: str | None = None,
) -> Evaluation:
    return Evaluation(
        request_id=req.request_id,
        regime=req.regime,
        request_type=req.request_type,
        status=req.status,
        clock_start=deadlines.clock_start,
        ack_due=deadlines.ack_due,
        statutory_due=deadlines.statutory_due,
        policy_due=deadlines.policy_due,
        effective_due=deadlines.effective_due,
        state=state,
        days_left=days_left,
        extension=deadlines.extension,
        flags=flags,
        invalid_reason=invalid_reason,
    )


def _invalid(req: RequestFacts, problems: list[str]) -> Evaluation:
    no_deadlines = _Deadlines(None, None, None, None, None, EXTENSION_NONE)
    return _evaluation(req, no_deadlines, "invalid", None, (), "; ".join(problems))
