"""The audit log: an append-only, hash-chained record of everything the workflows did.

Each row's hash covers its own content and the previous row's hash, so editing or removing a row in the
middle breaks every hash after it. The database refuses UPDATE, DELETE and TRUNCATE (see migration 0001);
:func:`verify_chain` catches what a superuser could still do behind the triggers' back.

Two things the chain alone cannot show: that its newest rows were removed, and that every hash was
recomputed after an edit. So at the end of each run :func:`anchor_head` writes the head (row id and hash)
to an object store outside the database, where a bucket retention policy can make it undeletable, and
``verify_chain(conn, anchors=store)`` checks the chain against every anchor.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence

from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from include.objectstore import ObjectStore

GENESIS = "0" * 64
# Held while a writer reads the head and inserts its row, so concurrent writers cannot fork the chain.
_CHAIN_LOCK = 0x61756469  # 'audi'
# The longest actor a person's call records: 'person:' and a name the command line takes (--by, at most 100
# characters), with room to spare. A longer one is refused, never cut: a name cut short may name someone else.
ACTOR_CHARS = 120


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"audit details cannot hold a {type(value).__name__}")


@dataclass(frozen=True)
class RunContext:
    """Who is acting, for the audit log, and when."""

    run_id: str
    actor: str
    dag_id: str | None = None
    task_id: str | None = None
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    def audit(self, store, action: str, details: dict) -> None:
        append(store, action, details, actor=self)

    def audit_step(self, store, action: str, details: Mapping[str, Any], *, summed: Sequence[str] = (),
                   kept: Sequence[str] = ()) -> dict:
        """Audit a step's own entry (one per attempt of the step), saying so when the step runs again under this run
        id and what it did over all its attempts (:func:`step_entry`); returns the details written. The earlier
        entries are read under the chain's lock, in the transaction that appends: an attempt's entry committed
        while this one waited for the chain is one of them."""
        with store.transaction():
            store.execute("select pg_advisory_xact_lock(%s)", (_CHAIN_LOCK,))  # append takes it again: re-entrant
            written = step_entry(store, self, action, details, summed=summed, kept=kept)
            append(store, action, written, actor=self)
        return written


def canonical_details(details: Mapping[str, Any] | None) -> dict:
    """Details as they will read back from jsonb (dates as ISO strings, no floats' rounding surprises): a float of
    1e16 or more is written as the whole number it is, since jsonb gives ``1e16`` back as ``10000000000000000`` and
    the row's hash would no longer verify; a negative zero, which jsonb gives back as ``0.0``, is written as ``0.0``;
    NaN and infinities, which jsonb cannot hold, are refused; so is text jsonb cannot hold (a NUL character, half
    of a surrogate pair), naming its key."""
    return json.loads(json.dumps(_whole_floats(dict(details or {})), default=_json_default, allow_nan=False))


def _whole_floats(value: Any, key: str = "") -> Any:
    if isinstance(value, float):
        if value == 0:  # -0.0 too: jsonb has no negative zero
            return 0.0
        return int(value) if math.isfinite(value) and abs(value) >= 1e16 else value
    if isinstance(value, str):
        return _storable(value, key)
    if isinstance(value, Mapping):
        return {(_storable(k, key) if isinstance(k, str) else k): _whole_floats(v, f"{key}.{k}" if key else str(k))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_whole_floats(v, key) for v in value]
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str, key: str) -> str:
    found = _UNSTORABLE.search(text)
    if found:
        what = "a NUL character" if found.group() == "\x00" else "half of a surrogate pair"
        where = f"detail {_UNSTORABLE.sub('?', key)!r}" if key else "a detail's name"
        raise ValueError(f"audit details cannot hold {what} (in {where}): jsonb cannot store it")
    return text


class Entry(NamedTuple):
    """An audit row's content, in the order of its columns (``occurred_at`` to ``details``)."""

    occurred_at: datetime
    actor: str
    action: str
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    details: Mapping[str, Any]


def row_hash(prev_hash: str, row_id: int, entry: Entry) -> str:
    """The row's hash: SHA-256 of the previous row's hash and the row's canonical JSON."""
    payload = json.dumps(
        {"id": row_id, "occurred_at": entry.occurred_at.astimezone(timezone.utc).isoformat(), "actor": entry.actor,
         "action": entry.action, "dag_id": entry.dag_id, "run_id": entry.run_id, "task_id": entry.task_id,
         "details": entry.details},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


def append(conn, action: str, details: Mapping[str, Any] | None = None, *, actor: "str | RunContext") -> int:
    """Append one entry in its own transaction (nested in the caller's if one is open); returns its id.

    ``actor``: who acts, a name, or a run's :class:`RunContext` (its actor, DAG, run and task go in the row).
    ``details`` must not hold a data subject's personal data: ids, counts, dates and hashes only.
    """
    ctx = actor if isinstance(actor, RunContext) else None
    who = ctx.actor if ctx else actor
    dag_id, run_id, task_id = (ctx.dag_id, ctx.run_id, ctx.task_id) if ctx else (None, None, None)
    details = canonical_details(details)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_CHAIN_LOCK,))
        # After the lock, in a statement of its own: its snapshot sees the entry the lock's last holder wrote.
        head, row_id = conn.execute("select (select row_hash from compliance.audit_log order by id desc limit 1), "
                                    "nextval('compliance.audit_log_id_seq')").fetchone()
        prev = head if head is not None else GENESIS
        # Microseconds only: that is what timestamptz keeps, so the hash reads back the same.
        occurred_at = datetime.now(timezone.utc)
        digest = row_hash(prev, row_id, Entry(occurred_at, who, action, dag_id, run_id, task_id, details))
        conn.execute(
            """insert into compliance.audit_log
                   (id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, row_hash)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (row_id, occurred_at, who, action, dag_id, run_id, task_id, Jsonb(details), prev, digest))
    return row_id


# The keys a step's entry written again by a re-run of the step adds (step_entry).
RERUN_OF, THIS_ATTEMPT = "rerun_of", "this_attempt"


def step_entry(conn, ctx: RunContext, action: str, attempt: Mapping[str, Any], *, summed: Sequence[str] = (),
               kept: Sequence[str] = ()) -> dict:
    """What a step's own entry records (its summary, one per attempt of the step; not an entry per subject or message).

    On the step's first run, ``attempt`` as it is. Run again under the same run id (Airflow's retry, the task or the
    run cleared), the run already has an entry of ``action``, and the entry says so and says what the step did over
    all its attempts, not what this attempt added, so that no one reads the work as done twice:

    - ``rerun_of``: the id of the run's first entry of ``action``;
    - the keys in ``summed`` (counts of work an attempt does once: subjects erased, by outcome) added up over the run's
      entries of ``action`` and this attempt; the keys in ``kept`` (what the step was given: the subjects it took
      up) as the first entry says them; any other key as this attempt says it (the plan, what is left now);
    - ``this_attempt``: what this attempt itself did (its ``summed`` and ``kept`` keys), when there are any."""
    same_dag = "dag_id = %(dag)s" if ctx.dag_id is not None else "dag_id is null"
    earlier = conn.execute(f"""select id, details from compliance.audit_log
                               where {same_dag} and run_id = %(run)s and action = %(action)s order by id""",
                           {"dag": ctx.dag_id, "run": ctx.run_id, "action": action}).fetchall()
    details = dict(attempt)
    if not earlier:
        return details
    first_id, first = earlier[0]
    own = {k: attempt[k] for k in (*kept, *summed) if k in attempt}
    for key in summed:
        total = attempt.get(key)
        for _, entry in earlier:
            part = entry.get(THIS_ATTEMPT, {}) if RERUN_OF in entry else entry
            total = _added(total, part.get(key))
        details[key] = total
    for key in kept:
        if key in first:
            details[key] = first[key]
    details[RERUN_OF] = first_id
    if own:
        details[THIS_ATTEMPT] = own
    return details


def _added(a: Any, b: Any) -> Any:
    """Two attempts' counts added up: numbers, or mappings of counts key by key (either may be missing)."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return {k: _added(a.get(k), b.get(k)) for k in sorted({*a, *b})}
    return a + b


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found. ``anchors`` is None when the chain was not checked against anchors."""

    rows: int
    head: str
    first_bad_id: int | None = None
    problem: str | None = None
    anchors: int | None = None
    newest_anchor: str | None = None     # its object name
    anchored_row: int | None = None      # the row the newest anchor names
    rows_since_anchor: int = 0           # rows written after it (not yet anchored: normal until the run ends)
    bad_anchor: str | None = None        # the anchor the problem names
    anchor_problem: bool = False         # the chain recomputes, but does not match its anchors

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(conn, anchors: "ObjectStore | None" = None, *, batch: int = 10_000) -> ChainReport:
    """Walk the whole log in id order, recomputing every hash; then check it against ``anchors``.

    ``anchors`` is the object store the runs anchor the chain's head to (see :func:`anchor_head`). Each
    anchor's name carries its row id and that row's full hash, so one listing checks every anchor
    against the recomputed chain in the same pass; the newest anchor is also read, to confirm its content
    says what its name says. An anchor whose row is gone means the newest rows were removed; one whose row
    hash differs means the chain was recomputed after an edit. An anchor the store recorded writing there
    (``compliance.audit_anchors``) that is no longer there means anchors were removed: with the newest anchor
    and the rows after the one before it gone, the rest would still agree.
    """
    # Read before the listing: a run records an anchor after writing it, so every anchor recorded by now is
    # listed below unless it was removed (a run anchoring meanwhile is listed, or not yet recorded).
    recorded = recorded_anchors(conn, str(anchors.location)) if anchors is not None else None
    expected = _load_anchors(anchors) if anchors is not None else None
    pending = list(expected.anchors) if expected else []
    failures: list[tuple[Anchor, str]] = []
    next_anchor = 0
    newest_id = pending[-1].row_id if pending else None
    prev, rows, last_id, since = GENESIS, 0, None, 0
    # A named (server-side) cursor streams the log instead of loading it whole; it needs a transaction.
    with conn.transaction(), conn.cursor(name="audit_verify") as cur:
        cur.itersize = batch
        cur.execute("""select id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, row_hash
                       from compliance.audit_log order by id""")
        for row_id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, stored in cur:
            if prev_hash != prev:
                return ChainReport(rows, prev, row_id, f"row {row_id} does not follow the row before it "
                                                       "(a row was removed or inserted out of chain)")
            recomputed = row_hash(prev, row_id, Entry(occurred_at, actor, action, dag_id, run_id, task_id, details))
            if recomputed != stored:
                return ChainReport(rows, prev, row_id, f"row {row_id} was altered after it was written")
            while next_anchor < len(pending) and pending[next_anchor].row_id <= row_id:
                anchor = pending[next_anchor]
                if anchor.row_id < row_id:
                    failures.append((anchor, "gone"))
                elif anchor.row_hash != stored:
                    failures.append((anchor, "differs"))
                next_anchor += 1
            if newest_id is not None and row_id > newest_id:
                since += 1
            prev, rows, last_id = stored, rows + 1, row_id
    if expected is None:
        return ChainReport(rows, prev)
    failures.extend((anchor, "past_end") for anchor in pending[next_anchor:])
    listed = {a.name for a in expected.anchors} | {name for name, _ in expected.malformed}
    removed = sorted((a for a in recorded or () if a.name not in listed), key=lambda a: (a.row_id, a.row_hash))
    return _anchor_report(rows, prev, last_id, since, replace(
        expected, removed=tuple(removed), recorded=None if recorded is None else frozenset(a.name for a in recorded)),
        failures)


# -- anchoring the head outside the database ----------------------------------------------------------

ANCHOR_PREFIX = "audit-anchors/"
ANCHOR_FORMAT = "privacy-ops audit anchor v1"
_ANCHOR_NAME = re.compile(r"^audit-anchors/(\d{12,})-([0-9a-f]{64})\.json$")


def run_wrote_rows(conn, *, dag_id: str | None, run_id: str) -> bool:
    """True when this DAG run appended at least one audit row (an anchor is owed at its end)."""
    if conn.execute("select to_regclass('compliance.audit_log')").fetchone()[0] is None:
        return False
    return conn.execute("select exists (select 1 from compliance.audit_log where dag_id = %s and run_id = %s)",
                        (dag_id, run_id)).fetchone()[0]


def anchor_name(row_id: int, digest: str) -> str:
    """``audit-anchors/<row id, 12 digits>-<the row's full hash>.json``: sorts by row, names the hash."""
    return f"{ANCHOR_PREFIX}{row_id:012d}-{digest}.json"


