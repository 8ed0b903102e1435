"""Email addresses: one syntax check for the whole product (settings, assignees, notification recipients).

``email-validator`` does the checking (RFC 5322 / 6531 syntax, no DNS lookups). Addresses are compared
case-insensitively everywhere, as mail providers do in practice, through :func:`comparable`.
"""
from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


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


def comparable(value: str) -> str:
    """The key under which two spellings of one address are the same (trimmed, lower-case)."""
    return value.strip().lower()
