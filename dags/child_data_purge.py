"""Child-data purge: find children under 13, erase their data through the data map, prove it — daily."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, task

from include.runconf import COUNT_MAX
from include.seam.approval import ANSWER_KEY, approval_timeout, erasure_approval
from include.seam.dag import SENDGRID_POOL, approve_plan_param, dry_run_param, ids_param, prepare_store, privacy_dag


@privacy_dag(
    dag_id="child_data_purge",
    schedule="@daily",
    tags=["children", "coppa", "erasure", "email"],
    # The reviewer's time (8 hours unless the deployment says otherwise) and four hours to erase and report.
    dagrun_timeout=approval_timeout() + timedelta(hours=4),
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
            "means none of them, resolve it where reports are kept."),
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
    @task
    def detect_children() -> dict:
        """Find every child under 13 (and every account no rule can judge) and the reports naming no one."""
        from include.children import purge
        from include.children.params import PurgeParams
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        with task_env(PurgeParams) as env:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            return purge.detect_children(env.ops, env.store, env.datamap, env.settings, env.ctx, env.params, key)

    @task
    def plan_purge() -> dict:
        """Plan the erasure from the data map (tables, rows, holds, vendors) and hash it; decide its gate."""
        from include.children import purge
        from include.children.params import PurgeParams
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        with task_env(PurgeParams) as env:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            return purge.plan_purge(env.ops, env.store, env.datamap, env.settings, env.ctx, env.params, key)

    @task(trigger_rule="none_failed_min_one_success")
    def purge_subjects() -> dict:
        """Erase each planned child in its own transaction, account row last, verified before commit."""
        from airflow.sdk import get_current_context

        from include.children import purge
        from include.children.params import PurgeParams
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        approval = get_current_context()["ti"].xcom_pull(task_ids="approve_purge", key=ANSWER_KEY)
        with task_env(PurgeParams) as env:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            return purge.purge_subjects(env.ops, env.store, env.datamap, env.settings, env.ctx, env.params, key,
                                        approval)

    @task
    def verify_purge() -> dict:
        """Count again, after commit, what is left of this run's erased subjects in every table."""
        from include.children import purge
        from include.seam.task import task_env

        with task_env() as env:
            return purge.verify_purge(env.ops, env.store, env.datamap, env.ctx)

    @task(pool=SENDGRID_POOL)
    def notify_compliance() -> dict:
        """Email the compliance team the run's counts per outcome, table and vendor (notices owed)."""
        from include.children import purge
        from include.children.params import PurgeParams
        from include.seam.task import task_env

        with task_env(PurgeParams) as env:
            return purge.notify_compliance(env.store, env.mailer, env.settings, env.ctx, env.params)

    @task(trigger_rule="none_failed")
    def finish_run() -> dict:
        """Record how the run ended (a plan nobody approved: rejected); resolve reports that named no one."""
        from airflow.sdk import get_current_context

        from include.children import purge
        from include.children.params import PurgeParams
        from include.seam.task import task_env

        approval = get_current_context()["ti"].xcom_pull(task_ids="approve_purge", key=ANSWER_KEY)
        with task_env(PurgeParams) as env:
            return purge.finish_run(env.ops, env.store, env.datamap, env.ctx, env.params, approval)

    planned = plan_purge()
    prepare_store() >> detect_children() >> planned
    _, approve, in_advance = erasure_approval(
        planned, plan_task_id="plan_purge", gate_task_id="approval_gate", review_task_id="approve_purge",
        in_advance_task_id="approved_in_advance", what="purge")
    purged = purge_subjects()
    [approve, in_advance] >> purged
    finished = finish_run()
    purged >> [verify_purge(), notify_compliance()] >> finished


child_data_purge()