def anchor_head(store_conn, objects: "ObjectStore", *, run_id: str | None, dag_id: str | None) -> dict | None:
    """Write the chain's current head to ``objects`` as one new object; None when the log is empty.

    Idempotent: the object's name is derived from the head (row id and hash), and a head that is already
    anchored is not written again (the write is create-only, so two runs ending together do not clash).
    Returns the anchor's fields with ``name``, ``uri`` and ``written`` (False when it was there already).
    Raises the object store's errors (:mod:`include.objectstore`) when the store cannot be written.
    """
    from include.objectstore import ObjectExists

    head = store_conn.execute(
        "select id, row_hash, occurred_at from compliance.audit_log order by id desc limit 1").fetchone()
    if head is None:
        return None
    row_id, digest, occurred_at = head
    name = anchor_name(row_id, digest)
    anchor = {"format": ANCHOR_FORMAT, "row_id": row_id, "row_hash": digest,
              "occurred_at": occurred_at.astimezone(timezone.utc).isoformat(),
              "anchored_at": datetime.now(timezone.utc).isoformat(), "run_id": run_id, "dag_id": dag_id}
    body = (json.dumps(anchor, sort_keys=True, indent=1) + "\n").encode()
    try:
        objects.put(name, body, "application/json", overwrite=False)
    except ObjectExists:  # an earlier run (or one ending at the same moment) anchored this head
        record_anchor(store_conn, str(objects.location), {**anchor, "name": name})
        anchor = {key: anchor[key] for key in ("format", "row_id", "row_hash", "occurred_at")}
        return {**anchor, "name": name, "uri": objects.uri(name), "written": False}
    record_anchor(store_conn, str(objects.location), {**anchor, "name": name})
    return {**anchor, "name": name, "uri": objects.uri(name), "written": True}


