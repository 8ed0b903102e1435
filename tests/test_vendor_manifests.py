"""The manifests' steps against a real PostgreSQL (seeded demo data) and both object stores (a folder, and GCS
through GCSHook's client against the emulator): paths, checksums, counts, planted violations, re-runs,
claims, empty periods, dirty rows, dry runs, the violation email and the right to know."""
from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from psycopg import sql

from devkit.database import connect
from tests import scratch
from devkit.seed.demo_data import seed
from devkit.standins.gcs_emulator import GCSEmulator
from include import compliance_store
from include.audit import RunContext
from include.config import Settings
from include.datamap import CATEGORIES, load_datamap
from include.delivery.sendgrid_mailer import SendGridMailer
from include.objectstore import FileObjectStore, ObjectStoreUnavailable
from include.periods import ParamError, RunTiming
from include.seam.storage import object_store
from include.fulfilment import right_to_know
from include.vendors import manifests, notices, source
from include.vendors.params import ManifestParams
from include.vendors.rules import VIOLATIONS
from include.step import Step

UTC = timezone.utc
ANCHOR = date(2026, 11, 25)
SETTINGS = Settings()
WIDE = {"period_start": (ANCHOR - timedelta(days=400)).isoformat(), "period_end": ANCHOR.isoformat()}
WIDE_LABEL = f"{WIDE['period_start']}--{WIDE['period_end']}"
EMPTY = {"period_start": "2001-01-01", "period_end": "2001-01-02"}
ANONYMOUS_GCP = '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}'
BUCKET = "manifests-test"


@pytest.fixture(scope="module")
def seeded(pg_server_url):
    import uuid

    from devkit import database

    name = f"privacy_manifests_{uuid.uuid4().hex[:10]}"
    url = database.create_database(pg_server_url, name)
    summary = seed(url, users=400, seed=7, anchor=ANCHOR)
    yield {"url": url, "planted": summary["planted"]}
    scratch.drop_later(pg_server_url, name)


@pytest.fixture
def db(seeded):
    """The seeded operational database and an empty compliance store in it (two connections)."""
    with connect(seeded["url"], autocommit=True) as ops, connect(seeded["url"], autocommit=True) as store:
        for conn in (ops, store):
            conn.execute("set time zone 'UTC'")
        store.execute("drop schema if exists compliance cascade")
        compliance_store.migrate(store)
        yield {"ops": ops, "store": store, "url": seeded["url"], "planted": seeded["planted"]}


@pytest.fixture(params=["file", "gcs"])
def objects(request, tmp_path, monkeypatch):
    if request.param == "file":
        yield object_store(f"file://{tmp_path}/evidence")
        return
    with GCSEmulator(default_bucket=BUCKET) as emulator:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.base_url)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
        yield object_store(f"gs://{BUCKET}/tenant-a")


@pytest.fixture
def folder(tmp_path):
    return FileObjectStore(f"file://{tmp_path}/evidence")


def params_of(raw: dict) -> ManifestParams:
    return ManifestParams.resolve(raw, SETTINGS, RunTiming(run_after=datetime(2026, 11, 25, 3, tzinfo=UTC)))


def ctx(run_id: str, now: datetime | None = None) -> RunContext:
    """The run's audit context; ``now``: the time a run of another day acts (the clock by default)."""
    if now is None:
        return RunContext(run_id=run_id, actor="test", dag_id="vendor_sharing_manifests")
    return RunContext(run_id=run_id, actor="test", dag_id="vendor_sharing_manifests", now=lambda: now)


def run_period(ops, store, objects, raw: dict, run_id: str, **write) -> tuple[list[dict], dict]:
    """What one DAG run does, minus Airflow: plan, every vendor's step, the summary."""
    params = params_of(raw)
    dm = load_datamap()
    items = manifests.plan_vendors(Step(ctx=ctx(run_id), settings=SETTINGS, params=params, ops=ops, store=store, datamap=dm))
    step = Step(ctx=ctx(run_id), settings=SETTINGS, params=params, ops=ops, store=store, datamap=dm, objects=objects)
    results = [manifests.write_manifest(step, i["vendor_id"], i["scope"], **write) for i in items]
    return results, manifests.summarize_period(Step(ctx=ctx(run_id), settings=SETTINGS, params=params, store=store),
                                               items, results)


def sql_counts(ops, start: date, end: date) -> dict[int, dict]:
    rows = ops.execute("""select vendor_id, count(*), count(distinct user_id), array_agg(id order by shared_at, id)
                          from data_shares where shared_at >= %s and shared_at < %s group by 1""",
                       (datetime.combine(start, time(0), UTC), datetime.combine(end, time(0), UTC))).fetchall()
    by_category = ops.execute("""select vendor_id, category, count(*) from data_shares
                                 where shared_at >= %s and shared_at < %s group by 1, 2""",
                              (datetime.combine(start, time(0), UTC), datetime.combine(end, time(0), UTC))).fetchall()
    found = {v: {"rows": n, "subjects": s, "ids": ids, "categories": {}} for v, n, s, ids in rows}
    for v, c, n in by_category:
        found[v]["categories"][c] = n
    return found


def read_data(objects, vendor_id: int, label: str):
    data_name, manifest_name = manifests.object_names(vendor_id, label)
    raw = objects.get(data_name)
    return raw, pq.read_table(io.BytesIO(raw)), json.loads(objects.get(manifest_name))


def audits(store, action: str) -> list[dict]:
    return [r[0] for r in store.execute("select details from compliance.audit_log where action = %s order by id",
                                        (action,))]


def test_every_vendor_gets_its_files_with_matching_checksums_counts_and_violations(db, objects):
    ops, store, planted = db["ops"], db["store"], db["planted"]
    results, summary = run_period(ops, store, objects, WIDE, "first")
    expected = sql_counts(ops, ANCHOR - timedelta(days=400), ANCHOR)
    assert {r["vendor_id"] for r in results if r["outcome"] == manifests.WRITTEN} == set(expected)
    assert summary["shares"] == sum(e["rows"] for e in expected.values()) and not summary["empty_period"]
    flagged: dict[int, set] = {}
    for vendor_id, want in expected.items():
        raw, table, manifest = read_data(objects, vendor_id, WIDE_LABEL)
        digest = hashlib.sha256(raw).hexdigest()
        row = store.execute("""select data_sha256, row_count, subject_count, data_uri, manifest_uri
                               from compliance.vendor_manifests where vendor_id = %s and period_label = %s""",
                            (vendor_id, WIDE_LABEL)).fetchone()
        data_name, manifest_name = manifests.object_names(vendor_id, WIDE_LABEL)
        assert row == (digest, want["rows"], want["subjects"], objects.uri(data_name), objects.uri(manifest_name))
        assert manifest["data_file"]["sha256"] == digest and manifest["data_file"]["bytes"] == len(raw)
        assert (manifest["rows"], manifest["subjects"]) == (want["rows"], want["subjects"])
        assert manifest["counts_by_category"] == dict(sorted(want["categories"].items()))
        assert manifest["vendor"]["id"] == vendor_id and manifest["period"]["label"] == WIDE_LABEL
        assert table.column("share_id").to_pylist() == want["ids"]  # every share, in (shared_at, id) order
        assert manifest["violations"] == {rule: sum(rule in v for v in table.column("violations").to_pylist())
                                          for rule in VIOLATIONS}
        for share_id, violations in zip(table.column("share_id").to_pylist(), table.column("violations").to_pylist()):
            flagged[share_id] = set(violations)
    # Each planted violation is found, and only it; no clean share is flagged.
    for rule in VIOLATIONS:
        for share_id in planted[f"share_{rule}"]:
            assert flagged[share_id] == {rule}, (rule, share_id, flagged[share_id])
    for share_id in planted["share_clean"]:
        assert flagged[share_id] == set(), share_id
    # Active vendors without a share in the period said so and wrote nothing.
    for r in results:
        if r["outcome"] == manifests.NO_SHARES:
            assert not objects.list(f"manifests/vendor={r['vendor_id']}/")
    assert len(audits(store, "vendor_manifest.written")) == len(expected)


