"""The purge's steps as plain functions on a real PostgreSQL (seeded demo data, no Airflow): dry runs
change nothing, live runs erase exactly the children, guards, approvals, interruptions, two runs at once."""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import psycopg
import pytest

from devkit.database import connect
from tests.conftest import ops_datamap
from include import erasure
from include.audit import RunContext
from include.children import ledger, purge
from include.erasure import guard
from include.children.params import PurgeParams
from include.config import Settings
from include.periods import ParamError, RunTiming
from include.step import Step
from include.subjects import address_hash, user_hash
from tests.enum_codes import make_enums
from tests.purge_support import OPS_TABLES, checksums, expected_children

KEY = b"test-subject-key-0123456789"


def route(plan: dict) -> str | None:
    """The DAG's approval branch (include.seam.approval.erasure_approval) with its task ids."""
    return guard.route(plan, review_task_id="approve_purge", in_advance_task_id="approved_in_advance")


@pytest.fixture
def world(seeded_clone):
    today = datetime.now(timezone.utc).date()
    # A clone of one seed, its compliance store migrated, made once per test process.
    fresh_db, summary = seeded_clone(users=600, seed=5, anchor=today, store=True)
    with connect(fresh_db, autocommit=True) as ops, connect(fresh_db, autocommit=True) as store:
        yield SimpleNamespace(url=fresh_db, ops=ops, store=store, dm=ops_datamap(), today=today,
                              planted=summary["planted"], settings=Settings())


def params(world, **kw) -> PurgeParams:
    return PurgeParams(**{"as_of": world.today, "dry_run": False, "scheduled": False, "run_type": "manual", **kw})


def ctx(run_id: str) -> RunContext:
    return RunContext(run_id=run_id, actor="test", dag_id="child_data_purge", task_id="test")


def step(world, run_id: str, p: PurgeParams | None = None, *, settings: Settings | None = None, ops=None, store=None,
         approval=None, mailer=None) -> Step:
    """The step context a task of the run gets (the seam builds it under Airflow)."""
    return Step(ctx=ctx(run_id), settings=settings or world.settings, params=p or params(world), ops=ops or world.ops,
                store=store or world.store, datamap=world.dm, key=KEY, mailer=mailer, approval=approval)


def run_until_gate(world, run_id: str, p: PurgeParams, settings: Settings | None = None, ops=None, store=None) -> dict:
    s = step(world, run_id, p, settings=settings, ops=ops, store=store)
    purge.detect_children(s)
    return purge.plan_purge(s)


def run_all(world, run_id: str, p: PurgeParams, approval=None, settings: Settings | None = None, ops=None,
            store=None) -> dict:
    s = step(world, run_id, p, settings=settings, ops=ops, store=store, approval=approval)
    plan = run_until_gate(world, run_id, p, settings, ops, store)
    if route(plan) is not None:
        purge.purge_subjects(s)
        purge.verify_purge(s)
    return purge.finish_run(s)


def user_rows(conn, ids) -> int:
    return sum(conn.execute(f"select count(*) from {t} where user_id = any(%s)", (list(ids),)).fetchone()[0]
               for t in ("uploads", "support_messages", "usage_events", "access_logs", "social_profiles",
                         "data_shares", "privacy_requests", "child_reports", "legal_holds")) + \
        conn.execute("select count(*) from users where id = any(%s)", (list(ids),)).fetchone()[0]


# -- parameters and the gate --------------------------------------------------------------------------------

def timing(run_type):
    return RunTiming(run_after=datetime(2026, 11, 25, 9, tzinfo=timezone.utc), run_type=run_type)


def test_people_get_a_dry_run_by_default_and_the_schedule_runs_live():
    s = Settings()
    assert PurgeParams.resolve({"dry_run": True}, s, timing("manual")).dry_run is True
    assert PurgeParams.resolve({}, s, timing("manual")).dry_run is True
    assert PurgeParams.resolve({"dry_run": False}, s, timing("manual")).dry_run is False
    assert PurgeParams.resolve({"dry_run": True}, s, timing("scheduled")).dry_run is False
    assert PurgeParams.resolve({"dry_run": True}, s, timing("backfill")).dry_run is True
    assert PurgeParams.resolve({"dry_run": True}, s, timing(None)).dry_run is True
    resolved = PurgeParams.resolve({"user_ids": [5, 3, 5], "max_subjects": 2, "approve_plan": " " + "AB" * 32,
                                    "dry_run": False}, s, timing("manual"))
    assert resolved.user_ids == (3, 5) and resolved.max_subjects == 2 and resolved.approve_plan == "ab" * 32
    assert resolved.as_of == date(2026, 11, 25)
    assert PurgeParams.resolve({"confirm_user_ids": [9, 7, 9]}, s, timing("manual")).confirm_user_ids == (7, 9)
    for bad in ({"user_ids": [0]}, {"max_subjects": 0}, {"approve_plan": "abc"}, {"dry_run": "no"},
                {"confirm_user_ids": [0]}, {"confirm_user_ids": ["7"]}):
        with pytest.raises(ParamError):
            PurgeParams.resolve(bad, s, timing("manual"))


def test_the_seam_tells_a_task_how_its_run_was_started():
    from airflow.utils.types import DagRunType

    from include.seam.task import run_timing

    context = {"dag_run": SimpleNamespace(run_after=datetime(2026, 11, 25, tzinfo=timezone.utc),
                                          run_type=DagRunType.SCHEDULED)}
    assert run_timing(context).run_type == "scheduled" and run_timing(context).scheduled
    context["dag_run"].run_type = DagRunType.MANUAL
    assert run_timing(context).run_type == "manual" and not run_timing(context).scheduled


def test_the_gate_keeps_its_order():
    p = PurgeParams(as_of=date(2026, 11, 25), dry_run=False, scheduled=True)
    h = "a" * 64
    assert purge.gate(h, 5, p, 10).state == "planned" and purge.gate(h, 5, p, 10).approval == "not_needed"
    assert purge.gate(h, 10, p, 10).approval == "not_needed"      # at the threshold: no review
    assert purge.gate(h, 11, p, 10).state == "awaiting_approval"   # above it: a person decides
    assert purge.gate(h, 0, p, 10).state == "nothing_to_purge"
    approved = replace(p, approve_plan=h)
    assert purge.gate(h, 500, approved, 10).approval == "plan_hash"
    assert purge.gate("b" * 64, 500, approved, 10).state == "plan_changed"
    assert purge.gate("b" * 64, 3, approved, 10).state == "plan_changed"  # even under the threshold
    assert purge.gate(h, 500, replace(approved, dry_run=True), 10).state == "dry_run"


def test_only_a_person_approving_is_an_approval():
    approve = {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "alice"}}
    assert guard.reviewer(approve) == "alice"
    assert guard.reviewer({**approve, "chosen_options": ["Reject"]}) is None
    assert guard.reviewer({**approve, "responded_by_user": None}) is None   # a timeout's default, whatever it is
    assert guard.reviewer({**approve, "timed_out": True}) is None
    assert guard.reviewer(None) is None


# -- runs ---------------------------------------------------------------------------------------------------

def test_a_plan_within_the_threshold_does_not_say_it_is_above_it():
    """Found by a trial of the compliance page: a dry run's plan of 2 said "more than the approval threshold of
    100"."""
    plan = {"subjects": 2, "rows": 9, "threshold": 100, "plan_hash": "a" * 64, "tables": {}, "vendors": [],
            "outcomes": {}}
    assert "within the approval threshold of 100: it needs no reviewer" in purge.approval_body(plan)
    assert "more than" not in purge.approval_body(plan)
    assert "more than the approval threshold of 1" in purge.approval_body({**plan, "threshold": 1})


def test_a_dry_run_plans_and_counts_and_changes_nothing(world):
    before = checksums(world.ops)
    plan = run_until_gate(world, "dry", params(world, dry_run=True))
    result = purge.finish_run(step(world, "dry", params(world, dry_run=True)))
    assert checksums(world.ops) == before
    to_purge, held = expected_children(world.ops, world.today)
    assert plan["state"] == "dry_run" and plan["subjects"] == len(to_purge) and route(plan) is None
    assert result["outcomes"]["dry_run"] == len(to_purge) and result["outcomes"]["held"] == len(held)
    assert plan["tables"]["public.users"] == len(to_purge)
    # The dry run's hash is the plan a live run would carry out.
    live = run_until_gate(world, "live", params(world, approve_plan=plan["plan_hash"]))
    assert live["plan_hash"] == plan["plan_hash"] and live["state"] == "planned"


def test_a_live_run_erases_exactly_the_children_and_proves_it(world):
    to_purge, held = expected_children(world.ops, world.today)
    planted = world.planted
    assert set(planted["child_by_birth_date"]) <= to_purge and set(planted["child_with_released_hold"]) <= to_purge
    assert set(planted["child_by_report_email"]) <= to_purge and held == set(planted["child_with_active_hold"])
    others = [r[0] for r in world.ops.execute("select id from users where id <> all(%s)", (list(to_purge),))]
    others_before = user_rows(world.ops, others)
    held_before = user_rows(world.ops, held)

    result = run_all(world, "live-1", params(world))
    assert result["state"] == "purged"
    assert user_rows(world.ops, to_purge) == 0
    assert erasure.residual_by_keys(world.ops, world.dm, sorted(to_purge)) == {}
    assert user_rows(world.ops, others) == others_before and user_rows(world.ops, held) == held_before

    rows = world.store.execute("""select subject_hash, outcome, user_id, tables, rules, purged_at, verified_at
                                  from compliance.child_purges where run_id = 'live-1'""").fetchall()
    purged = {r[0]: r for r in rows if r[1] == "purged"}
    assert set(purged) == {user_hash(KEY, uid) for uid in to_purge}
    assert all(r[2] is None and r[5] and r[6] and r[3]["public.users"] == {"action": "delete", "rows": 1}
               for r in purged.values())
    assert {r[1] for r in rows} <= {"purged", "held", "invalid"}
    assert {r[0] for r in rows if r[1] == "held"} == {user_hash(KEY, uid) for uid in held}
    # The reports: the ones that led to a purge and the one naming no one are resolved in the ops database.
    open_reports = {r[0] for r in world.ops.execute("select id from child_reports where resolved_at is null")}
    for key in ("child_report_by_user_id", "child_report_by_email", "child_report_no_match"):
        assert not set(planted[key]) & open_reports, key
    outcomes = dict(world.store.execute("select report_id, outcome from compliance.child_report_outcomes "
                                        "where run_id = 'live-1'").fetchall())
    assert outcomes[planted["child_report_no_match"][0]] == "no_match"
    assert outcomes[planted["child_report_by_email"][0]] == "purged"
    # The vendors that received a purged child's data are owed a deletion notice.
    share_child = planted["child_by_birth_date"][0]
    notices = world.store.execute("select vendor_id, status from compliance.vendor_deletion_notices "
                                  "where subject_hash = %s", (user_hash(KEY, share_child),)).fetchall()
    assert (1, "outstanding") in notices
    audited = world.store.execute("select count(*) from compliance.audit_log where action = "
                                  "'child_purge.subject_purged' and run_id = 'live-1'").fetchone()[0]
    assert audited == len(to_purge)

    from include.reads import children as reads

    assert reads.outcomes(world.store, "live-1")["purged"] == len(to_purge)
    assert reads.purged_total(world.store) == len(to_purge) and not reads.open_records(world.store)
    assert any(n["vendor_id"] == 1 and n["subjects"] >= 1 for n in reads.outstanding_notices(world.store))
    assert reads.recent_runs(world.store)[0]["state"] == "purged"

    # A second run finds nothing more to do.
    after = checksums(world.ops)
    again = run_all(world, "live-2", params(world))
    assert checksums(world.ops) == after and again["state"] == "nothing_to_purge"
    assert "purged" not in again["outcomes"]


