"""The purge's records in the compliance store (migration 0003): one row per subject and run, the reports'
outcomes and the vendors' deletion notices. The run itself is an erasure run (:mod:`include.erasure.run`,
:data:`WORKFLOW`), shared with request fulfilment.

Each write is safe to repeat: a run detects and plans once (the run row is locked while it does, and a
repeated attempt finds the work recorded); a subject's row only moves forward (``planned`` → ``erasing``
→ ``purged``, or from ``planned`` to another final outcome; an attempt whose erasure was refused at its commit puts
its ``erasing`` row back to ``planned`` first) through updates conditional on its current outcome, so two
attempts of one run can never both record the same subject.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Sequence

from psycopg.types.json import Jsonb

from include.audit import RunContext
from include.erasure import PURGED, ErasureResult, Plan, VendorShare
from include.erasure import run as erasure_run

SOURCE = "child_data_purge"

PLANNED = "planned"
ERASING = "erasing"
INVALID = "invalid"
DRY_RUN = "dry_run"
DEFERRED = "deferred"
APPROVAL_REQUIRED = "approval_required"
REJECTED = "rejected"
NEEDS_REVIEW = "needs_review"   # a report's outcome: its address names several accounts or an adult
CONFIRMED = "confirmed"         # a report's outcome: a person said which of its accounts it means
OPEN = (PLANNED, ERASING)


@dataclass(frozen=True)
class Detected:
    """A subject as detected: its keyed hash, rules, problems and reports (no personal data)."""

    subject_hash: str
    user_id: int
    rules: tuple[str, ...]
    problems: tuple[str, ...]
    report_ids: tuple[int, ...]

    @property
    def outcome(self) -> str:
        return PLANNED if self.rules else INVALID

    @property
    def reason(self) -> str | None:
        return None if self.rules else "; ".join(self.problems)


@dataclass(frozen=True, order=True)
class ReportNote:
    """What a run found of an open report that leads to no purge of its own: named no one (``no_match``,
    ``already_gone``, ``invalid``), or needs a person (``needs_review``, ``confirmed``: the accounts it names
    and those a person confirmed)."""

    report_id: int
    outcome: str
    reason: str | None = None
    user_ids: tuple[int, ...] = ()
    confirmed: tuple[int, ...] = ()


def record_detection(store, run_id: str, subjects: Sequence[Detected], reports: Iterable[ReportNote],
                     *, at: datetime, counts: dict) -> bool:
    """Record what the run detected (its rules judged as of ``counts["as_of"]``, the day its record keeps), once;
    False when an earlier attempt of the run already had."""
    with erasure_run.locked_run(store, WORKFLOW, run_id) as run:
        if run.detected_at is not None:
            return False
        with store.cursor().copy(
                "copy compliance.child_purges (run_id, subject_hash, user_id, rules, problems, report_ids, outcome, "
                "reason, detected_at, updated_at) from stdin") as copy:
            for s in subjects:
                copy.write_row((run_id, s.subject_hash, s.user_id, list(s.rules), list(s.problems), list(s.report_ids),
                                s.outcome, s.reason, at, at))
        with store.cursor() as cur:
            cur.executemany("""insert into compliance.child_report_outcomes (run_id, report_id, outcome, reason, resolved,
                                                                           user_ids, confirmed_user_ids, recorded_at)
                               values (%s, %s, %s, %s, false, %s, %s, %s) on conflict do nothing""",
                            [(run_id, r.report_id, r.outcome, r.reason, list(r.user_ids), list(r.confirmed), at)
                             for r in reports])
        as_of = date.fromisoformat(counts["as_of"]) if counts.get("as_of") else None
        erasure_run.record_detection(store, run, at=at, counts=counts, as_of=as_of)
    return True


def reports_to_resolve(store, run_id: str) -> list[int]:
    """The reports naming no one (no_match, already_gone) that this run found and has not resolved yet."""
    return [r[0] for r in store.execute(
        """select report_id from compliance.child_report_outcomes
           where run_id = %s and outcome in ('no_match', 'already_gone') and not resolved order by report_id""",
        (run_id,))]


def mark_reports_resolved(store, run_id: str, report_ids: Sequence[int]) -> int:
    """Record these reports naming no one resolved by the run; returns how many the run has resolved, over all its
    attempts (a cleared ``finish_run`` finds its first attempt's resolved already)."""
    store.execute("""update compliance.child_report_outcomes set resolved = true
                     where run_id = %s and report_id = any(%s)""", (run_id, list(report_ids)))
    return store.execute("""select count(*) from compliance.child_report_outcomes
                            where run_id = %s and outcome in ('no_match', 'already_gone') and resolved""",
                         (run_id,)).fetchone()[0]


def erased_by_other_runs_of(store, plan_hash: str, run_id: str) -> set[str]:
    """Subjects (keyed hashes) that other live runs carrying out the plan ``plan_hash`` erased, or are erasing."""
    return {h for (h,) in store.execute(
        """select p.subject_hash from compliance.child_purges p
           join compliance.child_purge_runs r on r.run_id = p.run_id
           where r.plan_hash = %s and r.run_id <> %s and not r.dry_run and p.outcome in ('purged', 'erasing')""",
        (plan_hash, run_id))}


def detected_subjects(store, run_id: str) -> list[tuple[str, int]]:
    """(subject hash, user id) of the children this run detected, by user id."""
    return store.execute("""select subject_hash, user_id from compliance.child_purges
                            where run_id = %s and outcome = 'planned' order by user_id""", (run_id,)).fetchall()


@dataclass(frozen=True)
class SubjectsOutcome:
    """What the plan's erasable subjects' records say when it is recorded: ``planned``; ``dry_run``;
    ``approval_required`` when the plan cannot go ahead; and why."""

    outcome: str
    reason: str | None = None


def record_plan(store, run_id: str, plan: Plan, facts: erasure_run.PlanFacts, erasable: SubjectsOutcome) -> bool:
    """Record the run's plan, once: each subject's planned tables and vendors, and its outcome so far.

    The erasable subjects get ``erasable``'s outcome; held ones ``held``, those beyond the cap ``deferred``, gone
    ones ``already_erased``.
    """
    at = facts.at
    rows = []
    for s in plan.erasable:
        rows.append((s.subject_hash, erasable.outcome, erasable.reason, s.tables_evidence(), s, ()))
    for s in plan.held:
        rows.append((s.subject_hash, "held", f"active legal hold(s) {', '.join(map(str, s.holds))}",
                     s.tables_evidence(), s, s.holds))
    for s in plan.deferred:
        rows.append((s.subject_hash, DEFERRED, "beyond this run's max_subjects; the next run picks it up",
                     s.tables_evidence(), s, ()))
    for s in plan.gone:
        rows.append((s.subject_hash, "already_erased", "the account no longer exists", {}, s, ()))
    with erasure_run.locked_run(store, WORKFLOW, run_id) as run:
        if run.planned_at is not None:
            return False
        store.execute("create temp table child_plan_rows (subject_hash text, outcome text, reason text, "
                      "planned_tables jsonb, vendors jsonb, holds bigint[], gone boolean) on commit drop")
        with store.cursor().copy("copy child_plan_rows from stdin") as copy:
            for subject_hash, outcome, why, tables, s, holds in rows:
                copy.write_row((subject_hash, outcome, why, Jsonb(tables), Jsonb([v.as_dict() for v in s.vendors]),
                                list(holds), not s.left))
        store.execute("""update compliance.child_purges c
                         set outcome = p.outcome, reason = p.reason, planned_tables = p.planned_tables,
                             vendors = p.vendors, holds = p.holds, updated_at = %s,
                             user_id = case when p.gone then null else c.user_id end
                         from child_plan_rows p
                         where c.run_id = %s and c.subject_hash = p.subject_hash and c.outcome = 'planned'""",
                      (at, run_id))
        erasure_run.record_plan(store, run, facts)
    return True


def close_open(store, run_id: str, outcome: str, reason: str, at: datetime) -> int:
    """Give every still-planned subject of the run a final outcome (rejected, approval_required)."""
    return store.execute("""update compliance.child_purges set outcome = %s, reason = %s, updated_at = %s
                            where run_id = %s and outcome = 'planned'""", (outcome, reason, at, run_id)).rowcount


@dataclass(frozen=True)
class OpenRow:
    subject_hash: str
    user_id: int
    report_ids: tuple[int, ...]
    outcome: str


def open_rows(store, run_id: str) -> list[OpenRow]:
    """The run's subjects still to erase, by user id."""
    return [OpenRow(h, u, tuple(r), o) for h, u, r, o in store.execute(
        """select subject_hash, user_id, report_ids, outcome from compliance.child_purges
           where run_id = %s and outcome in ('planned', 'erasing') order by user_id""", (run_id,))]


def erasing_rows(store) -> list[tuple[str, OpenRow]]:
    """(run id, record) of every record left 'erasing', whatever its run."""
    return [(run_id, OpenRow(h, u, tuple(r), o)) for run_id, h, u, r, o in store.execute(
        """select run_id, subject_hash, user_id, report_ids, outcome from compliance.child_purges
           where outcome = 'erasing' order by run_id, user_id""")]


def mark_erasing(store, run_id: str, result: ErasureResult) -> bool:
    """Record the counts of an erasure about to commit; False when the row is not this run's to erase."""
    return store.execute(
        """update compliance.child_purges
           set outcome = 'erasing', tables = %s, rows_erased = %s, kept = %s, vendors = %s, address_hash = %s,
               request_ids = %s, updated_at = %s
           where run_id = %s and subject_hash = %s and outcome = 'planned'""",
        (Jsonb(result.tables_evidence()), result.rows_erased,
         Jsonb({t.table: t.rows for t in result.kept}) if result.kept else None,
         Jsonb([v.as_dict() for v in result.vendors]), result.address_hash, _request_ids(result), result.at, run_id,
         result.subject_hash)).rowcount == 1


def _request_ids(result: ErasureResult) -> list[int] | None:
    """The ids of the privacy requests the erasure unlinked, as the record keeps them (migration 0027)."""
    return None if result.request_ids is None else list(result.request_ids)


def recorded_outcome(store, run_id: str, subject_hash: str) -> str | None:
    """What the subject's record of this run says now: ``erasing`` while an attempt's erasure is about to commit, or
    committed and not yet recorded; the outcome an attempt recorded; None when the run has no record of it."""
    row = store.execute("select outcome from compliance.child_purges where run_id = %s and subject_hash = %s",
                        (run_id, subject_hash)).fetchone()
    return None if row is None else row[0]


def back_to_planned(store, run_id: str, subject_hash: str, at: datetime) -> None:
    """An 'erasing' record whose transaction did not commit: the subject is to be erased again."""
    store.execute("""update compliance.child_purges set outcome = 'planned', tables = null, rows_erased = null,
                     kept = null, request_ids = null, updated_at = %s
                     where run_id = %s and subject_hash = %s and outcome = 'erasing'""",
                  (at, run_id, subject_hash))


def finish_subject(store, ctx: RunContext, run_id: str, result: ErasureResult, *, reason: str | None = None,
                   settled: bool = False) -> bool:
    """Record a subject's final outcome for this run, with its notices, report outcomes and audit entry.

    For a purge: the vendors become outstanding deletion notices, the reports the purge resolved are
    recorded, other runs' open records of the same subject become ``already_erased``, and one audit entry
    holds the evidence (hash, rules, tables and row counts, vendors). Any other outcome is written over a
    ``planned`` record only, and keeps none of an erasure's counts or request ids: an ``erasing`` record is an
    erasure about to commit, or committed, that its own attempt (alive beside its retry) records as purged, or
    the next attempt's :func:`include.children.purge.settle` does; an attempt whose own erasure was refused at its
    commit puts its record back first (:func:`back_to_planned`). Returns False when the row was not open to this
    outcome (another attempt recorded it, or is recording it).
    """
    at = result.at or ctx.now()
    purged = result.outcome == PURGED
    # The files a bucket's soft delete keeps recoverable until a day: said in the record, as a fulfilment's is.
    reason = "; ".join(w for w in (reason, result.recoverable_words()) if w) or None
    with store.transaction():
        if purged:
            changed = store.execute(
                """update compliance.child_purges
                   set outcome = 'purged', tables = %s, rows_erased = %s, kept = %s, vendors = %s, purged_at = %s,
                       address_hash = coalesce(%s, address_hash), request_ids = coalesce(%s, request_ids),
                       reason = %s, updated_at = %s
                   where run_id = %s and subject_hash = %s and outcome in ('planned', 'erasing')
                   returning rules""",
                (Jsonb(result.tables_evidence()), result.rows_erased,
                 Jsonb({t.table: t.rows for t in result.kept}) if result.kept else None,
                 Jsonb([v.as_dict() for v in result.vendors]), at, result.address_hash, _request_ids(result), reason,
                 at, run_id, result.subject_hash)).fetchone()
        else:
            changed = store.execute(
                """update compliance.child_purges
                   set outcome = %s, reason = coalesce(%s, reason), holds = %s, updated_at = %s,
                       tables = null, rows_erased = null, kept = null, request_ids = null
                   where run_id = %s and subject_hash = %s and outcome = 'planned'
                   returning rules""",
                (result.outcome, reason, list(result.holds), at, run_id, result.subject_hash)).fetchone()
        if changed is None:
            return False
        rules = list(changed[0])
        if purged:
            _record_notices(store, run_id, result.subject_hash, result.vendors, at)
            resolved = list(result.extra.get("reports_resolved", ()))
            if resolved:
                with store.cursor() as cur:
                    cur.executemany(
                        """insert into compliance.child_report_outcomes (run_id, report_id, outcome, resolved,
                                                                         subject_hash, recorded_at)
                           values (%s, %s, 'purged', true, %s, %s)
                           on conflict (run_id, report_id) do update
                               set outcome = 'purged', resolved = true, subject_hash = excluded.subject_hash,
                                   recorded_at = excluded.recorded_at
                               where child_report_outcomes.outcome = 'confirmed'""",
                        [(run_id, rid, result.subject_hash, at) for rid in resolved])
            store.execute("""update compliance.child_purges
                             set outcome = 'already_erased', reason = %s, user_id = null, updated_at = %s
                             where subject_hash = %s and run_id <> %s and outcome = 'planned'""",
                          (f"purged by run {run_id}", at, result.subject_hash, run_id))
            ctx.audit(store, "child_purge.subject_purged", {
                "subject_hash": result.subject_hash, "rules": rules, "tables": result.tables_evidence(),
                "rows_erased": result.rows_erased, "vendors": [v.vendor_id for v in result.vendors],
                "reports_resolved": resolved, "kept_shared_address": {t.table: t.rows for t in result.kept},
                # as the record's reason says: how many files a bucket's soft delete keeps, until when (no names)
                **({"recoverable_files": recoverable} if (recoverable := result.recoverable_evidence()) else {}),
                **({"settled_after_interruption": True} if settled else {})})
    return True


def _record_notices(store, run_id: str, subject_hash: str, vendors: Sequence[VendorShare], at: datetime) -> None:
    if not vendors:
        return
    with store.cursor() as cur:
        cur.executemany(
            """insert into compliance.vendor_deletion_notices (subject_hash, vendor_id, run_id, source, vendor_name,
                                                                vendor_known, categories, shares, share_ids,
                                                                created_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing""",
            [(subject_hash, v.vendor_id, run_id, SOURCE, v.name, v.known, list(v.categories), v.shares,
              list(v.share_ids) or None, at) for v in vendors])


def recorded_result(store, run_id: str, subject_hash: str, user_id: int) -> ErasureResult:
    """The erasure an 'erasing' record describes (its transaction committed: the account is gone). The record keeps
    its counts, not the reports it resolved: :func:`include.children.reports.resolved_by_erasure` reads those."""
    from include.erasure import TableCount

    tables, vendors, kept, requests, updated = store.execute(
        """select tables, vendors, kept, request_ids, updated_at from compliance.child_purges
           where run_id = %s and subject_hash = %s""", (run_id, subject_hash)).fetchone()
    return ErasureResult(
        user_id=user_id, subject_hash=subject_hash, outcome=PURGED,
        tables=tuple(TableCount(t, v["action"], v["rows"]) for t, v in (tables or {}).items()),
        vendors=tuple(VendorShare.from_dict(v) for v in vendors or ()),
        kept=tuple(TableCount(t, "kept", n) for t, n in (kept or {}).items()),
        request_ids=None if requests is None else tuple(requests), at=updated)


def unverified(store, run_id: str) -> list[tuple[str, int]]:
    """(subject hash, user id) of the run's erased subjects not yet checked after commit."""
    return store.execute("""select subject_hash, user_id from compliance.child_purges
                            where run_id = %s and outcome in ('purged', 'already_erased') and verified_at is null
                              and user_id is not null
                            order by user_id""", (run_id,)).fetchall()


def mark_verified(store, run_id: str, subject_hashes: Sequence[str], at: datetime) -> int:
    """Checked after commit: from now on the store knows these subjects by their keyed hash only.

    The check counted what is left of the subject, whichever run erased it: every run's ``purged`` (or
    ``already_erased``) record of these subjects is verified with it. Clearing another run's account id without
    verifying its record would leave that record unverified for ever (its own verify step looks for records
    that still hold an account id), as two live runs of one approved plan once showed."""
    with store.transaction():
        # Every run's rows of these subjects, locked first in one order: two runs verifying the same subjects at
        # once would otherwise each hold their own rows and wait for the other's (a deadlock).
        store.execute("""select 1 from compliance.child_purges where subject_hash = any(%s)
                         order by subject_hash, run_id for update""", (list(subject_hashes),))
        n = store.execute("""update compliance.child_purges set verified_at = %s, user_id = null
                             where run_id = %s and subject_hash = any(%s) and verified_at is null""",
                          (at, run_id, list(subject_hashes))).rowcount
        store.execute("""update compliance.child_purges
                         set user_id = null,
                             verified_at = case when outcome in ('purged', 'already_erased') then coalesce(verified_at, %s)
                                                else verified_at end
                         where subject_hash = any(%s) and run_id <> %s and outcome not in ('planned', 'erasing')
                           and (user_id is not null
                                or (verified_at is null and outcome in ('purged', 'already_erased')))""",
                      (at, list(subject_hashes), run_id))
    return n


def outcome_counts(store, run_id: str) -> dict[str, int]:
    return dict(sorted(store.execute("""select outcome, count(*) from compliance.child_purges where run_id = %s
                                        group by outcome""", (run_id,)).fetchall()))


class _Subjects:
    """The purge's records as the erasure run's verification and end see them (:class:`include.erasure.run.Subjects`)."""

    unverified = staticmethod(unverified)
    mark_verified = staticmethod(mark_verified)
    outcome_counts = staticmethod(outcome_counts)


WORKFLOW = erasure_run.Workflow(
    dag_id=SOURCE, first_state="detected", erasing_state="purging", audit="child_purge", plan_name="plan",
    records="compliance.child_purges", unit="subjects", subjects=_Subjects())
