"""``privacy-ops demo``: the whole product on one machine, from nothing, with a summary at the end.

1. a PostgreSQL: the configured one if it answers, else an embedded one under ``.demo/pg``;
2. a fresh demo database with the reference schema and seeded, dirty data; the compliance store;
3. the local SendGrid-compatible server and GCS emulator on free loopback ports;
4. a local Airflow (SQLite metadata under ``.demo/airflow``) running every DAG for real, in the order a
   compliance team would meet them;
5. what happened: requests by state, purges, manifests, the campaign, fulfilments, emails, the audit
   chain checked against its anchors, and where to look next.

The server is ``--pg-url``, else ``$PRIVACY_PG_URL``, else the local one, else the embedded one. The database
is the one the URL names; a URL naming the server's default ``postgres`` database (as the default URL
does) gets the demo's own, ``privacy_demo`` (``$PRIVACY_DEMO_DB``). The demo drops and recreates its
database on every run, so it refuses one that the project did not create (``devkit.database.MARK``).
``PRIVACY_DEMO_DB`` and ``PRIVACY_DEMO_DIR`` move the demo's database and folder (the tests use them).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

from devkit import database, local_airflow
from include import audit, compliance_store
from include.cli import EXIT_UNREACHABLE, EXIT_USAGE, CommandFailed, checked_url, redact_url

log = logging.getLogger(__name__)

DEMO_DB = os.environ.get("PRIVACY_DEMO_DB", "privacy_demo")
DEMO_DIR = Path(os.environ.get("PRIVACY_DEMO_DIR", local_airflow.REPO / ".demo"))
API_KEY = "SG.demo-key"
SHOWN_REASONS = 5
EVIDENCE_BUCKET = "privacy-evidence"
EVIDENCE_LOCATION = f"gs://{EVIDENCE_BUCKET}/demo"
# The emulator keeps the demo's evidence (audit anchors, manifests, export packages) here, so `ui` serves it
# again after the demo: a new demo starts it afresh, with its new database.
EVIDENCE_DIR = DEMO_DIR / "gcs"


@dataclass(frozen=True)
class DemoRun:
    """One DAG run of the demo: its trigger-form values (or a function of the database that gives them)."""

    dag_id: str
    what: str
    conf: dict | Callable[[object], dict] = None  # type: ignore[assignment]

    def conf_for(self, conn) -> dict:
        return self.conf(conn) if callable(self.conf) else dict(self.conf or {})


def _approved_plan(conn) -> dict:
    """The live purge approves the plan its dry run just made, by hash, as a headless operator would."""
    from include.reads import children

    dry = next((r for r in children.recent_runs(conn) if r["dry_run"] and r.get("plan_hash")), None)
    return {"dry_run": False, "approve_plan": dry["plan_hash"]} if dry else {"dry_run": False}


def demo_runs(anchor: date) -> list[DemoRun]:
    """Every DAG, in the order a compliance team would meet them."""
    return [
        DemoRun("dsr_deadline_tracking", "deadlines of every request; escalations and the day's digest"),
        DemoRun("child_data_purge", "dry run: which children, what would be erased (the plan and its hash)"),
        DemoRun("child_data_purge", "live: erase the planned children, the plan approved by its hash",
                _approved_plan),
        DemoRun("vendor_sharing_manifests", "manifests of two years of sharing, per vendor, on GCS",
                {"period_start": (anchor - timedelta(days=730)).isoformat(),
                 "period_end": anchor.isoformat()}),
        DemoRun("policy_change_notifications", "tell every user of the newest policy version, once"),
        DemoRun("dsr_fulfilment", "carry out the requests: exports, erasures, opt-outs, restrictions"),
        DemoRun("dsr_deadline_tracking", "again: the fulfilled requests now show as closed"),
        DemoRun("personal_data_discovery", "personal data the data map does not name (planted: a CRM table, "
                                           "a feedback form, two new columns)"),
    ]


@dataclass(frozen=True)
class DemoTarget:
    """Where the demo runs: the server's URL, the database on it, and how to print them (never a password)."""

    server_url: str  # the URL given, pointed at the server's maintenance database
    dbname: str
    label: str
    embedded: bool
    source: str  # --pg-url, $PRIVACY_PG_URL or the default URL

    @property
    def db_url(self) -> str:
        return database.with_database(self.server_url, self.dbname)


