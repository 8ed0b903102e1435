"""Test oracles for the column-wise deadline rules: frames made from ``RequestFacts`` and the ``Evaluation`` of
each result row, so tests/test_deadlines_columnar.py can compare the two forms row for row. The product reads its
frames from the database (include/deadlines/source.py) and never needs these."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd

from include.deadlines.columnar import _TEXT_COLUMNS, DATE_COLUMNS, READ_PROBLEM_SEPARATOR, RESULT_COLUMNS
from include.deadline_rules import TIMESTAMP_COLUMNS, Evaluation, RequestFacts


def facts_frame(facts: Iterable[RequestFacts]) -> pd.DataFrame:
    """The input frame of ``evaluate_frame`` for some ``RequestFacts``.

    Text columns are object (str or None), timestamps ``datetime64[us, UTC]`` (each must be an aware
    datetime or None), read problems joined with ``"; "``.
    """
    facts = list(facts)

    def text(values: list) -> pd.Series:
        return pd.Series(values, dtype=object)

    return pd.DataFrame(
        {
            "request_id": pd.Series([f.request_id for f in facts], dtype="int64"),
            **{column: text([getattr(f, column) for f in facts]) for column in _TEXT_COLUMNS},
            **{column: _instants([getattr(f, column) for f in facts]) for column in TIMESTAMP_COLUMNS},
            "read_problems": text([READ_PROBLEM_SEPARATOR.join(f.read_problems) or None for f in facts]),
        }
    )


def _instants(timestamps: list[datetime | None]) -> pd.Series:
    # Wall time minus offset, in numpy: exact even where the UTC instant leaves datetime's years 1-9999.
    values = np.array(
        [
            np.datetime64("NaT", "us")
            if ts is None
            else np.datetime64(ts.replace(tzinfo=None), "us") - np.timedelta64(ts.utcoffset(), "us")
            for ts in timestamps
        ],
        dtype="datetime64[us]",
    )
    return pd.Series(values).dt.tz_localize("UTC")


def frame_evaluations(result: pd.DataFrame) -> list[Evaluation]:
    """The ``Evaluation`` of each row of an ``evaluate_frame`` result (dates as ``date``, flags as tuple)."""
    columns = {column: result[column].tolist() for column in RESULT_COLUMNS}
    for column in DATE_COLUMNS:
        columns[column] = [None if pd.isna(value) else value.date() for value in columns[column]]
    columns["days_left"] = [None if pd.isna(value) else int(value) for value in columns["days_left"]]
    columns["flags"] = [tuple(value) for value in columns["flags"]]
    return [Evaluation(*values) for values in zip(*(columns[column] for column in RESULT_COLUMNS))]
