"""Where the product keeps objects outside the database: audit anchors, vendor manifests, export packages.

A location is one string, ``gs://BUCKET[/PREFIX]`` (Google Cloud Storage) or ``file:///ABSOLUTE/FOLDER``
(a local or mounted folder, for users without GCS). Code writes and reads objects by *name*, relative to
the location, e.g. ``audit-anchors/000000001234-<hash>.json``; names may contain ``/`` but never an
empty, ``.`` or ``..`` segment, nor a segment that starts with ``.`` (the folder store keeps its partial
writes under such names, so they never show in a listing).

This module is plain Python. :class:`FileObjectStore` lives here; the GCS implementation goes through
the Airflow Google provider and lives in :mod:`include.seam.storage`, which also has ``object_store()``,
the one way the product turns a location string into a store.

Errors say what happened in one sentence: :class:`ObjectStoreUnavailable` when the store did not answer
(a retry may help), :class:`ObjectStoreRefused` when an operator must fix something (a missing bucket or
folder, refused credentials, no permission), :class:`ObjectNotFound` / :class:`ObjectExists` for the
object itself.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Iterator
from urllib.parse import quote, unquote, urlsplit

from include.errors import NeedsOperator, Transient
from include.pg_url import withhold_credentials

ACCEPTED_FORMS = "gs://BUCKET/OPTIONAL/PREFIX or file:///ABSOLUTE/FOLDER"
# GCS bucket names: 3-63 characters of lower-case letters, digits, '-', '_' and '.', starting and ending
# with a letter or digit (dotted names may be longer, up to 222, in 63-character parts).
_BUCKET = re.compile(r"^(?=.{3,222}$)[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
_MAX_NAME_BYTES = 1024  # GCS's limit for an object name, in UTF-8
_FILE_MODE = 0o640  # evidence may hold personal data (export packages): owner and group only


class ObjectStoreError(Exception):
    """An object store could not do what was asked (the message is one sentence)."""


class ObjectStoreUnavailable(ObjectStoreError, Transient):
    """The store did not answer (connection refused, timeout, 5xx, throttled): a retry may help."""


class ObjectStoreRefused(ObjectStoreError, NeedsOperator):
    """The store refused for a reason an operator must fix: missing bucket or folder, credentials, permission."""


class ObjectVersionsRemain(ObjectStoreRefused):
    """Versions of an object were still there after every one was deleted, round after round: something writes it
    again, and a person must stop it."""


class ObjectNotFound(ObjectStoreError):
    """There is no object of that name."""


class ObjectExists(ObjectStoreError):
    """An object of that name exists and the write asked not to replace it."""


class ObjectCorrupt(ObjectStoreError, NeedsOperator):
    """What was read of an object does not match the checksum the store keeps for it: altered where it is kept,
    or damaged on the way (the client has retried)."""


def check_name(name: str) -> str:
    """``name`` if it is a valid object name, else ValueError in one sentence."""
    reason = _name_problem(name, allow_partial=False)
    if reason:
        raise ValueError(f"object name {name!r} is not allowed: {reason}")
    return name


def _name_problem(name: str, *, allow_partial: bool) -> str | None:
    if not isinstance(name, str):
        return "it is not a string"
    if not name and not allow_partial:
        return "it is empty"
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        return f"it is longer than {_MAX_NAME_BYTES} bytes"
    if any(ord(ch) < 32 or ch in "\\\x7f" for ch in name):
        return "it contains a control character or a backslash"
    if name.startswith("/"):
        return "it starts with '/' (names are relative to the location)"
    segments = name.split("/")
    if allow_partial:
        segments = segments[:-1]  # a listing prefix may end with '/' or in the middle of a segment
    for segment in segments:
        if segment in ("", ".", ".."):
            return "it has an empty, '.' or '..' segment"
        if segment.startswith("."):
            return "a segment starts with '.'"
    if allow_partial and name.split("/")[-1] in (".", ".."):
        return "it has a '.' or '..' segment"
    return None


def _shown(raw: str) -> str:
    """A location as a message may quote it: what may hold a secret (a user name and password before an '@', a
    signed query string) is never repeated (:func:`include.pg_url.withhold_credentials`)."""
    return repr(withhold_credentials(raw))


@dataclass(frozen=True)
class Location:
    """A parsed ``gs://bucket[/prefix]`` or ``file:///absolute/folder``.

    ``bucket`` is set for gs:// only; ``path`` is the prefix inside the bucket (no leading or trailing
    ``/``, possibly empty) for gs://, and the absolute folder for file://.
    """

    scheme: str
    path: str
    bucket: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Location":
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not an object-store location; use {ACCEPTED_FORMS}")
        raw = text.strip()

        def bad(reason: str) -> ValueError:
            return ValueError(f"{_shown(raw)} is not a usable object-store location ({reason}); use {ACCEPTED_FORMS}")

        if raw.startswith("gs://"):
            bucket, _, prefix = raw[len("gs://"):].partition("/")
            if not bucket:
                raise bad("it names no bucket")
            if "@" in bucket:
                raise bad("it has a user name or password before the bucket: credentials belong in the Airflow "
                          "connection, never in the location")
            if not _BUCKET.fullmatch(bucket) or ".." in bucket:
                raise bad(f"{bucket!r} is not a valid bucket name")
            prefix = prefix.strip("/")
            problem = _name_problem(prefix, allow_partial=False) if prefix else None
            if problem:
                raise bad(f"prefix {prefix!r}: {problem}")
            return cls("gs", prefix, bucket)
        if raw.startswith("file:"):
            try:
                parts = urlsplit(raw)
            except ValueError as exc:
                raise bad(str(exc)) from None
            if not raw.startswith("file:///"):
                raise bad("a file location needs three slashes and an absolute folder, like file:///srv/evidence")
            if parts.query or parts.fragment:
                raise bad("a file location has no query or fragment")
            folder = unquote(parts.path)
            if "\x00" in folder:
                raise bad("the folder contains a NUL character")
            if any(segment in (".", "..") for segment in folder.split("/")):
                raise bad("the folder has a '.' or '..' segment")
            folder = os.path.normpath(folder)
            if not os.path.isabs(folder) or folder == "/":
                raise bad("the folder must be absolute and not the root folder")
            return cls("file", folder)
        raise bad("it is neither gs:// nor file://")

    def __str__(self) -> str:
        if self.scheme == "gs":
            return f"gs://{self.bucket}/{self.path}".rstrip("/")
        return _file_uri(self.path)

    def key(self, name: str) -> str:
        """The object's key in its bucket (gs://) or its path (file://)."""
        check_name(name)
        if self.scheme == "gs":
            return f"{self.path}/{name}" if self.path else name
        return os.path.join(self.path, *name.split("/"))

    def uri(self, name: str) -> str:
        if self.scheme == "gs":
            return f"gs://{self.bucket}/{self.key(name)}"
        return _file_uri(self.key(name))


