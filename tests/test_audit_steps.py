"""A step's own audit entry (audit.RunContext.audit_step) against another attempt of the same step writing at once."""
from __future__ import annotations

import threading
import time

from devkit.database import connect
from include import audit


def _waiting_for_the_chain(conn) -> bool:
    return conn.execute("select exists (select 1 from pg_locks where locktype = 'advisory' and not granted "
                        "and objid = %s)", (audit._CHAIN_LOCK,)).fetchone()[0]


def test_a_step_entry_written_while_another_attempt_holds_the_chain_names_that_attempts_entry(store_db):
    """Found by a review: audit_step read the run's earlier entries of its step before taking the audit chain's lock,
    so an attempt whose entry was committed while this one waited for the chain (a zombie attempt and its retry,
    two writers at once) was missed: two entries each reading as the step's first, their work not summed. The
    earlier entries are read under the chain's lock now."""
    ctx = audit.RunContext(run_id="manual__twice", actor="test", dag_id="child_data_purge", task_id="purge")
    written: dict = {}
    with connect(store_db, autocommit=True) as holder, connect(store_db, autocommit=True) as writer:
        with holder.transaction():
            holder.execute("select pg_advisory_xact_lock(%s)", (audit._CHAIN_LOCK,))
            thread = threading.Thread(target=lambda: written.update(ctx.audit_step(
                writer, "child_purge.purged", {"outcomes": {"purged": 2}}, summed=("outcomes",))))
            thread.start()
            deadline = time.monotonic() + 20
            while not _waiting_for_the_chain(holder) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _waiting_for_the_chain(holder), "the step's entry never waited for the chain"
            # The other attempt's entry, committed with the lock's release (append re-enters the lock it holds).
            first = audit.append(holder, "child_purge.purged", {"outcomes": {"purged": 3}}, actor=ctx)
        thread.join(20)
    assert not thread.is_alive()
    assert written.get(audit.RERUN_OF) == first, written
    assert written["outcomes"] == {"purged": 5} and written[audit.THIS_ATTEMPT] == {"outcomes": {"purged": 2}}
