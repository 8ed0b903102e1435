"""The data map: load ``include/datamap.yaml``, check its shape, and check it against the live database.

Every workflow reaches operational tables only through a :class:`DataMap`, so that a company whose
schema differs from the reference one changes this file, not the DAGs.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml
from psycopg import sql

from include.errors import NeedsOperator
from include.store_text import read_as_str

CATEGORIES = frozenset({"contact", "account", "content", "usage", "network", "social", "support"})

# The columns each workflow relies on, by the names the workflows use. A data map may point them at
# other physical columns (records.<role>.columns), but it cannot leave one out.
ROLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "accounts": ("id", "email", "full_name", "company_name", "phone", "address", "country", "region",
                 "birth_date", "declared_age", "created_at", "deleted_at", "do_not_sell",
                 "do_not_sell_at", "processing_restricted"),
    "privacy_requests": ("id", "user_id", "requester_email", "regime", "request_type", "received_at",
                         "acknowledged_at", "identity_requested_at", "identity_verified_at",
                         "extended_at", "extension_reason", "status", "completed_at", "assignee_email"),
    "vendors": ("id", "name", "kind", "dpa_signed_on", "allowed_categories", "contact_email", "active"),
    "data_shares": ("id", "vendor_id", "user_id", "category", "purpose", "legal_basis", "record_count",
                    "shared_at"),
    "child_reports": ("id", "user_id", "reported_email", "source", "note", "reported_at", "resolved_at"),
    "legal_holds": ("id", "user_id", "reason", "placed_at", "released_at"),
    "policy_versions": ("id", "version", "published_at", "effective_at", "summary", "url", "body_sha256"),
    "email_suppressions": ("email", "reason", "created_at"),
}

# The date and timestamp columns of each role: read through include.operational_rows, which turns values Python
# cannot hold (infinity, BC dates, years after 9999) into NULL plus a problem sentence.
TEMPORAL_COLUMNS: Mapping[str, frozenset[str]] = {
    "accounts": frozenset({"birth_date", "created_at", "deleted_at", "do_not_sell_at"}),
    "privacy_requests": frozenset({"received_at", "acknowledged_at", "identity_requested_at",
                                   "identity_verified_at", "extended_at", "completed_at"}),
    "vendors": frozenset({"dpa_signed_on"}),
    "data_shares": frozenset({"shared_at"}),
    "child_reports": frozenset({"reported_at", "resolved_at"}),
    "legal_holds": frozenset({"placed_at", "released_at"}),
    "policy_versions": frozenset({"published_at", "effective_at"}),
    "email_suppressions": frozenset({"created_at"}),
}

TEXT_TYPES = frozenset({"text", "character varying", "character"})

# The connection an entry's table is reached through when it names none: the operational database.
OPS_CONNECTION = "ops_db"

# The shape of what an entry may say about its store: the Airflow connection of the database holding
# the table, and the columns holding file locations (``gs://<bucket>/...``) with the buckets those may name. Checked
# with jsonschema; the first violation becomes one sentence naming the entry (:func:`_store_problem`).
_CONNECTION_ID = r"^[A-Za-z_][A-Za-z0-9_\-]{0,249}$"
_BUCKET = r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$"
STORE_SCHEMA = {
    "type": "object",
    "properties": {
        "connection": {"type": "string", "pattern": _CONNECTION_ID},
        "files": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "minLength": 1}},
    },
}
BUCKETS_SCHEMA = {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": _BUCKET}}


class DataMapError(NeedsOperator, ValueError):
    """The data map is malformed or does not match the database; the message names the entry.

    ``problems`` lists every problem found; the message itself stays one sentence, however many there are.
    """

    def __init__(self, summary: str, problems: list[str] | None = None):
        super().__init__(summary)
        self.summary = summary
        self.problems = problems or [summary]


def _split_table(name: str, where: str) -> tuple[str, str]:
    if not isinstance(name, str) or not name:
        raise DataMapError(f"data map entry {where}: 'table' must be a table name")
    schema, dot, table = name.rpartition(".")
    if not table or (dot and not schema):
        raise DataMapError(f"data map entry {where}: 'table' must be a table name (table or schema.table), not "
                           f"{name[:80]!r}")
    return (schema or "public"), table


@dataclass(frozen=True)
class RecordSource:
    """A table that a workflow reads, with its logical-to-physical column names."""

    role: str
    schema: str
    table: str
    columns: Mapping[str, str]

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    def col(self, logical: str) -> sql.Identifier:
        return sql.Identifier(self.columns.get(logical, logical))

    def physical(self, logical: str) -> str:
        return self.columns.get(logical, logical)

    def select_list(self, logicals: tuple[str, ...] | list[str]) -> sql.Composable:
        """``physical AS logical, ...`` so that result rows always carry the workflow's names."""
        return sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(self.col(name), sql.Identifier(name)) for name in logicals
        )


