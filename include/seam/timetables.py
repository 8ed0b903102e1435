"""Catch-up that is safe by design: a bounded window of recent periods, and manual runs first.

A DAG whose runs each cover a data interval (``vendor_sharing_manifests``) catches up the periods it missed.
With Airflow's own ``CronDataIntervalTimetable`` and ``catchup=True``, the first unpause (a fresh deployment,
or the trigger form's "Unpause on trigger" box, which Airflow ticks) queues a run for every period since the
DAG's start date: months of daily runs, whose tasks then fill the pools while the run a person triggered
waits behind them.

:class:`CatchUpWindowTimetable` is that cron timetable with one bound: a scheduled run never covers a period
older than the ``catch_up_periods`` latest complete ones. A first unpause covers those few (not the start
date), a DAG paused for a month catches up only those few on its return, and a person back-fills anything
older on purpose, with a manual run naming the period. The bound is read at parse time from the environment
(``PRIVACY_CATCH_UP_DAYS``, default :data:`DEFAULT_CATCH_UP_DAYS`), as ``PRIVACY_APPROVAL_TIMEOUT_HOURS`` is: the
scheduler decides before any task runs, and a DAG file reads no Variable.

(Why not a computed ``start_date``: tasks take the latest of the DAG's and their own start dates, and a run
older than that silently does nothing; a timetable bounds what the scheduler creates and nothing else.)

:class:`ManualRunsFirst` is the tasks' priority weight: Airflow's default (the task's downstream weight),
plus :data:`MANUAL_BOOST` for a task of a run a person triggered, so a manual run's tasks are queued before
catch-up's in every pool they share.

Both are registered with Airflow by the project's plugin (``plugins/privacy_compliance.py``): a custom
timetable or weight strategy is serialized by its class path and found again through the plugins.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow.task.priority_strategy import PriorityWeightStrategy
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable

if TYPE_CHECKING:
    from pendulum import DateTime

DEFAULT_CATCH_UP_DAYS = 3
CATCH_UP_ENV = "PRIVACY_CATCH_UP_DAYS"
MAX_CATCH_UP_DAYS = 366
MANUAL_BOOST = 1000


class CatchUpWindowTimetable(CronDataIntervalTimetable):
    """A cron data-interval timetable whose scheduled runs cover at most the ``catch_up_periods`` latest complete
    periods (0: only periods that end from now on)."""

    def __init__(self, cron: str, timezone: Any = "UTC", *, catch_up_periods: int = DEFAULT_CATCH_UP_DAYS) -> None:
        if not isinstance(catch_up_periods, int) or not 0 <= catch_up_periods <= MAX_CATCH_UP_DAYS:
            raise ValueError(f"catch_up_periods must be a whole number from 0 to {MAX_CATCH_UP_DAYS}, "
                             f"not {catch_up_periods!r}")
        super().__init__(cron, timezone)
        self.catch_up_periods = catch_up_periods

    # -- what the scheduler asks ----------------------------------------------------------------------------

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        from airflow._shared.timezones.timezone import coerce_datetime, utcnow

        return self.next_run_at(coerce_datetime(utcnow()), last_automated_data_interval, restriction)

    def next_run_at(self, now: DateTime, last: DataInterval | None, restriction: TimeRestriction
                    ) -> DagRunInfo | None:
        """The next scheduled run as of ``now``: Airflow's answer with the earliest start raised to the window."""
        if not restriction.catchup:
            return super().next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        floor = self.window_start(now)
        earliest = floor if restriction.earliest is None else max(restriction.earliest, floor)
        return super().next_dagrun_info(last_automated_data_interval=last,
                                        restriction=TimeRestriction(earliest, restriction.latest, True))

    def window_start(self, now: DateTime) -> DateTime:
        """The start of the oldest period a scheduled run may cover: ``catch_up_periods`` complete periods back
        from the period ``now`` is in."""
        start = self._align_to_prev(now)  # the start of the period now is in (the end of the latest complete one)
        for _ in range(self.catch_up_periods):
            start = self._get_prev(start)
        return start

    # -- how Airflow stores and shows it ----------------------------------------------------------------------

    @property
    def expression(self) -> str:
        return self._expression

    @property
    def timezone(self):
        return self._timezone

    @property
    def summary(self) -> str:
        return f"{self._expression} (catch-up: the last {self.catch_up_periods})"

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "catch_up_periods": self.catch_up_periods}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> CatchUpWindowTimetable:
        from airflow._shared.timezones.timezone import parse_timezone

        return cls(data["expression"], parse_timezone(data["timezone"]),
                   catch_up_periods=int(data.get("catch_up_periods", DEFAULT_CATCH_UP_DAYS)))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CatchUpWindowTimetable) and self.serialize() == other.serialize())

    def __hash__(self) -> int:
        return hash((self._expression, str(self._timezone), self.catch_up_periods))


def catch_up_days() -> int:
    """``$PRIVACY_CATCH_UP_DAYS`` (read when the DAG is parsed: set it for the scheduler and the dag processor
    alike), else 3; ValueError in one sentence for anything but a whole number from 0 to 366."""
    raw = os.environ.get(CATCH_UP_ENV, "").strip()
    if not raw:
        return DEFAULT_CATCH_UP_DAYS
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_CATCH_UP_DAYS:
        raise ValueError(f"{CATCH_UP_ENV} must be a whole number of days from 0 to {MAX_CATCH_UP_DAYS}, not {raw!r}")
    return int(raw)


def bounded_catch_up(dag_id: str, timezone: str = "UTC") -> CatchUpWindowTimetable:
    """The DAG's periods (its entry in :data:`include.schedules.SCHEDULES`, in ``timezone``), catching up at
    most ``catch_up_days`` of them."""
    from include.schedules import SCHEDULES

    return CatchUpWindowTimetable(SCHEDULES[dag_id], timezone, catch_up_periods=catch_up_days())


class ManualRunsFirst(PriorityWeightStrategy):
    """The downstream weight (Airflow's default), plus :data:`MANUAL_BOOST` for a run a person triggered."""

    def get_weight(self, ti) -> int:
        from airflow.task.priority_strategy import _DownstreamPriorityWeightStrategy

        base = _DownstreamPriorityWeightStrategy().get_weight(ti)
        return base + (MANUAL_BOOST if is_manual_run(getattr(ti, "run_id", None)) else 0)


def is_manual_run(run_id: str | None) -> bool:
    """A run a person started (the trigger form, the REST API, ``airflow dags trigger``): Airflow names those
    ``manual__…``; scheduled and back-fill runs are ``scheduled__…`` and ``backfill__…``."""
    return bool(run_id) and str(run_id).startswith("manual__")


# How a task names the strategy (``weight_rule=``): its class path, which Airflow resolves through the plugin.
MANUAL_RUNS_FIRST = f"{ManualRunsFirst.__module__}.{ManualRunsFirst.__qualname__}"
