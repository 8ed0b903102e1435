"""include/deadlines/columnar.py gives exactly what the scalar reference include/deadline_rules.py gives, row for row.

The scalar ``evaluate`` is the specification; ``evaluate_frame`` is the fast path. The property tests
generate frames of rows around the places where the rules turn (month ends, 29 February, weekends,
holidays, the 10/15-business-day and 45-day marks, extensions on their last valid day, timestamps near
midnight in several zones) with some dirt (unknown values, dates out of order or implausible, read
problems) and compare every field.
"""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.calendars import holiday_calendar
from include.deadline_rules import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    REGIME_TYPES,
    TIMESTAMP_COLUMNS,
    DeadlinePolicy,
    RequestFacts,
    add_business_days,
    add_months_clamped,
    evaluate,
    month_deadline,
)
from include.deadlines import columnar
from include.deadlines.columnar import RESULT_COLUMNS, evaluate_frame
from tests.deadline_frames import facts_frame, frame_evaluations

UTC = timezone.utc
ZONES = [ZoneInfo(name) for name in ("UTC", "Europe/Dublin", "America/Los_Angeles", "Pacific/Kiritimati")]
STATUSES = sorted(OPEN_STATUSES | CLOSED_STATUSES)
REAL_CALENDARS = {"gdpr": holiday_calendar("IE", []), "ccpa": holiday_calendar("US-CA", [])}


def both_paths(facts: list[RequestFacts], as_of: date, policy: DeadlinePolicy, frame: pd.DataFrame | None = None):
    """(columnar, scalar) evaluations of ``facts``; ``frame`` is their frame when a variant is wanted."""
    result = evaluate_frame(facts_frame(facts) if frame is None else frame, as_of, policy)
    return frame_evaluations(result), [evaluate(f, as_of, policy) for f in facts]


def assert_same(facts, as_of, policy, frame=None):
    got, expected = both_paths(facts, as_of, policy, frame)
    assert len(got) == len(expected)
    for facts_row, g, e in zip(facts, got, expected):
        for name in RESULT_COLUMNS:
            assert getattr(g, name) == getattr(e, name), (name, facts_row, as_of, policy, g, e)
    return got


# --------------------------------------------------------------------------------------------------
# Strategies

# Receipts where the month rule and the day counts turn: month ends, 29 February, Christmas, and the
# Fridays and weekends before them.
SPECIAL_DAYS = sorted(
    {
        d
        for year in range(2023, 2030)
        for month in range(1, 13)
        for d in (
            date(year, month, 1) - timedelta(days=back)
            for back in (1, 2, 3)  # the last days of the previous month
        )
    }
    | {date(2024, 2, 29), date(2028, 2, 29), date(2024, 1, 29), date(2028, 1, 30), date(2027, 11, 29)}
    | {date(year, 12, day) for year in range(2023, 2030) for day in range(15, 32)}
    | {date(year, 11, day) for year in range(2023, 2030) for day in range(25, 31)}
)
NEAR_MIDNIGHT = [time(0, 0), time(0, 0, 0, 1), time(0, 30), time(23, 0), time(23, 59, 59, 999999), time(12, 0)]

dates = st.dates(min_value=date(2022, 1, 1), max_value=date(2030, 12, 31))
holiday_sets = st.one_of(
    st.frozensets(dates, max_size=30),
    st.builds(  # clusters: bridges and Christmas weeks make long non-working runs likely
        lambda first, length: frozenset(first + timedelta(days=i) for i in range(length)),
        dates,
        st.integers(min_value=1, max_value=12),
    ),
)
calendars = st.one_of(st.just(frozenset()), holiday_sets, st.just(None))


@st.composite
def policies(draw, as_of: date):
    holidays = {}
    for regime in ("gdpr", "ccpa"):
        calendar = draw(calendars)
        if calendar is None:  # the real thing: the holidays package, years computed on demand
            calendar = REAL_CALENDARS[draw(st.sampled_from(["gdpr", "ccpa"]))]
        if calendar or draw(st.booleans()):
            holidays[regime] = calendar
    # Mostly the default; sometimes a date among the receipts, so both sides of it are seen.
    rnd = dice(draw)
    earliest = as_of - timedelta(days=draw(st.integers(0, 200))) if chance(rnd, 15) else date(2000, 1, 1)
    return DeadlinePolicy(
        tz=draw(st.sampled_from(ZONES)),
        due_soon_days=draw(st.sampled_from([0, 3, 7, 14])),
        holidays=holidays,
        earliest=earliest,
    )