def test_the_manifest_holds_no_personal_data(db, folder):
    ops = db["ops"]
    run_period(ops, db["store"], folder, WIDE, "pii")
    personal = {v.lower() for (v,) in ops.execute(
        "select email from users union select full_name from users union select phone from users") if v}
    for name in folder.list("manifests/"):
        text = folder.get(name).decode("utf-8", "replace").lower()
        assert not [v for v in personal if len(v) >= 7 and v in text], name


def test_a_rerun_with_the_same_data_writes_nothing_and_keeps_every_byte(db, objects):
    ops, store = db["ops"], db["store"]
    run_period(ops, store, objects, WIDE, "first")
    before = {name: objects.get(name) for name in objects.list("manifests/")}
    rows_before = store.execute("select * from compliance.vendor_manifests order by 1, 2").fetchall()
    stats = {}
    if isinstance(objects, FileObjectStore):
        stats = {n: (objects.root / n).stat() for n in before}
    results, summary = run_period(ops, store, objects, WIDE, "second")
    assert {r["outcome"] for r in results} <= {manifests.UNCHANGED, manifests.NO_SHARES}
    assert summary["outcomes"][manifests.UNCHANGED] == len(rows_before)
    assert {name: objects.get(name) for name in objects.list("manifests/")} == before
    assert store.execute("select * from compliance.vendor_manifests order by 1, 2").fetchall() == rows_before
    for name, stat in stats.items():  # not even rewritten with the same bytes
        assert ((objects.root / name).stat().st_ino, (objects.root / name).stat().st_mtime_ns) == (
            stat.st_ino, stat.st_mtime_ns)
    assert len(audits(store, "vendor_manifest.written")) == len(rows_before)


def test_a_run_cleared_and_run_again_still_records_the_manifests_it_wrote(db, objects):
    """Found by an on-call trial: a run cleared in the Airflow UI and run again whole (the same run id) found the
    manifests its first attempt wrote as recorded, called them `unchanged`, and rewrote the run's row in
    compliance.vendor_manifest_runs (the page's runs) to say it wrote nothing. They are still the run's `written`;
    nothing is uploaded, recorded or audited again."""
    ops, store = db["ops"], db["store"]
    _, first = run_period(ops, store, objects, WIDE, "cleared")
    before = {name: objects.get(name) for name in objects.list("manifests/")}
    written = len(audits(store, "vendor_manifest.written"))
    assert first["outcomes"][manifests.WRITTEN] == written > 0
    _, again = run_period(ops, store, objects, WIDE, "cleared")
    assert again["outcomes"] == first["outcomes"]
    assert store.execute("select outcomes from compliance.vendor_manifest_runs where run_id = 'cleared'"
                         ).fetchone()[0] == first["outcomes"]
    assert {name: objects.get(name) for name in objects.list("manifests/")} == before
    assert len(audits(store, "vendor_manifest.written")) == written
    _, other = run_period(ops, store, objects, WIDE, "another")  # another run finds them as recorded
    assert other["outcomes"][manifests.UNCHANGED] == written and manifests.WRITTEN not in other["outcomes"]


def test_the_same_rows_give_the_same_bytes_however_they_are_chunked(db, tmp_path):
    from include.vendors import datafile

    ops, dm = db["ops"], load_datamap()
    scope = params_of(WIDE).scope
    digests = set()
    for block in (1 << 10, 1 << 14, datafile.CSV_BLOCK_BYTES):
        with ops.cursor() as cur, cur.copy(source.copy_statement(dm, scope),
                                           source.copy_params(1, scope, "UTC")) as copy:
            written = datafile.write(datafile.csv_batches(copy, block_bytes=block), str(tmp_path / f"{block}.parquet"),
                                     row_group_rows=100)
        digests.add(written.sha256)
        assert written.tally.row_groups > 1
    assert len(digests) == 1


def test_late_shares_make_a_new_revision_and_a_missing_object_is_restored(db, folder):
    ops, store = db["ops"], db["store"]
    run_period(ops, store, folder, WIDE, "first")
    first = store.execute("select data_sha256, revision from compliance.vendor_manifests "
                          "where vendor_id = 1 and period_label = %s", (WIDE_LABEL,)).fetchone()
    late = ops.execute("select max(id) + 1 from data_shares").fetchone()[0]
    ops.execute("""insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count, shared_at)
                   values (%s, 1, 1, 'contact', 'hosting', 'contract', 2, %s)""",
                (late, datetime.combine(ANCHOR - timedelta(days=2), time(9), UTC)))
    try:
        results, _ = run_period(ops, store, folder, WIDE, "late", )
        outcome = {r["vendor_id"]: r["outcome"] for r in results}
        assert outcome[1] == manifests.WRITTEN and outcome[2] == manifests.UNCHANGED
        second = store.execute("select data_sha256, revision, run_id from compliance.vendor_manifests "
                               "where vendor_id = 1 and period_label = %s", (WIDE_LABEL,)).fetchone()
        assert second[0] != first[0] and second[1:] == (2, "late")
        _, table, manifest = read_data(folder, 1, WIDE_LABEL)
        assert late in table.column("share_id").to_pylist() and manifest["run_id"] == "late"

        data_name, _ = manifests.object_names(2, WIDE_LABEL)
        (folder.root / data_name).unlink()
        results, _ = run_period(ops, store, folder, WIDE, "repair")
        assert {r["vendor_id"]: r["outcome"] for r in results}[2] == manifests.RESTORED
        assert hashlib.sha256(folder.get(data_name)).hexdigest() == store.execute(
            "select data_sha256 from compliance.vendor_manifests where vendor_id = 2 and period_label = %s",
            (WIDE_LABEL,)).fetchone()[0]
    finally:
        ops.execute("delete from data_shares where id = %s", (late,))


class _ManifestWritesFail(FileObjectStore):
    """A folder store whose writes of manifest.json fail, as an outage between the two uploads would."""

    def put(self, name, data, content_type="application/octet-stream", **kw):
        if name.endswith("manifest.json"):
            raise ObjectStoreUnavailable("the store did not answer")
        return super().put(name, data, content_type, **kw)


