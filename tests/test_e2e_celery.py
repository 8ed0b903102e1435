"""Every DAG, unchanged, on Airflow's Celery stack: scheduler, dag-processor, api-server, Celery worker.

One stack for the module, as in docker-compose.yaml: metadata in PostgreSQL, Redis as the broker, a Celery
worker process that shares no files with the others (on a queue of this test's own, so that another
checkout's test on the same Redis never takes its tasks). Every DAG is unpaused and the scheduler runs it
unattended: the latest interval of each scheduled DAG, and for the interval-based manifests the first
day of its catch-up — bounded to the last CATCH_UP_DAYS days, not every day since the start date. Each DAG's run must succeed with every one of its tasks executed by the worker,
mapped ones in their pools. Needs Redis on 127.0.0.1:6379 (.ci/run starts it when it is down).

The approval threshold sits between the fulfilment's erasures (8 at most) and the purge's children (30):
the fulfilment erases without a person, the purge's plan waits for one — and nobody answers, so the
scheduler applies the approval's timeout (a few seconds here): Reject, nothing erased. (`airflow dags
test` never applies that timeout; only a scheduler does.)
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import notification_oracle as oracle
from devkit import database, local_airflow
from tests import scratch
from devkit.seed.demo_data import seed
from include import compliance_store
from include.seam.dag import GCS_POOL, SENDGRID_POOL

pytestmark = [pytest.mark.e2e, pytest.mark.stack, pytest.mark.timeout(1500)]
DAGS = ("dsr_deadline_tracking", "child_data_purge", "vendor_sharing_manifests", "policy_change_notifications",
        "dsr_fulfilment", "personal_data_discovery")
# The interval-based manifests catch up the last CATCH_UP_DAYS complete days (PRIVACY_CATCH_UP_DAYS), never from
# the DAGs' start date: the test waits for the first of them, and no other scheduled run of it may exist. One day:
# a second day's run (19 mapped uploads more, beside the stack) added 17 s to this module alone and proved no more
# here; a window of several days, the first first, is tests/test_timetables.py's.
CATCH_UP_DAYS = 1
FIRST_DAY = datetime.combine(datetime.now(timezone.utc).date() - timedelta(days=CATCH_UP_DAYS), datetime.min.time(),
                             tzinfo=timezone.utc)
# The demo data is anchored today, so those days have shares; every other DAG is as happy with data of any
# date (the deadline tracker evaluates it as of today).
ANCHOR = datetime.now(timezone.utc).date()
SENDERS, BATCH = 3, 200
THRESHOLD = 15
APPROVAL_TIMEOUT_HOURS = "0.004"  # 14.4 s


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


def with_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop(procs: dict[str, subprocess.Popen], grace: float) -> None:
    """SIGTERM to every process group, SIGKILL to those still there after ``grace`` seconds (a Celery worker's
    warm shutdown waits for its running tasks)."""
    for proc in procs.values():
        with_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with_group(proc, signal.SIGKILL)
            proc.wait(timeout=20)
    procs.clear()


def _tail(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text()[-2000:] for p in sorted(folder.glob("*.log")))


@pytest.fixture(scope="module")
def stack(pg_server_url, sendgrid_server, tmp_path_factory):
    """The Celery stack with every DAG unpaused; yields once each DAG's run has finished."""
    if not _redis_answers():
        # CI guarantees Redis (.ci/run starts it); a newcomer's machine with only Python may not have one.
        message = "Redis does not answer on 127.0.0.1:6379, which the Celery broker needs"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    sendgrid_server.clear()
    folder = tmp_path_factory.mktemp("celery")
    suffix = uuid.uuid4().hex[:8]
    names = {"ops": f"privacy_celery_ops_{suffix}", "meta": f"privacy_celery_meta_{suffix}"}
    urls = {k: database.create_database(pg_server_url, v) for k, v in names.items()}
    procs: dict[str, subprocess.Popen] = {}
    try:
        seed(urls["ops"], users=1500, seed=5, anchor=ANCHOR)
        # The compliance store exists, as in a deployment: the runs' deadlines (3 s) pass before their first task
        # would create it, and a deadline alert is recorded there.
        with database.connect(urls["ops"], autocommit=True) as conn:
            compliance_store.migrate(conn)
        from devkit.seed.stores import seed_stores_beside, store_urls  # SPEC §3.1's other stores, beside it

        stores = store_urls(urls["ops"])
        names.update({c: database.database_name(u) for c, u in stores.items()})
        seed_stores_beside(urls["ops"], seed=5)
        for bucket in ("acme-uploads", "acme-support-attachments"):  # the data map's buckets, as folders
            (folder / "files" / bucket).mkdir(parents=True)
        api_port, log_port = _free_port(), _free_port()
        services = local_airflow.LocalServices(ops_url=urls["ops"], compliance_url=urls["ops"],
                                               sendgrid_url=sendgrid_server.base_url,
                                               sendgrid_api_key=sendgrid_server.api_key,
                                               support_url=stores["support_db"], analytics_url=stores["analytics_db"])
        env = local_airflow.airflow_env(folder / "airflow", services, settings={
            "evidence_location": f"file://{folder / 'evidence'}", "files_location": f"file://{folder / 'files'}",
            "notification_batch_size": BATCH,
            "notification_senders": SENDERS, "purge_threshold": THRESHOLD})
        queue = f"privacy-e2e-{uuid.uuid4().hex[:8]}"
        env.update({
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": urls["meta"].replace("postgresql://", "postgresql+psycopg2://", 1),
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/13",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + urls["meta"],
            "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(log_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "celery-e2e-" + uuid.uuid4().hex,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The DAG files do not change while the stack runs: parsed once, not again every 30 s (six files, 3-5 s
            # of CPU a round, beside a stack that has the machine's two cores to share).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
            "PRIVACY_APPROVAL_TIMEOUT_HOURS": APPROVAL_TIMEOUT_HOURS,
            "PRIVACY_CATCH_UP_DAYS": str(CATCH_UP_DAYS),
            # A scheduler: the DAGs' deadline alerts are on, as in production (dag.test() cannot run them), and
            # due 3 s after a run is queued: every run misses it, and on-call is told once per run.
            "PRIVACY_DEADLINE_ALERTS": "on",
            "PRIVACY_LATE_AFTER_MINUTES": "0.05",
        })
        local_airflow.migrate_metadata(env)  # with the pools of pools.json
        airflow = local_airflow.airflow_bin()
        commands = {"api-server": [airflow, "api-server", "-p", str(api_port), "-H", "127.0.0.1"],
                    "scheduler": [airflow, "scheduler"], "dag-processor": [airflow, "dag-processor"],
                    "worker": [airflow, "celery", "worker", "--concurrency", "4", "--queues", queue]}
        for name, cmd in commands.items():
            log = open(folder / f"{name}.log", "w")
            # Each in its own process group, so that the whole tree (worker children included) is ended.
            procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for(lambda: set(DAGS) <= _registered(urls["meta"]), 180, "the dag-processor to register every DAG")
        subprocess.run([airflow, "dags", "unpause", "--treat-dag-id-as-regex", "--yes", f"^({'|'.join(DAGS)})$"],
                       env=env, check=True, capture_output=True)
        runs: dict[str, tuple[str, str]] = {}

        def each_dag_finished():
            for dag_id in set(DAGS) - set(runs):
                found = _finished_run(urls["meta"], dag_id)
                if found:
                    runs[dag_id] = found
                    # No later run of it: the manifests would catch up every day since the start date, and
                    # the others start their next interval (every 15 minutes, hourly, daily) while the
                    # rest finish. Those runs are not the ones examined, and would only load the worker.
                    # Paused as `airflow dags pause` does it (the dag row's flag, which the scheduler reads),
                    # without starting an Airflow process for each DAG (2 s of CPU each, beside the stack).
                    with database.connect(urls["meta"], autocommit=True) as conn:
                        conn.execute("update dag set is_paused = true where dag_id = %s", (dag_id,))
            return len(runs) == len(DAGS)

        _wait_for(each_dag_finished, 900, "a finished run of every DAG")
        with database.connect(urls["meta"]) as conn:
            manifest_runs = conn.execute("select logical_date, run_type from dag_run where dag_id = %s",
                                         ("vendor_sharing_manifests",)).fetchall()
        # The checks read only the databases and the worker's log: the stack stops first, so that catch-up
        # tasks it had already queued do not keep the machine busy while they run.
        _stop(procs, grace=5)
        yield {"urls": urls, "runs": runs, "folder": folder, "worker_log": (folder / "worker.log").read_text(),
               "sendgrid": sendgrid_server, "manifest_runs": manifest_runs}
    finally:
        _stop(procs, grace=20)
        for name in names.values():
            scratch.drop_later(pg_server_url, name)
        sendgrid_server.clear()


