"""The page's sections: one per domain, each a read module of ``include.reads`` plus one :class:`Section`.

A section declares the compliance tables it reads, the DAG that refreshes it, its filters and its table's
columns; ``build`` turns one request (filters, page) into rows and a summary. Everything around it is
shared: the "not installed yet" state while its tables are missing (``to_regclass``), a read that does
not match the installed table, pagination, JSON values, links into the Airflow UI, the page's rendering
(``static/index.html`` draws every section from this JSON, so a new section needs no JavaScript).

Adding a section: write its questions as functions of its domain's read module in ``include/reads/`` and
one ``Section(...)`` in :data:`SECTIONS` below. See docs/compliance_page.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, Mapping

import psycopg

from include import compliance_store, reads
from include.deadline_rules import STATES
from include.errors import ConfigurationProblem, repeatable, scrub
from include.page.links import UiLinks
from include.schedules import how_often
from include.reads import audit as audit_reads
from include.reads import attention, children, discovery, fulfilments, trends, vendors
from include.reads import campaign as notifications, deadlines as dsr

MAX_PAGE_SIZE = 200
MAX_PAGE = 10_000_000
BIGINT_MAX = 2 ** 63 - 1  # ids are bigint: a larger number is no id, and PostgreSQL refuses to compare it
MAX_FILTER_LENGTH = 100
NOT_REPEATED = "(not repeated: it may be personal data)"
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def quoted(typed: str) -> str:
    """What a request named that the page refuses, fit for the answer: quoted when shaped like a code, a name or a
    number (``'stat'``, ``'seven'``, ``'201'``), else :data:`NOT_REPEATED` (an address, a person's name, a phone
    number or an IP address pasted into a filter, the query string or the path)."""
    text = str(typed)
    return repr(text) if repeatable(text, _CODE) else NOT_REPEATED


class PageError(ValueError):
    """A request the page cannot answer, in one sentence, with its HTTP status."""

    def __init__(self, sentence: str, status: int = 400):
        super().__init__(sentence)
        self.status = status


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # id | text | int | date | time | state | link | hash | path | counts


@dataclass(frozen=True)
class Filter:
    name: str
    label: str
    # A fixed vocabulary, else any value, and the section's answer lists those present ("choices"): the page draws
    # every filter as a list to pick from, never a box to type in (its GET URL reaches the API server's access log).
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Query:
    filters: dict[str, str]
    limit: int
    offset: int


@dataclass
class Request:
    """What a section's ``build`` gets: the store connection, the query, the UI links, shared services."""

    conn: Any
    query: Query
    links: UiLinks
    chain: audit_reads.ChainWatch | None = None


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    dag_id: str
    tables: tuple[str, ...]
    about: str
    columns: tuple[Column, ...]
    build: Callable[[Request], dict]
    filters: tuple[Filter, ...] = ()
    page_size: int = 50
    # The Airflow permission the section needs beyond the page's own: read access to runs of its DAG,
    # or (the audit log, written by every DAG) to the audit log of all DAGs.
    dag_entity: str = "RUN"
    refreshed_by: str = ""  # how the data is refreshed, in a few words

    def parse(self, params: Mapping[str, str]) -> Query:
        """The query from the request's parameters; PageError (400) for anything the section does not take."""
        known = {f.name: f for f in self.filters}
        if any("\x00" in name or "\x00" in value for name, value in params.items()):
            raise PageError("a parameter contains a NUL character, which no filter value can hold")
        unknown = sorted(set(params) - set(known) - {"page", "size"})
        if unknown:
            takes = ", ".join([*known, "page", "size"])
            raise PageError(f"section {self.key!r} takes no parameter {quoted(unknown[0])} (it takes: {takes})")
        filters = {}
        for name, value in params.items():
            if name not in known or value == "":
                continue
            allowed = known[name].choices
            if allowed is not None and value not in allowed:
                raise PageError(f"{name} {quoted(value)} is not one of {', '.join(allowed)}")
            if len(value) > MAX_FILTER_LENGTH:
                raise PageError(f"{name} is longer than {MAX_FILTER_LENGTH} characters")
            filters[name] = value
        page = _whole(params.get("page", "1"), "page", MAX_PAGE)
        size = _whole(params.get("size", str(self.page_size)), "size", MAX_PAGE_SIZE)
        return Query(filters=filters, limit=size, offset=(page - 1) * size)


