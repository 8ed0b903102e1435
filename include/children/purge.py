"""The steps of ``child_data_purge`` as plain functions (no Airflow in here): detect, plan, purge, verify,
notify, finish. Each takes the step context (:mod:`include.step`: connections, data map, settings, the run's
resolved parameters, the subject key, the mailer, the reviewer's answer), records what it did in the
compliance store and the audit log, and returns a small summary for XCom. The run's record, its approval,
verification and end are the erasure run's (:mod:`include.erasure.run`), shared with request fulfilment.

docs/rules.md ("Children", "Erasure"); COPPA (16 CFR §312.2: a child is under 13; §312.10: keep a child's data no longer than needed
and delete it securely). Logs and records carry counts, report and hold ids, and keyed subject hashes,
never a subject's email, name, phone, birth date or IP address.

A run's subjects are fixed when it first detects them, and its plan when it first plans: every later
attempt of the same run (an Airflow retry, a cleared task, `dags test` of the same logical date) carries
out that recorded plan, so an approval given for a plan stays an approval of exactly that plan.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import date
from typing import Mapping

import psycopg
from psycopg import sql

from include import erasure
from include import child_detection as detection
from include.children import ledger, reports, summary
from include.children.ledger import WORKFLOW
from include.children.params import PurgeParams
from include.datamap import DataMap
from include.erasure import guard
from include.erasure import run as erasure_run
from include.erasure.guard import NotApproved, PlanChanged
from include.erasure.guard import short as _short
from include.erasure.stores import (REFUSED, access_of, incomplete_reason, subject_files, subject_refused_reason,
                                    warn_refused)
from include.errors import Transient, over_limit
from include.objectstore import ObjectStoreRefused
from include.periods import ParamError, acting_day
from include.runconf import ids_in_brief
from include.delivery.engine import deliver
from include.step import Step
from include.subjects import user_hash

log = logging.getLogger(__name__)


class SubjectsBusy(Transient):
    """Some subjects' rows stayed locked by other transactions, or an earlier attempt still alive is recording them;
    the retry erases or settles them."""


PurgeNotClean = erasure_run.NotClean  # after the purge committed, rows are still tied to a purged subject

# Another attempt of the run marked the subject 'erasing' (an attempt still alive beside its retry): its erasure
# committed, or is about to, and that attempt records it as purged, or the retry's settle does. What this attempt
# found then (the account gone, a hold, a refusal) is not the subject's outcome, and is not recorded over it.
IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class RecordedByAnother:
    """A subject whose outcome another attempt of the run recorded before this one could: what its record says. This
    attempt's own finding (the account gone, a refusal) is not the subject's outcome, and is not counted as one."""

    outcome: str


# -- detect ------------------------------------------------------------------------------------------------

def judged_on(step: Step[PurgeParams]) -> date:
    """The day the rules judge the accounts as of: the run's own day, or today when the run acts days after it (a
    run cleared, retried or caught up then): it reads and erases the accounts as they are now, so it never judges
    them as of a day before (:func:`include.periods.acting_day`)."""
    return acting_day(step.params.as_of, step.ctx.now(), step.settings.tz)


def _start(step: Step[PurgeParams], as_of: date) -> erasure_run.RunRecord:
    params = step.params
    return erasure_run.start_run(step.store, WORKFLOW, erasure_run.RunStart(
        run_id=step.ctx.run_id, as_of=as_of, run_type=params.run_type, dry_run=params.dry_run,
        threshold=step.settings.purge_threshold, started_at=step.ctx.now(), targets=params.user_ids,
        max_subjects=params.max_subjects))


def detect_children(step: Step[PurgeParams]) -> dict:
    """Find every child (and every account no rule can judge), the reports naming no one and those waiting for a
    person; record them."""
    ops, store, dm, settings, ctx, params = step.ops, step.store, step.datamap, step.settings, step.ctx, step.params
    as_of = judged_on(step)
    earlier = erasure_run.load_run(store, WORKFLOW, ctx.run_id)
    if earlier is None or earlier.detected_at is None:  # a retry of a run that detected carries on with that
        _check_confirmed(ops, dm, params.confirm_user_ids)
    run = _start(step, as_of)
    if run.detected_at is None:
        found = detection.detect(ops, dm, as_of=as_of, tz=settings.timezone, user_ids=params.user_ids,
                                 confirmed=params.confirm_user_ids)
        subjects = [ledger.Detected(user_hash(step.key, s.user_id), s.user_id, s.rules, s.problems, s.report_ids)
                    for s in found]
        outcomes = _report_outcomes(ops, dm, params, as_of, settings.timezone)
        counts = {**_detection_counts(found, outcomes), "as_of": as_of.isoformat()}
        if as_of != params.as_of:
            counts["run_day"] = params.as_of.isoformat()
        if params.targeted:
            children = {s.user_id for s in found if s.child}
            counts["targeted"] = len(params.user_ids)
            counts["not_children"] = sorted(set(params.user_ids) - children)
        if ledger.record_detection(store, ctx.run_id, subjects, outcomes, at=ctx.now(), counts=counts):
            ctx.audit(store, "child_purge.detected", {**counts, "dry_run": params.dry_run})
    else:
        log.info("this run already detected its subjects in an earlier attempt: carrying on with those")
    counts = erasure_run.recorded_counts(store, run, "detected")
    if counts.get("run_day"):
        log.warning("this run acts after its own day: its rules judged the accounts as of %s, not its own day %s "
                    "(a run cleared, retried or caught up later reads the accounts as they are now)",
                    counts["as_of"], counts["run_day"])
    log.info("as of %s: %d child(ren) (%s), %d account(s) invalid; open reports naming no one: %s",
             counts.get("as_of", as_of),
             counts.get("children", 0), ", ".join(f"{k}={v}" for k, v in counts.get("rules", {}).items()) or "none",
             counts.get("invalid", 0), ", ".join(f"{k}={v}" for k, v in counts.get("reports", {}).items()) or "none")
    if counts.get("not_children"):
        log.info("targeted account id(s) that no rule catches (nothing to do): %s",
                 ids_in_brief(counts["not_children"]))
    review = counts.get("reports", {}).get(ledger.NEEDS_REVIEW, 0)
    if review:
        log.warning("%d report(s) name only an address that names several accounts or an adult: nothing of theirs "
                    "is erased until a person confirms which account is meant (confirm_user_ids; the compliance "
                    "page lists them)", review)
    return counts


def _check_confirmed(ops, dm: DataMap, confirmed: tuple[int, ...]) -> None:
    """Refuse ``confirm_user_ids`` naming an account no open report names (a typo of an id the compliance page lists,
    a report resolved since): it would confirm nothing, and the run would end as if the child had been dealt with."""
    stray = sorted(set(confirmed) - detection.named_by_open_reports(ops, dm, confirmed))
    if stray:
        which = "this account" if len(stray) == 1 else "these accounts"
        raise ParamError(f"confirm_user_ids {', '.join(map(str, stray))}: no open child report names {which} (by "
                         "its id, or by an address it holds), so there is nothing to confirm: give the account ids the "
                         "compliance page lists for the report that needs a person; the run stopped before reading a "
                         "subject or changing anything")


def _report_outcomes(ops, dm: DataMap, params: PurgeParams, as_of: date, tz: str) -> list[ledger.ReportNote]:
    """Open reports that name no one to purge, or that a person must look at. A live run resolves the no_match
    and already_gone ones when it finishes (detection and planning only read the database); a needs_review one
    stays open; a confirmed one is resolved once the accounts a person confirmed are purged. A targeted run
    notes only the reports that need a person and name one of its accounts."""
    found = [] if params.targeted else (
        [ledger.ReportNote(r.report_id, r.outcome) for r in detection.unmatched_reports(ops, dm)]
        + [ledger.ReportNote(rid, "invalid", "the report names neither an account id nor an email address")
           for rid in detection.empty_reports(ops, dm)])
    for r in detection.reports_needing_review(ops, dm, as_of=as_of, tz=tz, confirmed=params.confirm_user_ids):
        if params.targeted and not set(r.user_ids) & set(params.user_ids):
            continue
        if r.confirmed:
            found.append(ledger.ReportNote(r.report_id, ledger.CONFIRMED, f"a person confirmed account(s) "
                         f"{', '.join(map(str, r.confirmed))} of the {len(r.user_ids)} it names",
                         r.user_ids, r.confirmed))
        else:
            found.append(ledger.ReportNote(r.report_id, ledger.NEEDS_REVIEW, r.reason, r.user_ids))
    return sorted(found)


def _detection_counts(found, outcomes) -> dict:
    rules: dict[str, int] = {}
    for s in found:
        for rule in s.rules:
            rules[rule] = rules.get(rule, 0) + 1
    by_outcome: dict[str, int] = {}
    for note in outcomes:
        by_outcome[note.outcome] = by_outcome.get(note.outcome, 0) + 1
    return {"children": sum(1 for s in found if s.child), "invalid": sum(1 for s in found if not s.child),
            "with_problems": sum(1 for s in found if s.child and s.problems), "rules": dict(sorted(rules.items())),
            "reports": dict(sorted(by_outcome.items()))}


# -- plan --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    """What a plan may do next (:class:`include.erasure.guard.Gate`), and what its subjects' records say now."""

    guard: guard.Gate
    state: str                   # the run's state: dry_run, plan_changed, nothing_to_purge, planned, awaiting_approval
    subjects: ledger.SubjectsOutcome

    @property
    def approval(self) -> str | None:
        return self.guard.approval