def record_anchor(store_conn, location: str, anchor: Mapping[str, Any]) -> None:
    """Note in the store that an anchor (``name``, ``row_id``, ``row_hash``, ``run_id``, ``dag_id``) is at
    ``location`` (``compliance.audit_anchors``, migration 0013): the page then tells a new evidence store from one
    whose anchors were removed."""
    store_conn.execute(
        """insert into compliance.audit_anchors (location, name, row_id, row_hash, anchored_at, dag_id, run_id)
           values (%s, %s, %s, %s, now(), %s, %s) on conflict (location, name) do nothing""",
        (location, anchor["name"], anchor["row_id"], anchor["row_hash"], anchor.get("dag_id"), anchor.get("run_id")))


def recorded_anchors(store_conn, location: str) -> "list[Anchor] | None":
    """Every anchor the store recorded writing at ``location``; None for a store older than the record."""
    if store_conn.execute("select to_regclass('compliance.audit_anchors') is null").fetchone()[0]:
        return None
    return [Anchor(*row) for row in store_conn.execute(
        "select name, row_id, row_hash from compliance.audit_anchors where location = %s", (location,))]


def anchor_recorded(store_conn, location: str, name: str) -> bool | None:
    """Did a run record writing the anchor ``name`` at ``location``? None for a store older than the record."""
    if store_conn.execute("select to_regclass('compliance.audit_anchors') is null").fetchone()[0]:
        return None
    return store_conn.execute("select exists (select from compliance.audit_anchors where location = %s and name = %s)",
                              (location, name)).fetchone()[0]


