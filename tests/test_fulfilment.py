"""The fulfilment's steps as plain functions on a real PostgreSQL (seeded demo data, no Airflow): a dry run
changes nothing, a live run gives every request its outcome and completes the fulfilled ones, a second run
does nothing more, targeted runs, the erasure guards, interruptions settled, two runs at once."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import threading
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from devkit.database import connect
from tests.conftest import ops_datamap
from include import audit
from include.audit import RunContext
from include.config import Settings
from include.erasure import guard
from include.fulfilment import ledger, package, steps
from include.fulfilment.params import FulfilmentParams
from include.objectstore import FileObjectStore
from include.step import Step
from include.subjects import user_hash
from tests.enum_codes import make_enums
from tests.purge_support import OPS_TABLES, checksums, rows_per_user

KEY = b"test-subject-key-0123456789"
STORE_TABLES = ("dsr_fulfilments", "dsr_fulfilment_pending", "vendor_deletion_notices")


# The DAG's approval branch (include.seam.approval.erasure_approval) and its task ids.
REVIEW, IN_ADVANCE = "approve_erasure", "erasure_approved_in_advance"


@pytest.fixture

def world(seeded_clone, tmp_path):
    today = datetime.now(timezone.utc).date()
    # A clone of one seed, its compliance store migrated, made once per test process.
    fresh_db, summary = seeded_clone(users=600, seed=5, anchor=today, store=True)
    with connect(fresh_db, autocommit=True) as ops, connect(fresh_db, autocommit=True) as store:
        yield SimpleNamespace(url=fresh_db, ops=ops, store=store, dm=ops_datamap(), today=today,
                              planted=summary["planted"], settings=Settings(),
                              objects=FileObjectStore(f"file://{tmp_path}/evidence"), tmp=tmp_path)


def ctx(run_id: str) -> RunContext:
    return RunContext(run_id=run_id, actor="test", dag_id="dsr_fulfilment", task_id="test")


def params(world, **kw) -> FulfilmentParams:
    return FulfilmentParams(**{"as_of": world.today, **kw})


def step(world, run_id: str, p: FulfilmentParams | None = None, *, settings: Settings | None = None, approval=None,
         ops=None, store=None) -> Step:
    """The step context a task of the run gets (the seam builds it under Airflow; no object store in a dry run)."""
    p = p or params(world)
    return Step(ctx=ctx(run_id), settings=settings or world.settings, params=p, ops=ops or world.ops,
                store=store or world.store, datamap=world.dm, key=KEY, objects=None if p.dry_run else world.objects,
                approval=approval)


def run(world, run_id: str, p: FulfilmentParams | None = None, settings: Settings | None = None, approval=None,
        ops=None, store=None) -> dict:
    """The DAG's steps in its order, the branch as the DAG takes it."""
    s = step(world, run_id, p, settings=settings, approval=approval, ops=ops, store=store)
    plan = steps.plan_requests(s)
    steps.fulfil_requests(s, workdir=str(world.tmp))
    branch = guard.route(plan, review_task_id=REVIEW, in_advance_task_id=IN_ADVANCE)
    if branch == IN_ADVANCE or (branch == REVIEW and approval):
        steps.erase_requests(s)
        steps.verify_erasures(s)
    finished = steps.finish_run(s)
    return {"plan": plan, "branch": branch, **finished}


def outcomes(store) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in store.execute(
        "select request_id, outcome, reason, request_completed from compliance.dsr_fulfilments order by 1")}


def store_state(store) -> dict:
    return {t: store.execute(f"select count(*), coalesce(md5(string_agg(md5(x::text), '' order by md5(x::text))), '') "
                             f"from compliance.{t} x").fetchone() for t in STORE_TABLES}


def request_rows(ops, ids) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in ops.execute("select id, status, completed_at from privacy_requests where id = any(%s)",
                                             (list(ids),))}


def free_users(ops, n: int, *, own_address: bool = True) -> list[int]:
    """``n`` live accounts with no request and no legal hold (and, with ``own_address``, an address no other account
    has), lowest ids first."""
    only = "and (select count(*) from users o where lower(btrim(o.email)) = lower(btrim(u.email))) = 1" \
        if own_address else ""
    return [r[0] for r in ops.execute(
        f"""select id from users u where deleted_at is null
            and not exists (select 1 from privacy_requests r where r.user_id = u.id)
            and not exists (select 1 from legal_holds h where h.user_id = u.id) {only}
            order by id limit %s""", (n,))]


def test_a_dry_run_changes_nothing_and_exports_nothing(world):
    before_ops, before_store = checksums(world.ops), store_state(world.store)
    result = run(world, "manual__dry", params(world, dry_run=True))
    assert result["state"] == "dry_run" and result["branch"] is None
    assert checksums(world.ops) == before_ops
    assert store_state(world.store) == before_store
    assert world.objects.list("") == []
    planned = dict(world.store.execute("""select request_id, coalesce(outcome, 'to_' || action)
                                           from compliance.dsr_fulfilment_plans where run_id = 'manual__dry'"""))
    p = world.planted
    assert planned[p["request_gdpr_on_track"][0]] == "to_export"
    assert planned[p["request_gdpr_due_soon"][0]] == "to_erase"
    assert planned[p["request_erasure_held"][0]] == "held"
    assert planned[p["request_rectification_open"][0]] == "manual"
    assert result["plan"]["plan_hash"] and result["plan"]["to_erase"] >= 2


def test_a_live_run_gives_every_request_its_outcome(world):
    ops, store, p = world.ops, world.store, world.planted
    held_user = p["hold_active_adult"][0]
    restricted_user, opted_user = p["hold_released_adult"][0], p["do_not_sell"][0]
    gdpr_user, ccpa_user = p["requester_gdpr"][0], p["requester_ccpa"][0]
    before_users = rows_per_user(ops)
    opted_at = ops.execute("select do_not_sell_at from users where id = %s", (opted_user,)).fetchone()[0]
    open_before = dict(ops.execute("select id, status from privacy_requests where status in ('in_progress', "
                                   "'verifying')").fetchall())
    closed_before = ops.execute("select id, status, completed_at from privacy_requests where status not in "
                                "('in_progress', 'verifying') order by id").fetchall()
    result = run(world, "scheduled__1")
    assert result["state"] == "done" and result["branch"] == IN_ADVANCE
    got = outcomes(store)
    assert set(got) == set(open_before)  # every open request has a row, and nothing else does

    def outcome(key):
        return {got[i][0] for i in p[key]}

    assert outcome("request_gdpr_on_track") == {"exported"}
    assert outcome("request_ccpa_on_track") == {"exported"}
    assert outcome("request_gdpr_valid_extension") == {"exported"}  # portability
    assert outcome("request_gdpr_due_soon") == outcome("request_ccpa_due_soon") == {"erased"}
    assert outcome("request_erasure_held") == {"held"}
    assert outcome("request_restriction_open") == {"restricted"}
    assert outcome("request_ccpa_opt_out_on_track") == outcome("request_ccpa_opt_out_overdue") == {"opted_out"}
    assert outcome("request_rectification_open") == outcome("request_objection_open") == {"manual"}
    assert outcome("request_gdpr_awaiting_identity") == {"skipped"}
    assert outcome("request_user_no_account") == outcome("request_user_missing_account") == {"no_account"}
    assert outcome("request_unknown_regime") == outcome("request_regime_type_mismatch") == {"invalid"}
    assert "Art. 16" in got[p["request_rectification_open"][0]][1]
    assert "does not exist" in got[p["request_user_missing_account"][0]][1]
    hold = p["hold_active"][1]
    assert f"active legal hold(s) {hold}" in got[p["request_erasure_held"][0]][1]

    # Fulfilled requests are completed, in the same transaction; nothing else is.
    fulfilled = {i for i, (o, _, _) in got.items() if o in ("exported", "erased", "restricted", "opted_out")}
    statuses = request_rows(ops, got)
    assert fulfilled and all(statuses[i][0] == "completed" and statuses[i][1] is not None for i in fulfilled)
    assert all(got[i][2] for i in fulfilled) and not any(got[i][2] for i in set(got) - fulfilled)
    assert all(statuses[i][0] == open_before[i] for i in set(got) - fulfilled)
    assert [r for r in closed_before if r[0] not in fulfilled] == [
        r for r in ops.execute("select id, status, completed_at from privacy_requests where status not in "
                               "('in_progress', 'verifying') and id <> all(%s) order by id", (sorted(fulfilled),))]

    # The account flags, through the data map.
    assert ops.execute("select processing_restricted from users where id = %s", (restricted_user,)).fetchone()[0]
    assert ops.execute("select do_not_sell, do_not_sell_at from users where id = %s",
                       (opted_user,)).fetchone() == (True, opted_at)  # already opted out: the first date is kept

    # Erased: nothing left of the subjects; the held one and everyone else untouched (but for the flags above).
    erased_hashes = {r[0] for r in store.execute("select subject_hash from compliance.dsr_fulfilments "
                                                 "where outcome = 'erased'")}
    erased_users = {uid for uid in before_users if user_hash(KEY, uid) in erased_hashes}
    assert {gdpr_user, ccpa_user} <= erased_users
    after_users = rows_per_user(ops)
    assert not erased_users & set(after_users)
    assert after_users[held_user] == before_users[held_user]
    assert {u: r for u, r in before_users.items() if u not in erased_users} == after_users
    erased = store.execute("""select request_id, user_id, verified_at, erased_tables, rows_erased
                              from compliance.dsr_fulfilments where outcome = 'erased'""").fetchall()
    assert erased and all(r[1] is None and r[2] is not None for r in erased)  # verified, account ids forgotten
    assert any(r[3].get("public.users", {}).get("rows") == 1 for r in erased)

    # A package whose subject was erased later in the run is kept to be handed over until export_retention_days (it
    # went with the subject before: the subject never got the copy); every one is where the record says.
    exported = store.execute("""select request_id, package_object, package_deleted_at is not null,
                                       subject_hash = any(%s) from compliance.dsr_fulfilments
                                where outcome = 'exported' order by request_id""", (sorted(erased_hashes),)).fetchall()
    assert all(not deleted and world.objects.exists(name) for _, name, deleted, _ in exported)
    rid = next(r for r, _, _, erased_subject in exported if not erased_subject)
    name, sha, size = store.execute("""select package_object, package_sha256, package_bytes
                                       from compliance.dsr_fulfilments where request_id = %s""", (rid,)).fetchone()
    assert name == package.object_name(rid) == f"exports/request={rid}/package.zip"
    data = world.objects.get(name)
    import hashlib

    assert hashlib.sha256(data).hexdigest() == sha and len(data) == size
    # Every recorded outcome is in the audit log, the chain intact.
    audited = store.execute("""select count(*) from compliance.audit_log where run_id = 'scheduled__1'
                               and action like 'dsr_fulfilment.%%' and details ? 'request_id'""").fetchone()[0]
    assert audited == len(got)
    assert audit.verify_chain(store).ok


def _shares_by_subject_and_vendor(ops) -> dict[tuple[str, int], list[int]]:
    return {(user_hash(KEY, uid), vendor): ids for uid, vendor, ids in ops.execute(
        "select user_id, vendor_id, array_agg(id order by id) from data_shares group by 1, 2")}


def test_an_erasures_deletion_notices_name_the_shares_each_vendor_should_delete(world):
    """Before: a notice held the subject's keyed hash (which the vendor cannot compute) and counts, nothing the
    vendor could find the data by; the share ids (the vendor manifests' share_id) went with the erased rows."""
    erased = world.planted["requester_gdpr"][0]  # erased by the run (test_a_live_run_gives_every_request_its_outcome)
    world.ops.execute("""insert into data_shares (vendor_id, user_id, category, purpose, record_count, shared_at)
                         values (1, %s, 'contact', 'analytics', 1, now() - interval '3 days'),
                                (1, %s, 'usage', 'analytics', 2, now() - interval '2 days')""", (erased, erased))
    before = _shares_by_subject_and_vendor(world.ops)
    run(world, "scheduled__1")
    notices = {(h, v): ids for h, v, ids in world.store.execute(
        """select subject_hash, vendor_id, share_ids from compliance.vendor_deletion_notices
           where source = 'dsr_fulfilment'""")}
    assert (user_hash(KEY, erased), 1) in notices and notices == {k: before[k] for k in notices}
    assert not set(_shares_by_subject_and_vendor(world.ops)) & set(notices)  # the shares went with the subjects


def test_a_second_run_does_nothing_more(world):
    run(world, "scheduled__1")
    before = (checksums(world.ops), store_state(world.store),
              {n: world.objects.get(n) for n in world.objects.list("")})
    audit_rows = world.store.execute("select count(*) from compliance.audit_log").fetchone()[0]
    result = run(world, "scheduled__2")
    assert result["outcomes"] == {} and result["branch"] is None
    assert (checksums(world.ops), store_state(world.store),
            {n: world.objects.get(n) for n in world.objects.list("")}) == before
    actions = [r[0] for r in world.store.execute("select action from compliance.audit_log where id > %s order by id",
                                                 (audit_rows,))]
    assert actions == ["dsr_fulfilment.planned", "dsr_fulfilment.finished"]


def test_with_complete_requests_off_nothing_is_completed_and_nothing_is_done_twice(world):
    off = Settings(complete_requests=False)
    rid = world.planted["request_gdpr_on_track"][0]
    before = request_rows(world.ops, [rid])
    run(world, "manual__1", params(world, request_ids=(rid,)), settings=off)
    assert request_rows(world.ops, [rid]) == before  # still in_progress
    assert outcomes(world.store)[rid] == ("exported", None, False)
    audit_rows = world.store.execute("select count(*) from compliance.audit_log").fetchone()[0]
    run(world, "manual__2", params(world, request_ids=(rid,)), settings=off)
    assert world.store.execute("""select count(*) from compliance.audit_log where id > %s
                                  and action = 'dsr_fulfilment.exported'""", (audit_rows,)).fetchone()[0] == 0


