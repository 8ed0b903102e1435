"""One erasure run, whichever DAG erases: its record, its plan's gate and approval, its verification and end.

Both DAGs that erase people (``child_data_purge``, ``dsr_fulfilment``) run the same workflow around the
erasure engine::

    plan  ->  gate (approve: a person, or in advance)  ->  erase  ->  verify  ->  finish

and differ only in *whose* subjects they erase and how they record each one (the purge: a record per child,
``compliance.child_purges``; fulfilment: a record per request, ``compliance.dsr_fulfilments``). This module is
that workflow's shared half: the run's row in ``compliance.erasure_runs`` (migration 0010; the old
``child_purge_runs`` and ``dsr_fulfilment_runs`` are views of it), the approval as recorded, the check of what
is left after commit, and the run's end. A :class:`Workflow` says which DAG is calling and how its subjects
are recorded (:class:`Subjects`); the steps take the step context (:mod:`include.step`).

Every write is safe to repeat: a run is created once, plans once (its row locked while it does), its
approval's time and approver are written once (a cleared erasing step keeps the first), and its end is written
as it is, so a retried or cleared task writes the same again.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterator, Mapping, Protocol, Sequence

from psycopg import sql
from psycopg.types.json import Jsonb

from include import erasure
from include.erasure import guard
from include.errors import NeedsOperator

log = logging.getLogger(__name__)

VERIFY_CHUNK = 5000


class NotClean(NeedsOperator):
    """After an erasure committed, rows are still tied to an erased subject."""


class Subjects(Protocol):
    """How a workflow records its subjects (its own ledger): what verification and the end of a run ask of it."""

    def unverified(self, store, run_id: str) -> list[tuple[Any, int]]:
        """(record key, account id) of the erased subjects not yet checked after commit."""

    def mark_verified(self, store, run_id: str, keys: Sequence[Any], at: datetime) -> int:
        """Nothing was left of these: record it and forget their account ids; returns how many records."""

    def outcome_counts(self, store, run_id: str) -> dict[str, int]:
        """The run's records by outcome."""


@dataclass(frozen=True)
class Workflow:
    """Which DAG's erasure run this is, and its words."""

    dag_id: str
    first_state: str        # the run's state when created (the purge: detected; fulfilment: planning)
    erasing_state: str      # its state while an approved plan is carried out (purging; planned)
    audit: str              # the audit actions' prefix (child_purge, dsr_fulfilment)
    plan_name: str          # how messages name the plan ("plan", "erasure plan")
    records: str            # where the subjects' records are, for messages (compliance.child_purges ...)
    unit: str               # what the run's records count (subjects, requests)
    subjects: Subjects


# -- the run's record ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRecord:
    dag_id: str
    run_id: str
    as_of: date
    dry_run: bool
    targeted: bool
    targets: tuple[int, ...]
    state: str
    detected_at: datetime | None
    planned_at: datetime | None
    plan_hash: str | None
    plan_subjects: int | None
    approval: str | None
    approval_state: str | None
    threshold: int


_COLUMNS = ("dag_id, run_id, as_of, dry_run, targeted, targets, state, detected_at, planned_at, plan_hash, "
            "plan_subjects, approval, approval_state, threshold")


@dataclass(frozen=True)
class RunStart:
    """What a run is created with, on its first attempt."""

    run_id: str
    as_of: date
    run_type: str | None
    dry_run: bool
    threshold: int
    started_at: datetime
    targets: tuple[int, ...] = ()
    max_subjects: int | None = None


def start_run(store, wf: Workflow, start: RunStart) -> RunRecord:
    """The run's row, created by its first attempt (a later attempt finds it as it was left)."""
    store.execute(
        """insert into compliance.erasure_runs (dag_id, run_id, as_of, run_type, dry_run, targeted, targets,
                                                max_subjects, threshold, started_at, state)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict (dag_id, run_id) do nothing""",
        (wf.dag_id, start.run_id, start.as_of, start.run_type, start.dry_run, bool(start.targets),
         list(start.targets), start.max_subjects, start.threshold, start.started_at, wf.first_state))
    return load_run(store, wf, start.run_id)


