"""The trigger form of ``personal_data_discovery``, resolved once into what the steps take."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from include.config import Settings
from include.periods import ParamError, RunTiming, run_today
from include.runconf import dry_run_flag

SAMPLE_ROWS_DEFAULT = 1000
SAMPLE_ROWS_MIN, SAMPLE_ROWS_MAX = 10, 100_000
CONNECTION_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,249}$")
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")


@dataclass(frozen=True)
class DiscoveryParams:
    """``connections`` empty: every PostgreSQL connection the data map names and those of the setting
    ``discovery_connections``; ``tables`` empty: every table (a targeted run resolves only findings of its tables);
    ``sample_rows``: rows read per table at most; ``dry_run``: classify and log, store nothing, send nothing."""

    today: date
    connections: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    sample_rows: int = SAMPLE_ROWS_DEFAULT
    dry_run: bool = False

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], settings: Settings, timing: RunTiming) -> "DiscoveryParams":
        connections = _names(raw.get("connections"), "connections", CONNECTION_ID, "Airflow connection ids")
        tables = _names(raw.get("tables"), "tables", TABLE_NAME, "table names (table or schema.table)")
        rows = raw.get("sample_rows", SAMPLE_ROWS_DEFAULT)
        if rows is None:
            rows = SAMPLE_ROWS_DEFAULT
        if isinstance(rows, bool) or not isinstance(rows, int) or not SAMPLE_ROWS_MIN <= rows <= SAMPLE_ROWS_MAX:
            raise ParamError(f"sample_rows must be a whole number from {SAMPLE_ROWS_MIN} to {SAMPLE_ROWS_MAX:,}, "
                             f"not {repr(rows)[:40]}")
        dry_run = dry_run_flag(raw, False)
        return cls(today=run_today(timing, settings.tz), connections=connections, tables=tables, sample_rows=rows,
                   dry_run=dry_run)

    @property
    def targeted(self) -> bool:
        return bool(self.tables)


def _names(value: Any, name: str, pattern: re.Pattern, what: str) -> tuple[str, ...]:
    items = () if value is None else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and pattern.fullmatch(i) for i in items):
        raise ParamError(f"{name} must be a list of {what}")
    return tuple(dict.fromkeys(items))
