"""The trigger form of ``child_data_purge``, resolved once into what the steps take.

**Dry run by default for people, live on the schedule.** Airflow applies a Param's default to every run,
scheduled or manual, so the form's ``dry_run`` default (true) cannot by itself tell the two apart. The run
type can: Airflow marks each run ``scheduled`` or ``manual`` (``dag_run.run_type``). A scheduled run
carries no trigger form and is always live (``dry_run`` is ignored); every other run — the UI's trigger
form, the REST API, ``airflow dags trigger``/``dags test``, a backfill — takes ``dry_run`` from its
params, so a person who changes nothing gets a dry run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from include.config import Settings
from include.periods import ParamError, RunTiming, run_today
from include.runconf import approval_needs_live_run, dry_run_flag, optional_cap, positive_ids

_PLAN_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PurgeParams:
    as_of: date                            # the run's own day in the configured zone (no what-ifs here)
    dry_run: bool
    scheduled: bool
    run_type: str | None = None
    user_ids: tuple[int, ...] = ()         # only these accounts (empty: every account)
    max_subjects: int | None = None        # erase at most this many subjects this run
    approve_plan: str | None = None        # the hash of the one plan this run may carry out
    confirm_user_ids: tuple[int, ...] = ()  # accounts a person confirmed as the one an address-only report means

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], settings: Settings, timing: RunTiming) -> "PurgeParams":
        ids = positive_ids(raw.get("user_ids"), "user_ids", "account")
        confirm = positive_ids(raw.get("confirm_user_ids"), "confirm_user_ids", "account")
        if ids and set(confirm) - set(ids):
            # A targeted run looks at its user_ids alone: a confirmation of another account would change nothing.
            outside = sorted(set(confirm) - set(ids))
            raise ParamError(f"confirm_user_ids {', '.join(map(str, outside))} is not among user_ids: a run targeted "
                             "at user_ids looks at those accounts alone, so the confirmation would change nothing; add "
                             "the account to user_ids, or leave user_ids empty")
        cap = optional_cap(raw.get("max_subjects"), "max_subjects", "a whole number of subjects")
        approve = raw.get("approve_plan") or None
        if approve is not None and (not isinstance(approve, str) or not _PLAN_HASH.match(approve.strip().lower())):
            raise ParamError("approve_plan must be the 64-character plan hash a dry run printed")
        dry_run = dry_run_flag(raw, True)
        scheduled = timing.scheduled
        dry_run = False if scheduled else dry_run
        approve_plan = approve.strip().lower() if approve else None
        approval_needs_live_run(approve_plan, dry_run, dry_by_default=True)
        return cls(as_of=run_today(timing, settings.tz), dry_run=dry_run, scheduled=scheduled,
                   run_type=timing.run_type, user_ids=ids, max_subjects=cap,
                   approve_plan=approve_plan, confirm_user_ids=confirm)

    @property
    def targeted(self) -> bool:
        return bool(self.user_ids)
