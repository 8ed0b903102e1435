"""The audit chain as the compliance page shows it: the verified head, the newest anchor, whether they agree.

Recomputing every hash of a large log on every page load is too slow (``audit.verify_chain`` walks the
whole log: about a second per 100,000 rows here). :class:`ChainWatch` keeps what it has verified (the
head's row id and hash) between looks, and on each look:

1. checks that the verified head row is still there with the same hash (one read by primary key);
2. verifies only the rows written since, continuing the chain from that head (``audit.row_hash``);
3. checks that the newest anchor at the evidence location names a row of the verified chain with the
   same hash (the anchor listing is cached for ``anchor_every``).

A whole walk (``audit.verify_chain`` with the anchors: every row, every anchor) runs in a background
thread on the first look and again once the last one is older than ``full_every`` (default 15 minutes),
or at once after a look found a problem. So an edit in the middle of the log, behind the database's
triggers, is caught within ``full_every``; the rows written since the last walk are checked on every look.
The page says when the last whole walk ran.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, ContextManager

from include import audit

log = logging.getLogger(__name__)


def log_summary(conn) -> dict:
    """How many audit rows there are, the newest row's id and time (no hashing)."""
    row = conn.execute("""select id, occurred_at, action, dag_id from compliance.audit_log
                          order by id desc limit 1""").fetchone()
    if row is None:
        return {"newest_id": None, "newest_at": None, "newest_action": None, "newest_dag_id": None}
    return {"newest_id": row[0], "newest_at": row[1], "newest_action": row[2], "newest_dag_id": row[3]}


@dataclass(frozen=True)
class Verified:
    """A prefix of the log, rows 1..``last_id``, whose every hash was recomputed and found right."""

    rows: int
    last_id: int | None
    head: str
    full_at: datetime            # when the last whole walk finished
    checked_at: datetime         # when the newest rows were last verified
    rows_since_full: int = 0     # verified incrementally since that walk
    problem: str | None = None   # what the last walk or look found wrong (None: intact)
    anchors: dict | None = None  # what the last whole walk said about the anchors


@dataclass
class _Anchors:
    listed_at: float = 0.0
    newest: audit.Anchor | None = None
    count: int = 0
    error: str | None = None