@dataclass(frozen=True)
class SubjectLink:
    column: str
    match: str = "key"  # 'key': the account key; 'email': the account's email (by the address rule)
    # An address link that ties only rows none of the entry's key links fills (``only_without_key: true``): a
    # support message with no user_id sent from the subject's address is the subject's; one that names another
    # account by its key is that account's, whatever address it was sent from.
    only_without_key: bool = False
    # A join path (``match: through``): the row is the subject's when ``column`` equals ``references`` of a row of
    # table ``through`` (an entry of the same store) that is the subject's, e.g. a ticket's events through the ticket.
    through: str | None = None
    references: str | None = None


@dataclass(frozen=True)
class EraseRule:
    action: str  # 'delete' or 'redact'
    null: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()


@dataclass(frozen=True)
class PersonalDataEntry:
    schema: str
    table: str
    subject: SubjectLink
    categories: Mapping[str, tuple[str, ...]]
    erase: EraseRule
    # Further columns that tie a row to the same subject (``subject.also``), e.g. a report naming an
    # account by its email where no account id was given; a row matching any link is the subject's.
    also: tuple[SubjectLink, ...] = ()
    # The Airflow connection of the database holding the table (default: the operational database).
    connection: str = OPS_CONNECTION
    # Columns holding file locations (``gs://<bucket>/...``): the files they name are the subject's too.
    files: tuple[str, ...] = ()

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    @property
    def links(self) -> tuple[SubjectLink, ...]:
        """Every column tying a row to a subject: ``subject`` first, then ``subject.also``."""
        return (self.subject, *self.also)

    @property
    def label(self) -> str:
        name = self.table if self.schema == "public" else f"{self.schema}.{self.table}"
        store = "" if self.connection == OPS_CONNECTION else f" (connection '{self.connection}')"
        return f"personal_data '{name}'{store}"

    @property
    def table_label(self) -> str:
        """``schema.table`` on the operational database, ``connection:schema.table`` on another store: the table
        as the erasure (and so a plan's hash) and the export package name it."""
        name = f"{self.schema}.{self.table}"
        return name if self.connection == OPS_CONNECTION else f"{self.connection}:{name}"


