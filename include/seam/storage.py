"""Object storage through Airflow: ``object_store(location)`` and the GCS implementation.

``GCSObjectStore`` takes its client from the Google provider's ``GCSHook`` (connection
``google_cloud_default`` unless told otherwise: credentials, project, and ``STORAGE_EMULATOR_HOST`` for the
local emulator) and then calls that client itself, because the hook's upload and download offer neither
a create-only write (``if_generation_match=0``) nor a bound on the client's retries (two minutes by
default, too long for a command an operator waits on). The hook works outside a task too, e.g. in
``privacy-ops``: the connection then comes from ``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` (Airflow's
environment-variable secrets backend; no metadata database needed).

Airflow and the Google libraries are imported inside functions so that importing this module is cheap.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import quote, quote_plus

from include.objectstore import (Buckets, Erased, FileObjectStore, Location, ObjectCorrupt, ObjectExists, ObjectInfo,
                                 ObjectNotFound, ObjectStore, ObjectStoreError, ObjectStoreRefused,
                                 ObjectStoreUnavailable, ObjectVersionsRemain, check_prefix)

log = logging.getLogger(__name__)

GCP_CONN_ID = "google_cloud_default"
DEFAULT_TIMEOUT = 60.0  # seconds per request
DEFAULT_RETRY_TIMEOUT = 120.0  # seconds of retrying transient failures (the client's own default)
ERASE_ROUNDS = 3  # rounds of listing and deleting an object's versions before one still written to is refused
DOWNLOAD_CHUNK = 8 * 2**20  # bytes per ranged request of a streamed download (a multiple of 256 KiB)
# google-cloud-storage's switch for its background bucket-metadata lookup
# (google/cloud/storage/_opentelemetry_tracing.py)
NO_BUCKET_METADATA_LOOKUP = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"


def object_store(location: str | Location, gcp_conn_id: str = GCP_CONN_ID, *, timeout: float = DEFAULT_TIMEOUT,
                 retry_timeout: float = DEFAULT_RETRY_TIMEOUT) -> ObjectStore:
    """The store for ``gs://bucket[/prefix]`` or ``file:///folder``; ValueError (one sentence) for anything else.

    Nothing is contacted until the first operation.
    """
    parsed = Location.parse(location) if isinstance(location, str) else location
    if parsed.scheme == "file":
        return FileObjectStore(parsed)
    return GCSObjectStore(parsed, gcp_conn_id, timeout=timeout, retry_timeout=retry_timeout)


class GCSObjectStore(ObjectStore):
    """Objects in a GCS bucket under an optional prefix, through ``GCSHook``'s client."""

    def __init__(self, location: str | Location, gcp_conn_id: str = GCP_CONN_ID, *,
                 timeout: float = DEFAULT_TIMEOUT, retry_timeout: float = DEFAULT_RETRY_TIMEOUT):
        self.location = Location.parse(location) if isinstance(location, str) else location
        if self.location.scheme != "gs":
            raise ValueError(f"GCSObjectStore needs a gs:// location, not {str(self.location)!r}")
        self.gcp_conn_id = gcp_conn_id
        self.timeout = timeout
        self.retry_timeout = retry_timeout
        self._client = None
        self._retry = None
        # The bucket's soft delete retention in seconds once read (0: none; -1: the connection may not read the bucket)
        self._soft_delete_seconds: int | None = None

    # -- the client ----------------------------------------------------------------------------------

    def _bucket(self):
        if self._client is None:
            from airflow.providers.google.cloud.hooks.gcs import GCSHook
            from airflow.sdk.exceptions import AirflowNotFoundException
            from google.cloud.storage.retry import DEFAULT_RETRY

            # The client otherwise looks each bucket's metadata up for tracing spans (which nothing here records)
            # in a thread of its own, with its default two minutes of retries: calls to GCS that go on after the
            # store has given up on a bound of its own (retry_timeout). The library's own switch; an explicit
            # setting of the deployment's wins.
            os.environ.setdefault(NO_BUCKET_METADATA_LOOKUP, "true")
            try:
                self._client = GCSHook(gcp_conn_id=self.gcp_conn_id).get_conn()
            except AirflowNotFoundException:
                raise ObjectStoreRefused(
                    f"Airflow connection '{self.gcp_conn_id}' is not defined: add it under Admin > Connections "
                    f"or set AIRFLOW_CONN_{self.gcp_conn_id.upper()}") from None
            self._retry = DEFAULT_RETRY.with_timeout(self.retry_timeout)
        return self._client.bucket(self.location.bucket)

    def _call(self, fn, **kwargs):
        return fn(timeout=self.timeout, retry=self._retry, **kwargs)

    # -- the interface -------------------------------------------------------------------------------

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream", *,
            overwrite: bool = True) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put() takes bytes, not {type(data).__name__}")
        key = self.location.key(name)
        with self._errors("write", name):
            blob = self._bucket().blob(key)
            self._refuse_existing(blob, name, overwrite)
            self._call(blob.upload_from_string, data=bytes(data), content_type=content_type,
                       if_generation_match=None if overwrite else 0)
        log.debug("wrote %s (%d bytes)", self.uri(name), len(data))
        return self.uri(name)

    def put_file(self, name: str, path: str | os.PathLike, content_type: str = "application/octet-stream", *,
                 overwrite: bool = True) -> str:
        key = self.location.key(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"there is no file {os.fspath(path)!r} to upload")
        with self._errors("write", name):
            blob = self._bucket().blob(key)
            self._refuse_existing(blob, name, overwrite)
            # Above 8 MiB the client switches to a resumable upload in chunks; the file is never read whole.
            self._call(blob.upload_from_filename, filename=os.fspath(path), content_type=content_type,
                       if_generation_match=None if overwrite else 0)
        log.debug("wrote %s from %s", self.uri(name), os.fspath(path))
        return self.uri(name)

    def _refuse_existing(self, blob, name: str, overwrite: bool) -> None:
        # The write below is conditional (if_generation_match=0), which GCS enforces atomically; the local
        # emulator ignores that condition, so look first as well (one extra request, create-only writes only).
        if not overwrite and self._call(blob.exists):
            raise ObjectExists(f"{self.uri(name)} already exists")

    def get(self, name: str) -> bytes:
        key = self.location.key(name)
        with self._errors("read", name):
            return self._call(self._bucket().blob(key).download_as_bytes)

    def exists(self, name: str) -> bool:
        key = self.location.key(name)
        with self._errors("look up", name):
            return self._call(self._bucket().blob(key).exists)

    def delete(self, name: str) -> bool:
        return self.erase(name).versions > 0

    def erase(self, name: str) -> Erased:
        """Every version of the object, live and noncurrent, listed (``versions=true``) and deleted by its generation,
        then listed again to verify that none is left: in a bucket with Object Versioning a delete without a
        generation only makes the live version noncurrent (JSON API ``objects.delete``: "Deletions are permanent if
        versioning is not enabled for the bucket, or if the generation parameter is used"). A version another client
        deleted meanwhile (404) is gone all the same; one written meanwhile is deleted by the next round, and a name
        still written to after :data:`ERASE_ROUNDS` rounds is :class:`ObjectVersionsRemain`. A missing bucket is
        :class:`ObjectStoreRefused` (its listing's 404). The bucket's soft delete keeps the deleted versions
        recoverable until its retention ends, whatever a client asks: :attr:`Erased.recoverable_until`."""
        from google.api_core import exceptions as api

        key = self.location.key(name) if self.location.path else name
        deleted = 0
        with self._errors("delete", name):
            bucket = self._bucket()
            for _ in range(ERASE_ROUNDS):
                generations = self._generations(bucket, key)
                if not generations:
                    break
                for generation in generations:
                    try:
                        self._call(bucket.blob(key, generation=generation).delete)
                        deleted += 1
                    except api.NotFound:
                        pass  # deleted by another client meanwhile: gone all the same
            else:
                left = len(self._generations(bucket, key))
                if left:
                    raise ObjectVersionsRemain(
                        f"{self.uri(name)} still has {left} version(s) after every version was deleted "
                        f"{ERASE_ROUNDS} times (something writes it again): it is not erased, and a person must "
                        "stop what writes it")
            until = self._recoverable_until(bucket, key, deleted)
        return Erased(deleted, until)

    def _generations(self, bucket, key: str) -> list[int]:
        """The generations the object has, live and noncurrent (soft-deleted ones are not listed: no client can
        delete them)."""
        blobs = self._call(bucket.client.list_blobs, bucket_or_name=bucket, prefix=key, versions=True)
        return [blob.generation for blob in blobs if blob.name == key]

    def _recoverable_until(self, bucket, key: str, deleted: int):
        """Until when the bucket's soft delete keeps the object's deleted versions: for versions just deleted, the end
        of the bucket's retention from now (its ``softDeletePolicy``, read once per store); for an object that had
        none left (deleted earlier, by the application or by hand), or where the connection may not read the
        bucket, the latest ``hardDeleteTime`` of its soft-deleted versions (``softDeleted=true``). None: no copy is
        kept."""
        from google.api_core import exceptions as api

        if deleted and self._soft_delete_seconds is None:
            try:
                self._call(bucket.reload, projection="noAcl")
                self._soft_delete_seconds = int(bucket.soft_delete_policy.retention_duration_seconds or 0)
            except api.Forbidden:
                self._soft_delete_seconds = -1  # the bucket is not to be read by this connection: ask each object
        if deleted and self._soft_delete_seconds >= 0:
            seconds = self._soft_delete_seconds
            return datetime.now(timezone.utc) + timedelta(seconds=seconds) if seconds else None
        kept = [blob.hard_delete_time for blob in self._call(
            bucket.client.list_blobs, bucket_or_name=bucket, prefix=key, soft_deleted=True)
            if blob.name == key and blob.hard_delete_time is not None]
        return max(kept, default=None)

    def download_to(self, name: str, out) -> int:
        """Streamed by the client's chunked media download (ranged requests of :data:`DOWNLOAD_CHUNK` bytes into
        ``out``): the object is never held whole in memory. Every range is of the version live when the read began
        (its generation): one replaced meanwhile is :class:`ObjectNotFound` (in a bucket with versioning, the old
        version is read to its end), never the first part of one version and the rest of another."""
        key = self.location.key(name) if self.location.path else name
        counter = _Counting(out)
        with self._errors("read", name):
            # The client's chunked download asks each range of whatever version is live (it pins no generation), so
            # the version is looked up first and named in every range.
            live = self._bucket().blob(key)
            self._call(live.reload)
            # A chunk size makes the client download in ranged requests of that size (without one it holds the
            # whole response, measured: 96 MiB of heap for a 64 MiB object).
            blob = self._bucket().blob(key, chunk_size=DOWNLOAD_CHUNK, generation=live.generation)
            self._call(blob.download_to_file, file_obj=counter, checksum=None)  # SHA-256 is taken by the caller
        return counter.size

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        base = f"{self.location.path}/" if self.location.path else ""
        with self._errors("list", prefix):
            bucket = self._bucket()
            blobs = self._call(bucket.client.list_blobs, bucket_or_name=bucket, prefix=base + prefix)
            names = [blob.name[len(base):] for blob in blobs]
        # Console "folders" are zero-byte objects named like "a/b/": not objects of ours.
        return sorted(n for n in names if n and not n.endswith("/"))

    def describe(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        base = f"{self.location.path}/" if self.location.path else ""
        with self._errors("list", prefix):
            bucket = self._bucket()
            for blob in self._call(bucket.client.list_blobs, bucket_or_name=bucket, prefix=base + prefix):
                name = blob.name[len(base):]
                if name and not name.endswith("/"):
                    yield ObjectInfo(name, int(blob.size or 0), blob.time_created)

    # -- errors --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str, name: str) -> Iterator[None]:
        """The client's exceptions as the store's, in one sentence."""
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth
        from google.cloud.storage.exceptions import DataCorruption

        target = self.uri(name) if name and not name.endswith("/") else str(self.location)
        bucket = f"gs://{self.location.bucket}"

        def said(text: str | None) -> str:  # what the library said, without the object's name
            return _scrubbed(text, self._private_name(name))

        try:
            try:
                yield
            except ObjectStoreError:
                raise
            except api.PreconditionFailed:
                raise ObjectExists(f"{target} already exists") from None
            except DataCorruption:  # the client's checksum check of a download, after its own retries
                what = f"a file in {bucket}" if self._private_name(name) is not None else target
                raise ObjectCorrupt(f"what was read of {what} does not match the checksum the store keeps for it "
                                    "(altered where it is kept, or damaged on the way)") from None
            except api.NotFound as exc:
                if action == "read" and self._bucket_exists():
                    raise ObjectNotFound(f"there is no object {target}") from None
                raise ObjectStoreRefused(f"bucket {bucket} does not exist (or connection '{self.gcp_conn_id}' "
                                         "cannot see it)") from exc
            except (api.Unauthorized, api.Forbidden) as exc:
                raise ObjectStoreRefused(f"Google Cloud Storage refused to {action} {target} with connection "
                                         f"'{self.gcp_conn_id}' ({exc.code} {_short(said(exc.message))})") from exc
            except auth.InvalidOperation as exc:  # a 401 made the client refresh credentials that cannot be
                raise ObjectStoreRefused(f"Google Cloud Storage refused to {action} {target} with connection "
                                         f"'{self.gcp_conn_id}' (its credentials were rejected: "
                                         f"{_short(said(str(exc)))})") from exc
            except auth.DefaultCredentialsError:
                raise ObjectStoreRefused(f"connection '{self.gcp_conn_id}' has no Google credentials and none were "
                                         "found in the environment (set a key or anonymous access in its "
                                         "extras)") from None
            except auth.RefreshError as exc:
                if getattr(exc, "retryable", False):
                    raise ObjectStoreUnavailable(f"could not refresh the Google credentials of connection "
                                                 f"'{self.gcp_conn_id}': {_short(said(str(exc)))}") from exc
                raise ObjectStoreRefused(f"the Google credentials of connection '{self.gcp_conn_id}' were refused: "
                                         f"{_short(said(str(exc)))}") from exc
            except auth.TransportError as exc:
                raise ObjectStoreUnavailable(f"could not reach Google to authenticate connection "
                                             f"'{self.gcp_conn_id}': {_short(said(str(exc)))}") from exc
            except api.RetryError as exc:
                cause = exc.cause if exc.cause is not None else exc
                raise ObjectStoreUnavailable(f"Google Cloud Storage did not answer while trying to {action} {target} "
                                             f"for {self.retry_timeout:g} s "
                                             f"({_describe(said(str(cause)), cause)})") from exc
            except (api.TooManyRequests, api.ServerError) as exc:
                raise ObjectStoreUnavailable(f"Google Cloud Storage could not {action} {target} now "
                                             f"({exc.code} {_short(said(exc.message))})") from exc
            except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
                raise ObjectStoreUnavailable(f"could not reach Google Cloud Storage to {action} {target} "
                                             f"({_describe(said(str(exc)), exc)})") from exc
            except api.GoogleAPICallError as exc:
                raise ObjectStoreError(f"Google Cloud Storage would not {action} {target} "
                                       f"({exc.code} {_short(said(exc.message))})") from exc
        except ObjectStoreError as err:
            if self._private_name(name) is not None:
                # The library's exception (our sentence's cause) holds the request's address, the file's name:
                # a traceback would print it beside our scrubbed sentence. It is not kept for a person's file.
                err.__cause__, err.__suppress_context__ = None, True
            raise

    def _private_name(self, name: str) -> str | None:
        """An object name that must not appear in a message (a person's file), or None."""
        return None

    def _bucket_exists(self) -> bool:
        """After a 404 on an object: was it the bucket? (Object-only roles may not see the bucket: then
        the 404 was about the object.)"""
        try:
            return bool(self._call(self._bucket().exists))
        except Exception:
            return True


class _Counting:
    """A writable that counts what passes through it."""

    def __init__(self, out):
        self.out = out
        self.size = 0

    def write(self, data) -> int:
        self.out.write(data)
        self.size += len(data)
        return len(data)


class GCSBuckets(Buckets):
    """The buckets the data map's file columns name, through ``GCSHook``'s client (one store per bucket)."""

    def __init__(self, gcp_conn_id: str = GCP_CONN_ID, *, timeout: float = DEFAULT_TIMEOUT,
                 retry_timeout: float = DEFAULT_RETRY_TIMEOUT):
        self.gcp_conn_id = gcp_conn_id
        self.timeout = timeout
        self.retry_timeout = retry_timeout
        self._stores: dict[str, GCSObjectStore] = {}

    def bucket(self, name: str) -> ObjectStore:
        if name not in self._stores:
            self._stores[name] = _BucketFiles(Location("gs", "", name), self.gcp_conn_id, timeout=self.timeout,
                                              retry_timeout=self.retry_timeout)
        return self._stores[name]


class _BucketFiles(GCSObjectStore):
    """A bucket's files by their keys as stored (any key GCS holds). Its messages name the bucket, never the file:
    the name of a person's file can be personal data, and messages end up in task logs."""

    def uri(self, name: str) -> str:
        return f"a file in gs://{self.location.bucket}"

    def _private_name(self, name: str) -> str | None:
        return name or None


def _short(text: str | None, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# A request's address in a library's message: the path and query name the bucket and the object.
_ADDRESS = re.compile(r"(?P<base>https?://[^/\s?#]+)[^\s'\")]*", re.IGNORECASE)
_PATH = re.compile(r"(?P<base>\burl: )/[^\s'\")]*")  # urllib3's "Max retries exceeded with url: /storage/v1/b/..."


def _scrubbed(text: str | None, name: str | None = None) -> str:
    """A library's message with every request address cut to its host (``https://storage.googleapis.com/…``)
    and, for a person's file, the object's name taken out (as stored and as URL-encoded): the messages end
    up in task logs, and a file's name can be personal data."""
    text = _ADDRESS.sub(lambda m: m["base"] + ("/…" if len(m[0]) > len(m["base"]) else ""), text or "")
    text = _PATH.sub(lambda m: m["base"] + "/…", text)
    if name:
        # As a path, and as a query's value (a listing's prefix: a space as '+').
        for spelling in sorted({name, quote(name, safe=""), quote(name), quote_plus(name), quote_plus(name, safe="/")},
                               key=len, reverse=True):
            text = text.replace(spelling, "…")
    return text


def _describe(text: str, exc: BaseException) -> str:
    """A connection failure in a few words, not urllib3's nested repr (``text``: the exception, scrubbed)."""
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host",
                   "Temporary failure in name resolution", "Connection reset"):
        if marker in text:
            return marker.lower() if marker != "Connection refused" else "connection refused"
    return _short(text, 120) or type(exc).__name__
