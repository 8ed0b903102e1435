"""The digest ledger: one email a day to the compliance team with every request needing attention."""
from __future__ import annotations

from datetime import date, datetime

from psycopg.types.json import Jsonb

from include.config import Settings
from include.deadline_rules import ESCALATION_STATES
from include.deadlines.emails import digest_payload
from include.delivery.engine import Batch

DIGEST_ITEMS = 200


def record(store, *, digest_date: date, recipient: str, counts: dict, run_id: str, now: datetime) -> None:
    """Record the day's digest once (a second run the same day records nothing)."""
    store.execute(
        """insert into compliance.dsr_digests (digest_date, recipient, counts, claimed_at, claimed_run)
           values (%s, %s, %s, %s, %s) on conflict (digest_date) do nothing""",
        (digest_date, recipient, Jsonb(counts), now, run_id))


def status(store, digest_date: date) -> tuple[str, str | None] | None:
    """The day's digest status and its error, if recorded."""
    return store.execute("select status, error from compliance.dsr_digests where digest_date = %s",
                         (digest_date,)).fetchone()


def items(store, as_of: date, limit: int = DIGEST_ITEMS) -> list[tuple]:
    """Requests needing attention, worst first: (request_id, regime, type, state, due date, days left)."""
    return store.execute(
        """select request_id, regime, request_type, state,
                  case when state = 'ack_overdue' then ack_due else effective_due end, days_left
           from compliance.dsr_status
           where state = any(%s) and as_of = %s
           order by case state when 'overdue' then 0 when 'ack_overdue' then 1 else 2 end, days_left, request_id
           limit %s""", (sorted(ESCALATION_STATES), as_of, limit)).fetchall()


class DigestLedger:
    """``compliance.dsr_digests`` for the delivery engine: the day's row is one batch."""

    name = "dsr.digest"

    def __init__(self, settings: Settings, run_id: str, digest_date: date, counts: dict[str, int]):
        self.settings, self.run_id, self.digest_date, self.counts = settings, run_id, digest_date, counts

    def pending(self, conn) -> int:
        return conn.execute("select count(*) from compliance.dsr_digests where digest_date = %s and status = 'pending'",
                            (self.digest_date,)).fetchone()[0]

    def claim(self, conn) -> Batch | None:
        row = conn.execute("""select digest_date from compliance.dsr_digests
                              where digest_date = %s and status = 'pending' for update skip locked""",
                           (self.digest_date,)).fetchone()
        if row is None:
            return None
        listed = items(conn, self.digest_date)
        total = sum(self.counts.get(s, 0) for s in ESCALATION_STATES)
        return Batch(keys=[self.digest_date],
                     payload=digest_payload(self.digest_date, self.counts, listed, total, self.settings, self.run_id),
                     evidence={"digest_date": self.digest_date.isoformat(), "counts": self.counts})

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None:
        self._finish(conn, status="sent", message_id=message_id, sent_at=sent_at)

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None:
        self._finish(conn, status="failed", error=reason)

    def _finish(self, conn, *, status: str, message_id: str | None = None, sent_at: datetime | None = None,
                error: str | None = None) -> None:
        conn.execute("""update compliance.dsr_digests set status = %s, message_id = %s, sent_at = %s, error = %s
                        where digest_date = %s and status = 'pending'""",
                     (status, message_id, sent_at, error, self.digest_date))
