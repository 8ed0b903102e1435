"""How tests/conftest.py hands the tests to the xdist workers: one by one, a module with a module-scoped fixture
whole, and every test marked ``children`` to one worker (which then starts the warm Airflow and the reviewer's
api-server once, instead of every worker starting its own)."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import scope

ROOT = Path(__file__).resolve().parent.parent
# What starts Airflow in a child process of the test process: the world's (tests/e2e_world.py), the purge tests'
# support (tests/purge_support.py) and the warm process's own.
STARTS_CHILDREN = {"start", "run_child", "reviewer", "tasks_test", "start_in_turn"}
OWNERS = {"world", "support", "warm_airflow"}


def _tests_and_what_they_call():
    for path in sorted((ROOT / "tests").glob("test_e2e_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                called = {n.func.attr for n in ast.walk(node) if isinstance(n, ast.Call)
                          and isinstance(n.func, ast.Attribute) and getattr(n.func.value, "id", None) in OWNERS}
                yield path, node.name, called


def test_every_test_that_starts_airflow_children_runs_with_the_others_and_no_other_does():
    starting, grouped = set(), set()
    for path, name, called in _tests_and_what_they_call():
        nodeid = f"tests/{path.name}::{name}"
        if called & STARTS_CHILDREN:
            starting.add(nodeid)
        if scope(str(ROOT), nodeid) == "children":
            grouped.add(nodeid)
    assert starting and starting == grouped, {"not marked children": sorted(starting - grouped),
                                              "marked but starting none": sorted(grouped - starting)}


def test_a_module_with_a_module_fixture_goes_whole_and_any_other_test_alone():
    assert scope(str(ROOT), "tests/test_e2e_celery.py::test_x[dsr_deadline_tracking]") == "tests/test_e2e_celery.py"
    assert scope(str(ROOT), "tests/test_deadlines.py::test_y") == "tests/test_deadlines.py::test_y"
    # A parametrized test keeps its mark; a module marked whole sends every test of it.
    reviewer = ("tests/test_e2e_dsr_fulfilment.py::"
                "test_a_reviewer_rejects_then_approves_an_erasure_plan_above_the_threshold")
    assert scope(str(ROOT), reviewer + "[x]") == "children"
    assert scope(str(ROOT), "tests/test_e2e_child_purge_sigkill.py::anything") == "children"


def test_loading_conftest_again_in_the_same_process_keeps_the_airflow_home():
    """A test module that imports ``tests.conftest`` runs this file a second time in the process (pytest loaded it as
    ``conftest``). Airflow, imported in between, has read the home; a new one made its metadata and the next in-process
    DAG run disagree ('no such table: dag' for the compliance page's tests after the alert tests, without xdist)."""
    import importlib.util
    import os

    home = os.environ["AIRFLOW_HOME"]
    spec = importlib.util.spec_from_file_location("conftest_loaded_again", ROOT / "tests" / "conftest.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert os.environ["AIRFLOW_HOME"] == home
