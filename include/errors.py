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

import re

from include.pg_url import is_ip_address, withhold_credentials


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


# What a PostgreSQL server answers when it refuses a connection for good: a login, a password or a database name
# to correct, not an outage to wait out (libpq gives no SQLSTATE for a failed connection, only the server's text).
_REFUSALS = ("password authentication failed", "authentication failed for user", "does not exist",
             "no pg_hba.conf entry", "pg_hba.conf rejects", "permission denied for database",
             "is not permitted to log in", "server does not support ssl")


def refusal(exc: BaseException) -> str | None:
    """When a failed connection is the server refusing it for good (a setup fault), the server's words on one line
    (``FATAL: role "x" does not exist``); None when the server did not answer, was starting or had no slot free
    (transient)."""
    text = " ".join(str(exc).split())
    at = text.find("FATAL:")
    if at < 0 or not any(r in text.lower() for r in _REFUSALS):
        return None
    return text[at:]


MAX_REASON = 500

_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+")
_IP_LIKE = re.compile(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*")  # a candidate, kept only if it parses as an address
_DIGITS = re.compile(r"\+?\d[\d ()./-]{6,}\d")  # a phone number or any long run of digits


def scrub(text: str) -> str:
    """A text the product did not write (an unexpected exception's, a database's) fit for a log, an alert or a record:
    addresses, IP addresses, phone-like digit runs and a URL's credentials blanked out, on one line, bounded."""
    one_line = _EMAIL.sub("…", withhold_credentials(" ".join(str(text).split())))
    one_line = _IP_LIKE.sub(lambda m: "…" if _is_ip(m.group(0)) else m.group(0), one_line)
    one_line = _DIGITS.sub("…", one_line)
    return one_line[:MAX_REASON] or "no reason was given"


def repeatable(typed: str, shape: "re.Pattern[str]") -> bool:
    """May a sentence quote back what was typed? Only when it has ``shape`` (a code, a label, a name of the product's)
    and :func:`scrub` leaves it whole: an address, a person's name, a phone number or an IP address typed in the wrong
    place is personal data, and a refusal's sentence reaches logs, failures and answers."""
    return bool(shape.fullmatch(typed)) and scrub(typed) == typed


def _is_ip(token: str) -> bool:
    """An IP address, once the punctuation of the sentence around an IPv4 one is cut off ("from 10.1.2.3.")."""
    return is_ip_address(token.strip(".:") if token.count(":") < 2 else token)


def database_said(exc: BaseException) -> str:
    """What a database's refusal says, without the rows it quotes: the server's primary message (scrubbed) and its
    SQLSTATE. Its DETAIL, HINT and CONTEXT lines are left out: they quote the row a constraint refused ("Failing row
    contains (17, someone@example.com, ...)", "Key (name)=(...) already exists"), personal data that must reach no
    log, alert or record."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if not primary:
        text = str(exc).strip()
        primary = text.splitlines()[0] if text else type(exc).__name__
    code = getattr(exc, "sqlstate", None)
    raised = _raised_by(getattr(diag, "context", None) if diag is not None else None)
    if raised:
        # The application's own words ("account of %s is under audit", the row whole): a name in them is nothing
        # the scrub can tell from other words. The function that raised it is what a person looks up.
        primary = f"the application's function {raised} raised an exception (its message is not repeated: it may " \
                  "quote the row)"
        return f"{primary} (SQLSTATE {code})" if code else primary
    return f"{scrub(primary)} (SQLSTATE {code})" if code else scrub(primary)


_RAISED_IN = re.compile(r"^\S+ function (\S+?\([^)]*\)) line \d+ at RAISE")


def _raised_by(context: str | None) -> str | None:
    """The function (``keep_audited()``) whose RAISE the error is, from the CONTEXT the server gives (its first line,
    ``PL/pgSQL function keep_audited() line 2 at RAISE``); None for the server's own messages."""
    match = _RAISED_IN.match((context or "").strip())
    return match.group(1) if match else None
