"""Reads of the compliance store, one module per domain, shared by the demo's summary, the command line,
the digest and the compliance page: one function per question, returning ids, counts, hashes and dates
only (never personal data), paginated and index-backed where a table grows without bound."""
from __future__ import annotations

from typing import Iterable


def missing_tables(conn, tables: Iterable[str]) -> list[str]:
    """The tables (``schema.name``) of ``tables`` that do not exist in this database (``to_regclass``).

    A domain whose migration has not landed, or a store migrated by an older release, lacks its tables:
    its readers say "not installed" instead of failing.
    """
    names = list(tables)
    if not names:
        return []
    found = conn.execute("select t, to_regclass(t) is not null from unnest(%s::text[]) as t", (names,)).fetchall()
    return [name for name, present in found if not present]
