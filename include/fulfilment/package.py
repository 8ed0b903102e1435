"""The export package of an access, portability or know request: every mapped category's rows of one subject,
the vendors its data was shared with (a CCPA know: the 12 months before the request; a GDPR request: every one,
:func:`include.fulfilment.right_to_know.answer_period`), and a README in plain words, in one zip file.

Layout (fixed entry order; ``<table>`` is the table's name, ``<schema>.<table>`` outside ``public``)::

    <category>.json            per category (contact, account, content, usage, network, social, support):
                               {"category", "description", "tables": [{"table", "columns", "rows": [{...}]}]}
    <category>/<table>.csv     the same rows as CSV with a header (machine-readable, for portability)
    shared_with.json           categories and vendors the data was shared with (CCPA "know", GDPR Art. 15(1)(c))
    shared_with.csv
    files/<n>-<name>           each file the subject's rows name (uploads, ticket attachments), as stored
    README.txt                 what the package holds, in plain words
    package.json               the request, the day the data was taken, rows per category and table, the files

The README and ``package.json`` come last because they say what the files came to (each one's size and
SHA-256, which are missing), known once the files are written: so the package is written in one pass.

Every store: the data map's entries on other connections (the support desk, analytics) are read from
their own databases (one transaction per store: no snapshot spans stores), a join path's rows (a ticket's
events) through the rows they hang from. ``package.json`` lists every file a row names under ``stored_files``:
its location, the table naming it, its entry in the package, its size and SHA-256 — or ``missing`` (the object
is gone; not a failure) or ``not_allowed`` (a bucket the settings do not allow). Each file is streamed from its
bucket straight into its entry, stored as is (mostly compressed already: deflating gigabytes would make the
export as slow as the compressor), hashed on the way: never whole in memory, never copied to disk first. The
package's own SHA-256 is taken while it is written, entry by entry behind the writer (:class:`_PackageFile`),
not by a pass over the finished file.

Whose rows: a table's rows are the subject's when one of its data-map links matches: the account key, or
the account's address compared trimmed and lower-cased (``subject.also``, ``match: email``) — the same
predicate the erasure engine erases by (:class:`include.erasure.scope.Target`). While another account has
the same address, rows tied to the subject by address alone are left out (they may be that person's), and
the README says so.

Streamed: each table's rows travel from PostgreSQL straight into the zip entry being written to a file on
disk — the CSV by ``COPY ... TO STDOUT``, one row at a time; the JSON through a server-side cursor, a
thousand rows at a time — so a subject with millions of rows needs no more memory than one with ten.
Values are rendered by PostgreSQL (``to_json`` and CSV text, time stamps in UTC, dates ISO, every store's text in
UTF-8 whatever its database's encoding: a ``SQL_ASCII`` store's as :class:`_LegacyText` reads it), so a value
Python cannot hold (``infinity``, a BC date) is exported as the database holds it.

Deterministic: the same rows on the same day give the same bytes — entries in a fixed order, rows ordered by
their text (``collate "C"``), fixed entry time stamps (1980-01-01), fixed attributes and deflate level, JSON
with sorted keys, no generation time anywhere. (Another zlib may compress differently; the SHA-256 recorded
is of the bytes uploaded.)

Nothing here logs: a package's content is a subject's personal data.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import textwrap
import threading
import unicodedata
import zipfile
from dataclasses import dataclass, replace
from datetime import date, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

from psycopg import pq, sql
from psycopg.adapt import Loader

from include.datamap import OPS_CONNECTION, DataMap, PersonalDataEntry
from include.erasure.scope import Target, address_key, file_locations, shared_locations, store_targets
from include.objectstore import Buckets, FileRef, ObjectNotFound, ObjectStoreUnavailable, name_forms, same_file
from include.store_text import SQL_ASCII, legacy_stream, legacy_text, server_encoding, store_params
from include.fulfilment.right_to_know import SharedWith

FORMAT = "privacy-ops export package v1"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
DEFLATE_LEVEL = 6
CONTENT_TYPE = "application/zip"
# A subject's files are stored as they are, not deflated: mostly compressed already (photos, scans, PDFs), and
# deflate runs on one core far below a download's speed (docs/benchmarks.md: the export with its files deflated).
FILES_STORED = True

# The policy's order and words: what the company says it collects (contact details, account data, uploaded
# and imported content, usage data, log data, social-media profiles, support correspondence).
CATEGORY_ORDER = ("contact", "account", "content", "usage", "network", "social", "support")
DESCRIPTIONS = {
    "contact": "contact details: name, company, address, email, phone",
    "account": "your account: country, region, dates, consent and restriction flags, sharing records, legal holds",
    "content": "content you uploaded or imported (for example from Google Drive): file names, sources, sizes",
    "usage": "usage data: API calls, features used, time spent",
    "network": "log data: IP address, browser, internet provider, referrer, times",
    "social": "social-media profiles linked to your account",
    "support": "your support correspondence",
}


EXPORTS_PREFIX = "exports/"
_OBJECT_NAME = re.compile(r"exports/request=([1-9][0-9]{0,18})/package\.zip")


def object_name(request_id: int) -> str:
    """Where a request's package goes, under the evidence location: one deterministic path per request."""
    return f"{EXPORTS_PREFIX}request={int(request_id)}/package.zip"


