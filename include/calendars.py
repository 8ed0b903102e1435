"""Public-holiday calendars (the ``holidays`` package), shared by the settings and the deadline rules.

A calendar is named like ``IE``, ``US-CA`` or ``DE-BY`` (country, optionally a subdivision); the working
days of a regime skip its calendar's public holidays as well as Saturdays and Sundays.
"""
from __future__ import annotations

import functools
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime

import holidays as _holidays


@dataclass(frozen=True)
class HolidayCalendar:
    """The public holidays of one ``holidays`` country (and subdivision), for any year.

    Years are computed on first use (and memoised), so a request received years ago or a deadline that
    rolls into next year is never checked against a calendar that silently lacks that year.
    """

    country: str
    subdivision: str | None = None

    def __contains__(self, d: object) -> bool:
        if not isinstance(d, date) or isinstance(d, datetime):
            return False
        return d in _public_holidays(self.country, self.subdivision, d.year)

    def dates_in_years(self, years: Iterable[int]) -> list[date]:
        """Every holiday of ``years``, sorted: the same days ``in`` answers yes to (for column-wise use)."""
        return sorted(
            day
            for year in sorted(set(years))
            if MINYEAR <= year <= MAXYEAR
            for day in _public_holidays(self.country, self.subdivision, int(year))
        )


@functools.lru_cache(maxsize=1024)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(_holidays.country_holidays(country, subdiv=subdivision, years=[year]).keys())


def holiday_calendar(spec: str | None, years: Iterable[int]) -> Container[date]:
    """Holiday calendar for ``spec`` ("IE", "US-CA", "DE-BY": country[-subdivision]).

    ``None`` or "" means no holidays. ``years`` are computed up front (so a bad code fails now, and
    the common years are warm); other years are computed when asked. Unknown codes raise ValueError.
    """
    if spec is None or not str(spec).strip():
        return frozenset()
    country, subdivision = _parse_calendar_spec(str(spec).strip())
    result = HolidayCalendar(country, subdivision)
    for year in years:
        _public_holidays(country, subdivision, int(year))
    return result


def _parse_calendar_spec(spec: str) -> tuple[str, str | None]:
    country_part, _, subdivision_part = spec.partition("-")
    country = country_part.strip().upper()
    supported = _holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(f"unknown holiday calendar {spec!r}: no country {country!r} in the holidays package")
    if not subdivision_part.strip():
        return country, None
    wanted = subdivision_part.strip().upper()
    for code in supported[country]:
        if code.upper() == wanted:
            return country, code
    raise ValueError(
        f"unknown holiday calendar {spec!r}: country {country!r} has no subdivision {subdivision_part.strip()!r}"
    )
