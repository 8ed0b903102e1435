"""``privacy-ops demo``: the whole product on one machine, from nothing, with a summary at the end.

1. a PostgreSQL: the configured one if it answers, else an embedded one under ``.demo/pg``;
2. a fresh demo database with the reference schema and seeded, dirty data; the compliance store;
3. the local SendGrid-compatible server and GCS emulator on free loopback ports;
4. a local Airflow (SQLite metadata under ``.demo/airflow``) running every DAG for real;
5. what happened: requests by state, emails sent, the audit chain, and where to look next.
"""
from __future__ import annotations

import logging
import os
import time
from datetime import date

from devkit import database, local_airflow
from include import audit, compliance_store
from include.reads import dsr as dsr_reads
from include.cli import redact_url

log = logging.getLogger(__name__)

DEMO_DB = "privacy_demo"
DEMO_DIR = local_airflow.REPO / ".demo"
API_KEY = "SG.demo-key"
SHOWN_REASONS = 5
EVIDENCE_BUCKET = "privacy-evidence"
# The product's DAGs in the order the demo runs them, each with the trigger-form values it uses.
DEMO_RUNS: list[tuple[str, dict]] = [
    ("dsr_deadline_tracking", {}),
]


def resolve_server(pg_url: str | None) -> tuple[str, str, bool]:
    """The server's URL, a label fit to print (never a password), and whether it is the embedded one."""
    from devkit.embedded_postgres import server_or_embedded

    url, embedded = server_or_embedded(pg_url or os.environ.get("PRIVACY_PG_URL") or database.DEFAULT_URL)
    label = f"embedded PostgreSQL (data in {DEMO_DIR / 'pg'})" if embedded else f"PostgreSQL at {redact_url(url)}"
    return url, label, embedded


def demo_services(db_url: str, sendgrid, gcs) -> local_airflow.LocalServices:
    return local_airflow.LocalServices(ops_url=db_url, compliance_url=db_url, sendgrid_url=sendgrid.base_url,
                                       sendgrid_api_key=API_KEY, gcs_url=gcs.base_url, gcs_bucket=EVIDENCE_BUCKET)


def demo_settings() -> dict:
    """The demo's privacy settings: the defaults, with evidence (anchors, manifests, exports) in the emulator."""
    return {"evidence_location": f"gs://{EVIDENCE_BUCKET}/demo"}


def _dag_files() -> set[str]:
    return {p.stem for p in (local_airflow.REPO / "dags").glob("*.py")}


def run_demo(users: int = 5000, seed: int = 42, pg_url: str | None = None, keep_db: bool = False) -> int:
    from devkit.seed.demo_data import seed as seed_demo
    from devkit.standins.gcs_emulator import GCSEmulator
    from devkit.standins.sendgrid_server import SendGridStandIn

    started = time.monotonic()
    # The stand-ins log every request; the summary at the end says what they received.
    logging.getLogger("devkit.standins").setLevel(logging.WARNING)
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    server_url, server_label, embedded = resolve_server(pg_url)
    print(f"[1/5] database server: {server_label}")
    db_url = database.create_database(server_url, DEMO_DB, replace=True)
    summary = seed_demo(db_url, users=users, seed=seed, anchor=date.today())
    print(f"[2/5] seeded database {DEMO_DB!r}: {users:,} users, {summary['total_rows']:,} rows in all")
    with database.connect(db_url, autocommit=True) as conn:
        compliance_store.migrate(conn)

    home = DEMO_DIR / "airflow"
    logs = DEMO_DIR / "logs"
    with SendGridStandIn(api_key=API_KEY) as sendgrid, GCSEmulator(default_bucket=EVIDENCE_BUCKET) as gcs:
        print(f"[3/5] SendGrid stand-in at {sendgrid.base_url}, GCS emulator at {gcs.base_url}")
        env = local_airflow.airflow_env(home, demo_services(db_url, sendgrid, gcs), settings=demo_settings())
        local_airflow.migrate_metadata(env)
        print(f"[4/5] Airflow metadata in {home} (SQLite); running the DAGs with `airflow dags test`:")
        results = []
        present = _dag_files()
        for dag_id, conf in DEMO_RUNS:
            if dag_id not in present:
                continue
            t0 = time.monotonic()
            result = local_airflow.dags_test(dag_id, env, conf=conf, log_path=logs / f"{dag_id}.log")
            ok = result.returncode == 0 and local_airflow.run_state(result) == "success"
            results.append((dag_id, ok))
            print(f"      {dag_id:32} {'success' if ok else 'FAILED'}  ({time.monotonic() - t0:.0f} s, "
                  f"log: {logs / (dag_id + '.log')})")
        accepted = sendgrid.accepted()

    print("[5/5] summary")
    with database.connect(db_url, autocommit=True) as conn:
        print_summary(conn, accepted)
    print(f"\nDone in {time.monotonic() - started:.0f} s. Where to look next:")
    print(f"  - the compliance store:  psql '{redact_url(db_url)}' -c 'select state, count(*) from "
          "compliance.dsr_status group by 1'")
    print(f"  - the task logs:         {logs}/")
    print("  - the Airflow UI:        ./dev privacy-ops ui --unpause   (airflow standalone on this database, login "
          "admin / admin on http://127.0.0.1:8080)")
    print("    The DAGs start paused in a new Airflow: a run triggered while its DAG is paused waits as 'queued'.")
    print("    --unpause unpauses them, or use the toggle beside each DAG in the UI.")
    if embedded:
        if keep_db:
            print(f"  - the embedded PostgreSQL keeps running for the UI; stop it with: ./dev privacy-ops stop-db")
        else:
            from devkit.embedded_postgres import stop_embedded

            stop_embedded()
            print(f"  - the embedded PostgreSQL was stopped (its data stays in {DEMO_DIR / 'pg'}; `privacy-ops ui` "
                  "starts it again)")
    return 0 if all(ok for _, ok in results) and results else 1


