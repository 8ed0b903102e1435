"""End to end: seed a database, run ``vendor_sharing_manifests`` through Airflow for real, check what it wrote.

Airflow runs for real (``dag.test()`` in the test process, connections from ``AIRFLOW_CONN_*``, the pools
imported from pools.json; tests/e2e_world.py), against a real PostgreSQL, the GCS emulator reached through the
Google provider's GCSHook (the evidence location is ``gs://``), and the SendGrid stand-in; each test on a world
of its own. Two runs of one period at once are proven at function level
(tests/test_vendor_manifests.py::test_two_runs_of_one_period_at_once_write_each_manifest_once).
"""
from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from datetime import datetime, time, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from devkit import local_airflow
from tests import scratch
from devkit.database import connect
from devkit.standins.sendgrid_server import SendGridStandIn
from include import audit, compliance_store
from tests import e2e_world
from include.vendors.manifests import object_names
from include.vendors.rules import VIOLATIONS

pytestmark = pytest.mark.e2e
DAG_ID = "vendor_sharing_manifests"
API_KEY = "SG.e2e-key"
BUCKET = "privacy-evidence"
UTC = timezone.utc


@pytest.fixture
def world(make_world):
    """A clone of the seeded database, the stand-ins (GCS emulator, SendGrid) and the Airflow environment of
    this test's own; the evidence location is gs://."""
    return make_world(DAG_ID, users=1500, seed=11, sendgrid_key=API_KEY, gcs_bucket=BUCKET, evidence="gs")


def run_dag(world, name: str, conf: dict | None = None, logical_date: str | None = None):
    """One real run (``dag.test()`` in this process); its whole log is scanned for every subject's email, name,
    phone and IP (tests/e2e_world.py)."""
    assert len(world["pii"]) > 1000  # the scan looks at real values
    return world.run(name, conf=conf, logical_date=logical_date)


def period_conf(world, days: int) -> tuple[dict, str]:
    start, end = world["today"] - timedelta(days=days), world["today"]
    return {"period_start": start.isoformat(), "period_end": end.isoformat()}, f"{start}--{end}"


def expected_per_vendor(conn, conf: dict) -> dict[int, dict]:
    bounds = [datetime.combine(datetime.fromisoformat(conf[k]).date(), time(0), UTC)
              for k in ("period_start", "period_end")]
    rows = conn.execute("""select vendor_id, count(*), count(distinct user_id), array_agg(id order by shared_at, id)
                           from data_shares where shared_at >= %s and shared_at < %s group by 1""", bounds)
    return {v: {"rows": n, "subjects": s, "ids": ids} for v, n, s, ids in rows}


def written_audits(conn) -> Counter:
    return Counter((d["vendor_id"], d["period"]) for (d,) in conn.execute(
        "select details from compliance.audit_log where action = 'vendor_manifest.written'"))


