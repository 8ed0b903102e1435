"""Unit tests for include/deadline_rules.py: the worked examples of docs/rules.md, every state, every invalid reason."""
from __future__ import annotations

import ast
import inspect
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from include import deadline_rules as deadlines
from include.calendars import HolidayCalendar, holiday_calendar
from include.deadline_rules import (
    ESCALATION_STATES,
    STATES,
    DeadlinePolicy,
    RequestFacts,
    add_business_days,
    add_months_clamped,
    evaluate,
    local_date,
    month_deadline,
    next_working_day,
)

UTC = timezone.utc
NO_HOLIDAYS = DeadlinePolicy()


def at(d: date, hour: int = 12, minute: int = 0, tz=UTC) -> datetime:
    return datetime.combine(d, time(hour, minute), tzinfo=tz)


def weekdays_only(d: date) -> bool:
    return d.weekday() < 5


def gdpr(received: date, *, request_type="access", status="received", **timestamps) -> RequestFacts:
    return RequestFacts(1, "gdpr", request_type, status, at(received), **timestamps)


def ccpa(received: date, *, request_type="know", status="received", **timestamps) -> RequestFacts:
    return RequestFacts(2, "ccpa", request_type, status, at(received), **timestamps)


# --------------------------------------------------------------------------------------------------
# the worked examples of docs/rules.md (no holidays configured)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (date(2026, 9, 3), date(2026, 10, 5)),  # one month is Sat 2026-10-03 -> Mon
        (date(2026, 3, 31), date(2026, 4, 30)),  # April has no 31st -> its last day
        (date(2026, 8, 31), date(2026, 9, 30)),
    ],
)
def test_gdpr_worked_examples(received, due):
    result = evaluate(gdpr(received), received, NO_HOLIDAYS)
    assert result.clock_start == received
    assert result.statutory_due == result.policy_due == result.effective_due == due
    assert result.ack_due is None
    assert result.extension == "none"
    assert result.state == "on_track"
    assert result.days_left == (due - received).days


def test_gdpr_worked_example_one_month_lands_on_saturday():
    assert add_months_clamped(date(2026, 9, 3), 1) == date(2026, 10, 3)
    assert date(2026, 10, 3).weekday() == 5
    assert month_deadline(date(2026, 9, 3), 1, weekdays_only) == date(2026, 10, 5)


def test_gdpr_worked_example_valid_extension():
    received = date(2026, 10, 30)
    req = gdpr(received, extended_at=at(date(2026, 11, 20)))
    result = evaluate(req, date(2026, 11, 20), NO_HOLIDAYS)
    assert add_months_clamped(received, 3) == date(2027, 1, 30)  # a Saturday
    assert result.extension == "valid"
    assert result.statutory_due == date(2027, 2, 1)
    assert result.policy_due == date(2026, 11, 30)
    assert result.effective_due == date(2027, 2, 1)  # the lawful extension replaces the promise
    assert result.flags == ()


def test_ccpa_worked_example():
    received = date(2026, 3, 2)  # Monday
    result = evaluate(ccpa(received), received, NO_HOLIDAYS)
    assert result.clock_start == received
    assert result.ack_due == date(2026, 3, 16)
    assert result.statutory_due == date(2026, 4, 16)
    assert result.statutory_due.weekday() == 3  # Thursday
    assert result.policy_due == date(2026, 4, 2)
    assert result.effective_due == date(2026, 4, 2)


def test_ccpa_worked_example_opt_out_of_sale():
    received = date(2026, 3, 2)
    result = evaluate(ccpa(received, request_type="opt_out_of_sale"), received, NO_HOLIDAYS)
    assert result.statutory_due == date(2026, 3, 23)
    assert result.effective_due == date(2026, 3, 23)
    assert result.ack_due == date(2026, 3, 16)


def test_ccpa_delete_uses_same_rules_as_know():
    received = date(2026, 3, 2)
    result = evaluate(ccpa(received, request_type="delete"), received, NO_HOLIDAYS)
    assert (result.ack_due, result.statutory_due, result.effective_due) == (
        date(2026, 3, 16),
        date(2026, 4, 16),
        date(2026, 4, 2),
    )


def test_ccpa_calendar_day_deadline_is_not_moved_off_weekend():
    received = date(2026, 3, 5)  # +45 days = Sun 2026-04-19
    result = evaluate(ccpa(received), received, NO_HOLIDAYS)
    assert result.statutory_due == date(2026, 4, 19)
    assert result.statutory_due.weekday() == 6


