"""Anchoring the audit chain outside the database, and verifying against the anchors (real PostgreSQL,
a folder and the GCS emulator through the real client)."""
from __future__ import annotations

import json

import pytest

from devkit.database import connect
from devkit.standins.gcs_emulator import GCSEmulator
from include import audit
from include.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main
from include.objectstore import FileObjectStore
from include.seam.storage import object_store

ANONYMOUS_GCP = '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}'
BUCKET = "evidence-test"


@pytest.fixture
def store(store_db):
    with connect(store_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def gcs(monkeypatch):
    with GCSEmulator(default_bucket=BUCKET) as emulator:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.base_url)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
        yield emulator


@pytest.fixture(params=["file", "gcs"])
def location(request, tmp_path):
    if request.param == "file":
        return f"file://{tmp_path}/evidence"
    request.getfixturevalue("gcs")
    return f"gs://{BUCKET}/prod"


@pytest.fixture
def objects(location):
    return object_store(location)


@pytest.fixture(autouse=True)
def _no_evidence_location(monkeypatch):
    monkeypatch.delenv("PRIVACY_EVIDENCE_LOCATION", raising=False)


def _append(conn, n: int) -> list[int]:
    by = audit.RunContext(run_id="r", actor="test", dag_id="d")
    return [audit.append(conn, "test.event", {"n": i}, actor=by) for i in range(n)]


def _anchor(conn, objects, run="run-1"):
    return audit.anchor_head(conn, objects, run_id=run, dag_id="dsr_deadline_tracking")


def _tamper(conn, statement: str, *args) -> None:
    """What a superuser can do: switch the append-only triggers off, change the log, switch them back on."""
    conn.execute("alter table compliance.audit_log disable trigger user")
    try:
        conn.execute(statement, args or None)
    finally:
        conn.execute("alter table compliance.audit_log enable trigger user")


def _rewrite_whole_chain(conn) -> None:
    """The attacker's second step after an edit: recompute every prev_hash/row_hash so the chain is whole."""
    rows = conn.execute("""select id, occurred_at, actor, action, dag_id, run_id, task_id, details
                           from compliance.audit_log order by id""").fetchall()
    conn.execute("alter table compliance.audit_log disable trigger user")
    try:
        prev = audit.GENESIS
        for row_id, occurred_at, actor, action, dag_id, run_id, task_id, details in rows:
            digest = audit.row_hash(prev, row_id, audit.Entry(occurred_at, actor, action, dag_id, run_id, task_id,
                                                              details))
            conn.execute("update compliance.audit_log set prev_hash = %s, row_hash = %s where id = %s",
                         (prev, digest, row_id))
            prev = digest
    finally:
        conn.execute("alter table compliance.audit_log enable trigger user")


def test_anchoring_is_idempotent(store, objects):
    assert _anchor(store, objects) is None and objects.list() == []
    ids = _append(store, 3)
    head = store.execute("select row_hash, occurred_at from compliance.audit_log where id = %s", (ids[-1],)).fetchone()

    first = _anchor(store, objects, run="run-1")
    name = f"audit-anchors/{ids[-1]:012d}-{head[0]}.json"
    assert first["written"] is True and first["name"] == name and first["uri"] == objects.uri(name)
    content = json.loads(objects.get(name))
    assert content["row_id"] == ids[-1] and content["row_hash"] == head[0]
    assert content["occurred_at"] == head[1].isoformat() and content["anchored_at"]
    assert (content["run_id"], content["dag_id"]) == ("run-1", "dsr_deadline_tracking")

    again = _anchor(store, objects, run="run-2")
    assert again["written"] is False and again["name"] == name
    assert objects.list() == [name]
    assert json.loads(objects.get(name))["run_id"] == "run-1"  # the first anchor is never replaced

    more = _append(store, 2)
    assert _anchor(store, objects)["written"] is True
    assert [n[len("audit-anchors/"):][:12] for n in objects.list("audit-anchors/")] == [
        f"{ids[-1]:012d}", f"{more[-1]:012d}"]

    report = audit.verify_chain(store, anchors=objects)
    assert report.ok and report.anchors == 2 and report.anchored_row == more[-1] and report.rows_since_anchor == 0
    _append(store, 1)
    report = audit.verify_chain(store, anchors=objects)
    assert report.ok and report.rows_since_anchor == 1


