"""The trigger form of ``vendor_sharing_manifests``, resolved once into what the steps take."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from include.config import Settings
from include.periods import ParamError, Period, RunTiming, resolve_period, run_today
from include.runconf import dry_run_flag, positive_ids
from include.vendors.source import Scope


@dataclass(frozen=True)
class ManifestParams:
    """``period``: the form's dates (configured zone, end exclusive), else the run's data interval.

    ``vendor_ids`` empty means every vendor of the period: those named by its shares (unknown ids included)
    and every active vendor. ``dry_run`` judges and counts but writes no object, no store row, no email. A live
    run's period must be over by the run's time (a scheduled run's data interval always is).
    """

    period: Period
    scope: Scope
    undated_scope: Scope
    vendor_ids: tuple[int, ...] = ()
    dry_run: bool = False

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], settings: Settings, timing: RunTiming) -> "ManifestParams":
        period = resolve_period(raw.get("period_start"), raw.get("period_end"), timing, settings.tz)
        dry_run = dry_run_flag(raw, False)
        if not dry_run and period.end > timing.run_after:
            # A manifest of a period not over yet would miss its later shares, and a rewritten manifest is not
            # emailed again (include/vendors/notices.py): its later violations would reach nobody.
            end = period.end.astimezone(settings.tz).date()
            raise ParamError(f"the period is not over yet (it ends as {end} begins, period_end being exclusive): a "
                             "manifest written now would miss its later shares and their violations would not be "
                             "emailed; run it once the period has ended, or as a dry run")
        ids = positive_ids(raw.get("vendor_ids"), "vendor_ids", "vendor")
        return cls(period=period, scope=Scope.of_period(period, settings.tz),
                   undated_scope=Scope.undated(run_today(timing, settings.tz)),
                   vendor_ids=ids, dry_run=dry_run)

    def scope_of(self, label: str) -> Scope:
        if label == self.scope.label:
            return self.scope
        if label == self.undated_scope.label:
            return self.undated_scope
        raise ParamError(f"scope {label!r} is neither this run's period {self.scope.label} nor "
                         f"{self.undated_scope.label!r}")
