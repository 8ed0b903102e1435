"""What each request asks for (include/fulfilment/rules.py): pure, every branch and its order."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from include.fulfilment import rules
from include.fulfilment.params import FulfilmentParams
from include.fulfilment.rules import Decision, Request, decide
from include.fulfilment.steps import gate
from include.config import Settings
from include.periods import ParamError, RunTiming

T = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


def req(rtype="access", regime="gdpr", **kw) -> Request:
    return Request(**{"request_id": 1, "user_id": 7, "regime": regime, "request_type": rtype,
                      "status": "in_progress", **kw})


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
    (req(problems=("identity_verified_at holds infinity",)), "identity_verified_at holds infinity"),
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
    """Unreadable dates first, then regime, type, type under regime, identity, then the account."""
    both = req("erase_everything", "lgpd", problems=("received_at is a BC date",), status="verifying", user_id=None)
    assert decide(both, False).reason == "received_at is a BC date"
    assert "unknown regime" in decide(req("erase_everything", "lgpd"), True).reason
    assert "unknown request type" in decide(req("erase_everything", status="verifying"), True).reason
    assert decide(req("know", "gdpr", status="verifying"), True).outcome == "invalid"
    assert decide(req(status="verifying", user_id=None), False).outcome == "skipped"


def test_every_type_the_regimes_grant_has_an_action():
    from include.deadlines import REGIME_TYPES

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
    p = FulfilmentParams.resolve({"request_ids": [5, 3, 5], "dry_run": True, "approve_plan": H.upper()},
                                 Settings(), timing)
    assert (p.request_ids, p.dry_run, p.approve_plan, p.as_of, p.targeted) == ((3, 5), True, H, T.date(), True)
    assert FulfilmentParams.resolve({}, Settings(), timing).dry_run is False
    for bad, words in (({"request_ids": [0]}, "request_ids"), ({"request_ids": [True]}, "request_ids"),
                       ({"dry_run": "yes"}, "dry_run"), ({"approve_plan": "abc"}, "approve_plan")):
        with pytest.raises(ParamError, match=words):
            FulfilmentParams.resolve(bad, Settings(), timing)


def test_the_page_offers_exactly_the_outcomes_the_dag_records():
    from include.reads import fulfilments

    assert fulfilments.OUTCOMES == rules.OUTCOMES
