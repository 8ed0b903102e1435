"""The embedded PostgreSQL really starts (also as root), serves psycopg, is reused, and stops."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from devkit import embedded_postgres as ep

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def pg_dir():
    # Not tmp_path: as root the server runs as another user, which must traverse every folder above its
    # data, and each new pytest session (others may run one meanwhile) resets /tmp/pytest-of-root to 0700.
    parent = Path(tempfile.mkdtemp(prefix="privacy-embedded-pg-"))
    parent.chmod(0o755)
    yield parent / "pg"
    ep.stop_embedded(parent / "pg")
    shutil.rmtree(parent, ignore_errors=True)


def _roundtrip(url: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("create table subject (id serial primary key, email text not null)")
        conn.execute("insert into subject (email) values (%s)", ("a@example.com",))
        assert conn.execute("select email from subject").fetchone() == ("a@example.com",)
        # never the OS superuser: PostgreSQL refuses root, so a server that answered does not run as root
        assert conn.execute("select current_user").fetchone() == ("postgres",)


def test_start_connect_reuse_stop(pg_dir):
    data_dir = pg_dir
    url = ep.start_embedded(data_dir)
    try:
        assert (data_dir / "PG_VERSION").exists()
        _roundtrip(url)
        pid = ep._postmaster(data_dir)["pid"]
        if os.geteuid() == 0:
            assert os.stat(f"/proc/{pid}").st_uid != 0
        # a second call (as another process would) gets the same running server, data intact
        assert ep.start_embedded(data_dir) == url
        assert ep._postmaster(data_dir)["pid"] == pid
        params = ep.embedded_connection_params(data_dir)
        assert set(params) == {"host", "port", "user", "dbname"}
        with psycopg.connect(**params) as conn:
            assert conn.execute("select count(*) from subject").fetchone() == (1,)
    finally:
        stopped = ep.stop_embedded(data_dir)
    assert stopped
    assert ep.stop_embedded(data_dir) is False
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
    # restart on the same folder keeps the data
    url = ep.start_embedded(data_dir)
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("select count(*) from subject").fetchone() == (1,)
    finally:
        ep.stop_embedded(data_dir)


def test_falls_back_to_system_pg_ctl(pg_dir, monkeypatch):
    try:
        ep._system_bindir()
    except RuntimeError:
        pytest.skip("no system PostgreSQL binaries here")

    def broken(_data_dir):
        raise ImportError("pgserver unavailable (simulated)")

    monkeypatch.setattr(ep, "_start_pgserver", broken)
    data_dir = pg_dir
    url = ep.start_embedded(data_dir)
    try:
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        _roundtrip(url)
        assert ep.embedded_connection_params(data_dir)["host"] == "127.0.0.1"
    finally:
        assert ep.stop_embedded(data_dir)
