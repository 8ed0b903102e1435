"""The steps of ``dsr_fulfilment`` as plain functions (no Airflow in here): plan, fulfil, erase, verify, finish.
Each takes the step context (:mod:`include.step`: connections, data map, settings, the run's resolved
parameters, the subject key, the object store, the reviewer's answer), records what it did in the compliance
store and the audit log, and returns a small summary for XCom. The run's record, its approval, verification
and end are the erasure run's (:mod:`include.erasure.run`), shared with the child-data purge.

docs/dsr_fulfilment.md. Logs and records carry request ids, counts, object names, checksums and keyed subject hashes,
never a subject's email, name, phone, birth date or IP address, nor anything from an export package.

**One request, one claim, one transaction.** Every action on a request happens inside one transaction of
the operational database that first locks the request's row (``FOR UPDATE SKIP LOCKED``): a second run
at the same moment skips it, and the lock ends with the transaction that does the work and marks the
request completed. Its record is written to the compliance store as *pending* (with that transaction's id)
before the commit and finalized after it (:mod:`include.fulfilment.ledger`); whatever dies in between is
settled by the next attempt. Erasures go through the erasure engine (:mod:`include.erasure`), unchanged,
inside that same transaction: one transaction per subject, every erasure request of the subject claimed
together, account row last, residual zero before commit.

**One plan per run.** A run's requests and what it will do with each are fixed when it first plans
(``compliance.dsr_fulfilment_plans``); a retry carries out that plan, re-checking each request under its
claim. A dry run writes its plan and nothing else.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Mapping, Sequence

import psycopg
from psycopg import sql

from include import erasure
from include.config import Settings
from include.datamap import DataMap
from include.deadline_rules import RequestFacts
from include.erasure import guard
from include.erasure import run as erasure_run
from include.erasure.guard import PlanChanged
from include.erasure.guard import short as _short
from include.erasure.stores import (REFUSED, access_of, incomplete_reason, refused_reason, subject_packages,
                                    subject_refused_reason, warn_refused)
from include.errors import NeedsOperator, Transient, database_said, over_limit
from include.objectstore import ObjectStoreRefused
from include.periods import acting_day
from include.runconf import ids_in_brief
from include.fulfilment import ledger, package, rules, source
from include.fulfilment.ledger import WORKFLOW, PlanRow, Record
from include.fulfilment.params import FulfilmentParams
from include.step import Step
from include.subjects import user_hash
from include.fulfilment.right_to_know import answer_period, shared_with

log = logging.getLogger(__name__)

LOCK_TIMEOUT_MS = 10_000

# What one action on one request came to (besides the outcomes recorded in the store).
CLAIMED = erasure.CLAIMED_ELSEWHERE  # another run holds the request (or the subject's account): left to it
LOCKED = "locked"                    # rows stayed locked (past the lock timeout, or the account by an eraser):
                                     # the task's retry acts on it
CHANGED = "changed"                  # the request is no longer what the plan saw: left to the next run
ALREADY = "already_fulfilled"        # another run fulfilled it meanwhile


class NotPlanned(NeedsOperator):
    """A step ran before the run's plan was recorded."""


class RequestsBusy(Transient):
    """Some requests' rows stayed locked by other transactions; the retry acts on them."""


class RequestsOverLimit(NeedsOperator):
    """A database limit (SQLSTATE class 54) stopped the work on some requests, each recorded ``incomplete``; the
    others were carried out. Running them again repeats it, so the run fails at its end, once, for on-call."""

    def __init__(self, count: int, erasures: int = 0):
        also = (f", and {erasures} subject(s) to erase were left incomplete by a refusal (each record says why)"
                if erasures else "")
        super().__init__(f"{count} request(s) left incomplete: a database limit stopped the work on them (each record "
                         "says which limit and what the database said; each run repeats it until a person looks)"
                         f"{also}; every other one was carried out")


ErasureNotClean = erasure_run.NotClean  # after an erasure committed, rows are still tied to the erased subject


def _fmt(tally: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tally.items())) or "none"


# -- plan --------------------------------------------------------------------------------------------------

def gate(plan_hash: str, erasable: int, to_erase: int, params: FulfilmentParams, threshold: int, *,
         rest_of_approved: bool = False) -> guard.Gate:
    """The erasure guards (:func:`include.erasure.guard.gate`); with nothing to erase the run is simply planned."""
    g = guard.gate(plan_hash, erasable=erasable, to_erase=to_erase, params=params, threshold=threshold,
                   rest_of_approved=rest_of_approved)
    return replace(g, state=guard.PLANNED) if g.state == guard.NOTHING_TO_ERASE else g


def held_reason(holds: Sequence[int]) -> str:
    return (f"active legal hold(s) {', '.join(map(str, holds))}: nothing is erased while a hold is active (GDPR "
            "Art. 17(3)(e), legal claims); tell the requester why, and the next run erases once it is released")


def plan_requests(step: Step[FulfilmentParams]) -> dict:
    """Pick up the open requests (only ``request_ids`` when given) that are not fulfilled yet, decide what to do
    with each (:func:`include.fulfilment.rules.decide`), plan the erasures from the data map (rows, holds,
    vendors, the plan's hash) and decide their gate; record the plan once per run."""
    store, settings, ctx, params = step.store, step.settings, step.ctx, step.params
    run = erasure_run.start_run(store, WORKFLOW, erasure_run.RunStart(
        run_id=ctx.run_id, as_of=acting_on(step), run_type=params.run_type, dry_run=params.dry_run,
        threshold=settings.purge_threshold, started_at=ctx.now(), targets=params.request_ids))
    if run.planned_at is None:
        if not params.dry_run:
            settle(step)
        rows, plan, counts = _plan(step)
        to_erase = sum(1 for r in rows if r.action == rules.ERASE and r.outcome is None)
        elsewhere = set() if params.dry_run else erasure.rest_of_approved(
            plan, params.approve_plan, lambda approved: ledger.erased_by_other_runs_of(store, approved, ctx.run_id))
        rest = bool(elsewhere)
        g = gate(plan.hash, len(plan.erasable), to_erase, params, settings.purge_threshold, rest_of_approved=rest)
        counts.update(erasable_subjects=len(plan.erasable), erase_requests=to_erase)
        if rest:
            counts.update(rest_of_plan=params.approve_plan, erased_by_other_runs=len(elsewhere))
        facts = erasure_run.PlanFacts(plan.hash, len(plan.erasable), None, g, at=ctx.now(), counts=counts)
        if ledger.record_plan(store, ctx.run_id, rows, facts):
            ctx.audit(store, "dsr_fulfilment.planned", {
                "plan_hash": plan.hash, "state": g.state, "approval": g.approval, "threshold": settings.purge_threshold,
                "dry_run": params.dry_run, "request_ids": list(params.request_ids), **counts})
    else:
        _plan_kept(step, run)
        log.info("this run already planned in an earlier attempt: carrying out that plan")
    result = plan_summary(store, ctx.run_id)
    _log_plan(result)
    return result


