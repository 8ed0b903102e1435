"""On-call is told once per failed run (issue 30, point 4): the failure callback every task has, against a real
PostgreSQL and the SendGrid stand-in through the real SDK."""
from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import pytest
# Imported here, not first inside a test: Airflow configures logging at its first import, which replaces the root
# handlers and with them the one caplog installed for that test (its caplog.text then stays empty when run alone).
from airflow.sdk import exceptions as _airflow_exceptions  # noqa: F401

from devkit.database import connect
from devkit.local_airflow import postgres_connection
from include import alerts, errors
from include.seam.alerts import task_failed
from tests.conftest import SENDGRID_TEST_KEY


def test_a_reason_keeps_its_words_and_loses_addresses_numbers_and_ips():
    reason = ("duplicate key value violates unique constraint: Key (email)=(kid@example.com) from 10.1.2.3 "
              "or 2001:db8::1, phone +44 20 7946 0958;\nsecond line")
    scrubbed = alerts.scrub(reason)
    assert "kid@example.com" not in scrubbed and "10.1.2.3" not in scrubbed and "2001:db8" not in scrubbed
    assert "7946" not in scrubbed and "\n" not in scrubbed
    assert scrubbed.startswith("duplicate key value violates unique constraint") and "second line" in scrubbed
    assert alerts.scrub("") == "no reason was given" and len(alerts.scrub("x" * 2000)) == errors.MAX_REASON


@pytest.fixture
def airflow_env(store_db, sendgrid, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(store_db))
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", postgres_connection(store_db))
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps({
        "conn_type": "generic", "password": SENDGRID_TEST_KEY, "extra": {"host": sendgrid.base_url}}))
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"alert_email": "oncall@example.org"}))
    with connect(store_db, autocommit=True) as store:
        yield store


def context(dag_id: str, run_id: str, task_id: str, exc: BaseException | None, try_number: int = 1) -> dict:
    return {"ti": SimpleNamespace(dag_id=dag_id, task_id=task_id, try_number=try_number), "run_id": run_id,
            "exception": exc}


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