def request_of(name: str) -> int | None:
    """The request id of a package's object name (:func:`object_name`), else None."""
    match = _OBJECT_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Subject:
    """Whose rows: the account id, and its address as compared (None when another account shares it)."""

    user_id: int
    address: str | None
    shared_address: bool = False


def subject(ops, dm: DataMap, user_id: int) -> Subject | None:
    """The subject of an account, or None when the account does not exist."""
    accounts = dm.record("accounts")
    mine, other = (address_key(sql.Identifier(alias, accounts.physical("email"))) for alias in ("a", "o"))
    query = sql.SQL("select {mine}, exists (select from {t} o where {other} = {mine} and o.{id} <> a.{id}) "
                    "from {t} a where a.{id} = %s").format(mine=mine, other=other, t=accounts.ident,
                                                            id=accounts.col("id"))
    row = ops.execute(query, (user_id,)).fetchone()
    if row is None:
        return None
    address, shared = row
    return Subject(user_id, None if shared or not address else address, bool(shared and address))


@dataclass(frozen=True)
class Part:
    """One (category, table) of the package."""

    category: str
    entry: PersonalDataEntry
    columns: tuple[str, ...]
    parent: PersonalDataEntry | None = None   # the entry a join path goes through

    @property
    def label(self) -> str:
        return self.entry.table_label

    @property
    def csv_name(self) -> str:
        table = self.entry.table if self.entry.schema == "public" else f"{self.entry.schema}.{self.entry.table}"
        store = "" if self.entry.connection == OPS_CONNECTION else f"{self.entry.connection}."
        return f"{self.category}/{store}{table}.csv"


@dataclass(frozen=True)
class Sources:
    """Where a package's rows and files are read: the operational database, ``connect(conn_id)`` for the other
    stores the data map names, and the files' buckets (with the ones that may be read)."""

    ops: Any
    connect: Callable[[str], Any] | None = None
    buckets: Buckets | None = None
    allowed: frozenset[str] | None = None   # None: every bucket the data map lists

    def conn(self, entry: PersonalDataEntry):
        if entry.connection == OPS_CONNECTION:
            return self.ops
        if self.connect is None:
            from include.erasure.stores import StoresNotReachable

            raise StoresNotReachable(f"the data map places personal data on connection '{entry.connection}' but this "
                                     "export was given no access to it: no package was written")
        return self.connect(entry.connection)


@dataclass(frozen=True)
class StoredFile:
    """A file a row of the subject names, as the package holds it."""

    location: str
    table: str
    entry: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    status: str = "included"     # included, missing, not_allowed, shared (another account's row names it too)

    def as_dict(self) -> dict:
        return {"location": self.location, "table": self.table, "entry": self.entry, "bytes": self.bytes,
                "sha256": self.sha256, "status": self.status}


def parts(dm: DataMap) -> list[Part]:
    """Every (category, table) the data map names, in every store, in the package's order: the policy's
    categories, then the map's; within one, the map's order."""
    parents = {id(t.entry): t.parent for targets in store_targets(dm).values() for t in targets}
    return [Part(c, e, tuple(e.categories[c]), parents.get(id(e))) for c in _categories(dm) for e in dm.all_entries
            if c in e.categories]


def _categories(dm: DataMap) -> list[str]:
    present = {c for e in dm.all_entries for c in e.categories}
    return [c for c in CATEGORY_ORDER if c in present] + sorted(present - set(CATEGORY_ORDER))


@dataclass
class Package:
    """A written package: its path, SHA-256, size, and rows per category and table."""

    path: str
    sha256: str
    bytes: int
    rows: dict[str, dict[str, int]]
    files: tuple[str, ...]
    vendors: int
    shared_categories: tuple[str, ...]
    stored_files: tuple[StoredFile, ...] = ()

    @property
    def total_rows(self) -> int:
        return sum(n for tables in self.rows.values() for n in tables.values())


