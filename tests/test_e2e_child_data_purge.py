"""End to end: ``child_data_purge`` through Airflow for real on seeded demo data (``dag.test()`` in the test
process; ``airflow dags test`` in a child process where a reviewer answers over REST and for two runs at once;
tests/e2e_world.py), each test on a world of its own: the dry run by default, setup faults, a targeted run, the human-in-the-loop approval
answered by a reviewer over an api-server's REST API (reject, then approve), a second run, and the
headless approval of one plan by its hash. The approval threshold is 5 here, so the seeded children
(about 35) need a person.
"""
from __future__ import annotations

import json

import pytest

from include import audit
from include.subjects import user_hash
from tests import purge_support as support
from tests.purge_support import expected_children

pytestmark = pytest.mark.e2e
API_KEY = "SG.purge-e2e"
THRESHOLD = 5


@pytest.fixture
def world(make_world):
    """A clone of the seeded database, a stand-in and the Airflow environment of this test's own."""
    world = make_world(support.DAG_ID, users=1500, seed=11, sendgrid_key=API_KEY, subject_key=support.SUBJECT_KEY,
                       settings={"purge_threshold": THRESHOLD})
    world["pii"] = support.personal_data(world["conn"], world["today"])
    return world


def run_dag(world, name: str, conf: dict | None = None, env: dict | None = None, logical_date: str | None = None):
    """A real run (``dag.test()`` in this process); its log is scanned for the seeded personal data."""
    return world.run(name, conf=conf, env=env, logical_date=logical_date)


