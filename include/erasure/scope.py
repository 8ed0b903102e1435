"""What an erasure touches, from the data map only: every mapped table, how its rows are tied to a subject,
and the SQL that erases them and counts what is left.

A subject is an account, known to the erasure by its key (``user_id``) and by its address, compared by the
address rule (:func:`include.addresses.comparable_sql`: trimmed of every white-space character
Python's ``str.strip()`` trims, lower-cased), as everywhere else in the product. A row is the subject's when any link of
its table's entry matches (``subject`` and ``subject.also`` in the data map); every statement here binds
the same two parameters, ``%(user_id)s`` and ``%(email)s``, and an address of NULL matches nothing.

Every predicate is an equality on an indexed column or expression (``user_id``; the address rule's),
so the cost of erasing one subject does not grow with the tables: ``tests/test_erasure.py`` EXPLAINs each
statement to hold that.

Besides the mapped tables, :func:`discover_unmapped` finds tables the map forgot: a table in a mapped
schema with a column named like a mapped key link (``user_id``) or a foreign key to the account table.
The residual count covers them too, so that data the map does not know about stops an erasure instead
of being left behind silently.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from psycopg import sql

from include.addresses import WHITESPACE, comparable_sql
from include.datamap import OPS_CONNECTION, DataMap, DataMapError, PersonalDataEntry, SubjectLink
from include.objectstore import name_forms, same_file
from include.store_text import Trimmed, read_as_str, store_params
from include.subjects import address_hash

DELETE = "delete"
REDACT = "redact"


def address_key(column: sql.Composable) -> sql.Composable:
    """How an address is compared everywhere in the erasure: the address rule (:func:`include.addresses.comparable_sql`)."""
    return comparable_sql(column)


def subject_address(column: sql.Composable) -> sql.Composable:
    """A subject's own address as the erasure matches rows by it: :func:`address_key`, and NULL where that is empty.
    An address that is blank once trimmed names nobody; matched, it would tie the subject to every row of every
    store whose address is blank (other people's tickets, anonymous messages, reports about other accounts)."""
    return sql.SQL("nullif({}, '')").format(address_key(column))


def split_label(label: str) -> tuple[str, str]:
    """(connection, ``schema.table``) of a table's label (:attr:`Target.label`: ``schema.table`` on the operational
    database, ``connection:schema.table`` on another store)."""
    connection, sep, name = label.partition(":")
    return (connection, name) if sep else (OPS_CONNECTION, label)


@dataclass(frozen=True)
class Target:
    """One mapped table as the erasure sees it."""

    entry: PersonalDataEntry
    is_account: bool = False
    # The entry a join path (``subject: {column, through, references}``) goes through: a row is the subject's
    # when its column equals ``references`` of a row of ``parent`` that is the subject's.
    parent: PersonalDataEntry | None = None

    @property
    def label(self) -> str:
        """``schema.table`` on the operational database; ``connection:schema.table`` on another store."""
        return self.entry.table_label

    @property
    def action(self) -> str:
        return DELETE if self.is_account else self.entry.erase.action

    @property
    def by_email(self) -> bool:
        return any(link.match == "email" for link in self.entry.links)

    def link(self, link: SubjectLink, alias: str | None = None,
             user_id: sql.Composable = sql.SQL("%(user_id)s"),
             email: sql.Composable = sql.SQL("%(email)s")) -> sql.Composable:
        def ident(name: str) -> sql.Identifier:
            return sql.Identifier(alias, name) if alias else sql.Identifier(name)

        column = ident(link.column)
        if link.match == "through":
            if self.parent is None:
                raise DataMapError(f"data map entry {self.entry.label}: subject.through names no entry of its store")
            parent_alias = f"{alias or 'x'}_through"
            return sql.SQL("{col} in (select {p}.{ref} from {t} {p} where {w})").format(
                col=column, p=sql.Identifier(parent_alias), ref=sql.Identifier(link.references),
                t=self.parent.ident, w=Target(self.parent).where(parent_alias, user_id=user_id, email=email))
        if link.match == "email":
            match = sql.SQL("{} = {}").format(address_key(column), email)
            if link.only_without_key:
                keys = [sql.SQL("{} is null").format(ident(k.column)) for k in self.entry.links if k.match == "key"]
                match = sql.SQL("({})").format(sql.SQL(" and ").join([*keys, match]))
            return match
        return sql.SQL("{} = {}").format(column, user_id)

    def where(self, alias: str | None = None, **params: sql.Composable) -> sql.Composable:
        """The rows of the subject: any link matches."""
        parts = [self.link(link, alias, **params) for link in self.entry.links]
        return parts[0] if len(parts) == 1 else sql.SQL("({})").format(sql.SQL(" or ").join(parts))

    def erase(self, conn, params: Mapping, key: bytes) -> int:
        """Apply the entry's erase rule to the subject's rows on ``conn`` (its store's database, in the caller's
        transaction), whichever store it is on: delete them, or null the listed columns and keyed-hash the others
        (:func:`keyed`, row by row by ``ctid``, the rows locked first). The rows erased."""
        if self.action != REDACT:
            return conn.execute(self.delete(), params).rowcount
        if not self.entry.erase.hash:
            return conn.execute(self.redact_all(), params).rowcount
        rows = conn.execute(self.lock_for_redaction(), params).fetchall()
        if rows:
            with conn.cursor() as cur:
                cur.executemany(self.redact_row(), [(*(keyed(key, v) for v in hashed), ctid) for ctid, *hashed in rows])
        return len(rows)

    # -- statements ---------------------------------------------------------------------------------------

    def delete(self) -> sql.Composable:
        return sql.SQL("delete from {t} where {w}").format(t=self.entry.ident, w=self.where())

    def lock_for_redaction(self) -> sql.Composable:
        """The subject's rows with the columns to hash, locked until the transaction ends."""
        hashed = [sql.Identifier(c) for c in self.entry.erase.hash]
        return sql.SQL("select ctid::text{cols} from {t} where {w} for update").format(
            cols=sql.SQL("").join(sql.SQL(", ") + c for c in hashed), t=self.entry.ident, w=self.where())

    def redact_all(self) -> sql.Composable:
        """Null the listed columns of every row of the subject (a rule without hashed columns)."""
        return sql.SQL("update {t} set {sets} where {w}").format(
            t=self.entry.ident, w=self.where(),
            sets=sql.SQL(", ").join(sql.SQL("{} = null").format(sql.Identifier(c)) for c in self.entry.erase.null))

    def redact_row(self) -> sql.Composable:
        """Null and keyed-hash the listed columns of one locked row (by its ``ctid``)."""
        sets = [sql.SQL("{} = null").format(sql.Identifier(c)) for c in self.entry.erase.null]
        sets += [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in self.entry.erase.hash]
        return sql.SQL("update {t} set {sets} where ctid = %s::tid").format(
            t=self.entry.ident, sets=sql.SQL(", ").join(sets))

    def count(self) -> sql.Composable:
        return sql.SQL("(select count(*) from {t} where {w})").format(t=self.entry.ident, w=self.where())

    def count_email_links(self) -> sql.Composable:
        """Rows tied to the subject by address only (kept while another account shares the address)."""
        parts = [self.link(link) for link in self.entry.links if link.match == "email"]
        return sql.SQL("(select count(*) from {t} where {w})").format(
            t=self.entry.ident, w=sql.SQL(" or ").join(parts) if parts else sql.SQL("false"))

    def count_by_keys(self) -> sql.Composable:
        """Rows tied by key to any of the subjects ``%(ids)s`` (after the accounts are gone, their addresses
        are too: what a later check can still count)."""
        parts = [sql.SQL("{} = any(%(ids)s::bigint[])").format(sql.Identifier(link.column))
                 for link in self.entry.links if link.match == "key"]
        return sql.SQL("(select count(*) from {t} where {w})").format(
            t=self.entry.ident, w=sql.SQL(" or ").join(parts) if parts else sql.SQL("false"))

    def count_for_each(self) -> sql.Composable:
        """Rows per subject for many subjects at once: ``%(ids)s`` and ``%(emails)s`` are parallel arrays."""
        return sql.SQL("select s.user_id, (select count(*) from {t} x where {w}) from "
                       "unnest(%(ids)s::bigint[], %(emails)s::text[]) as s(user_id, email)").format(
            t=self.entry.ident, w=self.where("x", user_id=sql.SQL("s.user_id"), email=sql.SQL("s.email")))

    def rule(self) -> list:
        """The erase rule as plain data (part of a plan's hash)."""
        e = self.entry
        return [self.label, self.action,
                [[link.column, link.match, *(["only_without_key"] if link.only_without_key else [])] for link in e.links],
                sorted(e.erase.null), sorted(e.erase.hash)]


def keyed(key: bytes, value):
    """A value as a redacting rule's ``hash`` keeps it: the keyed hash of the address rule's form (None stays None)."""
    return None if value is None else address_hash(key, str(value))


@dataclass(frozen=True)
class Unmapped:
    """A table that looks like it holds subjects' rows (a key-link column or a foreign key to the
    accounts) but is not in the data map."""

    schema: str
    table: str
    column: str

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}"

    def count(self) -> sql.Composable:
        return sql.SQL("(select count(*) from {t} where {c} = %(user_id)s)").format(
            t=sql.Identifier(self.schema, self.table), c=sql.Identifier(self.column))

    def count_by_keys(self) -> sql.Composable:
        return sql.SQL("(select count(*) from {t} where {c} = any(%(ids)s::bigint[]))").format(
            t=sql.Identifier(self.schema, self.table), c=sql.Identifier(self.column))

    def count_for_each(self) -> sql.Composable:
        return sql.SQL("select s.user_id, (select count(*) from {t} x where x.{c} = s.user_id) "
                       "from unnest(%(ids)s::bigint[]) as s(user_id)").format(
            t=sql.Identifier(self.schema, self.table), c=sql.Identifier(self.column))


