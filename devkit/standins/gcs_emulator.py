"""A Google Cloud Storage emulator (PyPI ``gcp-storage-emulator``) on a loopback port: in memory, or kept in a
folder (``data_dir``) so that its buckets and objects outlive it (the demo's evidence under ``.demo/gcs``,
served again by ``privacy-ops ui``).

The real ``google-cloud-storage`` client, and so the Airflow provider's ``GCSHook``, talks to it when
``STORAGE_EMULATOR_HOST`` is set to ``base_url`` and the connection is anonymous.

Run it on its own with::

    python -m devkit.standins.gcs_emulator --port 0 --bucket NAME [--host 127.0.0.1] [--ready-file PATH] [--data-dir DIR]

It prints its base URL once it listens, and writes it to the ready file.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import functools
import hashlib
import json
import logging
import os
import re
import sys
from http import HTTPStatus
from http.server import HTTPServer

from gcp_storage_emulator import server as _server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.gcs_glob import gcs_glob_match
from gcp_storage_emulator.handlers import objects as _objects
from gcp_storage_emulator.handlers.buckets import create_bucket
from gcp_storage_emulator.server import RequestHandler
from gcp_storage_emulator.storage import Storage

from devkit.standins.background import BackgroundServer, serve_until_signalled

log = logging.getLogger(__name__)


NONCURRENT_DIR = "_noncurrent"  # a versioned bucket's noncurrent versions (a bucket name cannot start with '_')


class _VersionedStorage(Storage):
    """The package's storage with what it leaves out of Cloud Storage and the erasure relies on (JSON API,
    ``objects.delete`` and ``objects.list``): in a bucket with Object Versioning (``versioning.enabled``), deleting or
    replacing the live version keeps it as a noncurrent version (``timeDeleted`` set); ``versions=true`` lists the
    noncurrent versions beside the live ones; a delete naming a ``generation`` removes that version only (it is then
    soft-deleted like any other under the bucket's soft delete policy, which the package applies: 7 days by default),
    and a generation the object does not have (any more) is a 404. Soft-deleted versions are never listed by
    ``versions=true`` (only by ``softDeleted=true``) and cannot be deleted: a 404, as on GCS."""

    def _read_config_from_file(self):
        super()._read_config_from_file()
        try:
            self.noncurrent = json.loads(self._store.read_bytes(".meta").decode("utf-8")).get("noncurrent") or {}
        except FileNotFoundError:
            self.noncurrent = {}

    def _write_config_to_file(self):
        data = {"buckets": self.buckets, "objects": self.objects, "resumable": self.resumable,
                "bucket_iam_policies": self.bucket_iam_policies, "soft_deleted": self.soft_deleted,
                "noncurrent": self.noncurrent}
        self._store.write_bytes(".meta", json.dumps(data, indent=2).encode("utf-8"))

    def _versioned(self, bucket_name) -> bool:
        return bool(((self.buckets.get(bucket_name) or {}).get("versioning") or {}).get("enabled"))

    def _noncurrent_path(self, bucket_name, file_name, generation) -> str:
        key = hashlib.sha256(f"{bucket_name}:{file_name}:{generation}".encode()).hexdigest()
        return f"{NONCURRENT_DIR}/{bucket_name}/{key}"

    def _keep_noncurrent(self, bucket_name, file_name) -> None:
        """The live version becomes noncurrent (its content kept apart); the name has no live version after."""
        live = self.objects[bucket_name][file_name]
        generation = str(live.get("generation") or "0")
        self._store.write_bytes(self._noncurrent_path(bucket_name, file_name, generation),
                                self.get_file(bucket_name, file_name, show_error=False))
        kept = dict(live, timeDeleted=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        self.noncurrent.setdefault(bucket_name, {}).setdefault(file_name, {})[generation] = kept
        del self.objects[bucket_name][file_name]
        self._delete_file(bucket_name, file_name)

    def create_file(self, bucket_name, file_name, content, file_obj, file_id=None):
        if self._versioned(bucket_name) and file_name in self.objects.get(bucket_name, {}):
            self._keep_noncurrent(bucket_name, file_name)
        super().create_file(bucket_name, file_name, content, file_obj, file_id)

    def delete_file(self, bucket_name, file_name):
        if self._versioned(bucket_name) and file_name in self.objects.get(bucket_name, {}):
            self._keep_noncurrent(bucket_name, file_name)
            self._write_config_to_file()
            return
        super().delete_file(bucket_name, file_name)

    def delete_generation(self, bucket_name, file_name, generation) -> None:
        """Delete one version (live or noncurrent) for good, but for the bucket's soft delete; NotFound if the object
        has no such version (never had, deleted already, or soft-deleted)."""
        generation = str(generation)
        live = self.objects.get(bucket_name, {}).get(file_name)
        if live is not None and str(live.get("generation")) == generation:
            Storage.delete_file(self, bucket_name, file_name)  # not kept as noncurrent: the generation was named
            return
        versions = self.noncurrent.get(bucket_name, {}).get(file_name, {})
        if generation not in versions:
            raise NotFound
        obj = versions.pop(generation)
        path = self._noncurrent_path(bucket_name, file_name, generation)
        content = self._store.read_bytes(path)
        self._store.remove_file(path)
        if not versions:
            del self.noncurrent[bucket_name][file_name]
        retention = self._bucket_soft_delete_retention_seconds(bucket_name)
        if retention > 0:
            now = datetime.datetime.now(datetime.timezone.utc)
            obj = dict(obj, softDeleteTime=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                       hardDeleteTime=(now + datetime.timedelta(seconds=retention)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            self._store.write_bytes(self._soft_delete_content_path(bucket_name, file_name, generation), content)
            self.soft_deleted.setdefault(bucket_name, {}).setdefault(file_name, {})[generation] = obj
        self._write_config_to_file()

    def get_file_list(self, bucket_name, prefix=None, delimiter=None, match_glob=None, soft_deleted=False,
                      versions=False):
        objs, prefixes = super().get_file_list(bucket_name, prefix, delimiter, match_glob, soft_deleted)
        if versions and not soft_deleted:
            for file_name, generations in self.noncurrent.get(bucket_name, {}).items():
                rest = file_name[len(prefix or ""):]
                if ((prefix is None or file_name.startswith(prefix)) and not (delimiter and delimiter in rest)
                        and (match_glob is None or gcs_glob_match(match_glob, file_name))):
                    objs.extend(generations.values())
            objs.sort(key=lambda obj: (obj.get("name") or "", int(obj.get("generation") or 0)))
        return objs, prefixes

    def wipe(self, keep_buckets=False):
        self.noncurrent = {}
        super().wipe(keep_buckets)


class _MemoryStorage(_VersionedStorage):
    """The package's storage, in memory, without rewriting its metadata file on every change: upstream dumps every
    object's metadata as one JSON document on each write and delete, so each request costs time in proportion to
    the objects held (measured: 17 ms at 500 objects, ~100 ms at 7,500, against ~1 ms without the dump). In memory
    nothing reads that file back (it is read once, at start, and gone when the emulator stops)."""

    def _write_config_to_file(self):
        pass


_package_download = _objects.download


def _download(request, response, storage, *args, **kwargs):
    """The package's media download, but a range that starts at or past the object's end is answered as real GCS
    answers it (RFC 9110): 416 with ``Content-Range: bytes */<size>``, which the client reads as no bytes for an
    empty object. The package answered 206 with ``bytes 0--1/0``, which the client refuses. A ``generation`` the
    object no longer has (replaced since) is a 404, as in a bucket without versioning; the package served whatever
    version was live."""
    wanted = (request.query.get("generation") or [None])[0]
    if wanted is not None:
        try:
            live = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"]).get("generation")
        except NotFound:
            live = None  # the package answers 404
        if live is not None and str(live) != str(wanted):
            response.status = HTTPStatus.NOT_FOUND
            return None
    match = re.fullmatch(r"\s*bytes=(\d+)-\d*", request.get_header("range", None) or "")
    if match:
        try:
            size = len(storage.get_file(request.params["bucket_name"], request.params["object_id"]))
        except NotFound:
            size = None  # the package answers 404
        if size is not None and int(match.group(1)) >= size:
            response.status = HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
            response["Content-Range"] = f"bytes */{size}"
            return None
    return _package_download(request, response, storage, *args, **kwargs)


_package_delete, _package_ls = _objects.delete, _objects.ls


def _flag(request, name: str) -> bool:
    return (request.query.get(name) or ["false"])[0].lower() in ("1", "true", "yes")


def _delete(request, response, storage, *args, **kwargs):
    """The package's object delete, and with a ``generation`` that version's delete (the package ignored it and
    deleted the live version): a 404 when the object has no such version (:class:`_VersionedStorage`)."""
    wanted = (request.query.get("generation") or [None])[0]
    if wanted is None:
        return _package_delete(request, response, storage, *args, **kwargs)
    try:
        storage.delete_generation(request.params["bucket_name"], request.params["object_id"], wanted)
    except NotFound:
        response.status = HTTPStatus.NOT_FOUND
    return None


def _ls(request, response, storage, *args, **kwargs):
    """The package's listing, and with ``versions=true`` the noncurrent versions too (the package ignored it)."""
    if not _flag(request, "versions") or _flag(request, "softDeleted"):
        return _package_ls(request, response, storage, *args, **kwargs)
    first = {name: (request.query.get(name) or [None])[0] for name in ("prefix", "delimiter", "matchGlob")}
    try:
        files, prefixes = storage.get_file_list(request.params["bucket_name"], first["prefix"], first["delimiter"],
                                                first["matchGlob"], versions=True)
    except NotFound:
        response.status = HTTPStatus.NOT_FOUND
    else:
        response.json({"kind": "storage#objects", "prefixes": prefixes, "items": files})
    return None


# Its routes were built when the package was imported, and its object GET (``alt=media``) calls the module's
# function: point them at the wrappers above.
_WRAPPED = {_package_download: _download, _package_delete: _delete, _package_ls: _ls}
for _regex, _methods in _server.HANDLERS:
    for _method, _handler in list(_methods.items()):
        if _handler in _WRAPPED:
            _methods[_method] = _WRAPPED[_handler]
_objects.download = _download


class _RecordingHandler(RequestHandler):
    """The package's handler, noting each request's method, path (no query) and status in ``requests``: what a
    test asks of the client's traffic (how many requests a step made, and which)."""

    requests: "collections.deque" = collections.deque()

    def log_request(self, code="-", size="-"):
        self.requests.append((self.command, self.path.split("?", 1)[0], int(code) if str(code).isdigit() else code))
        super().log_request(code, size)


def answer_refused(handler, message: str = "retention policy") -> None:
    """Answer the request ``handler`` holds as GCS refuses one (403, its JSON error): a test's fault, e.g. a bucket's
    retention policy or an object hold."""
    body = json.dumps({"error": {"code": 403, "message": message}}).encode()
    handler.send_response(403)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class GCSEmulator(BackgroundServer):
    """``with GCSEmulator(default_bucket="b") as gcs: os.environ["STORAGE_EMULATOR_HOST"] = gcs.base_url``.

    The package's own ``Server`` binds inside its thread and keeps the socket private, so a port
    chosen by the OS (port 0) could not be read back; the server is assembled here from the
    package's storage and request handler instead. It stays single-threaded like upstream, because
    the in-memory storage is not safe for concurrent writes.
    """

    label = "GCS emulator"

    def __init__(self, default_bucket: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 project_number: str | int | None = None, data_dir: str | os.PathLike | None = None,
                 more_buckets: tuple[str, ...] = ()):
        super().__init__(host, port)
        self.default_bucket = default_bucket
        self.more_buckets = tuple(more_buckets)
        self._project_number = project_number
        # None: in memory, gone when it stops. A folder: the package's disk mode, every bucket and object kept
        # there (and found again by the next emulator on the same folder).
        self.data_dir = None if data_dir is None else os.path.abspath(data_dir)
        self._storage: Storage | None = None
        # (method, path, status) of the latest requests answered (bounded: `privacy-ops ui` keeps one running for hours)
        self.requests: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=10_000)

    @property
    def bucket(self) -> str | None:
        return self.default_bucket

    def env(self) -> dict[str, str]:
        """Environment that points Google's storage client at this emulator."""
        return {"STORAGE_EMULATOR_HOST": self.base_url}

    def _make_server(self, address: tuple[str, int]) -> HTTPServer:
        # The package logs each request's path at INFO and each object it cannot read at ERROR, the object's name in
        # the message; the demo runs its DAGs in this process, so a person's file name reached the task logs, and a
        # missing file (an export lists it, not a failure) read as an error. ``requests`` is the kit's own record.
        logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
        if self.data_dir is None:
            # data_dir is only used for disk storage, but the constructor insists on an absolute path.
            self._storage = _MemoryStorage(use_memory_fs=True, data_dir=os.path.abspath(os.sep),
                                           project_number=self._project_number)
        else:
            self._storage = _VersionedStorage(use_memory_fs=False, data_dir=self.data_dir,
                                              project_number=self._project_number)
        for bucket in filter(None, (self.default_bucket, *self.more_buckets)):
            if bucket not in self._storage.buckets:
                create_bucket(bucket, self._storage)
        handler = type("Handler", (_RecordingHandler,), {"requests": self.requests})
        return HTTPServer(address, functools.partial(handler, self._storage))

    def _after_stop(self) -> None:
        self._storage = None

    def create_bucket(self, name: str) -> None:
        """Create the bucket, unless it is there already (a folder-backed emulator keeps its buckets)."""
        if self._storage is None:
            raise RuntimeError("the emulator is not running")
        if name not in self._storage.buckets:
            create_bucket(name, self._storage)

    def wipe(self, keep_buckets: bool = True) -> None:
        """Delete every object (and, unless ``keep_buckets``, every bucket)."""
        if self._storage is None:
            raise RuntimeError("the emulator is not running")
        self._storage.wipe(keep_buckets=keep_buckets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="In-memory GCS emulator on a loopback port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--bucket", action="append", default=[],
                        help="create this bucket at start (repeat for more; the first is the default)")
    parser.add_argument("--ready-file", help="write the base URL here once listening")
    parser.add_argument("--data-dir", help="keep buckets and objects in this folder (default: in memory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    first, *more = args.bucket or [None]
    return serve_until_signalled(GCSEmulator(default_bucket=first, host=args.host, port=args.port,
                                             data_dir=args.data_dir, more_buckets=tuple(more)), args.ready_file)

if __name__ == "__main__":
    sys.exit(main())
