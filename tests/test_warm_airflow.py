"""The warm Airflow process that forks the end-to-end tests' ``airflow`` children (tests/warm_airflow.py): each child
runs with its own command's environment and output file, in a process group of its own, and says how it ended; a
command with other Airflow settings (read once, at import) is forked from a warm process of its own."""
from __future__ import annotations

import json
import os
import threading

import pytest

from tests import warm_airflow

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Airflow settings of this module's own: one warm process serves both tests (starting one costs seconds of CPU),
    and each test still passes alone."""
    home = tmp_path_factory.mktemp("home")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env = {**base, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    yield env
    warm_airflow.stop(env)  # only this module's: the end-to-end tests' warm process goes on serving them


def test_each_child_runs_its_own_command_environment_and_output_and_says_how_it_ended(env, tmp_path):
    first = {**env, "AIRFLOW_CONN_PROBE": json.dumps({"conn_type": "postgres", "host": "first.example"})}
    second = {**env, "AIRFLOW_CONN_PROBE": json.dumps({"conn_type": "postgres", "host": "second.example"})}
    # Two threads ask at once, as the two-runs-at-once test's do: each gets its own child.
    started = {}
    threads = [threading.Thread(target=lambda name=name, e=e: started.update({name: warm_airflow.start(
        ["connections", "get", "probe", "-o", "json"], e, tmp_path / f"{name}.log")})) for name, e in
        (("a", first), ("b", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    a, b = started["a"], started["b"]
    assert a.wait(120) == 0 and b.wait(120) == 0, (tmp_path / "a.log").read_text()[-2000:]
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("a", "b")}
    assert "first.example" in logs["a"] and "second.example" not in logs["a"] and "second.example" in logs["b"]
    assert a.pid != b.pid and os.getpid() not in (a.pid, b.pid)

    bad = warm_airflow.start(["no-such-command"], env, tmp_path / "bad.log")
    assert bad.wait(120) == 2 and bad.returncode == 2  # argparse's exit code, as the airflow script's
    assert "invalid choice" in (tmp_path / "bad.log").read_text()


def test_a_command_with_other_airflow_settings_is_forked_from_a_warm_process_of_its_own(env, tmp_path):
    other_env = {**env, "AIRFLOW__CORE__PARALLELISM": "3"}
    try:
        mine = warm_airflow.start(["config", "get-value", "core", "parallelism"], env, tmp_path / "mine.log")
        other = warm_airflow.start(["config", "get-value", "core", "parallelism"], other_env, tmp_path / "other.log")
        assert mine.wait(120) == 0 and other.wait(120) == 0, (tmp_path / "other.log").read_text()[-2000:]
        assert mine._server is not other._server
        assert (tmp_path / "other.log").read_text().split()[-1] == "3"
        assert (tmp_path / "mine.log").read_text().split()[-1] != "3"
    finally:
        warm_airflow.stop(other_env)


def test_commands_in_turn_run_in_one_child_each_between_its_markers_and_the_first_failure_ends_it(env, tmp_path):
    first, second = ["config", "get-value", "core", "load_examples"], ["config", "get-value", "core", "parallelism"]
    both = warm_airflow.start_in_turn([first, second], env, tmp_path / "turn.log")
    assert both.wait(120) == 0, (tmp_path / "turn.log").read_text()[-2000:]
    text = (tmp_path / "turn.log").read_text()
    opened, closed = text.index("==== airflow " + " ".join(first)), text.index("==== done")
    assert "False" in text[opened:closed]
    assert closed < text.index("==== airflow " + " ".join(second)) and text.count("==== done") == 2

    failing = warm_airflow.start_in_turn([first, ["tasks", "no-such-subcommand"], second], env, tmp_path / "failing.log")
    assert failing.wait(120) == 2  # argparse's exit code, as the airflow script's
    text = (tmp_path / "failing.log").read_text()
    assert "invalid choice" in text and text.count("==== done") == 1 and " ".join(second) not in text