def _plan(step: Step[FulfilmentParams]) -> tuple[list[PlanRow], erasure.Plan, dict]:
    ops, store, dm, settings, ctx, params, key = (step.ops, step.store, step.datamap, step.settings, step.ctx,
                                                  step.params, step.key)
    found = source.open_requests(ops, dm, params.request_ids)
    done = ledger.fulfilled(store, [r.request_id for r in found])
    requests = [r for r in found if r.request_id not in done]
    accounts = source.existing_accounts(ops, dm, [r.user_id for r in requests if r.user_id is not None])
    now = ctx.now()
    purges = _earlier_erasures(step, requests, accounts)
    decisions = {r.request_id: _decide(r, r.user_id in accounts, settings, now, purges.get(r.request_id))
                 for r in requests}
    erase_ids = {r.user_id for r in requests if decisions[r.request_id].acts
                 and decisions[r.request_id].action == rules.ERASE}
    plan = erasure.plan(ops, dm, erase_ids, key, at=ctx.now(), stores=step.stores)
    guard.check_mapped(plan, nothing="nothing was done")
    # An erasure naming an account that does not exist, no earlier erasure of it known: erased only where data of its
    # id is still held; else it names no account, and the plan leaves it out.
    held = _held_without_account(step, plan, {r.user_id for r in requests if r.user_id in erase_ids
                                               and r.user_id not in accounts and r.request_id not in purges})
    for r in requests:
        d = decisions[r.request_id]
        if r.user_id in held and r.request_id not in purges and d.acts and d.action == rules.ERASE:
            decisions[r.request_id] = rules.account_gone(rules.ERASE, r.user_id, held[r.user_id])
    plan = replace(plan, subjects=tuple(s for s in plan.subjects if held.get(s.user_id, True)))
    decisions.update(_gone_accounts(step, [r for r in requests if r.request_id not in purges], accounts, decisions))
    subjects = {s.user_id: s for s in plan.subjects}
    rows = []
    for r in requests:
        d = decisions[r.request_id]
        purged = purges.get(r.request_id)
        subject_hash = (user_hash(key, r.user_id) if r.user_id is not None
                        else purged.subject_hash if purged is not None else None)
        base = dict(request_id=r.request_id, regime=r.regime, request_type=r.request_type, action=d.action,
                    subject_hash=subject_hash)
        if d.acts and d.action == rules.ERASE:
            s = subjects[r.user_id]
            evidence = dict(planned_tables=s.tables_evidence(), vendors=[v.as_dict() for v in s.vendors])
            if s.held:
                rows.append(PlanRow(**base, outcome=rules.HELD, reason=held_reason(s.holds), holds=s.holds,
                                    **evidence))
            else:  # the purge that erased the account, if one did, is the erasure's reason (_erased_records), or
                # what of the id of an account that does not exist is still held
                rows.append(PlanRow(**base, outcome=None, reason=purged.erased() if purged else d.reason,
                                    **evidence))
        else:
            rows.append(PlanRow(**base, outcome=d.outcome, reason=d.reason))
    counts = {"picked_up": len(found), "already_fulfilled": len(done)}
    if params.request_ids:
        picked = {r.request_id for r in found}
        missing = [i for i in params.request_ids if i not in picked]
        status = source.statuses(ops, dm, missing)
        counts["not_found"] = [i for i in missing if i not in status]
        counts["not_open"] = {str(i): status[i] for i in missing if i in status}
    return rows, plan, counts


def _gone_accounts(step: Step, requests: Sequence[RequestFacts], accounts: set[int],
                   decisions: Mapping[int, rules.Decision]) -> dict[int, rules.Decision]:
    """The decisions of the requests other than erasures that name an account that does not exist (no earlier
    erasure of it known: ``requests`` are those the purges did not name): each names no account, and its reason says
    what of the id is still held, if anything (:func:`include.fulfilment.rules.account_gone`), so that no one answers
    that nothing is held while rows of the id are. Reads only: the erasure plan's reading of the ids, which is not the
    run's erasure plan (its hash names the erasures alone)."""
    gone = {r.request_id: r.user_id for r in requests if r.user_id is not None and r.user_id not in accounts
            and decisions[r.request_id].outcome == rules.NO_ACCOUNT and decisions[r.request_id].action != rules.ERASE}
    if not gone:
        return {}
    found = erasure.plan(step.ops, step.datamap, set(gone.values()), step.key, at=step.ctx.now(), stores=step.stores)
    held = _held_without_account(step, found, set(gone.values()), packages=False)
    return {rid: rules.account_gone(decisions[rid].action, uid, held.get(uid, "")) for rid, uid in gone.items()}


def _held_without_account(step: Step, plan: erasure.Plan, user_ids: set[int], *, packages: bool = True
                          ) -> dict[int, str]:
    """Of these account ids (no account has them), what is still held of each, in words: its rows per table in every
    store the data map names, beside the privacy requests naming it (its requests are no data held of an account),
    and (``packages``: what an erasure deletes too) its export packages; '' when nothing is."""
    requests = step.datamap.record("privacy_requests")
    requests_table = f"{requests.schema}.{requests.table}"
    held = {}
    for s in plan.subjects:
        if s.user_id in user_ids:
            found = [f"{t.table}={t.rows}" for t in s.tables if t.rows and t.table != requests_table]
            made = len(subject_packages(step.store, s.subject_hash)) if packages else 0
            held[s.user_id] = ", ".join(found + ([f"{made} export package(s)"] if made else []))
    return held


@dataclass(frozen=True)
class _Purged(rules.ChildPurge):
    subject_hash: str = ""


def _earlier_erasures(step: Step, requests: Sequence[RequestFacts], accounts: set[int]) -> dict[int, _Purged]:
    """The earlier erasure of each request's account, by request id, from its record: of a request naming an account
    that no longer exists, the child-data purge of that account (``compliance.child_purges``) or a fulfilment's
    erasure of it (``compliance.dsr_fulfilments``, by the account's subject hash); of one naming none,
    the erasure that removed its account link, the purge's or a fulfilment's (each record lists the ids of the
    requests its erasure unlinked: migrations 0027 and 0028), else the purge of the account the request's own record
    named before an erasure removed the link (``dsr_fulfilments.subject_hash``), else, of a purge record written
    before that list, the purge of the account whose address the request's keyed-hashed requester had (the purge
    hashed it)."""
    ops, store, dm, key, tz = step.ops, step.store, step.datamap, step.key, step.settings.tz
    gone = {r.request_id: user_hash(key, r.user_id) for r in requests
            if r.user_id is not None and r.user_id not in accounts}
    unlinked_ids = [r.request_id for r in requests if r.user_id is None]
    named = ledger.recorded_subjects(store, unlinked_ids)
    unlinked = source.redacted_requesters(ops, dm, unlinked_ids)
    by_subject, by_address, by_request = ledger.earlier_erasures(store, [*gone.values(), *named.values()],
                                                                 unlinked.values(), unlinked_ids,
                                                                 dm.account_entry.table_label)
    found = {**{rid: by_subject.get(h) for rid, h in gone.items()},
             **{rid: by_address.get(h) for rid, h in unlinked.items() if rid not in named},
             **{rid: by_subject.get(h) for rid, h in named.items()},
             **{rid: by_request[rid] for rid in unlinked_ids if rid in by_request}}
    kept = _kept(store, [e.subject_hash for e in found.values() if e is not None], tz)
    return {rid: _Purged(e.run_id, e.at.astimezone(tz).date(), e.request_id, kept.get(e.subject_hash, ()),
                         tuple((e.kept or {}).items()), subject_hash=e.subject_hash)
            for rid, e in found.items() if e is not None}


