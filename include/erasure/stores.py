"""Erasing a subject beyond the operational database: the other stores' rows, then the files the rows name.

A subject's data is never in one database only. The data map places entries on other connections
(the support desk's ``support_db``, analytics' ``analytics_db``) and names columns holding file locations
(``uploads.storage_uri``, ``tickets.attachment_uri``). :func:`erase_elsewhere` is the part of
:func:`include.erasure.engine.erase_subject` that reaches them, called while the engine holds the subject's
account row (its claim) and before it erases the operational rows and the account, in this order:

1. **The files are found first**: every file column of every store is read for the subject's rows, and each
   location (plus the subject's earlier export packages) is recorded in ``compliance.erasure_files`` before any
   row naming it is erased, so a retry still knows them once the rows are gone. An export package still within
   ``export_retention_days`` is the answer to the subject's access request, not yet handed over: it is recorded
   ``kept_for_delivery`` with why and until when (:func:`keep_packages`), never deleted by the erasure; the
   fulfilment's expiry deletes it then. Older ones are deleted with the subject's files. A file in a bucket the
   settings do not allow (or not at a ``gs://`` location) is recorded ``not_allowed`` here (:func:`hold_back`), and
   then nothing of the subject is erased: every store's rows stay, the rows naming such a file among them.
2. **Each other store, one transaction each**: its rows erased by their entry's rule, as on the operational
   database (deleted, or kept with the listed columns nulled or keyed-hashed; a join path's rows before the rows
   they hang from), its residual counted in the same transaction (anything left rolls that store back and stops the
   subject), then recorded in ``compliance.erasure_store_progress`` (just before its commit with the store's
   transaction id, and the retry of a worker lost between the two counts those rows only if that store says it
   committed: :func:`settle`). No transaction spans stores: a worker
   killed between two stores, or a store lost mid-way, leaves each store either erased or untouched, and the
   retry (which finds the account still there: its transaction rolled back) goes over every store again —
   an erased store erases nothing more.
3. **The files**, one by one: every version of each (live and noncurrent: a bucket with Object Versioning keeps a
   version that a delete without a generation only made noncurrent) is listed and deleted by its generation, and
   the file is done when a listing after it finds no version left (``deleted``), or found none to begin with
   (``already_gone``) under its name in either Unicode normalisation form (a row may name in NFD a file the bucket
   holds in NFC). The bucket's soft delete keeps deleted versions recoverable by the bucket's owner until its
   retention ends, and no client can delete them sooner: the file's record says until when
   (``recoverable_until``). A missing bucket or a refusal (a retention policy or a hold: 403; a name written again
   round after round) stops the subject: the calling step records it ``incomplete`` with
   :func:`refused_reason` and goes on with the others; the run fails at its end, once they are verified
   (:func:`include.erasure.run.fail_if_refused`, :class:`SubjectsRefused`); any other error
   stops the step.

The engine then erases the operational rows and the account in its own transaction, only if no file was
``not_allowed``: otherwise the subject is ``incomplete`` (its account and every store's rows stay, so the next run finishes once a
person has allowed the file's bucket — a file in a bucket the settings do not allow is never looked at, so one
deleted by hand is only known gone once its bucket is allowed — or has corrected or cleared the row's location).
A location recorded before that the subject's rows no longer name, and that the erasure may not touch, is
recorded ``unnamed`` (a person mended the row) and holds nothing back.

Locations are recorded in the compliance store (evidence for a person), never logged: a file's name can be
personal data.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, NamedTuple

from psycopg import sql
from psycopg.types.json import Jsonb

from include.datamap import OPS_CONNECTION, DataMap
from include.erasure.scope import Target, file_locations, shared_locations, store_targets
from include.errors import NeedsOperator, database_said, over_limit
from include.objectstore import Buckets, Erased, FileRef, ObjectStore, ObjectStoreRefused, name_forms
from include.store_text import read_as_str, store_params

log = logging.getLogger(__name__)

FOUND, DELETED, ALREADY_GONE, NOT_ALLOWED = "found", "deleted", "already_gone", "not_allowed"
# An export package still within export_retention_days: the answer to the subject's access request, kept (never
# deleted by the erasure) until then, when the fulfilment's expiry deletes it (compliance migration 0029).
KEPT_FOR_DELIVERY = "kept_for_delivery"
UNNAMED = "unnamed"  # recorded once, then no longer named by the subject's rows, and not one the erasure may touch
SHARED = "shared"  # another account's row names the file too: left in place (recorded, never deleted)
FILE, EXPORT_PACKAGE = "file", "export_package"
EVIDENCE = "evidence"


class StoresNotReachable(NeedsOperator):
    """The data map places personal data where this erasure was given no way to reach."""


class StoreNotClean(NeedsOperator):
    """Rows of the subject were left in another store after its erasure there (rolled back)."""


@dataclass(frozen=True)
class StoreAccess:
    """What an erasure (and an export) reaches besides the operational database.

    ``connect(conn_id)`` gives an autocommit connection to a store the data map names (it raises the caller's
    one-sentence error naming the connection when the store is missing or down); ``buckets`` the files'
    buckets (None: no object storage here); ``allowed`` the buckets that may be touched; ``progress`` the
    compliance store (autocommit), where each subject's progress is recorded; ``evidence`` the object store of
    the export packages (None: none to delete); ``package_days`` the setting export_retention_days: the subject's
    export packages made within that many days are kept to be handed over (None: every one is deleted).
    """

    connect: Callable[[str], Any]
    buckets: Buckets | None
    allowed: frozenset[str]
    progress: Any
    evidence: ObjectStore | None = None
    package_days: int | None = None


class FileOutcome(NamedTuple):
    """One file of the subject as ``compliance.erasure_files`` records it: its location, its kind (a row's file or
    an export package), its state, and until when the bucket's soft delete keeps its deleted versions recoverable
    (None: not at all, or not known)."""

    uri: str
    kind: str
    state: str
    recoverable_until: datetime | None = None


@dataclass(frozen=True)
class Elsewhere:
    """What the other stores and the files came to for one subject (over every attempt so far)."""

    tables: tuple = ()       # (label, action, rows) per other store's table, labelled connection:schema.table
    files: tuple[FileOutcome, ...] = ()
    erased_now: int = 0      # rows and files this call erased (0: nothing was left of the subject out there)

    @property
    def not_allowed(self) -> tuple[str, ...]:
        return tuple(f.uri for f in self.files if f.state == NOT_ALLOWED)

    @property
    def touched(self) -> bool:
        return self.erased_now > 0

    def files_evidence(self) -> dict:
        counts: dict[str, int] = {}
        for f in self.files:
            counts[f.state] = counts.get(f.state, 0) + 1
        return counts

    def recoverable_evidence(self) -> dict | None:
        """For the subject's audit entry: how many of its erased files the bucket's soft delete keeps recoverable
        (``files``), and until what day (UTC) the last of them (``until``); never a file's name. None: none is."""
        until = [f.recoverable_until for f in self.files if f.recoverable_until is not None]
        if not until:
            return None
        return {"files": len(until), "until": max(until).astimezone(timezone.utc).date().isoformat()}

    def recoverable_words(self) -> str | None:
        """For the subject's record: :meth:`recoverable_evidence` in words. None: no file is recoverable."""
        said = self.recoverable_evidence()
        if said is None:
            return None
        return f"{said['files']} file(s) recoverable from the bucket's soft delete until {said['until']}"


