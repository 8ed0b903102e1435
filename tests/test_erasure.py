"""The erasure engine on a real PostgreSQL: every mapped table, hash vs delete rules, the residual check
(a mapped table, a table the map forgot), rollback, holds, shared addresses, claims, plans, indexes."""
from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import yaml

from devkit.database import connect
from devkit.operational_schema import create_reference_schema
from include import erasure
from include.datamap import default_path, parse_datamap  # noqa: F401
from tests.conftest import ops_datamap, ops_datamap_raw
from include.erasure.scope import residual_by_keys_query, residual_query, targets
from include.subjects import address_hash, user_hash

KEY = b"test-subject-key-0123456789"
NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
TABLES = ("users", "uploads", "support_messages", "usage_events", "access_logs", "social_profiles", "data_shares",
          "privacy_requests", "child_reports", "legal_holds", "email_suppressions", "vendors")


@pytest.fixture
def ops(fresh_db):
    with connect(fresh_db, autocommit=True) as conn:
        create_reference_schema(conn)
        conn.execute("""insert into vendors (id, name, kind, allowed_categories, active) values
                        (1, 'CloudHost', 'service_provider', '{account}', true),
                        (2, 'AdPartner', 'channel_partner', '{contact}', true)""")
        yield conn


@pytest.fixture
def dm():
    return ops_datamap()