def gate(plan_hash: str, erasable: int, params: PurgeParams, threshold: int, *, rest_of_approved: bool = False
         ) -> Gate:
    """The erasure guards (:func:`include.erasure.guard.gate`) for a plan erasing ``erasable`` children."""
    g = guard.gate(plan_hash, erasable=erasable, to_erase=erasable, params=params, threshold=threshold,
                   rest_of_approved=rest_of_approved)
    if g.state == guard.DRY_RUN:
        return Gate(g, g.state, ledger.SubjectsOutcome(ledger.DRY_RUN, "dry run: planned and counted, nothing changed"))
    if g.state == guard.PLAN_CHANGED:
        return Gate(g, g.state, ledger.SubjectsOutcome(
            ledger.APPROVAL_REQUIRED, f"the plan changed since it was approved (approved {_short(params.approve_plan)}, "
                                      f"now {_short(plan_hash)}): nothing was erased"))
    state = "nothing_to_purge" if g.state == guard.NOTHING_TO_ERASE else g.state
    return Gate(g, state, ledger.SubjectsOutcome(ledger.PLANNED))


def plan_purge(step: Step[PurgeParams]) -> dict:
    """Plan the erasure of the detected children from the data map; record it; decide its gate."""
    ops, store, dm, settings, ctx, params = step.ops, step.store, step.datamap, step.settings, step.ctx, step.params
    run = erasure_run.load_run(store, WORKFLOW, ctx.run_id)
    if run.planned_at is None:
        ids = [uid for _, uid in ledger.detected_subjects(store, ctx.run_id)]
        plan = erasure.plan(ops, dm, ids, step.key, at=ctx.now(), stores=step.stores).limited(params.max_subjects)
        guard.check_mapped(plan)
        elsewhere = set() if params.dry_run else erasure.rest_of_approved(
            plan, params.approve_plan, lambda approved: ledger.erased_by_other_runs_of(store, approved, ctx.run_id))
        rest = bool(elsewhere)
        g = gate(plan.hash, len(plan.erasable), params, settings.purge_threshold, rest_of_approved=rest)
        counts = {"erasable": len(plan.erasable), "held": len(plan.held), "deferred": len(plan.deferred),
                  "gone": len(plan.gone), "rows": plan.rows, "tables": plan.table_totals(),
                  "vendors": [v["vendor_id"] for v in plan.vendor_totals()],
                  **({"rest_of_plan": params.approve_plan, "erased_by_other_runs": len(elsewhere)} if rest else {})}
        facts = erasure_run.PlanFacts(plan.hash, len(plan.erasable), plan.rows, g.guard, at=ctx.now(), counts=counts,
                                      state=g.state)
        if ledger.record_plan(store, ctx.run_id, plan, facts, g.subjects):
            ctx.audit(store, "child_purge.planned", {"plan_hash": plan.hash, "state": g.state,
                                                     "approval": g.approval, "threshold": settings.purge_threshold,
                                                     **counts})
    else:
        log.info("this run already planned in an earlier attempt: carrying out that plan")
    result = plan_summary(store, ctx.run_id)
    _log_plan(result)
    if result["state"] == "plan_changed":
        raise PlanChanged(f"the plan changed since it was approved (approve_plan {_short(params.approve_plan)}, plan "
                          f"now {_short(result['plan_hash'])}, {result['subjects']} subject(s)): nothing was erased; "
                          "run a dry run again and approve the plan it prints")
    return result


