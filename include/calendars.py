"""Public-holiday calendars (the ``holidays`` package), shared by the settings and the deadline rules."""
from __future__ import annotations

from include.deadlines import HolidayCalendar, holiday_calendar

__all__ = ["HolidayCalendar", "holiday_calendar"]
