"""Shared fixtures: every test that needs PostgreSQL gets a database of its own on a real server.

The server is ``PRIVACY_TEST_PG_URL`` (default: the local PostgreSQL on 127.0.0.1:5432). When nothing
answers there, an embedded server (PyPI ``pgserver``) is started under ``.demo/pg`` so that the suite
also runs on a machine that has only Python.
"""
from __future__ import annotations

import os
import tempfile
import uuid

import pytest

# Airflow reads its home at import: give the tests their own, never the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="privacy-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from devkit import database


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    from devkit.embedded_postgres import server_or_embedded

    return server_or_embedded(os.environ.get("PRIVACY_TEST_PG_URL", database.DEFAULT_URL))[0]


@pytest.fixture
def fresh_db(pg_server_url):
    """URL of a new, empty database, dropped after the test."""
    name = f"privacy_test_{uuid.uuid4().hex[:12]}"
    url = database.create_database(pg_server_url, name)
    try:
        yield url
    finally:
        database.drop_database(pg_server_url, name)


SENDGRID_TEST_KEY = "SG.test-key"


@pytest.fixture(scope="session")
def sendgrid_server(tmp_path_factory):
    """One SendGrid stand-in for the session (accepted payloads also go to a JSON-lines file)."""
    from devkit.standins.sendgrid_server import SendGridStandIn

    record = tmp_path_factory.mktemp("sendgrid") / "accepted.jsonl"
    with SendGridStandIn(api_key=SENDGRID_TEST_KEY, record_path=record, restricted_keys=["SG.no-scope"]) as server:
        yield server


@pytest.fixture
def sendgrid(sendgrid_server):
    """The stand-in, emptied of messages, requests and faults before and after the test."""
    sendgrid_server.clear()
    yield sendgrid_server
    sendgrid_server.clear()


@pytest.fixture
def sg(sendgrid):
    """Short name of :func:`sendgrid` for the stand-in's and the mailer's own tests."""
    return sendgrid


def pytest_sessionfinish(session, exitstatus):
    """pgserver logs from an atexit hook, after pytest has closed the streams its handlers write to."""
    import logging

    logging.getLogger("pgserver").disabled = True