def test_a_purges_deletion_notices_name_the_shares_each_vendor_should_delete_and_the_command_lists_them(world, capsys):
    """Before: a notice held the child's keyed hash (which the vendor cannot compute) and counts, nothing the vendor
    could find the data by; the share ids (the vendor manifests' share_id) went with the erased rows."""
    from include.cli import main

    before = {(user_hash(KEY, uid), vendor): ids for uid, vendor, ids in world.ops.execute(
        "select user_id, vendor_id, array_agg(id order by id) from data_shares group by 1, 2")}
    assert run_all(world, "live-shares", params(world))["state"] == "purged"
    notices = {(h, v): ids for h, v, ids in world.store.execute(
        "select subject_hash, vendor_id, share_ids from compliance.vendor_deletion_notices where run_id = 'live-shares'")}
    assert notices and notices == {k: before[k] for k in notices}
    vendor = min(v for _, v in notices)
    owed = sorted({i for (_, v), ids in notices.items() if v == vendor for i in ids})
    assert main(["deletion-notices", "--url", world.url, "--vendor", str(vendor)]) == 0
    out = capsys.readouterr().out
    assert f"    share ids to delete: {', '.join(map(str, owed))}\n" in out and "not recorded" not in out


def test_adults_a_report_cannot_name_or_an_impossible_signup_are_never_erased(world):
    """Found by a QA trial: a report whose address is blank named every account whose own address is blank, and
    an account created before its holder was born counted as 'under 13 at signup': adults were erased."""
    adults = [r[0] for r in world.ops.execute(
        "select id from users where birth_date < current_date - interval '30 years' and deleted_at is null "
        "order by id limit 3")]
    world.ops.execute("update users set email = '' where id = %s", (adults[0],))
    world.ops.execute("update users set email = '   ' where id = %s", (adults[1],))
    world.ops.execute("update users set created_at = birth_date - interval '5 years' where id = %s", (adults[2],))
    blank_report = world.ops.execute("""insert into child_reports (user_id, reported_email, source, reported_at)
                                        values (null, ' ', 'support', now()) returning id""").fetchone()[0]
    before = user_rows(world.ops, adults)

    result = run_all(world, "live-blank", params(world))
    assert result["state"] == "purged"
    assert user_rows(world.ops, adults) == before
    outcomes = dict(world.store.execute("select report_id, outcome from compliance.child_report_outcomes "
                                        "where run_id = 'live-blank'").fetchall())
    assert outcomes[blank_report] == "invalid"
    impossible = world.store.execute("select outcome, problems from compliance.child_purges "
                                     "where run_id = 'live-blank' and subject_hash = %s",
                                     (user_hash(KEY, adults[2]),)).fetchone()
    assert impossible == ("invalid", ["created_at is before birth_date"])
    assert not world.store.execute("select 1 from compliance.child_purges where run_id = 'live-blank' "
                                   "and subject_hash = any(%s)", ([user_hash(KEY, a) for a in adults[:2]],)).fetchall()


def test_a_plan_above_the_threshold_waits_for_a_person(world):
    settings = Settings(purge_threshold=2)
    before = checksums(world.ops)
    plan = run_until_gate(world, "big", params(world), settings)
    assert plan["state"] == "awaiting_approval" and route(plan) == "approve_purge"
    assert plan["plan_hash"] in plan["approval_body"] and "| public.users |" in plan["approval_body"]
    assert "more than the approval threshold of 2: a person must approve it" in plan["approval_body"]
    timed_out = {"chosen_options": ["Reject"], "responded_by_user": None}
    for approval in (None, {"chosen_options": ["Reject"], "responded_by_user": {"name": "bob"}}, timed_out,
                     {"chosen_options": ["Approve"], "responded_by_user": None}):
        with pytest.raises(guard.NotApproved):
            purge.purge_subjects(step(world, "big", settings=settings, approval=approval))
    assert checksums(world.ops) == before
    result = purge.finish_run(step(world, "big", approval=timed_out))
    assert result["state"] == "rejected" and result["outcomes"]["rejected"] == plan["subjects"]
    # Nothing was erased; the run only resolved the report that named no one.
    after = checksums(world.ops)
    assert {t for t in OPS_TABLES if after[t] != before[t]} == {"child_reports"} and result["reports_resolved"] == 1
    reason = world.store.execute("select reason from compliance.child_purges where run_id = 'big' and "
                                 "outcome = 'rejected' limit 1").fetchone()[0]
    assert "timed out" in reason

    approved = {"chosen_options": ["Approve"], "responded_by_user": {"id": "3", "name": "alice"}}
    result = run_all(world, "big-2", params(world), approved, settings)
    assert result["state"] == "purged" and result["outcomes"]["purged"] == plan["subjects"]
    assert world.store.execute("select approved_by, approval_state from compliance.child_purge_runs "
                               "where run_id = 'big-2'").fetchone() == ("alice", "approved")


def test_a_rejection_records_who_rejected(world):
    """Issue 30: after a rejection approved_by was empty though the reason named the reviewer."""
    settings = Settings(purge_threshold=2)
    run_until_gate(world, "rejected", params(world), settings)
    rejected = {"chosen_options": ["Reject"], "responded_by_user": {"id": "4", "name": "bob"}}
    result = purge.finish_run(step(world, "rejected", settings=settings, approval=rejected))
    assert result["state"] == "rejected"
    by, state, at = world.store.execute("select approved_by, approval_state, approved_at from "
                                        "compliance.child_purge_runs where run_id = 'rejected'").fetchone()
    assert (by, state) == ("bob", "rejected") and at is not None


def test_a_plan_approved_by_its_hash_runs_and_a_changed_one_does_not(world):
    settings = Settings(purge_threshold=2)
    dry = run_until_gate(world, "dry", params(world, dry_run=True), settings)
    # Something changed since the dry run: a child is put under a legal hold.
    child = world.planted["child_by_declared_age"][0]
    world.ops.execute("insert into legal_holds (user_id, reason, placed_at) values (%s, 'litigation', now())", (child,))
    before = checksums(world.ops)
    with pytest.raises(guard.PlanChanged, match="the plan changed since it was approved"):
        run_until_gate(world, "stale", params(world, approve_plan=dry["plan_hash"]), settings)
    assert checksums(world.ops) == before
    assert world.store.execute("select distinct outcome from compliance.child_purges where run_id = 'stale' and "
                               "outcome not in ('held', 'invalid')").fetchall() == [("approval_required",)]
    skipped = purge.purge_subjects(step(world, "stale", settings=settings))
    assert skipped == {"skipped": "plan_changed"} and checksums(world.ops) == before
    # The current plan, approved by its own hash, runs without a reviewer.
    fresh = run_until_gate(world, "dry-2", params(world, dry_run=True), settings)
    result = run_all(world, "go", params(world, approve_plan=fresh["plan_hash"]), None, settings)
    assert result["state"] == "purged" and result["outcomes"]["purged"] == fresh["subjects"]


def test_the_rest_of_an_approved_plan_is_still_approved_after_another_run_carried_out_part_of_it(world):
    """Two runs given the same approved hash (a retry beside the original, two on-call engineers): the second
    plans after the first erased some or all of the plan. What is left is part of what was approved, so it
    runs; anything beyond the approved plan still stops it."""
    settings = Settings(purge_threshold=2)
    dry = run_until_gate(world, "dry", params(world, dry_run=True), settings)
    assert dry["subjects"] > 2
    first = run_all(world, "first", params(world, approve_plan=dry["plan_hash"]), None, settings)
    assert first["state"] == "purged"
    again = run_all(world, "again", params(world, approve_plan=dry["plan_hash"]), None, settings)
    assert again["state"] == "nothing_to_purge"
    # A child the approved plan did not name appears: the plan now goes beyond what was approved.
    adult = world.ops.execute(
        """select id from users where declared_age is null and birth_date < now() - interval '30 years'
           and id not in (select user_id from legal_holds) order by id limit 1""").fetchone()[0]
    world.ops.execute("update users set declared_age = 8 where id = %s", (adult,))
    before = checksums(world.ops)
    with pytest.raises(guard.PlanChanged, match="the plan changed since it was approved"):
        run_until_gate(world, "beyond", params(world, approve_plan=dry["plan_hash"]), settings)
    assert checksums(world.ops) == before


def test_a_targeted_or_capped_run_erases_only_its_share(world):
    to_purge, _ = expected_children(world.ops, world.today)
    target = sorted(to_purge)[5]
    adult = world.planted["clean_adult"][0]
    no_match = world.planted["child_report_no_match"][0]
    result = run_all(world, "targeted", params(world, user_ids=(target, adult)))
    assert result["outcomes"] == {"purged": 1}
    assert user_rows(world.ops, [adult]) > 0 and user_rows(world.ops, [target]) == 0
    # A targeted run resolves no other report.
    assert world.ops.execute("select resolved_at from child_reports where id = %s", (no_match,)).fetchone()[0] is None
    left = sorted(to_purge - {target})
    result = run_all(world, "capped", params(world, max_subjects=3))
    assert result["outcomes"]["purged"] == 3 and result["outcomes"]["deferred"] == len(left) - 3
    assert user_rows(world.ops, left[:3]) == 0 and user_rows(world.ops, left[3:4]) > 0


