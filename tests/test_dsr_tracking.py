"""Deadline tracking's steps against a real PostgreSQL and the SendGrid stand-in (through the real SDK)."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from include import audit
from include.audit import RunContext
from include.config import Settings
from devkit.database import connect
from include.datamap import load_datamap
from include.deadlines import status_store, tracking
from include.deadlines.params import DsrParams
from include.step import Step
from include.delivery.sendgrid_mailer import RetryPolicy, SendGridAuthError, SendGridMailer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
TODAY = date(2026, 11, 25)
SETTINGS = Settings()
REQUESTER = "Jane.Requester@Example.org"


def ts(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=timezone.utc)


def add_request(conn, rid, regime="gdpr", rtype="access", received="2026-11-01", status="in_progress",
                assignee="dpo@example.com", **dates):
    cols = {"id": rid, "user_id": rid, "requester_email": REQUESTER, "regime": regime, "request_type": rtype,
            "received_at": ts(received), "status": status, "assignee_email": assignee}
    cols.update({k: (ts(v) if isinstance(v, str) else v) for k, v in dates.items()})
    conn.execute(f"insert into privacy_requests ({', '.join(cols)}) values ({', '.join(['%s'] * len(cols))})",
                 list(cols.values()))


@pytest.fixture
def db(reference_db):
    with connect(reference_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def ops(reference_db, db):
    """A second connection: requests stream from one while statuses are copied into the other."""
    with connect(reference_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def mailer(sendgrid):
    return SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)


def ctx(run_id="run-1"):
    return RunContext(run_id=run_id, actor="test", dag_id="dsr_deadline_tracking", now=lambda: NOW)


def params(as_of=TODAY, request_ids=(), dry_run=False) -> DsrParams:
    """The run's resolved trigger form, as the seam hands it over (a run on TODAY)."""
    return DsrParams(as_of=as_of, what_if=as_of != TODAY, request_ids=tuple(request_ids), dry_run=dry_run)


def evaluate(db, run_id="run-1", **kw):
    with connect(db.info.dsn, autocommit=True) as ops:
        return tracking.evaluate_requests(Step(ctx=ctx(run_id), settings=SETTINGS, params=params(**kw), ops=ops, store=db, datamap=load_datamap()))


def status(db, rid):
    row = db.execute("""select state, clock_start, ack_due, statutory_due, policy_due, effective_due, days_left,
                               extension, flags, invalid_reason
                        from compliance.dsr_status where request_id = %s""", (rid,)).fetchone()
    keys = ("state", "clock_start", "ack_due", "statutory_due", "policy_due", "effective_due", "days_left",
            "extension", "flags", "invalid_reason")
    return dict(zip(keys, row)) if row else None


def test_worked_examples_are_recorded(db):
    add_request(db, 1, received="2026-09-03", status="completed", completed_at="2026-10-05")
    add_request(db, 2, received="2026-10-30", extended_at="2026-11-20")
    add_request(db, 3, regime="ccpa", rtype="know", received="2026-03-02", status="completed",
                acknowledged_at="2026-03-03", completed_at="2026-04-03")
    add_request(db, 4, regime="ccpa", rtype="opt_out_of_sale", received="2026-03-02", status="completed",
                acknowledged_at="2026-03-03", completed_at="2026-03-20")
    summary = evaluate(db)
    assert summary["evaluated"] == 4 and summary["changed"] == 4

    assert status(db, 1)["effective_due"] == date(2026, 10, 5) and status(db, 1)["state"] == "closed_on_time"
    s2 = status(db, 2)
    assert (s2["statutory_due"], s2["extension"], s2["effective_due"]) == (date(2027, 2, 1), "valid", date(2027, 2, 1))
    assert s2["state"] == "on_track" and s2["days_left"] == (date(2027, 2, 1) - TODAY).days
    s3 = status(db, 3)
    assert (s3["ack_due"], s3["statutory_due"], s3["policy_due"], s3["effective_due"]) == (
        date(2026, 3, 16), date(2026, 4, 16), date(2026, 4, 2), date(2026, 4, 2))
    assert s3["state"] == "closed_late"
    assert status(db, 4)["effective_due"] == date(2026, 3, 23) and status(db, 4)["state"] == "closed_on_time"


def test_every_invalid_row_is_recorded_with_its_reason(db):
    add_request(db, 1, regime="lgpd")
    add_request(db, 2, rtype="erase_everything")
    add_request(db, 3, regime="gdpr", rtype="know")
    add_request(db, 4, received="2026-12-24")
    add_request(db, 5, acknowledged_at="2026-10-01")
    add_request(db, 6, status="completed")
    summary = evaluate(db)
    assert summary["states"] == {"invalid": 6}
    reasons = dict(db.execute("select request_id, invalid_reason from compliance.dsr_status"))
    assert "lgpd" in reasons[1] and "erase_everything" in reasons[2] and "'know'" in reasons[3]
    assert "future" in reasons[4] and "acknowledged_at" in reasons[5] and "completed_at" in reasons[6]


def test_a_code_field_holding_personal_data_is_invalid_without_repeating_it(db):
    """Found by a fault trial: a request's regime, type or status holding what a person typed by mistake (an
    address, a name and a phone number, an IP address) was quoted in its reason, and stored as its regime and type:
    the page, its filters, the what-ifs and the demo's summary showed them. Such a value is read as missing, with a
    sentence that does not repeat it; a code stays quoted ('lgpd')."""
    add_request(db, 1, regime="jane.doe@example.com")
    add_request(db, 2, rtype="erase for Jane Doe +1 415 555 0100")
    add_request(db, 3, status="waiting on 203.0.113.77")
    add_request(db, 4, regime="lgpd")
    assert evaluate(db)["states"] == {"invalid": 4}
    rows = {r[0]: r[1:] for r in db.execute("select request_id, regime, request_type, invalid_reason "
                                            "from compliance.dsr_status")}
    shown = repr(rows)
    for typed in ("jane", "Jane", "415", "203.0.113"):
        assert typed not in shown, typed
    assert rows[1][0] is None and rows[1][2].startswith("regime is not a code (its value is not repeated")
    assert rows[2][1] is None and rows[2][2].startswith("request_type is not a code")
    assert rows[3][2].startswith("status is not a code")
    assert "unknown regime 'lgpd'" in rows[4][2]