def test_with_complete_requests_off_a_run_beside_the_one_that_exported_uploads_nothing_again(world):
    """With complete_requests off the request stays in_progress after its export, so a run that planned it before the
    other run recorded it claimed it, built a package of the rows as they now were and uploaded it over the recorded
    one before finding the request fulfilled: the object no longer matched the SHA-256 its record gives. The claim
    now looks at the store first."""
    import hashlib

    off = Settings(complete_requests=False)
    rid = world.planted["request_gdpr_on_track"][0]
    uid = world.ops.execute("select user_id from privacy_requests where id = %s", (rid,)).fetchone()[0]
    p = params(world, request_ids=(rid,))
    steps.plan_requests(step(world, "manual__a", p, settings=off))
    steps.plan_requests(step(world, "manual__b", p, settings=off))  # planned while the request was not fulfilled
    steps.fulfil_requests(step(world, "manual__a", p, settings=off), workdir=str(world.tmp))
    name, sha = world.store.execute("select package_object, package_sha256 from compliance.dsr_fulfilments "
                                    "where request_id = %s", (rid,)).fetchone()
    world.ops.execute("""insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at)
                         values (%s, 'api_call', 'export', 1, 1, now())""", (uid,))  # the subject's data changes
    (row,) = steps.ledger.plan_rows(world.store, "manual__b", acting=True)
    outcome = steps.act_on_request(step(world, "manual__b", p, settings=off), row, workdir=str(world.tmp))
    assert outcome == steps.ALREADY
    assert hashlib.sha256(world.objects.get(name)).hexdigest() == sha  # the recorded package, as recorded


def know_request_with_one_share(world, received: datetime | None, shared_at, regime: str = "ccpa",
                                request_type: str = "know") -> tuple[int, int]:
    """A CCPA know request (or ``regime``'s ``request_type``; received ``received``, else a day ago) of a user whose
    one share, to the first vendor, is dated ``shared_at`` (a value, or SQL such as ``now() + interval '1 year'``):
    (request id, vendor id)."""
    (uid,) = free_users(world.ops, 1)
    vendor = world.ops.execute("select id from vendors order by id limit 1").fetchone()[0]
    rid = world.ops.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                             status) values (%s, 'x@example.org', %s, %s,
                                                             coalesce(%s, now() - interval '1 day'), 'in_progress')
                               returning id""", (uid, regime, request_type, received)).fetchone()[0]
    world.ops.execute("delete from data_shares where user_id = %s", (uid,))
    when = shared_at if isinstance(shared_at, sql.Composable) else sql.Literal(shared_at)
    world.ops.execute(sql.SQL("""insert into data_shares (vendor_id, user_id, category, purpose, record_count, shared_at)
                                 values (%s, %s, 'contact', 'marketing', 1, {})""").format(when), (vendor, uid))
    return rid, vendor


def package_files(world, rid: int, *names: str) -> list[bytes]:
    """These files of request ``rid``'s recorded package."""
    import io
    import zipfile

    name = world.store.execute("select package_object from compliance.dsr_fulfilments where request_id = %s",
                               (rid,)).fetchone()[0]
    with zipfile.ZipFile(io.BytesIO(world.objects.get(name))) as zf:
        return [zf.read(n) for n in names]


def test_a_know_package_covers_the_twelve_months_before_the_request_was_received(world):
    """CCPA §1798.130(a)(2)(B): the disclosures of the 12 months preceding the receipt of the request. The window
    was the 12 months before the run's day, so a request fulfilled 40 days after its receipt left out the shares of
    the first 40 days of that period (here a vendor the consumer's data went to 340 days before the request)."""
    from include.fulfilment.right_to_know import last_twelve_months

    received = datetime.now(timezone.utc) - timedelta(days=40)
    rid, vendor = know_request_with_one_share(world, received, received - timedelta(days=340))
    run(world, "manual__know", params(world, request_ids=(rid,)))
    assert outcomes(world.store)[rid][0] == "exported"
    shared, readme = package_files(world, rid, "shared_with.json", "README.txt")
    shared = json.loads(shared)
    assert [v["vendor_id"] for v in shared["vendors"]] == [vendor]
    assert shared["period_start"] == last_twelve_months(received.date(), timezone.utc).start.isoformat()
    assert "1 company(ies)" in readme.decode()


def test_an_access_package_names_every_vendor_the_data_went_to_not_only_the_last_twelve_months(world):
    """GDPR Art. 15(1)(c): the recipients to whom the data "have been or will be disclosed", with no period. The
    package of an access (or portability) request gave the CCPA's 12 months before the receipt, so a vendor the
    subject's data went to three years ago was in neither list: the subject was never told of that recipient."""
    received = datetime.now(timezone.utc) - timedelta(days=2)
    for request_type in ("access", "portability"):
        rid, vendor = know_request_with_one_share(world, received, received - timedelta(days=3 * 365), "gdpr",
                                                  request_type)
        run(world, f"manual__{request_type}_all", params(world, request_ids=(rid,)))
        assert outcomes(world.store)[rid][0] == "exported"
        shared, manifest, readme = package_files(world, rid, "shared_with.json", "package.json", "README.txt")
        shared, readme = json.loads(shared), " ".join(readme.decode().split())
        assert [v["vendor_id"] for v in shared["vendors"]] == [vendor] and shared["undated"] == []
        assert shared["period_start"] is None and json.loads(manifest)["shared_with"]["period_start"] is None
        assert "1 company(ies)" in readme and "twelve months" not in readme


def test_a_package_gives_the_purposes_each_vendor_received_the_data_for(world):
    """GDPR Art. 15(1)(a) and CCPA §1798.110(a)(4): the purposes of the disclosures. Each share records its purpose,
    but the package gave them only in the sharing rows of account.json, which do not name the vendor: nobody could
    tell what a vendor received the data for. Now each vendor of shared_with.json/.csv and the README names them."""
    import io

    rid, vendor = know_request_with_one_share(world, None, datetime.now(timezone.utc) - timedelta(days=5))
    uid = world.ops.execute("select user_id from privacy_requests where id = %s", (rid,)).fetchone()[0]
    world.ops.execute("""insert into data_shares (vendor_id, user_id, category, purpose, record_count, shared_at)
                         values (%s, %s, 'usage', 'fraud prevention', 3, now() - interval '3 days')""", (vendor, uid))
    run(world, "manual__purposes", params(world, request_ids=(rid,)))
    shared, shared_csv, readme = package_files(world, rid, "shared_with.json", "shared_with.csv", "README.txt")
    (v,) = json.loads(shared)["vendors"]
    (row,) = list(csv.DictReader(io.StringIO(shared_csv.decode())))
    assert v["purposes"] == ["fraud prevention", "marketing"] and row["purposes"] == "fraud prevention;marketing"
    assert "for fraud prevention, marketing" in " ".join(readme.decode().split())


def test_a_packages_readme_says_what_it_does_not_hold_and_where_to_complain(world):
    """GDPR Art. 15(1)(a), (d), (f)-(h); CCPA §1798.110(a)(2), (4). The records hold no purpose of processing per
    person (beyond each share's), no retention period, no source of what was not collected from the subject and no
    automated decision: the README said nothing of them, nor of the right to complain to a supervisory authority,
    so a requester could not tell that the answer leaves them to the privacy policy. It now says so, links the
    newest published policy, and names the right to complain (a GDPR request) or not to be discriminated against
    (a CCPA request)."""
    version, url = world.ops.execute("select version, url from policy_versions where published_at <= now() "
                                     "order by published_at desc limit 1").fetchone()
    received = datetime.now(timezone.utc) - timedelta(days=2)
    for regime, request_type, right in (("gdpr", "access", "complain to a data protection supervisory authority"),
                                        ("ccpa", "know", "not to be discriminated against")):
        rid, _ = know_request_with_one_share(world, received, received, regime, request_type)
        run(world, f"manual__{regime}_readme", params(world, request_ids=(rid,)))
        (readme,) = package_files(world, rid, "README.txt")
        readme = " ".join(readme.decode().split())
        assert "how long we keep each kind of data" in readme and "automated" in readme, readme
        assert f"privacy policy (version {version}, {url})" in readme and right in readme
        assert "Binary values are \\x followed by hexadecimal" in readme


def test_the_dates_a_package_gives_for_its_shares_are_in_utc_as_its_readme_says(world):
    """The README says times are in UTC, and the rows' times are; the first and last dates of each vendor's shares
    (shared_with.json and .csv) came in the operational database's own zone (here a server set to Los Angeles)."""
    import io

    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=10)
    rid, _ = know_request_with_one_share(world, None, at)
    world.ops.execute("set timezone = 'America/Los_Angeles'")
    run(world, "manual__zone", params(world, request_ids=(rid,)))
    shared, shared_csv, readme = package_files(world, rid, "shared_with.json", "shared_with.csv", "README.txt")
    (shared,) = json.loads(shared)["vendors"]
    (row,) = list(csv.DictReader(io.StringIO(shared_csv.decode())))
    assert "Times are in UTC" in readme.decode()
    assert shared["first_shared"] == shared["last_shared"] == at.isoformat()
    assert row["first_shared"] == at.isoformat()


def test_a_share_dated_after_the_run_is_listed_apart_not_left_out(world):
    """A share whose date is after the time of the run (a typed year, a clock off) is a disclosure that happened:
    the right to know lists it apart with the shares no period can hold, and the README says so. It was in neither
    list: the consumer was not told about that vendor at all."""
    rid, vendor = know_request_with_one_share(world, None, sql.SQL("now() + interval '36 years'"))
    run(world, "manual__future", params(world, request_ids=(rid,)))
    shared, readme = package_files(world, rid, "shared_with.json", "README.txt")
    shared = json.loads(shared)
    assert shared["vendors"] == [] and [v["vendor_id"] for v in shared["undated"]] == [vendor]
    assert "1 more sharing record(s) have no usable date" in readme.decode()


def test_a_targeted_run_acts_only_on_its_targets(world):
    p = world.planted
    target = p["request_restriction_open"][0]
    ineligible = p["request_closed_on_time"][0]
    before = checksums(world.ops)
    result = run(world, "manual__t", params(world, request_ids=(target, ineligible, 10**9)))
    assert set(outcomes(world.store)) == {target}
    changed = {t for t in OPS_TABLES if checksums(world.ops)[t] != before[t]}
    assert changed == {"users", "privacy_requests"}
    counts = result["plan"]["counts"]
    assert counts["not_found"] == [10**9] and counts["not_open"] == {str(ineligible): "completed"}


def test_a_run_targeting_thousands_of_unknown_ids_logs_a_few_and_how_many(world, caplog):
    """Found by a fault trial: a targeted run naming 10,000 ids no request has logged every one of them in one line
    (59 kB in the task log). The log names the first few and how many in all; the plan's counts keep every id."""
    import logging

    caplog.set_level(logging.INFO)
    unknown = tuple(range(10**9, 10**9 + 3000))
    result = run(world, "manual__many", params(world, request_ids=unknown))
    assert result["plan"]["counts"]["not_found"] == list(unknown)  # the evidence keeps them all
    line = next(r.getMessage() for r in caplog.records if "not found" in r.getMessage())
    assert len(line) < 400, len(line)
    assert "1000000000, 1000000001" in line and "and 2,980 more (3,000 in all)" in line, line


def test_above_the_threshold_nothing_is_erased_without_approval(world):
    low = Settings(purge_threshold=1)
    before_users = rows_per_user(world.ops)
    result = run(world, "manual__wait", settings=low)  # nobody answers: the timeout applies Reject
    assert result["branch"] == REVIEW and result["state"] == "rejected"
    erase_ids = [r.request_id for r in ledger.plan_rows(world.store, "manual__wait", acting=True, actions=("erase",))]
    got = outcomes(world.store)
    assert erase_ids and {got[i][0] for i in erase_ids} == {"approval_required"}
    assert "timed out" in got[erase_ids[0]][1]
    after = rows_per_user(world.ops)
    assert all(after.get(uid) == rows for uid, rows in before_users.items()
               if uid not in (world.planted["hold_released_adult"][0],))  # only the restriction changed a row
    with pytest.raises(guard.NotApproved, match="no person approved it"):
        steps.erase_requests(step(world, "manual__wait", settings=low))
    # A reviewer's approval (as PlanApproval records it) erases exactly that plan.
    answer = {"chosen_options": ["Approve"], "responded_by_user": {"id": "r", "name": "reviewer"}, "timed_out": False}
    result = run(world, "manual__approved", settings=low, approval=answer)
    got = outcomes(world.store)
    assert {got[i][0] for i in erase_ids} == {"erased"}
    assert world.store.execute("select approved_by from compliance.dsr_fulfilment_runs where run_id = 'manual__approved'"
                               ).fetchone()[0] == "reviewer"


def test_a_plan_approved_by_its_hash_runs_and_a_changed_one_does_not(world):
    low = Settings(purge_threshold=1)
    dry = run(world, "manual__dry", params(world, dry_run=True), settings=low)
    approved = dry["plan"]["plan_hash"]
    # The plan changes: one more erasure request.
    uid = world.planted["clean_adult"][2]
    world.ops.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                      status) values (%s, 'x@example.org', 'gdpr', 'erasure', now(),
                                                      'in_progress')""", (uid,))
    before_users = rows_per_user(world.ops)
    with pytest.raises(guard.PlanChanged, match="changed since it was approved"):
        run(world, "manual__stale", params(world, approve_plan=approved), settings=low)
    assert all(uid in rows_per_user(world.ops) for uid in before_users)  # no account was erased
    assert {o for o, _, _ in outcomes(world.store).values()} >= {"approval_required", "exported"}
    world.ops.execute("delete from privacy_requests where user_id = %s and request_type = 'erasure'", (uid,))
    result = run(world, "manual__go", params(world, approve_plan=approved), settings=low)
    assert result["state"] == "done" and uid in rows_per_user(world.ops)
    assert world.store.execute("select approved_by from compliance.dsr_fulfilment_runs where run_id = 'manual__go'"
                               ).fetchone()[0] == "approve_plan parameter"
    assert world.planted["requester_gdpr"][0] not in rows_per_user(world.ops)


def test_the_rest_of_an_approved_erasure_plan_is_still_approved_after_another_run_carried_it_out(world):
    """The same approved hash given again after a run carried the plan out (a re-trigger, a second engineer):
    nothing is left of it, so the run succeeds and erases nothing; a new erasure request is beyond it."""
    low = Settings(purge_threshold=1)
    dry = run(world, "manual__dry", params(world, dry_run=True), settings=low)
    approved = dry["plan"]["plan_hash"]
    first = run(world, "manual__first", params(world, approve_plan=approved), settings=low)
    assert first["state"] == "done"
    erased = outcomes(world.store)
    again = run(world, "manual__again", params(world, approve_plan=approved), settings=low)
    assert again["state"] == "done" and outcomes(world.store) == erased
    uid = world.planted["clean_adult"][2]
    world.ops.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                      status) values (%s, 'x@example.org', 'gdpr', 'erasure', now(),
                                                      'in_progress')""", (uid,))
    with pytest.raises(guard.PlanChanged, match="changed since it was approved"):
        run(world, "manual__beyond", params(world, approve_plan=approved), settings=low)
    assert uid in rows_per_user(world.ops)