def _registered(meta_url: str) -> set[str]:
    """The DAGs the dag-processor has serialized (what `airflow dags list` shows), read from the metadata
    database: polling it through the CLI cost an Airflow start-up every three seconds."""
    with database.connect(meta_url) as conn:
        return {d for (d,) in conn.execute("select d.dag_id from dag d join serialized_dag s on s.dag_id = d.dag_id "
                                           "where not d.is_stale")}


def _finished_run(meta_url: str, dag_id: str) -> tuple[str, str] | None:
    """(run id, state) of the DAG's run this test waits for, once it has finished.

    That is the first run the scheduler made when the DAG was unpaused (the manifests: the first day of the
    catch-up), never "the latest": a DAG whose next interval begins while the test waits gets a second
    run, and for the campaign that run finds the campaign finished and stops at its first step.
    """
    with database.connect(meta_url) as conn:
        if dag_id == "vendor_sharing_manifests":
            row = conn.execute("select run_id, state from dag_run where dag_id = %s and logical_date = %s",
                               (dag_id, FIRST_DAY)).fetchone()
        else:
            row = conn.execute("select run_id, state from dag_run where dag_id = %s and run_type = 'scheduled' "
                               "order by id limit 1", (dag_id,)).fetchone()
    return tuple(row) if row and row[1] in ("success", "failed") else None


