"""The Parquet data file of a manifest: a fixed schema, fixed writer options, streamed, byte-for-byte repeatable.

Rows arrive as PostgreSQL's ``COPY ... TO STDOUT (FORMAT csv)`` byte stream (:mod:`include.vendors.source`
orders them by ``(shared_at, id)``), are parsed into Arrow record batches by pyarrow's streaming CSV
reader, and are written in row groups of exactly :data:`ROW_GROUP_ROWS` rows: at most one row group (plus
one CSV block) is in memory, whatever the size of the period.

Repeatable bytes: the same rows give the same file, because

* the schema, the column order and every writer option are fixed here (:data:`WRITER_OPTIONS`), and the
  Parquet ``created_by`` field names the writer's version, never a time (the file holds no timestamp but
  the shares' own);
* row-group boundaries depend only on the row count, and every row group is combined into one chunk before
  it is written, so the writer is handed the same arrays whatever the CSV block size or the network's
  chunking (tests cut the stream from 97-byte pieces to one piece);
* the rule lists are spelled out in one fixed order (:data:`include.vendors.rules.VIOLATIONS`).

A new pyarrow version may write different (equally valid) bytes: ``writer`` in the manifest names the
version that wrote the file, and requirements.lock pins it.

While writing, the file's figures are counted in the same pass (:class:`Tally`): rows, subjects, records,
counts by category, violations and problems by rule, and the first share ids breaking each rule.
"""
from __future__ import annotations

import io
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from include.objectstore import file_sha256
from include.vendors.rules import PROBLEMS, VIOLATIONS
from include.vendors.source import COPY_COLUMNS

ROW_GROUP_ROWS = 131_072
CSV_BLOCK_BYTES = 4 << 20  # one CSV block parsed at a time; a single share row must fit in it
EXAMPLES_PER_RULE = 10
CONTENT_TYPE = "application/vnd.apache.parquet"

SCHEMA = pa.schema([
    pa.field("share_id", pa.int64(), nullable=False),
    pa.field("user_id", pa.int64()),
    pa.field("category", pa.string()),
    pa.field("purpose", pa.string()),
    pa.field("legal_basis", pa.string()),
    pa.field("record_count", pa.int64()),
    pa.field("shared_at", pa.timestamp("us", tz="UTC")),
    pa.field("violations", pa.list_(pa.field("element", pa.string(), nullable=False)), nullable=False),
    pa.field("problems", pa.list_(pa.field("element", pa.string(), nullable=False)), nullable=False),
])

WRITER_OPTIONS = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": ["category", "purpose", "legal_basis", "violations.list.element", "problems.list.element"],
    "write_statistics": True,
    "data_page_version": "1.0",
    "data_page_size": 1 << 20,
    "dictionary_pagesize_limit": 1 << 20,
    "write_batch_size": 1024,
    "use_deprecated_int96_timestamps": False,
    "coerce_timestamps": "us",
    "allow_truncated_timestamps": False,
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
    "use_content_defined_chunking": False,
    "sorting_columns": [pq.SortingColumn(SCHEMA.get_field_index("shared_at")),
                        pq.SortingColumn(SCHEMA.get_field_index("share_id"))],
}

_CSV_TYPES = {"share_id": pa.int64(), "user_id": pa.int64(), "category": pa.string(), "purpose": pa.string(),
              "legal_basis": pa.string(), "record_count": pa.int64(), "shared_at_us": pa.int64(),
              "violation_mask": pa.int32(), "problem_mask": pa.int32()}
_VIOLATION_NAMES = pa.array(VIOLATIONS, pa.string())
_PROBLEM_NAMES = pa.array(PROBLEMS, pa.string())


def writer_version() -> str:
    return f"pyarrow {pa.__version__}"


@dataclass
class Tally:
    """The figures of one data file, counted while it is written."""

    rows: int = 0
    records: int = 0
    row_groups: int = 0
    categories: Counter = field(default_factory=Counter)
    violations: list[int] = field(default_factory=lambda: [0] * len(VIOLATIONS))
    violation_rows: int = 0
    problems: list[int] = field(default_factory=lambda: [0] * len(PROBLEMS))
    problem_rows: int = 0
    examples: dict[str, list[int]] = field(default_factory=dict)
    _subjects: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def subjects(self) -> int:
        return int(self._subjects.size)

    def by_rule(self) -> dict[str, int]:
        return dict(zip(VIOLATIONS, self.violations))

    def by_problem(self) -> dict[str, int]:
        return dict(zip(PROBLEMS, self.problems))

    def add(self, batch: pa.RecordBatch, vmask: np.ndarray, pmask: np.ndarray, vbits: np.ndarray,
            pbits: np.ndarray) -> None:
        self.rows += batch.num_rows
        self.records += int(pc.sum(batch.column("record_count")).as_py() or 0)
        users = batch.column("user_id").drop_null().to_numpy()
        if users.size:
            self._subjects = np.union1d(self._subjects, users)
        for entry in pc.value_counts(batch.column("category")).to_pylist():
            self.categories[entry["values"] if entry["values"] is not None else "(missing)"] += entry["counts"]
        if vmask.any():
            self.violation_rows += int(np.count_nonzero(vmask))
            counts = vbits.sum(axis=0)
            ids = batch.column("share_id").to_numpy()
            for bit, rule in enumerate(VIOLATIONS):
                self.violations[bit] += int(counts[bit])
                have = self.examples.setdefault(rule, []) if counts[bit] else None
                if have is not None and len(have) < EXAMPLES_PER_RULE:
                    have.extend(int(i) for i in ids[vbits[:, bit] == 1][:EXAMPLES_PER_RULE - len(have)])
        if pmask.any():
            self.problem_rows += int(np.count_nonzero(pmask))
            for bit, count in enumerate(pbits.sum(axis=0)):
                self.problems[bit] += int(count)


