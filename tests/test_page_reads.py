"""The compliance page's reads and sections against a real PostgreSQL: order, filters, pagination both ways,
what-ifs, missing and mismatching tables, the purge, manifest, campaign and fulfilment sections, and the audit chain watch (incremental
checks, whole walks, anchors)."""
from __future__ import annotations

import contextlib
import json
import random
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from devkit.database import connect
from include import audit, reads
from include.objectstore import FileObjectStore
from include.page import sections
from include.page.links import UiLinks
from include.reads import deadlines as dsr
from include.reads.audit import ChainWatch

STATES = list(dsr.STATE_ORDER)


def test_every_request_state_is_ordered_and_has_its_meaning_in_words():
    from include.deadline_rules import STATES as EVALUATED

    assert set(dsr.STATE_ORDER) == set(EVALUATED) == set(dsr.STATE_MEANINGS)
    assert all(meaning and meaning == meaning.strip() for meaning in dsr.STATE_MEANINGS.values())


@pytest.fixture
def store(store_db):
    with connect(store_db, autocommit=True) as conn:
        conn.execute("set time zone 'UTC'")
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
        page = dsr.request_page(store, filters, limit=size, offset=offset)
        assert page["total"] == len(expected)
        seen += [row["request_id"] for row in page["rows"]]
    assert seen == expected
    # The same with the total given (as the section does, from the breakdown).
    last = dsr.request_page(store, filters, limit=size, offset=max(len(expected) - size, 0), total=len(expected))
    assert [r["request_id"] for r in last["rows"]] == expected[max(len(expected) - size, 0):]


def test_the_page_shows_no_assignee_and_counts_match_the_breakdown(store, requests_table):
    store.execute("update compliance.dsr_status set assignee_email = 'staff@example.com'")
    page = dsr.request_page(store, limit=200)
    assert all("assignee_email" not in row for row in page["rows"])
    assert sum(n for *_, n in dsr.request_breakdown(store)) == len(requests_table)


def test_counts_are_not_kept_from_a_look_taken_while_a_run_was_writing(store):
    """The counts by state are kept until dsr_runs shows another run. A look while a run was evaluating kept the
    counts from before its write; when the run then failed after committing its states (before finish_run), the
    page kept the old counts: 'Needs a person' said 2 overdue (counted afresh), the requests section's overdue
    chip and total said 0 and its state=overdue page listed rows past that total (read backwards from a wrong
    end)."""
    from include.reads import attention

    now = datetime.now(timezone.utc)
    add_status(store, [(1, "gdpr", "access", "on_track", 10), (2, "gdpr", "access", "on_track", 12)])
    store.execute("""insert into compliance.dsr_runs (run_id, as_of, dry_run, what_if, started_at, finished_at)
                     values ('scheduled__1', current_date, false, false, %s, %s),
                            ('scheduled__2', current_date, false, false, %s, null)""",
                  (now - timedelta(hours=1), now - timedelta(minutes=59), now))
    assert render(store, "requests")["total"] == 2  # a look while scheduled__2 evaluates
    store.execute("update compliance.dsr_status set state = 'overdue', days_left = -1")  # it commits, then fails
    overdue = {i.key: i.count for i in attention.needs_a_person(store, now=now, approval_timeout=timedelta(hours=1))}
    data = render(store, "requests", {"state": "overdue"})
    assert overdue["requests_overdue"] == data["total"] == len(data["rows"]) == 2
    assert {s["label"]: s["value"] for s in data["summary"]}["overdue"] == 2


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
                          ({"page": "0"}, "from 1 to 10000000"), ({"size": "500"}, "from 1 to 200"),
                          ({"page": "x"}, "whole number")):
        with pytest.raises(sections.PageError, match=words):
            render(store, "requests", params)
    with pytest.raises(sections.PageError) as exc:
        sections.section("nope")
    assert exc.value.status == 404


PERSONAL = ["jane.doe@example.com", "Jane Doe", "+1 415 555 0100", "4155550100", "10.1.2.3", "2001:db8::1"]


@pytest.mark.parametrize("typed", PERSONAL)
def test_a_refused_parameter_never_repeats_what_may_be_personal_data(store, typed):
    """The page's 400 and 404 bodies quoted the refused value or name back: an address pasted into a filter, the
    query string or the section's path came back in the answer."""
    probes = [lambda: render(store, "requests", {"state": typed}), lambda: render(store, "requests", {typed: "x"}),
              lambda: render(store, "requests", {"page": typed}), lambda: render(store, "purges", {"size": typed}),
              lambda: sections.one_value_each([(typed, "1"), (typed, "2")]), lambda: sections.section(typed)]
    if not typed.isdigit():  # a number is a vendor's number
        probes.append(lambda: render(store, "manifests", {"vendor_id": typed}))
    for probe in probes:
        with pytest.raises(sections.PageError) as exc:
            probe()
        said = str(exc.value)
        assert typed.lower() not in said.lower() and "…" not in said, said
        assert "not repeated: it may be personal data" in said, said
    # Codes, names and numbers are still quoted, to show the typo.
    for key, params, words in (("requests", {"state": "late"}, "state 'late' is not one of"),
                               ("requests", {"stat": "x"}, "takes no parameter 'stat'"),
                               ("manifests", {"vendor_id": "seven"}, "vendor's number, not 'seven'"),
                               ("requests", {"size": "201"}, "from 1 to 200, not 201")):
        with pytest.raises(sections.PageError, match=words):
            render(store, key, params)
    with pytest.raises(sections.PageError, match="there is no section 'nope'"):
        sections.section("nope")


def test_values_the_database_cannot_hold_are_a_400_sentence_not_a_database_error(store):
    """Before: bigint out of range and NUL in text reached PostgreSQL (a 500); size=0 named 10000000 as the
    largest size where 200 is."""
    probes = [("manifests", {"vendor_id": "99999999999999999999999"}, "vendor_id must be a whole number from 0 to "
               "9223372036854775807"),
              ("requests", {"regime": "\x00"}, "NUL character"),
              ("requests", {"request_type": "ccpa\x00x"}, "NUL character"),
              ("requests", {"size": "0"}, "size must be a whole number from 1 to 200, not 0"),
              ("requests", {"size": "201"}, "size must be a whole number from 1 to 200, not 201"),
              ("requests", {"page": "99999999999999999999999"}, "page must be a whole number from 1 to 10000000"),
              ("purges", {"page": "-1"}, "page must be a whole number from 1 to 10000000")]
    for key, params, words in probes:
        with pytest.raises(sections.PageError) as exc:
            render(store, key, params)
        assert exc.value.status == 400 and words in str(exc.value) and "\n" not in str(exc.value), (params, exc.value)
    # The largest id is a vendor's number like any other: no manifest has it.
    assert render(store, "manifests", {"vendor_id": "9223372036854775807"})["total"] == 0
    assert render(store, "requests", {"size": "200"})["query"]["limit"] == 200


def _page_client(monkeypatch, url: str):
    """The plugin's app in this process over the store at ``url``, every user allowed (the access rules are the
    end-to-end module's): a TestClient."""
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.core_api.security import get_user
    from plugins import privacy_compliance as plugin

    @contextlib.contextmanager
    def the_store():
        with connect(url, autocommit=True) as conn:
            yield conn

    monkeypatch.setattr(plugin, "_store", the_store)
    monkeypatch.setattr(plugin, "may_read", lambda section, user: True)
    monkeypatch.setattr(plugin, "ui_links", lambda: UiLinks())
    monkeypatch.setitem(plugin.app.dependency_overrides, plugin.PAGE_ACCESS.dependency, lambda: None)
    monkeypatch.setitem(plugin.app.dependency_overrides, get_user, lambda: None)
    return TestClient(plugin.app, raise_server_exceptions=False)


def test_a_parameter_given_twice_is_refused_not_silently_narrowed_to_its_last_value(store_db, monkeypatch):
    """The API read the query string as a dict: ?state=overdue&state=invalid answered with the invalid requests
    only, and ?page=x&page=2 passed (the first value never checked). A repeated parameter is a 400 sentence."""
    client = _page_client(monkeypatch, store_db)
    assert client.get("/api/sections/requests?state=overdue").status_code == 200
    for query, name in (("state=overdue&state=invalid", "state"), ("page=x&page=2", "page"),
                        ("mode=live&size=5&mode=dry_run", "mode")):
        key = "purges" if "mode" in query else "requests"
        answer = client.get(f"/api/sections/{key}?{query}")
        assert answer.status_code == 400, (query, answer.text[:200])
        assert answer.json()["detail"] == f"parameter {name!r} is given more than once: give it once"
        assert answer.headers["cache-control"] == "no-store"


def test_a_table_the_pages_login_may_not_read_is_a_503_sentence_naming_the_grant(store, store_db, monkeypatch):
    """Found by a fault trial: the page's database login lacking SELECT on one table (InsufficientPrivilege) gave a 500
    from the section reading it, where every other fault of the store is one 503 sentence. It names the table (or
    the schema) and the grant the login needs; the sections it may read still answer."""
    with _page_login(store) as role:
        store.execute(f"revoke select on compliance.dsr_status from {role}")
        client = _page_client(monkeypatch, psycopg.conninfo.make_conninfo(store_db, user=role, password=""))
        assert client.get("/api/sections/manifests").status_code == 200
        answer = client.get("/api/sections/requests")
        assert answer.status_code == 503, answer.text[:300]
        assert answer.json()["detail"] == (
            "the login the page reads the compliance store with may not read compliance.dsr_status: grant it "
            "SELECT on it (GRANT SELECT ON compliance.dsr_status, or ON ALL TABLES IN SCHEMA compliance, TO that "
            "login)")
        store.execute(f"revoke usage on schema compliance from {role}")
        answer = client.get("/api/sections")
        assert answer.status_code == 503, answer.text[:300]
        assert answer.json()["detail"] == (
            "the login the page reads the compliance store with may not use schema compliance: grant it USAGE on "
            "the schema and SELECT on its tables (GRANT USAGE ON SCHEMA compliance TO that login)")


def test_a_store_that_cancels_the_pages_statement_is_said_so_not_called_silent(store, store_db, monkeypatch):
    """Every OperationalError of the store was 'the compliance store did not answer', a lock or statement timeout
    too, which sends on-call to look for a server that is up. A statement the store canceled is said by its kind,
    still one 503 sentence."""
    with _page_login(store) as role:
        store.execute(f"alter role {role} set lock_timeout = '200ms'")
        client = _page_client(monkeypatch, psycopg.conninfo.make_conninfo(store_db, user=role, password=""))
        with connect(store_db) as holder:  # a migration, say, holding the table
            holder.execute("lock table compliance.dsr_status in access exclusive mode")
            answer = client.get("/api/sections/requests")
        assert answer.status_code == 503, answer.text[:300]
        assert answer.json()["detail"].startswith("the compliance store canceled a statement (lock_timeout): "), \
            answer.json()["detail"]


