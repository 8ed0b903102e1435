"""Privacy request deadline tracking (SPEC §4.1): evaluate, record, escalate — every hour."""
from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources

from airflow.sdk import Param, dag, get_current_context, task

DEFAULT_ARGS = {
    "owner": "privacy-engineering",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
}


@dag(
    dag_id="dsr_deadline_tracking",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=45),
    default_args=DEFAULT_ARGS,
    tags=["privacy", "dsr", "gdpr", "ccpa"],
    doc_md=(resources.files("include") / "docs" / "dsr_deadline_tracking.md").read_text(),
    params={
        "as_of": Param(
            None, type=["null", "string"], format="date", title="Evaluate as of",
            description_md="Evaluate deadlines as of this date (YYYY-MM-DD). Empty = today in the configured "
                           "time zone. Another date is a what-if: results are recorded, but no email is sent.",
        ),
        "request_ids": Param(
            [], type="array", items={"type": "integer", "minimum": 1}, uniqueItems=True, title="Only these requests",
            description_md="Privacy request ids to evaluate. Empty = every open request and those closed since "
                           "the last run.",
        ),
        "dry_run": Param(
            False, type="boolean", title="Dry run",
            description_md="Evaluate and record the states, but send no escalation or digest email.",
        ),
    },
)
def dsr_deadline_tracking():
    @task
    def prepare_store() -> None:
        """Migrate the compliance store and check the data map against the operational database."""
        from include import compliance_store, runtime

        with runtime.readable_failures():
            runtime.settings()
            with runtime.ops_db() as ops:
                runtime.datamap(ops)
            with runtime.compliance_db() as store:
                compliance_store.migrate(store)

    @task
    def evaluate_requests(params: dict | None = None) -> dict:
        """Evaluate every selected request and record its state in compliance.dsr_status."""
        from include import runtime
        from include.dsr import tracking
        from include.dsr.params import resolve_as_of

        with runtime.readable_failures():
            settings = runtime.settings()
            ctx = runtime.run_context(get_current_context())
            as_of = resolve_as_of(params.get("as_of"), settings, ctx.now())
            with runtime.ops_db() as ops, runtime.compliance_db() as store:
                return tracking.evaluate_requests(
                    ops, store, runtime.datamap(ops), settings, ctx, as_of=as_of,
                    request_ids=params.get("request_ids") or (), dry_run=params.get("dry_run", False))

    @task
    def send_escalations(evaluation: dict, params: dict | None = None) -> dict:
        """Email each new ack_overdue / due_soon / overdue escalation once."""
        from include import runtime
        from include.dsr import tracking

        return runtime.run_mail_step(tracking.escalate, evaluation["as_of"], params,
                                     request_ids=params.get("request_ids") or ())

    @task
    def send_daily_digest(evaluation: dict, params: dict | None = None) -> dict:
        """Send the compliance team's digest, once per day."""
        from include import runtime
        from include.dsr import tracking

        return runtime.run_mail_step(tracking.send_digest, evaluation["as_of"], params)

    evaluation = evaluate_requests()
    prepare_store() >> evaluation
    send_escalations(evaluation) >> send_daily_digest(evaluation)


dsr_deadline_tracking()