def one_value_each(pairs) -> dict[str, str]:
    """The query string's (name, value) pairs as a dict; PageError (400) for a name given twice (a dict would keep
    the last value and drop the others unchecked)."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise PageError(f"parameter {quoted(name)} is given more than once: give it once")
        params[name] = value
    return params


def _whole(text: str, name: str, largest: int, smallest: int = 1) -> int:
    """A whole number from ``smallest`` to ``largest``, else PageError naming those bounds."""
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise PageError(f"{name} must be a whole number from {smallest} to {largest}, not {quoted(text)}")
    value = int(text)
    if not smallest <= value <= largest:
        shown = value if scrub(text) == text else NOT_REPEATED  # a phone number is a whole number too
        raise PageError(f"{name} must be a whole number from {smallest} to {largest}, not {shown}")
    return value


# -- rendering one section ------------------------------------------------------------------------------

def render(section: Section, conn, params: Mapping[str, str], links: UiLinks,
           chain: audit_reads.ChainWatch | None = None) -> dict:
    """The section's JSON: installed or not, when refreshed, its DAG, summary, filters, columns and rows."""
    query = section.parse(params)
    head = describe(section, links)
    missing = reads.missing_tables(conn, section.tables)
    if missing:
        return {**head, "installed": False,
                "note": f"not installed yet: the compliance store has no {', '.join(missing)} (it arrives with "
                        f"the {section.dag_id} DAG's store migration)"}
    try:
        with conn.transaction():  # one snapshot for the counts and the rows; a failed read leaves nothing open
            # READ COMMITTED would give each statement its own snapshot; the page never writes.
            conn.execute("set transaction isolation level repeatable read, read only")
            body = section.build(Request(conn, query, links, chain))
    except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction,
            psycopg.errors.DatatypeMismatch) as exc:
        said = str(exc).splitlines()[0]
        have, latest = compliance_store.current_version(conn), compliance_store.available_migrations()[-1].version
        if have is not None and have < latest:  # a store behind the code lacks what a later migration adds
            return {**head, "installed": True, "mismatch": True,
                    "note": f"the compliance store is at migration {have}, behind this release's {latest}: {said}; "
                            "the next run of any DAG (or `privacy-ops migrate-store`) migrates it"}
        return {**head, "installed": True, "mismatch": True,
                "note": f"this page's read (include/reads) does not match the installed table: {said}"}
    rows = [{c.key: jsonable(row.get(c.key)) for c in section.columns} for row in body.pop("rows", [])]
    return {**head, "installed": True, "query": {"filters": query.filters, "limit": query.limit,
                                                  "offset": query.offset},
            "filters": [{"name": f.name, "label": f.label, "choices": list(f.choices) if f.choices else None}
                        for f in section.filters],
            "columns": [c.__dict__ for c in section.columns], "rows": rows,
            **{k: jsonable(v) for k, v in body.items()}}


# How long one look at the page waits for a table another transaction holds (a store migration, which holds the tables
# it alters until it commits, or a run's work) and for one statement, where the page's login sets no limit of its own
# (0): without them a look waited as long as the holder, holding an API server thread and a store connection.
PAGE_LOCK_TIMEOUT = "3s"
PAGE_STATEMENT_TIMEOUT = "30s"
HELD = "a store migration or a run holds a table this section reads: look again in a minute"


def bound_waits(conn) -> None:
    """Bound the page's waits on ``conn`` (:data:`PAGE_LOCK_TIMEOUT`, :data:`PAGE_STATEMENT_TIMEOUT`) for the session,
    keeping a limit the login sets itself."""
    conn.execute("""select set_config('lock_timeout', case current_setting('lock_timeout') when '0' then %s
                                                      else current_setting('lock_timeout') end, false),
                           set_config('statement_timeout', case current_setting('statement_timeout') when '0' then %s
                                                           else current_setting('statement_timeout') end, false)""",
                 (PAGE_LOCK_TIMEOUT, PAGE_STATEMENT_TIMEOUT))


