"""The same DAG, unchanged, on Airflow's Celery stack: scheduler, dag-processor, api-server, Celery worker.

The scheduler runs it unattended (the DAG is unpaused and its latest hourly interval is scheduled); every
task goes through Redis to a Celery worker process that shares no files with the others. Metadata lives in
PostgreSQL, as in docker-compose.yaml. Needs Redis on 127.0.0.1:6379 (.ci/run starts it when it is down).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from devkit import database, local_airflow
from devkit.seed.demo_data import seed

pytestmark = pytest.mark.e2e
DAG_ID = "dsr_deadline_tracking"
TASKS = ("prepare_store", "evaluate_requests", "send_escalations", "send_daily_digest")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), 2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def databases(pg_server_url):
    suffix = uuid.uuid4().hex[:8]
    names = {"ops": f"privacy_celery_ops_{suffix}", "meta": f"privacy_celery_meta_{suffix}"}
    urls = {k: database.create_database(pg_server_url, v) for k, v in names.items()}
    yield urls
    for name in names.values():
        database.drop_database(pg_server_url, name)


def test_scheduled_run_on_celery_workers(databases, sendgrid, tmp_path):
    if not _redis_answers():
        # CI guarantees Redis (.ci/run starts it); a newcomer's machine with only Python may not have one.
        message = "Redis does not answer on 127.0.0.1:6379, which the Celery broker needs"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    seed(databases["ops"], users=400, seed=5, anchor=datetime.now(timezone.utc).date())
    api_port, log_port = _free_port(), _free_port()
    meta = databases["meta"].replace("postgresql://", "postgresql+psycopg2://", 1)
    services = local_airflow.LocalServices(ops_url=databases["ops"], compliance_url=databases["ops"],
                                           sendgrid_url=sendgrid.base_url, sendgrid_api_key=sendgrid.api_key)
    env = local_airflow.airflow_env(tmp_path / "airflow", services)
    # A queue of this test's own: another checkout's Celery test on the same Redis never takes its tasks.
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
    local_airflow.migrate_metadata(env)
    airflow = local_airflow.airflow_bin()
    commands = {"api-server": [airflow, "api-server", "-p", str(api_port)],
                "scheduler": [airflow, "scheduler"], "dag-processor": [airflow, "dag-processor"],
                "worker": [airflow, "celery", "worker", "--concurrency", "2", "--queues", queue]}
    procs = {}
    try:
        for name, cmd in commands.items():
            log = open(tmp_path / f"{name}.log", "w")
            # Each in its own process group, so that the whole tree (worker children included) is ended.
            procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for_dag(env)
        subprocess.run([airflow, "dags", "unpause", DAG_ID], env=env, check=True, capture_output=True)
        state = _wait_for_run(databases["meta"], timeout=240)
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

    for task in TASKS:  # every task went through Celery
        assert f"task_id={task}/" in worker_log, task
    with database.connect(databases["ops"]) as conn:
        evaluated = conn.execute("select count(*) from compliance.dsr_status").fetchone()[0]
        requests = conn.execute("select count(*) from privacy_requests").fetchone()[0]
        sent = conn.execute("select count(*) from compliance.dsr_escalations where status = 'sent'").fetchone()[0]
    assert evaluated == requests and sent > 0
    assert any(m["payload"]["custom_args"]["campaign"] == "dsr-digest" for m in sendgrid.accepted())


def with_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _wait_for_dag(env: dict, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([local_airflow.airflow_bin(), "dags", "list", "-o", "plain"], env=env,
                             capture_output=True, text=True)
        if DAG_ID in out.stdout:
            return
        time.sleep(3)
    raise AssertionError("the dag-processor did not register the DAG in time")


def _wait_for_run(meta_url: str, timeout: float) -> str | None:
    deadline, state = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        with database.connect(meta_url) as conn:
            row = conn.execute("select state from dag_run where dag_id = %s order by id desc limit 1",
                               (DAG_ID,)).fetchone()
        state = row[0] if row else None
        if state in ("success", "failed"):
            return state
        time.sleep(3)
    return state


def _tail(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text()[-2000:] for p in sorted(folder.glob("*.log")))
