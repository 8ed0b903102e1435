"""Run the project's DAGs with a local Airflow (SQLite metadata), for the demo and the end-to-end tests.

Airflow is driven through its own command line (``airflow db migrate``, ``airflow dags test``) in child
processes, with connections passed as ``AIRFLOW_CONN_*`` variables: exactly what an operator would do.
"""
from __future__ import annotations

import json
import os
import re
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
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # `airflow standalone` starts its components as `airflow ...` from PATH.
        "PATH": os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")])),
    })
    if services.gcs_url:
        env["STORAGE_EMULATOR_HOST"] = services.gcs_url
    if settings:
        env["PRIVACY_SETTINGS"] = json.dumps(settings)
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


POOLS_FILE = REPO / "pools.json"


def migrate_metadata(env: dict[str, str]) -> None:
    """``airflow db migrate``, then the project's pools (``pools.json``: Airflow has no setting for them)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run([airflow_bin(), "db", "migrate"], env=env, check=True, capture_output=True, text=True)
    subprocess.run([airflow_bin(), "pools", "import", str(POOLS_FILE)], env=env, check=True, capture_output=True,
                   text=True)


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