def test_an_interrupted_erasure_is_settled_by_the_next_attempt(world):
    """A worker dying between the store's 'erasing' record and the outcome, on either side of the commit."""
    p = params(world)
    run_until_gate(world, "crash", p)
    rows = ledger.open_rows(world.store, "crash")
    committed, rolled_back = rows[0], rows[1]

    def record(result):
        assert ledger.mark_erasing(world.store, "crash", result)

    # Died after the commit, before recording the outcome.
    erasure.erase_subject(world.ops, world.dm, committed.user_id, KEY, at=datetime.now(timezone.utc),
                          options=erasure.EraseOptions(before_commit=record))
    # Died before the commit: the erasing transaction rolled back.
    with pytest.raises(RuntimeError):
        def die(result):
            record(result)
            raise RuntimeError("worker lost")
        erasure.erase_subject(world.ops, world.dm, rolled_back.user_id, KEY, at=datetime.now(timezone.utc),
                              options=erasure.EraseOptions(before_commit=die))
    assert dict(world.store.execute("select subject_hash, outcome from compliance.child_purges where run_id = 'crash' "
                                    "and outcome = 'erasing'").fetchall()) == {
        committed.subject_hash: "erasing", rolled_back.subject_hash: "erasing"}
    purge.purge_subjects(step(world, "crash", p))
    purge.verify_purge(step(world, "crash", p))
    outcome = dict(world.store.execute("select subject_hash, outcome from compliance.child_purges "
                                       "where run_id = 'crash'").fetchall())
    assert outcome[committed.subject_hash] == "purged" and outcome[rolled_back.subject_hash] == "purged"
    tables = world.store.execute("select tables from compliance.child_purges where run_id = 'crash' and "
                                 "subject_hash = %s", (committed.subject_hash,)).fetchone()[0]
    assert tables["public.users"]["rows"] == 1  # the counts recorded before the commit
    # ... and the requests the erasure unlinked (none may be listed, but the list is kept: migration 0027)
    assert world.store.execute("select count(*) from compliance.child_purges where run_id = 'crash' "
                               "and outcome = 'purged' and request_ids is null").fetchone()[0] == 0
    assert user_rows(world.ops, [committed.user_id, rolled_back.user_id]) == 0
    settled = world.store.execute("select count(*) from compliance.audit_log where action = 'child_purge.subject_purged'"
                                  " and details ->> 'settled_after_interruption' = 'true'").fetchone()[0]
    assert settled == 1


def test_two_runs_at_once_erase_each_child_once(world):
    to_purge, _ = expected_children(world.ops, world.today)
    results, errors = {}, []

    def run(run_id):
        try:
            with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
                results[run_id] = run_all(world, run_id, params(world), ops=ops, store=store)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"twin-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    purged = world.store.execute("""select subject_hash, count(*) from compliance.child_purges
                                    where outcome = 'purged' group by 1""").fetchall()
    assert {h for h, _ in purged} == {user_hash(KEY, uid) for uid in to_purge}
    assert all(n == 1 for _, n in purged)
    audited = world.store.execute("select count(*) from compliance.audit_log "
                                  "where action = 'child_purge.subject_purged'").fetchone()[0]
    assert audited == len(to_purge)
    assert world.store.execute("select count(*) from compliance.child_purges where outcome in "
                               "('planned', 'erasing')").fetchone()[0] == 0


def test_two_runs_verifying_the_same_subjects_at_once_do_not_deadlock(world):
    # Two runs that erased the same subjects verify them at once: each clears its own rows and every other run's
    # account ids of those subjects in one transaction. Taking the locks in two orders deadlocked (seen in CI).
    at = datetime.now(timezone.utc)
    hashes = [f"{i:064x}" for i in range(1, 301)]
    for run in ("twin-a", "twin-b"):
        with world.store.cursor().copy("copy compliance.child_purges (run_id, subject_hash, user_id, outcome, "
                                       "purged_at, detected_at, updated_at) from stdin") as copy:
            for i, h in enumerate(hashes):
                copy.write_row((run, h, i + 1, "purged", at, at, at))
    errors: list[Exception] = []
    for _ in range(20):
        world.store.execute("update compliance.child_purges set verified_at = null, "
                            "user_id = ('x' || right(subject_hash, 8))::bit(32)::int")
        start = threading.Barrier(2)

        def verify(run: str, order: list[str]) -> None:
            try:
                with connect(world.url, autocommit=True) as store:
                    start.wait()
                    ledger.mark_verified(store, run, order, at)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=verify, args=("twin-a", hashes)),
                   threading.Thread(target=verify, args=("twin-b", hashes[::-1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
    assert world.store.execute("select count(*) from compliance.child_purges where user_id is not null "
                               "or verified_at is null").fetchone()[0] == 0


def test_the_summary_email_counts_vendors_and_holds_no_personal_data(world, sendgrid):
    from include.delivery.sendgrid_mailer import SendGridMailer
    from tests.conftest import SENDGRID_TEST_KEY  # noqa: I001

    run_all(world, "mail", params(world))
    mailer = SendGridMailer(api_key=SENDGRID_TEST_KEY, host=sendgrid.base_url)
    sent = purge.notify_compliance(step(world, "mail", mailer=mailer))
    assert sent["sent"] == 1 and sent["vendors"] >= 1
    again = purge.notify_compliance(step(world, "mail", mailer=mailer))
    assert again == {"already_sent": "mail"}
    (message,) = sendgrid.accepted()
    payload = message["payload"]
    assert payload["personalizations"][0]["to"] == [{"email": world.settings.compliance_team_email}]
    text = payload["content"][0]["value"]
    assert "vendor #1 CloudHost" in text and "purged:" in text
    emails = {r[0].lower() for r in world.ops.execute("select email from users where email is not null")}
    names = {r[0].lower() for r in world.ops.execute("select full_name from users where full_name is not null")}
    assert not [v for v in emails | names if v in str(payload).lower()]
    dry = purge.notify_compliance(step(world, "mail", params(world, dry_run=True)))
    assert dry == {"skipped": "dry run"}


def test_a_report_naming_two_accounts_is_resolved_by_the_purge_of_the_last(fresh_db):
    from devkit.operational_schema import create_reference_schema
    from include.children import reports

    dm = ops_datamap()
    now = datetime.now(timezone.utc)
    with connect(fresh_db, autocommit=True) as ops:
        create_reference_schema(ops)
        ops.execute("""insert into users (id, email, created_at) values
                       (1, 'Twins@Example.com', now()), (2, ' twins@example.com', now()), (3, 'other@example.com', now())""")
        ops.execute("""insert into child_reports (id, user_id, reported_email, source, reported_at) values
                       (10, null, 'TWINS@example.com ', 'parent', now()), (11, 3, null, 'parent', now())""")

        def erase(uid, report_ids):
            return erasure.erase_subject(ops, dm, uid, KEY, at=now, options=erasure.EraseOptions(in_transaction=lambda conn: reports.resolve_for_subject(
                conn, dm, uid, report_ids, now)))

        first = erase(1, [10])
        assert first.extra == {"reports_resolved": []} and first.shared_address
        assert ops.execute("select resolved_at, reported_email from child_reports where id = 10").fetchone() == (
            None, "TWINS@example.com ")  # account 2 is still named: open, and its address kept
        second = erase(2, [10])
        assert second.extra == {"reports_resolved": [10]}
        resolved_at, email = ops.execute("select resolved_at, reported_email from child_reports where id = 10").fetchone()
        assert resolved_at is not None and email == address_hash(KEY, "twins@example.com")
        assert erase(3, [11]).extra == {"reports_resolved": [11]}


# -- reports that name only an address (households) -----------------------------------------------------------

def _add_users(ops, *rows) -> list[int]:
    """(email, birth_date, declared_age) -> new account ids, created a year ago."""
    start = ops.execute("select coalesce(max(id), 0) + 1000 from users").fetchone()[0]
    ids = []
    for i, (email, birth, declared) in enumerate(rows):
        ops.execute("insert into users (id, email, birth_date, declared_age, created_at) "
                    "values (%s, %s, %s, %s, now() - interval '1 year')", (start + i, email, birth, declared))
        ids.append(start + i)
    return ids


def _report(ops, address: str) -> int:
    return ops.execute("insert into child_reports (user_id, reported_email, source, reported_at) "
                       "values (null, %s, 'parent', now()) returning id", (address,)).fetchone()[0]


def _report_outcome(world, run_id: str, report_id: int):
    return world.store.execute("select outcome, user_ids, confirmed_user_ids, resolved from "
                               "compliance.child_report_outcomes where run_id = %s and report_id = %s",
                               (run_id, report_id)).fetchone()


def test_a_households_address_report_never_erases_the_adult_and_waits_for_a_person(world):
    """Found by a QA trial: an adult and a child share an address; one open report names only the address.
    A live run purged both, the adult 'caught' by rule reported."""
    adult, child = _add_users(world.ops, ("family.z@example.com", date(1980, 5, 1), None),
                              (" Family.Z@Example.com", date(2018, 5, 1), None))
    report = _report(world.ops, "FAMILY.Z@example.com")
    before = user_rows(world.ops, [adult])

    result = run_all(world, "household", params(world))
    assert result["state"] == "purged"
    assert user_rows(world.ops, [adult]) == before  # the adult: untouched
    assert user_rows(world.ops, [child]) == 0       # the child: caught by its own birth date
    records = dict(world.store.execute("select subject_hash, rules from compliance.child_purges "
                                       "where run_id = 'household' and subject_hash = any(%s)",
                                       ([user_hash(KEY, adult), user_hash(KEY, child)],)).fetchall())
    assert records == {user_hash(KEY, child): ["under_13_now", "under_13_at_signup"]}  # not "reported"
    assert _report_outcome(world, "household", report) == ("needs_review", [adult, child], [], False)
    assert world.ops.execute("select resolved_at from child_reports where id = %s", (report,)).fetchone()[0] is None


def test_an_address_report_naming_one_adult_or_several_accounts_erases_none_of_them(world):
    lone_adult, declared_adult, twin_a, twin_b, lone = _add_users(
        world.ops, ("grown.up@example.com", date(1975, 1, 1), None), ("says.adult@example.com", None, 30),
        ("twins@example.com", None, None), ("TWINS@example.com ", None, None), ("only.one@example.com", None, None))
    reports = [_report(world.ops, a) for a in ("grown.up@example.com", " says.adult@example.com",
                                                "twins@example.com", "only.one@example.com")]
    before = {uid: user_rows(world.ops, [uid]) for uid in (lone_adult, declared_adult, twin_a, twin_b)}

    run_all(world, "review", params(world))
    assert {uid: user_rows(world.ops, [uid]) for uid in before} == before
    assert _report_outcome(world, "review", reports[0]) == ("needs_review", [lone_adult], [], False)
    assert _report_outcome(world, "review", reports[1]) == ("needs_review", [declared_adult], [], False)
    assert _report_outcome(world, "review", reports[2]) == ("needs_review", [twin_a, twin_b], [], False)
    # An address naming only one account with no age data still erases it, as before.
    assert user_rows(world.ops, [lone]) == 0
    assert world.ops.execute("select resolved_at is not null from child_reports where id = %s",
                             (reports[3],)).fetchone()[0]


def test_a_person_confirms_which_account_a_household_report_means(world):
    twin_a, twin_b = _add_users(world.ops, ("twins@example.com", None, None), (" Twins@Example.com", None, None))
    report = _report(world.ops, "twins@example.com")
    run_all(world, "first", params(world))
    assert _report_outcome(world, "first", report) == ("needs_review", [twin_a, twin_b], [], False)
    assert user_rows(world.ops, [twin_a]) > 0 and user_rows(world.ops, [twin_b]) > 0

    dry = run_all(world, "confirm-dry", params(world, dry_run=True, confirm_user_ids=(twin_b,)))
    assert dry["state"] == "dry_run" and user_rows(world.ops, [twin_b]) > 0
    before_a = user_rows(world.ops, [twin_a])
    run_all(world, "confirmed", params(world, confirm_user_ids=(twin_b,)))
    assert user_rows(world.ops, [twin_b]) == 0 and user_rows(world.ops, [twin_a]) == before_a
    rules = world.store.execute("select rules from compliance.child_purges where run_id = 'confirmed' "
                                "and subject_hash = %s", (user_hash(KEY, twin_b),)).fetchone()[0]
    assert rules == ["reported"]
    outcome, named, confirmed, resolved = _report_outcome(world, "confirmed", report)
    assert (outcome, named, confirmed, resolved) == ("purged", [twin_a, twin_b], [twin_b], True)
    assert world.ops.execute("select resolved_at is not null from child_reports where id = %s",
                             (report,)).fetchone()[0]
    # The next run leaves the other account alone: the report is resolved.
    run_all(world, "after", params(world))
    assert user_rows(world.ops, [twin_a]) == before_a



def test_a_confirmation_naming_no_account_a_report_names_is_refused_not_ignored(world):
    """Found by a fault trial: confirm_user_ids naming an account no open report names (a typo of the id the page
    lists, the parent's account instead of the child's) was ignored: the live run ended `nothing_to_purge`, the report
    still `needs_review`, and no line said the confirmation had confirmed nothing, so the person who typed it took
    the child's data for erased. Likewise an account outside a targeted run's user_ids, which the run never looks at.
    Each is refused in one sentence before the run records or changes anything; an account an open report names by
    its id (already reported) is accepted, as the accounts of a household's report are."""
    twin_a, twin_b, parent = _add_users(world.ops, ("twins.c@example.com", None, None),
                                        (" Twins.C@Example.com", None, None), ("parent.c@example.com", date(1980, 1, 1),
                                                                              None))
    report = _report(world.ops, "twins.c@example.com")
    by_id = world.ops.execute("insert into child_reports (user_id, reported_email, source, reported_at) "
                              "values (%s, null, 'parent', now()) returning id", (parent,)).fetchone()[0]
    before = checksums(world.ops)
    for p in (params(world, confirm_user_ids=(parent + 7,)), params(world, confirm_user_ids=(twin_b, parent + 7)),
              params(world, dry_run=True, confirm_user_ids=(parent + 7,))):
        with pytest.raises(ParamError) as refused:
            run_all(world, "mistyped", p)
        assert str(refused.value).startswith(f"confirm_user_ids {parent + 7}: no open child report names this "
                                             "account"), refused.value
    assert checksums(world.ops) == before
    assert world.store.execute("select count(*) from compliance.child_purge_runs where run_id = 'mistyped'"
                               ).fetchone() == (0,)
    with pytest.raises(ParamError) as refused:
        PurgeParams.resolve({"user_ids": [twin_a], "confirm_user_ids": [twin_b]}, Settings(), timing("manual"))
    assert str(refused.value).startswith(f"confirm_user_ids {twin_b} is not among user_ids"), refused.value
    # The accounts the reports name: the household's, and one named by its id.
    run_all(world, "confirmed", params(world, confirm_user_ids=(twin_b, parent)))
    assert user_rows(world.ops, [twin_b]) == 0 and user_rows(world.ops, [parent]) == 0
    assert user_rows(world.ops, [twin_a]) > 0
    assert _report_outcome(world, "confirmed", report)[0] == "purged"
    assert world.ops.execute("select resolved_at is not null from child_reports where id = %s",
                             (by_id,)).fetchone() == (True,)

