"""The fulfilment's records in the compliance store (migration 0006): the run's plan, one row per request, and
the records waiting for their operational transaction to commit. The run itself is an erasure run
(:mod:`include.erasure.run`, :data:`WORKFLOW`), shared with the child-data purge.

Safe to repeat: a run plans once (its row is locked while it does; a retry finds the plan recorded); a
fulfilled request's row is never rewritten (every write is conditional on the row not being fulfilled); any
other outcome is rewritten, and audited, only when it changed, so a run repeated with the same inputs
writes nothing more.

Two databases, one order. A fulfilment that changes the operational database writes its record here as
*pending* (with the id of its operational transaction) before that transaction commits, and turns it into
the final record after. A worker that dies in between leaves the pending record; :func:`settle` asks
PostgreSQL whether that transaction committed (``txid_status``) and writes the record, or drops it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Iterable, Sequence

from psycopg.types.json import Jsonb

from include.audit import RunContext
from include.erasure import run as erasure_run
from include.erasure.stores import package_erased_at
from include.fulfilment.rules import FULFILLED

SOURCE = "dsr_fulfilment"


# -- the run's plan ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanRow:
    """What a run decided for one request before acting (see migration 0006)."""

    request_id: int
    regime: str | None
    request_type: str | None
    action: str
    outcome: str | None
    reason: str | None
    subject_hash: str | None = None
    planned_tables: dict | None = None
    vendors: list | None = None
    holds: tuple[int, ...] = ()


def record_plan(store, run_id: str, rows: Sequence[PlanRow], facts: erasure_run.PlanFacts) -> bool:
    """Record the run's plan once; False when an earlier attempt of the run recorded it already."""
    with erasure_run.locked_run(store, WORKFLOW, run_id) as run:
        if run.planned_at is not None:
            return False
        with store.cursor() as cur, cur.copy(
                """copy compliance.dsr_fulfilment_plans (run_id, request_id, regime, request_type, action, outcome,
                                                         reason, subject_hash, planned_tables, vendors, holds)
                   from stdin""") as copy:
            for r in rows:
                copy.write_row((run_id, r.request_id, r.regime, r.request_type, r.action, r.outcome, r.reason,
                                r.subject_hash, _json_text(r.planned_tables), _json_text(r.vendors), list(r.holds)))
        erasure_run.record_plan(store, run, facts)
    return True


def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def plan_rows(store, run_id: str, *, acting: bool | None = None, actions: Sequence[str] | None = None) -> list[PlanRow]:
    """The run's plan, by request id: only the rows to act on (``acting``), or decided ones, of these actions."""
    where, args = ["run_id = %s"], [run_id]
    if acting is not None:
        where.append("outcome is null" if acting else "outcome is not null")
    if actions is not None:
        where.append("action = any(%s)")
        args.append(list(actions))
    cur = store.execute(f"""select request_id, regime, request_type, action, outcome, reason, subject_hash,
                                   planned_tables, vendors, holds
                            from compliance.dsr_fulfilment_plans where {' and '.join(where)} order by request_id""",
                        args)
    return [PlanRow(*r[:-1], holds=tuple(r[-1] or ())) for r in cur]


def prune_plans(store, *, older_than: datetime, at: datetime) -> int:
    """Forget the plans no run can still need: a dry run's (its what-if result) once it started before
    ``older_than``, a live run's once it finished before then (until it finishes a cleared or retried task, or a
    reviewer, reads it). The runs stay, marked ``plan_pruned_at`` (:func:`plan_pruned_at`); returns how many rows."""
    return store.execute("""with gone as (
                                update compliance.erasure_runs set counts = counts || jsonb_build_object(
                                    'plan_pruned_at', %(at)s::timestamptz)
                                where dag_id = 'dsr_fulfilment' and planned_at is not null
                                  and not counts ? 'plan_pruned_at'
                                  and ((dry_run and started_at < %(t)s) or finished_at < %(t)s)
                                returning run_id)
                            delete from compliance.dsr_fulfilment_plans p using gone where p.run_id = gone.run_id""",
                         {"t": older_than, "at": at}).rowcount


def plan_pruned_at(store, run_id: str) -> datetime | None:
    """When the run's plan was forgotten (:func:`prune_plans`), or None while it is kept."""
    row = store.execute("""select (counts ->> 'plan_pruned_at')::timestamptz from compliance.erasure_runs
                           where dag_id = 'dsr_fulfilment' and run_id = %s""", (run_id,)).fetchone()
    return row[0] if row else None