@dataclass(frozen=True)
class About:
    """What the package says about its request (no personal data: ids, type, regime, the day)."""

    request_id: int
    request_type: str
    regime: str
    as_of: date
    policy: tuple[str, str] | None = None   # the privacy policy's version and web address (the README points to it)
    # The tables of a SQL_ASCII store whose text held bytes no UTF-8 text holds, read as Latin-1 (set by build).
    text_read_as_latin1: tuple[str, ...] = ()


def build(src, dm: DataMap, about: About, who: Subject, shared: SharedWith, path: str) -> Package:
    """Write the package of ``who`` to ``path`` (see the module doc) in one pass: rows, then each file streamed from
    its bucket into its entry, then the README and ``package.json``, which say what the files came to. ``src``:
    :class:`Sources` (or the operational database alone, for a data map naming nothing else); each store is read
    in one transaction of its own (one snapshot for its counts and rows; the settings made here end with it)."""
    src = src if isinstance(src, Sources) else Sources(src)
    params = {"user_id": who.user_id, "email": who.address}
    all_parts = parts(dm)
    conns = {p.entry.connection: src.conn(p.entry) for p in all_parts}
    legacy = _LegacyText(c for c, conn in conns.items() if server_encoding(conn) == SQL_ASCII)
    with contextlib.ExitStack() as stack:
        for conn in {id(c): c for c in conns.values()}.values():
            fresh = conn.info.transaction_status == pq.TransactionStatus.IDLE  # not the caller's (a savepoint of it)
            stack.enter_context(conn.transaction())
            if fresh:  # one snapshot for the store's counts and rows (the default takes one per statement)
                conn.execute("set transaction isolation level repeatable read, read only")
            conn.execute("set local timezone = 'UTC'")
            # COPY writes it: every store's CSV in UTF-8. A SQL_ASCII store refuses to send a value that is not UTF-8
            # then: its text comes as stored, and is read here (_LegacyText).
            conn.execute("set local client_encoding = 'SQL_ASCII'" if server_encoding(conn) == SQL_ASCII
                         else "set local client_encoding = 'UTF8'")
            conn.execute("set local datestyle = 'ISO, YMD'")
            conn.execute("set local intervalstyle = 'iso_8601'")
            conn.execute("set local extra_float_digits = 1")
        counts = _counts(src, all_parts, params)
        rows: dict[str, dict[str, int]] = {}
        for part in all_parts:
            rows.setdefault(part.category, {})[part.label] = counts[part.label]
        found = _named_files(src, dm, params)
        out = stack.enter_context(_PackageFile(path))
        files: list[str] = []

        def add(name: str, chunks: Iterable[bytes]) -> None:
            _write(zf, name, chunks)
            files.append(name)
            out.settled()

        with zipfile.ZipFile(out.fh, "w", allowZip64=True) as zf:
            for category in rows:
                mine = [p for p in all_parts if p.category == category]
                add(f"{category}.json", _category_json(src, category, mine, params, legacy))
                for part in mine:
                    add(part.csv_name, legacy.csv(part, _copy(src.conn(part.entry), _csv_statement(part), params)))
            add("shared_with.json", [_json(shared_document(shared))])
            add("shared_with.csv", [shared_csv(shared)])
            stored = _add_files(zf, src, found, _allowed(src, dm), out)
            files += [f.entry for f in stored if f.entry]
            about = replace(about, text_read_as_latin1=tuple(sorted(legacy.tables)))
            add("README.txt", [readme(about, who, rows, shared, stored).encode()])
            add("package.json", [_json(manifest(about, who, rows, shared, [*files, "package.json"], stored))])
        digest, size = out.finish()
    return Package(path, digest, size, rows, tuple(files), len(shared.vendors), shared.categories, tuple(stored))


# -- the files ----------------------------------------------------------------------------------------------

def _named_files(src: Sources, dm: DataMap, params: dict) -> list[tuple[str, str, bool]]:
    """(location, table, named by another account's row too) of every file the subject's rows name, in the data map's order of file columns, each
    column's locations in their order; refused before anything is written when a file must be read and this
    export was given no object storage."""
    # A file two of the subject's rows name (in any spelling of its location) is packed once, under the first table.
    first: dict[str, tuple[str, str]] = {}
    for target, _, uri in file_locations(dm, src.conn, params):
        first.setdefault(same_file(uri), (uri, target.label))
    found = list(first.values())
    # A file another account's row names too may be another person's: listed, never read into the package.
    shared = shared_locations(dm, src.conn, params, [uri for uri, _ in found])
    found = [(uri, table, uri in shared) for uri, table in found]
    allowed = _allowed(src, dm)
    if src.buckets is None and any(_readable(uri, allowed) for uri, _, mixed in found if not mixed):
        from include.erasure.stores import StoresNotReachable

        raise StoresNotReachable("the subject's rows name files in object storage but this export was given no "
                                 "object storage: no package was written")
    return found