def purge_the_seeded_children(world) -> None:
    """The state later runs start from: the seeded children erased, their plan approved by its hash."""
    state, log = run_dag(world, "seeded-dry", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    state, log = run_dag(world, "seeded-purge", conf={"dry_run": False, "approve_plan": latest_run(world["conn"])[2]})
    assert state == "success", log[-3000:]
    assert latest_run(world["conn"])[1] == "purged"


def latest_run(conn) -> tuple:
    return conn.execute("""select run_id, state, plan_hash, plan_subjects, approval, approval_state, approved_by
                           from compliance.child_purge_runs order by started_at desc limit 1""").fetchone()


def test_setup_faults_stop_the_run_with_one_sentence_before_anything_changes(world):
    conn = world["conn"]
    before = support.checksums(conn)
    no_key = {k: v for k, v in world["env"].items() if k != "AIRFLOW_VAR_PRIVACY_SUBJECT_KEY"}
    state, log = run_dag(world, "no-key", env=no_key)
    assert state == "failed"
    assert "the subject-hashing key is not configured: set the password of Airflow connection 'privacy_subject_key'" in log
    state, log = run_dag(world, "conf-typo", conf={"dryrun": False})
    assert state == "failed"
    assert "trigger conf key 'dryrun' is not a parameter of child_data_purge (its parameters: approve_plan, " \
           "confirm_user_ids, dry_run, max_subjects, user_ids)" in log
    assert support.checksums(conn) == before
    assert conn.execute("select count(*) from compliance.child_purges").fetchone()[0] == 0


def test_an_id_past_bigint_is_refused_before_the_run_starts(world):
    """user_ids past PostgreSQL's bigint used to pass the form's schema: the first statement raised
    NumericValueOutOfRange with a traceback and the task was retried three times (11 minutes in all here). The
    schema's maximum now refuses it in Airflow's own parameter check (at run creation, and again at task start
    for a conf stored earlier); each DAG's params resolution checks again (tests/test_param_ranges.py)."""
    conn = world["conn"]
    before = support.checksums(conn)
    state, log = run_dag(world, "id-past-bigint", conf={"dry_run": False, "user_ids": [99999999999999999999]})
    assert state is None, log[-3000:]  # no run was created, so no task ran and none was retried
    assert ("Invalid input for param user_ids: 99999999999999999999 is greater than the maximum of "
            "9223372036854775807") in log, log[-3000:]
    assert "NumericValueOutOfRange" not in log and "up_for_retry" not in log.lower()
    assert support.checksums(conn) == before


def test_a_manual_run_is_a_dry_run_that_changes_nothing(world):
    conn = world["conn"]
    before = support.checksums(conn)
    state, log = run_dag(world, "dry-default")
    assert state == "success", log[-3000:]
    assert support.checksums(conn) == before
    run_id, run_state, plan_hash, subjects, approval, _, _ = latest_run(conn)
    to_purge, held = expected_children(conn, world["today"])
    assert (run_state, subjects, approval) == ("dry_run", len(to_purge), "review")
    outcomes = dict(conn.execute("select outcome, count(*) from compliance.child_purges where run_id = %s group by 1",
                                 (run_id,)).fetchall())
    assert outcomes["dry_run"] == len(to_purge) and outcomes["held"] == len(held)
    assert f"approve_plan={plan_hash}" in log
    assert "Waiting for Human-in-the-loop input" not in log  # a dry run never asks anyone
    assert not world["sendgrid"].accepted()


def test_a_targeted_live_run_within_the_threshold_erases_only_its_children(world):
    conn = world["conn"]
    to_purge, _ = expected_children(conn, world["today"])
    targets = sorted(to_purge)[-2:]  # bulk children (the planted ones are checked later)
    adult = world["planted"]["clean_adult"][0]
    before = support.rows_per_user(conn)
    state, log = run_dag(world, "targeted", conf={"dry_run": False, "user_ids": [*targets, adult]})
    assert state == "success", log[-3000:]
    after = support.rows_per_user(conn)
    assert all(uid not in after for uid in targets)
    assert {uid: rows for uid, rows in before.items() if uid not in targets} == after
    assert latest_run(conn)[1:5] == ("purged", latest_run(conn)[2], 2, "not_needed")


@pytest.mark.children
def test_a_plan_above_the_threshold_waits_and_a_rejection_erases_nothing(world):
    conn = world["conn"]
    before, rows_before = support.checksums(conn), support.rows_per_user(conn)
    person = world.reviewer()
    proc = world.start("reject", {"dry_run": False})
    request = person.wait_for_request(proc)
    assert request["defaults"] == ["Reject"] and request["options"] == ["Approve", "Reject"]
    run_id, run_state, plan_hash, subjects, *_ = latest_run(conn)
    assert run_state == "awaiting_approval" and subjects > THRESHOLD
    assert plan_hash in request["body"] and f"Erase {subjects} children's accounts" in request["subject"]
    assert support.checksums(conn) == before  # waiting: nothing erased, nothing changed
    person.answer(request, "Reject")
    state, log = world.finish("reject", proc)
    assert state == "success", log[-3000:]
    assert support.rows_per_user(conn) == rows_before  # nobody's rows changed
    assert conn.execute("select state, approval_state from compliance.child_purge_runs where run_id = %s",
                        (run_id,)).fetchone() == ("rejected", "rejected")
    reasons = {r[0] for r in conn.execute("select reason from compliance.child_purges where run_id = %s and "
                                          "outcome = 'rejected'", (run_id,))}
    assert reasons == {"the plan was rejected by reviewer; nothing was erased"}


@pytest.mark.children
def test_an_approved_plan_erases_exactly_the_children_and_proves_it(world):
    conn, planted = world["conn"], world["planted"]
    to_purge, held = expected_children(conn, world["today"])
    before_users = support.rows_per_user(conn)
    before = support.checksums(conn)
    person = world.reviewer()
    proc = world.start("approve", {"dry_run": False})
    request = person.wait_for_request(proc)
    assert support.checksums(conn) == before  # nothing erased until a person approves
    person.answer(request, "Approve")
    state, log = world.finish("approve", proc)
    assert state == "success", log[-3000:]

    # Exactly the children are gone from every table; held children and everyone else are untouched.
    after_users = support.rows_per_user(conn)
    assert not set(after_users) & to_purge
    assert {uid: rows for uid, rows in before_users.items() if uid not in to_purge} == after_users
    assert set(planted["child_with_active_hold"]) <= held
    for uid in held:
        assert after_users[uid] == before_users[uid]
    for table in support.PER_USER_TABLES:
        assert conn.execute(f"select count(*) from {table} where user_id = any(%s)", (sorted(to_purge),)).fetchone()[0] == 0
    assert conn.execute("select count(*) from email_suppressions where lower(btrim(email)) in "
                        "(select lower(btrim(email)) from users where id = any(%s))", (sorted(to_purge),)).fetchone()[0] == 0

    # The evidence: one verified purge record per child, by keyed hash, with tables, rules and vendors.
    run_id, run_state, plan_hash, subjects, approval, approval_state, approved_by = latest_run(conn)
    assert (run_state, approval, approval_state, approved_by) == ("purged", "review", "approved", "reviewer")
    records = conn.execute("""select subject_hash, user_id, rules, tables, vendors, detected_at, purged_at, verified_at
                              from compliance.child_purges where run_id = %s and outcome = 'purged'""",
                           (run_id,)).fetchall()
    key = support.SUBJECT_KEY.encode()
    assert {r[0] for r in records} == {user_hash(key, uid) for uid in to_purge}
    assert all(r[1] is None and r[2] and r[3]["public.users"]["rows"] == 1 and r[5] <= r[6] <= r[7] for r in records)
    shared_child = user_hash(key, planted["child_by_birth_date"][0])
    vendors = next(r[4] for r in records if r[0] == shared_child)
    assert [v["vendor_id"] for v in vendors] == [1]
    assert conn.execute("select count(*) from compliance.vendor_deletion_notices where run_id = %s and "
                        "status = 'outstanding'", (run_id,)).fetchone()[0] >= 1
    assert conn.execute("select count(*) from compliance.audit_log where run_id = %s and "
                        "action = 'child_purge.subject_purged'", (run_id,)).fetchone()[0] == len(to_purge)
    assert audit.verify_chain(conn).ok

    # One summary email for the run, to the compliance team, with counts only.
    summaries = [m["payload"] for m in world["sendgrid"].accepted()
                 if m["payload"]["custom_args"] == {"campaign": "child-purge-summary", "run_id": run_id}]
    assert len(summaries) == 1
    assert summaries[0]["personalizations"][0]["to"] == [{"email": "compliance@example.com"}]
    assert f"purged: {len(to_purge)}" in summaries[0]["content"][0]["value"]


def test_a_second_run_does_nothing_more(world):
    purge_the_seeded_children(world)
    conn = world["conn"]
    before, mails = support.checksums(conn), len(world["sendgrid"].accepted())
    state, log = run_dag(world, "again", conf={"dry_run": False})
    assert state == "success", log[-3000:]
    assert support.checksums(conn) == before and len(world["sendgrid"].accepted()) == mails
    assert latest_run(conn)[1] == "nothing_to_purge"


def test_a_plan_approved_by_its_hash_runs_headless_and_a_changed_one_does_not(world):
    purge_the_seeded_children(world)  # so that the plan is exactly the children planted here
    conn = world["conn"]
    adults = [r[0] for r in conn.execute(
        """select id from users where declared_age is null and birth_date < now() - interval '30 years'
           and id not in (select user_id from legal_holds) order by id limit 9""")]
    conn.execute("update users set declared_age = 9 where id = any(%s)", (adults[:8],))
    state, log = run_dag(world, "hash-dry", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    approved_hash, subjects = latest_run(conn)[2], latest_run(conn)[3]
    assert subjects == 8 > THRESHOLD

    conn.execute("update users set declared_age = 9 where id = %s", (adults[8],))  # the plan changes
    before = support.checksums(conn)
    state, log = run_dag(world, "hash-stale", conf={"dry_run": False, "approve_plan": approved_hash})
    assert state == "failed"
    assert "the plan changed since it was approved" in log and "nothing was erased" in log
    assert support.checksums(conn) == before

    conn.execute("update users set declared_age = null where id = %s", (adults[8],))  # back to the approved plan
    state, log = run_dag(world, "hash-go", conf={"dry_run": False, "approve_plan": approved_hash})
    assert state == "success", log[-3000:]
    assert "Waiting for Human-in-the-loop input" not in log
    run = latest_run(conn)
    assert (run[1], run[2], run[4], run[6]) == ("purged", approved_hash, "plan_hash", "approve_plan parameter")
    assert conn.execute("select count(*) from users where id = any(%s)", (adults[:8],)).fetchone()[0] == 0
    assert conn.execute("select count(*) from users where id = %s", (adults[8],)).fetchone()[0] == 1


@pytest.mark.children
def test_two_runs_at_once_erase_each_child_once(world):
    """Two `airflow dags test` of one approved plan started together: every child erased and recorded once.

    The suite's one pair of concurrent runs kept end to end (child processes): the other DAGs' races are in the
    same kind of SQL claim and are proven at function level (docs/testing.md)."""
    import threading

    conn = world["conn"]
    adults = [r[0] for r in conn.execute(
        """select id from users where declared_age is null and birth_date < now() - interval '30 years'
           and id not in (select user_id from legal_holds) order by id limit 40""")]
    conn.execute("update users set declared_age = 8 where id = any(%s)", (adults,))
    # The dry run in a child process too, on the child home: it registers the DAG there first, so that the twins
    # do not both insert it at once (the second failed on the dag table's key: seen in CI).
    state, log = world.run_child("twins-dry", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    plan_hash = latest_run(conn)[2]
    results = {}
    threads = [threading.Thread(target=lambda n=n: results.update(
        {n: world.run_child(n, conf={"dry_run": False, "approve_plan": plan_hash})})) for n in ("twin-a", "twin-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    assert [results[n][0] for n in ("twin-a", "twin-b")] == ["success", "success"], \
        [results[n][1][-2000:] for n in results]
    assert conn.execute("select count(*) from users where id = any(%s)", (adults,)).fetchone()[0] == 0
    key = support.SUBJECT_KEY.encode()
    purged = conn.execute("""select subject_hash, count(*) from compliance.child_purges
                             where outcome = 'purged' and subject_hash = any(%s) group by 1""",
                          ([user_hash(key, a) for a in adults],)).fetchall()
    assert len(purged) == len(adults) and all(n == 1 for _, n in purged)
    audited = conn.execute("""select count(*) from compliance.audit_log where action = 'child_purge.subject_purged'
                              and details ->> 'subject_hash' = any(%s)""",
                           ([user_hash(key, a) for a in adults],)).fetchone()[0]
    assert audited == len(adults)


def test_no_personal_data_in_task_logs_the_store_or_the_emails(world):
    """After a dry run and a live purge (every run's log is also scanned as it ends: tests/e2e_world.py)."""
    state, log = run_dag(world, "dry-default")
    assert state == "success", log[-3000:]
    purge_the_seeded_children(world)
    conn, pii = world["conn"], world["pii"]
    assert len(pii) > 1000 and len(world["texts"]) >= 3
    assert not support.leaks(pii, "\n".join(world["texts"]))
    store = json.dumps([conn.execute(f"select * from compliance.{t}").fetchall() for t in (
        "child_purge_runs", "child_purges", "child_report_outcomes", "vendor_deletion_notices",
        "child_purge_summaries", "audit_log")], default=str)
    assert not support.leaks(pii, store)
    assert not support.leaks(pii, json.dumps([m["payload"] for m in world["sendgrid"].accepted()]))