def test_a_store_being_migrated_is_said_in_one_sentence_within_seconds_not_waited_for(store, store_db, monkeypatch):
    """Found by a fault trial: a store migration holds the tables it alters until it commits (every migration runs in
    one transaction), and the page's login sets no lock_timeout by default, so each look at the page waited, without
    bound and without a word, for as long as the migration ran, holding one of the API server's worker threads (and a
    store connection) each. The page bounds its own waits: past a few seconds it answers one 503 sentence saying a
    migration or a run holds the table; a login's own, shorter setting is kept."""
    import threading
    import time

    client = _page_client(monkeypatch, store_db)
    answers: list = []

    def look():
        started = time.monotonic()
        answer = client.get("/api/sections/requests")
        answers.append((answer, time.monotonic() - started))

    with connect(store_db) as migration:  # a migration altering dsr_status, not yet committed
        migration.execute("lock table compliance.dsr_status in access exclusive mode")
        reader = threading.Thread(target=look, daemon=True)
        reader.start()
        reader.join(20)
        migration.rollback()
    reader.join(20)
    ((answer, took),) = answers
    assert answer.status_code == 503 and took < 15, (answer.status_code, took, answer.text[:200])
    detail = answer.json()["detail"]
    assert detail.startswith("the compliance store canceled a statement (lock_timeout): "), detail
    assert detail.endswith("; a store migration or a run holds a table this section reads: look again in a minute")
    assert "\n" not in detail
    assert client.get("/api/sections/requests").status_code == 200  # nothing held: answered as before


def test_a_store_refusing_the_pages_read_for_good_is_said_to_repeat_not_to_pass(store_db, monkeypatch):
    """A class-55 refusal other than a lock (here ``lastval()`` before any ``nextval`` in the session, SQLSTATE 55000)
    was "the compliance store refused: ...", said as if a reload could mend it: one 503 sentence saying a reload
    repeats it."""
    import dataclasses

    def build(req):
        req.conn.execute("select lastval()")

    section = dataclasses.replace(sections.section("requests"), build=build)
    monkeypatch.setattr(sections, "section", lambda key: section)
    answer = _page_client(monkeypatch, store_db).get("/api/sections/requests")
    assert answer.status_code == 503, answer.text[:300]
    assert answer.json()["detail"] == (
        "the compliance store refused the work as an object it needs is not in the state the work requires (object "
        "not in prerequisite state): lastval is not yet defined in this session (SQLSTATE 55000); running it again "
        "would only repeat it")


@contextlib.contextmanager
def _page_login(store):
    """A login for the page that may read the compliance store (usage on the schema, select on its tables), dropped
    after the test."""
    import uuid

    role = f"page_reader_{uuid.uuid4().hex[:10]}"
    store.execute(f"create role {role} login")
    try:
        store.execute(f"grant usage on schema compliance to {role}")
        store.execute(f"grant select on all tables in schema compliance to {role}")
        yield role
    finally:
        store.execute(f"drop owned by {role}")
        store.execute(f"drop role {role}")


def test_a_sections_reads_see_one_snapshot_and_write_nothing(store, store_db):
    """render reads a section in 'one snapshot for the counts and the rows', but the transaction was READ
    COMMITTED: each statement saw what other runs had committed since the one before, so a run committing between
    a section's count and its rows gave a total that disagreed with the rows. Reads are now one repeatable-read,
    read-only transaction."""
    import dataclasses

    def build(req):
        before = req.conn.execute("select count(*) from compliance.dsr_status").fetchone()[0]
        with connect(store_db, autocommit=True) as other:  # a run commits between the two reads
            add_status(other, [(7, "gdpr", "access", "overdue", -3)])
        after = req.conn.execute("select count(*) from compliance.dsr_status").fetchone()[0]
        try:
            req.conn.execute("delete from compliance.dsr_status")
            wrote = True
        except psycopg.errors.ReadOnlySqlTransaction:
            wrote = False
        return {"rows": [], "total": after, "before": before, "wrote": wrote}

    section = dataclasses.replace(sections.section("requests"), build=build)
    data = sections.render(section, store, {}, UiLinks())
    assert (data["before"], data["total"], data["wrote"]) == (0, 0, False)
    assert store.execute("select count(*) from compliance.dsr_status").fetchone()[0] == 1


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


def test_a_page_past_the_last_what_if_run_says_how_many_there_are_not_a_made_up_count(store):
    """Found by a fault trial: the what-if section counted its runs as the page's offset plus the rows shown, so a
    page past the last run (a link kept after the runs were pruned, ``?page=10000000``) said there were 100 (or
    199,999,980) what-if runs when there was one. A page past the end says the true count."""
    now = datetime.now(timezone.utc)
    store.execute("""insert into compliance.dsr_runs (run_id, as_of, dry_run, what_if, started_at, finished_at,
                                                      evaluated, counts)
                     values ('manual__only', '2030-01-01', false, true, %s, %s, 0, '{}')""", (now, now))
    for params, rows in (({}, 1), ({"page": "3", "size": "50"}, 0), ({"page": "10000000"}, 0)):
        data = render(store, "whatif", params)
        assert (data["total"], len(data["rows"]), data["total_is_lower_bound"]) == (1, rows, False), (params, data)
    assert render(store, "whatif", {"size": "1"})["total"] == 1


def test_a_section_whose_tables_are_missing_says_not_installed(store):
    """A store migrated by a release without the purge (its tables absent) shows the section as not installed."""
    store.execute("drop table compliance.child_purges cascade")
    store.execute("drop view compliance.child_purge_runs")  # the purge's runs: a view of the erasure runs (0010)
    assert reads.missing_tables(store, ["compliance.dsr_status", "compliance.child_purges"]) == ["compliance.child_purges"]
    data = render(store, "purges")
    assert data["installed"] is False and "not installed yet" in data["note"] and "child_purges" in data["note"]
    assert render(store, "requests")["installed"] is True


def test_a_table_that_differs_from_the_read_says_so_and_leaves_the_connection_usable(store):
    store.execute("alter view compliance.child_purge_runs rename column plan_hash to plan_digest")
    data = render(store, "purges")
    assert data["installed"] is True and data["mismatch"] is True and "does not match" in data["note"]
    assert "plan_hash" in data["note"]
    assert store.execute("select 1").fetchone() == (1,)
    assert render(store, "manifests")["installed"] is True


def test_a_store_behind_the_code_says_so_rather_than_that_a_table_differs(store):
    """A store migrated up to 0008 lacks the column 0009 adds (child_report_outcomes.user_ids): the purges section
    said its read 'does not match the installed table', as if someone had edited the table by hand. It says the
    store is behind and what migrates it."""
    from include import compliance_store

    store.execute("drop schema compliance cascade")
    compliance_store.migrate(store, upto=8)
    latest = compliance_store.available_migrations()[-1].version
    data = render(store, "purges")
    assert data["installed"] is True and data["mismatch"] is True
    assert data["note"].startswith(f"the compliance store is at migration 8, behind this release's {latest}: ")
    assert "user_ids" in data["note"] and "privacy-ops migrate-store" in data["note"]
    assert "does not match" not in data["note"]


def at(minutes):
    return datetime(2026, 11, 25, 12, tzinfo=timezone.utc) + timedelta(minutes=minutes)


def test_the_purges_section_reads_the_runs_their_subjects_and_the_notices_owed(store):
    """Runs and records written through the purge's own ledger (migration 0003's tables)."""
    from include.children import ledger
    from include.erasure import ErasureResult, TableCount
    from include.erasure import run as erasure_run
    from include.erasure.facts import VendorShare

    def subject(n, rules=("under_13",), problems=()):
        return ledger.Detected(f"{n:064x}", n, tuple(rules), tuple(problems), ())

    for minutes, (run_id, dry) in enumerate((("scheduled__live", False), ("manual__dry", True))):
        erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
            run_id=run_id, as_of=date(2026, 11, 25), run_type="manual" if dry else "scheduled", dry_run=dry,
            threshold=50, started_at=at(minutes)))
    ledger.record_detection(store, "scheduled__live",
                            [subject(1), subject(2), subject(3, rules=(), problems=("birth date in the future",))],
                            [], at=at(0), counts={"accounts": 3})
    ctx = audit.RunContext(run_id="scheduled__live", actor="test", dag_id="child_data_purge", now=lambda: at(1))
    assert ledger.finish_subject(store, ctx, "scheduled__live", ErasureResult(
        1, f"{1:064x}", "purged", tables=(TableCount("public.users", "delete", 1),),
        vendors=(VendorShare(4, "Adtech Ltd", True, ("contact",), 2),), at=at(1)))
    assert ledger.finish_subject(store, ctx, "scheduled__live", ErasureResult(2, f"{2:064x}", "held", holds=(9,)))
    store.execute("""insert into compliance.child_report_outcomes (run_id, report_id, outcome, resolved, recorded_at)
                     values ('scheduled__live', 11, 'no_match', true, %s), ('scheduled__live', 12, 'no_match', true, %s),
                            ('scheduled__live', 13, 'purged', true, %s)""", (at(2), at(2), at(2)))
    erasure_run.finish_run(store, erasure_run.load_run(store, ledger.WORKFLOW, "scheduled__live"), state="purged",
                           at=at(2), counts={})
    ledger.record_detection(store, "manual__dry", [subject(5)], [], at=at(1), counts={"accounts": 1})

    data = render(store, "purges")
    assert data["installed"] is True and not data.get("mismatch")
    assert data["total"] == 2 and [r["run"]["text"] for r in data["rows"]] == ["manual__dry", "scheduled__live"]
    live = data["rows"][1]
    assert (live["mode"], live["state"], live["outcomes"]) == ("live", "purged", "purged 1, held 1, invalid 1")
    assert live["reports"] == "no_match 2, purged 1" and data["rows"][0]["reports"] is None
    assert live["run"]["href"] == "/af/dags/child_data_purge/runs/scheduled__live"
    assert data["rows"][0]["outcomes"] == "planned 1"  # a run still in progress shows where it is
    facts = {f["label"]: f["value"] for f in data["facts"]}
    assert facts["Reports waiting for a person (needs_review)"] == "none"
    assert facts["Subjects purged (all runs)"] == 1
    assert facts["Vendor deletion notices owed"] == "1 notice(s): 1 subject(s), 1 vendor(s)"
    assert data["refreshed"]["run_id"] == "scheduled__live" and data["refreshed"]["at"] == at(2).isoformat()
    only_live = render(store, "purges", {"mode": "live"})
    assert only_live["total"] == 1 and only_live["rows"][0]["run"]["text"] == "scheduled__live"
    with pytest.raises(sections.PageError, match="is not one of"):
        render(store, "purges", {"mode": "dry"})
    # A household's report (an address naming several accounts, or an adult) waits for a person: the newest run
    # that looked at every report says which, by report and account ids.
    erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
        run_id="scheduled__next", as_of=date(2026, 11, 26), run_type="scheduled", dry_run=False, threshold=50,
        started_at=at(5)))
    ledger.record_detection(store, "scheduled__next", [], [
        ledger.ReportNote(21, ledger.NEEDS_REVIEW, "the address names 2 accounts (7, 8)", (7, 8)),
        ledger.ReportNote(22, "no_match")], at=at(5), counts={})
    facts = {f["label"]: f for f in render(store, "purges")["facts"]}
    review = facts["Reports waiting for a person (needs_review)"]
    assert (review["value"], review["tone"]) == ("report 21: account(s) 7, 8", "warn")


