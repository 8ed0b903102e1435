"""A policy-change campaign on Airflow's Celery stack: the mapped senders run on a Celery worker, in the pool.

The same set-up as ``tests/test_e2e_celery.py`` (its helpers are reused): api-server, scheduler,
dag-processor and a Celery worker (Redis broker, PostgreSQL metadata). The DAG is unpaused and the
scheduler runs its latest quarter-hour interval unattended; the campaign must finish with every eligible
address told once, every task having gone through the worker and the senders through the
``privacy_sendgrid`` pool.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone

import notification_oracle as oracle
import pytest
from test_e2e_celery import _free_port, _redis_answers, _tail, with_group

from devkit import database, local_airflow
from devkit.seed.demo_data import seed
from include.seam.dag import SENDGRID_POOL

pytestmark = pytest.mark.e2e
DAG_ID = "policy_change_notifications"
SENDERS = 3


@pytest.fixture
def databases(pg_server_url):
    suffix = uuid.uuid4().hex[:8]
    names = {"ops": f"privacy_celery_notify_ops_{suffix}", "meta": f"privacy_celery_notify_meta_{suffix}"}
    urls = {k: database.create_database(pg_server_url, v) for k, v in names.items()}
    yield urls
    for name in names.values():
        database.drop_database(pg_server_url, name)


def test_a_campaign_runs_on_celery_workers(databases, sendgrid, tmp_path):
    if not _redis_answers():
        message = "Redis does not answer on 127.0.0.1:6379, which the Celery broker needs"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    today = datetime.now(timezone.utc).date()
    seed(databases["ops"], users=3000, seed=5, anchor=today)
    api_port, log_port = _free_port(), _free_port()
    services = local_airflow.LocalServices(ops_url=databases["ops"], compliance_url=databases["ops"],
                                           sendgrid_url=sendgrid.base_url, sendgrid_api_key=sendgrid.api_key)
    env = local_airflow.airflow_env(tmp_path / "airflow", services, settings={
        "evidence_location": f"file://{tmp_path / 'evidence'}", "notification_batch_size": 200,
        "notification_senders": SENDERS})
    queue = f"privacy-e2e-{uuid.uuid4().hex[:8]}"
    env.update({
        "AIRFLOW_VAR_PRIVACY_SUBJECT_KEY": "celery-subject-key-0123456789abcdef",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": databases["meta"].replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/13",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + databases["meta"],
        "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "celery-e2e-" + uuid.uuid4().hex,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    })
    local_airflow.migrate_metadata(env)
    airflow = local_airflow.airflow_bin()
    commands = {"api-server": [airflow, "api-server", "-p", str(api_port)],
                "scheduler": [airflow, "scheduler"], "dag-processor": [airflow, "dag-processor"],
                "worker": [airflow, "celery", "worker", "--concurrency", "4", "--queues", queue]}
    procs = {}
    try:
        for name, cmd in commands.items():
            log = open(tmp_path / f"{name}.log", "w")
            procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for(lambda: DAG_ID in subprocess.run([airflow, "dags", "list", "-o", "plain"], env=env,
                                                   capture_output=True, text=True).stdout, 120, "the DAG to register")
        subprocess.run([airflow, "dags", "unpause", DAG_ID], env=env, check=True, capture_output=True)
        state = _wait_for(lambda: _run_state(databases["meta"]) in ("success", "failed") and
                          _run_state(databases["meta"]), 300, "the scheduled run")
        worker_log = (tmp_path / "worker.log").read_text()
        assert state == "success", _tail(tmp_path)
    finally:
        for proc in procs.values():
            with_group(proc, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with_group(proc, signal.SIGKILL)

    with database.connect(databases["meta"]) as conn:
        tasks = conn.execute("select task_id, map_index, state, pool from task_instance where dag_id = %s",
                             (DAG_ID,)).fetchall()
    senders = [t for t in tasks if t[0] == "send_batches"]
    assert sorted(t[1] for t in senders) == list(range(SENDERS))
    assert {(t[2], t[3]) for t in senders} == {("success", SENDGRID_POOL)}
    for task_id in {t[0] for t in tasks}:  # every task went through the Celery worker
        assert f"task_id={task_id}/" in worker_log, task_id
    with database.connect(databases["ops"]) as conn:
        state, sent, pending = conn.execute(
            "select state, sent, pending from compliance.notification_campaigns where scope = 'live'").fetchone()
        eligible = oracle.expected(conn, today)
    got = oracle.received(sendgrid.accepted(), batch_size=200)
    assert (state, pending, sent) == ("finished", 0, len(eligible))
    assert set(got) == set(eligible) and set(got.values()) == {1}


def _run_state(meta_url: str) -> str | None:
    with database.connect(meta_url) as conn:
        row = conn.execute("select state from dag_run where dag_id = %s order by id desc limit 1", (DAG_ID,)).fetchone()
    return row[0] if row else None


def _wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(3)
    raise AssertionError(f"timed out waiting for {what}")
