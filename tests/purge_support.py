"""Shared by the child-purge end-to-end tests: an Airflow home with a reviewer's api-server, answering the
human-in-the-loop approval over REST, table checksums, and the seeded personal data to scan logs for."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo
from urllib.parse import quote

from devkit import local_airflow
from tests import warm_airflow
from include.child_rules import reported_by_address, says_adult
from tests.child_oracle import AccountFacts, classify

DAG_ID = "child_data_purge"
SUBJECT_KEY = "e2e-subject-key-0123456789abcdef"
OPS_TABLES = ("users", "privacy_requests", "uploads", "support_messages", "usage_events", "access_logs",
              "social_profiles", "vendors", "data_shares", "child_reports", "legal_holds", "policy_versions",
              "email_suppressions")
PER_USER_TABLES = ("uploads", "support_messages", "usage_events", "access_logs", "social_profiles", "data_shares",
                   "privacy_requests", "child_reports", "legal_holds")


def purge_env(home: Path, services: local_airflow.LocalServices, settings: dict) -> dict[str, str]:
    env = local_airflow.airflow_env(home, services, settings=settings)
    env["AIRFLOW_VAR_PRIVACY_SUBJECT_KEY"] = SUBJECT_KEY
    # A reviewer who can answer the approval through an api-server on the same metadata database.
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "reviewer:admin"
    passwords = home / "reviewer-passwords.json"
    passwords.write_text(json.dumps({"reviewer": "reviewer-pw"}))
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords)
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = "child-purge-e2e-jwt-secret"
    return env


def tasks_test(tasks: list[str], run_id: str, env: dict, log_dir: Path,
               timeout: int = 600) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """``airflow tasks test`` of each task in an existing run, in order (as Airflow's retry of the first and the
    run's remaining tasks would run them), in one child process forked from the warm Airflow (tests/warm_airflow.py):
    (the process, each task's log by task id). A task that fails stops the process with a non-zero exit code."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "retry.log"
    commands = [["tasks", "test", DAG_ID, task, run_id] for task in tasks]
    proc = warm_airflow.start_in_turn(commands, env, path)
    proc.wait(timeout)
    text = path.read_text()
    logs = dict(zip(tasks, warm_airflow.outputs_in_turn(text, commands)))
    for task, log in logs.items():
        (log_dir / f"retry-{task}.log").write_text(log)
    return subprocess.CompletedProcess(proc.args, proc.returncode, text, ""), logs


def kill_group(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(60)


class Reviewer:
    """A person answering Airflow's approval request through the REST API (as the UI's Required actions do)."""

    dag_id = DAG_ID  # the DAG whose approval requests this person answers

    def __init__(self, env: dict, home: Path, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([local_airflow.airflow_bin(), "api-server", "-p", str(port), "-H", "127.0.0.1"],
                                     env=env, stdout=(home / "api-server.log").open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.token = self._login()

    def _login(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._call("POST", "/auth/token", {"username": "reviewer", "password": "reviewer-pw"},
                                  auth=False)["access_token"]
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.25)

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def wait_for_request(self, proc: subprocess.Popen, timeout: float = 300) -> dict:
        """The open approval request of the running DAG (fails if the run ends without asking)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self._call("GET", f"/api/v2/dags/{self.dag_id}/dagRuns/~/hitlDetails?response_received=false")
            # The request appears a moment before its task is parked in awaiting_input; an answer in between is
            # lost (Airflow 3.3: the task's own state change overwrites the one the answer made). No person is
            # that fast; this bot is, so it answers only a request whose task is waiting.
            waiting = [d for d in found.get("hitl_details") or [] if d["task_instance"]["state"] == "awaiting_input"]
            if waiting:
                return waiting[0]
            if proc.poll() is not None:
                raise AssertionError("the run ended without asking for approval")
            time.sleep(0.25)
        raise AssertionError("no approval request within the timeout")

    def answer(self, request: dict, option: str) -> None:
        ti = request["task_instance"]
        self._call("PATCH", f"/api/v2/dags/{self.dag_id}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
                            f"{ti['task_id']}/{ti.get('map_index', -1)}/hitlDetails",
                   {"chosen_options": [option], "params_input": {}})

    def stop(self) -> None:
        kill_group(self.proc, signal.SIGTERM)


def checksums(conn) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every operational table."""
    return {t: conn.execute(f"select count(*), coalesce(md5(string_agg(md5(x::text), '' order by md5(x::text))), '') "
                            f"from {t} x").fetchone() for t in OPS_TABLES}


def rows_per_user(conn) -> dict[int, dict[str, int]]:
    """Every account's rows per table (the account row included)."""
    found: dict[int, dict[str, int]] = {uid: {"users": 1} for (uid,) in conn.execute("select id from users")}
    for table in PER_USER_TABLES:
        for uid, n in conn.execute(f"select user_id, count(*) from {table} where user_id is not null group by 1"):
            found.setdefault(uid, {})[table] = n
    return found


def personal_data(conn, today: date) -> set[str]:
    """Every email, name, phone, IP address and birth date of a data subject in the seeded database.

    Birth dates within two days of today are left out: log lines carry today's date in their timestamps.
    """
    values: set[str] = set()
    for query in ("select email from users", "select full_name from users", "select phone from users",
                  "select requester_email from privacy_requests", "select email from support_messages",
                  "select phone from support_messages", "select host(ip_address) from access_logs",
                  "select reported_email from child_reports", "select email from email_suppressions"):
        values |= {v.strip().lower() for (v,) in conn.execute(query) if v and len(v.strip()) >= 7}
    near = {today + timedelta(days=d) for d in range(-2, 3)}
    values |= {b.isoformat() for (b,) in conn.execute("select distinct birth_date from users where birth_date is not null")
               if b not in near}
    return values


def leaks(values: set[str], text: str) -> list[str]:
    text = text.lower()
    return sorted(v for v in values if v in text)


def expected_children(conn, as_of: date, tz: str = "UTC") -> tuple[set[int], set[int]]:
    """The oracle, in Python from the raw rows: (children to purge, children under an active hold)."""
    users = conn.execute("select id, email, birth_date, declared_age, created_at from users").fetchall()
    by_email: dict[str, set[int]] = {}
    for uid, email, *_ in users:
        if email is not None:
            by_email.setdefault(email.strip().lower(), set()).add(uid)
    adult = {uid for uid, _, birth, declared, _ in users if says_adult(birth, declared, as_of)}
    reported: set[int] = set()
    for uid, email in conn.execute("select user_id, reported_email from child_reports where resolved_at is null"):
        if uid is not None:
            reported.add(uid)
        elif email is not None and email.strip():
            named = by_email.get(email.strip().lower(), set())
            reported |= {u for u in named if reported_by_address(len(named), u in adult)}
    children = {uid for uid, _, birth, declared, created in users
                if classify(AccountFacts(uid, birth, declared, created, uid in reported), as_of, ZoneInfo(tz)).child}
    held = {r[0] for r in conn.execute("select user_id from legal_holds where released_at is null or released_at > now()")}
    return children - held, children & held