def test_a_period_run_writes_every_vendors_files_checksums_counts_and_violations(world):
    conf, label = period_conf(world, 400)
    state, log = run_dag(world, "first", conf=conf)
    assert state == "success", log[-4000:]
    conn, objects, planted = world["conn"], world["objects"], world["planted"]
    expected = expected_per_vendor(conn, conf)
    assert written_audits(conn) == Counter({(v, label): 1 for v in expected})
    flagged = {}
    for vendor_id, want in expected.items():
        data_name, manifest_name = object_names(vendor_id, label)
        raw = objects.get(data_name)
        manifest = json.loads(objects.get(manifest_name))
        table = pq.read_table(io.BytesIO(raw))
        assert manifest["data_file"]["sha256"] == hashlib.sha256(raw).hexdigest()
        assert manifest["data_file"]["uri"] == f"gs://{BUCKET}/e2e/{data_name}"
        assert (manifest["rows"], manifest["subjects"]) == (want["rows"], want["subjects"])
        assert table.column("share_id").to_pylist() == want["ids"]
        assert conn.execute("select data_sha256, row_count from compliance.vendor_manifests "
                            "where vendor_id = %s and period_label = %s", (vendor_id, label)).fetchone() == (
            manifest["data_file"]["sha256"], want["rows"])
        flagged.update(zip(table.column("share_id").to_pylist(), map(set, table.column("violations").to_pylist())))
    for rule in VIOLATIONS:
        for share_id in planted[f"share_{rule}"]:
            assert flagged[share_id] == {rule}, (rule, share_id)
    assert all(flagged[s] == set() for s in planted["share_clean"])

    # Violations emailed once per (vendor, period), to the compliance team, without a subject's data.
    broken = {v for (v,) in conn.execute("select vendor_id from compliance.vendor_manifests where violation_rows > 0 "
                                         "and period_label = %s", (label,))}
    mails = [m["payload"] for m in world["sendgrid"].accepted() if m["payload"]["custom_args"]["campaign"]
             == "vendor-violations"]
    assert sorted(int(m["personalizations"][0]["custom_args"]["vendor_id"]) for m in mails) == sorted(broken)

    # The mapped steps ran through the pool, one per vendor; the summary said what happened.
    assert log.count("written gs://") == len(expected)
    assert f"period {label}: " in log
    mail_text = json.dumps(mails).lower()
    assert not [v for v in world["pii"] if v in mail_text]
    assert audit.verify_chain(conn, anchors=objects).ok and objects.list("audit-anchors/")


def test_a_rerun_of_the_period_is_byte_identical_and_writes_nothing_more(world):
    conf, label = period_conf(world, 400)
    state, log = run_dag(world, "first", conf=conf)  # the period's first run, whose files the rerun must keep
    assert state == "success", log[-4000:]
    objects, conn = world["objects"], world["conn"]
    before = {n: objects.get(n) for n in objects.list("manifests/") if f"period={label}/" in n}
    audits_before, mails_before = written_audits(conn), len(world["sendgrid"].accepted())
    state, log = run_dag(world, "rerun", conf=conf)
    assert state == "success", log[-4000:]
    assert {n: objects.get(n) for n in objects.list("manifests/") if f"period={label}/" in n} == before
    assert written_audits(conn) == audits_before and len(world["sendgrid"].accepted()) == mails_before
    assert log.count("unchanged since run") == len(before) // 2


def test_an_empty_period_writes_nothing_and_says_so(world):
    state, log = run_dag(world, "empty", conf={"period_start": "2001-01-01", "period_end": "2001-01-02"})
    assert state == "success", log[-4000:]
    assert not [n for n in world["objects"].list("manifests/") if "period=2001-01-01/" in n]
    assert "period 2001-01-01 has no shares for any vendor: no manifest was written" in log
    assert "no shares; nothing written" in log


def test_a_live_run_of_a_period_not_over_yet_fails_in_one_sentence_and_writes_nothing(world):
    today = world["today"]
    compliance_store.migrate(world["conn"])  # the store as any earlier run left it, so that its runs can be counted
    before = world["conn"].execute("select count(*) from compliance.vendor_manifest_runs").fetchone()[0]
    state, log = run_dag(world, "unfinished", conf={"period_start": today.isoformat()})
    assert state == "failed"
    assert f"the period is not over yet (it ends as {today + timedelta(days=1)} begins" in log
    assert not [n for n in world["objects"].list("manifests/") if f"period={today}/" in n]
    assert world["conn"].execute("select count(*) from compliance.vendor_manifest_runs").fetchone()[0] == before


def test_a_run_covers_its_data_interval_one_utc_day(world):
    """No period in the form: the run's data interval. ``airflow dags test DAG DATE`` is a manual run, for which
    Airflow infers the last whole interval before DATE; the scheduler's run of that day has the same interval."""
    day = world["today"] - timedelta(days=30)
    state, log = run_dag(world, "interval", logical_date=(day + timedelta(days=1)).isoformat())
    assert state == "success", log[-4000:]
    conn = world["conn"]
    start = datetime.combine(day, time(0), UTC)
    vendors = {v for (v,) in conn.execute("select distinct vendor_id from data_shares where shared_at >= %s "
                                          "and shared_at < %s", (start, start + timedelta(days=1)))}
    recorded = {v for (v,) in conn.execute("select vendor_id from compliance.vendor_manifests where period_label = %s",
                                           (day.isoformat(),))}
    assert vendors and recorded == vendors
    assert conn.execute("select period_start, period_end from compliance.vendor_manifest_runs where period_label = %s",
                        (day.isoformat(),)).fetchone() == (start, start + timedelta(days=1))


