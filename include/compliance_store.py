"""Create and migrate the compliance store (schema ``compliance``).

Migrations are the numbered ``.sql`` files in ``include/sql/compliance``, applied in order in one
transaction (all or nothing), and recorded with their checksum: an applied file that was later edited is refused,
because the store's history must match the code that reads it.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from include.errors import NeedsOperator

log = logging.getLogger(__name__)

SCHEMA = "compliance"
# Serialises concurrent migrators (two workers starting at once) on one server.
_MIGRATION_LOCK = 0x70726976  # 'priv'
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(NeedsOperator, RuntimeError):
    """The store is missing, behind the code, or its applied history was edited."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("include") / "sql" / "compliance"
    found = []
    for item in folder.iterdir():
        match = _FILE.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), item.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two compliance migrations share a number: {versions}")
    return found


def migrate(conn, *, upto: int | None = None) -> list[int]:
    """Bring the store up to date (or up to migration ``upto``: a test of what a migration does to the rows an
    earlier store holds); returns the versions applied now (empty when already current)."""
    applied_now = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.execute(
            f"""create table if not exists {SCHEMA}.schema_migrations (
                    version integer primary key, name text not null, checksum text not null,
                    applied_at timestamptz not null default now())""")
        done = {v: c for v, c in conn.execute(f"select version, checksum from {SCHEMA}.schema_migrations")}
        for migration in available_migrations():
            if upto is not None and migration.version > upto:
                break
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"compliance migration {migration.version:04d}_{migration.name} was changed after it "
                        "was applied; add a new migration instead of editing an applied one")
                continue
            conn.execute(migration.sql)
            conn.execute(
                f"insert into {SCHEMA}.schema_migrations (version, name, checksum) values (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum))
            applied_now.append(migration.version)
            log.info("applied compliance migration %04d_%s", migration.version, migration.name)
    return applied_now


def current_version(conn) -> int | None:
    exists = conn.execute("select to_regclass(%s)", (f"{SCHEMA}.schema_migrations",)).fetchone()[0]
    if exists is None:
        return None
    return conn.execute(f"select max(version) from {SCHEMA}.schema_migrations").fetchone()[0]


def require_current(conn) -> None:
    """Fail with one sentence when the store is missing or behind the code."""
    latest = available_migrations()[-1].version
    have = current_version(conn)
    if have is None:
        raise MigrationError("the compliance store does not exist yet: run `privacy-ops migrate-store`")
    if have < latest:
        raise MigrationError(
            f"the compliance store is at migration {have} but the code needs {latest}: run `privacy-ops migrate-store`")
    # Migrations land from parallel branches, so a lower number can arrive after a higher one was applied.
    applied = {v for (v,) in conn.execute(f"select version from {SCHEMA}.schema_migrations")}
    missing = [m for m in available_migrations() if m.version not in applied]
    if missing:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in missing)
        raise MigrationError(f"the compliance store lacks migration(s) {names}: run `privacy-ops migrate-store`")
