"""The scan compared with the data map: what it does not name, what it names and is gone or no longer personal.

:func:`scan_connection` lists one database's tables, samples each (:mod:`include.discovery.catalogue`), classifies
every column (:mod:`include.discovery.classify`) and compares the verdicts with the data map:

- ``unmapped`` — a column holding personal data that the map does not name (neither under a ``personal_data``
  entry, its subject links and erase rules, nor under ``records``); with a suggested data-map entry holding the
  likely subject link;
- ``mapped_gone`` — a table or column the map names that the database no longer has;
- ``mapped_not_personal`` — a mapped column whose name says it holds personal data of a kind (``email``,
  ``phone``…) of which its sampled values (at least :data:`MIN_EVIDENCE`) show none.

A :class:`Finding` holds names, a kind, a confidence and counts: never a value. :func:`record` stores them in
``compliance.discovery_findings`` (one row per finding, whatever the number of runs that saw it, so two runs at once
record it once) and the run's sightings in ``compliance.discovery_run_findings``; :func:`dismiss` is a person's
"this is not personal data", kept across later runs.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Iterable, Mapping, Sequence

import yaml

from include.datamap import OPS_CONNECTION, ROLE_COLUMNS, TEXT_TYPES, DataMap, PersonalDataEntry
from include.discovery import catalogue, classify
from include.errors import NeedsOperator
from include.store_text import read_as_str

log = logging.getLogger("include.discovery")

UNMAPPED = "unmapped"
MAPPED_GONE = "mapped_gone"
MAPPED_NOT_PERSONAL = "mapped_not_personal"
FINDINGS = (UNMAPPED, MAPPED_GONE, MAPPED_NOT_PERSONAL)
MIN_EVIDENCE = 20  # non-null sampled values before a mapped column is called no longer personal
REASON_CHARS = 500
# Kinds a column's name can promise and its values can break (a mapped column named `phone` that holds no phone).
CHECKABLE = (classify.EMAIL, classify.PHONE, classify.POSTAL_ADDRESS, classify.IP_ADDRESS, classify.BIRTH_DATE)
# Column names that tie a row to an account (the weaker guess, after a foreign key to the account table).
_SUBJECT_NAMES = re.compile(r"^(user|account|customer|member|owner|person|subject|profile|client|contact)_?id$|"
                            r"_(user|account|customer|member)_?id$", re.IGNORECASE)


class FindingError(NeedsOperator, ValueError):
    """A dismissal that cannot be made (unknown finding, no reason)."""


@dataclass(frozen=True)
class Finding:
    """One finding of one run: names, kind, confidence and counts (never a sampled value)."""

    connection: str
    schema: str
    table: str
    column: str | None  # None: the whole table (a mapped table gone)
    finding: str
    kind: str | None
    confidence: float
    matched: int
    sampled: int
    suggestion: str = ""

    @property
    def key(self) -> str:
        column = "*" if self.column is None else _key_part(self.column)
        return f"{self.connection}:{_key_part(self.schema)}.{_key_part(self.table)}.{column}:{self.finding}"

    @property
    def where(self) -> str:
        name = self.table if self.schema == "public" else f"{self.schema}.{self.table}"
        return f"{name}.{self.column}" if self.column else name

    def as_dict(self) -> dict:
        return asdict(self)


def _key_part(name: str) -> str:
    """A name as a finding's key holds it: as it is, or double-quoted (SQL's way) when it holds a character the key
    separates its parts with, or is the whole-table ``*``. Table "b.c" of schema a and table c of schema "a.b" are
    two keys, not one; ordinary names keep the keys earlier runs stored."""
    if name == "*" or not name or any(ch in name for ch in '.:"'):
        return '"' + name.replace('"', '""') + '"'
    return name


@dataclass
class ScanReport:
    """What scanning one connection found and how much it read."""

    connection: str
    tables: int = 0
    columns: int = 0
    sampled_rows: int = 0
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # tables that could not be read, in one sentence each
    scope: list[tuple[str, str]] = field(default_factory=list)  # (schema, table) listed or mapped and looked for
    listed: list[tuple[str, str]] = field(default_factory=list)  # (schema, table) the catalogue has, read or not
    # (schema, table, column) read but with too few values to judge (classify.MIN_VALUES): its open findings stand
    undecided: list[tuple[str, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"connection": self.connection, "tables": self.tables, "columns": self.columns,
                "sampled_rows": self.sampled_rows, "findings": [f.as_dict() for f in self.findings],
                "problems": self.problems, "scope": [list(s) for s in self.scope],
                "listed": [list(s) for s in self.listed], "undecided": [list(u) for u in self.undecided]}

    @classmethod
    def from_dict(cls, raw: Mapping) -> "ScanReport":
        return cls(raw["connection"], raw["tables"], raw["columns"], raw["sampled_rows"],
                   [Finding(**f) for f in raw["findings"]], list(raw.get("problems", ())),
                   [tuple(s) for s in raw.get("scope", ())], [tuple(s) for s in raw.get("listed", ())],
                   [tuple(u) for u in raw.get("undecided", ())])

    @property
    def covered(self) -> list[tuple[str, str, str]]:
        """(connection, schema, table) this scan covered: whose open findings it may resolve."""
        return [(self.connection, schema, table) for schema, table in self.scope]

    @property
    def left_open(self) -> list[tuple[str, str, str, str]]:
        """(connection, schema, table, column) of the covered tables whose open findings stand: too few values."""
        return [(self.connection, *u) for u in self.undecided]


def tables_not_found(named: Sequence[str], reports: Sequence[ScanReport]) -> list[str]:
    """The names of a run's ``tables`` (``feedback``, ``crm.contacts``) that no scanned connection has: a typo
    would otherwise read as a clean scan (no finding in no table)."""
    have = {(s.lower(), t.lower()) for r in reports for s, t in r.listed}
    return [n for n in named if not any(n.lower() in (t, f"{s}.{t}") for s, t in have)]


# -- what the map names -------------------------------------------------------------------------------------------

def mapped_columns(dm: DataMap, connection: str) -> dict[tuple[str, str], set[str]]:
    """(schema, table) -> the columns the map names on ``connection`` (entries and, on ops_db, records)."""
    named: dict[tuple[str, str], set[str]] = {}
    for entry in dm.entries_on(connection):
        cols = named.setdefault((entry.schema, entry.table), set())
        cols.update(link.column for link in entry.links)
        cols.update(entry.erase.null + entry.erase.hash + entry.files)
        for columns in entry.categories.values():
            cols.update(columns)
    if connection == OPS_CONNECTION:
        for role, record in dm.records.items():
            named.setdefault((record.schema, record.table), set()).update(
                record.physical(c) for c in ROLE_COLUMNS[role])
    return named


def _category_columns(entry: PersonalDataEntry) -> set[str]:
    return {c for columns in entry.categories.values() for c in columns}


# -- the scan -----------------------------------------------------------------------------------------------------

def scan_connection(conn, dm: DataMap, connection: str, *, rows: int, today: date,
                    tables: Sequence[str] = ()) -> ScanReport:
    """Scan one database (``conn``, the Airflow connection ``connection``) and compare it with the map."""
    report = ScanReport(connection)
    # A store in SQL_ASCII (bytes as its clients wrote them) is read as the erasure and the export read it: UTF-8,
    # a byte no UTF-8 text holds as its Latin-1 character, so a name written in Latin-1 is sampled as written.
    read_as_str(conn)
    found = catalogue.list_tables(conn, tables)
    named = mapped_columns(dm, connection)
    entries = {(e.schema, e.table): e for e in dm.entries_on(connection)}
    account = _account_table(dm, connection)
    present = {(t.schema, t.name): t for t in found}
    report.scope = sorted(present)
    report.listed = sorted(present)
    for table in found:
        if not table.columns:  # nothing to read or judge (its mapped columns, if any, are said gone below)
            report.tables += 1
            continue
        try:
            frame = catalogue.sample(conn, table, rows)
        except Exception as exc:  # noqa: BLE001 -- one unreadable table never stops the scan
            import psycopg

            if isinstance(exc, psycopg.InterfaceError) or conn.closed or conn.broken:
                raise  # the database itself is gone: the seam makes it a transient, retried failure
            # The table alone (a lock held past the statement timeout, no privilege, a materialized view never
            # populated: an OperationalError too, but the connection is fine): said, and the others scanned.
            why = ("its sample took longer than the statement timeout"
                   if isinstance(exc, psycopg.errors.QueryCanceled) else type(exc).__name__)
            report.problems.append(f"table {table.qualified} on connection '{connection}' could not be sampled "
                                   f"({why})")
            # Unread, so its open findings stand: out of the scope whose unseen findings the run resolves (else
            # they were resolved now and, seen again by the next run, reopened and emailed a second time).
            report.scope.remove((table.schema, table.name))
            continue
        report.tables += 1
        report.columns += len(table.columns)
        report.sampled_rows += len(frame)
        verdicts = {c.name: classify.classify(c.name, c.data_type, frame[c.name], today) for c in table.columns}
        mapped = named.get((table.schema, table.name), set())
        entry = entries.get((table.schema, table.name))
        for column in table.columns:
            verdict = verdicts[column.name]
            if column.name in mapped:
                if entry is not None and column.name in _category_columns(entry):
                    gone = _no_longer_personal(table, column, frame, verdict, connection)
                    if gone:
                        report.findings.append(gone)
                continue
            if verdict is None:
                if frame[column.name].notna().sum() < classify.MIN_VALUES:
                    # Too few values to judge (a column filled now and then, a sample that missed them): no
                    # verdict, and no reason to resolve its finding (seen again, it was reopened and told again).
                    report.undecided.append((table.schema, table.name, column.name))
                continue
            suggestion = suggest(table, column.name, verdict.kind, connection,
                                 subject_link(table, verdicts, account, entries), entry)
            report.findings.append(Finding(connection, table.schema, table.name, column.name, UNMAPPED, verdict.kind,
                                           verdict.confidence, verdict.matched, verdict.sampled, suggestion))
    wanted = {t.lower() for t in tables}
    for (schema, name), cols in sorted(named.items()):
        if wanted and name.lower() not in wanted and f"{schema}.{name}".lower() not in wanted:
            continue
        if (schema, name) not in entries:
            continue  # a records role only: check-datamap and every other DAG stop on those
        if (schema, name) not in present:
            report.scope.append((schema, name))
        table = present.get((schema, name))
        if table is None:
            report.findings.append(Finding(connection, schema, name, None, MAPPED_GONE, None, 1.0, 0, 0,
                                           f"# remove the data-map entry personal_data '{name}' (the table is gone)"))
            continue
        have = {c.name for c in table.columns}
        for column in sorted(cols - have):
            report.findings.append(Finding(connection, schema, name, column, MAPPED_GONE, None, 1.0, 0, 0,
                                           f"# remove column {column} from the data-map entry personal_data "
                                           f"'{name}' (the column is gone)"))
    log.info("connection '%s': %d table(s), %d column(s), %d sampled row(s); %d finding(s)%s", connection,
             report.tables, report.columns, report.sampled_rows, len(report.findings),
             f"; {len(report.problems)} table(s) could not be sampled" if report.problems else "")
    return report


def _no_longer_personal(table: catalogue.Table, column: catalogue.Column, frame, verdict, connection: str):
    promised = classify.hinted(column.name) & set(CHECKABLE)
    if not promised or verdict is not None or column.data_type in ("inet", "cidr"):
        return None
    sampled = int(frame[column.name].notna().sum())
    if sampled < MIN_EVIDENCE:
        return None
    kind = sorted(promised)[0]
    return Finding(connection, table.schema, table.name, column.name, MAPPED_NOT_PERSONAL, kind, 0.8, 0, sampled,
                   f"# column {column.name} of personal_data '{table.label}' is mapped as personal data, but none "
                   f"of {sampled} sampled values looks like a {kind.replace('_', ' ')}: check what it holds now")


def _account_table(dm: DataMap, connection: str) -> tuple[str, str, str] | None:
    """(schema, table, key column) of the account table, on the operational database."""
    if connection != OPS_CONNECTION:
        return None
    accounts = dm.records.get("accounts")
    return (accounts.schema, accounts.table, accounts.physical("id")) if accounts else None


def subject_link(table: catalogue.Table, verdicts: Mapping[str, classify.Verdict | None],
                 account: tuple[str, str, str] | None, entries: Mapping[tuple[str, str], PersonalDataEntry]) -> dict | None:
    """The likely tie of a row to an account, as a data map's ``subject``: a foreign key to the account table, a
    ``user_id``-like column, an address column (``match: email``), or a foreign key to a mapped table tied to the
    account directly (``through``, its schema named outside ``public``)."""
    if account and (table.schema, table.name) == account[:2]:
        return {"column": account[2]}
    for fk in table.foreign_keys:
        if account and (fk.ref_schema, fk.ref_table) == account[:2]:
            return {"column": fk.column}
    for column in table.columns:
        if _SUBJECT_NAMES.search(column.name):
            return {"column": column.name}
    for column in table.columns:
        verdict = verdicts.get(column.name)
        # A text column only, as the map's check takes it (an array, a document, a composite, bytea of addresses cannot
        # be compared as one).
        if verdict is not None and verdict.kind == classify.EMAIL and column.data_type in TEXT_TYPES:
            return {"column": column.name, "match": "email"}
    for fk in table.foreign_keys:
        parent = entries.get((fk.ref_schema, fk.ref_table))
        # One join to a table tied to the account directly: the data map refuses a chain.
        if parent is not None and parent.subject.match != "through":
            through = parent.table if parent.schema == "public" else f"{parent.schema}.{parent.table}"
            return {"column": fk.column, "through": through, "references": fk.ref_column}
    return None


def suggest(table: catalogue.Table, column: str, kind: str, connection: str, link: dict | None,
            entry: PersonalDataEntry | None) -> str:
    """The data-map YAML a person can paste: a new entry for the table, or the column added to its entry. Written by
    the YAML library, so that a name holding YAML's punctuation (``mail #2``, ``a, b``, ``contact: email``) is
    quoted and reads back as the name it is."""
    head = {"table": table.label, **({"connection": connection} if connection != OPS_CONNECTION else {})}
    categories = {"categories": {classify.CATEGORY[kind]: [column]}}
    if entry is not None:
        comment, entry_text = "# add to the existing entry of this table:\n", {**head, **categories}
    else:
        comment = "" if link else "# no link to an account found: replace ??? with the column that ties a row to one\n"
        entry_text = {**head, "subject": link or {"column": "???"}, **categories, "erase": "delete"}
    return comment + yaml.safe_dump([entry_text], sort_keys=False, default_flow_style=None, allow_unicode=True,
                                    width=10_000).rstrip("\n")


# -- the store ----------------------------------------------------------------------------------------------------

# A sighting is the newest of its finding unless a record made after this run's scans started saw it (an earlier
# run's record_findings cleared days later, after a newer run recorded): only the newest sets what the finding shows
# and reopens it.
_NEWEST = "(f.last_seen_at < %(seen_at)s or f.last_run_id = %(run_id)s)"
# A finding resolved earlier and seen again is open again, and told again, unless a record made after this run's
# scans started resolved it.
_REOPENS = "(f.status = 'resolved' and coalesce(f.resolved_at < %(seen_at)s, true))"
_UPSERT = f"""
insert into compliance.discovery_findings as f
    (finding_key, connection_id, schema_name, table_name, column_name, finding, kind, confidence, matched, sampled,
     suggestion, first_run_id, last_run_id, first_seen_at, last_seen_at)
