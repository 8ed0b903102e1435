"""End to end: a worker killed (SIGKILL) in the middle of a large purge leaves no half-erased child, and the
retry of the same run completes it, each child erased and recorded exactly once.

``airflow dags test`` in a child process (tests/e2e_world.py) runs the tasks of the run: killing its process group mid-purge is a worker lost in
the middle of ``purge_subjects``. The retry is ``airflow tasks test`` of the same task in the same run (what
Airflow's retry does: same run id, same recorded plan), then of the run's remaining tasks, the three in one child
process; then a new run finds nothing more to do. The plan (400 extra children planted on the seeded data) is approved
headlessly by its hash, so no reviewer is needed.
"""
from __future__ import annotations

import time

import pytest

from include.subjects import user_hash
from tests import purge_support as support
from tests.purge_support import expected_children

pytestmark = [pytest.mark.e2e, pytest.mark.children]
API_KEY = "SG.purge-kill"
PLANTED_CHILDREN = 400


@pytest.fixture
def world(make_world):
    """A clone of a larger seed with the planted children, and the Airflow environment of this test's own."""
    planted = f"""update users set declared_age = 10 where id in (
                      select id from users where birth_date < now() - interval '20 years'
                        and id not in (select user_id from legal_holds) order by id desc limit {PLANTED_CHILDREN})"""
    world = make_world(support.DAG_ID, users=1500, seed=23, sendgrid_key=API_KEY, subject_key=support.SUBJECT_KEY,
                       prepare=planted)
    world["scan_logs"] = False  # as before: this test is about the kill, the other modules scan the logs
    return world


def test_a_worker_killed_mid_purge_leaves_no_half_erased_child_and_the_retry_completes(world):
    conn = world["conn"]
    to_purge, held = expected_children(conn, world["today"])
    assert len(to_purge) > PLANTED_CHILDREN
    before = support.rows_per_user(conn)

    state, log = world.run("dry", conf={"dry_run": True})  # in this process: the plan to approve
    assert state == "success", log[-3000:]
    plan_hash = conn.execute("select plan_hash from compliance.child_purge_runs where dry_run").fetchone()[0]
    conf = {"dry_run": False, "approve_plan": plan_hash}

    # The live run, killed with SIGKILL once it has purged a good part of the plan.
    proc = world.start("killed", conf)
    deadline = time.monotonic() + 600
    while True:
        purged, run_id = conn.execute(
            """select count(*) filter (where c.outcome = 'purged'), max(r.run_id) from compliance.child_purge_runs r
               left join compliance.child_purges c on c.run_id = r.run_id where not r.dry_run""").fetchone()
        if purged >= 150:
            break
        assert proc.poll() is None, (world["logs"] / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    support.kill_group(proc)
    killed_log = (world["logs"] / "killed.log").read_text()
    assert "DagRun Finished" not in killed_log

    # No child is half-erased: each is either wholly there or wholly gone, and nobody else lost anything.
    after = support.rows_per_user(conn)
    gone = {uid for uid in to_purge if uid not in after}
    assert 150 <= len(gone) < len(to_purge)
    for uid, rows in before.items():
        if uid not in gone:
            assert after[uid] == rows, uid
    recorded = conn.execute("select count(*) from compliance.child_purges where run_id = %s and outcome = 'purged'",
                            (run_id,)).fetchone()[0]
    assert recorded <= len(gone) <= recorded + 1  # at most the one in flight was committed but not yet recorded

    # The retry: the killed task again in the same run, then the run's remaining steps.
    result, logs = support.tasks_test(["purge_subjects", "verify_purge", "finish_run"], run_id, world.child_env(),
                                      log_dir=world["logs"])
    assert result.returncode == 0 and all(logs.values()), (result.stdout + result.stderr)[-3000:]
    retry_log = logs["purge_subjects"]
    # A child whose erasure committed just before the kill, but whose record did not, is settled from what
    # the database shows; one whose erasure had not committed is planned again.
    assert f"purging {len(to_purge) - len(gone)} subject(s) of plan {plan_hash}" in retry_log
    assert len(gone) == recorded or "settled 1 record(s) left half-way by an interrupted attempt" in retry_log
    final = support.rows_per_user(conn)
    assert not set(final) & to_purge
    assert {uid: rows for uid, rows in before.items() if uid not in to_purge} == final
    for table in support.PER_USER_TABLES:
        assert conn.execute(f"select count(*) from {table} where user_id = any(%s)", (sorted(to_purge),)).fetchone()[0] == 0

    # Each child purged and recorded exactly once, with its counts; every purge audited once.
    key = support.SUBJECT_KEY.encode()
    rows = conn.execute("""select subject_hash, outcome, tables, user_id, verified_at from compliance.child_purges
                           where run_id = %s""", (run_id,)).fetchall()
    purged = [r for r in rows if r[1] == "purged"]
    assert sorted(r[0] for r in purged) == sorted(user_hash(key, uid) for uid in to_purge)
    assert all(r[2]["public.users"]["rows"] == 1 and r[3] is None and r[4] for r in purged)
    assert {r[1] for r in rows} <= {"purged", "held", "invalid"}
    assert sum(1 for r in rows if r[1] == "held") == len(held)
    audited = conn.execute("""select details ->> 'subject_hash', count(*) from compliance.audit_log
                              where action = 'child_purge.subject_purged' and run_id = %s group by 1""",
                           (run_id,)).fetchall()
    assert len(audited) == len(to_purge) and all(n == 1 for _, n in audited)
    assert conn.execute("select state, approved_by from compliance.child_purge_runs where run_id = %s",
                        (run_id,)).fetchone() == ("purged", "approve_plan parameter")

    # A new run finds nothing more to do.
    before_again = support.checksums(conn)
    state, log = world.run("again", conf={"dry_run": False})
    assert state == "success", log[-3000:]
    assert support.checksums(conn) == before_again
