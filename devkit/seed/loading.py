"""Loading generated rows into PostgreSQL: COPY from CSV, then index builds, sequences and statistics.

Loading is built for a million users in well under three minutes on two cores: the tables are created
without secondary indexes (by the caller, in the loading transaction), filled with
``COPY ... (FORMAT csv, FREEZE)`` from CSV that pyarrow writes in a producer thread (so generation
overlaps with the server's parsing), and the secondary indexes are built afterwards as sorted builds.
``FREEZE`` writes the rows already frozen and all-visible, which spares the first readers the hint-bit
writes and a later anti-wraparound VACUUM the freezing of every page of a freshly loaded table.
"""
from __future__ import annotations

import io
import re
import queue
import threading
import time
from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from devkit import operational_schema
from devkit.seed.layout import LAYOUT

CSV_CHUNK_ROWS = 200_000
MAINTENANCE_WORK_MEM = "512MB"

_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=8192)
_DONE = object()


def _csv_chunks(table: pa.Table) -> Iterator[bytes]:
    for start in range(0, table.num_rows, CSV_CHUNK_ROWS):
        buf = io.BytesIO()
        pacsv.write_csv(table.slice(start, CSV_CHUNK_ROWS), buf, _WRITE_OPTIONS)
        yield buf.getvalue()


def _copy_statement(table: str) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in LAYOUT[table])
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, FREEZE)").format(sql.Identifier(table), columns)


class _ChunkPipe:
    """CSV chunks rendered by a producer thread while the loading connection streams the previous
    ones to the server: pyarrow and numpy release the GIL, so generation overlaps the server's parsing.
    """

    def __init__(self, parts: Iterator[tuple[str, pa.Table]], timings: dict[str, float], depth: int = 6):
        self._parts = parts
        self._timings = timings
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="seed-csv", daemon=True)

    def __enter__(self) -> _ChunkPipe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # a failed load must not leave the producer blocked on a full queue
        self._stop.set()
        self._thread.join()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for table, rows in self._parts:
                chunks = _csv_chunks(rows)
                while True:
                    started = time.perf_counter()
                    chunk = next(chunks, None)
                    self._timings["csv_render"] = self._timings.get("csv_render", 0.0) + time.perf_counter() - started
                    if chunk is None:
                        break
                    if not self._put((table, chunk)):
                        return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def get(self):
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def load(conn: psycopg.Connection, parts: Iterator[tuple[str, pa.Table]], timings: dict[str, float]) -> None:
    """COPY every part into its table; consecutive parts of one table share one COPY."""
    with _ChunkPipe(parts, timings) as pipe, conn.cursor() as cur:
        item = pipe.get()
        while item is not _DONE:
            table = item[0]
            with cur.copy(_copy_statement(table)) as copy:
                while item is not _DONE and item[0] == table:
                    copy.write(item[1])
                    item = pipe.get()


def build_indexes(conn: psycopg.Connection) -> None:
    # One build at a time: PostgreSQL's parallel index build already uses both cores, and two
    # concurrent builds measured no faster (11.8 s vs 12.8 s for a million users).
    with conn.transaction():
        conn.execute(sql.SQL("set local maintenance_work_mem = {}").format(sql.Literal(MAINTENANCE_WORK_MEM)))
        operational_schema.create_indexes(conn)


def advance_sequences_and_analyze(conn: psycopg.Connection) -> None:
    """Identity sequences past the loaded ids (so an insert without id works), then planner stats."""
    for table in _id_tables():
        conn.execute(
            sql.SQL("select setval(pg_get_serial_sequence({t}, 'id'), coalesce(max(id), 0) + 1, false) from {i}")
            .format(t=sql.Literal(table), i=sql.Identifier(table)))
    # only the reference tables: the database may hold other schemas (the compliance store)
    conn.execute(sql.SQL("analyze {}").format(
        sql.SQL(", ").join(sql.Identifier(t) for t in operational_schema.table_names())))


def _id_tables() -> list[str]:
    """The reference tables whose first column is an identity ``id`` (their sequence follows the loaded ids)."""
    return [t for t in operational_schema.table_names() if LAYOUT[t][0][0] == "id"]


def seeded_whole(conn: psycopg.Connection) -> bool:
    """Whether a seed here ran to its end: every reference table, every index, and each id sequence past its table's
    ids (:func:`advance_sequences_and_analyze`). A seed cut off after its load (the indexes and sequences come after
    the rows' commit) leaves rows without them: an insert without an id then collides."""
    if len(operational_schema.existing_tables(conn)) != len(operational_schema.table_names()):
        return False
    wanted = {m.group(1) for m in map(_INDEX_NAME.search, operational_schema.index_statements()) if m}
    have = {name for (name,) in conn.execute("select indexname from pg_indexes where schemaname = current_schema()")}
    if not wanted <= have:
        return False
    for table in _id_tables():
        behind = conn.execute(
            sql.SQL("select coalesce(max(id), 0) >= (select last_value + is_called::int from {s}) from {i}").format(
                s=sql.SQL(conn.execute("select pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]),
                i=sql.Identifier(table))).fetchone()[0]
        if behind:
            return False
    return True


_INDEX_NAME = re.compile(r"create\s+(?:unique\s+)?index\s+(?:if\s+not\s+exists\s+)?(\w+)", re.IGNORECASE)


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {
        table: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()[0]
        for table in operational_schema.table_names()
    }