def needs_access(dm: DataMap) -> bool:
    """Whether erasing a subject reaches anything besides the operational database's rows."""
    return bool(dm.other_stores or dm.file_columns)


def allowed_buckets(dm: DataMap, configured) -> frozenset[str]:
    """The buckets files may be deleted from: the ``file_buckets`` setting when given, else the data map's
    ``buckets``."""
    return frozenset(configured if configured is not None else dm.buckets)


def access_of(step) -> StoreAccess | None:
    """What a step (:class:`include.step.Step`) gives an erasure beyond the operational database: its other stores,
    buckets, compliance store and evidence store (where the subject's export packages are, deleted with it)."""
    dm = step.datamap
    if step.store is None:
        return None
    return StoreAccess(connect=step.stores, buckets=step.buckets,
                       allowed=allowed_buckets(dm, getattr(step.settings, "file_buckets", None)), progress=step.store,
                       evidence=step.objects, package_days=getattr(step.settings, "export_retention_days", None))


def erase_elsewhere(ops, dm: DataMap, access: StoreAccess | None, subject: Mapping, at: datetime, *,
                    lock_timeout_ms: int) -> Elsewhere:
    """Erase the subject from every other store and delete its files (see the module doc). ``subject``: its
    ``subject_hash``, the engine's statement parameters ``user_id`` and ``email`` (the comparable address, or
    None) and the ``key`` a redacting rule's ``hash`` columns are keyed with. ``ops`` is the engine's connection, inside its transaction; ``lock_timeout_ms`` bounds each store's wait
    for a row another transaction holds, as the engine's does in the operational database."""
    if access is None:
        if not needs_access(dm):
            return Elsewhere()
        raise StoresNotReachable("the data map places personal data beyond the operational database (other "
                                 "connections or file columns) but this erasure was given no access to them: "
                                 "nothing of the subject was erased")
    if access.progress is ops:
        raise ValueError("the erasure's progress must be recorded on its own connection to the compliance store, not "
                         "inside the operational transaction (a rollback there would forget it)")
    subject_hash = subject["subject_hash"]
    params = {"user_id": subject["user_id"], "email": subject["email"]}
    found = found_files(ops, dm, access, params)
    shared = shared_locations(dm, _conn_of(ops, access), params, [uri for uri, _, _ in found])
    record_found(access.progress, subject_hash, [f for f in found if f[0] not in shared], at)
    record_found(access.progress, subject_hash, [f for f in found if f[0] in shared], at, state=SHARED)
    record_found(access.progress, subject_hash, keep_packages(ops, access, subject_hash, at), at)
    release_unnamed(access, subject_hash, {uri for uri, _, _ in found}, at)
    if hold_back(access, subject_hash):  # before any store's rows go: they are how a person mends a location
        return Elsewhere(files=tuple(subject_files(access.progress, subject_hash)))
    tables, now = [], 0
    for connection, scope in store_targets(dm).items():
        if connection != OPS_CONNECTION:
            totals, erased = erase_store(access, connection, scope, subject, at, lock_timeout_ms)
            tables += totals
            now += erased
    for row in open_files(access.progress, subject_hash):
        now += erase_file(access, subject_hash, row, at).state == DELETED
    return Elsewhere(tuple(tables), tuple(subject_files(access.progress, subject_hash)), now)