def test_repeated_run_changes_nothing_more(db):
    add_request(db, 1, received="2026-11-20")
    add_request(db, 2, received="2026-10-01")
    first = evaluate(db, run_id="run-1")
    before = db.execute("select * from compliance.dsr_status order by request_id").fetchall()
    second = evaluate(db, run_id="run-2")
    assert first["changed"] == 2 and second["changed"] == 0 and second["evaluated"] == 2
    assert db.execute("select * from compliance.dsr_status order by request_id").fetchall() == before


def test_full_runs_pick_up_new_and_closed_requests_but_not_old_closed_ones(db):
    add_request(db, 1, received="2026-11-20")
    add_request(db, 2, received="2026-01-10", status="completed", completed_at="2026-01-20")
    assert evaluate(db, run_id="run-1")["evaluated"] == 2
    # The open request closes, a new one arrives already closed, the old closed one stays put.
    db.execute("update privacy_requests set status = 'completed', completed_at = %s where id = 1", (ts("2026-11-24"),))
    add_request(db, 3, received="2026-02-01", status="withdrawn", completed_at="2026-02-02")
    second = evaluate(db, run_id="run-2")
    assert second["evaluated"] == 2  # request 1 (tracked, now closed) and request 3 (new); not request 2
    assert status(db, 1)["state"] == "closed_on_time" and status(db, 3)["state"] == "closed_on_time"
    # Nothing is open or new any more: the next run reads nothing.
    assert evaluate(db, run_id="run-3")["evaluated"] == 0


def test_a_request_deleted_while_open_is_said_so_and_no_longer_counted_overdue(db):
    """Found by a fault trial: a request deleted from the operational database while it was open (a duplicate or spam
    request removed by the application) kept its last live status, overdue, for good: no run read it again, so the
    compliance page counted it overdue and the digest listed it among the overdue every day, an alarm nobody could
    clear. A run over every request records it invalid, saying why, and closed to the page; it comes back if the
    request does."""
    from include.reads import attention
    from include.reads import deadlines as dsr_reads

    add_request(db, 1, received="2026-10-01")  # overdue
    add_request(db, 2, received="2026-11-20")  # on track
    evaluate(db, run_id="run-1")
    assert status(db, 1)["state"] == "overdue"
    db.execute("delete from privacy_requests where id = 1")
    summary = evaluate(db, run_id="run-2")
    row = status(db, 1)
    assert row["state"] == "invalid" and row["days_left"] is None, row
    assert row["invalid_reason"] == ("the request is no longer in the operational database (deleted while it was "
                                     "open): nothing is left to evaluate or escalate")
    assert summary["gone"] == 1 and status(db, 2)["state"] == "on_track"
    counted = {i.key: i.count for i in attention.needs_a_person(db, now=NOW, approval_timeout=timedelta(hours=8))}
    assert counted["requests_overdue"] == 0 and counted["requests_invalid"] == 0
    assert dsr_reads.request_states(db).get("overdue", 0) == 0
    assert evaluate(db, run_id="run-3")["gone"] == 0  # said once: nothing changes the next time
    # Restored (from a backup, say): evaluated again as before.
    add_request(db, 1, received="2026-10-01")
    evaluate(db, run_id="run-4")
    assert status(db, 1)["state"] == "overdue"


def test_targeted_run_reports_unknown_ids(db):
    add_request(db, 1)
    add_request(db, 2)
    summary = evaluate(db, request_ids=[2, 99])
    assert summary["evaluated"] == 1 and summary["not_found"] == [99]
    assert status(db, 1) is None and status(db, 2) is not None


def _escalation_fixture(db):
    add_request(db, 1, received="2026-10-01")                                  # overdue, assignee
    add_request(db, 2, received="2026-10-28", assignee=None)                   # due soon, team
    add_request(db, 3, regime="ccpa", rtype="know", received="2026-11-02", assignee="dpo@example.com")  # ack overdue
    add_request(db, 4, received="2026-11-20")                                  # on track
    add_request(db, 5, received="2026-10-02", assignee="not-an-address")       # overdue, team (bad assignee)


def test_escalations_are_sent_once_without_personal_data(db, ops, sendgrid, mailer):
    _escalation_fixture(db)
    evaluate(db)
    result = tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=mailer))
    assert result == {"claimed": 4, "sent": 4, "failed": 0, "withdrawn": 0}
    ledger = {(r, lvl): (rcpt, st) for r, lvl, rcpt, st in db.execute(
        "select request_id, level, recipient, status from compliance.dsr_escalations")}
    assert ledger == {(1, "overdue"): ("dpo@example.com", "sent"), (2, "due_soon"): ("compliance@example.com", "sent"),
                      (3, "ack_overdue"): ("dpo@example.com", "sent"), (5, "overdue"): ("compliance@example.com", "sent")}

    accepted = {m["message_id"]: m["payload"] for m in sendgrid.accepted()}
    # One message per recipient, listing all of its escalations.
    assert sorted(p["personalizations"][0]["to"][0]["email"] for p in accepted.values()) == [
        "compliance@example.com", "dpo@example.com"]
    for rid, message_id in db.execute("select request_id, message_id from compliance.dsr_escalations"):
        assert f"#{rid} " in accepted[message_id]["content"][0]["value"]
    dpo_text = next(p for p in accepted.values()
                    if p["personalizations"][0]["to"][0]["email"] == "dpo@example.com")["content"][0]["value"]
    overdue_line = next(line for line in dpo_text.splitlines() if line.strip().startswith("#1 "))
    assert "overdue" in overdue_line and "due 2026-11-02" in overdue_line and "days left -23" in overdue_line
    payloads = list(accepted.values())
    assert REQUESTER.lower() not in json.dumps(payloads).lower()

    # Again, and after another evaluation: nothing more is sent.
    evaluate(db, run_id="run-2")
    assert tracking.send_escalations(Step(ctx=ctx("run-2"), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=mailer)) == {"claimed": 0, "sent": 0, "failed": 0, "withdrawn": 0}
    assert len(sendgrid.accepted()) == len(payloads)


