"""The escalation ledger: claim each (request, level) once, send what is pending, record the outcome."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Sequence

from psycopg.types.json import Jsonb

from include.deadlines import ESCALATION_STATES


@dataclass(frozen=True)
class PendingEscalation:
    request_id: int
    level: str
    recipient: str
    recipient_is_team: bool
    regime: str | None
    request_type: str | None
    due_date: date | None
    days_left: int | None


_CLAIM = """
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

_UNCLAIMED = """
select count(*) from compliance.dsr_status s
where s.state = any(%(levels)s) and s.as_of = %(as_of)s
  and (cardinality(%(ids)s::bigint[]) = 0 or s.request_id = any(%(ids)s::bigint[]))
  and not exists (select 1 from compliance.dsr_escalations e
                  where e.request_id = s.request_id and e.level = s.state)
"""


def _params(as_of: date, request_ids: Sequence[int], **extra) -> dict:
    return {"levels": sorted(ESCALATION_STATES), "as_of": as_of, "ids": list(request_ids), **extra}


def claim(store, *, as_of: date, team_email: str, run_id: str, now: datetime,
          request_ids: Sequence[int] = ()) -> int:
    """Record every escalation this evaluation calls for and that was never claimed; returns how many."""
    return store.execute(_CLAIM, _params(as_of, request_ids, team=team_email, run_id=run_id, now=now)).rowcount


def count_unclaimed(store, *, as_of: date, request_ids: Sequence[int] = ()) -> int:
    """What :func:`claim` would record (for dry runs)."""
    return store.execute(_UNCLAIMED, _params(as_of, request_ids)).fetchone()[0]


def pending(store) -> list[PendingEscalation]:
    rows = store.execute(
        """select e.request_id, e.level, e.recipient, e.recipient_is_team, s.regime, s.request_type,
                  e.due_date, e.days_left
           from compliance.dsr_escalations e left join compliance.dsr_status s using (request_id)
           where e.status = 'pending' order by e.claimed_at, e.request_id, e.level""")
    return [PendingEscalation(*row) for row in rows]


def mark_sent(store, items: Iterable[PendingEscalation], *, message_id: str | None, sent_at: datetime) -> None:
    keys = [(i.request_id, i.level) for i in items]
    store.execute(
        """update compliance.dsr_escalations e set status = 'sent', sent_at = %s, message_id = %s, error = null
           from unnest(%s::bigint[], %s::text[]) as k(request_id, level)
           where e.request_id = k.request_id and e.level = k.level and e.status = 'pending'""",
        (sent_at, message_id, [k[0] for k in keys], [k[1] for k in keys]))


def mark_failed(store, items: Iterable[PendingEscalation], *, error: str) -> None:
    keys = [(i.request_id, i.level) for i in items]
    store.execute(
        """update compliance.dsr_escalations e set status = 'failed', error = %s
           from unnest(%s::bigint[], %s::text[]) as k(request_id, level)
           where e.request_id = k.request_id and e.level = k.level and e.status = 'pending'""",
        (error, [k[0] for k in keys], [k[1] for k in keys]))


def claim_digest(store, *, digest_date: date, recipient: str, counts: dict, run_id: str, now: datetime
                 ) -> tuple[str, str | None]:
    """Claim the day's digest; returns its status ('pending' means: send it now) and any earlier error."""
    store.execute(
        """insert into compliance.dsr_digests (digest_date, recipient, counts, claimed_at, claimed_run)
           values (%s, %s, %s, %s, %s) on conflict (digest_date) do nothing""",
        (digest_date, recipient, Jsonb(counts), now, run_id))
    return store.execute("select status, error from compliance.dsr_digests where digest_date = %s",
                         (digest_date,)).fetchone()


def finish_digest(store, digest_date: date, *, message_id: str | None = None, sent_at: datetime | None = None,
                  error: str | None = None) -> None:
    store.execute(
        """update compliance.dsr_digests set status = %s, message_id = %s, sent_at = %s, error = %s
           where digest_date = %s and status = 'pending'""",
        ("failed" if error else "sent", message_id, sent_at, error, digest_date))


def digest_items(store, as_of: date, limit: int = 200) -> list[tuple]:
    """Requests needing attention, worst first: (request_id, regime, type, state, due date, days left)."""
    return store.execute(
        """select request_id, regime, request_type, state,
                  case when state = 'ack_overdue' then ack_due else effective_due end, days_left
           from compliance.dsr_status
           where state = any(%s) and as_of = %s
           order by case state when 'overdue' then 0 when 'ack_overdue' then 1 else 2 end, days_left, request_id
           limit %s""", (sorted(ESCALATION_STATES), as_of, limit)).fetchall()