def test_an_upload_lost_between_the_two_objects_is_repaired_by_the_next_run(db, folder):
    """Found by a fault trial: a late share's run wrote the new data file, then lost the store before manifest.json;
    the share was withdrawn and the period re-run, which found the content as recorded and both objects present
    and called it unchanged, for good: the manifest named one SHA-256, the data file held another (and the
    withdrawn share). The objects are now checked against the record before nothing is written."""
    ops, store = db["ops"], db["store"]
    run_period(ops, store, folder, {**WIDE, "vendor_ids": [1]}, "first")
    data_name, _ = manifests.object_names(1, WIDE_LABEL)
    late = ops.execute("select max(id) + 1 from data_shares").fetchone()[0]
    ops.execute("""insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count, shared_at)
                   values (%s, 1, 1, 'contact', 'hosting', 'contract', 2, %s)""",
                (late, datetime.combine(ANCHOR - timedelta(days=2), time(9), UTC)))
    try:
        with pytest.raises(ObjectStoreUnavailable):
            run_period(ops, store, _ManifestWritesFail(f"file://{folder.root}"), {**WIDE, "vendor_ids": [1]}, "lost")
    finally:
        ops.execute("delete from data_shares where id = %s", (late,))
    results, _ = run_period(ops, store, folder, {**WIDE, "vendor_ids": [1]}, "after")
    assert [r["outcome"] for r in results] == [manifests.RESTORED]
    raw, table, manifest = read_data(folder, 1, WIDE_LABEL)
    recorded = store.execute("select data_sha256, revision from compliance.vendor_manifests where vendor_id = 1 "
                             "and period_label = %s", (WIDE_LABEL,)).fetchone()
    assert hashlib.sha256(raw).hexdigest() == manifest["data_file"]["sha256"] == recorded[0] and recorded[1] == 1
    assert late not in table.column("share_id").to_pylist()
    again, _ = run_period(ops, store, folder, {**WIDE, "vendor_ids": [1]}, "again")
    assert [r["outcome"] for r in again] == [manifests.UNCHANGED]


class _ManifestAnswerLost(FileObjectStore):
    """A folder store whose writes of manifest.json land, and then the answer is lost (a timeout after the write)."""

    def put(self, name, data, content_type="application/octet-stream", **kw):
        uri = super().put(name, data, content_type, **kw)
        if name.endswith("manifest.json"):
            raise ObjectStoreUnavailable("the store did not answer")
        return uri


def test_a_manifest_json_left_by_a_run_that_failed_is_written_again_when_the_vendor_is_as_recorded(db, folder):
    """A vendor renamed, the run's manifest.json landed but its answer was lost (nothing recorded), the name put
    back: the data file is byte for byte the recorded one, so the period was called unchanged, and manifest.json
    kept naming the other vendor name and the failed run, at odds with the record for good."""
    ops, store = db["ops"], db["store"]
    targeted = {**WIDE, "vendor_ids": [7]}
    run_period(ops, store, folder, targeted, "first")
    (name,) = ops.execute("select name from vendors where id = 7").fetchone()
    ops.execute("update vendors set name = 'Renamed Analytics' where id = 7")
    try:
        with pytest.raises(ObjectStoreUnavailable):
            run_period(ops, store, _ManifestAnswerLost(f"file://{folder.root}"), targeted, "lost")
    finally:
        ops.execute("update vendors set name = %s where id = 7", (name,))
    results, _ = run_period(ops, store, folder, targeted, "after")
    assert [r["outcome"] for r in results] == [manifests.RESTORED]
    _, _, manifest = read_data(folder, 7, WIDE_LABEL)
    recorded = store.execute("select run_id, revision, content_sha256 from compliance.vendor_manifests "
                             "where vendor_id = 7 and period_label = %s", (WIDE_LABEL,)).fetchone()
    assert manifest["vendor"]["name"] == name and (manifest["run_id"], recorded[:2]) == ("after", ("after", 1))
    assert manifests.content_sha256({k: v for k, v in manifest.items() if k not in ("generated_at", "run_id")}
                                    ) == recorded[2]
    assert [r["outcome"] for r in run_period(ops, store, folder, targeted, "again")[0]] == [manifests.UNCHANGED]


def test_a_manifest_another_run_is_writing_is_left_to_it(db, folder):
    ops, store = db["ops"], db["store"]
    params = params_of(WIDE)
    with connect(db["url"], autocommit=True) as other:
        with other.transaction():
            assert manifests.claim(other, 1, WIDE_LABEL)  # another run, mid-write
            result = manifests.write_manifest(Step(ctx=ctx("second"), settings=SETTINGS, params=params, ops=ops, store=store, datamap=load_datamap(), objects=folder), 1, WIDE_LABEL)
            assert result["outcome"] == manifests.BUSY
            assert not folder.list("manifests/vendor=1/")
            assert store.execute("select count(*) from compliance.vendor_manifests").fetchone()[0] == 0
    # The claim ends with the other run's transaction (commit, rollback, or its connection dying).
    result = manifests.write_manifest(Step(ctx=ctx("second"), settings=SETTINGS, params=params, ops=ops, store=store, datamap=load_datamap(), objects=folder), 1, WIDE_LABEL)
    assert result["outcome"] == manifests.WRITTEN


