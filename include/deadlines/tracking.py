"""The steps of the request-deadline-tracking DAG as plain functions (no Airflow in here).

Each step takes the step context (:class:`include.step.Step`: connections, data map, settings, the run's
resolved parameters, the mailer), writes what it did to the compliance store and the audit log, and returns a
small summary for XCom. Logs carry ids and counts
only: never the requester's data.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from include import bulk
from include.addresses import sending_problem, valid_or_none
from include.calendars import holiday_calendar
from include.config import Settings
from include.deadline_rules import DeadlinePolicy
from include.deadlines import digest, escalation, source, status_store
from include.deadlines.columnar import evaluate_frame
from include.deadlines.params import DsrParams
from include.delivery.engine import deliver
from include.periods import acting_day
from include.reads import deadlines as dsr_reads
from include.step import Step

log = logging.getLogger(__name__)


def deadline_policy(settings: Settings, as_of: date) -> DeadlinePolicy:
    # Deadlines reach at most ~3 months past receipt; the calendars cover the years around the evaluation.
    years = range(as_of.year - 3, as_of.year + 2)
    return DeadlinePolicy(
        tz=settings.tz, due_soon_days=settings.due_soon_days, earliest=settings.earliest_plausible_date,
        holidays={regime: holiday_calendar(code, years) for regime, code in settings.holiday_calendars.items()})


@dataclass
class _Tally:
    """What one evaluation pass saw, counted chunk by chunk as the rows stream by."""

    track_ids: bool = False  # a targeted run reports the ids it did not find
    states: dict[str, int] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    bad_assignees: int = 0

    def count(self, result: pd.DataFrame, assignees: pd.Series, recipients: pd.Series) -> None:
        for state, n in result["state"].value_counts().items():
            self.states[state] = self.states.get(state, 0) + int(n)
        if self.track_ids:
            self.seen.update(int(i) for i in result["request_id"])
        self.bad_assignees += int((assignees.notna() & (assignees != "") & recipients.isna()).sum())


def _recipients(assignees: pd.Series) -> pd.Series:
    """The address each row's escalation goes to: the assignee when SendGrid can be given it, else None (the team
    gets it). An address valid by the standards but not sendable (one whose part before the @ is not ASCII,
    which SendGrid refuses) would leave the escalation failed for good and nobody told; an internationalised
    domain is sent in its ASCII form."""
    valid = {a: None if sending_problem(a) else valid_or_none(a) for a in assignees.dropna().unique()}
    return assignees.map(valid, na_action="ignore").astype(object).where(assignees.notna(), None)


def _evaluated(frames, as_of: date, policy: DeadlinePolicy, tally: _Tally):
    for frame in frames:
        result = evaluate_frame(frame, as_of, policy)
        recipients = _recipients(frame["assignee_email"])
        tally.count(result, frame["assignee_email"], recipients)
        yield result, recipients, status_store.fingerprints(result, recipients, as_of)


def evaluate_requests(step: Step[DsrParams]) -> dict:
    """Evaluate every selected request; record live states in dsr_status (a what-if's in dsr_whatif).

    Column-wise in chunks (``include.deadlines.columnar``, exactly the rules of ``include.deadline_rules``): requests
    stream out of the operational database with COPY while the results stream into the store with COPY,
    and only the rows whose evaluation changed are written.
    """
    ops, store, dm, settings, ctx, params = step.ops, step.store, step.datamap, step.settings, step.ctx, step.params
    if ops is store:
        # Requests stream out of one connection while statuses are COPYed into the other.
        raise ValueError("evaluate_requests needs separate connections for the operational DB and the store")
    started = ctx.now()
    as_of, what_if = params.as_of, params.what_if
    status_store.start_run(store, ctx.run_id, as_of, params.dry_run, started, what_if=what_if)
    if what_if:
        # Not the live selection (open now, new, closed since the last run): the requests as they stood that day
        # (named ones, or every one).
        selection, watermark = source.Selection.as_it_stood(as_of, settings.tz, params.request_ids), None
    elif params.request_ids:
        selection, watermark = source.Selection(request_ids=params.request_ids), None
    else:
        selection = status_store.full_run_selection(store)
        watermark = source.max_request_id(ops, dm)

    tally = _Tally(track_ids=bool(params.request_ids))
    policy = deadline_policy(settings, as_of)
    with status_store.StatusWriter(store, as_of=as_of, evaluated_at=started, run_id=ctx.run_id,
                                   what_if=what_if) as writer:
        # A pipeline on two threads besides this one: the operational database streams chunk n+2 while
        # chunk n+1 is evaluated and chunk n is compared with the store and written.
        frames = bulk.prefetch(source.request_frames(ops, dm, selection))
        for result, recipients, prints in bulk.prefetch(_evaluated(frames, as_of, policy, tally)):
            writer.add(result, recipients, prints)
    written, changed, later = writer.written, writer.run_changed, writer.later
    gone = 0
    if not what_if and not params.request_ids:
        # A request the store tracks as open that the operational database no longer has is read by no run: its last
        # status (overdue, say) would stand for good. Said once, and closed to every count.
        gone = status_store.mark_gone(store, source.missing_ids(ops, dm, selection.tracked), as_of=as_of,
                                      evaluated_at=started, run_id=ctx.run_id)
    pruned = status_store.prune_whatifs(store, older_than=started - timedelta(days=settings.whatif_retention_days))
    missing = sorted(set(params.request_ids) - tally.seen)
    counts = dict(sorted(tally.states.items()))
    status_store.finish_run(store, ctx.run_id, status_store.RunTotals(watermark, written, changed, counts),
                            finished_at=ctx.now())
    summary = {"as_of": as_of.isoformat(), "what_if": what_if, "evaluated": written, "changed": changed,
               "states": counts, "targeted": len(params.request_ids), "not_found": missing,
               "malformed_assignee_emails": tally.bad_assignees, "dry_run": params.dry_run,
               "whatif_rows_pruned": pruned, "kept_as_of_a_later_day": later, "gone": gone}
    ctx.audit_step(store, "dsr.evaluated", summary)
    where = "compliance.dsr_whatif (a what-if: the live status is untouched)" if what_if else "compliance.dsr_status"
    log.info("evaluated %d request(s) as of %s into %s, %d changed; states: %s", written, as_of, where, changed,
             ", ".join(f"{k}={v}" for k, v in counts.items()) or "none")
    if later:
        log.warning("%d request(s) were evaluated as of a later day than %s by a later run: their live status is kept "
                    "(this run was started on an earlier day and cleared or retried since)", later, as_of)
    if missing:
        log.warning("request id(s) not found in the operational database: %s", missing)
    if gone:
        log.warning("%d request(s) tracked as open are no longer in the operational database (deleted while open): "
                    "recorded invalid with that reason, no longer counted overdue or due soon", gone)
    if counts.get("invalid"):
        log.warning("%d request(s) are invalid; their reasons are in %s.invalid_reason", counts["invalid"],
                    where.split(" ")[0])
    return summary


def send_escalations(step: Step[DsrParams]) -> dict:
    """Email each new ack_overdue / due_soon / overdue escalation once.

    Records the new escalations of this evaluation and sends every pending one of this run's scope, each checked
    first against its request as the operational database has it now: one no longer at its level (completed,
    extended, acknowledged since it was recorded) is withdrawn with the reason, not sent."""
    store, settings, ctx, params = step.store, step.settings, step.ctx, step.params
    skip = params.send_skip_reason
    if skip:
        would = escalation.count_unrecorded(store, as_of=params.as_of, request_ids=params.request_ids,
                                            whatif_run=ctx.run_id if params.what_if else None)
        summary = {"skipped": skip, "would_claim": would}
        ctx.audit_step(store, "dsr.escalation_skipped", summary)
        log.info("escalations not sent (%s): %d would be recorded", skip, would)
        return summary
    claimed = escalation.record(store, as_of=params.as_of, team_email=settings.compliance_team_email,
                                run_id=ctx.run_id, now=ctx.now(), request_ids=params.request_ids)
    # Checked and stated as of the day it is sent: a run cleared or retried days after its own day sends today.
    sending_day = acting_day(params.as_of, ctx.now(), settings.tz)
    live = escalation.LiveRequests(step.ops, step.datamap, sending_day, deadline_policy(settings, sending_day))
    ledger = escalation.ledger(settings, ctx.run_id, live, params.request_ids)
    log.info("claimed %d new escalation(s); %d pending", claimed, ledger.pending(store))
    report = deliver(store, ledger, step.mailer, ctx)
    return {"claimed": claimed, "sent": report.sent, "failed": report.failed, "withdrawn": report.withdrawn}


def send_daily_digest(step: Step[DsrParams]) -> dict:
    """Send the compliance team's digest, once per day.

    One digest per day, with every request needing attention: sent by a run that evaluated every request, never by
    one targeted at named requests (it would use up the day's digest with the others' earlier states)."""
    store, settings, ctx, params = step.store, step.settings, step.ctx, step.params
    as_of, skip = params.as_of, params.send_skip_reason
    if not skip and params.request_ids:
        skip = "a run targeted at named requests; the day's digest is sent by a run over every request"
    if skip:
        ctx.audit_step(store, "dsr.digest_skipped", {"reason": skip})
        log.info("digest not sent (%s)", skip)
        return {"skipped": skip}
    earlier = digest.status(store, as_of)
    if earlier and earlier[0] == "sent":
        log.info("the digest for %s was already sent", as_of)
        return {"already_sent": as_of.isoformat()}
    if earlier and earlier[0] == "failed":
        # SendGrid refused that payload; the same payload would be refused again.
        log.error("the digest for %s was refused by SendGrid earlier and is not retried: %s", as_of, earlier[1])
        return {"failed_earlier": as_of.isoformat()}
    counts = dsr_reads.request_states(store)
    digest.record(store, digest_date=as_of, recipient=settings.compliance_team_email, counts=counts,
                  run_id=ctx.run_id, now=ctx.now())
    report = deliver(store, digest.ledger(settings, ctx.run_id, as_of, counts), step.mailer, ctx)
    attention = sum(counts.get(s, 0) for s in ("ack_overdue", "due_soon", "overdue"))
    if report.sent:
        log.info("digest for %s accepted (%d request(s) need attention)", as_of, attention)
        return {"sent": as_of.isoformat(), "attention": attention}
    if report.failed:
        reason = (digest.status(store, as_of) or (None, None))[1]
        log.error("the digest for %s was refused by SendGrid: %s", as_of, reason)
        return {"failed": as_of.isoformat(), "reason": reason}
    log.info("the digest for %s is being sent by another run", as_of)
    return {"sent_by_another_run": as_of.isoformat()}