# -- the files -------------------------------------------------------------------------------------------------

def _conn_of(ops, access: StoreAccess):
    def conn_of(entry):
        return ops if entry.connection == OPS_CONNECTION else access.connect(entry.connection)

    return conn_of


def found_files(ops, dm: DataMap, access: StoreAccess, params: dict) -> list[tuple[str, str, str]]:
    """(location, kind, source) of every file the subject's rows name, in every store."""
    return [(uri, FILE, f"{t.entry.connection}:{t.entry.schema}.{t.entry.table}.{column}")
            for t, column, uri in file_locations(dm, _conn_of(ops, access), params)]


class Package(NamedTuple):
    """One export package of the subject not deleted yet: its object name, the request it answers, when it was made,
    and the operational transaction of its export while its record is pending (None: recorded)."""

    name: str
    request_id: int
    made_at: datetime
    pending_xid: int | None = None


def subject_packages(store, subject_hash: str) -> list[Package]:
    """The subject's export packages still in the evidence store (object names under the evidence location), with
    their request and when each was made: those recorded, and one whose export committed and is not recorded yet
    (its record still pending: the export held the account until its commit, so an erasure that waited for it reads
    it here). Made: its upload, the pending record's time, kept by its record once written (``package_made_at``,
    migration 0030; a record written before then: its own time)."""
    rows = store.execute("""select package_object, request_id, coalesce(package_made_at, recorded_at), null::bigint
                            from compliance.dsr_fulfilments
                            where subject_hash = %(h)s and package_object is not null and package_deleted_at is null
                            union
                            select record ->> 'package_object', request_id, created_at, ops_xid
                            from compliance.dsr_fulfilment_pending
                            where record ->> 'subject_hash' = %(h)s and record ->> 'package_object' is not null
                            order by 1, 3""", {"h": subject_hash}).fetchall()
    return list({name: Package(name, rid, made, xid) for name, rid, made, xid in rows}.values())  # the newest