def dice(draw) -> random.Random:
    """Independent rare outcomes: hypothesis likes to repeat a value within a test case (and favours the
    ends of ranges), which would make all of a row's rare outcomes happen together or never."""
    return random.Random(draw(st.integers(0, 2**32)))


def chance(rnd: random.Random, percent: int) -> bool:
    return rnd.random() * 100 < percent


def instant(draw, day: date, tz: ZoneInfo) -> datetime:
    """A moment of ``day`` in ``tz``, often just after or before midnight; shown in some zone."""
    clock = draw(st.one_of(st.sampled_from(NEAR_MIDNIGHT), st.times()))
    moment = datetime.combine(day, clock, tzinfo=tz)
    return moment.astimezone(draw(st.sampled_from([UTC, *ZONES])))


@st.composite
def rows(draw, as_of: date, policy: DeadlinePolicy, request_id: int) -> RequestFacts:
    """A privacy_requests row: mostly valid, with occasional dirt of every kind evaluate reports."""
    rnd = dice(draw)
    tz = draw(st.sampled_from([policy.tz, *ZONES]))  # the zone the dates are picked in
    regime = draw(st.sampled_from(["gdpr", "ccpa"]))
    request_type = draw(st.sampled_from(sorted(REGIME_TYPES[regime])))
    status = draw(st.sampled_from(STATUSES))
    if chance(rnd, 3):
        regime = draw(st.sampled_from([None, "lgpd", "GDPR", ""]))
    if chance(rnd, 3):
        other_regime = "gdpr" if regime == "ccpa" else "ccpa"
        request_type = draw(st.sampled_from([None, "sell", *sorted(REGIME_TYPES[other_regime])]))
    if chance(rnd, 3):
        status = draw(st.sampled_from([None, "open", "closed"]))

    special = [d for d in SPECIAL_DAYS if 0 <= (as_of - d).days <= 120]
    if special and chance(rnd, 40):
        received_day = draw(st.sampled_from(special))
    else:  # often a month or so ago, where due_soon, overdue and ack_overdue meet
        received_day = as_of - timedelta(days=rnd.choice([rnd.randint(0, 120), rnd.randint(15, 50)]))
    if chance(rnd, 3):
        received_day = as_of + timedelta(days=draw(st.integers(1, 3)))  # in the future
    if policy.earliest != date(2000, 1, 1) and chance(rnd, 30):
        received_day = policy.earliest - timedelta(days=rnd.choice([0, 1]))  # either side of earliest
    received_at = instant(draw, received_day, tz)
    age = (as_of - received_day).days

    def after(days_between: st.SearchStrategy[int]) -> datetime:
        if chance(rnd, 1):  # before receipt: out of order
            return received_at - timedelta(hours=draw(st.integers(1, 30)))
        days = draw(days_between)
        if days > age and not chance(rnd, 10):  # mostly what has happened by as_of
            days = draw(st.integers(0, max(age, 0)))
        return instant(draw, received_day + timedelta(days=days), tz)

    def around(*marks: int) -> st.SearchStrategy[int]:
        """Days after receipt, often near the marks where things turn (last valid day, due dates)."""
        return st.one_of(st.integers(0, 120), *(st.integers(mark - 2, mark + 2) for mark in marks))

    identity = draw(st.sampled_from(["never", "requested", "verified"]))
    identity_requested_at = None if identity == "never" else after(st.integers(0, 20))
    identity_verified_at = None
    if identity == "verified":
        identity_verified_at = identity_requested_at + timedelta(hours=draw(st.integers(0, 40 * 24)))
        if chance(rnd, 1):
            identity_verified_at = identity_requested_at - timedelta(minutes=1)
    closed = status in CLOSED_STATUSES
    facts = RequestFacts(
        request_id=request_id,
        regime=regime,
        request_type=request_type,
        status=status,
        received_at=received_at,
        acknowledged_at=None if draw(st.booleans()) else after(around(10, 14)),
        identity_requested_at=identity_requested_at,
        identity_verified_at=identity_verified_at,
        extended_at=None if draw(st.booleans()) else after(around(30, 45)),
        completed_at=after(around(10, 31, 45)) if (closed and not chance(rnd, 3)) or chance(rnd, 5) else None,
    )
    if facts.completed_at is not None and chance(rnd, 10):  # either side of the evaluation date
        facts = replace(facts, completed_at=instant(draw, as_of + timedelta(days=rnd.choice([0, 1])), tz))
    if chance(rnd, 70):
        facts = aimed_at_a_turn(draw, rnd, facts, as_of, policy)
    if chance(rnd, 4):  # the reader found values Python cannot hold: nulled, with a sentence each
        columns = draw(st.lists(st.sampled_from(TIMESTAMP_COLUMNS), min_size=1, max_size=2, unique=True))
        values = st.sampled_from(["holds infinity", "holds -infinity", "is a BC date", "is after year 9999"])
        sentences = tuple(f"{column} {draw(values)}" for column in columns)
        facts = replace(facts, **{column: None for column in columns}, read_problems=sentences)
    return facts


