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
import functools
import json
import logging
import os
import re
import sys
from http import HTTPStatus
from http.server import HTTPServer

from gcp_storage_emulator import server as _server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects as _objects
from gcp_storage_emulator.handlers.buckets import create_bucket
from gcp_storage_emulator.server import RequestHandler
from gcp_storage_emulator.storage import Storage

from devkit.standins.background import BackgroundServer, serve_until_signalled

log = logging.getLogger(__name__)


class _MemoryStorage(Storage):
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


# Its routes were built when the package was imported, and its object GET (``alt=media``) calls the module's
# function: point both at the wrapper above.
for _regex, _methods in _server.HANDLERS:
    for _method, _handler in list(_methods.items()):
        if _handler is _package_download:
            _methods[_method] = _download
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
            self._storage = Storage(use_memory_fs=False, data_dir=self.data_dir, project_number=self._project_number)
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