def test_an_assignee_sendgrid_cannot_be_given_is_replaced_by_the_team(db, ops, sendgrid, mailer):
    """Found by a QA trial: an internationalised assignee address passed the syntax check, SendGrid refused it
    (400), the escalation stayed failed for good and nobody was told of the overdue request."""
    add_request(db, 1, received="2026-10-01", assignee="jürgen@exämple.de")  # overdue
    evaluate(db)
    assert tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=mailer)) == {"claimed": 1, "sent": 1, "failed": 0, "withdrawn": 0}
    assert db.execute("select recipient, status from compliance.dsr_escalations").fetchall() == [
        ("compliance@example.com", "sent")]
    (payload,) = [m["payload"] for m in sendgrid.accepted()]
    assert payload["personalizations"][0]["to"] == [{"email": "compliance@example.com"}]


def test_a_crash_between_claim_and_send_is_resumed(db, ops, sendgrid, mailer):
    _escalation_fixture(db)
    evaluate(db)
    sendgrid.inject(status=500, count=2)
    failing = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None,
                             policy=RetryPolicy(max_attempts=2))
    with pytest.raises(Exception, match="HTTP 500"):
        tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=failing))
    assert db.execute("select count(*) from compliance.dsr_escalations where status = 'pending'").fetchone()[0] == 4
    assert sendgrid.accepted() == []
    result = tracking.send_escalations(Step(ctx=ctx("run-1-retry"), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=mailer))
    assert result["claimed"] == 0 and result["sent"] == 4


def _emailed(sendgrid) -> dict[int, int]:
    """How many times each request id was listed in an accepted escalation email."""
    import re
    from collections import Counter

    return dict(Counter(int(x) for m in sendgrid.accepted() if m["payload"]["categories"] == ["dsr-escalation"]
                        for x in re.findall(r"#(\d+) ", m["payload"]["content"][0]["value"])))


def send(db, ops, mailer, run_id="run-1", **kw):
    """The send_escalations step of a run on TODAY, with the operational database it checks each escalation
    against."""
    return tracking.send_escalations(Step(ctx=ctx(run_id), settings=SETTINGS, params=params(**kw), ops=ops, store=db,
                                          datamap=load_datamap(), mailer=mailer))


def send_in_an_outage(db, ops, sendgrid) -> None:
    """The send_escalations step while SendGrid answers 500 to every attempt: what it claimed stays pending."""
    sendgrid.inject(status=500, count=2)
    failing = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None,
                             policy=RetryPolicy(max_attempts=2))
    with pytest.raises(Exception, match="HTTP 500"):
        send(db, ops, failing)


def test_an_escalation_whose_request_closed_or_moved_since_its_evaluation_is_withdrawn_not_sent(db, ops, sendgrid,
                                                                                                mailer):
    """Found by a fault trial: an escalation recorded by the evaluation was sent whatever became of its request
    before the send: completed (by dsr_fulfilment, or by a person) between the two tasks, validly extended, or
    acknowledged, its assignee still got 'overdue' / 'due soon' / 'not acknowledged in time'. Each is checked
    against the operational database when it is sent: no longer at its level, it is withdrawn with the reason, and
    the digest still counts what the evaluation saw."""
    _escalation_fixture(db)
    evaluate(db)
    # Between evaluate_requests and send_escalations:
    db.execute("update privacy_requests set status = 'completed', completed_at = %s where id = 1",
               (ts("2026-11-25", 9),))                                    # overdue -> closed
    db.execute("update privacy_requests set extended_at = %s where id = 2", (ts("2026-11-24"),))  # due soon -> on track
    db.execute("update privacy_requests set acknowledged_at = %s where id = 3", (ts("2026-11-24"),))  # acknowledged
    result = send(db, ops, mailer)
    assert result == {"claimed": 4, "sent": 1, "failed": 0, "withdrawn": 3}
    assert _emailed(sendgrid) == {5: 1}
    rows = {(r, lvl): (st, err) for r, lvl, st, err in db.execute(
        "select request_id, level, status, error from compliance.dsr_escalations")}
    assert rows[(5, "overdue")] == ("sent", None)
    assert {k: v[0] for k, v in rows.items()} == {(1, "overdue"): "withdrawn", (2, "due_soon"): "withdrawn",
                                                  (3, "ack_overdue"): "withdrawn", (5, "overdue"): "sent"}
    assert "closed_late" in rows[(1, "overdue")][1] and "on_track" in rows[(2, "due_soon")][1]
    withdrawn = [r[0] for r in db.execute("select details from compliance.audit_log "
                                          "where action = 'dsr.escalation_withdrawn'")]
    assert sorted(key for d in withdrawn for key, _ in d["withdrawn"]) == ["1/overdue", "2/due_soon", "3/ack_overdue"]
    assert audit.verify_chain(db).ok
    # Nothing is pending for ever, nothing counts as refused mail, and the digest counts what was evaluated.
    assert db.execute("select count(*) from compliance.dsr_escalations where status = 'pending'").fetchone()[0] == 0
    from include.reads.attention import needs_a_person

    items = {i.key: i.count for i in needs_a_person(db, now=NOW, approval_timeout=timedelta(hours=8))}
    assert items["failed_mail"] == 0
    assert tracking.send_daily_digest(Step(ctx=ctx(), settings=SETTINGS, params=params(), store=db,
                                           mailer=mailer)) == {"sent": "2026-11-25", "attention": 4}

    # The next run sees them as they are: request 3, acknowledged, is now due soon by the policy's one month, a
    # level of its own, escalated once; nothing else is sent.
    evaluate(db, run_id="run-2")
    assert send(db, ops, mailer, "run-2") == {"claimed": 1, "sent": 1, "failed": 0, "withdrawn": 0}
    assert send(db, ops, mailer, "run-3") == {"claimed": 0, "sent": 0, "failed": 0, "withdrawn": 0}
    assert _emailed(sendgrid) == {5: 1, 3: 1}
    assert db.execute("select status from compliance.dsr_escalations where request_id = 3 and level = 'due_soon'"
                      ).fetchone() == ("sent",)


