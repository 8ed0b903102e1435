"""What each request asks for (include/fulfilment/rules.py): pure, every branch and its order."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from include.fulfilment import rules
from include.fulfilment.params import FulfilmentParams
from include.deadline_rules import RequestFacts as Request
from include.fulfilment.rules import Decision, implausible_dates
from include.fulfilment.steps import gate
from include.config import Settings
from include.periods import ParamError, RunTiming

T = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
NOW = T + timedelta(days=2)  # the time the run decides


def req(rtype="access", regime="gdpr", **kw) -> Request:
    return Request(**{"request_id": 1, "user_id": 7, "regime": regime, "request_type": rtype,
                      "status": "in_progress", "received_at": T - timedelta(days=3), **kw})


def decide(r: Request, account_exists: bool, **kw) -> Decision:
    return rules.decide(r, account_exists, **{"now": NOW, **kw})


@pytest.mark.parametrize("regime, rtype, action", [
    ("gdpr", "access", "export"), ("gdpr", "portability", "export"), ("ccpa", "know", "export"),
    ("gdpr", "erasure", "erase"), ("ccpa", "delete", "erase"), ("gdpr", "restriction", "restrict"),
    ("ccpa", "opt_out_of_sale", "opt_out")])
def test_each_right_has_its_action(regime, rtype, action):
    assert decide(req(rtype, regime), True) == Decision(action)


@pytest.mark.parametrize("rtype, words", [("rectification", "Art. 16"), ("objection", "Art. 21")])
def test_rectification_and_objection_need_a_person_who_is_told_what_to_do(rtype, words):
    d = decide(req(rtype), True)
    assert (d.action, d.outcome) == ("manual", "manual") and words in d.reason and "completed" in d.reason
    assert decide(req(rtype, user_id=None), False).outcome == "manual"  # a person acts, account or not


@pytest.mark.parametrize("r, words", [
    (req(regime="lgpd"), "unknown regime 'lgpd'"),
    (req(regime=None), "unknown regime None"),
    (req("erase_everything"), "unknown request type 'erase_everything'"),
    (req("know", "gdpr"), "'know' is not a right under GDPR"),
    (req("portability", "ccpa"), "'portability' is not a right under CCPA"),
    (req(read_problems=("identity_verified_at holds infinity",)), "identity_verified_at holds infinity"),
])
def test_what_the_policy_does_not_know_is_invalid_with_its_reason(r, words):
    d = decide(r, True)
    assert d.outcome == "invalid" and words in d.reason


@pytest.mark.parametrize("r", [
    req(status="verifying"),
    req(identity_requested_at=T, identity_verified_at=None),
    req(status="verifying", identity_requested_at=T, identity_verified_at=T),
])
def test_a_request_awaiting_identity_is_skipped(r):
    d = decide(r, True)
    assert d.outcome == "skipped" and "identity" in d.reason


def test_identity_verified_or_never_asked_for_acts():
    assert decide(req(identity_requested_at=T, identity_verified_at=T), True).acts
    assert decide(req(identity_requested_at=None, identity_verified_at=None), True).acts
    assert decide(req(identity_requested_at=None, identity_verified_at=T), True).acts


def test_no_account_is_said_plainly():
    d = decide(req(user_id=None), False)
    assert d.outcome == "no_account" and "names no account" in d.reason
    d = decide(req("restriction", user_id=42), False)
    assert d.outcome == "no_account" and "account 42 does not exist" in d.reason
    d = decide(req("opt_out_of_sale", "ccpa", user_id=42), False)
    assert d.outcome == "no_account"
    assert decide(req("erasure", user_id=None), False).outcome == "no_account"
    # An erasure of an account that is gone still runs the engine: it erases what is left, or finds nothing.
    assert decide(req("erasure", user_id=42), False) == Decision("erase")


def test_the_order_of_the_checks():
    """Unreadable and implausible dates first, then regime, type, type under regime, identity, then the account."""
    both = req("erase_everything", "lgpd", read_problems=("received_at is a BC date",), status="verifying", user_id=None,
               received_at=None)
    assert decide(both, False).reason == "received_at is a BC date"
    late = req("erase_everything", "lgpd", status="verifying", user_id=None, identity_requested_at=T,
               identity_verified_at=FUTURE)
    assert decide(late, False).reason == "identity_verified_at 2099-01-01 00:00:00+00:00 is in the future (after the " \
                                         "time of this run)"
    assert "unknown regime" in decide(req("erase_everything", "lgpd"), True).reason
    assert "unknown request type" in decide(req("erase_everything", status="verifying"), True).reason
    assert decide(req("know", "gdpr", status="verifying"), True).outcome == "invalid"
    assert decide(req(status="verifying", user_id=None), False).outcome == "skipped"


# -- implausible dates (the rule "one bad row never stops the others", as deadline tracking judges them) ----------

FUTURE = datetime(2099, 1, 1, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
IN_FUTURE = "is in the future (after the time of this run)"
TOO_EARLY = "is before the earliest plausible date 2000-01-01"


@pytest.mark.parametrize("r, reason", [
    # identity "verified" after the run's time: data would go out before the identity was verified
    (req(identity_requested_at=T, identity_verified_at=FUTURE),
     f"identity_verified_at 2099-01-01 00:00:00+00:00 {IN_FUTURE}"),
    (req(identity_verified_at=FUTURE), f"identity_verified_at 2099-01-01 00:00:00+00:00 {IN_FUTURE}"),
    (req(identity_requested_at=FUTURE), f"identity_requested_at 2099-01-01 00:00:00+00:00 {IN_FUTURE}"),
    (req("erasure", received_at=FUTURE), f"received_at 2099-01-01 00:00:00+00:00 {IN_FUTURE}"),
    (req("restriction", received_at=NOW + timedelta(seconds=1)), f"received_at 2026-11-22 10:00:01+00:00 {IN_FUTURE}"),
    (req("delete", "ccpa", received_at=EPOCH), f"received_at 1970-01-01 {TOO_EARLY}"),
    (req("opt_out_of_sale", "ccpa", received_at=datetime(1999, 12, 31, 23, tzinfo=timezone.utc)),
     f"received_at 1999-12-31 {TOO_EARLY}"),
    # the reader's sentence for a date Python cannot hold comes first, then every implausible one
    (req("erasure", received_at=None, identity_verified_at=FUTURE, read_problems=("received_at holds -infinity",)),
     f"received_at holds -infinity; identity_verified_at 2099-01-01 00:00:00+00:00 {IN_FUTURE}"),
    (req("know", "ccpa", received_at=EPOCH, identity_verified_at=FUTURE),
     f"identity_verified_at 2099-01-01 00:00:00+00:00 {IN_FUTURE}; received_at 1970-01-01 {TOO_EARLY}"),
])
def test_an_implausible_date_makes_the_request_invalid_whatever_it_asks(r, reason):
    d = decide(r, True)
    assert (d.action, d.outcome, d.reason) == (rules.action_for(r.request_type), "invalid", reason)
    assert not d.acts


@pytest.mark.parametrize("r, reason", [
    (req(received_at=T, identity_requested_at=T - timedelta(days=1)), "identity_requested_at is before received_at"),
    (req("erasure", received_at=T, identity_verified_at=T - timedelta(seconds=1)),
     "identity_verified_at is before received_at"),
    (req(received_at=T - timedelta(days=5), identity_requested_at=T, identity_verified_at=T - timedelta(days=1)),
     "identity_verified_at is before identity_requested_at"),
])
def test_an_identity_step_before_the_receipt_is_out_of_order_and_invalid(r, reason):
    """As deadline tracking judges them: nothing can happen to a request before it was received (an erasure
    "verified" before the request existed is a data error, not a verified identity)."""
    d = decide(r, True)
    assert (d.outcome, d.reason) == ("invalid", reason) and not d.acts


def test_dates_up_to_the_run_time_and_from_the_earliest_date_are_plausible():
    assert implausible_dates(req(received_at=NOW, identity_requested_at=NOW, identity_verified_at=NOW), NOW) == []
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert implausible_dates(req(received_at=start), NOW) == []
    assert decide(req("erasure", received_at=start, identity_requested_at=T, identity_verified_at=NOW), True).acts


def test_the_earliest_plausible_date_is_the_setting_and_judged_in_the_configured_zone():
    from include.config import Settings

    assert rules.EARLIEST_PLAUSIBLE == Settings().earliest_plausible_date
    assert decide(req("delete", "ccpa", received_at=EPOCH), True, earliest=date(1960, 1, 1)).acts
    d = decide(req(received_at=datetime(2026, 10, 31, 12, tzinfo=timezone.utc)), True, earliest=date(2026, 11, 1))
    assert d.outcome == "invalid"
    assert d.reason == "received_at 2026-10-31 is before the earliest plausible date 2026-11-01"
    # 23:30 UTC on New Year's Eve 1999 is already 2000-01-01 in Berlin: a calendar date in the zone, as deadlines do
    eve = req(received_at=datetime(1999, 12, 31, 23, 30, tzinfo=timezone.utc))
    assert decide(eve, True, tz=ZoneInfo("Europe/Berlin")).acts
    assert decide(eve, True).reason == f"received_at 1999-12-31 {TOO_EARLY}"
    # a future date is shown in the zone
    assert implausible_dates(req(received_at=FUTURE), NOW, tz=ZoneInfo("Europe/Berlin")) == [
        f"received_at 2099-01-01 01:00:00+01:00 {IN_FUTURE}"]


def test_the_reason_is_worded_as_deadline_tracking_words_it_and_does_not_change_from_run_to_run():
    from include.deadline_rules import DeadlinePolicy, RequestFacts, evaluate

    tracked = evaluate(RequestFacts(1, "ccpa", "delete", "in_progress", EPOCH), NOW.date(), DeadlinePolicy())
    (reason,) = implausible_dates(req("delete", "ccpa", received_at=EPOCH), NOW)
    assert tracked.state == "invalid" and reason in tracked.invalid_reason.split("; ")
    r = req(identity_verified_at=FUTURE)
    assert decide(r, True).reason == decide(r, True, now=NOW + timedelta(days=30)).reason


def test_dates_at_the_ends_of_the_calendar_are_judged_without_error():
    kiritimati = ZoneInfo("Pacific/Kiritimati")  # UTC+14: 9999-12-31 20:00 UTC has no date there
    last = datetime(9999, 12, 31, 20, tzinfo=timezone.utc)
    assert implausible_dates(req(received_at=last), NOW, tz=kiritimati) == [
        f"received_at 9999-12-31 20:00:00+00:00 {IN_FUTURE}"]
    first = datetime(1, 1, 1, 1, tzinfo=timezone.utc)  # nor has 0001-01-01 01:00 UTC in New York
    assert implausible_dates(req(received_at=first), NOW, tz=ZoneInfo("America/New_York")) == [
        f"received_at 0001-01-01 {TOO_EARLY}"]


def test_the_run_time_must_carry_a_zone():
    with pytest.raises(ValueError, match="no time zone"):
        implausible_dates(req(), NOW.replace(tzinfo=None))


def test_every_type_the_regimes_grant_has_an_action():
    from include.deadline_rules import REGIME_TYPES

    granted = set().union(*REGIME_TYPES.values())
    assert granted == set(rules.ACTIONS)


# -- the erasure gate ---------------------------------------------------------------------------------------

def params(**kw) -> FulfilmentParams:
    return FulfilmentParams(as_of=T.date(), **kw)


H = "a" * 64


@pytest.mark.parametrize("erasable, to_erase, kw, expected", [
    (3, 3, {"dry_run": True}, ("dry_run", "not_needed", None)),
    (5, 5, {"dry_run": True}, ("dry_run", "review", None)),
    (0, 0, {"dry_run": True}, ("dry_run", None, None)),
    (5, 5, {"approve_plan": "b" * 64}, ("plan_changed", "plan_hash", "plan_changed")),
    (0, 0, {"approve_plan": "b" * 64}, ("plan_changed", "plan_hash", "plan_changed")),
    (0, 0, {}, ("planned", None, None)),
    (0, 2, {}, ("planned", "not_needed", "not_needed")),   # accounts already gone: the engine tidies up
    (4, 4, {}, ("planned", "not_needed", "not_needed")),   # at the threshold: no approval needed
    (5, 5, {}, ("awaiting_approval", "review", "waiting")),  # one more: a person decides
    (5, 5, {"approve_plan": H}, ("planned", "plan_hash", "approved")),
])
def test_the_gate_is_the_purges(erasable, to_erase, kw, expected):
    g = gate(H, erasable, to_erase, params(**kw), threshold=4)
    assert (g.state, g.approval, g.approval_state) == expected


def test_params_are_checked_and_resolved():
    timing = RunTiming(run_after=T, run_type="manual")
    p = FulfilmentParams.resolve({"request_ids": [5, 3, 5], "dry_run": False, "approve_plan": H.upper()},
                                 Settings(), timing)
    assert (p.request_ids, p.dry_run, p.approve_plan, p.as_of, p.targeted) == ((3, 5), False, H, T.date(), True)
    assert FulfilmentParams.resolve({"dry_run": True}, Settings(), timing).dry_run is True
    assert FulfilmentParams.resolve({}, Settings(), timing).dry_run is False
    for bad, words in (({"request_ids": [0]}, "request_ids"), ({"request_ids": [True]}, "request_ids"),
                       ({"dry_run": "yes"}, "dry_run"), ({"approve_plan": "abc"}, "approve_plan")):
        with pytest.raises(ParamError, match=words):
            FulfilmentParams.resolve(bad, Settings(), timing)


def test_the_page_offers_exactly_the_outcomes_the_dag_records():
    from include.reads import fulfilments

    assert fulfilments.OUTCOMES == rules.OUTCOMES