def load_run(store, wf: Workflow, run_id: str, *, lock: bool = False) -> RunRecord | None:
    row = store.execute(f"select {_COLUMNS} from compliance.erasure_runs where dag_id = %s and run_id = %s"
                        + (" for update" if lock else ""), (wf.dag_id, run_id)).fetchone()
    if row is None:
        return None
    values = list(row)
    values[5] = tuple(values[5] or ())
    return RunRecord(*values)


@contextlib.contextmanager
def locked_run(store, wf: Workflow, run_id: str) -> Iterator[RunRecord]:
    """The run's row, locked for the length of a store transaction: record what the run found or planned once."""
    with store.transaction():
        yield load_run(store, wf, run_id, lock=True)


def record_detection(store, run: RunRecord, *, at: datetime, counts: Mapping, as_of: date | None = None) -> None:
    """The run detected its subjects (inside :func:`locked_run`), judged as of ``as_of`` (the day its record keeps)."""
    store.execute("""update compliance.erasure_runs set detected_at = %s, as_of = coalesce(%s, as_of),
                            counts = counts || %s
                     where dag_id = %s and run_id = %s""",
                  (at, as_of, Jsonb({"detected": dict(counts)}), run.dag_id, run.run_id))


@dataclass(frozen=True)
class PlanFacts:
    """A plan as the run records it: its hash, size and gate, when, and the counts to keep."""

    plan_hash: str | None
    subjects: int
    rows: int | None
    gate: guard.Gate
    at: datetime
    counts: Mapping = field(default_factory=dict)
    state: str | None = None  # the run's state when it differs from the gate's (the purge: nothing_to_purge)


def record_plan(store, run: RunRecord, facts: PlanFacts) -> None:
    """The run's plan (inside :func:`locked_run`, with the caller's records of its subjects)."""
    store.execute(
        """update compliance.erasure_runs
           set planned_at = %s, plan_hash = %s, plan_subjects = %s, plan_rows = %s, approval = %s, approval_state = %s,
               state = %s, counts = counts || %s
           where dag_id = %s and run_id = %s""",
        (facts.at, facts.plan_hash, facts.subjects, facts.rows, facts.gate.approval, facts.gate.approval_state,
         facts.state or facts.gate.state, Jsonb({"planned": dict(facts.counts)}), run.dag_id, run.run_id))


def record_approval(store, run: RunRecord, *, approval_state: str, approved_by: str | None, at: datetime | None,
                    state: str | None = None) -> None:
    """The plan's answer: who gave it and when are evidence, so the first recorded stays (a cleared task, run again
    under the same run id, writes nothing new over them)."""
    store.execute("""update compliance.erasure_runs
                     set approval_state = %s, approved_by = coalesce(approved_by, %s),
                         approved_at = coalesce(approved_at, %s), state = coalesce(%s, state)
                     where dag_id = %s and run_id = %s""",
                  (approval_state, approved_by, at, state, run.dag_id, run.run_id))


def finish_run(store, run: RunRecord, *, state: str, at: datetime, counts: Mapping) -> None:
    store.execute("""update compliance.erasure_runs set state = %s, finished_at = %s, counts = counts || %s
                     where dag_id = %s and run_id = %s""",
                  (state, at, Jsonb(dict(counts)), run.dag_id, run.run_id))


def recorded_counts(store, run: RunRecord, key: str) -> dict:
    """What the run recorded under ``counts -> key`` (detected, planned, outcomes)."""
    row = store.execute("select counts -> %s from compliance.erasure_runs where dag_id = %s and run_id = %s",
                        (key, run.dag_id, run.run_id)).fetchone()
    return dict(row[0] or {}) if row else {}


