"""Catch-up safe by design (issue 30, point 2): the timetable as a unit, without a scheduler.

The trigger form's "Unpause on trigger" box unpaused vendor_sharing_manifests and the scheduler queued a daily
run for every day since 2026-01-01 while the person's run waited. With CatchUpWindowTimetable a scheduled run
never covers a period older than the last few, and a person's run is weighted above catch-up's.
"""
from __future__ import annotations

from types import SimpleNamespace

import pendulum
import pytest

from airflow.timetables.base import DataInterval, TimeRestriction

from include.seam import timetables
from include.seam.timetables import CatchUpWindowTimetable

UTC = pendulum.UTC
START = pendulum.datetime(2026, 1, 1, tz=UTC)   # the house start date (include/seam/dag.py)
NOW = pendulum.datetime(2026, 12, 6, 13, 5, tz=UTC)


def scheduled(timetable, now, start=START, catchup=True, limit=400) -> list[DataInterval]:
    """Every run the scheduler would create, one after the other, as of ``now`` (runs that may start by now)."""
    restriction, last, runs = TimeRestriction(start, None, catchup), None, []
    while len(runs) < limit:
        info = (timetable.next_run_at(now, last, restriction) if isinstance(timetable, CatchUpWindowTimetable)
                else timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction))
        if info is None or info.run_after > now:
            return runs
        runs.append(info.data_interval)
        last = info.data_interval
    raise AssertionError("the timetable never stopped")


def test_a_first_unpause_covers_the_last_few_days_not_every_day_since_the_start_date():
    runs = scheduled(CatchUpWindowTimetable("@daily", "UTC", catch_up_periods=3), NOW)
    assert [(r.start.date().isoformat(), r.end.date().isoformat()) for r in runs] == [
        ("2026-12-03", "2026-12-04"), ("2026-12-04", "2026-12-05"), ("2026-12-05", "2026-12-06")]
    # Airflow's own cron timetable, for contrast: every day since the start date.
    from airflow.timetables.interval import CronDataIntervalTimetable

    assert len(scheduled(CronDataIntervalTimetable("@daily", "UTC"), NOW)) == 339  # 2026-01-01 .. 2026-12-05


def test_a_dag_paused_for_a_month_catches_up_only_the_window_then_runs_daily():
    timetable = CatchUpWindowTimetable("@daily", "UTC", catch_up_periods=2)
    a_month_ago = DataInterval(pendulum.datetime(2026, 11, 5, tz=UTC), pendulum.datetime(2026, 11, 6, tz=UTC))
    info = timetable.next_run_at(NOW, a_month_ago, TimeRestriction(START, None, True))
    assert info.data_interval.start == pendulum.datetime(2026, 12, 4, tz=UTC)
    # Up to date: the next run is the day now is in, due when it is over.
    yesterday = DataInterval(pendulum.datetime(2026, 12, 5, tz=UTC), pendulum.datetime(2026, 12, 6, tz=UTC))
    info = timetable.next_run_at(NOW, yesterday, TimeRestriction(START, None, True))
    assert info.data_interval.start == pendulum.datetime(2026, 12, 6, tz=UTC) and info.run_after > NOW


def test_a_window_of_zero_covers_only_periods_that_end_from_now_on_and_a_later_start_date_wins():
    assert scheduled(CatchUpWindowTimetable("@daily", "UTC", catch_up_periods=0), NOW) == []
    late_start = pendulum.datetime(2026, 12, 5, tz=UTC)
    runs = scheduled(CatchUpWindowTimetable("@daily", "UTC", catch_up_periods=10), NOW, start=late_start)
    assert [r.start for r in runs] == [late_start]


def test_without_catchup_it_is_airflows_cron_timetable():
    from airflow.timetables.interval import CronDataIntervalTimetable

    ours, airflows = CatchUpWindowTimetable("@daily", "UTC", catch_up_periods=5), CronDataIntervalTimetable("@daily", "UTC")
    restriction = TimeRestriction(START, None, False)
    assert ours.next_run_at(NOW, None, restriction).data_interval.start.date() == \
        airflows.next_dagrun_info(last_automated_data_interval=None, restriction=restriction).data_interval.start.date()


def test_it_round_trips_through_serialization_and_refuses_a_bad_window(monkeypatch):
    timetable = CatchUpWindowTimetable("@daily", "UTC", catch_up_periods=4)
    again = CatchUpWindowTimetable.deserialize(timetable.serialize())
    assert again == timetable and again.catch_up_periods == 4 and "last 4" in again.summary
    with pytest.raises(ValueError, match="catch_up_periods must be a whole number from 0 to 366"):
        CatchUpWindowTimetable("@daily", "UTC", catch_up_periods=-1)
    monkeypatch.setenv("PRIVACY_CATCH_UP_DAYS", "7")
    assert timetables.catch_up_days() == 7
    monkeypatch.setenv("PRIVACY_CATCH_UP_DAYS", "a week")
    with pytest.raises(ValueError, match="PRIVACY_CATCH_UP_DAYS must be a whole number of days"):
        timetables.catch_up_days()


def test_a_person_s_run_is_weighted_above_catch_up():
    task = SimpleNamespace(priority_weight=1, get_flat_relatives=lambda upstream=False: [],
                           get_dag=lambda: None)
    strategy = timetables.ManualRunsFirst()
    manual = strategy.get_weight(SimpleNamespace(task=task, run_id="manual__2026-12-06T13:00:00+00:00"))
    catch_up = strategy.get_weight(SimpleNamespace(task=task, run_id="scheduled__2026-12-04T00:00:00+00:00"))
    assert manual - catch_up == timetables.MANUAL_BOOST > 0
    assert not timetables.is_manual_run("backfill__2026-01-01") and not timetables.is_manual_run(None)