# -- one request's record ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """A row of compliance.dsr_fulfilments (without its times). Ids, counts, hashes: no personal data."""

    request_id: int
    regime: str | None
    request_type: str | None
    action: str
    outcome: str
    reason: str | None = None
    subject_hash: str | None = None
    user_id: int | None = None               # erased: until verified after commit
    package_object: str | None = None
    package_uri: str | None = None
    package_sha256: str | None = None
    package_bytes: int | None = None
    package_rows: dict | None = None
    erased_tables: dict | None = None
    rows_erased: int | None = None
    vendors: list = field(default_factory=list)
    holds: tuple[int, ...] = ()
    request_completed: bool = False
    # erased (the record carrying the erasure's tables): privacy_requests.id of each request naming the account when
    # it was erased, whose link the erasure removed (migration 0028); None: not read, or not this record's
    request_ids: list[int] | None = None
    # erased (the record carrying the erasure's tables): the rows it kept, tied to the account by an address another
    # account also has (schema.table -> rows, as the purge's ``child_purges.kept``; migration 0032); None: none kept
    kept_rows: dict | None = None

    def as_json(self) -> dict:
        raw = asdict(self)
        raw["holds"] = list(self.holds)
        return raw

    @classmethod
    def from_json(cls, raw: dict) -> "Record":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["holds"] = tuple(values.get("holds") or ())
        return cls(**values)

    def audit_details(self) -> dict:
        details = {"request_id": self.request_id, "request_type": self.request_type, "regime": self.regime,
                   "action": self.action, "outcome": self.outcome, "reason": self.reason,
                   "subject_hash": self.subject_hash, "request_completed": self.request_completed}
        if self.package_sha256:
            details.update(package_object=self.package_object, package_sha256=self.package_sha256,
                           package_bytes=self.package_bytes,
                           package_rows={c: sum(t.values()) for c, t in (self.package_rows or {}).items()})
        if self.erased_tables is not None:
            details.update(rows_erased=self.rows_erased, erased_tables=self.erased_tables,
                           vendors=[v["vendor_id"] for v in self.vendors])
        if self.holds:
            details["holds"] = list(self.holds)
        return {k: v for k, v in details.items() if v is not None}


_COLUMNS = [f.name for f in fields(Record)]
_JSON = {"package_rows", "erased_tables", "vendors", "kept_rows"}


def _values(record: Record) -> list:
    values = []
    for name in _COLUMNS:
        value = getattr(record, name)
        if name in _JSON:
            value = None if value is None else Jsonb(value)
        elif name == "holds":
            value = list(value)
        values.append(value)
    return values


def _upsert(store, record: Record, run_id: str, at: datetime, *, only_if_changed: bool) -> bool:
    """Write the request's row unless it is fulfilled (and, ``only_if_changed``, unless it says the same);
    True when a row was written. A fulfilment finalized by another run in the meantime always wins: it is
    written over anything but a fulfilment, and nothing is written over it."""
    cols = ", ".join(_COLUMNS)
    # A request whose subject was erased meanwhile has lost its account link (user_id nulled): it keeps the
    # subject hash it had, and that alone is not a change.
    sets = ", ".join(f"{c} = coalesce(excluded.{c}, d.{c})" if c == "subject_hash" else f"{c} = excluded.{c}"
                     for c in _COLUMNS if c != "request_id")
    same = (" and ((d.action, d.outcome, d.reason, d.holds) is distinct from "
            "(excluded.action, excluded.outcome, excluded.reason, excluded.holds) "
            "or coalesce(excluded.subject_hash, d.subject_hash) is distinct from d.subject_hash)"
            if only_if_changed else "")
    placeholders = ", ".join(["%s"] * (len(_COLUMNS) + 3))
    query = f"""insert into compliance.dsr_fulfilments as d ({cols}, run_id, first_recorded_at, recorded_at)
                values ({placeholders})
                on conflict (request_id) do update set {sets}, run_id = excluded.run_id,
                    recorded_at = excluded.recorded_at, verified_at = null
                where d.outcome <> all(%s::text[]){same}
                returning request_id"""
    return store.execute(query, [*_values(record), run_id, at, at, list(FULFILLED)]).fetchone() is not None


def record_decided(store, ctx: RunContext, record: Record) -> bool:
    """Record an outcome reached without acting (held, manual, skipped, invalid, no_account, approval_required):
    written and audited only when it differs from what the request's row says, and never over a fulfilment."""
    with store.transaction():
        written = _upsert(store, record, ctx.run_id, ctx.now(), only_if_changed=True)
        if written:
            ctx.audit(store, f"dsr_fulfilment.{record.outcome}", record.audit_details())
    return written


