"""Erasing one subject: :func:`erase_subject`, one transaction that claims, re-checks, erases every mapped
table, deletes the account row last and counts what is left before it commits.

The guarantees (docs/rules.md, "Erasure"; GDPR Art. 17; the COPPA Rule, 16 CFR §312.10, for children):

- **All or nothing per subject and store.** The operational rows and the account go in one transaction of the
  operational database. A worker killed half-way (SIGKILL, lost node) leaves them exactly as they were:
  PostgreSQL rolls the transaction back when the connection dies. The other stores the data map names and the
  files the rows name are erased before, under the same claim, one transaction per store, with each subject's
  progress recorded (:mod:`include.erasure.stores`): the retry finds the account and resumes there.
- **Verified before commit.** After the account row is deleted, one statement counts the subject's rows
  left in every mapped table and in every table the data map forgot (see :mod:`include.erasure.scope`);
  anything but zero raises :class:`ResidualDataError` naming the table, and the subject is rolled back.
- **Claimed once.** The account row is locked ``FOR UPDATE SKIP LOCKED`` inside the erasing transaction:
  a second eraser of the same subject (another run, a re-run attempt) gets ``claimed_elsewhere`` instead
  of waiting, and with ``wait=True`` it waits for the first to finish and then finds the subject
  ``already_erased``. The claim ends with the transaction, so a dead eraser releases it.
- **Re-checked under the claim.** Legal holds (an active hold: ``held``, nothing touched) and the
  caller's own eligibility test (``recheck``: still a child, the request still open) are evaluated after
  the lock is taken, in the same transaction as the erasure.
- **Idempotent.** A subject whose account and rows are gone is ``already_erased`` (a no-op); one whose
  account is gone but whose keyed rows remain has those erased (under an advisory lock on the subject).
- **Keyed hashes, not plain ones.** A ``hash`` column gets ``HMAC-SHA-256(key, "email:" + trimmed
  lower-case value)`` (:func:`include.subjects.address_hash`): the same keyed hash the compliance store
  uses for addresses, so nobody without the key can test a guess, and with it the team can still find a
  person's redacted rows.

The caller hooks into the transaction: ``in_transaction(conn)`` does its own work atomically with the
erasure (the purge resolves the reports that named the child) and returns what to keep in
``ErasureResult.extra``; ``before_commit(result)`` records the result elsewhere (the compliance store)
before the erasure commits, and may raise to roll it back.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable, Mapping

import psycopg
from psycopg import sql

from include.datamap import DataMap
from include.erasure import stores as elsewhere
from include.erasure.facts import VendorShare, active_holds, request_ids, vendor_shares
from include.erasure.scope import (Target, Unmapped, address_key, discover_unmapped, keyed, residual_by_keys_query,
                                   residual_query, subject_address, targets)
from include.errors import NeedsOperator, Transient, database_said, over_limit
from include.subjects import user_hash

PURGED = "purged"
HELD = "held"
ALREADY_ERASED = "already_erased"
CLAIMED_ELSEWHERE = "claimed_elsewhere"
NOT_ELIGIBLE = "not_eligible"
INCOMPLETE = "incomplete"   # a file the settings do not allow the erasure to touch: a person must act

# pg_advisory_xact_lock(class, key): serialises erasers of one subject whose account row is already gone.
_ORPHAN_LOCK_CLASS = 0x65726173  # 'eras'


class ErasureError(NeedsOperator):
    """An erasure could not be completed and was rolled back; the message names the table."""


class ErasureOverLimit(ErasureError):
    """A table's erasure met one of the database's fixed limits (SQLSTATE class 54, :func:`include.errors.over_limit`):
    it fails the same way on every try. The message names the table and the limit; ``limit`` is the limit alone."""

    def __init__(self, message: str, limit: str):
        super().__init__(message)
        self.limit = limit


class ResidualDataError(ErasureError):
    """Rows of the subject were left after its erasure (the data map is wrong or incomplete)."""

    def __init__(self, residual: Mapping[str, int], unmapped: set[str]):
        self.residual = dict(residual)
        self.unmapped = set(unmapped)
        parts = []
        for table, n in sorted(self.residual.items()):
            note = " (a table the data map does not list)" if table in self.unmapped else ""
            parts.append(f"{n} row(s) in {table}{note}")
        fix = ("add the table to include/datamap.yaml with its erase rule" if self.unmapped
               else "check the data map's erase rule and subject links for that table")
        super().__init__(f"erasing a subject left {', '.join(parts)}; that subject's erasure was rolled back and "
                         f"nothing of it changed: {fix}")


class SubjectBusy(Transient):
    """The subject's rows stayed locked by another transaction past the lock timeout. The account and the operational
    rows are unchanged; another store erased before the lock (one transaction per store) stays erased and recorded,
    and the retry finishes the subject, its evidence counting every attempt's rows."""