# The records of a plan's erasable subjects, whatever became of them since (for the plan's totals).
_PLANNED = sql.SQL("""select planned_tables, vendors from compliance.child_purges
                      where run_id = %(run)s and outcome in ('planned', 'erasing', 'purged', 'dry_run',
                                                             'approval_required')""")


def plan_summary(store, run_id: str) -> dict:
    """The run's plan as recorded: hash, sizes, rows per table, vendors, gate, and the text a reviewer reads."""
    plan_hash, subjects, rows, approval, state, dry_run, threshold = store.execute(
        """select plan_hash, plan_subjects, plan_rows, approval, state, dry_run, threshold
           from compliance.child_purge_runs where run_id = %s""", (run_id,)).fetchone()
    tables, by_vendor = erasure_run.planned_totals(store, _PLANNED, run_id)
    vendors = [{"vendor_id": v, "name": n, "subjects": k} for v, n, k in by_vendor]
    outcomes = ledger.outcome_counts(store, run_id)
    result = {"plan_hash": plan_hash, "subjects": subjects or 0, "to_erase": subjects or 0, "rows": rows or 0,
              "approval": approval,
              "state": state, "dry_run": dry_run, "threshold": threshold, "outcomes": outcomes,
              "tables": tables, "vendors": vendors}
    result["approval_subject"] = (f"Erase {result['subjects']} children's accounts and their data? "
                                  f"(plan {_short(plan_hash)})")
    result["approval_body"] = approval_body(result)
    return result