def test_a_pending_alert_of_a_run_that_has_since_succeeded_is_withdrawn_not_sent(airflow_env, sendgrid, monkeypatch):
    """Found by an on-call trial: SendGrid could not be reached when a run failed, so its alert stayed pending (it goes
    out with the next alert); on-call cleared the run, which succeeded, and the next run to fail sent both, the first
    a false alarm. Before sending, an alert whose run Airflow now says succeeded is withdrawn with its reason."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    store = airflow_env
    sendgrid_conn = os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"]
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_DEFAULT")  # SendGrid cannot be reached: the alert stays pending
    task_failed(context("dsr_deadline_tracking", "scheduled__cleared", "evaluate_requests", RuntimeError("lost")))
    assert sendgrid.accepted() == []
    assert store.execute("select status from compliance.run_alerts").fetchall() == [("pending",)]
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", sendgrid_conn)
    # What Airflow's Execution API answers a task asking for a run's state: the cleared run succeeded since.
    states = {("dsr_deadline_tracking", "scheduled__cleared"): "success"}
    monkeypatch.setattr(RuntimeTaskInstance, "get_dagrun_state",
                        staticmethod(lambda dag_id, run_id: states.get((dag_id, run_id), "running")))
    task_failed(context("child_data_purge", "scheduled__1", "plan_purge", ValueError("a set-up fault")))
    (message,) = [a["payload"] for a in sendgrid.accepted()]
    assert message["personalizations"][0]["custom_args"]["dag_id"] == "child_data_purge"
    assert store.execute("select run_id, status, error from compliance.run_alerts order by run_id").fetchall() == [
        ("scheduled__1", "sent", None),
        ("scheduled__cleared", "withdrawn",
         "its run has succeeded since the alert was recorded (cleared and run again): not sent")]
    assert store.execute("select count(*) from compliance.audit_log where action = 'run_alerts_withdrawn'"
                         ).fetchone()[0] == 1


def test_a_pending_alert_goes_out_when_its_own_run_fails_again(airflow_env, sendgrid, monkeypatch):
    """Found by a fault trial: a run's failure alert left pending by a SendGrid outage waited for the next alert of
    another run: the same run failing again (a second task, or the task cleared and failing again, SendGrid back)
    found its alert recorded already and returned without sending anything, so on-call heard nothing of a daily DAG
    failing until another run failed, maybe a day later. A later failure of the run sends what is pending, once."""
    store = airflow_env
    sendgrid_conn = os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"]
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_DEFAULT")  # SendGrid cannot be reached: the alert stays pending
    task_failed(context("child_data_purge", "scheduled__daily", "plan_purge", RuntimeError("lost the store")))
    assert store.execute("select status from compliance.run_alerts").fetchall() == [("pending",)]
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", sendgrid_conn)
    task_failed(context("child_data_purge", "scheduled__daily", "plan_purge", RuntimeError("lost it again"),
                        try_number=2))
    (message,) = [a["payload"] for a in sendgrid.accepted()]
    assert message["personalizations"][0]["custom_args"]["key"] == "child_data_purge/scheduled__daily"
    assert message["personalizations"][0]["custom_args"]["task_id"] == "plan_purge"
    assert store.execute("select status from compliance.run_alerts").fetchall() == [("sent",)]
    task_failed(context("child_data_purge", "scheduled__daily", "notify_compliance", RuntimeError("and again")))
    assert len(sendgrid.accepted()) == 1  # once per run all the same


def test_a_pending_late_alert_is_sent_though_its_run_succeeded_since(airflow_env, sendgrid, monkeypatch):
    """Found by a review of the withdrawal: a late alert says a run missed its deadline, and a run that finished after
    it is late all the same (its alert says when it finished). One pending through a SendGrid outage was withdrawn
    as "cleared and run again" once the run succeeded: on-call never heard the deadline was missed. Only a failure
    alert is moot once its run succeeded."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from include.seam.alerts import run_late

    store = airflow_env
    sendgrid_conn = os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"]
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_DEFAULT")  # SendGrid cannot be reached: the late alert stays pending
    run_late(context=deadline_context("dsr_deadline_tracking", "scheduled__slow"))
    assert store.execute("select kind, status from compliance.run_alerts").fetchall() == [("late", "pending")]
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", sendgrid_conn)
    # The slow run went on and succeeded, after its deadline; then another run fails.
    states = {("dsr_deadline_tracking", "scheduled__slow"): "success"}
    monkeypatch.setattr(RuntimeTaskInstance, "get_dagrun_state",
                        staticmethod(lambda dag_id, run_id: states.get((dag_id, run_id), "running")))
    task_failed(context("child_data_purge", "scheduled__1", "plan_purge", ValueError("a set-up fault")))
    assert sorted(a["payload"]["subject"] for a in sendgrid.accepted()) == [
        "Airflow: a run of child_data_purge failed in plan_purge",
        "Airflow: a run of dsr_deadline_tracking has not finished by its deadline"]
    assert store.execute("select kind, status from compliance.run_alerts order by kind").fetchall() == [
        ("failed", "sent"), ("late", "sent")]


def test_a_deadline_callback_with_a_pending_failure_alert_does_not_wait_for_an_answer_that_never_comes(
        airflow_env, sendgrid, monkeypatch, tmp_path):
    """Found by a review of the withdrawal: the deadline callback asked Airflow for the state of each pending alert's
    run too. In the callback's own subprocess the supervisor cannot decode a run-state request (it answers only
    connections and variables), logs it and sends no answer: the callback waited for good (no timeout by default),
    holding the claimed alert's row, and the late alert was never sent. Outside a task the state is not asked."""
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.callback_supervisor import supervise_callback

    from include.seam.alerts import run_late

    store = airflow_env
    sendgrid_conn = os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"]
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_DEFAULT")  # SendGrid cannot be reached: a failure alert stays pending
    task_failed(context("child_data_purge", "scheduled__0", "plan_purge", ValueError("a set-up fault")))
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", sendgrid_conn)
    # The executor's supervised subprocess, as Airflow runs a deadline callback; killed after 20 s if it hangs.
    monkeypatch.setenv("AIRFLOW__CALLBACKS__CALLBACK_EXECUTION_TIMEOUT", "20")
    exit_code = None
    try:
        exit_code = supervise_callback(
            id="01900000-0000-7000-8000-000000000000", callback_path=f"{run_late.__module__}.{run_late.__name__}",
            callback_kwargs={"context": deadline_context("dsr_deadline_tracking", "scheduled__late")},
            dag_rel_path="dsr_deadline_tracking.py", client=Client(base_url=None, dry_run=True, token=""))
    except RuntimeError:  # the subprocess was killed for hanging
        pass
    assert exit_code == 0
    assert store.execute("select kind, status from compliance.run_alerts order by kind").fetchall() == [
        ("failed", "sent"), ("late", "sent")]