def _file_uri(path: str) -> str:
    # Path characters RFC 3986 allows unescaped stay readable (vendor=7/part-0001.parquet).
    return "file://" + quote(path, safe="/=+@:,;!$&'()*~")


@dataclass(frozen=True)
class Erased:
    """What deleting every version of an object came to: how many versions were deleted (0: there was none, live or
    noncurrent), and until when the store keeps them recoverable all the same (a GCS bucket's soft delete, which no
    client can shorten; None: not at all)."""

    versions: int
    recoverable_until: datetime | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """An object's name (relative to the location), size in bytes and creation time (UTC)."""

    name: str
    size: int
    created: "datetime"


class ObjectStore(ABC):
    """Objects by name under one location. Implementations: FileObjectStore, seam.storage.GCSObjectStore."""

    location: Location

    def describe(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Each object under ``prefix`` with its size and creation time (what an inventory needs), in no set order."""
        raise NotImplementedError(f"{type(self).__name__} cannot describe its objects")

    @abstractmethod
    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream", *,
            overwrite: bool = True) -> str:
        """Store ``data`` as ``name`` (whole or not at all); return its URI.

        With ``overwrite=False`` an existing object is left alone and :class:`ObjectExists` is raised (on
        GCS the write is conditional on the name being free, so two writers cannot both succeed).
        """

    @abstractmethod
    def put_file(self, name: str, path: str | os.PathLike, content_type: str = "application/octet-stream", *,
                 overwrite: bool = True) -> str:
        """Store the file at ``path`` as ``name`` without reading it into memory; return its URI."""

    @abstractmethod
    def get(self, name: str) -> bytes:
        """The object's bytes; :class:`ObjectNotFound` if there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Names (relative to the location) that start with ``prefix``, sorted."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        ...

    @abstractmethod
    def delete(self, name: str) -> bool:
        """Delete the object: True when it was there, False when there was none (already gone is fine); a missing
        bucket or folder is :class:`ObjectStoreRefused`, not "gone"."""

    def erase(self, name: str) -> Erased:
        """Delete every version of the object and verify that none is left (what an erasure needs: a store that keeps
        versions keeps a deleted object's copies otherwise). A store without versions deletes the one it has."""
        return Erased(int(self.delete(name)))

    @abstractmethod
    def download_to(self, name: str, out: BinaryIO) -> int:
        """Stream the object into ``out`` a block at a time (never whole in memory); returns its size in bytes.
        :class:`ObjectNotFound` if there is none."""

    def uri(self, name: str) -> str:
        return self.location.uri(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.location)!r})"


