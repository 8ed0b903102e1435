"""The delivery engine against a real PostgreSQL and the SendGrid stand-in: the rules every sender keeps."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import date, datetime, timezone

import pytest

from devkit.database import connect
from include.audit import RunContext
from include.config import Settings
from include.datamap import load_datamap
from include.deadlines import tracking
from include.deadlines.params import DsrParams
from include.step import Step
from include.delivery.engine import Batch, DeliveryDeferred, deliver
from include.delivery.sendgrid_mailer import MAX_PERSONALIZATIONS, RetryPolicy, SendGridAuthError, SendGridMailer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
TODAY = date(2026, 11, 25)
SETTINGS = Settings()


def ctx(run_id: str) -> RunContext:
    return RunContext(run_id=run_id, actor="test", dag_id="test", now=lambda: NOW)


def mailer_for(sendgrid, **kw) -> SendGridMailer:
    return SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None, **kw)


@pytest.fixture
def db(reference_db):
    with connect(reference_db, autocommit=True) as conn:
        yield conn


def _requests(db, n: int, assignees: int = 3) -> None:
    """``n`` overdue GDPR requests spread over a few assignees."""
    for rid in range(1, n + 1):
        db.execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type, received_at,
                                                   status, assignee_email)
                      values (%s, %s, 'someone@example.org', 'gdpr', 'access', '2026-09-01 10:00+00', 'in_progress', %s)""",
                   (rid, rid, f"staff{rid % assignees}@example.com"))
    with connect(db.info.dsn, autocommit=True) as ops:
        tracking.evaluate_requests(Step(ctx=ctx("eval"), settings=SETTINGS, params=DsrParams(as_of=TODAY, what_if=False), ops=ops, store=db, datamap=load_datamap()))


def escalations(run_id: str, ops):
    """The escalation ledger of a run on TODAY, each escalation checked against ``ops`` when claimed."""
    from include.deadlines import escalation

    live = escalation.LiveRequests(ops, load_datamap(), TODAY, tracking.deadline_policy(SETTINGS, TODAY))
    return escalation.ledger(SETTINGS, run_id, live)


def _sent_requests(sendgrid) -> Counter:
    """How many times each request id was emailed (the escalation text lists '#<id> ')."""
    import re

    seen: Counter = Counter()
    for message in sendgrid.accepted():
        if message["payload"]["custom_args"]["campaign"] != "dsr-escalation":
            continue
        text = message["payload"]["content"][0]["value"]
        seen.update(int(x) for x in re.findall(r"#(\d+) ", text))
    return seen