def aimed_at_a_turn(draw, rnd: random.Random, facts: RequestFacts, as_of: date, policy: DeadlinePolicy):
    """The row adjusted (with the scalar's help) so that a date where the outcome turns falls on, or a day
    either side of, its limit: the due date or the due-soon window against as_of, the acknowledgement date
    against as_of, completion against the due or acknowledgement date, an extension on its last valid day.
    """
    base = evaluate(facts, as_of, policy)
    if base.state == "invalid" or base.clock_start is None:
        return facts
    step = timedelta(days=rnd.choice([-1, 0, 1]))
    aim = rnd.choice(["due", "due", "due", "ack", "completed", "acknowledged", "extended"])
    if aim == "due":
        target = as_of + step + timedelta(days=rnd.choice([0, policy.due_soon_days]))
        for _ in range(2):  # moving the row moves its weekends too: aim twice
            due = evaluate(facts, as_of, policy).effective_due
            facts = facts if due is None else shifted(facts, target - due)
        return facts
    if aim == "ack" and base.ack_due is not None:
        return shifted(facts, as_of + step - base.ack_due)
    if aim == "completed" and facts.completed_at is not None:
        limit = base.ack_due if base.ack_due is not None and rnd.random() < 0.4 else base.effective_due
        return replace(facts, completed_at=instant(draw, limit + step, policy.tz))
    if aim == "acknowledged" and base.ack_due is not None:
        return replace(facts, acknowledged_at=instant(draw, base.ack_due + step, policy.tz))
    if aim == "extended":
        limit = evaluate(replace(facts, extended_at=None), as_of, policy).statutory_due  # the unextended date
        return replace(facts, extended_at=instant(draw, limit + step, policy.tz))
    return facts


def shifted(facts: RequestFacts, delta: timedelta) -> RequestFacts:
    """Every timestamp of the row moved by ``delta`` (whole days)."""
    moved = {c: getattr(facts, c) + delta for c in TIMESTAMP_COLUMNS if getattr(facts, c) is not None}
    return replace(facts, **moved)


@st.composite
def frames(draw, max_rows: int = 6):
    as_of = draw(st.one_of(dates, st.sampled_from(SPECIAL_DAYS)))
    policy = draw(policies(as_of))
    count = draw(st.integers(0, max_rows))
    facts = [draw(rows(as_of, policy, request_id)) for request_id in range(1, count + 1)]
    return facts, as_of, policy


@st.composite
def frame_variants(draw, facts: list[RequestFacts]) -> pd.DataFrame:
    """The same rows in the dtypes a reader may produce: pandas' str, pyarrow strings, other units and zones."""
    frame = facts_frame(facts)
    text = draw(st.sampled_from(["object", "str", "string[pyarrow]"]))
    if draw(st.booleans()):
        frame["read_problems"] = frame["read_problems"].fillna("")  # "" means none, like None
    for column in ("regime", "request_type", "status", "read_problems"):
        frame[column] = frame[column].astype(text)
    stamps = draw(st.sampled_from(["utc-us", "ns-elsewhere", "arrow"]))
    for column in TIMESTAMP_COLUMNS:
        if stamps == "ns-elsewhere":
            frame[column] = frame[column].astype("datetime64[ns, UTC]").dt.tz_convert("Asia/Tokyo")
        elif stamps == "arrow":
            frame[column] = frame[column].astype(pd.ArrowDtype(pa.timestamp("us", tz="UTC")))
    if draw(st.booleans()):
        frame.index = pd.Index(np.arange(len(frame))[::-1] * 10 + 7)
    if draw(st.booleans()):
        frame["assignee_email"] = "someone@example.com"  # extra columns are ignored
    return frame


