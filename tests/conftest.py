"""Shared fixtures: every test that needs PostgreSQL gets a database of its own on a real server.

The server is ``PRIVACY_TEST_PG_URL`` (default: the local PostgreSQL on 127.0.0.1:5432). When nothing
answers there, an embedded server (PyPI ``pgserver``) is started under ``.demo/pg`` so that the suite
also runs on a machine that has only Python.
"""
from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

# Airflow reads its home at import: give the tests their own, never the user's ~/airflow. Each pytest-xdist
# worker inherits the environment of the process that started it, so a home that process chose for itself
# (marked in PRIVACY_TESTS_AIRFLOW_HOME, with its process id) is replaced by one of the worker's own; a home the user
# set is kept. This file runs twice in one process when a test module imports ``tests.conftest`` (pytest loaded it
# as ``conftest``): the second run keeps the home, which Airflow, imported in between, has already read.
if (os.environ.get("AIRFLOW_HOME") in (None, os.environ.get("PRIVACY_TESTS_AIRFLOW_HOME"))
        and os.environ.get("PRIVACY_TESTS_AIRFLOW_HOME_PID") != str(os.getpid())):
    os.environ["AIRFLOW_HOME"] = os.environ["PRIVACY_TESTS_AIRFLOW_HOME"] = tempfile.mkdtemp(
        prefix=f"privacy-tests-airflow-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
    os.environ["PRIVACY_TESTS_AIRFLOW_HOME_PID"] = str(os.getpid())
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# The end-to-end tests run DAGs in this process too (tests/e2e_world.py): Airflow reads its DAG folder at import.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER",
                      os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dags"))

# The project's plugin registers its timetable and weight strategy (include/seam/timetables.py): a DAG run in this
# process is serialized with them, as under the scheduler.
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER",
                      os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins"))

# The tests run DAGs with dag.test(), where Airflow 3.3.2 fails a run with a deadline alert as it succeeds
# (include/seam/dag.py deadline_alerts_on); test_dag_integrity parses them with the alerts on.
os.environ.setdefault("PRIVACY_DEADLINE_ALERTS", "off")

from devkit import database
from tests import scratch
from tests.e2e_world import (  # noqa: F401  (shared fixtures: tests/e2e_world.py)
    e2e_session, make_world, reference_db, seeded_clone, store_db)


def pytest_xdist_auto_num_workers(config):
    """Workers for ``-n auto`` (pyproject.toml): none when the arguments name one file or tests of one file (no
    worker start-up, output and --pdb as without xdist), else one and a half per core, at least three and at most
    six. Much of the suite's time is waiting: for an Airflow process to start, a scheduler to pick a run up, a
    reviewer to answer. Measured on 2 cores (docs/testing.md): two workers, one file each, 8:30; three, test by
    test, 5:54; four, 6:06. PYTEST_XDIST_AUTO_NUM_WORKERS, as anywhere, overrides this."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    files = {os.path.realpath(os.path.join(config.invocation_params.dir, arg.split("::")[0])) for arg in config.args}
    if len(files) == 1 and os.path.isfile(next(iter(files))):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(3, min(6, cores * 3 // 2))


@functools.lru_cache(maxsize=None)
def _has_a_module_fixture(path: str) -> bool:
    try:
        return bool(re.search(r"@pytest\.fixture\(\s*scope\s*=\s*[\"']module[\"']", Path(path).read_text()))
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def _marked_children(path: str) -> frozenset[str]:
    """The test functions of ``path`` marked ``children`` (``@pytest.mark.children``), read from its source: the
    scheduler runs where the tests are not collected. ``"*"`` stands for every test of a module marked whole."""
    import ast

    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError):
        return frozenset()

    def marks_children(node) -> bool:
        return any(isinstance(n, ast.Attribute) and n.attr == "children" and isinstance(n.value, ast.Attribute)
                   and n.value.attr == "mark" for n in ast.walk(node))

    found = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            if marks_children(node.value):
                found.add("*")
        elif isinstance(node, ast.FunctionDef) and any(marks_children(d) for d in node.decorator_list):
            found.add(node.name)
    return frozenset(found)


def pytest_xdist_make_scheduler(config, log):
    """Tests are handed to the workers one by one, except

    - a module that defines a module-scoped fixture (the Celery stack, the compliance page's api-server over a
      filled store): its tests go to one worker together, so that the fixture is built once;
    - the tests marked ``children`` (Airflow in child processes: the warm Airflow process that forks them and the
      reviewer's api-server, each started once per test process and costing seconds of CPU): they all go to one
      worker, so that one test process starts those, not every worker.

    (xdist's own ``--dist loadgroup`` does not group on pytest 9, whose node ids no longer take the group suffix
    xdist 3.8 writes.)"""
    from xdist.scheduler import LoadScopeScheduling

    root = str(config.rootpath)

    class OneByOneButSharedModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope(root, nodeid)

    return OneByOneButSharedModules(config, log)


def scope(root: str, nodeid: str) -> str:
    """The scheduler's unit for a test: its module, "children", or the test itself."""
    module = nodeid.split("::", 1)[0]
    path = os.path.join(root, module)
    if _has_a_module_fixture(path):
        return module
    marked = _marked_children(path)
    if "*" in marked or nodeid.split("::")[-1].split("[", 1)[0] in marked:
        return "children"
    return nodeid


def pytest_collection_finish(session):
    """The test modules are imported: keep them and what they imported out of the collector's full passes."""
    from tests.e2e_world import freeze_long_lived

    freeze_long_lived()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """On xdist workers, the tests that run Airflow for real (marked e2e) first: each takes seconds to minutes,
    and starting them early while the quick ones fill in keeps the workers' finishing times close. A wrapper, so
    that the sort comes after pytest-randomly's shuffle (each group keeps its random order)."""
    result = yield
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not item.get_closest_marker("e2e"))  # stable
    return result


@pytest.fixture
def restore_logging():
    """The command line's main() configures logging for a terminal: its handler must not outlive pytest's captured
    stream (the modules that call main() use this)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_server_url():
    from devkit.embedded_postgres import server_or_embedded

    yield server_or_embedded(os.environ.get("PRIVACY_TEST_PG_URL", database.DEFAULT_URL))[0]
    scratch.flush()  # the scratch databases still waiting to be dropped, while the server is still there


@pytest.fixture
def fresh_db(pg_server_url):
    """URL of a new, empty database, dropped after the test."""
    name = f"privacy_test_{uuid.uuid4().hex[:12]}"
    url = database.create_database(pg_server_url, name)
    try:
        yield url
    finally:
        scratch.drop_later(pg_server_url, name)


SENDGRID_TEST_KEY = "SG.test-key"


@pytest.fixture(scope="session")
def sendgrid_server(tmp_path_factory):
    """One SendGrid stand-in for the session (accepted payloads also go to a JSON-lines file)."""
    from devkit.standins.sendgrid_server import SendGridStandIn

    record = tmp_path_factory.mktemp("sendgrid") / "accepted.jsonl"
    with SendGridStandIn(api_key=SENDGRID_TEST_KEY, record_path=record, restricted_keys=["SG.no-scope"]) as server:
        yield server


@pytest.fixture
def sendgrid(sendgrid_server):
    """The stand-in, emptied of messages, requests and faults before and after the test."""
    sendgrid_server.clear()
    yield sendgrid_server
    sendgrid_server.clear()


def wait_answered(sendgrid, timeout: float = 5.0) -> None:
    """Wait until the stand-in has answered every message it accepted (a late answer too), so that a test's late
    answer is not logged into the next test's request log: the stand-in outlives a test."""
    import time

    deadline = time.time() + timeout
    while len(sendgrid.requests()) < len(sendgrid.accepted()) and time.time() < deadline:
        time.sleep(0.05)
    assert len(sendgrid.requests()) >= len(sendgrid.accepted())


@pytest.fixture
def sg(sendgrid):
    """Short name of :func:`sendgrid` for the stand-in's and the mailer's own tests."""
    return sendgrid


def pytest_sessionfinish(session, exitstatus):
    """pgserver logs from an atexit hook, after pytest has closed the streams its handlers write to."""
    import logging

    logging.getLogger("pgserver").disabled = True


def ops_datamap():
    """The default data map reduced to the operational database's rows (no other stores, no file columns): what the
    tests of the operational erasure, purge and fulfilment steps run on; the other stores and the files have their
    own tests (tests/test_erasure_stores.py and the end-to-end tests)."""
    from include.datamap import parse_datamap

    return parse_datamap(ops_datamap_raw())


def ops_datamap_raw() -> dict:
    """:func:`ops_datamap` as written (the YAML's dict), for a test that changes an entry of it."""
    import yaml

    from include.datamap import OPS_CONNECTION, default_path

    raw = yaml.safe_load(default_path().read_text(encoding="utf-8"))
    raw.pop("buckets", None)
    raw["personal_data"] = [{k: v for k, v in e.items() if k != "files"} for e in raw["personal_data"]
                            if e.get("connection", OPS_CONNECTION) == OPS_CONNECTION]
    return raw


@pytest.fixture
def three_stores(fresh_db, pg_server_url):
    """Three databases: the operational one (with the compliance store) and SPEC §3.1's support desk and analytics,
    each with its reference tables: {connection id: url}."""
    from devkit.operational_schema import create_reference_schema, create_store_schema

    urls = {"ops_db": fresh_db}
    names = []
    for conn_id in ("support_db", "analytics_db"):
        name = f"privacy_test_{uuid.uuid4().hex[:12]}"
        names.append(name)
        urls[conn_id] = database.create_database(pg_server_url, name)
    try:
        for conn_id, url in urls.items():
            with database.connect(url, autocommit=True) as conn:
                create_reference_schema(conn) if conn_id == "ops_db" else create_store_schema(conn, conn_id)
        yield urls
    finally:
        for name in names:
            scratch.drop_later(pg_server_url, name)
