"""The steps of the request-deadline-tracking DAG as plain functions (no Airflow in here).

Each step takes open database connections, writes what it did to the compliance store and the audit
log, and returns a small summary for XCom. Logs carry ids and counts only: never the requester's data.
"""
from __future__ import annotations

import logging
from datetime import date
from functools import lru_cache
from typing import Sequence

from email_validator import EmailNotValidError, validate_email

from include.audit import RunContext
from include.config import Settings
from include.datamap import DataMap
from include.deadlines import DeadlinePolicy, ESCALATION_STATES, evaluate, holiday_calendar
from include.dsr import emails, escalation, source, status_store
from include.notify.sendgrid_mailer import SendGridRejected

log = logging.getLogger(__name__)


def deadline_policy(settings: Settings, as_of: date) -> DeadlinePolicy:
    # Deadlines reach at most ~3 months past receipt; the calendars cover the years around the evaluation.
    years = range(as_of.year - 3, as_of.year + 2)
    return DeadlinePolicy(
        tz=settings.tz, due_soon_days=settings.due_soon_days,
        holidays={regime: holiday_calendar(code, years) for regime, code in settings.holiday_calendars.items()})


@lru_cache(maxsize=4096)
def _assignee(address: str | None) -> str | None:
    """The address escalations go to, or None (the team gets it) when it is missing or malformed."""
    if not address:
        return None
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def evaluate_requests(ops, store, dm: DataMap, settings: Settings, ctx: RunContext, *, as_of: date,
                      request_ids: Sequence[int] = (), dry_run: bool = False) -> dict:
    """Evaluate the selected requests and record the results in ``compliance.dsr_status``."""
    if ops is store:
        # Requests stream from a server-side cursor while statuses are COPYed: two connections are needed.
        raise ValueError("evaluate_requests needs separate connections for the operational DB and the store")
    started = ctx.now()
    policy = deadline_policy(settings, as_of)
    request_ids = tuple(sorted(set(request_ids)))
    status_store.start_run(store, ctx.run_id, as_of, dry_run, started)
    if request_ids:
        selection, watermark = source.Selection(request_ids=request_ids), None
    else:
        selection = status_store.full_run_selection(store)
        watermark = source.max_request_id(ops, dm)

    counts: dict[str, int] = {}
    seen: set[int] = set()
    bad_assignees = 0

    def evaluations():
        nonlocal bad_assignees
        for facts, assignee in source.fetch_requests(ops, dm, selection):
            ev = evaluate(facts, as_of, policy)
            counts[ev.state] = counts.get(ev.state, 0) + 1
            if request_ids:
                seen.add(facts.request_id)
            recipient = _assignee(assignee)
            if assignee and recipient is None:
                bad_assignees += 1
            yield ev, recipient

    written, changed = status_store.write_statuses(store, evaluations(), as_of=as_of, evaluated_at=started,
                                                   run_id=ctx.run_id)
    missing = sorted(set(request_ids) - seen)
    counts = dict(sorted(counts.items()))
    status_store.finish_run(store, ctx.run_id, max_request_id=watermark, evaluated=written, changed=changed,
                            counts=counts, finished_at=ctx.now())
    summary = {"as_of": as_of.isoformat(), "evaluated": written, "changed": changed, "states": counts,
               "targeted": len(request_ids), "not_found": missing, "malformed_assignee_emails": bad_assignees,
               "dry_run": dry_run}
    ctx.audit(store, "dsr.evaluated", summary)
    log.info("evaluated %d request(s) as of %s, %d changed; states: %s", written, as_of, changed,
             ", ".join(f"{k}={v}" for k, v in counts.items()) or "none")
    if missing:
        log.warning("request id(s) not found in the operational database: %s", missing)
    if counts.get("invalid"):
        log.warning("%d request(s) are invalid; their reasons are in compliance.dsr_status.invalid_reason",
                    counts["invalid"])
    return summary


def _skip_reason(as_of: date, today: date, dry_run: bool) -> str | None:
    if dry_run:
        return "dry run"
    # An evaluation of another day is a what-if: its escalations would be spent before they are real.
    if as_of != today:
        return f"as_of {as_of} is not today ({today})"
    return None