@dataclass(frozen=True)
class TableCount:
    table: str    # schema.table
    action: str   # 'delete' or 'redact'
    rows: int


class TablesEvidence:
    """A subject's record (its plan, the result of its erasure) whose ``tables`` are a :class:`TableCount` per
    mapped table."""

    def tables_evidence(self) -> dict:
        """Per table, its action and rows, as the compliance store keeps them."""
        return {t.table: {"action": t.action, "rows": t.rows} for t in self.tables}


@dataclass(frozen=True)
class ErasureResult(TablesEvidence):
    """What happened to one subject. Holds ids, counts and a keyed hash: no personal data."""

    user_id: int
    subject_hash: str
    outcome: str
    tables: tuple[TableCount, ...] = ()       # every mapped table, in erasure order (zero rows included)
    vendors: tuple[VendorShare, ...] = ()     # who received the subject's data: downstream deletion notices
    holds: tuple[int, ...] = ()               # active legal holds (outcome 'held')
    shared_address: bool = False              # another account has the subject's address ...
    kept: tuple[TableCount, ...] = ()         # ... so these rows, tied to it by address only, were kept
    address_hash: str | None = None           # keyed hash of the erased account's address (None: it had none)
    # privacy_requests.id of each request naming the account when it was erased (the erasure removed their link):
    # () none did; None not read (not erased, or recorded before compliance migration 0027)
    request_ids: tuple[int, ...] | None = None
    extra: Mapping = field(default_factory=dict)
    at: datetime | None = None
    files: tuple[elsewhere.FileOutcome, ...] = ()  # every file of the subject

    @property
    def not_allowed(self) -> tuple[str, ...]:
        """Locations of the subject's files in buckets the settings do not allow (outcome ``incomplete``)."""
        return elsewhere.Elsewhere(files=self.files).not_allowed

    def files_evidence(self) -> dict:
        """Per state (deleted, already_gone, not_allowed), how many of the subject's files."""
        return elsewhere.Elsewhere(files=self.files).files_evidence()

    def recoverable_evidence(self) -> dict | None:
        """How many of the subject's erased files the bucket's soft delete keeps recoverable and until what day, for
        its audit entry (None: none)."""
        return elsewhere.Elsewhere(files=self.files).recoverable_evidence()

    def recoverable_words(self) -> str | None:
        """How many of the subject's erased files the bucket's soft delete keeps recoverable, until what day (None:
        none), for its record's reason."""
        return elsewhere.Elsewhere(files=self.files).recoverable_words()

    @property
    def rows_erased(self) -> int:
        return sum(t.rows for t in self.tables)


@dataclass(frozen=True)
class EraseOptions:
    """How one subject is erased, and the caller's hooks into its transaction.

    ``unmapped`` is what :func:`include.erasure.scope.discover_unmapped` found (looked up when None; pass it
    when erasing many subjects). ``wait`` waits for another eraser's claim instead of skipping it. ``recheck``
    (the subject still qualifies, on the claimed row), ``in_transaction`` (more work in the erasing transaction,
    its result kept as ``extra``) and ``before_commit`` (record the result before it commits) are the caller's.
    """

    unmapped: "tuple[Unmapped, ...] | None" = None
    wait: bool = False
    recheck: "Callable[[psycopg.Connection], bool] | None" = None
    in_transaction: "Callable[[psycopg.Connection], Mapping] | None" = None
    before_commit: "Callable[[ErasureResult], None] | None" = None
    lock_timeout_ms: int = 10_000
    # The other stores and the files (include.erasure.stores.StoreAccess); needed when the data map names any.
    stores: "elsewhere.StoreAccess | None" = None


