"""Data-subject request fulfilment: export, erase, restrict, opt out, or say what a person must do — daily.

(Airflow parses only files that name both "airflow" and "dag": this docstring does, as the file imports no
Airflow module of its own; its tasks come from the shared erasure workflow, include/seam/erasure.py.)"""
from __future__ import annotations

from include.seam.dag import GCS_POOL, approve_plan_param, dry_run_param, ids_param, prepare_store, privacy_dag
from include.seam.erasure import ErasureTasks, erasing_run_timeout, erasure_workflow
from include.seam.steps import step_task

STEPS, PARAMS = "include.fulfilment.steps", "include.fulfilment.params:FulfilmentParams"


@privacy_dag(
    dag_id="dsr_fulfilment",
    tags=["dsr", "gdpr", "ccpa", "export", "erasure", "gcs"],
    dagrun_timeout=erasing_run_timeout(),
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
    # plan_requests → approval → erase_requests → verify_erasures → finish_run
    erase = erasure_workflow(ErasureTasks(STEPS, PARAMS, what="erasures",
                                          steps=("plan_requests", "erase_requests", "verify_erasures"),
                                          approval=("erasure_gate", "approve_erasure", "erasure_approved_in_advance")))
    fulfil = step_task(f"{STEPS}:fulfil_requests", PARAMS, pool=GCS_POOL)
    prepare_store() >> erase.plan >> fulfil >> erase.gate


dsr_fulfilment()