def keep_packages(ops, access: StoreAccess, subject_hash: str, at: datetime) -> list[tuple[str, str, str]]:
    """Record ``kept_for_delivery`` (done, with why and until when) each export package of the subject still within
    ``package_days``: the controller's answer to the subject's access request, kept only to hand it over, and deleted
    by the fulfilment's expiry then (:func:`package_expired`), the subject's erasure or not. Returns the others, to
    be deleted with the subject (``(name, kind, source)`` as :func:`record_found` takes them). One recorded done
    before (deleted, kept) stays so. A package whose record is pending for an export transaction that rolled back
    (asked of ``ops``, the operational database) answers no request: it is deleted with the subject."""
    packages = subject_packages(access.progress, subject_hash)
    days = access.package_days
    answers = [p for p in packages if p.pending_xid is None
               or ops.execute("select txid_status(%s)", (p.pending_xid,)).fetchone()[0] != "aborted"]
    until = {p.name: p.made_at + timedelta(days=days) for p in answers} if days is not None else {}
    kept = [p for p in packages if p.name in until and until[p.name] >= at]
    if kept:
        with access.progress.cursor() as cur:
            cur.executemany(
                """insert into compliance.erasure_files as f (subject_hash, uri, kind, source, state, found_at, done_at,
                                                              kept_until, kept_reason)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict (subject_hash, uri) do update
                   set state = excluded.state, done_at = excluded.done_at, kept_until = excluded.kept_until,
                       kept_reason = excluded.kept_reason
                   where f.done_at is null""",
                [(subject_hash, p.name, EXPORT_PACKAGE, EVIDENCE, KEPT_FOR_DELIVERY, at, at, until[p.name],
                  f"the answer to privacy request {p.request_id}, kept to be handed over for export_retention_days "
                  f"({days}) after it was made; the fulfilment's expiry deletes it then") for p in kept])
    return [(p.name, EXPORT_PACKAGE, EVIDENCE) for p in packages if p not in kept]


def kept_for_delivery(store, subject_hashes) -> dict[str, list[tuple[str, datetime]]]:
    """Of these subjects (keyed hashes), the export packages an erasure kept to be handed over and the expiry has
    not deleted yet: (object name, kept until) by subject."""
    hashes = sorted(set(subject_hashes))
    found: dict[str, list[tuple[str, datetime]]] = {}
    if not hashes:
        return found
    for subject, uri, until in store.execute(
            """select subject_hash, uri, kept_until from compliance.erasure_files
               where subject_hash = any(%s) and kind = %s and state = %s order by subject_hash, uri""",
            (hashes, EXPORT_PACKAGE, KEPT_FOR_DELIVERY)):
        found.setdefault(subject, []).append((uri, until))
    return found


def package_expired(store, request_id: int, name: str, at: datetime) -> None:
    """The fulfilment's expiry deleted this export package of ``request_id``: an erasure of its subject that kept it
    for delivery records it deleted (when, in ``done_at``; ``kept_until`` stays)."""
    store.execute("""update compliance.erasure_files f set state = %s, done_at = %s
                     from compliance.dsr_fulfilments d
                     where d.request_id = %s and f.subject_hash = d.subject_hash and f.uri = %s and f.kind = %s
                       and f.state = %s""", (DELETED, at, request_id, name, EXPORT_PACKAGE, KEPT_FOR_DELIVERY))


def package_erased_at(store, subject_hash: str | None, name: str | None) -> datetime | None:
    """Inside the caller's transaction of the compliance store, which writes the package's record: when an erasure
    of the subject deleted this export package (or found it gone); None when none did. Taken under the subject's
    package lock, as :func:`erase_file` marks a package deleted, so that neither misses the other's commit."""
    if not subject_hash or not name:
        return None
    _lock_packages(store, subject_hash)
    row = store.execute("""select done_at from compliance.erasure_files
                           where subject_hash = %s and uri = %s and kind = %s and state in (%s, %s)""",
                        (subject_hash, name, EXPORT_PACKAGE, DELETED, ALREADY_GONE)).fetchone()
    return row[0] if row else None


def _lock_packages(store, subject_hash: str) -> None:
    store.execute("select pg_advisory_xact_lock(hashtextextended('export packages of ' || %s, 0))", (subject_hash,))


def record_found(store, subject_hash: str, found, at: datetime, *, state: str = FOUND) -> None:
    """Record the subject's files once (a retry keeps the first record); a ``shared`` one is done as found. Whether a
    file is shared is what this attempt found, not the first: a file not yet done, or recorded shared, takes this
    attempt's state (another account's row may name it now, or no longer: a shared record kept as done would leave
    the subject's file behind for good once that row is gone; a found one would be deleted under that account)."""
    if not found:
        return
    with store.cursor() as cur:
        cur.executemany("""insert into compliance.erasure_files as f (subject_hash, uri, kind, source, state, found_at,
                                                                      done_at)
                           values (%s, %s, %s, %s, %s, %s, %s) on conflict (subject_hash, uri) do update
                           set state = excluded.state, done_at = excluded.done_at
                           where (f.done_at is null or f.state = 'shared') and f.state <> excluded.state""",
                        [(subject_hash, uri, kind, source, state, at, at if state == SHARED else None)
                         for uri, kind, source in found])