def erased_by_other_runs_of(store, plan_hash: str, run_id: str) -> set[str]:
    """Subjects (keyed hashes) that other live runs carrying out the erasure plan ``plan_hash`` erased, or are
    erasing (a record pending its operational commit)."""
    return {h for (h,) in store.execute(
        """select f.subject_hash from compliance.dsr_fulfilments f
           join compliance.dsr_fulfilment_runs r on r.run_id = f.run_id
           where r.plan_hash = %(h)s and r.run_id <> %(run)s and not r.dry_run and f.outcome = 'erased'
           union
           select p.record ->> 'subject_hash' from compliance.dsr_fulfilment_pending p
           join compliance.dsr_fulfilment_runs r on r.run_id = p.run_id
           where r.plan_hash = %(h)s and r.run_id <> %(run)s and not r.dry_run and p.record ->> 'outcome' = 'erased'""",
        {"h": plan_hash, "run": run_id}) if h}


@dataclass(frozen=True)
class Erasure:
    """An earlier erasure of an account, from its record: the child-data purge's, or the fulfilment's of request
    ``request_id``. Keyed subject hash, run, when (no personal data)."""

    subject_hash: str
    run_id: str
    at: datetime
    request_id: int | None = None  # the erasure request a fulfilment carried out; None: the child-data purge
    # rows that erasure kept, tied to the account by an address another account also has (table -> rows; None: none):
    # the purge's ``child_purges.kept``, a fulfilment's ``dsr_fulfilments.kept_rows`` (migration 0032)
    kept: dict | None = None


def recorded_subjects(store, request_ids: Iterable[int]) -> dict[int, str]:
    """The subject (keyed hash) each of these requests' records names, where one does: the account the request
    named when a run recorded it, kept after an erasure removed the request's link to it."""
    ids = sorted(set(request_ids))
    if not ids:
        return {}
    return dict(store.execute("""select request_id, subject_hash from compliance.dsr_fulfilments
                                 where request_id = any(%s) and subject_hash is not null""", (ids,)).fetchall())


def earlier_erasures(store, subject_hashes: Iterable[str], address_hashes: Iterable[str],
                     request_ids: Iterable[int] = (), account_table: str | None = None
                     ) -> tuple[dict[str, Erasure], dict[str, Erasure], dict[int, Erasure]]:
    """The erasures that came before: the child-data purge's (``compliance.child_purges``, outcome ``purged``) or a
    fulfilment's (``compliance.dsr_fulfilments``, outcome ``erased``) of these subjects (keyed hashes), the purge's
    of the accounts whose address had these keyed hashes, and the purge's or a fulfilment's that unlinked these
    privacy requests: (by subject hash, by address hash, by request id), each an :class:`Erasure`, the latest where
    there are several. By
    address only purge records written before migration 0027: a later one lists every request its erasure unlinked
    (``request_ids``), so a request it does not list is not its, whatever its requester's hash (another account with
    the child's address may have been erased, its requests unlinked, by a fulfilment, whose record lists them since
    migration 0028). A fulfilment's erasure of what still carried the id of an account the purge, or an earlier
    fulfilment, had erased is that first erasure's: it erased the account. ``account_table`` (``schema.table`` of
    the accounts, as ``erased_tables`` names it): a fulfilment's erasure counts only when it, or an earlier one of the
    subject, deleted the account's row; an erasure request naming an id no account has, whose data was still held,
    erased rows of that id but no account, and is no erasure of an account to tell anyone of. Each :class:`Erasure`
    carries the rows the erasure that erased the account kept as tied to it by an address another account also has
    (``kept``: the purge's ``child_purges.kept``, a fulfilment's ``dsr_fulfilments.kept_rows``)."""
    subjects, addresses, ids = sorted(set(subject_hashes)), sorted(set(address_hashes)), sorted(set(request_ids))
    if not subjects and not addresses and not ids:
        return {}, {}, {}
    rows = store.execute("""select subject_hash, address_hash, request_ids, run_id, purged_at, null::bigint, kept
                            from compliance.child_purges
                            where outcome = 'purged'
                              and (subject_hash = any(%(s)s) or (address_hash = any(%(a)s) and request_ids is null)
                                   or request_ids && %(ids)s::bigint[])
                            union all
                            select f.subject_hash, null, f.request_ids, coalesce(p.run_id, o.run_id, f.run_id),
                                   coalesce(p.purged_at, o.recorded_at, f.recorded_at),
                                   case when p.run_id is null then coalesce(o.request_id, f.request_id) end,
                                   case when p.run_id is null then o.kept_rows else p.kept end
                            from compliance.dsr_fulfilments f
                            left join lateral (
                                select c.run_id, c.purged_at, c.kept from compliance.child_purges c
                                where c.outcome = 'purged' and c.subject_hash = f.subject_hash
                                  and c.purged_at <= f.recorded_at
                                order by c.purged_at desc, c.run_id desc limit 1) p on true
                            left join lateral (
                                select e.request_id, e.run_id, e.recorded_at, e.kept_rows
                                from compliance.dsr_fulfilments e
                                where e.outcome = 'erased' and e.subject_hash = f.subject_hash
                                  and e.recorded_at <= f.recorded_at
                                  and (%(acct)s::text is null
                                       or coalesce((e.erased_tables -> %(acct)s ->> 'rows')::bigint, 0) > 0)
                                order by e.recorded_at, e.request_id limit 1) o on true
                            where f.outcome = 'erased' and (p.run_id is not null or o.request_id is not null)
                              and ((f.request_ids is not null and f.request_ids && %(ids)s::bigint[])
                                   or f.subject_hash = any(%(s)s))
                            order by 5, 4""", {"s": subjects, "a": addresses, "ids": ids, "acct": account_table}
                         ).fetchall()
    wanted_subjects, wanted_addresses, wanted_ids = set(subjects), set(addresses), set(ids)
    by_subject, by_address, by_request = {}, {}, {}
    for subject, address, listed, run, at, fulfilment, kept in rows:
        erasure = Erasure(subject, run, at, fulfilment, kept)
        if fulfilment is None and subject in wanted_subjects:
            by_subject[subject] = erasure
        elif subject in wanted_subjects:
            by_subject.setdefault(subject, erasure)
        if fulfilment is None and listed is None and address in wanted_addresses:
            by_address[address] = erasure
        by_request.update((rid, erasure) for rid in listed or () if rid in wanted_ids)
    return by_subject, by_address, by_request


