"""The delivery engine: every email the product sends goes claim → send → mark → audit, here.

A *ledger* is a table with one row per thing to tell someone (an escalation, a digest, a campaign
recipient, a violation report). The engine asks it for the next *batch* — the rows of one Mail Send
request — inside a transaction that holds them locked (``SELECT … FOR UPDATE SKIP LOCKED``), sends the
batch, marks it and writes the audit entry, and commits. Hence the rules every sender keeps:

- **Exactly one live sender per message.** Rows locked by one run are skipped by every other run, task
  attempt or mapped task, so two runs at once never send the same row; the lock ends with the sender's
  transaction, so a sender that dies (SIGKILL, lost worker) releases its batch to the next attempt.
- **A crash re-sends at most the batch in flight**: rows are marked sent in the same transaction as the
  send's audit entry; a crash before the commit leaves them pending.
- **A refused batch (HTTP 400) is marked failed with SendGrid's reason**, and the run goes on.
- **A row that no longer holds when it is claimed is withdrawn, not sent**: a ledger that checks its rows at send
  time (an escalation whose request was closed since it was recorded) marks them withdrawn with the reason in the
  claiming transaction and hands them over in ``Batch.withdrawn``; the engine writes the audit entry
  ``<name>_withdrawn`` in that transaction and sends the rest of the batch (if any).
- **401/403 stop at once** (a :class:`~include.errors.NeedsOperator`), leaving the batch pending.
- **5xx, timeouts**: the mailer backs off; when it gives up, the batch stays pending and the task fails
  as a :class:`~include.errors.Transient`, so Airflow's retry resumes from the ledger.
- **429**: the mailer waits for ``X-RateLimit-Reset`` within the task's deadline; past it the task ends
  saying how many messages are still pending, and the retry sends them.
- **A request that got no answer** (a timeout after the request had arrived, a connection closed before the
  answer) may have been taken by SendGrid: when another attempt of the message is then accepted, or the
  message is left pending for a retry, it may reach its recipients more than once. The engine says so where a
  person looks: an audit entry ``<name>_at_risk`` with the number of such requests, a warning in the task log,
  and the ledger's own record when it keeps one (``mark_at_risk``: the campaign counts these rows as
  duplicates at risk; the outbox keeps the count in the row's facts).

Logs and audit entries carry ids, counts and message ids, never an address.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Sequence

from include.audit import RunContext
from include.errors import Transient
from include.delivery.sendgrid_mailer import SendGridError, SendGridRateLimited, SendGridRejected

log = logging.getLogger("include.delivery")


@dataclass(frozen=True)
class Batch:
    """The rows of one Mail Send request, locked by this sender until its transaction ends."""

    keys: Sequence[Any]
    payload: dict
    # What the audit log records of the batch: ids and counts only, never an address.
    evidence: dict = field(default_factory=dict)
    # Rows of this claim withdrawn instead (already marked by the ledger): their keys, each with why.
    withdrawn: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.keys)


class Ledger(Protocol):
    """One kind of message: where its rows live and how a batch becomes a payload."""

    name: str  # e.g. "dsr.escalation": audit actions are "<name>_sent" / "<name>_failed"

    def pending(self, conn) -> int:
        """Rows this sender may still send (including rows another sender holds right now)."""

    def claim(self, conn) -> Batch | None:
        """Inside the caller's transaction: lock and return the next batch, or None when none is left. A batch may
        carry only withdrawn rows (no keys): nothing is sent for it."""

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None: ...

    # Optional: ``mark_at_risk(conn, batch, *, unanswered: int, sent: bool)`` records that ``unanswered`` requests of
    # the batch got no answer (``sent``: another attempt was then accepted; else the batch stays pending, or, when
    # another attempt was refused, is already marked failed in the same transaction).

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None: ...


class DeliveryDeferred(Transient):
    """SendGrid rate-limited past the task's deadline; the ledger keeps what is left for the retry."""


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    messages: int = 0
    refused_messages: int = 0
    withdrawn: int = 0  # rows no longer due when claimed: not sent (not in as_dict: a kind that withdraws says so)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "failed": self.failed, "messages": self.messages,
                "refused_messages": self.refused_messages}