def _rows_kept_before(step: Step, subject_hash: str) -> tuple[tuple[str, int], ...]:
    """The rows the earlier erasure of an account (the child-data purge's, or a fulfilment's) kept as tied to it by an
    address another account also has: (table, rows) each."""
    found = ledger.earlier_erasures(step.store, [subject_hash], (), (), step.datamap.account_entry.table_label)[0]
    erased = found.get(subject_hash)
    return tuple((erased.kept or {}).items()) if erased is not None else ()


def _kept(store, subject_hashes: Sequence[str], tz) -> dict[str, tuple[tuple[int, date], ...]]:
    """By subject, the export packages an erasure kept to be handed over: (the request each answers, its last day in
    the configured zone)."""
    from include.erasure.stores import kept_for_delivery

    return {h: tuple((package.request_of(uri), until.astimezone(tz).date()) for uri, until in packages
                     if package.request_of(uri) is not None)
            for h, packages in kept_for_delivery(store, subject_hashes).items()}


# The plan's erasures still to carry out (for the plan's totals).
_PLANNED = sql.SQL("""select planned_tables, vendors from compliance.dsr_fulfilment_plans
                      where run_id = %(run)s and action = 'erase' and outcome is null""")


def plan_summary(store, run_id: str) -> dict:
    """The run's plan as recorded: counts, the erasure plan's hash, rows per table, vendors, gate, and the text a
    reviewer reads."""
    plan_hash, subjects, approval, state, dry_run, threshold, counts = store.execute(
        """select plan_hash, erase_subjects, approval, state, dry_run, threshold, counts -> 'planned'
           from compliance.dsr_fulfilment_runs where run_id = %s""", (run_id,)).fetchone()
    tables, by_vendor = erasure_run.planned_totals(store, _PLANNED, run_id)
    vendors = [{"vendor_id": v, "name": n, "requests": k} for v, n, k in by_vendor]
    planned = ledger.plan_counts(store, run_id)
    result = {"run_id": run_id, "plan_hash": plan_hash, "subjects": subjects or 0, "approval": approval,
              "state": state, "dry_run": dry_run, "threshold": threshold, "planned": planned,
              "to_erase": planned.get("to_erase", 0), "counts": counts or {},
              "rows": int(sum(tables.values())), "tables": tables,
              "vendors": vendors}
    result["approval_subject"] = (f"Erase {result['subjects']} requesters' accounts and their data? "
                                  f"(plan {_short(plan_hash)})")
    result["approval_body"] = approval_body(result)
    return result


def approval_body(plan: Mapping) -> str:
    """What the reviewer reads (Markdown): sizes, rows per table, vendors, the hash. No personal data."""
    return guard.review_text(
        f"**{plan['subjects']} requesters' accounts** would be erased, for {plan['to_erase']} erasure or delete "
        f"request(s), from every table of the data map ({plan['rows']} rows): "
        f"{guard.against_threshold(plan['subjects'], plan['threshold'])}.",
        plan["plan_hash"], plan["tables"],
        f"{plan['planned'].get('held', 0)} request(s) whose subject is under an active legal hold.",
        [f"#{v['vendor_id']} {v['name'] or '(unknown vendor)'} ({v['requests']})" for v in plan["vendors"]],
        rejected=" (the requests are recorded `approval_required`)")


def _log_plan(plan: Mapping) -> None:
    log.info("requests picked up: %s; plan: %s", _fmt({k: v for k, v in plan["counts"].items()
                                                        if isinstance(v, int)}), _fmt(plan["planned"]))
    if plan["counts"].get("not_found") or plan["counts"].get("not_open"):
        not_open = plan["counts"].get("not_open") or {}
        log.info("targeted request id(s) not found: %s; not open (status): %s",
                 ids_in_brief(plan["counts"].get("not_found")) or "none",
                 ids_in_brief(f"{rid}: {status}" for rid, status in not_open.items()) or "none")
    if plan["to_erase"]:
        log.info("erasure plan %s: %d subject(s), %d row(s) (%s); gate: %s (approval %s, threshold %d)",
                 plan["plan_hash"], plan["subjects"], plan["rows"],
                 ", ".join(f"{t}={n}" for t, n in plan["tables"].items() if n) or "no rows", plan["state"],
                 plan["approval"] or "-", plan["threshold"])
    if plan["state"] == "dry_run":
        log.info("dry run: nothing was changed or exported; the plan is in compliance.dsr_fulfilment_plans.%s",
                 f" To carry out exactly this erasure plan, trigger a live run with dry_run=false and "
                 f"approve_plan={plan['plan_hash']}" if plan["to_erase"] else "")


# -- settling what a dead worker left ----------------------------------------------------------------------

def settle(step: Step) -> int:
    """Turn every pending record (of any run) whose operational transaction has ended into its final record
    (committed) or drop it (rolled back: the request is acted on again). Returns how many were settled."""
    ops, store, dm, ctx = step.ops, step.store, step.datamap, step.ctx
    settled = 0
    for request_id, _run_id, xid, _record in ledger.pending(store):
        status = source.transaction_status(ops, xid)
        if status == "in progress":
            continue  # a worker that is still alive holds it
        if status == "committed":
            ledger.finalize(store, ctx, request_id, xid, settled=True)
        elif status == "aborted":
            ledger.drop_pending(store, request_id, xid)
        elif source.statuses(ops, dm, [request_id]).get(request_id) == "completed":
            ledger.finalize(store, ctx, request_id, xid, settled=True)  # too old to ask: the request says it is done
        else:
            ledger.drop_pending(store, request_id, xid)
        settled += 1
    if settled:
        log.info("settled %d record(s) left pending by an interrupted attempt", settled)
    return settled


# -- fulfil: everything but erasures -----------------------------------------------------------------------

