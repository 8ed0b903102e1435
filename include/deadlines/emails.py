"""SendGrid payloads for escalations and the daily digest.

They carry the request id, type, regime, due date and days left, never the requester's personal data.
SendGrid refuses a request that names one address twice, and escalations go to a handful of staff
addresses, so each recipient gets one message listing all of its pending escalations (at most
``ESCALATIONS_PER_MESSAGE``; the ledger hands them out recipient by recipient): the fewest API calls,
and one email to read instead of dozens.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Sequence

from include.config import Settings
from include.mail import Addressee, Content, envelope, render_parts

ESCALATIONS_PER_MESSAGE = 500
SUBJECT_WORDS = {"overdue": "overdue", "due_soon": "due soon", "ack_overdue": "not acknowledged in time"}


def _text(value) -> str:
    return "-" if value is None else str(value)


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


def _row(item: PendingEscalation) -> tuple[str, ...]:
    return (str(item.request_id), _text(item.regime).upper(), _text(item.request_type), SUBJECT_WORDS[item.level],
            _text(item.due_date), _text(item.days_left))


def _about(items: Sequence[PendingEscalation]) -> Addressee:
    """What an escalation message is about: one escalation by its request and level; several by a digest of
    their (request, level) keys (the same on a re-send of that message; bounded, where 500 ids might not be)."""
    keys = sorted(f"{i.request_id}/{i.level}" for i in items)
    if len(items) == 1:
        only = items[0]
        return Addressee(only.recipient, "dsr_escalation", keys[0],
                         {"escalations": "1", "request_id": str(only.request_id), "level": only.level})
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
    return Addressee(items[0].recipient, "dsr_escalation", f"sha256:{digest}", {"escalations": str(len(items))})


def escalation_payload(items: Sequence[PendingEscalation], settings: Settings, run_id: str) -> dict:
    """One message to the group's recipient listing its escalations, worst first."""
    order = {"overdue": 0, "ack_overdue": 1, "due_soon": 2}
    items = sorted(items, key=lambda i: (order[i.level], i.days_left if i.days_left is not None else 0, i.request_id))
    counts = {level: sum(1 for i in items if i.level == level) for level in order}
    parts = [f"{n} {SUBJECT_WORDS[level]}" for level, n in counts.items() if n]
    if len(items) == 1:
        item = items[0]
        subject = (f"[Privacy request {item.request_id}] {_text(item.regime).upper()} {_text(item.request_type)} "
                   f"{SUBJECT_WORDS[item.level]}")
    else:
        subject = f"{len(items)} privacy requests need attention: {', '.join(parts)}"
    intro = (f"{len(items)} privacy request escalation(s) for you: {', '.join(parts)}."
             + (" (You receive these for requests without an assignee.)" if items[0].recipient_is_team else ""))
    parts = render_parts("dsr_escalation", intro=intro, rows=[_row(item) for item in items])
    return envelope(settings, category="dsr-escalation", run_id=run_id, content=Content(subject, parts),
                    to=_about(items))


def digest_payload(digest_date: date, counts: dict[str, int], items: Sequence[tuple], total_attention: int,
                   settings: Settings, run_id: str) -> dict:
    attention = {s: counts.get(s, 0) for s in ("overdue", "ack_overdue", "due_soon")}
    subject = (f"Privacy requests {digest_date}: {attention['overdue']} overdue, "
               f"{attention['ack_overdue']} unacknowledged, {attention['due_soon']} due soon")
    rows = [(str(rid), _text(regime).upper(), _text(rtype), state, _text(due), _text(left))
            for rid, regime, rtype, state, due, left in items]
    parts = render_parts("dsr_digest", digest_date=str(digest_date), summary=sorted(counts.items()),
                         rows=rows, more=max(total_attention - len(items), 0))
    return envelope(settings, category="dsr-digest", run_id=run_id, content=Content(subject, parts),
                    to=Addressee(settings.compliance_team_email, "dsr_digest", str(digest_date),
                                 {"digest_date": str(digest_date)}))
