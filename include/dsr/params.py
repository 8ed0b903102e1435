"""Turn the trigger form's values into what the tracking steps take."""
from __future__ import annotations

from datetime import date, datetime

from include.config import Settings


def resolve_as_of(value: str | None, settings: Settings, now: datetime) -> date:
    """The evaluation date: the form's date, else today in the configured time zone."""
    if value:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"as_of must be a date like 2026-11-25, got {value!r}") from None
    return now.astimezone(settings.tz).date()