def _allowed(src: Sources, dm: DataMap) -> frozenset[str]:
    return src.allowed if src.allowed is not None else frozenset(dm.buckets)


def _readable(uri: str, allowed: frozenset[str]) -> FileRef | None:
    ref = FileRef.parse(uri)
    return ref if ref is not None and ref.bucket in allowed else None


def _add_files(zf: zipfile.ZipFile, src: Sources, found: Sequence[tuple[str, str, bool]], allowed: frozenset[str],
               out: "_PackageFile") -> list[StoredFile]:
    """Each file streamed from its bucket straight into its entry (stored as is), its SHA-256 and size taken on
    the way: never whole in memory, never copied to disk first. A missing object is listed ``missing`` and
    gets no entry (its entry is opened at the object's first byte); one in a bucket not allowed is listed
    ``not_allowed`` and not read."""
    stored = []
    for n, (uri, table, shared) in enumerate(found, 1):
        if shared:  # another account's row names it too: it may be another person's, never read into the package
            stored.append(StoredFile(uri, table, status="shared"))
            continue
        ref = _readable(uri, allowed)
        if ref is None:
            stored.append(StoredFile(uri, table, status="not_allowed"))
            continue
        entry = _FileEntry(zf, f"files/{n:05d}-{_entry_name(ref.key)}")
        try:
            found = _download_any_form(src.buckets.bucket(ref.bucket), ref.key, entry)
        except ObjectNotFound:
            entry.close()
            raise ObjectStoreUnavailable("a file the subject's rows name went missing or was replaced while it was "
                                         "read into the package: no package was written (a retry reads the new "
                                         "version, or lists it as missing)") from None
        except BaseException:
            entry.close()  # the zip cannot be closed around an open entry; the package is not used
            raise
        if not found:
            stored.append(StoredFile(uri, table, status="missing"))
            continue
        entry.close()
        out.settled()
        stored.append(StoredFile(uri, table, entry=entry.name, bytes=entry.size, sha256=entry.digest.hexdigest()))
    return stored


def _download_any_form(bucket, key: str, entry: "_FileEntry") -> bool:
    """Stream the object into ``entry`` under the name its row gives or, when that is a 404, under the same name in
    the other Unicode normalisation form (:func:`include.objectstore.name_forms`); False when there is none.
    :class:`ObjectNotFound` once bytes were written: the object went missing (or was replaced) while it was read."""
    for form in name_forms(key):
        try:
            bucket.download_to(form, entry)
            return True
        except ObjectNotFound:
            if entry.started:
                raise
    return False


class _FileEntry:
    """A file's zip entry, written as the store downloads into it: opened at the first byte (a missing object leaves
    no entry behind), with the SHA-256 and size of what passed through."""

    def __init__(self, zf: zipfile.ZipFile, name: str):
        self.zf = zf
        self.name = name
        self.digest = hashlib.sha256()
        self.size = 0
        self._out = None

    @property
    def started(self) -> bool:
        return self._out is not None

    def _open(self):
        if self._out is None:
            self._out = self.zf.open(_entry(self.name, stored=FILES_STORED), "w", force_zip64=True)
        return self._out

    def write(self, data) -> int:
        self._open().write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        self._open().close()  # an empty file still gets its (empty) entry


def _entry_name(key: str) -> str:
    """The name a stored file takes inside the zip: its own name's letters and digits in any script (composed, NFC),
    dots and dashes; anything else (spaces, controls, direction marks) one underscore; at most 100 characters."""
    base = unicodedata.normalize("NFC", key.rsplit("/", 1)[-1])
    return re.sub(r"[^\w.-]+", "_", base).strip("._")[:100] or "file"


# -- the zip ------------------------------------------------------------------------------------------------

