"""End to end: ``dsr_fulfilment`` through Airflow for real (``dag.test()`` in the test process; ``airflow dags
test`` in a child process where a reviewer answers over REST; tests/e2e_world.py), each test on a clone of seeded
demo data, the export packages uploaded through the Google provider's GCSHook to the GCS emulator: an unknown
conf key, a dry run that changes nothing, a live run (every request type's outcome; packages holding exactly
their subject's rows; erasures with nothing left and held subjects untouched; requests completed and then seen
closed by ``dsr_deadline_tracking``), a second run that does nothing more, the approval
threshold with a plan approved by its hash, and every task log scanned for personal data. Two runs at once are
proven at function level (tests/test_fulfilment.py::test_two_runs_at_once_act_on_each_request_once).
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from include import audit
from include.deadline_rules import REGIME_TYPES
from include.fulfilment.package import object_name
from include.subjects import user_hash
from tests import purge_support as support
pytest.register_assert_rewrite("tests.fulfilment_support")
from tests.fulfilment_support import csv_rows, expected, matches  # noqa: E402

pytestmark = pytest.mark.e2e
DAG_ID = "dsr_fulfilment"
BUCKET = "privacy-evidence"
FULFILLED = ("exported", "erased", "restricted", "opted_out")
EXPORT, ERASE = {"access", "portability", "know"}, {"erasure", "delete"}


@pytest.fixture
def world(make_world):
    """A clone of the seeded database, the GCS emulator and the Airflow environment of this test's own; the
    export packages go to gs://."""
    world = make_world(DAG_ID, users=1500, seed=11, gcs_bucket=BUCKET, evidence="gs")
    world["conn"].execute("set timezone = 'UTC'")
    world["pii"] = support.personal_data(world["conn"], world["today"])
    return world


def run_dag(world, name: str, conf: dict | None = None, env: dict | None = None, dag_id: str = DAG_ID):
    """One real run (``dag.test()`` in this process); its whole log is scanned for every subject's email, name,
    phone, IP and birth date (tests/e2e_world.py)."""
    return world.run(name, dag_id=dag_id, conf=conf, env=env)


def live_run(world) -> None:
    """The state later runs start from: the seeded open requests fulfilled by a live run."""
    state, log = run_dag(world, "live")
    assert state == "success", log[-3000:]


def outcomes(conn) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in conn.execute("""select request_id, outcome, reason, request_completed
                                                 from compliance.dsr_fulfilments order by 1""")}


def store_snapshot(conn) -> dict:
    return {t: conn.execute(f"select count(*), coalesce(md5(string_agg(md5(x::text), '' order by md5(x::text))), '') "
                            f"from compliance.{t} x").fetchone()
            for t in ("dsr_fulfilments", "dsr_fulfilment_pending", "vendor_deletion_notices")}


def objects_snapshot(world) -> dict[str, str]:
    objects = world["objects"]
    return {n: hashlib.sha256(objects.get(n)).hexdigest() for n in objects.list("exports/")}


def expected_outcome(request: tuple, accounts: set[int], held: set[int]) -> str:
    """The oracle, from the raw row: what the policy says this open request gets (docs/dsr_fulfilment.md)."""
    _, user_id, regime, rtype, status, requested, verified = request
    if regime not in REGIME_TYPES or rtype not in REGIME_TYPES[regime]:
        return "invalid"
    if status == "verifying" or (requested is not None and verified is None):
        return "skipped"
    if rtype in ("rectification", "objection"):
        return "manual"
    if user_id is None or (user_id not in accounts and rtype not in ERASE):
        return "no_account"
    if rtype in ERASE:
        return "held" if user_id in held else "erased"
    return {"restriction": "restricted", "opt_out_of_sale": "opted_out"}.get(rtype, "exported")


def open_requests(conn) -> list[tuple]:
    return conn.execute("""select id, user_id, regime, request_type, status, identity_requested_at,
                                  identity_verified_at from privacy_requests
                           where status in ('in_progress', 'verifying') order by id""").fetchall()


def active_holds(conn) -> set[int]:
    return {r[0] for r in conn.execute("select user_id from legal_holds where released_at is null or released_at > now()")}


def test_an_unknown_conf_key_stops_the_run_before_anything_happens(world):
    conn = world["conn"]
    before = support.checksums(conn)
    state, log = run_dag(world, "conf-typo", conf={"dryrun": True})
    assert state == "failed"
    assert ("trigger conf key 'dryrun' is not a parameter of dsr_fulfilment (its parameters: approve_plan, dry_run, "
            "request_ids)") in log
    assert support.checksums(conn) == before
    assert conn.execute("select to_regclass('compliance.dsr_fulfilments')").fetchone()[0] is None  # not even migrated
    assert objects_snapshot(world) == {}