def add_manifest(conn, vendor_id, label, start, violations, run_id):
    end = None if start is None else start + timedelta(days=1)
    broken = sum(violations.values())
    conn.execute(
        """insert into compliance.vendor_manifests (vendor_id, period_label, period_start, period_end, vendor_known,
               vendor_name, vendor_kind, data_object, data_uri, manifest_object, manifest_uri, data_sha256,
               data_bytes, content_sha256, row_count, subject_count, record_count, counts_by_category, violations,
               violation_rows, violation_examples, invalid_rows, run_id, generated_at)
           values (%s, %s, %s, %s, true, %s, 'ads', 'd', %s, 'm', %s, %s, 10, 'c', 5, 3, 7, '{}', %s, %s, '{}', '{}',
                   %s, now())""",
        (vendor_id, label, start, end, f"Vendor {vendor_id}", f"gs://b/{vendor_id}/{label}/data.parquet",
         f"gs://b/{vendor_id}/{label}/manifest.json", "d" * 64, psycopg.types.json.Jsonb(violations), min(broken, 5),
         run_id))


def test_the_manifests_section_pages_newest_period_first_with_filters(store):
    day = datetime(2026, 11, 20, tzinfo=timezone.utc)
    for n in range(5):
        add_manifest(store, 7, (day + timedelta(days=n)).date().isoformat(), day + timedelta(days=n),
                     {"no_dpa": 1} if n == 2 else {"no_dpa": 0}, f"scheduled__{n}")
    add_manifest(store, 8, "undated", None, {"category_not_allowed": 2}, "manual__u")
    add_manifest(store, 9, "2026-11-24", day + timedelta(days=4), {}, "scheduled__4")
    data = render(store, "manifests", {"size": "3"})
    assert data["total"] == 7
    assert [(r["vendor"], r["period_label"]) for r in data["rows"]] == [
        ("7 Vendor 7", "2026-11-24"), ("9 Vendor 9", "2026-11-24"), ("7 Vendor 7", "2026-11-23")]
    last = render(store, "manifests", {"size": "3", "page": "3"})["rows"]
    assert [(r["vendor"], r["period_label"]) for r in last] == [("8 Vendor 8", "undated")]  # undated last
    broken = render(store, "manifests", {"violations": "only"})
    assert [(r["period_label"], r["violations"]) for r in broken["rows"]] == [("2026-11-22", "no_dpa 1"),
                                                                             ("undated", "category_not_allowed 2")]
    assert render(store, "manifests", {"vendor_id": "9"})["total"] == 1
    assert {f["label"]: f["value"] for f in data["facts"]}["Shares breaking a rule (all periods)"] == \
        "category_not_allowed 2, no_dpa 1"
    assert data["rows"][0]["run"]["href"] == "/af/dags/vendor_sharing_manifests/runs/scheduled__4"
    with pytest.raises(sections.PageError, match="vendor's number"):
        render(store, "manifests", {"vendor_id": "seven"})