# -- the plan as a reviewer reads it ---------------------------------------------------------------------------

def planned_totals(store, planned: sql.Composable, run_id: str) -> tuple[dict[str, int], list[tuple[int, str, int]]]:
    """Rows per table and (vendor id, name, records) of a plan: ``planned`` is a ``select`` of the records to
    erase (with their ``planned_tables`` and ``vendors``), given ``%(run)s``."""
    tables = dict(store.execute(sql.SQL(
        """select t.key, sum((t.value ->> 'rows')::bigint)::bigint from ({planned}) p, jsonb_each(p.planned_tables) t
           group by t.key""").format(planned=planned), {"run": run_id}).fetchall())
    vendors = store.execute(sql.SQL(
        """select (v ->> 'vendor_id')::bigint, max(v ->> 'name'), count(*) from ({planned}) p,
                  jsonb_array_elements(p.vendors) v
           group by 1 order by 1""").format(planned=planned), {"run": run_id}).fetchall()
    return {k: int(v) for k, v in sorted(tables.items())}, vendors


# -- approve ---------------------------------------------------------------------------------------------------

def check_approval(step, wf: Workflow, run: RunRecord) -> None:
    """Before erasing: the plan's approval as recorded and the reviewer's answer (``step.approval``), or
    :class:`include.erasure.guard.NotApproved`. An approval in advance (within the threshold, or by the plan's
    hash) and a reviewer's approval are recorded on the run; a reviewer's is audited."""
    ok = guard.approval_of(run, step.approval, wf.plan_name)
    now = step.ctx.now()
    # Only a run not yet erasing starts to: an erasing step cleared after the run finished leaves the state its
    # finish_run recorded (and finish_run, run again, records the run's end again).
    erasing = wf.erasing_state if run.state in (guard.PLANNED, guard.AWAITING_APPROVAL) else None
    if ok.in_advance:
        by_hash = run.approval == "plan_hash"
        record_approval(step.store, run, approval_state=run.approval_state, approved_by=ok.approved_by,
                        at=now if by_hash else None, state=erasing)
    elif ok.new:
        record_approval(step.store, run, approval_state="approved", approved_by=ok.approved_by, at=now,
                        state=erasing)
        step.ctx.audit(step.store, f"{wf.audit}.approved", {"plan_hash": run.plan_hash, "approved_by": ok.approved_by,
                                                            "subjects": run.plan_subjects})


@dataclass(frozen=True)
class Unapproved:
    """A plan that waited for a person and was not approved."""

    why: str                  # "the plan was rejected by X", "no one approved the plan before the approval timed out"
    approval_state: str       # rejected, timed_out
    by: str | None            # who rejected it (None: the timeout)


def close_unapproved(step, wf: Workflow, run: RunRecord) -> Unapproved | None:
    """At the end of a run whose plan waited for a reviewer and was not approved: record the rejection (or the
    timeout) on the run and say so; None for any other run."""
    if not (run.approval == "review" and run.approval_state == "waiting"):
        return None
    who = guard.responder(step.approval)
    if who is None:
        closed = Unapproved(f"no one approved the {wf.plan_name} before the approval timed out", "timed_out", None)
    else:
        closed = Unapproved(f"the {wf.plan_name} was rejected by {who}", "rejected", who)
    # approved_by holds the person who answered the gate, whichever way: a rejection names its reviewer there too.
    record_approval(step.store, run, approval_state=closed.approval_state, approved_by=closed.by,
                    at=step.ctx.now() if closed.by else None)
    return closed


# -- verify ----------------------------------------------------------------------------------------------------