def test_two_runs_of_one_period_at_once_write_each_manifest_once(db, folder):
    outcomes: dict[str, list[dict]] = {}
    errors = []

    def run(name: str) -> None:
        try:
            with connect(db["url"], autocommit=True) as ops, connect(db["url"], autocommit=True) as store:
                outcomes[name] = run_period(ops, store, folder, WIDE, name)[0]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("twin-a", "twin-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    per_vendor: dict[int, Counter] = {}
    for results in outcomes.values():
        for r in results:
            per_vendor.setdefault(r["vendor_id"], Counter())[r["outcome"]] += 1
    for vendor_id, seen in per_vendor.items():
        if seen[manifests.NO_SHARES]:
            continue
        # Exactly one run wrote it; the other found it claimed, or already written with the same content.
        assert seen[manifests.WRITTEN] == 1 and seen[manifests.BUSY] + seen[manifests.UNCHANGED] == 1, (vendor_id, seen)
    written = audits(db["store"], "vendor_manifest.written")
    assert len(written) == len({(w["vendor_id"], w["period"]) for w in written}) == sum(
        1 for seen in per_vendor.values() if seen[manifests.WRITTEN])


def test_an_empty_period_writes_nothing_and_says_so(db, objects, caplog):
    ops, store = db["ops"], db["store"]
    caplog.set_level("INFO", logger="include.vendors")
    results, summary = run_period(ops, store, objects, EMPTY, "empty")
    assert results and {r["outcome"] for r in results} == {manifests.NO_SHARES}  # each active vendor said so
    assert summary["empty_period"] and summary["shares"] == 0
    assert objects.list("manifests/") == []
    assert store.execute("select count(*) from compliance.vendor_manifests").fetchone()[0] == 0
    assert "period 2001-01-01 has no shares for any vendor: no manifest was written" in caplog.text
    assert store.execute("select planned, shares, outcomes from compliance.vendor_manifest_runs where run_id = 'empty'"
                         ).fetchone() == (len(results), 0, {"no_shares": len(results)})


def test_a_dry_run_judges_and_counts_but_writes_nothing(db, folder):
    ops, store = db["ops"], db["store"]
    results, summary = run_period(ops, store, None, {**WIDE, "dry_run": True}, "dry")
    assert {r["outcome"] for r in results} <= {manifests.DRY_RUN, manifests.NO_SHARES}
    assert summary["violations"] and summary["dry_run"]
    assert store.execute("select count(*) from compliance.vendor_manifests").fetchone()[0] == 0
    assert store.execute("select count(*) from compliance.vendor_violation_notices").fetchone()[0] == 0
    assert store.execute("select dry_run from compliance.vendor_manifest_runs where run_id = 'dry'").fetchone() == (True,)


def test_a_targeted_run_writes_only_its_vendors(db, folder):
    results, _ = run_period(db["ops"], db["store"], folder, {**WIDE, "vendor_ids": [7, 9001, 4242]}, "targeted")
    assert {(r["vendor_id"], r["outcome"]) for r in results} == {
        (7, manifests.WRITTEN), (9001, manifests.WRITTEN), (4242, manifests.NO_SHARES)}
    assert {n.split("/")[1] for n in folder.list("manifests/")} == {"vendor=7", "vendor=9001"}


def test_dirty_shares_are_counted_and_flagged_never_dropped_nor_fatal(db, folder):
    ops, store = db["ops"], db["store"]
    first = ops.execute("select max(id) + 1 from data_shares").fetchone()[0]
    dirty = [  # (shared_at, user_id, category, record_count)
        ("2001-01-01 10:00+00", 999_999, "contact", 1),     # no such user
        ("2001-01-01 11:00+00", 1, "biometrics", 1),        # no such category
        ("2001-01-01 12:00+00", 1, "contact", -5),          # implausible count
        ("infinity", 1, "contact", 1),                      # no period holds these
        ("-infinity", 1, "contact", 1),
        ("0044-03-15 12:00+00 BC", 1, "contact", 1),
    ]
    for offset, (at, user, category, count) in enumerate(dirty):
        ops.execute("""insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count,
                                                shared_at) values (%s, 1, %s, %s, 'hosting', null, %s, %s)""",
                    (first + offset, user, category, count, at))
    try:
        results, _ = run_period(ops, store, folder, {"period_start": "2001-01-01", "vendor_ids": [1]}, "dirty")
        by_scope = {r["period"]: r for r in results}
        assert by_scope["2001-01-01"]["outcome"] == manifests.WRITTEN
        assert by_scope["2001-01-01"]["invalid_rows"] == {"unknown_user": 1, "unknown_category": 1,
                                                         "record_count_invalid": 1}
        assert by_scope["undated"]["outcome"] == manifests.WRITTEN
        assert by_scope["undated"]["invalid_rows"] == {"shared_at_unreadable": 3}
        _, table, manifest = read_data(folder, 1, "undated")
        assert sorted(table.column("share_id").to_pylist()) == [first + 3, first + 4, first + 5]
        assert table.column("shared_at").null_count == 3 and manifest["period"]["start"] is None
        _, table, manifest = read_data(folder, 1, "2001-01-01")
        assert manifest["rows"] == 3 and manifest["rows_with_problems"] == 3
    finally:
        ops.execute("delete from data_shares where id >= %s", (first,))


@pytest.mark.parametrize("column_type, counts, kept", [
    ("numeric", ["2.5", "3.000", "-1", "12"], [None, 3, -1, 12]),
    ("text", ["2.5", " 7 ", "twelve", "", "99999999999999999999", "12"], [None, 7, None, None, None, 12]),
])
def test_a_record_count_that_is_no_whole_number_spoils_only_its_row(db, folder, column_type, counts, kept):
    """Found by a fault trial: a record_count column of another type (numeric, as a count summed from elsewhere is
    often kept; text) made the vendor's whole manifest fail: a fraction stopped the data file's reader ("CSV conversion
    error to int64: invalid value '2.5'"), a text column the rule's first statement ("operator does not exist: text <
    integer"), each retried for minutes, the vendor's other shares never written. Such a row's count is now empty and
    the row is flagged record_count_invalid; a whole number (3.000, ' 7 ') is read as one."""
    ops, store = db["ops"], db["store"]
    first = ops.execute("select max(id) + 1 from data_shares").fetchone()[0]
    ops.execute(f"alter table data_shares alter record_count type {column_type} using record_count::{column_type}")
    try:
        for offset, count in enumerate(counts):
            ops.execute("""insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis,
                                                    record_count, shared_at)
                           values (%s, 1, 1, 'contact', 'hosting', null, %s::text::""" + column_type +
                        """, '2001-01-01 10:00+00')""", (first + offset, count))
        ops.execute("insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count, "
                    "shared_at) values (%s, 7, 1, 'contact', 'hosting', null, '4', '2001-01-01 11:00+00')",
                    (first + len(counts),))
        results, _ = run_period(ops, store, folder, {"period_start": "2001-01-01", "vendor_ids": [1, 7]}, "counts")
        by_vendor = {r["vendor_id"]: r for r in results}
        assert by_vendor[1]["outcome"] == by_vendor[7]["outcome"] == manifests.WRITTEN
        invalid = sum(1 for k in kept if k is None or k < 1)
        assert by_vendor[1]["invalid_rows"] == {"record_count_invalid": invalid} and not by_vendor[7]["invalid_rows"]
        _, table, manifest = read_data(folder, 1, "2001-01-01")
        assert table.column("record_count").to_pylist() == kept
        assert manifest["records"] == sum(k for k in kept if k is not None)
        assert read_data(folder, 7, "2001-01-01")[1].column("record_count").to_pylist() == [4]
    finally:
        ops.execute("delete from data_shares where id >= %s", (first,))
        ops.execute("alter table data_shares alter record_count type int using record_count::int")


def test_an_undated_manifest_with_the_same_shares_is_left_as_it_is_on_later_days(db, folder):
    """The undated shares are judged as of the run's own day, but the same shares judged the same way on the next
    day are the same manifest: it is left as it is (no new revision, no rewrite, no audit entry every day)."""
    ops, store = db["ops"], db["store"]
    first = ops.execute("select max(id) + 1 from data_shares").fetchone()[0]
    ops.execute("""insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count,
                                            shared_at) values (%s, 1, 1, 'contact', 'hosting', null, 1, 'infinity')""",
                (first,))
    try:
        outcomes = []
        for day in (25, 26, 27):
            started = datetime(2026, 11, day, 3, tzinfo=UTC)
            params = ManifestParams.resolve({"period_start": "2001-01-01", "vendor_ids": [1]}, SETTINGS,
                                            RunTiming(run_after=started))
            step = Step(ctx=ctx(f"undated-{day}", started), settings=SETTINGS, params=params, ops=ops, store=store,
                        datamap=load_datamap(), objects=folder)
            outcomes.append(manifests.write_manifest(step, 1, source.UNDATED)["outcome"])
        assert outcomes == [manifests.WRITTEN, manifests.UNCHANGED, manifests.UNCHANGED]
        assert store.execute("select revision, run_id from compliance.vendor_manifests where vendor_id = 1 and "
                             "period_label = 'undated'").fetchone() == (1, "undated-25")
        _, _, manifest = read_data(folder, 1, source.UNDATED)
        assert manifest["run_id"] == "undated-25" and manifest["period"]["child_rules_as_of"] == "2026-11-25"
    finally:
        ops.execute("delete from data_shares where id >= %s", (first,))


def test_a_new_violation_among_a_vendors_undated_shares_is_emailed_again(db, folder, sendgrid):
    """The undated shares are no period that is ever over: a share dated infinity breaking a rule after the vendor's
    undated manifest was emailed made revision 2, and, the notice being once per (vendor, 'undated') for good, the
    new violation reached nobody, the very case a live run of a period not over yet is refused for."""
    ops, store = db["ops"], db["store"]
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
    first = ops.execute("select max(id) + 1 from data_shares").fetchone()[0]
    insert = """insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count,
                                         shared_at) values (%s, 1, 1, 'social', 'hosting', null, 1, 'infinity')"""

    def run(day: int, send: bool = True) -> tuple[dict, dict]:
        params = ManifestParams.resolve({"period_start": "2001-01-01", "vendor_ids": [1]}, SETTINGS,
                                        RunTiming(run_after=datetime(2026, 11, day, 3, tzinfo=UTC)))
        step = Step(ctx=ctx(f"undated-{day}"), settings=SETTINGS, params=params, ops=ops, store=store,
                    datamap=load_datamap(), objects=folder, mailer=mailer)
        return manifests.write_manifest(step, 1, source.UNDATED), send and manifests.send_violation_emails(step)

    ops.execute(insert, (first,))
    try:
        written, sent = run(25)
        assert (written["outcome"], written["violations"]["category_not_allowed"], sent["sent"]) == (
            manifests.WRITTEN, 1, 1)
        assert run(26)[1]["sent"] == 0  # the same undated shares: nothing new to tell
        ops.execute(insert, (first + 1,))  # a later share no period holds, breaking the same rule
        written, sent = run(27)
        assert (written["outcome"], written["violations"]["category_not_allowed"], sent["sent"]) == (
            manifests.WRITTEN, 2, 1)
        assert run(28)[1]["sent"] == 0
        # Two revisions before the email goes out: one notice, sent with the manifest as it is then.
        for share in (first + 2, first + 3):
            ops.execute(insert, (share,))
            assert run(29, send=False)[0]["outcome"] == manifests.WRITTEN
        assert run(30)[1]["sent"] == 1
        subjects = [m["payload"]["subject"] for m in sendgrid.accepted()]
        assert len(subjects) == 3 and "2 of 2 share(s)" in subjects[1] and "4 of 4 share(s)" in subjects[2], subjects
    finally:
        ops.execute("delete from data_shares where id >= %s", (first,))


def share_about_no_account(ops, *, days_back: int, newest: bool = False) -> tuple[int, int, date]:
    """Plant a share (an allowed category) about a user id no account has, to an active channel partner, on a day of
    the ``days_back`` days before ANCHOR on which that vendor has no share (the earliest such day, or the ``newest``):
    its manifest breaks one rule (``unknown_subject``). Returns (share id, vendor id, day); delete the share after."""
    vendor_id, category, day = ops.execute(
        f"""select v.id, v.allowed_categories[1], d::date
            from vendors v, generate_series(%(anchor)s::date - %(back)s, %(anchor)s::date - 2, interval '1 day') d
            where v.active and cardinality(v.allowed_categories) > 0 and v.kind = 'channel_partner'
              and not exists (select 1 from data_shares s where s.vendor_id = v.id
                              and s.shared_at >= d and s.shared_at < d + interval '1 day')
            order by v.id, d {'desc' if newest else ''} limit 1""", {"anchor": ANCHOR, "back": days_back}).fetchone()
    share_id = ops.execute("select max(id) + 1 from data_shares").fetchone()[0]
    ops.execute("""insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count,
                                            shared_at) values (%s, %s, 999999999, %s, 'referral', null, 1, %s)""",
                (share_id, vendor_id, category, datetime.combine(day, time(12), UTC)))
    return share_id, vendor_id, day


def test_a_share_about_someone_no_account_names_is_a_violation_and_its_notice_goes_out(db, folder):
    """Issue 30: a share to an unknown user was only a dirty row, so a vendor whose only problem it was got no
    notice; the company shared data about someone it cannot identify, which is a violation."""
    ops, store = db["ops"], db["store"]
    share_id, vendor_id, day = share_about_no_account(ops, days_back=60)
    try:
        results, _ = run_period(ops, store, folder, {"period_start": day.isoformat(), "vendor_ids": [vendor_id]},
                                "unknown-subject")
        (result,) = results
        assert result["violations"] == {"unknown_subject": 1} and result["invalid_rows"] == {"unknown_user": 1}
        assert store.execute("select count(*) from compliance.vendor_violation_notices where vendor_id = %s "
                             "and period_label = %s", (vendor_id, day.isoformat())).fetchone()[0] == 1
    finally:
        ops.execute("delete from data_shares where id = %s", (share_id,))


def test_a_pending_notice_whose_manifest_was_rewritten_without_violations_is_withdrawn(db, folder, sendgrid):
    """Found by a review: a violation notice left pending (SendGrid down) whose manifest was then rewritten with no
    share breaking a rule (the share corrected, a late share withdrawn) was still sent, as "0 of 1 share(s) ...
    break a sharing rule": a false alarm. It is withdrawn with why; broken again, it is recorded and sent."""
    ops, store = db["ops"], db["store"]
    adult = ops.execute("""select id from users where deleted_at is null and not do_not_sell and do_not_sell_at is null
                             and birth_date < now() - interval '30 years' and declared_age is null
                           order by id limit 1""").fetchone()[0]
    share_id, vendor_id, day = share_about_no_account(ops, days_back=90, newest=True)
    period = {"period_start": day.isoformat(), "vendor_ids": [vendor_id]}
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)

    def send(run_id: str) -> dict:
        return manifests.send_violation_emails(Step(ctx=ctx(run_id), settings=SETTINGS, params=params_of(period),
                                                    store=store, mailer=mailer))

    try:
        run_period(ops, store, folder, period, "broken")  # recorded; SendGrid down: its notice stays pending
        ops.execute("update data_shares set user_id = %s where id = %s", (adult, share_id))  # corrected
        (result,), _ = run_period(ops, store, folder, period, "corrected")
        assert result["outcome"] == manifests.WRITTEN and not result["violation_rows"]
        report = send("corrected")
        assert (report["sent"], report["withdrawn"]) == (0, 1) and sendgrid.accepted() == []
        status, error = store.execute("select status, error from compliance.outbox where kind = %s and key = %s",
                                      (notices.OUTBOX.kind, f"{vendor_id}/{day.isoformat()}")).fetchone()
        assert status == "withdrawn" and "no share of it breaks a rule" in error

        ops.execute("update data_shares set user_id = 999999999 where id = %s", (share_id,))  # broken again
        run_period(ops, store, folder, period, "broken-again")
        assert send("broken-again")["sent"] == 1
        (message,) = [m["payload"] for m in sendgrid.accepted()]
        assert message["subject"].startswith("[Vendor sharing] 1 of 1 share(s)")
    finally:
        ops.execute("delete from data_shares where id = %s", (share_id,))