def lock_waited_out(exc: BaseException) -> bool:
    """The store canceled one of the page's statements on its lock_timeout (SQLSTATE 55P03, said as a lock timeout)."""
    return getattr(exc, "sqlstate", None) == "55P03" and "lock timeout" in str(exc).lower()


READER = "the login the page reads the compliance store with"


def not_permitted(exc: psycopg.errors.InsufficientPrivilege) -> ConfigurationProblem:
    """The store refused the page's login a read (no SELECT on a table, no USAGE on the schema): one sentence naming
    what and the grant it needs (a 503, like any other fault of the store, not a 500)."""
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind, _, name = said.removeprefix("permission denied for ").partition(" ")
    if kind in ("table", "view") and name:
        name = name if "." in name else f"compliance.{name}"  # the server names the relation without its schema
        return ConfigurationProblem(f"{READER} may not read {name}: grant it SELECT on it (GRANT SELECT ON {name}, "
                                    "or ON ALL TABLES IN SCHEMA compliance, TO that login)")
    if kind == "schema" and name:
        return ConfigurationProblem(f"{READER} may not use schema {name}: grant it USAGE on the schema and SELECT on "
                                    f"its tables (GRANT USAGE ON SCHEMA {name} TO that login)")
    return ConfigurationProblem(f"{READER} was refused a read ({said}): grant it USAGE on schema compliance and "
                                "SELECT on its tables")


def describe(section: Section, links: UiLinks) -> dict:
    return {"key": section.key, "title": section.title, "about": section.about,
            "dag": {"dag_id": section.dag_id, "url": links.dag(section.dag_id),
                    "trigger_url": links.trigger(section.dag_id), "refreshed_by": section.refreshed_by}}