def verify(step, wf: Workflow) -> dict:
    """After commit, count again what is left of the run's erased subjects in every mapped table (and every table
    the map forgot), by key; then forget their account ids: from here on the store knows them by keyed hash
    only. Anything left fails the task (:class:`NotClean`), naming the tables, and keeps the account ids."""
    ops, store, dm, ctx = step.ops, step.store, step.datamap, step.ctx
    rows = wf.subjects.unverified(store, ctx.run_id)
    unmapped = erasure.discover_unmapped(ops, dm)
    left: dict[str, int] = {}
    stores = getattr(step, "stores", None)
    for start in range(0, len(rows), VERIFY_CHUNK):
        chunk = rows[start:start + VERIFY_CHUNK]
        found = dict(erasure.residual_by_keys(ops, dm, [uid for _, uid in chunk], unmapped))
        if stores is not None:  # the other stores' rows tied by key
            found.update(erasure.residual_by_keys_elsewhere(dm, stores, [uid for _, uid in chunk]))
        for table, n in found.items():
            left[table] = left.get(table, 0) + n
    if left:
        where = ", ".join(f"{n} row(s) in {t}" for t, n in sorted(left.items()))
        ctx.audit_step(store, f"{wf.audit}.verify_failed", {wf.unit: len(rows), "left": left})
        raise NotClean(f"after the erasure committed, {where} are still tied to subjects this run erased (written "
                       "after their erasure, or missed by the data map): their account ids are kept in "
                       f"{wf.records} until this is fixed and the task is cleared")
    verified = wf.subjects.mark_verified(store, ctx.run_id, [k for k, _ in rows], ctx.now())
    if rows:
        ctx.audit_step(store, f"{wf.audit}.verified", {wf.unit: verified, "tables": len(erasure.targets(dm))},
                       summed=(wf.unit,))
    log.info("verified %d erased %s: nothing left in any of the %d mapped table(s)%s", verified, wf.unit,
             len(erasure.targets(dm)), f" or {len(unmapped)} unmapped one(s)" if unmapped else "")
    return {"verified": verified}


# -- the run's end -------------------------------------------------------------------------------------------

def refused_counts(store, wf: Workflow, run_id: str) -> tuple[int, int]:
    """The subjects this run recorded ``incomplete`` because of a refusal, in one read: (those whose file the object
    store refused: a file of the subject still ``found``, never done, in ``compliance.erasure_files``, and none
    ``not_allowed`` (one the settings do not allow holds every other file of the subject back untouched); those whose erasure the database refused: their reason is
    :func:`include.erasure.stores.subject_refused_reason`'s, naming the table, and their files, found before the
    refusal, were never asked for, so they count here only)."""
    from include.erasure.stores import ERASURE_REFUSED

    records = sql.Identifier(*wf.records.split("."))
    return store.execute(sql.SQL(
        """select count(distinct r.subject_hash) filter (where not by_database and exists (
                      select 1 from compliance.erasure_files f
                      where f.subject_hash = r.subject_hash and f.state = 'found' and f.done_at is null)
                  and not exists (
                      select 1 from compliance.erasure_files f
                      where f.subject_hash = r.subject_hash and f.state = 'not_allowed' and f.done_at is null)),
                  count(distinct r.subject_hash) filter (where by_database)
           from {records} r, lateral (select coalesce(starts_with(r.reason, %s), false) as by_database) d
           where r.run_id = %s and r.outcome = 'incomplete'""").format(records=records),
        (ERASURE_REFUSED, run_id)).fetchone()


def refused_subjects(store, wf: Workflow, run_id: str) -> int:
    """The subjects this run left ``incomplete`` because the object store refused a file of theirs
    (:func:`refused_counts`)."""
    return refused_counts(store, wf, run_id)[0]


def fail_if_refused(store, wf: Workflow, run_id: str, what: str) -> None:
    """At the very end of a finished run: fail it in one sentence if the object store refused some subjects' files,
    or the database their erasure (on-call must look), once every other subject was erased, verified and the run
    recorded."""
    from include.erasure.stores import SubjectsRefused

    files, database = refused_counts(store, wf, run_id)
    if files or database:
        raise SubjectsRefused(files, what, by_database=database)
