"""The compliance store on a real PostgreSQL: migrations, and the audit log's refusals and chain."""
from __future__ import annotations

import re

import psycopg
import pytest

from include import audit, compliance_store
from devkit.database import connect


@pytest.fixture
def store(store_db):
    with connect(store_db, autocommit=True) as conn:
        yield conn


def test_migrate_is_idempotent_and_versioned(fresh_db):
    with connect(fresh_db, autocommit=True) as conn:
        assert compliance_store.current_version(conn) is None
        with pytest.raises(compliance_store.MigrationError, match="does not exist yet"):
            compliance_store.require_current(conn)
        first = compliance_store.migrate(conn)
        assert first == [m.version for m in compliance_store.available_migrations()]
        assert compliance_store.migrate(conn) == []
        compliance_store.require_current(conn)
        tables = {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'compliance'")}
        assert {"dsr_status", "audit_log", "dsr_escalations", "dsr_digests", "dsr_runs"} <= tables


def test_edited_migration_is_refused(store):
    store.execute("update compliance.schema_migrations set checksum = 'x' where version = 1")
    with pytest.raises(compliance_store.MigrationError, match="was changed after it was applied"):
        compliance_store.migrate(store)


def test_audit_chain_appends_and_verifies(store):
    ids = [audit.append(store, "test.event", {"n": i, "when": "2026-11-25"}, actor="test") for i in range(5)]
    assert ids == sorted(ids)
    report = audit.verify_chain(store)
    assert report.ok and report.rows == 5
    last = store.execute("select row_hash from compliance.audit_log order by id desc limit 1").fetchone()[0]
    assert report.head == last


def test_details_jsonb_writes_back_otherwise_still_verify(store):
    """Found by a fault trial: a float of 1e16 or more in the details came back from jsonb as a whole number, so the
    next verification called an untouched row altered. Such floats are written as the whole numbers they are;
    NaN and infinities (which jsonb cannot hold) are refused in one sentence."""
    audit.append(store, "test.numbers", {"v": 1e16, "w": 1.5e300, "nested": [{"x": -2e20, "y": 0.1, "z": 1e-7}],
                                         "small": 9.1e15}, actor="test")
    assert audit.verify_chain(store).ok
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            audit.append(store, "test.numbers", {"v": bad}, actor="test")
    assert audit.verify_chain(store).ok


def test_a_negative_zero_in_the_details_still_verifies(store):
    """jsonb has no negative zero: -0.0 (what rounding a small negative number gives) read back as 0.0, so the next
    verification called the untouched row altered, and every later row was then never checked."""
    audit.append(store, "test.numbers", {"change": round(-0.001, 2), "nested": [{"x": -0.0}]}, actor="test")
    audit.append(store, "test.numbers", {"n": 1}, actor="test")
    report = audit.verify_chain(store)
    assert report.ok and report.rows == 2, report.problem


@pytest.mark.parametrize("details, where", [
    ({"reason": "refused\x00"}, "a NUL character (in detail 'reason')"),
    ({"run": {"names": ["ok", "\ud800"]}}, "half of a surrogate pair (in detail 'run.names')"),
    ({"bad\x00key": 1}, "a NUL character (in a detail's name)"),
])
def test_text_jsonb_cannot_hold_is_refused_in_one_sentence(store, details, where):
    """A NUL in the details reached the database, whose refusal ("unsupported Unicode escape sequence", its CONTEXT
    quoting the details) the task retried three times; half a surrogate pair failed in the hash's encoding."""
    with pytest.raises(ValueError, match=f"^audit details cannot hold {re.escape(where)}: jsonb cannot store it$"):
        audit.append(store, "test.text", details, actor="test")
    assert store.execute("select count(*) from compliance.audit_log").fetchone()[0] == 0


@pytest.mark.parametrize("statement", [
    "update compliance.audit_log set action = 'forged'",
    "delete from compliance.audit_log",
    "truncate compliance.audit_log",
])
def test_audit_log_refuses_changes(store, statement):
    audit.append(store, "test.event", {}, actor="test")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        store.execute(statement)
    assert store.execute("select count(*) from compliance.audit_log").fetchone()[0] == 1


def test_audit_log_refuses_a_row_out_of_chain(store):
    audit.append(store, "test.event", {}, actor="test")
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="does not continue the chain"):
        store.execute("""insert into compliance.audit_log (id, occurred_at, actor, action, prev_hash, row_hash)
                         values (999, now(), 'x', 'forged', repeat('0', 64), 'abc')""")


def test_verify_detects_tampering_behind_the_triggers(store):
    for i in range(4):
        audit.append(store, "test.event", {"n": i}, actor="test")
    # A superuser can switch the triggers off; the chain still gives it away.
    store.execute("alter table compliance.audit_log disable trigger user")
    target = store.execute("select id from compliance.audit_log order by id offset 2 limit 1").fetchone()[0]
    store.execute("update compliance.audit_log set details = '{\"n\": 99}' where id = %s", (target,))
    report = audit.verify_chain(store)
    assert not report.ok and report.first_bad_id == target and "altered" in report.problem

    store.execute("delete from compliance.audit_log where id = %s", (target,))
    report = audit.verify_chain(store)
    assert not report.ok and "does not follow" in report.problem


def test_concurrent_writers_keep_one_chain(store_db, store):
    import threading

    def writer(n):
        with connect(store_db, autocommit=True) as conn:
            for i in range(10):
                audit.append(conn, "test.concurrent", {"writer": n, "i": i}, actor="test")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit.verify_chain(store)
    assert report.ok and report.rows == 40


def test_a_store_missing_a_lower_numbered_migration_is_not_current(store):
    """Migrations land from parallel branches: 0006 can arrive after 0007 was applied."""
    version = compliance_store.available_migrations()[-2].version
    store.execute("delete from compliance.schema_migrations where version = %s", (version,))
    with pytest.raises(compliance_store.MigrationError, match=f"lacks migration\\(s\\) {version:04d}_"):
        compliance_store.require_current(store)