@dataclass(frozen=True)
class DataMap:
    """``personal_data`` holds the entries of the operational database (``ops_db``), the store every workflow
    reads and the erasure engine erases in one transaction per subject; ``other_stores`` the entries on other
    connections (a support desk, analytics), checked before each run like the rest. ``buckets``: the
    object-storage buckets the file columns (``files``) may name."""

    records: Mapping[str, RecordSource]
    personal_data: tuple[PersonalDataEntry, ...]
    source: str = field(default="", compare=False)
    other_stores: tuple[PersonalDataEntry, ...] = ()
    buckets: tuple[str, ...] = ()

    @property
    def all_entries(self) -> tuple[PersonalDataEntry, ...]:
        """Every entry, of every store, in the map's order within each store (the operational one first)."""
        return (*self.personal_data, *self.other_stores)

    @property
    def connections(self) -> tuple[str, ...]:
        """Every connection the map names: the operational database first, then the others in the map's order."""
        return tuple(dict.fromkeys([OPS_CONNECTION, *(e.connection for e in self.other_stores)]))

    def entries_on(self, connection: str) -> tuple[PersonalDataEntry, ...]:
        return tuple(e for e in self.all_entries if e.connection == connection)

    @property
    def file_columns(self) -> tuple[tuple[PersonalDataEntry, str], ...]:
        """``(entry, column)`` of every column declared to hold file locations."""
        return tuple((e, c) for e in self.all_entries for c in e.files)

    def record(self, role: str) -> RecordSource:
        try:
            return self.records[role]
        except KeyError:
            raise DataMapError(f"data map has no records.{role} entry") from None

    @property
    def account_entry(self) -> PersonalDataEntry:
        accounts = self.record("accounts")
        for entry in self.personal_data:
            if (entry.schema, entry.table) == (accounts.schema, accounts.table):
                return entry
        raise DataMapError("data map: the accounts table has no personal_data entry")


def default_path() -> Path:
    return Path(str(resources.files("include") / "datamap.yaml"))


MAX_DATAMAP_BYTES = 16 * 2**20  # a map of thousands of entries is well under a MiB