def deliver(store, ledger: Ledger, mailer, ctx: RunContext, *, progress_every: float = 10.0) -> DeliveryReport:
    """Send every batch the ledger has for this sender; returns what happened."""
    total = ledger.pending(store)
    report = DeliveryReport()
    started = last_progress = time.monotonic()
    log.info("%s: %d pending", ledger.name, total)
    while True:
        try:
            with store.transaction():
                batch = ledger.claim(store)
                if batch is None:
                    break
                if batch.withdrawn:
                    _withdrawn(store, ledger, ctx, batch, report)
                if batch.size:
                    _send_one(store, ledger, mailer, ctx, batch, report)
        except SendGridError as exc:
            batch = getattr(exc, "batch", None)
            if exc.unanswered and batch is not None:  # the batch's transaction is gone: the record gets its own
                with store.transaction():
                    _at_risk(store, ledger, ctx, batch, exc.unanswered, after=UNANSWERED)
            if not isinstance(exc, SendGridRateLimited):
                raise
            left = ledger.pending(store)
            raise DeliveryDeferred(f"{exc}; {left} {ledger.name} row(s) are still pending and the task's retry "
                                   "sends them") from None
        now = time.monotonic()
        if now - last_progress >= progress_every:
            last_progress = now
            _progress(ledger, report, total, now - started)
    _progress(ledger, report, total, time.monotonic() - started)
    return report


def _send_one(store, ledger: Ledger, mailer, ctx: RunContext, batch: Batch, report: DeliveryReport) -> None:
    report.messages += 1
    try:
        result = mailer.send(batch.payload)
    except SendGridRejected as exc:
        ledger.mark_failed(store, batch, reason=str(exc))
        if exc.unanswered:  # an earlier attempt got no answer before this one was refused: it may have gone out
            _at_risk(store, ledger, ctx, batch, exc.unanswered, after=REFUSED)
        report.failed += batch.size
        report.refused_messages += 1
        ctx.audit(store, f"{ledger.name}_failed", {**batch.evidence, "rows": batch.size, "reason": str(exc)})
        log.error("%s: a message of %d row(s) was refused by SendGrid (%s); they are marked failed",
                  ledger.name, batch.size, exc)
        return
    except SendGridError as exc:
        exc.batch = batch  # for deliver(), which records a risk after this transaction rolls back
        raise
    ledger.mark_sent(store, batch, message_id=result.message_id, sent_at=ctx.now())
    report.sent += batch.size
    if result.unanswered:
        _at_risk(store, ledger, ctx, batch, result.unanswered, after=ACCEPTED)
    ctx.audit(store, f"{ledger.name}_sent", {**batch.evidence, "rows": batch.size, "message_id": result.message_id})


def _withdrawn(store, ledger: Ledger, ctx: RunContext, batch: Batch, report: DeliveryReport) -> None:
    """Audit the rows the ledger withdrew in this claim (in the claiming transaction: a rollback takes both back)."""
    report.withdrawn += len(batch.withdrawn)
    ctx.audit(store, f"{ledger.name}_withdrawn", {"rows": len(batch.withdrawn),
                                                   "withdrawn": [[key, why] for key, why in batch.withdrawn.items()]})
    log.info("%s: %d row(s) no longer hold and are withdrawn, not sent: %s", ledger.name, len(batch.withdrawn),
             "; ".join(f"{key}: {why}" for key, why in batch.withdrawn.items()))


# How the send of a batch with unanswered requests ended: the last attempt was accepted, refused (400/413: the batch
# is marked failed), or no answer settled it (the batch is left pending for a retry).
ACCEPTED, REFUSED, UNANSWERED = "accepted", "refused", "unanswered"
_AFTER_WORDS = {ACCEPTED: "another attempt was accepted", UNANSWERED: "the message is left for a retry",
                REFUSED: "another attempt was refused and they are marked failed, though they may have been told"}


def _at_risk(store, ledger: Ledger, ctx: RunContext, batch: Batch, unanswered: int, *, after: str) -> None:
    """Record that ``unanswered`` requests of ``batch`` got no answer: its rows may get the message more than once
    (or, ``after`` a refusal, may have got it though marked failed)."""
    mark = getattr(ledger, "mark_at_risk", None)
    if mark is not None:
        mark(store, batch, unanswered=unanswered, sent=after == ACCEPTED)
    ctx.audit(store, f"{ledger.name}_at_risk", {**batch.evidence, "rows": batch.size, "unanswered_requests": unanswered,
                                                 "accepted_after": after == ACCEPTED,
                                                 **({"refused_after": True} if after == REFUSED else {})})
    log.warning("%s: %d request(s) of a message to %d row(s) got no answer from SendGrid, which may have taken "
                "them: those rows may get the message more than once (%s)", ledger.name, unanswered, batch.size,
                _AFTER_WORDS[after])


def _progress(ledger: Ledger, report: DeliveryReport, total: int, elapsed: float) -> None:
    rate = report.sent / elapsed if elapsed > 0 else 0.0
    log.info("%s: %d/%d sent, %d failed, %d withdrawn, %d message(s), %.1f rows/s", ledger.name, report.sent, total,
             report.failed, report.withdrawn, report.messages, rate)