def test_the_campaigns_section_reads_the_campaign_counters(store):
    for n, (scope, state, counts) in enumerate((("live", "finished", (0, 8, 1, 1)), ("test", "sending", (3, 1, 0, 0)))):
        pending, sent, failed, skipped = counts
        store.execute(
            """insert into compliance.notification_campaigns (scope, policy_version_id, policy_version, run_id, state,
                   total, pending, sent, failed, skipped, created_at, updated_at, finished_at)
               values (%s, 1, '2026-11', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (scope, f"manual__{n}", state, sum(counts), pending, sent, failed, skipped, at(n), at(n + 1),
             at(n + 1) if state == "finished" else None))
    data = render(store, "campaigns")
    assert data["total"] == 2
    newest, oldest = data["rows"]
    assert (newest["scope"], newest["sent"], newest["pending"], newest["progress"]) == ("test", 1, 3, "25.0%")
    assert (oldest["scope"], oldest["total"], oldest["failed"], oldest["skipped"], oldest["progress"]) == \
        ("live", 10, 1, 1, "100.0%")
    assert newest["run"]["href"] == "/af/dags/policy_change_notifications/runs/manual__1"
    assert {s["label"]: s["value"] for s in data["summary"]} == {"finished": 1}  # live campaigns by state
    assert [r["scope"] for r in render(store, "campaigns", {"scope": "live"})["rows"]] == ["live"]
    assert data["refreshed"]["at"] == at(2).isoformat()


def test_the_fulfilments_section_reads_the_real_table(store):
    """compliance.dsr_fulfilments as migration 0006 creates it (written through the DAG's own ledger)."""
    from include.fulfilment import ledger

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


def test_the_fulfilments_section_is_refreshed_by_its_newest_run_with_a_link(store):
    """Issue 30: "Last refreshed" was the newest outcome's time (stale after a run with nothing new) and had no
    run link."""
    store.execute("""insert into compliance.erasure_runs (dag_id, run_id, as_of, dry_run, targeted, threshold,
                                                          started_at, state, finished_at)
                     values ('dsr_fulfilment', 'scheduled__old', current_date, false, false, 100, %s, 'done', %s),
                            ('dsr_fulfilment', 'scheduled__new', current_date, false, false, 100, %s, 'done', %s),
                            ('dsr_fulfilment', 'manual__running', current_date, false, false, 100, %s, 'planning',
                             null)""", (at(1), at(2), at(5), at(6), at(7)))
    refreshed = render(store, "fulfilments")["refreshed"]
    assert refreshed["at"] == at(6).isoformat() and refreshed["run_id"] == "scheduled__new"
    assert refreshed["run_url"] == "/af/dags/dsr_fulfilment/runs/scheduled__new"


def test_a_dry_run_refreshes_neither_the_manifests_nor_the_fulfilments_section(store):
    """Found by a trial of dry runs beside live state: a dry run of vendor_sharing_manifests or dsr_fulfilment writes
    no manifest and no outcome, yet the section said it was refreshed by that run, minutes ago, while the live runs
    had stopped days before. A section is refreshed by its newest live run that finished."""
    store.execute("""insert into compliance.vendor_manifest_runs (run_id, period_label, period_start, period_end,
                                                                  dry_run, started_at, finished_at)
                     values ('scheduled__live', '2026-11-24', %s, %s, false, %s, %s),
                            ('manual__dry', '2026-11-24', %s, %s, true, %s, %s)""",
                  (at(-1440), at(0), at(1), at(2), at(-1440), at(0), at(5), at(6)))
    store.execute("""insert into compliance.erasure_runs (dag_id, run_id, as_of, dry_run, targeted, threshold,
                                                          started_at, state, finished_at)
                     values ('dsr_fulfilment', 'scheduled__live', current_date, false, false, 100, %s, 'done', %s),
                            ('dsr_fulfilment', 'manual__dry', current_date, true, false, 100, %s, 'dry_run', %s)""",
                  (at(1), at(2), at(5), at(6)))
    for key in ("manifests", "fulfilments"):
        refreshed = render(store, key)["refreshed"]
        assert (refreshed["run_id"], refreshed["at"]) == ("scheduled__live", at(2).isoformat()), key


def test_each_section_says_how_often_its_dag_runs_from_the_dags_schedule():
    """Issue 30: the campaigns header said "daily" of a DAG that runs every 15 minutes."""
    from include.schedules import SCHEDULES, in_words

    links = UiLinks(base="/af")
    campaigns = sections.describe(sections.section("campaigns"), links)["dag"]["refreshed_by"]
    assert campaigns.startswith("every 15 minutes") and "daily" not in campaigns
    assert sections.describe(sections.section("requests"), links)["dag"]["refreshed_by"].startswith("hourly")
    for section in sections.SECTIONS:
        if section.dag_id in SCHEDULES and section.key not in ("attention", "trends", "whatif", "audit"):
            assert section.refreshed_by.startswith(in_words(SCHEDULES[section.dag_id])), section.key
    assert [in_words(e) for e in ("*/15 * * * *", "@daily", "0 * * * *", "30 2 * * *", "0 */6 * * *")] == [
        "every 15 minutes", "daily", "hourly", "daily at 02:30", "every 6 hours"]


def test_wide_tables_scroll_inside_their_section_and_state_cells_keep_their_padding():
    """Issue 30: at 1440 px wide tables pushed the page sideways, and the badge rule (class "state") also styled
    the State column's cells and header (no vertical padding: they sat higher than the others)."""
    import re
    from importlib import resources

    html = (resources.files("include.page") / "static" / "index.html").read_text()
    assert re.search(r"\.table-scroll\s*\{[^}]*overflow-x:\s*auto", html)
    assert 'el("div", {class: "table-scroll"}' in html
    assert not re.search(r"(^|[\s,}])\.state\s*[{,]", html), "a bare .state rule also styles td.state and th.state"


# -- the audit chain watch ------------------------------------------------------------------------------

@pytest.fixture
def chain(store_db, store, tmp_path):
    anchors = FileObjectStore(f"file://{tmp_path}/evidence")

    def connect_store():
        conn = psycopg.connect(store_db, autocommit=True)
        conn.execute("set time zone 'UTC'")
        return conn

    def write(n, anchor=True):
        for i in range(n):
            audit.append(store, "test.step", {"i": i},
                         actor=audit.RunContext(run_id="manual__t", actor="test", dag_id="dsr_deadline_tracking"))
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


def test_a_run_anchoring_during_a_look_is_no_false_alarm(store, chain, monkeypatch):
    """A look verified the rows written since, then listed the anchors: a run that appended and anchored in between
    had its anchor name a row the look had not read, and the page said in red that the newest rows were removed."""
    watch, write, _ = chain
    write(5)
    look(watch, store)
    extend = ChainWatch._extend

    def a_run_ends_meanwhile(self, conn, verified):
        checked = extend(self, conn, verified)
        write(1)  # appended and anchored by a run ending while the look goes on
        return checked

    monkeypatch.setattr(ChainWatch, "_extend", a_run_ends_meanwhile)
    status = watch.status(store)
    assert status["state"] == "verified", status["anchor"]["problem"]
    monkeypatch.setattr(ChainWatch, "_extend", extend)
    status = watch.status(store)
    assert status["state"] == "verified" and status["anchor"]["newest_row"] == 6 and status["head_id"] == 6


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


def test_a_newest_anchor_past_the_end_that_no_run_wrote_gets_both_readings(store, chain):
    """As verify-audit: an anchor object naming a row after the log's end that no run recorded writing there (put by
    hand, or by another deployment sharing the location) is red, and the page does not say for certain that the
    newest rows were removed."""
    watch, write, anchors = chain
    write(3)
    forged = f"audit-anchors/{9:012d}-{'a' * 64}.json"
    anchors.put(forged, json.dumps({"row_id": 9, "row_hash": "a" * 64}).encode(), "application/json")
    status = look(ChainWatch(connect=watch.connect, anchors=lambda: anchors, anchor_every=timedelta(0)), store)
    assert status["state"] == "anchors_disagree"
    assert status["anchor"]["problem"] == (
        "the newest anchor names row 9, which is not in the verified log (it ends at row 3), and no run recorded "
        f"writing it at {anchors.location}: either the newest rows were removed with the record of their anchors, "
        "or the anchor was put there by hand or by another deployment")


def test_a_new_evidence_store_is_told_apart_from_one_whose_anchors_were_removed(store, chain, tmp_path):
    """Issue 30: after the demo `ui` served an empty evidence store and the page said in red "there is no anchor
    ... yet the log has N rows". A store where no anchor was ever written is new (a warning: the next run anchors
    the head); one where anchors were written and are gone had them removed (red)."""
    watch, write, anchors = chain
    write(4)  # anchored at the chain's location, and recorded in the store
    assert audit.anchors_recorded(store, str(anchors.location)) == (1, 4)
    elsewhere = FileObjectStore(f"file://{tmp_path}/new-evidence")
    new = look(ChainWatch(connect=watch.connect, anchors=lambda: elsewhere, anchor_every=timedelta(0)), store)
    assert new["state"] == "verified" and new["anchor"]["problem"] is None and new["anchor"]["fresh"]
    facts = {f["label"]: f for f in sections.chain_facts(new)}
    assert facts["Chain"]["tone"] == "good" and facts["Agree"]["tone"] == "warn"
    assert facts["Agree"]["value"].startswith("this evidence store is new: no anchor was ever written at")
    for name in anchors.list(audit.ANCHOR_PREFIX):  # the anchors at the recorded location removed
        (tmp_path / "evidence" / name).unlink()
    removed = look(ChainWatch(connect=watch.connect, anchors=lambda: anchors, anchor_every=timedelta(0)), store)
    assert removed["state"] == "anchors_disagree"
    assert removed["anchor"]["problem"].startswith("the anchors were removed: 1 anchor(s) were written at")
    assert {f["label"]: f for f in sections.chain_facts(removed)}["Agree"]["tone"] == "bad"


def test_without_an_evidence_location_the_chain_is_verified_and_the_anchors_are_said_unchecked(store, store_db):
    watch = ChainWatch(connect=lambda: psycopg.connect(store_db, autocommit=True), anchors=lambda: None)
    audit.append(store, "test.step", {}, actor="test")
    status = look(watch, store)
    assert status["state"] == "verified" and "not checked" in status["anchor"]["note"]
    data = render(store, "audit", chain=watch)
    assert data["rows"][0]["action"] == "test.step"
    assert any(f["label"] == "Anchors" and f["tone"] == "warn" for f in data["facts"])


def test_needs_a_person_counts_what_waits_and_leads_to_its_rows(store):
    """Issue 30, point 3: a fulfilment waiting for approval showed only in Airflow's Required Actions, and the page had
    no count of what waits for a person. The first section counts each kind and links to its rows."""
    from include.children import ledger
    from include.erasure import guard
    from include.erasure import run as erasure_run
    from include.fulfilment import ledger as fulfilment_ledger

    empty = {r["what"]: r for r in render(store, "attention")["rows"]}
    assert empty and all(r["count"]["text"] == "0" for r in empty.values())
    assert render(store, "attention")["facts"][0]["value"] == 0

    # An erasure plan waiting for a reviewer, planned an hour ago (the reviewer has 8 hours by default).
    planned = datetime.now(timezone.utc) - timedelta(hours=1)
    run = erasure_run.start_run(store, fulfilment_ledger.WORKFLOW, erasure_run.RunStart(
        run_id="manual__big", as_of=planned.date(), run_type="manual", dry_run=False, threshold=1, started_at=planned))
    with erasure_run.locked_run(store, fulfilment_ledger.WORKFLOW, "manual__big") as locked:
        erasure_run.record_plan(store, locked, erasure_run.PlanFacts(
            "a" * 64, 5, None, guard.Gate(guard.AWAITING_APPROVAL, "review", "waiting"), at=planned))
    assert run.state == "planning"
    store.execute("""insert into compliance.dsr_fulfilments (request_id, regime, request_type, action, outcome, reason,
                                                            run_id, first_recorded_at, recorded_at)
                     values (7, 'gdpr', 'rectification', 'manual', 'manual', 'correct the address', 'r', now(), now()),
                            (8, 'gdpr', 'objection', 'manual', 'manual', 'stop the processing', 'r', now(), now())""")
    store.execute("""insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run, error)
                     values ('dsr.escalation', '9/overdue', 'team@example.com', 'failed',
                             '{"request_id": 9, "level": "overdue", "recipient_is_team": true}', now(), 'r',
                             'refused')""")
    erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
        run_id="scheduled__1", as_of=planned.date(), run_type="scheduled", dry_run=False, threshold=50,
        started_at=planned))
    ledger.record_detection(store, "scheduled__1", [], [
        ledger.ReportNote(21, ledger.NEEDS_REVIEW, "the address names 2 accounts (7, 8)", (7, 8))], at=planned,
        counts={})
    store.execute("""insert into compliance.discovery_findings (finding_key, connection_id, schema_name, table_name,
                         column_name, finding, kind, confidence, matched, sampled, first_run_id, last_run_id,
                         first_seen_at, last_seen_at)
                     values ('ops_db:public.crm.mobile:unmapped', 'ops_db', 'public', 'crm', 'mobile', 'unmapped',
                             'phone', 0.9, 9, 10, 'd', 'd', now(), now())""")

    data = render(store, "attention")
    rows = {r["what"]: r for r in data["rows"]}
    approvals = rows["Erasure plans waiting for a reviewer's approval"]
    assert approvals["count"] == {"text": "1", "href": "/af/required_actions?response_received=false"}
    assert "h" in approvals["note"] and "left" in approvals["note"] and "Required Actions" in approvals["note"]
    manual = rows["Requests only a person can fulfil (rectification, objection)"]
    assert manual["count"] == {"text": "2", "section": "fulfilments", "filters": {"outcome": "manual", "open": "only"}}
    assert rows["Child reports naming a shared address or an adult (needs_review)"]["count"]["text"] == "1"
    assert rows[next(k for k in rows if k.startswith("Emails SendGrid refused"))]["count"]["text"] == "1"
    found = rows["Personal data the data map does not name (open discovery findings)"]
    assert found["count"] == {"text": "1", "section": "discovery", "filters": {}} and "dismiss-finding" in found["note"]
    assert data["facts"][0]["value"] == 6 and data["facts"][0]["tone"] == "warn"
    counts = [int(r["count"]["text"]) for r in data["rows"]]
    assert counts == sorted(counts, key=lambda n: n == 0)  # what waits comes first
    assert "@" not in str(data)  # counts, never an address

    # Found by a fault trial: a person completed the rectification (deadline tracking now says closed), and the
    # count stayed at 2 for ever. A request closed since waits for no one.
    store.execute("""insert into compliance.dsr_status (request_id, regime, request_type, state, effective_due, as_of,
                                                        evaluated_at, run_id)
                     values (7, 'gdpr', 'rectification', 'closed_on_time', current_date, current_date, now(), 'r'),
                            (8, 'gdpr', 'objection', 'due_soon', current_date, current_date, now(), 'r')""")
    rows = {r["what"]: r for r in render(store, "attention")["rows"]}
    assert rows["Requests only a person can fulfil (rectification, objection)"]["count"]["text"] == "1"

    # Found by a fault trial: alerts SendGrid did not take stayed pending until some other run failed, and nothing
    # here said so. One pending for an hour counts; one recorded a minute ago is still being sent.
    for key, ago in (("d/old/failed", "1 hour"), ("d/new/failed", "1 minute")):
        store.execute(f"""insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run)
                          values ('run_alerts', %s, 'oncall@example.org', 'pending', '{{}}', now() - interval '{ago}',
                                  'r')""", (key,))
    rows = {r["what"]: r for r in render(store, "attention")["rows"]}
    assert rows["On-call alerts of failed or late runs that did not reach on-call"]["count"]["text"] == "1"


def test_the_trends_are_drawn_from_the_stores_history(store):
    """Issue 30, point 5: requests closed on time per month (a rate), overdue per day over 90 days, purges and
    violations per week, one number per period (a day without a live run has none, not zero)."""
    from include.reads import trends

    today = date(2026, 11, 25)
    for rid, (state, due) in enumerate([("closed_on_time", "2026-10-05"), ("closed_on_time", "2026-10-20"),
                                        ("closed_late", "2026-10-30"), ("closed_late", "2026-11-03"),
                                        ("overdue", "2026-11-01"), ("closed_on_time", "2025-01-01")], 1):
        store.execute("""insert into compliance.dsr_status (request_id, regime, request_type, state, effective_due,
                                                            as_of, evaluated_at, run_id)
                         values (%s, 'gdpr', 'access', %s, %s, %s, now(), 'r')""", (rid, state, due, today))
    for n, (day, overdue, ack, dry) in enumerate([("2026-11-20", 3, 1, False), ("2026-11-20", 1, 0, False),
                                                  ("2026-11-24", 5, 0, False), ("2026-11-24", 50, 0, True)]):
        store.execute("""insert into compliance.dsr_runs (run_id, as_of, dry_run, started_at, finished_at, counts)
                         values (%s, %s, %s, now(), now(), %s)""",
                      (f"run-{n}", day, dry, psycopg.types.json.Jsonb({"overdue": overdue, "ack_overdue": ack})))
    months = trends.on_time_by_month(store, today)
    assert len(months) == 12 and months[-1]["period"] == "2026-11" and months[0]["period"] == "2025-12"
    assert {m["period"]: (m["on_time"], m["late"], m["rate"]) for m in months}["2026-10"] == (2, 1, 66.7)
    assert months[-1]["rate"] == 0.0 and months[-3]["rate"] is None  # November: 1 late; September: none closed
    days = {d["period"]: d["overdue"] for d in trends.overdue_by_day(store, today)}
    assert len(days) == 90 and days["2026-11-20"] == 4 and days["2026-11-24"] == 5 and days["2026-11-25"] is None

    data = render(store, "trends")
    assert data["installed"] and data["rows"] == [] and data["columns"] == []
    charts = {c["key"]: c for c in data["charts"]}
    assert set(charts) == {"on_time", "overdue", "purges", "violations"}
    assert charts["on_time"]["unit"] == "%" and charts["on_time"]["max"] == 100
    assert len(charts["purges"]["points"]) == 12 and all(p["value"] == 0 for p in charts["purges"]["points"])
    assert all(p["value"] is None for p in charts["violations"]["points"])  # no daily manifest: no number
    add_manifest(store, 1, "2026-11-24", datetime(2026, 11, 24, tzinfo=timezone.utc), {"child": 2}, "r")
    weeks = {w["period"]: w["violations"] for w in trends.violations_by_week(store, today)}
    assert weeks["2026-11-23"] == 2 and weeks["2026-11-16"] is None