def _bits(masks: np.ndarray, width: int) -> np.ndarray:
    return (masks[:, None] >> np.arange(width, dtype=np.int32)) & 1


def _lists(bits: np.ndarray, names: pa.Array) -> pa.ListArray:
    """Each row's set bits as the list of their names, in bit order (vectorised: no per-row Python)."""
    offsets = np.zeros(bits.shape[0] + 1, np.int32)
    np.cumsum(bits.sum(axis=1), out=offsets[1:])
    _, which = np.nonzero(bits)
    values = names.take(pa.array(which, pa.int32())) if which.size else pa.array([], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values,
                                    type=SCHEMA.field("violations").type)


def _judged(batch: pa.RecordBatch, tally: Tally) -> pa.RecordBatch:
    """A CSV batch (masks as integers) as a batch of :data:`SCHEMA` (rules as lists of names); counts it."""
    vmask = batch.column("violation_mask").to_numpy()
    pmask = batch.column("problem_mask").to_numpy()
    vbits, pbits = _bits(vmask, len(VIOLATIONS)), _bits(pmask, len(PROBLEMS))
    out = pa.RecordBatch.from_arrays([
        batch.column("share_id"), batch.column("user_id"), batch.column("category"), batch.column("purpose"),
        batch.column("legal_basis"), batch.column("record_count"),
        batch.column("shared_at_us").cast(pa.timestamp("us", tz="UTC")),
        _lists(vbits, _VIOLATION_NAMES), _lists(pbits, _PROBLEM_NAMES)], schema=SCHEMA)
    tally.add(out, vmask, pmask, vbits, pbits)
    return out


class ChunkReader(io.RawIOBase):
    """A readable file over an iterable of byte chunks (a psycopg COPY), for pyarrow's streaming CSV reader."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks: Iterator = iter(chunks)
        self._pending = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        want = len(buffer)
        pending = self._pending
        while len(pending) < want and not self._done:
            try:
                pending += next(self._chunks)
            except StopIteration:
                self._done = True
        n = min(want, len(pending))
        buffer[:n] = pending[:n]
        del pending[:n]
        return n


def csv_batches(chunks: Iterable[bytes], block_bytes: int = CSV_BLOCK_BYTES) -> Iterator[pa.RecordBatch]:
    """Record batches of :data:`source.COPY_COLUMNS` from a ``COPY ... (FORMAT csv)`` byte stream.

    PostgreSQL writes NULL as an empty unquoted field and an empty string as ``""``: only the first is null
    here, and no text (not even ``NULL`` or ``NA``) is mistaken for one.
    """
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:  # no rows at all (pyarrow refuses an empty CSV stream)
        return
    reader = pacsv.open_csv(
        ChunkReader(itertools.chain([first], chunks)),
        read_options=pacsv.ReadOptions(column_names=list(COPY_COLUMNS), block_size=block_bytes, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=_CSV_TYPES, null_values=[""], strings_can_be_null=True,
                                             quoted_strings_can_be_null=False))
    for batch in reader:
        if batch.num_rows:
            yield batch


@dataclass(frozen=True)
class DataFile:
    path: str
    sha256: str
    bytes: int
    tally: Tally


def write(batches: Iterable[pa.RecordBatch], path: str, *, row_group_rows: int = ROW_GROUP_ROWS) -> DataFile:
    """Write the judged rows to ``path`` in row groups of exactly ``row_group_rows`` (the last may be short)."""
    tally = Tally()
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with pq.ParquetWriter(path, SCHEMA, **WRITER_OPTIONS) as writer:
        def flush(rows: int) -> None:
            nonlocal pending, pending_rows
            table = pa.Table.from_batches(pending, SCHEMA)
            writer.write_table(table.slice(0, rows).combine_chunks(), row_group_size=rows)
            tally.row_groups += 1
            rest = table.slice(rows)
            pending, pending_rows = rest.to_batches(), rest.num_rows

        for batch in batches:
            pending.append(_judged(batch, tally))
            pending_rows += batch.num_rows
            while pending_rows >= row_group_rows:
                flush(row_group_rows)
        if pending_rows:
            flush(pending_rows)
    digest, size = file_sha256(path)
    return DataFile(path, digest, size, tally)

