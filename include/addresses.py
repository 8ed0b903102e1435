"""Email addresses: one syntax check for the whole product (settings, assignees, notification recipients).

``email-validator`` does the checking (RFC 5322 / 6531 syntax, no DNS lookups). Addresses are compared
case-insensitively everywhere, as mail providers do in practice, through :func:`comparable`.
"""
from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


# Every character str.strip() removes (those for which str.isspace() is true), for SQL that must trim an address
# as comparable() does: PostgreSQL's btrim() without a second argument removes spaces only, so a tab, a line
# break or a no-break space around an address would make two spellings of it differ there.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


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
        raise AddressError(str(exc)) from None


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

    The same check as :func:`normalize_address`, stricter in one way: the address must be ASCII (no
    internationalised local part or domain), because one address SendGrid refuses makes it refuse the whole
    request of up to 1,000 recipients. Parts of the address quoted by the validator are blanked out, so the
    reason can be stored and logged.
    """
    if value is None or not value.strip():
        return "no address"
    stripped = value.strip()
    try:
        validate_email(stripped, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return _without_address(str(exc), stripped)
    if not stripped.isascii():
        return "the address is not ASCII (an internationalised domain is not sent to)"
    return None


def _without_address(message: str, address: str) -> str:
    local, _, domain = address.rpartition("@")
    for part in sorted({address, local, domain, *domain.split(".")}, key=len, reverse=True):
        if len(part) >= 3:
            message = message.replace(part, "…")
    return message[:300]


def comparable(value: str) -> str:
    """The key under which two spellings of one address are the same (trimmed, lower-case)."""
    return value.strip().lower()