# --------------------------------------------------------------------------------------------------
# The property: exactly the scalar result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=frames(), data=st.data())
def test_columnar_equals_scalar_row_for_row(case, data):
    facts, as_of, policy = case
    frame = data.draw(frame_variants(facts))
    result = evaluate_frame(frame, as_of, policy)
    assert list(result.columns) == list(RESULT_COLUMNS)
    assert result.index.equals(frame.index)
    assert_same(facts, as_of, policy, frame)


def seeded_rows(count: int, as_of: date, seed: int) -> list[RequestFacts]:
    """Plain pseudo-random rows (valid ones and every kind of invalid one), for a frame bigger than hypothesis's."""
    rnd = random.Random(seed)
    facts = []
    for request_id in range(count):
        regime = rnd.choice(["gdpr", "ccpa", "gdpr", "ccpa", "lgpd", None])
        request_type = rnd.choice(sorted(REGIME_TYPES.get(regime, {"access", "x"})))
        status = rnd.choice([*STATUSES, None])
        received_at = datetime.combine(as_of, time(), tzinfo=UTC) - timedelta(minutes=rnd.randint(-2000, 200 * 1440))

        def maybe(days: int) -> datetime | None:
            return None if rnd.random() < 0.5 else received_at + timedelta(minutes=rnd.randint(-60, days * 1440))

        requested = maybe(10)
        verified = None if requested is None or rnd.random() < 0.4 else requested + timedelta(hours=rnd.randint(0, 500))
        closed = status in CLOSED_STATUSES
        completed = maybe(60) if closed or rnd.random() < 0.05 else None
        problems = ("extended_at holds infinity",) if rnd.random() < 0.03 else ()
        facts.append(
            RequestFacts(
                request_id, regime, request_type, status, received_at, maybe(15), requested, verified,
                None if problems else maybe(50), completed, problems,
            )
        )
    return facts


@pytest.mark.parametrize("seed", [1, 2])
def test_chunks_of_any_size_give_the_whole_frames_result(seed):
    as_of = date(2026, 12, 28)
    policy = DeadlinePolicy(tz=ZoneInfo("America/Los_Angeles"), holidays=REAL_CALENDARS, earliest=date(2026, 1, 1))
    facts = seeded_rows(600, as_of, seed)
    frame = facts_frame(facts)
    whole = assert_same(facts, as_of, policy, frame)
    rnd = random.Random(seed)
    bounds = sorted({0, len(frame), *(rnd.randint(0, len(frame)) for _ in range(6)), 1, 2})
    chunks = [evaluate_frame(frame.iloc[lo:hi], as_of, policy) for lo, hi in zip(bounds, bounds[1:])]
    assert frame_evaluations(pd.concat(chunks)) == whole
    assert {e.state for e in whole} >= {"invalid", "on_track", "overdue", "closed_on_time", "closed_late"}


# --------------------------------------------------------------------------------------------------
# The calendar arithmetic on columns, against the scalar helpers

days_anywhere = st.dates(min_value=date(2020, 1, 1), max_value=date(2031, 12, 31))


def busday_calendar(holiday_set):
    return np.busdaycalendar(weekmask="1111100", holidays=sorted(holiday_set))


def working(holiday_set):
    return lambda d: d.weekday() < 5 and d not in holiday_set


@settings(max_examples=400, deadline=None)
@given(d=days_anywhere, n=st.integers(1, 30), holiday_set=holiday_sets)
def test_business_days_roll_backward_then_count_is_add_business_days(d, n, holiday_set):
    # add_business_days counts from the day after d, whether or not d is a working day.
    calendar = busday_calendar(holiday_set)
    got = columnar._add_business_days(np.array([d], dtype="datetime64[D]"), n, calendar)[0]
    assert got == np.datetime64(add_business_days(d, n, working(holiday_set)))


def test_roll_forward_would_count_a_non_working_receipt_day_twice():
    saturday = np.array(["2026-03-07"], dtype="datetime64[D]")
    weekdays = np.busdaycalendar(weekmask="1111100")
    assert add_business_days(date(2026, 3, 7), 1, lambda d: d.weekday() < 5) == date(2026, 3, 9)  # Monday
    assert np.busday_offset(saturday, 1, roll="forward", busdaycal=weekdays)[0] == np.datetime64("2026-03-10")
    assert columnar._add_business_days(saturday, 1, weekdays)[0] == np.datetime64("2026-03-09")