def anchors_recorded(store_conn, location: str) -> tuple[int, int | None] | None:
    """(how many anchors the store recorded writing at ``location``, the newest one's row id); None for a store
    older than the record (migration 0013), which cannot tell."""
    if store_conn.execute("select to_regclass('compliance.audit_anchors') is null").fetchone()[0]:
        return None
    count, newest = store_conn.execute("select count(*), max(row_id) from compliance.audit_anchors "
                                       "where location = %s", (location,)).fetchone()
    return int(count), newest


class Anchor(NamedTuple):
    """An anchor object as its name says: the name, the row it anchors and that row's hash."""

    name: str
    row_id: int
    row_hash: str


@dataclass(frozen=True)
class _AnchorSet:
    where: str
    anchors: tuple[Anchor, ...]          # by row id, then hash
    malformed: tuple[tuple[str, str], ...]  # (name, why)
    removed: tuple[Anchor, ...] = ()     # recorded in the store as written here, and no longer here
    recorded: frozenset[str] | None = None  # the names the store recorded writing here (None: it cannot tell)


def parse_anchor_name(name: str) -> Anchor | None:
    """The anchor an object name stands for (``audit-anchors/<row id>-<row hash>.json``), else None."""
    match = _ANCHOR_NAME.match(name)
    return Anchor(name, int(match.group(1)), match.group(2)) if match else None


