"""The daily digest: one email a day to the compliance team with every request needing attention, recorded once
in the outbox (key: the day)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Sequence

from include.config import Settings
from include.deadline_rules import ESCALATION_STATES
from include.deadlines.emails import digest_payload
from include.delivery.outbox import Entry, Outbox, OutboxLedger

DIGEST_ITEMS = 200
OUTBOX = Outbox("dsr.digest")


def record(store, *, digest_date: date, recipient: str, counts: dict, run_id: str, now: datetime) -> None:
    """Record the day's digest once (a second run the same day records nothing)."""
    OUTBOX.record(store, digest_date.isoformat(), recipient=recipient,
                  facts={"digest_date": digest_date.isoformat(), "counts": counts}, at=now, run_id=run_id)


def status(store, digest_date: date) -> tuple[str, str | None] | None:
    """The day's digest status and its error, if recorded."""
    return OUTBOX.status(store, digest_date.isoformat())


def items(store, as_of: date, limit: int = DIGEST_ITEMS) -> list[tuple]:
    """Requests needing attention, worst first: (request_id, regime, type, state, due date, days left)."""
    return store.execute(
        """select request_id, regime, request_type, state,
                  case when state = 'ack_overdue' then ack_due else effective_due end, days_left
           from compliance.dsr_status
           where state = any(%s) and as_of = %s
           order by case state when 'overdue' then 0 when 'ack_overdue' then 1 else 2 end, days_left, request_id
           limit %s""", (sorted(ESCALATION_STATES), as_of, limit)).fetchall()


def ledger(settings: Settings, run_id: str, digest_date: date, counts: dict[str, int]) -> OutboxLedger:
    """The day's digest for the delivery engine: one message, saying what this run counted."""

    def compose(conn, entries: Sequence[Entry]) -> tuple[dict, dict]:
        listed = items(conn, digest_date)
        total = sum(counts.get(s, 0) for s in ESCALATION_STATES)
        return (digest_payload(digest_date, counts, listed, total, settings, run_id),
                {"digest_date": digest_date.isoformat(), "counts": counts})

    return OUTBOX.ledger(compose, scope="o.key = %(day)s", params={"day": digest_date.isoformat()})