def test_a_dry_run_confirming_an_account_leaves_the_report_waiting_for_a_person_on_the_page(world):
    """A dry run (a person's default) with confirm_user_ids previews the confirmation: it erases nothing and resolves
    nothing, so the page must still list the report as waiting for a person. It read the newest run's outcome,
    'confirmed', and showed no report to review until the next live run."""
    from include.reads import attention, children as child_reads

    twin_a, twin_b = _add_users(world.ops, ("twins.p@example.com", None, None), (" Twins.P@Example.com", None, None))
    report = _report(world.ops, "twins.p@example.com")
    run_all(world, "first", params(world))
    assert [r["report_id"] for r in child_reads.reports_needing_review(world.store)] == [report]

    run_all(world, "confirm-dry", params(world, dry_run=True, confirm_user_ids=(twin_b,)))
    assert _report_outcome(world, "confirm-dry", report)[0] == "confirmed"
    assert child_reads.reports_needing_review(world.store) == [{"report_id": report, "user_ids": [twin_a, twin_b]}]
    assert attention._reports_to_review(world.store).count == 1

    run_all(world, "confirmed", params(world, confirm_user_ids=(twin_b,)))
    assert child_reads.reports_needing_review(world.store) == []
    assert attention._reports_to_review(world.store).count == 0


def test_a_report_whose_account_id_is_gone_but_whose_address_names_an_account_waits_for_a_person(world):
    """Found by a fault trial: a report naming a gone account id and the address of a live account (no age data)
    was closed as already_gone; the account its address names was never looked at again. The id and the address
    disagree, so a person says which child the report means: needs_review, nothing erased, the report open; once
    confirmed, the account is purged as reported and the report resolved."""
    (kid,) = _add_users(world.ops, ("stale.kid@example.com", None, None))
    report = world.ops.execute("insert into child_reports (user_id, reported_email, source, reported_at) "
                               "values (%s, ' Stale.Kid@example.com', 'parent', now()) returning id",
                               (10 ** 12,)).fetchone()[0]
    before = user_rows(world.ops, [kid])
    run_all(world, "stale-id", params(world))
    assert _report_outcome(world, "stale-id", report) == ("needs_review", [kid], [], False)
    assert user_rows(world.ops, [kid]) == before
    assert world.ops.execute("select resolved_at from child_reports where id = %s", (report,)).fetchone() == (None,)

    run_all(world, "stale-id-confirmed", params(world, confirm_user_ids=(kid,)))
    assert user_rows(world.ops, [kid]) == 0
    assert _report_outcome(world, "stale-id-confirmed", report)[0] == "purged"
    assert world.ops.execute("select resolved_at is not null from child_reports where id = %s",
                             (report,)).fetchone() == (True,)


def test_erasing_the_owner_of_an_address_leaves_a_report_that_names_another_account_by_id(world):
    """Found by a QA trial: a report names child A by id and carries the parent's address; erasing the parent (a
    request of theirs) nulled the report's account id, so A was no longer reported and the next run closed the
    report as no_match. The report is A's: it stays linked, and the next run purges A by it."""
    parent, child = _add_users(world.ops, ("parent.q@example.com", date(1980, 1, 1), None),
                               ("kid.q@example.com", None, None))
    report = world.ops.execute("insert into child_reports (user_id, reported_email, source, reported_at) "
                               "values (%s, ' Parent.Q@example.com', 'parent', now()) returning id",
                               (child,)).fetchone()[0]
    erased = erasure.erase_subject(world.ops, world.dm, parent, KEY, at=datetime.now(timezone.utc))
    assert erased.outcome == erasure.PURGED and user_rows(world.ops, [parent]) == 0
    assert world.ops.execute("select user_id, reported_email, resolved_at from child_reports where id = %s",
                             (report,)).fetchone() == (child, " Parent.Q@example.com", None)

    run_all(world, "after-parent", params(world, user_ids=(child,)))
    assert user_rows(world.ops, [child]) == 0
    assert world.store.execute("select rules from compliance.child_purges where run_id = 'after-parent' "
                               "and subject_hash = %s", (user_hash(KEY, child),)).fetchone() == (["reported"],)


def test_every_purged_record_ends_verified_whichever_run_verifies_it(world):
    """Found by a QA trial: two live runs of one approved plan; run B's verify cleared the account id of run A's
    purged record before A verified it, so A's verify never found it: verified_at stayed NULL for ever."""
    at = datetime.now(timezone.utc)
    gone = [10 ** 12 + i for i in range(3)]  # no such accounts: nothing left of them in any table
    with world.store.cursor().copy("copy compliance.child_purges (run_id, subject_hash, user_id, outcome, purged_at, "
                                   "detected_at, updated_at) from stdin") as copy:
        for uid in gone:
            copy.write_row(("run-a", user_hash(KEY, uid), uid, "purged", at, at, at))
            copy.write_row(("run-b", user_hash(KEY, uid), uid, "already_erased", None, at, at))
    purge.verify_purge(step(world, "run-b"))
    purge.verify_purge(step(world, "run-a"))
    left = world.store.execute("select run_id, outcome from compliance.child_purges where subject_hash = any(%s) "
                               "and (verified_at is null or user_id is not null)",
                               ([user_hash(KEY, uid) for uid in gone],)).fetchall()
    assert left == []


def test_a_refused_subject_fails_the_run_at_its_end_after_the_others_are_recorded(world):
    """Found by a fault trial: a subject whose file the object store refused failed the erasing task at once, so the
    run's verification and end never ran (the others kept their account ids, the run stayed unfinished). The run is
    now finished and recorded, then fails in one sentence; a subject left incomplete by a bucket the settings do not
    allow (a person's decision, counted under 'Needs a person') does not fail it."""
    from include import audit
    from include.erasure import ErasureResult
    from include.erasure import run as erasure_run
    from include.erasure.stores import SubjectsRefused

    run_id = "manual__refused"
    erasure_run.start_run(world.store, ledger.WORKFLOW, erasure_run.RunStart(
        run_id=run_id, as_of=world.today, run_type="manual", dry_run=False, threshold=50,
        started_at=datetime.now(timezone.utc)))
    ledger.record_detection(world.store, run_id, [ledger.Detected(f"{n:064x}", n, ("under_13",), (), ())
                                                  for n in (1, 2)], [], at=datetime.now(timezone.utc), counts={})
    c = audit.RunContext(run_id=run_id, actor="test", dag_id="child_data_purge")
    for n, state in ((1, "found"), (2, "not_allowed")):  # 1: the store refused its file; 2: a bucket not allowed
        assert ledger.finish_subject(world.store, c, run_id, ErasureResult(n, f"{n:064x}", "incomplete"))
        world.store.execute("""insert into compliance.erasure_files (subject_hash, uri, kind, source, state, found_at)
                               values (%s, 'gs://b/k', 'file', 'ops_db:public.uploads.storage_uri', %s, now())""",
                            (f"{n:064x}", state))
    assert erasure_run.refused_subjects(world.store, ledger.WORKFLOW, run_id) == 1
    with pytest.raises(SubjectsRefused, match="^1 subject.s. to purge left incomplete: the object store refused"):
        purge.finish_run(step(world, run_id))
    finished = world.store.execute("select finished_at is not null, counts -> 'outcomes' from compliance.erasure_runs "
                                   "where run_id = %s", (run_id,)).fetchone()
    assert finished == (True, {"incomplete": 2})  # recorded before it failed
    world.store.execute("update compliance.erasure_files set state = 'deleted', done_at = now() where state = 'found'")
    assert purge.finish_run(step(world, run_id))["outcomes"] == {"incomplete": 2}  # nothing refused: it does not fail


