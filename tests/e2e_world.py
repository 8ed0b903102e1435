"""The one world of the end-to-end tests: a seeded database, the stand-ins, the Airflow environment, the runs.

Every end-to-end test gets a world of its own, so that it passes run alone and in any order:

- **Databases**: each seed (users, seed, anchor, planted changes) is made once per test process, as a template
  database, and every test gets a clone of it (``CREATE DATABASE ... TEMPLATE``, a fraction of a second)
  instead of seeding again. The clone is dropped after the test.
- **Stand-ins**: a SendGrid stand-in (and, where asked, a GCS emulator) of the test's own, started in this
  process (threads): nothing a test sent or stored is seen by another.
- **Airflow**: the DAGs run for real. Sequential runs go through ``dag.test()`` in this process (it returns the
  DagRun; the task logs are captured and returned as the run's log); the test's connections, Variables and
  settings are the ``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*`` and ``PRIVACY_*`` variables of its environment, set
  for the test. Where the process boundary is the point (SIGKILL, a reviewer answering over REST, two runs at
  once) ``airflow dags test`` runs in a child process on a home of this test process's own (one migrated
  SQLite metadata database, and one reviewer's api-server on it when a test needs a person), forked from a warm
  Airflow process (tests/warm_airflow.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from psycopg import sql

from devkit import database, local_airflow
from tests import scratch, warm_airflow

_templates: dict[tuple, tuple[str, dict]] = {}  # seed key -> (template database name, seed summary)
_store_templates: dict[str, dict[str, str]] = {}  # ops template -> {connection id: template database name}
_pii: dict[tuple, set[str]] = {}


def template(pg_server_url: str, users: int, seed: int, anchor: date, prepare: str | None = None,
             store: bool = False) -> tuple[str, dict]:
    """The name of a template database seeded with these arguments (made once per test process) and its summary.

    ``prepare`` is SQL run after the seed (planted changes a module needs on every clone); with ``store`` the
    compliance store is migrated in it too.
    """
    key = (pg_server_url, users, seed, anchor, prepare, store)
    if key not in _templates:
        from devkit.seed.demo_data import seed as seed_demo

        name, url = _new_template(pg_server_url)
        summary = seed_demo(url, users=users, seed=seed, anchor=anchor)
        with database.connect(url, autocommit=True) as conn:
            if prepare:
                conn.execute(prepare)
            if store:
                from include import compliance_store

                compliance_store.migrate(conn)
        _templates[key] = (name, summary)
    return _templates[key]


def _new_template(pg_server_url: str) -> tuple[str, str]:
    """A new, empty database for a template of this test process: (name, url)."""
    name = f"privacy_tpl_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    return name, database.create_database(pg_server_url, name)


def schema_template(pg_server_url: str, *, reference: bool) -> str:
    """The name of a template database holding the compliance store, every migration applied, and with ``reference``
    SPEC's reference schema too, empty (made once per test process): creating the schema and running the migrations
    cost the server about 0.2 s of CPU for each test that needed them; a clone costs a copy of the files."""
    key = (pg_server_url, "schema", reference)
    if key not in _templates:
        from devkit.operational_schema import create_reference_schema
        from include import compliance_store

        name, url = _new_template(pg_server_url)
        with database.connect(url, autocommit=True) as conn:
            if reference:
                create_reference_schema(conn)
            compliance_store.migrate(conn)
        _templates[key] = (name, {})
    return _templates[key][0]


def store_templates(pg_server_url: str, ops_template: str, seed: int) -> dict[str, str]:
    """Template databases of SPEC §3.1's other stores (support desk, analytics), seeded from an operational
    template once per test process: {connection id: template name}."""
    if ops_template not in _store_templates:
        from devkit.seed.stores import seed_stores

        names = {c: f"{ops_template}_{c.split('_')[0]}" for c in ("support_db", "analytics_db")}
        urls = {c: database.create_database(pg_server_url, n) for c, n in names.items()}
        seed_stores(database.with_database(pg_server_url, ops_template), urls["support_db"], urls["analytics_db"],
                    seed=seed)
        _store_templates[ops_template] = names
    return _store_templates[ops_template]


def drop_templates(pg_server_url: str) -> None:
    """Hand this process's templates to the scratch drops: dropped together when the session ends (one after the
    other, each drop waited for a checkpoint of its own)."""
    for (server, *_), (name, _) in list(_templates.items()):
        if server == pg_server_url:
            for store in _store_templates.pop(name, {}).values():
                scratch.drop_later(pg_server_url, store)
            scratch.drop_later(pg_server_url, name)
    _templates.clear()


def clone(pg_server_url: str, template_name: str, prefix: str = "privacy_e2e") -> tuple[str, str]:
    """A new database copied from ``template_name``: (name, url)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with database.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name),
                                                                      sql.Identifier(template_name)))
        # The dev kit's mark and settings (not copied from the template): the kit drops only what it made.
        database.mark_as_ours(conn, name)
    return name, database.with_database(pg_server_url, name)


