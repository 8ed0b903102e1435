"""The escalation ledger: each (request, level) is recorded once and emailed once, recipient by recipient."""
from __future__ import annotations

from datetime import date, datetime
from typing import Sequence

from include.config import Settings
from include.deadline_rules import ESCALATION_STATES
from include.deadlines.emails import ESCALATIONS_PER_MESSAGE, PendingEscalation, escalation_payload
from include.delivery.engine import Batch

_RECORD = """
insert into compliance.dsr_escalations
    (request_id, level, recipient, recipient_is_team, due_date, days_left, claimed_at, claimed_run)
select s.request_id, s.state, coalesce(s.assignee_email, %(team)s), s.assignee_email is null,
       case when s.state = 'ack_overdue' then s.ack_due else s.effective_due end,
       s.days_left, %(now)s, %(run_id)s
from compliance.dsr_status s
where s.state = any(%(levels)s) and s.as_of = %(as_of)s
  and (cardinality(%(ids)s::bigint[]) = 0 or s.request_id = any(%(ids)s::bigint[]))
on conflict (request_id, level) do nothing
"""

_UNRECORDED = """
select count(*) from {table} s
where s.state = any(%(levels)s) and s.as_of = %(as_of)s {run_filter}
  and (cardinality(%(ids)s::bigint[]) = 0 or s.request_id = any(%(ids)s::bigint[]))
  and not exists (select 1 from compliance.dsr_escalations e
                  where e.request_id = s.request_id and e.level = s.state)
"""

_MINE = "(cardinality(%(ids)s::bigint[]) = 0 or {t}.request_id = any(%(ids)s::bigint[]))"

# The next recipient with unlocked pending rows, then that recipient's pending rows: one message.
_CLAIM = f"""
with head as (
    select lower(recipient) as recipient from compliance.dsr_escalations h
    where h.status = 'pending' and {_MINE.format(t="h")}
    order by h.claimed_at, h.request_id, h.level
    limit 1
    for update skip locked)
select e.request_id, e.level, e.recipient, e.recipient_is_team, s.regime, s.request_type, e.due_date, e.days_left
from compliance.dsr_escalations e
join head on lower(e.recipient) = head.recipient
left join compliance.dsr_status s on s.request_id = e.request_id
where e.status = 'pending' and {_MINE.format(t="e")}
order by e.claimed_at, e.request_id, e.level
limit %(limit)s
for update of e skip locked
"""

_PENDING = f"select count(*) from compliance.dsr_escalations e where e.status = 'pending' and {_MINE.format(t='e')}"


def _params(as_of: date, request_ids: Sequence[int], **extra) -> dict:
    return {"levels": sorted(ESCALATION_STATES), "as_of": as_of, "ids": list(request_ids), **extra}


def record(store, *, as_of: date, team_email: str, run_id: str, now: datetime, request_ids: Sequence[int] = ()) -> int:
    """Record every escalation this evaluation calls for and that was never recorded; returns how many."""
    return store.execute(_RECORD, _params(as_of, request_ids, team=team_email, run_id=run_id, now=now)).rowcount


def count_unrecorded(store, *, as_of: date, request_ids: Sequence[int] = (), whatif_run: str | None = None) -> int:
    """What :func:`record` would record: for a dry run from the live status, for a what-if from its own rows."""
    if whatif_run is None:
        query = _UNRECORDED.format(table="compliance.dsr_status", run_filter="")
    else:
        query = _UNRECORDED.format(table="compliance.dsr_whatif", run_filter="and s.run_id = %(run)s")
    return store.execute(query, _params(as_of, request_ids, run=whatif_run)).fetchone()[0]


class EscalationLedger:
    """``compliance.dsr_escalations`` for the delivery engine: one message per recipient (at most
    :data:`ESCALATIONS_PER_MESSAGE` escalations). A targeted run sends only its own requests' rows."""

    name = "dsr.escalation"

    def __init__(self, settings: Settings, run_id: str, request_ids: Sequence[int] = ()):
        self.settings, self.run_id, self.request_ids = settings, run_id, list(request_ids)

    def pending(self, conn) -> int:
        return conn.execute(_PENDING, {"ids": self.request_ids}).fetchone()[0]

    def claim(self, conn) -> Batch | None:
        rows = conn.execute(_CLAIM, {"ids": self.request_ids, "limit": ESCALATIONS_PER_MESSAGE}).fetchall()
        if not rows:
            return None
        items = [PendingEscalation(*row) for row in rows]
        return Batch(keys=[(i.request_id, i.level) for i in items],
                     payload=escalation_payload(items, self.settings, self.run_id),
                     evidence={"escalations": [[i.request_id, i.level] for i in items]})

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None:
        _finish(conn, batch.keys, status="sent", message_id=message_id, sent_at=sent_at)

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None:
        _finish(conn, batch.keys, status="failed", error=reason)


def _finish(conn, keys, *, status: str, message_id: str | None = None, sent_at: datetime | None = None,
            error: str | None = None) -> None:
    conn.execute(
        """update compliance.dsr_escalations e set status = %s, sent_at = %s, message_id = %s, error = %s
           from unnest(%s::bigint[], %s::text[]) as k(request_id, level)
           where e.request_id = k.request_id and e.level = k.level and e.status = 'pending'""",
        (status, sent_at, message_id, error, [k[0] for k in keys], [k[1] for k in keys]))