def test_a_hold_placed_after_planning_is_found_under_the_claim(world):
    p = world.planted
    s = step(world, "manual__h")
    steps.plan_requests(s)
    gdpr_user = p["requester_gdpr"][0]
    hold = world.ops.execute("insert into legal_holds (user_id, reason, placed_at) values (%s, 'litigation', now()) "
                             "returning id", (gdpr_user,)).fetchone()[0]
    before = rows_per_user(world.ops)[gdpr_user]
    steps.erase_requests(s)
    assert rows_per_user(world.ops)[gdpr_user] == before
    rid = p["request_gdpr_due_soon"][0]
    assert outcomes(world.store)[rid][0] == "held" and str(hold) in outcomes(world.store)[rid][1]
    assert request_rows(world.ops, [rid])[rid][0] == "in_progress"


class Crash(Exception):
    pass


def test_a_worker_dying_after_the_commit_leaves_a_record_the_next_attempt_settles(world, monkeypatch):
    rid = world.planted["request_restriction_open"][0]
    real = ledger.finalize

    def die(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(ledger, "finalize", die)
    with pytest.raises(Crash):
        run(world, "manual__crash", params(world, request_ids=(rid,)))
    monkeypatch.setattr(ledger, "finalize", real)
    assert request_rows(world.ops, [rid])[rid][0] == "completed"  # the operational transaction committed
    assert rid not in outcomes(world.store)
    assert [r[0] for r in ledger.pending(world.store)] == [rid]
    # The retry (or any later run) asks PostgreSQL whether that transaction committed, and records it.
    run(world, "manual__crash", params(world, request_ids=(rid,)))
    assert outcomes(world.store)[rid] == ("restricted", None, True) and not ledger.pending(world.store)
    assert world.store.execute("""select count(*) from compliance.audit_log where action = 'dsr_fulfilment.restricted'
                                  and details ->> 'settled_after_interruption' = 'true'""").fetchone()[0] == 1


def test_a_worker_dying_before_the_commit_leaves_nothing_done_and_the_request_is_acted_on_again(world, monkeypatch):
    rid = world.planted["request_restriction_open"][0]
    uid = world.planted["hold_released_adult"][0]
    real = ledger.write_pending

    def write_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise Crash()

    monkeypatch.setattr(ledger, "write_pending", write_then_die)
    with pytest.raises(Crash):
        run(world, "manual__crash", params(world, request_ids=(rid,)))
    monkeypatch.setattr(ledger, "write_pending", real)
    assert request_rows(world.ops, [rid])[rid][0] == "in_progress"  # rolled back
    assert not world.ops.execute("select processing_restricted from users where id = %s", (uid,)).fetchone()[0]
    assert [r[0] for r in ledger.pending(world.store)] == [rid]
    run(world, "manual__crash", params(world, request_ids=(rid,)))
    assert not ledger.pending(world.store) and outcomes(world.store)[rid][0] == "restricted"
    assert world.ops.execute("select processing_restricted from users where id = %s", (uid,)).fetchone()[0]


def test_a_failed_upload_leaves_no_record_and_the_request_open(world):
    rid = world.planted["request_gdpr_on_track"][0]

    class Refusing(FileObjectStore):
        def put_file(self, *args, **kwargs):
            from include.objectstore import ObjectStoreUnavailable

            raise ObjectStoreUnavailable("could not reach the store")

    world.objects = Refusing(f"file://{world.tmp}/refusing")
    from include.objectstore import ObjectStoreUnavailable

    with pytest.raises(ObjectStoreUnavailable):
        run(world, "manual__up", params(world, request_ids=(rid,)))
    assert request_rows(world.ops, [rid])[rid][0] == "in_progress"
    assert rid not in outcomes(world.store) and not ledger.pending(world.store)


def test_two_runs_at_once_act_on_each_request_once(world):
    """Two runs started together (their own connections, as two workers): every request is exported, restricted,
    opted out or erased by exactly one of them, and recorded once."""
    new = [world.ops.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                             status) values (%s, 'x@example.org', 'gdpr', 'access',
                                                             now() - interval '2 days', 'in_progress') returning id""",
                             (uid,)).fetchone()[0] for uid in range(40, 80)]
    errors = []
    barrier = threading.Barrier(2)

    def worker(name):
        try:
            with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
                barrier.wait()
                run(world, name, ops=ops, store=store)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("scheduled__a", "manual__b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    got = outcomes(world.store)
    assert {got[i][0] for i in new} == {"exported"}
    acted = world.store.execute("""select details ->> 'request_id', count(*) from compliance.audit_log
                                   where action in ('dsr_fulfilment.exported', 'dsr_fulfilment.erased',
                                                    'dsr_fulfilment.restricted', 'dsr_fulfilment.opted_out')
                                   group by 1""").fetchall()
    assert acted and all(n == 1 for _, n in acted)
    assert len(acted) == sum(1 for o, _, _ in got.values() if o in ("exported", "erased", "restricted", "opted_out"))
    assert not ledger.pending(world.store)


def test_an_export_whose_request_another_run_completes_under_its_snapshot_is_left_to_that_run(world, monkeypatch):
    """The export's snapshot is taken, then another run completes the request and commits before the claim
    reaches the row (the race two runs at once hit): nothing is exported twice and the run goes on."""
    from include.fulfilment import source

    run(world, "manual__dry", params(world, dry_run=True))
    access = next(r for r in steps.ledger.plan_rows(world.store, "manual__dry") if r.action == "export")
    real_claim = source.claim

    def claim_after_a_concurrent_commit(ops, dm, request_ids):
        ops.execute("select 1")  # the snapshot of the export's repeatable-read transaction
        with connect(world.url, autocommit=True) as other:
            other.execute("update privacy_requests set status = 'completed', completed_at = now() where id = any(%s)",
                          (list(request_ids),))
        return real_claim(ops, dm, request_ids)

    monkeypatch.setattr(source, "claim", claim_after_a_concurrent_commit)
    plan = steps.plan_requests(step(world, "manual__race"))
    assert plan["state"] == "planned"
    row = next(r for r in steps.ledger.plan_rows(world.store, "manual__race") if r.request_id == access.request_id)
    outcome = steps.act_on_request(step(world, "manual__race"), row, workdir=str(world.tmp))
    assert outcome == steps.CLAIMED
    assert access.request_id not in outcomes(world.store)  # nothing recorded, nothing uploaded by this run
    assert not list(world.objects.list(f"exports/request={access.request_id}/"))


def test_a_request_completed_after_the_plan_is_said_to_be_done_not_left_to_the_next_run(world, caplog):
    """Found by a fault trial: requests the run beside it had just exported and completed were logged 'changed;
    left to the next run', though nothing is left for any run. A request completed since the plan is done."""
    import logging

    run(world, "manual__dry2", params(world, dry_run=True))
    access = next(r for r in steps.ledger.plan_rows(world.store, "manual__dry2") if r.action == "export")
    plan = steps.plan_requests(step(world, "manual__done"))
    assert plan["state"] == "planned"
    row = next(r for r in steps.ledger.plan_rows(world.store, "manual__done") if r.request_id == access.request_id)
    world.ops.execute("update privacy_requests set status = 'completed', completed_at = now() where id = %s",
                      (access.request_id,))
    with caplog.at_level(logging.INFO, logger="include.fulfilment.steps"):
        outcome = steps.act_on_request(step(world, "manual__done"), row, workdir=str(world.tmp))
    assert outcome == steps.ALREADY
    assert f"request {access.request_id}: completed meanwhile" in caplog.text and "next run" not in caplog.text
    assert not list(world.objects.list(f"exports/request={access.request_id}/"))


def test_a_request_held_by_another_transaction_is_left_to_it_and_a_locked_account_is_retried(world, monkeypatch):
    """The request row locked elsewhere (another run acting on it): skipped, no error, nothing recorded. The
    account row locked past the lock timeout (the application, the purge): the task fails to be retried."""
    p = world.planted
    export, restriction = p["request_gdpr_on_track"][0], p["request_restriction_open"][0]
    monkeypatch.setattr(steps, "LOCK_TIMEOUT_MS", 300)
    with connect(world.url) as other:
        other.execute("select 1 from privacy_requests where id = %s for update", (export,))
        other.execute("select 1 from users where id = %s for update", (p["hold_released_adult"][0],))
        with pytest.raises(steps.RequestsBusy, match="stayed locked by other transactions"):
            run(world, "manual__locked", params(world, request_ids=(export, restriction)))
        got = outcomes(world.store)
        assert export not in got and restriction not in got and not ledger.pending(world.store)
        assert request_rows(world.ops, [export, restriction]) == {export: ("in_progress", None),
                                                                 restriction: ("in_progress", None)}
    # Once the other transaction is gone, the retry of the same run acts on both.
    steps.fulfil_requests(step(world, "manual__locked", params(world, request_ids=(export, restriction))))
    assert {outcomes(world.store)[i][0] for i in (export, restriction)} == {"exported", "restricted"}


def test_a_request_with_an_impossible_date_is_invalid_and_its_subject_untouched_while_the_others_are_fulfilled(world):
    """The QA trial's four requests (identity verified in 2099, an erasure received in 2099, a receipt at
    -infinity, a delete received in 1970): each recorded invalid with a reason naming the column and the problem,
    nothing exported or erased, the request left open; a good export and a good erasure beside them are done."""
    ops, store = world.ops, world.store
    users = free_users(ops, 6)
    assert len(users) == 6

    def add(uid, regime, rtype, received, requested=None, verified=None):
        return ops.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                           identity_requested_at, identity_verified_at, status)
                              values (%s, 'x@example.org', %s, %s, %s, %s, %s, 'in_progress') returning id""",
                           (uid, regime, rtype, received, requested, verified)).fetchone()[0]

    now = datetime.now(timezone.utc)
    days_ago = {n: now - timedelta(days=n) for n in (1, 2, 3)}
    bad = {
        add(users[0], "gdpr", "access", days_ago[3], days_ago[2], "2099-01-01 00:00+00"):
            "identity_verified_at 2099-01-01 00:00:00+00:00 is in the future (after the time of this run)",
        add(users[1], "gdpr", "erasure", "2099-01-01 00:00+00"):
            "received_at 2099-01-01 00:00:00+00:00 is in the future (after the time of this run)",
        add(users[2], "ccpa", "know", "-infinity"): "received_at holds -infinity",
        add(users[3], "ccpa", "delete", "1970-01-01 00:00+00"): "received_at 1970-01-01 is before the earliest "
                                                                "plausible date 2000-01-01",
    }
    export, erase = add(users[4], "gdpr", "access", days_ago[1]), add(users[5], "ccpa", "delete", days_ago[1])
    bad_users = users[:4]
    before_users = rows_per_user(ops)
    before_rows = {u: ops.execute("select u::text from users u where id = %s", (u,)).fetchone()[0] for u in bad_users}
    before_requests = request_rows(ops, bad)

    result = run(world, "manual__dates", params(world, request_ids=(*bad, export, erase)))
    assert result["state"] == "done"
    got = outcomes(store)
    assert {i: got[i] for i in bad} == {i: ("invalid", reason, False) for i, reason in bad.items()}
    assert got[export][0] == "exported" and got[erase][0] == "erased"

    after_users = rows_per_user(ops)
    assert users[5] not in after_users  # the good erasure erased its subject
    for u in bad_users:  # every row of the bad requests' subjects is as it was
        assert after_users[u] == before_users[u]
        assert ops.execute("select u::text from users u where id = %s", (u,)).fetchone()[0] == before_rows[u]
    assert request_rows(ops, bad) == before_requests  # still in_progress, not completed
    exported = set(world.objects.list("exports/"))
    assert package.object_name(export) in exported
    assert not [n for n in exported for i in bad if n.startswith(f"exports/request={i}/")]
    assert store.execute("""select count(*) from compliance.audit_log where action in ('dsr_fulfilment.exported',
                            'dsr_fulfilment.erased') and (details ->> 'request_id')::bigint = any(%s)""",
                         (list(bad),)).fetchone()[0] == 0

    # The same reasons on the next run: nothing rewritten, nothing acted on.
    before = store_state(store)
    run(world, "manual__dates2", params(world, request_ids=(*bad, export, erase)))
    assert store_state(store) == before and request_rows(ops, bad) == before_requests


def test_an_opt_out_after_opting_back_in_is_dated_now(world):
    """Found by a fault trial: an account that had opted out in 2024 and back in since (do_not_sell false, the old
    date left) opted out again and kept the 2024 date, which dated the opt-out before every share made while it
    was opted in. The new opt-out is dated now; one already in force keeps its first date."""
    from include.fulfilment import source

    ops = world.ops
    uid = ops.execute("select max(id) + 1 from users").fetchone()[0]
    ops.execute("insert into users (id, email, created_at, do_not_sell, do_not_sell_at) "
                "values (%s, null, now() - interval '3 years', false, '2024-01-01 00:00+00')", (uid,))
    now = datetime(2026, 12, 7, 6, 0, tzinfo=timezone.utc)
    assert source.opt_out_of_sale(ops, world.dm, uid, now)
    assert ops.execute("select do_not_sell, do_not_sell_at from users where id = %s", (uid,)).fetchone() == (True, now)
    assert not source.opt_out_of_sale(ops, world.dm, uid, now + timedelta(days=1))
    assert ops.execute("select do_not_sell_at from users where id = %s", (uid,)).fetchone() == (now,)
    ops.execute("delete from users where id = %s", (uid,))


def test_export_packages_expire_after_the_configured_days(world):
    """Export packages are personal data: a run deletes those older than export_retention_days; newer ones stay; a
    dry run deletes nothing, nor does a run targeted at other requests."""
    run(world, "manual__first")
    packages = world.store.execute("""select request_id, package_object from compliance.dsr_fulfilments
                                      where package_object is not null and package_deleted_at is null
                                      order by 1""").fetchall()
    assert packages
    (old_id, old_name) = packages[0]
    new_id, new_name = 999_999, "exports/request=999999/package.zip"  # a package recorded just now
    world.objects.put(new_name, b"zip")
    world.store.execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, package_object,
                               package_uri, package_sha256, run_id, first_recorded_at, recorded_at)
                           values (%s, 'export', 'exported', %s, 'file:///x', repeat('b', 64), 'r', now(), now())""",
                        (new_id, new_name))
    world.store.execute("update compliance.dsr_fulfilments set recorded_at = now() - interval '8 days', "
                        "package_made_at = now() - interval '8 days' where request_id = %s", (old_id,))
    settings = Settings(export_retention_days=7)
    run(world, "manual__dry_later", params(world, dry_run=True), settings=settings)
    assert world.objects.exists(old_name)  # a dry run deletes nothing
    # Found by a fault trial: a run targeted at other requests deleted this one's package. It acts on its own only.
    run(world, "manual__targeted_later", params(world, request_ids=(new_id,)), settings=settings)
    assert world.objects.exists(old_name)
    result = run(world, "manual__later", settings=settings)
    assert result["state"] == "done"
    assert not world.objects.exists(old_name) and world.objects.exists(new_name)
    deleted = dict(world.store.execute("select request_id, package_deleted_at is not null from compliance.dsr_fulfilments "
                                       "where request_id = any(%s)", ([old_id, new_id],)).fetchall())
    assert deleted == {old_id: True, new_id: False}