def fulfilled(store, request_ids: Iterable[int]) -> set[int]:
    """The requests among these that are fulfilled already (never acted on again)."""
    ids = sorted(set(request_ids))
    if not ids:
        return set()
    return {r[0] for r in store.execute("""select request_id from compliance.dsr_fulfilments
                                            where request_id = any(%s) and outcome = any(%s)""",
                                         (ids, list(FULFILLED)))}


def write_pending(store, request_id: int, run_id: str, xid: int, record: Record, at: datetime) -> bool:
    """Before the operational transaction ``xid`` commits: the record to write once it has. False when the
    request is fulfilled already (the caller then rolls its transaction back)."""
    with store.transaction():
        if fulfilled(store, [request_id]):
            return False
        store.execute("""insert into compliance.dsr_fulfilment_pending (request_id, run_id, ops_xid, record, created_at)
                         values (%s, %s, %s, %s, %s)
                         on conflict (request_id) do update set run_id = excluded.run_id, ops_xid = excluded.ops_xid,
                             record = excluded.record, created_at = excluded.created_at""",
                      (request_id, run_id, xid, Jsonb(record.as_json()), at))
    return True


def finalize(store, ctx: RunContext, request_id: int, xid: int, *, settled: bool = False) -> Record | None:
    """After the operational transaction ``xid`` committed: write the pending record as the request's row, the
    vendors' deletion notices and the audit entry, in one store transaction; None when nothing was pending. An export
    package's time is the pending record's (``package_made_at``, migration 0030: its upload), however much later
    the record is written: its retention counts from then."""
    with store.transaction():
        row = store.execute("""delete from compliance.dsr_fulfilment_pending where request_id = %s and ops_xid = %s
                               returning run_id, record, created_at""", (request_id, xid)).fetchone()
        if row is None:
            return None
        run_id, raw, made = row
        record = Record.from_json(raw)
        now = ctx.now()
        _upsert(store, record, run_id, now, only_if_changed=False)
        store.execute("update compliance.dsr_fulfilments set package_made_at = %s where request_id = %s",
                      (made if record.package_object else None, request_id))
        gone = package_erased_at(store, record.subject_hash, record.package_object)
        if gone is not None:  # an erasure of the subject that waited for this export has deleted its package
            store.execute("update compliance.dsr_fulfilments set package_deleted_at = %s where request_id = %s",
                          (gone, request_id))
        if record.outcome == "erased" and record.subject_hash:
            for v in record.vendors:
                store.execute(
                    """insert into compliance.vendor_deletion_notices (subject_hash, vendor_id, run_id, source,
                                                                       vendor_name, vendor_known, categories, shares,
                                                                       share_ids, created_at)
                       values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing""",
                    (record.subject_hash, v["vendor_id"], run_id, SOURCE, v.get("name"), bool(v.get("known")),
                     list(v.get("categories") or ()), int(v.get("shares") or 0),
                     [int(i) for i in v.get("share_ids") or ()] or None, now))
        details = record.audit_details()
        if settled:
            details["settled_after_interruption"] = True
        ctx.audit(store, f"dsr_fulfilment.{record.outcome}", details)
    return record


