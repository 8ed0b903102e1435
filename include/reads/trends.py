"""Trends from the store's history, for the compliance page's charts: "are we getting better?"

Four series, each one number per period (counts, rates and dates only; no personal data):

- requests closed on time, per month the request was due: ``closed_on_time / (closed_on_time + closed_late)``
  among the requests the latest evaluation (``dsr_status``) found closed, with both counts;
- requests overdue per day over the last 90 days: the most any live run of that day found overdue or not
  acknowledged in time (``dsr_runs.counts``; a run targeting a few requests counts fewer, so the day's most);
- children's accounts purged per week (``child_purges``, ``purged_at``);
- shares breaking a vendor rule per week, from the daily manifests (``vendor_manifests`` of periods of a week or
  shorter, by the week the period starts; a wide manual period would pile months into one week); a week no such
  manifest covers has no number.

Each read is one grouped query (purges by week over an index, migration 0014); at 200,000 requests the page's
budget (p95 under 200 ms per call) holds (bench/bench_page.py).
"""
from __future__ import annotations

from datetime import date, timedelta

from include.reads import missing_tables

TABLES = ("compliance.dsr_status", "compliance.dsr_runs", "compliance.child_purges", "compliance.vendor_manifests")
MONTHS, DAYS, WEEKS = 12, 90, 12


def _month_start(day: date, back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())  # Monday, as PostgreSQL's date_trunc('week')


def on_time_by_month(conn, today: date, months: int = MONTHS) -> list[dict]:
    """The last ``months`` months (oldest first): ``{"period": "2026-11", "on_time", "late", "rate"}``, rate in
    percent or None for a month with no closed request due in it."""
    first = _month_start(today, months - 1)
    found = {month: (on_time, late) for month, on_time, late in conn.execute(
        """select effective_due - (extract(day from effective_due)::int - 1),
                  count(*) filter (where state = 'closed_on_time'),
                  count(*) filter (where state = 'closed_late')
           from compliance.dsr_status
           where state in ('closed_on_time', 'closed_late') and effective_due >= %s and effective_due < %s
           group by 1""", (first, _month_start(today, -1))).fetchall()}
    series = []
    for back in range(months - 1, -1, -1):
        month = _month_start(today, back)
        on_time, late = found.get(month, (0, 0))
        rate = round(100 * on_time / (on_time + late), 1) if on_time + late else None
        series.append({"period": month.strftime("%Y-%m"), "on_time": on_time, "late": late, "rate": rate})
    return series


def overdue_by_day(conn, today: date, days: int = DAYS) -> list[dict]:
    """The last ``days`` days (oldest first): ``{"period": "2026-11-25", "overdue"}``, None for a day without a
    live run (nothing was evaluated: no number, not zero)."""
    first = today - timedelta(days=days - 1)
    found = dict(conn.execute(
        """select as_of, max(coalesce((counts ->> 'overdue')::int, 0) + coalesce((counts ->> 'ack_overdue')::int, 0))
           from compliance.dsr_runs
           where not dry_run and not what_if and finished_at is not null and as_of >= %s and as_of <= %s
           group by 1""", (first, today)).fetchall())
    return [{"period": (first + timedelta(days=i)).isoformat(), "overdue": found.get(first + timedelta(days=i))}
            for i in range(days)]


def purges_by_week(conn, today: date, weeks: int = WEEKS) -> list[dict]:
    """The last ``weeks`` weeks (oldest first, Monday to Sunday): ``{"period": "2026-11-23", "purged"}``."""
    first = _week_start(today) - timedelta(weeks=weeks - 1)
    found = dict(conn.execute(
        """select date_trunc('week', purged_at at time zone 'UTC')::date, count(*) from compliance.child_purges
           where outcome = 'purged' and purged_at >= %s group by 1""", (first,)).fetchall())
    return [{"period": (first + timedelta(weeks=i)).isoformat(), "purged": found.get(first + timedelta(weeks=i), 0)}
            for i in range(weeks)]


def violations_by_week(conn, today: date, weeks: int = WEEKS) -> list[dict]:
    """The last ``weeks`` weeks (oldest first): ``{"period": "2026-11-23", "violations", "manifests"}``;
    ``violations`` is None for a week no daily manifest covers (nothing was judged: no number, not zero)."""
    first = _week_start(today) - timedelta(weeks=weeks - 1)
    found = {week: (rows, n) for week, rows, n in conn.execute(
        """select date_trunc('week', period_start at time zone 'UTC')::date, sum(violation_rows)::bigint, count(*)
           from compliance.vendor_manifests
           where period_start >= %s and period_end - period_start <= interval '7 days'
           group by 1""", (first,)).fetchall()}
    series = []
    for i in range(weeks):
        week = first + timedelta(weeks=i)
        rows, manifests = found.get(week, (None, 0))
        series.append({"period": week.isoformat(), "violations": None if rows is None else int(rows),
                       "manifests": int(manifests)})
    return series


def charts(conn, today: date) -> list[dict]:
    """The page's charts, each with its title, kind (``bars`` or ``line``), unit and points ``{label, value,
    note}``; a chart whose table is missing is left out."""
    have = set(TABLES) - set(missing_tables(conn, TABLES))
    out: list[dict] = []
    if "compliance.dsr_status" in have:
        months = on_time_by_month(conn, today)
        out.append({"key": "on_time", "title": "Requests closed on time, by month due", "kind": "bars", "unit": "%",
                    "max": 100, "points": [{"label": m["period"], "value": m["rate"],
                                            "note": f"{m['on_time']} on time, {m['late']} late"} for m in months]})
    if "compliance.dsr_runs" in have:
        days = overdue_by_day(conn, today)
        out.append({"key": "overdue", "title": "Requests overdue, last 90 days", "kind": "line", "unit": "",
                    "points": [{"label": d["period"], "value": d["overdue"], "note": None} for d in days]})
    if "compliance.child_purges" in have:
        out.append({"key": "purges", "title": "Children's accounts purged, per week", "kind": "bars", "unit": "",
                    "points": [{"label": w["period"], "value": w["purged"], "note": None}
                               for w in purges_by_week(conn, today)]})
    if "compliance.vendor_manifests" in have:
        out.append({"key": "violations", "title": "Shares breaking a vendor rule, per week", "kind": "bars",
                    "unit": "", "points": [{"label": w["period"], "value": w["violations"],
                                            "note": f"{w['manifests']} manifest(s)"}
                                           for w in violations_by_week(conn, today)]})
    return out
