"""The in-process runner (devkit.local_airflow.run_in_process) spares dag.test() two idle costs, and only those:

- its own polling: after a task fails, dag.test() went round its loop once a second for each level of downstream
  tasks it marks upstream_failed (a failed purge run sat 6 s doing nothing; every setup-fault test pays it for each
  failing run). Every other sleep in the process keeps its length (a mailer's back-off, the stand-ins');
- the whole bundle: before each run it parsed every DAG file and wrote all six DAGs to the metadata (for a
  TriggerDagRunOperator's target; none of ours triggers another): a dry run of the purge took 3.9 s in the test
  process, 1.3 s with only its own file."""
from __future__ import annotations

import re
import time
from datetime import datetime

import pytest

from devkit import local_airflow
from tests import purge_support as support


def test_a_sleep_elsewhere_keeps_its_length_and_time_sleep_is_restored():
    real = time.sleep
    with local_airflow.brisk_polls(interval=0.01):
        started = time.monotonic()
        time.sleep(0.3)
        assert time.monotonic() - started >= 0.3
    assert time.sleep is real


@pytest.mark.e2e
def test_a_failed_run_is_not_polled_once_a_second_and_writes_only_its_own_dag(make_world):
    world = make_world(support.DAG_ID, users=1500, seed=11, sendgrid_key="SG.brisk", subject_key=support.SUBJECT_KEY)
    world["pii"] = support.personal_data(world["conn"], world["today"])
    no_key = {k: v for k, v in world["env"].items() if k != "AIRFLOW_VAR_PRIVACY_SUBJECT_KEY"}
    state, log = world.run("no-key", env=no_key)
    assert state == "failed"
    polls = [datetime.fromisoformat(m.group(1)) for m in
             re.finditer(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z? \[warning *\] No tasks to run", log, re.M)]
    assert len(polls) >= 2, log[-3000:]  # the downstream tasks are marked level by level
    gaps = [(b - a).total_seconds() for a, b in zip(polls, polls[1:])]
    assert max(gaps) < 0.5, gaps  # once a second before
    written = re.findall(r"Bulk-writing dags to db .*?count=(\d+)", log)
    assert written and set(written) == {"1"}, written  # count=6 before: the whole bundle
