"""Privacy request deadline tracking: evaluate every open request, record its state, escalate — hourly."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task

from include.seam.dag import SENDGRID_POOL, date_param, dry_run_param, ids_param, prepare_store, privacy_dag


@privacy_dag(
    dag_id="dsr_deadline_tracking",
    schedule="@hourly",
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
    @task
    def evaluate_requests() -> dict:
        """Evaluate every selected request; record live states in dsr_status (a what-if's in dsr_whatif)."""
        from include.dsr import tracking
        from include.dsr.params import DsrParams
        from include.seam.task import task_env

        with task_env(DsrParams) as env:
            return tracking.evaluate_requests(env.ops, env.store, env.datamap, env.settings, env.ctx, env.params)

    @task(pool=SENDGRID_POOL)
    def send_escalations() -> dict:
        """Email each new ack_overdue / due_soon / overdue escalation once."""
        from include.dsr import tracking
        from include.dsr.params import DsrParams
        from include.seam.task import task_env

        with task_env(DsrParams) as env:
            return tracking.escalate(env.store, env.mailer, env.settings, env.ctx, env.params)

    @task(pool=SENDGRID_POOL)
    def send_daily_digest() -> dict:
        """Send the compliance team's digest, once per day."""
        from include.dsr import tracking
        from include.dsr.params import DsrParams
        from include.seam.task import task_env

        with task_env(DsrParams) as env:
            return tracking.send_digest(env.store, env.mailer, env.settings, env.ctx, env.params)

    prepare_store() >> evaluate_requests() >> send_escalations() >> send_daily_digest()


dsr_deadline_tracking()