def fulfil_requests(step: Step[FulfilmentParams], *, workdir: str | None = None, progress_every: float = 10.0
                    ) -> dict:
    """Record every decided outcome of the plan (held, manual, skipped, invalid, no_account), then export,
    restrict and opt out each planned request in its own claimed transaction."""
    store, ctx = step.store, step.ctx
    run = _planned_run(step)
    if run.dry_run:
        log.info("dry run: nothing recorded, changed or exported")
        return {"skipped": "dry run"}
    settle(step)
    _warn_if_acting_later(step)
    tally: dict[str, int] = {}
    done_before = []  # erasures the child-data purge carried out before the request came to this run
    for row in ledger.plan_rows(store, ctx.run_id, acting=False):
        if row.outcome in rules.FULFILLED:
            done_before.append(row)
            continue
        record = Record(row.request_id, row.regime, row.request_type, row.action, row.outcome, row.reason,
                        row.subject_hash, holds=row.holds)
        if ledger.record_decided(store, ctx, record):
            tally[row.outcome] = tally.get(row.outcome, 0) + 1
    for row in done_before:
        if not ledger.fulfilled(store, [row.request_id]):
            outcome = complete_done_before(step, row)
            tally[outcome] = tally.get(outcome, 0) + 1
    recorded = dict(tally)
    rows = ledger.plan_rows(store, ctx.run_id, acting=True, actions=(rules.EXPORT, rules.RESTRICT, rules.OPT_OUT))
    done = ledger.fulfilled(store, [r.request_id for r in rows])
    rows = [r for r in rows if r.request_id not in done]
    log.info("recorded %d decided outcome(s) that changed (%s); acting on %d request(s) (%d fulfilled already)",
             sum(recorded.values()), _fmt(recorded), len(rows), len(done))
    started = last = time.monotonic()
    for n, row in enumerate(rows, 1):
        outcome = act_on_request(step, row, workdir=workdir)
        tally[outcome] = tally.get(outcome, 0) + 1
        if time.monotonic() - last >= progress_every:
            last = time.monotonic()
            log.info("progress: %d/%d request(s) (%s), %.1f/s", n, len(rows), _fmt(tally), n / (last - started))
    result = {"outcomes": dict(sorted(tally.items())), "acted_on": len(rows)}
    log.info("fulfilled in %.1f s: %s", time.monotonic() - started, _fmt(tally))
    if tally.get(REFUSED):  # not a failure of this step: the erasures after it must still run ('Needs a person')
        log.warning("%d request(s) left incomplete: the object store refused to read a file of theirs, or the "
                    "operational database refused the request's change, or a database limit stopped it (each record "
                    "says which and why); every other one was carried out", tally[REFUSED])
    if tally.get(LOCKED):
        raise RequestsBusy(f"{tally[LOCKED]} request(s) or their accounts stayed locked by other transactions for over "
                           f"{LOCK_TIMEOUT_MS // 1000} s, or their account by an erasure, and were not acted on; the "
                           "task's retry acts on them")
    return result


def acting_on(step: Step[FulfilmentParams]) -> date:
    """The day an export's data is taken and its right to know ends: the run's own day, or today when the run acts
    days after it (cleared, retried or caught up: Airflow keeps its day), as it reads the data as it is now."""
    return acting_day(step.params.as_of, step.ctx.now(), step.settings.tz)


def _warn_if_acting_later(step: Step[FulfilmentParams]) -> None:
    day = acting_on(step)
    if day != step.params.as_of:
        log.warning("this run acts after its own day: its exports take the data as it stood on %s and tell the shares "
                    "up to that day, not its own day %s (a run cleared, retried or caught up later reads the data as "
                    "it is now)", day, step.params.as_of)


def _planned_run(step: Step) -> erasure_run.RunRecord:
    run = erasure_run.load_run(step.store, WORKFLOW, step.ctx.run_id)
    if run is None or run.planned_at is None:
        raise NotPlanned("this step found no plan for the run: the planning step must run first")
    _plan_kept(step, run)
    return run


def _plan_kept(step: Step, run: erasure_run.RunRecord) -> None:
    """A task of a run whose plan was forgotten (:func:`ledger.prune_plans`) cleared since: it fails, as it would
    otherwise carry out an empty plan and say all was well."""
    pruned = ledger.plan_pruned_at(step.store, step.ctx.run_id)
    if pruned is not None:
        raise NotPlanned(f"this run's plan was forgotten on {pruned:%Y-%m-%d}, over whatif_retention_days after the "
                         f"run {'started (a dry run)' if run.dry_run else 'finished'}, so nothing of it can be carried "
                         "out again: trigger a new run, which plans the requests still open")


class _Abandon(Exception):
    """Roll the request's transaction back and report ``outcome``."""

    def __init__(self, outcome: str):
        super().__init__(outcome)
        self.outcome = outcome


class _ReadRefused(Exception):
    """A database refused the export's read of the subject's rows (a grant the connection's user lacks, a rule of
    the application's, or one of its limits: ``limit``, :func:`include.errors.over_limit`): nothing was uploaded.
    ``said``: the server's primary message, never a row."""

    def __init__(self, said: str, limit: str | None = None):
        super().__init__(said)
        self.said = said
        self.limit = limit


def _decide(req: RequestFacts, account_exists: bool, settings: Settings, now: datetime,
            purged: rules.ChildPurge | None = None) -> rules.Decision:
    """:func:`include.fulfilment.rules.decide` as of ``now``, with the settings' earliest plausible date and zone."""
    return rules.decide(req, account_exists, now=now, earliest=settings.earliest_plausible_date, tz=settings.tz,
                        purged=purged)


def _still_planned(req: RequestFacts, row: PlanRow, key: bytes, account_exists: bool, settings: Settings,
                   now: datetime) -> bool:
    """Under its claim, the request still asks for what the plan saw (its dates judged again as of ``now``), for
    the same subject."""
    again = _decide(req, account_exists, settings, now)
    return (req.status == "in_progress" and again.acts and again.action == row.action and req.user_id is not None
            and user_hash(key, req.user_id) == row.subject_hash)