def test_a_package_no_record_names_expires_too(world):
    """An upload whose transaction did not commit (the connection lost at its commit, the compliance store gone
    before the record) left a package no record names; when its request was not exported again (withdrawn,
    closed), no expiry and no erasure ever found it: personal data kept for good. Past export_retention_days it
    is deleted like a recorded one; a newer one (perhaps a running export's) and a recorded one stay."""
    objects = world.objects
    old_orphan, new_orphan = "exports/request=900101/package.zip", "exports/request=900102/package.zip"
    recorded = "exports/request=900103/package.zip"
    for name in (old_orphan, new_orphan, recorded):
        objects.put(name, b"zip")
    world.store.execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, package_object,
                               package_uri, package_sha256, run_id, first_recorded_at, recorded_at)
                           values (900103, 'export', 'exported', %s, 'file:///x', repeat('b', 64), 'r', now(), now())""",
                        (recorded,))
    eight_days_ago = (datetime.now(timezone.utc) - timedelta(days=8)).timestamp()
    for name in (old_orphan, recorded):
        os.utime(world.tmp / "evidence" / name, (eight_days_ago, eight_days_ago))
    objects.put("exports/notes.txt", b"not a package")
    os.utime(world.tmp / "evidence" / "exports/notes.txt", (eight_days_ago, eight_days_ago))
    result = run(world, "manual__orphans", settings=Settings(export_retention_days=7))
    assert result["state"] == "done"
    assert not objects.exists(old_orphan)
    assert objects.exists(new_orphan) and objects.exists(recorded) and objects.exists("exports/notes.txt")
    expired = world.store.execute("""select details from compliance.audit_log
                                     where action = 'dsr_fulfilment.packages_expired' and run_id = %s""",
                                  ("manual__orphans",)).fetchone()[0]
    assert expired["unrecorded"] == [900101] and 900101 in expired["requests"]


def test_a_package_the_store_refuses_to_delete_leaves_the_others_expired_and_the_run_finished(world):
    """One expired package the object store refused to delete (a retention policy, a hold; here a file where its
    folder should be) failed finish_run at once: the packages after it were kept past export_retention_days, on
    every later run too, and the run was never recorded finished. The others are now deleted, the run recorded,
    and it fails at its end in one sentence naming the request."""
    from include.objectstore import ObjectStoreRefused

    (world.tmp / "evidence" / "exports").mkdir(parents=True)
    (world.tmp / "evidence" / "exports" / "request=900001").write_bytes(b"not a folder")
    world.objects.put("exports/request=900002/package.zip", b"zip")
    for rid in (900001, 900002):
        world.store.execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, package_object,
                                   package_uri, package_sha256, run_id, first_recorded_at, recorded_at)
                               values (%s, 'export', 'exported', %s, 'file:///x', repeat('b', 64), 'r',
                                       now() - interval '40 days', now() - interval '40 days')""",
                            (rid, f"exports/request={rid}/package.zip"))
    with pytest.raises(ObjectStoreRefused, match="^1 export package.s. past export_retention_days could not be "
                                                  "deleted .request 900001.: "):
        run(world, "scheduled__expire")
    assert not world.objects.exists("exports/request=900002/package.zip")
    deleted = dict(world.store.execute("select request_id, package_deleted_at is not null from compliance.dsr_fulfilments "
                                       "where request_id in (900001, 900002)").fetchall())
    assert deleted == {900001: False, 900002: True}
    assert world.store.execute("select state from compliance.dsr_fulfilment_runs where run_id = 'scheduled__expire'"
                               ).fetchone()[0] == "done"


def test_a_refused_package_no_record_names_removed_by_hand_leaves_needs_a_person(world):
    """Found by a review: a package no record names (an upload whose transaction did not commit) that the object store
    refused to delete was counted in 'Needs a person' from the newest expiry's audit entry. Removed by hand (the hold
    lifted, the file deleted out of band), the next run found nothing left to expire and wrote no entry, so the
    newest one still named it and the page counted it for good. The next untargeted live run now says nothing is kept
    any more."""
    from include.reads import attention

    def kept() -> int:
        items = attention.needs_a_person(world.store, now=datetime.now(timezone.utc), approval_timeout=timedelta(hours=8))
        return next(i.count for i in items if i.key == "packages_kept")

    audit.append(world.store, "dsr_fulfilment.packages_expired", {
        "requests": [], "not_deleted": [900101], "unrecorded": [900101], "older_than_days": 30},
        actor=RunContext(run_id="scheduled__refused", actor="test", dag_id="dsr_fulfilment"))
    assert kept() == 1
    run(world, "manual__dry_after", params(world, dry_run=True))  # a dry run looks at no package
    assert kept() == 1
    assert run(world, "scheduled__after")["state"] == "done"  # the package is gone: nothing for it to expire
    assert kept() == 0
    (entry,) = world.store.execute("""select details from compliance.audit_log
                                      where action = 'dsr_fulfilment.packages_expired' and run_id = 'scheduled__after'
                                   """).fetchone()
    assert entry["not_deleted"] == [] and entry["requests"] == []


