"""The escalations: each (request, level) is recorded once in the outbox and emailed once, recipient by recipient.

An escalation is recorded from the evaluation (``compliance.dsr_status``) and sent after it, by this run or, after a
SendGrid outage, by a later one. In between its request may have been completed (by ``dsr_fulfilment`` or a
person), extended or acknowledged: so when it is claimed to be sent, its request is read again from the operational
database and evaluated as of the sending run's day, by the same rules; one no longer at the escalation's level (or
gone) is withdrawn with the reason, not sent. Recorded again later (the request at that level once more), it is
pending again: each (request, level) is emailed at most once."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Sequence

import pandas as pd

from include.config import Settings
from include.datamap import DataMap
from include.deadline_rules import ESCALATION_STATES, DeadlinePolicy
from include.deadlines import source
from include.deadlines.columnar import evaluate_frame
from include.deadlines.emails import ESCALATIONS_PER_MESSAGE, PendingEscalation, escalation_payload
from include.delivery.outbox import Entry, Outbox, OutboxLedger

OUTBOX = Outbox("dsr.escalation")  # key: "<request id>/<level>"

_LEVELS = "s.state = any(%(levels)s) and s.as_of = %(as_of)s"
_TARGETED = "(cardinality(%(ids)s::bigint[]) = 0 or {id} = any(%(ids)s::bigint[]))"

_RECORD = f"""
select s.request_id || '/' || s.state, coalesce(s.assignee_email, %(team)s),
       jsonb_build_object('request_id', s.request_id, 'level', s.state, 'recipient_is_team', s.assignee_email is null,
                          'due_date', case when s.state = 'ack_overdue' then s.ack_due else s.effective_due end,
                          'days_left', s.days_left),
       %(now)s::timestamptz, %(run_id)s
from compliance.dsr_status s
where {_LEVELS} and {_TARGETED.format(id="s.request_id")}
"""

_UNRECORDED = f"""
select count(*) from {{table}} s
where {_LEVELS} {{run_filter}} and {_TARGETED.format(id="s.request_id")}
  and not exists (select 1 from compliance.outbox o
                  where o.kind = %(kind)s and o.key = s.request_id || '/' || s.state and o.status <> 'withdrawn')
"""


def _params(as_of: date, request_ids: Sequence[int], **extra) -> dict:
    return {"levels": sorted(ESCALATION_STATES), "as_of": as_of, "ids": list(request_ids), **extra}


def record(store, *, as_of: date, team_email: str, run_id: str, now: datetime, request_ids: Sequence[int] = ()) -> int:
    """Record every escalation this evaluation calls for and that was never recorded; returns how many."""
    return OUTBOX.record_select(store, _RECORD, _params(as_of, request_ids, team=team_email, run_id=run_id, now=now))


def count_unrecorded(store, *, as_of: date, request_ids: Sequence[int] = (), whatif_run: str | None = None) -> int:
    """What :func:`record` would record: for a dry run from the live status, for a what-if from its own rows."""
    if whatif_run is None:
        query = _UNRECORDED.format(table="compliance.dsr_status", run_filter="")
    else:
        query = _UNRECORDED.format(table="compliance.dsr_whatif", run_filter="and s.run_id = %(run)s")
    return store.execute(query, _params(as_of, request_ids, run=whatif_run, kind=OUTBOX.kind)).fetchone()[0]


@dataclass(frozen=True)
class LiveRequests:
    """The requests as the operational database has them now (``ops``, read through ``datamap``), evaluated as of
    the sending run's day ``as_of`` under ``policy``: what each escalation is checked against when it is sent, and
    the due date and days left its email states (an escalation left pending by an outage is sent days after it was
    recorded: its recorded days left would be stale)."""

    ops: Any
    datamap: DataMap
    as_of: date
    policy: DeadlinePolicy
    _seen: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def no_longer_due(self, conn, entries: Sequence[Entry]) -> dict[str, str]:
        """The claimed escalations whose request is no longer at their level (completed, rejected or withdrawn;
        extended, acknowledged; gone), each with why: states and dates only. (``conn``: the store, unused.)"""
        ids = sorted({int(e.facts["request_id"]) for e in entries})
        self._seen.clear()
        for frame in source.request_frames(self.ops, self.datamap, source.Selection(request_ids=tuple(ids))):
            result = evaluate_frame(frame, self.as_of, self.policy)
            for rid, state, ack_due, due, left in zip(result["request_id"], result["state"], result["ack_due"],
                                                      result["effective_due"], result["days_left"]):
                self._seen[int(rid)] = (state, _day(ack_due if state == "ack_overdue" else due),
                                        None if pd.isna(left) else int(left))
        moot = {}
        for e in entries:
            state = self._seen.get(int(e.facts["request_id"]), (None,))[0]
            if state is None:
                moot[e.key] = "not sent: the request is no longer in the operational database"
            elif state != e.facts["level"]:
                moot[e.key] = (f"not sent: the request is {state} as of {self.as_of.isoformat()} when it was to be "
                               f"sent (it was {e.facts['level']} when recorded)")
        return moot

    def due(self, request_id: int) -> tuple[date | None, int | None] | None:
        """(due date, days left) of the request as :meth:`no_longer_due` last evaluated it, or None if it did not."""
        seen = self._seen.get(request_id)
        return None if seen is None else seen[1:]


def ledger(settings: Settings, run_id: str, live: LiveRequests, request_ids: Sequence[int] = ()) -> OutboxLedger:
    """The escalations for the delivery engine: one message per recipient (at most
    :data:`ESCALATIONS_PER_MESSAGE` escalations). A targeted run sends only its own requests' rows. Each claimed
    escalation is checked against its request as ``live`` has it: one no longer at its level is withdrawn, not
    sent."""

    def compose(conn, entries: Sequence[Entry]) -> tuple[dict, dict]:
        ids = [e.facts["request_id"] for e in entries]
        # What the request is (regime, type) is read when it is sent, as the status has it then.
        kinds = {rid: (regime, rtype) for rid, regime, rtype in conn.execute(
            "select request_id, regime, request_type from compliance.dsr_status where request_id = any(%s)", (ids,))}
        # The due date and days left as of the sending run's day (as recorded where the check did not evaluate it).
        items = [PendingEscalation(e.facts["request_id"], e.facts["level"], e.recipient, e.facts["recipient_is_team"],
                                   *kinds.get(e.facts["request_id"], (None, None)),
                                   *(live.due(int(e.facts["request_id"]))
                                     or (_date(e.facts.get("due_date")), e.facts.get("days_left"))))
                 for e in entries]
        return (escalation_payload(items, settings, run_id),
                {"escalations": [[i.request_id, i.level] for i in items]})

    return OUTBOX.ledger(compose, scope=_TARGETED.format(id="(o.facts ->> 'request_id')::bigint"),
                         params={"ids": list(request_ids)},
                         order="o.claimed_at, (o.facts ->> 'request_id')::bigint, o.key",
                         per_message=ESCALATIONS_PER_MESSAGE, by_recipient=True).withdrawing(live.no_longer_due)


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _day(value) -> date | None:
    return None if pd.isna(value) else pd.Timestamp(value).date()