def _entry(name: str, stored: bool = False) -> zipfile.ZipInfo:
    """A zip entry: deflated, or ``stored`` as is (a subject's files: mostly compressed already, and deflating
    gigabytes would make the export as slow as the compressor)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info._compresslevel = DEFLATE_LEVEL  # noqa: SLF001 - how ZipFile.open(info, "w") takes a level (3.7+)
    info.create_system = 3  # Unix, whatever the platform that writes it
    info.external_attr = 0o644 << 16
    return info


WRITE_BLOCK = 256 * 1024


def _write(zf: zipfile.ZipFile, name: str, chunks: Iterable[bytes], stored: bool = False) -> None:
    """One entry, streamed in blocks of at most about :data:`WRITE_BLOCK` bytes (``force_zip64``: its size is
    not known before it is written)."""
    with zf.open(_entry(name, stored), "w", force_zip64=True) as out:
        block = bytearray()
        for chunk in chunks:
            block += chunk
            if len(block) >= WRITE_BLOCK:
                out.write(block)
                block.clear()
        if block:
            out.write(block)


HASH_BLOCK = 1 << 20


class _PackageFile:
    """The package being written (``fh``, what the zip writes to), and its SHA-256 taken behind the writer.

    The zip writes each entry's local header, then its data, then goes back to complete that header (CRC-32 and
    sizes are known only at the end); nothing before the entry being written changes again. So after each entry
    (:meth:`settled`) the bytes so far are final, and a thread hashes them while the next entry is written: from
    the page cache, on another core where there is one (``hashlib`` releases the GIL). The headers stay complete
    (no data descriptors: an entry stored as is with a data descriptor is one the zip readers that go by local
    headers, macOS's Archive Utility among them, cannot open).
    """

    def __init__(self, path: str):
        self.fh = open(path, "wb")
        self._reader = open(path, "rb", buffering=0)
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._final = 0
        self._done = False
        self._failed: BaseException | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._hash, name="package-sha256", daemon=True)
        self._thread.start()

    def settled(self) -> None:
        """Everything written so far is final: hash it."""
        self.fh.flush()
        with self._ready:
            self._final = self.fh.tell()
            self._ready.notify()

    def finish(self) -> tuple[str, int]:
        """The whole package written (the zip closed): its SHA-256 (hex) and size."""
        self.settled()
        self._stop()
        if self._failed is not None:
            raise self._failed
        if self._hashed != self._final:
            raise RuntimeError(f"the package's hash covered {self._hashed} of its {self._final} bytes")
        return self._digest.hexdigest(), self._hashed

    def _hash(self) -> None:
        block = bytearray(HASH_BLOCK)
        view = memoryview(block)
        try:
            while True:
                with self._ready:
                    while self._hashed >= self._final and not self._done:
                        self._ready.wait()
                    final, done = self._final, self._done
                while self._hashed < final:
                    n = self._reader.readinto(view[:min(HASH_BLOCK, final - self._hashed)])
                    if not n:
                        raise RuntimeError("the package ended before the bytes written to it")
                    self._digest.update(view[:n])
                    self._hashed += n
                if done and self._hashed >= final:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread by finish()
            self._failed = exc

    def _stop(self) -> None:
        with self._ready:
            self._done = True
            self._ready.notify()
        self._thread.join()

    def __enter__(self) -> "_PackageFile":
        return self

    def __exit__(self, *exc) -> None:
        self._stop()
        self._reader.close()
        self.fh.close()


def _json(document) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


# -- the rows -----------------------------------------------------------------------------------------------

def _where(part: "Part", alias: str = "x") -> sql.Composable:
    """The subject's rows of the part's table: the erasure's predicate (a join path through its parent's rows)."""
    return Target(part.entry, parent=part.parent).where(alias)


def _counts(src: Sources, all_parts: Sequence[Part], params: dict) -> dict[str, int]:
    """Rows of the subject per table, one statement per store (the same predicate the rows are read with)."""
    by_store: dict[str, dict] = {}
    for p in all_parts:
        by_store.setdefault(p.entry.connection, {})[p.label] = p
    found = {}
    for store, entries in by_store.items():
        items = list(entries.items())
        query = sql.SQL("select {}").format(sql.SQL(", ").join(
            sql.SQL("(select count(*) from {t} x where {w})").format(t=p.entry.ident, w=_where(p)) for _, p in items))
        conn = src.conn(items[0][1].entry)
        row = conn.execute(query, store_params(conn, params)).fetchone()
        found.update({label: n for (label, _), n in zip(items, row)})
    return found


def _rows(part: Part) -> sql.Composable:
    """The part's columns of the subject's rows, in a fixed order (by their text, byte-wise)."""
    cols = sql.SQL(", ").join(sql.Identifier("x", c) for c in part.columns)
    return sql.SQL("select {cols} from {t} x where {w} order by (row({cols})::text) collate \"C\"").format(
        cols=cols, t=part.entry.ident, w=_where(part))


def _csv_statement(part: Part) -> sql.Composable:
    return sql.SQL("copy ({}) to stdout (format csv, header true)").format(_rows(part))


JSON_BATCH_ROWS = 1000
# A batch also ends once its rows' JSON passes this many bytes: PostgreSQL holds a text value of 1 GB at most, so a
# thousand rows of a megabyte each would not fit in one (the export failed, recorded as a refused read).
JSON_BATCH_BYTES = 4 * 1024 * 1024
_JSON_SEPARATOR = ",\n        "


def _json_batches(part: Part) -> sql.Composable:
    """The part's rows as JSON objects (``to_json``), in the same order as its CSV, joined server-side into
    batches of :data:`JSON_BATCH_ROWS` rows, and of about :data:`JSON_BATCH_BYTES` bytes at most (one value per
    batch: the rows cross to Python a thousand at a time, or fewer when they are large). A batch is the rows whose
    JSON starts within the same span of :data:`JSON_BATCH_BYTES` bytes of the part's JSON (and within the same
    thousand rows): a batch is less than the budget plus its last row, whatever the rows' size, and the batches
    joined give the same bytes as one."""
    cols = sql.SQL(", ").join(sql.Identifier("x", c) for c in part.columns)
    rcols = sql.SQL(", ").join(sql.Identifier("r", c) for c in part.columns)
    return sql.SQL("""select string_agg(j, {sep} order by n) from (
                          select j, n, n / {batch} as by_rows,
                                 (sum(octet_length(j) + {sep_bytes}) over (order by n)
                                  - octet_length(j) - {sep_bytes}) / {budget} as by_bytes
                          from (select to_json(r)::text as j,
                                       row_number() over (order by (row({rcols})::text) collate "C") - 1 as n
                                from (select {cols} from {t} x where {w}) r) o) s
                      group by by_rows, by_bytes order by by_rows, by_bytes""").format(
        sep=sql.Literal(_JSON_SEPARATOR), sep_bytes=sql.Literal(len(_JSON_SEPARATOR.encode())), rcols=rcols,
        cols=cols, t=part.entry.ident, w=_where(part), batch=sql.Literal(JSON_BATCH_ROWS),
        budget=sql.Literal(int(JSON_BATCH_BYTES)))


def _copy(ops, statement: sql.Composable, params: dict) -> Iterator[bytes]:
    with ops.cursor() as cur, cur.copy(statement, store_params(ops, params)) as copy:
        for chunk in copy:
            yield bytes(chunk)


def _category_json(src: Sources, category: str, mine: Sequence[Part], params: dict,
                   legacy: "_LegacyText | None" = None) -> Iterator[bytes]:
    """``<category>.json``, streamed a batch of rows at a time through a server-side cursor (a few batches in
    memory at once, whatever the subject's size); ``to_json`` escapes every control character itself. ``legacy``:
    the stores in ``SQL_ASCII`` (none when not given)."""
    legacy = legacy or _LegacyText(())
    yield (b'{\n  "category": ' + json.dumps(category).encode() + b',\n  "description": '
           + json.dumps(DESCRIPTIONS.get(category, category)).encode() + b',\n  "tables": [')
    for i, part in enumerate(mine):
        yield ((b"," if i else b"") + b'\n    {\n      "table": ' + json.dumps(part.label).encode()
               + b',\n      "columns": ' + json.dumps(list(part.columns)).encode() + b',\n      "rows": [')
        first = True
        with src.conn(part.entry).cursor(name=f"export_{category}_{i}") as cur:
            cur.itersize = 4
            legacy.as_stored(part, cur)
            cur.execute(_json_batches(part), store_params(cur.connection, params))
            for (batch,) in cur:
                yield (b"\n        " if first else b",\n        ") + legacy.json(part, batch)
                first = False
        yield b"]\n    }" if first else b"\n      ]\n    }"
    yield b"\n  ]\n}\n"


class _LegacyText:
    """The text of the package's stores in ``SQL_ASCII`` (bytes as their clients wrote them, no encoding checked):
    read as UTF-8, each byte no UTF-8 text holds as its Latin-1 character (:func:`include.store_text.legacy_text`:
    nothing is lost, and a Latin-1 ``é`` written by an older client reads as ``é``); ``tables`` collects the tables
    where that happened, which the package names. Every other store's text the server sends in UTF-8."""

    def __init__(self, stores: Iterable[str]):
        self.stores = frozenset(stores)
        self.tables: set[str] = set()

    def as_stored(self, part: Part, cur) -> None:
        """Make ``cur`` hand the part's text over as its bytes (in a SQL_ASCII store)."""
        if part.entry.connection in self.stores:
            cur.adapters.register_loader("text", _StoredBytes)

    def json(self, part: Part, batch) -> bytes:
        if isinstance(batch, str):
            return batch.encode()
        text, latin1 = legacy_text(batch)
        if latin1:
            self.tables.add(part.label)
        return text.encode()

    def csv(self, part: Part, chunks: Iterable[bytes]) -> Iterator[bytes]:
        if part.entry.connection not in self.stores:
            yield from chunks
            return
        found: list = []
        yield from legacy_stream(chunks, found)
        if found:
            self.tables.add(part.label)


class _StoredBytes(Loader):
    def load(self, data) -> bytes:
        return bytes(data)


# -- the documents ------------------------------------------------------------------------------------------

def manifest(about: About, who: Subject, rows: dict[str, dict[str, int]], shared: SharedWith,
             files: Sequence[str], stored: Sequence[StoredFile] = ()) -> dict:
    """``package.json``: what the package holds (no personal data beyond the request's own ids)."""
    return {
        "format": FORMAT,
        "request": {"id": about.request_id, "type": about.request_type, "regime": about.regime},
        "data_as_of": about.as_of.isoformat(),
        "categories": {c: {"description": DESCRIPTIONS.get(c, c), "rows": sum(t.values()), "tables": t}
                       for c, t in rows.items()},
        "rows_tied_by_address_left_out": who.shared_address,
        "shared_with": {"period_start": _start(shared), "period_end": shared.period.end.isoformat(),
                        "categories": list(shared.categories), "vendors": len(shared.vendors),
                        "undated_vendors": len(shared.undated)},
        "files": list(files),
        "stored_files": [f.as_dict() for f in stored],
        **({"text_read_as_latin1": list(about.text_read_as_latin1)} if about.text_read_as_latin1 else {}),
    }


def _vendor(v) -> dict:
    return {"vendor_id": v.vendor_id, "name": v.name, "kind": v.kind, "known": v.known,
            "categories": list(v.categories), "purposes": list(v.purposes), "shares": v.shares, "records": v.records,
            "first_shared": _utc(v.first_shared), "last_shared": _utc(v.last_shared)}


def _utc(at) -> str | None:
    """A time as the rows give theirs (in UTC, whatever the database's own zone)."""
    return at.astimezone(timezone.utc).isoformat() if at else None


def _start(shared: SharedWith) -> str | None:
    """The period's start; None for every share up to its end (an access request's answer)."""
    return None if shared.from_the_start else shared.period.start.isoformat()


def shared_document(shared: SharedWith) -> dict:
    return {"period_start": _start(shared), "period_end": shared.period.end.isoformat(),
            "categories": list(shared.categories), "vendors": [_vendor(v) for v in shared.vendors],
            "undated": [_vendor(v) for v in shared.undated]}


SHARED_COLUMNS = ("vendor_id", "name", "kind", "known", "categories", "purposes", "shares", "records", "first_shared",
                  "last_shared", "dated")


def shared_csv(shared: SharedWith) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SHARED_COLUMNS)
    for dated, vendors in ((True, shared.vendors), (False, shared.undated)):
        for v in vendors:
            d = _vendor(v)
            writer.writerow([d["vendor_id"], d["name"] or "", d["kind"] or "", str(d["known"]).lower(),
                             ";".join(d["categories"]), ";".join(d["purposes"]), d["shares"], d["records"],
                             d["first_shared"] or "", d["last_shared"] or "", str(dated).lower()])
    return out.getvalue().encode()