def test_a_package_whose_subject_is_erased_in_the_same_run_is_kept_for_delivery_until_it_expires(world, monkeypatch):
    """Found by the demo (16 of 30 packages): a subject who asked for a copy of their data and for its erasure got the
    copy made first, then the erasure deleted it with the rest of their data a moment after its upload, while the
    access request was recorded `exported` and completed: the subject never got the copy they are owed. The erasure
    now keeps a package still within export_retention_days, records it kept (why, until when), its verification
    passes, and the expiry deletes it then; an older package goes with the subject as before. Packages in GCS,
    through the real client against the emulator."""
    from devkit.standins.gcs_emulator import GCSEmulator
    from include.seam.storage import object_store

    ops, store = world.ops, world.store
    both, old = free_users(ops, 2)
    access_id, erasure_id = new_request(ops, both, "access"), new_request(ops, both, "erasure")
    old_erasure = new_request(ops, old, "erasure")
    with GCSEmulator(default_bucket="evidence-test") as emulator:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.base_url)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                           '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}')
        world.objects = objects = object_store("gs://evidence-test/tenant-a")
        old_name = "exports/request=900201/package.zip"  # the other subject's package from 40 days ago
        objects.put(old_name, b"zip")
        store.execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, subject_hash, package_object,
                             package_uri, package_sha256, run_id, first_recorded_at, recorded_at)
                         values (900201, 'export', 'exported', %s, %s, 'gs://x', repeat('b', 64), 'r',
                                 now() - interval '40 days', now() - interval '40 days')""", (user_hash(KEY, old), old_name))
        assert run(world, "scheduled__both")["state"] == "done"
        got = outcomes(store)
        assert (got[access_id][0], got[erasure_id][0], got[old_erasure][0]) == ("exported", "erased", "erased")
        name, deleted_at, made = store.execute("""select package_object, package_deleted_at, package_made_at
                                                  from compliance.dsr_fulfilments where request_id = %s""",
                                               (access_id,)).fetchone()
        assert objects.exists(name) and deleted_at is None  # the subject's answer, there to be handed over
        assert got[access_id][2]  # completed, now truthfully
        assert ops.execute("select count(*) from users where id = %s", (both,)).fetchone()[0] == 0
        kept = store.execute("""select kind, state, kept_until, kept_reason from compliance.erasure_files
                                where subject_hash = %s""", (user_hash(KEY, both),)).fetchall()
        until = made + timedelta(days=world.settings.export_retention_days)
        assert [k[:3] for k in kept] == [("export_package", "kept_for_delivery", until)]
        assert f"privacy request {access_id}" in kept[0][3]
        verified = store.execute("""select verified_at is not null from compliance.dsr_fulfilments
                                    where request_id = %s""", (erasure_id,)).fetchone()[0]
        assert verified  # a kept package is no residue
        # The package past export_retention_days went with its subject, as before.
        assert not objects.exists(old_name)
        assert store.execute("select state, kept_until from compliance.erasure_files where uri = %s",
                             (old_name,)).fetchone() == ("deleted", None)

        store.execute("update compliance.dsr_fulfilments set recorded_at = recorded_at - interval '31 days', "
                      "package_made_at = package_made_at - interval '31 days' where request_id = %s", (access_id,))
        assert run(world, "scheduled__later")["state"] == "done"
        assert not objects.exists(name)
        assert store.execute("select package_deleted_at is not null from compliance.dsr_fulfilments "
                             "where request_id = %s", (access_id,)).fetchone()[0]
        assert store.execute("""select state, done_at > found_at, kept_until from compliance.erasure_files
                                where subject_hash = %s""", (user_hash(KEY, both),)).fetchall() == [
            ("deleted", True, until)]


def erase_on_connections_of_its_own(world, uid: int, **options):
    """The erasure engine on subject ``uid`` as another DAG's run erases it (a purge): its own operational and store
    connections, every store; ``options``: more of :class:`include.erasure.EraseOptions`."""
    from include import erasure
    from include.erasure.stores import access_of

    with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
        s = step(world, "scheduled__purge", ops=ops, store=store)
        return erasure.erase_subject(ops, world.dm, uid, KEY, at=datetime.now(timezone.utc),
                                     options=erasure.EraseOptions(stores=access_of(s), **options))


def test_an_export_racing_an_erasure_of_its_subject_leaves_its_package_known_to_the_erasure(world):
    """Found by a fault trial: an export built its package from its snapshot while an erasure of the same account
    (the child purge, or a second run) deleted the rows and read the subject's earlier packages; the export then
    committed, and its package of the erased person's rows stayed in the evidence store until
    export_retention_days, known to no erasure. The export now holds the account (FOR SHARE) until its record is
    written: the erasure waits for it and records the package with the subject's files: kept for delivery until
    export_retention_days (the subject's answer: deleted, they never got it), when the expiry deletes it."""
    from include import erasure

    p = world.planted
    rid = p["request_gdpr_on_track"][0]
    uid = world.ops.execute("select user_id from privacy_requests where id = %s", (rid,)).fetchone()[0]
    uploaded, go, errors, erased = threading.Event(), threading.Event(), [], []

    class PausingStore(FileObjectStore):
        def put_file(self, *args, **kw):
            uri = super().put_file(*args, **kw)
            uploaded.set()  # the package is in the bucket; its transaction has not committed
            go.wait(60)
            return uri

    def export():
        try:
            with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
                s = step(world, "manual__export", params(world, request_ids=(rid,)), ops=ops, store=store)
                s = dataclasses.replace(s, objects=PausingStore(f"file://{world.tmp}/evidence"))
                steps.plan_requests(s)
                steps.fulfil_requests(s, workdir=str(world.tmp))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            uploaded.set()

    def erase():
        try:
            erased.append(erase_on_connections_of_its_own(world, uid, wait=True))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    exporter = threading.Thread(target=export)
    exporter.start()
    assert uploaded.wait(120)
    # The application's own update of the account (a login) does not wait for the export.
    with world.ops.transaction():
        world.ops.execute("set local lock_timeout = 2000")
        assert world.ops.execute("update users set full_name = full_name where id = %s", (uid,)).rowcount == 1
    eraser = threading.Thread(target=erase)
    eraser.start()
    deadline, waited = datetime.now(timezone.utc) + timedelta(seconds=30), False
    while eraser.is_alive() and datetime.now(timezone.utc) < deadline:  # until it waits for the export, or is done
        waited = world.ops.execute("select count(*) > 0 from pg_stat_activity where wait_event_type = 'Lock' "
                                   "and query ilike '%for update%'").fetchone()[0]
        if waited:
            break
        eraser.join(0.05)
    go.set()
    exporter.join(120)
    eraser.join(120)
    assert not errors, errors
    assert waited and erased and erased[0].outcome == erasure.PURGED  # it waited for the export's commit
    recorded = world.store.execute("""select outcome, package_object, package_deleted_at is not null
                                      from compliance.dsr_fulfilments where request_id = %s""", (rid,)).fetchone()
    assert recorded is not None and recorded[0] == "exported"
    assert world.objects.exists(recorded[1]) and not recorded[2]  # kept for delivery, and the record says so
    assert world.store.execute("""select state, kept_until is not null from compliance.erasure_files
                                  where subject_hash = %s and uri = %s""",
                               (user_hash(KEY, uid), recorded[1])).fetchone() == ("kept_for_delivery", True)


def test_a_package_kept_while_its_record_was_pending_is_deleted_by_its_kept_until(world, monkeypatch):
    """Found by a review: an erasure keeps a package whose record is still pending (its export committed, the worker
    died before the record) until made + export_retention_days, made being when the pending record was written;
    the next run then writes the record, and the expiry counted the retention from that record's time, days later:
    the package outlived the kept_until its erasure's evidence states by as long as the record waited. The expiry
    now deletes a kept package at its kept_until."""
    ops, store = world.ops, world.store
    (uid,) = free_users(ops, 1)
    access = new_request(ops, uid, "access")
    real = ledger.finalize

    def die(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(ledger, "finalize", die)
    with pytest.raises(Crash):
        run(world, "manual__crash", params(world, request_ids=(access,)))
    monkeypatch.setattr(ledger, "finalize", real)
    assert [r[0] for r in ledger.pending(store)] == [access]
    # The worker died 10 days ago, and no run has settled its record since; the subject is erased now.
    store.execute("update compliance.dsr_fulfilment_pending set created_at = created_at - interval '10 days' "
                  "where request_id = %s", (access,))
    erase_on_connections_of_its_own(world, uid)
    name, until = store.execute("""select uri, kept_until from compliance.erasure_files
                                   where subject_hash = %s and state = 'kept_for_delivery'""",
                                (user_hash(KEY, uid),)).fetchone()
    assert world.objects.exists(name)
    run(world, "scheduled__settle")  # writes the pending record, today
    recorded = store.execute("select recorded_at from compliance.dsr_fulfilments where request_id = %s",
                             (access,)).fetchone()[0]
    assert until < recorded + timedelta(days=world.settings.export_retention_days)  # the gap: about 10 days
    assert world.objects.exists(name)
    # 21 days on: its kept_until has passed, 30 days from its record have not.
    store.execute("update compliance.dsr_fulfilments set recorded_at = recorded_at - interval '21 days' "
                  "where request_id = %s", (access,))
    store.execute("update compliance.erasure_files set kept_until = kept_until - interval '21 days', "
                  "found_at = found_at - interval '21 days', done_at = done_at - interval '21 days' "
                  "where subject_hash = %s and uri = %s", (user_hash(KEY, uid), name))
    run(world, "scheduled__later")
    assert not world.objects.exists(name)
    assert store.execute("select package_deleted_at is not null from compliance.dsr_fulfilments where request_id = %s",
                         (access,)).fetchone()[0]
    assert store.execute("select state from compliance.erasure_files where subject_hash = %s and uri = %s",
                         (user_hash(KEY, uid), name)).fetchone()[0] == "deleted"


@pytest.mark.parametrize("planted", ["request_gdpr_on_track", "request_restriction_open"])
def test_a_request_acted_on_while_an_erasure_holds_its_subject_is_let_go_for_the_retry(world, planted):
    """Found by a fault trial: an erasure (the child purge, another run's erasure request) claims the account first,
    then redacts the subject's privacy requests; an export or a restriction of one of them claimed that request in
    between and then waited for the account. Each waited for the other: PostgreSQL broke the deadlock by failing
    one of the two tasks (its retry minutes later). Now the request's action takes the account only if no eraser
    holds it, and otherwise leaves the request (and its lock) at once, for the task's retry: the erasure goes on,
    and the retry finds the request's account gone."""
    from include import erasure

    rid = world.planted[planted][0]
    uid = world.ops.execute("select user_id from privacy_requests where id = %s", (rid,)).fetchone()[0]
    holding, go, errors, erased, busy = threading.Event(), threading.Event(), [], [], []

    def pause(conn):  # inside the erasure's transaction: the account is claimed, no table erased yet
        holding.set()
        go.wait(60)
        return {}

    def erase():
        try:
            erased.append(erase_on_connections_of_its_own(world, uid, in_transaction=pause))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            holding.set()

    def act():
        try:
            with connect(world.url, autocommit=True) as ops, connect(world.url, autocommit=True) as store:
                s = step(world, "manual__act", params(world, request_ids=(rid,)), ops=ops, store=store)
                steps.plan_requests(s)
                steps.fulfil_requests(s, workdir=str(world.tmp))
        except steps.RequestsBusy as exc:
            busy.append(exc)
        except Exception as exc:  # reported below
            errors.append(exc)

    eraser = threading.Thread(target=erase)
    eraser.start()
    assert holding.wait(120) and not errors
    actor = threading.Thread(target=act)
    actor.start()
    # Until the request's action waits for the account the erasure holds, or has left the request.
    deadline = datetime.now(timezone.utc) + timedelta(seconds=30)
    while actor.is_alive() and datetime.now(timezone.utc) < deadline:
        if world.ops.execute("select count(*) > 0 from pg_stat_activity where wait_event_type = 'Lock' "
                             "and datname = current_database()").fetchone()[0]:
            break
        actor.join(0.05)
    go.set()  # the erasure goes on to the subject's privacy requests
    eraser.join(120)
    actor.join(120)
    assert not errors, errors
    assert erased and erased[0].outcome == erasure.PURGED
    assert len(busy) == 1  # the task fails at once, to be retried
    # The retry finds the request's subject erased: nothing is done, nothing recorded, no package.
    retried = steps.fulfil_requests(step(world, "manual__act", params(world, request_ids=(rid,))),
                                    workdir=str(world.tmp))
    assert retried["outcomes"] == {steps.CHANGED: 1}
    assert rid not in outcomes(world.store)
    assert not world.objects.exists(package.object_name(rid))
    status, user = world.ops.execute("select status, user_id from privacy_requests where id = %s", (rid,)).fetchone()
    assert status == "in_progress" and user is None


def test_a_code_field_holding_personal_data_is_recorded_invalid_without_repeating_it(world):
    """Found by a fault trial: an unknown regime was quoted whole in the request's reason (the page, the audit log):
    an address typed into the field was shown wherever the record is. It is read as missing, in a sentence that
    does not repeat it."""
    rid = world.ops.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type,
                                                             received_at, status)
                               values (40, 'x@example.org', 'mary.roe@example.net', 'access', now() - interval '2 days',
                                       'in_progress') returning id""").fetchone()[0]
    run(world, "manual__one", params(world, request_ids=(rid,)))
    outcome, reason, _ = outcomes(world.store)[rid]
    assert outcome == "invalid" and reason.startswith("regime is not a code (its value is not repeated")
    assert "mary" not in repr(world.store.execute("select * from compliance.dsr_fulfilments").fetchall())
    assert "mary" not in repr(world.store.execute("select details from compliance.audit_log").fetchall())


def test_a_request_the_operational_database_refuses_is_incomplete_and_the_others_are_fulfilled(world, caplog):
    """A constraint of the application's refusing one request's completion raised out of the step: the requests
    after it were not acted on, the uploaded package stayed for nobody, and the driver's traceback quoted the
    refused row (the requester's address) into the task log."""
    ops, store = world.ops, world.store
    users = free_users(ops, 2, own_address=False)
    refused, fine = (ops.execute(
        """insert into privacy_requests (user_id, requester_email, regime, request_type, received_at, status)
           values (%s, 'refused.requester@example.org', 'gdpr', 'access', now() - interval '1 day', 'in_progress')
           returning id""", (u,)).fetchone()[0] for u in users)
    ops.execute(f"alter table privacy_requests add constraint app_rule check (id <> {refused} or status <> 'completed')")
    before = request_rows(ops, [refused])

    result = run(world, "manual__refused", params(world, request_ids=(refused, fine)))
    got = outcomes(store)
    assert got[fine][0] == "exported" and got[fine][2] is True
    outcome, reason, completed = got[refused]
    assert outcome == "incomplete" and completed is False
    assert reason.startswith("the operational database refused this request's change: new row for relation "
                             '"privacy_requests" violates check constraint "app_rule" (SQLSTATE 23514)'), reason
    assert request_rows(ops, [refused]) == before  # still open: the next run tries again
    assert package.object_name(refused) not in world.objects.list("exports/")
    assert package.object_name(fine) in world.objects.list("exports/")
    said = caplog.text + json.dumps(result, default=str) + reason
    assert "refused.requester@example.org" not in said


def test_an_export_a_database_refuses_to_read_says_so_not_that_a_change_was_refused(world, caplog):
    """A store refusing the export's read of the subject's rows (here a grant the connection's user lacks) was
    recorded as "the operational database refused this request's change ... (a constraint or trigger of the
    application's)": the wrong operation and the wrong cause for the person who must look. The others go on."""
    ops, store = world.ops, world.store
    users = free_users(ops, 2, own_address=False)
    refused, fine = (ops.execute(
        """insert into privacy_requests (user_id, requester_email, regime, request_type, received_at, status)
           values (%s, 'unreadable.requester@example.org', 'gdpr', 'access', now() - interval '1 day', 'in_progress')
           returning id""", (u,)).fetchone()[0] for u in users)
    role = f"privacy_reader_{uuid.uuid4().hex[:8]}"
    ops.execute(f"create role {role} login")
    try:
        ops.execute(f"grant all on all tables in schema public to {role}")
        ops.execute(f"grant all on all sequences in schema public to {role}")
        ops.execute(f"revoke select on usage_events from {role}")  # its rows cannot be read by the export
        plan = steps.plan_requests(step(world, "manual__unreadable", params(world, request_ids=(refused, fine))))
        assert plan
        with connect(world.url.replace("postgres@", f"{role}@", 1), autocommit=True) as limited:
            steps.fulfil_requests(step(world, "manual__unreadable", params(world, request_ids=(refused, fine)),
                                       ops=limited), workdir=str(world.tmp))
    finally:
        ops.execute(f"drop owned by {role}")
        ops.execute(f"drop role {role}")
    got = outcomes(store)
    outcome, reason, completed = got[refused]
    assert outcome == "incomplete" and completed is False
    assert reason.startswith("a database refused the export's read of the subject's data: permission denied for "
                             "table usage_events (SQLSTATE 42501)"), reason
    assert "constraint or trigger" not in reason and "change" not in reason.split(":")[0]
    assert package.object_name(refused) not in world.objects.list("exports/")
    assert "unreadable.requester@example.org" not in caplog.text + reason


def test_an_erasure_the_operational_database_refuses_leaves_that_subject_and_erases_the_others(world, caplog):
    """Completing one erasure request refused by a constraint of the application's raised out of the erasing task:
    the subjects after it were not erased, verify and finish never ran, and the traceback quoted the refused row.
    That subject's transaction is rolled back and recorded incomplete; the others are erased; the run fails at its
    end in one sentence."""
    from include.erasure.stores import SubjectsRefused

    ops, store = world.ops, world.store
    users = free_users(ops, 2)
    refused, fine = (ops.execute(
        """insert into privacy_requests (user_id, requester_email, regime, request_type, received_at, status)
           values (%s, 'refused.eraser@example.org', 'gdpr', 'erasure', now() - interval '1 day', 'in_progress')
           returning id""", (u,)).fetchone()[0] for u in users)
    ops.execute(f"alter table privacy_requests add constraint app_rule check (id <> {refused} or status <> 'completed')")
    before = rows_per_user(ops)[users[0]]

    with pytest.raises(SubjectsRefused, match=r"the database refused the erasure of 1 \(each record"):
        run(world, "manual__refused_erasure", params(world, request_ids=(refused, fine)))
    got = outcomes(store)
    assert got[fine][0] == "erased" and users[1] not in rows_per_user(ops)
    outcome, reason, completed = got[refused]
    assert (outcome, completed) == ("incomplete", False) and rows_per_user(ops)[users[0]] == before
    assert reason.startswith("erasing the subject was refused by the database: new row for relation "
                             '"privacy_requests" violates check constraint "app_rule" (SQLSTATE 23514)'), reason
    assert "refused.eraser@example.org" not in caplog.text + reason


def test_a_cleared_finish_run_of_a_rejected_run_still_says_rejected(world):
    """Found by an on-call trial: a run whose erasure plan nobody approved, its finish_run cleared in the Airflow UI
    and run again (the same run id, the same answer) recorded the run `done` and audited it finished `done`, as if
    its erasures had been carried out; the erasure requests stay `approval_required`."""
    low = Settings(purge_threshold=1)
    result = run(world, "manual__wait", settings=low)  # nobody answers: the timeout applies Reject
    assert result["state"] == "rejected"
    again = steps.finish_run(step(world, "manual__wait", settings=low))
    assert again["state"] == "rejected"
    state, approval_state = world.store.execute(
        "select state, approval_state from compliance.dsr_fulfilment_runs where run_id = 'manual__wait'").fetchone()
    assert (state, approval_state) == ("rejected", "timed_out")
    finished = [r[0] for r in world.store.execute(
        "select details ->> 'state' from compliance.audit_log where run_id = 'manual__wait' "
        "and action = 'dsr_fulfilment.finished' order by id")]
    assert finished == ["rejected", "rejected"]


def test_a_cleared_erase_requests_audits_what_it_did_in_all_and_that_it_ran_again(world):
    """Found by an audit review: `erase_requests` cleared and run again (the same run id) audited a second
    `dsr_fulfilment.erasures` of its own attempt, `subjects: 0, outcomes: {}`, and a cleared `finish_run` a second
    `dsr_fulfilment.finished` the same as the first: read as a second erasure (of nobody) and a second run's end. Each
    names the run's first entry of its step (`rerun_of`) and says what the step did over all its attempts."""
    result = run(world, "manual__erase-cleared")
    assert result["branch"] == IN_ADVANCE
    s = step(world, "manual__erase-cleared")
    steps.erase_requests(s)
    steps.verify_erasures(s)
    steps.finish_run(s)

    def entries(action: str) -> list[tuple[int, dict]]:
        return world.store.execute("select id, details from compliance.audit_log where run_id = %s and action = %s "
                                   "order by id", ("manual__erase-cleared", action)).fetchall()

    (one, first), (_, again) = entries("dsr_fulfilment.erasures")
    assert first["subjects"] >= 1 and first["outcomes"] and "rerun_of" not in first
    assert again["rerun_of"] == one
    assert (again["subjects"], again["outcomes"]) == (first["subjects"], first["outcomes"])
    assert again["this_attempt"] == {"subjects": 0, "outcomes": {}}
    (fin, f1), (_, f2) = entries("dsr_fulfilment.finished")
    assert "rerun_of" not in f1 and f2["rerun_of"] == fin and f2["state"] == f1["state"] == "done"


def test_a_cleared_erase_requests_keeps_its_approval_as_recorded_and_its_run_done(world):
    """Found by an on-call trial: `erase_requests` of a run approved by its plan's hash, cleared in the Airflow UI and
    run again (the same run id), rewrote the run's `approved_at` with the time of the clear and set the finished run
    back to `planned` (for good when only that task was cleared). Its approval's time and approver are the first
    attempt's and the run stays `done`."""
    low = Settings(purge_threshold=1)
    approved = run(world, "manual__hash-dry", params(world, dry_run=True), settings=low)["plan"]["plan_hash"]
    result = run(world, "manual__hash-cleared", params(world, approve_plan=approved), settings=low)
    assert result["branch"] == IN_ADVANCE and result["state"] == "done"

    def run_row() -> tuple:
        return world.store.execute("select state, approved_by, approved_at from compliance.dsr_fulfilment_runs "
                                   "where run_id = 'manual__hash-cleared'").fetchone()

    recorded = run_row()
    assert recorded[:2] == ("done", "approve_plan parameter") and recorded[2] is not None
    cleared = step(world, "manual__hash-cleared", params(world, approve_plan=approved), settings=low)
    cleared.ctx = dataclasses.replace(cleared.ctx, now=lambda: recorded[2] + timedelta(hours=1))
    steps.erase_requests(cleared)
    assert run_row() == recorded
    steps.verify_erasures(cleared)
    assert steps.finish_run(cleared)["state"] == "done" and run_row() == recorded


def test_a_request_time_column_without_a_time_zone_is_read_as_utc_not_a_crash(reference_db):
    """``privacy_requests`` with ``timestamp`` (no zone) time columns, as deadline tracking reads them: as UTC.
    Before, they came back naive and the plan's "received after now?" compared them with the run's aware time: a
    TypeError (a traceback, retried) for the whole run, every request left unanswered."""
    with connect(reference_db, autocommit=True) as ops, connect(reference_db, autocommit=True) as store:
        ops.execute("set time zone 'UTC'")  # as every connection of the product (include/seam/connections.py)
        for column in ("received_at", "identity_requested_at", "identity_verified_at"):
            ops.execute(f"alter table privacy_requests alter column {column} type timestamp")
        ops.execute("insert into users (id, email, created_at) values (1, 'a@example.com', now())")
        ops.execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type, received_at,
                                                      status)
                       values (1, 1, 'a@example.com', 'gdpr', 'access', '2026-11-20 10:00', 'in_progress'),
                              (2, 1, 'a@example.com', 'gdpr', 'access', '2999-01-01 10:00', 'in_progress')""")
        today = datetime.now(timezone.utc).date()
        s = Step(ctx=ctx("naive-times"), settings=Settings(), params=FulfilmentParams(as_of=today, dry_run=True),
                 ops=ops, store=store, datamap=ops_datamap(), key=KEY)
        steps.plan_requests(s)
        reasons = dict(store.execute("select request_id, reason from compliance.dsr_fulfilment_plans "
                                     "where run_id = 'naive-times'").fetchall())
    assert reasons[1] is None
    assert reasons[2] == "received_at 2999-01-01 10:00:00+00:00 is in the future (after the time of this run)"


def test_a_run_of_an_earlier_day_cleared_today_tells_the_shares_up_to_today_and_dates_its_package_today(world):
    """Found by an on-call trial: a run of five days ago cleared in the Airflow UI today (Airflow keeps its start, so
    its day) read the subject's data as it is now, yet its README said "as it stood on" its own day and its window
    of shares ended that day: a share of two days ago fell in neither list (too late for the window, not after the
    present moment), and the consumer was not told about that vendor at all. An export judges as of the later of
    the run's own day and today."""
    run_day = world.today - timedelta(days=5)
    rid, vendor = know_request_with_one_share(world, datetime.now(timezone.utc) - timedelta(days=10),
                                              datetime.now(timezone.utc) - timedelta(days=2))
    run(world, "scheduled__five_days_ago", params(world, as_of=run_day, request_ids=(rid,)))
    assert outcomes(world.store)[rid][0] == "exported"
    shared, readme, about = package_files(world, rid, "shared_with.json", "README.txt", "package.json")
    shared = json.loads(shared)
    assert [v["vendor_id"] for v in shared["vendors"]] == [vendor] and shared["undated"] == []
    assert f"as it stood on {world.today.isoformat()}" in " ".join(readme.decode().split())
    assert json.loads(about)["data_as_of"] == world.today.isoformat()
    assert world.store.execute("select as_of from compliance.dsr_fulfilment_runs where run_id = %s",
                               ("scheduled__five_days_ago",)).fetchone() == (world.today,)


def age_run(world, run_id: str, days: int) -> None:
    """The run as if it started (and, when it finished, finished) ``days`` days ago."""
    world.store.execute("""update compliance.erasure_runs set started_at = started_at - make_interval(days => %s),
                               finished_at = finished_at - make_interval(days => %s)
                           where dag_id = 'dsr_fulfilment' and run_id = %s""", (days, days, run_id))


def plan_size(world, run_id: str) -> int:
    return world.store.execute("select count(*) from compliance.dsr_fulfilment_plans where run_id = %s",
                               (run_id,)).fetchone()[0]


def test_pruning_forgets_old_dry_runs_plans_never_a_live_run_still_going(world):
    """Found in review: every run's finish_run (a dry run's too) deleted the plans of every run started more than
    whatif_retention_days ago, a live run still waiting for its reviewer included: approved later, it erased
    nothing. Old dry runs' plans go; a live run's stays until it has finished and that long has passed."""
    low = Settings(purge_threshold=1, whatif_retention_days=1)
    run(world, "manual__prune-old-dry", params(world, dry_run=True), settings=low)
    age_run(world, "manual__prune-old-dry", 2)
    waiting = step(world, "manual__prune-waiting", settings=low)
    assert steps.plan_requests(waiting)["state"] == "awaiting_approval"
    age_run(world, "manual__prune-waiting", 2)
    to_erase = ledger.plan_rows(world.store, "manual__prune-waiting", acting=True, actions=("erase",))
    planned = plan_size(world, "manual__prune-waiting")
    assert to_erase and plan_size(world, "manual__prune-old-dry")
    run(world, "manual__prune-dry-now", params(world, dry_run=True), settings=low)
    assert plan_size(world, "manual__prune-old-dry") == 0
    assert plan_size(world, "manual__prune-waiting") == planned
    assert plan_size(world, "manual__prune-dry-now")  # its own, newer than the retention


def test_a_cleared_task_of_a_run_whose_plan_was_pruned_fails_in_one_sentence(world):
    """Found in review: a live run's plan, forgotten after whatif_retention_days, left its cleared erase_requests (or
    fulfil_requests) doing nothing and saying all was fine. Forgotten only once the run finished that long ago, and a
    task of it cleared after that fails saying so."""
    short = Settings(whatif_retention_days=1)
    assert run(world, "manual__prune-live", settings=short)["state"] == "done"
    age_run(world, "manual__prune-live", 2)
    run(world, "manual__prune-later", settings=short)
    assert plan_size(world, "manual__prune-live") == 0
    cleared = step(world, "manual__prune-live", settings=short)
    for task in (steps.plan_requests, steps.fulfil_requests, steps.erase_requests, steps.finish_run):
        with pytest.raises(steps.NotPlanned, match=r"^this run's plan was forgotten .* whatif_retention_days") as err:
            task(cleared)
        assert "\n" not in str(err.value)


def purge_children(world, run_id: str, user_ids) -> dict:
    """A live child_data_purge run targeted at these accounts (its steps, the branch as the DAG takes it)."""
    from include.children import purge
    from include.children.params import PurgeParams

    p = PurgeParams(as_of=world.today, dry_run=False, scheduled=False, run_type="manual", user_ids=tuple(user_ids))
    s = Step(ctx=RunContext(run_id=run_id, actor="test", dag_id="child_data_purge", task_id="test"),
             settings=world.settings, params=p, ops=world.ops, store=world.store, datamap=world.dm, key=KEY)
    purge.detect_children(s)
    plan = purge.plan_purge(s)
    if guard.route(plan, review_task_id="approve_purge", in_advance_task_id="approved_in_advance") is not None:
        purge.purge_subjects(s)
        purge.verify_purge(s)
    return purge.finish_run(s)



def new_request(ops, user_id: int, request_type: str, requester: str = "x@example.org", regime: str = "gdpr") -> int:
    """An open request of ``request_type`` (under ``regime``) naming account ``user_id``, received a day ago."""
    return ops.execute("""insert into privacy_requests (user_id, requester_email, regime, request_type, received_at,
                                                        status) values (%s, %s, %s, %s, now() - interval '1 day',
                                                        'in_progress') returning id""",
                       (user_id, requester, regime, request_type)).fetchone()[0]


def test_a_request_of_a_child_the_purge_erased_names_that_purge_and_its_day(world):
    """Found by an on-call trial: a child's requests open when child_data_purge erased the child (the purge drops the
    requests' account link) and a request naming the erased account afterwards were recorded `no_account` ("the
    request names no account", "account N does not exist"), or `erased` with no word of the purge: that we held the
    child's data and erased it was hidden. Each now names the purge run and its day: an erasure is fulfilled (nothing
    is left to erase) and completed, an access request says nothing is held and since when."""
    ops, store = world.ops, world.store
    before_kid, after_kid = world.planted["child_by_report_email"][0], world.planted["child_by_birth_date"][0]
    address = dict(ops.execute("select id, email from users where id = any(%s)", ([before_kid, after_kid],)).fetchall())
    before = {t: new_request(ops, before_kid, t, requester=address[before_kid]) for t in ("erasure", "access")}
    purge_children(world, "manual__purge", [before_kid, after_kid])
    assert ops.execute("select count(*) from privacy_requests where id = any(%s) and user_id is null",
                       (list(before.values()),)).fetchone()[0] == 2  # the purge dropped their account link
    after = {t: new_request(ops, after_kid, t, requester=address[after_kid]) for t in ("erasure", "access")}
    day = {uid: store.execute("select (purged_at at time zone 'UTC')::date from compliance.child_purges "
                              "where run_id = 'manual__purge' and subject_hash = %s",
                              (user_hash(KEY, uid),)).fetchone()[0] for uid in (before_kid, after_kid)}

    run(world, "manual__after")
    got = outcomes(store)
    for uid, requests in ((before_kid, before), (after_kid, after)):
        said = f"child-data purge run manual__purge on {day[uid]}"
        outcome, reason, completed = got[requests["erasure"]]
        assert outcome == "erased" and completed and said in reason, (uid, got[requests["erasure"]])
        outcome, reason, completed = got[requests["access"]]
        assert outcome == "no_account" and not completed and said in reason and "nothing is held" in reason, \
            (uid, got[requests["access"]])
        hashes = dict(store.execute("select request_id, subject_hash from compliance.dsr_fulfilments "
                                    "where request_id = any(%s)", (list(requests.values()),)).fetchall())
        assert set(hashes.values()) == {user_hash(KEY, uid)}
    statuses = dict(ops.execute("select id, status from privacy_requests where id = any(%s)",
                                ([*before.values(), *after.values()],)).fetchall())
    assert statuses == {before["erasure"]: "completed", after["erasure"]: "completed",
                        before["access"]: "in_progress", after["access"]: "in_progress"}
    assert ops.execute("select count(*) from privacy_requests where user_id = %s", (after_kid,)).fetchone()[0] == 0
    # A second run records nothing more.
    state = store_state(store)
    run(world, "manual__again")
    assert store_state(store) == state


def test_a_parents_request_for_a_child_the_purge_erased_names_that_purge_by_its_request_id(world):
    """A parent's requests for a child's account, filed from the parent's own address (linked to the child by
    user_id), lost their account link to the purge: the requester's keyed hash is the parent's address, not the
    child's, and the account id was nulled. They were recorded `no_account` ("the request names no account") though
    the purge that erased the data was known. The purge records the ids of the requests it unlinked, and the
    fulfilment finds them by id: an erasure is erased and completed, an access request says nothing is held."""
    ops, store = world.ops, world.store
    kid = world.planted["child_by_report_email"][0]
    requests = {t: new_request(ops, kid, t, requester="a.parent@example.net") for t in ("erasure", "access")}
    theirs = [r for (r,) in ops.execute("select id from privacy_requests where user_id = %s order by id", (kid,))]
    purge_children(world, "manual__purge", [kid])
    day = store.execute("select (purged_at at time zone 'UTC')::date from compliance.child_purges "
                        "where run_id = 'manual__purge' and subject_hash = %s", (user_hash(KEY, kid),)).fetchone()[0]

    run(world, "manual__after")
    got = outcomes(store)
    said = f"child-data purge run manual__purge on {day}"
    outcome, reason, completed = got[requests["erasure"]]
    assert outcome == "erased" and completed and said in reason, got[requests["erasure"]]
    outcome, reason, completed = got[requests["access"]]
    assert outcome == "no_account" and not completed and said in reason and "nothing is held" in reason, \
        got[requests["access"]]
    hashes = dict(store.execute("select request_id, subject_hash from compliance.dsr_fulfilments "
                                "where request_id = any(%s)", (list(requests.values()),)).fetchall())
    assert set(hashes.values()) == {user_hash(KEY, kid)}
    # The purge's record names the requests it unlinked (ids only: no personal data).
    assert store.execute("select request_ids from compliance.child_purges where run_id = 'manual__purge' "
                         "and subject_hash = %s", (user_hash(KEY, kid),)).fetchone()[0] == theirs


def test_an_unlinked_request_the_purge_did_not_list_is_not_said_to_be_its_by_the_childs_address(world):
    """The opposite risk: a request another erasure unlinked (another account with the child's address, erased by a
    fulfilment, leaves its requests with the same keyed requester hash as the child's address) was said to be the
    child's purge's because the hashes matched. A purge recorded since migration 0027 lists the requests it
    unlinked, so it claims only those; a record written before (no list) is still matched by the address hash."""
    from include.subjects import address_hash

    ops, store = world.ops, world.store
    listed_kid, legacy_kid = world.planted["child_by_report_email"][0], world.planted["child_by_birth_date"][0]
    address = dict(ops.execute("select id, email from users where id = any(%s)",
                               ([listed_kid, legacy_kid],)).fetchall())
    purge_children(world, "manual__purge", [listed_kid, legacy_kid])
    store.execute("update compliance.child_purges set request_ids = null where run_id = 'manual__purge' "
                  "and subject_hash = %s", (user_hash(KEY, legacy_kid),))  # as a record written before 0027

    def unlinked_access_request(uid: int) -> int:  # as an erasure of another account with uid's address leaves it
        return new_request(ops, None, "access", requester=address_hash(KEY, address[uid]))

    other, legacy = unlinked_access_request(listed_kid), unlinked_access_request(legacy_kid)
    run(world, "manual__after")
    got = outcomes(store)
    outcome, reason, _ = got[other]
    assert outcome == "no_account" and "names no account" in reason and "purge" not in reason, got[other]
    outcome, reason, _ = got[legacy]
    assert outcome == "no_account" and "child-data purge run manual__purge" in reason, got[legacy]


def test_a_request_of_an_account_a_fulfilment_erased_names_that_erasure_by_its_request_id(world):
    """A person's request the fulfilment's own erasure unlinked (user_id nulled, requester hashed) but did not carry
    out: one of another type left for a later run, or one received after the erasing run planned. It was recorded
    `no_account` ("the request names no account") and waited for a person, though the fulfilment of request N had
    erased that account on day D. The erasure's record keeps the ids of the requests it unlinked, and a later run finds
    it by the request's id: an erasure is erased and completed, anything else says nothing is held and since when."""
    ops, store = world.ops, world.store
    uid = free_users(ops, 1)[0]
    erasure = new_request(ops, uid, "erasure")
    left = new_request(ops, uid, "access")  # open before, not a target of the erasing run: left for a later one
    s = step(world, "manual__erase", params(world, request_ids=(erasure,)))
    plan = steps.plan_requests(s)
    late = {"opt_out": new_request(ops, uid, "opt_out_of_sale", regime="ccpa"),  # received after the plan
            "erasure": new_request(ops, uid, "erasure")}
    steps.fulfil_requests(s, workdir=str(world.tmp))
    assert guard.route(plan, review_task_id=REVIEW, in_advance_task_id=IN_ADVANCE) == IN_ADVANCE
    steps.erase_requests(s)
    steps.verify_erasures(s)
    steps.finish_run(s)
    ids = sorted([erasure, left, *late.values()])
    assert ops.execute("select count(*) from privacy_requests where id = any(%s) and user_id is null",
                       (ids,)).fetchone()[0] == 4  # the erasure dropped every one's account link
    assert set(outcomes(store)) == {erasure}
    # The erasure's record names the requests it unlinked (ids only: no personal data).
    day, listed = store.execute("select (recorded_at at time zone 'UTC')::date, request_ids "
                                "from compliance.dsr_fulfilments where request_id = %s", (erasure,)).fetchone()
    assert listed == ids

    run(world, "manual__after")
    got = outcomes(store)
    said = f"the account and its data were erased by the fulfilment of request {erasure} (run manual__erase) on {day}"
    outcome, reason, completed = got[late["erasure"]]
    assert outcome == "erased" and completed and said in reason, got[late["erasure"]]
    for rid in (left, late["opt_out"]):
        outcome, reason, completed = got[rid]
        assert outcome == "no_account" and not completed and said in reason and "nothing is held" in reason, got[rid]
    hashes = dict(store.execute("select request_id, subject_hash from compliance.dsr_fulfilments "
                                "where request_id = any(%s)", (ids,)).fetchall())
    assert set(hashes) == set(ids) and set(hashes.values()) == {user_hash(KEY, uid)}
    assert dict(ops.execute("select id, status from privacy_requests where id = any(%s)", (ids,)).fetchall()) == {
        erasure: "completed", late["erasure"]: "completed", left: "in_progress", late["opt_out"]: "in_progress"}
    # A second run records nothing more.
    state = store_state(store)
    run(world, "manual__again")
    assert store_state(store) == state


def test_a_request_naming_an_account_a_fulfilment_erased_names_that_erasure_by_the_accounts_hash(world):
    """Found by a review: a request filed after the fulfilment of erasure request N erased the account, naming the
    erased account's id (user_id set, the account gone), was recorded `no_account` "account N does not exist (erased,
    or never existed)" (an erasure one erased with no word of the earlier erasure): only the child-data purge's
    records were looked up by the account's subject hash. The fulfilment's own erasure of that account is now too:
    an erasure is erased and completed, anything else says nothing is held, by whom and since when."""
    ops, store = world.ops, world.store
    uid = free_users(ops, 1)[0]
    erasure = new_request(ops, uid, "erasure")
    run(world, "manual__erase", params(world, request_ids=(erasure,)))
    assert outcomes(store)[erasure][0] == "erased"
    assert ops.execute("select count(*) from users where id = %s", (uid,)).fetchone()[0] == 0
    day = store.execute("select (recorded_at at time zone 'UTC')::date from compliance.dsr_fulfilments "
                        "where request_id = %s", (erasure,)).fetchone()[0]
    after = {t: new_request(ops, uid, t) for t in ("erasure", "access")}  # filed later, naming the erased account

    run(world, "manual__after", params(world, request_ids=tuple(after.values())))
    got = outcomes(store)
    said = f"the account and its data were erased by the fulfilment of request {erasure} (run manual__erase) on {day}"
    outcome, reason, completed = got[after["erasure"]]
    assert outcome == "erased" and completed and said in (reason or ""), got[after["erasure"]]
    outcome, reason, completed = got[after["access"]]
    assert outcome == "no_account" and not completed and said in reason and "nothing is held" in reason, \
        got[after["access"]]
    hashes = dict(store.execute("select request_id, subject_hash from compliance.dsr_fulfilments "
                                "where request_id = any(%s)", (list(after.values()),)).fetchall())
    assert set(hashes.values()) == {user_hash(KEY, uid)}
    assert dict(ops.execute("select id, status from privacy_requests where id = any(%s)",
                            (list(after.values()),)).fetchall()) == {after["erasure"]: "completed",
                                                                     after["access"]: "in_progress"}
    # A later run names the first erasure still (not the second request's erasure of its own row).
    run(world, "manual__again", params(world, request_ids=(after["access"],)))
    assert said in outcomes(store)[after["access"]][1]


def test_a_request_naming_an_id_no_account_ever_had_is_not_said_erased_by_an_earlier_request(world):
    """Found in a review: an erasure request naming an id no account ever had is recorded erased (the engine erases
    the rows still carrying the id: its own request row), and the lookup by the account's hash then told a later
    request naming that id that "the account and its data were erased by the fulfilment of request N", of an
    account that never existed. Only an erasure that removed the account (its account table's rows) names it."""
    ops, store = world.ops, world.store
    ghost = ops.execute("select coalesce(max(id), 0) + 100000 from users").fetchone()[0]
    first = new_request(ops, ghost, "erasure")
    run(world, "manual__ghost", params(world, request_ids=(first,)))
    later = new_request(ops, ghost, "access")
    run(world, "manual__ghost_later", params(world, request_ids=(later,)))
    outcome, reason, _ = outcomes(store)[later]
    assert outcome == "no_account" and "does not exist" in reason and "erased by" not in reason, (outcome, reason)


def test_an_erasure_that_kept_rows_of_a_shared_address_is_recorded_with_them(world):
    """Found re-reading the change: the record's reason named the rows kept for an address another account also has
    in a local variable that shadowed the export packages kept for delivery, so such an erasure failed its step
    ("not enough values to unpack") instead of being recorded. The subject is erased and the kept rows named."""
    ops, store = world.ops, world.store
    subject, other = free_users(ops, 2)
    address = ops.execute("select email from users where id = %s", (subject,)).fetchone()[0]
    ops.execute("update users set email = %s where id = %s", (f" {address.upper()}", other))
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())",
                (address.strip().lower(),))
    erasure_id = new_request(ops, subject, "erasure")
    run(world, "manual__shared", params(world, request_ids=(erasure_id,)))
    outcome, reason, completed = outcomes(store)[erasure_id]
    assert outcome == "erased" and completed, (outcome, reason)
    assert "rows tied to the account by an address another account also has were kept" in reason, reason
    assert "public.email_suppressions=1" in reason, reason
    assert ops.execute("select count(*) from users where id = %s", (subject,)).fetchone()[0] == 0