def _wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _tasks(stack, dag_id: str) -> list[tuple]:
    run_id = stack["runs"][dag_id][0]
    with database.connect(stack["urls"]["meta"]) as conn:
        return conn.execute("select task_id, map_index, state, pool, operator from task_instance where dag_id = %s "
                            "and run_id = %s", (dag_id, run_id)).fetchall()


@pytest.mark.parametrize("dag_id", DAGS)
def test_each_dag_runs_unattended_with_every_task_on_the_celery_worker(stack, dag_id):
    assert stack["runs"][dag_id][1] == "success", _tail(stack["folder"])
    tasks = _tasks(stack, dag_id)
    # An EmptyOperator (a join point) is marked done by the scheduler itself: it has no work to send anywhere.
    ran = [t for t in tasks if t[2] == "success" and t[4] != "EmptyOperator"]
    assert ran and {t[0] for t in ran} >= {"check_run_conf", "anchor_audit_log"}
    for task_id, map_index, _state, _pool, _operator in ran:
        marker = f"task_id={task_id}/" if map_index < 0 else f"task_id={task_id}/map_index={map_index}/"
        assert marker in stack["worker_log"], (dag_id, task_id, map_index)


def test_the_manifests_mapped_tasks_ran_per_vendor_in_the_gcs_pool(stack):
    mapped = [t for t in _tasks(stack, "vendor_sharing_manifests") if t[0] == "write_vendor_manifest" and t[1] >= 0]
    assert mapped and {(t[2], t[3]) for t in mapped} == {("success", GCS_POOL)}
    with database.connect(stack["urls"]["ops"]) as conn:
        day_vendors = {v for (v,) in conn.execute(
            "select distinct vendor_id from data_shares where shared_at >= %s and shared_at < %s",
            (FIRST_DAY, FIRST_DAY + timedelta(days=1)))}
        recorded = {v for (v,) in conn.execute(
            "select vendor_id from compliance.vendor_manifests where period_label = %s",
            (FIRST_DAY.date().isoformat(),))}
    assert day_vendors and recorded == day_vendors


def test_unpausing_the_manifests_starts_only_the_bounded_catch_up(stack):
    """Issue 30: unpaused (as the trigger form's "Unpause on trigger" box does), the manifests queued a run for
    every day since 2026-01-01. Now: at most the last CATCH_UP_DAYS days, the first of them first."""
    scheduled = sorted(at for at, run_type in stack["manifest_runs"] if run_type == "scheduled")
    assert scheduled and scheduled[0] == FIRST_DAY and len(scheduled) <= CATCH_UP_DAYS, scheduled


def test_a_run_not_finished_by_its_deadline_tells_on_call_once_through_the_scheduler(stack):
    """Issue 30, point 4, end to end: the scheduler sees each run miss its deadline (Airflow's DeadlineAlert), the
    executor runs include.seam.alerts.run_late, and on-call gets one email per run through the SendGrid stand-in."""
    with database.connect(stack["urls"]["ops"]) as conn:
        late = {(d, r): s for d, r, s in conn.execute(
            "select dag_id, run_id, status from compliance.run_alerts where kind = 'late'")}
    for dag_id, (run_id, _state) in stack["runs"].items():
        assert late.get((dag_id, run_id)) == "sent", (dag_id, run_id, sorted(late))
    emails = [m["payload"]["personalizations"][0]["custom_args"] for m in stack["sendgrid"].accepted()
              if m["payload"].get("custom_args", {}).get("campaign") == "run-alert"]
    keys = [e["key"] for e in emails if e.get("alert") == "late"]
    assert len(keys) == len(set(keys)) == len(late)  # once per run