def test_a_child_whose_erasure_the_database_refuses_is_incomplete_and_the_others_are_purged(world, caplog):
    """A trigger of the application's refusing one child's account delete (its DETAIL quoting the address) failed
    the erasing task at once: the children after it were not purged, verify and finish never ran. That child is now
    recorded incomplete with the server's primary message (never the DETAIL), the others are purged, and the run
    fails at its end in one sentence."""
    from include.erasure.stores import SubjectsRefused

    refused, other = world.planted["child_by_declared_age"][:2]
    email, name = world.ops.execute("select email, full_name from users where id = %s", (refused,)).fetchone()
    world.ops.execute(f"""
        create function keep_audited() returns trigger language plpgsql as $$
        begin raise exception 'account of % is under audit', old.full_name using detail = old.email; end $$;
        create trigger keep_audited before delete on users for each row when (old.id = {refused})
        execute function keep_audited()""")
    before = user_rows(world.ops, [refused])
    with pytest.raises(SubjectsRefused) as err:
        run_all(world, "manual__audited", params(world, user_ids=(refused, other)))
    assert str(err.value).startswith("1 subject(s) to purge left incomplete: the object store refused a file of 0 of "
                                     "them, the database refused the erasure of 1"), str(err.value)
    assert user_rows(world.ops, [other]) == 0 and user_rows(world.ops, [refused]) == before
    got = dict(world.store.execute("select subject_hash, outcome from compliance.child_purges "
                                   "where run_id = 'manual__audited'").fetchall())
    assert got == {user_hash(KEY, refused): "incomplete", user_hash(KEY, other): "purged"}, got
    reason = world.store.execute("select reason from compliance.child_purges where run_id = 'manual__audited' "
                                 "and outcome = 'incomplete'").fetchone()[0]
    assert reason.startswith("erasing public.users (delete) was refused by the database: the application's function "
                             "keep_audited() raised an exception (its message is not repeated: it may quote the row) "
                             "(SQLSTATE P0001); that subject's erasure was rolled back"), reason
    finished = world.store.execute("select finished_at is not null from compliance.erasure_runs "
                                   "where run_id = 'manual__audited'").fetchone()[0]
    assert finished  # verified and recorded before the run failed
    assert email not in caplog.text + reason + str(err.value)
    assert name not in caplog.text + reason + str(err.value)  # the trigger's own words quoted it


def test_a_child_whose_erasure_is_over_a_database_limit_is_incomplete_and_the_others_are_purged(world, caplog):
    """Found by a fault trial: a database error of class 54 (program limit exceeded; here the application's trigger
    raising 54000 at one child's account delete, its message quoting the address, and another's running a select of
    1,700 columns, 54011) is an OperationalError, and the purge re-raised it as it does a lost connection: the
    erasing task failed at once with ProgramLimitExceeded, the children after it were not purged, verify and finish
    never ran. Each is now that child's alone: its erasure rolled back, recorded incomplete with one sentence naming
    the limit (never the row), the others purged, and the run fails at its end as for any refused subject."""
    from include.erasure.stores import SubjectsRefused

    (over, too_wide), other = world.planted["child_by_declared_age"][:2], world.planted["child_by_birth_date"][0]
    email, name = world.ops.execute("select email, full_name from users where id = %s", (over,)).fetchone()
    world.ops.execute(f"""
        create function app_over_limit() returns trigger language plpgsql as $$
        begin
          if old.id = {over} then
            raise exception 'value of % is too large', old.email using errcode = '54000', detail = old.full_name;
          end if;
          execute 'select ' || (select string_agg('1', ', ') from generate_series(1, 1700));
          return old;
        end $$;
        create trigger app_over_limit before delete on users for each row when (old.id in ({over}, {too_wide}))
        execute function app_over_limit()""")
    before = user_rows(world.ops, [over, too_wide])
    with pytest.raises(SubjectsRefused) as err:
        run_all(world, "manual__over_limit", params(world, user_ids=(over, too_wide, other)))
    assert str(err.value).startswith("2 subject(s) to purge left incomplete: the object store refused a file of 0 of "
                                     "them, the database refused the erasure of 2"), str(err.value)
    assert "\n" not in str(err.value)
    assert user_rows(world.ops, [other]) == 0 and user_rows(world.ops, [over, too_wide]) == before  # rolled back
    got = dict(world.store.execute("select subject_hash, reason from compliance.child_purges "
                                   "where run_id = 'manual__over_limit' and outcome = 'incomplete'").fetchall())
    assert set(got) == {user_hash(KEY, over), user_hash(KEY, too_wide)}, got
    assert world.store.execute("select outcome from compliance.child_purges where run_id = 'manual__over_limit' "
                               "and subject_hash = %s", (user_hash(KEY, other),)).fetchone()[0] == "purged"
    reason = got[user_hash(KEY, over)]
    # The table whose erasure met the limit is named, as for any other refusal of the database.
    assert reason.startswith("erasing public.users (delete) was stopped by a database limit (program limit "
                             "exceeded): the application's function app_over_limit() raised an exception"), reason
    assert "(SQLSTATE 54000)" in reason and "rolled back" in reason
    reason = got[user_hash(KEY, too_wide)]
    assert reason.startswith("erasing public.users (delete) was stopped by a database limit (too many columns): "
                             "target lists can have at most 1664 entries (SQLSTATE 54011)"), reason
    finished = world.store.execute("select finished_at is not null from compliance.erasure_runs "
                                   "where run_id = 'manual__over_limit'").fetchone()[0]
    assert finished  # verified and recorded before the run failed
    said = caplog.text + str(err.value) + " ".join(got.values())
    assert email not in said and name not in said
    # A statement timeout (class 57, also an OperationalError) still fails the step at once, for its retry.
    world.ops.execute("""create or replace function app_over_limit() returns trigger language plpgsql as $$
                         begin raise exception 'canceling statement' using errcode = '57014'; end $$""")
    with pytest.raises(psycopg.errors.QueryCanceled):
        run_all(world, "manual__timed_out", params(world, user_ids=(over,)))


def test_a_hold_whose_release_time_python_cannot_hold_still_protects_the_child(world):
    """A legal hold whose released_at is a value Python cannot hold (-infinity, a BC date) says nothing readable
    about its release: it was read as released long ago, and the held child was erased. Such a hold still holds."""
    kids = _add_users(world.ops, ("held.a@example.com", date(2018, 1, 1), None),
                      ("held.b@example.com", date(2018, 1, 1), None))
    for uid, released in zip(kids, ("-infinity", "0044-03-15 00:00:00+00 BC")):
        world.ops.execute("insert into legal_holds (user_id, reason, placed_at, released_at) "
                          "values (%s, 'litigation', now(), %s::timestamptz)", (uid, released))
    before = {uid: user_rows(world.ops, [uid]) for uid in kids}
    run_all(world, "odd-release", params(world))
    assert {uid: user_rows(world.ops, [uid]) for uid in kids} == before
    outcomes = dict(world.store.execute("select subject_hash, outcome from compliance.child_purges "
                                        "where run_id = 'odd-release' and subject_hash = any(%s)",
                                        ([user_hash(KEY, uid) for uid in kids],)).fetchall())
    assert set(outcomes.values()) == {"held"}



def test_a_report_matched_after_detection_is_not_resolved_as_naming_no_one(world):
    """A run records a report naming no account (no_match) when it detects, and resolved it when it finished, hours
    later behind a reviewer: a report corrected meanwhile to name the child's account was closed unread, and the
    child never purged. Only a report that still names no one is resolved."""
    report = _report(world.ops, "late.kid@example.com")
    s = step(world, "late-match", params(world))
    purge.detect_children(s)
    assert _report_outcome(world, "late-match", report)[0] == "no_match"
    (kid,) = _add_users(world.ops, ("Late.Kid@example.com", None, None))
    plan = purge.plan_purge(s)
    if route(plan) is not None:
        purge.purge_subjects(s)
        purge.verify_purge(s)
    purge.finish_run(s)
    assert world.ops.execute("select resolved_at from child_reports where id = %s", (report,)).fetchone() == (None,)
    assert _report_outcome(world, "late-match", report)[3] is False
    run_all(world, "late-match-next", params(world))
    assert user_rows(world.ops, [kid]) == 0
    assert world.ops.execute("select resolved_at is not null from child_reports where id = %s",
                             (report,)).fetchone() == (True,)


def test_a_child_whose_account_row_went_before_the_plan_still_has_the_rest_erased(world):
    """The plan recorded a detected child whose account row was gone by then (deleted by the application, its other
    rows left) as already_erased, with no account id to verify: its usage events stayed for good and the run said
    purged. What is left of it is erased and verified like any child's."""
    (kid,) = _add_users(world.ops, ("gone.kid@example.com", date(2018, 1, 1), None))
    world.ops.execute("insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at) "
                      "values (%s, 'login', 'web', 1, 10, now())", (kid,))
    s = step(world, "gone-before-plan", params(world))
    purge.detect_children(s)
    world.ops.execute("delete from users where id = %s", (kid,))
    plan = purge.plan_purge(s)
    if route(plan) is not None:
        purge.purge_subjects(s)
        purge.verify_purge(s)
    purge.finish_run(s)
    assert user_rows(world.ops, [kid]) == 0
    assert world.store.execute("select outcome from compliance.child_purges where run_id = 'gone-before-plan' "
                               "and subject_hash = %s", (user_hash(KEY, kid),)).fetchone() == ("purged",)