def test_a_kept_package_whose_expiry_was_interrupted_is_recorded_deleted_by_the_next_run(world):
    """Found by a review: the expiry of a package its subject's erasure kept for delivery marked the request's record
    deleted, then (a separate statement) the erasure's evidence row. The store lost between the two (here: refusing
    the second) left the record deleted and the evidence row `kept_for_delivery` for good: the next run no longer
    selects the package, and the erasure's evidence says it still holds the subject's data. Both are now one
    transaction: the next run deletes it again (gone already) and records both."""
    ops, store = world.ops, world.store
    (both,) = free_users(ops, 1)
    access_id = new_request(ops, both, "access")
    new_request(ops, both, "erasure")
    assert run(world, "scheduled__both")["state"] == "done"
    name = store.execute("select package_object from compliance.dsr_fulfilments where request_id = %s",
                         (access_id,)).fetchone()[0]
    store.execute("update compliance.dsr_fulfilments set recorded_at = recorded_at - interval '31 days', "
                  "package_made_at = package_made_at - interval '31 days' where request_id = %s", (access_id,))
    store.execute("""create function compliance.refuse_files() returns trigger language plpgsql as $$
                     begin raise exception 'the store went away'; end $$;
                     create trigger refuse_files before update on compliance.erasure_files
                     for each row execute function compliance.refuse_files()""")
    with pytest.raises(psycopg.DatabaseError):
        run(world, "scheduled__interrupted")
    store.execute("drop trigger refuse_files on compliance.erasure_files; drop function compliance.refuse_files()")
    run(world, "scheduled__later")
    assert not world.objects.exists(name)
    assert store.execute("select package_deleted_at is not null from compliance.dsr_fulfilments where request_id = %s",
                         (access_id,)).fetchone()[0]
    assert store.execute("select state from compliance.erasure_files where subject_hash = %s and uri = %s",
                         (user_hash(KEY, both), name)).fetchall() == [("deleted",)]


