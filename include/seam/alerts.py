"""Airflow's failure callback for every task of every DAG: tell on-call once per failed run.

:func:`task_failed` is every task's ``on_failure_callback`` (``include.seam.dag.DEFAULT_ARGS``). Airflow calls
it when a task fails for good — after its retries, or at once for a set-up fault — not on a retry. It
records the run's failure in the compliance store and sends the run's alert through SendGrid
(:mod:`include.alerts`): the first failing task of a run is reported, any later one is not. With the setting
``alerts`` off it does nothing, nor for a refused trigger conf (``check_run_conf``: nothing may happen before
it passes, no email either, and the person who triggered the run sees its sentence at once).

A callback must never fail the task a second time or hide the first failure: whatever goes wrong here (the
store or SendGrid down, a setting missing) is logged in one sentence and swallowed.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

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
    from include.audit import RunContext
    from include.delivery.engine import deliver
    from include.seam import connections

    from include.seam.dag import CONF_GUARD_TASK

    ti = context["ti"]
    if ti.task_id == CONF_GUARD_TASK:
        # A trigger conf the DAG does not declare is refused before anything happens, emails included: the
        # person who triggered the run sees the sentence at once; it is no incident for on-call.
        return
    settings = connections.settings()
    if not settings.alerts:
        return
    exc = context.get("exception")
    reason = str(exc) if exc is not None and str(exc) else (type(exc).__name__ if exc is not None else "the task failed")
    failure = alerts.Failure(dag_id=ti.dag_id, run_id=context["run_id"], task_id=ti.task_id, reason=reason,
                             at=datetime.now(timezone.utc))
    ctx = RunContext(run_id=failure.run_id, actor=f"airflow:{ti.dag_id}", dag_id=ti.dag_id, task_id=ti.task_id)
    with connections.compliance_db() as store:
        from include import compliance_store

        compliance_store.require_current(store)
        if not alerts.record(store, failure, settings.on_call_email):
            log.info("this run's failure was reported already (once per run)")
            return
        mailer = connections.mailer(deadline_seconds=60)
        report = deliver(store, alerts.AlertLedger(settings), mailer, ctx)
    log.info("failure alert to on-call: %d sent, %d failed", report.sent, report.failed)