def test_a_purged_childs_export_package_within_retention_is_kept_for_delivery_and_an_older_one_deleted(world, tmp_path):
    """The purge erases with the fulfilment's engine and meets a child's export packages the same way: one within
    export_retention_days answers a request for the child's data (a parent's review, COPPA §312.6) and is kept, only
    to be handed over, until the fulfilment's expiry deletes it; an older one goes with the child."""
    from include.objectstore import FileObjectStore

    objects = FileObjectStore(f"file://{tmp_path}/evidence")
    kids = _add_users(world.ops, ("kept.kid@example.com", date(2018, 1, 1), None),
                      ("old.kid@example.com", date(2018, 2, 1), None))
    names = {}
    for rid, kid, days in ((900301, kids[0], 1), (900302, kids[1], 40)):
        names[kid] = f"exports/request={rid}/package.zip"
        objects.put(names[kid], b"zip")
        world.store.execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, subject_hash,
                                   package_object, package_uri, package_sha256, run_id, first_recorded_at, recorded_at)
                               values (%s, 'export', 'exported', %s, %s, 'file:///x', repeat('b', 64), 'r',
                                       now() - make_interval(days => %s), now() - make_interval(days => %s))""",
                            (rid, user_hash(KEY, kid), names[kid], days, days))
    s = replace(step(world, "packages", params(world, user_ids=tuple(kids))), objects=objects)
    purge.detect_children(s)
    if route(purge.plan_purge(s)) is not None:
        purge.purge_subjects(s)
        purge.verify_purge(s)
    purge.finish_run(s)
    assert user_rows(world.ops, kids) == 0
    states = dict(world.store.execute("select uri, state from compliance.erasure_files where uri = any(%s)",
                                      (list(names.values()),)).fetchall())
    assert states == {names[kids[0]]: "kept_for_delivery", names[kids[1]]: "deleted"}
    assert objects.exists(names[kids[0]]) and not objects.exists(names[kids[1]])


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February, in a year without one
        return day.replace(year=day.year - years, day=28)


def test_a_scheduled_run_acting_days_after_its_day_judges_as_of_the_day_it_erases(world, caplog):
    """Found by an on-call trial: a scheduled run cleared in the Airflow UI five days after its day (Airflow keeps
    its start, so its day) judged every account under 13 as of that day while it read and erased them as they are
    now: an account opened since by someone who has turned 13 since was erased as a child. A run's rules judge as
    of the later of its own day and today, and its record and log say so."""
    run_day = world.today - timedelta(days=5)
    birth = _years_before(world.today - timedelta(days=2), 13)  # 13 two days ago: under 13 on the run's day
    teen, kid = _add_users(world.ops, ("new.teen@example.com", birth, None),
                           ("new.kid@example.com", date(2018, 1, 1), None))
    world.ops.execute("update users set created_at = now() where id = any(%s)", ([teen, kid],))
    before = user_rows(world.ops, [teen])
    late = params(world, as_of=run_day, scheduled=True, run_type="scheduled", user_ids=(teen, kid))
    with caplog.at_level("WARNING", logger="include.children.purge"):
        result = run_all(world, "cleared-days-later", late)
    assert user_rows(world.ops, [teen]) == before
    assert user_rows(world.ops, [kid]) == 0 and result["outcomes"] == {"purged": 1}
    assert world.store.execute("select as_of, counts -> 'detected' ->> 'run_day' from compliance.child_purge_runs "
                               "where run_id = 'cleared-days-later'").fetchone() == (world.today, run_day.isoformat())
    assert f"as of {world.today}, not its own day {run_day}" in caplog.text


def test_a_plan_approved_by_hash_today_runs_in_a_run_of_an_earlier_day_cleared_today(world):
    """The run of an earlier day judges as of today, so a dry run's plan of today is its plan: approved by that hash,
    it erases exactly that plan (judged as of its own day, it would have planned the teen too, and stopped)."""
    birth = _years_before(world.today - timedelta(days=2), 13)
    teen, kid = _add_users(world.ops, ("hash.teen@example.com", birth, None),
                           ("hash.kid@example.com", date(2018, 1, 1), None))
    world.ops.execute("update users set created_at = now() where id = any(%s)", ([teen, kid],))
    dry = run_until_gate(world, "dry-today", params(world, dry_run=True, user_ids=(teen, kid)))
    late = params(world, as_of=world.today - timedelta(days=3), user_ids=(teen, kid), approve_plan=dry["plan_hash"])
    result = run_all(world, "approved-days-later", late)
    assert result["state"] == "purged" and result["outcomes"] == {"purged": 1}
    assert user_rows(world.ops, [kid]) == 0 and user_rows(world.ops, [teen]) > 0


def test_a_cleared_purge_keeps_its_approval_as_recorded_and_its_run_as_it_ended(world):
    """Found by an on-call trial: `purge_subjects` of a run approved by its plan's hash, cleared in the Airflow UI
    and run again (the same run id), rewrote the run's `approved_at` with the time of the clear and set a finished
    run back to `purging` until `finish_run` ran again (for good when only the purge was cleared). The approval's
    time and approver are the first attempt's; the run's state is what its last `finish_run` said; a run that ended
    `failed`, cleared with its downstream tasks, still ends `purged`."""
    settings = Settings(purge_threshold=2)
    dry = run_until_gate(world, "hash-dry", params(world, dry_run=True), settings)
    p = params(world, approve_plan=dry["plan_hash"])

    def at(when: datetime) -> Step:
        s = step(world, "hash-cleared", p, settings=settings)
        s.ctx = replace(s.ctx, now=lambda: when)
        return s

    def run_row() -> tuple:
        return world.store.execute("select state, approved_by, approved_at from compliance.child_purge_runs "
                                   "where run_id = 'hash-cleared'").fetchone()

    first = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    purge.detect_children(at(first))
    plan = purge.plan_purge(at(first))
    assert plan["state"] == "planned" and plan["approval"] == "plan_hash"
    # One child is held by an attempt that is still alive: the purge fails, the run ends failed.
    held = ledger.open_rows(world.store, "hash-cleared")[0]
    world.store.execute("update compliance.child_purges set outcome = 'erasing' where run_id = 'hash-cleared' "
                        "and subject_hash = %s", (held.subject_hash,))
    with connect(world.url) as other:
        other.execute("select 1 from users where id = %s for update", (held.user_id,))
        with pytest.raises(purge.SubjectsBusy):
            purge.purge_subjects(at(first))
        purge.verify_purge(at(first))
        assert purge.finish_run(at(first))["state"] == "failed"
    assert run_row() == ("failed", "approve_plan parameter", first)

    # An hour later on-call clears purge_subjects with its downstream tasks.
    later = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    purge.purge_subjects(at(later))
    assert run_row() == ("failed", "approve_plan parameter", first)  # until finish_run says how the run ended
    purge.verify_purge(at(later))
    assert purge.finish_run(at(later))["state"] == "purged"
    assert run_row() == ("purged", "approve_plan parameter", first)
    # The next day purge_subjects alone is cleared: nothing left to erase, and the run stays as it ended.
    purge.purge_subjects(at(datetime(2026, 12, 2, 9, tzinfo=timezone.utc)))
    assert run_row() == ("purged", "approve_plan parameter", first)


def test_a_cleared_finish_run_still_says_how_many_reports_naming_no_one_its_run_resolved(world):
    """Found by an on-call trial: `finish_run` cleared in the Airflow UI and run again (the same run id) found the
    reports naming no one resolved by its first attempt and audited a second `child_purge.finished` saying the run
    resolved none. Each says how many this run resolved."""
    first = run_all(world, "finish-cleared", params(world))
    assert first["reports_resolved"] >= 1
    again = purge.finish_run(step(world, "finish-cleared"))
    assert again["reports_resolved"] == first["reports_resolved"] and again["state"] == first["state"]
    audited = [r[0] for r in world.store.execute(
        "select (details ->> 'reports_resolved')::int from compliance.audit_log where run_id = 'finish-cleared' "
        "and action = 'child_purge.finished' order by id")]
    assert audited == [first["reports_resolved"]] * 2


def test_a_cleared_purge_audits_what_it_did_in_all_and_that_it_ran_again_not_a_second_purge(world):
    """Found by an audit review: `purge_subjects` cleared and run again (the same run id) audited a second
    `child_purge.purged` with its own attempt's counts: after a busy child, `subjects: 1, outcomes: {purged: 1}`
    beside the first `subjects: 14, outcomes: {purged: 13}, busy: 1` (two purges, one of 1 child, on reading); after a
    whole first attempt, `subjects: 0, outcomes: {}`; and a cleared `finish_run` a second `child_purge.finished` the
    same as the first. Each entry of a step run again names the run's first entry of the step (`rerun_of`) and says
    what the step did over all its attempts; what the re-run itself did is `this_attempt`."""
    first = run_until_gate(world, "purge-cleared", params(world))
    s = step(world, "purge-cleared")
    held = ledger.open_rows(world.store, "purge-cleared")[0]
    with connect(world.url) as other:  # the application holds one child's account: that child is left busy
        other.execute("select 1 from users where id = %s for update", (held.user_id,))
        with pytest.raises(purge.SubjectsBusy):
            purge.purge_subjects(s)
        purge.verify_purge(s)
    purge.purge_subjects(s)  # Airflow's retry (or on-call clearing the task)
    purge.verify_purge(s)
    purge.finish_run(s)
    purge.purge_subjects(s)  # cleared once more with its downstream tasks: nothing left to erase
    purge.verify_purge(s)
    purge.finish_run(s)
    subjects = first["subjects"]

    def entries(action: str) -> list[tuple[int, dict]]:
        return world.store.execute("select id, details from compliance.audit_log where run_id = 'purge-cleared' "
                                   "and action = %s order by id", (action,)).fetchall()

    (one, d1), (_, d2), (_, d3) = entries("child_purge.purged")
    assert (d1["subjects"], d1["outcomes"], d1["busy"], "rerun_of" in d1) == (subjects, {"purged": subjects - 1}, 1,
                                                                              False)
    for again, this_attempt in ((d2, {"subjects": 1, "outcomes": {"purged": 1}, "settled": 0}),
                                (d3, {"subjects": 0, "outcomes": {}, "settled": 0})):
        assert again["rerun_of"] == one
        assert (again["subjects"], again["outcomes"], again["busy"], again["settled"]) == (
            subjects, {"purged": subjects}, 0, 0)
        assert again["this_attempt"] == this_attempt
    (fin, f1), (_, f2) = entries("child_purge.finished")
    assert "rerun_of" not in f1 and f2["rerun_of"] == fin
    assert {k: v for k, v in f2.items() if k != "rerun_of"} == f1  # the run's end as the first said it, not a second
    (ver, v1), (_, v2) = entries("child_purge.verified")
    assert (v1["subjects"], v2["subjects"], v2["rerun_of"], v2["this_attempt"]) == (
        subjects - 1, subjects, ver, {"subjects": 1})


def test_a_childs_erasure_refused_at_its_commit_keeps_no_counts_or_request_ids_of_it(world):
    """Found by a review: a constraint trigger of the application's refusing the erasure at its commit (deferred)
    came after the record was marked 'erasing' with the erasure's counts and the ids of the requests it
    unlinked. The child was recorded incomplete with them still there: a record saying the purge unlinked requests
    (and erased rows) that its rolled-back transaction never changed. An incomplete record now keeps none of them."""
    from include.erasure.stores import SubjectsRefused

    refused = world.planted["child_by_declared_age"][0]
    request = world.ops.execute(
        """insert into privacy_requests (user_id, requester_email, regime, request_type, received_at, status)
           values (%s, 'a.parent@example.net', 'gdpr', 'access', now() - interval '1 day', 'in_progress')
           returning id""", (refused,)).fetchone()[0]
    world.ops.execute(f"""
        create function refuse_at_commit() returns trigger language plpgsql as $$
        begin raise exception 'account is under audit'; end $$;
        create constraint trigger refuse_at_commit after delete on users deferrable initially deferred
        for each row when (old.id = {refused}) execute function refuse_at_commit()""")
    with pytest.raises(SubjectsRefused):
        run_all(world, "manual__deferred", params(world, user_ids=(refused,)))
    assert user_rows(world.ops, [refused]) > 0
    assert world.ops.execute("select user_id from privacy_requests where id = %s", (request,)).fetchone()[0] == refused
    got = world.store.execute("""select outcome, request_ids, tables, rows_erased, kept
                                 from compliance.child_purges where run_id = 'manual__deferred'""").fetchall()
    assert got == [("incomplete", None, None, None, None)], got


def test_the_package_of_an_export_that_rolled_back_is_not_kept_for_delivery(world, tmp_path):
    """Found by a review: the erasure keeps a package whose export record is still pending (its export committed, its
    record not written yet), but it did not ask whether that export committed. A package whose export rolled back
    (the application refused the request's completion, or the worker died before the commit) answers no request: it
    was kept `kept_for_delivery` "the answer to privacy request N" with the child's data until the expiry, or, already
    deleted by the failed export, recorded kept for good. It is now deleted with the child."""
    import psycopg
    from include.objectstore import FileObjectStore

    objects = FileObjectStore(f"file://{tmp_path}/evidence")
    (kid,) = _add_users(world.ops, ("rolled.back.kid@example.com", date(2018, 1, 1), None))
    name = "exports/request=900401/package.zip"
    objects.put(name, b"zip")
    with world.ops.transaction():
        xid = world.ops.execute("select txid_current()").fetchone()[0]
        raise psycopg.Rollback()
    world.store.execute("""insert into compliance.dsr_fulfilment_pending (request_id, run_id, ops_xid, record, created_at)
                           values (900401, 'r', %s, jsonb_build_object('subject_hash', %s::text, 'package_object',
                                                                       %s::text), now())""",
                        (xid, user_hash(KEY, kid), name))
    s = replace(step(world, "rolled_back", params(world, user_ids=(kid,))), objects=objects)
    purge.detect_children(s)
    if route(purge.plan_purge(s)) is not None:
        purge.purge_subjects(s)
        purge.verify_purge(s)
    purge.finish_run(s)
    assert user_rows(world.ops, [kid]) == 0
    assert world.store.execute("select state from compliance.erasure_files where uri = %s",
                               (name,)).fetchall() == [("deleted",)]
    assert not objects.exists(name)


def test_a_share_category_of_an_enum_type_is_recorded_as_its_label(world, seeded_clone):
    """Found by a fault trial: a share's category of a PostgreSQL enum type (as Rails, Django and Prisma schemas make
    them), aggregated as it is, came back from the driver as the array's literal, one string, and every purge record
    and deletion notice named the vendor's categories as its characters (["a", "c", "c", "n", "o", "t", "u", "{", "}"]
    for {account}). The same children give the same records and notices as with text columns."""
    url, _ = seeded_clone(users=600, seed=5, anchor=world.today, store=True)
    with connect(url, autocommit=True) as ops, connect(url, autocommit=True) as store:
        enums = SimpleNamespace(**{**vars(world), "url": url, "ops": ops, "store": store})
        make_enums(enums.ops)
        assert run_all(enums, "scheduled__1", params(enums)) == run_all(world, "scheduled__1", params(world))
        for query in ("select subject_hash, outcome, reason, vendors from compliance.child_purges order by 1",
                      "select subject_hash, vendor_id, categories, share_ids from compliance.vendor_deletion_notices "
                      "order by 1, 2"):
            assert enums.store.execute(query).fetchall() == world.store.execute(query).fetchall()
        categories = {c for (c,) in enums.store.execute(
            "select unnest(categories) from compliance.vendor_deletion_notices")}
        assert categories and categories <= {"contact", "account", "content", "usage", "network", "social", "support"}


def wait_for_a_lock_wait(watch, failure: str) -> None:
    """Wait (10 s at most) until a session of the test's database waits for a lock: the retry blocked on the other
    attempt's claim of the child (its second pass)."""
    for _ in range(400):
        if watch.execute("select count(*) from pg_stat_activity where datname = current_database() "
                         "and wait_event_type = 'Lock'").fetchone()[0]:
            return
        threading.Event().wait(0.025)
    pytest.fail(failure)


