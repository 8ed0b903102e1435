"""Dates and periods of a run, resolved the same way by every DAG.

A run's "today" is the calendar date of its ``run_after`` (when the scheduler or a person started it) in
the configured time zone, so every task of one run, retries included, agrees on it. An ``as_of`` date
from the trigger form that is not that day makes the run a *what-if*: its results are kept apart and it
sends nothing. A period is half-open, ``[start, end)``, in UTC.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from include.errors import NeedsOperator


class ParamError(NeedsOperator, ValueError):
    """A trigger-form value the run cannot use; the sentence names the parameter."""


@dataclass(frozen=True)
class RunTiming:
    """When a run runs: what the scheduler gave it (all tz-aware), and how it was started."""

    run_after: datetime
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    # Airflow's DagRunType value: "scheduled", "manual" (the trigger form, `airflow dags test`),
    # "backfill", "asset_triggered"; None outside Airflow.
    run_type: str | None = None

    @property
    def scheduled(self) -> bool:
        """True for a run the scheduler started on the DAG's schedule (it carries no trigger form)."""
        return self.run_type == "scheduled"


@dataclass(frozen=True)
class AsOf:
    """The evaluation date, and whether it makes the run a what-if."""

    day: date
    what_if: bool


@dataclass(frozen=True)
class Period:
    """A half-open interval ``[start, end)`` of UTC instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ParamError("a period's bounds must carry a time zone")
        if not self.start < self.end:
            raise ParamError(f"the period is empty: it starts {self.start.isoformat()} and ends {self.end.isoformat()}")

    @property
    def label(self) -> str:
        """``2026-11-24`` for one UTC day, else ``<start>--<end>`` (compact ISO, safe in object names)."""
        if self.start.time() == time(0) == self.end.time() and self.end - self.start == timedelta(days=1):
            return self.start.date().isoformat()
        return f"{_compact(self.start)}--{_compact(self.end)}"


def _compact(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.date().isoformat() if moment.time() == time(0) else moment.strftime("%Y-%m-%dT%H%M%SZ")


def parse_date(value: object, name: str) -> date | None:
    """A trigger-form date (``YYYY-MM-DD``) or None when it is empty."""
    if value in (None, ""):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ParamError(f"{name} must be a date like 2026-11-25, got {value!r}") from None


def run_today(timing: RunTiming, tz: tzinfo) -> date:
    return timing.run_after.astimezone(tz).date()


def acting_day(own_day: date, now: datetime, tz: tzinfo) -> date:
    """The day a run that changes what it reads now judges it as of: its own day, or today in ``tz`` when it acts on
    a later day (cleared in the Airflow UI, retried or caught up days after: Airflow keeps its ``run_after``). An
    erasure judged as of an earlier day than the data it reads would erase an account opened since by someone who
    has come of age since."""
    return max(own_day, now.astimezone(tz).date())


def resolve_as_of(value: object, timing: RunTiming, tz: tzinfo) -> AsOf:
    """The form's date, else the run's today; another day than today is a what-if."""
    today = run_today(timing, tz)
    chosen = parse_date(value, "as_of")
    if chosen is None or chosen == today:
        return AsOf(today, what_if=False)
    return AsOf(chosen, what_if=True)


def resolve_period(start: object, end: object, timing: RunTiming, tz: tzinfo) -> Period:
    """The form's period (dates in the configured time zone, ``end`` exclusive), else the run's data interval.

    With only ``period_start`` the period is that one day; with only ``period_end``, the day before it.
    """
    first, last = parse_date(start, "period_start"), parse_date(end, "period_end")
    if first is None and last is None:
        if timing.interval_start is None or timing.interval_end is None or timing.interval_start == timing.interval_end:
            # A manual run of an interval DAG has no data interval of its own: the day before the run.
            day = run_today(timing, tz) - timedelta(days=1)
            return Period(_midnight(day, tz), _midnight(day + timedelta(days=1), tz))
        return Period(timing.interval_start.astimezone(timezone.utc), timing.interval_end.astimezone(timezone.utc))
    try:
        first = first or (last - timedelta(days=1))
        last = last or (first + timedelta(days=1))
        if last <= first:
            raise ParamError(f"period_end {last} must be after period_start {first} (the end is exclusive)")
        return Period(_midnight(first, tz), _midnight(last, tz))
    except ParamError:
        raise  # (a ValueError too: the ordering sentence above, not the calendar's edge)
    except (OverflowError, ValueError):  # 0001-01-01 or 9999-12-31: the day before or after, or its UTC midnight
        named = " and ".join(f"{k} {v}" for k, v in (("period_start", first), ("period_end", last)) if v)
        raise ParamError(f"{named} is at the edge of the calendar (years 1 to 9999): the period around it cannot be "
                         "formed; name days inside it") from None


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(timezone.utc)
