"""The tests' scratch databases are dropped off the tests' path, a few at a time.

``DROP DATABASE`` makes PostgreSQL take a checkpoint and waits for it: every dirty page of the whole server is
written and synced first. Measured over three modules run on 3 workers (tests/test_e2e_dsr_fulfilment.py,
test_child_purge.py, test_fulfilment.py): 66 drops waited 39 s in all, 0.6 s a drop, about 14 % of the run's
wall time, the tests standing still. So a test hands its databases to :func:`drop_later` and goes on; a thread
of the test process drops them once :data:`BATCH` are waiting, all at once on a connection each, and :func:`flush`
drops the rest when the session ends (tests/conftest.py, before the server the tests run on is stopped). Drops
that wait at the same time share a checkpoint: twelve dropped one after the other took twelve checkpoints, twelve at
once two (``pg_stat_bgwriter.checkpoints_req``), and every checkpoint makes the next change of each page write the
whole page to the WAL again. A test process that is killed leaves its last few behind, as an
immediate drop would have left the databases of the test it was in.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from devkit import database

BATCH = 8

log = logging.getLogger("tests.scratch")
_lock = threading.Lock()
_pending: list[tuple[str, str]] = []
_dropper: threading.Thread | None = None


def _drop_one(server_url: str, name: str) -> None:
    try:
        database.drop_database(server_url, name)
    except Exception as exc:  # a drop that fails must not fail a later, unrelated test
        log.warning("could not drop scratch database %s: %s", name, exc)


def _drop(batch: list[tuple[str, str]]) -> None:
    if batch:
        with ThreadPoolExecutor(min(len(batch), BATCH), thread_name_prefix="scratch-drop") as drops:
            list(drops.map(lambda item: _drop_one(*item), batch))


def drop_later(server_url: str, name: str) -> None:
    """Drop the kit's database ``name`` soon, off the caller's path (only one the kit made, as
    :func:`devkit.database.drop_database` checks)."""
    global _dropper
    with _lock:
        _pending.append((server_url, name))
        if len(_pending) < BATCH or (_dropper is not None and _dropper.is_alive()):
            return
        batch = _pending[:]
        _pending.clear()
        _dropper = threading.Thread(target=_drop, args=(batch,), name="scratch-drops", daemon=True)
        _dropper.start()


def flush() -> None:
    """Drop every database still waiting, and wait for the thread: the session's end."""
    with _lock:
        thread, batch = _dropper, _pending[:]
        _pending.clear()
    if thread is not None:
        thread.join()
    _drop(batch)