def personal_data(conn, key: tuple | None = None) -> set[str]:
    """Every email, name, phone and IP address of a data subject in the seeded database (cached per seed)."""
    if key is not None and key in _pii:
        return _pii[key]
    values: set[str] = set()
    for query in ("select email from users", "select full_name from users", "select phone from users",
                  "select requester_email from privacy_requests", "select email from support_messages",
                  "select phone from support_messages", "select host(ip_address) from access_logs",
                  "select reported_email from child_reports"):
        values |= {v.lower() for (v,) in conn.execute(query) if v and len(v) >= 7}
    if key is not None:
        _pii[key] = values
    return values


# -- Airflow in this process ------------------------------------------------------------------------------

_migrated = False


def metadata_ready() -> None:
    """This process's Airflow metadata database (SQLite in its AIRFLOW_HOME), migrated once per test process."""
    global _migrated
    if not _migrated:
        local_airflow.migrate_metadata({**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(local_airflow.REPO / "dags"),
                                        "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        _migrated = True


def run_in_process(dag_id: str, env: dict[str, str], conf: dict | None = None,
                   logical_date: str | None = None, retry_after: float | None = None) -> tuple[str | None, str]:
    """One real DAG run with ``dag.test()`` in this process (its metadata migrated first): (state, log).
    ``retry_after``: the seconds a failed task waits for its retry in this run (the DAGs' own delay is a minute and
    more), for tests of what a retry resumes."""
    global _frozen
    metadata_ready()
    try:
        return local_airflow.run_in_process(dag_id, env, conf, logical_date, retry_after)
    finally:
        if not _frozen:
            freeze_long_lived()
            _frozen = True


_frozen = False


def freeze_long_lived() -> None:
    """Move what this process holds now (imported modules; after a first run, Airflow's models, its in-process
    execution API and their caches) out of the garbage collector's sight: every full collection walked them again,
    about 3 s of CPU per test process in the quick loop. What later tests make is collected as before."""
    import gc

    gc.collect()
    gc.freeze()


# -- Airflow in a child process ---------------------------------------------------------------------------

_subprocess_home: Path | None = None
_reviewer = None
REVIEWER_ENV = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reviewer:admin",
                "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-reviewer-jwt-secret"}


def subprocess_home(tmp_root: Path) -> Path:
    """One Airflow home (migrated SQLite metadata) for every ``airflow dags test`` this test process starts."""
    global _subprocess_home
    if _subprocess_home is None:
        home = tmp_root / "airflow-children"
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "reviewer-passwords.json"
        passwords.write_text(json.dumps({"reviewer": "reviewer-pw"}))
        env = {**os.environ, "AIRFLOW_HOME": str(home)}
        env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW__")}
        env.update({"AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(local_airflow.REPO / "dags")})
        local_airflow.migrate_metadata(env)
        _subprocess_home = home
    return _subprocess_home


def child_env(env: dict[str, str], home: Path) -> dict[str, str]:
    """``env`` for a child process on the shared child home, with the reviewer's login."""
    return {**env, "AIRFLOW_HOME": str(home), **REVIEWER_ENV,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "reviewer-passwords.json")}


def reviewer(env: dict[str, str]):
    """The person answering approval requests over REST: one api-server per test process, on the child home."""
    global _reviewer
    from tests import purge_support

    if _reviewer is None or _reviewer.proc.poll() is not None:
        home = Path(env["AIRFLOW_HOME"])
        _reviewer = purge_support.Reviewer(env, home, port=local_airflow.free_port())
    return _reviewer


def stop_reviewer() -> None:
    global _reviewer
    if _reviewer is not None:
        _reviewer.stop()
        _reviewer = None


# -- the world ------------------------------------------------------------------------------------------

class World(dict):
    """A test's world; a dict (``world["conn"]``) so that the tests read it as they always have."""

    def run(self, name: str, dag_id: str | None = None, conf: dict | None = None, env: dict | None = None,
            logical_date: str | None = None, retry_after: float | None = None) -> tuple[str | None, str]:
        """A real run in this process; its log is kept in ``logs/<name>.log`` and in ``texts``, and scanned for
        the seeded personal data."""
        state, text = run_in_process(dag_id or self["dag_id"], env or self["env"], conf, logical_date, retry_after)
        return state, self._keep(name, text)

    def _keep(self, name: str, text: str) -> str:
        path = self["logs"] / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self["texts"].append(text)
        if self.get("scan_logs", True):
            lowered = text.lower()
            found = sorted(v for v in self["pii"] if v in lowered)
            assert not found, f"personal data in the log of run {name} ({len(found)} value(s))"
        return text

    def child_env(self, env: dict | None = None) -> dict[str, str]:
        return child_env(env or self["env"], self["child_home"])

    def start(self, name: str, conf: dict | None = None, env: dict | None = None, dag_id: str | None = None,
              logical_date: str | None = None) -> warm_airflow.Forked:
        """``airflow dags test`` in a child process of its own process group (so it can be killed whole), forked from
        this test process's warm Airflow (tests/warm_airflow.py)."""
        args = ["dags", "test", dag_id or self["dag_id"]]
        if logical_date:
            args.append(logical_date)
        if conf is not None:
            args += ["--conf", json.dumps(conf)]
        path = self["logs"] / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return warm_airflow.start(args, self.child_env(env), path)

    def finish(self, name: str, proc: warm_airflow.Forked, timeout: int = 600) -> tuple[str | None, str]:
        proc.wait(timeout)
        text = (self["logs"] / f"{name}.log").read_text()
        state = local_airflow.run_state(subprocess.CompletedProcess(proc.args, proc.returncode, text, ""))
        return state, self._keep(name, text)

    def run_child(self, name: str, conf: dict | None = None, env: dict | None = None) -> tuple[str | None, str]:
        return self.finish(name, self.start(name, conf, env))

    def reviewer(self, dag_id: str | None = None):
        """The reviewer, answering the approval requests of ``dag_id`` (default: this world's DAG)."""
        person = reviewer(self.child_env())
        person.dag_id = dag_id or self["dag_id"]
        return person


@pytest.fixture(scope="session")
def e2e_session(pg_server_url, tmp_path_factory):
    """What the worlds of one test process share: template databases, the child home, the reviewer."""
    root = tmp_path_factory.mktemp("e2e")
    yield {"pg": pg_server_url, "root": root}
    stop_reviewer()
    warm_airflow.stop()
    drop_templates(pg_server_url)


@pytest.fixture
def seeded_clone(e2e_session):
    """``seeded_clone(users=, seed=, anchor=, store=False)`` -> (url, seed summary): a clone of a seed made once per
    test process (with ``store``, the compliance store migrated in it), dropped after the test (instead of seeding a
    database for every test)."""
    made: list[str] = []

    def make(*, users: int, seed: int, anchor: date, store: bool = False) -> tuple[str, dict]:
        tpl, summary = template(e2e_session["pg"], users, seed, anchor, store=store)
        name, url = clone(e2e_session["pg"], tpl, prefix="privacy_test")
        made.append(name)
        return url, summary

    yield make
    for name in made:
        scratch.drop_later(e2e_session["pg"], name)


def _schema_clone(e2e_session, reference: bool):
    name, url = clone(e2e_session["pg"], schema_template(e2e_session["pg"], reference=reference), prefix="privacy_test")
    try:
        yield url
    finally:
        scratch.drop_later(e2e_session["pg"], name)


@pytest.fixture
def store_db(e2e_session):
    """URL of a new database holding the compliance store, migrated (a clone), dropped after the test."""
    yield from _schema_clone(e2e_session, reference=False)


@pytest.fixture
def reference_db(e2e_session):
    """URL of a new database holding SPEC's reference schema, empty, and the compliance store, migrated (a clone),
    dropped after the test."""
    yield from _schema_clone(e2e_session, reference=True)


@pytest.fixture
def make_world(e2e_session, tmp_path, monkeypatch):
    """``make_world(dag_id, users=..., seed=..., settings=..., gcs=False, ...)``: the test's world."""
    from devkit.standins.sendgrid_server import SendGridStandIn

    stack = contextlib.ExitStack()
    made: list[str] = []

    def make(dag_id: str, *, users: int = 1500, seed: int = 11, anchor: date | None = None,
             settings: dict | None = None, sendgrid_key: str = "SG.e2e-key", gcs_bucket: str | None = None,
             prepare: str | None = None, subject_key: str | None = None, evidence: str = "file") -> World:
        pg = e2e_session["pg"]
        today = datetime.now(timezone.utc).date()
        tpl, summary = template(pg, users, seed, anchor or today, prepare)
        name, url = clone(pg, tpl)
        made.append(name)
        # SPEC §3.1's other stores, cloned from templates seeded beside the operational one.
        store_urls = {}
        for conn_id, store_tpl in store_templates(pg, tpl, seed).items():
            store_name, store_urls[conn_id] = clone(pg, store_tpl)
            made.append(store_name)
        sendgrid = stack.enter_context(SendGridStandIn(api_key=sendgrid_key))
        # Object storage is always there (the data map's file columns name files in its buckets); the evidence goes
        # to a bucket only when the test asks (gcs_bucket), else to a folder.
        from devkit.seed.stores import BUCKETS
        from devkit.standins.gcs_emulator import GCSEmulator

        gcs = stack.enter_context(GCSEmulator(default_bucket=gcs_bucket or BUCKETS[0]))
        for bucket in BUCKETS:
            if bucket != gcs.default_bucket:
                gcs.create_bucket(bucket)
        services = local_airflow.LocalServices(ops_url=url, compliance_url=url, sendgrid_url=sendgrid.base_url,
                                               sendgrid_api_key=sendgrid_key, gcs_url=gcs.base_url,
                                               gcs_bucket=gcs_bucket or "privacy-evidence",
                                               support_url=store_urls["support_db"],
                                               analytics_url=store_urls["analytics_db"])
        home = tmp_path / "airflow"
        evidence_dir = tmp_path / "evidence"
        settings = {"evidence_location": f"gs://{gcs_bucket}/e2e" if gcs_bucket and evidence == "gs"
                    else f"file://{evidence_dir}", **(settings or {})}
        env = local_airflow.airflow_env(home, services, settings=settings)
        if subject_key:
            env["AIRFLOW_VAR_PRIVACY_SUBJECT_KEY"] = subject_key
        # The test reads the buckets through the same Google client the DAG writes them with.
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.base_url)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"])
        conn = stack.enter_context(database.connect(url, autocommit=True))
        seed_key = (pg, users, seed, anchor or today, prepare)
        world = World(dag_id=dag_id, url=url, store_urls=store_urls, env=env, settings=settings, sendgrid=sendgrid, gcs=gcs,
                      planted=summary["planted"], policy=summary.get("policy"), conn=conn, today=today,
                      logs=tmp_path / "logs-e2e", home=home, evidence=evidence_dir, texts=[],
                      child_home=subprocess_home(e2e_session["root"]),
                      key=(subject_key or services.subject_key).encode())
        world["pii"] = personal_data(conn, seed_key)
        if gcs_bucket:
            from include.seam.storage import object_store

            world["objects"] = object_store(f"gs://{gcs_bucket}/e2e")
        return world

    yield make
    stack.close()
    for name in made:
        scratch.drop_later(e2e_session["pg"], name)