@settings(max_examples=400, deadline=None)
@given(d=days_anywhere, months=st.sampled_from([1, 3, -1, 12, 25]), holiday_set=holiday_sets)
def test_month_arithmetic_matches_the_scalar(d, months, holiday_set):
    column = np.array([d], dtype="datetime64[D]")
    assert columnar._add_months_clamped(column, months)[0] == np.datetime64(add_months_clamped(d, months))
    if months > 0:
        got = columnar._month_deadline(column, months, busday_calendar(holiday_set))[0]
        assert got == np.datetime64(month_deadline(d, months, working(holiday_set)))


def test_month_arithmetic_at_month_ends_and_29_february():
    starts = np.array(["2026-01-31", "2028-01-31", "2026-11-30", "2026-03-31", "2028-02-29"], dtype="datetime64[D]")
    assert columnar._add_months_clamped(starts, 1).tolist() == [
        date(2026, 2, 28),
        date(2028, 2, 29),
        date(2026, 12, 30),
        date(2026, 4, 30),
        date(2028, 3, 29),
    ]
    assert columnar._add_months_clamped(starts[:3], 3).tolist() == [
        date(2026, 4, 30),
        date(2028, 4, 30),
        date(2027, 2, 28),
    ]


# --------------------------------------------------------------------------------------------------
# the worked examples of docs/rules.md (no holidays), through both paths


def at(d: date, hour: int = 12) -> datetime:
    return datetime.combine(d, time(hour), tzinfo=UTC)


def gdpr(request_id, received, **timestamps):
    return RequestFacts(request_id, "gdpr", "access", "received", at(received), **timestamps)


def ccpa(request_id, received, request_type="know"):
    return RequestFacts(request_id, "ccpa", request_type, "received", at(received))


@pytest.mark.parametrize(
    ("facts", "as_of", "expected"),
    [
        # GDPR received Thu 2026-09-03: one month is Sat 2026-10-03, due Mon 2026-10-05.
        (gdpr(1, date(2026, 9, 3)), date(2026, 9, 3), {"statutory_due": date(2026, 10, 5)}),
        (gdpr(2, date(2026, 3, 31)), date(2026, 3, 31), {"statutory_due": date(2026, 4, 30)}),
        (gdpr(3, date(2026, 8, 31)), date(2026, 8, 31), {"statutory_due": date(2026, 9, 30)}),
        # Received 2026-10-30, validly extended: 2027-01-30 is a Saturday, due Mon 2027-02-01.
        (
            gdpr(4, date(2026, 10, 30), extended_at=at(date(2026, 11, 20))),
            date(2026, 11, 20),
            {"extension": "valid", "statutory_due": date(2027, 2, 1), "effective_due": date(2027, 2, 1)},
        ),
        # CCPA received Mon 2026-03-02.
        (
            ccpa(5, date(2026, 3, 2)),
            date(2026, 3, 2),
            {
                "ack_due": date(2026, 3, 16),
                "statutory_due": date(2026, 4, 16),
                "policy_due": date(2026, 4, 2),
                "effective_due": date(2026, 4, 2),
            },
        ),
        (ccpa(6, date(2026, 3, 2), "opt_out_of_sale"), date(2026, 3, 2), {"statutory_due": date(2026, 3, 23)}),
    ],
)
def test_spec_worked_examples_through_both_paths(facts, as_of, expected):
    got = assert_same([facts], as_of, DeadlinePolicy())[0]
    assert {name: getattr(got, name) for name in expected} == expected
    if facts.regime == "gdpr" and got.extension == "none":
        assert got.statutory_due == got.policy_due == got.effective_due


def test_worked_examples_in_one_frame():
    facts = [gdpr(1, date(2026, 9, 3)), gdpr(2, date(2026, 3, 31)), ccpa(3, date(2026, 3, 2))]
    got = assert_same(facts, date(2026, 9, 3), DeadlinePolicy())
    assert [g.effective_due for g in got] == [date(2026, 10, 5), date(2026, 4, 30), date(2026, 4, 2)]


