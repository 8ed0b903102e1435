"""On-call is told once per failed run (issue 30, point 4): the failure callback every task has, against a real
PostgreSQL and the SendGrid stand-in through the real SDK."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from devkit.database import connect
from devkit.local_airflow import postgres_connection
from include import alerts, compliance_store
from include.seam.alerts import task_failed
from tests.conftest import SENDGRID_TEST_KEY


def test_a_reason_keeps_its_words_and_loses_addresses_numbers_and_ips():
    reason = ("duplicate key value violates unique constraint: Key (email)=(kid@example.com) from 10.1.2.3 "
              "or 2001:db8::1, phone +44 20 7946 0958;\nsecond line")
    scrubbed = alerts.scrub(reason)
    assert "kid@example.com" not in scrubbed and "10.1.2.3" not in scrubbed and "2001:db8" not in scrubbed
    assert "7946" not in scrubbed and "\n" not in scrubbed
    assert scrubbed.startswith("duplicate key value violates unique constraint") and "second line" in scrubbed
    assert alerts.scrub("") == "no reason was given" and len(alerts.scrub("x" * 2000)) == alerts.MAX_REASON


@pytest.fixture
def airflow_env(fresh_db, sendgrid, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(fresh_db))
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", postgres_connection(fresh_db))
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps({
        "conn_type": "generic", "password": SENDGRID_TEST_KEY, "extra": {"host": sendgrid.base_url}}))
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"alert_email": "oncall@example.org"}))
    with connect(fresh_db, autocommit=True) as store:
        compliance_store.migrate(store)
        yield store


def context(dag_id: str, run_id: str, task_id: str, exc: BaseException | None) -> dict:
    return {"ti": SimpleNamespace(dag_id=dag_id, task_id=task_id), "run_id": run_id, "exception": exc}


def test_a_failed_run_tells_on_call_once_whatever_else_fails_in_it(airflow_env, sendgrid):
    store = airflow_env
    task_failed(context("dsr_deadline_tracking", "scheduled__1", "evaluate_requests",
                        RuntimeError("lost the database of connection 'ops_db' mid-task: kid@example.com")))
    task_failed(context("dsr_deadline_tracking", "scheduled__1", "send_daily_digest", RuntimeError("again")))
    task_failed(context("child_data_purge", "scheduled__1", "plan_purge", ValueError("a set-up fault")))
    accepted = sendgrid.accepted()
    assert len(accepted) == 2  # one per failed run: the second task of the first run adds nothing
    first = accepted[0]["payload"]
    assert first["personalizations"][0]["to"] == [{"email": "oncall@example.org"}]
    assert first["personalizations"][0]["custom_args"] == {
        "kind": "run_alert", "key": "dsr_deadline_tracking/scheduled__1", "dag_id": "dsr_deadline_tracking",
        "task_id": "evaluate_requests"}
    text = first["content"][0]["value"]
    assert "evaluate_requests" in text and "scheduled__1" in text and "lost the database" in text
    assert "kid@example.com" not in json.dumps(first)
    assert store.execute("select count(*), count(*) filter (where status = 'sent') from compliance.run_alerts"
                         ).fetchone() == (2, 2)
    assert store.execute("select count(*) from compliance.audit_log where action like 'run_alerts%'").fetchone()[0] >= 2
    # A retry of the callback (the task cleared and failing again) sends nothing more.
    task_failed(context("dsr_deadline_tracking", "scheduled__1", "evaluate_requests", RuntimeError("once more")))
    assert len(sendgrid.accepted()) == 2


def test_alerts_off_send_nothing_and_a_callback_never_raises(airflow_env, sendgrid, monkeypatch):
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"alerts": False}))
    task_failed(context("dsr_deadline_tracking", "scheduled__2", "evaluate_requests", RuntimeError("x")))
    assert sendgrid.accepted() == []
    monkeypatch.setenv("PRIVACY_SETTINGS", "{}")
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", postgres_connection("postgresql://postgres@127.0.0.1:1/nowhere"))
    task_failed(context("dsr_deadline_tracking", "scheduled__3", "evaluate_requests", RuntimeError("x")))  # no raise
    assert sendgrid.accepted() == []
