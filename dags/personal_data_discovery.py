"""Personal-data discovery: find personal data the data map does not name, before an erasure misses it — weekly."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param

from include.seam.dag import (GCS_POOL, SENDGRID_POOL, dry_run_param, fail_run_if_a_task_failed, prepare_store,
                              privacy_dag)
from include.seam.steps import step_operator, step_task

STEPS, PARAMS = "include.discovery.steps", "include.discovery.params:DiscoveryParams"


@privacy_dag(
    dag_id="personal_data_discovery",
    tags=["discovery", "gdpr", "ccpa", "email"],
    dagrun_timeout=timedelta(hours=2),
    params={
        "connections": Param(
            [], type="array", items={"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_\\-]{0,249}$"},
            uniqueItems=True, title="Only these connections",
            description_md="Airflow connection ids of the PostgreSQL databases to scan. Empty = every connection the "
                           "data map names (the operational database first) and those of the setting "
                           "`discovery_connections`."),
        "tables": Param(
            [], type="array", items={"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$"},
            uniqueItems=True, title="Only these tables",
            description_md="Table names (`feedback` or `crm.contacts`) to scan. Empty = every table. A targeted run "
                           "resolves only findings of its own tables."),
        "sample_rows": Param(
            1000, type="integer", minimum=10, maximum=100000, title="Sampled rows per table",
            description_md="Rows read per table at most (`TABLESAMPLE` on a large table, so a scan costs the same "
                           "whatever the table's size). More rows find rarer values in free text."),
        "dry_run": dry_run_param("Classify and log the findings (names, kinds, counts), but store nothing and send no "
                                 "email."),
    },
)
def personal_data_discovery():
    planned = step_task(f"{STEPS}:plan_scan", PARAMS)
    scans = step_operator(f"{STEPS}:scan_connection", PARAMS, label="connection {connection}").expand(
        connection=planned)
    # A connection lost does not hold back the others' findings, nor the telling of them; the run still fails.
    recorded = step_task(f"{STEPS}:record_findings", PARAMS, planned, scans, trigger_rule="all_done_min_one_success")
    told = step_task(f"{STEPS}:send_new_findings", PARAMS, pool=SENDGRID_POOL)
    orphans = step_task(f"{STEPS}:find_orphans", PARAMS, pool=GCS_POOL)
    prepare_store(check_datamap=False) >> planned
    planned >> orphans
    recorded >> told
    fail_run_if_a_task_failed(scans, told, orphans)


personal_data_discovery()
