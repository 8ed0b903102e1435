"""The house DAG: shared defaults, the tag vocabulary, trigger-form fields, and the two tasks every run has.

A DAG file holds only its own wiring, docs and parameters::

    @privacy_dag(dag_id="dsr_deadline_tracking", tags=["dsr", "gdpr", "ccpa"],
                 params={"dry_run": dry_run_param("Evaluate and record, but send no email.")})
    def dsr_deadline_tracking():
        ...  # its tasks

:func:`privacy_dag` adds a deadline alert (:func:`run_deadline`: a run not finished within its ``dagrun_timeout``
of being queued is reported to on-call once) and, around the DAG's own tasks:

- ``check_run_conf`` first (a setup task): a trigger conf key the DAG does not declare stops the run
  before any personal data is read, anything is changed or any email is sent (see :mod:`include.runconf`);
- ``anchor_audit_log`` last (its teardown): the head of the audit chain is written outside the database
  at the end of every run that got past the conf check, whether its tasks succeeded or not. As a
  teardown it does not decide the run's state (a run whose work failed is failed even though the anchor
  was written); an anchor that cannot be written fails that task, visibly, with retries, and the next
  run's anchor covers this run's rows too (an anchor is the head of the whole chain).

The DAG's ``doc_md`` is ``include/docs/<dag_id>.md`` and its schedule is its entry in
:data:`include.schedules.SCHEDULES` (what the compliance page says of it too). Nothing here opens a connection at
parse time.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Callable, Mapping, Sequence

from include.runconf import CONF_GUARD_TASK
from include.schedules import SCHEDULES
from include.seam.alerts import task_failed, task_succeeded

OWNER = "privacy-engineering"
DEFAULT_ARGS: Mapping[str, Any] = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
    # A task that fails for good tells on-call, once per run (include/seam/alerts.py; setting `alerts`); the same
    # task succeeding on a later try (the run cleared) takes back that alert while it is still pending.
    "on_failure_callback": task_failed,
    "on_success_callback": task_succeeded,
}
START_DATE = datetime(2026, 1, 1)

# The controlled tag vocabulary (checked by the DAG integrity test): what the UI's tag filter offers.
TAGS: Mapping[str, str] = {
    "privacy": "every DAG of this project",
    "gdpr": "acts on GDPR rights or duties",
    "ccpa": "acts on CCPA rights or duties",
    "coppa": "children's data (under 13)",
    "dsr": "data-subject requests",
    "children": "child-data detection and purge",
    "vendors": "sharing with vendors and service providers",
    "notifications": "emails to data subjects",
    "erasure": "deletes or redacts personal data",
    "export": "builds data exports for subjects",
    "email": "sends email through SendGrid",
    "gcs": "writes objects to cloud storage",
    "discovery": "finds personal data the data map does not name",
}
# Airflow pools (defined in pools.json at the repository root, imported by `airflow pools import`).
GCS_POOL = "privacy_gcs"
SENDGRID_POOL = "privacy_sendgrid"
ANCHOR_TASK = "anchor_audit_log"


def doc_md(dag_id: str) -> str:
    return (resources.files("include") / "docs" / f"{dag_id}.md").read_text()


# -- trigger-form fields shared by the DAGs ------------------------------------------------------------

def dry_run_param(description: str, default: bool = False, section: str | None = None):
    from airflow.sdk import Param

    return Param(default, type="boolean", title="Dry run", description_md=description,
                 **({"section": section} if section else {}))


def ids_param(title: str, description: str, section: str | None = None):
    from airflow.sdk import Param

    from include.runconf import ID_MAX

    # An id past PostgreSQL's bigint names nothing and would fail the first statement: the form refuses it.
    return Param([], type="array", items={"type": "integer", "minimum": 1, "maximum": ID_MAX}, uniqueItems=True,
                 title=title, description_md=description, **({"section": section} if section else {}))


def approve_plan_param(title: str, description: str, section: str | None = None):
    """The hash of a plan a dry run printed: the run erases only if its own plan has exactly this hash."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], pattern="^[0-9a-f]{64}$", title=title, description_md=description,
                 **({"section": section} if section else {}))


def date_param(title: str, description: str, section: str | None = None):
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], format="date", title=title, description_md=description,
                 **({"section": section} if section else {}))


# -- the two tasks of every run ---------------------------------------------------------------------------

