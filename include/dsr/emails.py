"""SendGrid payloads for escalations and the daily digest.

They carry the request id, type, regime, due date and days left, never the requester's personal data.
SendGrid refuses a request that names one address twice, and escalations go to a handful of staff
addresses, so each recipient gets one message listing all of its pending escalations (at most
``ESCALATIONS_PER_MESSAGE``; the ledger hands them out recipient by recipient): the fewest API calls,
and one email to read instead of dozens.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Sequence

from include.config import Settings

ESCALATIONS_PER_MESSAGE = 500
SUBJECT_WORDS = {"overdue": "overdue", "due_soon": "due soon", "ack_overdue": "not acknowledged in time"}


@lru_cache(maxsize=None)
def template(name: str) -> str:
    return (resources.files("include") / "templates" / name).read_text()


def _sender(settings: Settings) -> dict:
    return {"email": settings.email_from, "name": settings.email_from_name}


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
    lines = [f"  #{rid:<8} {regime:5} {rtype:16} {what:28} due {due}  days left {left}"
             for rid, regime, rtype, what, due, left in map(_row, items)]
    rows = ["  <tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in _row(item)) + "</tr>" for item in items]
    return {
        "from": _sender(settings),
        "personalizations": [{"to": [{"email": items[0].recipient}],
                              "custom_args": {"escalations": str(len(items))}}],
        "subject": subject,
        "content": [
            {"type": "text/plain", "value": Template(template("dsr_escalation.txt")).substitute(
                intro=intro, item_lines="\n".join(lines))},
            {"type": "text/html", "value": Template(template("dsr_escalation.html")).substitute(
                intro=html.escape(intro), item_rows="\n".join(rows))},
        ],
        "categories": ["dsr-escalation"],
        "custom_args": {"campaign": "dsr-escalation", "run_id": run_id},
    }


def digest_payload(digest_date: date, counts: dict[str, int], items: Sequence[tuple], total_attention: int,
                   settings: Settings, run_id: str) -> dict:
    attention = {s: counts.get(s, 0) for s in ("overdue", "ack_overdue", "due_soon")}
    subject = (f"Privacy requests {digest_date}: {attention['overdue']} overdue, "
               f"{attention['ack_overdue']} unacknowledged, {attention['due_soon']} due soon")
    summary = [f"{state}: {n}" for state, n in sorted(counts.items())] or ["no requests evaluated"]
    more = (f"... and {total_attention - len(items)} more on the compliance page."
            if total_attention > len(items) else "")
    lines = [f"  #{rid}  {_text(regime).upper():5} {_text(rtype):16} {state:12} due {_text(due)}  "
             f"days left {_text(left)}" for rid, regime, rtype, state, due, left in items] or ["  none"]
    rows = ["  <tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in (
        rid, _text(regime).upper(), rtype, state, due, left)) + "</tr>"
        for rid, regime, rtype, state, due, left in items]
    values = {"digest_date": str(digest_date), "more_line": more}
    text = Template(template("dsr_digest.txt")).substitute(
        values, summary_lines="\n".join(summary), item_lines="\n".join(lines))
    body = Template(template("dsr_digest.html")).substitute(
        values, summary_html="\n".join(f"  <li>{html.escape(s)}</li>" for s in summary),
        item_rows="\n".join(rows))
    return {
        "from": _sender(settings),
        "personalizations": [{"to": [{"email": settings.compliance_team_email}],
                              "custom_args": {"digest_date": str(digest_date)}}],
        "subject": subject,
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": body}],
        "categories": ["dsr-digest"],
        "custom_args": {"campaign": "dsr-digest", "run_id": run_id},
    }
