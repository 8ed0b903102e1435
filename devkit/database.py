"""PostgreSQL plumbing shared by the command line, the demo, the benchmarks and the tests.

Everything here takes libpq URLs (``postgresql://user@host:port/dbname``) and uses psycopg 3. A URL is
checked (:mod:`include.pg_url`) before libpq sees it: a malformed one raises
:class:`~include.pg_url.UrlProblem`, whose sentence names the wrong part and quotes none of the URL.

Databases the kit creates carry a mark (``COMMENT ON DATABASE``, :data:`MARK`); the kit drops or replaces
only a database with that mark (:class:`NotOurDatabase` otherwise), so a URL or a name pointing at someone
else's database can never wipe it. On a server the kit itself started (the embedded one under
``.demo/pg``), every database is the project's: ``server_is_ours=True``.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from include.pg_url import UrlProblem, check as check_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MAINTENANCE_DB = "postgres"
MARK = "privacy-ops: made by the project's dev kit (demo, tests, benchmarks), which may drop it"
# Never dropped, whoever asks: the server's own databases.
PROTECTED = frozenset({"postgres", "template0", "template1"})

__all__ = ["DEFAULT_URL", "MARK", "NotOurDatabase", "DatabaseExists", "UrlProblem", "connect", "answers",
           "with_database", "database_name", "is_ours", "create_database", "mark_as_ours", "drop_database"]


class NotOurDatabase(ValueError):
    """A database the kit was asked to drop or replace but did not create (no mark): one sentence."""

    def __init__(self, dbname: str):
        super().__init__(f"database {dbname!r} was not created by privacy-ops (it lacks the project's mark, a "
                         "COMMENT ON DATABASE), so it is not dropped: name a database that does not exist yet, "
                         "or drop this one yourself")
        self.dbname = dbname


class DatabaseExists(ValueError):
    def __init__(self, dbname: str):
        super().__init__(f"database {dbname!r} already exists")
        self.dbname = dbname


def _check_target(url: str) -> None:
    """A URL is checked before libpq sees it (what a person types: its message must not quote the URL); a
    ``key=value`` connection string is what a live connection hands back (``conn.info.dsn``, no password in
    it), passed on as it is. Commands refuse a ``key=value`` string where a person gives one (their own check)."""
    if "://" in url or "=" not in url:
        check_url(url)


def connect(url: str, **kwargs) -> psycopg.Connection:
    _check_target(url)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.ProgrammingError:  # libpq's parse error quotes the URL, password and all
        raise UrlProblem("libpq cannot parse it") from None


def answers(url: str, timeout: int = 3) -> bool:
    """True when a server at ``url`` accepts a connection and a query (a malformed URL raises UrlProblem)."""
    _check_target(url)
    try:
        with psycopg.connect(url, connect_timeout=timeout) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointed at another database (the query string, e.g. a socket host, is kept)."""
    check_url(url)
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "dbname"],
                      safe="/", quote_via=quote)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, query, parts.fragment))


def database_name(url: str) -> str:
    """The database a URL names (``?dbname=`` wins over the path, as in libpq); ``postgres`` when none."""
    check_url(url)
    parts = urlsplit(url)
    from_query = dict(parse_qsl(parts.query)).get("dbname")
    return from_query or unquote(parts.path.lstrip("/")) or MAINTENANCE_DB


def _mark_of(conn, dbname: str) -> bool | None:
    """True: the database carries the mark; False: it exists without it; None: there is no such database."""
    row = conn.execute("select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
                       (dbname,)).fetchone()
    return None if row is None else row[0] == MARK


def is_ours(url: str, dbname: str) -> bool | None:
    """Whether ``dbname`` on the server of ``url`` carries the kit's mark (None: it does not exist)."""
    with connect(with_database(url, MAINTENANCE_DB), autocommit=True) as conn:
        return _mark_of(conn, dbname)


def _drop(conn, dbname: str, state: bool | None, server_is_ours: bool) -> None:
    if state is None:
        return
    if dbname in PROTECTED or not (state or server_is_ours):
        raise NotOurDatabase(dbname)
    conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname)))


def create_database(url: str, dbname: str, *, replace: bool = False, server_is_ours: bool = False) -> str:
    """Create ``dbname`` on the server of ``url``, marked as the kit's, and return its URL.

    ``replace`` drops an existing one first, but only one the kit made (:class:`NotOurDatabase` otherwise);
    without it an existing database raises :class:`DatabaseExists`.
    """
    with connect(with_database(url, MAINTENANCE_DB), autocommit=True) as conn:
        state = _mark_of(conn, dbname)
        if state is not None:
            if not replace:
                raise DatabaseExists(dbname)
            _drop(conn, dbname, state, server_is_ours)
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
        mark_as_ours(conn, dbname)
    return with_database(url, dbname)


def mark_as_ours(conn, dbname: str) -> None:
    """Mark a database the kit just made (also one made from a template: neither the mark nor a database's
    settings are copied) as the kit's, and as scratch.

    Scratch: ``synchronous_commit = off`` for every session on it. A commit then returns before its WAL reaches
    the disk (2.7 ms a commit here, 0.08 ms without the wait); a server crash may lose the last fraction of a
    second of commits, never consistency, and nothing in a demo, test or benchmark database is kept. Nothing
    else changes: every transaction, lock and constraint behaves as it does in production."""
    conn.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(dbname), sql.Literal(MARK)))
    conn.execute(sql.SQL("alter database {} set synchronous_commit = off").format(sql.Identifier(dbname)))


def drop_database(url: str, dbname: str, *, server_is_ours: bool = False) -> None:
    """Drop ``dbname`` if it exists, only when the kit made it (:class:`NotOurDatabase` otherwise)."""
    with connect(with_database(url, MAINTENANCE_DB), autocommit=True) as conn:
        _drop(conn, dbname, _mark_of(conn, dbname), server_is_ours)