def escalate(store, mailer, settings: Settings, ctx: RunContext, *, as_of: date,
             request_ids: Sequence[int] = (), dry_run: bool = False) -> dict:
    """Claim new escalations for this evaluation and send every pending one, once."""
    today = ctx.now().astimezone(settings.tz).date()
    skip = _skip_reason(as_of, today, dry_run)
    if skip:
        would = escalation.count_unclaimed(store, as_of=as_of, request_ids=request_ids)
        summary = {"skipped": skip, "would_claim": would}
        ctx.audit(store, "dsr.escalation_skipped", summary)
        log.info("escalations not sent (%s): %d would be claimed", skip, would)
        return summary

    claimed = escalation.claim(store, as_of=as_of, team_email=settings.compliance_team_email,
                               run_id=ctx.run_id, now=ctx.now(), request_ids=request_ids)
    items = escalation.pending(store)
    messages = emails.group_escalations(items)
    log.info("claimed %d new escalation(s); %d pending, in %d message(s)", claimed, len(items), len(messages))
    sent = failed = 0
    for number, group in enumerate(messages, 1):
        try:
            result = mailer.send(emails.escalation_payload(group, settings, ctx.run_id))
        except SendGridRejected as exc:
            escalation.mark_failed(store, group, error=str(exc))
            failed += len(group)
            ctx.audit(store, "dsr.escalation_failed", {"requests": [i.request_id for i in group],
                                                       "reason": str(exc)})
            log.error("message %d/%d refused by SendGrid (%s); its %d escalation(s) are marked failed",
                      number, len(messages), exc, len(group))
            continue
        escalation.mark_sent(store, group, message_id=result.message_id, sent_at=ctx.now())
        sent += len(group)
        ctx.audit(store, "dsr.escalation_sent", {
            "message_id": result.message_id,
            "escalations": [[i.request_id, i.level] for i in group]})
        log.info("message %d/%d accepted: %d escalation(s); %d/%d sent", number, len(messages), len(group),
                 sent, len(items))
    return {"claimed": claimed, "sent": sent, "failed": failed}


def send_digest(store, mailer, settings: Settings, ctx: RunContext, *, as_of: date, dry_run: bool = False) -> dict:
    """One digest per day to the compliance team, with every request needing attention."""
    today = ctx.now().astimezone(settings.tz).date()
    skip = _skip_reason(as_of, today, dry_run)
    if skip:
        ctx.audit(store, "dsr.digest_skipped", {"reason": skip})
        log.info("digest not sent (%s)", skip)
        return {"skipped": skip}
    counts = status_store.state_counts(store)
    status, earlier_error = escalation.claim_digest(store, digest_date=as_of, recipient=settings.compliance_team_email,
                                                    counts=counts, run_id=ctx.run_id, now=ctx.now())
    if status == "sent":
        log.info("the digest for %s was already sent", as_of)
        return {"already_sent": as_of.isoformat()}
    if status == "failed":
        # SendGrid refused that payload; the same payload would be refused again.
        log.error("the digest for %s was refused by SendGrid earlier and is not retried: %s", as_of, earlier_error)
        return {"failed_earlier": as_of.isoformat()}
    items = escalation.digest_items(store, as_of)
    total = sum(counts.get(s, 0) for s in ESCALATION_STATES)
    try:
        result = mailer.send(emails.digest_payload(as_of, counts, items, total, settings, ctx.run_id))
    except SendGridRejected as exc:
        escalation.finish_digest(store, as_of, error=str(exc))
        ctx.audit(store, "dsr.digest_failed", {"digest_date": as_of, "reason": str(exc)})
        log.error("the digest for %s was refused by SendGrid: %s", as_of, exc)
        return {"failed": as_of.isoformat(), "reason": str(exc)}
    escalation.finish_digest(store, as_of, message_id=result.message_id, sent_at=ctx.now())
    ctx.audit(store, "dsr.digest_sent", {"digest_date": as_of, "message_id": result.message_id, "counts": counts})
    log.info("digest for %s accepted (%d request(s) need attention)", as_of, total)
    return {"sent": as_of.isoformat(), "attention": total}