def _ordered(entries, store: tuple[PersonalDataEntry, ...]) -> tuple[Target, ...]:
    """Targets of one store's entries in erasure order: rows tied through another table first (while the rows
    they hang from still tie them to the subject), then the rest in the data map's order."""
    def parent(entry: PersonalDataEntry) -> PersonalDataEntry | None:
        if entry.subject.match != "through":
            return None
        return next((e for e in store if e.table == entry.subject.through and e.subject.match != "through"), None)

    through = [Target(e, parent=parent(e)) for e in entries if e.subject.match == "through"]
    return (*through, *(Target(e) for e in entries if e.subject.match != "through"))


def targets(dm: DataMap) -> tuple[Target, ...]:
    """Every mapped table of the operational database in erasure order: the data map's order (rows tied through
    another table first), the account table last. The other stores' tables: :func:`store_targets`."""
    account = dm.account_entry
    if account.erase.action != DELETE:
        raise DataMapError(f"data map entry {account.label}: the accounts table must be erased by 'delete'")
    others = _ordered([e for e in dm.personal_data if e is not account], dm.personal_data)
    return (*others, Target(account, is_account=True))


def store_targets(dm: DataMap) -> dict[str, tuple[Target, ...]]:
    """Every store's targets in erasure order, by connection: the operational database first (as
    :func:`targets`), then the other stores in the data map's order."""
    found = {OPS_CONNECTION: targets(dm)}
    for connection in dm.connections:
        if connection != OPS_CONNECTION:
            entries = dm.entries_on(connection)
            found[connection] = _ordered(entries, entries)
    return found