# --------------------------------------------------------------------------------------------------
# Calendar helpers


def test_add_months_clamped():
    assert add_months_clamped(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months_clamped(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months_clamped(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months_clamped(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months_clamped(date(2026, 3, 31), -1) == date(2026, 2, 28)
    with pytest.raises(OverflowError):
        add_months_clamped(date(9999, 12, 1), 1)


def test_next_working_day():
    assert next_working_day(date(2026, 10, 2), weekdays_only) == date(2026, 10, 2)  # Friday itself
    assert next_working_day(date(2026, 10, 3), weekdays_only) == date(2026, 10, 5)
    with pytest.raises(ValueError, match="holiday calendar"):
        next_working_day(date(2026, 1, 1), lambda d: False)


def test_add_business_days():
    assert add_business_days(date(2026, 3, 2), 0, weekdays_only) == date(2026, 3, 2)
    assert add_business_days(date(2026, 3, 6), 1, weekdays_only) == date(2026, 3, 9)  # Fri -> Mon
    assert add_business_days(date(2026, 3, 7), 1, weekdays_only) == date(2026, 3, 9)  # Sat -> Mon
    assert add_business_days(date(2026, 3, 2), 10, weekdays_only) == date(2026, 3, 16)
    with pytest.raises(ValueError):
        add_business_days(date(2026, 3, 2), -1, weekdays_only)


def test_local_date_refuses_naive_timestamps():
    with pytest.raises(ValueError):
        local_date(datetime(2026, 3, 2, 12), ZoneInfo("UTC"))


# --------------------------------------------------------------------------------------------------
# States


def test_state_on_track():
    result = evaluate(gdpr(date(2026, 9, 3)), date(2026, 9, 20), NO_HOLIDAYS)
    assert (result.state, result.days_left) == ("on_track", 15)


@pytest.mark.parametrize(("as_of", "days_left"), [(date(2026, 9, 28), 7), (date(2026, 10, 5), 0)])
def test_state_due_soon_boundaries(as_of, days_left):
    result = evaluate(gdpr(date(2026, 9, 3)), as_of, NO_HOLIDAYS)
    assert (result.state, result.days_left) == ("due_soon", days_left)


def test_due_soon_window_is_configurable():
    policy = DeadlinePolicy(due_soon_days=3)
    assert evaluate(gdpr(date(2026, 9, 3)), date(2026, 9, 28), policy).state == "on_track"
    assert evaluate(gdpr(date(2026, 9, 3)), date(2026, 10, 2), policy).state == "due_soon"


def test_state_overdue():
    result = evaluate(gdpr(date(2026, 9, 3)), date(2026, 10, 6), NO_HOLIDAYS)
    assert (result.state, result.days_left) == ("overdue", -1)


def test_state_ack_overdue_outranks_on_track():
    received = date(2026, 3, 2)
    result = evaluate(ccpa(received), date(2026, 3, 17), NO_HOLIDAYS)
    assert result.days_left == 16
    assert result.state == "ack_overdue"
    assert result.flags == ("ack_missing",)


def test_ack_not_overdue_on_its_due_date():
    assert evaluate(ccpa(date(2026, 3, 2)), date(2026, 3, 16), NO_HOLIDAYS).state == "on_track"


def test_state_ack_overdue_outranks_due_soon():
    result = evaluate(ccpa(date(2026, 3, 2)), date(2026, 3, 30), NO_HOLIDAYS)
    assert result.days_left == 3
    assert result.state == "ack_overdue"


def test_overdue_outranks_ack_overdue():
    result = evaluate(ccpa(date(2026, 3, 2)), date(2026, 4, 3), NO_HOLIDAYS)
    assert result.state == "overdue"
    assert "ack_missing" in result.flags  # the missed confirmation is still visible


def test_acknowledged_request_is_not_ack_overdue():
    req = ccpa(date(2026, 3, 2), acknowledged_at=at(date(2026, 3, 10)))
    result = evaluate(req, date(2026, 3, 17), NO_HOLIDAYS)
    assert result.state == "on_track"
    assert result.flags == ()


def test_late_acknowledgement_is_flagged():
    req = ccpa(date(2026, 3, 2), acknowledged_at=at(date(2026, 3, 17)))
    result = evaluate(req, date(2026, 3, 18), NO_HOLIDAYS)
    assert result.state == "on_track"
    assert result.flags == ("ack_late",)


def test_opt_out_also_needs_acknowledgement():
    req = ccpa(date(2026, 3, 2), request_type="opt_out_of_sale")
    assert evaluate(req, date(2026, 3, 17), NO_HOLIDAYS).state == "ack_overdue"


def test_gdpr_has_no_acknowledgement_deadline():
    result = evaluate(gdpr(date(2026, 9, 3)), date(2026, 9, 30), NO_HOLIDAYS)
    assert result.ack_due is None
    assert result.state == "due_soon"


def test_state_awaiting_identity():
    req = gdpr(date(2026, 9, 3), status="verifying", identity_requested_at=at(date(2026, 9, 4)))
    result = evaluate(req, date(2026, 12, 1), NO_HOLIDAYS)
    assert result.state == "awaiting_identity"
    assert (result.clock_start, result.statutory_due, result.policy_due, result.effective_due) == (None,) * 4
    assert result.days_left is None
    assert result.invalid_reason is None


def test_a_what_if_sees_the_request_as_it_stood_that_day():
    """Found by an oracle written from the spec: a what-if in the past counted events recorded after its day. On
    10 March identity verified on 25 March is not verified yet ("until then the state is awaiting_identity"); on
    20 March an acknowledgement of 1 April has not been sent ("ack_overdue: not acknowledged by its date"); an
    extension recorded after the day does not extend it yet. On the later days each counts as before."""
    verified = gdpr(date(2026, 3, 2), status="verifying", identity_requested_at=at(date(2026, 3, 3)),
                    identity_verified_at=at(date(2026, 3, 25)))
    assert evaluate(verified, date(2026, 3, 10), NO_HOLIDAYS).state == "awaiting_identity"
    assert evaluate(verified, date(2026, 3, 25), NO_HOLIDAYS).clock_start == date(2026, 3, 25)

    acknowledged = ccpa(date(2026, 3, 2), status="in_progress", acknowledged_at=at(date(2026, 4, 1)))
    before = evaluate(acknowledged, date(2026, 3, 20), NO_HOLIDAYS)
    assert (before.state, before.flags) == ("ack_overdue", ("ack_missing",))
    after = evaluate(acknowledged, date(2026, 4, 1), NO_HOLIDAYS)
    assert (after.state, after.flags) == ("due_soon", ("ack_late",))

    extended = gdpr(date(2026, 9, 3), status="in_progress", extended_at=at(date(2026, 9, 25)))
    assert evaluate(extended, date(2026, 9, 20), NO_HOLIDAYS).effective_due == date(2026, 10, 5)
    assert evaluate(extended, date(2026, 9, 25), NO_HOLIDAYS).effective_due == date(2026, 12, 3)


@pytest.mark.parametrize(
    ("completed", "state"),
    [(date(2026, 10, 5), "closed_on_time"), (date(2026, 10, 6), "closed_late")],
)
def test_closed_states(completed, state):
    req = gdpr(date(2026, 9, 3), status="completed", completed_at=at(completed))
    result = evaluate(req, date(2026, 11, 1), NO_HOLIDAYS)
    assert result.state == state
    assert result.days_left is None
    assert result.effective_due == date(2026, 10, 5)


@pytest.mark.parametrize("status", ["rejected", "withdrawn"])
def test_rejected_and_withdrawn_are_judged_by_completed_at(status):
    req = ccpa(date(2026, 3, 2), status=status, completed_at=at(date(2026, 4, 3)))
    assert evaluate(req, date(2026, 5, 1), NO_HOLIDAYS).state == "closed_late"


def test_closed_ccpa_never_acknowledged():
    on_time = ccpa(date(2026, 3, 2), status="completed", completed_at=at(date(2026, 3, 10)))
    assert evaluate(on_time, date(2026, 5, 1), NO_HOLIDAYS).flags == ()  # the answer was the confirmation
    late = ccpa(date(2026, 3, 2), status="completed", completed_at=at(date(2026, 3, 20)))
    result = evaluate(late, date(2026, 5, 1), NO_HOLIDAYS)
    assert (result.state, result.flags) == ("closed_on_time", ("ack_missing",))


def test_gdpr_closed_while_awaiting_identity_is_on_time():
    req = gdpr(
        date(2026, 1, 5),
        status="rejected",
        identity_requested_at=at(date(2026, 1, 6)),
        completed_at=at(date(2026, 6, 1)),
    )
    result = evaluate(req, date(2026, 7, 1), NO_HOLIDAYS)
    assert result.state == "closed_on_time"
    assert (result.clock_start, result.statutory_due, result.effective_due) == (None, None, None)


def test_every_state_is_listed_and_escalation_states_are_states():
    assert set(ESCALATION_STATES) <= set(STATES)
    assert len(set(STATES)) == len(STATES) == 8


# --------------------------------------------------------------------------------------------------
# Identity clock (GDPR Art. 12(6) read with Art. 12(3))


def test_gdpr_clock_starts_at_identity_verification():
    req = gdpr(
        date(2026, 3, 2),
        status="in_progress",
        identity_requested_at=at(date(2026, 3, 3)),
        identity_verified_at=at(date(2026, 3, 10)),
    )
    result = evaluate(req, date(2026, 3, 12), NO_HOLIDAYS)
    assert result.clock_start == date(2026, 3, 10)
    assert result.effective_due == date(2026, 4, 10)
    assert result.state == "on_track"


def test_identity_verified_without_request_does_not_move_clock():
    req = gdpr(date(2026, 3, 2), identity_verified_at=at(date(2026, 3, 10)))
    assert evaluate(req, date(2026, 3, 12), NO_HOLIDAYS).clock_start == date(2026, 3, 2)


def test_ccpa_clock_ignores_verification():
    # §7021(b): 45 days "regardless of time required to verify the request".
    req = ccpa(
        date(2026, 3, 2),
        identity_requested_at=at(date(2026, 3, 3)),
        identity_verified_at=at(date(2026, 3, 25)),
    )
    result = evaluate(req, date(2026, 3, 26), NO_HOLIDAYS)
    assert result.clock_start == date(2026, 3, 2)
    assert result.effective_due == date(2026, 4, 2)


def test_extension_before_verification_is_within_first_month():
    req = gdpr(
        date(2026, 3, 2),
        identity_requested_at=at(date(2026, 3, 3)),
        extended_at=at(date(2026, 3, 4)),
        identity_verified_at=at(date(2026, 3, 10)),
    )
    result = evaluate(req, date(2026, 3, 12), NO_HOLIDAYS)
    assert result.extension == "valid"
    assert result.effective_due == date(2026, 6, 10)


# --------------------------------------------------------------------------------------------------
# Extensions


def test_gdpr_extension_on_last_day_of_first_month_is_valid():
    req = gdpr(date(2026, 9, 3), extended_at=at(date(2026, 10, 5)))  # unextended due date
    result = evaluate(req, date(2026, 10, 6), NO_HOLIDAYS)
    assert result.extension == "valid"
    assert result.effective_due == date(2026, 12, 3)


def test_gdpr_extension_after_first_month_is_invalid_and_ignored():
    req = gdpr(date(2026, 9, 3), extended_at=at(date(2026, 10, 6)))
    result = evaluate(req, date(2026, 10, 7), NO_HOLIDAYS)
    assert result.extension == "invalid"
    assert result.flags == ("invalid_extension",)
    assert result.statutory_due == result.effective_due == date(2026, 10, 5)
    assert result.state == "overdue"


def test_ccpa_extension_within_45_days_gives_90():
    received = date(2026, 3, 2)
    req = ccpa(received, acknowledged_at=at(received), extended_at=at(received + timedelta(days=45)))
    result = evaluate(req, date(2026, 4, 20), NO_HOLIDAYS)
    assert result.extension == "valid"
    assert result.statutory_due == result.effective_due == received + timedelta(days=90)
    assert result.state == "on_track"


def test_ccpa_extension_after_45_days_is_invalid():
    received = date(2026, 3, 2)
    req = ccpa(received, extended_at=at(received + timedelta(days=46)))
    result = evaluate(req, date(2026, 4, 20), NO_HOLIDAYS)
    assert result.extension == "invalid"
    assert "invalid_extension" in result.flags
    assert result.statutory_due == received + timedelta(days=45)
    assert result.effective_due == date(2026, 4, 2)


def test_opt_out_of_sale_cannot_be_extended():
    req = ccpa(date(2026, 3, 2), request_type="opt_out_of_sale", extended_at=at(date(2026, 3, 3)))
    result = evaluate(req, date(2026, 3, 4), NO_HOLIDAYS)
    assert result.extension == "invalid"
    assert result.flags == ("invalid_extension",)
    assert result.effective_due == date(2026, 3, 23)


# --------------------------------------------------------------------------------------------------
# Invalid rows


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (RequestFacts(1, None, "access", "received", at(date(2026, 3, 2))), "regime is missing"),
        (RequestFacts(1, "lgpd", "access", "received", at(date(2026, 3, 2))), "unknown regime 'lgpd'"),
        (RequestFacts(1, "GDPR", "access", "received", at(date(2026, 3, 2))), "unknown regime 'GDPR'"),
        (RequestFacts(1, "gdpr", None, "received", at(date(2026, 3, 2))), "request type is missing"),
        (RequestFacts(1, "gdpr", "sell", "received", at(date(2026, 3, 2))), "unknown request type 'sell'"),
        (
            RequestFacts(1, "gdpr", "know", "received", at(date(2026, 3, 2))),
            "request type 'know' is not a gdpr request type",
        ),
        (
            RequestFacts(1, "ccpa", "erasure", "received", at(date(2026, 3, 2))),
            "request type 'erasure' is not a ccpa request type",
        ),
        (RequestFacts(1, "gdpr", "access", None, at(date(2026, 3, 2))), "status is missing"),
        (RequestFacts(1, "gdpr", "access", "open", at(date(2026, 3, 2))), "unknown status 'open'"),
        (RequestFacts(1, "gdpr", "access", "received", None), "received_at is missing"),
        (
            RequestFacts(1, "gdpr", "access", "received", datetime(2026, 3, 2, 12)),
            "received_at has no time zone",
        ),
        (RequestFacts(1, "gdpr", "access", "received", "2026-03-02"), "received_at is not a timestamp"),
        (
            gdpr(date(2026, 3, 2), acknowledged_at=at(date(2026, 3, 1))),
            "acknowledged_at is before received_at",
        ),
        (
            gdpr(date(2026, 3, 2), identity_requested_at=at(date(2026, 3, 1))),
            "identity_requested_at is before received_at",
        ),
        (
            gdpr(date(2026, 3, 2), identity_verified_at=at(date(2026, 3, 1))),
            "identity_verified_at is before received_at",
        ),
        (
            gdpr(
                date(2026, 3, 2),
                identity_requested_at=at(date(2026, 3, 5)),
                identity_verified_at=at(date(2026, 3, 4)),
            ),
            "identity_verified_at is before identity_requested_at",
        ),
        (gdpr(date(2026, 3, 2), extended_at=at(date(2026, 3, 1))), "extended_at is before received_at"),
        (
            gdpr(date(2026, 3, 2), status="completed", completed_at=at(date(2026, 3, 2), hour=11)),
            "completed_at is before received_at",
        ),
        (gdpr(date(2026, 3, 2), status="completed"), "completed request has no completed_at"),
        (ccpa(date(2026, 3, 2), status="withdrawn"), "withdrawn request has no completed_at"),
        (gdpr(date(2026, 4, 2)), "received in the future (2026-04-02 is after the evaluation date 2026-04-01)"),
    ],
)
def test_invalid_reasons(facts, reason):
    result = evaluate(facts, date(2026, 4, 1), NO_HOLIDAYS)
    assert result.state == "invalid"
    assert result.invalid_reason == reason
    assert result.days_left is None
    assert result.request_id == facts.request_id


def test_invalid_reason_lists_every_problem():
    result = evaluate(RequestFacts(7, "xx", None, None, None), date(2026, 4, 1), NO_HOLIDAYS)
    assert result.invalid_reason == (
        "unknown regime 'xx'; request type is missing; status is missing; received_at is missing"
    )
    assert result.clock_start is None and result.effective_due is None


def test_closed_without_completed_at_keeps_its_due_dates():
    result = evaluate(gdpr(date(2026, 3, 2), status="completed"), date(2026, 4, 1), NO_HOLIDAYS)
    assert result.state == "invalid"
    assert result.effective_due == date(2026, 4, 2)


def test_garbage_values_are_quoted_briefly():
    req = RequestFacts(1, "x" * 500, "access", "received", at(date(2026, 3, 2)))
    result = evaluate(req, date(2026, 4, 1), NO_HOLIDAYS)
    assert result.state == "invalid"
    assert len(result.invalid_reason) < 100


def test_deadline_beyond_year_9999_is_invalid_not_a_crash():
    req = RequestFacts(1, "gdpr", "access", "received", datetime(9999, 12, 20, tzinfo=UTC))
    result = evaluate(req, date(9999, 12, 31), NO_HOLIDAYS)
    assert result.state == "invalid"
    assert "9999" in result.invalid_reason


def test_as_of_must_be_a_date():
    with pytest.raises(TypeError):
        evaluate(gdpr(date(2026, 3, 2)), datetime(2026, 3, 3), NO_HOLIDAYS)


def test_policy_is_validated_when_built():
    with pytest.raises(TypeError):
        DeadlinePolicy(tz="UTC")
    with pytest.raises(ValueError):
        DeadlinePolicy(due_soon_days=-1)
    with pytest.raises(TypeError, match="earliest"):
        DeadlinePolicy(earliest=datetime(2000, 1, 1))
    with pytest.raises(TypeError, match="earliest"):
        DeadlinePolicy(earliest="2000-01-01")


# --------------------------------------------------------------------------------------------------
# Implausible dates (docs/rules.md: receipt before the earliest plausible date, completion after the evaluation)


def test_default_earliest_plausible_date_is_2000_01_01():
    assert DeadlinePolicy().earliest == date(2000, 1, 1)
    assert evaluate(gdpr(date(2000, 1, 1)), date(2000, 1, 5), NO_HOLIDAYS).state == "on_track"
    result = evaluate(gdpr(date(1999, 12, 31)), date(2000, 1, 5), NO_HOLIDAYS)
    assert result.state == "invalid"
    assert result.invalid_reason == "received_at 1999-12-31 is before the earliest plausible date 2000-01-01"
    assert (result.clock_start, result.effective_due, result.days_left) == (None, None, None)


def test_received_exactly_on_earliest_is_plausible_the_day_before_is_not():
    policy = DeadlinePolicy(earliest=date(2026, 3, 2))
    assert evaluate(ccpa(date(2026, 3, 2)), date(2026, 3, 3), policy).state == "on_track"
    result = evaluate(ccpa(date(2026, 3, 1)), date(2026, 3, 3), policy)
    assert result.state == "invalid"
    assert result.invalid_reason == "received_at 2026-03-01 is before the earliest plausible date 2026-03-02"


def test_earliest_is_judged_on_the_local_receipt_date():
    req = RequestFacts(1, "gdpr", "access", "received", datetime(2000, 1, 1, 2, 0, tzinfo=UTC))
    assert evaluate(req, date(2000, 1, 5), NO_HOLIDAYS).state == "on_track"
    la = evaluate(req, date(2000, 1, 5), DeadlinePolicy(tz=ZoneInfo("America/Los_Angeles")))
    assert la.invalid_reason == "received_at 1999-12-31 is before the earliest plausible date 2000-01-01"


def test_completed_on_the_evaluation_date_is_plausible_the_day_after_is_not():
    as_of = date(2026, 4, 1)
    on_as_of = gdpr(date(2026, 3, 2), status="completed", completed_at=at(as_of, hour=23, minute=59))
    assert evaluate(on_as_of, as_of, NO_HOLIDAYS).state == "closed_on_time"
    day_after = gdpr(date(2026, 3, 2), status="completed", completed_at=at(date(2026, 4, 2), hour=0))
    result = evaluate(day_after, as_of, NO_HOLIDAYS)
    assert result.state == "invalid"
    assert result.invalid_reason == "completed_at 2026-04-02 is after the evaluation date 2026-04-01"
    assert result.days_left is None and result.effective_due is None


def test_completion_after_the_evaluation_date_is_invalid_on_an_open_request_too():
    req = ccpa(date(2026, 3, 2), status="in_progress", completed_at=at(date(2026, 5, 1)))
    assert evaluate(req, date(2026, 4, 1), NO_HOLIDAYS).invalid_reason == (
        "completed_at 2026-05-01 is after the evaluation date 2026-04-01"
    )


def test_completion_after_the_evaluation_date_is_judged_on_local_dates():
    completed_at = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)  # still 1 April in Los Angeles
    req = gdpr(date(2026, 3, 2), status="completed", completed_at=completed_at)
    assert evaluate(req, date(2026, 4, 1), NO_HOLIDAYS).state == "invalid"
    assert evaluate(req, date(2026, 4, 1), DeadlinePolicy(tz=ZoneInfo("America/Los_Angeles"))).state == (
        "closed_on_time"
    )


def test_every_problem_is_collected_in_order():
    # Read problems, regime/type, status, missing/mistyped timestamps, order, then implausible dates.
    req = RequestFacts(
        3,
        "lgpd",
        "access",
        "completed",
        datetime(1999, 6, 1, 12, tzinfo=UTC),
        acknowledged_at=datetime(1999, 5, 1, 12, tzinfo=UTC),
        completed_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
        read_problems=("extended_at holds infinity",),
    )
    assert evaluate(req, date(2026, 4, 1), NO_HOLIDAYS).invalid_reason == (
        "extended_at holds infinity; unknown regime 'lgpd'; acknowledged_at is before received_at; "
        "received_at 1999-06-01 is before the earliest plausible date 2000-01-01; "
        "completed_at 2026-05-01 is after the evaluation date 2026-04-01"
    )


def test_received_in_the_future_is_collected_with_the_other_problems():
    req = RequestFacts(4, "gdpr", "access", "closed", at(date(2026, 4, 2)))
    assert evaluate(req, date(2026, 4, 1), NO_HOLIDAYS).invalid_reason == (
        "unknown status 'closed'; received in the future (2026-04-02 is after the evaluation date 2026-04-01)"
    )


# --------------------------------------------------------------------------------------------------
# Read problems (values the reader could not turn into Python objects)


def test_read_problem_makes_an_otherwise_valid_row_invalid():
    req = gdpr(date(2026, 3, 2), read_problems=("acknowledged_at holds -infinity",))
    result = evaluate(req, date(2026, 3, 3), NO_HOLIDAYS)
    assert (result.state, result.invalid_reason) == ("invalid", "acknowledged_at holds -infinity")
    assert (result.clock_start, result.effective_due, result.days_left, result.flags) == (None, None, None, ())


def test_unreadable_receipt_is_reported_once_not_also_as_missing():
    req = RequestFacts(1, "gdpr", "access", "received", None, read_problems=("received_at holds infinity",))
    assert evaluate(req, date(2026, 3, 3), NO_HOLIDAYS).invalid_reason == "received_at holds infinity"


def test_receipt_missing_is_still_reported_when_the_read_problem_is_about_another_column():
    req = RequestFacts(1, "gdpr", "access", "received", None, read_problems=("completed_at is a BC date",))
    assert evaluate(req, date(2026, 3, 3), NO_HOLIDAYS).invalid_reason == (
        "completed_at is a BC date; received_at is missing"
    )


def test_read_problems_come_first_in_their_own_order():
    req = RequestFacts(
        1,
        None,
        "access",
        "completed",
        None,
        acknowledged_at=at(date(2026, 3, 2)),
        read_problems=("received_at is a BC date", "completed_at has a year after 9999"),
    )
    assert evaluate(req, date(2026, 3, 3), NO_HOLIDAYS).invalid_reason == (
        "received_at is a BC date; completed_at has a year after 9999; regime is missing"
    )


def test_unreadable_completion_does_not_also_say_it_has_no_completed_at():
    req = gdpr(date(2026, 3, 2), status="completed", read_problems=("completed_at holds infinity",))
    assert evaluate(req, date(2026, 4, 1), NO_HOLIDAYS).invalid_reason == "completed_at holds infinity"


def test_read_problems_name_their_columns():
    assert deadlines.read_problem_columns(["received_at holds infinity", "status is not valid text"]) == {
        "received_at",
        "status",
    }
    req = RequestFacts(1, "gdpr", "access", None, at(date(2026, 3, 2)), read_problems=("status is not valid text",))
    assert evaluate(req, date(2026, 3, 3), NO_HOLIDAYS).invalid_reason == "status is not valid text"


def test_a_single_read_problem_passed_as_a_string_is_one_sentence():
    req = gdpr(date(2026, 3, 2), read_problems="extended_at holds infinity")
    assert evaluate(req, date(2026, 3, 3), NO_HOLIDAYS).invalid_reason == "extended_at holds infinity"


# --------------------------------------------------------------------------------------------------
# Time zone


def test_time_zone_decides_the_calendar_date():
    received_at = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    req = RequestFacts(1, "gdpr", "access", "received", received_at)
    la = evaluate(req, date(2026, 3, 10), DeadlinePolicy(tz=ZoneInfo("America/Los_Angeles")))
    berlin = evaluate(req, date(2026, 3, 10), DeadlinePolicy(tz=ZoneInfo("Europe/Berlin")))
    assert la.clock_start == date(2026, 3, 2)  # 15:30 PST
    assert berlin.clock_start == date(2026, 3, 3)  # 00:30 CET
    assert la.effective_due == date(2026, 4, 2)
    assert berlin.effective_due == date(2026, 4, 3)


def test_time_zone_applies_to_completion_too():
    req = gdpr(date(2026, 9, 3), status="completed", completed_at=datetime(2026, 10, 5, 22, 30, tzinfo=UTC))
    assert evaluate(req, date(2026, 11, 1), DeadlinePolicy(tz=ZoneInfo("UTC"))).state == "closed_on_time"
    assert evaluate(req, date(2026, 11, 1), DeadlinePolicy(tz=ZoneInfo("Europe/Berlin"))).state == "closed_late"


def test_received_today_in_local_zone_is_not_in_the_future():
    received_at = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # still 2 March in Los Angeles
    req = RequestFacts(1, "ccpa", "know", "received", received_at)
    result = evaluate(req, date(2026, 3, 2), DeadlinePolicy(tz=ZoneInfo("America/Los_Angeles")))
    assert result.state == "on_track"
    assert result.clock_start == date(2026, 3, 2)


# --------------------------------------------------------------------------------------------------
# Holiday calendars


def test_irish_christmas_moves_a_gdpr_due_date():
    received = date(2026, 11, 25)  # one month = Fri 2026-12-25
    assert evaluate(gdpr(received), received, NO_HOLIDAYS).effective_due == date(2026, 12, 25)
    policy = DeadlinePolicy(holidays={"gdpr": holiday_calendar("IE", [2026])})
    # 25th Christmas, 26th St Stephen's Day (Saturday), 27th Sunday.
    assert evaluate(gdpr(received), received, policy).effective_due == date(2026, 12, 28)


def test_california_holiday_counts_against_ccpa_business_days():
    received = date(2026, 3, 27)  # Friday; Cesar Chavez Day is Tue 2026-03-31 in California
    policy = DeadlinePolicy(holidays={"ccpa": holiday_calendar("US-CA", [2026])})
    plain = evaluate(ccpa(received), received, NO_HOLIDAYS)
    ca = evaluate(ccpa(received), received, policy)
    assert (plain.ack_due, ca.ack_due) == (date(2026, 4, 10), date(2026, 4, 13))
    # Calendar-day deadlines do not move.
    assert plain.statutory_due == ca.statutory_due == date(2026, 5, 11)
    opt_out = ccpa(received, request_type="opt_out_of_sale")
    assert evaluate(opt_out, received, NO_HOLIDAYS).effective_due == date(2026, 4, 17)
    assert evaluate(opt_out, received, policy).effective_due == date(2026, 4, 20)


def test_calendar_applies_only_to_its_regime():
    received = date(2026, 11, 25)
    policy = DeadlinePolicy(holidays={"ccpa": holiday_calendar("IE", [2026])})
    assert evaluate(gdpr(received), received, policy).effective_due == date(2026, 12, 25)


def test_holiday_calendar_specs():
    assert holiday_calendar(None, [2026]) == frozenset()
    assert holiday_calendar("", [2026]) == frozenset()
    ie = holiday_calendar("ie", [2026])
    assert date(2026, 12, 25) in ie
    assert date(2026, 12, 24) not in ie
    assert date(2031, 12, 25) in ie  # years beyond those pre-computed are still known
    by = holiday_calendar("DE-BY", [2026])
    assert date(2026, 1, 6) in by  # Epiphany is a holiday in Bavaria
    assert date(2026, 1, 6) not in holiday_calendar("DE-BE", [2026])
    assert isinstance(holiday_calendar("US-CA", range(2025, 2028)), HolidayCalendar)


def test_holiday_calendar_lists_the_dates_of_years():
    ie = holiday_calendar("IE", [])
    listed = ie.dates_in_years(range(2026, 2028))
    assert listed == sorted(listed)
    assert {d.year for d in listed} == {2026, 2027}
    assert date(2026, 12, 25) in listed and date(2027, 3, 17) in listed
    every_day = (date(2026, 1, 1) + timedelta(days=i) for i in range(730))
    assert [d for d in every_day if d in ie] == listed  # exactly the days `in` says yes to
    assert ie.dates_in_years([]) == []


@pytest.mark.parametrize(("spec", "named"), [("XX", "XX"), ("US-ZZ", "ZZ"), ("Narnia", "NARNIA")])
def test_holiday_calendar_unknown_code(spec, named):
    with pytest.raises(ValueError, match=named):
        holiday_calendar(spec, [2026])


# --------------------------------------------------------------------------------------------------
# Module hygiene


def test_module_is_pure():
    tree = ast.parse(inspect.getsource(deadlines))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    allowed = {"__future__", "calendar", "functools", "collections", "dataclasses", "datetime", "zoneinfo", "include"}
    assert imported <= allowed  # no Airflow, no database, no network
    own = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("include")}
    assert own <= {"include.calendars"}  # at most the holidays package's calendars, pure as well
