"""``vendor_sharing_manifests`` unchanged on Airflow's Celery stack: the scheduler catches up from the start date,
and the per-vendor mapped tasks go through Redis to a Celery worker, in the ``privacy_gcs`` pool.

The same stack as tests/test_e2e_celery.py (whose helpers it uses): scheduler, dag-processor, api-server and a
Celery worker on a queue of this test's own, metadata in PostgreSQL. Needs Redis on 127.0.0.1:6379.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from devkit import database, local_airflow
from devkit.seed.demo_data import seed
from test_e2e_celery import _free_port, _redis_answers, _tail, with_group

pytestmark = pytest.mark.e2e
DAG_ID = "vendor_sharing_manifests"
FIRST_DAY = datetime(2026, 1, 1, tzinfo=timezone.utc)  # include.seam.dag.START_DATE: the first catch-up run


@pytest.fixture
def databases(pg_server_url):
    suffix = uuid.uuid4().hex[:8]
    names = {"ops": f"privacy_celery_vm_ops_{suffix}", "meta": f"privacy_celery_vm_meta_{suffix}"}
    urls = {k: database.create_database(pg_server_url, v) for k, v in names.items()}
    yield urls
    for name in names.values():
        database.drop_database(pg_server_url, name)


def _first_run(meta_url: str, timeout: float) -> tuple[str | None, str | None]:
    """State and run id of the run of the first day (the scheduler creates it on unpausing: catch-up)."""
    deadline, state, run_id = time.monotonic() + timeout, None, None
    while time.monotonic() < deadline:
        with database.connect(meta_url) as conn:
            row = conn.execute("select state, run_id from dag_run where dag_id = %s and logical_date = %s",
                               (DAG_ID, FIRST_DAY)).fetchone()
        state, run_id = row if row else (None, None)
        if state in ("success", "failed"):
            break
        time.sleep(3)
    return state, run_id


def test_catch_up_runs_the_mapped_vendor_tasks_on_celery_workers(databases, sendgrid, tmp_path):
    if not _redis_answers():
        message = "Redis does not answer on 127.0.0.1:6379, which the Celery broker needs"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    # Anchored 30 days after the first catch-up day, the planted clean share of 30 days back (vendor 1) falls on
    # it, beside bulk shares of the two years before the anchor.
    seed(databases["ops"], users=400, seed=5, anchor=(FIRST_DAY + timedelta(days=30)).date())
    api_port, log_port = _free_port(), _free_port()
    meta = databases["meta"].replace("postgresql://", "postgresql+psycopg2://", 1)
    services = local_airflow.LocalServices(ops_url=databases["ops"], compliance_url=databases["ops"],
                                           sendgrid_url=sendgrid.base_url, sendgrid_api_key=sendgrid.api_key)
    env = local_airflow.airflow_env(tmp_path / "airflow", services,
                                    settings={"evidence_location": f"file://{tmp_path}/evidence"})
    queue = f"privacy-e2e-{uuid.uuid4().hex[:8]}"
    env.update({
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/13",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + databases["meta"],
        "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "celery-e2e-" + uuid.uuid4().hex,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    })
    local_airflow.migrate_metadata(env)  # with the pools of pools.json
    airflow = local_airflow.airflow_bin()
    commands = {"api-server": [airflow, "api-server", "-p", str(api_port)],
                "scheduler": [airflow, "scheduler"], "dag-processor": [airflow, "dag-processor"],
                "worker": [airflow, "celery", "worker", "--concurrency", "2", "--queues", queue]}
    procs = {}
    try:
        for name, cmd in commands.items():
            log = open(tmp_path / f"{name}.log", "w")
            procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while DAG_ID not in subprocess.run([airflow, "dags", "list", "-o", "plain"], env=env, capture_output=True,
                                           text=True).stdout:
            assert time.monotonic() < deadline, "the dag-processor did not register the DAG in time"
            time.sleep(3)
        subprocess.run([airflow, "dags", "unpause", DAG_ID], env=env, check=True, capture_output=True)
        state, run_id = _first_run(databases["meta"], timeout=420)
        worker_log = (tmp_path / "worker.log").read_text()
        assert state == "success", _tail(tmp_path)
    finally:
        for proc in procs.values():
            with_group(proc, 15)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with_group(proc, 9)

    with database.connect(databases["meta"]) as conn:
        mapped = conn.execute("""select count(*), min(pool), max(pool), count(*) filter (where state = 'success')
                                 from task_instance where dag_id = %s and run_id = %s
                                 and task_id = 'write_vendor_manifest' and map_index >= 0""",
                              (DAG_ID, run_id)).fetchone()
    with database.connect(databases["ops"]) as conn:
        day_vendors = {v for (v,) in conn.execute(
            "select distinct vendor_id from data_shares where shared_at >= %s and shared_at < %s",
            (FIRST_DAY, FIRST_DAY + timedelta(days=1)))}
        recorded = {v for (v,) in conn.execute(
            "select vendor_id from compliance.vendor_manifests where period_label = '2026-01-01'")}
        active = conn.execute("select count(*) from vendors where active").fetchone()[0]
    # One mapped task per vendor of the day (those its shares name, and every active vendor), all in the pool,
    # all run by the Celery worker.
    assert mapped[0] >= max(len(day_vendors), active) and mapped[1] == mapped[2] == "privacy_gcs"
    assert mapped[3] == mapped[0]
    for index in range(mapped[0]):
        assert f"task_id=write_vendor_manifest/map_index={index}/" in worker_log, index
    assert day_vendors and recorded == day_vendors