def test_a_summary_recorded_while_sendgrid_was_down_is_sent_with_the_counts_of_the_cleared_runs_last_purge(
        world, sendgrid):
    """Found by a review: `notify_compliance` recorded the run's summary (its counts) while SendGrid was down, the task
    failed, and the run was cleared; its re-run purged a child the first attempts had left (a record left `erasing` by
    an attempt that died before its commit, while its retry went on: the retry's `purge_subjects` ended, the child not
    purged). The summary sent then was the one recorded first: "13 purged" for a run that purged 14, in the email and
    in `compliance.child_purge_summaries`. A summary still pending says the run's counts as they are when it is
    recorded again (its records: every attempt's work), and one summary is sent for the run."""
    from include.delivery.sendgrid_mailer import RetryPolicy, SendGridMailer, SendGridUnavailable
    from tests.conftest import SENDGRID_TEST_KEY  # noqa: I001

    run_id = "summary-cleared"
    run_until_gate(world, run_id, params(world))
    rows = ledger.open_rows(world.store, run_id)
    late = rows[-1]  # the child an earlier attempt, still alive, is erasing
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            purge.purge_subjects(step(world, run_id))
        except BaseException as exc:  # noqa: BLE001 - the main thread asserts on it
            errors.append(exc)

    with connect(world.url) as earlier, connect(world.url, autocommit=True) as watch:
        earlier.execute("select 1 from users where id = %s for update", (late.user_id,))  # its erasing transaction
        retry = threading.Thread(target=attempt)
        retry.start()
        wait_for_a_lock_wait(watch, "the retry never waited for the earlier attempt's claim")
        # The earlier attempt records the child 'erasing' before its commit, then dies: its transaction rolls back.
        watch.execute("update compliance.child_purges set outcome = 'erasing', updated_at = now() "
                      "where run_id = %s and subject_hash = %s", (run_id, late.subject_hash))
        earlier.rollback()
        retry.join(60)
    assert not errors, errors
    assert ledger.open_rows(world.store, run_id)[0].subject_hash == late.subject_hash  # left 'erasing'

    sendgrid.inject(status=500, count=2)  # SendGrid down: the summary is recorded, not sent
    down = SendGridMailer(api_key=SENDGRID_TEST_KEY, host=sendgrid.base_url, sleep=lambda s: None,
                          policy=RetryPolicy(max_attempts=2))
    with pytest.raises(SendGridUnavailable):
        purge.notify_compliance(step(world, run_id, mailer=down))
    first = world.store.execute("select status, counts from compliance.child_purge_summaries where run_id = %s",
                                (run_id,)).fetchone()
    assert first[0] == "pending" and first[1]["outcomes"]["purged"] == len(rows) - 1

    # The run cleared in the Airflow UI: the purge settles the child and erases it, then the summary goes out.
    up = SendGridMailer(api_key=SENDGRID_TEST_KEY, host=sendgrid.base_url)
    s = step(world, run_id, mailer=up)
    again = purge.purge_subjects(s)
    assert (again["settled"], again["outcomes"]) == (1, {"purged": 1})
    purge.verify_purge(s)
    assert purge.notify_compliance(s)["sent"] == 1
    assert purge.notify_compliance(s) == {"already_sent": run_id}
    status, counts = world.store.execute("select status, counts from compliance.child_purge_summaries "
                                         "where run_id = %s", (run_id,)).fetchone()
    assert status == "sent" and counts["outcomes"]["purged"] == len(rows), counts
    assert counts == purge.summary.counts_for_run(world.store, run_id)
    (message,) = sendgrid.accepted()  # one summary for the run
    assert f": {len(rows)} purged, " in message["payload"]["subject"], message["payload"]["subject"]


def test_a_child_an_attempt_still_alive_erased_is_recorded_purged_not_already_erased_by_its_retry(world, monkeypatch):
    """Found by a review: Airflow started a retry of `purge_subjects` while the earlier attempt was still alive. The
    earlier attempt committed a child's erasure but had not yet recorded it; the retry, waiting for that child's
    claim, found the account gone and recorded the child `already_erased` over the earlier attempt's `erasing`
    record, so the earlier attempt's record matched nothing: a child this run erased said `already_erased`, with no
    tables, no vendor deletion notices and no `child_purge.subject_purged` entry. An outcome that is not a purge now
    never replaces a record another attempt marked `erasing`: that attempt records the purge, or the next attempt
    settles it; the retry ends transient, and its own retry finds nothing left."""
    run_id = "alive-and-retry"
    run_until_gate(world, run_id, params(world))
    rows = ledger.open_rows(world.store, run_id)
    planned = ledger.outcome_counts(world.store, run_id)
    late = rows[-1]  # the earlier attempt erases it last, the retry finds only it left
    vendors = world.ops.execute("select count(distinct vendor_id) from data_shares where user_id = %s",
                                (late.user_id,)).fetchone()[0]
    assert vendors  # its erasure owes deletion notices
    in_claim, retry_waits = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}
    mark_erasing, finish_subject = ledger.mark_erasing, ledger.finish_subject

    def earliers(result) -> bool:
        return threading.current_thread().name == "earlier" and result.subject_hash == late.subject_hash

    def marking(store, run, result):  # the earlier attempt, in the child's erasing transaction
        if earliers(result):
            in_claim.set()
            retry_waits.wait(30)
        return mark_erasing(store, run, result)

    def finishing(store, c, run, result, **kw):  # ... committed, and records the child after its retry did
        if earliers(result):
            retry.join(60)
        return finish_subject(store, c, run, result, **kw)

    monkeypatch.setattr(ledger, "mark_erasing", marking)
    monkeypatch.setattr(ledger, "finish_subject", finishing)

    def attempt(name: str) -> None:
        try:
            with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
                purge.purge_subjects(step(world, run_id, ops=ops, store=store))
        except BaseException as exc:  # noqa: BLE001 - the main thread asserts on it
            errors[name] = exc

    earlier = threading.Thread(target=attempt, args=("earlier",), name="earlier")
    retry = threading.Thread(target=attempt, args=("retry",), name="retry")
    earlier.start()
    assert in_claim.wait(60), errors
    with connect(world.url, autocommit=True) as watch:
        retry.start()
        wait_for_a_lock_wait(watch, "the retry never waited for the earlier attempt's claim")
        retry_waits.set()
        earlier.join(60)
    assert not earlier.is_alive() and not retry.is_alive()
    assert "earlier" not in errors, errors
    outcome, tables, erased = world.store.execute(
        "select outcome, tables, rows_erased from compliance.child_purges where run_id = %s and subject_hash = %s",
        (run_id, late.subject_hash)).fetchone()
    assert outcome == "purged", (outcome, tables)
    assert tables["public.users"]["rows"] == 1 and erased > 1
    assert world.store.execute("select count(*) from compliance.vendor_deletion_notices where run_id = %s and "
                               "subject_hash = %s", (run_id, late.subject_hash)).fetchone()[0] == vendors
    assert world.store.execute("select count(*) from compliance.audit_log where action = 'child_purge.subject_purged' "
                               "and details ->> 'subject_hash' = %s", (late.subject_hash,)).fetchone()[0] == 1
    assert isinstance(errors.get("retry"), purge.SubjectsBusy), errors  # the child was another attempt's to record
    # The retry's own retry finds every child recorded; the run is verified and ends purged.
    monkeypatch.undo()
    again = purge.purge_subjects(step(world, run_id))
    assert (again["subjects"], again["settled"]) == (0, 0)
    purge.verify_purge(step(world, run_id))
    assert purge.finish_run(step(world, run_id))["outcomes"] == {
        **{k: n for k, n in planned.items() if k != "planned"}, "purged": len(rows)}


