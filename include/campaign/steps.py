"""The steps of ``policy_change_notifications``, one function per task, plain Python over real connections.

    find_policy_version -> which policy version this run announces (naming those it passes over), or nothing to do
    build_recipients    -> the campaign's ledger (or, in a dry run, its counts and one sample message)
    plan_senders        -> one entry per parallel sender, each with its share of ``max_recipients``
    send_batches        -> one sender: the delivery engine over the campaign ledger until nothing is left
    summarize_campaign  -> the campaign's totals and the run's from the ledger, duplicates at risk, finished or not

Each takes the step context (:class:`include.step.Step`) and the earlier tasks' results it needs.

Logs and the audit log carry ids, counts, versions and keyed hashes, never an address or a name.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Iterable, Mapping

from include.audit import RunContext
from include.datamap import DataMap
from include.campaign import recipients, versions
from include.campaign.ledger import (Audience, CampaignLedger, LedgerLinks, SenderShare, recipients_taken,
                                     run_taken)
from include.campaign.messages import Notice, Renderer, sample
from include.campaign.params import LIVE, NotificationParams
from include.delivery.engine import deliver
from include.periods import ParamError
from include.reads.campaign import REASON_KIND
from include.step import Step
from include.subjects import address_hasher

log = logging.getLogger("include.campaign")
AUDIT = "policy_change"
# Versions published before the newest, since the last one announced, that a scheduled run looks at and names.
PASSED_OVER_LOOK_BACK = 100
PASSED_OVER_NAMED = 20


def find_policy_version(step: Step[NotificationParams]) -> dict | None:
    """Pick the version to announce (the named one, else the newest published); stop when its campaign is done."""
    return find_version(step.ops, step.store, step.datamap, step.params, step.ctx.now())


def find_version(ops, store, dm: DataMap, params: NotificationParams, now: datetime) -> dict | None:
    """The version to announce, or None when a scheduled run has nothing to do.

    A scheduled (or unparameterised) run takes the newest published version and stops when its live
    campaign has finished. A run naming ``policy_version`` always goes on (its senders find nothing left
    when the campaign has finished). Only a dry run or a test run may name a version not yet published.
    """
    if params.policy_version:
        version = versions.named(ops, dm, params.policy_version)
        if params.scope == LIVE and not params.dry_run and not version.published_by(now):
            when = version.published_at.isoformat() if version.published_at else "never"
            raise ParamError(f"policy_version {version.version} is not published yet (published_at {when}): its "
                             "campaign starts once it is; a dry run or a test_recipients run can preview it now")
        log.info("policy version %s (id %d) named by the run", version.version, version.id)
        return {"version": version.as_dict()}
    version = versions.newest_published(ops, dm, now)
    if version is None:
        log.info("no policy version is published yet: nothing to announce")
        return None
    passed = passed_over(ops, store, dm, version)
    if params.scope == LIVE and not params.dry_run:
        campaign = recipients.existing(store, version.id)
        if campaign is not None and campaign.state == "finished":
            log.info("policy version %s (id %d): campaign %d finished (%d recipients); nothing to send%s",
                     version.version, version.id, campaign.id, campaign.total,
                     f"; {len(passed)} older version(s) published since the last one announced were passed over for "
                     "it, as the runs that sent it said" if passed else "")
            return None
    log.info("newest published policy version: %s (id %d)", version.version, version.id)
    for entry in passed[:PASSED_OVER_NAMED]:
        log.info("policy version %s (id %d) is not announced: version %s (id %d) supersedes it, published %s, and a "
                 "scheduled run announces only the newest published version; a run naming policy_version %s "
                 "announces it", entry["version"], entry["id"], version.version, version.id,
                 "at the same moment and entered after it (a higher id)"
                 if entry["published_at"] == version.as_dict()["published_at"] else "later", entry["version"])
    if len(passed) > PASSED_OVER_NAMED:
        log.info("... and %d more older version(s) not announced, for the same reason", len(passed) - PASSED_OVER_NAMED)
    return {"version": version.as_dict(), **({"passed_over": passed} if passed else {})}


def passed_over(ops, store, dm: DataMap, newest: versions.PolicyVersion) -> list[dict]:
    """The published versions a scheduled run passes over for ``newest``: those published before it (by
    ``published_at``, then ``id``) and after the newest version before it that has a live campaign, none of them
    having one (at most :data:`PASSED_OVER_LOOK_BACK`, newest first). A scheduled run announces only the newest
    version; these are said, so that no version goes unannounced without a word."""
    older = versions.published_before(ops, dm, newest, limit=PASSED_OVER_LOOK_BACK)
    if not older:
        return []
    announced = {vid for (vid,) in store.execute(
        "select policy_version_id from compliance.notification_campaigns where scope = 'live' "
        "and policy_version_id = any(%s)", ([v.id for v in older],))}
    passed = []
    for v in older:
        if v.id in announced:
            break
        label = v.version if len(v.version) <= 80 else f"{v.version[:80]}…"  # as the refusal of a version quotes it
        passed.append({"id": v.id, "version": label, "published_at": v.published_at.isoformat(),
                       "superseded_by": newest.id})
    return passed


def build_recipients(step: Step[NotificationParams], found: Mapping) -> dict:
    """Build the campaign's ledger in bulk (a dry run: count and render a sample, write nothing).

    Builds (or finds) the campaign's ledger; a dry run counts and renders one sample, and writes nothing."""
    store, ctx, params = step.store, step.ctx, step.params
    version = versions.PolicyVersion.from_dict(found["version"])
    if params.dry_run:
        return _dry_run(step, version)
    if params.test_recipients:
        campaign, counts = recipients.build_test(step, version)
    else:
        campaign, counts = recipients.build_live(step, version)
    if counts is None:
        log.info("campaign %d (%s, policy %s) was built by run %s earlier: %d recipients, %d pending",
                 campaign.id, campaign.scope, campaign.policy_version, _built_by(store, campaign.id), campaign.total,
                 campaign.pending)
    else:
        details = {"campaign_id": campaign.id, "scope": campaign.scope, "policy_version": campaign.policy_version,
                   **counts.as_dict()}
        if found.get("passed_over") and campaign.scope == LIVE:
            details["passed_over"] = found["passed_over"]  # older versions this campaign is announced instead of
        ctx.audit(store, f"{AUDIT}.campaign_built", details)
        _log_counts(f"campaign {campaign.id} ({campaign.scope}, policy {campaign.policy_version}) built", counts)
    return campaign.as_dict()