def erase_subject(ops, dm: DataMap, user_id: int, key: bytes, *, at: datetime,
                  options: EraseOptions = EraseOptions()) -> ErasureResult:
    """Erase one subject in one transaction of ``ops`` (an autocommit connection); see the module doc and
    :class:`EraseOptions`."""
    unmapped, wait, recheck = options.unmapped, options.wait, options.recheck
    before_commit, lock_timeout_ms = options.before_commit, options.lock_timeout_ms
    scope = targets(dm)
    if unmapped is None:
        unmapped = discover_unmapped(ops, dm)
        options = replace(options, unmapped=unmapped)
    subject_hash = user_hash(key, user_id)
    accounts = dm.record("accounts")
    try:
        with ops.transaction():
            ops.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(int(lock_timeout_ms))))
            claimed = ops.execute(sql.SQL("select {email} from {t} where {id} = %s for update{skip}").format(
                email=subject_address(accounts.col("email")), t=accounts.ident, id=accounts.col("id"),
                skip=sql.SQL("") if wait else sql.SQL(" skip locked")), (user_id,)).fetchone()
            base = {"user_id": user_id, "subject_hash": subject_hash, "at": at}
            if claimed is None:
                return _without_account(ops, dm, scope, base, key, options)
            holds = active_holds(ops, dm, [user_id], at).get(user_id, ())
            if holds:
                return ErasureResult(outcome=HELD, holds=holds, **base)
            if recheck is not None and not recheck(ops):
                return ErasureResult(outcome=NOT_ELIGIBLE, **base)
            email = claimed[0]
            shared = email is not None and _address_shared(ops, dm, email, user_id)
            params = {"user_id": user_id, "email": None if shared else email}
            subject = {"subject_hash": subject_hash, "key": key, **params}
            away = elsewhere.erase_elsewhere(ops, dm, options.stores, subject, at, lock_timeout_ms=lock_timeout_ms)
            if away.not_allowed:
                return ErasureResult(outcome=INCOMPLETE, tables=_counts(away), files=away.files, **base)
            kept = (tuple(TableCount(table, "kept", n) for table, n in elsewhere.kept_elsewhere(
                dm, options.stores, user_id, email)) + _kept_rows(ops, scope, user_id, email)) if shared else ()
            here = _erase_here(ops, dm, scope, params, key, options)
            here["tables"] = _counts(away) + here["tables"]
            result = ErasureResult(outcome=PURGED, **here, shared_address=shared, kept=kept,
                                   address_hash=keyed(key, email), files=away.files, **base)
            if before_commit is not None:
                before_commit(result)
        return result
    except elsewhere.StoreNotClean as exc:  # that subject alone, as a table the database refused: the others go on
        raise ErasureError(str(exc)) from None
    except psycopg.errors.LockNotAvailable:
        raise SubjectBusy(f"a subject's rows stayed locked by another transaction for over {lock_timeout_ms} ms; "
                          "its account and operational rows are unchanged, other stores erased before it stay erased "
                          "(compliance.erasure_store_progress) and a later run finishes it") from None


def _without_account(ops, dm: DataMap, scope, base: dict, key: bytes, options: EraseOptions) -> ErasureResult:
    """No account row to lock: either another eraser holds it, or it is gone (then erase what is left).
    ``base``: the result's user_id, subject_hash and at."""
    user_id, at, unmapped = base["user_id"], base["at"], options.unmapped
    before_commit = options.before_commit
    accounts = dm.record("accounts")
    still_there = ops.execute(sql.SQL("select exists (select 1 from {t} where {id} = %s)").format(
        t=accounts.ident, id=accounts.col("id")), (user_id,)).fetchone()[0]
    if still_there:
        return ErasureResult(outcome=CLAIMED_ELSEWHERE, **base)
    ops.execute("select pg_advisory_xact_lock(%s, hashint8(%s))", (_ORPHAN_LOCK_CLASS, user_id))
    params = {"user_id": user_id, "email": None}  # the address went with the account
    residual = _residual(ops, scope, unmapped, params)
    if not residual and not elsewhere.needs_access(dm):
        return ErasureResult(outcome=ALREADY_ERASED, **base)
    holds = active_holds(ops, dm, [user_id], at).get(user_id, ())
    if holds:
        return ErasureResult(outcome=HELD, holds=holds, **base) if residual else ErasureResult(
            outcome=ALREADY_ERASED, **base)
    subject = {"subject_hash": base["subject_hash"], "key": key, **params}
    away = elsewhere.erase_elsewhere(ops, dm, options.stores, subject, at, lock_timeout_ms=options.lock_timeout_ms)
    if away.not_allowed:
        return ErasureResult(outcome=INCOMPLETE, tables=_counts(away), files=away.files, **base)
    if not residual and not away.touched:
        return ErasureResult(outcome=ALREADY_ERASED, files=away.files, **base)
    here = _erase_here(ops, dm, scope, params, key, options)
    here["tables"] = _counts(away) + here["tables"]
    result = ErasureResult(outcome=PURGED, **here, files=away.files, **base)
    if before_commit is not None:
        before_commit(result)
    return result


def _erase_here(ops, dm: DataMap, scope, params: dict, key: bytes, options: EraseOptions) -> dict:
    """Both paths' erasure in the operational database, inside the subject's transaction: read what must be known of
    the subject before its rows go (the caller's ``in_transaction`` facts, the vendors that received its data, the
    requests naming it), erase every mapped table (``scope``) and check nothing is left (:func:`_check_residual`).
    The result's fields: ``extra``, ``vendors``, ``request_ids`` and the operational database's ``tables``."""
    user_id, in_transaction = params["user_id"], options.in_transaction
    extra = dict(in_transaction(ops) or {}) if in_transaction is not None else {}
    vendors = vendor_shares(ops, dm, [user_id]).get(user_id, ())
    requests = request_ids(ops, dm, [user_id]).get(user_id, ())
    tables = tuple(_erase_table(ops, target, params, key) for target in scope)
    _check_residual(ops, scope, options.unmapped, params)
    return {"extra": extra, "vendors": vendors, "request_ids": requests, "tables": tables}