def add_subject(conn, uid: int, email: str | None, *, hold: str | None = None) -> None:
    """An account with rows in every mapped table (a report by id and one by address, a suppression)."""
    conn.execute("insert into users (id, email, full_name, birth_date, created_at) values (%s, %s, %s, %s, %s)",
                 (uid, email, f"Kid {uid}", "2016-01-01", NOW - timedelta(days=100)))
    conn.execute("insert into uploads (user_id, filename, source, storage_uri, size_bytes, created_at) "
                 "values (%s, 'a.pdf', 'upload', 'gs://x/a.pdf', 10, now())", (uid,))
    conn.execute("insert into support_messages (user_id, email, subject, body, created_at) "
                 "values (%s, %s, 'hi', 'body', now())", (uid, email))
    for _ in range(3):
        conn.execute("insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at) "
                     "values (%s, 'x', 'y', 1, 1, now())", (uid,))
    conn.execute("insert into access_logs (user_id, ip_address, user_agent, occurred_at) "
                 "values (%s, '203.0.113.9', 'ua', now())", (uid,))
    conn.execute("insert into social_profiles (user_id, network, handle, profile_url) values (%s, 'gh', 'h', 'u')",
                 (uid,))
    conn.execute("""insert into data_shares (vendor_id, user_id, category, purpose, record_count, shared_at) values
                    (1, %s, 'account', 'p', 1, now()), (1, %s, 'usage', 'p', 1, now()), (99, %s, 'contact', 'p', 1, now())""",
                 (uid, uid, uid))
    conn.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at, status)
                    values (%s, %s, 'gdpr', 'access', now(), 'completed')""", (uid, email or "x@example.org"))
    conn.execute("insert into child_reports (user_id, source, reported_at) values (%s, 'parent', now())", (uid,))
    if email:
        conn.execute("insert into child_reports (reported_email, source, reported_at) values (%s, 'support', now())",
                     (f"  {email.upper()} ",))
        conn.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())",
                     (email.upper(),))
    conn.execute("insert into legal_holds (user_id, reason, placed_at, released_at) values (%s, 'r', now(), %s)",
                 (uid, hold if hold != "active" else None) if hold else (uid, NOW - timedelta(days=1)))


def snapshot(conn) -> dict[str, list]:
    return {t: conn.execute(f"select * from {t} order by 1").fetchall() for t in TABLES}


def rows_of(conn, uid: int, email: str | None) -> dict[str, int]:
    email = (email or "").strip().lower()
    q = {
        "users": "select count(*) from users where id = %(u)s",
        "uploads": "select count(*) from uploads where user_id = %(u)s",
        "support_messages": "select count(*) from support_messages where user_id = %(u)s",
        "usage_events": "select count(*) from usage_events where user_id = %(u)s",
        "access_logs": "select count(*) from access_logs where user_id = %(u)s",
        "social_profiles": "select count(*) from social_profiles where user_id = %(u)s",
        "data_shares": "select count(*) from data_shares where user_id = %(u)s",
        "privacy_requests": "select count(*) from privacy_requests where user_id = %(u)s",
        "child_reports": "select count(*) from child_reports where user_id = %(u)s or lower(btrim(reported_email)) = %(e)s",
        "legal_holds": "select count(*) from legal_holds where user_id = %(u)s",
        "email_suppressions": "select count(*) from email_suppressions where lower(btrim(email)) = %(e)s",
    }
    return {t: conn.execute(sql, {"u": uid, "e": email}).fetchone()[0] for t, sql in q.items()}


def test_a_subject_is_erased_from_every_mapped_table_and_nobody_else_is_touched(ops, dm):
    add_subject(ops, 1, "Kid.One@Example.com")
    add_subject(ops, 2, "adult@example.com")
    before = rows_of(ops, 1, "kid.one@example.com")
    assert all(before.values()), before  # the subject has rows in every mapped table
    bystander = rows_of(ops, 2, "adult@example.com")
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)

    assert result.outcome == erasure.PURGED and result.subject_hash == user_hash(KEY, 1)
    assert rows_of(ops, 1, "kid.one@example.com") == dict.fromkeys(before, 0)
    assert rows_of(ops, 2, "adult@example.com") == bystander
    counted = {t.table.split(".")[1]: t.rows for t in result.tables}
    assert counted == before and [t.table for t in result.tables][-1] == "public.users"  # account row last
    assert {v.vendor_id: (v.known, v.categories, v.shares) for v in result.vendors} == {
        1: (True, ("account", "usage"), 2), 99: (False, ("contact",), 1)}


def test_redacted_rows_stay_with_keyed_hashes_not_plain_ones(ops, dm):
    add_subject(ops, 1, "Kid.One@Example.com")
    request_id = ops.execute("select id from privacy_requests where user_id = 1").fetchone()[0]
    report_ids = [r[0] for r in ops.execute("select id from child_reports order by id")]
    erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    user_id, requester = ops.execute("select user_id, requester_email from privacy_requests where id = %s",
                                     (request_id,)).fetchone()
    assert user_id is None and requester == address_hash(KEY, "kid.one@example.com")
    assert requester != hashlib.sha256(b"kid.one@example.com").hexdigest()
    assert requester != address_hash(b"another-key-0123456789", "kid.one@example.com")
    reports = ops.execute("select id, user_id, reported_email from child_reports order by id").fetchall()
    assert [r[0] for r in reports] == report_ids  # the reports stay, unlinked
    assert reports[0][1:] == (None, None)
    assert reports[1][1:] == (None, address_hash(KEY, "kid.one@example.com"))


def test_an_erased_subject_is_a_no_op_the_second_time(ops, dm):
    add_subject(ops, 1, "kid@example.com")
    erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    after = snapshot(ops)
    again = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert again.outcome == erasure.ALREADY_ERASED and again.rows_erased == 0
    assert snapshot(ops) == after


@pytest.mark.parametrize("hold, outcome", [
    ("active", erasure.HELD),
    ((NOW + timedelta(days=3)).isoformat(), erasure.HELD),   # released only in the future: still active
    ((NOW - timedelta(days=3)).isoformat(), erasure.PURGED),  # released: no longer protects the data
])
def test_an_active_legal_hold_leaves_the_subject_untouched(ops, dm, hold, outcome):
    add_subject(ops, 1, "kid@example.com", hold=hold)
    before = snapshot(ops)
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert result.outcome == outcome
    if outcome == erasure.HELD:
        assert result.holds and snapshot(ops) == before


def test_rows_left_in_a_mapped_table_roll_the_subject_back_and_name_the_table(ops, dm):
    """An application writing for the subject while it is erased: the residual count catches it."""
    add_subject(ops, 1, "kid@example.com")
    ops.execute("""create function relog() returns trigger language plpgsql as $$
                   begin insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at)
                         values (old.id, 'late', 'x', 0, 0, now()); return old; end $$""")
    ops.execute("create trigger relog after delete on users for each row execute function relog()")
    before = snapshot(ops)
    with pytest.raises(erasure.ResidualDataError) as err:
        erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert "1 row(s) in public.usage_events" in str(err.value) and "rolled back" in str(err.value)
    assert err.value.residual == {"public.usage_events": 1}
    assert snapshot(ops) == before


def test_the_residual_check_catches_a_table_the_map_forgot(ops):
    add_subject(ops, 1, "kid@example.com")
    raw = yaml.safe_load(default_path().read_text())
    # The operational database's entries (the other stores have their own tests), uploads forgotten.
    raw["personal_data"] = [e for e in raw["personal_data"]
                            if e["table"] != "uploads" and e.get("connection", "ops_db") == "ops_db"]
    forgetful = parse_datamap(raw)
    assert [u.label for u in erasure.discover_unmapped(ops, forgetful)] == ["public.uploads"]
    before = snapshot(ops)
    with pytest.raises(erasure.ResidualDataError) as err:
        erasure.erase_subject(ops, forgetful, 1, KEY, at=NOW)
    assert "1 row(s) in public.uploads (a table the data map does not list)" in str(err.value)
    assert snapshot(ops) == before
    # A plan shows the forgotten table before anything is attempted.
    planned = erasure.plan(ops, forgetful, [1], KEY, at=NOW)
    assert [t.table for t in planned.subjects[0].unmapped] == ["public.uploads"]


def test_a_forgotten_table_is_found_by_its_foreign_key_too(ops, dm):
    ops.execute("create table devices (id bigint primary key, owner bigint references users (id) "
                "deferrable initially deferred)")
    ops.execute("create table chat_messages (id bigint primary key, user_id bigint)")
    assert [(u.label, u.column) for u in erasure.discover_unmapped(ops, dm)] == [
        ("public.chat_messages", "user_id"), ("public.devices", "owner")]
    add_subject(ops, 1, None)
    ops.execute("insert into devices values (1, 1)")
    with pytest.raises(erasure.ResidualDataError, match="public.devices"):
        erasure.erase_subject(ops, dm, 1, KEY, at=NOW)


def test_a_database_refusal_names_the_table_and_rolls_back(ops, dm):
    add_subject(ops, 1, "kid@example.com")
    ops.execute("alter table privacy_requests add constraint short check (length(requester_email) < 40)")
    before = snapshot(ops)
    with pytest.raises(erasure.ErasureError, match=r"erasing public.privacy_requests \(redact\) was refused"):
        erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert snapshot(ops) == before


def test_rows_tied_by_a_shared_address_are_kept_until_the_last_account_goes(ops, dm):
    add_subject(ops, 1, "shared@example.com")
    ops.execute("insert into users (id, email, created_at) values (2, ' SHARED@example.com', now())")
    first = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert first.outcome == erasure.PURGED and first.shared_address
    assert {t.table: t.rows for t in first.kept} == {"public.child_reports": 1, "public.email_suppressions": 1}
    assert ops.execute("select count(*) from email_suppressions").fetchone()[0] == 1
    second = erasure.erase_subject(ops, dm, 2, KEY, at=NOW)
    assert not second.shared_address
    assert {t.table: t.rows for t in second.tables if t.rows} == {
        "public.child_reports": 1, "public.email_suppressions": 1, "public.users": 1}
    assert ops.execute("select count(*) from email_suppressions").fetchone()[0] == 0


def test_a_failing_hook_or_a_failed_recheck_changes_nothing(ops, dm):
    add_subject(ops, 1, "kid@example.com")
    before = snapshot(ops)

    def refuse(result):
        raise RuntimeError("the store refused the record")

    with pytest.raises(RuntimeError):
        erasure.erase_subject(ops, dm, 1, KEY, at=NOW, options=erasure.EraseOptions(before_commit=refuse))
    assert snapshot(ops) == before
    assert erasure.erase_subject(ops, dm, 1, KEY, at=NOW, options=erasure.EraseOptions(recheck=lambda conn: False)).outcome == erasure.NOT_ELIGIBLE
    assert snapshot(ops) == before
    seen = []
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW, options=erasure.EraseOptions(in_transaction=lambda conn: {"n": seen.append(1) or 7},
                                   before_commit=lambda r: seen.append(r.rows_erased)))
    assert result.extra == {"n": 7} and seen == [1, result.rows_erased]


def test_rows_left_by_an_account_deleted_elsewhere_are_erased(ops, dm):
    add_subject(ops, 1, "kid@example.com")
    ops.execute("delete from users where id = 1")
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert result.outcome == erasure.PURGED
    assert {t.table: t.rows for t in result.tables}["public.users"] == 0
    assert {t.table: t.rows for t in result.tables}["public.usage_events"] == 3
    assert erasure.residual_by_keys(ops, dm, [1]) == {}
    assert erasure.probe(ops, dm, 1) == erasure.Probe(exists=False)


def test_two_erasers_never_erase_one_subject_twice(fresh_db, ops, dm):
    add_subject(ops, 1, "kid@example.com")
    inside, release = threading.Event(), threading.Event()
    results = {}

    def hold_the_claim(result):
        inside.set()
        release.wait(10)

    def first():
        with connect(fresh_db, autocommit=True) as conn:
            results["first"] = erasure.erase_subject(conn, dm, 1, KEY, at=NOW, options=erasure.EraseOptions(before_commit=hold_the_claim))

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    with connect(fresh_db, autocommit=True) as other:
        assert erasure.erase_subject(other, dm, 1, KEY, at=NOW).outcome == erasure.CLAIMED_ELSEWHERE
        assert erasure.probe(other, dm, 1) == erasure.Probe(exists=True, busy=True)
        waiter = threading.Thread(target=lambda: results.update(
            second=erasure.erase_subject(other, dm, 1, KEY, at=NOW, options=erasure.EraseOptions(wait=True))))
        waiter.start()
        release.set()
        thread.join(10)
        waiter.join(10)
    assert results["first"].outcome == erasure.PURGED
    assert results["second"].outcome == erasure.ALREADY_ERASED


def test_a_lock_held_too_long_is_a_transient_busy_subject(fresh_db, ops, dm):
    add_subject(ops, 1, "kid@example.com")
    with connect(fresh_db) as app:  # an application transaction holding one of the subject's rows
        app.execute("update usage_events set feature = 'z' where user_id = 1")
        with pytest.raises(erasure.SubjectBusy):
            erasure.erase_subject(ops, dm, 1, KEY, at=NOW, options=erasure.EraseOptions(lock_timeout_ms=200))
        app.rollback()
    assert rows_of(ops, 1, "kid@example.com")["usage_events"] == 3


def test_a_plan_counts_what_an_erasure_then_erases(ops, dm):
    add_subject(ops, 1, "kid@example.com")
    add_subject(ops, 2, None, hold="active")
    planned = erasure.plan(ops, dm, [2, 1, 3], KEY, at=NOW)
    by_id = {s.user_id: s for s in planned.subjects}
    assert [s.user_id for s in planned.erasable] == [1] and [s.user_id for s in planned.held] == [2]
    assert [s.user_id for s in planned.gone] == [3]
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert by_id[1].tables == result.tables
    assert by_id[1].vendors == result.vendors
    assert planned.table_totals()["public.usage_events"] == 3
    assert planned.vendor_totals() == [{"vendor_id": 1, "name": "CloudHost", "known": True, "subjects": 1, "shares": 2},
                                       {"vendor_id": 99, "name": None, "known": False, "subjects": 1, "shares": 1}]


def test_the_plan_hash_names_who_and_how_not_row_counts(ops, dm):
    for uid in (1, 2, 3):
        add_subject(ops, uid, f"kid{uid}@example.com")

    def plan_hash(ids, datamap=dm):
        return erasure.plan(ops, datamap, ids, KEY, at=NOW).hash

    base = plan_hash([1, 2])
    assert plan_hash([2, 1, 2]) == base                      # order and repeats do not matter
    ops.execute("insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at) "
                "values (1, 'x', 'y', 1, 1, now())")
    assert plan_hash([1, 2]) == base                         # a child's new event is still the same plan
    assert plan_hash([1, 2, 3]) != base                      # another subject
    ops.execute("insert into legal_holds (user_id, reason, placed_at) values (2, 'new hold', now())")
    assert plan_hash([1, 2]) != base                         # a hold placed since
    ops.execute("delete from legal_holds where reason = 'new hold'")
    assert plan_hash([1, 2]) == base
    raw = ops_datamap_raw()  # dm but for one erase rule
    raw["personal_data"][7]["erase"] = {"set_null": ["user_id", "requester_email"]}
    assert plan_hash([1, 2], parse_datamap(raw)) != base     # another erase rule
    other_key = erasure.plan(ops, dm, [1, 2], b"another-key-0123456789", at=NOW).hash
    assert other_key != base                                 # subjects are hashed with the key
    limited = erasure.plan(ops, dm, [1, 2, 3], KEY, at=NOW).limited(2)
    assert limited.hash == base and [s.user_id for s in limited.deferred] == [3]


def explain(conn, statement, params) -> str:
    """EXPLAIN with sequential scans priced out: a Seq Scan left in the plan means no index can serve it."""
    with conn.transaction(force_rollback=True):
        conn.execute("set local enable_seqscan = off")
        return "\n".join(r[0] for r in conn.execute(psycopg.sql.SQL("explain ") + statement, params))


def test_every_erase_and_residual_statement_uses_an_index(ops, dm):
    add_subject(ops, 1, "kid@example.com")
    ops.execute("analyze")
    params = {"user_id": 1, "email": "kid@example.com"}
    statements = []
    for target in targets(dm):
        statements += [target.delete(), target.count(), target.count_email_links()]
        if target.action == "redact":
            statements += [target.lock_for_redaction(), target.redact_all() if target.entry.erase.null else None]
    statements += [residual_query(targets(dm), ())]
    for statement in filter(None, statements):
        text = explain(ops, statement, params)
        assert "Seq Scan" not in text, (statement.as_string(ops), text)
    for statement in [residual_by_keys_query(targets(dm), ())] + [t.count_for_each() for t in targets(dm)]:
        text = explain(ops, statement, {"ids": [1, 2], "emails": ["kid@example.com", None]})
        assert "Seq Scan" not in text, (statement.as_string(ops), text)
    requests = next(t for t in targets(dm) if t.label == "public.privacy_requests")
    assert "Tid Scan" in explain(ops, requests.redact_row(), ("x", "(0,1)"))  # one locked row, by its ctid
