"""The Airflow seam: connections from AIRFLOW_CONN_*, and failures an on-call engineer can read."""
from __future__ import annotations

import json

import pytest

from include import runtime
from devkit.local_airflow import postgres_connection


def test_missing_connection_is_one_sentence_and_not_retried(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_CONN_OPS_DB", raising=False)
    with pytest.raises(AirflowFailException) as err:
        with runtime.readable_failures(), runtime.ops_db():
            pass
    assert str(err.value) == ("Airflow connection 'ops_db' is not defined: add it under Admin > Connections "
                              "or set AIRFLOW_CONN_OPS_DB")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_unreachable_database_is_one_sentence_and_retried(monkeypatch):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection("postgresql://postgres@127.0.0.1:1/nowhere"))
    with pytest.raises(AirflowException) as err:
        with runtime.readable_failures(), runtime.ops_db():
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
        with runtime.readable_failures():
            runtime.mailer()


def test_bad_settings_are_refused(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"timezone": "Mars/Olympus"}))
    with pytest.raises(AirflowFailException, match="unknown time zone 'Mars/Olympus'"):
        with runtime.readable_failures():
            runtime.settings()
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"due_soon_dayz": 3}))
    with pytest.raises(AirflowFailException, match="unknown privacy setting"):
        with runtime.readable_failures():
            runtime.settings()