def test_a_failure_alert_of_a_run_cleared_and_run_again_is_not_sent_by_the_next_deadline_callback(
        airflow_env, sendgrid, monkeypatch):
    """Found by a review of the withdrawal: only a failing task asks Airflow for run states; a deadline callback cannot
    (it would wait for good), so it sent every pending failure alert as it stood. One pending through a SendGrid
    outage, its run then cleared by on-call and run again to success, went out with the next late alert: a false
    alarm for a run already mended. The failed task's success on its new try, with no task of the run failed (asked
    of Airflow from that task), withdraws the alert there; the run failing again records it again, and it is sent."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from include.seam.alerts import run_late
    from include.seam.dag import DEFAULT_ARGS

    store = airflow_env
    sendgrid_conn = os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"]
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_DEFAULT")  # SendGrid cannot be reached: the failure alert stays pending
    task_failed(context("child_data_purge", "scheduled__cleared", "plan_purge", ValueError("a set-up fault")))
    assert store.execute("select kind, status from compliance.run_alerts").fetchall() == [("failed", "pending")]
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", sendgrid_conn)
    # On-call mends the fault and clears the run: plan_purge runs again (its second try) and succeeds. What Airflow's
    # Execution API answers that task: no task of the run is failed or upstream_failed.
    asked = []
    monkeypatch.setattr(RuntimeTaskInstance, "get_ti_count",
                        staticmethod(lambda dag_id, **kw: asked.append((dag_id, kw)) or 0))
    succeeded = DEFAULT_ARGS["on_success_callback"]  # every task's, as Airflow calls it
    succeeded(context("child_data_purge", "scheduled__other", "plan_purge", None, try_number=2))  # another run's
    succeeded(context("child_data_purge", "scheduled__cleared", "detect_children", None, try_number=2))  # not the one
    assert store.execute("select status from compliance.run_alerts").fetchall() == [("pending",)]
    succeeded(context("child_data_purge", "scheduled__cleared", "plan_purge", None, try_number=2))
    assert asked == [("child_data_purge", {"run_ids": ["scheduled__cleared"], "states": ["failed", "upstream_failed"]})]
    # Then another run's deadline passes: the callback cannot ask Airflow, and need not.
    run_late(context=deadline_context("dsr_deadline_tracking", "scheduled__late"))
    assert [a["payload"]["subject"] for a in sendgrid.accepted()] == [
        "Airflow: a run of dsr_deadline_tracking has not finished by its deadline"]
    assert store.execute("select kind, run_id, status, error from compliance.run_alerts order by kind").fetchall() == [
        ("failed", "scheduled__cleared", "withdrawn",
         "its failed task ran again and succeeded (the run cleared), and no task of the run has failed since: not "
         "sent; recorded again if the run fails again"),
        ("late", "scheduled__late", "sent", None)]
    assert store.execute("select count(*) from compliance.audit_log where action = 'run_alerts_withdrawn'"
                         ).fetchone()[0] == 1
    # A later task of the cleared run fails: the run's alert is pending again, for that task, and sent.
    task_failed(context("child_data_purge", "scheduled__cleared", "purge_subjects", RuntimeError("lost")))
    assert [a["payload"]["subject"] for a in sendgrid.accepted()][-1] == \
        "Airflow: a run of child_data_purge failed in purge_subjects"
    assert store.execute("select task_id, status from compliance.run_alerts where kind = 'failed'").fetchall() == [
        ("purge_subjects", "sent")]


def test_a_failure_alert_stays_due_while_a_task_of_its_run_is_still_failed(airflow_env, sendgrid, monkeypatch):
    """The failed task succeeding on a later try does not withdraw the run's failure alert while Airflow says a task
    of the run is still failed (another map index of it, or a downstream task left upstream_failed by a partial
    clear), nor when Airflow cannot be asked (outside a task), nor on a first try; a callback never raises."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from include.seam.dag import DEFAULT_ARGS

    store = airflow_env
    sendgrid_conn = os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"]
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_DEFAULT")
    task_failed(context("child_data_purge", "scheduled__partial", "plan_purge", ValueError("a set-up fault")))
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", sendgrid_conn)
    succeeded = DEFAULT_ARGS["on_success_callback"]
    succeeded(context("child_data_purge", "scheduled__partial", "plan_purge", None, try_number=2))  # cannot ask
    monkeypatch.setattr(RuntimeTaskInstance, "get_ti_count", staticmethod(lambda dag_id, **kw: 1))
    succeeded(context("child_data_purge", "scheduled__partial", "plan_purge", None, try_number=2))
    monkeypatch.setattr(RuntimeTaskInstance, "get_ti_count", staticmethod(lambda dag_id, **kw: 0))
    succeeded(context("child_data_purge", "scheduled__partial", "plan_purge", None, try_number=1))
    assert store.execute("select status from compliance.run_alerts").fetchall() == [("pending",)]
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", postgres_connection("postgresql://postgres@127.0.0.1:1/nowhere"))
    succeeded(context("child_data_purge", "scheduled__partial", "plan_purge", None, try_number=3))  # no raise