def test_the_campaign_senders_ran_in_the_sendgrid_pool_and_told_everyone_once(stack):
    senders = [t for t in _tasks(stack, "policy_change_notifications") if t[0] == "send_batches"]
    assert sorted(t[1] for t in senders) == list(range(SENDERS))
    assert {(t[2], t[3]) for t in senders} == {("success", SENDGRID_POOL)}
    with database.connect(stack["urls"]["ops"]) as conn:
        state, sent, pending, built_at = conn.execute(
            "select state, sent, pending, created_at from compliance.notification_campaigns where scope = 'live'"
        ).fetchone()
        # Who is a child depends on the day: the day the campaign was built, not the day this test checks it.
        eligible = oracle.expected(conn, built_at.astimezone(timezone.utc).date(),
                                   purged=oracle.purged_children(conn, local_airflow.LocalServices.subject_key.encode()))
        live = {r[0].strip().lower() for r in conn.execute("select email from users where email is not null")}
    got = oracle.received(stack["sendgrid"].accepted(), batch_size=BATCH)
    assert state == "finished" and pending == 0 and sent == len(got)
    assert set(got.values()) == {1}  # nobody twice
    assert set(eligible) <= set(got)  # everyone still eligible was told
    # The purge and the fulfilment ran beside the campaign: an address told and no longer eligible belongs
    # to an account they erased since.
    assert not (set(got) - set(eligible)) & live


def test_the_deadlines_purge_and_fulfilment_recorded_their_work(stack):
    with database.connect(stack["urls"]["ops"]) as conn:
        # Every request still there was evaluated (the fulfilment may since have erased some evaluated ones).
        unevaluated = conn.execute("select count(*) from privacy_requests r where not exists (select from "
                                   "compliance.dsr_status s where s.request_id = r.id)").fetchone()[0]
        evaluated = conn.execute("select count(*) from compliance.dsr_status").fetchone()[0]
        escalated = conn.execute("select count(*) from compliance.dsr_escalations where status = 'sent'").fetchone()[0]
        fulfilled = conn.execute("select count(*) from compliance.dsr_fulfilments").fetchone()[0]
        erased = conn.execute("select count(*) from compliance.dsr_fulfilments where outcome = 'erased'").fetchone()[0]
    assert evaluated > 0 and unevaluated == 0 and escalated > 0
    assert any(m["payload"].get("custom_args", {}).get("campaign") == "dsr-digest" for m in stack["sendgrid"].accepted())
    assert fulfilled > 0 and 0 < erased <= THRESHOLD  # within the threshold: erased without a person


def test_an_erasure_plan_nobody_approves_times_out_to_reject_and_erases_nothing(stack):
    run_id = stack["runs"]["child_data_purge"][0]
    states = {t[0]: t[2] for t in _tasks(stack, "child_data_purge")}
    assert states["approve_purge"] == "success" and states["purge_subjects"] == "skipped"
    with database.connect(stack["urls"]["ops"]) as conn:
        state, approval, approval_state, subjects = conn.execute(
            "select state, approval, approval_state, plan_subjects from compliance.child_purge_runs where run_id = %s",
            (run_id,)).fetchone()
        outcomes = dict(conn.execute("select outcome, count(*) from compliance.child_purges where run_id = %s "
                                     "group by 1", (run_id,)).fetchall())
        reasons = {r for (r,) in conn.execute("select distinct reason from compliance.child_purges where run_id = %s "
                                              "and outcome = 'rejected'", (run_id,))}
        still_there = conn.execute("select count(*) from users where id = any(%s)", ([u for (u,) in conn.execute(
            "select user_id from compliance.child_purges where run_id = %s and outcome = 'rejected'", (run_id,))],)
        ).fetchone()[0]
    assert subjects > THRESHOLD and (state, approval, approval_state) == ("rejected", "review", "timed_out")
    assert "purged" not in outcomes and outcomes.get("rejected") == subjects == still_there
    assert reasons == {"no one approved the plan before the approval timed out; nothing was erased"}