def test_a_database_without_vendors_or_shares_maps_nothing_and_says_so(pg_server_url, tmp_path):
    """Zero mapped tasks: Airflow skips the mapped step, and the summary (none_failed) still says what happened."""
    import uuid

    from devkit import database
    from devkit.operational_schema import create_reference_schema

    from devkit.operational_schema import create_store_schema

    name = f"privacy_e2e_empty_{uuid.uuid4().hex[:8]}"
    url = database.create_database(pg_server_url, name)
    stores = {c: database.create_database(pg_server_url, f"{name}_{c}") for c in ("support_db", "analytics_db")}
    try:
        with connect(url, autocommit=True) as conn:
            create_reference_schema(conn)
        for conn_id, store_url in stores.items():  # SPEC §3.1's other stores, empty too
            with connect(store_url, autocommit=True) as conn:
                create_store_schema(conn, conn_id)
        with SendGridStandIn(api_key=API_KEY) as sendgrid:
            services = local_airflow.LocalServices(ops_url=url, compliance_url=url, sendgrid_url=sendgrid.base_url,
                                                   sendgrid_api_key=API_KEY, support_url=stores["support_db"],
                                                   analytics_url=stores["analytics_db"])
            env = local_airflow.airflow_env(tmp_path / "airflow", services,
                                            settings={"evidence_location": f"file://{tmp_path}/evidence"})
            state, log = e2e_world.run_in_process(DAG_ID, env, conf={"period_start": "2026-11-01"})
        assert state == "success", log[-4000:]
        assert "as SKIPPED since the map has 0 values to expand" in log
        assert "period 2026-11-01 has no shares for any vendor: no manifest was written" in log
        assert not (tmp_path / "evidence" / "manifests").exists()
        with connect(url, autocommit=True) as conn:
            assert conn.execute("select planned, outcomes from compliance.vendor_manifest_runs").fetchall() == [(0, {})]
    finally:
        scratch.drop_later(pg_server_url, name)
        for store_url in stores.values():
            scratch.drop_later(pg_server_url, database.database_name(store_url))


NOTICE_KIND = "vendor_manifest.violation_notice"