def test_real_holiday_calendars_through_both_paths():
    policy = DeadlinePolicy(holidays={"gdpr": holiday_calendar("IE", []), "ccpa": holiday_calendar("US-CA", [])})
    facts = [gdpr(1, date(2026, 11, 25)), ccpa(2, date(2026, 3, 27)), ccpa(3, date(2026, 3, 27), "opt_out_of_sale")]
    got = assert_same(facts, date(2026, 11, 25), policy)
    # Irish Christmas and St Stephen's Day; California's Cesar Chavez Day (Tue 2026-03-31).
    assert [g.effective_due for g in got] == [date(2026, 12, 28), date(2026, 4, 27), date(2026, 4, 20)]
    assert got[1].ack_due == date(2026, 4, 13)


# --------------------------------------------------------------------------------------------------
# Contract of evaluate_frame


def test_output_columns_and_dtypes():
    facts = [gdpr(1, date(2026, 9, 3)), RequestFacts(2, None, "x", None, None)]
    result = evaluate_frame(facts_frame(facts), date(2026, 9, 30), DeadlinePolicy())
    assert list(result.columns) == list(RESULT_COLUMNS)
    dtypes = {name: str(dtype) for name, dtype in result.dtypes.items()}
    assert dtypes == {
        "request_id": "int64",
        "regime": "object",
        "request_type": "object",
        "status": "object",
        "clock_start": "datetime64[s]",
        "ack_due": "datetime64[s]",
        "statutory_due": "datetime64[s]",
        "policy_due": "datetime64[s]",
        "effective_due": "datetime64[s]",
        "state": "object",
        "days_left": "Int64",
        "extension": "object",
        "flags": "list<item: string>[pyarrow]",
        "invalid_reason": "object",
    }
    assert result["regime"].tolist() == ["gdpr", None]
    assert result["invalid_reason"].tolist()[0] is None
    assert result["days_left"].isna().tolist() == [False, True]
    assert result["flags"].tolist() == [[], []]


def test_empty_frame():
    result = evaluate_frame(facts_frame([]), date(2026, 9, 30), DeadlinePolicy())
    assert list(result.columns) == list(RESULT_COLUMNS) and len(result) == 0


def test_read_problems_column_is_optional_and_may_hold_lists():
    facts = [gdpr(1, date(2026, 9, 3)), gdpr(2, date(2026, 9, 3))]
    frame = facts_frame(facts).drop(columns="read_problems")
    assert [e.state for e in frame_evaluations(evaluate_frame(frame, date(2026, 9, 4), DeadlinePolicy()))] == [
        "on_track",
        "on_track",
    ]
    sentences = ["acknowledged_at holds infinity", "extended_at is a BC date"]
    frame["read_problems"] = pd.Series([None, sentences], dtype=object)
    got = frame_evaluations(evaluate_frame(frame, date(2026, 9, 4), DeadlinePolicy()))
    assert got[1].invalid_reason == "acknowledged_at holds infinity; extended_at is a BC date"


def test_joined_read_problems_are_split_back_into_sentences():
    sentences = ("received_at holds infinity", "completed_at is a BC date")
    facts = [RequestFacts(1, "gdpr", "access", "received", None, read_problems=sentences)]
    frame = facts_frame(facts)
    assert frame["read_problems"].tolist() == ["received_at holds infinity; completed_at is a BC date"]
    got = assert_same(facts, date(2026, 9, 4), DeadlinePolicy(), frame)
    assert got[0].invalid_reason == "received_at holds infinity; completed_at is a BC date"


def test_frame_without_a_fact_column_is_refused():
    with pytest.raises(ValueError, match="received_at"):
        evaluate_frame(facts_frame([]).drop(columns="received_at"), date(2026, 9, 30), DeadlinePolicy())


def test_naive_timestamps_are_refused():
    frame = facts_frame([gdpr(1, date(2026, 9, 3))])
    frame["received_at"] = frame["received_at"].dt.tz_localize(None)
    with pytest.raises(TypeError, match="received_at"):
        evaluate_frame(frame, date(2026, 9, 30), DeadlinePolicy())


def test_as_of_must_be_a_date():
    with pytest.raises(TypeError):
        evaluate_frame(facts_frame([]), datetime(2026, 9, 30), DeadlinePolicy())


# --------------------------------------------------------------------------------------------------
# The odd rows: ends of the calendar, far-away years, strange calendars