def approval_body(plan: Mapping) -> str:
    """What the reviewer reads (Markdown): sizes, rows per table, vendors, the hash. No personal data."""
    outcomes = plan.get("outcomes", {})
    return guard.review_text(
        f"**{plan['subjects']} children's accounts** would be erased from every table of the data map "
        f"({plan['rows']} rows), {guard.against_threshold(plan['subjects'], plan['threshold'])}.",
        plan["plan_hash"], plan["tables"],
        f"{outcomes.get('held', 0)} under an active legal hold, {outcomes.get('invalid', 0)} invalid (no rule could "
        f"judge), {outcomes.get('deferred', 0)} deferred.",
        [f"#{v['vendor_id']} {v['name'] or '(unknown vendor)'} ({v['subjects']})" for v in plan["vendors"]])


def _log_plan(plan: Mapping) -> None:
    log.info("plan %s: %d subject(s) to erase, %d row(s) (%s); outcomes so far: %s; gate: %s (approval %s, "
             "threshold %d)", plan["plan_hash"], plan["subjects"], plan["rows"],
             ", ".join(f"{t}={n}" for t, n in plan["tables"].items() if n) or "no rows",
             ", ".join(f"{k}={v}" for k, v in plan["outcomes"].items()) or "none", plan["state"],
             plan["approval"] or "-", plan["threshold"])
    if plan["state"] == "dry_run":
        log.info("dry run: nothing was changed. To carry out exactly this plan, trigger a live run with "
                 "dry_run=false and approve_plan=%s", plan["plan_hash"])


# -- purge -------------------------------------------------------------------------------------------------

