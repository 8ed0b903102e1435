"""The GCS emulator stand-in serves the Airflow Google provider's GCSHook through the real client."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from devkit.standins.gcs_emulator import GCSEmulator

ANONYMOUS_GCP = '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}'


@pytest.fixture
def gcs(monkeypatch):
    with GCSEmulator(default_bucket="compliance-test") as emulator:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.base_url)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
        yield emulator


def test_gcs_hook_uploads_and_downloads(gcs, tmp_path):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    hook = GCSHook()
    manifest = json.dumps({"vendor": 7, "rows": 3}).encode()
    hook.upload("compliance-test", "manifests/vendor=7/manifest.json", data=manifest,
                mime_type="application/json")
    # Above 8 MiB the client switches to a resumable upload, a different code path in the emulator.
    big = os.urandom(9 * 1024 * 1024)
    path = tmp_path / "part.parquet"
    path.write_bytes(big)
    hook.upload("compliance-test", "manifests/vendor=7/data.parquet", filename=str(path))

    assert hook.download("compliance-test", "manifests/vendor=7/manifest.json") == manifest
    assert hook.download("compliance-test", "manifests/vendor=7/data.parquet") == big
    assert sorted(hook.list("compliance-test", prefix="manifests/")) == [
        "manifests/vendor=7/data.parquet", "manifests/vendor=7/manifest.json"]
    assert gcs.base_url.startswith("http://127.0.0.1:")


def test_an_empty_object_downloads_as_no_bytes_as_from_real_gcs(gcs):
    # The client asks for a byte range; for an empty object real GCS answers 416 with 'bytes */0' and the client
    # reads that as no bytes. The package answered 206 with 'bytes 0--1/0', which the client refused.
    import io

    from include.seam.storage import object_store

    bucket = object_store("gs://compliance-test")
    bucket.put("users/1/empty.txt", b"")
    out = io.BytesIO()
    assert bucket.download_to("users/1/empty.txt", out) == 0 and out.getvalue() == b""
    assert bucket.get("users/1/empty.txt") == b""
    request = urllib.request.Request(f"{gcs.base_url}/download/storage/v1/b/compliance-test/o/users%2F1%2Fempty.txt"
                                     "?alt=media", headers={"Range": "bytes=0-"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 416 and refused.value.headers["Content-Range"] == "bytes */0"


_MISSING_OBJECT = """
import logging, os, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
from devkit.standins.gcs_emulator import GCSEmulator
with GCSEmulator(default_bucket="compliance-test", data_dir=sys.argv[1]) as gcs:
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.base_url
    from include.seam.storage import object_store
    bucket = object_store("gs://compliance-test")
    assert bucket.exists("users/1/Zoe-Smith-passport.pdf") is False
    assert bucket.delete("users/1/Zoe-Smith-passport.pdf") is False
    try:
        bucket.get("users/1/Zoe-Smith-passport.pdf")
    except Exception as exc:
        print("refused:", type(exc).__name__)
    print("requests:", len(gcs.requests), sum("Zoe-Smith" in path for _, path, _ in gcs.requests))
