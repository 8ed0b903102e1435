"""The object store both ways: a folder (file://) and GCS through GCSHook's client against the emulator."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from devkit.standins.gcs_emulator import GCSEmulator
from include.objectstore import (FileObjectStore, Location, ObjectExists, ObjectNotFound, ObjectStoreRefused,
                                 ObjectStoreUnavailable, check_name)
from include.seam.storage import GCSObjectStore, object_store

ANONYMOUS_GCP = '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}'
BUCKET = "evidence-test"


@pytest.fixture
def gcs(monkeypatch):
    with GCSEmulator(default_bucket=BUCKET) as emulator:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.base_url)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
        yield emulator


@pytest.fixture(params=["file", "gcs"])
def store(request, tmp_path):
    if request.param == "file":
        return object_store(f"file://{tmp_path}/evidence")
    request.getfixturevalue("gcs")
    return object_store(f"gs://{BUCKET}/tenant-a")


def test_round_trip(store):
    uri = store.put("manifests/vendor=7/manifest.json", b'{"rows": 3}', "application/json")
    assert uri == store.uri("manifests/vendor=7/manifest.json")
    if isinstance(store, GCSObjectStore):
        assert uri == f"gs://{BUCKET}/tenant-a/manifests/vendor=7/manifest.json"
    else:
        assert uri.startswith("file:///") and uri.endswith("/evidence/manifests/vendor=7/manifest.json")
    assert store.get("manifests/vendor=7/manifest.json") == b'{"rows": 3}'
    store.put("manifests/vendor=7/manifest.json", b'{"rows": 4}', "application/json")
    assert store.get("manifests/vendor=7/manifest.json") == b'{"rows": 4}'
    with pytest.raises(ObjectNotFound, match="there is no object"):
        store.get("manifests/vendor=8/manifest.json")


def test_put_file_streams_a_large_file(store, tmp_path):
    # Above 8 MiB the GCS client uploads in resumable chunks, a different path than put().
    big = os.urandom(9 * 1024 * 1024)
    source = tmp_path / "export.zip"
    source.write_bytes(big)
    uri = store.put_file("exports/2026-11/package.zip", source, "application/zip")
    assert uri == store.uri("exports/2026-11/package.zip")
    assert store.get("exports/2026-11/package.zip") == big


def test_list_by_prefix_and_exists(store):
    for name in ("a/2.json", "a/1.json", "ab.json", "b/c/d.txt"):
        store.put(name, name.encode())
    assert store.list() == ["a/1.json", "a/2.json", "ab.json", "b/c/d.txt"]
    assert store.list("a/") == ["a/1.json", "a/2.json"]
    assert store.list("a") == ["a/1.json", "a/2.json", "ab.json"]
    assert store.list("b/c/") == ["b/c/d.txt"]
    assert store.list("b/c/d") == ["b/c/d.txt"]
    assert store.list("nothing/") == []
    assert store.exists("a/1.json") and not store.exists("a/3.json") and not store.exists("a")


def test_create_only_write_leaves_the_first_alone(store):
    store.put("audit-anchors/1.json", b"first", overwrite=False)
    with pytest.raises(ObjectExists, match="already exists"):
        store.put("audit-anchors/1.json", b"second", overwrite=False)
    assert store.get("audit-anchors/1.json") == b"first"


def test_prefixes_of_one_bucket_do_not_see_each_other(gcs):
    a, b = object_store(f"gs://{BUCKET}/tenant-a"), object_store(f"gs://{BUCKET}/tenant-b/")
    a.put("x.json", b"a")
    b.put("x.json", b"b")
    assert a.list() == ["x.json"] and a.get("x.json") == b"a" and b.get("x.json") == b"b"
    assert object_store(f"gs://{BUCKET}").list() == ["tenant-a/x.json", "tenant-b/x.json"]


@pytest.mark.parametrize("name", ["", "/abs", "../up", "a/../b", "a//b", "a/./b", ".hidden", "a/.partial",
                                  "a/", "back\\slash", "nul\x00"])
def test_names_never_escape_the_location(store, name):
    with pytest.raises(ValueError, match="is not allowed"):
        store.put(name, b"x")
    with pytest.raises(ValueError, match="is not allowed"):
        check_name(name)


@pytest.mark.parametrize("prefix", ["../", "/a", "a/../"])
def test_listing_prefixes_never_escape(store, prefix):
    with pytest.raises(ValueError, match="is not allowed"):
        store.list(prefix)


# -- locations --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, scheme, bucket, path, canonical", [
    ("gs://my-bucket", "gs", "my-bucket", "", "gs://my-bucket"),
    ("gs://my-bucket/", "gs", "my-bucket", "", "gs://my-bucket"),
    ("gs://my.bucket_1/evidence/prod/", "gs", "my.bucket_1", "evidence/prod", "gs://my.bucket_1/evidence/prod"),
    ("  file:///srv/evidence/ ", "file", None, "/srv/evidence", "file:///srv/evidence"),
    ("file:///srv/my%20evidence", "file", None, "/srv/my evidence", "file:///srv/my%20evidence"),
])
def test_locations_parse(text, scheme, bucket, path, canonical):
    loc = Location.parse(text)
    assert (loc.scheme, loc.bucket, loc.path, str(loc)) == (scheme, bucket, path, canonical)
    assert Location.parse(str(loc)) == loc


@pytest.mark.parametrize("text", ["", "s3://bucket/x", "/srv/evidence", "evidence", "gs://", "gs:///x",
                                  "gs://ab", "gs://Upper-Case", "gs://bucket/../x", "gs://bucket/a//b",
                                  "file://srv/evidence", "file:/srv/evidence", "file:///", "file:///srv/../etc",
                                  "file:///srv/x?y=1", "https://storage.googleapis.com/bucket", "gs://bucket\n/x"])
def test_bad_locations_are_one_sentence_naming_the_accepted_forms(text):
    with pytest.raises(ValueError) as raised:
        object_store(text)
    message = str(raised.value)
    assert "gs://BUCKET/OPTIONAL/PREFIX or file:///ABSOLUTE/FOLDER" in message
    assert "\n" not in message and message.count(". ") == 0


def test_object_store_picks_the_implementation(tmp_path):
    assert isinstance(object_store(f"file://{tmp_path}"), FileObjectStore)
    gcs_store = object_store("gs://some-bucket/p", gcp_conn_id="evidence_gcs")
    assert isinstance(gcs_store, GCSObjectStore) and gcs_store.gcp_conn_id == "evidence_gcs"


def test_importing_the_store_modules_does_not_import_airflow():
    code = ("import sys, include.objectstore, include.seam.storage; "
            "sys.exit('airflow' in sys.modules or 'google.cloud.storage' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# -- the folder store -------------------------------------------------------------------------------

def test_folder_is_created_on_first_write(tmp_path):
    store = FileObjectStore(f"file://{tmp_path}/not/yet")
    assert store.list() == [] and not store.exists("x.json")
    with pytest.raises(ObjectNotFound):
        store.get("x.json")
    store.put("x.json", b"{}")
    assert (tmp_path / "not/yet/x.json").read_bytes() == b"{}"
    assert oct((tmp_path / "not/yet/x.json").stat().st_mode & 0o777) == oct(0o640)


def test_a_failed_write_leaves_the_old_object_and_no_partial_file(tmp_path, monkeypatch):
    store = FileObjectStore(f"file://{tmp_path}/store")
    store.put("m/manifest.json", b"old")
    source = tmp_path / "source.bin"
    source.write_bytes(b"new" * 1000)

    def half_then_fail(src, dst, length=0):
        dst.write(src.read(100))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("include.objectstore.shutil.copyfileobj", half_then_fail)
    with pytest.raises(ObjectStoreUnavailable, match="could not write .*m/manifest.json: Input/output error"):
        store.put_file("m/manifest.json", source)
    assert store.get("m/manifest.json") == b"old"
    assert sorted(os.listdir(tmp_path / "store/m")) == ["manifest.json"]
    assert store.list() == ["m/manifest.json"]


def test_readers_never_see_a_partial_write(tmp_path):
    store = FileObjectStore(f"file://{tmp_path}")
    versions = [bytes([i]) * 2_000_000 for i in range(4)]
    store.put("big.bin", versions[0])
    seen, done = set(), threading.Event()

    def reader():
        while not done.is_set():
            seen.add(store.get("big.bin"))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(3):
            for version in versions:
                store.put("big.bin", version)
    finally:
        done.set()
        thread.join()
    assert seen <= set(versions)
    assert not [n for n in os.listdir(tmp_path) if n != "big.bin"]


def test_partial_files_are_not_listed(tmp_path):
    store = FileObjectStore(f"file://{tmp_path}")
    store.put("a/x.json", b"{}")
    (tmp_path / "a" / ".x.json.123.partial").write_bytes(b"{")
    assert store.list() == ["a/x.json"]


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "blocker").write_bytes(b"")
    store = FileObjectStore(f"file://{tmp_path}/blocker/evidence")
    with pytest.raises(ObjectStoreRefused, match=r"cannot write file://.*/blocker/evidence/x\.json: "):
        store.put("x.json", b"{}")


# -- GCS errors -------------------------------------------------------------------------------------

def test_missing_bucket_needs_an_operator(gcs):
    store = object_store("gs://no-such-bucket/p")
    for action in (lambda: store.list(), lambda: store.put("x.json", b"{}"), lambda: store.get("x.json")):
        with pytest.raises(ObjectStoreRefused, match=r"^bucket gs://no-such-bucket does not exist"):
            action()


def test_undefined_connection_needs_an_operator(gcs, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT")
    with pytest.raises(ObjectStoreRefused, match="connection 'google_cloud_default' is not defined.*"
                                                 "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"):
        object_store(f"gs://{BUCKET}").list()


def test_unreachable_storage_is_transient(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    store = object_store(f"gs://{BUCKET}", retry_timeout=1)
    with pytest.raises(ObjectStoreUnavailable, match=r"did not answer while trying to list .*\(connection refused\)"):
        store.list()
    with pytest.raises(ObjectStoreUnavailable):
        store.put("x.json", b"{}")


def test_nothing_goes_on_calling_gcs_in_the_background_once_a_call_has_given_up(monkeypatch):
    """Before: the client library looked the bucket's metadata up for tracing (which nothing here uses) in a thread
    of its own, with its default two minutes of retries, while the store itself gave up after one second: a task
    or a command went on calling a storage service nobody was waiting for."""
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    before = set(threading.enumerate())
    store = object_store(f"gs://{BUCKET}", retry_timeout=1)
    for action in (store.list, lambda: store.put("x.json", b"{}"), lambda: store.get("x.json")):
        with pytest.raises(ObjectStoreUnavailable):
            action()
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, left


class _FixedAnswer(BaseHTTPRequestHandler):
    """Answers every request with one GCS JSON error, as the real service does."""

    status = 403

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        # Real messages can name the resource: this one echoes the request's path (bucket and object).
        body = json.dumps({"error": {"code": self.status, "message": f"caller does not have permission on {self.path}",
                                     "errors": [{"reason": "forbidden"}]}}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def fixed_answer(monkeypatch):
    def start(status: int):
        handler = type("Handler", (_FixedAnswer,), {"status": status})
        server = HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_address[1]}")

    servers = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_need_an_operator(fixed_answer, status):
    fixed_answer(status)
    store = object_store(f"gs://{BUCKET}")
    # A 403 comes back as is; on a 401 the client first tries to refresh the credentials, and anonymous
    # ones cannot be: both end as a refusal an operator must fix.
    with pytest.raises(ObjectStoreRefused, match=f"refused to list gs://{BUCKET} with connection "
                                                 f"'google_cloud_default' \\("):
        store.list()
    with pytest.raises(ObjectStoreRefused, match=f"refused to write gs://{BUCKET}/x.json"):
        store.put("x.json", b"{}")


def test_a_failing_service_is_transient(fixed_answer):
    fixed_answer(503)
    with pytest.raises(ObjectStoreUnavailable, match="did not answer"):
        object_store(f"gs://{BUCKET}", retry_timeout=1).list()


@pytest.mark.parametrize("status", [403, 429, 503])
def test_a_persons_file_is_never_named_in_a_message(fixed_answer, status):
    """Found by a fault trial: with GCS answering 503, the erasure's sentence in the task log carried the request's
    address, and so the name of a person's file. A bucket's files are named by the bucket only, whatever the
    library says (its message, the request's address, the object's name as stored or URL-encoded)."""
    from include.seam.storage import GCSBuckets

    fixed_answer(status)
    name = "tickets/990001/Jane Doe passport.png"
    files = GCSBuckets(retry_timeout=0.5).bucket("acme-support-attachments")
    for action in (lambda: files.delete(name), lambda: files.get(name), lambda: files.put(name, b"x")):
        with pytest.raises((ObjectStoreRefused, ObjectStoreUnavailable)) as caught:
            action()
        said = str(caught.value)
        assert "gs://acme-support-attachments" in said
        assert "990001" not in said and "Jane" not in said and "passport" not in said, said
        # Nor in the traceback a task log prints: the library's exception is not kept as the cause.
        printed = "".join(traceback.format_exception(caught.value))
        assert "990001" not in printed and "passport" not in printed


def test_a_persons_file_is_never_named_when_gcs_cannot_be_reached(monkeypatch):
    from include.seam.storage import GCSBuckets

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", ANONYMOUS_GCP)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    files = GCSBuckets(retry_timeout=0.5).bucket("acme-support-attachments")
    with pytest.raises(ObjectStoreUnavailable) as caught:
        files.delete("tickets/990001/Jane Doe passport.png")
    said = str(caught.value)
    assert "gs://acme-support-attachments" in said and "connection refused" in said
    assert "990001" not in said and "Jane" not in said and "storage/v1" not in said, said


def test_an_object_replaced_while_it_streams_is_never_read_as_a_mix_of_both(gcs):
    """Found by a fault trial: a person uploads a new version of a file (same name) while an export streams it in
    ranged requests. The client asked each range of whatever version was live, so the package got the old file's
    first 8 MiB and the new one's rest, with a SHA-256 of that mix. The version the first range came from is read
    to the end, or the read fails as the object gone (the export then fails and its retry reads the new one)."""
    import io

    from include.seam.storage import DOWNLOAD_CHUNK, GCSBuckets

    files = GCSBuckets(retry_timeout=1).bucket(BUCKET)
    name = "users/7/passport scan #2?.pdf"
    old, new = b"o" * (2 * DOWNLOAD_CHUNK + 10), b"n" * (2 * DOWNLOAD_CHUNK + 10)
    files.put(name, old)

    class ReplacedAfterTheFirstRange(io.BytesIO):
        def write(self, data):
            if self.tell() == 0:
                files.put(name, new)
            return super().write(data)

    out = ReplacedAfterTheFirstRange()
    try:
        files.download_to(name, out)
    except ObjectNotFound as exc:
        assert "passport" not in str(exc)
    else:
        got = out.getvalue()
        mixed = got not in (old, new)
        assert not mixed, f"{got.count(b'o')} bytes of the old version and {got.count(b'n')} of the new"
    assert files.get(name) == new
