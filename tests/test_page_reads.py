"""The compliance page's reads and sections against a real PostgreSQL: order, filters, pagination both ways,
what-ifs, missing and mismatching tables, the sketched sections, and the audit chain watch (incremental
checks, whole walks, anchors)."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from devkit.database import connect
from include import audit, compliance_store, reads
from include.objectstore import FileObjectStore
from include.page import sections
from include.page.links import UiLinks
from include.reads import dsr
from include.reads.audit import ChainWatch

STATES = list(dsr.STATE_ORDER)


@pytest.fixture
def store(fresh_db):
    with connect(fresh_db, autocommit=True) as conn:
        conn.execute("set time zone 'UTC'")
        compliance_store.migrate(conn)
        yield conn


def add_status(conn, rows):
    """rows: (request_id, regime, request_type, state, days_left)."""
    for rid, regime, rtype, state, days in rows:
        conn.execute(
            """insert into compliance.dsr_status (request_id, regime, request_type, state, days_left, invalid_reason,
                                                  as_of, evaluated_at, run_id)
               values (%s, %s, %s, %s, %s, %s, current_date, now(), %s)""",
            (rid, regime, rtype, state, days, "bad" if state == "invalid" else None, f"manual__run-{rid % 3}"))


def expected_order(rows):
    big = 10**9
    return [r[0] for r in sorted(rows, key=lambda r: (STATES.index(r[3]), big if r[4] is None else r[4], r[0]))]


@pytest.fixture
def requests_table(store):
    rng = random.Random(7)
    rows = []
    for rid in range(1, 121):
        state = rng.choice(STATES)
        days = None if state in ("invalid", "awaiting_identity") and rng.random() < 0.5 else rng.randint(-40, 40)
        rows.append((rid, rng.choice(["gdpr", "ccpa", "lgpd"]), rng.choice(["access", "erasure", "know"]), state, days))
    add_status(store, rows)
    return rows


@pytest.mark.parametrize("filters", [{}, {"state": "overdue"}, {"regime": "ccpa"}, {"request_type": "know"},
                                     {"regime": "gdpr", "request_type": "access"},
                                     {"regime": "lgpd", "request_type": "erasure", "state": "on_track"}])
@pytest.mark.parametrize("size", [7, 50])
def test_every_page_forwards_and_backwards_is_the_overdue_first_order(store, requests_table, filters, size):
    """Pages past the middle are read backwards: together the pages are exactly the whole order, once each."""
    wanted = [r for r in requests_table if all(dict(zip(("regime", "request_type", "state"), r[1:4]))[k] == v
                                               for k, v in filters.items())]
    expected = expected_order(wanted)
    seen = []
    for offset in range(0, len(expected) + size, size):
        page = dsr.request_page(store, **filters, limit=size, offset=offset)
        assert page["total"] == len(expected)
        seen += [row["request_id"] for row in page["rows"]]
    assert seen == expected
    # The same with the total given (as the section does, from the breakdown).
    last = dsr.request_page(store, **filters, limit=size, offset=max(len(expected) - size, 0), total=len(expected))
    assert [r["request_id"] for r in last["rows"]] == expected[max(len(expected) - size, 0):]


def test_the_page_shows_no_assignee_and_counts_match_the_breakdown(store, requests_table):
    store.execute("update compliance.dsr_status set assignee_email = 'staff@example.com'")
    page = dsr.request_page(store, limit=200)
    assert all("assignee_email" not in row for row in page["rows"])
    assert sum(n for *_, n in dsr.request_breakdown(store)) == len(requests_table)


def render(store, key, params=None, chain=None):
    return sections.render(sections.section(key), store, params or {}, UiLinks(base="/af"), chain=chain)


def test_requests_section_summary_filters_and_run_links(store, requests_table):
    data = render(store, "requests", {"regime": "ccpa", "size": "5"})
    ccpa = [r for r in requests_table if r[1] == "ccpa"]
    assert data["total"] == len(ccpa)
    assert {s["label"]: s["value"] for s in data["summary"]} == {s: sum(1 for r in ccpa if r[3] == s) for s in STATES}
    assert [r["request_id"] for r in data["rows"]] == expected_order(ccpa)[:5]
    assert data["choices"]["regime"] == ["ccpa", "gdpr", "lgpd"]
    link = data["rows"][0]["evaluated_by"]
    assert link["href"] == f"/af/dags/dsr_deadline_tracking/runs/{link['text'].replace(':', '%3A')}"
    assert data["dag"]["url"] == "/af/dags/dsr_deadline_tracking"


def test_bad_parameters_are_refused_in_one_sentence(store):
    for params, words in (({"stat": "overdue"}, "takes no parameter 'stat'"), ({"state": "late"}, "is not one of"),
                          ({"page": "0"}, "between 1 and"), ({"size": "500"}, "more than 200"),
                          ({"page": "x"}, "whole number")):
        with pytest.raises(sections.PageError, match=words):
            render(store, "requests", params)
    with pytest.raises(sections.PageError) as exc:
        sections.section("nope")
    assert exc.value.status == 404


def test_whatif_runs_are_read_from_the_run_table_and_only_while_their_rows_are_kept(store):
    now = datetime.now(timezone.utc)
    for run_id, kept in (("manual__a", True), ("manual__b", False)):
        store.execute("""insert into compliance.dsr_runs (run_id, as_of, dry_run, what_if, started_at, finished_at,
                                                          evaluated, counts)
                         values (%s, '2030-01-01', false, true, %s, %s, 2, '{"overdue": 2}')""", (run_id, now, now))
        if kept:
            store.execute("""insert into compliance.dsr_whatif (run_id, request_id, state, as_of, evaluated_at)
                             values (%s, 1, 'overdue', '2030-01-01', %s), (%s, 2, 'overdue', '2030-01-01', %s)""",
                          (run_id, now, run_id, now))
    runs = dsr.whatif_runs(store)
    assert [(r["run_id"], r["requests"], r["states"], r["as_of"]) for r in runs] == [
        ("manual__a", 2, {"overdue": 2}, date(2030, 1, 1))]
    data = render(store, "whatif")
    assert data["rows"][0]["run"]["href"] == "/af/dags/dsr_deadline_tracking/runs/manual__a"
    assert data["refreshed"]["run_id"] in ("manual__a", "manual__b")


def test_a_section_whose_tables_are_missing_says_not_installed(store):
    assert reads.missing_tables(store, ["compliance.dsr_status", "compliance.child_purges"]) == ["compliance.child_purges"]
    data = render(store, "purges")
    assert data["installed"] is False and "not installed yet" in data["note"] and "child_purges" in data["note"]


def test_a_table_that_differs_from_the_sketched_read_says_so_and_leaves_the_connection_usable(store):
    store.execute("create table compliance.child_purges (run_id text, something_else int)")
    data = render(store, "purges")
    assert data["installed"] is True and data["mismatch"] is True and "does not match" in data["note"]
    assert store.execute("select 1").fetchone() == (1,)


def test_the_sketched_sections_read_the_tables_their_issues_describe(store):
    """The page's assumptions about tables that other DAGs will create (issues 13-16), written down as a test.

    When a real migration lands with other columns, this test (and the section) shows the read to adjust."""
    store.execute("""
        create table compliance.child_purges (run_id text, subject_hash text, outcome text, detected_at timestamptz,
                                              purged_at timestamptz, vendors bigint[], notices_sent_at timestamptz);
        insert into compliance.child_purges values
            ('scheduled__1', 'h1', 'purged', now(), now(), '{3,4}', null),
            ('scheduled__1', 'h2', 'held', now(), null, '{}', null),
            ('scheduled__1', 'h3', 'no_match', now(), null, '{}', null);
        create table compliance.vendor_manifests (vendor_id bigint, period_start date, period_end date, row_count int,
                                                  subjects int, violations jsonb, manifest_uri text, data_sha256 text,
                                                  generated_at timestamptz, run_id text);
        insert into compliance.vendor_manifests values
            (7, '2026-11-24', '2026-11-25', 10, 4, '{"category_not_allowed": 2, "no_dpa": 1}',
             'gs://b/manifests/vendor=7/period=2026-11-24/manifest.json', 'abc', now(), 'scheduled__2');
        create table compliance.notification_campaigns (campaign_id bigint, policy_version text,
                                                        started_at timestamptz, finished_at timestamptz, run_id text);
        create table compliance.notification_deliveries (campaign_id bigint, status text);
        insert into compliance.notification_campaigns values (1, '2026-11', now(), null, 'manual__3');
        insert into compliance.notification_deliveries values (1, 'sent'), (1, 'sent'), (1, 'failed'), (1, 'pending');""")
    purge = render(store, "purges")["rows"][0]
    assert (purge["purged"], purge["held"], purge["no_match"], purge["notices_outstanding"]) == (1, 1, 1, 2)
    manifest = render(store, "manifests", {"vendor_id": "7"})["rows"][0]
    assert manifest["violations"] == 3 and manifest["manifest_uri"].endswith("manifest.json")
    campaign = render(store, "campaigns")["rows"][0]
    assert (campaign["sent"], campaign["failed"], campaign["total"], campaign["progress"]) == (2, 1, 4, "3/4")


def test_the_fulfilments_section_reads_the_real_table(store):
    """compliance.dsr_fulfilments as migration 0006 creates it (written through the DAG's own ledger)."""
    from include.fulfilment import ledger

    def at(minutes):
        return datetime(2026, 11, 25, 12, tzinfo=timezone.utc) + timedelta(minutes=minutes)

    records = [
        ledger.Record(5, "gdpr", "erasure", "erase", "erased", subject_hash="a" * 64, erased_tables={
            "public.users": {"action": "delete", "rows": 1}, "public.uploads": {"action": "delete", "rows": 3}},
            rows_erased=4, request_completed=True),
        ledger.Record(6, "gdpr", "access", "export", "exported", subject_hash="b" * 64,
                      package_object="exports/request=6/package.zip",
                      package_uri="gs://b/e2e/exports/request=6/package.zip", package_sha256="c" * 64,
                      package_bytes=900, package_rows={"contact": {"public.users": 1}}, request_completed=True),
        ledger.Record(7, "gdpr", "rectification", "manual", "manual", "rectification (GDPR Art. 16) needs a person"),
    ]
    for minutes, record in enumerate(records):
        ctx = audit.RunContext(run_id=f"manual__{record.request_id}", actor="test", dag_id="dsr_fulfilment",
                               now=lambda m=minutes: at(m))
        if record.outcome == "manual":
            assert ledger.record_decided(store, ctx, record)
        else:  # a fulfilment: pending until its operational transaction (here: number 1, long committed) did
            assert ledger.write_pending(store, record.request_id, ctx.run_id, 1, record, at(minutes))
            assert ledger.finalize(store, ctx, record.request_id, 1) == record
    data = render(store, "fulfilments")
    assert data["installed"] is True and not data.get("mismatch")
    assert [r["request_id"] for r in data["rows"]] == [7, 6, 5]  # newest first
    erased = render(store, "fulfilments", {"outcome": "erased"})["rows"]
    assert [(r["request_id"], r["rows_erased"]) for r in erased] == [(5, 4)]
    assert erased[0]["run"]["href"].endswith("/runs/manual__5")
    exported = render(store, "fulfilments", {"outcome": "exported"})["rows"][0]
    assert (exported["package_uri"], exported["package_sha256"]) == ("gs://b/e2e/exports/request=6/package.zip", "c" * 64)
    manual = render(store, "fulfilments", {"outcome": "manual"})["rows"][0]
    assert manual["reason"].startswith("rectification") and manual["fulfilled_at"] == at(2).isoformat()
    with pytest.raises(sections.PageError, match="is not one of"):
        render(store, "fulfilments", {"outcome": "done"})
    assert render(store, "fulfilments")["refreshed"]["at"] == at(2).isoformat()
    from include.reads import fulfilments

    assert fulfilments.outcome_counts(store) == {"erased": 1, "exported": 1, "manual": 1}
    assert [r["request_id"] for r in fulfilments.awaiting_a_person(store)] == [7]


# -- the audit chain watch ------------------------------------------------------------------------------

@pytest.fixture
def chain(fresh_db, store, tmp_path):
    anchors = FileObjectStore(f"file://{tmp_path}/evidence")

    def connect_store():
        conn = psycopg.connect(fresh_db, autocommit=True)
        conn.execute("set time zone 'UTC'")
        return conn

    def write(n, anchor=True):
        for i in range(n):
            audit.append(store, "test.step", {"i": i}, actor="test", dag_id="dsr_deadline_tracking", run_id="manual__t")
        if anchor:
            audit.anchor_head(store, anchors, run_id="manual__t", dag_id="dsr_deadline_tracking")

    watch = ChainWatch(connect=connect_store, anchors=lambda: anchors, anchor_every=timedelta(0))
    return watch, write, anchors


def behind_the_triggers(conn, statement, args=()):
    """What a superuser could do: change the log with its append-only triggers off for a moment."""
    conn.execute("set session_replication_role = replica")
    conn.execute(statement, args)
    conn.execute("set session_replication_role = origin")


def look(watch, conn):
    status = watch.status(conn)
    if status["state"] == "verifying":
        assert watch.wait_idle(30)
        status = watch.status(conn)
    return status


def test_the_first_look_starts_a_whole_walk_and_later_looks_verify_only_newer_rows(store, chain):
    watch, write, _ = chain
    write(5)
    first = watch.status(store)
    assert first["state"] == "verifying" and first["newest_id"] == 5
    status = look(watch, store)
    assert status["state"] == "verified" and status["rows"] == 5 and status["head_id"] == 5
    assert status["anchor"]["newest_row"] == 5 and status["anchor"]["problem"] is None
    full_at = status["full_at"]
    write(3, anchor=False)
    status = watch.status(store)
    assert (status["state"], status["rows"], status["rows_since_full"], status["full_at"]) == ("verified", 8, 3, full_at)
    assert status["anchor"]["rows_since"] == 3


def test_an_altered_new_row_is_caught_on_the_next_look(store, chain):
    watch, write, _ = chain
    write(4)
    look(watch, store)
    write(2)
    behind_the_triggers(store, "update compliance.audit_log set action = 'edited' where id = 6")
    status = watch.status(store)
    assert status["state"] == "broken" and "row 6 was altered" in status["problem"]


def test_an_altered_verified_head_is_caught_on_the_next_look(store, chain):
    watch, write, _ = chain
    write(4)
    look(watch, store)
    behind_the_triggers(store, "delete from compliance.audit_log where id = 4")
    status = watch.status(store)
    assert status["state"] == "broken" and "row 4" in status["problem"] and "no longer in the log" in status["problem"]


def test_an_edit_of_the_verified_head_is_caught_on_the_next_look(store, chain):
    watch, write, _ = chain
    write(4)
    look(watch, store)
    behind_the_triggers(store, "update compliance.audit_log set details = '{\"i\": 42}' where id = 4")
    status = watch.status(store)
    assert status["state"] == "broken" and "row 4" in status["problem"] and "altered" in status["problem"]


def test_an_edit_in_the_middle_is_caught_by_the_next_whole_walk(store, chain):
    watch, write, _ = chain
    write(6)
    look(watch, store)
    behind_the_triggers(store, "update compliance.audit_log set details = '{\"i\": 99}' where id = 2")
    assert watch.status(store)["state"] == "verified"  # a look checks only the head and the newer rows
    watch.full_every = timedelta(0)
    watch.status(store)  # the walk is due: it starts
    assert watch.wait_idle(30)
    status = watch.status(store)
    assert status["state"] == "broken" and "row 2 was altered" in status["problem"]


def test_removed_newest_rows_disagree_with_the_newest_anchor(store, chain):
    """Rows removed and the watch restarted (a new API server): the chain recomputes, the anchor says otherwise."""
    watch, write, anchors = chain
    write(5)
    behind_the_triggers(store, "delete from compliance.audit_log where id > 3")
    fresh = ChainWatch(connect=watch.connect, anchors=lambda: anchors)
    status = look(fresh, store)
    assert status["state"] == "anchors_disagree"
    assert "row 5" in status["anchor"]["problem"]
    facts = {f["label"]: f for f in sections.chain_facts(status)}
    assert facts["Agree"]["tone"] == "bad"


def test_without_an_evidence_location_the_chain_is_verified_and_the_anchors_are_said_unchecked(store, fresh_db):
    watch = ChainWatch(connect=lambda: psycopg.connect(fresh_db, autocommit=True), anchors=lambda: None)
    audit.append(store, "test.step", {}, actor="test")
    status = look(watch, store)
    assert status["state"] == "verified" and "not checked" in status["anchor"]["note"]
    data = render(store, "audit", chain=watch)
    assert data["rows"][0]["action"] == "test.step"
    assert any(f["label"] == "Anchors" and f["tone"] == "warn" for f in data["facts"])