def test_a_notice_left_pending_by_a_failed_email_step_goes_out_with_the_next_run_of_any_period(db, folder, sendgrid):
    """Found by a review: a day's violation notice whose email step failed for good (SendGrid down past its
    retries) stayed pending until that same period was run again; the next day's run sent only its own day's, and
    nothing counted the pending one. A run over every vendor now sends it; one targeted at other vendors does not."""
    from include.delivery.sendgrid_mailer import RetryPolicy

    ops, store = db["ops"], db["store"]
    share_id, vendor_id, day = share_about_no_account(ops, days_back=120)
    period = {"period_start": day.isoformat()}
    try:
        run_period(ops, store, folder, period, "the-day")
        sendgrid.inject(status=500, count=2)
        down = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None,
                              policy=RetryPolicy(max_attempts=2))
        with pytest.raises(Exception, match="HTTP 500"):
            manifests.send_violation_emails(Step(ctx=ctx("the-day"), settings=SETTINGS, params=params_of(period),
                                                 store=store, mailer=down))
    finally:
        ops.execute("delete from data_shares where id = %s", (share_id,))
    key = f"{vendor_id}/{day.isoformat()}"
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
    other_vendor = ops.execute("select min(id) from vendors where id <> %s", (vendor_id,)).fetchone()[0]

    def next_run(run_id: str, **raw) -> dict:
        return manifests.send_violation_emails(Step(ctx=ctx(run_id), settings=SETTINGS, params=params_of(
            {**EMPTY, **raw}), store=store, mailer=mailer))

    next_run("targeted", vendor_ids=[other_vendor])  # another vendor's run of another period: not its to send
    assert store.execute("select status from compliance.outbox where kind = %s and key = %s",
                         (notices.OUTBOX.kind, key)).fetchone() == ("pending",)
    next_run("next-day")
    assert store.execute("select status from compliance.outbox where kind = %s and key = %s",
                         (notices.OUTBOX.kind, key)).fetchone() == ("sent",)
    assert [m["payload"]["personalizations"][0]["custom_args"]["period"] for m in sendgrid.accepted()] == [
        day.isoformat()]