def test_removing_the_newest_rows_is_detected_only_with_anchors(store, objects):
    ids = _append(store, 3)
    _anchor(store, objects)
    ids += _append(store, 2)
    newest = _anchor(store, objects)["name"]
    _tamper(store, "delete from compliance.audit_log where id > %s", ids[2])

    assert audit.verify_chain(store).ok  # the gap: what is left is a perfect chain
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.anchor_problem and report.bad_anchor == newest
    assert report.problem.startswith(f"anchor {newest} names row {ids[-1]}, which is no longer in the log "
                                     f"(the newest rows were removed: the log now ends at row {ids[2]}")

    _tamper(store, "delete from compliance.audit_log")
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and "the log is now empty, and 2 anchor(s) name rows after it" in report.problem


def test_an_anchor_past_the_end_that_no_run_wrote_is_not_called_removed_rows_for_certain(store, objects):
    """An anchor object naming a row after the log's end, which no run recorded writing there (put by hand, or by
    another deployment sharing the location): verification fails, and says both readings instead of asserting
    that the newest rows were removed."""
    ids = _append(store, 3)
    _anchor(store, objects)
    forged = f"audit-anchors/{ids[-1] + 5:012d}-{'a' * 64}.json"
    objects.put(forged, json.dumps({"row_id": ids[-1] + 5, "row_hash": "a" * 64}).encode(), "application/json")
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.anchor_problem and report.bad_anchor == forged
    assert report.problem == (
        f"anchor {forged} names row {ids[-1] + 5}, which is not in the log (the log now ends at row {ids[-1]}), and "
        f"no run recorded writing it at {objects.uri('audit-anchors')}: either the newest rows were removed with the "
        "record of their anchors, or the anchor was put there by hand or by another deployment (1 anchor(s) name "
        "rows after the log's end)")


def test_removing_the_newest_anchor_with_the_rows_after_the_one_before_is_detected(store, objects):
    """Found by a fault trial: the newest anchor deleted, and the rows after the anchor before it (as a superuser);
    what was left agreed with every anchor left, and verify-audit said OK. The store's record of the anchors it
    wrote there names the missing one."""
    ids = _append(store, 3)
    _anchor(store, objects)
    ids += _append(store, 2)
    newest = _anchor(store, objects)["name"]
    assert audit.verify_chain(store, anchors=objects).ok
    objects.delete(newest)
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.anchor_problem and report.bad_anchor == newest
    assert report.problem == (f"anchor {newest}, which a run recorded writing at {objects.uri('audit-anchors')}, "
                              "is no longer there (1 recorded anchor(s) are missing: anchors were removed)")
    _tamper(store, "delete from compliance.audit_log where id > %s", ids[2])
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.bad_anchor == newest and report.problem.endswith(
        f"it named row {ids[-1]} and the log now ends at row {ids[2]}: the newest rows were removed too)")


def test_recomputing_the_whole_chain_is_detected_only_with_anchors(store, objects):
    ids = _append(store, 3)
    older = _anchor(store, objects)["name"]
    ids += _append(store, 3)
    newest = _anchor(store, objects)["name"]
    _tamper(store, "update compliance.audit_log set details = '{\"n\": 99}' where id = %s", ids[1])
    assert not audit.verify_chain(store).ok  # an edit alone breaks the chain...

    _rewrite_whole_chain(store)
    assert audit.verify_chain(store).ok  # ...but after recomputing every hash it verifies again
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.bad_anchor == newest and report.first_bad_id == ids[2]
    assert report.problem == (f"anchor {newest}: row {ids[-1]}'s hash differs from the anchored one (the chain "
                              f"was rewritten; 2 of 2 anchor(s) disagree, the oldest at row {ids[2]})")
    assert older != newest


