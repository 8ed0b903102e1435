"""Vendor data-sharing manifests: per vendor and period, what was shared, its checksum, what broke a rule — daily."""
from __future__ import annotations

from datetime import timedelta

from include.seam.dag import (GCS_POOL, SENDGRID_POOL, date_param, dry_run_param, fail_run_if_a_task_failed,
                              ids_param, prepare_store, privacy_dag)
from include.seam.steps import step_operator, step_task
from include.seam.timetables import MANUAL_RUNS_FIRST, bounded_catch_up, catch_up_days

# An Airflow DAG: wiring only; its steps are plain functions of the step context in include/vendors/manifests.py.
STEPS, PARAMS = "include.vendors.manifests", "include.vendors.params:ManifestParams"


@privacy_dag(
    dag_id="vendor_sharing_manifests",
    # Interval-based: each scheduled run covers its data interval, one UTC day [00:00, 24:00), and runs when the
    # day is over; catch-up writes the manifests of the days missed, at most the last few (PRIVACY_CATCH_UP_DAYS,
    # default 3: include/seam/timetables.py), never every day since the start date; an older
    # period is a manual run's, on purpose. A repeated day writes nothing more.
    schedule=bounded_catch_up("vendor_sharing_manifests", timezone="UTC"),
    catchup=True,
    # Runs of different days never race (each writes its own (vendor, day) manifests; a day written twice at
    # once is claimed by one run), so catch-up may run a few days at once; the pool bounds the uploads. One
    # run more than catch-up can start is always left for a person's run, whose tasks go first in every pool.
    max_active_runs=catch_up_days() + 1,
    task_defaults={"weight_rule": MANUAL_RUNS_FIRST},
    tags=["vendors", "gdpr", "ccpa", "gcs", "email"],
    dagrun_timeout=timedelta(hours=2),
    params={
        "period_start": date_param(
            "Period start",
            "First day of the period (YYYY-MM-DD, in the configured time zone). Empty = the run's data interval "
            "(a scheduled run: its day). With only a start, the period is that one day."),
        "period_end": date_param(
            "Period end (exclusive)",
            "The day after the period's last day (YYYY-MM-DD). With only an end, the period is the day before it. "
            "A live run's period must be over by the run's time (a dry run may preview one that is not)."),
        "vendor_ids": ids_param(
            "Only these vendors",
            "Vendor ids (unknown ids too) whose manifests to write. Empty = every vendor the period's shares name "
            "and every active vendor."),
        "dry_run": dry_run_param("Judge and count the shares, but upload nothing, record no manifest and send no "
                                 "email."),
    },
)
def vendor_sharing_manifests():
    vendors = step_task(f"{STEPS}:plan_vendors", PARAMS)
    written = step_operator(f"{STEPS}:write_vendor_manifest", PARAMS, label="{item[label]}",
                            pool=GCS_POOL).expand(item=vendors)
    # One vendor's step failing for good holds back neither the summary nor the other vendors' violation emails:
    # the results are gathered once every vendor's step is done, however it ended (all_done; a period without
    # vendors skips the mapped step, which is done too), and the summary and the emails run only when the plan
    # succeeded (its direct input). No task runs past a failed conf check (the setup every task is in). The run
    # still fails, through its last task.
    results = step_task(f"{STEPS}:gather_vendor_results", None, written, trigger_rule="all_done")
    summary = step_task(f"{STEPS}:summarize_period", PARAMS, vendors, results)
    notices = step_task(f"{STEPS}:send_violation_emails", PARAMS, pool=SENDGRID_POOL)
    prepare_store() >> vendors
    summary >> notices
    fail_run_if_a_task_failed(written, notices)


vendor_sharing_manifests()