def test_a_live_run_of_a_period_not_over_yet_is_refused_and_a_dry_run_may_preview_it():
    """Found by a QA trial: a live manifest of today, then a child's share later today: the manifest was rewritten
    (revision 2) and, a rewritten manifest not being emailed again, the new violation reached nobody."""
    at = datetime(2026, 11, 25, 3, tzinfo=UTC)  # the run's time (params_of)
    with pytest.raises(ParamError, match=r"^the period is not over yet \(it ends as 2026-11-26 begins"):
        params_of({"period_start": "2026-11-25"})
    with pytest.raises(ParamError, match="not over yet"):
        params_of({"period_start": "2026-11-01", "period_end": "2026-12-01"})
    assert params_of({"period_start": "2026-11-25", "dry_run": True}).dry_run
    assert params_of({"period_start": "2026-11-24"}).period.end == at.replace(hour=0)  # ended at midnight: fine


def test_a_null_among_a_vendors_allowed_categories_is_flagged_not_fatal(db, folder):
    """Found by a QA trial: '{NULL,account}' fits the schema, and sorting it for the manifest raised a TypeError
    that failed the vendor's task (three retries) and with it the period's summary and every violation email."""
    ops, store = db["ops"], db["store"]
    (before,) = ops.execute("select allowed_categories from vendors where id = 1").fetchone()
    ops.execute("update vendors set allowed_categories = array[null]::text[] || allowed_categories where id = 1")
    try:
        results, _ = run_period(ops, store, folder, {**WIDE, "vendor_ids": [1, 7]}, "null-category")
        assert {r["vendor_id"]: r["outcome"] for r in results} == {1: manifests.WRITTEN, 7: manifests.WRITTEN}
        _, _, manifest = read_data(folder, 1, WIDE_LABEL)
        assert manifest["vendor"]["allowed_categories"] == sorted(before)
        assert manifest["vendor"]["problems"] == [source.ALLOWED_CATEGORY_NULL]
    finally:
        ops.execute("update vendors set allowed_categories = %s where id = 1", (before,))



def test_codes_of_an_enum_type_are_judged_as_their_labels(db, folder):
    """Found by a fault trial: a share's category, a vendor's kind or its allowed categories of a PostgreSQL enum type
    (as an application's schema often makes them) failed every vendor's step in its first statement ("operator does
    not exist: share_category = text", "function btrim(vendor_kind, unknown) does not exist"), retried for minutes as a
    database refusal, and no manifest was written. Each is judged as the text of its label: the same shares with the
    same labels give the same manifests, byte for byte."""
    ops, store = db["ops"], db["store"]
    first = [r for r in run_period(ops, store, folder, WIDE, "text")[0] if r["outcome"] != manifests.NO_SHARES]
    assert {r["outcome"] for r in first} == {manifests.WRITTEN} and len(first) > 10
    categories = sorted(CATEGORIES)
    kinds = [k for (k,) in ops.execute("select distinct kind from vendors order by 1")]
    ops.execute(sql.SQL("""create type share_category as enum ({categories});
                           create type vendor_kind as enum ({kinds});
                           alter table data_shares alter category type share_category using category::share_category;
                           alter table vendors alter kind type vendor_kind using kind::vendor_kind,
                               alter allowed_categories type share_category[]
                                   using allowed_categories::share_category[]""").format(
        categories=sql.SQL(", ").join(map(sql.Literal, categories)), kinds=sql.SQL(", ").join(map(sql.Literal, kinds))))
    try:
        again = [r for r in run_period(ops, store, folder, WIDE, "enums")[0] if r["outcome"] != manifests.NO_SHARES]
        assert {r["vendor_id"]: r["outcome"] for r in again} == {r["vendor_id"]: manifests.UNCHANGED for r in first}
        assert {r["vendor_id"]: (r["violations"], r["data_sha256"]) for r in again} == {
            r["vendor_id"]: (r["violations"], r["data_sha256"]) for r in first}
    finally:
        ops.execute("""alter table data_shares alter category type text using category::text;
                       alter table vendors alter kind type text using kind::text,
                           alter allowed_categories type text[] using allowed_categories::text[];
                       drop type share_category; drop type vendor_kind""")

def test_violations_are_emailed_once_per_vendor_and_period(db, folder, sendgrid):
    ops, store = db["ops"], db["store"]
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
    results, _ = run_period(ops, store, folder, WIDE, "first")
    broken = {r["vendor_id"] for r in results if r.get("violation_rows")}
    assert broken
    report = manifests.send_violation_emails(Step(ctx=ctx("first"), settings=SETTINGS, params=params_of(WIDE), store=store, mailer=mailer))
    assert report["sent"] == len(broken)
    messages = [m["payload"] for m in sendgrid.accepted()]
    assert sorted(int(m["personalizations"][0]["custom_args"]["vendor_id"]) for m in messages) == sorted(broken)
    # A repeated run records nothing new and sends nothing more; a second sender finds nothing pending.
    run_period(ops, store, folder, WIDE, "second")
    assert manifests.send_violation_emails(Step(ctx=ctx("second"), settings=SETTINGS, params=params_of(WIDE), store=store, mailer=mailer))["sent"] == 0
    assert len(sendgrid.accepted()) == len(broken)
    planted_child = db["planted"]["share_child"][0]
    text = next(m["content"][0]["value"] for m in messages
                if m["personalizations"][0]["custom_args"]["vendor_id"] == "1")
    assert "[child]" in text and str(planted_child) in text
    personal = {v.lower() for (v,) in ops.execute("select email from users union select full_name from users") if v}
    mail = json.dumps(messages).lower()
    assert not [v for v in personal if len(v) >= 7 and v in mail]