def test_removing_an_anchored_row_and_recomputing_is_detected(store, tmp_path):
    objects = FileObjectStore(f"file://{tmp_path}")
    ids = _append(store, 4)
    _anchor(store, objects)
    _tamper(store, "delete from compliance.audit_log where id = %s", ids[-1])
    _rewrite_whole_chain(store)
    # Rows appended after the removal do not bring the anchored row back.
    audit.append(store, "test.later", {}, actor="test")
    assert audit.verify_chain(store).ok
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.problem.endswith(
        f"names row {ids[-1]}, which is no longer in the log (rows were removed and the chain recomputed)")


def test_every_anchor_counts_not_only_the_newest(store, tmp_path):
    """Thousands of anchors: one listing, one read, and still a forged old anchor is caught."""
    objects = _Counting(FileObjectStore(f"file://{tmp_path}"))
    with store.transaction():
        ids = _append(store, 1500)
    hashes = dict(store.execute("select id, row_hash from compliance.audit_log").fetchall())
    for row_id in ids:
        objects.inner.put(audit.anchor_name(row_id, hashes[row_id]),
                          json.dumps({"row_id": row_id, "row_hash": hashes[row_id]}).encode())
    report = audit.verify_chain(store, anchors=objects)
    assert report.ok and report.anchors == 1500
    assert objects.calls == {"list": 1, "get": 1}

    forged = audit.anchor_name(ids[10], "f" * 64)
    objects.inner.put(forged, b"{}")
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.bad_anchor == forged and "hash differs" in report.problem


class _Counting:
    def __init__(self, inner):
        self.inner, self.calls = inner, {}

    def __getattr__(self, attr):
        method = getattr(self.inner, attr)
        if attr in ("list", "get", "exists", "put"):
            def counted(*args, **kwargs):
                self.calls[attr] = self.calls.get(attr, 0) + 1
                return method(*args, **kwargs)
            return counted
        return method


def test_malformed_anchors_are_reported(store, objects):
    _append(store, 2)
    newest = _anchor(store, objects)["name"]
    assert audit.verify_chain(store, anchors=objects).ok

    objects.put(newest, b"not json", overwrite=True)  # possible only where no retention policy protects it
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.problem == f"anchor {newest} is malformed (its content is not JSON)"

    objects.put(newest, json.dumps({"row_id": 1, "row_hash": "0" * 64}).encode(), overwrite=True)
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and "its content names another row or hash than its name" in report.problem

    objects.put(newest, b'{"row_id": 0}', overwrite=True)
    objects.put("audit-anchors/notes.txt", b"hello")
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.bad_anchor == "audit-anchors/notes.txt" and "2 such object(s)" in report.problem


def test_a_log_without_any_anchor_fails_the_anchor_check(store, objects):
    report = audit.verify_chain(store, anchors=objects)
    assert report.ok and report.anchors == 0  # nothing written yet, nothing to anchor
    _append(store, 2)
    report = audit.verify_chain(store, anchors=objects)
    assert not report.ok and report.problem.startswith(
        f"there is no anchor at {objects.uri('audit-anchors')}, yet the log has 2 row(s)")


# -- the command line -------------------------------------------------------------------------------

pytestmark = pytest.mark.usefixtures("restore_logging")  # main() configures logging for a terminal


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_cli_verifies_against_anchors(store_db, store, location, objects, capsys):
    ids = _append(store, 3)
    _anchor(store, objects)
    capsys.readouterr()
    assert main(["verify-audit", "--url", store_db, "--anchors", location]) == EXIT_OK
    out = _one_line(capsys.readouterr().out)
    assert out.startswith("audit log OK: 3 row(s)") and f"matches all 1 anchor(s) at {location}" in out

    _tamper(store, "update compliance.audit_log set action = 'forged' where id = %s", ids[0])
    _rewrite_whole_chain(store)
    assert main(["verify-audit", "--url", store_db]) == EXIT_OK
    assert "anchors not checked" in capsys.readouterr().out
    assert main(["verify-audit", "--url", store_db, "--anchors", location]) == EXIT_CHECK_FAILED
    captured = capsys.readouterr()
    err = _one_line(captured.err)
    assert err.startswith(f"audit log does not match its anchors at {location}: anchor audit-anchors/")
    assert "hash differs from the anchored one (the chain was rewritten" in err and captured.out == ""