def purge_subjects(step: Step[PurgeParams], *, progress_every: float = 10.0) -> dict:
    """Erase each planned subject in its own transaction (see :mod:`include.erasure.engine`), record it."""
    ops, store, dm, ctx = step.ops, step.store, step.datamap, step.ctx
    if ops is store:
        raise ValueError("purge_subjects needs separate connections for the operational DB and the store")
    run = erasure_run.load_run(store, WORKFLOW, ctx.run_id)
    if run is None or run.planned_at is None:
        raise NotApproved("the purge step found no plan for this run: the planning step must run first")
    if run.state in ("dry_run", "nothing_to_purge", "plan_changed", "rejected"):
        log.info("nothing to purge in this run (%s)", run.state)
        return {"skipped": run.state}
    erasure_run.check_approval(step, WORKFLOW, run)
    unmapped = erasure.discover_unmapped(ops, dm)
    settled = settle(step, unmapped)
    rows = ledger.open_rows(store, ctx.run_id)
    log.info("purging %d subject(s) of plan %s%s", len(rows), run.plan_hash,
             f"; settled {settled} record(s) left half-way by an interrupted attempt" if settled else "")
    tally: dict[str, int] = {}
    by_another: dict[str, int] = {}  # subjects another attempt recorded first, by what their records say
    busy, later = [], []

    def count(outcome: str | RecordedByAnother) -> None:
        if isinstance(outcome, RecordedByAnother):
            by_another[outcome.outcome] = by_another.get(outcome.outcome, 0) + 1
        else:
            tally[outcome] = tally.get(outcome, 0) + 1

    started = last = time.monotonic()
    for done, row in enumerate(rows, 1):
        outcome = _purge_one(step, row, unmapped, wait=False)
        if outcome == erasure.CLAIMED_ELSEWHERE:
            later.append(row)
        elif outcome in ("busy", IN_FLIGHT):
            busy.append(row)
        else:
            count(outcome)
        if time.monotonic() - last >= progress_every:
            last = time.monotonic()
            log.info("purge progress: %d/%d subject(s) (%s), %.1f/s", done, len(rows), _fmt(tally),
                     done / (last - started))
    for row in later:  # claimed by another eraser a moment ago: wait for it, then see what is left
        outcome = _purge_one(step, row, unmapped, wait=True)
        if outcome in ("busy", IN_FLIGHT):
            busy.append(row)
        else:
            count(outcome)
    result = {"plan_hash": run.plan_hash, "subjects": len(rows), "outcomes": dict(sorted(tally.items())),
              "settled": settled, "busy": len(busy),
              # only when another attempt recorded a child this one found: the entry of every other run stays as it was
              **({"recorded_by_another_attempt": dict(sorted(by_another.items()))} if by_another else {})}
    # A re-run of the step (retried, cleared) says so and what the step erased over all its attempts.
    ctx.audit_step(store, "child_purge.purged", result, summed=("outcomes", "settled"), kept=("subjects",))
    log.info("purge of plan %s done in %.1f s: %s%s", run.plan_hash, time.monotonic() - started, _fmt(tally) or "none",
             f"; recorded by another attempt of this run meanwhile: {_fmt(by_another)}" if by_another else "")
    if busy:
        raise SubjectsBusy(f"{len(busy)} subject(s) stayed locked by other transactions (the application, or an "
                           "earlier attempt still alive) or are being recorded by an earlier attempt, and were not "
                           "erased by this one; the task's retry erases or settles them")
    warn_refused(tally.get(REFUSED, 0))  # the run fails at its end (finish_run), once the others are verified
    return result


def _fmt(tally: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tally.items()))


class _NotThisRunsToErase(Exception):
    """The subject's record left 'planned' while we erased it: roll the erasure back."""


