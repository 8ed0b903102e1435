"""The outbox: one table (``compliance.outbox``, migration 0017) for every low-volume email, and one ledger that
hands its rows to the delivery engine (:func:`include.delivery.engine.deliver`).

A row is one message to send (or one line of a message that lists several), keyed by ``(kind, key)``: the kind is
the email type's ledger name (``dsr.escalation``, also the prefix of its audit actions ``dsr.escalation_sent`` /
``_failed``), the key what it tells (``123/overdue``, ``2026-11-25``, a run id). :meth:`Outbox.record` inserts it
``on conflict (kind, key) do nothing``, so a message is recorded once whatever the runs, retries and mapped tasks;
:meth:`Outbox.record_current` records a message still pending again with the facts of now (a purge run's summary,
after its re-run purged more). What is the kind's own (a level and a due date, a digest's counts, an alert's
reason) is in ``facts``.

:class:`OutboxLedger` is the engine's :class:`~include.delivery.engine.Ledger` over one kind's rows: it claims the
next pending rows ``FOR UPDATE SKIP LOCKED`` inside the engine's transaction (so two runs at once never send one
row, and a sender that dies releases its rows), asks the kind's ``compose`` what the message says, and marks the
rows sent or failed in the same transaction as the audit entry (so a crash re-sends at most the batch in flight);
rows a kind's ``check`` says no longer hold are ``withdrawn`` in the claiming transaction, not sent.
An email type brings only what is its own:

- ``scope``: which of the kind's rows this sender may send (a SQL condition on the row ``o``, e.g. a targeted
  run's request ids), with its ``params``;
- ``order``: the order rows are claimed in (SQL on ``o``), and how many go in one message (``per_message``);
  ``by_recipient`` makes a message of one recipient's rows (escalations);
- ``compose(conn, entries) -> (payload, evidence)``: the Mail Send payload of the claimed rows (its
  personalization's ``custom_args`` name what it is about: :func:`include.mail.envelope`) and what the audit
  entry records of it (ids and counts, never an address);
- optionally ``check(conn, entries) -> {key: why}`` (:meth:`OutboxLedger.withdrawing`): the claimed rows that no
  longer hold now (an escalation whose
  request was closed since it was recorded). They are marked ``withdrawn`` with the reason in ``error``, in the
  claiming transaction, and not sent (the engine audits them as ``<kind>_withdrawn``). A withdrawn row recorded
  again is pending again: a message that holds once more is sent, still at most once.

The campaign's ledger (``include/campaign/ledger.py``) is not an outbox kind: a million rows a campaign, claimed
lane by lane in seq order, need a table and a claim of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from psycopg.types.json import Jsonb

from include.delivery.engine import Batch

_COLUMNS = "o.key, o.recipient, o.facts, o.claimed_at, o.claimed_run"


@dataclass(frozen=True)
class Entry:
    """One claimed outbox row."""

    key: str
    recipient: str
    facts: dict
    claimed_at: datetime
    claimed_run: str


# What a kind's rows say: (payload, evidence) of the message carrying the claimed entries.
Compose = Callable[[Any, Sequence[Entry]], "tuple[dict, dict]"]
# Which claimed entries no longer hold, each with why (ids, states and dates: never an address).
Check = Callable[[Any, Sequence[Entry]], Mapping[str, str]]

# Recording a message again changes nothing, unless it was withdrawn: then it holds again and is pending again, as
# recorded now (a count of unanswered requests, which may have reached the recipient, is kept). Recorded again with
# Outbox.record_current, a message still pending is said as recorded now too.
_RECORDED_AGAIN = """on conflict (kind, key) do update
    set status = 'pending', recipient = excluded.recipient, claimed_at = excluded.claimed_at,
        claimed_run = excluded.claimed_run, error = null,
        facts = excluded.facts || jsonb_strip_nulls(
            jsonb_build_object('unanswered_requests', outbox.facts -> 'unanswered_requests'))"""
_RECORDED = f"{_RECORDED_AGAIN}\n    where outbox.status = 'withdrawn'"
_RECORDED_CURRENT = f"{_RECORDED_AGAIN}\n    where outbox.status in ('pending', 'withdrawn')"


@dataclass(frozen=True)
class Outbox:
    """The outbox rows of one kind (an email type)."""

    kind: str

    def record(self, conn, key: str, *, recipient: str, facts: Mapping, at: datetime, run_id: str) -> bool:
        """Record the message ``key`` once; True when it was new (a second record of the same key adds nothing,
        unless it was withdrawn: then it is pending again)."""
        return self._insert(conn, _RECORDED, (key, recipient, facts, at, run_id))

    def record_current(self, conn, key: str, *, recipient: str, facts: Mapping, at: datetime, run_id: str) -> bool:
        """Record the message ``key`` as :meth:`record` does, but a message still pending (recorded by an earlier
        attempt, not sent: SendGrid was down) says ``facts`` from now on: what it tells is what holds when it is
        recorded again (a run's counts after its re-run did more). A message sent or refused is left as it is, and so
        is one a sender holds right now (it is being sent; this waits for it and then finds it sent). True when it was
        new, or pending and recorded again."""
        return self._insert(conn, _RECORDED_CURRENT, (key, recipient, facts, at, run_id))

    def _insert(self, conn, on_conflict: str, row: tuple) -> bool:
        """Insert one message, ``(key, recipient, facts, at, run_id)``, as ``on_conflict`` says; True when a row was
        written."""
        key, recipient, facts, at, run_id = row
        return conn.execute(
            f"""insert into compliance.outbox as outbox (kind, key, recipient, facts, claimed_at, claimed_run)
                values (%s, %s, %s, %s, %s, %s) {on_conflict} returning 1""",
            (self.kind, key, recipient, Jsonb(dict(facts)), at, run_id)).fetchone() is not None

    def record_select(self, conn, query: str, params: Mapping) -> int:
        """Record every row ``query`` yields — ``(key, recipient, facts, claimed_at, claimed_run)``, named
        parameters — each once (a withdrawn one is pending again); returns how many were new or pending again."""
        return conn.execute(
            f"""insert into compliance.outbox as outbox (kind, key, recipient, facts, claimed_at, claimed_run)
                select %(outbox_kind)s, q.* from ({query}) as q(key, recipient, facts, claimed_at, claimed_run)
                {_RECORDED}""", {**params, "outbox_kind": self.kind}).rowcount

    def withdraw(self, conn, key: str, why: str, *, facts: Mapping | None = None) -> bool:
        """Withdraw the pending message ``key`` (when its ``facts`` hold these) with ``why``, in the caller's
        transaction; True when it did. A row a sender holds right now is left to it (``skip locked``): it is being
        sent. Recorded again, it is pending again (:meth:`record`)."""
        return conn.execute(
            """update compliance.outbox o set status = 'withdrawn', error = %(why)s
               from (select kind, key from compliance.outbox
                     where kind = %(kind)s and key = %(key)s and status = 'pending' and facts @> %(facts)s
                     for update skip locked) due
               where o.kind = due.kind and o.key = due.key""",
            {"why": why, "kind": self.kind, "key": key, "facts": Jsonb(dict(facts or {}))}).rowcount == 1

    def status(self, conn, key: str) -> tuple[str, str | None] | None:
        """The message's status and its error (SendGrid's reason when it was refused), or None if not recorded."""
        return conn.execute("select status, error from compliance.outbox where kind = %s and key = %s",
                            (self.kind, key)).fetchone()

    def ledger(self, compose: Compose, *, scope: str = "true", params: Mapping | None = None,
               order: str = "o.claimed_at, o.key", per_message: int = 1, by_recipient: bool = False) -> OutboxLedger:
        """This kind's pending rows within ``scope`` (SQL over ``o``, with named ``params``), claimed in ``order``,
        up to ``per_message`` rows a message (with ``by_recipient``, one recipient's rows a message)."""
        if per_message < 1:
            raise ValueError("a message carries at least one outbox row")
        mine = f"o.kind = %(outbox_kind)s and o.status = 'pending' and ({scope})"
        if by_recipient:
            # The first unlocked pending row's recipient, then that recipient's unlocked pending rows: one message.
            claim = f"""
                with head as (
                    select lower(o.recipient) as recipient from compliance.outbox o where {mine}
                    order by {order} limit 1 for update skip locked)
                select {_COLUMNS} from compliance.outbox o join head on lower(o.recipient) = head.recipient
                where {mine}
                order by {order} limit %(outbox_limit)s for update of o skip locked"""
        else:
            claim = f"""select {_COLUMNS} from compliance.outbox o where {mine}
                        order by {order} limit %(outbox_limit)s for update skip locked"""
        named = {**(params or {}), "outbox_kind": self.kind, "outbox_limit": per_message}
        return OutboxLedger(self.kind, compose, named, pending=f"select count(*) from compliance.outbox o where {mine}",
                            claim=claim)


class OutboxLedger:
    """One kind's pending rows for the delivery engine (built by :meth:`Outbox.ledger`); see the module's
    documentation."""

    def __init__(self, kind: str, compose: Compose, params: Mapping, *, pending: str, claim: str):
        self.name = kind  # the audit actions: "<kind>_sent" / "<kind>_failed" / "<kind>_withdrawn"
        self.kind, self.compose, self.params = kind, compose, params
        self.check: Check | None = None
        self._pending, self._claim = pending, claim

    def withdrawing(self, check: Check) -> "OutboxLedger":
        """This ledger, asking ``check`` which claimed rows no longer hold: those are withdrawn, not sent."""
        self.check = check
        return self

    def pending(self, conn) -> int:
        return conn.execute(self._pending, self.params).fetchone()[0]

    def claim(self, conn) -> Batch | None:
        """The next pending rows, locked. Those ``check`` says no longer hold are withdrawn here (in the claiming
        transaction) and the next rows claimed in their place: the batch is what still holds, the withdrawn beside
        it (a batch of withdrawn rows only when nothing pending is left)."""
        withdrawn: dict[str, str] = {}
        while True:
            entries = [Entry(*row) for row in conn.execute(self._claim, self.params)]
            if not entries:
                return Batch(keys=[], payload={}, withdrawn=withdrawn) if withdrawn else None
            claimed = {e.key for e in entries}
            moot = {key: why for key, why in (self.check(conn, entries) if self.check else {}).items()
                    if key in claimed}
            if moot:
                conn.execute("""update compliance.outbox o set status = 'withdrawn', error = w.why
                                from unnest(%s::text[], %s::text[]) as w(key, why)
                                where o.kind = %s and o.key = w.key and o.status = 'pending'""",
                             (list(moot), list(moot.values()), self.kind))
                withdrawn.update(moot)
            due = [e for e in entries if e.key not in moot]
            if due:
                payload, evidence = self.compose(conn, due)
                return Batch(keys=[e.key for e in due], payload=payload, evidence=evidence, withdrawn=withdrawn)

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None:
        conn.execute("""update compliance.outbox set status = 'sent', message_id = %s, sent_at = %s
                        where kind = %s and key = any(%s) and status = 'pending'""",
                     (message_id, sent_at, self.kind, list(batch.keys)))

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None:
        conn.execute("""update compliance.outbox set status = 'failed', error = %s, failed_at = clock_timestamp()
                        where kind = %s and key = any(%s) and status = 'pending'""",
                     (reason, self.kind, list(batch.keys)))

    def mark_at_risk(self, conn, batch: Batch, *, unanswered: int, sent: bool) -> None:
        """Count in each row's facts (``unanswered_requests``) the requests that got no answer: the message may have
        reached its recipient that many more times (the delivery engine's rule)."""
        conn.execute("""update compliance.outbox
                        set facts = facts || jsonb_build_object(
                            'unanswered_requests', coalesce((facts ->> 'unanswered_requests')::int, 0) + %s)
                        where kind = %s and key = any(%s)""", (unanswered, self.kind, list(batch.keys)))