def _counts(away: "elsewhere.Elsewhere") -> tuple[TableCount, ...]:
    return tuple(TableCount(label, action, rows) for label, action, rows in away.tables)


def _address_shared(ops, dm: DataMap, email: str, user_id: int) -> bool:
    """Another account has the same address: rows tied to the subject by address alone are theirs too."""
    accounts = dm.record("accounts")
    return ops.execute(sql.SQL("select exists (select 1 from {t} where {key} = %s and {id} <> %s)").format(
        t=accounts.ident, key=address_key(accounts.col("email")), id=accounts.col("id")),
        (email, user_id)).fetchone()[0]


def _kept_rows(ops, scope, user_id: int, email: str) -> tuple[TableCount, ...]:
    kept = []
    for target in scope:
        if target.by_email and not target.is_account:
            n = ops.execute(sql.SQL("select {}").format(target.count_email_links()),
                            {"user_id": user_id, "email": email}).fetchone()[0]
            if n:
                kept.append(TableCount(target.label, "kept", n))
    return tuple(kept)


def _erase_table(ops, target: Target, params: dict, key: bytes) -> TableCount:
    """Apply one table's erase rule to the subject's rows; a database refusal names the table."""
    try:
        return TableCount(target.label, target.action, target.erase(ops, params, key))
    except psycopg.OperationalError as exc:
        limit = over_limit(exc)
        if limit is None:
            raise  # a lock timeout or a lost connection: not the data map's fault
        raise ErasureOverLimit(f"erasing {target.label} ({target.action}) was stopped by a database limit ({limit}): "
                               f"{database_said(exc)}", limit) from None
    except psycopg.DatabaseError as exc:  # its primary message: the DETAIL quotes the refused row
        raise ErasureError(f"erasing {target.label} ({target.action}) was refused by the database: "
                           f"{database_said(exc)}; that subject's erasure was rolled back") from None


def _residual(ops, scope, unmapped, params: dict) -> dict[str, int]:
    counts = ops.execute(residual_query(scope, unmapped), params).fetchone()
    labels = [t.label for t in scope] + [u.label for u in unmapped]
    return {label: n for label, n in zip(labels, counts) if n}


def _check_residual(ops, scope, unmapped, params: dict) -> None:
    left = _residual(ops, scope, unmapped, params)
    if left:
        raise ResidualDataError(left, {u.label for u in unmapped})


# -- looking at a subject without erasing it ------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """Where a subject stands: its account exists (and is free, or claimed by a live eraser), or it is gone."""

    exists: bool
    busy: bool = False
    residual: Mapping[str, int] = field(default_factory=dict)  # rows tied by key, when the account is gone


def probe(ops, dm: DataMap, user_id: int, unmapped: tuple[Unmapped, ...] | None = None) -> Probe:
    """Did an erasure of this subject commit? Used to settle a record left half-way by a dead worker."""
    scope = targets(dm)
    unmapped = discover_unmapped(ops, dm) if unmapped is None else unmapped
    accounts = dm.record("accounts")
    with ops.transaction():
        free = ops.execute(sql.SQL("select 1 from {t} where {id} = %s for update skip locked").format(
            t=accounts.ident, id=accounts.col("id")), (user_id,)).fetchone()
        if free is not None:
            return Probe(exists=True)
        there = ops.execute(sql.SQL("select exists (select 1 from {t} where {id} = %s)").format(
            t=accounts.ident, id=accounts.col("id")), (user_id,)).fetchone()[0]
        if there:
            return Probe(exists=True, busy=True)
        return Probe(exists=False, residual=_residual(ops, scope, unmapped, {"user_id": user_id, "email": None}))


def residual_by_keys(ops, dm: DataMap, user_ids: list[int],
                     unmapped: tuple[Unmapped, ...] | None = None) -> dict[str, int]:
    """Rows still tied by key to any of these (erased) subjects, per table: all zero after a good purge."""
    if not user_ids:
        return {}
    scope = targets(dm)
    unmapped = discover_unmapped(ops, dm) if unmapped is None else unmapped
    counts = ops.execute(residual_by_keys_query(scope, unmapped), {"ids": list(user_ids)}).fetchone()
    labels = [t.label for t in scope] + [u.label for u in unmapped]
    return {label: n for label, n in zip(labels, counts) if n}
