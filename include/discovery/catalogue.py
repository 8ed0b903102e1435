"""Every table and column of a database, from its catalogue, and a bounded sample of each table's rows.

The sample's cost stays flat as a table grows: a table estimated (``pg_class.reltuples``) at more than a few times
the rows wanted is read with ``TABLESAMPLE SYSTEM (p)``, which reads only the chosen share of the table's pages,
``p`` chosen so that about four times the rows wanted come back, and ``LIMIT`` stops at the rows wanted. A smaller
table (or one never analysed, whose estimate is unknown) is read with ``LIMIT`` alone, which stops after that many
rows. A page sample that comes back nearly empty (bad luck, or a stale estimate) is followed by
:data:`SPREAD_PAGES` pages spread evenly over the table, read by TID (the oldest rows and the newest). Every value
is read as text (``col::text``, at most :data:`VALUE_CHARS` characters), so a value Python's types
cannot hold (``infinity``, a BC date) is a string like any other and never stops the scan; a composite as the JSON
of its fields, ``bytea`` as its bytes (``encode(…, 'escape')``), a domain as the type it is over.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import pandas as pd
from psycopg import sql

from include.discovery.classify import ELEMENT_SEPARATOR

log = logging.getLogger("include.discovery")

# Schemas never scanned: PostgreSQL's own and the compliance store (which holds findings, not subjects' data).
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", "compliance")
VALUE_CHARS = 2000  # characters of a value read (a long message body is judged by its beginning)
OVERSAMPLE = 4  # TABLESAMPLE asks for this many times the rows wanted (pages are not all full)
SAMPLE_TIMEOUT_MS = 60_000  # one table's sample never holds the scan longer than this
SPREAD_PAGES = 64  # pages read, evenly spread, when a page sample of a big table came back nearly empty


class Column(NamedTuple):
    """A column as the catalogue lists it (its type without modifiers: ``character varying``)."""

    name: str
    data_type: str


class ForeignKey(NamedTuple):
    """A single-column foreign key as the catalogue lists it: the column, and the column it references."""

    column: str
    ref_schema: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    estimated_rows: float  # pg_class.reltuples: -1 when never analysed
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def label(self) -> str:
        return self.name if self.schema == "public" else self.qualified


_CATALOGUE = """
select n.nspname, c.relname,
       -- a partitioned table's rows are its partitions' (its own estimate stays -1: autovacuum never analyses it)
       case when c.relkind = 'p' then coalesce((select sum(greatest(l.reltuples, 0)) from pg_partition_tree(c.oid) pt
                                                join pg_class l on l.oid = pt.relid where pt.isleaf), -1)
            else c.reltuples end::float8,
       a.attname,
       -- a domain as the type it is over (text[], date, bytea); a composite as 'record' (read as its fields)
       case when bt.typtype = 'c' then 'record'
            else regexp_replace(format_type(bt.oid, case when t.typtype = 'd' then t.typtypmod else a.atttypmod end),
                                '\\(.*\\)', '') end as data_type
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped  -- a table of no columns too
left join pg_type t on t.oid = a.atttypid
left join pg_type bt on bt.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
where c.relkind in ('r', 'p', 'm') and not c.relispartition
  and n.nspname <> all(%s) and n.nspname !~ '^pg_(temp|toast)'