def _conf_guard(dag_id: str, declared: Sequence[str]):
    from airflow.sdk import task

    @task(task_id=CONF_GUARD_TASK)
    def check_run_conf(declared: list[str]) -> None:
        """Stop the run when its trigger conf names a parameter this DAG does not declare."""
        from airflow.sdk import get_current_context

        from include.runconf import check_conf
        from include.seam.task import readable_failures

        with readable_failures():
            check_conf(dag_id, get_current_context()["dag_run"].conf, declared)

    return check_run_conf(list(declared))


def _audit_anchor():
    from airflow.sdk import task

    @task(task_id=ANCHOR_TASK)
    def anchor_audit_log() -> dict | None:
        """Write the head of the audit chain outside the database (object store), if this run added rows."""
        from include import audit
        from include.seam.task import task_env

        with task_env() as env:
            if not audit.run_wrote_rows(env.store, dag_id=env.ctx.dag_id, run_id=env.ctx.run_id):
                return None
            return audit.anchor_head(env.store, env.evidence, run_id=env.ctx.run_id, dag_id=env.ctx.dag_id)

    return anchor_audit_log()


WATCHER_TASK = "fail_run_if_a_task_failed"


def fail_run_if_a_task_failed(*tasks):
    """A last task for a DAG whose later tasks go on past a failed one (trigger rules ``all_done*``): Airflow sets
    a run's state from its last tasks alone, so without it such a run reads ``success`` although a task failed.
    Airflow's own watcher idiom: ``one_failed``, so it is skipped when nothing failed and fails the run, in one
    sentence, when something did (on-call was told by that task's own failure, once per run)."""
    from airflow.sdk import task

    @task(task_id=WATCHER_TASK, trigger_rule="one_failed")  # AirflowFailException: never retried
    def fail_run_if_a_task_failed() -> None:
        """Fail the run when a task before this one failed; skipped when none did."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed (its own log says why); the tasks that did not need "
                                   "it ran, and the run is failed")

    watcher = fail_run_if_a_task_failed()
    list(tasks) >> watcher
    return watcher


def prepare_store(check_datamap: bool = True):
    """The task most DAGs start with: migrate the compliance store, check the data map against the database.

    ``check_datamap=False`` (personal-data discovery, which reports a mapped column gone instead of stopping on it):
    migrate the store and read the map's shape only."""
    from airflow.sdk import task

    if not check_datamap:
        @task(task_id="prepare_store")
        def prepare_store_only() -> dict:
            """Migrate the compliance store and read the data map (its shape; the databases are what this DAG
            compares it with)."""
            from include import compliance_store
            from include.seam.task import task_env

            with task_env() as env:
                applied = env.migrate_store()
                dm = env.datamap_as_written
                return {"store_migration": compliance_store.current_version(env.store), "applied_now": applied,
                        "datamap": dm.source, "connections": list(dm.connections)}

        return prepare_store_only()

    @task(task_id="prepare_store")
    def prepare_store() -> dict:
        """Migrate the compliance store and check the data map against the operational database."""
        import logging

        from include import compliance_store
        from include.seam.task import task_env

        with task_env() as env:
            applied = env.migrate_store()
            dm = env.datamap
            version = compliance_store.current_version(env.store)
            summary = {"store_migration": version, "applied_now": applied, "datamap": dm.source,
                       "personal_data_tables": len(dm.all_entries), "record_roles": len(dm.records),
                       "connections": list(dm.connections)}
            logging.getLogger("include.seam").info(
                "compliance store at migration %s (%s); data map %s: %d personal-data table(s) and %d record "
                "role(s) checked against %s", version,
                f"applied now: {', '.join(map(str, applied))}" if applied else "already current",
                dm.source.rsplit("/", 1)[-1], len(dm.all_entries), len(dm.records), ", ".join(dm.connections))
            return summary

    return prepare_store()


DEADLINE_ALERTS_ENV = "PRIVACY_DEADLINE_ALERTS"


