"""Property tests for include/deadline_rules.py: invariants of the deadline rules over random calendars and rows."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from include.calendars import holiday_calendar
from include.deadline_rules import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    REGIME_TYPES,
    STATES,
    TIMESTAMP_COLUMNS,
    DeadlinePolicy,
    RequestFacts,
    add_business_days,
    add_months_clamped,
    evaluate,
    local_date,
    month_deadline,
)

SETTINGS = settings(max_examples=300, deadline=None)

START = date(2020, 1, 1)
END = date(2032, 12, 31)
ZONE_NAMES = ("UTC", "Europe/Dublin", "Europe/Berlin", "America/Los_Angeles", "Pacific/Kiritimati")
ZONES = [ZoneInfo(name) for name in ZONE_NAMES]

dates = st.dates(min_value=START, max_value=END)
# Clustered holidays make long non-working runs (bridges, Christmas weeks) likely, not just possible.
holiday_sets = st.one_of(
    st.frozensets(dates, max_size=40),
    st.builds(
        lambda first, length: frozenset(first + timedelta(days=i) for i in range(length)),
        dates,
        st.integers(min_value=1, max_value=12),
    ),
)


def working_day_test(holiday_set):
    return lambda d: d.weekday() < 5 and d not in holiday_set


def longest_non_working_run(first: date, last: date, is_working) -> int:
    longest = current = 0
    day = first
    while day <= last:
        current = 0 if is_working(day) else current + 1
        longest = max(longest, current)
        day += timedelta(days=1)
    return longest


# --------------------------------------------------------------------------------------------------
# Calendar arithmetic


@SETTINGS
@given(start=dates, holiday_set=holiday_sets)
def test_month_deadline_bounds(start, holiday_set):
    is_working = working_day_test(holiday_set)
    due = month_deadline(start, 1, is_working)
    assert is_working(due)
    assert due >= start + timedelta(days=28)
    run = longest_non_working_run(start, start + timedelta(days=31 + len(holiday_set) + 60), is_working)
    assert due <= start + timedelta(days=31 + run)
    # It is the clamped month end rolled forward, never backward.
    assert due >= add_months_clamped(start, 1)


@SETTINGS
@given(first=dates, second=dates, months=st.sampled_from([1, 3]), holiday_set=holiday_sets)
def test_month_deadline_is_monotonic(first, second, months, holiday_set):
    is_working = working_day_test(holiday_set)
    early, late = sorted((first, second))
    assert month_deadline(early, months, is_working) <= month_deadline(late, months, is_working)


@SETTINGS
@given(d=dates, n=st.integers(min_value=1, max_value=30), holiday_set=holiday_sets)
def test_add_business_days_counts_exactly_n_working_days(d, n, holiday_set):
    is_working = working_day_test(holiday_set)
    result = add_business_days(d, n, is_working)
    assert is_working(result)
    span = [d + timedelta(days=i) for i in range(1, (result - d).days + 1)]
    assert sum(1 for day in span if is_working(day)) == n


# --------------------------------------------------------------------------------------------------
# Evaluation of plausible rows


@st.composite
def plausible_requests(draw):
    """Rows that are mostly valid, with occasional dirt: wrong type, missing or out-of-order dates."""

    def chance(percent: int) -> bool:
        # Hypothesis favours the ends of an integer range; put the rare outcome in the middle so the
        # percentages are roughly honoured.
        return draw(st.integers(0, 999)) in range(200, 200 + 10 * percent)

    regime = draw(st.sampled_from(["gdpr", "ccpa"]))
    types = REGIME_TYPES["ccpa" if regime == "gdpr" else "gdpr"] if chance(3) else REGIME_TYPES[regime]
    request_type = draw(st.sampled_from(sorted(types)))
    status = draw(st.sampled_from(sorted(OPEN_STATUSES | CLOSED_STATUSES)))
    tz = draw(st.sampled_from(ZONES))
    received_at = draw(
        st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(tz))
    )

    def later(percent_missing: int, max_days: int) -> datetime | None:
        if chance(percent_missing):
            return None
        hours = draw(st.integers(0, max_days * 24))
        if chance(2):  # a few hours before receipt, which must come back invalid
            hours = -draw(st.integers(1, 48))
        return received_at + timedelta(hours=hours)

    identity_requested_at = later(60, 20)
    identity_verified_at = None
    if identity_requested_at is not None and draw(st.booleans()):
        identity_verified_at = identity_requested_at + timedelta(hours=draw(st.integers(0, 40 * 24)))
    return RequestFacts(
        request_id=draw(st.integers(1, 10**9)),
        regime=regime,
        request_type=request_type,
        status=status,
        received_at=received_at,
        acknowledged_at=later(40, 20),
        identity_requested_at=identity_requested_at,
        identity_verified_at=identity_verified_at,
        extended_at=later(60, 60),
        completed_at=later(3 if status in CLOSED_STATUSES else 80, 150),
    )


policies = st.builds(
    lambda tz, soon, gdpr_holidays, ccpa_holidays, earliest: DeadlinePolicy(
        tz=tz, due_soon_days=soon, holidays={"gdpr": gdpr_holidays, "ccpa": ccpa_holidays}, earliest=earliest
    ),
    st.sampled_from(ZONES),
    st.integers(0, 14),
    holiday_sets,
    holiday_sets,
    st.one_of(st.just(date(2000, 1, 1)), st.dates(min_value=date(2020, 1, 1), max_value=date(2031, 12, 31))),
)


@st.composite
def evaluations(draw):
    req = draw(plausible_requests())
    policy = draw(policies)
    received = req.received_at.astimezone(policy.tz).date()
    # Weighted towards the weeks around the one-month and 45-day deadlines, where states change.
    as_of = received + timedelta(days=draw(st.one_of(st.integers(-3, 200), st.integers(8, 50))))
    return req, as_of, policy, evaluate(req, as_of, policy)


@SETTINGS
@given(case=evaluations())
def test_state_and_reason_are_consistent(case):
    req, as_of, policy, result = case
    assert result.state in STATES
    assert (result.state == "invalid") == (result.invalid_reason is not None)
    assert result.extension in {"none", "valid", "invalid"}
    assert ("invalid_extension" in result.flags) == (result.extension == "invalid")
    assert result.request_id == req.request_id


@SETTINGS
@given(case=evaluations())
def test_effective_due_is_the_stricter_date_unless_validly_extended(case):
    req, as_of, policy, result = case
    if result.effective_due is None:
        return
    if result.extension != "valid":
        assert result.effective_due <= result.statutory_due
        assert result.effective_due <= result.policy_due
    else:
        assert result.effective_due == result.statutory_due
        unextended = evaluate(replace(req, extended_at=None), as_of, policy)
        assert result.effective_due >= unextended.effective_due


@SETTINGS
@given(case=evaluations())
def test_ccpa_calendar_day_deadlines_are_exact(case):
    req, as_of, policy, result = case
    if result.state == "invalid" or req.regime != "ccpa" or req.request_type not in {"know", "delete"}:
        return
    expected = 90 if result.extension == "valid" else 45
    assert (result.statutory_due - result.clock_start).days == expected
    assert result.clock_start == req.received_at.astimezone(policy.tz).date()


@SETTINGS
@given(case=evaluations())
def test_open_requests_count_days_left_from_effective_due(case):
    req, as_of, policy, result = case
    if result.state == "invalid":
        return
    if req.status in CLOSED_STATUSES:
        assert result.days_left is None
        assert result.state in {"closed_on_time", "closed_late"}
        return
    if result.state == "awaiting_identity":
        assert req.regime == "gdpr" and result.days_left is None and result.effective_due is None
        return
    assert result.days_left == (result.effective_due - as_of).days
    assert (result.state == "overdue") == (result.days_left < 0)
    if result.state == "due_soon":
        assert 0 <= result.days_left <= policy.due_soon_days
    if result.state == "ack_overdue":  # not acknowledged by then: never, or only after the day evaluated
        assert req.regime == "ccpa" and as_of > result.ack_due
        assert req.acknowledged_at is None or local_date(req.acknowledged_at, policy.tz) > as_of


@SETTINGS
@given(case=evaluations())
def test_working_day_deadlines_land_on_working_days(case):
    req, as_of, policy, result = case
    if result.effective_due is None:
        return
    is_working = lambda d: policy.is_working_day(req.regime, d)  # noqa: E731
    assert is_working(result.policy_due)
    if result.ack_due is not None:
        assert is_working(result.ack_due)
    if req.regime == "gdpr":
        assert is_working(result.statutory_due)


# --------------------------------------------------------------------------------------------------
# Garbage never crashes a run


def _anything_in_a_column():
    return st.one_of(
        st.none(),
        st.text(max_size=20),
        st.integers(),
        st.sampled_from(["gdpr", "ccpa", "access", "know", "opt_out_of_sale", "completed", "received"]),
        st.datetimes(),  # naive
        st.datetimes(timezones=st.timezones()),
        st.dates(),
        st.floats(allow_nan=True),
        st.lists(st.integers(), max_size=2),
    )


def _timestamps():
    return st.one_of(
        st.none(),
        st.datetimes(timezones=st.timezones()),
        st.datetimes(timezones=st.just(timezone.utc)),
        st.datetimes(),
        st.text(max_size=10),
        st.dates(),
    )


garbage_requests = st.builds(
    RequestFacts,
    request_id=st.one_of(st.integers(), st.none(), st.text(max_size=5)),
    regime=_anything_in_a_column(),
    request_type=_anything_in_a_column(),
    status=_anything_in_a_column(),
    received_at=_timestamps(),
    acknowledged_at=_timestamps(),
    identity_requested_at=_timestamps(),
    identity_verified_at=_timestamps(),
    extended_at=_timestamps(),
    completed_at=_timestamps(),
    read_problems=st.one_of(st.just(()), st.lists(st.text(max_size=20), max_size=2).map(tuple), _anything_in_a_column()),
)


@st.composite
def damaged_requests(draw):
    """A plausible row with a few columns overwritten by garbage, so the checks after the first are reached."""
    req = draw(plausible_requests())
    columns = draw(st.sets(st.sampled_from(["regime", "request_type", "status", *TIMESTAMP_COLUMNS]), max_size=3))
    return replace(req, **{column: draw(_anything_in_a_column()) for column in columns})


@settings(max_examples=500, deadline=None)
@given(req=st.one_of(garbage_requests, damaged_requests()), as_of=st.dates(), policy=policies)
def test_evaluate_never_raises_on_garbage(req, as_of, policy):
    result = evaluate(req, as_of, policy)
    assert result.state in STATES
    assert (result.state == "invalid") == (result.invalid_reason is not None)


@settings(max_examples=300, deadline=None)
@given(
    regime=st.sampled_from(["gdpr", "ccpa"]),
    data=st.data(),
    received_at=st.datetimes(timezones=st.timezones()),
    as_of=st.dates(),
    policy=policies,
)
def test_evaluate_never_raises_at_the_ends_of_the_calendar(regime, data, received_at, as_of, policy):
    request_type = data.draw(st.sampled_from(sorted(REGIME_TYPES[regime])))
    status = data.draw(st.sampled_from(sorted(OPEN_STATUSES | CLOSED_STATUSES)))
    req = RequestFacts(1, regime, request_type, status, received_at, completed_at=received_at)
    result = evaluate(req, as_of, policy)
    assert result.state in STATES


@settings(max_examples=100, deadline=None)
@given(
    regime=st.sampled_from(["gdpr", "ccpa"]),
    data=st.data(),
    received_at=st.datetimes(timezones=st.timezones()),
    as_of=st.dates(),
)
def test_real_holiday_calendars_work_in_any_year(regime, data, received_at, as_of):
    # The `holidays` package computes years on demand; no year of a dirty row may make it fail.
    policy = DeadlinePolicy(holidays={"gdpr": holiday_calendar("IE", []), "ccpa": holiday_calendar("US-CA", [])})
    request_type = data.draw(st.sampled_from(sorted(REGIME_TYPES[regime])))
    result = evaluate(RequestFacts(1, regime, request_type, "received", received_at), as_of, policy)
    assert result.state in STATES
