"""The plan of an erasure, before anything changes: per subject, every mapped table with its rows and erase
rule, its legal holds and the vendors to notify; for the whole plan, a stable hash a person can approve.

:func:`plan` reads only (the data map's tables, one batched statement per table), so a dry run, an
approval request and the live run all describe the same thing the same way. Every store the data map names
is counted, each in its own database (the support desk's and analytics' tables, labelled
``connection:schema.table``), with the predicate the engine erases by: a subject's tables are listed in the
order the engine reports them (the other stores', then the operational database's).

The plan's **hash** names *what will be done to whom*: the keyed hashes of the subjects it would erase
(those whose account exists, or whose rows outlived it, and who are under no active legal hold) and the erase
rule of every mapped table. A person approves that hash; a run whose plan hashes differently (another subject, a hold placed or
released, a changed data map) is not the plan they approved. Row counts are shown but not hashed: a
child's account keeps logging events until it is erased, and erasing a subject always means all of its
rows, checked by the residual count in its own transaction.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

from psycopg import sql

from include.datamap import OPS_CONNECTION, DataMap
from include.erasure.engine import TableCount, TablesEvidence
from include.erasure.facts import VendorShare, active_holds, vendor_shares
from include.erasure.scope import address_key, discover_unmapped, split_label, store_targets, subject_address
from include.store_text import store_params
from include.subjects import user_hash

PLAN_VERSION = 1


@dataclass(frozen=True)
class SubjectPlan(TablesEvidence):
    user_id: int
    subject_hash: str
    exists: bool                          # the account row exists
    holds: tuple[int, ...] = ()           # active legal holds: the subject is not erased
    shared_address: bool = False          # another account has its address: rows tied by address are kept
    tables: tuple[TableCount, ...] = ()   # every mapped table of every store, erasure order, rows now (zero
                                          # included)
    unmapped: tuple[TableCount, ...] = () # tables the data map forgot that hold rows of the subject
    vendors: tuple[VendorShare, ...] = ()

    @property
    def held(self) -> bool:
        return bool(self.holds)

    @property
    def left(self) -> bool:
        """There is something of the subject to erase: its account, or rows tied to it by key once the account
        went (deleted without them: the engine erases what is left)."""
        return self.exists or self.rows > 0

    @property
    def erasable(self) -> bool:
        return self.left and not self.held

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


@dataclass(frozen=True)
class Plan:
    subjects: tuple[SubjectPlan, ...]          # by user id
    rules: tuple                               # each mapped table's erase rule, erasure order
    unmapped_tables: tuple[str, ...] = ()      # tables the data map forgot (anywhere, with rows or not)
    deferred: tuple[SubjectPlan, ...] = ()     # erasable, but beyond the run's cap (see :meth:`limited`)

    @property
    def erasable(self) -> tuple[SubjectPlan, ...]:
        return tuple(s for s in self.subjects if s.erasable)

    @property
    def held(self) -> tuple[SubjectPlan, ...]:
        return tuple(s for s in self.subjects if s.held and s.left)

    @property
    def gone(self) -> tuple[SubjectPlan, ...]:
        return tuple(s for s in self.subjects if not s.left)

    @property
    def hash(self) -> str:
        """SHA-256 of what the plan does to whom (see the module doc); stable across runs and orderings."""
        return self.hash_with(())

    def hash_with(self, erased_elsewhere: Iterable[str]) -> str:
        """The hash of this plan had it also erased these subjects (keyed hashes): the plan it was part of."""
        subjects = {s.subject_hash for s in self.erasable} | set(erased_elsewhere)
        canonical = {"version": PLAN_VERSION, "erase": list(self.rules), "subjects": sorted(subjects)}
        return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def limited(self, max_subjects: int | None) -> "Plan":
        """The same plan erasing at most ``max_subjects`` subjects (lowest ids first); the rest are deferred."""
        if max_subjects is None or len(self.erasable) <= max_subjects:
            return self
        keep = {s.user_id for s in self.erasable[:max_subjects]}
        deferred = tuple(s for s in self.erasable if s.user_id not in keep)
        skipped = {s.user_id for s in deferred}
        return replace(self, subjects=tuple(s for s in self.subjects if s.user_id not in skipped),
                       deferred=self.deferred + deferred)

    def table_totals(self) -> dict[str, int]:
        """Rows per table over the subjects it would erase."""
        totals: dict[str, int] = {}
        for s in self.erasable:
            for t in s.tables:
                totals[t.table] = totals.get(t.table, 0) + t.rows
        return totals

    def store_totals(self) -> dict[str, int]:
        """Rows per store (connection id) over the subjects it would erase: the operational database first."""
        totals: dict[str, int] = {OPS_CONNECTION: 0}
        for table, n in self.table_totals().items():
            store = split_label(table)[0]
            totals[store] = totals.get(store, 0) + n
        return totals

    def vendor_totals(self) -> list[dict]:
        """Per vendor: how many of the subjects it would erase were shared with it (the notices owed)."""
        by_vendor: dict[int, dict] = {}
        for s in self.erasable:
            for v in s.vendors:
                row = by_vendor.setdefault(v.vendor_id, {"vendor_id": v.vendor_id, "name": v.name, "known": v.known,
                                                         "subjects": 0, "shares": 0})
                row["subjects"] += 1
                row["shares"] += v.shares
        return [by_vendor[k] for k in sorted(by_vendor)]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.erasable)


def plan(ops, dm: DataMap, user_ids: Iterable[int], key: bytes, *, at: datetime,
         stores: Callable[[str], Any] | None = None) -> Plan:
    """What erasing these subjects would do now (reads only). Unknown ids are planned as gone. ``stores(conn_id)``:
    the other stores the data map names (as the engine takes them), each counted in its own database; a map
    naming other stores with no ``stores`` is refused (a plan counting one store would understate what it erases)."""
    unmapped = discover_unmapped(ops, dm)
    ids = sorted({int(i) for i in user_ids})
    # Every store's erase rules (the operational database's first): approving a plan approves all of them.
    by_store = store_targets(dm)
    rules = tuple(t.rule() for store in by_store.values() for t in store)
    if not ids:
        return Plan((), rules, tuple(u.label for u in unmapped))
    others = [c for c in by_store if c != OPS_CONNECTION]
    if others and stores is None:
        from include.erasure.stores import StoresNotReachable

        raise StoresNotReachable(f"the data map places personal data on {', '.join(others)} but this plan was given "
                                 "no access to them: it cannot count the rows it would erase there")
    emails = _addresses(ops, dm, ids)
    shared = _shared_addresses(ops, dm, [e for e in emails.values() if e is not None])
    match = [None if emails.get(i) in shared else emails.get(i) for i in ids]
    params = {"ids": ids, "emails": match}
    counts: dict[int, list[TableCount]] = {i: [] for i in ids}
    # The order the engine reports a subject's tables in: the other stores' (each in one snapshot), then these.
    for connection in [*others, OPS_CONNECTION]:
        conn = ops if connection == OPS_CONNECTION else stores(connection)
        with contextlib.nullcontext() if conn is ops else conn.transaction():
            if conn is not ops:
                conn.execute("set transaction isolation level repeatable read, read only")
            for target in by_store[connection]:
                for uid, n in conn.execute(target.count_for_each(), store_params(conn, params)):
                    counts[uid].append(TableCount(target.label, target.action, n))
    forgotten: dict[int, list[TableCount]] = {i: [] for i in ids}
    for table in unmapped:
        for uid, n in ops.execute(table.count_for_each(), {"ids": ids}):
            if n:
                forgotten[uid].append(TableCount(table.label, "unmapped", n))
    holds = active_holds(ops, dm, ids, at)
    vendors = vendor_shares(ops, dm, ids)
    subjects = tuple(
        SubjectPlan(user_id=i, subject_hash=user_hash(key, i), exists=i in emails, holds=holds.get(i, ()),
                    shared_address=emails.get(i) in shared, tables=tuple(counts[i]), unmapped=tuple(forgotten[i]),
                    vendors=vendors.get(i, ()))
        for i in ids)
    return Plan(subjects, rules, tuple(u.label for u in unmapped))


def _addresses(ops, dm: DataMap, ids: Sequence[int]) -> dict[int, str | None]:
    """The existing accounts among ``ids``, with the comparable form of their address (None: none, or a blank one)."""
    accounts = dm.record("accounts")
    query = sql.SQL("select {id}, {email} from {t} where {id} = any(%s::bigint[])").format(
        id=accounts.col("id"), email=subject_address(accounts.col("email")), t=accounts.ident)
    return dict(ops.execute(query, (list(ids),)).fetchall())


def _shared_addresses(ops, dm: DataMap, emails: list[str]) -> set[str]:
    """Addresses held by more than one account."""
    if not emails:
        return set()
    accounts = dm.record("accounts")
    key = address_key(accounts.col("email"))
    query = sql.SQL("select {k} from {t} where {k} = any(%s::text[]) group by 1 having count(*) > 1").format(
        k=key, t=accounts.ident)
    return {row[0] for row in ops.execute(query, (sorted(set(emails)),))}


def rest_of_approved(plan: Plan, approved_hash: str | None,
                     erased_by_other_runs: Callable[[str], Iterable[str]]) -> set[str]:
    """When ``plan`` is what is left of the plan approved by ``approved_hash`` once other runs carrying out that
    plan erased their part (two runs given one approval, a re-trigger after the first finished): the subjects
    (keyed hashes) those runs erased, as ``erased_by_other_runs(approved_hash)`` gives them. Such a plan is
    still the approved one. Empty otherwise: no approval, the plan is the approved one itself, or it names
    anyone else."""
    if not approved_hash or approved_hash == plan.hash:
        return set()
    erased = set(erased_by_other_runs(approved_hash))
    return erased if erased and plan.hash_with(erased) == approved_hash else set()