def _built_by(store, campaign_id: int) -> str:
    return store.execute("select run_id from compliance.notification_campaigns where id = %s",
                         (campaign_id,)).fetchone()[0]


def _dry_run(step: Step[NotificationParams], version: versions.PolicyVersion) -> dict:
    store, settings, ctx, params = step.store, step.settings, step.ctx, step.params
    if params.test_recipients:
        counts = recipients.BuildCounts(recipients={recipients.OK: len(params.test_recipients)})
    else:
        counts = recipients.count_live(step)
    notice = Notice(0, params.scope, version.version, version.effective_at, version.summary, version.url,
                    settings.notification_template_id)
    example = sample(notice, settings, ctx.run_id)
    _log_counts(f"dry run for policy {version.version} ({params.scope}): nothing is written or sent", counts)
    if example["text"] is not None:
        log.info("sample message for a made-up recipient (%s):\nSubject: %s\n\n%s", example["recipient"],
                 example["subject"], example["text"])
    else:
        log.info("sample for a made-up recipient (%s): dynamic template %s with data %s", example["recipient"],
                 example["template_id"], example["payload"]["personalizations"][0]["dynamic_template_data"])
    ctx.audit_step(store, f"{AUDIT}.dry_run", {"policy_version": version.version, "scope": params.scope,
                                               **counts.as_dict()})
    return {"dry_run": True, "scope": params.scope, "policy_version": version.version, **counts.as_dict(),
            "sample": {k: example[k] for k in ("recipient", "subject", "text", "template_id")}}


def _log_counts(title: str, counts: recipients.BuildCounts) -> None:
    c = counts.as_dict()
    log.info("%s: %d recipient(s), %d to send; skipped by reason %s; accounts: %d, %d deleted, %d without an "
             "address, %d sharing an address with another, by verdict %s", title, c["recipients"], c["eligible"],
             {k: v for k, v in c["recipients_by_verdict"].items() if k != recipients.OK}, c["accounts"],
             c["accounts_deleted"], c["accounts_without_address"], c["accounts_sharing_an_address"],
             c["accounts_by_verdict"])


