"""docker-compose.yaml: valid per the Compose specification, and wired the way the project needs.

No Docker engine is needed: the file is checked against the Compose JSON schema that ships with
check-jsonschema (offline), then read with PyYAML for the project-specific structure.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

OFFICIAL_SERVICES = {
    "postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-worker", "airflow-triggerer", "airflow-init", "airflow-cli", "flower",
}
AIRFLOW_SERVICES = {s for s in OFFICIAL_SERVICES if s.startswith("airflow-")} | {"flower"}
def _cli_commands() -> set[str]:
    import argparse

    from include.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


CLI_COMMANDS = _cli_commands()


def _check_jsonschema() -> str:
    beside = Path(sys.executable).parent / "check-jsonschema"
    found = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    if not found:
        pytest.fail("check-jsonschema is not installed (it is in requirements.lock)")
    return found


def _validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _interpolate(value: str) -> str:
    """What Compose makes of a value when no variable is set: defaults applied, ``$$`` -> ``$``."""
    return _VAR.sub(lambda m: "$" if m.group(0) == "$$" else (m.group(2) or ""), value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _env(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _command(service: dict) -> str:
    command = service.get("command", "")
    return _interpolate(" ".join(command) if isinstance(command, list) else command)


def test_valid_against_compose_spec():
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text('services:\n  x:\n    image: 1\n    ports: "bad"\n')
    result = _validate(broken)
    assert result.returncode != 0, "the schema check accepted an invalid file, so it proves nothing"
    assert "ports" in result.stdout + result.stderr


def test_official_airflow_services_present(services):
    assert OFFICIAL_SERVICES <= set(services)
    assert services["flower"]["profiles"] == ["flower"]
    assert services["airflow-cli"]["profiles"] == ["debug"]
    for name in OFFICIAL_SERVICES - {"airflow-cli", "airflow-init"}:
        assert "healthcheck" in services[name], name


def test_depends_on_targets_exist(services):
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        for target in deps if isinstance(deps, list) else deps.keys():
            assert target in services, f"{name} depends on missing service {target}"


def test_start_order_mirrors_official(services):
    for name in AIRFLOW_SERVICES - {"airflow-init", "airflow-cli"}:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
    worker = services["airflow-worker"]["depends_on"]
    assert worker["ops-init"]["condition"] == "service_completed_successfully"
    assert worker["sendgrid-standin"]["condition"] == "service_healthy"
    assert worker["gcs-emulator"]["condition"] == "service_healthy"
    assert services["ops-init"]["depends_on"]["ops-db"]["condition"] == "service_healthy"


def test_airflow_services_share_celery_config_and_jwt_secret(compose, services):
    secrets = set()
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["PYTHONPATH"] == "/opt/airflow", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        secrets.add(env["AIRFLOW__API_AUTH__JWT_SECRET"])
        assert services[name]["build"] == {"context": ".", "target": "airflow"}, f"{name} must run the product image"
    assert len(secrets) == 1


@pytest.mark.parametrize("variable, conn_type", [
    ("AIRFLOW_CONN_OPS_DB", {"postgres"}),
    ("AIRFLOW_CONN_COMPLIANCE_DB", {"postgres"}),
    ("AIRFLOW_CONN_SENDGRID_DEFAULT", {"generic", "http"}),
    ("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", {"google_cloud_platform"}),
])
def test_airflow_connections(services, variable, conn_type):
    for name in AIRFLOW_SERVICES:
        conn = json.loads(_env(services[name])[variable])
        assert conn["conn_type"] in conn_type, (name, conn)
        if conn["conn_type"] == "postgres":
            assert conn["host"] in services
        if variable == "AIRFLOW_CONN_SENDGRID_DEFAULT":
            assert conn["password"] == "dev-key"
            assert conn["extra"]["host"] == "http://sendgrid-standin:3030"
        if variable == "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT":
            assert conn["extra"] == {"is_anonymous": True, "project": "privacy-dev"}


def test_compliance_store_defaults_to_the_ops_server(services):
    env = _env(services["airflow-worker"])
    ops, compliance = json.loads(env["AIRFLOW_CONN_OPS_DB"]), json.loads(env["AIRFLOW_CONN_COMPLIANCE_DB"])
    assert (ops["host"], ops["port"]) == (compliance["host"], compliance["port"]) == ("ops-db", 5432)
    assert env["STORAGE_EMULATOR_HOST"] == "http://gcs-emulator:9023"


def test_ops_db_and_init(services):
    ops_db = services["ops-db"]
    assert ops_db["image"] == "postgres:15"
    assert "pg_isready" in ops_db["healthcheck"]["test"]
    script = _command(services["ops-init"])
    used = re.findall(r"privacy-ops ([a-z-]+)", script)
    assert used == ["seed", "migrate-store", "seed-stores"]  # SPEC §3.1's other stores beside it (issue 28)
    # ops-init runs on every `docker compose up`: seeding must leave an existing database alone.
    assert "--if-empty" in script
    assert set(used) <= CLI_COMMANDS
    assert "seed --url postgresql://ops:ops@ops-db:5432/ops --users 5000 --seed 42" in script
    assert script.count("--url postgresql://ops:ops@ops-db:5432/ops") == 3


@pytest.mark.parametrize("service, module, port", [
    ("sendgrid-standin", "devkit.standins.sendgrid_server", 3030),
    ("gcs-emulator", "devkit.standins.gcs_emulator", 9023),
])
def test_standins_run_existing_modules(services, service, module, port):
    command = _command(services[service])
    assert command.startswith(f"python -m {module} --host 0.0.0.0 --port {port}")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{module} does not exist"
    assert "healthcheck" in services[service]
    assert services[service]["build"] == {"context": ".", "target": "devkit"}, "the stand-ins are the dev kit's"


def test_sendgrid_standin_key_matches_the_connection(services):
    assert "--api-key dev-key" in _command(services["sendgrid-standin"])
    assert "--bucket privacy-evidence" in _command(services["gcs-emulator"])
    settings = json.loads(_env(services["airflow-worker"])["AIRFLOW_VAR_PRIVACY_SETTINGS"])
    assert settings["evidence_location"].startswith("gs://privacy-evidence/")


def test_image_is_built_from_our_dockerfile(services):
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert instructions[0] == "FROM apache/airflow:3.3.2-python3.11 AS airflow"
    assert re.search(r"^RUN pip install .*-r \S*requirements\.lock", text, re.M)
    assert re.search(r"^RUN pip install .*-e /opt/airflow", text, re.M)
    assert "ENV PYTHONPATH=/opt/airflow" in instructions
    # The product image carries no dev kit; only the devkit stage adds it.
    product = text.split("FROM airflow AS devkit")[0]
    assert "devkit" not in "\n".join(i for i in instructions if i in product and i.startswith("COPY"))
    assert "FROM airflow AS devkit" in instructions and "COPY --chown=airflow:0 devkit /opt/airflow/devkit" in instructions
    # the build context must carry what the Dockerfile copies
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("!requirements.lock", "!pyproject.toml", "!include/", "!pools.json", "!devkit/"):
        assert needed in ignore
    assert "airflow pools import /opt/airflow/pools.json" in _command(services["airflow-init"])


def test_docker_compose_accepts_it_when_available():
    """The real Compose parser, where the plugin is installed (it needs no engine for `config`)."""
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose plugin not installed here")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
