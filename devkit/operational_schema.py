"""Creates the reference operational schema of the reference schema (docs/rules.md) (tables, then secondary indexes).

The DDL lives in ``devkit/sql/operational_schema.sql`` and ``devkit/sql/operational_indexes.sql``;
indexes are a separate step so that a bulk loader can build them once, after COPY.
"""
from __future__ import annotations

import re
from importlib import resources

import psycopg
from psycopg import sql

SCHEMA_FILE = "operational_schema.sql"
INDEXES_FILE = "operational_indexes.sql"

_CREATE_TABLE = re.compile(r"^\s*create\s+table\s+(\w+)", re.IGNORECASE | re.MULTILINE)


class SchemaExistsError(RuntimeError):
    """A table of the reference schema is already there and ``replace`` was not asked for."""

    def __init__(self, present: list[str]):
        self.present = present
        self.table_sentence = (f"table {present[0]!r} already exists"
                               + (f" (and {len(present) - 1} more reference tables)" if len(present) > 1 else ""))
        super().__init__(self.table_sentence + "; pass replace=True to drop and recreate the reference schema")


def load_sql(name: str) -> str:
    return resources.files("devkit").joinpath("sql", name).read_text(encoding="utf-8")


def table_names() -> list[str]:
    """The tables of the reference schema, in creation order (read from the DDL, not repeated here)."""
    return _CREATE_TABLE.findall(load_sql(SCHEMA_FILE))


def index_statements() -> list[str]:
    """Each ``create index`` of the reference schema as its own statement, so that a loader may
    spread them over several connections."""
    text = "\n".join(
        line for line in load_sql(INDEXES_FILE).splitlines() if not line.lstrip().startswith("--")
    )
    return [stmt.strip() for stmt in text.split(";") if stmt.strip()]


def existing_tables(conn: psycopg.Connection) -> list[str]:
    """Reference-schema tables already visible on the connection's search path."""
    names = table_names()
    rows = conn.execute(
        "select t.name from unnest(%s::text[]) with ordinality as t(name, ord)"
        " where to_regclass(quote_ident(t.name)) is not null order by t.ord",
        (names,),
    ).fetchall()
    return [row[0] for row in rows]


def reference_tables_are_empty(conn: psycopg.Connection) -> bool:
    """True when no reference table on the search path holds a row."""
    for name in existing_tables(conn):
        if conn.execute(sql.SQL("select exists (select from {})").format(sql.Identifier(name))).fetchone()[0]:
            return False
    return True


class NotOurTables(ValueError):
    """Reference-named tables the kit did not make, in a database it did not make: never dropped."""

    def __init__(self, dbname: str, tables: list[str]):
        self.tables = tables
        super().__init__(f"database {dbname!r} was not created by privacy-ops and its table(s) {', '.join(tables[:3])}"
                         + (f" (and {len(tables) - 3} more)" if len(tables) > 3 else "")
                         + " were not made by it either (they lack the project's mark), so they are not dropped: "
                           "name a database the project made, or drop them yourself")


class DependedOn(ValueError):
    """Something outside the reference schema (another table's foreign key, a view) depends on a reference table:
    the tables are not dropped (CASCADE would drop what the kit did not make)."""

    def __init__(self, detail: str):
        lines = detail.splitlines() or ["another object depends on them"]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        super().__init__(f"the reference tables are not dropped because other objects depend on them: {lines[0]}"
                         f"{more}; drop those first (--replace drops only the reference tables)")


def kit_made(conn: psycopg.Connection) -> tuple[bool, list[str]]:
    """(whether the connection's database carries the kit's mark, the reference-named tables here that do not)."""
    from devkit.database import MARK

    ours = conn.execute("select shobj_description(oid, 'pg_database') = %s from pg_database "
                        "where datname = current_database()", (MARK,)).fetchone()[0]
    foreign = [name for name in existing_tables(conn)
               if conn.execute("select obj_description(to_regclass(quote_ident(%s)), 'pg_class') is distinct from %s",
                               (name, MARK)).fetchone()[0]]
    return bool(ours), foreign