def test_two_runs_at_once_send_each_escalation_and_the_digest_once(db, reference_db, sendgrid):
    """Both runs record and send at the same moment; every SendGrid answer is slow. A request completed since the
    evaluation is withdrawn once, by whichever run claims it, and emailed by neither."""
    _requests(db, 12, assignees=4)
    db.execute("update privacy_requests set status = 'completed', completed_at = %s where id = 12", (NOW,))
    sendgrid.inject(delay_seconds=0.3, count=100)
    results, errors = {}, []

    def run(run_id: str) -> None:
        try:
            with connect(reference_db, autocommit=True) as store, connect(reference_db, autocommit=True) as ops:
                params = DsrParams(as_of=TODAY, what_if=False)
                mailer = mailer_for(sendgrid)
                results[run_id] = (tracking.send_escalations(Step(ctx=ctx(run_id), settings=SETTINGS, params=params,
                                                                  ops=ops, store=store, datamap=load_datamap(),
                                                                  mailer=mailer)),
                                   tracking.send_daily_digest(Step(ctx=ctx(run_id), settings=SETTINGS, params=params, store=store, mailer=mailer)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert _sent_requests(sendgrid) == Counter({rid: 1 for rid in range(1, 12)})
    digests = [m for m in sendgrid.accepted() if m["payload"]["custom_args"]["campaign"] == "dsr-digest"]
    assert len(digests) == 1
    assert sum(r[0]["sent"] for r in results.values()) == 11
    assert sum(r[0]["withdrawn"] for r in results.values()) == 1
    assert dict(db.execute("select status, count(*) from compliance.dsr_escalations group by 1")) == {
        "sent": 11, "withdrawn": 1}
    assert db.execute("select details -> 'withdrawn' -> 0 ->> 0 from compliance.audit_log "
                      "where action = 'dsr.escalation_withdrawn'").fetchall() == [("12/overdue",)]


def test_a_targeted_run_sends_only_its_own_requests(db, sendgrid):
    _requests(db, 6)
    params = DsrParams(as_of=TODAY, what_if=False, request_ids=(2, 5))
    with connect(db.info.dsn, autocommit=True) as ops:
        tracking.evaluate_requests(Step(ctx=ctx("t"), settings=SETTINGS, params=params, ops=ops, store=db, datamap=load_datamap()))
    # An earlier full run recorded everyone's escalations but died before sending them.
    from include.deadlines import escalation

    escalation.record(db, as_of=TODAY, team_email=SETTINGS.compliance_team_email, run_id="dead", now=NOW)
    with connect(db.info.dsn, autocommit=True) as ops:
        result = tracking.send_escalations(Step(ctx=ctx("targeted"), settings=SETTINGS, params=params, ops=ops,
                                                store=db, datamap=load_datamap(), mailer=mailer_for(sendgrid)))
    assert result["sent"] == 2 and _sent_requests(sendgrid) == Counter({2: 1, 5: 1})
    pending = {r[0] for r in db.execute("select request_id from compliance.dsr_escalations where status = 'pending'")}
    assert pending == {1, 3, 4, 6}


def test_a_batch_held_by_a_live_sender_is_skipped_and_a_dead_senders_batch_is_resumed(db, reference_db, sendgrid):
    _requests(db, 3, assignees=1)
    from include.deadlines import escalation

    escalation.record(db, as_of=TODAY, team_email=SETTINGS.compliance_team_email, run_id="r", now=NOW)
    ops = connect(reference_db, autocommit=True)
    ledger = escalations("holder", ops)
    holder = connect(reference_db, autocommit=True)
    tx = holder.transaction()
    tx.__enter__()
    held = ledger.claim(holder)  # a live sender holds the one recipient's batch, mid-send
    assert held is not None and held.size == 3
    report = deliver(db, escalations("other", ops), mailer_for(sendgrid), ctx("other"))
    assert report.sent == 0 and sendgrid.accepted() == []
    holder_pid = holder.info.backend_pid
    holder.close()  # the holder dies (SIGKILL): its transaction and its locks go with it ...
    import time

    deadline = time.monotonic() + 10  # ... once its server process has noticed (it does so asynchronously)
    while db.execute("select count(*) from pg_stat_activity where pid = %s", (holder_pid,)).fetchone()[0]:
        assert time.monotonic() < deadline, "the dead holder's server process lingers"
        time.sleep(0.05)
    report = deliver(db, escalations("retry", ops), mailer_for(sendgrid), ctx("retry"))
    ops.close()
    assert report.sent == 3 and _sent_requests(sendgrid) == Counter({1: 1, 2: 1, 3: 1})


class NumberedLedger:
    """A generic ledger: rows 1..n of a table, one recipient each, up to 1,000 per request."""

    name = "test.numbered"

    def __init__(self, conn, n: int, per_request: int = MAX_PERSONALIZATIONS):
        self.per_request = per_request
        conn.execute("create table numbered (id int primary key, status text not null default 'pending', "
                     "message_id text, error text)")
        conn.execute("insert into numbered (id) select generate_series(1, %s)", (n,))

    def pending(self, conn) -> int:
        return conn.execute("select count(*) from numbered where status = 'pending'").fetchone()[0]

    def claim(self, conn) -> Batch | None:
        ids = [r[0] for r in conn.execute("""select id from numbered where status = 'pending' order by id
                                             limit %s for update skip locked""", (self.per_request,))]
        if not ids:
            return None
        payload = {"from": {"email": "privacy@example.com"}, "subject": "s",
                   "content": [{"type": "text/plain", "value": "v"}],
                   "personalizations": [{"to": [{"email": f"user{i}@example.com"}]} for i in ids]}
        return Batch(keys=ids, payload=payload, evidence={"first": ids[0], "last": ids[-1]})

    def mark_sent(self, conn, batch, *, message_id, sent_at):
        conn.execute("update numbered set status = 'sent', message_id = %s where id = any(%s)", (message_id, batch.keys))

    def mark_failed(self, conn, batch, *, reason):
        conn.execute("update numbered set status = 'failed', error = %s where id = any(%s)", (reason, batch.keys))


def test_batches_respect_sendgrids_limit_and_a_refused_one_does_not_stop_the_rest(db, sendgrid):
    ledger = NumberedLedger(db, 2500)
    sendgrid.inject(status=400, count=1)
    report = deliver(db, ledger, mailer_for(sendgrid), ctx("batches"))
    assert (report.sent, report.failed, report.messages) == (1500, 1000, 3)
    sizes = [len(m["payload"]["personalizations"]) for m in sendgrid.accepted()]
    assert sizes == [1000, 500]
    for m in sendgrid.accepted():
        addresses = [p["to"][0]["email"] for p in m["payload"]["personalizations"]]
        assert len(addresses) == len(set(addresses))
    assert db.execute("select count(*) from numbered where status = 'failed' and error is not null").fetchone()[0] == 1000
    actions = Counter(r[0] for r in db.execute("select action from compliance.audit_log"))
    assert actions == {"test.numbered_sent": 2, "test.numbered_failed": 1}


def test_a_refused_api_key_stops_at_once_and_leaves_the_ledger_as_it_was(db, sendgrid):
    ledger = NumberedLedger(db, 10)
    wrong = SendGridMailer(api_key="SG.wrong", host=sendgrid.base_url, sleep=lambda s: None)
    with pytest.raises(SendGridAuthError):
        deliver(db, ledger, wrong, ctx("auth"))
    assert ledger.pending(db) == 10 and len(sendgrid.requests()) == 1


def test_rate_limiting_past_the_deadline_says_what_is_pending(db, sendgrid):
    ledger = NumberedLedger(db, 1500)
    fake = {"now": 1_000_000.0}

    def sleep(seconds):
        fake["now"] += seconds

    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=sleep, clock=lambda: fake["now"],
                            policy=RetryPolicy(rate_limit_deadline=120))
    sendgrid.inject(status=429, count=1000, limit=None)
    with pytest.raises(DeliveryDeferred) as err:
        deliver(db, ledger, mailer, ctx("limited"))
    assert "1500 test.numbered row(s) are still pending" in str(err.value)
    assert ledger.pending(db) == 1500