def test_ends_of_the_calendar_match_the_scalar():
    policy = DeadlinePolicy(tz=ZoneInfo("Pacific/Kiritimati"), earliest=date(1, 1, 1))
    facts = [
        RequestFacts(1, "gdpr", "access", "received", datetime(9999, 12, 20, tzinfo=UTC)),
        RequestFacts(2, "ccpa", "know", "received", datetime(9999, 11, 20, tzinfo=UTC)),  # +45 days: 10000
        RequestFacts(3, "gdpr", "access", "received", datetime(9999, 12, 31, 12, tzinfo=UTC)),  # year 10000 there
        RequestFacts(4, "ccpa", "opt_out_of_sale", "received", datetime(1, 1, 1, tzinfo=UTC)),
        RequestFacts(5, "gdpr", "access", "received", datetime(9998, 6, 1, tzinfo=UTC)),
    ]
    got = assert_same(facts, date(9999, 12, 31), policy)
    assert [g.state for g in got][:3] == ["invalid"] * 3
    assert got[4].state == "overdue"
    la = DeadlinePolicy(tz=ZoneInfo("America/Los_Angeles"), earliest=date(1, 1, 1))
    assert_same(facts, date(9999, 12, 31), la)


def test_instants_no_datetime_can_hold_become_read_problems():
    frame = facts_frame([gdpr(1, date(2026, 9, 3)), gdpr(2, date(2026, 9, 3))])
    frame["received_at"] = pd.Series(
        np.array(["10000-01-01T00:00", "-0001-06-01T00:00"], dtype="datetime64[us]")
    ).dt.tz_localize("UTC")
    got = frame_evaluations(evaluate_frame(frame, date(2026, 9, 30), DeadlinePolicy()))
    assert [g.invalid_reason for g in got] == ["received_at is outside the years 1-9999"] * 2


def test_far_future_clock_start_uses_that_years_holidays():
    # Verified in 2031: the holiday array must cover 2031, not just the years of the receipts.
    policy = DeadlinePolicy(holidays={"gdpr": holiday_calendar("IE", [])})
    facts = [
        gdpr(1, date(2026, 3, 2)),
        gdpr(
            2,
            date(2026, 3, 2),
            identity_requested_at=at(date(2026, 3, 3)),
            identity_verified_at=at(date(2031, 11, 25)),
        ),
    ]
    # Evaluated the day after the verification: before it, the request is still awaiting identity (a what-if
    # sees it as it stood that day). The holiday years come from the clock starts, not from the day evaluated.
    got = assert_same(facts, date(2031, 11, 26), policy)
    assert got[1].effective_due == date(2031, 12, 29)  # Thu 25 Dec, Fri 26 Dec, weekend


def test_holidays_known_only_by_membership():
    class Christmases:
        def __contains__(self, d):
            return (d.month, d.day) == (12, 25)

    policy = DeadlinePolicy(holidays={"gdpr": Christmases()})
    got = assert_same([gdpr(1, date(2026, 11, 25))], date(2026, 11, 25), policy)
    assert got[0].effective_due == date(2026, 12, 28)


@pytest.mark.parametrize("length", [150, 250])
def test_a_calendar_with_months_off_is_left_to_the_scalar(length):
    # Long runs of holidays (no real calendar has them) push deadlines past the years the holiday
    # arrays cover; such rows are evaluated by the scalar, with the same result.
    holidays = frozenset(date(2026, 10, 1) + timedelta(days=i) for i in range(length))
    policy = DeadlinePolicy(holidays={"gdpr": holidays, "ccpa": holidays})
    facts = [gdpr(1, date(2026, 9, 3)), ccpa(2, date(2026, 9, 25)), ccpa(3, date(2026, 9, 25), "opt_out_of_sale")]
    assert_same(facts, date(2026, 9, 30), policy)


def test_a_calendar_without_working_days_fails_as_the_scalar_does():
    holidays = frozenset(date(2026, 10, 1) + timedelta(days=i) for i in range(400))
    policy = DeadlinePolicy(holidays={"gdpr": holidays})
    with pytest.raises(ValueError, match="holiday calendar"):
        evaluate(gdpr(1, date(2026, 9, 3)), date(2026, 9, 30), policy)
    with pytest.raises(ValueError, match="holiday calendar"):
        evaluate_frame(facts_frame([gdpr(1, date(2026, 9, 3))]), date(2026, 9, 30), policy)
