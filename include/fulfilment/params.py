"""The trigger form of ``dsr_fulfilment``, resolved once into what the steps take."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from include.config import Settings
from include.periods import ParamError, RunTiming, run_today
from include.runconf import approval_needs_live_run, dry_run_flag, positive_ids

_PLAN_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FulfilmentParams:
    as_of: date                         # the run's own day in the configured zone: the right to know's window ends here
    dry_run: bool = False
    request_ids: tuple[int, ...] = ()   # only these requests (empty: every open request)
    approve_plan: str | None = None     # the hash of the one erasure plan this run may carry out
    run_type: str | None = None

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], settings: Settings, timing: RunTiming) -> "FulfilmentParams":
        ids = positive_ids(raw.get("request_ids"), "request_ids", "request")
        dry_run = dry_run_flag(raw, False)
        approve = raw.get("approve_plan") or None
        if approve is not None and (not isinstance(approve, str) or not _PLAN_HASH.match(approve.strip().lower())):
            raise ParamError("approve_plan must be the 64-character plan hash a dry run printed")
        approve_plan = approve.strip().lower() if approve else None
        approval_needs_live_run(approve_plan, dry_run)
        return cls(as_of=run_today(timing, settings.tz), dry_run=dry_run, request_ids=ids,
                   approve_plan=approve_plan, run_type=timing.run_type)

    @property
    def targeted(self) -> bool:
        return bool(self.request_ids)