def test_a_request_of_an_erased_account_whose_package_is_kept_names_that_package(world):
    """Found by a review: the child-data purge keeps a child's export package within export_retention_days (to be
    handed over), yet a later access request for the erased account was told "nothing is held ... answer that no
    data is held", and an erasure request "nothing was left to erase" (or, erased with the access request in one
    run, nothing at all): the package the controller still holds went unsaid. Each reason now names it and until
    when it is kept."""
    ops, store = world.ops, world.store
    kid = world.planted["child_by_report_email"][0]
    first = new_request(ops, kid, "access")
    run(world, "scheduled__export")
    assert outcomes(store)[first][0] == "exported"
    purge_children(world, "manual__purge", [kid])
    until = store.execute("select (kept_until at time zone 'UTC')::date from compliance.erasure_files "
                          "where subject_hash = %s and state = 'kept_for_delivery'", (user_hash(KEY, kid),)).fetchone()[0]
    later = {t: new_request(ops, kid, t) for t in ("access", "erasure")}
    run(world, "scheduled__after")
    got = outcomes(store)
    said = f"the export package answering request {first}, kept to be handed over until {until}"
    outcome, reason, _ = got[later["access"]]
    assert outcome == "no_account" and said in reason and "child-data purge run manual__purge" in reason, reason
    assert "answer that no data is held" not in reason, reason
    outcome, reason, _ = got[later["erasure"]]
    assert outcome == "erased" and said in reason and "child-data purge run manual__purge" in reason, reason
    # An adult's access and erasure requests carried out in one run: the erasure's record names the kept package.
    (both,) = free_users(ops, 1)
    access_id, erasure_id = new_request(ops, both, "access"), new_request(ops, both, "erasure")
    run(world, "scheduled__both")
    got = outcomes(store)
    assert got[access_id][0] == "exported" and got[erasure_id][0] == "erased"
    assert f"the export package answering request {access_id}, kept to be handed over until" in got[erasure_id][1], \
        got[erasure_id]
    # A second run records nothing more.
    state = store_state(store)
    run(world, "scheduled__again")
    assert store_state(store) == state


def test_a_request_over_a_database_limit_is_left_incomplete_and_the_others_are_carried_out(world, caplog):
    """Found by a fault trial: a database error of class 54 (program limit exceeded: a value over 1 GB, too many
    columns; here the application's trigger raising it for one export's completion and one erasure's redaction)
    raised out of the fulfilment and erasing steps as a limit that fails at once: the requests after it were not
    acted on, the export's uploaded package stayed for nobody. Each is now that request's alone: recorded incomplete
    with one sentence naming the limit (never the row), the others carried out, and the run fails at its end in one
    sentence, so on-call sees it."""
    from include.errors import NeedsOperator

    ops, store = world.ops, world.store
    users = free_users(ops, 4)
    over_export, fine_export = (new_request(ops, u, "access", requester="over.limit@example.org")
                                for u in users[:2])
    over_erasure, fine_erasure = (new_request(ops, u, "erasure", requester="over.limit@example.org")
                                  for u in users[2:])
    ops.execute(f"""create function app_over_limit() returns trigger language plpgsql as $$
                    begin
                      if old.id in ({over_export}, {over_erasure})
                         and (new.status = 'completed' or new.user_id is null) then
                        raise exception 'value of % is too large', old.requester_email using errcode = '54000';
                      end if;
                      return new;
                    end $$;
                    create trigger app_over_limit before update on privacy_requests
                    for each row execute function app_over_limit()""")
    before = request_rows(ops, [over_export, over_erasure])
    ids = (over_export, fine_export, over_erasure, fine_erasure)

    with pytest.raises(NeedsOperator, match=r"^1 request\(s\) left incomplete: a database limit stopped") as err:
        run(world, "manual__over_limit", params(world, request_ids=ids))
    assert "1 subject(s) to erase" in str(err.value) and "\n" not in str(err.value)
    got = outcomes(store)
    assert got[fine_export][0] == "exported" and got[fine_export][2] is True
    assert got[fine_erasure][0] == "erased" and users[3] not in rows_per_user(ops)
    outcome, reason, completed = got[over_export]
    assert (outcome, completed) == ("incomplete", False)
    assert reason.startswith("a database limit stopped this request's change (program limit exceeded): the "
                             "application's function app_over_limit() raised an exception"), reason
    assert "(SQLSTATE 54000)" in reason
    outcome, reason, completed = got[over_erasure]
    assert (outcome, completed) == ("incomplete", False)
    assert reason.startswith("erasing public.privacy_requests (redact) was stopped by a database limit (program "
                             "limit exceeded): the application's function app_over_limit() raised an exception"), reason
    assert users[2] in rows_per_user(ops)  # rolled back: nothing of that subject changed
    assert request_rows(ops, [over_export, over_erasure]) == before  # still open
    assert package.object_name(over_export) not in world.objects.list("exports/")
    assert package.object_name(fine_export) in world.objects.list("exports/")
    assert store.execute("select state from compliance.dsr_fulfilment_runs where run_id = 'manual__over_limit'"
                         ).fetchone()[0] == "done"
    said = caplog.text + str(err.value) + json.dumps(got, default=str)
    assert "over.limit@example.org" not in said


def test_an_export_whose_read_is_over_a_database_limit_is_left_incomplete_and_the_others_exported(world, monkeypatch):
    """The same for the export's read of one subject's data: a read over one of the database's limits (here a select
    of 1,700 columns, over PostgreSQL's 1,664: SQLSTATE 54011) raised out of the fulfilment step, and the requests
    after it were not exported. It is now that request's alone, and the run fails at its end."""
    from include.errors import NeedsOperator

    ops, store = world.ops, world.store
    over, fine = (new_request(ops, u, "access") for u in free_users(ops, 2))
    real = package.build

    def build(src, dm, about, who, shared, path):
        if about.request_id == over:
            src.ops.execute("select " + ", ".join(["1"] * 1700))
        return real(src, dm, about, who, shared, path)

    monkeypatch.setattr(package, "build", build)
    with pytest.raises(NeedsOperator, match=r"^1 request\(s\) left incomplete: a database limit"):
        run(world, "manual__read_over_limit", params(world, request_ids=(over, fine)))
    got = outcomes(store)
    assert got[fine][0] == "exported"
    outcome, reason, completed = got[over]
    assert (outcome, completed) == ("incomplete", False)
    assert reason.startswith("a database limit stopped the export's read of the subject's data (too many columns): "
                             "target lists can have at most 1664 entries (SQLSTATE 54011)"), reason
    assert package.object_name(over) not in world.objects.list("exports/")


