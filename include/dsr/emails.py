"""SendGrid payloads for escalations and the daily digest.

They carry the request id, type, regime, due date and days left, never the requester's personal data.
Escalations go out as one personalization per (request, level), up to 1,000 to a request, each with its
own subject and substitutions, so one API call covers many recipients without any seeing another.
"""
from __future__ import annotations

import html
from datetime import date
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Sequence

from include.config import Settings
from include.dsr.escalation import PendingEscalation

MAX_PERSONALIZATIONS = 1000
STATE_LABELS = {
    "overdue": "its deadline has passed",
    "due_soon": "its deadline is near",
    "ack_overdue": "its receipt was not confirmed within 10 business days",
    "on_track": "on track", "awaiting_identity": "awaiting identity verification",
    "closed_on_time": "closed on time", "closed_late": "closed late", "invalid": "invalid",
}
SUBJECT_WORDS = {"overdue": "is overdue", "due_soon": "is due soon", "ack_overdue": "was not acknowledged in time"}


@lru_cache(maxsize=None)
def template(name: str) -> str:
    return (resources.files("include") / "templates" / name).read_text()


def _sender(settings: Settings) -> dict:
    return {"email": settings.email_from, "name": settings.email_from_name}


def _text(value) -> str:
    return "-" if value is None else str(value)


def batch_escalations(items: Sequence[PendingEscalation]) -> list[list[PendingEscalation]]:
    """Split into requests of at most 1,000 personalizations where no address appears twice.

    SendGrid refuses a request that names one address more than once, and an assignee often has
    several requests escalating on the same day.
    """
    batches: list[tuple[list[PendingEscalation], set[str]]] = []
    for item in items:
        key = item.recipient.lower()
        for members, seen in batches:
            if len(members) < MAX_PERSONALIZATIONS and key not in seen:
                members.append(item)
                seen.add(key)
                break
        else:
            batches.append(([item], {key}))
    return [members for members, _ in batches]


def escalation_payload(items: Sequence[PendingEscalation], settings: Settings, run_id: str) -> dict:
    personalizations = []
    for item in items:
        personalizations.append({
            "to": [{"email": item.recipient}],
            "subject": f"[Privacy request {item.request_id}] {_text(item.regime).upper()} "
                       f"{_text(item.request_type)} {SUBJECT_WORDS[item.level]}",
            "substitutions": {
                "%request_id%": str(item.request_id),
                "%regime%": _text(item.regime).upper(),
                "%request_type%": _text(item.request_type),
                "%due_date%": _text(item.due_date),
                "%days_left%": _text(item.days_left),
                "%state_label%": STATE_LABELS[item.level],
            },
            "custom_args": {"request_id": str(item.request_id), "escalation_level": item.level},
        })
    return {
        "from": _sender(settings),
        "subject": "Privacy request escalation",
        "personalizations": personalizations,
        "content": [{"type": "text/plain", "value": template("dsr_escalation.txt")},
                    {"type": "text/html", "value": template("dsr_escalation.html")}],
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