def test_needs_a_person_counts_a_waiting_plan_only_while_its_run_can_still_be_running(store):
    """A run marked failed, timed out or killed before its finish step left its plan 'waiting' for good: the page
    counted an approval no one could give (Airflow's Required Actions was empty) for ever. An erasing DAG runs one run
    at a time, so a run of the same DAG started since has ended; and no run outlives its dagrun_timeout (the
    reviewer's time and four hours to erase). A plan whose run may still be running is still counted."""
    from include.erasure import guard
    from include.erasure import run as erasure_run
    from include.fulfilment import ledger as fulfilment_ledger
    from include.reads import attention

    now = datetime.now(timezone.utc)
    wf = fulfilment_ledger.WORKFLOW

    def waiting(run_id, started):
        erasure_run.start_run(store, wf, erasure_run.RunStart(
            run_id=run_id, as_of=started.date(), run_type="manual", dry_run=False, threshold=1, started_at=started))
        with erasure_run.locked_run(store, wf, run_id) as locked:
            erasure_run.record_plan(store, locked, erasure_run.PlanFacts(
                "a" * 64, 5, None, guard.Gate(guard.AWAITING_APPROVAL, "review", "waiting"), at=started))

    def count():
        items = attention.needs_a_person(store, now=now, approval_timeout=timedelta(hours=8))
        return next(i.count for i in items if i.key == "approvals")

    waiting("manual__failed", now - timedelta(hours=3))  # marked failed before its finish step
    assert count() == 1  # nothing says it ended yet: it may still be waiting
    erasure_run.start_run(store, wf, erasure_run.RunStart(
        run_id="scheduled__next", as_of=now.date(), run_type="scheduled", dry_run=False, threshold=1,
        started_at=now - timedelta(hours=1)))
    assert count() == 0  # a newer run of the same DAG started: the old one is over
    waiting("scheduled__next_but_waiting", now - timedelta(minutes=30))
    assert count() == 1  # the newest run's plan really waits
    store.execute("delete from compliance.erasure_runs")
    waiting("manual__timed_out", now - timedelta(hours=12, minutes=1))  # past 8 h + 4 h: its DAG run timed out
    assert count() == 0
    waiting("manual__still_running", now - timedelta(hours=11))  # newer, within its run's time
    assert count() == 1


def test_needs_a_person_counts_requests_left_incomplete(store):
    """Found by a fault trial: a request left incomplete (a file the erasure may not touch, or one the object store
    refused) waits for a person, and 'Needs a person' did not count it."""
    store.execute("""insert into compliance.dsr_fulfilments (request_id, regime, request_type, action, outcome, reason,
                                                            run_id, first_recorded_at, recorded_at)
                     values (11, 'gdpr', 'erasure', 'erase', 'incomplete', '1 file(s) ... (someone-elses-bucket; ...)',
                             'r', now(), now())""")
    rows = {r["what"]: r for r in render(store, "attention")["rows"]}
    left = rows["Requests left incomplete: a file the erasure may not touch, or one the object store refused"]
    assert left["count"] == {"text": "1", "section": "fulfilments", "filters": {"outcome": "incomplete", "open": "only"}}
    assert "file_buckets" in left["note"]


def test_needs_a_person_counts_children_whose_latest_verdict_is_incomplete(store):
    """Found by a fault trial: a child purge that left a subject incomplete (a file in a bucket the settings do not
    allow, or one the object store refused) waits for a person, and 'Needs a person' counted only the requests; then
    counting the newest untargeted run's records alone lost such a child behind a run that only planned it, and kept
    counting one a targeted run had purged since."""
    from include.children import ledger
    from include.erasure import ErasureResult
    from include.erasure import run as erasure_run

    what = "Children's data left incomplete: a file the purge may not touch, or one the object store refused"
    for minutes, run_id in enumerate(("scheduled__old", "scheduled__new")):
        erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
            run_id=run_id, as_of=date(2026, 11, 25), run_type="scheduled", dry_run=False, threshold=50,
            started_at=at(minutes)))
        ledger.record_detection(store, run_id, [ledger.Detected(f"{n:064x}", n, ("under_13",), (), ())
                                                for n in (1, 2)], [], at=at(minutes), counts={"accounts": 2})
    ctx = audit.RunContext(run_id="scheduled__old", actor="test", dag_id="child_data_purge", now=lambda: at(1))
    for n in (1, 2):
        assert ledger.finish_subject(store, ctx, "scheduled__old", ErasureResult(n, f"{n:064x}", "incomplete"))
    ctx = audit.RunContext(run_id="scheduled__new", actor="test", dag_id="child_data_purge", now=lambda: at(2))
    assert ledger.finish_subject(store, ctx, "scheduled__new", ErasureResult(1, f"{1:064x}", "incomplete"))
    assert ledger.finish_subject(store, ctx, "scheduled__new", ErasureResult(2, f"{2:064x}", "purged"))

    left = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert left["count"] == {"text": "1", "section": "purges", "filters": {}}  # each child's latest verdict
    assert "file_buckets" in left["note"]
    # A child whose erasure the database refused (a rule of the application's, one of its limits) is left
    # incomplete too: the note told only of files.
    assert "a database refused" in left["note"] and "too many columns" in left["note"]

    # A later live run that only planned the child (a plan that changed: approval_required) says nothing new of it:
    # it is still left incomplete (the count went to 0 with the child still there).
    def live_run(run_id, minutes, targets=()):
        erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
            run_id=run_id, as_of=date(2026, 11, 25), run_type="manual", dry_run=False, threshold=50,
            started_at=at(minutes), targets=tuple(targets)))
        ledger.record_detection(store, run_id, [ledger.Detected(f"{1:064x}", 1, ("under_13",), (), ())], [],
                                at=at(minutes), counts={"accounts": 1})
        return audit.RunContext(run_id=run_id, actor="test", dag_id="child_data_purge", now=lambda: at(minutes))

    live_run("manual__changed", 3)
    ledger.close_open(store, "manual__changed", ledger.APPROVAL_REQUIRED, "the plan changed", at(3))
    assert {r["what"]: r for r in render(store, "attention")["rows"]}[what]["count"]["text"] == "1"
    # A person mends the row and purges the child in a run targeted at it: nothing is left to count (it stayed 1).
    c = live_run("manual__targeted", 4, targets=(1,))
    assert ledger.finish_subject(store, c, "manual__targeted", ErasureResult(1, f"{1:064x}", "purged"))
    assert {r["what"]: r for r in render(store, "attention")["rows"]}[what]["count"]["text"] == "0"


def test_needs_a_person_counts_invalid_and_unmatched_requests_and_each_count_leads_to_its_open_rows(store):
    """Found by fault trials: open requests deadline tracking cannot evaluate (an unknown regime or type, a date in
    the future: no deadline, so never overdue) and requests recorded no_account (match the requester to an account)
    were counted nowhere; a count of open requests led to a list that also held the closed ones; and a request a
    person rejected (its status closed, its regime still unknown to the rules, so 'invalid') was counted for good."""
    store.execute("""insert into compliance.dsr_fulfilments (request_id, regime, request_type, action, outcome, reason,
                                                            run_id, first_recorded_at, recorded_at)
                     values (22, 'gdpr', 'access', 'none', 'no_account', 'match the requester', 'r', now(), now()),
                            (23, 'gdpr', 'objection', 'manual', 'manual', 'stop the processing', 'r', now(), now()),
                            (24, 'gdpr', 'objection', 'manual', 'manual', 'stop the processing', 'r', now(), now()),
                            (25, 'gdpr', 'objection', 'manual', 'manual', 'stop the processing', 'r', now(), now())""")
    store.execute("""insert into compliance.dsr_status (request_id, regime, request_type, status, state, invalid_reason,
                                                        effective_due, as_of, evaluated_at, run_id)
                     values (21, 'lgpd', 'access', 'received', 'invalid', 'unknown regime', null, current_date, now(),
                             'r'),
                            (26, 'pdpa', 'access', 'rejected', 'invalid', 'unknown regime', null, current_date, now(),
                             'r'),
                            (24, 'gdpr', 'objection', 'completed', 'closed_on_time', null, current_date, current_date,
                             now(), 'r'),
                            (25, 'pdpa', 'objection', 'rejected', 'invalid', 'unknown regime', null, current_date,
                             now(), 'r')""")
    rows = {r["what"]: r for r in render(store, "attention")["rows"]}
    for what, section, filters in (
            ("Open requests that cannot be evaluated or acted on as written (invalid)", "requests",
             {"state": "invalid", "open": "only"}),
            ("Requests naming no account, or an account already erased (no_account)", "fulfilments",
             {"outcome": "no_account", "open": "only"}),
            ("Requests only a person can fulfil (rectification, objection)", "fulfilments",
             {"outcome": "manual", "open": "only"})):
        item = rows[what]
        assert item["count"] == {"text": "1", "section": section, "filters": filters}, (what, item["count"])
        listed = render(store, section, item["count"]["filters"])
        assert listed["total"] == 1 and len(listed["rows"]) == 1, (what, listed["total"])  # exactly what it counts
    assert render(store, "fulfilments", {"outcome": "manual"})["total"] == 3  # without the filter: closed ones too
    assert render(store, "requests", {"state": "invalid"})["total"] == 3  # the rejected two too