def test_a_vendors_failed_step_is_named_by_the_summary_and_holds_back_no_other_notice(db, folder, sendgrid, caplog):
    """A vendor's step that failed for good returns nothing: the gathered results leave it out, the summary counts
    and names it, and the other vendors' notices, recorded with their manifests, go out in the same run (through
    Airflow: tests/test_e2e_vendor_sharing_manifests.py)."""
    ops, store = db["ops"], db["store"]
    caplog.set_level("INFO", logger="include.vendors")
    params, dm = params_of(WIDE), load_datamap()
    items = manifests.plan_vendors(Step(ctx=ctx("one-failed"), settings=SETTINGS, params=params, ops=ops, store=store,
                                        datamap=dm))
    lost = next(i for i in items if i["vendor_id"] == 1 and i["scope"] == WIDE_LABEL)  # has the planted child share
    step = Step(ctx=ctx("one-failed"), settings=SETTINGS, params=params, ops=ops, store=store, datamap=dm,
                objects=folder)
    results = [manifests.write_manifest(step, i["vendor_id"], i["scope"]) for i in items if i != lost]
    gathered = manifests.gather_vendor_results(step, [*results, None])  # the failed step's missing return value
    assert gathered == results
    summary = manifests.summarize_period(Step(ctx=ctx("one-failed"), settings=SETTINGS, params=params, store=store),
                                         items, gathered)
    assert summary["outcomes"][manifests.FAILED] == 1 and not summary["empty_period"]
    assert summary["failed"] == [{"vendor_id": 1, "period": WIDE_LABEL}]
    assert f"1 of {len(items)} vendor step(s) failed (vendor 1 · {WIDE_LABEL}; see" in caplog.text
    assert store.execute("select outcomes ->> 'failed' from compliance.vendor_manifest_runs where run_id = 'one-failed'"
                         ).fetchone() == ("1",)
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
    report = manifests.send_violation_emails(Step(ctx=ctx("one-failed"), settings=SETTINGS, params=params, store=store,
                                                  mailer=mailer))
    broken = sorted(r["vendor_id"] for r in results if r.get("violation_rows"))
    assert broken and 1 not in broken and report["sent"] == len(broken)
    assert sorted(int(m["payload"]["personalizations"][0]["custom_args"]["vendor_id"]) for m in sendgrid.accepted()) \
        == broken


def test_more_vendors_than_airflow_maps_a_task_over_are_planned_in_steps_of_several(db, folder, monkeypatch):
    """Found by a fault trial: a run of 1,100 vendors (`vendor_ids`; a deployment with more active vendors than that
    on every scheduled run) planned one mapped step per vendor, and Airflow refused to push the plan ([core]
    max_map_length, 1,024 by default: "pushed value is too large to map as a downstream's dependency"): a traceback
    retried for ten minutes, then the run failed with no manifest written. Beyond MAPPED_MAX (vendor, period) pairs
    each mapped step writes several, one after the other; one vendor's failure holds back no other of its step."""
    from airflow.configuration import conf

    ops, store = db["ops"], db["store"]
    params, dm = params_of({**WIDE, "vendor_ids": list(range(1, 1101))}), load_datamap()
    with_shares = {v for (v,) in ops.execute("select distinct vendor_id from data_shares where shared_at >= %s and "
                                             "shared_at < %s", (params.period.start, params.period.end))
                  if v <= 1100}
    items = manifests.plan_vendors(Step(ctx=ctx("many"), settings=SETTINGS, params=params, ops=ops, store=store,
                                        datamap=dm))
    assert len(items) <= conf.getint("core", "max_map_length")
    pairs = manifests.planned_pairs(items)
    assert {p for p in pairs if p[1] == WIDE_LABEL} == {(v, WIDE_LABEL) for v in range(1, 1101)}
    assert len(pairs) == len(set(pairs)) == 1100 + sum(1 for p in pairs if p[1] == "undated")
    step = Step(ctx=ctx("many"), settings=SETTINGS, params=params, ops=ops, store=store, datamap=dm, objects=folder)
    real = manifests.write_manifest

    def refusing_vendor_1(step, vendor_id, scope_label, **kw):
        if vendor_id == 1:
            raise ObjectStoreUnavailable("the bucket refused the upload")
        return real(step, vendor_id, scope_label, **kw)

    monkeypatch.setattr(manifests, "write_manifest", refusing_vendor_1)
    results = []
    for item in items:
        try:
            results.append(manifests.write_vendor_manifest(step, item))
        except ObjectStoreUnavailable:
            assert (1, WIDE_LABEL) in manifests.planned_pairs([item]) and len(manifests.planned_pairs([item])) > 1
            results.append(None)  # the step failed for good: no return value
    recorded = {v for (v,) in store.execute("select vendor_id from compliance.vendor_manifests where run_id = 'many' "
                                            "and period_label = %s", (WIDE_LABEL,))}
    assert recorded == with_shares - {1}  # vendor 1's step-mates were written all the same
    gathered = manifests.gather_vendor_results(step, results)
    summary = manifests.summarize_period(Step(ctx=ctx("many"), settings=SETTINGS, params=params, store=store),
                                         items, gathered)
    failed = {(f["vendor_id"], f["period"]) for f in summary["failed"]}
    assert (1, WIDE_LABEL) in failed and len(failed) == len(manifests.planned_pairs(
        [next(i for i in items if (1, WIDE_LABEL) in manifests.planned_pairs([i]))]))
    assert summary["steps"] + len(failed) == len(manifests.planned_pairs(items))


def test_the_right_to_know_lists_the_categories_and_vendors_from_the_same_shares(db):
    ops, planted = db["ops"], db["planted"]
    dm = load_datamap()
    opted_out = ops.execute("select user_id from data_shares where id = %s",
                            (planted["share_opted_out_to_non_sp"][0],)).fetchone()[0]

    def expected(period):
        return ops.execute("""select vendor_id, array_agg(distinct category order by category), count(*)
                              from data_shares where user_id = %s and shared_at >= %s and shared_at < %s
                              group by 1 order by 1""", (opted_out, period.start, period.end)).fetchall()

    year = right_to_know.last_twelve_months(ANCHOR, UTC)
    assert (year.start, year.end) == (datetime(2025, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC))
    answer = right_to_know.shared_with(ops, dm, opted_out, year)
    assert [(v.vendor_id, list(v.categories), v.shares) for v in answer.vendors] == expected(year)
    assert answer.account_exists and answer.categories == tuple(sorted({c for _, cs, _ in expected(year) for c in cs}))
    assert answer.shares == 3  # the planted shares of -300, -50 (twice) days
    recent = right_to_know.days_period(ANCHOR - timedelta(days=100), ANCHOR, UTC)
    narrow = right_to_know.shared_with(ops, dm, opted_out, recent)
    assert [(v.vendor_id, list(v.categories), v.shares) for v in narrow.vendors] == expected(recent)
    assert narrow.shares == 2
    unknown = right_to_know.shared_with(ops, dm, 987_654_321, year)
    assert not unknown.account_exists and unknown.vendors == () and unknown.categories == ()


