"""Airflow's failure callback for every task of every DAG, and the deadline alert of every DAG run: tell
on-call once per failed run, and once per run not finished by its deadline (:func:`run_late`).

:func:`task_succeeded` is every task's ``on_success_callback``: the failed task succeeding on a later try (its run
cleared) takes back the run's failure alert while it is still pending, when Airflow says no task of the run is
failed, so that no later sender (a deadline callback cannot ask Airflow for run states) sends a false alarm.

:func:`task_failed` is every task's ``on_failure_callback`` (``include.seam.dag.DEFAULT_ARGS``). Airflow calls
it when a task fails for good — after its retries, or at once for a set-up fault — not on a retry. It
records the run's failure in the compliance store and sends the run's alert through SendGrid
(:mod:`include.alerts`): the first failing task of a run is reported, any later one is not. With the setting
``alerts`` off it does nothing, nor for a refused trigger conf (``check_run_conf``: nothing may happen before
it passes, no email either, and the person who triggered the run sees its sentence at once).

A callback must never fail the task a second time or hide the first failure: whatever goes wrong here (SendGrid
down, say) is logged in one sentence and swallowed. Two faults that fail the run must not also silence its alert:
a wrong setting (the alert reads only the settings it needs, :meth:`include.config.Settings.for_alerts`) and a
compliance store that cannot be used (the alert is then sent without its record: once per failing task, not once
per run, since the record is what makes it once).

An alert SendGrid did not take stays pending and goes out with the next alert sent: a later failure of the same run
too (a second task, or the task cleared and failing again), which records nothing new but sends what is pending.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timezone

from include.errors import PrivacyOpsError

log = logging.getLogger("include.seam")


def task_failed(context) -> None:
    """Record the run's failure (once per run) and email on-call; never raises."""
    try:
        _report(context)
    except Exception as exc:  # noqa: BLE001 - a callback must not fail the task again
        from include.seam.connections import first_line

        log.warning("the failure alert of this run was not sent: %s", first_line(exc))


def _report(context) -> None:
    from include import alerts
    from include.runconf import CONF_GUARD_TASK

    ti = context["ti"]
    if ti.task_id == CONF_GUARD_TASK:
        # A trigger conf the DAG does not declare is refused before anything happens, emails included: the
        # person who triggered the run sees the sentence at once; it is no incident for on-call.
        return
    exc = context.get("exception")
    reason = str(exc) if exc is not None and str(exc) else (type(exc).__name__ if exc is not None else "the task failed")
    _send(alerts.Failure(dag_id=ti.dag_id, run_id=context["run_id"], task_id=ti.task_id, reason=reason,
                         at=datetime.now(timezone.utc)), in_task=True)


def task_succeeded(context) -> None:
    """Every task's ``on_success_callback``: a task that succeeds on a later try (its run cleared, or a retry) takes
    back its run's pending failure alert when that alert tells of this task's failure and Airflow says no task of the
    run is failed or upstream_failed (asked from this task, which may ask; :func:`failed_tasks`). The alert is then
    withdrawn, not sent by the next sender, a deadline callback included, which cannot ask Airflow for run states;
    the run failing again records it again. A first try does nothing (no earlier failure of it to take back), nor
    does a task with the setting ``alerts`` off. Never raises."""
    try:
        _take_back(context)
    except Exception as exc:  # noqa: BLE001 - a callback must not fail a task that succeeded
        from include.seam.connections import first_line

        log.warning("the run's pending failure alert was not looked at: %s", first_line(exc))


def _take_back(context) -> None:
    ti = context["ti"]
    if (getattr(ti, "try_number", None) or 1) <= 1:
        return
    from include import alerts
    from include.audit import RunContext
    from include.seam import connections

    if not connections.alert_settings().alerts:
        return
    run_id = context["run_id"]
    with connections.compliance_db() as store:
        if alerts.pending_failure(store, ti.dag_id, run_id) != ti.task_id or failed_tasks(ti.dag_id, run_id) != 0:
            return
        ctx = RunContext(run_id=run_id, actor=f"airflow:{ti.dag_id}", dag_id=ti.dag_id, task_id=ti.task_id)
        if alerts.withdraw_ran_again(store, ti.dag_id, run_id, ti.task_id, ctx):
            log.info("this run's pending failure alert (of this task) is withdrawn: %s", alerts.WITHDRAWN_RAN_AGAIN)