def pending_xids(store, request_id: int) -> list[int]:
    """The operational transaction ids a record of this request is pending for."""
    return [r[0] for r in store.execute("select ops_xid from compliance.dsr_fulfilment_pending where request_id = %s",
                                        (request_id,))]


def drop_pending(store, request_id: int, xid: int) -> None:
    """The operational transaction ``xid`` rolled back: its record is forgotten (the request is acted on again)."""
    store.execute("delete from compliance.dsr_fulfilment_pending where request_id = %s and ops_xid = %s",
                  (request_id, xid))


def pending(store) -> list[tuple[int, str, int, dict]]:
    """Every pending record (any run): (request id, run id, operational transaction id, record)."""
    return store.execute("""select request_id, run_id, ops_xid, record from compliance.dsr_fulfilment_pending
                            order by request_id""").fetchall()


# -- erasures: verification after commit -------------------------------------------------------------------

def unverified(store, run_id: str | None = None) -> list[tuple[int, int]]:
    """(request id, account id) of the erasures not yet checked again after commit: this run's, and any an
    interrupted run left (so ``run_id`` does not narrow it)."""
    return store.execute("""select request_id, user_id from compliance.dsr_fulfilments
                            where user_id is not null order by request_id""").fetchall()


def mark_verified(store, run_id: str | None, request_ids: Sequence[int], at: datetime) -> int:
    """Nothing was left: record it on these erasures and on the requests erased with them (the same subject),
    whichever run recorded them, and forget the account ids (the store keeps the keyed hash only). Returns how
    many requests."""
    return store.execute("""update compliance.dsr_fulfilments d set verified_at = %(at)s, user_id = null
                            where d.outcome = 'erased' and d.verified_at is null
                              and (d.request_id = any(%(ids)s) or d.subject_hash in (
                                  select subject_hash from compliance.dsr_fulfilments
                                  where request_id = any(%(ids)s)))""",
                         {"at": at, "ids": list(request_ids)}).rowcount


# -- what a run did ------------------------------------------------------------------------------------------

def outcome_counts(store, run_id: str) -> dict[str, int]:
    """Requests by the outcome this run recorded."""
    return dict(sorted(store.execute("""select outcome, count(*) from compliance.dsr_fulfilments where run_id = %s
                                         group by outcome""", (run_id,)).fetchall()))


def incomplete_with(store, run_id: str, prefix: str) -> int:
    """The requests this run recorded ``incomplete`` whose reason begins with ``prefix`` (a kind of refusal)."""
    return store.execute("""select count(*) from compliance.dsr_fulfilments
                            where run_id = %s and outcome = 'incomplete' and starts_with(reason, %s)""",
                         (run_id, prefix)).fetchone()[0]


def plan_counts(store, run_id: str) -> dict[str, int]:
    """The run's plan: requests per action to act on, and per outcome decided without acting."""
    rows = store.execute("""select coalesce(outcome, 'to_' || action), count(*) from compliance.dsr_fulfilment_plans
                            where run_id = %s group by 1""", (run_id,)).fetchall()
    return dict(sorted(rows))


class _Requests:
    """The fulfilment's records as the erasure run's verification and end see them
    (:class:`include.erasure.run.Subjects`)."""

    unverified = staticmethod(unverified)
    mark_verified = staticmethod(mark_verified)
    outcome_counts = staticmethod(outcome_counts)


WORKFLOW = erasure_run.Workflow(
    dag_id=SOURCE, first_state="planning", erasing_state="planned", audit="dsr_fulfilment",
    plan_name="erasure plan", records="compliance.dsr_fulfilments", unit="requests", subjects=_Requests())
