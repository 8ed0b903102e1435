"""The seam between Airflow and the domain code: connections, settings, and errors an on-call can read.

Only this module (and ``dags/``) imports Airflow. Imports are local so that parsing a DAG file stays cheap.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

log = logging.getLogger(__name__)

OPS_DB = "ops_db"
COMPLIANCE_DB = "compliance_db"
SENDGRID = "sendgrid_default"
SETTINGS_VARIABLE = "privacy_settings"


def _conn_hint(conn_id: str) -> str:
    return (f"Airflow connection '{conn_id}' is not defined: add it under Admin > Connections "
            f"or set AIRFLOW_CONN_{conn_id.upper()}")


def _connection(conn_id: str):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConfigurationProblem(_conn_hint(conn_id)) from None


class ConfigurationProblem(RuntimeError):
    """Something an operator must fix (a connection, a setting, the data map); retrying will not help."""


class ServiceUnreachable(RuntimeError):
    """A database or service did not answer; a retry may help."""


def settings():
    from airflow.sdk import Variable

    from include.config import Settings

    raw = Variable.get(SETTINGS_VARIABLE, default=None) or os.environ.get("PRIVACY_SETTINGS")
    return Settings.from_json(raw)


def _open_postgres(conn_id: str):
    import psycopg
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return PostgresHook(postgres_conn_id=conn_id).get_conn()
    except AirflowNotFoundException:
        raise ConfigurationProblem(_conn_hint(conn_id)) from None
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnreachable(f"the database of connection '{conn_id}' did not answer: {first_line}") from None


@contextlib.contextmanager
def postgres(conn_id: str, fallback: str | None = None) -> Iterator:
    """An autocommit psycopg 3 connection from an Airflow postgres connection (the hook's own ``get_conn``)."""
    try:
        conn = _open_postgres(conn_id)
    except ConfigurationProblem:
        if fallback is None:
            raise
        log.info("connection '%s' is not defined; using '%s' (the same server)", conn_id, fallback)
        conn = _open_postgres(fallback)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def ops_db():
    return postgres(OPS_DB)


def compliance_db():
    # SPEC §2: the compliance store defaults to the operational database's server.
    return postgres(COMPLIANCE_DB, fallback=OPS_DB)


def mailer():
    """The SendGrid client from connection ``sendgrid_default`` (API key in the password, optional host in extras)."""
    from airflow.sdk.log import mask_secret

    from include.notify.sendgrid_mailer import SendGridMailer

    conn = _connection(SENDGRID)
    if not conn.password:
        raise ConfigurationProblem(f"Airflow connection '{SENDGRID}' has no API key in its password field")
    mask_secret(conn.password)
    extra = conn.extra_dejson or {}
    return SendGridMailer(api_key=conn.password, host=extra.get("host") or None,
                          timeout=float(extra.get("timeout", 30)))


def datamap(ops_conn):
    """The data map, checked against the live operational database."""
    from include.datamap import load_datamap, validate_against_database

    dm = load_datamap(os.environ.get("PRIVACY_DATAMAP") or None)
    validate_against_database(dm, ops_conn)
    return dm


@contextlib.contextmanager
def readable_failures() -> Iterator[None]:
    """Turn the failures an operator can act on into one clear sentence instead of a traceback wall.

    Configuration problems fail the task without retries; unreachable services keep Airflow's retries.
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from include.compliance_store import MigrationError
    from include.config import SettingsError
    from include.datamap import DataMapError
    from include.notify.sendgrid_mailer import SendGridAuthError, SendGridUnavailable, SendGridUnexpectedResponse

    try:
        yield
    except (ConfigurationProblem, DataMapError, SettingsError, MigrationError, SendGridAuthError,
            SendGridUnexpectedResponse) as exc:
        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from None
    except (ServiceUnreachable, SendGridUnavailable) as exc:
        log.error("%s (Airflow will retry)", exc)
        raise AirflowException(str(exc)) from None


def run_context(context):
    from include.audit import RunContext

    ti = context["ti"]
    return RunContext(run_id=context["run_id"], actor=f"airflow:{ti.dag_id}", dag_id=ti.dag_id, task_id=ti.task_id)


def run_mail_step(step, as_of: str, params: dict, **kwargs):
    """Run a step that reads the compliance store and emails (``step(store, mailer, settings, ctx, ...)``).

    A dry run gets no mailer at all, so nothing it does can reach SendGrid.
    """
    from datetime import date

    from airflow.sdk import get_current_context

    with readable_failures():
        settings_ = settings()
        ctx = run_context(get_current_context())
        dry_run = bool(params.get("dry_run", False))
        with compliance_db() as store:
            return step(store, None if dry_run else mailer(), settings_, ctx, as_of=date.fromisoformat(as_of),
                        dry_run=dry_run, **kwargs)
