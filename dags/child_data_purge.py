"""Child-data purge: find children under 13, erase their data through the data map, prove it — daily."""
from __future__ import annotations

from airflow.sdk import Param

from include.runconf import COUNT_MAX
from include.seam.dag import SENDGRID_POOL, approve_plan_param, dry_run_param, ids_param, prepare_store, privacy_dag
from include.seam.erasure import ErasureTasks, erasing_run_timeout, erasure_workflow
from include.seam.steps import step_task

STEPS, PARAMS = "include.children.purge", "include.children.params:PurgeParams"


@privacy_dag(
    dag_id="child_data_purge",
    tags=["children", "coppa", "erasure", "email"],
    dagrun_timeout=erasing_run_timeout(),
    params={
        "dry_run": dry_run_param(
            "Detect, plan and count only: **nothing is changed** in the operational database and no email is "
            "sent. On by default for every run a person starts; **scheduled runs are always live** (they carry "
            "no trigger form).", default=True),
        "user_ids": ids_param(
            "Only these accounts",
            "Account ids to look at. Empty = every account. A targeted run erases only those of these accounts "
            "that a child rule catches, and resolves no other report."),
        "confirm_user_ids": ids_param(
            "Confirmed by a person: these accounts are the reported child",
            "A report that names only an address never erases on its own an account whose own data says adult, "
            "nor several accounts at once (households share addresses): it shows as `needs_review` on the "
            "compliance page with the accounts it names. After checking, list here the account(s) the report "
            "means: the run then treats them as reported (erased, with the usual guards) and resolves the report "
            "once they are gone. The other accounts of the report are left alone. To decide that the report "
            "means none of them, resolve it where reports are kept. An id no open report names (or, with "
            "user_ids, one not among them) stops the run before anything is done."),
        "max_subjects": Param(
            None, type=["null", "integer"], minimum=1, maximum=COUNT_MAX, title="At most this many subjects",
            description_md="Erase at most this many children in this run (lowest account ids first); the rest "
                           "are recorded as `deferred` and the next run picks them up. Empty = no cap."),
        "approve_plan": approve_plan_param(
            "Approve this plan",
            "The plan hash a dry run printed. The run erases only if its own plan has exactly this hash (the same "
            "subjects and erase rules); a plan that changed since is **not** executed. Lets a plan above the "
            "approval threshold run without waiting for a reviewer."),
    },
)
def child_data_purge():
    purge = erasure_workflow(ErasureTasks(  # plan_purge → approval → purge_subjects → verify_purge → finish_run
        STEPS, PARAMS, what="purge", steps=("plan_purge", "purge_subjects", "verify_purge"),
        approval=("approval_gate", "approve_purge", "approved_in_advance")))
    detect = step_task(f"{STEPS}:detect_children", PARAMS)
    notify = step_task(f"{STEPS}:notify_compliance", PARAMS, pool=SENDGRID_POOL)
    prepare_store() >> detect >> purge.plan
    purge.erase >> notify >> purge.finish


child_data_purge()