def file_locations(dm: DataMap, conn_of: Callable[[PersonalDataEntry], Any],
                   params: Mapping) -> Iterator[tuple[Target, str, str]]:
    """(target, column, location) of every file the subject's rows name, in every store: the data map's file
    columns in its order, each column's locations sorted. Rows are matched as the erasure erases them (a join
    path's rows through the rows they hang from); ``conn_of(entry)`` is the database of the entry's store and
    ``params`` the subject's ``user_id`` and ``email``. The erasure deletes these files; the export packs them."""
    by_entry = {id(t.entry): t for found in store_targets(dm).values() for t in found}
    for entry, column in dm.file_columns:
        target = by_entry.get(id(entry)) or Target(entry)
        query = sql.SQL("select distinct x.{c} from {t} x where {w} and x.{c} is not null order by 1").format(
            c=sql.Identifier(column), t=entry.ident, w=target.where("x"))
        conn = conn_of(entry)
        read_as_str(conn)  # a SQL_ASCII store's locations come as bytes otherwise
        for (uri,) in conn.execute(query, store_params(conn, params)):
            if not names_nothing(uri):
                yield target, column, uri


def names_nothing(uri: str) -> bool:
    """A location that names no file at all: empty, or ``gs://`` with no bucket or no object name (``gs://``,
    ``gs://bucket``, ``gs://bucket/``). There is nothing to delete or pack, so it never holds an erasure back
    (it did: kept ``not_allowed``, the subject ``incomplete`` with a bucket's reason). A location that names
    something unusable (another scheme, an invalid bucket, a name over 1,024 bytes) is still a person's to judge."""
    text = same_file(uri)
    if not text.startswith("gs://"):
        return not text
    bucket, _, key = text[5:].partition("/")
    return not bucket or not key