order by n.nspname, c.relname, a.attnum
"""

_FOREIGN_KEYS = """
select n.nspname, c.relname, a.attname, rn.nspname, rc.relname, ra.attname
from pg_constraint k
join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
join pg_class rc on rc.oid = k.confrelid join pg_namespace rn on rn.oid = rc.relnamespace
join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
join pg_attribute ra on ra.attrelid = k.confrelid and ra.attnum = k.confkey[1]
where k.contype = 'f' and array_length(k.conkey, 1) = 1
"""


def list_tables(conn, only: Sequence[str] = ()) -> list[Table]:
    """Every table (ordinary, partitioned, materialized view) outside :data:`SYSTEM_SCHEMAS`, with its columns and
    single-column foreign keys. ``only``: table names (``users`` or ``schema.users``); empty means every table."""
    wanted = {name.lower() for name in only}
    rows: dict[tuple[str, str], dict] = {}
    for schema, table, estimate, column, data_type in conn.execute(_CATALOGUE, (list(SYSTEM_SCHEMAS),)):
        if wanted and table.lower() not in wanted and f"{schema}.{table}".lower() not in wanted:
            continue
        entry = rows.setdefault((schema, table), {"estimate": estimate, "columns": []})
        if column is not None:
            entry["columns"].append(Column(column, data_type))
    keys: dict[tuple[str, str], list[ForeignKey]] = {}
    if rows:
        for schema, table, column, ref_schema, ref_table, ref_column in conn.execute(_FOREIGN_KEYS):
            if (schema, table) in rows:
                keys.setdefault((schema, table), []).append(ForeignKey(column, ref_schema, ref_table, ref_column))
    return [Table(schema, table, tuple(e["columns"]), e["estimate"], tuple(keys.get((schema, table), ())))
            for (schema, table), e in rows.items()]


def sample_percent(estimated_rows: float, rows: int) -> float | None:
    """The ``TABLESAMPLE SYSTEM`` percentage for ``rows`` of a table of ``estimated_rows``, or None when the table
    is small (or its size unknown) and ``LIMIT`` alone bounds the read."""
    if estimated_rows <= OVERSAMPLE * rows:
        return None
    return max(100.0 * OVERSAMPLE * rows / estimated_rows, 0.0001)


def _select_list(cols: Sequence[Column]) -> sql.Composable:
    def as_text(c: Column) -> sql.Composable:
        if c.data_type.endswith("[]"):
            return sql.SQL("array_to_string({}, {})").format(sql.Identifier(c.name), sql.Literal(ELEMENT_SEPARATOR))
        if c.data_type == "record":  # a composite: its fields by name, judged as a JSON document's
            return sql.SQL("to_jsonb({})::text").format(sql.Identifier(c.name))
        if c.data_type == "bytea":  # its bytes as text (printable ones as they are), not as hex digits
            return sql.SQL("encode({}, 'escape')").format(sql.Identifier(c.name))
        return sql.SQL("{}::text").format(sql.Identifier(c.name))

    return sql.SQL(", ").join(sql.SQL("left({}, {})").format(as_text(c), sql.Literal(VALUE_CHARS)) for c in cols)


def spread_pages(pages: int, count: int = SPREAD_PAGES) -> list[int]:
    """``count`` page numbers spread evenly over a table of ``pages`` pages, its first and last among them."""
    if pages <= count:
        return list(range(pages))
    return sorted({round(i * (pages - 1) / (count - 1)) for i in range(count)})


def spread_query(table: Table, rows: int, pages: Sequence[int]) -> sql.Composed:
    """The rows of these pages only (a TID scan: every line a page can hold, ``(page, 1..)``), in random order, at
    most ``rows``: the oldest rows and the newest are both read, at a cost flat in the table's size."""
    return sql.SQL("select {cols} from {t} where ctid = any(array(select ('(' || p || ',' || n || ')')::tid "
                   "from unnest({pages}::bigint[]) p, "
                   "generate_series(1, (current_setting('block_size')::int - 24) / 28) n)) "
                   "order by random() limit {rows}").format(
        cols=_select_list(table.columns), t=sql.Identifier(table.schema, table.name),
        pages=sql.Literal(list(pages)), rows=sql.Literal(rows))


def table_pages(conn, table: Table) -> int:
    """The table's pages on disk now (0 for a partitioned table, whose rows are in its partitions)."""
    return conn.execute("""select pg_relation_size(c.oid) / current_setting('block_size')::int from pg_class c
                           join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s""",
                        (table.schema, table.name)).fetchone()[0]


def sample_query(table: Table, rows: int, columns: Iterable[Column] | None = None,
                 pages: bool = True) -> sql.Composed:
    """The statement reading a table's sample: every column as bounded text (an array's elements joined by
    :data:`~include.discovery.classify.ELEMENT_SEPARATOR`, so that each is judged alone), sampled pages when the
    table is big (``pages=False``: the first ``rows`` rows, which ``LIMIT`` alone bounds)."""
    select = _select_list(tuple(columns if columns is not None else table.columns))
    percent = sample_percent(table.estimated_rows, rows) if pages else None
    sampled = (sql.SQL(" tablesample system ({})").format(sql.Literal(round(percent, 6))) if percent is not None
               else sql.SQL(""))
    # Sampled pages come back in page order: without a random order, LIMIT would keep the first pages' rows (the
    # oldest, often), and a column filled only in newer rows would go unseen. The sample is a few times ``rows``.
    shuffled = sql.SQL(" order by random()") if percent is not None else sql.SQL("")
    return sql.SQL("select {} from {}{}{} limit {}").format(select, sql.Identifier(table.schema, table.name), sampled,
                                                           shuffled, sql.Literal(rows))


def sample(conn, table: Table, rows: int) -> pd.DataFrame:
    """Up to ``rows`` rows of ``table``, every value as text (None for NULL), in a pandas DataFrame."""
    names = [c.name for c in table.columns]
    with conn.transaction():
        conn.execute("set transaction read only")
        conn.execute(sql.SQL("set local statement_timeout = {}").format(sql.Literal(SAMPLE_TIMEOUT_MS)))
        records = conn.execute(sample_query(table, rows)).fetchall()
        if len(records) < rows // 2 and sample_percent(table.estimated_rows, rows) is not None:
            # SYSTEM sampling picks each page with the same chance: a few pages asked of a big table may come back
            # as none (about one time in fifteen for 100 rows of 60,000), or the estimate is stale. Then pages spread
            # evenly over the table (the first rows alone were the oldest: a column filled in newer rows went
            # unseen); a table of one page, or partitioned, by its first rows.
            pages = table_pages(conn, table)
            query = spread_query(table, rows, spread_pages(pages)) if pages > 1 else \
                sample_query(table, rows, pages=False)
            records = conn.execute(query).fetchall()
    return pd.DataFrame.from_records(records, columns=names).astype("object") if records else \
        pd.DataFrame({name: pd.Series(dtype="object") for name in names})