@dataclass
class ChainWatch:
    """Verified knowledge of the audit chain, kept between page loads (one per API server process).

    ``connect()`` gives a store connection (a context manager), used by the background walk;
    ``anchors()`` gives the object store holding the anchors, or None when no evidence location is set.
    """

    connect: Callable[[], ContextManager]
    anchors: Callable[[], object | None]
    full_every: timedelta = timedelta(minutes=15)
    anchor_every: timedelta = timedelta(seconds=30)
    batch: int = 10_000
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    _verified: Verified | None = None
    _walking_since: datetime | None = None
    _walk_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _anchor_cache: _Anchors = field(default_factory=_Anchors)

    # -- the whole walk -------------------------------------------------------------------------------

    def full_check(self) -> Verified:
        """Walk the whole log and every anchor now (``audit.verify_chain``); remember the result."""
        store = self.anchors()
        started = self.clock()
        with self.connect() as conn:
            report = audit.verify_chain(conn, anchors=store, batch=self.batch)
            # The walk ends at the newest row it saw (rows may have been appended since): find its id.
            # A report about the anchors means the chain itself recomputed: its rows are verified.
            chain_ok = report.ok or report.anchor_problem
            last_id = None
            if chain_ok and report.head != audit.GENESIS:
                last_id = conn.execute("select id from compliance.audit_log where row_hash = %s",
                                       (report.head,)).fetchone()[0]
        anchors = None
        if store is not None:
            anchors = {"count": report.anchors, "newest": report.newest_anchor, "newest_row": report.anchored_row,
                       "rows_since": report.rows_since_anchor, "problem": report.problem if report.anchor_problem
                       else None, "location": str(store.location)}
        verified = Verified(rows=report.rows, last_id=last_id, head=report.head, full_at=self.clock(),
                            checked_at=self.clock(), problem=None if chain_ok else report.problem, anchors=anchors)
        with self._lock:
            self._verified = verified
            self._walk_error = None
        log.info("audit chain walked in %.1f s: %d row(s), %s", (self.clock() - started).total_seconds(),
                 report.rows, "intact" if report.ok else report.problem)
        return verified

    def _walk_in_background(self) -> None:
        with self._lock:
            if self._walking_since is not None:
                return
            self._walking_since = self.clock()

        def walk():
            try:
                self.full_check()
            except Exception as exc:  # the page shows it; the next look starts another walk
                log.warning("the audit chain walk failed: %s", exc)
                with self._lock:
                    self._walk_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            finally:
                with self._lock:
                    self._walking_since = None

        threading.Thread(target=walk, name="audit-chain-walk", daemon=True).start()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait for a background walk to end (tests, benchmarks); True when none is running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._walking_since is None:
                    return True
            time.sleep(0.05)
        return False

    # -- a look -------------------------------------------------------------------------------------

    def status(self, conn) -> dict:
        """What the page shows; starts a whole walk in the background when one is due."""
        with self._lock:
            verified, walking, walk_error = self._verified, self._walking_since, self._walk_error
        now = self.clock()
        if verified is None:
            self._walk_in_background()
            with self._lock:
                walking = self._walking_since
            return {"state": "verifying", "walking_since": walking, "walk_error": walk_error,
                    **log_summary(conn)}
        # Listed before the log is read: an anchor names a row committed before it was written, so every anchor
        # listed now names a row the reads below can see (listed after them, a run ending meanwhile would anchor a
        # row they cannot, which would read as removed rows).
        listed = self._newest_anchor() if verified.problem is None else (None, _Anchors())
        if verified.problem is None:
            verified = self._extend(conn, verified)
        if verified.problem is not None or now - verified.full_at > self.full_every:
            self._walk_in_background()
            with self._lock:
                walking = self._walking_since
        anchor = (self._anchor_agreement(conn, verified, listed) if verified.problem is None else
                  {"problem": None, "note": "not compared: the chain itself is broken"})
        state = "broken" if verified.problem else ("anchors_disagree" if anchor.get("problem") else "verified")
        return {"state": state, "rows": verified.rows, "head_id": verified.last_id, "head": verified.head,
                "full_at": verified.full_at, "checked_at": verified.checked_at,
                "rows_since_full": verified.rows_since_full, "problem": verified.problem,
                "anchor": anchor, "walking_since": walking, "walk_error": walk_error,
                "full_every_minutes": self.full_every.total_seconds() / 60, **log_summary(conn)}

    def _extend(self, conn, verified: Verified) -> Verified:
        """Verify the rows after the verified head (and that the head itself is unchanged)."""
        now = self.clock()
        if verified.last_id is not None:
            row = conn.execute("""select occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, row_hash
                                  from compliance.audit_log where id = %s""", (verified.last_id,)).fetchone()
            # The head's stored hash, and the hash its content gives now, must both be the verified one.
            if row is None or row[8] != verified.head or audit.row_hash(
                    row[7], verified.last_id, audit.Entry(*row[:7])) != verified.head:
                problem = (f"row {verified.last_id}, the head verified at {verified.full_at:%Y-%m-%d %H:%M} UTC, "
                           + ("is no longer in the log" if row is None else "was altered since"))
                return self._remember(replace(verified, problem=problem, checked_at=now))
        prev, last_id, added = verified.head, verified.last_id, 0
        with conn.transaction(), conn.cursor(name="audit_page_extend") as cur:
            cur.itersize = self.batch
            cur.execute("""select id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, row_hash
                           from compliance.audit_log where id > %s order by id""", (verified.last_id or 0,))
            for row_id, occurred_at, actor, action, dag_id, run_id, task_id, details, prev_hash, stored in cur:
                problem = None
                if prev_hash != prev:
                    problem = f"row {row_id} does not follow the row before it (a row was removed or inserted out of chain)"
                elif audit.row_hash(prev, row_id, audit.Entry(occurred_at, actor, action, dag_id, run_id, task_id,
                                                              details)) != stored:
                    problem = f"row {row_id} was altered after it was written"
                if problem:
                    return self._remember(replace(verified, rows=verified.rows + added, last_id=last_id, head=prev,
                                                  rows_since_full=verified.rows_since_full + added,
                                                  checked_at=now, problem=problem))
                prev, last_id, added = stored, row_id, added + 1
        return self._remember(replace(verified, rows=verified.rows + added, last_id=last_id, head=prev,
                                      rows_since_full=verified.rows_since_full + added, checked_at=now))

    def _remember(self, verified: Verified) -> Verified:
        with self._lock:
            current = self._verified
            # A whole walk that finished meanwhile knows better than this look.
            if current is None or current.full_at <= verified.full_at:
                self._verified = verified
                return verified
            return current

    # -- anchors ------------------------------------------------------------------------------------

    def _newest_anchor(self) -> tuple[object | None, _Anchors]:
        store = self.anchors()
        if store is None:
            return None, _Anchors()
        cache = self._anchor_cache
        if time.monotonic() - cache.listed_at < self.anchor_every.total_seconds():
            return store, cache
        fresh = _Anchors(listed_at=time.monotonic())
        try:
            anchors = [a for a in map(audit.parse_anchor_name, store.list(audit.ANCHOR_PREFIX)) if a]
            anchors.sort(key=lambda a: (a.row_id, a.row_hash))
            fresh.count, fresh.newest = len(anchors), (anchors[-1] if anchors else None)
        except Exception as exc:  # the object store's errors are one sentence already
            fresh.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._anchor_cache = fresh
        return store, fresh

    def _anchor_agreement(self, conn, verified: Verified, listed: tuple[object | None, _Anchors]) -> dict:
        """Does the newest anchor (``listed``: :meth:`_newest_anchor`'s) name a row of the verified chain, with the
        same hash?"""
        store, found = listed
        if store is None:
            return {"location": None, "problem": None,
                    "note": "no evidence location is set (privacy setting evidence_location): the anchors "
                            "are not checked, so removed newest rows or a recomputed chain would go unnoticed"}
        result = {"location": str(store.location), "count": found.count, "problem": None, "note": None,
                  "newest_row": found.newest.row_id if found.newest else None,
                  "newest_hash": found.newest.row_hash if found.newest else None,
                  "newest_name": found.newest.name if found.newest else None,
                  "walk": verified.anchors}
        if found.error:
            # The store not answering says nothing of the chain or its anchors: said unchecked (a warning), no
            # disagreement (which reads as tampering, and is counted as a thing waiting for a person); the next look
            # lists them again. A problem the last whole walk found with the anchors still stands (below).
            result["unchecked"] = (f"could not list the anchors at {store.location}: {found.error}; the chain itself "
                                   "is verified above, and the next look lists them again")
        elif found.newest is None:
            if verified.rows:
                recorded = audit.anchors_recorded(conn, str(store.location))
                written, newest_row = recorded or (0, None)
                if recorded is None:
                    result["problem"] = (f"there is no anchor at {store.location}, yet the log has {verified.rows} "
                                         "row(s)")
                elif written:
                    result["problem"] = (f"the anchors were removed: {written} anchor(s) were written at "
                                         f"{store.location} (the newest for row {newest_row}), and none is there "
                                         f"now, yet the log has {verified.rows} row(s)")
                else:
                    result["fresh"] = True
                    result["note"] = (f"this evidence store is new: no anchor was ever written at {store.location}; "
                                      f"the next run of any DAG anchors the head (the log has {verified.rows} "
                                      "row(s), verified above)")
        elif verified.last_id is None or found.newest.row_id > verified.last_id:
            said = (f"the newest anchor names row {found.newest.row_id}, which is not in the verified log (it ends at "
                    f"row {verified.last_id})")
            if audit.anchor_recorded(conn, str(store.location), found.newest.name) is False:
                # As verify-audit says it: the log cannot tell a forged or foreign anchor from removed rows whose
                # anchors' record went with them.
                result["problem"] = (f"{said}, and no run recorded writing it at {store.location}: either the "
                                     "newest rows were removed with the record of their anchors, or the anchor was "
                                     "put there by hand or by another deployment")
            else:
                result["problem"] = f"{said}: the newest rows were removed"
        else:
            row = conn.execute("select row_hash from compliance.audit_log where id = %s",
                               (found.newest.row_id,)).fetchone()
            if row is None:
                result["problem"] = f"the newest anchor names row {found.newest.row_id}, which is no longer in the log"
            elif row[0] != found.newest.row_hash:
                result["problem"] = (f"row {found.newest.row_id}'s hash differs from the newest anchor's (the chain "
                                     "was rewritten)")
            else:
                result["rows_since"] = verified.last_id - found.newest.row_id
        if (result["problem"] is None and not result.get("fresh") and verified.anchors
                and verified.anchors.get("problem")):
            result["problem"] = verified.anchors["problem"]
        return result
