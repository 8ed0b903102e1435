"""How long a person has to answer an erasure plan's approval: plain Python, light enough for a DAG file to read
when it is parsed (the run's own timeout must outlast the reviewer's) and for the compliance page to say when
a waiting approval runs out."""
from __future__ import annotations

import os
from datetime import timedelta

# A reviewer has a working day to answer; no answer applies the default, Reject: a timeout never approves.
APPROVAL_TIMEOUT = timedelta(hours=8)
APPROVAL_TIMEOUT_ENV = "PRIVACY_APPROVAL_TIMEOUT_HOURS"
MAX_APPROVAL_TIMEOUT = timedelta(days=14)
# After the reviewer's time, an erasing run has this long to erase and report: its dagrun_timeout is the sum
# (include/seam/erasure.py), so no erasing run lasts longer than that from its start.
ERASE_AND_REPORT = timedelta(hours=4)


def approval_timeout() -> timedelta:
    """How long a reviewer has to answer: ``$PRIVACY_APPROVAL_TIMEOUT_HOURS`` (read when the DAG is parsed, so
    the scheduler and the workers must share it, as the Compose file's common environment does), else 8 hours."""
    raw = os.environ.get(APPROVAL_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return APPROVAL_TIMEOUT
    try:
        timeout = timedelta(hours=float(raw))
    except (ValueError, OverflowError):
        timeout = None
    if timeout is None or not timedelta(0) < timeout <= MAX_APPROVAL_TIMEOUT:
        raise ValueError(f"{APPROVAL_TIMEOUT_ENV} must be a number of hours above 0 and at most "
                         f"{MAX_APPROVAL_TIMEOUT.days * 24}, not {raw!r}")
    return timeout
