"""The trigger form of ``dsr_deadline_tracking``, resolved once into what the steps take."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from include.config import Settings
from include.periods import ParamError, RunTiming, resolve_as_of
from include.runconf import dry_run_flag, positive_ids


@dataclass(frozen=True)
class DsrParams:
    as_of: date
    what_if: bool  # as_of is not the run's today: results go to compliance.dsr_whatif, nothing is sent
    request_ids: tuple[int, ...] = ()
    dry_run: bool = False

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], settings: Settings, timing: RunTiming) -> "DsrParams":
        as_of = resolve_as_of(raw.get("as_of"), timing, settings.tz)
        if as_of.day < settings.earliest_plausible_date:
            # Every request would be "received in the future" and come back invalid: a typo, not a question.
            raise ParamError(f"as_of {as_of.day} is before {settings.earliest_plausible_date}, the earliest receipt "
                             "date the rules accept (setting earliest_plausible_date): every request would be invalid")
        if as_of.day == date.max:
            # A what-if reads the requests as they stood by the end of its day: the next day's start, which no date
            # holds (source.Selection.as_it_stood); left to the evaluation, an OverflowError retried three times.
            raise ParamError(f"as_of {as_of.day} is the calendar's last day (years 1 to 9999): a what-if's day ends at "
                             "the next day's start, which no date holds; name an earlier day")
        ids = positive_ids(raw.get("request_ids"), "request_ids", "request")
        return cls(as_of=as_of.day, what_if=as_of.what_if, request_ids=ids,
                   dry_run=dry_run_flag(raw, False))

    @property
    def send_skip_reason(self) -> str | None:
        """Why this run sends no email, or None when it sends."""
        if self.dry_run:
            return "dry run"
        if self.what_if:
            return f"as_of {self.as_of} is not today (a what-if)"
        return None