def test_a_refused_trigger_conf_is_no_incident(airflow_env, sendgrid):
    """SPEC 4: an undeclared conf key stops the run before anything happens, an email included."""
    task_failed(context("dsr_deadline_tracking", "manual__typo", "check_run_conf",
                        RuntimeError("trigger conf key 'dryrun' is not a parameter of dsr_deadline_tracking")))
    assert sendgrid.accepted() == []
    assert airflow_env.execute("select count(*) from compliance.run_alerts").fetchone()[0] == 0


def test_alerts_off_send_nothing_and_a_callback_never_raises(airflow_env, sendgrid, monkeypatch):
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"alerts": False}))
    task_failed(context("dsr_deadline_tracking", "scheduled__2", "evaluate_requests", RuntimeError("x")))
    assert sendgrid.accepted() == []
    monkeypatch.setenv("PRIVACY_SETTINGS", "{}")
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_DEFAULT")  # the alert cannot be sent at all
    task_failed(context("dsr_deadline_tracking", "scheduled__3", "evaluate_requests", RuntimeError("x")))  # no raise
    assert sendgrid.accepted() == []


def test_a_compliance_store_that_cannot_be_used_does_not_silence_the_alert(airflow_env, sendgrid, monkeypatch, caplog):
    """Found by a fault trial: when the compliance store was the fault, the alert (recorded there first) was never
    sent, and on-call heard nothing. It goes straight to SendGrid, without its record, saying so in the log."""
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", postgres_connection("postgresql://postgres@127.0.0.1:1/nowhere"))
    with caplog.at_level(logging.WARNING, logger="include.seam"):
        task_failed(context("dsr_deadline_tracking", "scheduled__3", "prepare_store",
                            RuntimeError("the database of connection 'compliance_db' did not answer: kid@example.com")))
    (message,) = sendgrid.accepted()
    assert message["payload"]["personalizations"][0]["to"] == [{"email": "oncall@example.org"}]
    assert "prepare_store" in message["payload"]["subject"] and "kid@example.com" not in json.dumps(message)
    assert "failed alert sent to on-call without its record (the compliance store could not be used: the " \
           "database of connection 'compliance_db' did not answer" in caplog.text
    assert airflow_env.execute("select count(*) from compliance.run_alerts").fetchone()[0] == 0