def jsonable(value):
    """Dates as ISO strings, containers walked; everything else as it is."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def link(text, href: str | None) -> dict | None:
    return None if text is None else {"text": str(text), "href": href}


def refreshed(at, run_id: str | None, dag_id: str, links: UiLinks, **more) -> dict:
    return {"at": at, "run_id": run_id, "run_url": links.run(dag_id, run_id), **more}


# -- the sections -------------------------------------------------------------------------------------

def _requests(req: Request) -> dict:
    q = req.query
    breakdown = dsr.request_breakdown(req.conn)
    wanted = {k: v for k, v in q.filters.items() if k != "state"}
    by_state: dict[str, int] = {}
    for regime, request_type, state, count in breakdown:
        if wanted.get("regime", regime) == regime and wanted.get("request_type", request_type) == request_type:
            by_state[state] = by_state.get(state, 0) + count
    total = by_state.get(q.filters["state"], 0) if "state" in q.filters else sum(by_state.values())
    if "open" in q.filters:  # the breakdown counts closed requests too: this page counts its own
        total = None
    page = dsr.request_page(req.conn, q.filters, limit=q.limit, offset=q.offset, total=total)
    order = list(dsr.STATE_ORDER) + sorted(set(by_state) - set(dsr.STATE_ORDER))
    for row in page["rows"]:
        row["evaluated_by"] = link(row["run_id"], req.links.run(DSR, row["run_id"]))
        row["flags"] = ", ".join(row["flags"] or []) or None
    last = dsr.last_run(req.conn)
    return {"total": page["total"], "rows": page["rows"],
            "summary": [{"label": s, "value": by_state.get(s, 0), "filter": {"state": s}} for s in order],
            "choices": {"regime": sorted({r for r, _, _, _ in breakdown if r is not None}),
                        "request_type": sorted({t for _, t, _, _ in breakdown if t is not None}),
                        "state": list(dsr.STATE_ORDER)},
            "refreshed": refreshed(last and last["finished_at"], last and last["run_id"], DSR, req.links,
                                   as_of=last and last["as_of"])}


def _whatif(req: Request) -> dict:
    runs = dsr.whatif_runs(req.conn, limit=req.query.offset + req.query.limit + 1)
    shown = runs[req.query.offset:req.query.offset + req.query.limit]
    for run in shown:
        run["run"] = link(run["run_id"], req.links.run(DSR, run["run_id"]))
        run["states"] = ", ".join(f"{k} {v}" for k, v in run["states"].items())
    last = dsr.last_run(req.conn, what_if=True)
    more = len(runs) > req.query.offset + req.query.limit
    # Fewer runs than asked for: len(runs) is all of them, on a page past the last one too (not its offset).
    return {"total": len(runs), "total_is_lower_bound": more,
            "rows": shown,
            "refreshed": refreshed(last and last["finished_at"], last and last["run_id"], DSR, req.links,
                                   as_of=last and last["as_of"])}


def _audit(req: Request) -> dict:
    if req.chain is None:
        raise PageError("the audit section needs the chain watch", 500)
    status = req.chain.status(req.conn)
    recent = req.conn.execute(
        """select id, occurred_at, action, dag_id, run_id from compliance.audit_log
           order by id desc limit %s offset %s""", (req.query.limit, req.query.offset)).fetchall()
    rows = [{"id": i, "occurred_at": at, "action": action, "dag_id": dag_id,
             "run": link(run_id, req.links.run(dag_id, run_id) if dag_id else None)}
            for i, at, action, dag_id, run_id in recent]
    return {"total": status.get("newest_id") or 0, "rows": rows, "chain": status, "facts": chain_facts(status),
            "refreshed": refreshed(status.get("newest_at"), None, DSR, req.links,
                                   verified_at=status.get("checked_at"), walked_at=status.get("full_at"))}


def chain_facts(status: dict) -> list[dict]:
    """The audit chain's status as the page's fact lines (label, value, tone)."""
    state = status["state"]
    if state == "verifying":
        return [{"label": "Chain", "value": "being verified (a whole walk is running; this refreshes by itself)",
                 "tone": "wait"},
                {"label": "Newest row", "value": status.get("newest_id"), "tone": None}]
    verdict = {"verified": ("intact: every row's hash recomputed", "good"),
               "broken": (f"BROKEN: {status.get('problem')}", "bad"),
               "anchors_disagree": ("recomputes, but does not match its anchors", "bad")}[state]
    anchor = status.get("anchor") or {}
    facts = [{"label": "Chain", "value": verdict[0], "tone": verdict[1]},
             {"label": "Verified head", "value": f"row {status.get('head_id')} · {status.get('head')}", "tone": None,
              "kind": "hash"},
             {"label": "Rows verified", "value": f"{status.get('rows')} (whole walk at {_when(status.get('full_at'))}, "
                                                  f"{status.get('rows_since_full')} newer row(s) checked since)",
              "tone": None}]
    if anchor.get("location") is None:
        facts.append({"label": "Anchors", "value": anchor.get("note"), "tone": "warn"})
    else:
        newest = (f"row {anchor['newest_row']} · {anchor['newest_hash']}" if anchor.get("newest_row") is not None
                  else "not listed" if anchor.get("unchecked") else "none yet")
        facts.append({"label": "Newest anchor", "value": f"{newest} at {anchor['location']}", "tone": None,
                      "kind": "hash"})
        if anchor.get("problem"):
            facts.append({"label": "Agree", "value": f"NO: {anchor['problem']}", "tone": "bad"})
        elif anchor.get("unchecked"):
            facts.append({"label": "Agree", "value": f"not checked now: {anchor['unchecked']}", "tone": "warn"})
        elif anchor.get("fresh"):
            facts.append({"label": "Agree", "value": anchor.get("note"), "tone": "warn"})
        else:
            facts.append({"label": "Agree", "value": f"yes ({anchor.get('count')} anchor(s); "
                                                      f"{anchor.get('rows_since', 0)} row(s) written since the newest)",
                          "tone": "good"})
    if status.get("walk_error"):
        facts.append({"label": "Last walk", "value": f"failed: {status['walk_error']}", "tone": "bad"})
    return facts


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def as_counts(counts: Mapping[str, int] | None) -> str | None:
    """``{"purged": 3, "held": 1}`` as ``purged 3, held 1`` (the page's cells are text)."""
    return ", ".join(f"{k} {v}" for k, v in (counts or {}).items() if v) or None


def _last(run: dict | None, dag_id: str, links: UiLinks) -> dict:
    return refreshed(run and run["finished_at"], run and run["run_id"], dag_id, links)


def _purges(req: Request) -> dict:
    page = children.run_page(req.conn, mode=req.query.filters.get("mode"), limit=req.query.limit,
                             offset=req.query.offset)
    for row in page["rows"]:
        row["run"] = link(row["run_id"], req.links.run(children.DAG_ID, row["run_id"]))
        row["mode"] = "dry run" if row["dry_run"] else "live"
        row["approval"] = " · ".join(str(v) for v in (row["approval_state"], row["approved_by"]) if v) or None
        row["outcomes"] = as_counts(row["outcomes"])
        row["reports"] = as_counts(row["reports"])
    owed = children.notices_owed(req.conn)
    facts = [{"label": "Subjects purged (all runs)", "value": children.purged_total(req.conn), "tone": None},
             {"label": "Vendor deletion notices owed",
              "value": f"{owed['notices']} notice(s): {owed['subjects']} subject(s), {owed['vendors']} vendor(s)",
              "tone": "warn" if owed["notices"] else "good"}]
    review = children.reports_needing_review(req.conn)
    facts.append({"label": "Reports waiting for a person (needs_review)",
                  "value": "; ".join(f"report {r['report_id']}: account(s) {', '.join(map(str, r['user_ids']))}"
                                     for r in review[:10]) + (f" and {len(review) - 10} more" if len(review) > 10 else "")
                  if review else "none", "tone": "warn" if review else "good"})
    blank = children.reports_naming_no_one(req.conn)
    if blank:
        facts.append({"label": "Reports naming neither an account nor an address (invalid)",
                      "value": "report " + ", ".join(map(str, blank[:10])) + (f" and {len(blank) - 10} more"
                                                                             if len(blank) > 10 else ""),
                      "tone": "warn"})
    stuck = children.open_records(req.conn)
    if stuck:
        facts.append({"label": "Records left open", "value": "; ".join(f"{r} {o} {n}" for r, o, n in stuck[:5]),
                      "tone": "bad"})
    return {**page, "facts": facts, "refreshed": _last(children.last_run(req.conn), children.DAG_ID, req.links)}


def _manifests(req: Request) -> dict:
    vendor = req.query.filters.get("vendor_id")
    if vendor is not None and not (vendor.isascii() and vendor.isdigit()):
        raise PageError(f"vendor_id must be a vendor's number, not {quoted(vendor)}")
    if vendor is not None:
        _whole(vendor, "vendor_id", BIGINT_MAX, smallest=0)
    page = vendors.manifest_page(req.conn, vendor_id=int(vendor) if vendor else None,
                                 with_violations=req.query.filters.get("violations") == "only",
                                 limit=req.query.limit, offset=req.query.offset)
    for row in page["rows"]:
        row["run"] = link(row["run_id"], req.links.run(vendors.DAG_ID, row["run_id"]))
        row["vendor"] = f"{row['vendor_id']} {row['vendor_name'] or '(unknown vendor)'}"
        row["violations"] = as_counts(row["violations"])
    totals = vendors.violation_totals(req.conn)
    facts = [{"label": "Shares breaking a rule (all periods)",
              "value": as_counts(totals) or "none", "tone": "bad" if totals else "good"}]
    return {**page, "facts": facts, "refreshed": _last(vendors.last_run(req.conn), vendors.DAG_ID, req.links),
            "choices": {"vendor_id": [str(v) for v in vendors.vendor_ids(req.conn)]}}


def _campaigns(req: Request) -> dict:
    page = notifications.campaign_page(req.conn, scope=req.query.filters.get("scope"), limit=req.query.limit,
                                       offset=req.query.offset)
    for row in page["rows"]:
        row["run"] = link(row["run_id"], req.links.run(notifications.DAG_ID, row["run_id"]))
        row["progress"] = f"{row['done_percent']}%" if row["done_percent"] is not None else None
    states = notifications.campaign_states(req.conn)
    return {**page, "summary": [{"label": k, "value": v} for k, v in states.items()],
            "refreshed": refreshed(notifications.last_refreshed(req.conn), None, notifications.DAG_ID, req.links)}


def _fulfilments(req: Request) -> dict:
    page = fulfilments.fulfilment_page(req.conn, outcome=req.query.filters.get("outcome"),
                                       still_open=req.query.filters.get("open") == "only", limit=req.query.limit,
                                       offset=req.query.offset)
    for row in page["rows"]:
        row["run"] = link(row["run_id"], req.links.run(fulfilments.DAG_ID, row["run_id"]))
    last = fulfilments.last_run(req.conn)
    if last is None:  # no run recorded (a store older than its run table's rows): the newest outcome
        return {**page, "refreshed": refreshed(fulfilments.last_refreshed(req.conn), None, fulfilments.DAG_ID,
                                               req.links)}
    return {**page, "refreshed": _last(last, fulfilments.DAG_ID, req.links)}


def _discovery(req: Request) -> dict:
    page = discovery.finding_page(req.conn, limit=req.query.limit, offset=req.query.offset)
    for row in page["rows"]:
        row["run"] = link(row["last_run_id"], req.links.run(discovery.DAG_ID, row["last_run_id"]))
        row["counts"] = f"{row['matched']} / {row['sampled']}"
    last = discovery.last_run(req.conn)
    facts = [{"label": "Open findings", "value": page["total"], "tone": "warn" if page["total"] else "good"}]
    for bucket, o in ((last or {}).get("orphans") or {}).items():
        facts.append({"label": f"Objects no row names in {bucket}", "value": f"{o['orphans']} ({o['orphan_bytes']:,} "
                      f"bytes; oldest {(o['oldest_orphan'] or '-')[:10]})", "tone": "warn" if o["orphans"] else "good"})
    return {**page, "facts": facts, "refreshed": refreshed(last and last["scanned_at"], last and last["run_id"],
                                                           discovery.DAG_ID, req.links)}


def _attention(req: Request) -> dict:
    from datetime import timezone

    from include.approvals import approval_timeout

    chain = req.chain.status(req.conn) if req.chain is not None else None
    items = attention.needs_a_person(req.conn, now=datetime.now(timezone.utc), approval_timeout=approval_timeout(),
                                     chain=chain)
    rows = [{"what": i.what, "count": _jump(i, req.links), "oldest": i.oldest, "note": i.note} for i in items]
    waiting = sum(i.count for i in items)
    facts = [{"label": "Things waiting for a person", "value": waiting, "tone": "warn" if waiting else "good"}]
    return {"rows": rows, "total": len(rows), "facts": facts,
            "refreshed": {"at": datetime.now(timezone.utc), "run_id": None, "run_url": None}}


def _trends(req: Request) -> dict:
    """The charts (include/reads/trends.py): drawn by the page as small SVGs, each value labelled."""
    from datetime import timezone

    return {"rows": [], "total": 0, "charts": trends.charts(req.conn, datetime.now(timezone.utc).date()),
            "refreshed": {"at": datetime.now(timezone.utc), "run_id": None, "run_url": None}}


def _jump(item: attention.Item, links: UiLinks) -> dict:
    """A count that leads to its rows: a section of this page (with its filters), or a page of Airflow's UI."""
    if item.airflow == "required_actions":
        return {"text": str(item.count), "href": links.required_actions()}
    return {"text": str(item.count), "section": item.section, "filters": dict(item.filters)}


DSR = "dsr_deadline_tracking"

SECTIONS: tuple[Section, ...] = (
    Section(
        key="attention", title="Needs a person", dag_id=DSR, tables=("compliance.audit_log",),
        about="What waits for a person now, across every DAG: approvals (answered in Airflow's Required Actions, "
              "rejected by themselves when their time is up), requests overdue or due soon, fulfilment steps only a person can "
              "do, child reports to review, holds, deletion notices owed, refused emails, an audit chain that is "
              "broken. Each count leads to its rows.",
        refreshed_by="counted afresh from the store on every look",
        columns=(Column("what", "Needs a person"), Column("count", "How many", "jump"),
                 Column("oldest", "Oldest", "time"), Column("note", "What to do")),
        page_size=50, dag_entity="AUDIT_LOG", build=_attention),
    Section(
        key="trends", title="Trends", dag_id=DSR, tables=("compliance.dsr_status",),
        about="Are we getting better? Requests closed on time by the month they were due, requests overdue each "
              "day, children's accounts purged and shares breaking a vendor rule each week (daily manifests; a week "
              "none covers shows a dash); every bar and point says its own number.",
        refreshed_by="drawn afresh from the store's history on every look",
        columns=(), page_size=1, dag_entity="AUDIT_LOG", build=_trends),
    Section(
        key="requests", title="Privacy requests", dag_id=DSR,
        tables=("compliance.dsr_status", "compliance.dsr_runs"),
        about="Every privacy request's latest live evaluation, overdue first, then by days left.",
        refreshed_by=f"{how_often(DSR)}, and by any manual run evaluated as of today",
        filters=(Filter("regime", "Regime"), Filter("request_type", "Type"), Filter("state", "State", STATES),
                 Filter("open", "Still open", ("only",))),
        columns=(Column("request_id", "Request", "id"), Column("regime", "Regime"),
                 Column("request_type", "Type"), Column("state", "State", "state"),
                 Column("days_left", "Days left", "int"), Column("effective_due", "Due", "date"),
                 Column("ack_due", "Ack due", "date"), Column("extension", "Extension"),
                 Column("flags", "Flags"), Column("invalid_reason", "Invalid because"),
                 Column("as_of", "As of", "date"), Column("evaluated_by", "Evaluated by run", "link")),
        build=_requests),
    Section(
        key="whatif", title="What-if runs", dag_id=DSR,
        tables=("compliance.dsr_runs", "compliance.dsr_whatif"),
        about="Runs evaluated as of another day than their own: their results are kept apart from the live "
              "states (compliance.dsr_whatif) and nothing was sent.",
        refreshed_by="a manual run with an as_of other than today",
        columns=(Column("run", "Run", "link"), Column("as_of", "As of", "date"),
                 Column("evaluated_at", "Evaluated", "time"), Column("requests", "Requests", "int"),
                 Column("states", "States")),
        page_size=20, build=_whatif),
    Section(
        key="audit", title="Audit chain", dag_id=DSR, tables=("compliance.audit_log",),
        about="The hash-chained audit log: the verified head, the newest anchor outside the database, and "
              "whether they agree.",
        refreshed_by="every DAG run appends to the log and anchors its head at the end",
        columns=(Column("id", "Row", "id"), Column("occurred_at", "When", "time"), Column("action", "Action"),
                 Column("dag_id", "DAG"), Column("run", "Run", "link")),
        page_size=10, dag_entity="AUDIT_LOG", build=_audit),
    Section(
        key="purges", title="Child-data purges", dag_id=children.DAG_ID, tables=children.TABLES,
        about="Per run: its plan (hash, subjects) and how it was approved, its subjects by outcome (purged, "
              "held, invalid ...) and the reports it settled (no_match: named no account; needs_review: an "
              "address naming several accounts or an adult, waiting for a person); above, the subjects purged in "
              "all, the deletion notices still owed to vendors and the reports waiting for a person.",
        refreshed_by=f"{how_often(children.DAG_ID)} (live), and by a manual run (a dry run unless dry_run is off)",
        filters=(Filter("mode", "Runs", children.MODES),),
        columns=(Column("run", "Run", "link"), Column("as_of", "As of", "date"), Column("mode", "Mode"),
                 Column("state", "State", "state"), Column("plan_subjects", "Plan: subjects", "int"),
                 Column("plan_hash", "Plan hash", "hash"), Column("approval", "Approval"),
                 Column("outcomes", "Subjects by outcome"), Column("reports", "Reports settled"),
                 Column("finished_at", "Finished", "time")),
        page_size=20, build=_purges),
    Section(
        key="manifests", title="Vendor manifests", dag_id=vendors.DAG_ID, tables=vendors.TABLES,
        about="One manifest per vendor and period: shares, subjects, the rules broken, and where the manifest "
              "is (it names its data file and that file's SHA-256).",
        refreshed_by=f"{how_often(vendors.DAG_ID)} over its data interval, and by a manual run for any period",
        filters=(Filter("vendor_id", "Vendor id"), Filter("violations", "Violations", ("only",))),
        columns=(Column("vendor", "Vendor"), Column("period_label", "Period"),
                 Column("row_count", "Shares", "int"), Column("subject_count", "Subjects", "int"),
                 Column("violation_rows", "Shares breaking a rule", "int"), Column("violations", "Rules broken"),
                 Column("manifest_uri", "Manifest (its data file's SHA-256 inside)", "path"),
                 Column("revision", "Revision", "int"), Column("run", "Run", "link")),
        build=_manifests),
    Section(
        key="campaigns", title="Notification campaigns", dag_id=notifications.DAG_ID, tables=notifications.TABLES,
        about="One campaign per policy version (and a test campaign per run that sent to test recipients): sent, "
              "failed, skipped and pending, and requests whose outcome is unknown.",
        refreshed_by=f"{how_often(notifications.DAG_ID)} (a look for a published version), and by a manual run",
        filters=(Filter("scope", "Scope", notifications.SCOPES),),
        columns=(Column("campaign_id", "Campaign", "id"), Column("scope", "Scope"),
                 Column("policy_version", "Policy version"), Column("state", "State", "state"),
                 Column("total", "Recipients", "int"), Column("sent", "Sent", "int"),
                 Column("failed", "Failed", "int"), Column("skipped", "Skipped", "int"),
                 Column("pending", "Pending", "int"), Column("progress", "Done"),
                 Column("duplicates_at_risk", "Outcome unknown", "int"), Column("created_at", "Started", "time"),
                 Column("run", "Run", "link")),
        page_size=20, build=_campaigns),
    Section(
        key="fulfilments", title="Request fulfilments", dag_id=fulfilments.DAG_ID, tables=fulfilments.TABLES,
        about="What was done for each request: export package and checksum, rows erased, or what a person "
              "must do.",
        refreshed_by=f"{how_often(fulfilments.DAG_ID)}, and by a manual run for named requests",
        filters=(Filter("outcome", "Outcome", fulfilments.OUTCOMES), Filter("open", "Still open", ("only",))),
        columns=(Column("request_id", "Request", "id"), Column("request_type", "Type"), Column("action", "Action"),
                 Column("outcome", "Outcome"), Column("reason", "Why / what a person must do"),
                 Column("package_uri", "Package", "path"), Column("package_sha256", "SHA-256", "hash"),
                 Column("rows_erased", "Rows erased", "int"), Column("fulfilled_at", "When", "time"),
                 Column("run", "Run", "link")),
        build=_fulfilments),
    Section(
        key="discovery", title="Personal data the map does not name", dag_id=discovery.DAG_ID, tables=discovery.TABLES,
        about="Open findings of personal-data discovery, oldest first: columns holding personal data the data map does "
              "not name (with a data-map entry to paste, in the email and `privacy-ops discover --format yaml`), "
              "mapped columns gone or no longer personal. Dismiss one with `privacy-ops dismiss-finding`.",
        refreshed_by=f"{how_often(discovery.DAG_ID)}, and by a manual run",
        columns=(Column("finding_id", "Finding", "id"), Column("connection_id", "Connection"),
                 Column("where", "Table.column"), Column("finding", "Finding"), Column("kind", "Kind"),
                 Column("confidence", "Confidence"), Column("counts", "Matched / sampled"),
                 Column("first_seen_at", "First seen", "time"), Column("age_days", "Age (days)", "int"),
                 Column("run", "Last seen by run", "link")),
        build=_discovery),
)
BY_KEY = {s.key: s for s in SECTIONS}


def section(key: str) -> Section:
    try:
        return BY_KEY[key]
    except KeyError:
        raise PageError(f"there is no section {quoted(key)} (sections: {', '.join(BY_KEY)})", 404) from None