def load_datamap(path: str | Path | None = None) -> DataMap:
    """Read and shape-check a data map (no database needed)."""
    path = Path(path) if path else default_path()
    try:
        with path.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # /dev/zero, a pipe: no end to read to
                raise DataMapError(f"data map {path} is not a regular file")
            data = handle.read(MAX_DATAMAP_BYTES + 1)
        if len(data) > MAX_DATAMAP_BYTES:
            raise DataMapError(f"data map {path} is larger than {MAX_DATAMAP_BYTES // 2**20} MiB: not a data map")
        raw = yaml.load(data.decode("utf-8"), Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise DataMapError(f"data map file not found: {path}") from None
    except UnicodeDecodeError:
        raise DataMapError(f"data map {path} is not a text file (it is not UTF-8)") from None
    except OSError as exc:
        raise DataMapError(f"data map {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    except yaml.YAMLError as exc:
        raise DataMapError(f"data map {path} is not valid YAML: {_yaml_problem(exc)}") from None
    return parse_datamap(raw, source=str(path))


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping: plain YAML keeps the last one silently, so
    a second ``categories:`` of an entry would drop the first one's columns from the map without a word."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is written twice in one mapping (first at line {first.line + 1}): "
                    "YAML would keep only the last", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's complaint in one line, with the line and column where it stopped (its own text spans five
    lines and quotes the file)."""
    problem = " ".join(str(getattr(exc, "problem", None) or getattr(exc, "context", None) or "").split())
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown place"
    return f"{problem or 'the parser stopped'} at {where}"


def parse_datamap(raw: Any, source: str = "<memory>") -> DataMap:
    if not isinstance(raw, dict):
        raise DataMapError("data map must be a mapping with 'records' and 'personal_data'")
    if raw.get("version") != 1:
        raise DataMapError(f"data map version must be 1, got {raw.get('version')!r}")
    unknown = set(raw) - {"version", "records", "personal_data", "buckets"}
    if unknown:
        raise DataMapError(f"data map has unknown top-level key(s): {', '.join(sorted(unknown))}")
    buckets = raw.get("buckets", [])
    problem = _store_problem(BUCKETS_SCHEMA, buckets)
    if problem:
        raise DataMapError(f"data map 'buckets' must list bucket names (lower-case letters, digits, '.', '_', '-'): "
                           f"{problem}")
    records = _parse_records(raw.get("records"))
    entries = _parse_personal_data(raw.get("personal_data"))
    ops_entries = tuple(e for e in entries if e.connection == OPS_CONNECTION)
    others = tuple(e for e in entries if e.connection != OPS_CONNECTION)
    dm = DataMap(records=records, personal_data=ops_entries, source=source, other_stores=others,
                 buckets=tuple(buckets))
    _refuse_percent(dm)
    account = dm.account_entry  # raises when the account table is not mapped
    key = dm.record("accounts").physical("id")
    if (account.erase.action == "delete" and not account.also and account.subject.match == "key"
            and account.subject.column != key):
        raise DataMapError(f"data map: the accounts table's id column is '{key}' in records.accounts but "
                           f"'{account.subject.column}' in the subject of its entry {account.label}; name the "
                           "account's id column the same in both")
    if account.erase.action != "delete" or account.also or account.subject != SubjectLink(key, "key"):
        raise DataMapError(f"data map entry {account.label}: the accounts table is erased by deleting its row, so its "
                           f"entry must be 'subject: {{column: {key}}}' with 'erase: delete'")
    return dm


def _refuse_percent(dm: DataMap) -> None:
    """psycopg reads a '%' in a composed name as a placeholder, so a name holding one fails every query that has a
    parameter: refused here, in one sentence, rather than as a driver's traceback in the middle of a run."""
    named = [(f"records.{r.role}", (r.schema, r.table, *r.columns.values())) for r in dm.records.values()]
    named += [(e.label, (e.schema, e.table, *(link.column for link in e.links),
                         *(n for link in e.links for n in (link.through, link.references) if n),
                         *(c for cols in e.categories.values() for c in cols), *e.erase.null, *e.erase.hash,
                         *e.files)) for e in dm.all_entries]
    for where, names in named:
        for name in names:
            if "%" in name:
                raise DataMapError(f"data map entry {where}: the name {name!r} holds a '%', which the database "
                                   "driver reads as a placeholder; rename it, or map a view whose names have none")


def _parse_records(raw: Any) -> dict[str, RecordSource]:
    if not isinstance(raw, dict):
        raise DataMapError("data map 'records' must be a mapping of role -> table")
    missing = sorted(set(ROLE_COLUMNS) - set(raw))
    if missing:
        raise DataMapError(f"data map 'records' lacks role(s): {', '.join(missing)}")
    records = {}
    for role, spec in raw.items():
        where = f"records.{role}"
        if role not in ROLE_COLUMNS:
            raise DataMapError(f"data map entry {where}: unknown role (known: {', '.join(ROLE_COLUMNS)})")
        if not isinstance(spec, dict):
            raise DataMapError(f"data map entry {where}: must be a mapping with 'table'")
        schema, table = _split_table(spec.get("table"), where)
        columns = spec.get("columns") or {}
        if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                    for k, v in columns.items()):
            raise DataMapError(f"data map entry {where}: 'columns' must map the workflow's column names to the "
                               "table's (name: physical_name)")
        columns = dict(columns)
        if "key" in spec:
            if not isinstance(spec["key"], str) or not spec["key"]:
                raise DataMapError(f"data map entry {where}: 'key' must be a column name")
            columns.setdefault("id", spec["key"])
        bad = sorted(set(columns) - set(ROLE_COLUMNS[role]))
        if bad:
            raise DataMapError(f"data map entry {where}: unknown column name(s) {', '.join(bad)}")
        records[role] = RecordSource(role=role, schema=schema, table=table, columns=columns)
    return records


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DataMapError(f"data map entry {where}: must be a list of column names")
    return tuple(value)