def act_on_request(step: Step[FulfilmentParams], row: PlanRow, *, workdir: str | None = None) -> str:
    """Export, restrict or opt out one request, in one claimed transaction (see the module doc)."""
    ops, store, dm, settings, ctx, key = step.ops, step.store, step.datamap, step.settings, step.ctx, step.key
    now = ctx.now()
    try:
        with ops.transaction():
            if row.action == rules.EXPORT:  # one snapshot for the whole package
                ops.execute("set transaction isolation level repeatable read")
            ops.execute(f"set local lock_timeout = {LOCK_TIMEOUT_MS}")
            claimed = source.claim(ops, dm, [row.request_id])
            if not claimed:
                raise _Abandon(CLAIMED if source.statuses(ops, dm, [row.request_id]) else CHANGED)
            req = claimed[0]
            exists = req.user_id is not None and bool(source.existing_accounts(ops, dm, [req.user_id], hold=True))
            if not exists and req.user_id is not None and source.existing_accounts(ops, dm, [req.user_id]):
                # An erasure (or the application) holds the account FOR UPDATE; an erasure redacts this request
                # next, so waiting for it while holding the request would deadlock: the task's retry comes back.
                raise _Abandon(LOCKED)
            if not _still_planned(req, row, key, exists, settings, now):
                # Completed meanwhile (another run fulfilled it, or a person closed it): nothing is left to do.
                raise _Abandon(ALREADY if req.status == "completed" else CHANGED)
            if _fulfilled_elsewhere(ops, store, row.request_id):
                # With complete_requests off the request stays in_progress: another run that exported it since this
                # run planned is known by its record alone, and a second upload would replace its package.
                raise _Abandon(ALREADY)
            if row.action == rules.EXPORT:
                record = _export(step, req, row, workdir)
            elif row.action == rules.RESTRICT:
                changed = source.restrict(ops, dm, req.user_id)
                record = _record(row, rules.RESTRICTED, None if changed else "processing was already restricted")
            else:
                changed = source.opt_out_of_sale(ops, dm, req.user_id, now)
                record = _record(row, rules.OPTED_OUT, None if changed else "the account had opted out of sale "
                                                                            "already (its date is kept)")
            record = _completed(ops, dm, settings, record, [row.request_id], now)
            xid = source.transaction_id(ops)
            if not ledger.write_pending(store, row.request_id, ctx.run_id, xid, record, now):
                raise _Abandon(ALREADY)
    except _Abandon as stop:
        if stop.outcome == ALREADY:
            log.info("request %d: completed meanwhile (by another run, or by a person); nothing more to do",
                     row.request_id)
        else:
            log.info("request %d: %s; left %s", row.request_id, stop.outcome,
                     {CLAIMED: "to the run holding it", LOCKED: "to the task's retry (an erasure or the application "
                      "holds its account)"}.get(stop.outcome, "to the next run"))
        return stop.outcome
    except psycopg.errors.LockNotAvailable:
        return LOCKED
    except ObjectStoreRefused as exc:  # this request alone: recorded for a person, the others go on
        ledger.record_decided(store, ctx, _record(row, rules.INCOMPLETE, refused_reason(exc)))
        log.warning("request %d: left incomplete: %s", row.request_id, exc)
        return REFUSED
    except psycopg.errors.SerializationFailure:
        # An export reads one snapshot (repeatable read): another run that acted on the request and committed
        # after that snapshot was taken, but before this claim reached the row, changed it under us. Nothing
        # was done here; the request is the other run's.
        log.info("request %d: acted on by another run while this one claimed it; left to it", row.request_id)
        return CLAIMED
    except psycopg.OperationalError as exc:
        if over_limit(exc) is None:
            raise  # a lost connection or a timeout: the task's one sentence, and its retry
        return _request_refused(step, row, exc)  # over one of the database's limits: this request alone
    except (psycopg.DatabaseError, _ReadRefused) as exc:  # a database refused this request alone
        return _request_refused(step, row, exc)
    final = ledger.finalize(store, ctx, row.request_id, xid)
    if final is not None and final.package_sha256:
        log.info("request %d: exported %s (%d rows, %d bytes, SHA-256 %s)", row.request_id, final.package_object,
                 sum(n for t in (final.package_rows or {}).values() for n in t.values()), final.package_bytes,
                 final.package_sha256)
    return record.outcome


def _request_refused(step: Step[FulfilmentParams], row: PlanRow, exc: Exception) -> str:
    """A database refused one request's export, restriction or opt-out (its transaction rolled back): recorded
    ``incomplete`` for a person with why in one sentence (never the row), a package uploaded before the refusal
    deleted; the others go on."""
    if isinstance(exc, _ReadRefused):  # reading the subject's rows: no package was uploaded
        reason = (limit_reason("the export's read of the subject's data", exc.limit, exc.said) if exc.limit
                  else read_refused_reason(exc.said))
    else:  # a constraint or trigger of the application's refused its change, or one of the database's limits
        if row.action == rules.EXPORT and step.objects is not None:
            step.objects.delete(package.object_name(row.request_id))  # uploaded before the refusal: for nobody
        reason = _change_refused_reason(exc)
    ledger.record_decided(step.store, step.ctx, _record(row, rules.INCOMPLETE, reason))
    log.warning("request %d: left incomplete: %s", row.request_id, reason)
    return REFUSED


def _change_refused_reason(exc: Exception) -> str:
    limit = over_limit(exc)
    if limit is not None:
        return limit_reason("this request's change", limit, database_said(exc))
    return database_refused_reason(exc)


def complete_done_before(step: Step[FulfilmentParams], row: PlanRow) -> str:
    """Record a request the plan found fulfilled already (an erasure whose account and data the child-data purge
    erased, its link to the account removed with them) and complete it, in one claimed transaction, as any
    fulfilment."""
    ops, store, dm, settings, ctx = step.ops, step.store, step.datamap, step.settings, step.ctx
    now = ctx.now()
    try:
        with ops.transaction():
            ops.execute(f"set local lock_timeout = {LOCK_TIMEOUT_MS}")
            claimed = source.claim(ops, dm, [row.request_id])
            if not claimed:
                raise _Abandon(CLAIMED if source.statuses(ops, dm, [row.request_id]) else CHANGED)
            req = claimed[0]
            again = _decide(req, False, settings, now)
            if req.status != "in_progress" or req.user_id is not None or again.outcome != rules.NO_ACCOUNT:
                raise _Abandon(ALREADY if req.status == "completed" else CHANGED)
            record = _completed(ops, dm, settings, _record(row, row.outcome, row.reason, erased_tables={},
                                                           rows_erased=0), [row.request_id], now)
            xid = source.transaction_id(ops)
            if not ledger.write_pending(store, row.request_id, ctx.run_id, xid, record, now):
                raise _Abandon(ALREADY)
    except _Abandon as stop:
        log.info("request %d: %s; left %s", row.request_id, stop.outcome,
                 "to the run holding it" if stop.outcome == CLAIMED else "as it is")
        return stop.outcome
    except psycopg.errors.LockNotAvailable:
        return LOCKED
    except psycopg.DatabaseError as exc:  # a constraint or trigger of the application's refused its completion
        if isinstance(exc, psycopg.OperationalError) and over_limit(exc) is None:
            raise  # a lost connection or a timeout: the task's one sentence, and its retry
        return _request_refused(step, row, exc)  # or one of the database's limits stopped it: this request alone
    ledger.finalize(store, ctx, row.request_id, xid)
    return row.outcome


def _fulfilled_elsewhere(ops, store, request_id: int) -> bool:
    """Under the request's claim: another run has fulfilled it, recorded or with its record still pending for an
    operational transaction that committed (that run's worker stopped before finalizing it)."""
    if ledger.fulfilled(store, [request_id]):
        return True
    return any(source.transaction_status(ops, xid) == "committed" for xid in ledger.pending_xids(store, request_id))


def database_refused_reason(exc: Exception) -> str:
    """For a person (the record, the audit log, the page): the operational database refused one request's change (a
    constraint or trigger of the application's). The server's primary message, never the row its DETAIL quotes."""
    return (f"the operational database refused this request's change: {database_said(exc)} (a constraint or "
            "trigger of the application's): nothing was done for it and no package kept, a person must look; the "
            "other requests were carried out, and the next run tries again")


# How the reason of a request a database limit stopped begins (:func:`limit_reason`): the run's end counts them by it.
LIMIT_STOPPED = "a database limit stopped "