def test_a_wrong_setting_fails_the_run_and_still_tells_on_call(airflow_env, sendgrid, monkeypatch):
    """Found by a fault trial: a setting of the wrong type (due_soon_days: -1) failed every run at once, and the
    alert, which read the same settings, was never sent. The alert reads the settings it needs alone."""
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"due_soon_days": -1, "alert_email": "oncall@example.org",
                                                       "timezone": "Mars/Olympus"}))
    task_failed(context("dsr_deadline_tracking", "scheduled__4", "evaluate_requests",
                        RuntimeError("due_soon_days must be a non-negative integer (at most 366), not -1")))
    (message,) = sendgrid.accepted()
    assert message["payload"]["personalizations"][0]["to"] == [{"email": "oncall@example.org"}]
    assert "due_soon_days" in message["payload"]["content"][0]["value"]
    assert airflow_env.execute("select status from compliance.run_alerts").fetchall() == [("sent",)]


def deadline_context(dag_id: str, run_id: str, state: str = "running") -> dict:
    """What Airflow's scheduler hands a deadline callback (airflow.models.deadline.Deadline.handle_miss)."""
    return {"dag_run": {"dag_id": dag_id, "dag_run_id": run_id, "state": state,
                        "queued_at": "2026-12-06T09:00:00.123456Z", "conf": {"request_ids": [7]}},
            "deadline": {"id": "0190-uuid", "deadline_time": "2026-12-06T09:45:00+00:00"}}


def test_a_run_not_finished_by_its_deadline_tells_on_call_once_through_airflows_callback_runner(airflow_env, sendgrid):
    """Issue 30, point 4: the hourly deadline tracking silent (a run stuck, queued or timed out) emails on-call
    once per run, with the DAG, run and one sentence, and the run's failure is still its own incident."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    from include.seam.alerts import run_late

    path = f"{run_late.__module__}.{run_late.__name__}"  # as Airflow's SyncCallback stores it
    log = structlog.get_logger()
    ctx = deadline_context("dsr_deadline_tracking", "scheduled__2026-12-06T09:00:00+00:00")
    assert execute_callback(path, {"context": ctx}, "dsr_deadline_tracking.py", None, log) == (True, None)
    assert execute_callback(path, {"context": ctx}, "dsr_deadline_tracking.py", None, log) == (True, None)
    (message,) = [a["payload"] for a in sendgrid.accepted()]
    assert message["subject"] == "Airflow: a run of dsr_deadline_tracking has not finished by its deadline"
    assert message["personalizations"][0]["custom_args"] == {
        "kind": "run_alert", "key": "dsr_deadline_tracking/scheduled__2026-12-06T09:00:00+00:00/late",
        "dag_id": "dsr_deadline_tracking", "alert": "late"}
    text = message["content"][0]["value"]
    assert "scheduled__2026-12-06T09:00:00+00:00" in text and "queued at 09:00 UTC on 6 Dec 2026" in text
    assert "at its deadline, 09:45 UTC on 6 Dec 2026" in text and "still running" in text and "task:" not in text
    assert "request_ids" not in json.dumps(message)  # nothing of the run's conf
    # The same run failing afterwards is another incident: one more email, and only one.
    task_failed(context("dsr_deadline_tracking", "scheduled__2026-12-06T09:00:00+00:00", "evaluate_requests",
                        RuntimeError("the operational database was lost mid-query")))
    task_failed(context("dsr_deadline_tracking", "scheduled__2026-12-06T09:00:00+00:00", "evaluate_requests",
                        RuntimeError("again")))
    assert len(sendgrid.accepted()) == 2
    assert airflow_env.execute("select kind, task_id, status from compliance.run_alerts order by kind").fetchall() == [
        ("failed", "evaluate_requests", "sent"), ("late", None, "sent")]


def test_a_run_that_failed_before_its_deadline_is_not_reported_late_too(airflow_env, sendgrid):
    """Found by a fault trial: Airflow 3.3 prunes a run's deadline only when the run succeeds
    (``DagRun.update_state``), so a run that failed (or was marked failed by hand) before its deadline still met it,
    and the scheduler called the deadline callback with the run ``failed``: on-call got a second email, "still failed
    at its deadline ... its work waits until it finishes", for a run that had finished and been reported. A run that
    ended by its deadline is not late; one that ended after it is, and says when it ended."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    from include.seam.alerts import run_late

    path = f"{run_late.__module__}.{run_late.__name__}"
    run_id = "scheduled__2026-12-06T10:00:00+00:00"
    task_failed(context("dsr_deadline_tracking", run_id, "evaluate_requests", RuntimeError("a set-up fault")))
    ended = deadline_context("dsr_deadline_tracking", run_id, state="failed")
    ended["dag_run"]["end_date"] = "2026-12-06T09:05:00.5Z"  # 40 minutes before its deadline
    assert execute_callback(path, {"context": ended}, "dsr_deadline_tracking.py", None, structlog.get_logger()
                            ) == (True, None)
    assert [a["payload"]["subject"] for a in sendgrid.accepted()] == [
        "Airflow: a run of dsr_deadline_tracking failed in evaluate_requests"]
    assert airflow_env.execute("select kind from compliance.run_alerts where run_id = %s", (run_id,)).fetchall() == [
        ("failed",)]
    # Ended after its deadline: it was late, and the sentence says it finished then, not that it was still running.
    late = deadline_context("dsr_deadline_tracking", "manual__slow", state="success")
    late["dag_run"]["end_date"] = "2026-12-06T09:50:00Z"
    run_late(context=late)
    text = sendgrid.accepted()[-1]["payload"]["content"][0]["value"]
    assert "finished (success) only at 09:50 UTC on 6 Dec 2026, after its deadline, 09:45 UTC on 6 Dec 2026" in text