def _purge_one(step: Step[PurgeParams], row: ledger.OpenRow, unmapped, *, wait: bool) -> str | RecordedByAnother:
    ops, store, dm, settings, ctx, params = step.ops, step.store, step.datamap, step.settings, step.ctx, step.params
    now = ctx.now()

    marked = []  # this attempt's 'erasing' record of the subject, once written

    def before_commit(result: erasure.ErasureResult) -> None:
        if not ledger.mark_erasing(store, ctx.run_id, result):
            raise _NotThisRunsToErase()
        marked.append(result.subject_hash)

    if row.outcome == ledger.ERASING:  # an attempt that is still alive holds it: the retry settles it
        return IN_FLIGHT
    try:
        result = erasure.erase_subject(ops, dm, row.user_id, step.key, at=now, options=erasure.EraseOptions(
            unmapped=unmapped, wait=wait, stores=access_of(step),
            recheck=lambda conn: detection.still_a_child(conn, dm, row.user_id,
                                                         as_of=acting_day(params.as_of, now, settings.tz),
                                                         tz=settings.timezone, confirmed=params.confirm_user_ids),
            in_transaction=lambda conn: reports.resolve_for_subject(conn, dm, row.user_id, row.report_ids, now,
                                                                    confirmed=params.confirm_user_ids),
            before_commit=before_commit))
    except _NotThisRunsToErase:
        return "skipped"
    except erasure.SubjectBusy:
        return "busy"
    # The object store or the database refused this child alone (a constraint or trigger of the application's, or
    # one of the database's limits): recorded for a person, the others go on.
    except (ObjectStoreRefused, erasure.ErasureError, psycopg.DatabaseError) as exc:
        if isinstance(exc, psycopg.OperationalError) and over_limit(exc) is None:
            raise  # a lost connection or a timeout: the task's one sentence, and its retry
        reason = subject_refused_reason(exc)
        with store.transaction():
            if marked:  # refused at its commit: the erasure its 'erasing' record describes was rolled back
                ledger.back_to_planned(store, ctx.run_id, row.subject_hash, now)
            recorded = ledger.finish_subject(store, ctx, ctx.run_id, erasure.ErasureResult(
                row.user_id, row.subject_hash, erasure.INCOMPLETE, at=now), reason=reason)
        if not recorded:
            return _as_recorded(step, row, "its erasure refused")
        log.warning("a subject was left incomplete: %s", reason)
        return REFUSED
    if result.outcome == erasure.CLAIMED_ELSEWHERE:
        return result.outcome
    reason = {erasure.HELD: f"active legal hold(s) {', '.join(map(str, result.holds))} (found under its claim)",
              erasure.NOT_ELIGIBLE: "no rule catches the account any more (re-checked under its claim)",
              erasure.ALREADY_ERASED: "the account and its rows were already gone",
              erasure.INCOMPLETE: incomplete_reason(result.not_allowed)}.get(result.outcome)
    if not ledger.finish_subject(store, ctx, ctx.run_id, result, reason=reason):
        return _as_recorded(step, row, result.outcome)
    return result.outcome


def _as_recorded(step: Step, row: ledger.OpenRow, found: str) -> str | RecordedByAnother:
    """A subject whose outcome this attempt could not record (its record was no longer ``planned``): in flight while
    another attempt's erasure is recorded ``erasing``, else what that attempt recorded, said and counted as such."""
    recorded = ledger.recorded_outcome(step.store, step.ctx.run_id, row.subject_hash)
    if recorded == ledger.ERASING:
        return IN_FLIGHT
    log.info("a subject this attempt found %s was not recorded so: another attempt of this run recorded it %s first",
             found, recorded)
    return RecordedByAnother(recorded)


def settle(step: Step, unmapped=None) -> int:
    """Settle every record left 'erasing' (by any run) by a worker that died between recording the counts
    and recording the outcome: if the erasure committed (the account is gone) it is purged with the
    counts it recorded and the reports its transaction resolved; if it did not (the account is there and nobody
    holds it) it is planned again."""
    ops, store, dm, ctx = step.ops, step.store, step.datamap, step.ctx
    settled = 0
    for run_id, row in ledger.erasing_rows(store):
        state = erasure.probe(ops, dm, row.user_id, unmapped)
        if state.exists and state.busy:
            continue  # an attempt that is still alive holds it
        if state.exists:
            ledger.back_to_planned(store, run_id, row.subject_hash, ctx.now())
        else:
            # The reports the committed transaction resolved, as the attempt that erased would have recorded them: its
            # result is gone (a worker lost, or an attempt a moment from recording it), the record keeps counts only.
            result = ledger.recorded_result(store, run_id, row.subject_hash, row.user_id)
            resolved = reports.resolved_by_erasure(ops, dm, row.report_ids, result.at)
            files = tuple(subject_files(store, row.subject_hash))  # what the soft delete keeps, for its reason
            ledger.finish_subject(store, ctx, run_id, replace(result, files=files,
                                                              extra={"reports_resolved": resolved}), settled=True)
        settled += 1
    return settled


# -- verify ------------------------------------------------------------------------------------------------