def drop_reference_schema(conn: psycopg.Connection) -> None:
    """Drop the reference tables, only where the kit made them: in a database it made, or tables it made (each
    carries its mark; :func:`create_reference_schema` writes it). :class:`NotOurTables` otherwise: a `--replace`
    pointed at another database (``$PRIVACY_PG_URL`` may name a production one) dropped its ``users`` before."""
    ours, foreign = kit_made(conn)
    if foreign and not ours:
        raise NotOurTables(conn.info.dbname, foreign)
    try:
        with conn.transaction():
            for name in reversed(table_names()):
                conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(name)))
    except psycopg.errors.DependentObjectsStillExist as exc:  # the server names them: constraint, view, table
        raise DependedOn(exc.diag.message_detail or "") from None


def create_reference_schema(
    conn: psycopg.Connection, *, with_indexes: bool = True, replace: bool = False
) -> list[str]:
    """Create every table of the reference schema (and its indexes unless ``with_indexes=False``)
    in one transaction, and return the table names.

    Refuses, naming the table, when one already exists: silently reusing a table of another shape
    would let the demo or a test run against the wrong schema. ``replace=True`` drops them first.
    """
    with conn.transaction():
        if replace:
            drop_reference_schema(conn)
        present = existing_tables(conn)
        if present:
            raise SchemaExistsError(present)
        conn.execute(load_sql(SCHEMA_FILE))
        from devkit.database import MARK

        for name in table_names():  # the kit's own tables, which a later --replace may drop
            conn.execute(sql.SQL("comment on table {} is {}").format(sql.Identifier(name), sql.Literal(MARK)))
        if with_indexes:
            create_indexes(conn)
    return table_names()


def create_indexes(conn: psycopg.Connection) -> None:
    """Build the secondary indexes (after a bulk load, or as part of schema creation)."""
    with conn.transaction():
        conn.execute(load_sql(INDEXES_FILE))


# The other stores, each a database of its own (connections `support_db` and `analytics_db`).
STORE_FILES = {"support_db": "support_desk_schema.sql", "analytics_db": "analytics_schema.sql"}


# An address-rule index of a store's schema file: built on include.addresses.comparable_sql's expression.
_ADDRESS_INDEX = re.compile(r"^create index (\w+) on (\w+) \(lower\(btrim\((\w+), E'[^']*'\)\)\);$", re.MULTILINE)


def create_store_schema(conn: psycopg.Connection, connection: str) -> list[str]:
    """Create the reference tables (and indexes) of another store, ``support_db`` or ``analytics_db``, in the
    database of ``conn``; returns the table names. Refuses, naming the table, when one exists already. An
    address-rule index is built on the expression the product sends that database (a ``LATIN1`` or ``SQL_ASCII``
    one cannot take the UTF-8 form: :class:`include.store_text.Trimmed`)."""
    from include.addresses import comparable_sql

    text = load_sql(STORE_FILES[connection])
    names = _CREATE_TABLE.findall(text)
    indexes = _ADDRESS_INDEX.findall(text)
    with conn.transaction():
        present = [n for n in names if conn.execute("select to_regclass(quote_ident(%s))", (n,)).fetchone()[0]]
        if present:
            raise SchemaExistsError(present)
        # Without its comments: a statement sent to a SQL_ASCII database is ASCII ("SPEC §3.1" is not).
        conn.execute("\n".join(line for line in _ADDRESS_INDEX.sub("", text).splitlines() if not line.startswith("--")))
        for index, table, column in indexes:
            conn.execute(sql.SQL("create index {} on {} ({})").format(
                sql.Identifier(index), sql.Identifier(table), comparable_sql(sql.Identifier(column))))
    return names


def all_stores_datamap_raw() -> dict:
    """The default data map (which names the other stores, docs/data-map-stores.md), as raw data for
    :func:`include.datamap.parse_datamap`."""
    import yaml

    from include.datamap import default_path

    return yaml.safe_load(default_path().read_text(encoding="utf-8"))
