"""The tests' scratch databases are dropped off the tests' path (tests/scratch.py): every one handed over is gone
once the batch is dropped or the session flushes, and a database the kit did not make is never dropped."""
from __future__ import annotations

import uuid

from devkit import database
from tests import scratch


def _exists(pg_server_url: str, name: str) -> bool:
    with database.connect(database.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
        return conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is not None


def test_every_database_handed_over_is_dropped_by_the_flush(pg_server_url):
    names = [f"privacy_scratch_{uuid.uuid4().hex[:10]}" for _ in range(scratch.BATCH + 2)]
    for name in names:
        database.create_database(pg_server_url, name)
    for name in names:
        scratch.drop_later(pg_server_url, name)
    scratch.flush()
    assert [n for n in names if _exists(pg_server_url, n)] == []


def test_a_database_the_kit_did_not_make_is_left_alone(pg_server_url):
    name = f"privacy_not_ours_{uuid.uuid4().hex[:10]}"
    with database.connect(database.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        scratch.drop_later(pg_server_url, name)
        scratch.flush()  # the refusal is logged, not raised into a later test
        assert _exists(pg_server_url, name)
    finally:
        with database.connect(database.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
            conn.execute(f'drop database "{name}"')