"""


def test_the_emulator_never_logs_an_objects_name(tmp_path):
    """Found by a fault trial: the package logged every object it could not read at ERROR, its name in the message
    (and every request's path at INFO), and the demo runs its DAGs in the emulator's process: a person's file name
    landed in the task logs, and a missing file (listed in the export, not a failure) read as an error. The kit
    keeps its own request log (``requests``); the package's messages are not written. A fresh process, as the
    demo's (a test world in this one quiets the package itself)."""
    env = {**os.environ, "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": ANONYMOUS_GCP}
    done = subprocess.run([sys.executable, "-c", _MISSING_OBJECT, str(tmp_path / "gcs")], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # exists (the name in the path), delete (a listing of its versions and one of its soft-deleted copies: the name
    # in the query, finding none), get (the name in the path, then the bucket looked up)
    assert "refused: ObjectNotFound" in done.stdout and "requests: 5 2" in done.stdout, done.stdout[-2000:]
    assert "Zoe-Smith" not in done.stdout + done.stderr


def test_objects_are_in_memory_and_wipeable(gcs):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    hook = GCSHook()
    hook.upload("compliance-test", "a.txt", data=b"a")
    gcs.wipe(keep_buckets=True)
    assert hook.list("compliance-test") == []


def test_an_emulator_on_a_folder_keeps_its_objects_for_the_next_one(tmp_path, monkeypatch):
    """Issue 30: the demo's evidence (anchors, manifests, packages) was in memory and gone when the demo ended;
    `ui` started an empty emulator. On a folder, the next emulator serves what the last one stored."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
    folder = tmp_path / "gcs"
    with GCSEmulator(default_bucket="evidence", data_dir=folder) as first:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", first.base_url)
        GCSHook().upload("evidence", "demo/audit-anchors/000000000007-abc.json", data=b'{"row_id": 7}',
                         mime_type="application/json")
    with GCSEmulator(default_bucket="evidence", data_dir=folder) as second:  # a new port, the same folder
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", second.base_url)
        hook = GCSHook()
        assert hook.list("evidence", prefix="demo/") == ["demo/audit-anchors/000000000007-abc.json"]
        assert hook.download("evidence", "demo/audit-anchors/000000000007-abc.json") == b'{"row_id": 7}'


def test_a_new_demo_empties_only_its_own_emulator_folder(tmp_path):
    from devkit.demo import fresh_evidence_dir

    folder = tmp_path / "gcs"
    with GCSEmulator(default_bucket="evidence", data_dir=folder):
        pass
    fresh_evidence_dir(folder)
    assert folder.is_dir() and not any(folder.iterdir())
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not the demo's storage emulator folder"):
        fresh_evidence_dir(other)
    assert (other / "thesis.txt").exists()


def test_command_line(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.standins.gcs_emulator", "--port", "0", "--bucket", "cli-bucket",
         "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert ready.read_text().strip() == base_url
        with urllib.request.urlopen(f"{base_url}/storage/v1/b/cli-bucket", timeout=5) as resp:
            assert json.loads(resp.read())["name"] == "cli-bucket"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_a_versioned_bucket_keeps_noncurrent_versions_and_deletes_one_generation_as_gcs_does(gcs):
    """What the erasure relies on, as the JSON API says it (objects.delete, objects.list): in a bucket with Object
    Versioning a delete without a generation leaves the version noncurrent; ``versions=true`` lists it; a delete
    naming its generation removes that version only, which the bucket's soft delete (7 days by default) then keeps
    recoverable, listed by ``softDeleted=true`` alone; a generation the object no longer has is a 404. The package
    ignored ``versions`` and ``generation`` (a generation's delete removed the live version)."""
    from google.api_core.exceptions import NotFound
    from google.cloud import storage

    client = storage.Client(project="test-project", credentials=None)
    bucket = client.bucket("compliance-test")
    bucket.versioning_enabled = True
    bucket.patch()
    bucket.blob("users/1/a.txt").upload_from_string(b"one")
    bucket.blob("users/1/a.txt").upload_from_string(b"two")  # the first becomes noncurrent
    bucket.blob("users/1/a.txt.bak").upload_from_string(b"other")
    versions = [b for b in client.list_blobs(bucket, prefix="users/1/a.txt", versions=True)
                if b.name == "users/1/a.txt"]
    assert len(versions) == 2 and len({b.generation for b in versions}) == 2
    assert [b.name for b in client.list_blobs(bucket, prefix="users/1/")] == ["users/1/a.txt", "users/1/a.txt.bak"]
    bucket.blob("users/1/a.txt").delete()  # no generation: the live version becomes noncurrent
    assert [b.name for b in client.list_blobs(bucket, prefix="users/1/a.txt")] == ["users/1/a.txt.bak"]
    left = [b for b in client.list_blobs(bucket, prefix="users/1/a.txt", versions=True) if b.name == "users/1/a.txt"]
    assert sorted(b.generation for b in left) == sorted(b.generation for b in versions)
    assert all(b.time_deleted is not None for b in left)
    for blob in left:
        bucket.blob("users/1/a.txt", generation=blob.generation).delete()
    with pytest.raises(NotFound):
        bucket.blob("users/1/a.txt", generation=left[0].generation).delete()  # gone (soft-deleted): a 404
    assert [b.name for b in client.list_blobs(bucket, prefix="users/1/a.txt", versions=True)] == ["users/1/a.txt.bak"]
    soft = list(client.list_blobs(bucket, prefix="users/1/a.txt", soft_deleted=True))
    assert len(soft) == 2 and all(b.hard_delete_time is not None for b in soft)
    assert bucket.blob("users/1/a.txt.bak").download_as_bytes() == b"other"