_KIND_WORDS = {"service_provider": "service provider", "channel_partner": "channel partner",
               "consultant": "consultant", "implementation_partner": "implementation partner",
               "law_enforcement": "law enforcement", "acquirer": "acquirer (merger or sale)"}


def readme(about: About, who: Subject, rows: dict[str, dict[str, int]], shared: SharedWith,
           stored: Sequence[StoredFile] = ()) -> str:
    """The README, in plain words (paragraphs wrapped at 100 characters)."""
    kind = {"access": "a copy of your personal data (GDPR Art. 15)",
            "portability": "your personal data in a machine-readable form you can take elsewhere (GDPR Art. 20)",
            "know": "the personal information we hold about you and whom we disclosed it to (CCPA)"
            }.get(about.request_type, "your personal data")
    since = ("" if shared.from_the_start else
             " from twelve months before we received your request")
    out = [f"Your data export - request {about.request_id}", "",
           _para(f"You asked for {kind}. This package holds every piece of personal data our systems link to your "
                 f"account, as it stood on {about.as_of.isoformat()}, and every company we shared it with{since} "
                 "up to that day."), "", "What is inside", "--------------", ""]
    for category, tables in rows.items():
        total = sum(tables.values())
        out.append(_item(f"{category}.json and the folder {category}/ - {DESCRIPTIONS.get(category, category)}: "
                         + (f"{total} record(s)." if total else "nothing held.")))
    start, end = shared.period.start.date().isoformat(), shared.period.end.date().isoformat()
    since = "" if shared.from_the_start else f" from {start}"
    out += [_item(f"shared_with.json and shared_with.csv - who received your data{since} up to (not "
                  f"including) {end}: " + (f"{len(shared.vendors)} company(ies); categories "
                                           f"{', '.join(shared.categories)}." if shared.vendors else "nobody.")),
            _item("package.json - the list of files and how many records each of our tables gave.")]
    included = [f for f in stored if f.entry]
    if stored:
        out.append(_item(f"files/ - the files you uploaded or sent us ({len(included)} of {len(stored)}); "
                         "package.json lists each with its size and SHA-256 checksum under stored_files."))
    out.append("")
    gone = [f for f in stored if not f.entry]
    if gone:
        out += [_para(f"{len(gone)} file(s) our records name could not be included: {sum(f.status == 'missing' for f in gone)} "
                      "no longer exist in our storage, and the others are kept where this export may not read them "
                      "or are named by another person's records too (stored_files in package.json says which). "
                      "Contact us if you need them."), ""]
    if shared.vendors:
        out += ["Shared with", "-----------", ""]
        for v in shared.vendors:
            name = v.name or f"a vendor no longer on our list (number {v.vendor_id})"
            out.append(_item(f"{name} ({_KIND_WORDS.get(v.kind or '', v.kind or 'unknown kind')}): "
                             f"{', '.join(v.categories)}; for {', '.join(v.purposes)}; {v.shares} time(s)"))
        out.append("")
    if shared.undated:
        out += [_para(f"{len(shared.undated)} more sharing record(s) have no usable date and are listed apart "
                      "(\"undated\" in shared_with.json)."), ""]
    out += ["How to read it", "--------------", "",
            _para("Each category is there twice: as JSON (one file per category, with the records of each of our "
                  "tables) and as CSV (one file per table, the first line naming the columns; an empty cell means "
                  "no value, \"\" an empty text). Every file but those under files/ is UTF-8 text. Times are in "
                  "UTC. Binary values are \\x followed by hexadecimal; lists are JSON arrays in the JSON files and "
                  "{a,b} in the CSV files; durations are ISO 8601 (P1DT2H); a date or time written infinity or "
                  "-infinity is one our records keep as no end or no beginning."), ""]
    if about.text_read_as_latin1:
        out += [_para(f"Some text in {len(about.text_read_as_latin1)} of our tables (text_read_as_latin1 in "
                      "package.json) was stored in an older encoding: where its bytes were not UTF-8, each was read "
                      "as the Latin-1 character it stands for (so a stored é reads é). Tell us if such a value "
                      "reads wrong."), ""]
    if who.shared_address:
        out += [_para("Another account uses the same email address as yours. Records linked to that address only "
                      "(and not to your account) are left out, because they may belong to the other person. Contact "
                      "us if you need them."), ""]
    policy = (f"our privacy policy (version {about.policy[0]}, {about.policy[1]})" if about.policy
              else "our privacy policy")
    out += ["What this package does not say", "------------------------------", "",
            _para("Our records do not hold, for each person, why we use each kind of data (beyond the purposes of each "
                  "sharing listed above), how long we keep each kind of data, where the data we did not collect "
                  "from you came from, or whether any decision about you is automated. Those are the same for "
                  f"everyone and set out in {policy}. Ask us, in reply to our answer, if you want them for your data "
                  "in particular."), ""]
    if about.regime == "ccpa":
        rights = ("you may also ask us to correct it, to delete it, or not to sell or share it, and you have the "
                  "right not to be discriminated against for using any of these rights.")
    else:
        rights = ("you may also ask us to correct it (rectification), to restrict or object to its use, or to erase "
                  "it. You also have the right to complain to a data protection supervisory authority, in particular "
                  "in the country where you live or work or where you think your rights were infringed.")
    out += [_para("If anything is missing or wrong, reply to our answer to this request: " + rights), ""]
    return "\n".join(out)


def _para(text: str) -> str:
    return textwrap.fill(text, 100)


def _item(text: str) -> str:
    return textwrap.fill(text, 100, initial_indent="* ", subsequent_indent="  ")