values (%(key)s, %(connection)s, %(schema)s, %(table)s, %(column)s, %(finding)s, %(kind)s, %(confidence)s,
        %(matched)s, %(sampled)s, %(suggestion)s, %(run_id)s, %(run_id)s, %(now)s, %(now)s)
on conflict (finding_key) do update set
    kind = case when {_NEWEST} then excluded.kind else f.kind end,
    confidence = case when {_NEWEST} then excluded.confidence else f.confidence end,
    matched = case when {_NEWEST} then excluded.matched else f.matched end,
    sampled = case when {_NEWEST} then excluded.sampled else f.sampled end,
    suggestion = case when {_NEWEST} then excluded.suggestion else f.suggestion end,
    last_run_id = case when {_NEWEST} then excluded.last_run_id else f.last_run_id end,
    last_seen_at = greatest(f.last_seen_at, excluded.last_seen_at),
    -- reopened (see _REOPENS); a dismissed one stays dismissed (while it shows a kind it was dismissed for: see
    -- _reopen)
    notice = case when {_REOPENS} then 'pending' else f.notice end,
    status = case when {_REOPENS} then 'open' else f.status end,
    resolved_at = case when {_REOPENS} then null else f.resolved_at end
-- new: first seen by this run (inserted now, or by an earlier attempt of it: a cleared task run again); newest: this
-- run's sighting is the finding's newest (see _NEWEST)
returning finding_id, (f.first_run_id = %(run_id)s) as new, status, dismissed_kinds, (f.last_run_id = %(run_id)s)
"""


def _reopen(store, ctx, finding_id: int, finding: "Finding", dismissed_kinds: Sequence[str]) -> bool:
    """A dismissed finding that now shows a kind it was not dismissed for (a column of lab hardware ids reused for
    email addresses) is open again and told again: a dismissal is a person's judgement of the values it was given
    for. The dismissal stays in the audit log; its kinds stay in ``dismissed_kinds``."""
    kind = finding.kind or ""
    if kind in dismissed_kinds:
        return False
    was = store.execute(
        """update compliance.discovery_findings f set status = 'open', notice = 'pending', notice_error = null,
                  dismissed_at = null, dismissed_by = null, dismiss_reason = null
           from (select dismiss_reason from compliance.discovery_findings where finding_id = %(id)s) old
           where f.finding_id = %(id)s and f.status = 'dismissed'
           returning old.dismiss_reason""", {"id": finding_id}).fetchone()
    if was is None:
        return False
    ctx.audit(store, "discovery.finding_reopened", {
        "finding_id": finding_id, "where": finding.where, "kind": finding.kind,
        "dismissed_for": list(dismissed_kinds), "dismiss_reason": was[0]})
    log.info("finding %d (%s) was dismissed for %s and now shows %s: open again", finding_id, finding.where,
             ", ".join(k or "no kind" for k in dismissed_kinds), finding.kind or "no kind")
    return True


def record(store, ctx, findings: Sequence[Finding], scope: Iterable[tuple[str, str, str]],
           undecided: Iterable[tuple[str, str, str, str]] = (), *, seen_at: datetime | None = None) -> dict:
    """Store this run's findings (one row per finding, upserted; the run's sightings beside) and resolve the open
    findings of the scanned tables that the run no longer saw. ``scope``: (connection, schema, table) scanned;
    ``undecided``: (connection, schema, table, column) read with too few values to judge, whose findings stand.
    ``seen_at``: when the run's scans started (default: now). A record made after it by another run (a newer run,
    when this run's record is cleared days later) is newer than this run's: what it saw or resolved is left as it is.
    Returns counts; the audit entry says the same."""
    now = ctx.now()
    seen_at = seen_at or now
    new = seen = reopened = 0
    ids = []
    with store.transaction():
        for finding in sorted(findings, key=lambda f: f.key):  # one order: two runs at once never deadlock
            row = store.execute(_UPSERT, {**finding.as_dict(), "key": finding.key, "run_id": ctx.run_id,
                                          "now": now, "seen_at": seen_at}).fetchone()
            ids.append(row[0])
            new += int(row[1])
            if row[2] == "dismissed" and row[4]:
                reopened += _reopen(store, ctx, row[0], finding, row[3])
            seen += 1
            store.execute("""insert into compliance.discovery_run_findings
                                 (run_id, finding_id, kind, confidence, matched, sampled)
                             values (%s, %s, %s, %s, %s, %s) on conflict (run_id, finding_id) do nothing""",
                          (ctx.run_id, row[0], finding.kind, finding.confidence, finding.matched, finding.sampled))
        scope = sorted(set(scope))
        resolved = 0
        if scope:
            conns, schemas, tables = (list(x) for x in zip(*scope))
            kept = [list(x) for x in zip(*sorted(set(undecided)))] or [[], [], [], []]
            resolved = store.execute(
                """update compliance.discovery_findings f set status = 'resolved', resolved_at = %s,
                          notice = case when notice = 'pending' then 'withdrawn' else notice end
                   where f.status = 'open' and f.last_run_id <> %s and f.last_seen_at < %s
                     and not (f.finding_id = any(%s))
                     and (f.connection_id, f.schema_name, f.table_name) in
                         (select * from unnest(%s::text[], %s::text[], %s::text[]))
                     and not exists (select from unnest(%s::text[], %s::text[], %s::text[], %s::text[]) u(c, s, t, col)
                                     where (u.c, u.s, u.t, u.col) = (f.connection_id, f.schema_name, f.table_name,
                                                                     f.column_name))""",
                (now, ctx.run_id, seen_at, ids, conns, schemas, tables, *kept)).rowcount
        counts = {"findings": seen, "new": new, "resolved": resolved, "reopened": reopened}
        ctx.audit_step(store, "discovery.findings_recorded",
                       {**counts, "kinds": _kinds(findings), "tables_in_scope": len(scope)},
                       summed=("new", "resolved", "reopened"))
    return counts


def _kinds(findings: Sequence[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        label = f"{f.finding}:{f.kind}" if f.kind else f.finding
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))


def dismiss(store, finding_id: int, reason: str, *, by: str) -> dict:
    """A person's dismissal of a finding, with the reason; recorded in the audit log and kept by later runs.

    FindingError (one sentence) for an unknown finding, an empty or too long reason, one dismissed already, or a
    ``by`` longer than ``ACTOR_CHARS`` (refused, never cut)."""
    from include.audit import ACTOR_CHARS, append

    reason = " ".join((reason or "").split())
    if not reason:
        raise FindingError("a dismissal needs a reason (what the column holds, why it is not a subject's data)")
    if len(reason) > REASON_CHARS:
        raise FindingError(f"the reason is {len(reason)} characters long; give at most {REASON_CHARS}")
    by = " ".join((by or "").split()) or "unknown"
    if len(by) > ACTOR_CHARS:
        raise FindingError(f"who dismisses the finding is named in {len(by)} characters; give at most {ACTOR_CHARS}")
    with store.transaction():
        row = store.execute("select status from compliance.discovery_findings where finding_id = %s for update",
                            (finding_id,)).fetchone()
        if row is None:
            raise FindingError(f"there is no finding {finding_id} (privacy-ops findings lists them)")
        if row[0] == "dismissed":
            raise FindingError(f"finding {finding_id} is dismissed already")
        cur = store.execute(
            """update compliance.discovery_findings set status = 'dismissed', dismissed_at = now(), dismissed_by = %s,
                      dismiss_reason = %s, notice = case when notice = 'pending' then 'withdrawn' else notice end,
                      dismissed_kinds = case when coalesce(kind, '') = any(dismissed_kinds) then dismissed_kinds
                                             else dismissed_kinds || coalesce(kind, '') end
               where finding_id = %s
               returning finding_id, connection_id, schema_name, table_name, column_name, finding, kind""",
            (by, reason, finding_id))
        names = [c.name for c in cur.description]
        details = dict(zip(names, cur.fetchone()))
        details.update(reason=reason, dismissed_by=by)
        append(store, "discovery.finding_dismissed", details, actor=by)
    return details


def digest(keys: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
