"""The warm Airflow process that forks the end-to-end tests' ``airflow`` children (tests/warm_airflow.py): each child
runs with its own command's environment and output file, in a process group of its own, and says how it ended; a
command with other Airflow settings starts afresh."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests import warm_airflow

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    yield {**base, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    warm_airflow.stop()


def test_each_child_runs_its_own_command_environment_and_output_and_says_how_it_ended(env, tmp_path):
    first = {**env, "AIRFLOW_CONN_PROBE": json.dumps({"conn_type": "postgres", "host": "first.example"})}
    second = {**env, "AIRFLOW_CONN_PROBE": json.dumps({"conn_type": "postgres", "host": "second.example"})}
    a = warm_airflow.start(["connections", "get", "probe", "-o", "json"], first, tmp_path / "a.log")
    b = warm_airflow.start(["connections", "get", "probe", "-o", "json"], second, tmp_path / "b.log")
    assert isinstance(a, warm_airflow.Forked) and isinstance(b, warm_airflow.Forked)  # the second one forked too
    assert a.wait(120) == 0 and b.wait(120) == 0, (tmp_path / "a.log").read_text()[-2000:]
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("a", "b")}
    assert "first.example" in logs["a"] and "second.example" not in logs["a"] and "second.example" in logs["b"]
    assert a.pid != b.pid and os.getpid() not in (a.pid, b.pid)

    bad = warm_airflow.start(["no-such-command"], env, tmp_path / "bad.log")
    assert bad.wait(120) == 2 and bad.returncode == 2  # argparse's exit code, as the airflow script's
    assert "invalid choice" in (tmp_path / "bad.log").read_text()


def test_a_command_with_other_airflow_settings_starts_afresh(env, tmp_path):
    warm_airflow.start(["version"], env, tmp_path / "warm.log").wait(120)
    other = warm_airflow.start(["version"], {**env, "AIRFLOW__CORE__PARALLELISM": "3"}, tmp_path / "other.log")
    assert isinstance(other, subprocess.Popen)
    assert other.wait(120) == 0 and (tmp_path / "other.log").read_text().strip()