def limit_reason(what: str, limit: str, said: str) -> str:
    """For a person: a database error of class 54 (:func:`include.errors.over_limit`: a value over 1 GB, too many
    columns) stopped ``what`` of one request (its change, the export's read); ``said``:
    :func:`include.errors.database_said`'s sentence, never the row. Running it again repeats it, so the run fails at
    its end (:func:`finish_run`) once the others are done."""
    return (f"{LIMIT_STOPPED}{what} ({limit}): {said}; nothing was done for it and no package kept, and each run "
            "repeats it until a person looks (the subject's data, or the database's setting or trigger that raised "
            "it); the other requests were carried out")


def read_refused_reason(said: str) -> str:
    """For a person: a database refused the export's read of one subject's data (a grant the connection's user
    lacks, a rule of the application's). ``said``: :func:`include.errors.database_said`'s sentence."""
    return (f"a database refused the export's read of the subject's data: {said} (a grant the connection's user "
            "lacks, or a rule of the application's): no package was written, a person must look; the other requests "
            "were carried out, and the next run tries again")


def _record(row: PlanRow, outcome: str, reason: str | None = None, **fields) -> Record:
    return Record(row.request_id, row.regime, row.request_type, row.action, outcome, reason, row.subject_hash,
                  **fields)


def _completed(ops, dm: DataMap, settings: Settings, record: Record, request_ids: Sequence[int], now) -> Record:
    """Mark the fulfilled requests completed in the operational database (setting ``complete_requests``)."""
    if not settings.complete_requests:
        return record
    source.complete(ops, dm, request_ids, now)
    return replace(record, request_completed=True)


def _export(step: Step[FulfilmentParams], req: RequestFacts, row: PlanRow, workdir: str | None) -> Record:
    """Build the package in a private temporary folder, upload it (the data before its record), describe it."""
    ops, objects, dm, settings = step.ops, step.objects, step.datamap, step.settings
    day = acting_on(step)
    name = package.object_name(req.request_id)
    with tempfile.TemporaryDirectory(prefix="dsr-export-", dir=workdir) as tmp:
        try:  # the reads: the subject, its shares, its rows in every store and its files
            who = package.subject(ops, dm, req.user_id)
            if who is None:
                raise _Abandon(CHANGED)
            about = package.About(req.request_id, req.request_type, req.regime, day,
                                  source.policy_in_force(ops, dm, step.ctx.now()))
            shared = shared_with(ops, dm, req.user_id, answer_period(req.regime, req.received_at, day, settings.tz))
            sources = package.Sources(ops, step.stores, step.buckets,
                                      erasure.allowed_buckets(dm, getattr(settings, "file_buckets", None)))
            built = package.build(sources, dm, about, who, shared, os.path.join(tmp, "package.zip"))
        except psycopg.DatabaseError as exc:
            limit = over_limit(exc)
            if isinstance(exc, psycopg.OperationalError) and limit is None:
                raise  # a lost connection or a timeout: the task's one sentence, and its retry
            raise _ReadRefused(database_said(exc), limit) from None
        uri = objects.put_file(name, built.path, package.CONTENT_TYPE)
    notes = ["rows tied to the account by an address another account also has were left out"] \
        if who.shared_address else []
    left_out = _files_left_out(built.stored_files)
    if left_out:
        notes.append(left_out)
        log.warning("request %d: %s", req.request_id, left_out)
    reason = "; ".join(notes) or None
    return _record(row, rules.EXPORTED, reason, package_object=name, package_uri=uri, package_sha256=built.sha256,
                   package_bytes=built.bytes, package_rows=built.rows)


def _files_left_out(stored) -> str | None:
    """For a person (the record) and the log: how many of the files the subject's rows name are not in the package,
    and why, in counts (package.json lists each; a file's name never goes in the record or the log)."""
    why = {"missing": "no longer in storage", "not_allowed": "in a bucket the settings do not allow, or not a gs:// "
           "location", "shared": "named by another account's row too"}
    counts = {s: sum(f.status == s for f in stored) for s in why}
    if not any(counts.values()):
        return None
    return (f"{sum(counts.values())} file(s) the subject's rows name are not in the package ("
            + ", ".join(f"{n} {why[s]}" for s, n in counts.items() if n) + "; package.json lists each)")


# -- erase -------------------------------------------------------------------------------------------------

def erase_requests(step: Step[FulfilmentParams]) -> dict:
    """Erase the subject of each planned erasure or delete request through the erasure engine: one transaction
    per subject (all its planned requests claimed together, and completed with the erasure)."""
    ops, store, dm, ctx = step.ops, step.store, step.datamap, step.ctx
    run = _planned_run(step)
    if run.dry_run or run.state in ("dry_run", "plan_changed"):
        log.info("nothing to erase in this run (%s)", run.state)
        return {"skipped": run.state}
    erasure_run.check_approval(step, WORKFLOW, run)
    settle(step)
    rows = ledger.plan_rows(store, ctx.run_id, acting=True, actions=(rules.ERASE,))
    done = ledger.fulfilled(store, [r.request_id for r in rows])
    groups: dict[str, list[PlanRow]] = {}
    for r in rows:
        if r.request_id not in done:
            groups.setdefault(r.subject_hash, []).append(r)
    unmapped = erasure.discover_unmapped(ops, dm)
    log.info("erasing %d subject(s) for %d request(s) (%d fulfilled already)", len(groups),
             sum(map(len, groups.values())), len(done))
    tally: dict[str, int] = {}
    later = []
    for subject_rows in groups.values():
        outcome = erase_subject_requests(step, subject_rows, unmapped)
        if outcome == CLAIMED:
            later.append(subject_rows)
        else:
            tally[outcome] = tally.get(outcome, 0) + 1
    for subject_rows in later:  # an eraser held the account a moment ago: look again once
        outcome = erase_subject_requests(step, subject_rows, unmapped)
        tally[outcome] = tally.get(outcome, 0) + 1
    result = {"plan_hash": run.plan_hash, "subjects": len(groups), "outcomes": dict(sorted(tally.items()))}
    # A re-run of the step (retried, cleared) says so and what the step erased over all its attempts.
    ctx.audit_step(store, "dsr_fulfilment.erasures", result, summed=("outcomes",), kept=("subjects",))
    log.info("erasures of plan %s: %s", run.plan_hash, _fmt(tally))
    if tally.get(LOCKED):
        raise RequestsBusy(f"{tally[LOCKED]} subject(s) stayed locked by other transactions and were not erased; the "
                           "task's retry erases them")
    warn_refused(tally.get(REFUSED, 0))  # the run fails at its end (finish_run), once the others are verified
    return result