def test_a_pending_escalation_sent_by_a_later_run_is_checked_then_and_comes_back_if_its_level_does(db, ops, sendgrid,
                                                                                                  mailer):
    """An escalation left pending by a SendGrid outage is sent by a later run: checked then, not as its evaluation
    saw it. Withdrawn, its (request, level) is recorded again once the request is at that level again (a due date
    passed after an extension): emailed at most once, never kept from being emailed."""
    add_request(db, 1, received="2026-10-01")  # overdue
    evaluate(db)
    send_in_an_outage(db, ops, sendgrid)
    assert db.execute("select status from compliance.dsr_escalations").fetchall() == [("pending",)]
    db.execute("update privacy_requests set extended_at = %s where id = 1", (ts("2026-10-20"),))  # valid: due in Jan
    evaluate(db, run_id="run-2")
    assert send(db, ops, mailer, "run-2") == {"claimed": 0, "sent": 0, "failed": 0, "withdrawn": 1}
    assert _emailed(sendgrid) == {}
    assert db.execute("select status from compliance.dsr_escalations").fetchall() == [("withdrawn",)]

    # The extension is taken back (it was recorded by mistake): overdue again, emailed once.
    db.execute("update privacy_requests set extended_at = null where id = 1")
    evaluate(db, run_id="run-3")
    assert send(db, ops, mailer, "run-3") == {"claimed": 1, "sent": 1, "failed": 0, "withdrawn": 0}
    assert send(db, ops, mailer, "run-4") == {"claimed": 0, "sent": 0, "failed": 0, "withdrawn": 0}
    assert _emailed(sendgrid) == {1: 1}
    assert db.execute("select status, error from compliance.dsr_escalations").fetchall() == [("sent", None)]


def test_an_escalation_sent_days_after_its_evaluation_states_its_days_left_as_of_the_send(db, ops, sendgrid,
                                                                                           mailer):
    """Found by a review: an escalation left pending by a SendGrid outage went out days later with the days left
    its evaluation recorded ("days left 5" when 2; "days left -23" when -26). Still at its
    level when it is sent, it states its due date and days left as of the sending run's day."""
    add_request(db, 1, received="2026-10-01")                   # overdue: due 2026-11-02, -23 on TODAY
    add_request(db, 2, received="2026-10-28", assignee=None)    # due soon
    evaluate(db)
    send_in_an_outage(db, ops, sendgrid)
    assert _emailed(sendgrid) == {}

    later = TODAY + timedelta(days=3)  # SendGrid is back three days later; that day's run sends what was left
    result = tracking.send_escalations(Step(ctx=ctx("run-later"), settings=SETTINGS,
                                            params=DsrParams(as_of=later, what_if=False), ops=ops, store=db,
                                            datamap=load_datamap(), mailer=mailer))
    assert result == {"claimed": 0, "sent": 2, "failed": 0, "withdrawn": 0}  # recorded by the first run
    texts = {m["payload"]["personalizations"][0]["custom_args"]["request_id"]: m["payload"]["content"][0]["value"]
             for m in sendgrid.accepted()}
    assert "due 2026-11-02  days left -26" in texts["1"] and "days left -23" not in texts["1"]
    assert "due 2026-11-30  days left 2" in texts["2"] and "days left 5" not in texts["2"]


def test_an_earlier_days_run_sending_days_later_checks_and_states_each_escalation_as_of_the_send(db, ops, sendgrid,
                                                                                                   mailer):
    """Found by a review: a run's send_escalations cleared in the Airflow UI (or retried) three days after its day
    checked and stated each pending escalation as of the run's own day, not the day it sends: an overdue request
    went out "days left -23" on the day it was -26, and a due-soon escalation a later day's run recorded was
    withdrawn as "no longer due_soon" (it was not due soon yet on the run's day), a false withdrawal in the audit
    log. The check and the figures are as of the day the email is sent."""
    add_request(db, 1, received="2026-10-01")                   # overdue: due 2026-11-02, -23 on TODAY
    add_request(db, 3, received="2026-11-03", assignee="owner@example.com")  # due 12-03: due soon at +3 only
    evaluate(db, run_id="scheduled__today")
    later_day, later = TODAY + timedelta(days=3), NOW + timedelta(days=3)
    at_later = lambda run_id: RunContext(run_id=run_id, actor="test", dag_id="dsr_deadline_tracking",  # noqa: E731
                                         now=lambda: later)
    with connect(db.info.dsn, autocommit=True) as conn:  # the later day's run, while SendGrid is down
        tracking.evaluate_requests(Step(ctx=at_later("scheduled__later"), settings=SETTINGS, ops=conn, store=db,
                                        params=DsrParams(as_of=later_day, what_if=False), datamap=load_datamap()))
    sendgrid.inject(status=500, count=2)
    failing = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None,
                             policy=RetryPolicy(max_attempts=2))
    with pytest.raises(Exception, match="HTTP 500"):
        tracking.send_escalations(Step(ctx=at_later("scheduled__later"), settings=SETTINGS, ops=ops, store=db,
                                       params=DsrParams(as_of=later_day, what_if=False), datamap=load_datamap(),
                                       mailer=failing))
    assert dict(db.execute("select key, status from compliance.outbox where kind = 'dsr.escalation'")) == {
        "1/overdue": "pending", "3/due_soon": "pending"}

    # SendGrid is back; TODAY's run, its send_escalations cleared, sends on the later day (Airflow keeps its day).
    result = tracking.send_escalations(Step(ctx=at_later("scheduled__today"), settings=SETTINGS, ops=ops, store=db,
                                            params=params(), datamap=load_datamap(), mailer=mailer))
    assert result == {"claimed": 0, "sent": 2, "failed": 0, "withdrawn": 0}
    texts = {m["payload"]["personalizations"][0]["custom_args"]["request_id"]: m["payload"]["content"][0]["value"]
             for m in sendgrid.accepted()}
    assert "due 2026-11-02  days left -26" in texts["1"]
    assert "due 2026-12-03  days left 5" in texts["3"]


def test_a_refused_batch_is_marked_failed_and_the_rest_goes_on(db, ops, sendgrid, mailer):
    _escalation_fixture(db)
    evaluate(db)
    sendgrid.inject(status=400, count=1)
    result = tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=mailer))
    assert result == {"claimed": 4, "sent": 2, "failed": 2, "withdrawn": 0}  # the first recipient's message was refused
    errors = [r[0] for r in db.execute("select error from compliance.dsr_escalations where status = 'failed'")]
    assert errors and all(errors)


