"""The audit log: an append-only, hash-chained record of everything the workflows did.

Each row's hash covers its own content and the previous row's hash, so editing or removing a row in the
middle breaks every hash after it. The database refuses UPDATE, DELETE and TRUNCATE (see migration 0001);
:func:`verify_chain` catches what a superuser could still do behind the triggers' back.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping

from psycopg.types.json import Jsonb

GENESIS = "0" * 64
# Held while a writer reads the head and inserts its row, so concurrent writers cannot fork the chain.
_CHAIN_LOCK = 0x61756469  # 'audi'


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
        append(store, action, details, actor=self.actor, dag_id=self.dag_id, run_id=self.run_id,
               task_id=self.task_id)


def canonical_details(details: Mapping[str, Any] | None) -> dict:
    """Details as they will read back from jsonb (dates as ISO strings, no floats' rounding surprises)."""
    return json.loads(json.dumps(dict(details or {}), default=_json_default))


def row_hash(prev_hash: str, row_id: int, occurred_at: datetime, actor: str, action: str,
             dag_id: str | None, run_id: str | None, task_id: str | None, details: Mapping[str, Any]) -> str:
    payload = json.dumps(
        {"id": row_id, "occurred_at": occurred_at.astimezone(timezone.utc).isoformat(), "actor": actor,
         "action": action, "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "details": details},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


def append(conn, action: str, details: Mapping[str, Any] | None = None, *, actor: str,
           dag_id: str | None = None, run_id: str | None = None, task_id: str | None = None) -> int:
    """Append one entry in its own transaction (nested in the caller's if one is open); returns its id.

    ``details`` must not hold a data subject's personal data: ids, counts, dates and hashes only.
    """
    details = canonical_details(details)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_CHAIN_LOCK,))
        head = conn.execute("select row_hash from compliance.audit_log order by id desc limit 1").fetchone()
        prev = head[0] if head else GENESIS
        row_id = conn.execute("select nextval('compliance.audit_log_id_seq')").fetchone()[0]
        # Microseconds only: that is what timestamptz keeps, so the hash reads back the same.
        occurred_at = datetime.now(timezone.utc)
        digest = row_hash(prev, row_id, occurred_at, actor, action, dag_id, run_id, task_id, details)
        conn.execute(
            """insert into compliance.audit_log
                   (id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, row_hash)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (row_id, occurred_at, actor, action, dag_id, run_id, task_id, Jsonb(details), prev, digest))
    return row_id


@dataclass(frozen=True)
class ChainReport:
    rows: int
    head: str
    first_bad_id: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(conn, batch: int = 10_000) -> ChainReport:
    """Walk the whole log in id order, recomputing every hash."""
    prev, rows = GENESIS, 0
    # A named (server-side) cursor streams the log instead of loading it whole; it needs a transaction.
    with conn.transaction(), conn.cursor(name="audit_verify") as cur:
        cur.itersize = batch
        cur.execute("""select id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, row_hash
                       from compliance.audit_log order by id""")
        for row_id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, stored in cur:
            if prev_hash != prev:
                return ChainReport(rows, prev, row_id, f"row {row_id} does not follow the row before it "
                                                       "(a row was removed or inserted out of chain)")
            expected = row_hash(prev, row_id, occurred_at, actor, action, dag_id, run_id, task_id, details)
            if expected != stored:
                return ChainReport(rows, prev, row_id, f"row {row_id} was altered after it was written")
            prev, rows = stored, rows + 1
    return ChainReport(rows, prev)