def test_needs_a_person_counts_unjudged_children_and_only_recent_refused_mail(store):
    """Found by a fault trial: accounts the purge could not judge (a birth date in the future: 'someone must look at
    them', the purge's page says) were counted nowhere; refused emails were counted for good (they are never sent
    again and their rows stay failed), and the count led to the campaigns section, which lists none of them."""
    from include.children import ledger
    from include.erasure import ErasureResult
    from include.erasure import run as erasure_run

    erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
        run_id="scheduled__1", as_of=date(2026, 11, 25), run_type="scheduled", dry_run=False, threshold=50,
        started_at=at(0)))
    ledger.record_detection(store, "scheduled__1", [
        ledger.Detected(f"{1:064x}", 1, (), ("birth_date is in the future",), ()),
        ledger.Detected(f"{2:064x}", 2, ("under_13",), (), ())], [], at=at(0), counts={"accounts": 2})
    c = audit.RunContext(run_id="scheduled__1", actor="test", dag_id="child_data_purge", now=lambda: at(1))
    assert ledger.finish_subject(store, c, "scheduled__1", ErasureResult(2, f"{2:064x}", "purged"))
    for key, ago, status in (("1/overdue", "1 day", "failed"), ("2/overdue", "8 days", "failed"),
                             ("3/overdue", "1 day", "withdrawn")):  # withdrawn: its request closed before the send
        store.execute(f"""insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run,
                                                          error)
                          values ('dsr.escalation', %s, 'team@example.com', %s, '{{}}',
                                  now() - interval '{ago}', 'r', 'refused')""", (key, status))
    rows = {r["what"]: r for r in render(store, "attention")["rows"]}
    unjudged = rows["Accounts the purge could not judge (invalid: a birth date in the future, a negative declared age)"]
    assert unjudged["count"] == {"text": "1", "section": "purges", "filters": {}}
    mail = rows[next(k for k in rows if k.startswith("Emails SendGrid refused"))]
    assert mail["count"] == {"text": "1", "section": None, "filters": {}} and "last 7 days" in next(k for k in rows if k.startswith("Emails"))


def test_needs_a_person_counts_a_broken_audit_chain_and_leads_to_the_audit_section(store, chain):
    """Found by a fault trial: a row of the audit log altered behind its triggers turned the audit section red, and
    'Needs a person' (the page's first section, the one the team watches) said nothing was waiting. A chain that is
    intact, or still being walked, counts nothing."""
    watch, write, _ = chain
    what = "The audit chain is broken or disagrees with its anchors (the audit section says where)"

    def item():
        look(watch, store)  # the first look walks the chain in the background
        return {r["what"]: r for r in render(store, "attention", chain=watch)["rows"]}[what]

    write(5)
    assert item()["count"] == {"text": "0", "section": "audit", "filters": {}}
    behind_the_triggers(store, "update compliance.audit_log set action = 'edited' where id = 5")
    broken = item()
    assert broken["count"] == {"text": "1", "section": "audit", "filters": {}}
    assert render(store, "attention", chain=watch)["facts"][0]["value"] == 1
    assert render(store, "audit", chain=watch)["chain"]["state"] == "broken"  # what the count leads to


def test_an_evidence_store_that_cannot_be_listed_is_said_unchecked_not_a_disagreeing_chain(store, chain):
    """Found by a fault trial: the object store holding the anchors not answering for a moment (an outage, a network
    fault, expired credentials) turned the audit section red, "recomputes, but does not match its anchors", and
    'Needs a person' counted the audit chain as broken or disagreeing with its anchors: a tampering alarm for an
    outage. The chain, verified, stays verified; the anchors are said not checked (a warning, with the store's
    sentence), counted nowhere, and checked again on the next look."""
    from include.errors import ServiceUnreachable

    watch, write, anchors = chain
    what = "The audit chain is broken or disagrees with its anchors (the audit section says where)"
    write(5)
    assert look(watch, store)["state"] == "verified"

    class Unreachable:
        location = anchors.location

        def list(self, prefix):
            raise ServiceUnreachable("the object store did not answer: connection refused (it will be asked again)")

    watch.anchors = lambda: Unreachable()
    status = watch.status(store)
    assert status["state"] == "verified" and status["anchor"]["problem"] is None, status["anchor"]
    audit_section = render(store, "audit", chain=watch)
    agree = {f["label"]: f for f in audit_section["facts"]}["Agree"]
    assert agree["tone"] == "warn" and agree["value"].startswith("not checked now: could not list the anchors at "), agree
    assert "connection refused" in agree["value"]
    counted = {r["what"]: r for r in render(store, "attention", chain=watch)["rows"]}[what]
    assert counted["count"]["text"] == "0"
    watch.anchors = lambda: anchors  # back: compared again, and they agree
    assert watch.status(store)["anchor"].get("rows_since") == 0


def test_needs_a_person_counts_requests_due_soon_and_leads_to_exactly_them(store):
    """Found by a fault trial: a request due within the due-soon window (escalated once, to be answered this week) was
    counted nowhere in 'Needs a person': the team saw it only once it was overdue. It is counted, the count leads to
    the requests section's due_soon rows, and it goes once the request is closed."""
    add_status(store, [(1, "gdpr", "access", "due_soon", 3), (2, "ccpa", "know", "due_soon", 6),
                       (3, "gdpr", "access", "on_track", 20)])
    what = "Privacy requests due soon (within the due-soon window)"
    item = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert item["count"] == {"text": "2", "section": "requests", "filters": {"state": "due_soon"}}
    listed = render(store, "requests", item["count"]["filters"])
    assert listed["total"] == len(listed["rows"]) == 2
    store.execute("update compliance.dsr_status set state = 'closed_on_time', status = 'completed' where request_id = 1")
    store.execute("""insert into compliance.dsr_runs (run_id, as_of, dry_run, what_if, started_at, finished_at)
                     values ('scheduled__next', current_date, false, false, now(), now())""")  # the run that saw it
    item = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert item["count"]["text"] == "1" == str(render(store, "requests", item["count"]["filters"])["total"])


def test_needs_a_person_dates_the_oldest_request_of_each_state_by_the_date_it_missed_or_is_due(store):
    """Found by a review: the 'Oldest' of the requests overdue, not acknowledged in time or due soon was the earliest
    evaluated_at of their rows, and every daily run rewrites an open request's row (its days left change), so it was
    this morning's run for all: a request overdue since November read as overdue since today. It is now the date the
    oldest one missed (its due date; a CCPA request's acknowledgement date) or, for due soon, the soonest due date."""
    rows = [(1, "gdpr", "access", "overdue", "2026-11-02", None), (2, "gdpr", "access", "overdue", "2026-11-20", None),
            (3, "ccpa", "know", "ack_overdue", "2026-12-20", "2026-11-24"),
            (4, "ccpa", "know", "ack_overdue", "2026-12-22", "2026-11-30"),
            (5, "gdpr", "access", "due_soon", "2026-12-10", None), (6, "gdpr", "access", "due_soon", "2026-12-08", None)]
    for rid, regime, rtype, state, due, ack_due in rows:
        store.execute("""insert into compliance.dsr_status (request_id, regime, request_type, state, effective_due,
                                                            ack_due, as_of, evaluated_at, run_id)
                         values (%s, %s, %s, %s, %s, %s, '2026-12-07', now(), 'scheduled__today')""",
                      (rid, regime, rtype, state, due, ack_due))
    items = {r["what"]: r for r in render(store, "attention")["rows"]}
    assert {what: (items[what]["count"]["text"], items[what]["oldest"]) for what in (
        "Privacy requests overdue", "CCPA requests not acknowledged in time",
        "Privacy requests due soon (within the due-soon window)")} == {
        "Privacy requests overdue": ("2", "2026-11-02"), "CCPA requests not acknowledged in time": ("2", "2026-11-24"),
        "Privacy requests due soon (within the due-soon window)": ("2", "2026-12-08")}


