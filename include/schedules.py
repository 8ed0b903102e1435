"""When each DAG runs: one cron expression per DAG, read by the house DAG and by the compliance page.

:func:`include.seam.dag.privacy_dag` passes a DAG's entry to Airflow by its ``dag_id``
(``tests/test_dag_integrity.py`` holds every DAG to its entry), and the page says in words how often a section is
refreshed from the same entry, so a changed schedule can never leave the page saying "daily" of a DAG that runs
every 15 minutes.
"""
from __future__ import annotations

SCHEDULES: dict[str, str] = {
    "dsr_deadline_tracking": "@hourly",
    "child_data_purge": "@daily",
    "dsr_fulfilment": "@daily",
    "policy_change_notifications": "*/15 * * * *",
    "vendor_sharing_manifests": "@daily",
    "personal_data_discovery": "@weekly",
}

_PRESETS = {"@hourly": "hourly", "@daily": "daily", "@weekly": "weekly", "@monthly": "monthly",
            "@yearly": "yearly", "@annually": "yearly"}


def in_words(expression: str) -> str:
    """A cron expression as a person says it: ``*/15 * * * *`` -> ``every 15 minutes``; ``@daily`` -> ``daily``;
    the common shapes only, else the expression itself."""
    if expression in _PRESETS:
        return _PRESETS[expression]
    fields = expression.split()
    if len(fields) != 5:
        return expression
    minute, hour, day, month, weekday = fields
    rest_any = (day, month, weekday) == ("*", "*", "*")
    if rest_any and hour == "*" and minute.startswith("*/") and minute[2:].isdigit():
        return f"every {int(minute[2:])} minutes"
    if rest_any and hour == "*" and minute.isdigit():
        return "hourly"
    if rest_any and hour.startswith("*/") and hour[2:].isdigit() and minute.isdigit():
        return f"every {int(hour[2:])} hours"
    if rest_any and hour.isdigit() and minute.isdigit():
        return f"daily at {int(hour):02d}:{int(minute):02d}"
    return f"on the schedule {expression}"


def how_often(dag_id: str) -> str:
    """How often the DAG runs, in words (``every 15 minutes``)."""
    return in_words(SCHEDULES[dag_id])
