"""Objects no row names: in each bucket the data map allows (its ``buckets``), the objects that no file column
(``files``) of any store names — a regulator's "data you forgot you had".

Only counts, bytes and the oldest creation time are kept: an object's name can carry a person's name (a file
upload keeps its file name), so no name is logged, stored or emailed.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from psycopg import sql

from include.datamap import DataMap
from include.errors import NeedsOperator

log = logging.getLogger("include.discovery")


class BucketsRefused(NeedsOperator):
    """The object store refused to list some of the buckets (missing, or a permission the connection lacks); the
    others were counted."""


def named_objects(dm: DataMap, database: Callable[[str], object]) -> dict[str, set[str]]:
    """bucket -> the object names (keys) that file columns name, read from every store the map names, each in every
    Unicode normalisation form the erasure looks it up in (:func:`include.objectstore.name_forms`)."""
    from include.erasure.scope import same_file_sql
    from include.objectstore import FileRef, name_forms
    from include.store_text import read_as_str

    named: dict[str, set[str]] = {b: set() for b in dm.buckets}
    for entry, column in dm.file_columns:
        conn = database(entry.connection)
        # Each location as the erasure reads it (white space around it a row's, the scheme in any case): the file a
        # row names in any spelling is deleted with its subject, so it is no orphan. A store whose encoding is not
        # UTF-8 (a legacy support desk in LATIN1 or SQL_ASCII) is trimmed and read as the erasure does it there
        # (include.store_text).
        read_as_str(conn)
        same = same_file_sql(sql.Identifier(column))
        query = sql.SQL("select distinct {same} from {table} where {same} like 'gs://%%'").format(
            same=same, table=entry.ident)
        for (uri,) in conn.execute(query):
            ref = FileRef.parse(uri)
            if ref is not None and ref.bucket in named:
                # A row naming the file in NFD while the bucket holds it in NFC (or the reverse) names it for the
                # erasure, which deletes it under the other form: it is no orphan either.
                named[ref.bucket].update(name_forms(ref.key))
    return named


def find_orphans(dm: DataMap, database: Callable[[str], object], open_bucket: Callable[[str], object],
                 allowed: frozenset[str] | None = None, refused: list[str] | None = None) -> dict:
    """bucket -> {objects, orphans, orphan_bytes, oldest_orphan} for every allowed bucket (none: an empty dict).
    ``allowed``: the buckets the settings allow (``file_buckets``); only those of the map's that it holds are
    listed (only buckets the settings allow may be touched). None: the map's. A bucket the object store refuses to
    list (missing, or a permission the connection lacks) is left out and its sentence (naming the bucket only) added
    to ``refused`` when given, so the others are still counted; without ``refused`` the refusal is raised."""
    from include.objectstore import ObjectStoreRefused

    named = named_objects(dm, database)
    found = {}
    for bucket in [b for b in dm.buckets if allowed is None or b in allowed]:
        total = orphans = size = 0
        oldest: datetime | None = None
        try:
            for info in open_bucket(bucket).describe():
                total += 1
                if info.name in named[bucket]:
                    continue
                orphans += 1
                size += info.size
                if info.created is not None and (oldest is None or info.created < oldest):
                    oldest = info.created
        except ObjectStoreRefused as exc:
            if refused is None:
                raise
            refused.append(str(exc))
            log.warning("bucket %s could not be listed: %s", bucket, exc)
            continue
        found[bucket] = {"objects": total, "orphans": orphans, "orphan_bytes": size,
                         "oldest_orphan": oldest.isoformat() if oldest else None}
        log.info("bucket %s: %d object(s), %d named by no row (%d bytes)", bucket, total, orphans, size)
    return found