def shared_locations(dm: DataMap, conn_of: Callable[[PersonalDataEntry], Any], params: Mapping,
                     uris) -> frozenset[str]:
    """The locations among ``uris`` that a row outside the subject names too (another account's upload, someone
    else's ticket), in any store: such a file is not the subject's alone, so the erasure leaves it (another
    person's row still needs it) and the export leaves it out (it may be another person's data). A row naming the
    location in another Unicode normalisation form names the same file (:func:`include.objectstore.name_forms`:
    the erasure and the export look a name that is a 404 up in the other form)."""
    wanted = {uri: name_forms(same_file(uri)) for uri in uris}
    if not wanted:
        return frozenset()
    by_entry = {id(t.entry): t for found in store_targets(dm).values() for t in found}
    named: set[str] = set()
    for entry, column in dm.file_columns:
        target = by_entry.get(id(entry)) or Target(entry)
        query = sql.SQL("select distinct {same} from {t} x where {same} = any(%(files)s) and not coalesce(({w}), false)"
                        ).format(same=same_file_sql(sql.SQL("x.{}").format(sql.Identifier(column))), t=entry.ident,
                                 w=target.where("x"))
        conn = conn_of(entry)
        read_as_str(conn)
        files = sorted({form for forms in wanted.values() for form in forms})
        named.update(f for (f,) in conn.execute(query, store_params(conn, {**params, "files": files})))
    return frozenset(uri for uri, forms in wanted.items() if named.intersection(forms))


def same_file_sql(column: sql.Composable) -> sql.Composable:
    """:func:`same_file` in PostgreSQL (every white-space character Python strips, as the address rule trims; a
    database whose encoding is not UTF-8: as :class:`include.store_text.Trimmed` renders it for that database)."""
    trimmed = Trimmed(column, WHITESPACE)
    return sql.SQL("case when lower(left({t}, 5)) = 'gs://' then 'gs://' || substr({t}, 6) else {t} end").format(
        t=trimmed)


_KEY_LINK_COLUMNS = """
select c.table_schema, c.table_name, c.column_name
from information_schema.columns c
join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
where t.table_type = 'BASE TABLE' and c.table_schema = any(%(schemas)s) and c.column_name = any(%(columns)s)
  and c.data_type in ('smallint', 'integer', 'bigint', 'numeric')
union
select n.nspname, cl.relname, a.attname
from pg_constraint co
join pg_class cl on cl.oid = co.conrelid
join pg_namespace n on n.oid = cl.relnamespace
join pg_attribute a on a.attrelid = co.conrelid and a.attnum = co.conkey[1]
where co.contype = 'f' and cardinality(co.conkey) = 1 and co.confrelid = to_regclass(%(accounts)s)
order by 1, 2, 3
"""


def discover_unmapped(ops, dm: DataMap) -> tuple[Unmapped, ...]:
    """Tables the data map forgot: a column named like a mapped key link (e.g. ``user_id``) in a schema the
    map uses, or a single-column foreign key to the account table, in a table with no personal_data entry."""
    accounts = dm.record("accounts")
    # A table mapped on any connection is not forgotten (a test or a small deployment may keep two stores in one
    # database).
    mapped = {(e.schema, e.table) for e in dm.all_entries}
    schemas = sorted({e.schema for e in dm.personal_data} | {accounts.schema})
    columns = sorted({link.column for e in dm.personal_data if e is not dm.account_entry
                      for link in e.links if link.match == "key"})
    rows = ops.execute(_KEY_LINK_COLUMNS, {"schemas": schemas, "columns": columns,
                                           "accounts": f'"{accounts.schema}"."{accounts.table}"'}).fetchall()
    found: dict[tuple[str, str], str] = {}
    for schema, table, column in rows:
        if (schema, table) not in mapped:
            found.setdefault((schema, table), column)
    return tuple(Unmapped(s, t, c) for (s, t), c in sorted(found.items()))


def residual_query(scope: tuple[Target, ...], unmapped: tuple[Unmapped, ...]) -> sql.Composable:
    """One statement counting the subject's rows left in every mapped (and every forgotten) table."""
    counts = [t.count() for t in scope] + [u.count() for u in unmapped]
    return sql.SQL("select {}").format(sql.SQL(", ").join(counts))


def residual_by_keys_query(scope: tuple[Target, ...], unmapped: tuple[Unmapped, ...]) -> sql.Composable:
    """One statement counting rows tied by key to any of the subjects ``%(ids)s`` in every table."""
    counts = [t.count_by_keys() for t in scope] + [u.count_by_keys() for u in unmapped]
    return sql.SQL("select {}").format(sql.SQL(", ").join(counts))