def _load_anchors(objects: "ObjectStore") -> _AnchorSet:
    """List the anchors once; read the newest to check that its content matches its name."""
    anchors, malformed = [], []
    for name in objects.list(ANCHOR_PREFIX):
        anchor = parse_anchor_name(name)
        if anchor:
            anchors.append(anchor)
        else:
            malformed.append((name, "its name is not <12-digit row id>-<64-hex row hash>.json"))
    anchors.sort(key=lambda a: (a.row_id, a.row_hash))
    if anchors:
        why = _content_problem(objects, anchors[-1])
        if why:
            malformed.append((anchors[-1].name, why))
    where = objects.uri(ANCHOR_PREFIX.rstrip("/"))
    return _AnchorSet(where, tuple(anchors), tuple(malformed))


def _content_problem(objects: "ObjectStore", anchor: Anchor) -> str | None:
    from include.objectstore import ObjectCorrupt, ObjectNotFound

    try:
        content = json.loads(objects.get(anchor.name))
    except ObjectNotFound:
        return "it was listed but cannot be read any more"
    except ObjectCorrupt:
        return "what was read does not match the checksum the store keeps for it: altered where it is kept"
    except (UnicodeDecodeError, ValueError):
        return "its content is not JSON"
    if not isinstance(content, dict):
        return "its content is not a JSON object"
    if content.get("row_id") != anchor.row_id or content.get("row_hash") != anchor.row_hash:
        return "its content names another row or hash than its name"
    return None


def _anchor_report(rows: int, head: str, last_id: int | None, since: int, found: _AnchorSet,
                   failures: list[tuple[Anchor, str]]) -> ChainReport:
    anchors = found.anchors
    newest = anchors[-1] if anchors else None
    base = dict(rows=rows, head=head, anchors=len(anchors), newest_anchor=newest.name if newest else None,
                anchored_row=newest.row_id if newest else None, rows_since_anchor=since)
    if failures:
        failures.sort(key=lambda f: (f[0].row_id, f[0].row_hash))
        (oldest, _), (worst, kind) = failures[0], failures[-1]
        if kind == "past_end":
            ends = f"the log now ends at row {last_id}" if last_id is not None else "the log is now empty"
            beyond = sum(1 for _, k in failures if k == "past_end")
            if found.recorded is not None and worst.name not in found.recorded:
                # Past the end, and no run recorded writing it: a forged or foreign anchor, or the newest rows
                # removed together with the store's record of their anchors. The log cannot tell which.
                problem = (f"anchor {worst.name} names row {worst.row_id}, which is not in the log ({ends}), and "
                           f"no run recorded writing it at {found.where}: either the newest rows were removed with "
                           "the record of their anchors, or the anchor was put there by hand or by another "
                           f"deployment ({beyond} anchor(s) name rows after the log's end)")
            else:
                problem = (f"anchor {worst.name} names row {worst.row_id}, which is no longer in the log "
                           f"(the newest rows were removed: {ends}, and {beyond} anchor(s) name rows after it)")
        elif kind == "gone":
            problem = (f"anchor {worst.name} names row {worst.row_id}, which is no longer in the log "
                       "(rows were removed and the chain recomputed)")
        else:
            problem = (f"anchor {worst.name}: row {worst.row_id}'s hash differs from the anchored one "
                       f"(the chain was rewritten; {len(failures)} of {len(anchors)} anchor(s) disagree, "
                       f"the oldest at row {oldest.row_id})")
        return ChainReport(**base, first_bad_id=oldest.row_id, problem=problem, bad_anchor=worst.name,
                           anchor_problem=True)
    if found.removed:
        removed = found.removed
        newest = removed[-1]
        ends = "the log is now empty" if last_id is None else f"the log now ends at row {last_id}"
        tail = (f"; it named row {newest.row_id} and {ends}: the newest rows were removed too"
                if last_id is None or newest.row_id > last_id else "")
        problem = (f"anchor {newest.name}, which a run recorded writing at {found.where}, is no longer there "
                   f"({len(removed)} recorded anchor(s) are missing: anchors were removed{tail})")
        return ChainReport(**base, problem=problem, bad_anchor=newest.name, anchor_problem=True)
    if found.malformed:
        name, why = found.malformed[0]
        more = f"; {len(found.malformed)} such object(s)" if len(found.malformed) > 1 else ""
        return ChainReport(**base, problem=f"anchor {name} is malformed ({why}{more})", bad_anchor=name,
                           anchor_problem=True)
    if not anchors and rows:
        return ChainReport(**base, problem=f"there is no anchor at {found.where}, yet the log has {rows} row(s) "
                                           "(the anchors were removed, or the runs anchor somewhere else)",
                           anchor_problem=True)
    return ChainReport(**base)
