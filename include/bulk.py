"""Bulk reads and writes between PostgreSQL and Arrow, at the speed of ``COPY``.

A million rows read one Python object at a time cost seconds of interpreter time per column; ``COPY …
TO STDOUT (FORMAT csv)`` parsed by pyarrow's streaming CSV reader costs a fraction of that and keeps
memory to one block at a time. Writing goes the other way: an Arrow table rendered as CSV by pyarrow
and fed to ``COPY … FROM STDIN``. PostgreSQL's CSV keeps NULL (unquoted empty) apart from the empty
string (``""``), and both sides here keep that distinction.
"""
from __future__ import annotations

import io
from typing import Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

BLOCK_BYTES = 8 << 20


class _CopyStream(io.RawIOBase):
    """A readable file over the blocks of a psycopg ``COPY … TO STDOUT``."""

    def __init__(self, copy):
        self._blocks = iter(copy)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not len(self._pending):
            try:
                self._pending = memoryview(bytes(next(self._blocks)))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def read_batches(conn, query: sql.Composable, params: Mapping | Sequence | None,
                 schema: Mapping[str, pa.DataType], *, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.RecordBatch]:
    """Stream the rows of ``query`` as Arrow record batches typed by ``schema`` (column order = select order).

    The caller keeps one batch at a time; the query runs inside one ``COPY`` (and so one snapshot).
    """
    names = list(schema)
    copy_sql = sql.SQL("copy ({}) to stdout (format csv)").format(query)
    with conn.cursor() as cur, cur.copy(copy_sql, params) as copy:
        stream = io.BufferedReader(_CopyStream(copy), buffer_size=1 << 20)
        if not stream.peek(1):
            return  # no rows (pyarrow refuses an empty CSV)
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=block_bytes, use_threads=False),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            # COPY writes NULL as an unquoted empty field and nothing else: pyarrow's default null words ("NA",
            # "null", "nan", ...) are values a row holds.
            convert_options=pa_csv.ConvertOptions(column_types=dict(schema), null_values=[""],
                                                  strings_can_be_null=True, quoted_strings_can_be_null=False))
        for batch in reader:
            if batch.num_rows:
                yield batch


def write_table(conn, target: sql.Composable, columns: Sequence[str], table: pa.Table) -> int:
    """``COPY target (columns) FROM STDIN`` the rows of ``table`` (its columns in that order); returns the count."""
    if table.num_rows == 0:
        return 0
    buffer = io.BytesIO()
    pa_csv.write_csv(table.select(list(columns)), buffer,
                     pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    copy_sql = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor().copy(copy_sql) as copy:
        view = buffer.getbuffer()
        for start in range(0, len(view), BLOCK_BYTES):
            copy.write(view[start:start + BLOCK_BYTES])
    return table.num_rows


def epoch_micros_to_timestamps(column: pa.Array, tz: str = "UTC") -> pa.Array:
    """An int64 column of microseconds since 1970 as ``timestamp[us, tz]`` (nulls kept)."""
    return column.cast(pa.timestamp("us", tz=tz))


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Iterate ``items`` in a thread of its own, ``depth`` items ahead of the consumer.

    For a reader on one connection feeding a writer on another: the database reads the next chunk while
    this process evaluates and writes the current one (the driver and pyarrow release the GIL while they
    wait and parse). An exception in the reader is raised in the consumer; stopping early stops the reader.
    """
    import queue
    import threading

    done = object()
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(("done", done))
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put(("error", exc))

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join(timeout=30)
