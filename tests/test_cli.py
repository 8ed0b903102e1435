"""The ``privacy-ops`` command line against a real PostgreSQL."""
from __future__ import annotations

import uuid

import pytest

from include import audit, database
from include.cli import main


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() configures logging for a terminal; the handler must not outlive pytest's captured stream."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def new_db_url(pg_server_url):
    name = f"privacy_cli_{uuid.uuid4().hex[:10]}"
    yield database.with_database(pg_server_url, name)
    database.drop_database(pg_server_url, name)


def test_init_ops_creates_the_reference_schema(new_db_url, capsys):
    assert main(["init-ops", "--url", new_db_url, "--create-database"]) == 0
    with database.connect(new_db_url) as conn:
        tables = {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'public'")}
    assert {"users", "privacy_requests", "data_shares", "email_suppressions"} <= tables
    assert "reference operational schema created" in capsys.readouterr().out
    assert main(["check-datamap", "--url", new_db_url]) == 0


def test_seed_if_empty_then_store_and_audit(fresh_db, capsys):
    assert main(["seed", "--url", fresh_db, "--users", "300", "--anchor", "2026-11-25", "--if-empty"]) == 0
    with database.connect(fresh_db) as conn:
        users = conn.execute("select count(*) from users").fetchone()[0]
    assert users == 300
    assert main(["seed", "--url", fresh_db, "--users", "300", "--if-empty"]) == 0
    assert "not seeding" in capsys.readouterr().out

    assert main(["migrate-store", "--url", fresh_db]) == 0
    assert main(["migrate-store", "--url", fresh_db]) == 0
    assert "already current" in capsys.readouterr().out
    with database.connect(fresh_db, autocommit=True) as conn:
        for i in range(3):
            audit.append(conn, "cli.test", {"i": i}, actor="cli-test")
    assert main(["verify-audit", "--url", fresh_db]) == 0
    assert "audit log OK: 3 row(s)" in capsys.readouterr().out

    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table compliance.audit_log disable trigger user")
        conn.execute("update compliance.audit_log set action = 'forged' where id = (select min(id) from compliance.audit_log)")
    assert main(["verify-audit", "--url", fresh_db]) == 1
    assert "audit log BROKEN after 0 good row(s)" in capsys.readouterr().err


def test_check_datamap_reports_the_entry(fresh_db, tmp_path, capsys):
    assert main(["init-ops", "--url", fresh_db]) == 0
    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table support_messages rename column body to message")
    assert main(["check-datamap", "--url", fresh_db]) == 1
    assert "data map entry personal_data 'support_messages': column 'body' does not exist" in capsys.readouterr().err


def test_unreachable_database_is_one_sentence(capsys):
    assert main(["migrate-store", "--url", "postgresql://postgres@127.0.0.1:1/nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("could not reach the database:") and "Traceback" not in err