def demo_database(url: str) -> str:
    """The database the demo uses: the one the URL names, else (the server's default ``postgres``) its own."""
    named = database.database_name(url)
    return DEMO_DB if named == database.MAINTENANCE_DB else named


def resolve_target(pg_url: str | None) -> DemoTarget:
    """The server and database of ``--pg-url``, else ``$PRIVACY_PG_URL``, else the local server, else the
    embedded one; CommandFailed in one sentence for a malformed URL (quoting none of it) or an explicit
    ``--pg-url`` where nothing answers."""
    from devkit.embedded_postgres import server_or_embedded

    url, source = ((pg_url, "--pg-url") if pg_url else
                   (os.environ["PRIVACY_PG_URL"], "$PRIVACY_PG_URL") if os.environ.get("PRIVACY_PG_URL") else
                   (database.DEFAULT_URL, "the default URL"))
    checked_url(url, source)  # exit 2 for --pg-url, 3 for the environment
    dbname = demo_database(url)
    server = database.with_database(url, database.MAINTENANCE_DB)
    if source == "--pg-url" and not database.answers(server):
        raise CommandFailed(f"no PostgreSQL answers at {redact_url(server)} (--pg-url): start it, or leave out "
                            "--pg-url to use $PRIVACY_PG_URL, the local server or the embedded one")
    server_url, embedded = server_or_embedded(server)
    label = (f"embedded PostgreSQL (data in {DEMO_DIR / 'pg'})" if embedded
             else f"PostgreSQL at {redact_url(server_url)}")
    return DemoTarget(server_url, dbname, label, embedded, source)


def fresh_demo_database(target: DemoTarget) -> str:
    """The demo's database, created anew (a database the project made is dropped first; any other is refused), its
    two stores' names checked first: a store's database someone else made stops the demo before anything is
    dropped or made (it used to stop, with a traceback, after the main database was seeded)."""
    try:
        for url in store_urls(database.with_database(target.server_url, target.dbname)).values():
            name = database.database_name(url)
            if not target.embedded and database.is_ours(target.server_url, name) is False:
                raise database.NotOurDatabase(name)
        return database.create_database(target.server_url, target.dbname, replace=True,
                                        server_is_ours=target.embedded)
    except database.NotOurDatabase as exc:
        where = "the URL's database" if target.dbname != DEMO_DB else "the demo's database ($PRIVACY_DEMO_DB)"
        raise CommandFailed(f"{exc} ({where} on {target.label})",
                            EXIT_USAGE if target.source == "--pg-url" else EXIT_UNREACHABLE) from None


def store_urls(db_url: str) -> dict[str, str]:
    """The other stores beside the demo's database: ``<db>_support`` and ``<db>_analytics``."""
    from devkit.seed.stores import store_urls as beside

    return beside(db_url)


def fresh_store_databases(target: DemoTarget, db_url: str, seed: int) -> dict:
    """The support desk and analytics databases, created anew beside the demo's and seeded from it."""
    from devkit.seed.stores import seed_stores

    urls = store_urls(db_url)
    for url in urls.values():
        database.create_database(target.server_url, database.database_name(url), replace=True,
                                 server_is_ours=target.embedded)
    return seed_stores(db_url, urls["support_db"], urls["analytics_db"], seed=seed)


def demo_buckets(gcs) -> None:
    """The buckets the data map's file columns name, in the emulator beside the evidence bucket."""
    from devkit.seed.stores import BUCKETS

    for bucket in BUCKETS:
        gcs.create_bucket(bucket)


def demo_services(db_url: str, sendgrid, gcs) -> local_airflow.LocalServices:
    urls = store_urls(db_url)
    return local_airflow.LocalServices(ops_url=db_url, compliance_url=db_url, sendgrid_url=sendgrid.base_url,
                                       sendgrid_api_key=API_KEY, gcs_url=gcs.base_url, gcs_bucket=EVIDENCE_BUCKET,
                                       support_url=urls["support_db"], analytics_url=urls["analytics_db"])