def test_cli_reads_the_location_from_the_environment(store_db, store, tmp_path, monkeypatch, capsys):
    location = f"file://{tmp_path}/evidence"
    ids = _append(store, 2)
    _anchor(store, object_store(location))
    _tamper(store, "delete from compliance.audit_log where id = %s", ids[-1])
    monkeypatch.setenv("PRIVACY_EVIDENCE_LOCATION", location)
    capsys.readouterr()
    assert main(["verify-audit", "--url", store_db]) == EXIT_CHECK_FAILED
    assert "which is no longer in the log (the newest rows were removed" in _one_line(capsys.readouterr().err)

    monkeypatch.setenv("PRIVACY_EVIDENCE_LOCATION", "s3://elsewhere")
    assert main(["verify-audit", "--url", store_db]) == EXIT_UNREACHABLE
    assert _one_line(capsys.readouterr().err).startswith("privacy-ops verify-audit: $PRIVACY_EVIDENCE_LOCATION: ")


def test_cli_anchor_problems_are_one_sentence(store_db, store, gcs, capsys):
    _append(store, 1)
    capsys.readouterr()
    assert main(["verify-audit", "--url", store_db, "--anchors", "/srv/evidence"]) == EXIT_USAGE
    err = _one_line(capsys.readouterr().err)
    assert "--anchors:" in err and "gs://BUCKET/OPTIONAL/PREFIX or file:///ABSOLUTE/FOLDER" in err

    assert main(["verify-audit", "--url", store_db, "--anchors", "gs://no-such-bucket/prod"]) == EXIT_UNREACHABLE
    assert _one_line(capsys.readouterr().err) == (
        "privacy-ops verify-audit: could not read the audit anchors: bucket gs://no-such-bucket does not exist "
        "(or connection 'google_cloud_default' cannot see it)")


def test_cli_process_reaches_gcs_through_the_environment_connection(store_db, store, gcs, tmp_path):
    """The operator's path: a fresh process, GCSHook outside any task, the connection from the environment,
    and nothing but the answer on stdout/stderr (no Airflow or Google log lines)."""
    import os
    import subprocess
    import sys

    location = f"gs://{BUCKET}/prod"
    ids = _append(store, 3)
    _anchor(store, object_store(location))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "PRIVACY_EVIDENCE_LOCATION": location}
    run = [sys.executable, "-m", "include.cli", "verify-audit", "--url", store_db]

    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK and done.stderr == "", done.stderr
    assert f"matches all 1 anchor(s) at {location}" in _one_line(done.stdout)

    _tamper(store, "delete from compliance.audit_log where id = %s", ids[-1])
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_CHECK_FAILED and done.stdout == ""
    assert "(the newest rows were removed: the log now ends at row" in _one_line(done.stderr)


def test_an_anchor_altered_in_place_is_reported_not_a_traceback(store_db, store, tmp_path, monkeypatch, capsys):
    """Found by a fault trial: an anchor object edited where the store keeps it (its bytes changed, its checksum
    not) made verify-audit crash with the client's DataCorruption traceback, exit 1. The store reads it as an
    object that does not match its checksum, and the check reports that anchor as altered."""
    with GCSEmulator(default_bucket=BUCKET, data_dir=tmp_path / "gcs") as emulator:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.base_url)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
        objects = object_store(f"gs://{BUCKET}/prod")
        _append(store, 2)
        newest = _anchor(store, objects)["name"]
        (kept,) = [p for p in (tmp_path / "gcs").rglob("*") if p.is_file() and p.name == newest.rsplit("/", 1)[1]]
        kept.write_text(kept.read_text().replace('"row_id": 2', '"row_id": 3'))
        report = audit.verify_chain(store, anchors=objects)
        assert not report.ok and report.problem.startswith(f"anchor {newest} is malformed (what was read does not "
                                                           "match the checksum the store keeps for it")
        capsys.readouterr()
        assert main(["verify-audit", "--url", store_db, "--anchors", f"gs://{BUCKET}/prod"]) == EXIT_CHECK_FAILED
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and "DataCorruption" not in captured.out + captured.err
