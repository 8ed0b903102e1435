"""What a recipient receives: one Mail Send payload per batch, one personalization per recipient.

Each personalization names one address (``to``), so nobody sees another's address, and carries that
recipient's greeting. The rest of the message is the same for the whole campaign and is rendered once:

- without a dynamic template (setting ``notification_template_id`` null): the project's own text and
  HTML templates (``include/templates/policy_change.*``), values HTML-escaped in the HTML part, and the
  greeting as a SendGrid substitution (``%greeting%`` in the text part, ``%greeting_html%``, escaped, in
  the HTML part);
- with a dynamic template: ``dynamic_template_data`` per recipient (greeting, name, version, effective
  date, summary, URL), raw: SendGrid's Handlebars escapes ``{{name}}`` itself (a template must not use
  triple braces for these values).

A recipient without a usable name, or an address shared by accounts with different names, gets the
neutral greeting. ``custom_args`` tie every message to its campaign.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from include.addresses import sendable
from include.config import Settings
from include.mail import Content, envelope, escape_html, render_parts

CATEGORY = "policy-change"
NEUTRAL_GREETING = "Hello,"
MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
SAMPLE_NAME = "Alex Example"
SAMPLE_ADDRESS = "alex.example@example.com"


@dataclass(frozen=True)
class Notice:
    """What one campaign tells every recipient (copied from the policy version when the campaign was built)."""

    campaign_id: int
    scope: str
    version: str
    effective_at: datetime | None
    summary: str | None
    url: str | None
    template_id: str | None = None


def effective_date(moment: datetime | None, tz: str) -> str:
    """``24 December 2026`` in the configured time zone (no locale involved)."""
    if moment is None:
        return "the date shown in the policy"
    day: date = moment.astimezone(ZoneInfo(tz)).date()
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def display_name(full_name: str | None) -> str | None:
    """A name fit for a greeting: control characters out, spaces collapsed; None when empty or too long."""
    if not full_name:
        return None
    if full_name.isprintable() and "  " not in full_name:  # the common case, without the regexes
        name = full_name.strip()
    else:
        name = _SPACES.sub(" ", _CONTROL.sub(" ", full_name)).strip()
    return name if 0 < len(name) <= MAX_NAME else None


def common_name(names: Iterable[str | None]) -> str | None:
    """The name to greet an address by: the accounts' one name, or None when they have none or several."""
    found = {display_name(n) for n in names}
    return found.pop() if len(found) == 1 else None


def greeting(name: str | None) -> str:
    return f"Dear {name}," if name else NEUTRAL_GREETING


class Renderer:
    """Renders a campaign's payloads; everything but the personalizations is built once."""

    def __init__(self, notice: Notice, settings: Settings, run_id: str):
        self.notice = notice
        self.values = {"version": notice.version, "effective_date": effective_date(notice.effective_at, settings.timezone),
                       "summary": (notice.summary or "").strip() or "see the policy", "url": notice.url or ""}
        campaign_args = {"campaign_id": str(notice.campaign_id), "policy_version": notice.version,
                         "scope": notice.scope}
        if notice.template_id:
            self.base = envelope(settings, category=CATEGORY, run_id=run_id, campaign_args=campaign_args,
                                 content=Content(template_id=notice.template_id))
        else:
            self.base = envelope(settings, category=CATEGORY, run_id=run_id, campaign_args=campaign_args,
                                 content=Content(f"Our privacy policy is changing (version {notice.version})",
                                                 render_parts("policy_change", **self.values)))

    def personalization(self, address: str, name: str | None) -> dict:
        words, address = greeting(name), sendable(address)
        if self.notice.template_id:
            return {"to": [{"email": address}],
                    "dynamic_template_data": {**self.values, "greeting": words, "name": name}}
        return {"to": [{"email": address}],
                "substitutions": {"%greeting%": words, "%greeting_html%": escape_html(words)}}

    def payload(self, personalizations: Sequence[dict]) -> dict:
        return {**self.base, "personalizations": list(personalizations)}


def sample(notice: Notice, settings: Settings, run_id: str) -> dict:
    """The payload one made-up recipient would get, and its text as they would read it (for a dry run)."""
    renderer = Renderer(notice, settings, run_id)
    payload = renderer.payload([renderer.personalization(SAMPLE_ADDRESS, SAMPLE_NAME)])
    text = None
    if not notice.template_id:
        text = payload["content"][0]["value"].replace("%greeting%", greeting(SAMPLE_NAME))
    return {"recipient": SAMPLE_ADDRESS, "name": SAMPLE_NAME, "subject": payload.get("subject"), "text": text,
            "template_id": notice.template_id, "payload": payload}
