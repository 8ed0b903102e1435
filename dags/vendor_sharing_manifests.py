"""Vendor data-sharing manifests: per vendor and period, what was shared, its checksum, what broke a rule — daily."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, task

from include.seam.dag import (GCS_POOL, SENDGRID_POOL, date_param, dry_run_param, ids_param, prepare_store,
                              privacy_dag)


@privacy_dag(
    dag_id="vendor_sharing_manifests",
    # Interval-based: each scheduled run covers its data interval, one UTC day [00:00, 24:00), and runs when the
    # day is over; catch-up writes the manifests of every day missed (back-filling), and a repeated day
    # writes nothing more.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    catchup=True,
    # Runs of different days never race (each writes its own (vendor, day) manifests; a day written twice at
    # once is claimed by one run), so a back-fill may run a few days at once; the pool bounds the uploads.
    max_active_runs=4,
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
    @task
    def plan_vendors() -> list[dict]:
        """List the vendors of the period (one manifest each) and record the run."""
        from include.seam.task import task_env
        from include.vendors import manifests
        from include.vendors.params import ManifestParams

        with task_env(ManifestParams) as env:
            return manifests.plan(env.ops, env.store, env.datamap, env.ctx, env.params)

    @task(pool=GCS_POOL, map_index_template="{{ manifest_label }}")
    def write_vendor_manifest(item: dict) -> dict:
        """Stream one vendor's shares of the period into Parquet, upload it and its manifest.json, record both."""
        from airflow.sdk import get_current_context

        from include.seam.task import task_env
        from include.vendors import manifests
        from include.vendors.params import ManifestParams

        get_current_context()["manifest_label"] = f"vendor {item['vendor_id']} · {item['scope']}"
        with task_env(ManifestParams) as env:
            objects = None if env.dry_run else env.objects
            return manifests.write_manifest(env.ops, env.store, objects, env.datamap, env.settings, env.ctx,
                                            env.params, item["vendor_id"], item["scope"])

    @task(trigger_rule="none_failed")
    def summarize_period(results: list[dict]) -> dict:
        """Record what every vendor's step did; say so when the period had no shares."""
        from include.seam.task import task_env
        from include.vendors import manifests
        from include.vendors.params import ManifestParams

        with task_env(ManifestParams) as env:
            return manifests.summarize(env.store, env.ctx, env.params, list(results or []))

    @task(pool=SENDGRID_POOL, trigger_rule="none_failed")
    def send_violation_emails() -> dict:
        """Email the compliance team once per (vendor, period) with violations."""
        from include.seam.task import task_env
        from include.vendors import manifests
        from include.vendors.params import ManifestParams

        with task_env(ManifestParams) as env:
            return manifests.send_notices(env.store, env.mailer, env.settings, env.ctx, env.params)

    vendors = plan_vendors()
    prepare_store() >> vendors
    summarize_period(write_vendor_manifest.expand(item=vendors)) >> send_violation_emails()


vendor_sharing_manifests()