def plan_senders(step: Step[NotificationParams], campaign: Mapping) -> list[dict]:
    """Split the work between the parallel senders (setting notification_senders), with their shares of the cap.

    One entry per parallel sender (none for a dry run), each with its share of ``max_recipients``."""
    settings, params = step.settings, step.params
    if campaign.get("dry_run"):
        return []
    batches = max(1, math.ceil(campaign["pending"] / settings.notification_batch_size))
    senders = max(1, min(settings.notification_senders, batches))
    shares: list[int | None] = [None] * senders
    taken, newest = 0, 0
    if params.max_recipients is not None:
        # A run cleared and run again plans anew, perhaps with fewer senders: what its earlier plans' senders took
        # is off the cap, and each sender counts its own from here.
        taken, newest = run_taken(step.store, campaign["campaign_id"], step.ctx.run_id)
        left = max(params.max_recipients - taken, 0)
        if taken:
            log.info("earlier attempts of this run sent or failed %d of its %d recipient(s)", taken,
                     params.max_recipients)
        senders = max(1, min(senders, left))
        base, extra = divmod(left, senders)
        shares = [base + (1 if i < extra else 0) for i in range(senders)]
    return [{"campaign_id": campaign["campaign_id"], "sender": i, "senders": senders, "budget": shares[i],
             "after_batch": newest} for i in range(senders)]


def send_batches(step: Step[NotificationParams], plan: Mapping) -> dict:
    """Claim batches from the ledger, check each recipient again, send through SendGrid, mark; until none is left.

    One sender: until none is left or its share of the cap is spent. A second store connection
    (``step.side``) records each request before it leaves (see include/campaign/ledger.py)."""
    store, settings, ctx, params = step.store, step.settings, step.ctx, step.params
    campaign_id = plan["campaign_id"]
    row = store.execute("""select scope, policy_version, effective_at, summary, url, template_id
                           from compliance.notification_campaigns where id = %s""", (campaign_id,)).fetchone()
    scope, version, effective_at, summary, url, template_id = row
    notice = Notice(campaign_id, scope, version, effective_at, summary, url, template_id)
    hasher = recipients.recipient_hasher(step.key)
    sender = f"{ctx.task_id or 'send'}[{plan['sender']}]"
    budget = plan.get("budget")
    if budget is not None:  # a retried attempt: its share of the cap is what the earlier attempts left of it
        spent = recipients_taken(store, campaign_id, ctx.run_id, sender, after_batch=plan.get("after_batch", 0))
        if spent:
            log.info("%s: earlier attempts of this run sent or failed %d of its %d recipient(s)", sender, spent, budget)
        budget = max(budget - spent, 0)
    ledger = CampaignLedger(
        LedgerLinks(ops=step.ops, dm=step.datamap, side=step.side, ctx=ctx),
        Audience(campaign_id=campaign_id, scope=scope, renderer=Renderer(notice, settings, ctx.run_id), hasher=hasher,
                 as_of=recipients.children_judged_on(step), tz=settings.timezone,
                 test_addresses={hasher(a): a for a in params.test_recipients}, spelt_hasher=address_hasher(step.key)),
        SenderShare(sender=sender, batch_size=settings.notification_batch_size, budget=budget,
                    lane=plan["sender"], lanes=plan["senders"]))
    report = deliver(store, ledger, ledger.recording(step.mailer), ctx)
    result = {**report.as_dict(), "skipped": ledger.skipped, "campaign_id": campaign_id, "sender": plan["sender"]}
    log.info("%s finished: %d sent, %d failed, %d skipped at send time, in %d request(s)", sender, report.sent,
             report.failed, ledger.skipped, report.messages)
    return result


def summarize_campaign(step: Step, built: Mapping, reports: Iterable[Mapping]) -> dict:
    """Recount the campaign from its ledger: sent, failed, skipped, pending, duplicates at risk; finish it.

    ``reports`` (the senders' results) only orders it after them: what the run did is counted from the ledger."""
    return summarize(step.store, step.ctx, built["campaign_id"])