def test_bad_api_key_fails_at_once(db, ops, sendgrid):
    _escalation_fixture(db)
    evaluate(db)
    wrong = SendGridMailer(api_key="SG.wrong", host=sendgrid.base_url, sleep=lambda s: None)
    with pytest.raises(SendGridAuthError):
        tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=wrong))
    assert len(sendgrid.requests()) == 1


@pytest.mark.parametrize("kwargs, reason", [({"dry_run": True}, "dry run"),
                                            ({"as_of": date(2026, 12, 25)}, "is not today")])
def test_dry_runs_and_what_ifs_send_nothing(db, ops, sendgrid, mailer, kwargs, reason):
    _escalation_fixture(db)
    as_of = kwargs.get("as_of", TODAY)
    evaluate(db, as_of=as_of)
    result = tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=as_of, dry_run=kwargs.get("dry_run", False)), ops=ops, store=db, datamap=load_datamap(), mailer=mailer))
    assert reason in result["skipped"] and result["would_claim"] >= 4
    digest = tracking.send_daily_digest(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=as_of, dry_run=kwargs.get("dry_run", False)), store=db, mailer=mailer))
    assert reason in digest["skipped"]
    assert sendgrid.accepted() == []
    assert db.execute("select count(*) from compliance.dsr_escalations").fetchone()[0] == 0


def test_a_targeted_run_leaves_the_days_digest_to_a_run_over_every_request(db, ops, sendgrid, mailer):
    """Found by a fault trial: a manual run for one request sent the day's only digest, counting the other requests
    as the day before left them; the scheduled run then found it sent. A targeted run escalates its own requests
    and sends no digest; the next run over every request sends it."""
    _escalation_fixture(db)
    evaluate(db, "targeted", request_ids=(1,))
    targeted = params(request_ids=(1,))
    tracking.send_escalations(Step(ctx=ctx("targeted"), settings=SETTINGS, params=targeted, ops=ops, store=db, datamap=load_datamap(), mailer=mailer))
    result = tracking.send_daily_digest(Step(ctx=ctx("targeted"), settings=SETTINGS, params=targeted, store=db,
                                             mailer=mailer))
    assert "targeted" in result["skipped"]
    assert sendgrid.accepted() and [m for m in sendgrid.accepted() if m["payload"]["categories"] == ["dsr-digest"]] == []
    assert db.execute("select count(*) from compliance.dsr_digests").fetchone()[0] == 0
    evaluate(db, "scheduled")
    assert tracking.send_daily_digest(Step(ctx=ctx("scheduled"), settings=SETTINGS, params=params(), store=db,
                                           mailer=mailer)) == {"sent": "2026-11-25", "attention": 4}


def test_one_digest_a_day(db, sendgrid, mailer):
    _escalation_fixture(db)
    evaluate(db)
    assert tracking.send_daily_digest(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), store=db, mailer=mailer)) == {"sent": "2026-11-25", "attention": 4}
    assert tracking.send_daily_digest(Step(ctx=ctx("run-2"), settings=SETTINGS, params=params(as_of=TODAY), store=db, mailer=mailer)) == {"already_sent": "2026-11-25"}
    (message,) = sendgrid.accepted()
    payload = message["payload"]
    assert payload["personalizations"][0]["to"] == [{"email": "compliance@example.com"}]
    assert "2 overdue" in payload["subject"] and "#1" in payload["content"][0]["value"]
    assert REQUESTER.lower() not in json.dumps(payload).lower()


def test_a_refused_digest_is_recorded_and_not_resent(db, sendgrid, mailer):
    _escalation_fixture(db)
    evaluate(db)
    sendgrid.inject(status=400, count=1)
    result = tracking.send_daily_digest(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), store=db, mailer=mailer))
    assert result["failed"] == "2026-11-25" and result["reason"]
    assert tracking.send_daily_digest(Step(ctx=ctx("run-2"), settings=SETTINGS, params=params(as_of=TODAY), store=db, mailer=mailer)) == {"failed_earlier": "2026-11-25"}
    assert db.execute("select status from compliance.dsr_digests").fetchone() == ("failed",)
    assert len(sendgrid.requests()) == 1 and sendgrid.accepted() == []


def test_every_step_is_in_the_audit_log(db, ops, sendgrid, mailer):
    _escalation_fixture(db)
    evaluate(db)
    tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), ops=ops, store=db, datamap=load_datamap(), mailer=mailer))
    tracking.send_daily_digest(Step(ctx=ctx(), settings=SETTINGS, params=params(as_of=TODAY), store=db, mailer=mailer))
    actions = [r[0] for r in db.execute("select action from compliance.audit_log order by id")]
    assert actions[0] == "dsr.evaluated" and "dsr.escalation_sent" in actions and actions[-1] == "dsr.digest_sent"
    assert audit.verify_chain(db).ok
    assert REQUESTER.lower() not in json.dumps(
        [r[0] for r in db.execute("select details from compliance.audit_log")]).lower()