def fresh_evidence_dir(folder: Path) -> None:
    """Empty the emulator's folder for a new demo (its database is new too); only a folder of the demo's own."""
    import shutil

    if folder.exists():
        if not (folder / ".cloudstorage").exists() and any(folder.iterdir()):
            raise SystemExit(f"{folder} is not the demo's storage emulator folder: not emptying it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def fresh_airflow_metadata(home: Path) -> None:
    """Forget the Airflow metadata of an earlier demo (its runs were of a database that is dropped now, and one
    left 'running' by an interrupted demo would block its DAG's scheduled runs under `ui --unpause`): the demo's
    runs are its own. The home's other files (the UI's logins) stay."""
    for name in ("airflow.db", "airflow.db-wal", "airflow.db-shm", "airflow.db-journal"):
        (home / name).unlink(missing_ok=True)


@contextmanager
def demo_folder_to_itself(what: str):
    """`demo` remakes the demo's database, evidence and Airflow metadata; `ui` serves them. One at a time for a demo
    folder: a demo started beside a running ui emptied the evidence the page showed and replaced the metadata its
    scheduler used. ``what``: the command, named to the other one. The lock goes with the process."""
    import fcntl

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    with open(DEMO_DIR / ".in-use", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            who = handle.read().strip() or "another `privacy-ops demo` or `ui`"
            raise CommandFailed(f"{who[:80]} is using the demo's folder {DEMO_DIR}: stop it first (Ctrl-C in its "
                                "terminal), or give this one another folder with $PRIVACY_DEMO_DIR", EXIT_USAGE) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"`privacy-ops {what}` (pid {os.getpid()})")
        handle.flush()
        yield


def demo_settings() -> dict:
    """The demo's privacy settings: the defaults, with evidence (anchors, manifests, exports) in the emulator."""
    return {"evidence_location": EVIDENCE_LOCATION}


def _dag_files() -> set[str]:
    return {p.stem for p in (local_airflow.REPO / "dags").glob("*.py")}


def run_demo(users: int = 5000, seed: int = 42, pg_url: str | None = None, keep_db: bool = False) -> int:
    started = time.monotonic()
    embedded = []  # once known: True when the server is the embedded one, which the demo stops at its end
    with _ctrl_c_ends_the_demo(stop_db=lambda: any(embedded) and not keep_db), demo_folder_to_itself("demo"):
        return _run_demo(users, seed, pg_url, keep_db, started, embedded)


@contextmanager
def _ctrl_c_ends_the_demo(stop_db: Callable[[], bool]):
    """Ctrl-C ends the demo at once, in one sentence. Inside a task, Airflow's task runner takes any exception,
    KeyboardInterrupt included, as the task's failure and retries it after the task's delay: the interrupt cost a
    minute and the demo went on to its summary as if nothing had happened. The handler ends the process instead,
    once the embedded PostgreSQL the demo started is stopped (``stop_db()``: unless --keep-db). What the run in
    progress had written stays as it was; the next ``./dev demo`` starts afresh."""
    def stop(signum, frame):
        # To the terminal: a run in progress captures sys.stdout and sys.stderr for its log.
        sys.__stdout__.flush()
        print("\ninterrupted: the demo stops here, its run in progress unfinished (`./dev demo` starts afresh)",
              file=sys.__stderr__, flush=True)
        try:
            if stop_db():
                from devkit.embedded_postgres import stop_embedded

                stop_embedded()
        finally:
            os._exit(130)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_demo(users: int, seed: int, pg_url: str | None, keep_db: bool, started: float, on_embedded: list) -> int:
    from devkit.seed.demo_data import seed as seed_demo
    from devkit.standins.gcs_emulator import GCSEmulator
    from devkit.standins.sendgrid_server import SendGridStandIn

    # The steps below say what happened: the modules' own progress lines (the stand-ins log every request)
    # would only repeat it.
    for name in ("devkit.standins", "devkit.seed", "gcp_storage_emulator", "include.compliance_store"):
        logging.getLogger(name).setLevel(logging.WARNING)
    target = resolve_target(pg_url)
    embedded = target.embedded
    on_embedded.append(embedded)
    print(f"[1/5] database server: {target.label}")
    db_url = fresh_demo_database(target)
    anchor = date.today()
    summary = seed_demo(db_url, users=users, seed=seed, anchor=anchor)
    stores = fresh_store_databases(target, db_url, seed)
    print(f"[2/5] seeded database {target.dbname!r}: {users:,} users, {summary['total_rows']:,} rows in all; "
          f"beside it the support desk ({stores['tickets']:,} tickets) and analytics ({stores['daily_usage']:,} "
          "daily usage rows)")
    with database.connect(db_url, autocommit=True) as conn:
        compliance_store.migrate(conn)
        # Personal data the shipped data map does not name, for personal_data_discovery to find.
        from devkit.seed.unmapped import plant

        plant(conn)

    home, logs = DEMO_DIR / "airflow", DEMO_DIR / "logs"
    fresh_evidence_dir(EVIDENCE_DIR)
    fresh_airflow_metadata(home)
    with SendGridStandIn(api_key=API_KEY) as sendgrid, \
            GCSEmulator(default_bucket=EVIDENCE_BUCKET, data_dir=EVIDENCE_DIR) as gcs:
        demo_buckets(gcs)
        print(f"[3/5] SendGrid stand-in at {sendgrid.base_url}, GCS emulator at {gcs.base_url} "
              f"(its objects kept in {EVIDENCE_DIR})")
        services = demo_services(db_url, sendgrid, gcs)
        env = local_airflow.airflow_env(home, services, settings=demo_settings())
        local_airflow.migrate_metadata(env)
        # Airflow is first imported below, in this process, with the demo's home and settings.
        os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW") or k == "PYTHONPATH"})
        print(f"[4/5] Airflow metadata in {home} (SQLite); every DAG runs for real, with dag.test() (what "
              "`airflow dags test` runs):")
        results = _run_dags(env, db_url, logs, demo_runs(anchor))
        print("[5/5] summary")
        with database.connect(db_url, autocommit=True) as conn:
            print_summary(conn, sendgrid.accepted(), anchors=_anchor_store(services))
    print(f"\nDone in {time.monotonic() - started:.0f} s. Where to look next:")
    for line in where_to_look(redact_url(db_url), logs):
        print(line)
    if embedded:
        if keep_db:
            print("  - the embedded PostgreSQL keeps running for the UI; stop it with: ./dev privacy-ops stop-db")
        else:
            from devkit.embedded_postgres import stop_embedded

            stop_embedded()
            print(f"  - the embedded PostgreSQL was stopped (its data stays in {DEMO_DIR / 'pg'}; `privacy-ops ui` "
                  "starts it again)")
    return 0 if results and all(results) else 1


def _run_dags(env: dict, db_url: str, logs: Path, runs: list[DemoRun]) -> list[bool]:
    """Each run in turn, in this process (one Airflow start-up for all of them); each run's log in its own file."""
    present, results = _dag_files(), []
    for number, run in enumerate(runs, 1):
        if run.dag_id not in present:
            print(f"      {run.dag_id:30} not in dags/: skipped")
            continue
        with database.connect(db_url, autocommit=True) as conn:
            conf = run.conf_for(conn)
        log_path = logs / f"{number:02d}-{run.dag_id}.log"
        t0 = time.monotonic()
        state, text = local_airflow.run_in_process(run.dag_id, env, conf=conf)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(text)
        ok = state == "success"
        results.append(ok)
        print(f"      {run.dag_id:30} {'success' if ok else 'FAILED '}  {time.monotonic() - t0:4.0f} s  {run.what}")
        if not ok:
            print(f"      {'':30} log: {log_path}")
    return results


def _anchor_store(services: local_airflow.LocalServices):
    """The audit anchors in the GCS emulator, through the product's own object store (the Google provider)."""
    import json

    # Airflow is imported in this process only for the Google provider's hook: its home is the demo's, and
    # its start-up lines are not the demo's output.
    os.environ.setdefault("AIRFLOW_HOME", str(DEMO_DIR / "airflow"))
    for name in ("airflow", "google"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("STORAGE_EMULATOR_HOST", services.gcs_url or "")
    os.environ.setdefault("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "privacy-demo"}}))
    from include.seam.storage import object_store

    return object_store(EVIDENCE_LOCATION)


def print_summary(conn, accepted: list, anchors=None) -> None:
    from include.reads import deadlines as dsr_reads

    print("  privacy requests by state:")
    for state, count in dsr_reads.request_states(conn).items():
        print(f"    {state:18} {count:>6}   {dsr_reads.STATE_MEANINGS.get(state, '')}".rstrip())
    reasons = dsr_reads.invalid_reasons(conn)
    for reason, count in reasons[:SHOWN_REASONS]:
        print(f"      invalid: {reason} ({count})")
    if len(reasons) > SHOWN_REASONS:
        print(f"      ... and {len(reasons) - SHOWN_REASONS} more invalid reason(s): "
              "select invalid_reason, count(*) from compliance.dsr_status where state = 'invalid' group by 1")
    esc = dsr_reads.escalation_counts(conn)
    withdrawn = f", {esc['withdrawn']} withdrawn" if esc.get("withdrawn") else ""  # request closed before the send
    print(f"  escalations: {esc.get('sent', 0)} sent, {esc.get('failed', 0)} failed, {esc.get('pending', 0)} pending"
          f"{withdrawn}; daily digests sent: {dsr_reads.digests_sent(conn)}")
    for line in _domain_lines(conn):
        print(f"  {line}")
    # A Mail Send request carries up to 1,000 personalizations: one email each.
    campaigns: dict[str, int] = {}
    for request in accepted:
        campaign = request["payload"].get("custom_args", {}).get("campaign", "other")
        campaigns[campaign] = campaigns.get(campaign, 0) + len(request["payload"].get("personalizations") or [None])
    print(f"  SendGrid stand-in accepted {sum(campaigns.values())} email(s) in {len(accepted)} Mail Send request(s): "
          + (", ".join(f"{n} {c}" for c, n in sorted(campaigns.items())) or "none"))
    report = audit.verify_chain(conn, anchors=anchors)
    checked = f" and {report.anchors} anchor(s) in {EVIDENCE_LOCATION}" if anchors is not None else ""
    print(f"  audit log: {report.rows} entries, hash chain{checked} "
          + ("verified" if report.ok else f"BROKEN: {report.problem or report.anchor_problem}"))


def _domain_lines(conn) -> list[str]:
    """One or two lines per DAG of what its runs did, from the shared store reads (skipped when not installed)."""
    lines = []
    if _installed(conn, "compliance.child_purges"):
        from include.reads import children

        outcomes = children.outcomes(conn)
        owed = children.notices_owed(conn)
        lines.append("child-data purge (last live run): " + (", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
                                                             or "nothing to do"))
        # Every erasure's notices, the purge's and request fulfilment's: a line of their own, with the commands.
        lines.append(f"vendor deletion notices outstanding (of purges and request erasures): {owed['notices']} "
                     f"({owed['subjects']} subject(s), {owed['vendors']} vendor(s)); `privacy-ops deletion-notices` "
                     "lists them, `privacy-ops mark-notices-sent` records them sent")
    if _installed(conn, "compliance.vendor_manifests"):
        from include.reads import vendors

        manifests = vendors.manifests(conn, limit=1000)
        totals = vendors.violation_totals(conn)
        lines.append(f"vendor manifests: {len(manifests)} written; violations: "
                     + (", ".join(f"{rule} {n}" for rule, n in sorted(totals.items()) if n) or "none"))
    if _installed(conn, "compliance.notification_campaigns"):
        from include.reads import campaign as notifications

        for c in notifications.campaigns(conn, scope="live", limit=3):
            lines.append(f"policy-change campaign {c['campaign_id']} (version {c['policy_version']}, {c['state']}): "
                         f"{c['sent']} sent, {c['skipped']} skipped, {c['failed']} failed, {c['pending']} pending "
                         f"of {c['total']} recipient(s)")
    if _installed(conn, "compliance.discovery_findings"):
        from include.reads import discovery

        counts = discovery.status_counts(conn)
        kinds = ", ".join(f"{r['where']} ({r['kind'] or r['finding']})" for r in discovery.open_findings(conn, limit=8))
        lines.append(f"personal-data discovery: {counts.get('open', 0)} open finding(s)"
                     + (f": {kinds}" if kinds else "") + "; `privacy-ops findings` lists them")
    if _installed(conn, "compliance.dsr_fulfilments"):
        from include.reads import fulfilments

        counts = fulfilments.outcome_counts(conn)
        waiting = len(fulfilments.awaiting_a_person(conn))
        lines.append("request fulfilments: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none")
                     + f"; awaiting a person: {waiting}")
    return lines


def _installed(conn, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]


UI_LOGINS = {"admin": ("admin", "admin"), "compliance": ("compliance", "viewer")}


def logins() -> str:
    """The UI's logins as the demo and `ui` print them: ``admin / admin (admin), ...``."""
    return ", ".join(f"{user} / {password} ({role})" for user, (password, role) in UI_LOGINS.items())


def where_to_look(db_url: str, logs: Path) -> list[str]:
    """The demo's closing lines: the store, the logs, the UI with every login and where the page is."""
    return [
        f"  - the compliance store:  psql '{db_url}'   (schema compliance; its tables: docs/store-and-audit.md)",
        f"  - the task logs:         {logs}/",
        f"  - the command line:      ./dev privacy-ops findings --url '{db_url}'   (every command takes this --url: "
        "`verify-audit` checks the audit chain again, `whatif` and `right-to-know` answer; docs/cli.md)",
        "  - the Airflow UI:        ./dev privacy-ops ui   (airflow standalone on this database, on "
        "http://127.0.0.1:8080)",
        f"    logins: {logins()}; the viewer sees the compliance page and cannot trigger or change anything",
        "    the compliance page: 'Privacy compliance' in the UI's menu (or http://127.0.0.1:8080/compliance/); "
        "'Needs a person' at its top",
        "    The DAGs start paused in a new Airflow: a run triggered while its DAG is paused waits as 'queued'.",
        "    `ui --unpause` unpauses them (within a minute their scheduled runs start, and those are LIVE: purges "
        "erase, fulfilments export and erase), or use the toggle beside each DAG in the UI.",
    ]


def unpaused_note(catch_up_days: int | None = None) -> list[str]:
    """What `ui --unpause` tells the person who ran it: scheduled runs start within a minute, and they are live."""
    if catch_up_days is None:
        catch_up_days = int(os.environ.get("PRIVACY_CATCH_UP_DAYS", "3"))
    return [
        "  unpaused every DAG: WITHIN A MINUTE the scheduler starts their scheduled runs, and those are LIVE "
        "(a schedule never dry-runs):",
        "    child_data_purge erases the demo's children, dsr_fulfilment exports and erases requesters' data, "
        "dsr_deadline_tracking and policy_change_notifications email the SendGrid stand-in;",
        f"    vendor_sharing_manifests catches up only the last {catch_up_days} day(s) (PRIVACY_CATCH_UP_DAYS), "
        "not every day since its start date; trigger it with a period for an older one",
    ]


def run_ui(pg_url: str | None = None, port: int = 8080, host: str = "127.0.0.1", unpause: bool = False) -> int:
    """Airflow's standalone components on the demo database, with the stand-ins, until Ctrl-C; every listening
    socket on ``host`` (the task-log servers included, at free ports)."""
    import json
    import signal
    import subprocess

    from devkit.standins.gcs_emulator import GCSEmulator
    from devkit.standins.sendgrid_server import SendGridStandIn

    target = resolve_target(pg_url)
    db_url = target.db_url
    if not database.answers(db_url):
        print(f"there is no demo database {target.dbname!r} on {target.label}: run `./dev demo` first")
        return 1
    if not (target.embedded or database.is_ours(target.server_url, target.dbname)):
        # Its scheduler runs the DAGs live (purges erase, fulfilments erase): only on a database the demo made.
        raise CommandFailed(f"database {target.dbname!r} was not created by privacy-ops (it lacks the project's mark): "
                            "`ui` runs the DAGs live (purges and fulfilments erase), so it serves only a database "
                            "`./dev demo` made", EXIT_USAGE)
    if local_airflow.port_taken(host, port):
        from devkit.cli import port_in_use

        raise port_in_use(port, host, "--port")
    home = DEMO_DIR / "airflow"
    with demo_folder_to_itself("ui"), SendGridStandIn(api_key=API_KEY) as sendgrid, \
            GCSEmulator(default_bucket=EVIDENCE_BUCKET, data_dir=EVIDENCE_DIR) as gcs:
        demo_buckets(gcs)
        env = local_airflow.airflow_env(home, demo_services(db_url, sendgrid, gcs), settings=demo_settings())
        passwords = home / "simple_auth_manager_passwords.json"
        home.mkdir(parents=True, exist_ok=True)
        passwords.write_text(json.dumps({user: password for user, (password, _) in UI_LOGINS.items()}))
        workers = max(2, os.cpu_count() or 2)
        local = "127.0.0.1" if host in ("0.0.0.0", "", "::") else f"[{host}]" if ":" in host else host
        env.update({
            # Task processes report to the api-server's execution API; it is on this port.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{local}:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, (_, role) in UI_LOGINS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # LocalExecutor forks `parallelism` workers up front (32 by default): size it to this machine.
            "AIRFLOW__CORE__PARALLELISM": str(workers),
            # A scheduler runs the DAGs here: a run not finished by its deadline emails on-call (the stand-in).
            "PRIVACY_DEADLINE_ALERTS": "on",
        })
        local_airflow.migrate_metadata(env)
        if unpause:
            # The DAGs must be in the metadata database before they can be unpaused.
            subprocess.run([local_airflow.airflow_bin(), "dags", "reserialize"], env=env, capture_output=True,
                           text=True)
            for dag_id in sorted(_dag_files()):
                subprocess.run([local_airflow.airflow_bin(), "dags", "unpause", dag_id], env=env,
                               capture_output=True, text=True)
        print(f"SendGrid stand-in at {sendgrid.base_url}, GCS emulator at {gcs.base_url} (the demo's evidence, kept "
              f"in {EVIDENCE_DIR})")
        commands, env = local_airflow.local_components(host, port, env)
        print(f"starting Airflow as `airflow standalone` would ({workers} LocalExecutor workers, metadata in {home}; "
              f"task-log servers on {host}:{env['AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT']} and "
              f"{host}:{env['AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT']}):")
        print(f"  open http://{local}:{port}  -  logins: {logins()}")
        print("  connections come from AIRFLOW_CONN_* environment variables this command gives the processes it "
              "starts, so Admin > Connections stays empty (and another terminal's `airflow` does not see them)")
        if unpause:
            for line in unpaused_note():
                print(line)
        else:
            print("  the DAGs are paused: a triggered run waits as 'queued' until its DAG is unpaused "
                  "(toggle in the UI, or restart with --unpause)")
        print("  Ctrl-C stops everything this started")
        # The components of `airflow standalone`, run here because standalone's scheduler and triggerer open
        # their task-log servers on every interface at fixed ports (8793, 8794): here they skip them and
        # devkit.log_server serves those logs on `host`, at free ports.
        procs = local_airflow.start_components(commands, env)

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)  # a plain `kill` also stops everything it started
        try:
            while True:
                ended = next((p for p in procs if p.poll() is not None), None)
                if ended is not None:
                    name = commands[procs.index(ended)][0]
                    print(f"{name} exited with {ended.returncode}: stopping the rest")
                    return ended.returncode or 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
        finally:
            local_airflow.stop_components(procs)

