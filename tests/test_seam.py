"""The Airflow seam: connections from AIRFLOW_CONN_*, and failures an on-call engineer can read."""
from __future__ import annotations

import json

import pytest

from devkit.local_airflow import postgres_connection
from include.seam import connections as runtime
from include.seam.task import readable_failures


def test_missing_connection_is_one_sentence_and_not_retried(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_CONN_OPS_DB", raising=False)
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.ops_db():
            pass
    assert str(err.value) == ("Airflow connection 'ops_db' is not defined: add it under Admin > Connections "
                              "or set AIRFLOW_CONN_OPS_DB")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_unreachable_database_is_one_sentence_and_retried(monkeypatch):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection("postgresql://postgres@127.0.0.1:1/nowhere"))
    with pytest.raises(AirflowException) as err:
        with readable_failures(), runtime.ops_db():
            pass
    assert not isinstance(err.value, AirflowFailException)  # Airflow's retries apply
    assert str(err.value).startswith("the database of connection 'ops_db' did not answer:")
    assert "\n" not in str(err.value)


def test_compliance_db_falls_back_to_ops_db(monkeypatch, fresh_db):
    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(fresh_db))
    monkeypatch.delenv("AIRFLOW_CONN_COMPLIANCE_DB", raising=False)
    with runtime.compliance_db() as conn:
        assert conn.execute("select current_database()").fetchone()[0] == fresh_db.rsplit("/", 1)[1]
        assert conn.autocommit


def test_sendgrid_connection_without_key_is_refused(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps({"conn_type": "generic"}))
    with pytest.raises(AirflowFailException, match="has no API key"):
        with readable_failures():
            runtime.mailer()


def test_bad_settings_are_refused(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"timezone": "Mars/Olympus"}))
    with pytest.raises(AirflowFailException, match="unknown time zone 'Mars/Olympus'"):
        with readable_failures():
            runtime.settings()
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"due_soon_dayz": 3}))
    with pytest.raises(AirflowFailException, match="unknown privacy setting"):
        with readable_failures():
            runtime.settings()


def test_a_database_lost_mid_task_is_one_sentence_and_retried(fresh_db):
    """A server that drops the connection mid-query used to print a raw driver traceback."""
    import contextlib

    import psycopg
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from include.audit import RunContext
    from include.config import Settings
    from include.seam.task import TaskEnv, lost_database, readable_failures

    with psycopg.connect(fresh_db, autocommit=True) as killer, contextlib.ExitStack() as stack:
        env = TaskEnv(ctx=RunContext(run_id="r", actor="t"), settings=Settings(), params={}, stack=stack)
        conn = env._db("ops_db", lambda: psycopg.connect(fresh_db, autocommit=True))
        pid = conn.info.backend_pid
        with pytest.raises(AirflowException) as err:
            with readable_failures():
                try:
                    with conn.transaction(), conn.cursor(name="stream") as cur:
                        cur.execute("select g from generate_series(1, 1000000) g")
                        cur.fetchmany(10)
                        killer.execute("select pg_terminate_backend(%s)", (pid,))
                        cur.fetchmany(100000)
                except psycopg.Error as exc:
                    raise lost_database(exc, env.lost_database()) from None
    assert not isinstance(err.value, AirflowFailException)  # Airflow's retries apply
    sentence = str(err.value)
    assert sentence.startswith("lost the database of connection 'ops_db' mid-task:") and "\n" not in sentence
    assert err.value.__cause__ is None


def test_every_product_error_is_one_of_two_kinds():
    """The seam decides by kind: every domain error derives from NeedsOperator or Transient."""
    from include.compliance_store import MigrationError
    from include.config import SettingsError
    from include.datamap import DataMapError
    from include.errors import NeedsOperator, Transient
    from include.notify.sendgrid_mailer import (SendGridAuthError, SendGridRateLimited, SendGridUnavailable,
                                                SendGridUnexpectedResponse)
    from include.runconf import UnknownConfKey

    for needs_operator in (MigrationError, SettingsError, DataMapError, SendGridAuthError, SendGridUnexpectedResponse,
                           UnknownConfKey):
        assert issubclass(needs_operator, NeedsOperator), needs_operator
    for transient in (SendGridUnavailable, SendGridRateLimited):
        assert issubclass(transient, Transient), transient


def test_an_unknown_conf_key_is_one_sentence_naming_the_declared_ones():
    from include.runconf import UnknownConfKey, check_conf

    check_conf("d", {"dry_run": True}, ["as_of", "dry_run"])
    with pytest.raises(UnknownConfKey) as err:
        check_conf("dsr_deadline_tracking", {"dryrun": True}, ["as_of", "dry_run", "request_ids"])
    assert str(err.value) == ("trigger conf key 'dryrun' is not a parameter of dsr_deadline_tracking (its parameters: "
                              "as_of, dry_run, request_ids); the run stopped before reading, changing or sending "
                              "anything")


def test_the_reviewers_time_is_eight_hours_or_what_the_environment_says(monkeypatch):
    from datetime import timedelta

    from include.seam.approval import APPROVAL_TIMEOUT_ENV, approval_timeout

    monkeypatch.delenv(APPROVAL_TIMEOUT_ENV, raising=False)
    assert approval_timeout() == timedelta(hours=8)
    monkeypatch.setenv(APPROVAL_TIMEOUT_ENV, "24")
    assert approval_timeout() == timedelta(hours=24)
    monkeypatch.setenv(APPROVAL_TIMEOUT_ENV, "0.25")
    assert approval_timeout() == timedelta(minutes=15)
    for bad in ("0", "-1", "eight", "400", "nan", "inf"):
        monkeypatch.setenv(APPROVAL_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=f"^{APPROVAL_TIMEOUT_ENV} must be a number of hours above 0 and at most "
                                             f"336, not '{bad}'$"):
            approval_timeout()
