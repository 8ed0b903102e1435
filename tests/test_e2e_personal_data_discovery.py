"""End to end: ``personal_data_discovery`` through Airflow (``dag.test()`` in this process, tests/e2e_world.py) on a
seeded database with planted unmapped personal data (devkit/seed/unmapped.py), the SendGrid stand-in and the GCS
emulator holding the allowed bucket. The step-level cases (dismissal, two runs at once, the sampling bound) are in
tests/test_discovery.py."""
from __future__ import annotations

import yaml

import pytest

from devkit.seed.unmapped import PLANT_SQL, PLANTED
from include.datamap import default_path

pytestmark = pytest.mark.e2e
DAG_ID = "personal_data_discovery"
BUCKET = "acme-uploads"
# Pieces of every planted value (the database makes them from row ids): none may reach a log.
PLANTED_PIECES = ("Springfield", "crm.contact", "02:00:5e:", "+44 20 7946", "Rowan Road")


@pytest.fixture
def world(make_world, tmp_path):
    world = make_world(DAG_ID, users=400, seed=13, gcs_bucket=BUCKET, prepare=PLANT_SQL)
    raw = yaml.safe_load(default_path().read_text())
    raw["buckets"] = [BUCKET]  # the bucket discovery may list (SPEC §3.1: only the allowed ones)
    path = tmp_path / "datamap.yaml"
    path.write_text(yaml.safe_dump(raw))
    world["env"]["PRIVACY_DATAMAP"] = str(path)
    from include.seam.storage import object_store

    bucket = object_store(f"gs://{BUCKET}")
    for (uri,) in world["conn"].execute("select storage_uri from uploads order by id limit 4"):
        bucket.put(uri.split("/", 3)[3], b"named by a row")
    bucket.put("users/0/forgotten/scan.pdf", b"x" * 1000)
    bucket.put("exports/2019/old.csv", b"y" * 24)
    return world


def test_a_run_records_the_planted_findings_emails_them_once_and_counts_the_orphans(world):
    state, log = world.run("first")
    assert state == "success", log[-4000:]
    conn = world["conn"]
    found = {(t, c): k for t, c, k in conn.execute(
        "select table_name, column_name, kind from compliance.discovery_findings where finding = 'unmapped' "
        "and status = 'open'")}
    assert found == {k: v for k, v in PLANTED.items() if v}
    messages = [p for r in world["sendgrid"].accepted() for p in r["payload"]["personalizations"]]
    assert [p["custom_args"]["kind"] for p in messages] == ["discovery_findings"]
    assert messages[0]["to"] == [{"email": "compliance@example.com"}]
    orphans = conn.execute("select orphans from compliance.discovery_runs").fetchone()[0]
    assert orphans[BUCKET]["objects"] == 6 and orphans[BUCKET]["orphans"] == 2
    assert orphans[BUCKET]["orphan_bytes"] == 1024
    actions = {a for (a,) in conn.execute("select action from compliance.audit_log")}
    assert {"discovery.findings_recorded", "discovery.findings_notice_sent", "discovery.orphans_counted"} <= actions
    for text in (log, str(world["sendgrid"].accepted())):
        assert not [p for p in PLANTED_PIECES if p in text]

    state, log = world.run("second")
    assert state == "success", log[-4000:]
    assert len(world["sendgrid"].accepted()) == 1  # nothing new: nothing told again
    assert conn.execute("select count(*) from compliance.discovery_findings").fetchone()[0] == len(found)
    assert conn.execute("select count(distinct run_id) from compliance.discovery_run_findings").fetchone()[0] == 2
    assert not [p for p in PLANTED_PIECES if p in log]


def test_an_unknown_conf_key_stops_the_run_before_anything_is_read(world):
    state, log = world.run("conf-typo", conf={"dryrun": True})
    assert state == "failed"
    assert ("trigger conf key 'dryrun' is not a parameter of personal_data_discovery (its parameters: connections, "
            "dry_run, sample_rows, tables)") in log
    conn = world["conn"]
    assert conn.execute("select to_regclass('compliance.discovery_findings')").fetchone()[0] is None  # not migrated
    assert world["sendgrid"].accepted() == []


def test_a_lost_store_fails_the_run_but_the_others_findings_are_recorded_and_told(world):
    # The analytics database refuses the login (a database that does not exist): its scan fails at once; the
    # operational database's planted findings are still stored and told, and the run fails saying which store.
    from devkit.local_airflow import postgres_connection

    lost = world["store_urls"]["analytics_db"].rsplit("/", 1)[0] + "/no_such_database_here"
    env = {**world["env"], "AIRFLOW_CONN_ANALYTICS_DB": postgres_connection(lost)}
    state, log = world.run("one-store-lost", env=env)
    assert state == "failed", log[-4000:]
    assert ("1 of 3 connection(s) could not be scanned (analytics_db: see the scan_connection task's log); the "
            "findings of the other(s) are recorded") in log
    assert "a task of this run failed (its own log says why)" in log
    conn = world["conn"]
    found = {(t, c) for t, c in conn.execute(
        "select table_name, column_name from compliance.discovery_findings where finding = 'unmapped'")}
    assert found == {k for k, v in PLANTED.items() if v}
    connections, problems = conn.execute("select connections, problems from compliance.discovery_runs").fetchone()
    assert "analytics_db" not in connections and "ops_db" in connections
    assert "connection 'analytics_db' was not scanned: its scan task failed" in problems
    # The findings are told to the compliance team; on-call is told of the lost store by the scan's own failure.
    messages = {p["custom_args"]["kind"]: p for r in world["sendgrid"].accepted() for p in r["payload"]["personalizations"]}
    assert sorted(messages) == ["discovery_findings", "run_alert"]
    assert messages["discovery_findings"]["custom_args"]["findings"] == str(len(found))