def begun(store, subject_hash: str, connection: str, at: datetime, xid: str, now: dict) -> None:
    """Record that the subject's erasure in this store is about to commit (its progress row, not done yet), before
    it does, with that store's transaction ``xid`` and its rows erased ``now`` per table: a worker lost between that
    commit and :func:`done` still leaves the retry knowing that this erasure, not a person, removed the rows of that
    store naming a file (:func:`release_unnamed`), and how many rows it erased there (:func:`settle`)."""
    store.execute("""insert into compliance.erasure_store_progress (subject_hash, store, updated_at, pending_xid,
                                                                    pending_tables)
                     values (%s, %s, %s, %s::xid8, %s)
                     on conflict (subject_hash, store) do update
                     set pending_xid = excluded.pending_xid, pending_tables = excluded.pending_tables""",
                  (subject_hash, connection, at, xid, Jsonb(now)))


def settle(store, conn, subject_hash: str, connection: str) -> None:
    """Count an earlier attempt's rows in this store that :func:`begun` recorded and :func:`done` never did (its
    worker lost around the store's commit): added to the evidence when the store says its transaction committed;
    left out when it rolled back, or is still open (``conn`` is inside this attempt's transaction, past its erasing
    statements: a transaction holding any of the subject's rows made them wait until it ended, so one still open
    erased none of them). A transaction too old for the store to tell is left out, with a warning."""
    row = store.execute("""select pending_xid::text from compliance.erasure_store_progress
                           where subject_hash = %s and store = %s and pending_xid is not null""",
                        (subject_hash, connection)).fetchone()
    if row is None:
        return
    # Never ask past the store's own transactions (another server behind the connection): pg_xact_status would fail.
    status = conn.execute("""select case when %(x)s::xid8 < pg_current_xact_id() then pg_xact_status(%(x)s::xid8)
                             end""", {"x": row[0]}).fetchone()[0]
    if status is None:
        log.warning("an earlier attempt's erasure in %s can no longer be told committed or not; its rows are left "
                    "out of the evidence", connection)
    if status != "committed":
        return  # begun replaces it with this attempt's
    store.execute(f"""update compliance.erasure_store_progress as p
                      set tables = {_SUM_TABLES.format(a="p.tables", b="p.pending_tables")},
                          rows_erased = p.rows_erased + (select coalesce(sum(v::bigint), 0)
                                                         from jsonb_each_text(p.pending_tables) as t(k, v)),
                          pending_xid = null, pending_tables = null
                      where subject_hash = %s and store = %s and pending_xid = %s::xid8""",
                  (subject_hash, connection, row[0]))


# Two jsonb objects of table -> rows, summed per table.
_SUM_TABLES = """(select coalesce(jsonb_object_agg(k, coalesce(({a} ->> k)::bigint, 0)
                                                    + coalesce(({b} ->> k)::bigint, 0)), '{{}}')
                  from (select jsonb_object_keys({a} || {b}) as k) keys)"""


def _erased_by_this_erasure(store, subject_hash: str) -> set[str]:
    """The stores where an attempt of this subject's erasure erased (or was about to commit erasing) its rows."""
    return {r[0] for r in store.execute("select store from compliance.erasure_store_progress where subject_hash = %s",
                                        (subject_hash,))}


def release_unnamed(access: StoreAccess, subject_hash: str, named: set[str], at: datetime) -> None:
    """A file recorded by an earlier attempt that the subject's rows no longer name (a person corrected or cleared
    the row's location, or removed the row) and that the erasure may not touch: ``unnamed``, done. It held the
    subject ``incomplete`` and, the row mended, would have held it for good. Never one whose row was in a store an
    attempt of this erasure erased (:func:`begun`): that row went with the subject, not with a person's mending, so
    the file is deleted once its bucket is allowed, and holds the subject ``incomplete`` until then."""
    erased = _erased_by_this_erasure(access.progress, subject_hash)
    for uri, kind, source in access.progress.execute(
            """select uri, kind, source from compliance.erasure_files where subject_hash = %s and done_at is null
               order by uri""", (subject_hash,)).fetchall():
        if (kind == FILE and uri not in named and _touchable(access, uri) is None
                and source.split(":", 1)[0] not in erased):
            access.progress.execute("""update compliance.erasure_files set state = %s, done_at = %s
                                       where subject_hash = %s and uri = %s""", (UNNAMED, at, subject_hash, uri))


