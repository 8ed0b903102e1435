"""The outbox (``compliance.outbox``, include/delivery/outbox.py) on a real PostgreSQL: once per (kind, key), claims
two senders never share, and migration 0017, which moved the old ledgers' rows into it and left their names as
views with the same columns."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from devkit.database import connect
from tests.conftest import wait_answered
from include import alerts, compliance_store
from include.audit import RunContext
from include.children import summary
from include.config import Settings
from include.datamap import load_datamap
from include.deadlines import digest, escalation
from include.deadlines.tracking import deadline_policy
from include.delivery.engine import deliver
from include.delivery.outbox import Outbox
from include.delivery.sendgrid_mailer import SendGridMailer
from include.vendors import notices

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
TODAY = NOW.date()
OLD_LEDGERS = ("dsr_escalations", "dsr_digests", "child_purge_summaries", "vendor_violation_notices", "run_alerts")
BEFORE_OUTBOX = 16


@pytest.fixture
def store(store_db):
    with connect(store_db, autocommit=True) as conn:
        yield conn


def _keys(conn, entries):
    return {"keys": [e.key for e in entries]}, {"keys": [e.key for e in entries]}


def test_a_message_is_recorded_once_per_kind_and_key(store):
    day = Outbox("dsr.digest")
    assert day.record(store, "2026-11-25", recipient="team@example.com", facts={"counts": {"overdue": 2}}, at=NOW,
                      run_id="first")
    # A second run the same day records nothing, whatever it would have said.
    assert not day.record(store, "2026-11-25", recipient="other@example.com", facts={"counts": {}},
                          at=NOW + timedelta(hours=1), run_id="second")
    # The same key of another kind is another message.
    assert Outbox("child_purge.summary").record(store, "2026-11-25", recipient="team@example.com", facts={}, at=NOW,
                                                run_id="first")
    assert store.execute("""select kind, key, recipient, status, facts, claimed_at, claimed_run from compliance.outbox
                            order by kind""").fetchall() == [
        ("child_purge.summary", "2026-11-25", "team@example.com", "pending", {}, NOW, "first"),
        ("dsr.digest", "2026-11-25", "team@example.com", "pending", {"counts": {"overdue": 2}}, NOW, "first")]
    assert day.status(store, "2026-11-25") == ("pending", None) and day.status(store, "2026-11-26") is None

    many = Outbox("dsr.escalation")
    query = """select k::text || '/overdue', 'team@example.com', jsonb_build_object('request_id', k), %(at)s, %(run)s
               from generate_series(1, %(n)s) as k"""
    assert many.record_select(store, query, {"at": NOW, "run": "first", "n": 3}) == 3
    assert many.record_select(store, query, {"at": NOW, "run": "second", "n": 4}) == 1
    assert store.execute("select count(*), count(*) filter (where claimed_run = 'first') from compliance.outbox "
                         "where kind = 'dsr.escalation'").fetchone() == (4, 3)
    # A kind no email type declares is refused by the table (each kind has its view and its audit actions).
    with pytest.raises(psycopg.errors.CheckViolation):
        Outbox("dsr.escalations").record(store, "1", recipient="x@example.com", facts={}, at=NOW, run_id="r")


def test_two_senders_never_claim_one_row_and_a_dead_senders_rows_come_back(store_db, store):
    box = Outbox("run_alerts")
    for i in range(3):
        box.record(store, f"dag/run{i}/failed", recipient="oncall@example.com", facts={"i": i},
                   at=NOW + timedelta(minutes=i), run_id=f"run{i}")
    ledger = box.ledger(_keys)
    with connect(store_db) as first, connect(store_db) as second:
        held = ledger.claim(first)  # the first sender's transaction holds its row, mid-send
        assert held.keys == ["dag/run0/failed"] and held.payload == {"keys": held.keys}
        with second.transaction():
            other = ledger.claim(second)
            assert other.keys == ["dag/run1/failed"]  # the held row is skipped, not waited for
            assert ledger.pending(second) == 3  # held rows are still pending
            ledger.mark_sent(second, other, message_id="m-1", sent_at=NOW)
        first.rollback()  # the first sender dies before marking: its row is free again
        with second.transaction():
            again = ledger.claim(second)
            assert again.keys == ["dag/run0/failed"]
            ledger.mark_failed(second, again, reason="HTTP 400: refused")
        assert ledger.pending(second) == 1
    assert store.execute("select key, status, message_id, sent_at, error from compliance.outbox order by key"
                         ).fetchall() == [("dag/run0/failed", "failed", None, None, "HTTP 400: refused"),
                                          ("dag/run1/failed", "sent", "m-1", NOW, None),
                                          ("dag/run2/failed", "pending", None, None, None)]
    # Marks touch only pending rows: a sent row is never marked failed after the fact.
    ledger.mark_failed(store, other, reason="late")
    assert box.status(store, "dag/run1/failed") == ("sent", None)


def test_a_message_per_recipient_and_two_senders_take_different_recipients(store_db, store):
    box = Outbox("dsr.escalation")
    for n, recipient in enumerate(["Staff@Example.com", "team@example.com", "staff@example.com"]):
        box.record(store, f"{n}/overdue", recipient=recipient, facts={"request_id": n},
                   at=NOW + timedelta(minutes=n), run_id="r")
    ledger = box.ledger(_keys, per_message=10, by_recipient=True)
    with connect(store_db) as first, connect(store_db) as second:
        mine = ledger.claim(first)
        assert mine.keys == ["0/overdue", "2/overdue"]  # one address, however it is capitalised
        theirs = ledger.claim(second)
        assert theirs.keys == ["1/overdue"]
        assert ledger.claim(store) is None and ledger.pending(store) == 3  # a third sender finds every row held
        second.rollback()
        first.rollback()
        second.rollback()
    one_each = box.ledger(_keys, per_message=1, by_recipient=True, scope="(o.facts ->> 'request_id')::int > 0")
    assert one_each.claim(store).keys == ["1/overdue"] and one_each.pending(store) == 2


def _columns(conn, table: str) -> list[tuple]:
    return conn.execute("""select column_name, data_type from information_schema.columns
                           where table_schema = 'compliance' and table_name = %s order by ordinal_position""",
                        (table,)).fetchall()


def test_the_old_ledgers_are_views_with_the_same_columns(fresh_db):
    with connect(fresh_db, autocommit=True) as conn:
        compliance_store.migrate(conn, upto=BEFORE_OUTBOX)
        before = {t: _columns(conn, t) for t in OLD_LEDGERS}
        assert compliance_store.migrate(conn) == [m.version for m in compliance_store.available_migrations()
                                                  if m.version > BEFORE_OUTBOX]
        after = {t: _columns(conn, t) for t in OLD_LEDGERS}
        kinds = dict(conn.execute("select table_name, table_type from information_schema.tables "
                                  "where table_schema = 'compliance' and table_name = any(%s)", (list(OLD_LEDGERS),)))
    assert all(before.values()) and after == before
    assert kinds == {t: "VIEW" for t in OLD_LEDGERS}
    assert before["run_alerts"] == [
        ("dag_id", "text"), ("run_id", "text"), ("task_id", "text"), ("reason", "text"), ("recipient", "text"),
        ("status", "text"), ("failed_at", "timestamp with time zone"), ("sent_at", "timestamp with time zone"),
        ("message_id", "text"), ("error", "text"), ("kind", "text")]


_OLD_ROWS = {
    "dsr_escalations": """insert into compliance.dsr_escalations values
        (9, 'overdue', 'staff@example.com', false, 'sent', '2026-11-02', -23, %(t)s, 'r1', %(t)s, 'msg-1', null),
        (9, 'due_soon', 'staff@example.com', false, 'failed', '2026-11-02', 3, %(t)s, 'r0', null, null, 'refused'),
        (10, 'ack_overdue', 'team@example.com', true, 'pending', null, null, %(t)s, 'r1', null, null, null)""",
    "dsr_digests": """insert into compliance.dsr_digests values
        ('2026-11-25', 'team@example.com', 'sent', '{"overdue": 2, "due_soon": 1}', %(t)s, 'r1', %(t)s, 'msg-2',
         null)""",
    "child_purge_summaries": """insert into compliance.child_purge_summaries values
        ('scheduled__2026-11-25', 'team@example.com', 'pending', '{"as_of": "2026-11-25", "outcomes": {"purged": 3}}',
         %(t)s, null, null, null)""",
    "vendor_violation_notices": """insert into compliance.vendor_violation_notices values
        (7, '2026-11-24', 'team@example.com', 'failed', %(t)s, 'r2', null, null, 'refused'),
        (7, 'undated', 'team@example.com', 'sent', %(t)s, 'r2', %(t)s, 'msg-3', null)""",
    "run_alerts": """insert into compliance.run_alerts
        (dag_id, run_id, task_id, reason, recipient, status, failed_at, sent_at, message_id, error, kind) values
        ('dsr_deadline_tracking', 'scheduled__1', 'evaluate_requests', 'lost the database', 'oncall@example.com',
         'sent', %(t)s, %(t)s, 'msg-4', null, 'failed'),
        ('dsr_deadline_tracking', 'scheduled__1', null, 'not finished by its deadline', 'oncall@example.com',
         'pending', %(t)s, null, null, null, 'late')""",
}


def _rows(conn, table: str) -> list[tuple]:
    width = len(_columns(conn, table))
    order = ", ".join(str(i) for i in range(1, width + 1))
    return conn.execute(f"select * from compliance.{table} order by {order}").fetchall()


def test_the_old_ledgers_rows_move_to_the_outbox_under_the_keys_the_code_records(fresh_db, reference_db, sendgrid):
    settings = Settings()
    with connect(fresh_db, autocommit=True) as conn:
        compliance_store.migrate(conn, upto=BEFORE_OUTBOX)
        for table, insert in _OLD_ROWS.items():
            conn.execute(insert, {"t": NOW - timedelta(days=1)})
        before = {t: _rows(conn, t) for t in OLD_LEDGERS}
        compliance_store.migrate(conn)
        assert {t: _rows(conn, t) for t in OLD_LEDGERS} == before
        assert conn.execute("select kind, count(*) from compliance.outbox group by 1 order by 1").fetchall() == [
            ("child_purge.summary", 1), ("dsr.digest", 1), ("dsr.escalation", 3), ("run_alerts", 2),
            ("vendor_manifest.violation_notice", 2)]

        # Each email type finds its moved rows under the keys it records: nothing is recorded, nor sent, twice.
        conn.execute("""insert into compliance.dsr_status (request_id, regime, request_type, state, days_left,
                                                          ack_due, effective_due, as_of, evaluated_at, run_id)
                        values (9, 'gdpr', 'access', 'overdue', -23, null, '2026-11-02', %(d)s, %(t)s, 'e'),
                               (10, 'ccpa', 'know', 'ack_overdue', -1, '2026-11-24', '2026-12-20', %(d)s, %(t)s, 'e')
                     """, {"d": TODAY, "t": NOW})
        assert escalation.record(conn, as_of=TODAY, team_email="team@example.com", run_id="after", now=NOW) == 0
        assert digest.status(conn, TODAY) == ("sent", None)
        assert summary.status(conn, "scheduled__2026-11-25") == ("pending", None)
        assert not notices.record(conn, notices.Notice(7, "undated"), recipient="team@example.com",
                                  run_id="after", now=NOW)
        for kind, task in (("failed", "evaluate_requests"), ("late", None)):
            assert not alerts.record(conn, alerts.Failure("dsr_deadline_tracking", "scheduled__1", task, "again",
                                                          NOW, kind=kind), "oncall@example.com")

        # A moved pending escalation goes out with the outbox's ledger, under the ledger's old audit action.
        ctx = RunContext(run_id="after", actor="test", dag_id="test", now=lambda: NOW)
        mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
        # Checked when it is sent against its request, still not acknowledged in the operational database.
        with connect(reference_db, autocommit=True) as ops:
            ops.execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type, received_at,
                                                         status, assignee_email)
                           values (10, 10, 'someone@example.org', 'ccpa', 'know', '2026-11-02 10:00+00', 'in_progress',
                                   null)""")
            live = escalation.LiveRequests(ops, load_datamap(), TODAY, deadline_policy(settings, TODAY))
            ledger = escalation.ledger(settings, "after", live)
            report = deliver(conn, ledger, mailer, ctx)
        assert (report.sent, report.messages) == (1, 1)
        (message,) = [m["payload"] for m in sendgrid.accepted()]
        assert message["personalizations"][0]["custom_args"] == {
            "kind": "dsr_escalation", "key": "10/ack_overdue", "escalations": "1", "request_id": "10",
            "level": "ack_overdue"}
        assert "CCPA know" in message["subject"]
        assert conn.execute("select status from compliance.dsr_escalations where request_id = 10").fetchone() == (
            "sent",)
        assert conn.execute("select action, details ->> 'rows' from compliance.audit_log").fetchall() == [
            ("dsr.escalation_sent", "1")]