def test_an_erasure_request_naming_an_id_no_account_ever_had_names_no_account_unless_data_of_it_is_held(world):
    """Found by a review: an erasure request naming an id no account ever had was recorded `erased` and completed
    (the engine erased the rows still carrying the id: the request's own row, which it counted), so the requester
    was to be told their data was erased when none was ever held. It is now `no_account`, as any request naming no
    account, and its row stays as it is; an id whose data is still held where the data map names it (here usage
    events of an account deleted without them) is erased, and its reason says so."""
    ops, store = world.ops, world.store
    ghost = ops.execute("select coalesce(max(id), 0) + 100000 from users").fetchone()[0]
    orphaned = ghost + 1
    ops.execute("""insert into usage_events (id, user_id, event_type, feature, api_calls, duration_ms, occurred_at)
                   values ((select coalesce(max(id), 0) + 1 from usage_events), %s, 'login', 'web', 1, 10, now())""",
                (orphaned,))
    nothing, held = new_request(ops, ghost, "erasure"), new_request(ops, orphaned, "erasure")

    result = run(world, "manual__ghosts", params(world, request_ids=(nothing, held)))
    got = outcomes(store)
    outcome, reason, completed = got[nothing]
    assert (outcome, completed) == ("no_account", False), got[nothing]
    assert reason.startswith(f"account {ghost} does not exist (erased, or never existed) and nothing the data map "
                             "names carries its id"), reason
    assert ops.execute("select user_id, status from privacy_requests where id = %s", (nothing,)).fetchone() == (
        ghost, "in_progress")  # untouched: nothing was erased
    assert result["plan"]["subjects"] == 1  # the erasure plan names the id whose data is held alone
    outcome, reason, completed = got[held]
    assert (outcome, completed) == ("erased", True), got[held]
    assert reason.startswith(f"account {orphaned} does not exist (erased, or never existed) but data of its id is "
                             "still held (public.usage_events=1)"), reason
    assert ops.execute("select count(*) from usage_events where user_id = %s", (orphaned,)).fetchone()[0] == 0
    # A second run records nothing more.
    state = store_state(store)
    run(world, "manual__ghosts_again", params(world, request_ids=(nothing, held)))
    assert store_state(store) == state


def test_a_packages_retention_counts_from_its_upload_whether_kept_for_delivery_or_settled_late(world, monkeypatch):
    """Found by a review: an export package's retention counted from two moments. An erasure kept a package for
    delivery until made + export_retention_days, made being its pending record's creation (the upload) or, once the
    record was settled, the settle's time; the expiry counted from the record's time, the settle's. So a package whose
    worker died before its record, settled 10 days later, was kept (and, not kept, expired) 10 days past its
    export_retention_days. Both now count from the upload (its record's first writing, kept as
    dsr_fulfilments.package_made_at by migration 0030)."""
    ops, store = world.ops, world.store
    kept_user, plain_user = free_users(ops, 2)
    kept, plain = new_request(ops, kept_user, "access"), new_request(ops, plain_user, "access")
    real = ledger.finalize

    def worker_dies_before_the_record(store, ctx, request_id, xid, *, settled=False):
        return None if request_id in (kept, plain) and not settled else real(store, ctx, request_id, xid,
                                                                                settled=settled)

    monkeypatch.setattr(ledger, "finalize", worker_dies_before_the_record)
    run(world, "manual__died", params(world, request_ids=(kept, plain)))
    monkeypatch.setattr(ledger, "finalize", real)
    # The worker died 10 days ago, and no run has settled the records since.
    store.execute("update compliance.dsr_fulfilment_pending set created_at = created_at - interval '10 days'")
    uploaded = dict(store.execute("select request_id, created_at from compliance.dsr_fulfilment_pending "
                                  "where request_id = any(%s)", ([kept, plain],)).fetchall())
    assert set(uploaded) == {kept, plain}
    run(world, "manual__settle", params(world, request_ids=(kept, plain)))  # writes both records, today
    names = dict(store.execute("select request_id, package_object from compliance.dsr_fulfilments "
                               "where request_id = any(%s) and outcome = 'exported'", ([kept, plain],)).fetchall())
    assert set(names) == {kept, plain}
    days = timedelta(days=world.settings.export_retention_days)

    erase_on_connections_of_its_own(world, kept_user)  # keeps the package to be handed over: until upload + days
    until = store.execute("""select kept_until from compliance.erasure_files
                             where subject_hash = %s and state = 'kept_for_delivery'""",
                          (user_hash(KEY, kept_user),)).fetchone()[0]
    assert until == uploaded[kept] + days

    # 21 days on: both were uploaded 31 days before; neither record is 30 days old.
    s = step(world, "scheduled__later")
    later = datetime.now(timezone.utc) + timedelta(days=21)
    s = dataclasses.replace(s, ctx=dataclasses.replace(s.ctx, now=lambda: later))
    deleted, refused = steps.expire_packages(s)
    assert deleted >= 2 and not refused
    assert not world.objects.exists(names[kept]) and not world.objects.exists(names[plain])
    assert dict(store.execute("select request_id, package_deleted_at is not null from compliance.dsr_fulfilments "
                              "where request_id = any(%s)", ([kept, plain],)).fetchall()) == {kept: True, plain: True}
    assert store.execute("select state from compliance.erasure_files where subject_hash = %s and uri = %s",
                         (user_hash(KEY, kept_user), names[kept])).fetchone()[0] == "deleted"


def test_an_erasure_request_after_a_purge_that_kept_rows_of_a_shared_address_says_what_is_still_held(world):
    """Found by a review: the child-data purge erased a child whose address another account (a parent's) also has,
    and kept the rows tied to the child by that address alone (here its email suppression); an erasure request of
    the child, filed before the purge or naming the erased account after it, was then told "nothing was left to
    erase" (or that the rows still carrying the account id were removed), with no word of the rows still held. Each
    reason now names them, as the purge recorded them."""
    ops, store = world.ops, world.store
    kid = world.planted["child_by_birth_date"][0]
    (parent,) = free_users(ops, 1)
    address = ops.execute("select email from users where id = %s", (kid,)).fetchone()[0]
    ops.execute("update users set email = %s where id = %s", (f" {address.upper()}", parent))
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())",
                (address.strip().lower(),))
    before = new_request(ops, kid, "erasure")
    purge_children(world, "manual__family", [kid])
    assert store.execute("select outcome, kept from compliance.child_purges where run_id = 'manual__family' "
                         "and subject_hash = %s", (user_hash(KEY, kid),)).fetchone() == (
        "purged", {"public.email_suppressions": 1})
    after = new_request(ops, kid, "erasure")

    run(world, "manual__after_family", params(world, request_ids=(before, after)))
    got = outcomes(store)
    held = ("the rows tied to the account by an address another account also has, which that erasure kept "
            "(public.email_suppressions=1)")
    for rid in (before, after):
        outcome, reason, completed = got[rid]
        assert outcome == "erased" and completed, got[rid]
        assert "child-data purge run manual__family" in reason and held in reason, reason
    assert "nothing was left to erase but " + held in got[before][1], got[before][1]



def test_a_request_naming_an_id_whose_account_is_gone_but_whose_data_is_held_never_says_nothing_is_held(world):
    """Found by a fault trial: an access, know or restriction request naming an id whose account row the application
    deleted without its other rows (its usage events and access logs, an IP address among them, still held) was
    recorded `no_account` with "account N does not exist (erased, or never existed): check the request's user_id, or
    answer that no data is held" -- while an erasure request of the same id said the data was still held and erased
    it. A person following the reason would tell the requester that nothing is held (GDPR Art. 15). Each still names
    no account (an export, a restriction, an opt-out need one), and its reason now names what is held and what a person
    does with it; an id of which nothing is held says so, as an erasure request of it does."""
    ops, store = world.ops, world.store
    ghost = ops.execute("select coalesce(max(id), 0) + 100000 from users").fetchone()[0]
    orphaned = ghost + 1
    ops.execute("""insert into usage_events (id, user_id, event_type, feature, api_calls, duration_ms, occurred_at)
                   values ((select coalesce(max(id), 0) + 1 from usage_events), %s, 'login', 'web', 1, 10, now())""",
                (orphaned,))
    ops.execute("""insert into access_logs (id, user_id, ip_address, user_agent, occurred_at)
                   values ((select coalesce(max(id), 0) + 1 from access_logs), %s, '10.9.8.7', 'ua', now())""",
                (orphaned,))
    access, know = new_request(ops, orphaned, "access"), new_request(ops, orphaned, "know", regime="ccpa")
    restriction, opt_out = new_request(ops, orphaned, "restriction"), new_request(ops, orphaned, "opt_out_of_sale",
                                                                                  regime="ccpa")
    nothing = new_request(ops, ghost, "access")
    ids = (access, know, restriction, opt_out, nothing)

    run(world, "manual__gone_access", params(world, request_ids=ids))
    got = outcomes(store)
    held = (f"account {orphaned} does not exist (erased, or never existed) but data of its id is still held "
            "(public.usage_events=1, public.access_logs=1): with no account, ")
    for rid, then in ((access, "no package is made: a person answers with that data"), (know, "no package is made"),
                      (restriction, "a person restricts the processing of that data by hand"),
                      (opt_out, "a person keeps that data from being sold")):
        outcome, reason, completed = got[rid]
        assert (outcome, completed) == ("no_account", False), got[rid]
        assert reason.startswith(held + then) and "no data is held" not in reason, reason
    outcome, reason, completed = got[nothing]
    assert (outcome, completed) == ("no_account", False), got[nothing]
    assert reason.startswith(f"account {ghost} does not exist (erased, or never existed) and nothing the data map "
                             "names carries its id"), reason
    assert ops.execute("select count(*) from usage_events where user_id = %s", (orphaned,)).fetchone()[0] == 1
    # A second run records nothing more.
    state = store_state(store)
    run(world, "manual__gone_access_again", params(world, request_ids=ids))
    assert store_state(store) == state
def _shared_with_files(world) -> dict[int, bytes]:
    """Each recorded package's ``shared_with.json``, by request id."""
    return {rid: package_files(world, rid, "shared_with.json")[0] for (rid,) in world.store.execute(
        "select request_id from compliance.dsr_fulfilments where package_object is not null")}


def test_codes_of_an_enum_type_are_fulfilled_like_text(world, seeded_clone, tmp_path):
    """Found by a fault trial: an application whose requests' status, regime and type, or shares' category, are of a
    PostgreSQL enum type (as Rails, Django and Prisma schemas make them) failed every run in its first statement
    ("operator does not exist: request_status = text"), nothing done; with the status compared as text, every
    export was left incomplete ('invalid input value for enum share_category: "(missing)"').
    The same requests get the same outcomes, completions, packages and deletion notices as with text columns."""
    url, _ = seeded_clone(users=600, seed=5, anchor=world.today, store=True)
    with connect(url, autocommit=True) as ops, connect(url, autocommit=True) as store:
        enums = SimpleNamespace(**{**vars(world), "url": url, "ops": ops, "store": store,
                                   "objects": FileObjectStore(f"file://{tmp_path}/enum-evidence")})
        erased = world.planted["requester_gdpr"][0]  # erased by the run, its data shared with a vendor
        shared_at = datetime.now(timezone.utc) - timedelta(days=3)
        for w in (world, enums):
            w.ops.execute("""insert into data_shares (vendor_id, user_id, category, purpose, record_count, shared_at)
                             values (1, %s, 'contact', 'analytics', 1, %s)""", (erased, shared_at))
        make_enums(enums.ops)
        assert run(enums, "scheduled__1")["outcomes"] == run(world, "scheduled__1")["outcomes"]
        got = outcomes(enums.store)
        assert got == outcomes(world.store) and {o for o, _, _ in got.values()} >= {"exported", "erased"}
        statuses = "select id, status::text, completed_at is null from privacy_requests order by id"
        assert enums.ops.execute(statuses).fetchall() == world.ops.execute(statuses).fetchall()
        assert _shared_with_files(enums) == _shared_with_files(world)
        notices = "select subject_hash, vendor_id, categories from compliance.vendor_deletion_notices order by 1, 2"
        assert enums.store.execute(notices).fetchall() == world.store.execute(notices).fetchall()
        assert (user_hash(KEY, erased), 1, ["contact"]) in world.store.execute(notices).fetchall()


def test_an_erasure_request_after_a_fulfilment_that_kept_rows_of_a_shared_address_says_what_is_still_held(world):
    """Found by a review: an erasure request's fulfilment erased an account whose address another account also has,
    and kept the rows tied to it by that address alone (here its email suppression), naming them only in its reason
    text. A later erasure request of the same person, filed before that erasure (unlinked by it) or naming the erased
    account after it, was told "nothing was left to erase" (or that the rows still carrying the id were removed), with
    no word of the rows still held. The erasure's record keeps the rows it kept (`kept_rows`, migration 0032), and
    each later reason names them, as it names those the child-data purge kept."""
    ops, store = world.ops, world.store
    subject, other = free_users(ops, 2)
    address = ops.execute("select email from users where id = %s", (subject,)).fetchone()[0]
    ops.execute("update users set email = %s where id = %s", (f" {address.upper()}", other))
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())",
                (address.strip().lower(),))
    first = new_request(ops, subject, "erasure")
    before = new_request(ops, subject, "erasure")  # open, not a target of the erasing run: unlinked by it
    run(world, "manual__shared_first", params(world, request_ids=(first,)))
    outcome, reason, _ = outcomes(store)[first]
    assert outcome == "erased" and "were kept (public.email_suppressions=1)" in reason, (outcome, reason)
    after = new_request(ops, subject, "erasure")

    run(world, "manual__shared_after", params(world, request_ids=(before, after)))
    got = outcomes(store)
    held = ("the rows tied to the account by an address another account also has, which that erasure kept "
            "(public.email_suppressions=1)")
    for rid in (before, after):
        outcome, reason, completed = got[rid]
        assert outcome == "erased" and completed, got[rid]
        assert f"erased by the fulfilment of request {first} (run manual__shared_first)" in reason, reason
        assert held in reason, reason
    assert "nothing was left to erase but " + held in got[before][1], got[before][1]
    # The erasure's record keeps the rows it kept; the others (an erasure that found nothing of a shared address
    # left to keep) keep none.
    assert dict(store.execute("select request_id, kept_rows from compliance.dsr_fulfilments where request_id = any(%s)",
                              ([first, before, after],)).fetchall()) == {
        first: {"public.email_suppressions": 1}, before: None, after: None}