def print_summary(conn, accepted: list) -> None:
    print("  privacy requests by state:")
    for state, count in dsr_reads.request_states(conn).items():
        print(f"    {state:18} {count:>6}")
    reasons = dsr_reads.invalid_reasons(conn)
    for reason, count in reasons[:SHOWN_REASONS]:
        print(f"      invalid: {reason} ({count})")
    if len(reasons) > SHOWN_REASONS:
        print(f"      ... and {len(reasons) - SHOWN_REASONS} more invalid reason(s): "
              "select invalid_reason, count(*) from compliance.dsr_status where state = 'invalid' group by 1")
    esc = dsr_reads.escalation_counts(conn)
    digests = dsr_reads.digests_sent(conn)
    print(f"  escalations: {esc.get('sent', 0)} sent, {esc.get('failed', 0)} failed, {esc.get('pending', 0)} pending;"
          f" daily digests sent: {digests}")
    campaigns: dict[str, int] = {}
    for message in accepted:
        campaign = message["payload"].get("custom_args", {}).get("campaign", "other")
        campaigns[campaign] = campaigns.get(campaign, 0) + 1
    print(f"  SendGrid stand-in accepted {len(accepted)} email(s): "
          + (", ".join(f"{n} {c}" for c, n in sorted(campaigns.items())) or "none"))
    report = audit.verify_chain(conn)
    print(f"  audit log: {report.rows} entries, hash chain {'verified' if report.ok else 'BROKEN: ' + report.problem}")


UI_LOGINS = {"admin": ("admin", "admin"), "compliance": ("compliance", "viewer")}


def run_ui(pg_url: str | None = None, port: int = 8080, host: str = "127.0.0.1", unpause: bool = False) -> int:
    """``airflow standalone`` on the demo database, with the stand-ins, until Ctrl-C."""
    import json
    import signal
    import subprocess

    from devkit.standins.gcs_emulator import GCSEmulator
    from devkit.standins.sendgrid_server import SendGridStandIn

    server_url, label, _ = resolve_server(pg_url)
    db_url = database.with_database(server_url, DEMO_DB)
    if not database.answers(db_url):
        print(f"there is no demo database {DEMO_DB!r} on {label}: run `./dev demo` first")
        return 1
    home = DEMO_DIR / "airflow"
    with SendGridStandIn(api_key=API_KEY) as sendgrid, GCSEmulator(default_bucket=EVIDENCE_BUCKET) as gcs:
        env = local_airflow.airflow_env(home, demo_services(db_url, sendgrid, gcs), settings=demo_settings())
        passwords = home / "simple_auth_manager_passwords.json"
        home.mkdir(parents=True, exist_ok=True)
        passwords.write_text(json.dumps({user: password for user, (password, _) in UI_LOGINS.items()}))
        workers = max(2, os.cpu_count() or 2)
        env.update({
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            # Task processes report to the api-server's execution API; it is on this port.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, (_, role) in UI_LOGINS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # LocalExecutor forks `parallelism` workers up front (32 by default): size it to this machine.
            "AIRFLOW__CORE__PARALLELISM": str(workers),
        })
        if unpause:
            env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
            local_airflow.migrate_metadata(env)
            for dag_id in sorted(_dag_files()):
                subprocess.run([local_airflow.airflow_bin(), "dags", "unpause", dag_id], env=env,
                               capture_output=True, text=True)
        shown = "localhost" if host in ("127.0.0.1", "localhost") else host
        print(f"SendGrid stand-in at {sendgrid.base_url}, GCS emulator at {gcs.base_url}")
        print(f"starting airflow standalone ({workers} LocalExecutor workers, metadata in {home}):")
        print(f"  open http://{shown}:{port}  -  logins: "
              + ", ".join(f"{u} / {pw} ({role})" for u, (pw, role) in UI_LOGINS.items()))
        print("  connections come from AIRFLOW_CONN_* environment variables set by this command, so Admin > "
              "Connections stays empty; `airflow connections get ops_db` shows one")
        if not unpause:
            print("  the DAGs are paused: a triggered run waits as 'queued' until its DAG is unpaused "
                  "(toggle in the UI, or restart with --unpause)")
        print("  Ctrl-C stops everything this started")
        # Its own process group: SIGTERM to standalone alone orphans the scheduler and its workers.
        proc = subprocess.Popen([local_airflow.airflow_bin(), "standalone"], env=env, start_new_session=True)

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)  # a plain `kill` also stops everything it started
        try:
            return proc.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=grace)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