def test_a_dry_run_changes_nothing_and_exports_nothing(world):
    conn = world["conn"]
    before = support.checksums(conn)
    state, log = run_dag(world, "dry", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    assert support.checksums(conn) == before
    assert store_snapshot(conn) == {"dsr_fulfilments": (0, ""), "dsr_fulfilment_pending": (0, ""),
                                    "vendor_deletion_notices": (0, "")}
    assert objects_snapshot(world) == {}
    run_id, plan_hash, state = conn.execute("""select run_id, plan_hash, state from compliance.dsr_fulfilment_runs
                                               order by started_at desc limit 1""").fetchone()
    assert state == "dry_run" and f"approve_plan={plan_hash}" in log
    planned = conn.execute("select count(*) from compliance.dsr_fulfilment_plans where run_id = %s",
                           (run_id,)).fetchone()[0]
    assert planned == len(open_requests(conn))


def test_a_live_run_fulfils_each_request_and_deadline_tracking_sees_them_closed(world):
    conn, p = world["conn"], world["planted"]
    requests = open_requests(conn)
    accounts = {r[0] for r in conn.execute("select id from users")}
    held = active_holds(conn)
    oracle = {r[0]: expected_outcome(r, accounts, held) for r in requests}
    # What each exported package must hold: its subject's rows now (some subjects are erased later in the run).
    exports = {r[0]: r[1] for r in requests if oracle[r[0]] == "exported"}
    flagged = {r[1] for r in requests if oracle[r[0]] in ("restricted", "opted_out")}
    snapshots = {uid: expected(conn, uid) for uid in set(exports.values())}
    rows_before = support.rows_per_user(conn)
    by_user = {uid: {v.lower() for v in row if v and len(v) >= 7} for uid, *row in conn.execute(
        "select id, email, full_name, phone from users")}
    erased_users = {r[1] for r in requests if oracle[r[0]] == "erased" and r[1] in accounts}
    assert len(exports) >= 15 and len(erased_users) >= 3 and "held" in oracle.values()

    state, log = run_dag(world, "live")
    assert state == "success", log[-3000:]
    got = outcomes(conn)
    assert {rid: o for rid, (o, _, _) in got.items()} == oracle  # every open request, each type its outcome

    def outcome(key):
        return {got[i][0] for i in p[key]}

    assert outcome("request_gdpr_on_track") == outcome("request_ccpa_on_track") == {"exported"}
    assert outcome("request_gdpr_valid_extension") == {"exported"}  # portability
    assert outcome("request_gdpr_due_soon") == outcome("request_ccpa_due_soon") == {"erased"}
    assert outcome("request_erasure_held") == {"held"}
    assert outcome("request_restriction_open") == {"restricted"}
    assert outcome("request_ccpa_opt_out_on_track") == {"opted_out"}
    assert outcome("request_rectification_open") == outcome("request_objection_open") == {"manual"}
    assert outcome("request_gdpr_awaiting_identity") == {"skipped"}
    assert outcome("request_user_no_account") == outcome("request_user_missing_account") == {"no_account"}
    assert outcome("request_unknown_regime") == outcome("request_regime_type_mismatch") == {"invalid"}
    for rid in p["request_rectification_open"] + p["request_erasure_held"] + p["request_gdpr_awaiting_identity"]:
        assert got[rid][1]  # each says why, or what a person must do

    # Each package: where the record says, its checksum, its files, exactly its subject's rows, nobody else's.
    for rid, uid in exports.items():
        name, uri, sha, size = conn.execute("""select package_object, package_uri, package_sha256, package_bytes
                                               from compliance.dsr_fulfilments where request_id = %s""",
                                            (rid,)).fetchone()
        assert name == object_name(rid) and uri == f"gs://{BUCKET}/e2e/{name}"
        if uid in erased_users:  # erased later in the run: its package, the subject's answer, is kept to be handed
            # over until export_retention_days (it went with the subject a moment after its upload before)
            assert not conn.execute("select package_deleted_at is not null from compliance.dsr_fulfilments "
                                    "where request_id = %s", (rid,)).fetchone()[0]
            assert conn.execute("select state from compliance.erasure_files where uri = %s",
                                (name,)).fetchone() == ("kept_for_delivery",)
        data = world["objects"].get(name)
        assert hashlib.sha256(data).hexdigest() == sha and len(data) == size
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            files = {n: zf.read(n) for n in zf.namelist()}
        assert json.loads(files["package.json"])["files"] == list(files)
        assert json.loads(files["package.json"])["request"]["id"] == rid
        snapshot = dict(snapshots[uid])
        if uid in flagged:  # the run may restrict or opt out this account before or after exporting it
            account = snapshot.pop(("account", "users"))
            exported = csv_rows(files, "account", "users")
            assert [r[:6] for r in exported] == [r[:6] for r in account]  # all but the three flags
        matches(conn, files, uid, snapshot)
        text = b"\n".join(files.values()).decode().lower()
        others = set().union(*(v for u, v in by_user.items() if u != uid)) - by_user.get(uid, set())
        assert not [v for v in others if v in text], rid

    # Erasures: nothing left of the subjects; the held subject and everyone else untouched.
    rows_after = support.rows_per_user(conn)
    assert not erased_users & set(rows_after)
    held_user = p["hold_active_adult"][0]
    assert rows_after[held_user] == rows_before[held_user]
    assert {u: r for u, r in rows_before.items() if u not in erased_users} == rows_after
    key = world["key"]
    for table in support.PER_USER_TABLES:
        assert conn.execute(f"select count(*) from {table} where user_id = any(%s)",
                            (sorted(erased_users),)).fetchone()[0] == 0, table
    erased_hashes = {r[0] for r in conn.execute("""select subject_hash from compliance.dsr_fulfilments
                                                    where outcome = 'erased' and verified_at is not null
                                                      and user_id is null""")}
    assert erased_hashes == {user_hash(key, uid) for uid in erased_users}
    notices = conn.execute("""select count(*) from compliance.vendor_deletion_notices
                              where source = 'dsr_fulfilment'""").fetchone()[0]
    assert notices >= 1

    # Fulfilled requests are completed; nothing else is.
    status = dict(conn.execute("select id, status from privacy_requests where id = any(%s)", (list(got),)))
    for rid, (o, _, completed) in got.items():
        assert (status[rid] == "completed") == (o in FULFILLED) == completed, rid
    assert audit.verify_chain(conn).ok

    # Deadline tracking, run in the same test, sees them closed.
    state, log = run_dag(world, "deadlines", dag_id="dsr_deadline_tracking", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    states = dict(conn.execute("select request_id, state from compliance.dsr_status"))
    for key_ in ("request_gdpr_on_track", "request_ccpa_on_track", "request_restriction_open",
                 "request_ccpa_opt_out_on_track", "request_gdpr_due_soon"):
        assert {states[i] for i in p[key_]} == {"closed_on_time"}, key_
    assert {states[i] for i in p["request_gdpr_overdue"]} == {"closed_late"}
    assert {states[i] for i in p["request_rectification_open"]} == {"on_track"}  # a person has not acted yet
    # Every fulfilled request is closed, but for those whose own dates tracking cannot judge (out of order).
    dirty = set(p["request_dates_out_of_order"])
    assert {rid: states[rid] for rid, (o, _, _) in got.items() if o in FULFILLED and rid not in dirty
            and states[rid] not in ("closed_on_time", "closed_late")} == {}


def test_a_second_run_does_nothing_more(world):
    live_run(world)
    conn = world["conn"]
    before = (support.checksums(conn), store_snapshot(conn), objects_snapshot(world))
    audit_rows = conn.execute("select max(id) from compliance.audit_log").fetchone()[0]
    state, log = run_dag(world, "again")
    assert state == "success", log[-3000:]
    assert (support.checksums(conn), store_snapshot(conn), objects_snapshot(world)) == before
    actions = [r[0] for r in conn.execute("""select action from compliance.audit_log where id > %s
                                             and dag_id = 'dsr_fulfilment' order by id""", (audit_rows,))]
    assert actions == ["dsr_fulfilment.planned", "dsr_fulfilment.finished"]


def _new_requests(conn, kinds: list[tuple[str, str, int]]) -> list[int]:
    return [conn.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                          acknowledged_at, status)
                            values (%s, 'requester@example.org', %s, %s, now() - interval '3 days',
                                    now() - interval '2 days', 'in_progress') returning id""",
                         (uid, regime, rtype)).fetchone()[0] for regime, rtype, uid in kinds]


def _bulk_users(conn, n: int, skip: int = 0) -> list[int]:
    """Accounts with no legal hold and no request: nothing else in this module touches them."""
    return [r[0] for r in conn.execute(
        """select id from users u where id > 400 and not exists (select from legal_holds h where h.user_id = u.id)
           and not exists (select from privacy_requests r where r.user_id = u.id) order by id offset %s limit %s""",
        (skip, n))]


def test_above_the_threshold_only_the_plan_approved_by_its_hash_is_erased(world):
    live_run(world)
    conn = world["conn"]
    env = {**world["env"], "PRIVACY_SETTINGS": json.dumps({**world["settings"], "purge_threshold": 1})}
    users = _bulk_users(conn, 2, skip=10)
    new = _new_requests(conn, [("gdpr", "erasure", users[0]), ("ccpa", "delete", users[1])])
    state, log = run_dag(world, "threshold-dry", conf={"dry_run": True}, env=env)
    assert state == "success", log[-3000:]
    plan_hash, subjects, approval = conn.execute("""select plan_hash, erase_subjects, approval
                                                    from compliance.dsr_fulfilment_runs
                                                    order by started_at desc limit 1""").fetchone()
    assert (subjects, approval) == (2, "review")

    before = support.checksums(conn)
    state, log = run_dag(world, "threshold-stale", conf={"approve_plan": "0" * 64}, env=env)
    assert state == "failed"
    assert "the erasure plan changed since it was approved" in log and "nothing was erased" in log
    assert support.checksums(conn) == before
    assert {outcomes(conn)[i][0] for i in new} == {"approval_required"}

    state, log = run_dag(world, "threshold-go", conf={"approve_plan": plan_hash}, env=env)
    assert state == "success", log[-3000:]
    assert "Waiting for Human-in-the-loop input" not in log
    assert {outcomes(conn)[i][0] for i in new} == {"erased"}
    assert conn.execute("select count(*) from users where id = any(%s)", (users,)).fetchone()[0] == 0
    assert conn.execute("""select approval, approval_state, approved_by from compliance.dsr_fulfilment_runs
                           order by started_at desc limit 1""").fetchone() == (
        "plan_hash", "approved", "approve_plan parameter")


@pytest.mark.children
def test_a_reviewer_rejects_then_approves_an_erasure_plan_above_the_threshold(world):
    """The human-in-the-loop gate through an api-server: while it waits nothing is erased; Reject erases nothing
    (approval_required); Approve erases exactly the plan."""
    live_run(world)
    conn = world["conn"]
    env = {**world["env"], "PRIVACY_SETTINGS": json.dumps({**world["settings"], "purge_threshold": 1})}
    users = _bulk_users(conn, 2, skip=12)
    new = _new_requests(conn, [("gdpr", "erasure", users[0]), ("gdpr", "erasure", users[1])])
    person = world.reviewer(DAG_ID)
    for option, outcome in (("Reject", "approval_required"), ("Approve", "erased")):
        proc = world.start(f"review-{option}", env=env)
        request = person.wait_for_request(proc)
        plan_hash = conn.execute("""select plan_hash from compliance.dsr_fulfilment_runs
                                    order by started_at desc limit 1""").fetchone()[0]
        assert request["defaults"] == ["Reject"] and "requesters' accounts" in request["subject"]
        assert plan_hash in request["body"] and "| public.users |" in request["body"]
        assert conn.execute("select count(*) from users where id = any(%s)", (users,)).fetchone()[0] == 2
        person.answer(request, option)
        state, text = world.finish(f"review-{option}", proc)  # its log scanned for personal data there
        assert state == "success", text[-3000:]
        got = outcomes(conn)
        assert {got[i][0] for i in new} == {outcome}
        left = conn.execute("select count(*) from users where id = any(%s)", (users,)).fetchone()[0]
        if option == "Reject":
            assert left == 2 and "rejected by reviewer" in got[new[0]][1]
        else:
            assert left == 0
            assert conn.execute("""select approved_by from compliance.dsr_fulfilment_runs
                                   order by started_at desc limit 1""").fetchone()[0] == "reviewer"


def test_no_personal_data_in_the_store_or_the_object_names(world):
    """After a dry run and a live run (every request type; their logs are scanned as every run's is)."""
    state, log = run_dag(world, "dry", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    live_run(world)
    conn, pii = world["conn"], world["pii"]
    assert len(pii) > 1000 and len(world["texts"]) >= 2
    store = json.dumps([conn.execute(f"select * from compliance.{t}").fetchall() for t in (
        "dsr_fulfilments", "dsr_fulfilment_plans", "dsr_fulfilment_runs", "dsr_fulfilment_pending",
        "vendor_deletion_notices", "audit_log")], default=str)
    assert not support.leaks(pii, store)
    assert not support.leaks(pii, "\n".join(world["objects"].list("")))