def refusing_uploads_of(vendor_id: int):
    """The GCS emulator's upload handler, answering 403 (a retention policy, a permission taken away) to every upload
    of one vendor's objects: the object's name is in the body of the client's multipart upload, so the body is read
    first and handed on whole to the emulator for every other upload."""
    from devkit.standins import gcs_emulator

    upload = gcs_emulator._RecordingHandler.do_POST
    marker = f"manifests/vendor={vendor_id}/".encode()

    def do_POST(handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if marker in body:
            return gcs_emulator.answer_refused(handler)
        kept, handler.rfile = handler.rfile, io.BytesIO(body)
        try:
            return upload(handler)
        finally:
            handler.rfile = kept
    return do_POST


def violation_mails(world) -> Counter:
    payloads = [m["payload"] for m in world["sendgrid"].accepted()]
    return Counter(int(p["personalizations"][0]["custom_args"]["vendor_id"])
                   for p in payloads if p["custom_args"]["campaign"] == "vendor-violations")


def notices_by_status(conn, label: str) -> Counter:
    return Counter(s for (s,) in conn.execute("select status from compliance.outbox where kind = %s "
                                              "and facts ->> 'period_label' = %s", (NOTICE_KIND, label)))


def test_one_vendors_refused_upload_fails_the_run_but_not_the_other_vendors_violation_notices(world, monkeypatch):
    """Found by a fault trial: one vendor's mapped step failing for good (its bucket refusing the upload) made the
    summary and the violation emails upstream_failed, so every other vendor's notice, recorded with its manifest,
    stayed pending until that same period was run again (the next day's run sends only its own day's)."""
    from devkit.standins import gcs_emulator

    conf, label = period_conf(world, 400)
    conn = world["conn"]
    refused = conn.execute("select vendor_id from data_shares where id = %s",
                           (world["planted"]["share_child"][0],)).fetchone()[0]
    monkeypatch.setattr(gcs_emulator._RecordingHandler, "do_POST", refusing_uploads_of(refused))
    state, log = run_dag(world, "one-vendor-refused", conf=conf)
    assert state == "failed", log[-4000:]  # on-call sees the vendor that failed
    assert f"Google Cloud Storage refused to write gs://{BUCKET}/e2e/manifests/vendor={refused}/" in log
    recorded = {v for (v,) in conn.execute("select vendor_id from compliance.vendor_manifests where period_label = %s",
                                           (label,))}
    assert refused not in recorded and len(recorded) == len(expected_per_vendor(conn, conf)) - 1
    broken = {v for (v,) in conn.execute("select vendor_id from compliance.vendor_manifests where violation_rows > 0 "
                                         "and period_label = %s", (label,))}
    assert broken, "the other vendors' manifests break no rule: nothing to prove"
    # Every other vendor's violations are emailed by this run, once each; nothing is left pending.
    assert violation_mails(world) == Counter({v: 1 for v in broken}), notices_by_status(conn, label)
    assert notices_by_status(conn, label) == Counter({"sent": len(broken)})
    assert "a task of this run failed (its own log says why)" in log
    # The summary ran and says which vendor's step failed.
    outcomes, finished = conn.execute("select outcomes, finished_at from compliance.vendor_manifest_runs "
                                      "where period_label = %s", (label,)).fetchone()
    assert outcomes["failed"] == 1 and finished is not None
    assert f"vendor step(s) failed (vendor {refused} · {label}; see their write_vendor_manifest logs)" in log

    # The bucket accepts again: the period's next run writes the refused vendor and emails it; no one twice.
    monkeypatch.undo()
    state, log = run_dag(world, "after-the-refusal", conf=conf)
    assert state == "success", log[-4000:]
    assert violation_mails(world) == Counter({v: 1 for v in broken | {refused}})
    assert notices_by_status(conn, label) == Counter({"sent": len(broken) + 1})


def test_an_undeclared_conf_key_sends_no_notice_even_with_notices_pending(world):
    """The emails go on past a failed vendor, but never past the conf check: a run stopped there sends nothing, even
    when notices of its very period are pending."""
    conf, label = period_conf(world, 400)
    conn = world["conn"]
    world["sendgrid"].inject(status=401, count=1000)  # the key revoked: the manifests are recorded, the emails not
    state, log = run_dag(world, "key-revoked", conf=conf)
    assert state == "failed", log[-4000:]
    pending = notices_by_status(conn, label)
    assert pending["pending"] > 0 and not pending["sent"] and not violation_mails(world)
    world["sendgrid"].clear_faults()
    summaries = "select count(*) from compliance.audit_log where action = 'vendor_manifest.run'"
    runs_before = conn.execute(summaries).fetchone()
    state, log = run_dag(world, "conf-typo", conf={**conf, "dryrun": True})
    assert state == "failed"
    assert ("trigger conf key 'dryrun' is not a parameter of vendor_sharing_manifests (its parameters: dry_run, "
            "period_end, period_start, vendor_ids)") in log
    assert not violation_mails(world) and notices_by_status(conn, label) == pending
    assert conn.execute(summaries).fetchone() == runs_before  # no summary either
    # The next proper run of the period sends each of them, once.
    state, log = run_dag(world, "key-restored", conf=conf)
    assert state == "success", log[-4000:]
    assert sum(violation_mails(world).values()) == pending["pending"] == len(violation_mails(world))
