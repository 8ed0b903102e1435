"""Privacy request deadline tracking: evaluate every open request, record its state, escalate — hourly."""
from __future__ import annotations

from datetime import timedelta

from include.seam.dag import SENDGRID_POOL, date_param, dry_run_param, ids_param, prepare_store, privacy_dag
from include.seam.steps import step_task

# An Airflow DAG: wiring only; its steps are plain functions of the step context in include/deadlines/tracking.py.
STEPS, PARAMS = "include.deadlines.tracking", "include.deadlines.params:DsrParams"


@privacy_dag(
    dag_id="dsr_deadline_tracking",
    tags=["dsr", "gdpr", "ccpa", "email"],
    dagrun_timeout=timedelta(minutes=45),
    params={
        "as_of": date_param(
            "Evaluate as of",
            "Evaluate deadlines as of this date (YYYY-MM-DD). Empty = the run's own day in the configured time "
            "zone. Another date is a **what-if**: results go to `compliance.dsr_whatif`, the live status is not "
            "touched, and no email is sent."),
        "request_ids": ids_param(
            "Only these requests",
            "Privacy request ids to evaluate and escalate. Empty = every open request and those closed since the "
            "last run."),
        "dry_run": dry_run_param("Evaluate and record the states, but send no escalation or digest email."),
    },
)
def dsr_deadline_tracking():
    evaluate = step_task(f"{STEPS}:evaluate_requests", PARAMS)
    escalate = step_task(f"{STEPS}:send_escalations", PARAMS, pool=SENDGRID_POOL)
    digest = step_task(f"{STEPS}:send_daily_digest", PARAMS, pool=SENDGRID_POOL)
    prepare_store() >> evaluate >> escalate >> digest


dsr_deadline_tracking()