def test_a_what_if_leaves_the_live_status_alone(db, reference_db, capsys):
    add_request(db, 1, received="2026-11-20")
    add_request(db, 2, received="2026-10-01")
    evaluate(db, run_id="live")
    live = db.execute("select * from compliance.dsr_status order by request_id").fetchall()
    summary = evaluate(db, run_id="whatif-1", as_of=date(2026, 12, 24))
    assert summary["what_if"] and summary["evaluated"] == 2
    assert db.execute("select * from compliance.dsr_status order by request_id").fetchall() == live
    whatif = dict(db.execute("select request_id, state from compliance.dsr_whatif where run_id = 'whatif-1'"))
    assert whatif == {1: "overdue", 2: "overdue"} and status(db, 1)["state"] == "on_track"
    # The next live run still sees the live picture, and the what-if is readable from the command line.
    assert evaluate(db, run_id="live-2")["changed"] == 0
    from include.cli import main

    assert main(["whatif", "--url", reference_db]) == 0
    assert "whatif-1  as of 2026-12-24" in capsys.readouterr().out
    assert main(["whatif", "--url", reference_db, "--run-id", "whatif-1"]) == 0
    assert "overdue" in capsys.readouterr().out
    assert main(["whatif", "--url", reference_db, "--run-id", "whatif-1", "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[-1] == "... and 1 more (--limit)"
    # A --limit below 1 is a usage error in one sentence (it used to reach the database as LIMIT -1).
    for bad in ("-1", "0"):
        with pytest.raises(SystemExit) as exit_:
            main(["whatif", "--url", reference_db, "--limit", bad])
        assert exit_.value.code == 2
        assert f"{bad!r} is not a whole number from 1 to 9223372036854775807" in capsys.readouterr().err


def test_a_run_of_an_earlier_day_never_takes_the_live_status_back(db, ops, sendgrid, mailer):
    """A run's day is its run_after's (include/periods.py), so a run cleared or retried days later, or a back-fill,
    evaluates live as of its own, earlier day. It must not replace what a run of a later day recorded: before, the
    page showed yesterday's days left, and a request received since as invalid ("received in the future")."""
    add_request(db, 1, received="2026-11-01")
    add_request(db, 2, received="2026-11-24")
    add_request(db, 3, received="2026-10-24", assignee="owner@example.com")
    evaluate(db, run_id="today")
    live = db.execute("select * from compliance.dsr_status order by request_id").fetchall()
    assert [status(db, r)["state"] for r in (1, 2, 3)] == ["due_soon", "on_track", "overdue"]

    earlier = TODAY - timedelta(days=3)
    old = DsrParams(as_of=earlier, what_if=False)  # live: the run's own day, three days ago
    with connect(db.info.dsn, autocommit=True) as conn:
        step = Step(ctx=ctx("scheduled__2026-11-22"), settings=SETTINGS, params=old, ops=conn, store=db,
                    datamap=load_datamap())
        summary = tracking.evaluate_requests(step)
        assert summary["changed"] == 0 and summary["kept_as_of_a_later_day"] == 3
        tracking.send_escalations(Step(ctx=ctx("scheduled__2026-11-22"), settings=SETTINGS, params=old, ops=ops,
                                       store=db, datamap=load_datamap(), mailer=mailer))
    assert db.execute("select * from compliance.dsr_status order by request_id").fetchall() == live
    # Nothing of the earlier day's picture was escalated either (request 3 was due soon then).
    assert not db.execute("select 1 from compliance.outbox where key like '%/due_soon'").fetchall()


def test_a_what_if_before_the_earliest_plausible_receipt_is_refused():
    """A what-if as of a day before every plausible receipt would make every request invalid: a typo, refused
    in one sentence before anything is read or written."""
    from include.periods import ParamError, RunTiming

    timing = RunTiming(run_after=NOW, run_type="manual")
    with pytest.raises(ParamError, match=r"as_of 1900-01-01 is before 2000-01-01, the earliest receipt date"):
        DsrParams.resolve({"as_of": "1900-01-01"}, SETTINGS, timing)
    assert DsrParams.resolve({"as_of": "2000-01-01"}, SETTINGS, timing).what_if


def test_a_column_of_a_type_the_rules_cannot_compare_fails_the_task_at_once_saying_what_to_fix(db, caplog):
    """Found by a fault trial: a mapped column of a type the rules cannot compare (``received_at`` as text, after an
    application's migration) failed every run with "the database refused: operator does not exist: text >= timestamp
    with time zone", retried three times over seven minutes as if it might pass, and nothing said what to do. A
    statement the database refuses as not fitting its tables or grants (SQLSTATE class 42) is a setup fault: the task
    fails at once, saying so."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.seam.task import readable_failures

    add_request(db, 1)
    db.execute("alter table privacy_requests alter received_at type text using received_at::text")
    with pytest.raises(AirflowFailException) as err:
        with readable_failures():
            evaluate(db)
    sentence = str(err.value)
    assert sentence.startswith("the database refused a statement as not fitting its tables or grants: operator does "
                               "not exist: text >= timestamp with time zone (SQLSTATE 42883); a table or column the "
                               "data map names is gone, of a type the workflow cannot compare, or not granted to the "
                               "connection's login: correct it, then clear the task"), sentence
    assert "(Airflow will retry)" not in caplog.text and REQUESTER not in sentence + caplog.text


def test_a_what_if_as_of_the_calendars_last_day_is_refused_in_one_sentence(db):
    """Found by a fault trial: the trigger form takes ``as_of: 9999-12-31`` (a date like any other), and the what-if's
    evaluation raised OverflowError (the day after it, where its day ends, is past what a date holds): a traceback,
    retried three times. It is refused in one sentence before anything is read; the day before still evaluates."""
    from include.errors import NeedsOperator
    from include.periods import ParamError, RunTiming

    timing = RunTiming(run_after=NOW, run_type="manual")
    with pytest.raises(ParamError) as err:
        DsrParams.resolve({"as_of": "9999-12-31"}, SETTINGS, timing)
    assert str(err.value) == ("as_of 9999-12-31 is the calendar's last day (years 1 to 9999): a what-if's day ends at "
                              "the next day's start, which no date holds; name an earlier day")
    assert isinstance(err.value, NeedsOperator)
    add_request(db, 1, received="2026-11-20")
    last = DsrParams.resolve({"as_of": "9999-12-30"}, SETTINGS, timing)
    with connect(db.info.dsn, autocommit=True) as ops:
        summary = tracking.evaluate_requests(Step(ctx=ctx("far"), settings=SETTINGS, params=last, ops=ops, store=db,
                                                  datamap=load_datamap()))
    assert summary["what_if"] and summary["states"] == {"overdue": 1}


def test_what_ifs_are_pruned_after_the_retention(db):
    add_request(db, 1, received="2026-11-20")
    evaluate(db, run_id="old-whatif", as_of=date(2026, 12, 1))
    db.execute("update compliance.dsr_whatif set evaluated_at = evaluated_at - interval '31 days'")
    summary = evaluate(db, run_id="live")
    assert summary["whatif_rows_pruned"] == 1
    assert db.execute("select count(*) from compliance.dsr_whatif").fetchone()[0] == 0


@pytest.mark.parametrize("value, reason", [
    ("infinity", "received_at holds infinity"),
    ("-infinity", "received_at holds -infinity"),
    ("0044-03-15 10:00:00+00 BC", "received_at is a BC date"),
    ("12026-01-01 00:00:00+00", "received_at is after the year 9999"),
])
def test_a_value_python_cannot_hold_spoils_only_its_row(db, ops, sendgrid, mailer, value, reason):
    """It used to make the driver raise mid-stream: nothing written, every retry failing the same way."""
    add_request(db, 1, received="2026-09-01")
    add_request(db, 2, received="2026-09-01")
    add_request(db, 3, received="2026-09-01", completed_at=None)
    db.execute("update privacy_requests set received_at = %s::timestamptz where id = 2", (value,))
    db.execute("update privacy_requests set completed_at = 'infinity', status = 'completed' where id = 3")
    summary = evaluate(db)
    assert summary["evaluated"] == 3 and summary["states"] == {"invalid": 2, "overdue": 1}
    assert status(db, 2)["invalid_reason"].startswith(reason)
    assert status(db, 3)["invalid_reason"].startswith("completed_at holds infinity")
    result = tracking.send_escalations(Step(ctx=ctx(), settings=SETTINGS, params=params(), ops=ops, store=db, datamap=load_datamap(), mailer=mailer))
    assert result["sent"] == 1
    assert {r[0] for r in db.execute("select request_id from compliance.dsr_escalations")} == {1}


def test_implausible_dates_are_invalid(db):
    add_request(db, 1, received="1999-12-31")
    add_request(db, 2, received="2026-11-01", status="completed", completed_at="2026-11-30")
    add_request(db, 3, received="2026-11-01")
    evaluate(db)
    assert "before the earliest plausible date 2000-01-01" in status(db, 1)["invalid_reason"]
    assert "completed_at 2026-11-30 is after the evaluation date 2026-11-25" in status(db, 2)["invalid_reason"]
    assert status(db, 3)["state"] == "due_soon"  # the clean row beside them is evaluated as usual


def test_a_code_with_white_space_around_it_is_still_quoted_as_it_was_typed(db):
    """The reader withholds values that are not codes; a code with white space around it is one (the rules quote it
    so that a person sees the stray space)."""
    add_request(db, 1, regime=" gdpr\t")
    evaluate(db)
    regime, reason = db.execute("select regime, invalid_reason from compliance.dsr_status where request_id = 1").fetchone()
    assert regime == " gdpr\t" and "unknown regime ' gdpr\\t'" in reason


def test_a_code_that_reads_like_a_null_word_is_kept_as_typed(db):
    """The requests stream out as CSV, whose reader took the words pyarrow calls null by default ("NA", "null",
    "NULL", "nan", "N/A") for SQL NULL: a regime typed "NA" was recorded as missing (regime NULL, reason "regime is
    missing"), not as the unknown regime the row holds. Only PostgreSQL's own NULL (an unquoted empty field) is one."""
    add_request(db, 1, regime="NA")
    add_request(db, 2, rtype="null")
    add_request(db, 3, status="NULL")
    add_request(db, 4, regime="nan", assignee="n/a")
    assert evaluate(db)["states"] == {"invalid": 4}
    rows = {r[0]: r[1:] for r in db.execute("select request_id, regime, request_type, status, invalid_reason "
                                            "from compliance.dsr_status")}
    assert rows[1][0] == "NA" and rows[1][3] == "unknown regime 'NA'"
    assert rows[2][1] == "null" and rows[2][3] == "unknown request type 'null'"
    assert rows[3][2] == "NULL" and rows[3][3] == "unknown status 'NULL'"
    assert rows[4][0] == "nan" and rows[4][3] == "unknown regime 'nan'"


def test_code_columns_of_an_enum_type_are_evaluated_and_escalated_like_text(db, ops, sendgrid, mailer):
    """Found by a fault trial: an application whose requests' status (or regime, type) is a PostgreSQL enum (as
    Rails, Django and Prisma schemas make them) failed every run in its first statement ("operator does not exist:
    request_status = text", the open statuses compared as text), retried for minutes as a database refusal, and
    nothing was evaluated or escalated. Each code is compared as the text of its label."""
    db.execute("""create type request_status as enum ('received', 'verifying', 'in_progress', 'completed',
                                                       'rejected', 'withdrawn');
                  create type request_regime as enum ('gdpr', 'ccpa', 'lgpd');
                  create type request_kind as enum ('access', 'erasure', 'know', 'delete', 'opt_out_of_sale');
                  alter table privacy_requests alter status type request_status using status::request_status,
                                               alter regime type request_regime using regime::request_regime,
                                               alter request_type type request_kind using request_type::request_kind""")
    _escalation_fixture(db)
    add_request(db, 6, received="2026-09-03", status="completed", completed_at="2026-10-05")  # closed on time
    add_request(db, 7, regime="lgpd")                                                         # unknown regime
    summary = evaluate(db)
    assert summary["states"] == {"ack_overdue": 1, "closed_on_time": 1, "due_soon": 1, "invalid": 1, "on_track": 1,
                                 "overdue": 2}
    assert db.execute("select invalid_reason from compliance.dsr_status where request_id = 7").fetchone()[0] == \
        "unknown regime 'lgpd'"
    assert send(db, ops, mailer) == {"claimed": 4, "sent": 4, "failed": 0, "withdrawn": 0}
    # A what-if reads the requests as they stood that day through the same comparisons.
    assert evaluate(db, run_id="what-if", as_of=date(2026, 10, 20))["evaluated"] == 2  # requests 1 and 5


def test_an_earlier_days_run_cleared_today_keeps_the_live_status_of_today(db):
    """Found by an on-call trial: yesterday's run cleared in the Airflow UI and run again today evaluates as of its
    own day (yesterday, as Airflow keeps its start): it rewrote today's live status as of yesterday (days left one
    more, an overdue request due soon again, stamped evaluated now) until the next hourly run. A row evaluated as of
    a later day is kept; the cleared run's new rows are still recorded."""
    yesterday = TODAY - timedelta(days=1)
    add_request(db, 1, received="2026-10-26")  # due in a day or two: due soon
    evaluate(db, "scheduled__today")
    today_row = status(db, 1)
    assert today_row["state"] == "due_soon"
    add_request(db, 2, received="2026-11-20")  # written since: new to the store
    with connect(db.info.dsn, autocommit=True) as ops:
        summary = tracking.evaluate_requests(Step(ctx=ctx("scheduled__yesterday"), settings=SETTINGS, datamap=load_datamap(),
                                                  params=DsrParams(as_of=yesterday, what_if=False), ops=ops, store=db))
    assert status(db, 1) == today_row
    assert db.execute("select as_of, run_id from compliance.dsr_status where request_id = 1").fetchone() == (
        TODAY, "scheduled__today")
    assert status(db, 2) is not None and summary["changed"] == 1


def test_a_cleared_evaluation_still_records_the_rows_its_run_changed(db):
    """Found by an on-call trial: `evaluate_requests` cleared in the Airflow UI and run again (the same run id) found
    its first attempt's rows in the live status, counted 0 changed, and rewrote the run's row in
    `compliance.dsr_runs` (the page's last run) to say the run changed nothing; its second `dsr.evaluated` entry said
    so too. A run counts the live rows it wrote over all its attempts."""
    add_request(db, 1, received="2026-10-26")
    add_request(db, 2, received="2026-11-20")
    assert evaluate(db, "scheduled__cleared")["changed"] == 2
    add_request(db, 3, received="2026-11-21")  # written between the two attempts: new to the store
    assert evaluate(db, "scheduled__cleared")["changed"] == 3
    assert db.execute("select evaluated, changed from compliance.dsr_runs where run_id = 'scheduled__cleared'"
                      ).fetchone() == (3, 3)
    audited = [r[0] for r in db.execute("select (details ->> 'changed')::int from compliance.audit_log "
                                        "where run_id = 'scheduled__cleared' and action = 'dsr.evaluated' order by id")]
    assert audited == [2, 3]
    assert evaluate(db, "scheduled__next")["changed"] == 0  # another run: its own count


def _whatif(db, run_id, as_of, settings, request_ids=()):
    with connect(db.info.dsn, autocommit=True) as ops:
        step = Step(ctx=ctx(run_id), settings=settings, params=params(as_of=as_of, request_ids=request_ids), ops=ops,
                    store=db, datamap=load_datamap())
        return tracking.evaluate_requests(step)


def test_a_what_if_of_a_past_day_answers_for_the_requests_as_they_stood_that_day(db):
    """Found by a review of the what-if: without request_ids it read the live run's selection (open requests, new
    ones, those closed since the last run), so as of 1 November it left out a request open that day and closed on
    10 November, and listed one received on 20 November as invalid ("received in the future"). A what-if as of a
    day takes every request received by the end of that day (in the configured zone) and not closed before it;
    as of a later day, the requests open now. Los Angeles: 2026-11-01 runs from 07:00 UTC that day (PDT) to
    08:00 UTC the next (PST)."""
    la = Settings(timezone="America/Los_Angeles")
    day = date(2026, 11, 1)
    add_request(db, 1, received="2026-10-20", status="completed", completed_at="2026-11-10")
    add_request(db, 2, received="2026-11-20")
    add_request(db, 3, received="2026-09-01", status="completed", completed_at="2026-10-15")
    add_request(db, 4, received="2026-10-25")
    add_request(db, 5, received="2026-10-10", status="completed", completed_at=ts("2026-11-01", 7))  # that day
    add_request(db, 6, received="2026-10-10", status="completed", completed_at=ts("2026-11-01", 6))  # the day before
    add_request(db, 7, received="2026-10-02", received_at=ts("2026-11-02", 7))  # 23:00 on the day
    add_request(db, 8, received="2026-10-02", received_at=ts("2026-11-02", 8))  # midnight after it
    add_request(db, 9, received="2026-10-20", status="in_progress", completed_at="2026-10-22")  # reopened
    with connect(db.info.dsn, autocommit=True) as ops:
        live = Step(ctx=ctx("live"), settings=la, params=params(), ops=ops, store=db, datamap=load_datamap())
        tracking.evaluate_requests(live)
    before = db.execute("select * from compliance.dsr_status order by request_id").fetchall()

    summary = _whatif(db, "whatif-nov-1", day, la)
    rows = dict(db.execute("select request_id, state from compliance.dsr_whatif where run_id = 'whatif-nov-1'"))
    assert sorted(rows) == [1, 4, 5, 7, 9] and summary["evaluated"] == 5
    assert (rows[4], rows[5], rows[7], rows[9]) == ("on_track", "closed_on_time", "on_track", "on_track")
    # Request 1 was open on 1 November (closed on the 10th): as it stood, on track, not invalid for a completion
    # after the evaluation day (which a live run's row, a typo there, still is); so when named, too.
    assert rows[1] == "on_track"
    _whatif(db, "whatif-nov-1-named", day, la, request_ids=(1,))
    assert db.execute("select state from compliance.dsr_whatif where run_id = 'whatif-nov-1-named'").fetchall() == [
        ("on_track",)]

    _whatif(db, "whatif-dec-24", date(2026, 12, 24), la)
    later = dict(db.execute("select request_id, state from compliance.dsr_whatif where run_id = 'whatif-dec-24'"))
    assert sorted(later) == [2, 4, 7, 8, 9]  # open now
    assert db.execute("select * from compliance.dsr_status order by request_id").fetchall() == before


def test_a_what_if_of_a_day_before_every_request_is_listed_with_no_requests(db, reference_db, capsys):
    """A what-if as of a day before any request was received evaluates none: it is still a run the command line
    and the page list, and its results say it found none (not that it was pruned)."""
    from include.cli import main

    add_request(db, 1, received="2026-11-20")
    summary = evaluate(db, run_id="whatif-empty", as_of=date(2026, 1, 5))
    assert summary["evaluated"] == 0 and summary["states"] == {}
    assert main(["whatif", "--url", reference_db]) == 0
    assert "whatif-empty  as of 2026-01-05" in capsys.readouterr().out
    assert main(["whatif", "--url", reference_db, "--run-id", "whatif-empty"]) == 0
    assert "no request had been received by 2026-01-05 and not closed before it" in capsys.readouterr().out

    # A what-if that never finished (its task failed before it recorded anything; its row starts at 0) found
    # nothing and is not said to have found that no request had been received.
    status_store.start_run(db, "whatif-failed", date(2026, 11, 24), False, NOW, what_if=True)
    assert main(["whatif", "--url", reference_db]) == 0
    assert "whatif-failed" not in capsys.readouterr().out
    assert main(["whatif", "--url", reference_db, "--run-id", "whatif-failed"]) != 0
    assert "no request had been received" not in capsys.readouterr().out