def test_the_right_to_know_command(db, capsys):
    from include.cli import EXIT_OK, EXIT_USAGE, main

    ops, planted = db["ops"], db["planted"]
    user = ops.execute("select user_id from data_shares where id = %s",
                       (planted["share_opted_out_to_non_sp"][0],)).fetchone()[0]
    url = db["url"]
    assert main(["right-to-know", "--url", url, "--user-id", str(user), "--since", "2026-01-01",
                 "--until", "2026-11-24"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"user {user}: shared with 2 vendor(s) from 2026-01-01 to 2026-11-24 (UTC, both days included); "
                      "categories: contact")
    assert out[1].startswith("  vendor 1 CloudHost Inc (service_provider): contact - 1 share(s)")
    assert out[2].startswith("  vendor 9 Northwind Resellers (channel_partner): contact - 2 share(s)")
    assert main(["right-to-know", "--url", url, "--user-id", "987654321", "--until", "2026-11-24"]) == EXIT_OK
    assert "no account has this id now" in capsys.readouterr().out
    assert main(["right-to-know", "--url", url, "--user-id", "5", "--since", "2026-10-01",
                 "--until", "2026-09-01"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == "privacy-ops right-to-know: --since 2026-10-01 is after --until 2026-09-01"
    personal = {v.lower() for (v,) in ops.execute("select email from users where id = %s union "
                                                  "select full_name from users where id = %s", (user, user)) if v}
    main(["right-to-know", "--url", url, "--user-id", str(user)])
    printed = capsys.readouterr()
    assert not [v for v in personal if v in (printed.out + printed.err).lower()]


def test_the_store_reads_list_manifests_newest_first_and_total_the_violations(db, folder):
    from include.reads import vendors as reads

    ops, store = db["ops"], db["store"]
    run_period(ops, store, folder, WIDE, "wide")
    day = (ANCHOR - timedelta(days=20)).isoformat()
    run_period(ops, store, folder, {"period_start": day}, "day")
    listed = reads.manifests(store, limit=500)
    assert [m["period_label"] for m in listed][:1] == [day]  # the day starts after the wide period
    assert all(m["period_label"] == WIDE_LABEL for m in listed if m["period_label"] != day)
    assert {m["vendor_id"] for m in reads.manifests(store, vendor_id=7)} == {7}
    page = reads.manifests(store, before=listed[0]["period_start"], limit=500)
    assert {m["period_label"] for m in page} == {WIDE_LABEL}
    assert all(m["violation_rows"] for m in reads.manifests(store, with_violations=True, limit=500))
    expected = Counter()
    for (violations,) in store.execute("select violations from compliance.vendor_manifests"):
        expected.update(violations)
    assert reads.violation_totals(store) == {k: v for k, v in sorted(expected.items()) if v}
    assert [r["run_id"] for r in reads.runs(store)] == ["day", "wide"]


def test_a_failed_upload_leaves_no_manifest_pointing_to_a_missing_file_and_no_record(db, folder):
    from include.objectstore import ObjectStoreRefused

    ops, store = db["ops"], db["store"]
    params = params_of({**WIDE, "vendor_ids": [1]})
    data_name, manifest_name = manifests.object_names(1, WIDE_LABEL)
    (folder.root / data_name).mkdir(parents=True)  # a folder where the data file goes: its upload fails
    with pytest.raises(ObjectStoreRefused):
        manifests.write_manifest(Step(ctx=ctx("a"), settings=SETTINGS, params=params, ops=ops, store=store, datamap=load_datamap(), objects=folder), 1, WIDE_LABEL)
    assert not folder.exists(manifest_name)  # the manifest is written only after its data file
    assert store.execute("select count(*) from compliance.vendor_manifests").fetchone()[0] == 0
    (folder.root / data_name).rmdir()
    (folder.root / manifest_name).mkdir()  # now the manifest's upload fails, after the data file's
    with pytest.raises(ObjectStoreRefused):
        manifests.write_manifest(Step(ctx=ctx("b"), settings=SETTINGS, params=params, ops=ops, store=store, datamap=load_datamap(), objects=folder), 1, WIDE_LABEL)
    assert store.execute("select count(*) from compliance.vendor_manifests").fetchone()[0] == 0
    assert store.execute("select count(*) from compliance.audit_log where action like 'vendor_manifest.w%'"
                         ).fetchone()[0] == 0
    (folder.root / manifest_name).rmdir()
    assert manifests.write_manifest(Step(ctx=ctx("c"), settings=SETTINGS, params=params, ops=ops, store=store, datamap=load_datamap(), objects=folder), 1, WIDE_LABEL)["outcome"] == manifests.WRITTEN  # the retry writes both, recorded


def test_an_earlier_days_run_cleared_today_judges_undated_shares_as_of_today(db, folder):
    """Found by an on-call trial: the undated shares are judged as of the run's own day, and a run of five days ago
    cleared in the Airflow UI today (Airflow keeps its start, so its day) judged them so while it read the accounts
    as they are now: the share of an account opened since by someone who has turned 13 since was a child's share, a
    new revision of today's undated manifest (the rolling one) with one more violation, to be emailed. They are
    judged as of the later of the run's own day and today."""
    ops, store = db["ops"], db["store"]
    today = datetime.now(UTC).date()
    day = today - timedelta(days=2)
    try:
        birth = day.replace(year=day.year - 13)
    except ValueError:  # 29 February
        birth = day.replace(year=day.year - 13, day=28)
    uid = ops.execute("select max(id) + 1000 from users").fetchone()[0]
    share = ops.execute("select max(id) + 1000 from data_shares").fetchone()[0]
    ops.execute("insert into users (id, email, birth_date, created_at) values (%s, 'teen.share@example.com', %s, now())",
                (uid, birth))
    ops.execute("""insert into data_shares (id, vendor_id, user_id, category, purpose, legal_basis, record_count,
                                            shared_at) values (%s, 1, %s, 'contact', 'hosting', null, 1, 'infinity')""",
                (share, uid))

    def run(run_id: str, run_after: datetime) -> dict:
        params = ManifestParams.resolve({"period_start": "2001-01-01", "vendor_ids": [1]}, SETTINGS,
                                        RunTiming(run_after=run_after))
        step = Step(ctx=ctx(run_id), settings=SETTINGS, params=params, ops=ops, store=store, datamap=load_datamap(),
                    objects=folder)
        return manifests.write_manifest(step, 1, source.UNDATED)

    try:
        now = datetime.now(UTC)
        written = run("scheduled__today", now)
        cleared = run("scheduled__five_days_ago", now - timedelta(days=5))
        assert cleared["outcome"] == manifests.UNCHANGED
        assert cleared["violations"] == written["violations"]
        _, _, manifest = read_data(folder, 1, source.UNDATED)
        assert manifest["run_id"] == "scheduled__today" and manifest["period"]["child_rules_as_of"] == today.isoformat()
    finally:
        ops.execute("delete from data_shares where id = %s", (share,))
        ops.execute("delete from users where id = %s", (uid,))