def summarize(store, ctx: RunContext, campaign_id: int) -> dict:
    """The campaign's totals recounted from the ledger; finished when nothing is pending; duplicates at risk.

    "This run" (``sent_this_run``, ``failed_this_run``, ``skipped_this_run``) is what the run's senders did over
    all its attempts (retried, cleared, run again whole under the same run id), counted from the ledger by run id:
    the rows of its requests SendGrid accepted or refused (``notification_batches``) and the rows its senders
    skipped at send time. Every summary of a run says the same of it, whatever was cleared."""
    with store.transaction():
        store.execute("select 1 from compliance.notification_campaigns where id = %s for update", (campaign_id,))
        # Requests whose transaction ended without marking them: sent again, so their rows may have two copies.
        store.execute("""update compliance.notification_batches set state = 'unknown'
                         where campaign_id = %s and state = 'in_flight'
                           and pg_xact_status(xact) is distinct from 'in progress'""", (campaign_id,))
        counts = dict.fromkeys(("pending", "sent", "failed", "skipped"), 0)
        skipped_this_run = 0
        for row_state, n, by_this_run in store.execute(
                """select state, count(*), count(*) filter (where skipped_by_run = %s)
                   from compliance.notification_deliveries where campaign_id = %s group by state""",
                (ctx.run_id, campaign_id)).fetchall():
            counts[row_state] = n
            skipped_this_run += by_this_run
        sent_this_run, failed_this_run = store.execute(
            """select coalesce(sum(size) filter (where state = 'sent'), 0),
                      coalesce(sum(size) filter (where state = 'failed'), 0)
               from compliance.notification_batches where campaign_id = %s and run_id = %s""",
            (campaign_id, ctx.run_id)).fetchone()
        counters = store.execute("""select pending, sent, failed, skipped, state, scope, policy_version
                                    from compliance.notification_campaigns where id = %s""",
                                 (campaign_id,)).fetchone()
        *kept, state, scope, version = counters
        if tuple(kept) != (counts["pending"], counts["sent"], counts["failed"], counts["skipped"]):
            log.error("campaign %d: its counters %s disagreed with the ledger %s; corrected from the ledger",
                      campaign_id, tuple(kept), counts)
        finished = counts["pending"] == 0
        # The total too: the senders add a row for an account that leaves the address its row's others keep.
        store.execute("""update compliance.notification_campaigns
                         set pending = %(pending)s, sent = %(sent)s, failed = %(failed)s, skipped = %(skipped)s,
                             total = %(pending)s + %(sent)s + %(failed)s + %(skipped)s,
                             state = case when %(finished)s then 'finished' else 'sending' end,
                             finished_at = case when %(finished)s then coalesce(finished_at, %(now)s) end,
                             updated_at = %(now)s
                         where id = %(id)s""", {**counts, "finished": finished, "now": ctx.now(), "id": campaign_id})
        at_risk_batches, at_risk_rows = store.execute(
            """select count(*), coalesce(sum(size), 0) from compliance.notification_batches
               where campaign_id = %s and state = 'unknown'""", (campaign_id,)).fetchone()
        reasons = dict(store.execute(
            f"""select {REASON_KIND}, count(*)
               from compliance.notification_deliveries where campaign_id = %s and state in ('failed', 'skipped')
               group by 1 order by 2 desc limit 20""", (campaign_id,)).fetchall())
        summary = {"campaign_id": campaign_id, "scope": scope, "policy_version": version,
                   "total": sum(counts.values()), **counts, "finished": finished,
                   "duplicates_at_risk": at_risk_rows, "unknown_batches": at_risk_batches,
                   "sent_this_run": int(sent_this_run), "failed_this_run": int(failed_this_run),
                   "skipped_this_run": skipped_this_run,
                   "reasons": reasons}
        ctx.audit_step(store, f"{AUDIT}.campaign_summary", summary)
    log.info("campaign %d (%s, policy %s) %s: %d sent, %d failed, %d skipped, %d pending of %d; duplicates at risk: "
             "%d recipient(s) in %d request(s) whose outcome is unknown; this run sent %d", campaign_id, scope, version,
             "finished" if finished else "not finished", counts["sent"], counts["failed"], counts["skipped"],
             counts["pending"], summary["total"], at_risk_rows, at_risk_batches, summary["sent_this_run"])
    if reasons:
        log.info("campaign %d: failed or skipped by reason: %s", campaign_id, reasons)
    if not finished:
        log.info("campaign %d: %d recipient(s) still pending; the next run continues", campaign_id, counts["pending"])
    return summary