def deadline_alerts_on() -> bool:
    """``$PRIVACY_DEADLINE_ALERTS`` (read when the DAG is parsed; default on; ``off`` leaves them out).

    Off only where runs go through ``dag.test()`` / ``airflow dags test`` (the demo, the tests): in Airflow 3.3.2
    a run of a DAG with a deadline alert fails there as it succeeds (``DagRun.update_state`` looks the alerts up
    by id, and ``dag.test()``'s DAG holds them serialized: "'dict' object has no attribute 'hex'"). Under the
    scheduler, where alerts are stored with ids, they work.
    """
    import os

    raw = os.environ.get(DEADLINE_ALERTS_ENV, "on").strip().lower()
    if raw not in ("on", "off"):
        raise ValueError(f"{DEADLINE_ALERTS_ENV} must be on or off, not {raw!r}")
    return raw == "on"


LATE_AFTER_ENV = "PRIVACY_LATE_AFTER_MINUTES"


def late_after() -> timedelta | None:
    """``$PRIVACY_LATE_AFTER_MINUTES`` (read when the DAG is parsed): every DAG's deadline, in minutes after a run is
    queued, instead of its ``dagrun_timeout``; None when unset."""
    import math
    import os

    raw = os.environ.get(LATE_AFTER_ENV, "").strip()
    if not raw:
        return None
    try:
        minutes = float(raw)
    except ValueError:
        minutes = math.nan
    if not 0 < minutes <= 7 * 24 * 60:
        raise ValueError(f"{LATE_AFTER_ENV} must be a number of minutes above 0 and at most 10080, not {raw!r}")
    return timedelta(minutes=minutes)


def run_deadline(within: timedelta):
    """Every house DAG's deadline alert (Airflow 3): a run not finished ``within`` its queueing (its
    ``dagrun_timeout``: queued behind a stuck run, waiting for a pool or a worker, or stopped by the timeout) is
    reported to on-call once, through :func:`include.seam.alerts.run_late` run by an executor."""
    from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback

    from include.seam.alerts import run_late

    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=within,
                         callback=SyncCallback(run_late), name="run not finished in time")


# The house defaults of the DAG arguments privacy_dag passes on to Airflow's DAG (a DAG file may override each).
DAG_DEFAULTS: Mapping[str, Any] = {"catchup": False, "max_active_runs": 1, "dagrun_timeout": timedelta(hours=1),
                                   "start_date": START_DATE}


def privacy_dag(*, dag_id: str, tags: Sequence[str], params: Mapping[str, Any], schedule: Any = None,
                task_defaults: Mapping[str, Any] | None = None, **dag_kwargs: Any) -> Callable:
    """Decorate a function that creates a DAG's own tasks; calling the result builds the DAG. The schedule is the
    DAG's entry in :data:`include.schedules.SCHEDULES` unless ``schedule`` is given (a timetable built from that
    entry, as vendor manifests' is). ``dag_kwargs`` go to Airflow's ``DAG`` as they are, over
    :data:`DAG_DEFAULTS` (``catchup``, ``max_active_runs``, ``dagrun_timeout``, ``start_date``); ``task_defaults``
    are added to :data:`DEFAULT_ARGS` for this DAG's tasks (e.g. a ``weight_rule``)."""
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise ValueError(f"{dag_id}: tag(s) {', '.join(unknown)} are not in the vocabulary of include.seam.dag.TAGS")
    if schedule is None:
        if dag_id not in SCHEDULES:
            raise ValueError(f"{dag_id}: no schedule given and no entry in include.schedules.SCHEDULES")
        schedule = SCHEDULES[dag_id]

    def decorate(body: Callable[[], None]) -> Callable[[], Any]:
        def build():
            from airflow.sdk import DAG

            kwargs = {**DAG_DEFAULTS, **dag_kwargs}
            if deadline_alerts_on():
                kwargs.setdefault("deadline", run_deadline(late_after() or kwargs["dagrun_timeout"]))
            with DAG(dag_id=dag_id, schedule=schedule, default_args={**DEFAULT_ARGS, **(task_defaults or {})},
                     tags=["privacy", *tags], doc_md=doc_md(dag_id), params=dict(params), **kwargs) as dag:
                guard = _conf_guard(dag_id, sorted(params))
                body()
                own_roots = [t for t in dag.roots if t.task_id != CONF_GUARD_TASK]
                own_leaves = [t for t in dag.leaves if t.task_id != CONF_GUARD_TASK]
                guard >> own_roots
                anchor = _audit_anchor()
                own_leaves >> anchor.operator
                anchor.as_teardown(setups=guard)
            return dag

        build.__name__ = body.__name__
        build.__doc__ = body.__doc__
        return build

    return decorate