def test_a_message_answered_after_the_timeout_is_recorded_at_risk(store, sendgrid):
    """Found by a fault trial: SendGrid took a request and answered after the client's timeout, the retry was taken
    too, and nothing said the message went out twice. The row counts the requests that got no answer, and the audit
    log says so, whether another attempt was then accepted or the message was left for a retry."""
    from include.delivery.sendgrid_mailer import RetryPolicy, SendGridUnavailable

    run = RunContext(run_id="r", actor="test", dag_id="dsr_deadline_tracking", now=lambda: NOW)
    policy = RetryPolicy(timeout=0.3, max_attempts=2)
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None, policy=policy)
    for day in (TODAY, TODAY + timedelta(days=1)):
        digest.record(store, digest_date=day, recipient="team@example.com", counts={"overdue": 1}, run_id="r", now=NOW)

    sendgrid.inject(answer_delay_seconds=1.0, count=1)
    report = deliver(store, digest.ledger(Settings(), "r", TODAY, {"overdue": 1}), mailer, run)
    assert report.sent == 1 and len(sendgrid.accepted()) == 2
    sendgrid.inject(answer_delay_seconds=1.0, count=2)  # every attempt unanswered: left pending for the retry
    with pytest.raises(SendGridUnavailable):
        deliver(store, digest.ledger(Settings(), "r", TODAY + timedelta(days=1), {"overdue": 1}), mailer, run)

    assert store.execute("""select key, status, facts ->> 'unanswered_requests' from compliance.outbox
                            where kind = 'dsr.digest' order by key""").fetchall() == [
        (TODAY.isoformat(), "sent", "1"), ((TODAY + timedelta(days=1)).isoformat(), "pending", "2")]
    risks = store.execute("""select details ->> 'unanswered_requests', details ->> 'accepted_after' from compliance.audit_log
                             where action = 'dsr.digest_at_risk' order by id""").fetchall()
    assert risks == [("1", "true"), ("2", "false")]
    wait_answered(sendgrid)
