"""Email addresses: one syntax check for the whole product (settings, assignees, notification recipients).

``email-validator`` does the checking (RFC 5322 / 6531 syntax, no DNS lookups). Addresses are compared
case-insensitively everywhere, as mail providers do in practice, through :func:`comparable`.
"""
from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from psycopg import sql

from include.store_text import Trimmed


# Every character str.strip() removes (those for which str.isspace() is true), for SQL that must trim an address
# as comparable() does: PostgreSQL's btrim() without a second argument removes spaces only, so a tab, a line
# break or a no-break space around an address would make two spellings of it differ there.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: none belongs in a mail header (a
# line break there is how another header is injected), neither in a display name nor in a subject.
HEADER_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class AddressError(ValueError):
    """An address that is not syntactically valid; the message says why (without repeating it)."""


@lru_cache(maxsize=65536)
def normalize_address(value: str) -> str:
    """The normalised form of a valid address (surrounding spaces dropped); :class:`AddressError` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise AddressError("the address is empty")
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AddressError(_without_address(str(exc), value.strip(), check=_validate_any)) from None


def _validate_any(value: str) -> None:
    """:func:`normalize_address`'s check (internationalised addresses allowed), for :func:`_without_address`."""
    validate_email(value, check_deliverability=False)


def valid_or_none(value: str | None) -> str | None:
    """The normalised address, or None when it is missing or malformed."""
    if not value:
        return None
    try:
        return normalize_address(value)
    except AddressError:
        return None


def sending_problem(value: str | None) -> str | None:
    """Why SendGrid cannot be given ``value`` as a recipient, in words without the address; None when it can.

    The same check as :func:`normalize_address`, stricter in one way: the local part (before the @) must be
    ASCII, because SendGrid refuses an address that needs SMTPUTF8, and one address it refuses makes it refuse
    the whole request of up to 1,000 recipients. An internationalised domain (``bücher.de``) is fine: it is sent
    in its ASCII form (:func:`sendable`). Parts of the address quoted by the validator are blanked out, so the
    reason can be stored and logged.
    """
    if value is None or not value.strip():
        return "no address"
    stripped = value.strip()
    try:
        validate_email(stripped, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return _without_address(str(exc), stripped)
    return None


def sendable(address: str) -> str:
    """The form of a sendable address (see :func:`sending_problem`) SendGrid is given: the address itself when it is
    ASCII, else with its internationalised domain in ASCII (IDNA: ``jo@bücher.de`` -> ``jo@xn--bcher-kva.de``),
    the same mailbox in the form SendGrid takes."""
    if address.isascii():
        return address
    try:
        return validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False).ascii_email
    except EmailNotValidError:
        return address  # not sendable: the callers never send it (sending_problem said why)


_IDNA_LABEL = re.compile("xn--", re.IGNORECASE)


def mailbox(address: str) -> str:
    """One spelling for every spelling of a sendable address that SendGrid is given as the same mailbox
    (:func:`sendable`): an internationalised domain in Unicode (NFC), whether it was typed in Unicode, decomposed,
    in full-width letters or in its ASCII form (``jo@xn--bcher-kva.de`` -> ``jo@bücher.de``). Any other address
    is itself: an ASCII address without an IDNA label (nearly all), and one that is not sendable. Keys compared
    by the address rule (:func:`comparable`) on this spelling name one mailbox once."""
    if address.isascii() and not _IDNA_LABEL.search(address):
        return address
    try:
        return validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError:
        return address


# A quoted stretch of a validator message (Python's repr of a label, a literal or a character): where the validator
# repeats what it was given. An opening quote right after a letter is an apostrophe ("can't"), not a quote.
_QUOTED = re.compile(r"""(?<![\w'"])(?:b?'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")
# One character, as repr shows it: the validator lists bad characters one by one, and a character alone names no one.
_ONE_CHARACTER = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)|.", re.S)
_ROT = str.maketrans("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                     "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM5678901234")


def _without_address(message: str, address: str, check=None) -> str:
    """``message`` (the validator's reason for refusing ``address``) with every piece of the address blanked out.

    What the validator repeats of the address is told apart from its own words by asking it again about the same
    address with its letters and digits scrambled (rot13, digits shifted by 5): a quoted stretch or a word of the
    address that the scrambled address's reason does not hold too was repeated from the address, and becomes "…".
    So "An email address cannot end with a period." stays whole for "x@mail." or "x@period.", while the label
    the IDNA check quotes, the literal an IP check quotes, or a local part echoed in any form are blanked out.
    Only whole words are compared: the label "mail" never eats the "mail" of "email".
    """
    check = check or (lambda value: validate_email(value, check_deliverability=False, allow_smtputf8=False))
    scrambled_reason: list[str] = []

    def said_anyway(text: str, word: bool) -> bool:
        """Does the validator say ``text`` of the scrambled address too (its own words, not the address's)?"""
        if not scrambled_reason:
            try:
                check(address.translate(_ROT))
                scrambled_reason.append("")  # the scrambled address is valid: nothing can be told apart, blank it
            except EmailNotValidError as exc:
                scrambled_reason.append(str(exc))
        if word:
            return bool(_whole_word(text).search(scrambled_reason[0]))
        return text in scrambled_reason[0]

    def quoted(match: re.Match) -> str:
        text = match.group(0)
        inner = text[2:-1] if text.startswith("b") else text[1:-1]
        if _ONE_CHARACTER.fullmatch(inner) or said_anyway(text, word=False):
            return text
        return "…"

    message = _QUOTED.sub(quoted, message)
    local, _, domain = address.rpartition("@")
    parts = {address, local, domain, *domain.split("."), *re.split(r"[.+]", local)}
    for part in sorted((p for p in parts if len(p) >= 3), key=len, reverse=True):
        if part.lower() not in message.lower():
            continue  # the common case, without compiling a pattern
        pattern = _whole_word(part)
        if pattern.search(message) and not said_anyway(part, word=True):
            message = pattern.sub("…", message)
    return message[:300]


def _whole_word(text: str) -> re.Pattern:
    """``text`` where it is not part of a longer word (letters, digits, ``_`` and ``-`` join words), any case."""
    return re.compile(rf"(?<![\w-]){re.escape(text)}(?![\w-])", re.IGNORECASE)


def comparable(value: str) -> str:
    """The address rule, in Python: the key under which two spellings of one address are the same,
    trimmed of every white-space character ``str.strip()`` trims (a tab, a line break, a no-break space…) and
    lower-cased. :func:`comparable_sql` is the same rule in SQL; every DAG and store compares addresses by it."""
    return value.strip().lower()


def comparable_sql(column: sql.Composable) -> sql.Composable:
    """The address rule in PostgreSQL: ``lower(btrim(column, <every character of WHITESPACE>))``.

    The characters are listed because neither ``btrim(x)`` (spaces only) nor ``[[:space:]]`` (no no-break space)
    trims what Python's ``str.strip()`` trims. The expression is the one the operational indexes are built on
    (``devkit/sql/operational_indexes.sql``, ``*_address_key_idx``): PostgreSQL uses an expression index only for
    the identical expression, so build every comparison through this function. NULL stays NULL.

    A store whose database is not UTF-8 (a legacy support desk in ``LATIN1`` or ``SQL_ASCII``) gets the same rule in
    the form it can take (:class:`include.store_text.Trimmed`: the white space its encoding holds; in ``SQL_ASCII``
    each character's UTF-8 bytes as a whole): the expression is rendered for the connection it is sent to.
    """
    return sql.SQL("lower({})").format(Trimmed(column, WHITESPACE))