def hold_back(access: StoreAccess, subject_hash: str) -> int:
    """Record ``not_allowed`` each of the subject's files not yet done that the erasure may not touch (a bucket the
    settings do not allow, a location that is not a ``gs://`` object name), before anything of the subject is erased:
    how many. Any holds the whole subject back, every store's rows included: a row another store erased could no
    longer name its file, and the next attempt would release that file as ``unnamed`` (:func:`release_unnamed`),
    the subject purged and its file left where it was; the rows also let a person mend the location."""
    held = [uri for uri, kind in open_files(access.progress, subject_hash)
            if kind == FILE and _touchable(access, uri) is None]
    if held:
        access.progress.execute("""update compliance.erasure_files set state = %s
                                   where subject_hash = %s and uri = any(%s)""", (NOT_ALLOWED, subject_hash, held))
    return len(held)


def _touchable(access: StoreAccess, uri: str) -> FileRef | None:
    """The file a location names when the erasure may touch it (a gs:// object in an allowed bucket), else None."""
    ref = FileRef.parse(uri)
    return ref if ref is not None and ref.bucket in access.allowed else None


def open_files(store, subject_hash: str) -> list[tuple[str, str]]:
    """(location, kind) of the subject's files not yet verified gone."""
    return store.execute("""select uri, kind from compliance.erasure_files where subject_hash = %s and done_at is null
                            order by uri""", (subject_hash,)).fetchall()


def incomplete_reason(locations) -> str:
    """For a person, in the subject's record (and so in the append-only audit log): how many of its files the erasure
    may not touch, in which buckets, and how many are at a location it cannot reach at all, never their names (a
    file's name can be personal data, and the audit log keeps what it is given for good); the locations themselves
    are in ``compliance.erasure_files``. Each kind says what finishes it."""
    refs = [FileRef.parse(u) for u in locations]
    buckets = sorted({ref.bucket for ref in refs if ref is not None})
    in_buckets, unusable = sum(ref is not None for ref in refs), sum(ref is None for ref in refs)
    parts = []
    if in_buckets:
        parts.append(f"{in_buckets} in a bucket the settings do not allow ({', '.join(buckets)}; allow it with the "
                     "setting file_buckets)")
    if unusable:
        parts.append(f"{unusable} at a location that is not a gs:// object name (another scheme, an invalid bucket "
                     "name, a name over 1,024 bytes or with control characters): correct or clear the location in "
                     "its row")
    return (f"{len(locations)} file(s) of the subject the erasure may not touch: {'; '.join(parts)}. "
            "compliance.erasure_files lists each for this subject, with the column naming it; then the next run "
            "deletes the files, or finds them gone. Nothing more of the subject is erased until then: its account, "
            "its other files and its rows in every store stay, except those of a store an earlier attempt erased "
            "(compliance.erasure_store_progress names it)")


REFUSED = "refused"  # a step's tally: the object store refused a subject's file; the subject is left incomplete


def refused_reason(exc: Exception) -> str:
    """For a person: the object store refused to read or delete a file of this subject (``exc`` names the bucket,
    never the file); the other subjects went on."""
    return (f"{exc} (a retention policy, an object hold or the connection's permissions): a person must look; this "
            "subject's account and rows stay, the other subjects were carried out, and the next run tries again")


# How the reason of a subject whose erasure the database refused begins (:class:`include.erasure.ErasureError`'s
# message): the run's end counts those subjects by it.
ERASURE_REFUSED = "erasing "


def subject_refused_reason(exc: Exception) -> str:
    """For a person, why one subject was left ``incomplete`` while the others went on: the object store refused a
    file of theirs (:func:`refused_reason`), or the database refused their erasure (an ErasureError, naming the table
    and the server's primary message, or rows left in a table the map forgot) or a change made with it (completing
    the request, resolving a report: the server's primary message, never the row its DETAIL quotes). That subject's
    transaction was rolled back. A database error of class 54 (:func:`include.errors.over_limit`: a value over 1 GB,
    too many columns) says which limit stopped it, and the table where the erasure of one met it
    (``include.erasure.engine.ErasureOverLimit``, its ``limit``): running it again repeats it."""
    if isinstance(exc, ObjectStoreRefused):
        return refused_reason(exc)
    limit = over_limit(exc)
    if limit is not None or getattr(exc, "limit", None):  # the erasure of a table (it names it), or a change with it
        stopped = (str(exc) if limit is None else
                   f"{ERASURE_REFUSED}the subject was stopped by a database limit ({limit}): {database_said(exc)}")
        return (f"{stopped}; that subject's erasure was rolled back and each run repeats it until a person looks (the "
                "subject's data, or the database's setting or trigger that raised it); the other subjects were "
                "carried out")
    said = str(exc) if isinstance(exc, NeedsOperator) else (  # an ErasureError: it names the table
        f"{ERASURE_REFUSED}the subject was refused by the database: {database_said(exc)}; that subject's erasure was "
        "rolled back")
    return (f"{said} (a constraint or trigger of the application's, or the data map): a person must look; the other "
            "subjects were carried out, and the next run tries again")


