"""The two kinds of failure every task can meet, and what the seam does with each.

Every error the product raises on purpose derives from one of these, so that the Airflow seam decides by
kind, not by a hand-kept list of every module's exceptions:

- :class:`NeedsOperator` — a setup fault a person must fix (a missing connection or setting, a bad data
  map, wrong types in settings, a refused API key, a store behind the code). Retrying cannot help: the
  task fails at once, without retries, with the error's one sentence.
- :class:`Transient` — a database or service was lost or did not answer (at connect time or mid-query).
  The task fails with one sentence that says so, and Airflow's retries (with backoff) apply.

Messages are one sentence, name the thing to fix, and never hold personal data or a secret.
"""
from __future__ import annotations


class PrivacyOpsError(Exception):
    """Base of every failure the product raises on purpose."""


class NeedsOperator(PrivacyOpsError):
    """A setup fault: a person must fix something; the task fails at once, without retries."""


class Transient(PrivacyOpsError):
    """A database or service was lost or did not answer; Airflow's retries apply."""


class ConfigurationProblem(NeedsOperator):
    """A connection, setting or file the product needs is missing or unusable."""


class ServiceUnreachable(Transient):
    """A database or service did not answer, or the connection was lost."""
