"""The two kinds of failure every task can meet, and what the seam does with each.

Every error the product raises on purpose derives from one of these, so that the Airflow seam decides by
kind, not by a hand-kept list of every module's exceptions:

- :class:`NeedsOperator` — a setup fault a person must fix (a missing connection or setting, a bad data
  map, wrong types in settings, a refused API key, a store behind the code), or work a database refuses for good
  (over one of its limits; an object not in the state the work requires). Retrying cannot help: the task fails
  at once, without retries, with the error's one sentence.
- :class:`Transient` — a database or service was lost or did not answer (at connect time or mid-query), or a
  database reported a condition that may pass (out of disk or memory, a statement timeout, a deadlock, a lock
  or an object another session holds).
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


class DatabaseStrained(Transient):
    """A database, its connection alive, reported a condition that may pass: out of resources (disk, memory,
    connections), a statement canceled (a timeout), a transaction rolled back (a deadlock), a system error."""


class OverDatabaseLimit(NeedsOperator):
    """A database refused the work as over one of its fixed limits (SQLSTATE class 54: a value over 1 GB, too many
    columns, a statement too complex): retrying repeats it, so it fails at once."""


class WrongObjectState(NeedsOperator):
    """A database refused the work as an object it needs is not in the state the work requires (SQLSTATE class 55 but
    a lock not available, 55P03, or an object in use, 55006: ``currval`` before ``nextval`` in the session, a setting
    only a restart changes, an enum value used in the transaction that added it): retrying repeats it, so it fails at
    once."""


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
    """What a database's refusal says, without the rows it quotes: the server's primary message (scrubbed; a data
    exception's quoted value said as ``"…"``) and its SQLSTATE. Its DETAIL, HINT and CONTEXT lines are left out:
    they quote the row a constraint refused ("Failing row contains (17, someone@example.com, ...)", "Key
    (name)=(...) already exists"), personal data that must reach no log, alert or record."""
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
    if code and code.startswith("22"):
        primary = _without_value(primary)
    return f"{scrub(primary)} (SQLSTATE {code})" if code else scrub(primary)


# A data exception's (class 22) primary message quotes the value it could not take: 'invalid input syntax for type
# date: "Ada Lovelace"', 'value "4155550132123" is out of range', 'invalid byte sequence for encoding "UTF8": 0xe9 0x20'
# (a name's bytes). The type, the encoding and the kind of refusal are what a person needs; the value is someone's.
_QUOTED_VALUE = re.compile(r'(: |\bvalue )"(?:[^"]|"")*"')
_BYTE_RUN = re.compile(r"0x[0-9a-fA-F]{2}(?: 0x[0-9a-fA-F]{2})*")


def _without_value(primary: str) -> str:
    return _QUOTED_VALUE.sub(lambda m: f'{m.group(1)}"…"', _BYTE_RUN.sub("…", primary))


_RAISED_IN = re.compile(r"^\S+ function (\S+?\([^)]*\)) line \d+ at RAISE")


def _raised_by(context: str | None) -> str | None:
    """The function (``keep_audited()``) whose RAISE the error is, from the CONTEXT the server gives (its first line,
    ``PL/pgSQL function keep_audited() line 2 at RAISE``); None for the server's own messages."""
    match = _RAISED_IN.match((context or "").strip())
    return match.group(1) if match else None


# What the server's SQLSTATE says of an error psycopg raises as an OperationalError (whole classes are: 53, 54, 55, 57,
# 58, 40, ...), by kind; the name in brackets is what the sentence says the database met.
_RESOURCES = {"53100": "disk full", "53200": "out of memory", "53300": "too many connections",
              "53400": "a configured limit"}
_OVER_LIMIT = {"54001": "statement too complex", "54011": "too many columns", "54023": "too many arguments"}
_SYSTEM = {"58030": "I/O error", "58P01": "a file it needs is missing", "58P02": "a file already exists"}
_ROLLED_BACK = {"40001": "serialization failure", "40P01": "deadlock detected"}
# Class 55 (object not in prerequisite state): only a lock another session holds (55P03, handled apart) or an object
# in use (55006) passes once the other session lets go; every other state of the class repeats on every try.
_WRONG_STATE = {"55000": "object not in prerequisite state", "55P02": "a setting only a restart changes",
                "55P04": "a new enum value used before its commit"}
_STILL_CONNECTED_57 = ("57014", "57P03")  # the rest of class 57 (admin_shutdown, crash_shutdown, ...) ends the session


def is_lost_connection(exc: BaseException) -> bool:
    """Whether a database error is the connection itself lost: no SQLSTATE (the driver's own: the server closed the
    connection, the network broke), class 08 (connection exception), or class 57's ending the session (57P01
    admin_shutdown, 57P02 crash_shutdown, ...)."""
    code = getattr(exc, "sqlstate", None)
    return not code or code.startswith("08") or (code.startswith("57") and code not in _STILL_CONNECTED_57)


def database_trouble(exc: BaseException, where: str, lost: str) -> PrivacyOpsError:
    """A database's OperationalError or InterfaceError as one sentence of its kind, by its SQLSTATE: ``lost`` (the
    sentence of a lost connection, kept by the caller) when the connection is lost; else what the database, still
    connected, said (:func:`database_said`: never the statement's values), after ``where`` (``the database of
    connection 'ops_db'``) and what kind of thing it met. A program limit (class 54) repeats on every try: an
    :class:`OverDatabaseLimit`, failed at once; so does an object not in the state the work requires (class 55 but a
    lock not available, 55P03, and an object in use, 55006): a :class:`WrongObjectState`; everything else may pass:
    a :class:`DatabaseStrained`, retried."""
    if is_lost_connection(exc):
        return ServiceUnreachable(lost)
    code = exc.sqlstate  # type: ignore[attr-defined]  # is_lost_connection: there is one
    said = database_said(exc)
    what = over_limit(exc)
    if what is not None:
        return OverDatabaseLimit(f"{where} refused the work as over one of its limits ({what}): {said}; running it "
                                 "again would only repeat it")
    if code.startswith("53"):
        return DatabaseStrained(f"{where} ran out of resources ({_RESOURCES.get(code, 'insufficient resources')}): "
                                f"{said}")
    if code == "55P03" and "lock timeout" not in said.lower():  # NOWAIT, or SKIP LOCKED's kin: nothing was canceled
        return DatabaseStrained(f"{where} could not take a lock now (a lock was not available): {said}")
    if code == "57014" or code == "55P03":
        return DatabaseStrained(f"{where} canceled a statement ({_canceled_by(said, code)}): {said}")
    if code == "55006":
        return DatabaseStrained(f"{where} could not do it now, an object it needs being in use (object in use): "
                                f"{said}")
    if code.startswith("55"):
        return WrongObjectState(f"{where} refused the work as an object it needs is not in the state the work requires "
                                f"({_WRONG_STATE.get(code, 'object not in prerequisite state')}): {said}; running it "
                                "again would only repeat it")
    if code == "57P03":
        return DatabaseStrained(f"{where} is not accepting connections now (it is starting up or shutting down): "
                                f"{said}")
    if code.startswith("58"):
        return DatabaseStrained(f"{where} had a system error ({_SYSTEM.get(code, 'system error')}): {said}")
    if code.startswith("40"):
        return DatabaseStrained(f"{where} rolled back a transaction "
                                f"({_ROLLED_BACK.get(code, 'transaction rollback')}): {said}")
    return DatabaseStrained(f"{where} refused: {said}")


def over_limit(exc: BaseException) -> str | None:
    """Of a database error of class 54 (program limit exceeded: the work itself is over one of the database's fixed
    limits, so it fails the same way on every try), which limit, in a few words ("too many columns", "a value over
    PostgreSQL's 1 GB limit"); None for any other error. A step acting on one request or subject at a time records
    such an error as that one's, and goes on with the others."""
    code = getattr(exc, "sqlstate", None) or ""
    if not code.startswith("54"):
        return None
    return _OVER_LIMIT.get(code) or _limit_of(exc)


def _limit_of(exc: BaseException) -> str:
    """Class 54's generic code (54000), named by what the server says: a string grown past 1 GB says "out of memory"
    (its DETAIL "Cannot enlarge string buffer ..."), which is no shortage that passes."""
    diag = getattr(exc, "diag", None)
    text = " ".join(str(getattr(diag, f, None) or "") for f in ("message_primary", "message_detail")).lower()
    if "string buffer" in text or "length too large" in text or "memory alloc" in text:
        return "a value over PostgreSQL's 1 GB limit"
    return "program limit exceeded"


def _canceled_by(said: str, code: str) -> str:
    """What canceled a statement, from the server's own fixed words ("canceling statement due to statement
    timeout")."""
    text = said.lower()
    for words, name in (("statement timeout", "statement_timeout"), ("lock timeout", "lock_timeout"),
                        ("user request", "a cancel request"), ("conflict with recovery", "a conflict with recovery")):
        if words in text:
            return name
    return "a lock was not available" if code == "55P03" else "query canceled"
