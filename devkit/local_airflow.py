"""Run the project's DAGs with a local Airflow (SQLite metadata), for the demo and the end-to-end tests.

Airflow is driven as an operator would drive it: its own command line in child processes (``airflow db
migrate``, ``airflow dags test``, the components of ``privacy-ops ui``), or ``dag.test()`` — what ``airflow dags
test`` runs — in this process, with connections passed as ``AIRFLOW_CONN_*`` variables.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO = Path(__file__).resolve().parent.parent


def postgres_connection(url: str) -> str:
    """An Airflow connection (JSON form) for a libpq URL, including socket-folder hosts (``?host=/dir``)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    conn = {"conn_type": "postgres", "host": query.get("host") or parts.hostname or "127.0.0.1",
            "port": int(query.get("port") or parts.port or 5432), "login": unquote(parts.username or "postgres"),
            "schema": parts.path.lstrip("/") or "postgres"}
    if parts.password:
        conn["password"] = unquote(parts.password)
    return json.dumps(conn)


@dataclass(frozen=True)
class LocalServices:
    ops_url: str
    compliance_url: str
    sendgrid_url: str
    sendgrid_api_key: str
    gcs_url: str | None = None
    gcs_bucket: str = "privacy-evidence"
    # The key of the keyed hashes standing for data subjects (an Airflow Variable here; a connection in
    # production). Local runs only: never a real secret.
    subject_key: str = "local-subject-key-for-demo-and-tests"
    # The other stores (connections support_db and analytics_db), each a database of its own.
    support_url: str | None = None
    analytics_url: str | None = None


