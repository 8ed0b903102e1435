"""Text of a store whose database is not UTF-8: what a statement may name in it, and how its text is read.

The data map may name a legacy store (a support desk's database) in ``LATIN1`` or ``SQL_ASCII``. Two things differ
there from a UTF-8 database:

- **What a statement can name.** A ``LATIN1`` database holds no character beyond U+00FF: a statement naming one
  (the address rule's white space, U+3000 among it) cannot even be sent to it. A ``SQL_ASCII`` database checks no
  encoding and compares bytes one by one: a character beyond ASCII, sent as its UTF-8 bytes, is several characters
  there (``btrim`` of U+0085, bytes c2 85, would cut the last byte of an ``Å`` written in UTF-8).
  :class:`Trimmed` is a trim of white space that renders for the database it is sent to (see there).
- **How its text comes back.** The driver hands a ``SQL_ASCII`` database's text over as ``bytes``. Such a store
  holds what its clients wrote: UTF-8 mostly, Latin-1 from older clients beside it. :func:`legacy_text` reads it as
  UTF-8 and each byte no UTF-8 text holds as its Latin-1 character: nothing is lost (encoded as Latin-1, those
  characters give back the bytes as stored), and a Latin-1 ``é`` reads as ``é``. :func:`read_as_str` makes a
  connection read text so; another encoding (``LATIN1``) the driver reads as it is.
"""
from __future__ import annotations

import codecs
import re
from typing import Iterable, Iterator, Mapping

from psycopg import sql

UTF8 = "UTF8"
SQL_ASCII = "SQL_ASCII"

_ESCAPED = re.compile("[\udc80-\udcff]")


def server_encoding(conn) -> str:
    """The encoding of the database of ``conn`` (``UTF8``, ``LATIN1``, ``SQL_ASCII``); ``UTF8`` without one (or for
    an object standing in for a connection that says none)."""
    info = getattr(conn, "info", None)
    if info is None:
        return UTF8
    return info.parameter_status("server_encoding") or UTF8


def holds(encoding: str, character: str) -> bool:
    """Whether a database in ``encoding`` (PostgreSQL's name) holds ``character``; one Python does not know: ASCII."""
    if encoding == UTF8:
        return True
    try:
        from psycopg._encodings import pg2pyenc

        character.encode(pg2pyenc(encoding.encode()))
    except UnicodeEncodeError:
        return False
    except Exception:  # noqa: BLE001 - an encoding psycopg does not name, or its private map moved: ASCII is safe
        return character.isascii()
    return True


class Trimmed(sql.Composable):
    """``btrim(column, <white space>)`` as the database it is sent to can hold it: in UTF-8 every character of
    ``whitespace`` (the expression the address-rule indexes are built on, unchanged); in another encoding
    (``LATIN1``) those it holds (it can hold no other, so none is around its text); in ``SQL_ASCII`` (bytes compared
    one by one) a regular expression trimming ASCII white space and the UTF-8 byte sequence of every other character
    as a whole, so a letter written in UTF-8 never loses a byte. Built without a connection: the UTF-8 form."""

    def __init__(self, column: sql.Composable, whitespace: str):
        super().__init__((column, whitespace))

    def as_bytes(self, context=None) -> bytes:
        return self.rendered(server_encoding(context.connection if context else None)).as_bytes(context)

    def rendered(self, encoding: str) -> sql.Composable:
        """The expression for a database in ``encoding``."""
        column, whitespace = self._obj
        if encoding != SQL_ASCII:
            held = "".join(ch for ch in whitespace if holds(encoding, ch))
            return sql.SQL("btrim({}, {})").format(column, sql.Literal(held))
        single = "".join(ch for ch in whitespace if ch.isascii())
        runs = "|".join([f"[{single}]", *(ch for ch in whitespace if not ch.isascii())])
        pattern = f"^(?:{runs})+|(?:{runs})+$"
        return sql.SQL("regexp_replace({}, {}, '', 'g')").format(column, sql.Literal(pattern))


def store_params(conn, params: Mapping) -> Mapping:
    """``params`` of an erasure's or an export's statement as the store of ``conn`` can take them: an address
    (``email``, each of ``emails``) its database's encoding cannot hold (``ł`` in ``LATIN1``) is None there, and a
    file location (``files``) it cannot hold is left out. No row of that store can hold them, so they match nothing
    there; sent, they could not even be encoded (the driver's UnicodeEncodeError, or the server's "has no equivalent
    in encoding")."""
    encoding = server_encoding(conn)
    if encoding in (UTF8, SQL_ASCII):  # SQL_ASCII takes any bytes: the UTF-8 ones are sent
        return params

    def held(value):
        return value if value is None or all(holds(encoding, ch) for ch in value) else None

    out = dict(params)
    if out.get("email") is not None:
        out["email"] = held(out["email"])
    if out.get("emails") is not None:
        out["emails"] = [held(e) for e in out["emails"]]
    if out.get("files") is not None:
        out["files"] = [f for f in out["files"] if held(f) is not None]
    return out


def legacy_text(data: bytes) -> tuple[str, bool]:
    """``data`` (text of a ``SQL_ASCII`` store) as UTF-8, each byte no UTF-8 text holds as its Latin-1 character;
    and whether there was such a byte."""
    text = bytes(data).decode("utf-8", "surrogateescape")
    fixed = _ESCAPED.sub(_latin1, text)
    return fixed, fixed != text


def legacy_stream(chunks: Iterable[bytes], found: list) -> Iterator[bytes]:
    """``chunks`` of a ``SQL_ASCII`` store's text (a COPY's output) as UTF-8, read as :func:`legacy_text` reads it,
    a character split between two chunks read whole; appends True to ``found`` when a byte was read as Latin-1."""
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    for chunk in [*chunks, None]:
        text = decoder.decode(b"" if chunk is None else bytes(chunk), final=chunk is None)
        fixed = _ESCAPED.sub(_latin1, text)
        if fixed != text and not found:
            found.append(True)
        if fixed:
            yield fixed.encode()


def _latin1(match: re.Match) -> str:
    return chr(ord(match.group()) - 0xDC00)


def read_as_str(conn) -> str:
    """Make ``conn`` hand over every text as ``str`` whatever its database's encoding (a ``SQL_ASCII`` one's read as
    :func:`legacy_text` reads it), and return its database's encoding."""
    encoding = server_encoding(conn)
    if encoding != SQL_ASCII:
        return encoding
    from psycopg.adapt import Loader

    class LegacyText(Loader):
        def load(self, data) -> str:
            return legacy_text(data)[0]

    for name in ("text", "varchar", "bpchar", "name"):
        conn.adapters.register_loader(name, LegacyText)
    return encoding
