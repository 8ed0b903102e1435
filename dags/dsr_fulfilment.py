"""Data-subject request fulfilment: export, erase, restrict, opt out, or say what a person must do — daily."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task

from include.seam.approval import ANSWER_KEY, approval_timeout, erasure_approval
from include.seam.dag import GCS_POOL, approve_plan_param, dry_run_param, ids_param, prepare_store, privacy_dag


@privacy_dag(
    dag_id="dsr_fulfilment",
    schedule="@daily",
    tags=["dsr", "gdpr", "ccpa", "export", "erasure", "gcs"],
    # The reviewer's time (8 hours unless the deployment says otherwise) and four hours to erase and report.
    dagrun_timeout=approval_timeout() + timedelta(hours=4),
    params={
        "request_ids": ids_param(
            "Only these requests",
            "Privacy request ids to fulfil. Empty = every `in_progress` request not fulfilled yet (and `verifying` "
            "ones, recorded as skipped). A targeted run acts on nothing else."),
        "dry_run": dry_run_param(
            "Decide and plan only: **nothing is changed**, exported or recorded as fulfilled; the plan (and the "
            "erasure plan's hash, for `approve_plan`) is written to `compliance.dsr_fulfilment_plans`."),
        "approve_plan": approve_plan_param(
            "Approve this erasure plan",
            "The erasure plan hash a dry run printed. The run erases only if its own plan has exactly this hash (the "
            "same subjects and erase rules); a plan that changed since is **not** executed. Lets a plan above the "
            "approval threshold (`purge_threshold`) run without waiting for a reviewer."),
    },
)
def dsr_fulfilment():
    @task
    def plan_requests() -> dict:
        """Pick up the open requests, decide what each asks for, plan the erasures (hash, holds, vendors, gate)."""
        from include.fulfilment import steps
        from include.fulfilment.params import FulfilmentParams
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        with task_env(FulfilmentParams) as env:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            return steps.plan_run(env.ops, env.store, env.datamap, env.settings, env.ctx, env.params, key)

    @task(pool=GCS_POOL)
    def fulfil_requests() -> dict:
        """Export, restrict and opt out each planned request in its own claimed transaction; record the rest."""
        from include.fulfilment import steps
        from include.fulfilment.params import FulfilmentParams
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        with task_env(FulfilmentParams) as env:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            objects = None if env.dry_run else env.objects
            return steps.fulfil_requests(env.ops, env.store, objects, env.datamap, env.settings, env.ctx, env.params,
                                         key)

    @task(trigger_rule="none_failed_min_one_success")
    def erase_requests() -> dict:
        """Erase each planned subject with the erasure engine, one transaction per subject, requests completed."""
        from airflow.sdk import get_current_context

        from include.fulfilment import steps
        from include.fulfilment.params import FulfilmentParams
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        approval = get_current_context()["ti"].xcom_pull(task_ids="approve_erasure", key=ANSWER_KEY)
        with task_env(FulfilmentParams) as env:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            return steps.erase_requests(env.ops, env.store, env.datamap, env.settings, env.ctx, env.params, key,
                                        approval)

    @task
    def verify_erasures() -> dict:
        """Count again, after commit, what is left of this run's erased subjects in every table."""
        from include.fulfilment import steps
        from include.seam.task import task_env

        with task_env() as env:
            return steps.verify_erasures(env.ops, env.store, env.datamap, env.ctx)

    @task(trigger_rule="none_failed")
    def finish_run() -> dict:
        """Record how the run ended (erasures nobody approved: approval_required) and its counts."""
        from airflow.sdk import get_current_context

        from include.fulfilment import steps
        from include.seam.task import task_env

        approval = get_current_context()["ti"].xcom_pull(task_ids="approve_erasure", key=ANSWER_KEY)
        with task_env() as env:
            return steps.finish_run(env.store, env.settings, env.ctx, approval)

    planned = plan_requests()
    prepare_store() >> planned
    gate, approve, in_advance = erasure_approval(
        planned, plan_task_id="plan_requests", gate_task_id="erasure_gate", review_task_id="approve_erasure",
        in_advance_task_id="erasure_approved_in_advance", what="erasures")
    planned >> fulfil_requests() >> gate
    erased = erase_requests()
    [approve, in_advance] >> erased
    erased >> verify_erasures() >> finish_run()


dsr_fulfilment()