def erase_subject_requests(step: Step, rows: Sequence[PlanRow], unmapped) -> str:
    """Claim the subject's planned requests, erase the subject with the engine, complete and record the requests,
    in one transaction of the operational database."""
    ops, store, dm, settings, ctx, key = step.ops, step.store, step.datamap, step.settings, step.ctx, step.key
    now = ctx.now()
    ids = [r.request_id for r in rows]
    by_id = {r.request_id: r for r in rows}
    try:
        with ops.transaction():
            claimed = source.claim(ops, dm, ids)
            exists = source.existing_accounts(ops, dm, [r.user_id for r in claimed if r.user_id is not None])
            valid = [req for req in claimed
                     if _still_planned(req, by_id[req.request_id], key, req.user_id in exists, settings, now)]
            if not valid:
                raise _Abandon(CLAIMED if len(claimed) < len(ids) else CHANGED)
            user_id = valid[0].user_id
            result = erasure.erase_subject(ops, dm, user_id, key, at=now, options=erasure.EraseOptions(
                unmapped=unmapped, wait=False, stores=access_of(step)))
            if result.outcome == erasure.CLAIMED_ELSEWHERE:
                raise _Abandon(erasure.CLAIMED_ELSEWHERE)
            if result.outcome == erasure.HELD:
                raise _Abandon(rules.HELD)
            if result.outcome == erasure.INCOMPLETE:
                raise _Abandon(rules.INCOMPLETE)
            if result.outcome not in (erasure.PURGED, erasure.ALREADY_ERASED):
                raise _Abandon(CHANGED)
            planned = [by_id[r.request_id] for r in valid]
            records = _erased_records(result, planned,
                                      _kept(store, [result.subject_hash], settings.tz).get(result.subject_hash, ()),
                                      _rows_kept_before(step, result.subject_hash)
                                      if any(r.reason for r in planned) else ())
            records = [_completed(ops, dm, settings, rec, [rec.request_id], now) for rec in records]
            xid = source.transaction_id(ops)
            for rec in records:
                if not ledger.write_pending(store, rec.request_id, ctx.run_id, xid, rec, now):
                    raise _Abandon(ALREADY)
    # The object store or the database refused this subject alone (a constraint or trigger of the application's, or
    # one of the database's limits): recorded for a person, the others go on.
    except (ObjectStoreRefused, erasure.ErasureError, psycopg.DatabaseError) as exc:
        if isinstance(exc, psycopg.OperationalError) and over_limit(exc) is None:
            raise  # a lost connection or a timeout: the task's one sentence, and its retry
        reason = subject_refused_reason(exc)
        for row in rows:
            ledger.record_decided(store, ctx, _record(row, rules.INCOMPLETE, reason))
        log.warning("request(s) %s: left incomplete: %s", ids, reason)
        return REFUSED
    except _Abandon as stop:
        if stop.outcome == rules.HELD:
            held = result.holds
            for req in valid:
                ledger.record_decided(store, ctx, _record(by_id[req.request_id], rules.HELD, held_reason(held),
                                                          holds=held))
        elif stop.outcome == rules.INCOMPLETE:
            for req in valid:
                ledger.record_decided(store, ctx, _record(by_id[req.request_id], rules.INCOMPLETE,
                                                          incomplete_reason(result.not_allowed)))
            log.warning("request(s) %s: %d file(s) of the subject are in buckets the settings do not allow; the "
                        "subject is incomplete (compliance.erasure_files names the files)", ids,
                        len(result.not_allowed))
        elif stop.outcome != ALREADY:
            log.info("request(s) %s: %s; left %s", ids, stop.outcome,
                     "to the run holding it" if stop.outcome == CLAIMED else "to the next run")
        return stop.outcome
    except erasure.SubjectBusy:
        return LOCKED
    for rec in records:
        ledger.finalize(store, ctx, rec.request_id, xid)
    log.info("request(s) %s: subject %s erased (%d rows in %d table(s)); vendors to notify: %s", ids,
             _short(result.subject_hash), result.rows_erased, sum(1 for t in result.tables if t.rows),
             [v.vendor_id for v in result.vendors] or "none")
    return rules.ERASED


def _erased_records(result: erasure.ErasureResult, rows: Sequence[PlanRow], kept: Sequence[tuple[int, date]] = (),
                    kept_rows: Sequence[tuple[str, int]] = ()) -> list[Record]:
    """The records of one subject's erasure: the first request carries the tables, rows and vendors (and its reason
    names the export packages ``kept`` to be handed over, the rows of a shared address an earlier erasure of the
    account kept, ``kept_rows``, and the files a bucket's soft delete keeps recoverable until a day); the others say
    they were erased with it."""
    first, *others = sorted(rows, key=lambda r: r.request_id)
    if first.reason:  # an earlier erasure of the account (rules.ChildPurge), or what is held of an id none has
        held = rules.kept_rows_words(kept_rows)
        if result.outcome == erasure.PURGED:
            reason = (f"{first.reason}: this erasure removed the {result.rows_erased} row(s) still carrying the "
                      f"account id{f'; still held: {held}' if held else ''}")
        else:
            reason = f"{first.reason}: nothing was left to erase{f' but {held}' if held else ''}"
    elif result.outcome == erasure.PURGED:
        reason = None
    else:
        reason = "nothing of the subject was left to erase (already erased, by an earlier request or the child-data purge)"
    if result.shared_address:
        kept_rows = ", ".join(f"{k.table}={k.rows}" for k in result.kept)
        reason = (f"{reason + '; ' if reason else ''}rows tied to the account by an address another account also "
                  f"has were kept ({kept_rows or 'none'})")
    if kept:
        reason = f"{reason + '; ' if reason else ''}{rules.kept_words(kept)}"
    recoverable = result.recoverable_words()  # a bucket's soft delete: the deleted files' copies, for a while
    if recoverable:
        reason = f"{reason + '; ' if reason else ''}{recoverable}"
    # the requests the erasure unlinked: a later run finds it by their ids (migration 0028)
    unlinked = list(result.request_ids) if result.outcome == erasure.PURGED and result.request_ids is not None \
        else None
    # the rows kept for a shared address, as the purge records them: a later request's reason names them (0032)
    shared = {k.table: k.rows for k in result.kept} if result.shared_address and result.kept else None
    records = [_record(first, rules.ERASED, reason, user_id=result.user_id, erased_tables=result.tables_evidence(),
                       rows_erased=result.rows_erased, vendors=[v.as_dict() for v in result.vendors],
                       request_ids=unlinked, kept_rows=shared)]
    records += [_record(r, rules.ERASED, f"erased together with request {first.request_id} (the same subject)",
                        erased_tables={}, rows_erased=0) for r in others]
    return records


# -- verify ------------------------------------------------------------------------------------------------

def verify_erasures(step: Step) -> dict:
    """After commit, count again what is left of the erased subjects in every table (by key); then forget their
    account ids: from here on the store knows them by keyed hash only."""
    return erasure_run.verify(step, WORKFLOW)


# -- finish ------------------------------------------------------------------------------------------------