def test_needs_a_person_counts_export_packages_the_object_store_refused_to_delete(store):
    """Found by a fault trial: an export package past export_retention_days that the object store refused to delete
    (a retention policy, a hold) is personal data kept past its time; the run failed and on-call was told once, but
    'Needs a person' counted nothing. It counts the packages the newest expiry could not delete (request ids only) until
    a later run deletes them."""
    def expired(run_id, deleted, refused):
        audit.append(store, "dsr_fulfilment.packages_expired", {
            "requests": deleted, "not_deleted": refused, "unrecorded": [], "older_than_days": 30},
            actor=audit.RunContext(run_id=run_id, actor="test", dag_id="dsr_fulfilment"))

    for rid in (900001, 900002):
        store.execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, package_object, package_uri,
                             package_sha256, run_id, first_recorded_at, recorded_at)
                         values (%s, 'export', 'exported', %s, 'file:///x', repeat('b', 64), 'r',
                                 now() - interval '40 days', now() - interval '40 days')""",
                      (rid, f"exports/request={rid}/package.zip"))
    store.execute("update compliance.dsr_fulfilments set package_deleted_at = now() where request_id = 900002")
    expired("scheduled__1", [900002], [900001])
    what = "Export packages past export_retention_days the object store refused to delete"
    item = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert item["count"]["text"] == "1" and "900001" in item["note"] and item["oldest"] is not None
    expired("scheduled__2", [900001], [])  # the next run deleted it
    store.execute("update compliance.dsr_fulfilments set package_deleted_at = now() where request_id = 900001")
    assert {r["what"]: r for r in render(store, "attention")["rows"]}[what]["count"]["text"] == "0"


def test_needs_a_person_forgets_a_child_the_newest_run_over_every_account_no_longer_detects(store):
    """Found by a fault trial: a child held by a legal hold (or one the purge could not judge, or left incomplete)
    kept that latest verdict for good once no run detected it any more: its birth date corrected to an adult's, the
    hold released after it turned 13, its account deleted by the application. 'Needs a person' counted it for ever,
    and nothing a person could do took it off. A child the newest run over every account (live or dry) no longer
    detects waits for no one; a run targeted at other accounts says nothing of it."""
    from include.children import ledger
    from include.erasure import ErasureResult
    from include.erasure import run as erasure_run

    def run(run_id, minutes, detected, *, dry=False, targets=()):
        erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
            run_id=run_id, as_of=date(2026, 11, 25), run_type="manual", dry_run=dry, threshold=50,
            started_at=at(minutes), targets=tuple(targets)))
        ledger.record_detection(store, run_id, [
            ledger.Detected(f"{n:064x}", n, () if n == 3 else ("under_13",), ("birth_date is in the future",)
                            if n == 3 else (), ()) for n in detected], [], at=at(minutes), counts={})
        return audit.RunContext(run_id=run_id, actor="test", dag_id="child_data_purge", now=lambda: at(minutes))

    c = run("scheduled__1", 0, (1, 2, 3))
    assert ledger.finish_subject(store, c, "scheduled__1", ErasureResult(1, f"{1:064x}", "held", holds=(9,)))
    assert ledger.finish_subject(store, c, "scheduled__1", ErasureResult(2, f"{2:064x}", "incomplete"))
    held, left, unjudged = (
        "Children's data kept by a legal hold",
        "Children's data left incomplete: a file the purge may not touch, or one the object store refused",
        "Accounts the purge could not judge (invalid: a birth date in the future, a negative declared age)")

    def counts():
        rows = {r["what"]: r for r in render(store, "attention")["rows"]}
        return [int(rows[what]["count"]["text"]) for what in (held, left, unjudged)]

    assert counts() == [1, 1, 1]
    run("manual__targeted", 1, (), targets=(7,))  # a run told to look at account 7 only: nothing new of 1, 2, 3
    assert counts() == [1, 1, 1]
    run("manual__dry", 2, (1, 2))  # a dry run over every account: 3's birth date was corrected (an adult now)
    assert counts() == [1, 1, 0]
    run("scheduled__2", 3, (2,))  # 1 turned 13 (no longer a child); 2 is still there, planned again
    assert counts() == [0, 1, 0]


def test_needs_a_person_counts_a_refused_alert_for_a_week_not_for_good(store):
    """Found by a fault trial: an on-call alert SendGrid refused (an address it will not take) is never sent again and
    its row stays failed for the record, and 'Needs a person' counted it for good: fixing the address, clearing the
    run and seeing it succeed took nothing off the count. A refused alert counts for the week refused emails count
    for; a pending one still counts until it goes out."""
    what = "On-call alerts of failed or late runs that did not reach on-call"
    for key, ago, status in (("d/last_week/failed", "8 days", "failed"), ("d/yesterday/failed", "1 day", "failed"),
                             ("d/stuck/late", "8 days", "pending")):
        store.execute(f"""insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run,
                                                          error)
                          values ('run_alerts', %s, 'oncall@example.org', %s, '{{}}', now() - interval '{ago}', 'r',
                                  'refused')""", (key, status))
    item = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert item["count"]["text"] == "2" and "7 days" in item["note"]


def test_needs_a_person_counts_a_refused_email_for_a_week_from_its_refusal_not_its_recording(store):
    """Found by an on-call trial: emails are counted for a week after SendGrid refused them, but the week ran from
    when their run recorded them. A violation notice and an on-call alert pending through an eight-day SendGrid
    outage, then refused today, were never counted: a refusal no one heard of. The week runs from the refusal."""
    from include.delivery.outbox import Outbox

    def _keys(conn, entries):
        return {"keys": [e.key for e in entries]}, {}

    eight_days_ago = datetime.now(timezone.utc) - timedelta(days=8)
    for kind, key in (("vendor_manifest.violation_notice", "4/2026-11-20"), ("run_alerts", "d/r/failed")):
        box = Outbox(kind)
        box.record(store, key, recipient="team@example.com", facts={}, at=eight_days_ago, run_id="r")
        with store.transaction():
            ledger = box.ledger(_keys)
            ledger.mark_failed(store, ledger.claim(store), reason="HTTP 400: the address is not accepted")
    rows = {r["what"]: r for r in render(store, "attention")["rows"]}
    refused = rows[next(k for k in rows if k.startswith("Emails SendGrid refused"))]
    assert refused["count"]["text"] == "1"
    assert datetime.fromisoformat(refused["oldest"]) > datetime.now(timezone.utc) - timedelta(hours=1)  # refused now
    assert rows["On-call alerts of failed or late runs that did not reach on-call"]["count"]["text"] == "1"
    assert store.execute("select count(*) from compliance.outbox where status = 'failed' and failed_at is not null"
                         ).fetchone()[0] == 2


def test_needs_a_person_dates_a_refused_alert_by_its_refusal_not_its_recording(store):
    """Found by a review: the on-call alerts' count runs from the refusal (failed_at, migration 0023), but their
    'Oldest' was the earliest claimed_at, when the run recorded the alert: one pending through a five-day SendGrid
    outage and refused an hour ago read as waiting for five days. A refused alert is dated by its refusal (a row
    refused before 0023, by its recording); a pending one by its recording, since it has waited from then."""
    from include.delivery.outbox import Outbox

    what = "On-call alerts of failed or late runs that did not reach on-call"
    box = Outbox("run_alerts")
    box.record(store, "d/r/failed", recipient="oncall@example.org", facts={},
               at=datetime.now(timezone.utc) - timedelta(days=5), run_id="r")
    store.execute("""update compliance.outbox set status = 'failed', error = 'HTTP 400: refused',
                     failed_at = now() - interval '1 hour' where key = 'd/r/failed'""")
    oldest = datetime.fromisoformat({r["what"]: r for r in render(store, "attention")["rows"]}[what]["oldest"])
    assert timedelta(minutes=59) < datetime.now(timezone.utc) - oldest < timedelta(minutes=61)
    box.record(store, "d/s/late", recipient="oncall@example.org", facts={},
               at=datetime.now(timezone.utc) - timedelta(hours=3), run_id="s")  # pending for three hours
    item = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert item["count"]["text"] == "2"
    assert timedelta(hours=2, minutes=59) < datetime.now(timezone.utc) - datetime.fromisoformat(item["oldest"]) \
        < timedelta(hours=3, minutes=1)


def test_needs_a_person_counts_emails_only_a_cleared_run_would_still_send(store):
    """Found by a fault trial: SendGrid down through a run's retries left its purge summary pending (only that run
    sends it), or a vendor's violation notice (its run, else the next daily run over every vendor): they waited for
    someone, and 'Needs a person' counted nothing. A summary pending a day is counted, a notice pending two (the next
    day's run failed to send it too); an escalation (the next hourly run sends it) and a past day's digest (the next
    day's has the news) are not."""
    for kind, key, ago, status in (
            ("child_purge.summary", "scheduled__1", "2 days", "pending"),
            ("vendor_manifest.violation_notice", "4/2026-11-20", "3 days", "pending"),
            ("vendor_manifest.violation_notice", "5/2026-11-25", "1 hour", "pending"),  # its run is sending it
            ("vendor_manifest.violation_notice", "6/2026-11-24", "30 hours", "pending"),  # the next day's run sends it
            ("child_purge.summary", "scheduled__0", "3 days", "sent"),
            ("dsr.escalation", "7/overdue", "2 days", "pending"),
            ("dsr.digest", "2026-11-20", "2 days", "pending")):
        label = key.split("/")[1] if kind.startswith("vendor") else None
        store.execute(f"""insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run)
                          values (%s, %s, 'team@example.com', %s, jsonb_strip_nulls(jsonb_build_object(
                                  'period_label', %s::text)), now() - interval '{ago}', 'r')""",
                      (kind, key, status, label))
    what = ("Emails SendGrid has not taken since their run recorded them (purge summaries a day on, violation notices "
            "two days on)")
    item = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert item["count"]["text"] == "2" and "notify_compliance" in item["note"] and "send_violation_emails" in item["note"]
    assert item["oldest"] is not None and "@" not in str(item)


def test_needs_a_person_counts_erasures_left_unverified_once_their_run_is_over(store):
    """Found by a fault trial: an erasure whose check after commit found the subject's rows still there (written
    after it, or in a table the data map missed) fails its verify task and keeps the account id until a person deals
    with the rows and clears the task; nothing else ever verifies it. 'Needs a person' counted nothing (the purges
    section lists only records still planned or erasing). Counted once its run is over (a newer run of the DAG has
    started, or its time is up); a run still going may yet verify its own."""
    from include.children import ledger
    from include.erasure import ErasureResult
    from include.erasure import run as erasure_run
    from include.fulfilment import ledger as fulfilment_ledger
    from include.reads import attention

    now = datetime.now(timezone.utc)

    def live(wf, run_id, started):
        erasure_run.start_run(store, wf, erasure_run.RunStart(
            run_id=run_id, as_of=started.date(), run_type="manual", dry_run=False, threshold=50, started_at=started))

    def purged(run_id, started, n):
        live(ledger.WORKFLOW, run_id, started)
        ledger.record_detection(store, run_id, [ledger.Detected(f"{n:064x}", n, ("under_13",), (), ())], [],
                                at=started, counts={})
        c = audit.RunContext(run_id=run_id, actor="test", dag_id="child_data_purge", now=lambda: started)
        assert ledger.finish_subject(store, c, run_id, ErasureResult(n, f"{n:064x}", "purged"))

    purged("manual__left", now - timedelta(hours=3), 1)  # its verify failed: account 1's id kept
    purged("manual__running", now - timedelta(hours=1), 2)  # the newest run: may still be verifying
    live(fulfilment_ledger.WORKFLOW, "manual__erase", now - timedelta(hours=13))  # past its run's time
    store.execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, user_id, erased_tables,
                                                            rows_erased, run_id, first_recorded_at, recorded_at)
                     values (31, 'erase', 'erased', 77, '{}', 3, 'manual__erase', now() - interval '13 hours',
                             now() - interval '13 hours'),
                            (32, 'erase', 'erased', null, '{}', 3, 'manual__erase', now(), now())""")  # 32: verified

    items = {i.key: i for i in attention.needs_a_person(store, now=now, approval_timeout=timedelta(hours=8))}
    left = items["unverified_erasures"]
    assert left.count == 2 and "manual__left" in left.note and "manual__erase" in left.note
    assert "manual__running" not in left.note and left.oldest is not None
    store.execute("""update compliance.child_purges set verified_at = now(), user_id = null
                     where run_id = 'manual__left'""")  # the rows dealt with, the task cleared: verified
    items = {i.key: i for i in attention.needs_a_person(store, now=now, approval_timeout=timedelta(hours=8))}
    assert items["unverified_erasures"].count == 1


def test_a_dry_run_started_beside_a_live_run_does_not_end_its_wait_or_its_verify(store):
    """Found in review: 'Needs a person' took a live erasing run as over once any newer run of its DAG started. The
    scheduler starts none while one runs (max_active_runs 1), but a backfill (its own limit; a child purge's is a dry
    run by default) and `airflow dags test` start beside it: a dry run started so dropped a plan still waiting for its
    reviewer and counted the erasures of a run still verifying. Only a newer live run ends a run."""
    from include.children import ledger
    from include.erasure import ErasureResult, guard
    from include.erasure import run as erasure_run
    from include.fulfilment import ledger as fulfilment_ledger
    from include.reads import attention

    now = datetime.now(timezone.utc)

    def start(wf, run_id, started, *, dry_run=False):
        erasure_run.start_run(store, wf, erasure_run.RunStart(
            run_id=run_id, as_of=started.date(), run_type="manual", dry_run=dry_run, threshold=1, started_at=started))

    start(fulfilment_ledger.WORKFLOW, "scheduled__waiting", now - timedelta(hours=1))
    with erasure_run.locked_run(store, fulfilment_ledger.WORKFLOW, "scheduled__waiting") as locked:
        erasure_run.record_plan(store, locked, erasure_run.PlanFacts(
            "a" * 64, 5, None, guard.Gate(guard.AWAITING_APPROVAL, "review", "waiting"), at=now - timedelta(hours=1)))
    start(ledger.WORKFLOW, "scheduled__verifying", now - timedelta(hours=1))
    ledger.record_detection(store, "scheduled__verifying", [ledger.Detected(f"{9:064x}", 9, ("under_13",), (), ())],
                            [], at=now - timedelta(hours=1), counts={})
    c = audit.RunContext(run_id="scheduled__verifying", actor="test", dag_id="child_data_purge",
                         now=lambda: now - timedelta(minutes=50))
    assert ledger.finish_subject(store, c, "scheduled__verifying", ErasureResult(9, f"{9:064x}", "purged"))
    start(fulfilment_ledger.WORKFLOW, "backfill__dry", now - timedelta(minutes=30), dry_run=True)
    start(ledger.WORKFLOW, "manual__dags_test_dry", now - timedelta(minutes=30), dry_run=True)

    def counts():
        items = attention.needs_a_person(store, now=now, approval_timeout=timedelta(hours=8))
        return {i.key: i.count for i in items if i.key in ("approvals", "unverified_erasures")}

    assert counts() == {"approvals": 1, "unverified_erasures": 0}  # both live runs may still be going
    start(fulfilment_ledger.WORKFLOW, "scheduled__next", now - timedelta(minutes=10))
    start(ledger.WORKFLOW, "scheduled__next", now - timedelta(minutes=10))
    assert counts() == {"approvals": 0, "unverified_erasures": 1}  # a newer live run: the old ones ended


def test_needs_a_person_counts_child_reports_that_name_no_one_to_look_for(store):
    """Found by a fault trial: a child report naming neither an account id nor an address (a blank address included)
    is recorded 'invalid' by every run over every report and left open, since no run can act on it: someone was
    reported as a child and only a person can find out who. 'Needs a person' counted it nowhere, nor did the purges
    section's facts. It is counted from the newest run that looked at every report, and leads to the purges section,
    which names it; once corrected or resolved (a newer run no longer finds it), it is not."""
    from include.children import ledger
    from include.erasure import run as erasure_run

    def look(run_id, minutes, notes):
        erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
            run_id=run_id, as_of=date(2026, 11, 25), run_type="scheduled", dry_run=False, threshold=50,
            started_at=at(minutes)))
        ledger.record_detection(store, run_id, [], notes, at=at(minutes), counts={})

    blank = "the report names neither an account id nor an email address"
    look("scheduled__1", 0, [ledger.ReportNote(23, "invalid", blank), ledger.ReportNote(24, "no_match")])
    what = "Child reports naming neither an account nor an address (invalid)"
    item = {r["what"]: r for r in render(store, "attention")["rows"]}[what]
    assert item["count"] == {"text": "1", "section": "purges", "filters": {}} and "resolve" in item["note"]
    facts = {f["label"]: f for f in render(store, "purges")["facts"]}
    named = facts["Reports naming neither an account nor an address (invalid)"]
    assert (named["value"], named["tone"]) == ("report 23", "warn")
    look("scheduled__2", 1, [])  # the report was given its account id: the next run purged or judged it
    assert {r["what"]: r for r in render(store, "attention")["rows"]}[what]["count"]["text"] == "0"


def test_needs_a_person_says_what_it_cannot_count_when_the_store_lacks_a_table(store):
    """Found by a fault trial: with a table of the store missing (a store behind the code, a migration that failed
    part-way), Needs a person left out everything that table holds and said "0 waiting" in green: a false all-clear."""
    from include.reads import attention

    assert render(store, "attention")["facts"][0] == {"label": "Things waiting for a person", "value": 0,
                                                      "tone": "good"}
    store.execute("drop table compliance.discovery_findings cascade")
    items = attention.needs_a_person(store, now=datetime.now(timezone.utc), approval_timeout=timedelta(hours=8))
    first = items[0]
    assert (first.key, first.count) == ("store_behind", 1)
    assert "compliance.discovery_findings" in first.what + first.note and "migrate-store" in first.note
    data = render(store, "attention")
    assert data["facts"][0]["value"] == 1 and data["facts"][0]["tone"] == "warn"
    assert data["rows"][0]["count"]["text"] == "1"


def test_the_purge_and_fulfilment_records_say_until_when_the_erased_files_stay_recoverable(store):
    """Found by a fault trial: a bucket's soft delete (on by default on GCS, 7 days) keeps the versions an erasure
    deleted recoverable by the bucket's owner, and no client can shorten it; only each file's row said so
    (``compliance.erasure_files.recoverable_until``). The subject's record, as the compliance page and the purge's
    record show it, said the subject erased and no more. Now its reason says how many files stay recoverable and
    until what day, never a file's name."""
    from include.children import ledger
    from include.erasure import ErasureResult, TableCount
    from include.erasure import run as erasure_run
    from include.erasure.stores import subject_files
    from include.fulfilment.ledger import PlanRow
    from include.fulfilment.steps import _erased_records

    subject_hash = f"{1:064x}"
    until = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    store.execute("""insert into compliance.erasure_files (subject_hash, uri, kind, source, state, found_at, done_at,
                                                           versions_deleted, recoverable_until)
                     values (%(s)s, 'gs://acme-uploads/users/1/Zo\u00eb.pdf', 'file', 'ops_db:public.uploads.storage_uri',
                             'deleted', %(at)s, %(at)s, 2, %(until)s),
                            (%(s)s, 'gs://acme-uploads/users/1/cv.pdf', 'file', 'ops_db:public.uploads.storage_uri',
                             'already_gone', %(at)s, %(at)s, 0, %(early)s),
                            (%(s)s, 'gs://acme-uploads/users/1/gone.pdf', 'file', 'ops_db:public.uploads.storage_uri',
                             'already_gone', %(at)s, %(at)s, 0, null)""",
                  {"s": subject_hash, "at": at(0), "until": until, "early": until - timedelta(days=2)})
    result = ErasureResult(1, subject_hash, "purged", tables=(TableCount("public.users", "delete", 1),), at=at(1),
                           files=tuple(subject_files(store, subject_hash)))
    said = "2 file(s) recoverable from the bucket's soft delete until 2026-12-02"

    row = PlanRow(7, "gdpr", "deletion", "erase", None, None, subject_hash)
    first, other = _erased_records(result, [row, PlanRow(8, "gdpr", "deletion", "erase", None, None, subject_hash)])
    assert first.reason == said and said not in (other.reason or "")

    erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
        run_id="scheduled__soft", as_of=date(2026, 11, 25), run_type="scheduled", dry_run=False, threshold=50,
        started_at=at(0)))
    ledger.record_detection(store, "scheduled__soft", [ledger.Detected(subject_hash, 1, ("under_13",), (), ())], [],
                            at=at(0), counts={"accounts": 1})
    ctx = audit.RunContext(run_id="scheduled__soft", actor="test", dag_id="child_data_purge", now=lambda: at(1))
    assert ledger.finish_subject(store, ctx, "scheduled__soft", result)
    recorded = store.execute("select outcome, reason from compliance.child_purges where subject_hash = %s",
                             (subject_hash,)).fetchone()
    assert recorded == ("purged", said)
    assert "Zo" not in said and "cv.pdf" not in said