def airflow_env(home: Path, services: LocalServices, settings: dict | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_OPS_DB": postgres_connection(services.ops_url),
        "AIRFLOW_CONN_COMPLIANCE_DB": postgres_connection(services.compliance_url),
        "AIRFLOW_CONN_SENDGRID_DEFAULT": json.dumps({
            "conn_type": "generic", "password": services.sendgrid_api_key,
            "extra": {"host": services.sendgrid_url}}),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps({
            "conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "privacy-demo"}}),
        "AIRFLOW_VAR_PRIVACY_SUBJECT_KEY": services.subject_key,
        # Runs here go through `airflow dags test` / dag.test(), where Airflow 3.3.2 fails a run with a deadline
        # alert as it succeeds (include/seam/dag.py deadline_alerts_on); `privacy-ops ui` (a scheduler) turns
        # them on.
        "PRIVACY_DEADLINE_ALERTS": "off",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # `airflow standalone` starts its components as `airflow ...` from PATH.
        "PATH": os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")])),
    })
    if services.support_url:
        env["AIRFLOW_CONN_SUPPORT_DB"] = postgres_connection(services.support_url)
    if services.analytics_url:
        env["AIRFLOW_CONN_ANALYTICS_DB"] = postgres_connection(services.analytics_url)
    if services.gcs_url:
        env["STORAGE_EMULATOR_HOST"] = services.gcs_url
    if settings:
        env["PRIVACY_SETTINGS"] = json.dumps(settings)
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


POOLS_FILE = REPO / "pools.json"


def migrate_metadata(env: dict[str, str]) -> None:
    """``airflow db migrate``, then the project's pools (``pools.json``: Airflow has no setting for them).

    A new home with the default SQLite metadata (the demo, the end-to-end tests) gets a copy of the database
    that those two commands made the last time for this Airflow and this pools.json, kept in the system's
    temporary folder: the commands are two Airflow start-ups (about 6 s of CPU), and each test module makes a
    home of its own. An existing database, or metadata elsewhere (PostgreSQL), is migrated as always, and never
    becomes the copy: only a database those two commands made from nothing does (an existing one holds its runs,
    which every new home would then inherit, a run left 'running' blocking its DAG's scheduled runs). A kept copy
    that holds a run is not used, and is made again.
    """
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    database_file = home / "airflow.db"
    new = not database_file.exists()
    template = None if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") else _metadata_template()
    if template is not None and new and _holds_no_runs(template):
        shutil.copyfile(template, database_file)
        return
    subprocess.run([airflow_bin(), "db", "migrate"], env=env, check=True, capture_output=True, text=True)
    subprocess.run([airflow_bin(), "pools", "import", str(POOLS_FILE)], env=env, check=True, capture_output=True,
                   text=True)
    if template is not None and new and database_file.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_name(f"{template.name}.{os.getpid()}.tmp")
        shutil.copyfile(database_file, partial)
        os.replace(partial, template)  # whole or not at all, whoever else writes it at the same time


def _holds_no_runs(metadata: Path) -> bool:
    """The SQLite metadata at ``metadata`` exists and holds no DAG run (False when it cannot be read)."""
    import sqlite3

    if not metadata.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{metadata}?mode=ro", uri=True)) as conn:
            return conn.execute("select not exists (select 1 from dag_run)").fetchone()[0] == 1
    except sqlite3.Error:
        return False


def _metadata_template() -> Path:
    """Where the migrated SQLite metadata is kept: one file per Airflow version and pools.json."""
    import hashlib
    import tempfile
    from importlib.metadata import version

    key = hashlib.sha256(f"{version('apache-airflow-core')}\n".encode() + POOLS_FILE.read_bytes()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "privacy-ops-airflow-metadata" / f"airflow-{key}.db"


def dags_test(dag_id: str, env: dict[str, str], conf: dict | None = None, logical_date: str | None = None,
              log_path: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """``airflow dags test`` (a real DAG run, every task in this process); output goes to ``log_path``."""
    cmd = [airflow_bin(), "dags", "test", dag_id]
    if logical_date:
        cmd.append(logical_date)
    if conf is not None:
        cmd += ["--conf", json.dumps(conf)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(result.stdout + result.stderr)
    return result


def run_state(result: subprocess.CompletedProcess) -> str | None:
    """The final state ``airflow dags test`` reported for the run (its exit code alone does not say)."""
    found = re.findall(r"DagRun Finished: .*?\bstate=(\w+)", result.stdout + result.stderr)
    return found[-1] if found else None


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host``:``port`` already (bound the way the API server binds, with
    SO_REUSEADDR), asked before the components start: the API server's own bind error came last, in its log."""
    import errno
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return True
    return False


UI_HOSTNAME_ENV = "PRIVACY_UI_HOSTNAME"


def ui_hostname() -> str:
    """``[core] hostname_callable`` for ``privacy-ops ui``: the interface its log servers listen on, so that
    the API server fetches a running task's log from there (Airflow's default, the machine's FQDN, may
    resolve to an address nothing listens on)."""
    import socket

    return os.environ.get(UI_HOSTNAME_ENV) or socket.getfqdn()


def local_components(host: str, port: int, env: dict[str, str]) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """What ``airflow standalone`` runs (scheduler, dag processor, triggerer, API server), with the task-log
    servers on ``host`` at free ports instead of every interface at 8793/8794: the commands and the
    environment that goes with them."""
    import secrets

    advertised = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    worker_logs, trigger_logs = free_port(host or "0.0.0.0"), free_port(host or "0.0.0.0")
    env = {**env,
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
           "AIRFLOW__API__HOST": host,
           "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
           "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devkit.local_airflow.ui_hostname",
           UI_HOSTNAME_ENV: advertised,
           # The API server signs its log requests with this and the log servers check it: one per UI run.
           "AIRFLOW__API__SECRET_KEY": env.get("AIRFLOW__API__SECRET_KEY") or secrets.token_urlsafe(32)}
    log_server = [sys.executable, "-m", "devkit.log_server", "--host", host]
    commands = [("scheduler", [airflow_bin(), "scheduler", "--skip-serve-logs"]),
                ("dag-processor", [airflow_bin(), "dag-processor"]),
                ("triggerer", [airflow_bin(), "triggerer", "--skip-serve-logs"]),
                ("api-server", [airflow_bin(), "api-server", "--host", host, "--port", str(port)]),
                ("task-logs", [*log_server, "--port", str(worker_logs)]),
                ("trigger-logs", [*log_server, "--port", str(trigger_logs)])]
    return commands, env


def start_components(commands: list[tuple[str, list[str]]], env: dict[str, str]) -> list[subprocess.Popen]:
    """Start each command in a process group of its own (signal the group: its workers stop too), its output
    prefixed with its name."""
    import threading

    procs: list[subprocess.Popen] = []
    for name, argv in commands:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1, start_new_session=True)
        procs.append(proc)

        def relay(stream=proc.stdout, label=f"{name:13}|"):
            for line in stream:
                print(label, line.rstrip(), flush=True)

        threading.Thread(target=relay, daemon=True).start()
    return procs


def stop_components(procs: list[subprocess.Popen], grace: float = 15) -> None:
    """SIGTERM to each component's process group, then SIGKILL to those still there after ``grace`` seconds."""
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if all(proc.poll() is not None for proc in procs):
            return
        grace = 5


def with_logins(env: dict[str, str], logins: dict[str, tuple[str, str]], port: int) -> dict[str, str]:
    """``env`` for an API server on loopback ``port`` with SimpleAuthManager users ``{user: (password, role)}``.

    The passwords file is written in advance, so the passwords are known (Airflow generates only those of
    users missing from it). A role of ``""`` makes a user who can log in but may see nothing.
    """
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({user: password for user, (password, _) in logins.items()}))
    return {**env,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, (_, role) in logins.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET") or "privacy-ops-local-jwt-secret",
            "AIRFLOW__API__SECRET_KEY": "privacy-ops-local-secret-key"}


class ApiServer:
    """``airflow api-server`` in its own process group on loopback, until ``stop()`` (or the ``with`` ends)."""

    def __init__(self, env: dict[str, str], log_path: Path, start_timeout: float = 120.0):
        self.env, self.log_path, self.start_timeout = env, log_path, start_timeout
        self.port = int(env["AIRFLOW__API__PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ApiServer":
        import time
        import urllib.request

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([airflow_bin(), "api-server", "--port", str(self.port), "--host", "127.0.0.1"],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"airflow api-server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"airflow api-server did not answer within {self.start_timeout:.0f} s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        import os
        import signal

        if self.proc is not None and self.proc.poll() is None:
            for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=grace)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def token(self, username: str, password: str) -> str:
        """A JWT from ``POST /auth/token``, as a client of the REST API gets one."""
        import urllib.request

        request = urllib.request.Request(f"{self.base_url}/auth/token", method="POST",
                                         data=json.dumps({"username": username, "password": password}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]


# -- Airflow in this process ------------------------------------------------------------------------------

# Environment variables that carry a run's connections, Variables and settings to a run in this process.
RUN_ENV_PREFIXES = ("AIRFLOW_CONN_", "AIRFLOW_VAR_", "PRIVACY_", "STORAGE_EMULATOR_HOST")


class _Tee(io.TextIOBase):
    def __init__(self, sink: io.StringIO):
        self.sink = sink

    def write(self, text: str) -> int:
        return self.sink.write(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def captured_output():
    """Everything this process prints and logs meanwhile (Airflow's task logs included), as one text."""
    sink = io.StringIO()
    tee = _Tee(sink)
    # Airflow's own handlers (plain StreamHandlers), not pytest's capturing ones (subclasses).
    handlers = [h for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
                for h in getattr(logger, "handlers", []) if type(h) is logging.StreamHandler]
    streams = [(h, h.stream) for h in handlers]
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = tee
    for h, _ in streams:
        h.setStream(tee)
    try:
        yield sink
    finally:
        sys.stdout, sys.stderr = saved
        for h, stream in streams:
            h.setStream(stream)
        # Handlers that Airflow configured during the run write to the tee: point them back.
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for h in getattr(logger, "handlers", []):
                if type(h) is logging.StreamHandler and h.stream is tee:
                    h.setStream(saved[0])


@contextlib.contextmanager
def run_environment(env: dict[str, str]):
    """``env``'s connections, Variables and settings in this process's environment (and none of another)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(RUN_ENV_PREFIXES)}
    for k in saved:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith(RUN_ENV_PREFIXES)})
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith(RUN_ENV_PREFIXES)]:
            del os.environ[k]
        os.environ.update(saved)


@contextlib.contextmanager
def brisk_polls(interval: float = 0.05):
    """``dag.test()`` polls its run once a second whenever it finds no task to start: after a task fails, once per
    level of downstream tasks it marks ``upstream_failed`` (a failed purge run waited 6 s doing nothing, the
    same again for each failing run of a test), and while a retry's delay runs. In this process nothing else
    moves the run (no scheduler, triggerer or person), so here that loop, and only that loop (the caller of
    ``time.sleep`` is ``DAG.test`` itself), polls every ``interval`` seconds; every other sleep in the process
    (a mailer's back-off, a stand-in's) is untouched."""
    import time

    from airflow.sdk.definitions.dag import DAG

    loop, real_sleep = DAG.test.__code__, time.sleep

    def sleep(seconds: float) -> None:
        real_sleep(min(seconds, interval) if sys._getframe(1).f_code is loop else seconds)

    time.sleep = sleep
    try:
        yield
    finally:
        time.sleep = real_sleep


@contextlib.contextmanager
def own_file_only(dag_file: Path):
    """``dag.test()`` (Airflow 3.3) parses the DAG's whole bundle and writes every DAG in it to the metadata before each
    run, so that a TriggerDagRunOperator's target exists (apache/airflow#64884). None of ours triggers another,
    and in this process that was the other five DAG files parsed and written again for every run; here the bundle
    it walks holds only the run's own file (the bundle's name and path stay, so the DAG's recorded file is the
    same)."""
    from airflow.dag_processing import dagbag as dagbag_module

    real = dagbag_module.BundleDagBag

    def bundle_dag_bag(*, dag_folder, **kwargs):
        return real(dag_folder=str(dag_file), **kwargs)

    dagbag_module.BundleDagBag = bundle_dag_bag
    try:
        yield
    finally:
        dagbag_module.BundleDagBag = real


def run_in_process(dag_id: str, env: dict[str, str], conf: dict | None = None,
                   logical_date: str | None = None, retry_after: float | None = None) -> tuple[str | None, str]:
    """One real DAG run with ``dag.test()`` in this process: (the DagRun's state, its log).

    What ``airflow dags test`` does, without a new Airflow process for each run (an interpreter start, Airflow's
    import and a parse of every DAG file: several seconds of CPU). The process's Airflow home must be migrated
    (:func:`migrate_metadata`) before Airflow is first imported; ``env`` carries the run's connections,
    Variables and settings. ``retry_after``: the seconds a failed task waits for its retry in this run (the DAGs'
    own delay is a minute and more), for tests of what a retry resumes."""
    with run_environment(env), captured_output() as out:  # Airflow's start-up and parse lines belong to the log
        from airflow.dag_processing.dagbag import DagBag
        from airflow.sdk import timezone as airflow_timezone

        # A DAG parsed anew for each run, as each `airflow dags test` parses it: dag.test() leaves the run's conf
        # in the DAG object's params, and a reused object would carry one run's conf into the next.
        dag_file = REPO / "dags" / f"{dag_id}.py"
        fresh = DagBag(dag_folder=str(dag_file))
        dag = None if fresh.import_errors else fresh.get_dag(dag_id)
        if dag is None:
            print(f"{dag_id} did not import: {fresh.import_errors}")
            return None, out.getvalue()
        if retry_after is not None:
            from datetime import timedelta

            for task in dag.tasks:
                task.retry_delay = timedelta(seconds=retry_after)
                task.retry_exponential_backoff = 0
        # As ``airflow dags test DAG [DATE]`` calls it: a logical date (now by default), parsed as the CLI does.
        moment = airflow_timezone.parse(logical_date) if logical_date else airflow_timezone.utcnow()
        try:
            with brisk_polls(), own_file_only(dag_file):
                dag_run = dag.test(run_conf=conf or None, logical_date=moment)
            state = str(getattr(dag_run.state, "value", dag_run.state))
        except Exception as exc:  # a run Airflow refuses to create (e.g. a param the form would refuse)
            print(f"{type(exc).__name__}: {exc}")
            state = None
    return state, out.getvalue()