def warn_refused(count: int) -> None:
    """An erasing step's word on the subjects a refusal left incomplete (:func:`subject_refused_reason`); the run
    fails at its end, in one sentence, once the others are erased and verified (:func:`include.erasure.run.fail_if_refused`)."""
    if count:
        log.warning("%d subject(s) left incomplete: the object store refused a file of theirs, or the database their "
                    "erasure (each record says why)", count)


class SubjectsRefused(NeedsOperator):
    """The object store refused the files of some subjects, or the database their erasure: recorded ``incomplete``;
    the others were carried out."""

    def __init__(self, count: int, what: str, by_database: int = 0):
        if not by_database:
            super().__init__(f"{count} {what} left incomplete: the object store refused to read or delete a file of "
                             "theirs (each record says which bucket and why); every other one was carried out")
        else:
            super().__init__(f"{count + by_database} {what} left incomplete: the object store refused a file of "
                             f"{count} of them, the database refused the erasure of {by_database} (each record "
                             "says which table or bucket and why); every other one was carried out")


def subject_files(store, subject_hash: str) -> list[FileOutcome]:
    """Every file of the subject as it stands (deleted, already gone, not allowed)."""
    rows = store.execute("""select uri, kind, state, recoverable_until from compliance.erasure_files
                            where subject_hash = %s order by uri""", (subject_hash,))
    return [FileOutcome(*r) for r in rows]


def erase_file(access: StoreAccess, subject_hash: str, row: tuple[str, str], at: datetime) -> FileOutcome:
    """Delete every version of one file, verified by listing it again (see the module doc), and record how many
    versions went and until when the bucket's soft delete keeps them recoverable. A location the settings do not
    allow is left alone."""
    uri, kind = row
    if kind == EXPORT_PACKAGE:
        if access.evidence is None:
            raise StoresNotReachable("the subject has an export package in the evidence store but this erasure "
                                     "was given no evidence store: nothing of the subject was erased")
        objects, name = access.evidence, uri
    else:
        ref = _touchable(access, uri)
        if ref is None:
            access.progress.execute("""update compliance.erasure_files set state = 'not_allowed'
                                       where subject_hash = %s and uri = %s""", (subject_hash, uri))
            return FileOutcome(uri, kind, NOT_ALLOWED)
        if access.buckets is None:
            raise StoresNotReachable("the data map names files in object storage but this erasure was given no "
                                     "object storage: nothing of the subject was erased")
        objects, name = access.buckets.bucket(ref.bucket), ref.key
    erased = _erase_any_form(objects, name, any_form=kind == FILE)
    state = DELETED if erased.versions else ALREADY_GONE
    # Not waiting for the flush: a record lost with a database crash only makes the retry delete the file again
    # (none left: already gone; the first attempt's count and window are lost with it). One statement, its own
    # transaction (the setting lasts until its commit): a round trip a file, not four.
    done = """update compliance.erasure_files set state = %s, done_at = %s, versions_deleted = %s,
                                                  recoverable_until = %s
              from (select set_config('synchronous_commit', 'off', true)) as no_flush_wait
              where subject_hash = %s and uri = %s"""
    args = (state, at, erased.versions, erased.recoverable_until, subject_hash, uri)
    if kind != EXPORT_PACKAGE:
        access.progress.execute(done, args)
        return FileOutcome(uri, kind, state)
    with access.progress.transaction():
        _lock_packages(access.progress, subject_hash)
        access.progress.execute(done, args)
        access.progress.execute("""update compliance.dsr_fulfilments set package_deleted_at = %s
                                   where subject_hash = %s and package_object = %s""", (at, subject_hash, uri))
    return FileOutcome(uri, kind, state)


def _erase_any_form(objects: ObjectStore, name: str, *, any_form: bool) -> Erased:
    """Erase the object ``name``; when it has no version and ``any_form`` (a file a row names), the other Unicode
    normalisation form(s) of its name too (:func:`include.objectstore.name_forms`: the row may name it in NFD while
    the bucket holds it in NFC, or the reverse), so that a file still there is never recorded ``already_gone``. A row
    outside the subject naming that other form made the file ``shared`` before (:func:`shared_locations`)."""
    erased = objects.erase(name)
    for other in name_forms(name)[1:] if any_form else ():
        if erased.versions:
            break
        erased = objects.erase(other)
    return erased