def expire_packages(step: Step) -> tuple[int, dict[int, ObjectStoreRefused]]:
    """Export packages are personal data: delete those older than ``export_retention_days`` (setting, default 30)
    from the evidence store and record when (``package_deleted_at``); one an erasure kept to be handed over once its
    ``kept_until`` (made + those days) has passed. A dry run deletes nothing, and neither does a
    run targeted at named requests: it acts on those alone (the next untargeted run expires them). Returns how many,
    and those the object store refused to delete (a retention policy, a hold), by request: the others are deleted."""
    from include.erasure.stores import EXPORT_PACKAGE, KEPT_FOR_DELIVERY, package_expired

    store, objects, settings, ctx = step.store, step.objects, step.settings, step.ctx
    if objects is None or step.params.targeted:
        return 0, {}
    now = ctx.now()
    cutoff = now - timedelta(days=settings.export_retention_days)
    # Retention counts from when the package was made (its upload: package_made_at, the time of its pending record,
    # though the record may have been written days later, when the next run settled it; a record written before
    # migration 0030: its own time), as an erasure's kept_until does (made + the days); a kept_until an erasure
    # recorded before then may be earlier, and its evidence says the package is gone by then.
    rows = store.execute("""select d.request_id, d.package_object from compliance.dsr_fulfilments d
                            where d.package_object is not null and d.package_deleted_at is null
                              and (coalesce(d.package_made_at, d.recorded_at) < %(cutoff)s
                                   or exists (select 1 from compliance.erasure_files f
                                              where f.subject_hash = d.subject_hash and f.uri = d.package_object
                                                and f.kind = %(kind)s and f.state = %(kept)s
                                                and f.kept_until < %(now)s))
                            order by d.request_id""",
                         {"cutoff": cutoff, "now": now, "kind": EXPORT_PACKAGE, "kept": KEPT_FOR_DELIVERY}).fetchall()
    orphans = _unrecorded_packages(store, objects, cutoff)
    deleted, refused = [], {}
    for request_id, name in rows + orphans:
        try:
            objects.delete(name)
        except ObjectStoreRefused as exc:
            refused[request_id] = exc
            continue
        with store.transaction():  # both or neither: a record deleted is never selected again
            store.execute("update compliance.dsr_fulfilments set package_deleted_at = %s where request_id = %s "
                          "and package_object = %s and package_deleted_at is null", (ctx.now(), request_id, name))
            package_expired(store, request_id, name, ctx.now())  # kept for delivery by its subject's erasure: deleted
        deleted.append(request_id)
    if rows or orphans or _refused_before(store):
        # Also when nothing is left to expire but the newest entry named packages not deleted (one removed by hand
        # since): 'Needs a person' counts those from the newest entry, and would otherwise count them for good.
        ctx.audit(store, "dsr_fulfilment.packages_expired", {
            "requests": deleted, "not_deleted": sorted(refused), "unrecorded": [r for r, _ in orphans],
            "older_than_days": settings.export_retention_days})
        log.info("deleted %d export package(s) older than %d day(s)%s", len(deleted), settings.export_retention_days,
                 f", {len(orphans)} of them named by no record" if orphans else "")
    if refused:
        log.warning("%d export package(s) past export_retention_days the object store refused to delete (request(s) %s)",
                    len(refused), sorted(refused))
    return len(deleted), refused


def _refused_before(store) -> bool:
    """The newest expiry's audit entry names packages the object store refused to delete."""
    row = store.execute("""select details -> 'not_deleted' from compliance.audit_log
                           where action = 'dsr_fulfilment.packages_expired'
                           order by occurred_at desc, id desc limit 1""").fetchone()
    return bool(row and row[0])


def _unrecorded_packages(store, objects, cutoff: datetime) -> list[tuple[int, str]]:
    """(request id, name) of the packages under ``exports/`` written before ``cutoff`` that no record names as kept:
    an upload whose transaction did not commit (a lost connection at its commit, the compliance store gone before
    the record) and whose request was not exported again (withdrawn, closed). No expiry and no erasure would find
    them otherwise; one written after ``cutoff`` may still be a running export's."""
    named = {name for (name,) in store.execute(
        """select package_object from compliance.dsr_fulfilments
           where package_object is not null and package_deleted_at is null
           union select record ->> 'package_object' from compliance.dsr_fulfilment_pending
           where record ->> 'package_object' is not null""")}
    found = []
    for info in objects.describe(package.EXPORTS_PREFIX):
        request_id = package.request_of(info.name)
        if request_id is not None and info.name not in named and info.created < cutoff:
            found.append((request_id, info.name))
    return sorted(found)


def finish_run(step: Step) -> dict:
    """Close the run: erasures nobody approved (a rejection, a timeout, a plan that changed since its approval)
    are recorded ``approval_required``; the run's counts are recorded; the plans of dry runs started, and of live
    runs finished, longer ago than ``whatif_retention_days`` are forgotten (a live run's plan is never forgotten
    before it finished). A run told to carry out a plan that changed fails here, after everything else was done."""
    store, settings, ctx = step.store, step.settings, step.ctx
    run = _planned_run(step)
    state = run.state
    reason = None
    unapproved = erasure_run.close_unapproved(step, WORKFLOW, run)
    if unapproved:
        reason = unapproved.why
        state = "rejected"
    elif run.state == "plan_changed":
        reason = (f"the erasure plan changed since it was approved (now {_short(run.plan_hash)}): run a dry run "
                  "again and approve the plan it prints")
    elif not run.dry_run and run.state != "rejected":  # rejected: closed so by an earlier attempt (a cleared task)
        state = "done"
    if reason:
        pending = ledger.plan_rows(store, ctx.run_id, acting=True, actions=(rules.ERASE,))
        for row in pending:
            ledger.record_decided(store, ctx, _record(row, rules.APPROVAL_REQUIRED, f"{reason}; nothing was erased"))
        log.warning("%s: %d erasure request(s) left untouched", reason, len(pending))
    outcomes = ledger.outcome_counts(store, ctx.run_id)
    pruned = ledger.prune_plans(store, older_than=ctx.now() - timedelta(days=settings.whatif_retention_days),
                                at=ctx.now())
    expired, kept = expire_packages(step)
    erasure_run.finish_run(store, run, state=state, at=ctx.now(), counts={"outcomes": outcomes})
    ctx.audit_step(store, "dsr_fulfilment.finished", {
        "state": state, "plan_hash": run.plan_hash, "outcomes": outcomes, "dry_run": run.dry_run, "plans_pruned": pruned,
        "packages_expired": expired, "packages_not_deleted": sorted(kept)}, summed=("plans_pruned", "packages_expired"))
    log.info("run finished: %s; requests by the outcome recorded in this run: %s", state, _fmt(outcomes))
    over = ledger.incomplete_with(store, ctx.run_id, LIMIT_STOPPED)  # the erasures' are among the refused below
    if over:
        raise RequestsOverLimit(over, sum(erasure_run.refused_counts(store, WORKFLOW, ctx.run_id)))
    erasure_run.fail_if_refused(store, WORKFLOW, ctx.run_id, "subject(s) to erase")
    if run.state == "plan_changed":
        raise PlanChanged(f"the erasure plan changed since it was approved (the plan is now {_short(run.plan_hash)}): "
                          "nothing was erased, the other requests were fulfilled; run a dry run again and approve the "
                          "plan it prints")
    if kept:
        raise ObjectStoreRefused(f"{len(kept)} export package(s) past export_retention_days could not be deleted "
                                 f"(request {', '.join(map(str, sorted(kept)))}): {next(iter(kept.values()))}; the "
                                 "others were deleted and the run finished, and the next run tries again")
    return {"state": state, "outcomes": outcomes}
