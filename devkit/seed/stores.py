"""Seed the other stores beside a seeded operational database: the support desk (``support_db``) and
analytics (``analytics_db``), each a database of its own.

Derived from the operational seed, deterministically (a seed of its own): tickets from about one account in
ten, by its address as people type it (upper-case, a trailing tab or a no-break space now and then), with one to
three events each and, for a third of them, an attachment in ``gs://acme-support-attachments``; daily usage per
account, day and feature, summed from ``usage_events``. Rows move by ``COPY``.
"""
from __future__ import annotations

from datetime import timedelta

import numpy as np

from devkit import database
from devkit.operational_schema import create_store_schema

ATTACHMENTS_BUCKET = "acme-support-attachments"
UPLOADS_BUCKET = "acme-uploads"
BUCKETS = (UPLOADS_BUCKET, ATTACHMENTS_BUCKET)
_VARIANTS = ("{}", "{}", "{}", "{}\t", "\u00a0{}", "{} ")


def store_urls(ops_url: str) -> dict[str, str]:
    """Where the demo, the Compose stack and ``privacy-ops seed-stores`` keep the other stores: databases
    ``<ops>_support`` and ``<ops>_analytics`` beside the operational database."""
    name = database.database_name(ops_url)
    return {"support_db": database.with_database(ops_url, f"{name}_support"),
            "analytics_db": database.with_database(ops_url, f"{name}_analytics")}


def seed_stores_beside(ops_url: str, *, seed: int = 42, if_empty: bool = False) -> dict | None:
    """Create the two store databases beside ``ops_url`` (made by the kit) and seed them; with ``if_empty``, do
    nothing (None) when the support desk's database already has its tables."""
    urls = store_urls(ops_url)
    with database.connect(ops_url, autocommit=True) as ops:
        if ops.execute("select to_regclass('public.users')").fetchone()[0] is None:
            raise SeedFirst(database.database_name(ops_url))
    states = {c: database.is_ours(ops_url, database.database_name(u)) for c, u in urls.items()}
    for conn_id, state in states.items():
        if state is False:  # someone else's database under the store's name: never written into
            raise database.NotOurDatabase(database.database_name(urls[conn_id]))
    if if_empty and all(states.values()) and all(_has(urls[c], t) for c, t in SEEDED_BY.items()):
        return None
    for url in urls.values():
        # With --if-empty, a store left half-seeded (an interrupted seed) is made again: it is the kit's own.
        database.create_database(ops_url, database.database_name(url), replace=if_empty)
    return seed_stores(ops_url, urls["support_db"], urls["analytics_db"], seed=seed)


# The table each store's seed writes last: a store that has it was seeded whole (each store's seed is one
# transaction).
SEEDED_BY = {"support_db": "ticket_events", "analytics_db": "daily_usage"}


class SeedFirst(ValueError):
    def __init__(self, dbname: str):
        super().__init__(f"database {dbname!r} has no reference tables to build the stores from: seed it first "
                         "(`privacy-ops seed`)")


def _has(url: str, table: str) -> bool:
    with database.connect(url, autocommit=True) as conn:
        return conn.execute("select to_regclass(%s)", (f"public.{table}",)).fetchone()[0] is not None


def seed_stores(ops_url: str, support_url: str, analytics_url: str, *, seed: int = 42) -> dict:
    """Create and fill the support desk and analytics databases from the operational one; returns row counts."""
    rng = np.random.default_rng(seed + 28)
    with database.connect(ops_url, autocommit=True) as ops:
        accounts = ops.execute("select id, email, created_at from users where email is not null and deleted_at "
                               "is null order by id").fetchall()
        usage = ops.execute("""select user_id, (occurred_at at time zone 'UTC')::date, feature, coalesce(sum(api_calls), 0)::int,
                                      coalesce(sum(duration_ms) / 1000, 0)::int
                               from usage_events where occurred_at > '-infinity' and occurred_at < 'infinity'
                                 and feature is not null and user_id is not null
                               group by 1, 2, 3 order by 1, 2, 3""").fetchall()
    tickets, events = [], []
    for user_id, email, created in accounts:
        if rng.random() >= 0.1:
            continue
        for _ in range(int(rng.integers(1, 3))):
            tid = len(tickets) + 1
            variant = _VARIANTS[int(rng.integers(len(_VARIANTS)))]
            address = variant.format(email.upper() if rng.random() < 0.2 else email)
            at = created + timedelta(days=int(rng.integers(1, 300)))
            attachment = f"gs://{ATTACHMENTS_BUCKET}/tickets/{tid}/screenshot.png" if rng.random() < 0.33 else None
            tickets.append((tid, address, "Question about my account", "Hello, I have a question.", attachment, at))
            for n in range(int(rng.integers(1, 4))):
                events.append((len(events) + 1, tid, None if n == 0 else "agent@acme.example",
                               "opened" if n == 0 else "answered", at + timedelta(hours=n)))
    # Each store in one transaction (committed when its block ends): an interrupted seed leaves no half-filled store.
    with database.connect(support_url) as support:
        create_store_schema(support, "support_db")
        _copy(support, "tickets", ("id", "requester_email", "subject", "body", "attachment_uri", "created_at"), tickets)
        _copy(support, "ticket_events", ("id", "ticket_id", "actor_email", "note", "created_at"), events)
    with database.connect(analytics_url) as analytics:
        create_store_schema(analytics, "analytics_db")
        _copy(analytics, "daily_usage", ("user_id", "day", "feature", "api_calls", "seconds_active"), usage)
    return {"tickets": len(tickets), "ticket_events": len(events), "daily_usage": len(usage)}


def _copy(conn, table: str, columns: tuple[str, ...], rows: list) -> None:
    with conn.cursor() as cur, cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