class _WorkerLost(BaseException):
    """The worker dies between an erasure's commit and its record (SIGKILL, a lost pod): nothing after it runs."""


def _reported_child(world) -> tuple[int, list[int]]:
    """A child named by two reports: a household's address report a person confirmed it as meant, and a parent's
    report naming it by id. Returns the child and the report ids."""
    twin_a, twin_b = _add_users(world.ops, ("twins.settle@example.com", None, None),
                                (" Twins.Settle@Example.com", None, None))
    household = _report(world.ops, "twins.settle@example.com")
    parent = world.ops.execute("insert into child_reports (user_id, reported_email, source, reported_at) "
                               "values (%s, null, 'parent', now()) returning id", (twin_b,)).fetchone()[0]
    return twin_b, [household, parent]


def _reports_recorded(world, run_id: str, child: int, report_ids: list[int]) -> None:
    """The reports the child's erasure resolved are recorded purged by it, once, and listed by its one audit entry."""
    hashed = user_hash(KEY, child)
    got = world.store.execute("select report_id, outcome, resolved, subject_hash from compliance.child_report_outcomes "
                              "where run_id = %s and report_id = any(%s) order by report_id",
                              (run_id, report_ids)).fetchall()
    assert got == [(rid, "purged", True, hashed) for rid in sorted(report_ids)], got
    assert world.ops.execute("select count(*) from child_reports where id = any(%s) and resolved_at is null",
                             (report_ids,)).fetchone()[0] == 0
    entries = world.store.execute("select details -> 'reports_resolved' from compliance.audit_log "
                                  "where action = 'child_purge.subject_purged' and details ->> 'subject_hash' = %s",
                                  (hashed,)).fetchall()
    assert entries == [(sorted(report_ids),)], entries


def test_a_purge_settled_after_its_worker_died_records_the_reports_its_erasure_resolved(world, monkeypatch):
    """Found by a review: a worker dying between a child's committed erasure and its record left it `erasing`; the
    retry's settle recorded it purged from the record's counts, which hold no reports, so the household's report a
    person confirmed and the parent's report naming the child (both resolved by that erasure) got no `purged`
    outcome and the child's audit entry listed none. The settle now records the reports the erasing transaction
    resolved, as the attempt that erased would have."""
    child, report_ids = _reported_child(world)
    p = params(world, user_ids=(child,), confirm_user_ids=(child,))
    run_until_gate(world, "settle-reports", p)
    finish_subject = ledger.finish_subject

    def dying(store, c, run, result, **kw):
        if result.subject_hash == user_hash(KEY, child) and not kw.get("settled"):
            raise _WorkerLost()
        return finish_subject(store, c, run, result, **kw)

    monkeypatch.setattr(ledger, "finish_subject", dying)
    with pytest.raises(_WorkerLost):
        purge.purge_subjects(step(world, "settle-reports", p))
    monkeypatch.undo()
    assert user_rows(world.ops, [child]) == 0  # committed; its record left 'erasing'
    assert ledger.recorded_outcome(world.store, "settle-reports", user_hash(KEY, child)) == "erasing"
    assert purge.purge_subjects(step(world, "settle-reports", p))["settled"] == 1
    _reports_recorded(world, "settle-reports", child, report_ids)
    purge.verify_purge(step(world, "settle-reports", p))
    assert purge.finish_run(step(world, "settle-reports", p))["outcomes"] == {"purged": 1}


def test_a_retrys_settle_between_an_erasures_commit_and_its_record_records_its_reports_once(world, monkeypatch):
    """Found by a review: a retry of `purge_subjects` started beside a live attempt settles the records it finds
    `erasing`; one whose erasure had just committed (the live attempt a few milliseconds from recording it) was
    recorded purged from its counts, without the reports the erasure resolved, and the live attempt's own record,
    which had them, then matched nothing. The settle records the same reports, and the live attempt records nothing
    more: each report once, in the child's one audit entry."""
    child, report_ids = _reported_child(world)
    run_id = "settle-window"
    p = params(world, user_ids=(child,), confirm_user_ids=(child,))
    run_until_gate(world, run_id, p)
    errors: dict[str, BaseException] = {}
    results: dict[str, dict] = {}
    finish_subject = ledger.finish_subject

    def attempt(name: str) -> None:
        try:
            with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
                results[name] = purge.purge_subjects(step(world, run_id, p, ops=ops, store=store))
        except BaseException as exc:  # noqa: BLE001 - the main thread asserts on it
            errors[name] = exc

    retry = threading.Thread(target=attempt, args=("retry",), name="retry")

    def finishing(store, c, run, result, **kw):  # the live attempt, its erasure committed: the retry starts now
        if threading.current_thread().name == "live" and result.subject_hash == user_hash(KEY, child):
            retry.start()
            retry.join(60)
        return finish_subject(store, c, run, result, **kw)

    monkeypatch.setattr(ledger, "finish_subject", finishing)
    live = threading.Thread(target=attempt, args=("live",), name="live")
    live.start()
    live.join(120)
    assert not live.is_alive() and not retry.is_alive()
    assert not errors, errors
    assert results["retry"]["settled"] == 1
    # The live attempt says what the record says (the retry settled it), and counts no second purge of the child.
    assert (results["live"]["outcomes"], results["live"].get("recorded_by_another_attempt")) == ({}, {"purged": 1})
    both = world.store.execute("select details from compliance.audit_log where action = 'child_purge.purged' "
                               "and run_id = %s order by id desc limit 1", (run_id,)).fetchone()[0]
    assert (both["outcomes"], both["settled"]) == ({}, 1), both
    monkeypatch.undo()
    _reports_recorded(world, run_id, child, report_ids)
    purge.verify_purge(step(world, run_id, p))
    assert purge.finish_run(step(world, run_id, p))["outcomes"] == {"purged": 1}


def test_a_refused_child_another_attempt_recorded_purged_is_counted_and_logged_as_recorded(world, monkeypatch, caplog):
    """Found by a review: a retry of `purge_subjects` beside a live attempt waited for a child's claim; the live attempt
    erased the child and recorded it purged; the retry, finding the account gone, went on to erase the rows left of
    it (a row the application wrote for the child since) and the database refused. Its record was already final, so
    nothing was written over it, yet the retry logged "a subject was left incomplete", counted it refused and warned
    that the run would fail for it. The retry now counts and logs what the record says: purged by another attempt."""
    from include.erasure.engine import _ORPHAN_LOCK_CLASS

    caplog.set_level("INFO")
    run_id = "refused-after-purge"
    run_until_gate(world, run_id, params(world))
    rows = ledger.open_rows(world.store, run_id)
    late = rows[-1]  # the live attempt erases it last; the retry finds only it left
    in_claim, retry_waits = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}
    results: dict[str, dict] = {}
    mark_erasing = ledger.mark_erasing

    def marking(store, run, result):  # the live attempt, in the child's erasing transaction
        if threading.current_thread().name == "live" and result.subject_hash == late.subject_hash:
            in_claim.set()
            retry_waits.wait(30)
        return mark_erasing(store, run, result)

    monkeypatch.setattr(ledger, "mark_erasing", marking)

    def attempt(name: str) -> None:
        try:
            with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
                results[name] = purge.purge_subjects(step(world, run_id, ops=ops, store=store))
        except BaseException as exc:  # noqa: BLE001 - the main thread asserts on it
            errors[name] = exc

    live = threading.Thread(target=attempt, args=("live",), name="live")
    retry = threading.Thread(target=attempt, args=("retry",), name="retry")
    live.start()
    assert in_claim.wait(60), errors
    with connect(world.url) as holder, connect(world.url, autocommit=True) as watch:
        # What is left of an account already gone is erased under this lock: held until the live attempt recorded.
        holder.execute("select pg_advisory_xact_lock(%s, hashint8(%s))", (_ORPHAN_LOCK_CLASS, late.user_id))
        retry.start()
        wait_for_a_lock_wait(watch, "the retry never waited for the live attempt's claim")
        retry_waits.set()
        live.join(60)
        assert not live.is_alive() and not errors, errors
        assert world.store.execute("select outcome from compliance.child_purges where run_id = %s and subject_hash = %s",
                                   (run_id, late.subject_hash)).fetchone()[0] == "purged"
        # The application writes a row for the child since, and refuses its erasure.
        world.ops.execute("insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at) "
                          "values (%s, 'late', 'late', 1, 1, now())", (late.user_id,))
        world.ops.execute(f"""
            create function keep_late_events() returns trigger language plpgsql as $$
            begin raise exception 'event under audit'; end $$;
            create trigger keep_late_events before delete on usage_events for each row
            when (old.user_id = {late.user_id}) execute function keep_late_events()""")
        holder.rollback()
        retry.join(60)
    assert not retry.is_alive() and not errors, errors
    assert world.store.execute("select outcome from compliance.child_purges where run_id = %s and subject_hash = %s",
                               (run_id, late.subject_hash)).fetchone()[0] == "purged"
    said = results["retry"]
    assert said["outcomes"] == {} and said["recorded_by_another_attempt"] == {"purged": 1}, said
    assert "left incomplete" not in caplog.text
    assert "another attempt of this run recorded it purged" in caplog.text
    purged = world.store.execute("select details from compliance.audit_log where action = 'child_purge.purged' "
                                 "order by id desc limit 1").fetchone()[0]
    assert purged["outcomes"] == {"purged": len(rows)}, purged  # the child once, as the live attempt recorded it
    monkeypatch.undo()
    world.ops.execute("drop trigger keep_late_events on usage_events")
    world.ops.execute("delete from usage_events where user_id = %s", (late.user_id,))
    purge.verify_purge(step(world, run_id))
    assert purge.finish_run(step(world, run_id))["state"] == "purged"
