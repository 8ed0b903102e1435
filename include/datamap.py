"""The data map: load ``include/datamap.yaml``, check its shape, and check it against the live database.

Every workflow reaches operational tables only through a :class:`DataMap`, so that a company whose
schema differs from the reference one changes this file, not the DAGs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml
from psycopg import sql

from include.errors import NeedsOperator

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

# The date and timestamp columns of each role: read through include.reading, which turns values Python
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
    schema, _, table = name.rpartition(".")
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
    match: str = "key"  # 'key': the account key; 'email': the account's email (by the address rule, SPEC §3.1)
    # An address link that ties only rows none of the entry's key links fills (``only_without_key: true``): a
    # support message with no user_id sent from the subject's address is the subject's; one that names another
    # account by its key is that account's, whatever address it was sent from.
    only_without_key: bool = False


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

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    @property
    def links(self) -> tuple[SubjectLink, ...]:
        """Every column tying a row to a subject: ``subject`` first, then ``subject.also``."""
        return (self.subject, *self.also)

    @property
    def label(self) -> str:
        return f"personal_data '{self.table}'" if self.schema == "public" else f"personal_data '{self.schema}.{self.table}'"


@dataclass(frozen=True)
class DataMap:
    records: Mapping[str, RecordSource]
    personal_data: tuple[PersonalDataEntry, ...]
    source: str = field(default="", compare=False)

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


def load_datamap(path: str | Path | None = None) -> DataMap:
    """Read and shape-check a data map (no database needed)."""
    path = Path(path) if path else default_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataMapError(f"data map file not found: {path}") from None
    except UnicodeDecodeError:
        raise DataMapError(f"data map {path} is not a text file (it is not UTF-8)") from None
    except OSError as exc:
        raise DataMapError(f"data map {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    except yaml.YAMLError as exc:
        raise DataMapError(f"data map {path} is not valid YAML: {_yaml_problem(exc)}") from None
    return parse_datamap(raw, source=str(path))


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
    unknown = set(raw) - {"version", "records", "personal_data"}
    if unknown:
        raise DataMapError(f"data map has unknown top-level key(s): {', '.join(sorted(unknown))}")
    records = _parse_records(raw.get("records"))
    entries = _parse_personal_data(raw.get("personal_data"))
    dm = DataMap(records=records, personal_data=entries, source=source)
    account = dm.account_entry  # raises when the account table is not mapped
    key = dm.record("accounts").physical("id")
    if account.erase.action != "delete" or account.also or account.subject != SubjectLink(key, "key"):
        raise DataMapError(f"data map entry {account.label}: the accounts table is erased by deleting its row, so its "
                           f"entry must be 'subject: {{column: {key}}}' with 'erase: delete'")
    return dm


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
        columns = dict(spec.get("columns") or {})
        if "key" in spec:
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
        if (schema, table) in seen:
            raise DataMapError(f"data map entry {where}: the table is listed twice")
        seen.add((schema, table))

        subject = spec.get("subject")
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
        entries.append(PersonalDataEntry(schema, table, link, parsed_categories, erase, also))
    return tuple(entries)


def _parse_link(raw: Any, where: str, name: str) -> SubjectLink:
    """One ``{column, match}`` link; ``name`` is ``subject`` or ``subject.also[i]`` in messages."""
    if not isinstance(raw, dict) or not isinstance(raw.get("column"), str) or not raw["column"]:
        raise DataMapError(f"data map entry {where}: {name} must give the 'column' tying a row to an account")
    extra = sorted(set(raw) - {"column", "match", "only_without_key"} - ({"also"} if name == "subject" else set()))
    if extra:
        raise DataMapError(f"data map entry {where}: unknown {name} key(s) {', '.join(extra)}")
    match = raw.get("match", "key")
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


def validate_against_database(dm: DataMap, conn) -> None:
    """Check every table and column the map names against the live database.

    All problems are collected and raised together, each naming its data map entry.
    """
    tables = {(r.schema, r.table) for r in dm.records.values()} | {(e.schema, e.table) for e in dm.personal_data}
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

    for record in dm.records.values():
        where = f"records.{record.role}"
        cols = table_columns(record.schema, record.table, where)
        if cols is None:
            continue
        for logical in ROLE_COLUMNS[record.role]:
            physical = record.physical(logical)
            if physical not in cols:
                problems.append(f"data map entry {where}: column {physical!r} does not exist in table "
                                f"{record.schema}.{record.table}")

    for entry in dm.personal_data:
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

    if problems:
        raise DataMapError(_summary(problems, missing_tables, len(tables)), problems)


def _summary(problems: list[str], missing_tables: int, mapped_tables: int) -> str:
    if missing_tables == mapped_tables:
        return (f"none of the {mapped_tables} mapped tables exists in this database: is this the operational "
                "database?")
    if len(problems) == 1:
        return problems[0]
    return f"{problems[0]} (and {len(problems) - 1} more problem(s))"