def test_a_deadline_callback_never_raises(airflow_env, sendgrid, monkeypatch):
    from include.seam.alerts import run_late

    run_late(context=None)  # nothing to say which run: logged, not raised
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"alerts": False}))
    run_late(context=deadline_context("child_data_purge", "scheduled__x"))
    assert sendgrid.accepted() == []


def test_the_deadline_can_be_set_apart_from_the_timeout(monkeypatch):
    """PRIVACY_LATE_AFTER_MINUTES: how long after queueing a run is late (default: the DAG's dagrun_timeout)."""
    from datetime import timedelta

    from include.seam.dag import late_after

    monkeypatch.delenv("PRIVACY_LATE_AFTER_MINUTES", raising=False)
    assert late_after() is None
    monkeypatch.setenv("PRIVACY_LATE_AFTER_MINUTES", "180")
    assert late_after() == timedelta(hours=3)
    for bad in ("0", "-5", "soon", "nan", "20000"):
        monkeypatch.setenv("PRIVACY_LATE_AFTER_MINUTES", bad)
        with pytest.raises(ValueError, match="PRIVACY_LATE_AFTER_MINUTES must be a number of minutes above 0"):
            late_after()


def test_a_deadline_callback_refused_the_settings_variable_reads_them_from_the_environment(airflow_env, sendgrid,
                                                                                           monkeypatch):
    """Found under the Celery stack: Airflow 3.3's Execution API refuses an executor callback the Variable
    ("Access denied for variable 'privacy_settings' by Execution API"); the alert was logged as not sent."""
    from airflow.sdk import Variable

    from include.seam.alerts import run_late

    def refused(*args, **kwargs):
        raise RuntimeError("Access denied for variable 'privacy_settings' by Execution API")

    monkeypatch.setattr(Variable, "get", refused)
    run_late(context=deadline_context("child_data_purge", "scheduled__late"))
    (message,) = [a["payload"] for a in sendgrid.accepted()]
    assert message["personalizations"][0]["to"] == [{"email": "oncall@example.org"}]  # PRIVACY_SETTINGS' alert_email
    # A task (the failure callback) still fails loudly on such a refusal: its settings must be the Variable's.
    task_failed(context("child_data_purge", "scheduled__late", "plan_purge", RuntimeError("x")))
    assert len(sendgrid.accepted()) == 1