def _parse_personal_data(raw: Any) -> tuple[PersonalDataEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise DataMapError("data map 'personal_data' must be a non-empty list")
    entries, seen = [], set()
    for index, spec in enumerate(raw):
        where = f"personal_data[{index}]"
        if not isinstance(spec, dict):
            raise DataMapError(f"data map entry {where}: must be a mapping")
        schema, table = _split_table(spec.get("table"), where)
        where = f"personal_data '{table}'"
        problem = _store_problem(STORE_SCHEMA, {k: spec[k] for k in ("connection", "files") if k in spec})
        if problem:
            raise DataMapError(f"data map entry {where}: {problem}")
        connection = spec.get("connection", OPS_CONNECTION)
        files = tuple(spec.get("files", ()))
        if connection != OPS_CONNECTION:
            where = f"personal_data '{table}' (connection '{connection}')"
        unknown_keys = sorted(set(spec) - {"table", "subject", "categories", "erase", "connection", "files"})
        if unknown_keys:
            raise DataMapError(f"data map entry {where}: unknown key(s) {', '.join(unknown_keys)}")
        if (connection, schema, table) in seen:
            raise DataMapError(f"data map entry {where}: the table is listed twice")
        seen.add((connection, schema, table))

        subject = spec.get("subject")
        if isinstance(subject, dict) and "through" in subject and "match" not in subject:
            subject = {**subject, "match": "through"}
        if not isinstance(subject, dict) or not isinstance(subject.get("column"), str):
            raise DataMapError(f"data map entry {where}: 'subject' must give the 'column' tying a row to an account")
        link = _parse_link(subject, where, "subject")
        also_raw = subject.get("also", [])
        if not isinstance(also_raw, list):
            raise DataMapError(f"data map entry {where}: subject.also must be a list of {{column, match}} links")
        also = tuple(_parse_link(item, where, f"subject.also[{i}]") for i, item in enumerate(also_raw))
        columns = [link.column, *(a.column for a in also)]
        if len(set(columns)) != len(columns):
            raise DataMapError(f"data map entry {where}: a subject column is listed twice")
        if any(a.only_without_key for a in also) and not any(x.match == "key" for x in (link, *also)):
            raise DataMapError(f"data map entry {where}: only_without_key needs a key link (match: key) in the "
                               "same entry")

        categories = spec.get("categories")
        if not isinstance(categories, dict) or not categories:
            raise DataMapError(f"data map entry {where}: 'categories' must map categories to columns")
        for category in categories:
            if category not in CATEGORIES:
                raise DataMapError(
                    f"data map entry {where}: unknown category {category!r} (known: {', '.join(sorted(CATEGORIES))})")
        parsed_categories = {c: _names(cols, f"{where} categories.{c}") for c, cols in categories.items()}

        erase = _parse_erase(spec.get("erase"), where, (link, *also))
        listed = {c for cols in parsed_categories.values() for c in cols}
        for column in files:
            if column not in listed:
                raise DataMapError(f"data map entry {where}: file column {column!r} must also be listed under a "
                                   "category (it is the subject's data)")
        entries.append(PersonalDataEntry(schema, table, link, parsed_categories, erase, also, connection, files))
    for entry in entries:
        if entry.subject.match != "through":
            continue
        parent = _parent(entries, entry)
        if parent is None:
            raise DataMapError(f"data map entry {entry.label}: subject.through names table {entry.subject.through!r}, "
                               f"which has no entry on connection '{entry.connection}'")
        if parent.subject.match == "through" or parent is entry:
            raise DataMapError(f"data map entry {entry.label}: subject.through must name a table tied to the account "
                               "directly (one join, no chain)")
    return tuple(entries)


def _parent(entries, entry: PersonalDataEntry) -> PersonalDataEntry | None:
    schema, table = _split_table(entry.subject.through, entry.label)
    return next((e for e in entries if (e.connection, e.schema, e.table) == (entry.connection, schema, table)), None)


_WHAT = {"connection": "'connection' must be an Airflow connection id (a letter or '_', then letters, digits, "
                       "'_' or '-')",
         "files": "'files' must be a non-empty list of distinct column names"}


def _store_problem(schema: Mapping, value: Any) -> str | None:
    """The first way ``value`` breaks ``schema``, in words (no value repeated); None when it does not."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    path = [p for p in error.absolute_path if isinstance(p, str)]
    if path and path[0] in _WHAT:
        return _WHAT[path[0]]
    if error.validator == "uniqueItems":
        return "a name is listed twice"
    if error.validator == "type":
        return f"expected {error.validator_value}"
    return f"an item does not match {error.validator}"


def _parse_link(raw: Any, where: str, name: str) -> SubjectLink:
    """One ``{column, match}`` link; ``name`` is ``subject`` or ``subject.also[i]`` in messages."""
    if not isinstance(raw, dict) or not isinstance(raw.get("column"), str) or not raw["column"]:
        raise DataMapError(f"data map entry {where}: {name} must give the 'column' tying a row to an account")
    extra = sorted(set(raw) - {"column", "match", "only_without_key"}
                   - ({"also", "through", "references"} if name == "subject" else set()))
    if extra:
        raise DataMapError(f"data map entry {where}: unknown {name} key(s) {', '.join(extra)}")
    match = raw.get("match", "key")
    if match == "through" and name == "subject":
        through, references = raw.get("through"), raw.get("references", "id")
        if not isinstance(through, str) or not through or not isinstance(references, str) or not references:
            raise DataMapError(f"data map entry {where}: subject.through must name the table the row is tied through "
                               "(and subject.references its column, default 'id')")
        if raw.get("also"):
            raise DataMapError(f"data map entry {where}: a row tied through another table has no other subject links")
        return SubjectLink(column=raw["column"], match="through", through=through, references=references)
    if match not in ("key", "email"):
        raise DataMapError(f"data map entry {where}: {name}.match must be 'key' or 'email', not {match!r}")
    only = raw.get("only_without_key", False)
    if not isinstance(only, bool):
        raise DataMapError(f"data map entry {where}: {name}.only_without_key must be true or false")
    if only and (match != "email" or name == "subject"):
        raise DataMapError(f"data map entry {where}: {name}.only_without_key applies only to an address link in "
                           "subject.also (match: email) beside a key link")
    return SubjectLink(column=raw["column"], match=match, only_without_key=only)


def _parse_erase(raw: Any, where: str, links: tuple[SubjectLink, ...]) -> EraseRule:
    if raw == "delete":
        return EraseRule("delete")
    if isinstance(raw, dict) and raw and set(raw) <= {"set_null", "hash"}:
        rule = EraseRule("redact", _names(raw.get("set_null", []), f"{where} erase.set_null"),
                         _names(raw.get("hash", []), f"{where} erase.hash"))
        for link in links:
            if link.column not in rule.null + rule.hash:
                raise DataMapError(
                    f"data map entry {where}: a redacting erase rule must null or hash the subject column "
                    f"{link.column!r}, or the rows stay linked to the person")
        overlap = sorted(set(rule.null) & set(rule.hash))
        if overlap:
            raise DataMapError(f"data map entry {where}: column(s) {', '.join(overlap)} are both nulled and hashed")
        return rule
    raise DataMapError(f"data map entry {where}: 'erase' must be 'delete' or a mapping with 'set_null'/'hash' lists")


_COLUMNS_QUERY = """
select table_schema, table_name, column_name, data_type, is_nullable = 'YES'
from information_schema.columns
where (table_schema, table_name) in (select * from unnest(%s::text[], %s::text[]))
"""


def validate_against_database(dm: DataMap, conn, connection: str = OPS_CONNECTION) -> None:
    """Check every table and column the map names on ``connection`` against ``conn``, that connection's live
    database (the operational one, with the records, by default; :func:`validate_stores` checks them all).

    All problems are collected and raised together, each naming its data map entry. A store whose database is in
    ``SQL_ASCII`` has its catalogue's names read as text (:func:`include.store_text.read_as_str`; the driver hands
    them over as bytes, and no table would be found).
    """
    read_as_str(conn)
    entries = dm.entries_on(connection)
    records = tuple(dm.records.values()) if connection == OPS_CONNECTION else ()
    tables = {(r.schema, r.table) for r in records} | {(e.schema, e.table) for e in entries}
    if not tables:
        return
    schemas, names = zip(*sorted(tables))
    found: dict[tuple[str, str], dict[str, tuple[str, bool]]] = {}
    for schema, table, column, data_type, nullable in conn.execute(_COLUMNS_QUERY, (list(schemas), list(names))):
        found.setdefault((schema, table), {})[column] = (data_type, nullable)

    problems: list[str] = []
    missing_tables = len(tables - set(found))

    def table_columns(schema: str, table: str, where: str) -> dict[str, tuple[str, bool]] | None:
        cols = found.get((schema, table))
        if cols is None:
            problems.append(f"data map entry {where}: table {schema}.{table} does not exist")
        return cols

    for record in records:
        where = f"records.{record.role}"
        cols = table_columns(record.schema, record.table, where)
        if cols is None:
            continue
        for logical in ROLE_COLUMNS[record.role]:
            physical = record.physical(logical)
            if physical not in cols:
                problems.append(f"data map entry {where}: column {physical!r} does not exist in table "
                                f"{record.schema}.{record.table}")

    for entry in entries:
        cols = table_columns(entry.schema, entry.table, entry.label)
        if cols is None:
            continue
        named = {*(link.column for link in entry.links), *entry.erase.null, *entry.erase.hash}
        for category_columns in entry.categories.values():
            named.update(category_columns)
        for column in sorted(named - set(cols)):
            problems.append(f"data map entry {entry.label}: column {column!r} does not exist in table "
                            f"{entry.schema}.{entry.table}")
        for column in entry.erase.null:
            if column in cols and not cols[column][1]:
                problems.append(f"data map entry {entry.label}: erase.set_null column {column!r} is NOT NULL in the database")
        for column in entry.erase.hash:
            if column in cols and cols[column][0] not in TEXT_TYPES:
                problems.append(f"data map entry {entry.label}: erase.hash column {column!r} is not a text column")
        for link in entry.links:
            if link.match == "email" and link.column in cols and cols[link.column][0] not in TEXT_TYPES:
                problems.append(f"data map entry {entry.label}: subject column {link.column!r} must be text to match emails")
        if entry.subject.match == "through":
            parent = _parent(dm.all_entries, entry)
            parent_cols = found.get((parent.schema, parent.table), {}) if parent else {}
            if parent_cols and entry.subject.references not in parent_cols:
                problems.append(f"data map entry {entry.label}: subject.references column {entry.subject.references!r} "
                                f"does not exist in table {parent.schema}.{parent.table}")
        for column in entry.files:
            if column in cols and cols[column][0] not in TEXT_TYPES:
                problems.append(f"data map entry {entry.label}: file column {column!r} is not a text column")

    if problems:
        raise DataMapError(_summary(problems, missing_tables, len(tables), connection), problems)


def validate_stores(dm: DataMap, open_connection) -> None:
    """Check the map against every connection it names, the operational database first.

    ``open_connection(conn_id)`` is a context manager giving that connection's database; it raises the caller's own
    error (a missing connection, a database that does not answer) in one sentence naming the connection. The
    problems of every reachable store are gathered; the summary names the first one's connection.
    """
    failures: list[DataMapError] = []
    for connection in dm.connections:
        with open_connection(connection) as conn:
            try:
                validate_against_database(dm, conn, connection)
            except DataMapError as exc:
                failures.append(exc)
    if failures:
        summary = failures[0].summary
        if len(failures) > 1:
            summary += f" (and problems on {len(failures) - 1} more connection(s))"
        raise DataMapError(summary, [p for exc in failures for p in exc.problems])


def _summary(problems: list[str], missing_tables: int, mapped_tables: int, connection: str = OPS_CONNECTION) -> str:
    if missing_tables == mapped_tables:
        if connection != OPS_CONNECTION:
            return (f"none of the {mapped_tables} tables the data map places on connection '{connection}' exists in "
                    f"its database: does '{connection}' point at the right database?")
        return (f"none of the {mapped_tables} mapped tables exists in this database: is this the operational "
                "database?")
    if len(problems) == 1:
        return problems[0]
    return f"{problems[0]} (and {len(problems) - 1} more problem(s))"