def check_prefix(prefix: str) -> str:
    reason = _name_problem(prefix, allow_partial=True)
    if reason:
        raise ValueError(f"listing prefix {prefix!r} is not allowed: {reason}")
    return prefix


class FileObjectStore(ObjectStore):
    """Objects as files under a folder; each write lands whole (temporary file, fsync, rename).

    The folder is created on the first write. ``content_type`` is not kept: a file has no metadata.
    """

    def __init__(self, location: Location | str):
        self.location = Location.parse(location) if isinstance(location, str) else location
        if self.location.scheme != "file":
            raise ValueError(f"FileObjectStore needs a file:/// location, not {str(self.location)!r}")
        self.root = Path(self.location.path)

    # -- writing -------------------------------------------------------------------------------------

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream", *,
            overwrite: bool = True) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put() takes bytes, not {type(data).__name__}")
        return self._write(name, lambda out: out.write(data), overwrite)

    def put_file(self, name: str, path: str | os.PathLike, content_type: str = "application/octet-stream", *,
                 overwrite: bool = True) -> str:
        with open(path, "rb") as source:
            return self._write(name, lambda out: shutil.copyfileobj(source, out, 1024 * 1024), overwrite)

    def _write(self, name: str, fill: Callable[[BinaryIO], object], overwrite: bool) -> str:
        target = Path(self.location.key(name))
        with self._errors("write", name):
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise ObjectStoreRefused(f"cannot write {self.uri(name)}: a folder of that name is in the way")
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
            try:
                with os.fdopen(fd, "wb") as out:
                    fill(out)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, _FILE_MODE)
                if overwrite:
                    os.replace(tmp, target)
                else:
                    self._link_new(tmp, target, name)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            _fsync_folder(target.parent)
        return self.uri(name)

    def _link_new(self, tmp: str, target: Path, name: str) -> None:
        """Publish ``tmp`` as ``target`` only if ``target`` does not exist (a hard link cannot replace)."""
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise ObjectExists(f"{self.uri(name)} already exists") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # A file system without hard links: check, then rename (a concurrent writer could slip between).
            if target.exists():
                raise ObjectExists(f"{self.uri(name)} already exists") from None
            os.replace(tmp, target)

    # -- reading -------------------------------------------------------------------------------------

    def get(self, name: str) -> bytes:
        path = Path(self.location.key(name))
        with self._errors("read", name):
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                raise ObjectNotFound(f"there is no object {self.uri(name)}") from None

    def exists(self, name: str) -> bool:
        with self._errors("look up", name):
            return Path(self.location.key(name)).is_file()

    def describe(self, prefix: str = "") -> Iterator[ObjectInfo]:
        from datetime import datetime, timezone

        for name in self.list(prefix):
            with self._errors("look up", name):
                stat = Path(self.location.key(name)).stat()
            yield ObjectInfo(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    def delete(self, name: str) -> bool:
        path = Path(self.location.key(name))
        with self._errors("delete", name):
            if not self.root.is_dir():
                raise ObjectStoreRefused(f"cannot delete {self.uri(name)}: the folder {self.root} does not exist")
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            _fsync_folder(path.parent)
            return True

    def download_to(self, name: str, out: BinaryIO) -> int:
        path = Path(self.location.key(name))
        with self._errors("read", name):
            return _copy_out(path, out, self.uri(name))

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        names = []
        with self._errors("list", prefix):
            if not start.is_dir():
                return []
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for filename in filenames:
                    if filename.startswith("."):
                        continue  # partial writes and anything else that is not an object
                    name = filename if rel == "." else f"{rel}/{filename}"
                    if name.startswith(prefix):
                        names.append(name)
        return sorted(names)

    # -- errors --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str, name: str) -> Iterator[None]:
        """OSError becomes the store's errors, in one sentence (the store's own errors pass through)."""
        try:
            yield
        except ObjectStoreError:
            raise
        except OSError as exc:
            target = self.uri(name) if name and not name.endswith("/") else str(self.location)
            reason = exc.strerror or type(exc).__name__
            if exc.errno in _REFUSED_ERRNOS:
                raise ObjectStoreRefused(f"cannot {action} {target}: {reason}") from exc
            raise ObjectStoreUnavailable(f"could not {action} {target}: {reason}") from exc


# What an operator must fix (permissions, a full or read-only disk, a file where a folder should be).
_REFUSED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                   errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST}


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable; some platforms cannot open a folder, which is fine to skip."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: str) -> tuple[str, int]:
    """A local file's SHA-256 (hex) and size in bytes, read a megabyte at a time: what an upload is checked by."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# -- files named by the data map's rows ------------------------------------------------------------------------

def name_forms(name: str) -> tuple[str, ...]:
    """``name`` first, then the same name in each Unicode normalisation form (NFC, NFD) that spells it otherwise:
    object names are compared byte for byte, so a row naming ``Zoe`` + a combining diaeresis (NFD, as macOS writes
    names) does not find the object stored as ``Zoë`` (NFC), nor the reverse. What looks a name up once the one named
    is a 404 (the erasure, the export) tries these in turn; a form over 1,024 bytes names no object."""
    import unicodedata

    forms = [name]
    for form in ("NFC", "NFD"):
        other = unicodedata.normalize(form, name)
        if other not in forms and len(other.encode("utf-8")) <= _MAX_NAME_BYTES:
            forms.append(other)
    return tuple(forms)


def same_file(uri: str) -> str:
    """A location as it names its file: without the white space around it, its scheme in lower case, so that two
    spellings of one location are one file (what :meth:`FileRef.parse` reads; the erasure compares by it)."""
    text = uri.strip()
    return "gs://" + text[5:] if text[:5].lower() == "gs://" else text


@dataclass(frozen=True)
class FileRef:
    """A file a row names (``gs://bucket/key``): the data map's file columns hold such locations."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.key}"

    @classmethod
    def parse(cls, text: str) -> "FileRef | None":
        """The file a location names, or None when it is not ``gs://<valid bucket>/<object name>``; white space
        around it is a row's, not the name's (as around an address), and the scheme is read in any case."""
        if not isinstance(text, str):
            return None
        text = same_file(text)
        if not text.startswith("gs://"):
            return None
        bucket, _, key = text[len("gs://"):].partition("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket or not key or len(key.encode("utf-8")) > _MAX_NAME_BYTES:
            return None
        if any(ord(ch) < 32 or ch == "\x7f" for ch in key):
            return None
        return cls(bucket, key)


class Buckets(ABC):
    """Buckets of files by name: ``bucket(name)`` is the object store at that bucket's root, whose objects are the
    keys of :class:`FileRef`. Implementations: :class:`FolderBuckets` here, ``seam.storage.GCSBuckets`` (the
    Google provider's client) for GCS."""

    @abstractmethod
    def bucket(self, name: str) -> ObjectStore:
        ...


class FolderBuckets(Buckets):
    """Buckets as folders under one root (``<root>/<bucket>/<key>``): a machine without GCS, and tests."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def bucket(self, name: str) -> ObjectStore:
        return _RawKeys(FileObjectStore(Location("file", str(self.root / name))))


class _RawKeys(ObjectStore):
    """A folder store that takes an object key a bucket may hold as a name: empty and ``.`` segments are read as a
    file system reads them (``users//a`` and ``users/./a`` are ``users/a``). A key with a ``..`` segment is refused:
    the bucket holds it as an object of its own, a folder would read it as another path (``users/5/../6/x`` is not
    ``users/6/x``), and deleting that other file would erase what nobody asked to."""

    def __init__(self, inner: FileObjectStore):
        self.inner = inner
        self.location = inner.location

    def _path(self, key: str) -> Path:
        segments = key.split("/")
        if ".." in segments:
            raise ObjectStoreRefused(f"{self.uri(key)} has a '..' in its object name, which a folder cannot hold as "
                                     "one file: nothing was read, written or deleted (a person must see to it)")
        return self.inner.root.joinpath(*[p for p in segments if p not in ("", ".")])

    def put(self, name, data, content_type="application/octet-stream", *, overwrite=True):
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(data))
        return self.uri(name)

    def put_file(self, name, path, content_type="application/octet-stream", *, overwrite=True):
        with open(path, "rb") as fh:
            return self.put(name, fh.read(), content_type)

    def get(self, name):
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"there is no object {self.uri(name)}") from None

    def list(self, prefix=""):
        root = self.inner.root
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.is_file() and p.relative_to(root).as_posix().startswith(prefix))

    def exists(self, name):
        return self._path(name).is_file()

    def describe(self, prefix=""):
        from datetime import datetime, timezone

        for name in self.list(prefix):
            stat = self._path(name).stat()
            yield ObjectInfo(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    def delete(self, name):
        if not self.inner.root.is_dir():
            raise ObjectStoreRefused(f"bucket folder {self.inner.root} does not exist")
        try:
            self._path(name).unlink()
            return True
        except FileNotFoundError:
            return False

    def download_to(self, name, out):
        return _copy_out(self._path(name), out, self.uri(name))

    def uri(self, name):
        return f"a file under {self.location}"


def _copy_out(path: Path, out: BinaryIO, uri: str) -> int:
    """A folder's object into ``out`` a MiB at a time (never whole in memory): its size."""
    try:
        source = path.open("rb")
    except (FileNotFoundError, IsADirectoryError):
        raise ObjectNotFound(f"there is no object {uri}") from None
    size = 0
    with source:
        while block := source.read(1 << 20):
            out.write(block)
            size += len(block)
    return size