def failed_tasks(dag_id: str, run_id: str) -> int | None:
    """How many task instances of the run Airflow says are failed or upstream_failed, asked through the Execution
    API from a task; None where Airflow cannot be asked (outside a task): then nothing is withdrawn."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        return int(RuntimeTaskInstance.get_ti_count(dag_id, run_ids=[run_id], states=["failed", "upstream_failed"]))
    except Exception:  # noqa: BLE001 - not knowing keeps the alert due
        return None


def run_late(context: dict | None = None, **_ignored) -> None:
    """Airflow's deadline alert callback (every house DAG's ``deadline``, include/seam/dag.py): the run has not
    finished by its deadline. Tell on-call once per run; never raises.

    Airflow calls it in an executor (a ``SyncCallback``) with ``context`` = ``{"dag_run": <the run as the REST
    API shows it>, "deadline": {"deadline_time": ...}}``; only the DAG, the run, its state and times are read.

    Airflow 3.3 takes a run's deadline away only when the run succeeds: one that failed (or was marked failed) before
    its deadline still meets it, and is called here. It ended in time, so it is not late (its failure is its own
    alert): nothing is recorded or sent.
    """
    try:
        run = dict((context or {}).get("dag_run") or {})
        deadline = ((context or {}).get("deadline") or {}).get("deadline_time")
        ended, due = _moment(run.get("end_date")), _moment(deadline)
        if ended is not None and due is not None and ended <= due:
            log.info("the run ended (%s) before its deadline: it is not late", run.get("state") or "unknown")
            return
        from include import alerts

        _send(alerts.Failure(dag_id=str(run["dag_id"]), run_id=str(run.get("dag_run_id") or run.get("run_id")),
                             task_id=None, reason=late_reason(run, deadline), at=datetime.now(timezone.utc),
                             kind=alerts.LATE), in_task=False)
    except Exception as exc:  # noqa: BLE001 - an alert must not fail in a way that hides the late run
        from include.seam.connections import first_line

        log.warning("the deadline alert of this run was not sent: %s", first_line(exc))


def late_reason(run: dict, deadline) -> str:
    """One sentence: since when the run was queued, its state, the deadline it missed (and when it ended, if it
    has since)."""
    queued = _when(run.get("queued_at"))
    state = run.get("state") or "unknown"
    if run.get("end_date") is not None:
        return (f"the run was queued at {queued} and finished ({state}) only at {_when(run['end_date'])}, after its "
                f"deadline, {_when(deadline)}")
    return (f"the run was queued at {queued} and was still {state} at its deadline, {_when(deadline)}, so its "
            f"work (escalations, purges, manifests or notices) waits until it finishes")


def _moment(value) -> datetime | None:
    """``value`` (a datetime or ISO 8601 text) as an aware datetime; None when absent, unreadable or naive."""
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _when(value) -> str:
    """``09:00 UTC on 6 Dec 2026``: words a reason keeps (the scrubber blanks long runs of digits, as in dates)."""
    if value is None:
        return "an unknown time"
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return "an unreadable time"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return f"{moment:%H:%M} UTC on {moment.day} {moment:%b %Y}"


def _send(failure, *, in_task: bool) -> None:
    """Record the run's alert of its kind (once) and send it to on-call through the delivery engine. Outside a task
    (the deadline callback) Airflow refuses Variables: the settings then come from the environment."""
    from include import alerts, compliance_store
    from include.audit import RunContext
    from include.delivery.engine import deliver
    from include.seam import connections

    settings = connections.alert_settings(outside_a_task=not in_task)
    if not settings.alerts:
        return
    ctx = RunContext(run_id=failure.run_id, actor=f"airflow:{failure.dag_id}", dag_id=failure.dag_id,
                     task_id=failure.task_id)
    with contextlib.ExitStack() as stack:
        try:
            store = stack.enter_context(connections.compliance_db())
            compliance_store.require_current(store)
        except PrivacyOpsError as exc:  # the store is the fault (or part of it): tell on-call all the same
            _send_unrecorded(failure, settings, connections.first_line(exc))
            return
        if not alerts.record(store, failure, settings.on_call_email):
            # Recorded already: sent, or still pending (SendGrid was down then). A pending one goes out now, with any
            # other pending alert: it must not wait for another run's alert. Sent ones are not sent again.
            log.info("this run's %s was recorded already (once per run): sending it if it is still pending",
                     failure.kind)
        mailer = connections.mailer(deadline_seconds=60)
        # Only a task may ask Airflow for a run's state: a deadline callback's supervisor cannot decode the request
        # and never answers it, so asking there would wait for good (no timeout by default), the alert unsent.
        report = deliver(store, alerts.ledger(settings, run_state=run_state if in_task else None), mailer, ctx)
    log.info("%s alert to on-call: %d sent, %d failed", failure.kind, report.sent, report.failed)


def run_state(dag_id: str, run_id: str) -> str | None:
    """Airflow's state of the run now (``success``, ``failed``, ``running``, ``queued``), asked through the Execution
    API; None where Airflow cannot be asked: outside a task (the command line). Never asked in a deadline callback
    (:func:`_send` passes it only in a task): its supervisor (Airflow 3.3) cannot decode the request, logs "Unable to
    decode message" and sends no answer, so the callback would wait for ever."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        state = RuntimeTaskInstance.get_dagrun_state(dag_id=dag_id, run_id=run_id)
        return str(getattr(state, "value", state))
    except Exception:  # noqa: BLE001 - not knowing the run's state sends the alert, never drops it
        return None


def _send_unrecorded(failure, settings, why: str) -> None:
    """Send the alert straight to SendGrid when the compliance store cannot record it."""
    from dataclasses import replace

    from include import alerts
    from include.seam import connections

    result = connections.mailer(deadline_seconds=60).send(
        alerts.payload(replace(failure, reason=alerts.scrub(failure.reason)), settings))
    log.warning("%s alert sent to on-call without its record (the compliance store could not be used: %s); "
                "SendGrid message id %s", failure.kind, why, result.message_id)