# -- the other stores' rows --------------------------------------------------------------------------------------

def erase_store(access: StoreAccess, connection: str, scope: tuple[Target, ...], subject: Mapping,
                at: datetime, lock_timeout_ms: int) -> tuple[list, int]:
    """One store's rows of the subject in one transaction of that store (waiting at most ``lock_timeout_ms`` for a
    row another transaction holds), its residual zero before it commits; then recorded. Returns every table's rows
    erased over all attempts, and the rows erased now."""
    conn = access.connect(connection)
    read_as_str(conn)  # a keyed hash of a SQL_ASCII store's value is of its text, not of its bytes' repr
    params = store_params(conn, {"user_id": subject["user_id"], "email": subject["email"]})
    with conn.transaction():
        conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(int(lock_timeout_ms))))
        now = {t.label: t.erase(conn, params, subject["key"]) for t in scope}  # each entry's rule, as everywhere
        counts = conn.execute(sql.SQL("select {}").format(sql.SQL(", ").join(t.count() for t in scope)),
                              params).fetchone()
        left = {t.label: n for t, n in zip(scope, counts) if n}
        if left:
            where = ", ".join(f"{n} row(s) in {t}" for t, n in sorted(left.items()))
            raise StoreNotClean(f"erasing a subject left {where}; that store's erasure was rolled back: check the "
                                "data map's subject links for that table")
        settle(access.progress, conn, subject["subject_hash"], connection)
        xid = conn.execute("select pg_current_xact_id()::text").fetchone()[0]
        begun(access.progress, subject["subject_hash"], connection, at, xid, now)  # before its commit: a crash after it
    total = done(access.progress, subject["subject_hash"], connection, now, at)
    return [(t.label, t.action, int(total.get(t.label, 0))) for t in scope], sum(now.values())


def done(store, subject_hash: str, connection: str, now: dict, at: datetime) -> dict:
    """Record the subject's erasure in this store committed, with its rows erased now per table (the attempt
    :func:`begun` recorded, no longer pending); returns every table's rows erased over all attempts."""
    return dict(store.execute(
        """insert into compliance.erasure_store_progress as p (subject_hash, store, tables, rows_erased, done_at,
                                                              updated_at)
           values (%(s)s, %(store)s, %(tables)s, %(rows)s, %(at)s, %(at)s)
           on conflict (subject_hash, store) do update
           set tables = """ + _SUM_TABLES.format(a="p.tables", b="excluded.tables") + """,
               rows_erased = p.rows_erased + excluded.rows_erased, done_at = excluded.done_at,
               updated_at = excluded.updated_at, pending_xid = null, pending_tables = null
           returning tables""",
        {"s": subject_hash, "store": connection, "tables": Jsonb(now), "rows": sum(now.values()),
         "at": at}).fetchone()[0])


def kept_elsewhere(dm: DataMap, access: StoreAccess | None, user_id: int, email: str) -> list[tuple[str, int]]:
    """(table, rows) of the other stores still tied to the subject after its erasure there, which went without its
    address because another account has it: rows tied by that address alone (directly, or through the rows they
    hang from), kept as the operational database's are, and named in the evidence the same way."""
    if access is None:
        return []
    kept = []
    params = {"user_id": user_id, "email": email}
    for connection, scope in store_targets(dm).items():
        if connection == OPS_CONNECTION or not scope:
            continue
        conn = access.connect(connection)
        counts = conn.execute(sql.SQL("select {}").format(
            sql.SQL(", ").join(t.count() for t in scope)), store_params(conn, params)).fetchone()
        kept += [(t.label, n) for t, n in zip(scope, counts) if n]
    return kept


def residual_by_keys_elsewhere(dm: DataMap, connect: Callable[[str], Any], user_ids: list[int]) -> dict[str, int]:
    """Rows still tied by key to any of these erased subjects in the other stores (rows tied by address alone
    cannot be counted once the account and its address are gone: their store's residual was counted before)."""
    left: dict[str, int] = {}
    for connection, scope in store_targets(dm).items():
        keyed = [t for t in scope if any(link.match == "key" for link in t.entry.links)]
        if connection == OPS_CONNECTION or not keyed or not user_ids:
            continue
        counts = connect(connection).execute(sql.SQL("select {}").format(
            sql.SQL(", ").join(t.count_by_keys() for t in keyed)), {"ids": list(user_ids)}).fetchone()
        left.update({t.label: n for t, n in zip(keyed, counts) if n})
    return left