def verify_purge(step: Step) -> dict:
    """After commit, count again what is left of the run's erased subjects in every table (by key); then
    forget their account ids: from here on the store knows them by keyed hash only."""
    return erasure_run.verify(step, WORKFLOW)


# -- notify ------------------------------------------------------------------------------------------------

def notify_compliance(step: Step[PurgeParams]) -> dict:
    """One email per run that purged anyone: counts per outcome, table and vendor (deletion notices owed)."""
    store, mailer, settings, ctx = step.store, step.mailer, step.settings, step.ctx
    if step.params.dry_run:
        log.info("dry run: no summary email")
        return {"skipped": "dry run"}
    earlier = summary.status(store, ctx.run_id)
    if earlier and earlier[0] == "sent":
        log.info("the summary of this run was already sent")
        return {"already_sent": ctx.run_id}
    if earlier and earlier[0] == "failed":
        log.error("the summary of this run was refused by SendGrid earlier and is not retried: %s", earlier[1])
        return {"failed_earlier": ctx.run_id}
    counts = summary.counts_for_run(store, ctx.run_id)
    if not counts["outcomes"].get("purged"):
        log.info("nothing was purged in this run: no summary email")
        return {"skipped": "nothing purged"}
    summary.record(store, run_id=ctx.run_id, recipient=settings.compliance_team_email, counts=counts, now=ctx.now())
    report = deliver(store, summary.ledger(settings, ctx.run_id), mailer, ctx)
    log.info("summary email: %d sent, %d failed; deletion notices owed to %d vendor(s)", report.sent, report.failed,
             len(counts["vendors"]))
    return {"sent": report.sent, "failed": report.failed, "vendors": len(counts["vendors"])}


# -- finish ------------------------------------------------------------------------------------------------

def finish_run(step: Step[PurgeParams]) -> dict:
    """Close the run: a plan nobody approved gets its subjects marked ``rejected``; a live run resolves the
    reports that named no one (``no_match``, ``already_gone``) and still name no one; record the run's state."""
    ops, store, dm, ctx = step.ops, step.store, step.datamap, step.ctx
    run = erasure_run.load_run(store, WORKFLOW, ctx.run_id)
    now = ctx.now()
    state = run.state
    resolved = 0
    if not run.dry_run and not run.targeted:
        # Only those that still name no one: since detection (hours ago, behind a reviewer) a report may have been
        # corrected, or the account its address names created; the next run finds whom it names.
        still = {r.report_id for r in detection.unmatched_reports(ops, dm)}
        ids = [rid for rid in ledger.reports_to_resolve(store, ctx.run_id) if rid in still]
        reports.resolve(ops, dm, ids, now)
        resolved = ledger.mark_reports_resolved(store, ctx.run_id, ids)
    unapproved = erasure_run.close_unapproved(step, WORKFLOW, run)
    if unapproved:
        closed = ledger.close_open(store, ctx.run_id, ledger.REJECTED, f"{unapproved.why}; nothing was erased", now)
        ctx.audit_step(store, "child_purge.rejected", {"plan_hash": run.plan_hash, "subjects": closed,
                                                       "approval_state": unapproved.approval_state,
                                                       "by": unapproved.by}, summed=("subjects",))
        log.warning("plan %s was not approved (%s): %d subject(s) left untouched", run.plan_hash, unapproved.why,
                    closed)
        state = "rejected"
    elif state in ("purging", "purged", "failed"):  # an erasing run, or one that ended and was cleared
        state = "purged" if not ledger.open_rows(store, ctx.run_id) else "failed"
    counts = ledger.outcome_counts(store, ctx.run_id)
    erasure_run.finish_run(store, run, state=state, at=now, counts={"outcomes": counts})
    ctx.audit_step(store, "child_purge.finished", {"state": state, "plan_hash": run.plan_hash, "outcomes": counts,
                                                   "dry_run": run.dry_run, "reports_resolved": resolved})
    log.info("run finished: %s; subjects by outcome: %s; %d report(s) naming no one resolved", state,
             _fmt(counts) or "none", resolved)
    erasure_run.fail_if_refused(store, WORKFLOW, ctx.run_id, "subject(s) to purge")
    return {"state": state, "outcomes": counts, "reports_resolved": resolved}