def test_the_purge_and_fulfilment_audit_entries_say_until_when_the_erased_files_stay_recoverable(store):
    """The purge's record said how many of a subject's erased files a bucket's soft delete keeps recoverable and
    until what day; its audit entry (``child_purge.subject_purged``) did not, so the audit log alone said the
    subject erased and no more. Now it carries the count and the day (no file's name), and the fulfilment's entry
    says it in its reason."""
    from include.children import ledger
    from include.erasure import ErasureResult, TableCount
    from include.erasure import run as erasure_run
    from include.erasure.stores import subject_files
    from include.fulfilment.ledger import PlanRow
    from include.fulfilment.steps import _erased_records

    subject_hash = f"{2:064x}"
    until = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    store.execute("""insert into compliance.erasure_files (subject_hash, uri, kind, source, state, found_at, done_at,
                                                           versions_deleted, recoverable_until)
                     values (%(s)s, 'gs://acme-uploads/users/2/cv.pdf', 'file', 'ops_db:public.uploads.storage_uri',
                             'deleted', %(at)s, %(at)s, 2, %(until)s),
                            (%(s)s, 'gs://acme-uploads/users/2/id.pdf', 'file', 'ops_db:public.uploads.storage_uri',
                             'already_gone', %(at)s, %(at)s, 0, %(early)s)""",
                  {"s": subject_hash, "at": at(0), "until": until, "early": until - timedelta(days=2)})
    result = ErasureResult(2, subject_hash, "purged", tables=(TableCount("public.users", "delete", 1),), at=at(1),
                           files=tuple(subject_files(store, subject_hash)))
    said = "2 file(s) recoverable from the bucket's soft delete until 2026-12-02"

    first, = _erased_records(result, [PlanRow(9, "gdpr", "deletion", "erase", None, None, subject_hash)])
    assert said in first.audit_details()["reason"]

    erasure_run.start_run(store, ledger.WORKFLOW, erasure_run.RunStart(
        run_id="scheduled__soft_audit", as_of=date(2026, 11, 25), run_type="scheduled", dry_run=False, threshold=50,
        started_at=at(0)))
    ledger.record_detection(store, "scheduled__soft_audit", [ledger.Detected(subject_hash, 2, ("under_13",), (), ())],
                            [], at=at(0), counts={"accounts": 1})
    ctx = audit.RunContext(run_id="scheduled__soft_audit", actor="test", dag_id="child_data_purge", now=lambda: at(1))
    assert ledger.finish_subject(store, ctx, "scheduled__soft_audit", result)
    details, = [d for (d,) in store.execute("""select details from compliance.audit_log
                                               where action = 'child_purge.subject_purged'
                                                 and details ->> 'subject_hash' = %s""", (subject_hash,))]
    assert details["recoverable_files"] == {"files": 2, "until": "2026-12-02"}
    assert "acme-uploads" not in str(details) and ".pdf" not in str(details)


def test_no_filter_of_the_page_is_typed_so_nothing_typed_reaches_the_access_log(store, store_db, monkeypatch):
    """The page's JS sends filters as GET query parameters, and the API server's access log keeps every URL: the one
    filter the page drew as a free-text box (the manifests' vendor id, any whole number, so a phone number too)
    put whatever was typed into it into that log. Every filter of every section now comes with its choices (a fixed
    vocabulary, or the values present in the store), so the page draws each as a list to pick from, never a box."""
    day = datetime(2026, 11, 20, tzinfo=timezone.utc)
    add_manifest(store, 12, "2026-11-20", day, {}, "scheduled__a")
    add_manifest(store, 7, "2026-11-21", day + timedelta(days=1), {}, "scheduled__b")
    client = _page_client(monkeypatch, store_db)
    for section in sections.SECTIONS:
        answer = client.get(f"/api/sections/{section.key}")
        assert answer.status_code == 200, (section.key, answer.text[:200])
        data = answer.json()
        for f in data.get("filters", []):
            listed = f["choices"] or (data.get("choices") or {}).get(f["name"])
            assert listed is not None, f"{section.key}.{f['name']} would be a free-text box"
            assert all(isinstance(value, str) for value in listed), (section.key, f["name"], listed)
    assert client.get("/api/sections/manifests").json()["choices"]["vendor_id"] == ["7", "12"]
    assert client.get("/api/sections/manifests?vendor_id=12").json()["total"] == 1
