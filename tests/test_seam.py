"""The Airflow seam: connections from AIRFLOW_CONN_*, and failures an on-call engineer can read."""
from __future__ import annotations

import contextlib
import json
from functools import partial

import psycopg
import pytest
# Imported here, not first inside a test: Airflow configures logging at its first import, which replaces the root
# handlers and with them the one caplog installed for that test (its caplog.text then stays empty when run alone).
from airflow.sdk import exceptions as _airflow_exceptions  # noqa: F401

from devkit.local_airflow import postgres_connection
from include.errors import ConfigurationProblem
from include.seam import connections as runtime
from include.seam.task import readable_failures

psycopg_connect = partial(psycopg.connect, autocommit=True)


def test_missing_connection_is_one_sentence_and_not_retried(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_CONN_OPS_DB", raising=False)
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.ops_db():
            pass
    assert str(err.value) == ("Airflow connection 'ops_db' is not defined: add it under Admin > Connections "
                              "or set AIRFLOW_CONN_OPS_DB")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_connection_variable_airflow_cannot_read_is_not_called_undefined(monkeypatch, capsys):
    """Found by a fault trial: a truncated AIRFLOW_CONN_OPS_DB was reported as 'not defined ... or set
    AIRFLOW_CONN_OPS_DB', though it was set. The sentence says it is set and unreadable, and never repeats it."""
    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", '{"conn_type": "postgres", "password": "s3cret-value"')
    with pytest.raises(ConfigurationProblem) as err:
        runtime.connection("ops_db")
    assert str(err.value) == ("Airflow connection 'ops_db' cannot be read: AIRFLOW_CONN_OPS_DB is set, but Airflow "
                              "could not read it as a connection URI or a connection's JSON; correct its value")
    assert "s3cret-value" not in str(err.value) + "".join(capsys.readouterr())


def test_unreachable_database_is_one_sentence_and_retried(monkeypatch):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection("postgresql://postgres@127.0.0.1:1/nowhere"))
    with pytest.raises(AirflowException) as err:
        with readable_failures(), runtime.ops_db():
            pass
    assert not isinstance(err.value, AirflowFailException)  # Airflow's retries apply
    assert str(err.value).startswith("the database of connection 'ops_db' did not answer:")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("target, said", [
    ("postgresql://no_such_role_for_tests:wrong@127.0.0.1:5432/postgres", 'FATAL: role "no_such_role_for_tests" does not exist'),
    ("postgresql://postgres@127.0.0.1:5432/no_such_database_for_tests", 'FATAL: database "no_such_database_for_tests" does not exist')])
def test_a_refused_login_or_a_missing_database_fails_at_once(monkeypatch, target, said):
    """Found by a fault trial: a login the server refused was retried as an outage ('did not answer', four tries of
    each task). It is a setup fault: one sentence naming the connection and what to correct, no retries."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(target))
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.ops_db():
            pass
    assert str(err.value) == (f"the database of connection 'ops_db' refused it: {said}; correct the connection's "
                              "login, password or database name")
    assert "wrong" not in str(err.value)


@pytest.mark.parametrize("defined, kind", [
    ({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}, "google_cloud_platform"),
    ({"conn_type": "http", "host": "http://127.0.0.1:9", "password": "api-key-not-to-print"}, "http")])
def test_a_connection_that_is_not_postgresql_fails_at_once_in_one_sentence(monkeypatch, capsys, defined, kind):
    """Found by a fault trial: discovery told to scan google_cloud_default was retried for twelve minutes with
    tracebacks (its extras read as libpq options), and an http connection as an outage (its host a URL). It is a
    setup fault: one sentence naming the connection and its type, no retries."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_SCAN_ME", json.dumps(defined))
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.postgres("scan_me"):
            pass
    assert str(err.value) == (f"Airflow connection 'scan_me' is a '{kind}' connection, not a PostgreSQL database: "
                              "name a postgres connection here")
    assert "api-key-not-to-print" not in str(err.value) + "".join(capsys.readouterr())


def test_a_connection_value_that_is_not_a_uri_is_refused_without_repeating_it(monkeypatch, capsys):
    """A libpq key=value string set as AIRFLOW_CONN_COMPLIANCE_DB is no URI: Airflow read all of it as the database
    name, the server answered 'database "...password=..." does not exist', and that sentence, password included,
    was the compliance page's answer and the task's log line. It is a setup fault, said without the value."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB",
                       "host=127.0.0.1 port=5432 user=postgres password=s3cret-not-to-print dbname=postgres")
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.compliance_db():
            pass
    assert str(err.value) == ("Airflow connection 'compliance_db' is not a connection URI (it has no scheme such as "
                              "postgresql:// and names no host): give it as "
                              "postgresql://login:password@host:port/database, or as a connection's JSON")
    assert "s3cret-not-to-print" not in str(err.value) + "".join(capsys.readouterr())


def test_an_extra_that_is_no_postgresql_option_fails_at_once_in_one_sentence(monkeypatch, capsys):
    """An extra PostgreSQL does not know ({"foo": "bar"}) raised psycopg's ProgrammingError from inside the hook: a
    500 with a traceback on the compliance page, a retried traceback in a task. It is a setup fault: one sentence
    naming the connection and the option, never the password."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres",
         "password": "s3cret-not-to-print", "schema": "postgres", "extra": {"foo": "bar"}}))
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.compliance_db():
            pass
    assert str(err.value) == ("Airflow connection 'compliance_db' has an extra that is no PostgreSQL connection "
                              "option ('foo'): remove it or correct its name")
    assert "s3cret-not-to-print" not in str(err.value) + "".join(capsys.readouterr())


@pytest.mark.parametrize("changed, option", [
    ({"extra": {"sslmode": "bogus"}}, "sslmode"), ({"extra": {"target_session_attrs": "primary-ish"}},
                                                   "target_session_attrs"),
    ({"extra": {"keepalives": "often"}}, "keepalives"), ({"extra": {"connect_timeout": "soon"}}, "connect_timeout"),
    ({"port": 99999}, "port")])
def test_a_value_postgresql_does_not_accept_is_a_setup_fault_in_one_sentence(monkeypatch, capsys, changed, option):
    """Found by a fault trial: an extra libpq refuses the value of (sslmode=bogus) was reported as 'did not answer'
    and retried for minutes as if the database were down (connect_timeout=soon as an extra that is 'no PostgreSQL
    connection option'). It is a setup fault: one sentence naming the connection and the option, not the value, no
    retries."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres",
         "password": "s3cret-not-to-print", "schema": "postgres", **changed}))
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.compliance_db():
            pass
    assert str(err.value) == (f"Airflow connection 'compliance_db' gives PostgreSQL's option '{option}' a value it "
                              "does not accept: correct it in the connection")
    assert "s3cret-not-to-print" not in str(err.value) + "".join(capsys.readouterr())


def test_the_compliance_store_falls_back_only_when_its_connection_is_undefined(monkeypatch, fresh_db):
    """Found by a fault trial: a compliance_db connection the server refused (a wrong password) fell back to ops_db
    without a word, so the compliance records would have gone to the operational database. Only an undefined one
    falls back; a wrong one fails in its own sentence."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(fresh_db))
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", postgres_connection(
        "postgresql://postgres@127.0.0.1:5432/no_such_database_for_tests"))
    with pytest.raises(AirflowFailException, match="^the database of connection 'compliance_db' refused it"):
        with readable_failures(), runtime.compliance_db():
            pass


@pytest.mark.parametrize("value", [
    "postgresql://postgres:s3cret-not-to-print@127.0.0.1:notaport/postgres",
    json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": "notaport", "login": "postgres",
                "password": "s3cret-not-to-print", "schema": "postgres"})])
@pytest.mark.parametrize("ops_defined", [False, True])
def test_an_unreadable_compliance_connection_is_named_and_never_replaced_by_ops_db(monkeypatch, capsys, fresh_db,
                                                                                  value, ops_defined):
    """Found by a fault trial: an AIRFLOW_CONN_COMPLIANCE_DB Airflow could not read (a port of 'notaport') was taken
    for an undefined one: the store fell back to ops_db, and the sentence blamed "'ops_db' is not defined" (or, with
    ops_db defined, the compliance records went to the operational database without a word). The sentence names
    the compliance connection and what is wrong with it, never its password."""
    from airflow.sdk.exceptions import AirflowFailException

    if ops_defined:
        monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(fresh_db))
    else:
        monkeypatch.delenv("AIRFLOW_CONN_OPS_DB", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", value)
    with pytest.raises(AirflowFailException) as err:
        with readable_failures(), runtime.compliance_db():
            pass
    assert str(err.value) == ("Airflow connection 'compliance_db' cannot be read: AIRFLOW_CONN_COMPLIANCE_DB is set, "
                              "but its port is not a number from 0 to 65535 (a password holding ':', '/' or '@' "
                              "must be percent-encoded); correct its value")
    assert "s3cret-not-to-print" not in str(err.value) + "".join(capsys.readouterr())


def test_compliance_db_falls_back_to_ops_db(monkeypatch, fresh_db):
    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(fresh_db))
    monkeypatch.delenv("AIRFLOW_CONN_COMPLIANCE_DB", raising=False)
    with runtime.compliance_db() as conn:
        assert conn.execute("select current_database()").fetchone()[0] == fresh_db.rsplit("/", 1)[1]
        assert conn.autocommit


def test_sendgrid_connection_without_key_is_refused(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps({"conn_type": "generic"}))
    with pytest.raises(AirflowFailException, match="has no API key"):
        with readable_failures():
            runtime.mailer()


def test_bad_settings_are_refused(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"timezone": "Mars/Olympus"}))
    with pytest.raises(AirflowFailException, match="timezone 'Mars/Olympus' is not a time zone the zoneinfo database knows"):
        with readable_failures():
            runtime.settings()
    monkeypatch.setenv("PRIVACY_SETTINGS", json.dumps({"due_soon_dayz": 3}))
    with pytest.raises(AirflowFailException, match="unknown privacy setting"):
        with readable_failures():
            runtime.settings()


def test_a_database_lost_mid_task_is_one_sentence_and_retried(fresh_db):
    """A server that drops the connection mid-query used to print a raw driver traceback."""
    import contextlib

    import psycopg
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from include.audit import RunContext
    from include.config import Settings
    from include.seam.task import TaskEnv, lost_database, readable_failures

    with psycopg.connect(fresh_db, autocommit=True) as killer, contextlib.ExitStack() as stack:
        env = TaskEnv(ctx=RunContext(run_id="r", actor="t"), settings=Settings(), params={}, stack=stack)
        conn = env._db("ops_db", lambda: psycopg.connect(fresh_db, autocommit=True))
        pid = conn.info.backend_pid
        with pytest.raises(AirflowException) as err:
            with readable_failures():
                try:
                    with conn.transaction(), conn.cursor(name="stream") as cur:
                        cur.execute("select g from generate_series(1, 1000000) g")
                        cur.fetchmany(10)
                        killer.execute("select pg_terminate_backend(%s)", (pid,))
                        cur.fetchmany(100000)
                except psycopg.Error as exc:
                    raise lost_database(exc, env.lost_database()) from None
    assert not isinstance(err.value, AirflowFailException)  # Airflow's retries apply
    sentence = str(err.value)
    assert sentence.startswith("lost the database of connection 'ops_db' mid-task:") and "\n" not in sentence
    assert err.value.__cause__ is None


def _in_a_task(monkeypatch, url: str):
    """A task's own :func:`include.seam.task.task_env`, in an Airflow context (ops_db and analytics_db at ``url``)."""
    import types

    from airflow.sdk.execution_time.context import set_current_context

    from include.seam.task import task_env

    monkeypatch.setenv("AIRFLOW_CONN_OPS_DB", postgres_connection(url))
    monkeypatch.setenv("AIRFLOW_CONN_ANALYTICS_DB", postgres_connection(url))
    monkeypatch.setenv("AIRFLOW_VAR_PRIVACY_SETTINGS", "{}")
    context = {"ti": types.SimpleNamespace(dag_id="dsr_fulfilment", task_id="fulfil_requests"), "run_id": "r1",
               "dag_run": types.SimpleNamespace(run_after=None, run_type=None), "params": {}}
    stack = contextlib.ExitStack()
    stack.enter_context(set_current_context(context))
    return stack, task_env


@pytest.mark.parametrize("statement, said", [
    ("set statement_timeout = '10ms'; select pg_sleep(1)",
     "canceled a statement (statement_timeout): canceling statement due to statement timeout (SQLSTATE 57014)"),
    ("set work_mem = '64kB'; set temp_file_limit = '64kB'; select g from generate_series(1, 200000) g order by g desc",
     "ran out of resources (a configured limit): temporary file size exceeds temp_file_limit (64kB) "
     "(SQLSTATE 53400)"),
    ("select pg_read_file('/nonexistent/privacy-ops-test')",
     "had a system error (a file it needs is missing): could not open file \"/nonexistent/privacy-ops-test\" for "
     "reading: No such file or directory (SQLSTATE 58P01)")])
def test_a_database_that_says_why_it_could_not_is_not_called_lost_and_is_retried(monkeypatch, fresh_db, caplog,
                                                                                 statement, said):
    """Every OperationalError was "lost the database of connection 'X' mid-task", psycopg raising one for whole SQLSTATE
    classes the server reports on a live connection (53 resources, 57014 a statement timeout, 58 a system error). The
    sentence says what the database said, naming the connection that ran it (not the other one open); retried."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    stack, task_env = _in_a_task(monkeypatch, fresh_db)
    with stack, pytest.raises(AirflowException) as err:
        with task_env() as env:
            env.ops.execute("select 1")
            env.database("analytics_db").execute(statement)
    assert not isinstance(err.value, AirflowFailException)  # Airflow's retries apply
    assert str(err.value) == f"the database of connection 'analytics_db' {said}"
    assert "lost" not in caplog.text and "(Airflow will retry)" in caplog.text


@pytest.mark.parametrize("statement, said", [
    ("select repeat('ada.lovelace@example.org ', 100000000)",
     "(a value over PostgreSQL's 1 GB limit): requested length too large (SQLSTATE 54000)"),
    ("select " + ", ".join(["'ada.lovelace@example.org'"] * 1700),
     "(too many columns): target lists can have at most 1664 entries (SQLSTATE 54011)")])
def test_work_over_a_database_limit_fails_at_once_without_the_statements_values(monkeypatch, fresh_db, caplog,
                                                                               statement, said):
    """A program limit (SQLSTATE class 54: a value over PostgreSQL's 1 GB, too many columns) was "lost the database
    mid-task" and retried, each retry repeating it. It fails at once, naming the connection and the limit, and no
    value of the statement."""
    from airflow.sdk.exceptions import AirflowFailException

    stack, task_env = _in_a_task(monkeypatch, fresh_db)
    with stack, pytest.raises(AirflowFailException) as err:
        with task_env() as env:
            env.ops.execute(statement)
    assert str(err.value) == (f"the database of connection 'ops_db' refused the work as over one of its limits {said}; "
                              "running it again would only repeat it")
    assert "lovelace" not in str(err.value) + caplog.text and "(Airflow will retry)" not in caplog.text
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(AirflowFailException, match="^a database refused the work as over one of its limits "):
        with readable_failures(), psycopg_connect(fresh_db) as conn:  # outside a task: the same kind
            conn.execute(statement)


def test_a_lock_timeout_or_the_tasks_connection_terminated_is_said_by_its_kind(monkeypatch, fresh_db):
    """lock_timeout (55P03) is a statement canceled, retried; the task's own connection terminated from another
    (57P01 admin_shutdown, or no SQLSTATE) is still a database lost mid-task, retried."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    with psycopg_connect(fresh_db) as other:
        other.execute("create table held (id int)")
        stack, task_env = _in_a_task(monkeypatch, fresh_db)
        with stack, pytest.raises(AirflowException) as err, other.transaction():
            other.execute("lock table held")
            with task_env() as env:
                env.ops.execute("set lock_timeout = '50ms'; select * from held")
        assert str(err.value) == ("the database of connection 'ops_db' canceled a statement (lock_timeout): canceling "
                                  "statement due to lock timeout (SQLSTATE 55P03)")
        stack, task_env = _in_a_task(monkeypatch, fresh_db)
        with stack, pytest.raises(AirflowException) as err:
            with task_env() as env:
                env.ops.execute("select 1")
                conn = env.database("analytics_db")
                other.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))
                conn.execute("select 1")
    assert not isinstance(err.value, AirflowFailException)
    assert str(err.value).startswith("lost the database of connection 'analytics_db' mid-task: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("statement, what, said", [
    ("create sequence s; select currval('s')", "object not in prerequisite state",
     'currval of sequence "s" is not yet defined in this session (SQLSTATE 55000)'),
    ("select lastval()", "object not in prerequisite state",
     "lastval is not yet defined in this session (SQLSTATE 55000)"),
    ("set shared_buffers = '1MB'", "a setting only a restart changes",
     'parameter "shared_buffers" cannot be changed without restarting the server (SQLSTATE 55P02)'),
    ("create type mood as enum ('calm'); begin; alter type mood add value 'cross'; select 'cross'::mood; commit",
     "a new enum value used before its commit",
     'unsafe use of new value "cross" of enum type mood (SQLSTATE 55P04)')])
def test_an_object_not_in_the_state_the_work_needs_fails_at_once(monkeypatch, fresh_db, caplog, statement, what,
                                                                 said):
    """SQLSTATE class 55 was retried whole ("the database ... refused: ...", Airflow's retries): only a lock not
    available (55P03) or an object in use (55006) may pass. ``currval`` before ``nextval`` in the session (55000), a
    setting only a restart changes (55P02), an enum value used in the transaction that added it (55P04) fail the
    same way on every try: the task fails at once, in one sentence saying so."""
    from airflow.sdk.exceptions import AirflowFailException

    stack, task_env = _in_a_task(monkeypatch, fresh_db)
    with stack, pytest.raises(AirflowFailException) as err:
        with task_env() as env:
            env.ops.execute(statement)
    assert str(err.value) == (f"the database of connection 'ops_db' refused the work as an object it needs is not in "
                              f"the state the work requires ({what}): {said}; running it again would only repeat it")
    assert "(Airflow will retry)" not in caplog.text and "\n" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_lock_not_available_or_an_object_in_use_keeps_the_retries(monkeypatch, fresh_db, pg_server_url):
    """The two states of class 55 that pass once another session lets go: a lock taken with NOWAIT that another
    session holds (55P03), an object in use (55006: a database others are connected to). Each keeps Airflow's
    retries, said by its kind."""
    import uuid

    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    with psycopg_connect(fresh_db) as other:
        other.execute("create table held (id int)")
        stack, task_env = _in_a_task(monkeypatch, fresh_db)
        with stack, pytest.raises(AirflowException) as err, other.transaction():
            other.execute("lock table held")
            with task_env() as env:
                env.ops.execute("begin; lock table held in share mode nowait; commit")
    assert not isinstance(err.value, AirflowFailException)
    assert str(err.value) == ("the database of connection 'ops_db' could not take a lock now (a lock was not "
                              'available): could not obtain lock on relation "held" (SQLSTATE 55P03)')
    # Letters only: a name of digits ("privacy_busy_40045708", a hex of eight decimal digits) is said with its digit
    # run blanked, as a phone number's would be.
    busy = "privacy_busy_" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))
    with psycopg_connect(pg_server_url) as admin:
        admin.execute(f"create database {busy}")
        try:
            with psycopg_connect(fresh_db.rsplit("/", 1)[0] + f"/{busy}"):  # someone is connected to it
                stack, task_env = _in_a_task(monkeypatch, fresh_db)
                with stack, pytest.raises(AirflowException) as err:
                    with task_env() as env:
                        env.ops.execute(f"drop database {busy}")
        finally:
            admin.execute(f"drop database if exists {busy}")
    assert not isinstance(err.value, AirflowFailException)
    assert str(err.value) == (f"the database of connection 'ops_db' could not do it now, an object it needs being in "
                              f'use (object in use): database "{busy}" is being accessed by other users '
                              "(SQLSTATE 55006)")


def test_a_row_the_database_refuses_fails_the_task_without_quoting_the_row(fresh_db, caplog):
    """A constraint or trigger of the application's refusing a step's write printed the driver's traceback, whose
    DETAIL quotes the refused row ("Failing row contains (..., someone@example.com, ...)"), into the task log. The
    sentence keeps the server's primary message and SQLSTATE, drops the rest, and Airflow's retries still apply."""
    import psycopg
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create table people (id int, email text, name text, "
                     "constraint people_named check (name <> 'Ada Lovelace'))")
        for bad in ("insert into people values (1, 'ada@example.org', 'Ada Lovelace')",
                    "insert into people values ('ada@example.org', 'x', 'y')"):
            with pytest.raises(AirflowException) as err:
                with readable_failures():
                    conn.execute(bad)
            assert not isinstance(err.value, AirflowFailException)
            said = str(err.value) + caplog.text
            assert "ada@example.org" not in said and "Lovelace" not in said, said
            assert str(err.value).startswith("the database refused: ") and "SQLSTATE" in str(err.value)
            assert err.value.__cause__ is None and err.value.__suppress_context__
    assert 'violates check constraint "people_named"' in caplog.text  # what a person needs to find it


def test_a_grant_the_login_lacks_or_a_column_gone_fails_at_once(fresh_db, caplog):
    """A statement refused as not fitting the database's tables or grants (SQLSTATE class 42: permission denied, a
    column or table gone, no operator for two types) cannot pass on a retry: it fails the task at once, saying what to
    correct, where it was retried three times as a refusal that might pass."""
    import uuid

    from airflow.sdk.exceptions import AirflowFailException

    role = f"privacy_limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create table people (id int, email text)")
        conn.execute(f"create role {role}")
        try:
            for bad, code in (("select secret from people", "42703"), ("select * from nobody", "42P01"),
                              (f"set role {role}; select * from people", "42501")):
                with pytest.raises(AirflowFailException) as err:
                    with readable_failures():
                        conn.execute(bad)
                conn.execute("reset role")
                assert str(err.value).startswith("the database refused a statement as not fitting its tables or "
                                                 "grants: "), str(err.value)
                assert f"(SQLSTATE {code}); a table or column the data map names" in str(err.value)
        finally:
            conn.execute(f"drop role {role}")
    assert "(Airflow will retry)" not in caplog.text


def test_an_exception_a_trigger_raises_with_the_row_is_never_repeated(fresh_db, caplog):
    """A trigger of the application's raising its own message with the row in it (`raise exception 'account of % is
    under audit', old.full_name`, or `old` whole) put the subject's name in the sentence: the scrub blanks addresses,
    IP addresses and phone numbers, not names. Its own words are not repeated; the function is named."""
    import psycopg
    from airflow.sdk.exceptions import AirflowException

    from include.errors import database_said

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("""create table people (id int, email text, full_name text, phone text, ip inet);
                        insert into people values (1, 'ada@example.org', 'Ada Lovelace', '+44 20 7946 0000',
                                                   '10.1.2.3')""")
        for raised in ("'account of % is under audit', old.full_name", "'cannot delete %', old",
                       "'%', old.full_name using errcode = 'P0002'"):
            conn.execute(f"""create or replace function keep_audited() returns trigger language plpgsql as $$
                             begin raise exception {raised}; end $$;
                             drop trigger if exists keep_audited on people;
                             create trigger keep_audited before delete on people for each row
                             execute function keep_audited()""")
            with pytest.raises(psycopg.Error) as refused:
                conn.execute("delete from people")
            said = database_said(refused.value)
            assert "Lovelace" not in said and "ada@" not in said, said
            assert said.startswith("the application's function keep_audited() raised an exception (its message is "
                                   "not repeated: it may quote the row)"), said
            with pytest.raises(AirflowException) as err:
                with readable_failures():
                    conn.execute("delete from people")
            assert "Lovelace" not in str(err.value) + caplog.text
        # The server's own messages, even from inside a trigger function, are still repeated.
        conn.execute("""create or replace function keep_audited() returns trigger language plpgsql as $$
                        begin insert into people values ('x', null, null, null, null); return old; end $$""")
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("delete from people")
        assert database_said(refused.value) == 'invalid input syntax for type integer: "…" (SQLSTATE 22P02)'


_DEFECTIVE_STEPS = '''
from include.objectstore import check_name


def misread(step):
    raise ValueError("not an address: jane@example.org")


def misread_while_handling(step):
    by_address = {"ada@example.org": 1}
    try:
        return by_address["jane@example.org"]
    except KeyError:
        return check_name("exports/../jane@example.org.json")  # its ValueError quotes the name
'''

_DEFECT = ("a defect of this project, not of the data or the services; its message is not repeated (it may quote "
           "personal data): report it with the task's log, then clear the task")


def _line_of(function, text: str) -> int:
    """The line number of the first line of ``function``'s source holding ``text``."""
    import inspect

    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.parametrize("step, where", [
    ("misread", lambda: f"include/seam/task.py:{_line_of(_run_step(), 'step(env, *inputs)')} (run_step)"),
    ("misread_while_handling",
     lambda: f"include/objectstore.py:{_line_of(_check_name(), 'raise ValueError')} (check_name)")],
    ids=["raised-outside-the-project", "raised-in-include-while-handling-another"])
def test_a_defect_is_one_sentence_naming_where_it_is_never_its_message(monkeypatch, tmp_path, caplog, step, where):
    """A defect of the project (an exception no one raised on purpose: a ValueError, a KeyError, a TypeError) passed
    through the seam: Airflow printed its traceback with its message, and its chained exception's, into the task
    log, where an address it quoted stood (`ValueError: not an address: jane@example.org`, `KeyError:
    'jane@example.org'`). The task ends in one sentence naming the exception's type and the innermost frame of the
    project's own code, never the message; the frames alone (file, line, function) are logged before it, for a
    developer; Airflow's retries still apply (a defect may be a race that passes)."""
    import logging
    import sys

    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from include.seam.task import run_step

    (tmp_path / "defective_steps_of_this_test.py").write_text(_DEFECTIVE_STEPS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "defective_steps_of_this_test", raising=False)  # another case's tmp_path
    stack, _ = _in_a_task(monkeypatch, "postgresql://postgres@127.0.0.1:1/never_opened")
    caplog.set_level(logging.INFO)
    with stack, pytest.raises(AirflowException) as err:
        run_step(f"defective_steps_of_this_test:{step}")
    assert not isinstance(err.value, AirflowFailException)  # Airflow's retries apply
    sentence = str(err.value)
    assert sentence == f"an unexpected ValueError in {where()}: {_DEFECT}"
    assert err.value.__cause__ is None and err.value.__context__ is None and err.value.__suppress_context__
    assert "jane@" not in caplog.text and "ada@" not in caplog.text, caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors[-1].getMessage() == f"{sentence} (Airflow will retry)"
    frames = errors[-2].getMessage()  # the traceback's frames, before the sentence: no message, no value
    assert f'File "{tmp_path}/defective_steps_of_this_test.py", line ' in frames
    assert f"in {step}" in frames and 'File "include/seam/task.py", line ' in frames and "in run_step" in frames
    if step == "misread_while_handling":
        assert "During the handling of the KeyError, a ValueError:" in frames
        assert f'File "include/objectstore.py", line {_line_of(_check_name(), "raise ValueError")}, in check_name' \
            in frames


def _run_step():
    from include.seam.task import run_step

    return run_step


def _check_name():
    from include.objectstore import check_name

    return check_name


@pytest.mark.parametrize("raised, said", [
    (lambda: OSError(28, "No space left on device", "/work/export-jane@example.org.zip"),
     "No space left on device (ENOSPC)"),
    (lambda: PermissionError(13, "Permission denied", "/evidence/jane@example.org"), "Permission denied (EACCES)"),
    (lambda: ConnectionResetError(104, "Connection reset by peer"), "Connection reset by peer (ECONNRESET)"),
    (lambda: OSError("jane@example.org unreadable"), "an operating-system error (OSError)")],
    ids=["disk-full", "permission", "connection-reset", "no-errno"])
def test_an_operating_system_error_is_said_as_one_not_as_a_defect(caplog, raised, said):
    """An OSError escaping a step (a disk full under an export's work folder, a permission, a socket reset no client
    wrapped) was said as "a defect of this project, not of the data or the services": on-call would report a bug for a
    full disk. It is said by what the system answered (its errno's words and name), never the file name or message it
    carries (an export's name may hold an address), with where it was raised; retried, as it may pass."""
    import logging

    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    caplog.set_level(logging.INFO)
    with pytest.raises(AirflowException) as err:
        with readable_failures():
            raise raised()
    assert not isinstance(err.value, AirflowFailException)
    sentence = str(err.value)
    assert sentence.startswith(f"the operating system refused: {said} in include/seam/task.py:"), sentence
    assert "defect" not in sentence and "jane@" not in sentence + caplog.text
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_a_defect_raised_outside_a_task_is_one_sentence_too(caplog):
    """The seam alone (a DAG's run-conf check uses it so): the same sentence, nothing of the message or its chain."""
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(AirflowException) as err:
        with readable_failures():
            try:
                {}["jane@example.org"]
            except KeyError as missing:
                raise TypeError(f"cannot hash {missing}") from missing
    assert str(err.value).startswith("an unexpected TypeError in include/seam/task.py:")
    assert str(err.value).endswith(f" (readable_failures): {_DEFECT}")
    assert err.value.__cause__ is None and err.value.__context__ is None
    assert "jane@" not in caplog.text + str(err.value)
    assert "Caused by the KeyError, a TypeError:" in caplog.text


def _airflows_own():
    """An instance of each exception of Airflow's own that a task's code raises (or lets through) to steer its task:
    skip, fail, reschedule, defer, wait for a person's answer, and the human-in-the-loop operator's outcomes."""
    from datetime import datetime, timezone

    from airflow.providers.standard.exceptions import HITLRejectException, HITLTimeoutError, HITLTriggerEventError
    from airflow.sdk.exceptions import (AirflowException, AirflowFailException, AirflowRescheduleException,
                                        AirflowSkipException, TaskDeferralError, TaskDeferred)
    from airflow.sdk.exceptions import AirflowRuntimeError

    return [AirflowSkipException("nothing to do"), AirflowFailException("no"), AirflowException("retry me"),
            AirflowRescheduleException(datetime.now(timezone.utc)), TaskDeferralError("x"),
            TaskDeferred(trigger=object(), method_name="execute_complete"),
            HITLTriggerEventError("the answer could not be read"), HITLTimeoutError("nobody answered"),
            HITLRejectException("rejected"), AirflowRuntimeError.__new__(AirflowRuntimeError),
            KeyboardInterrupt(), SystemExit(3)]


@pytest.mark.parametrize("raised", _airflows_own(), ids=lambda e: type(e).__name__)
def test_airflows_own_exceptions_and_an_interrupt_pass_through_untouched(caplog, raised):
    """Airflow's control flow (skip, fail, reschedule, defer, a reviewer's answer) and a BaseException that is no
    Exception (an interrupt, an exit) are not defects: they leave the seam as they came, and nothing is logged."""
    with pytest.raises(BaseException) as err:
        with readable_failures():
            raise raised
    assert err.value is raised
    assert "unexpected" not in caplog.text


def test_every_product_error_is_one_of_two_kinds():
    """The seam decides by kind: every domain error derives from NeedsOperator or Transient."""
    from include.compliance_store import MigrationError
    from include.config import SettingsError
    from include.datamap import DataMapError
    from include.errors import NeedsOperator, Transient
    from include.delivery.sendgrid_mailer import (SendGridAuthError, SendGridRateLimited, SendGridUnavailable,
                                                SendGridUnexpectedResponse)
    from include.runconf import UnknownConfKey

    for needs_operator in (MigrationError, SettingsError, DataMapError, SendGridAuthError, SendGridUnexpectedResponse,
                           UnknownConfKey):
        assert issubclass(needs_operator, NeedsOperator), needs_operator
    for transient in (SendGridUnavailable, SendGridRateLimited):
        assert issubclass(transient, Transient), transient


def test_an_unknown_conf_key_is_one_sentence_naming_the_declared_ones():
    from include.runconf import UnknownConfKey, check_conf

    check_conf("d", {"dry_run": True}, ["as_of", "dry_run"])
    with pytest.raises(UnknownConfKey) as err:
        check_conf("dsr_deadline_tracking", {"dryrun": True}, ["as_of", "dry_run", "request_ids"])
    assert str(err.value) == ("trigger conf key 'dryrun' is not a parameter of dsr_deadline_tracking (its parameters: "
                              "as_of, dry_run, request_ids); the run stopped before reading, changing or sending "
                              "anything")


def test_an_unknown_conf_key_that_is_no_parameter_name_is_counted_not_repeated():
    from include.runconf import UnknownConfKey, check_conf

    for conf in ({"jane.doe@example.com": True}, {"Jane Doe": 1}, {"+1 415 555 0100": 1}, {"10.1.2.3": 1}):
        with pytest.raises(UnknownConfKey) as err:
            check_conf("d", conf, ["dry_run"])
        assert str(err.value) == ("1 trigger conf key is not a parameter of d (its parameters: dry_run; a key "
                                  "that is not a parameter name is not repeated: it may be personal data); the run "
                                  "stopped before reading, changing or sending anything"), conf
        assert next(iter(conf)).lower() not in str(err.value).lower()


def test_the_reviewers_time_is_eight_hours_or_what_the_environment_says(monkeypatch):
    from datetime import timedelta

    from include.approvals import APPROVAL_TIMEOUT_ENV, approval_timeout

    monkeypatch.delenv(APPROVAL_TIMEOUT_ENV, raising=False)
    assert approval_timeout() == timedelta(hours=8)
    monkeypatch.setenv(APPROVAL_TIMEOUT_ENV, "24")
    assert approval_timeout() == timedelta(hours=24)
    monkeypatch.setenv(APPROVAL_TIMEOUT_ENV, "0.25")
    assert approval_timeout() == timedelta(minutes=15)
    for bad in ("0", "-1", "eight", "400", "nan", "inf"):
        monkeypatch.setenv(APPROVAL_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=f"^{APPROVAL_TIMEOUT_ENV} must be a number of hours above 0 and at most "
                                             f"336, not '{bad}'$"):
            approval_timeout()


@pytest.mark.parametrize("extra, names", [
    ({"host": 123}, "extra 'host' must be an http:// or https:// URL such as https://api.sendgrid.com, not a number"),
    ({"host": ["https://api.sendgrid.com"]}, "extra 'host' must be an http:// or https:// URL"),
    ({"host": "api.sendgrid.com"}, "extra 'host' must be an http:// or https:// URL"),
    ({"host": "https://api.sendgrid.com:port"}, "extra 'host' must be an http:// or https:// URL"),
    ({"timeout": -1}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not -1"),
    ({"timeout": 0}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not 0"),
    ({"timeout": "nan"}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not \"nan\""),
    ({"timeout": "inf"}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not \"inf\""),
    ({"timeout": 1e300}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not 1e+300"),
    ({"timeout": True}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not true"),
    ({"timeout": "soon"}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not \"soon\""),
    ({"timeout": {"connect": 5}}, "extra 'timeout' must be a number of seconds above 0 and at most 600, not an object"),
    (["https://api.sendgrid.com"], "its extras must be a JSON object"),
])
def test_sendgrid_extras_of_the_wrong_type_fail_at_once_in_one_sentence(monkeypatch, sendgrid, extra, names):
    """Wrong extras used to raise AttributeError/ValueError/OverflowError from the SDK, retried as if SendGrid
    were down (3 retries, ~9 minutes); a setup fault fails the task at once, naming the connection and extra."""
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(extra, dict):
        extra = {"host": sendgrid.base_url, **extra}
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps(
        {"conn_type": "generic", "password": "SG.test-key", "extra": extra}))
    with pytest.raises(AirflowFailException) as err:  # AirflowFailException: no retry
        with readable_failures():
            runtime.mailer().send({"personalizations": [{"to": [{"email": "someone@example.com"}]}],
                                   "from": {"email": "privacy@example.com"}, "subject": "s",
                                   "content": [{"type": "text/plain", "value": "x"}]})
    sentence = str(err.value)
    assert sentence.startswith("Airflow connection 'sendgrid_default': ") and names in sentence, sentence
    assert "\n" not in sentence and err.value.__cause__ is None and err.value.__suppress_context__
    assert "SG.test-key" not in sentence and sendgrid.requests() == []  # refused before anything was sent


def test_sendgrid_extras_defaults_and_a_host_is_never_repeated():
    from include.errors import ConfigurationProblem

    assert runtime.sendgrid_extras(None) == (None, 30.0)
    assert runtime.sendgrid_extras('{"host": "", "timeout": "12.5"}') == (None, 12.5)
    assert runtime.sendgrid_extras('{"host": "http://127.0.0.1:8025/v3/", "timeout": 600}') == (
        "http://127.0.0.1:8025/v3/", 600.0)
    with pytest.raises(ConfigurationProblem, match="^Airflow connection 'sendgrid_default': its extras are not "
                                                   "valid JSON; "):
        runtime.sendgrid_extras("{host: 1")
    with pytest.raises(ConfigurationProblem) as err:  # a URL may hold a user name and password: never echoed
        runtime.sendgrid_extras('{"host": "ftp://user:hunter22@mail.example.com"}')
    assert "hunter22" not in str(err.value) and "extra 'host'" in str(err.value)


def test_good_sendgrid_extras_still_send(monkeypatch, sendgrid):
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps(
        {"conn_type": "generic", "password": "SG.test-key", "extra": {"host": sendgrid.base_url + "/v3/",
                                                                       "timeout": "10"}}))
    mailer = runtime.mailer()
    assert mailer.timeout == 10.0
    result = mailer.send({"personalizations": [{"to": [{"email": "someone@example.com"}]}],
                          "from": {"email": "privacy@example.com"}, "subject": "s",
                          "content": [{"type": "text/plain", "value": "x"}]})
    assert result.status_code == 202


def test_a_whole_bucket_to_list_is_the_folder_of_files_location_when_set(tmp_path):
    """Discovery lists the allowed buckets for orphans through the step context's bucket(name). Where the settings
    put the buckets in folders (files_location, a machine without GCS, as the erasure and export read them), the
    listing must read that folder too: it went to Google Cloud Storage and waited 120 s for a name that does not
    resolve (seen in the Celery stack, the task failing once)."""
    import contextlib

    from include.audit import RunContext
    from include.config import Settings
    from include.seam.task import TaskEnv

    (tmp_path / "acme-uploads" / "users" / "1").mkdir(parents=True)
    (tmp_path / "acme-uploads" / "users" / "1" / "a.pdf").write_bytes(b"x" * 7)
    with contextlib.ExitStack() as stack:
        env = TaskEnv(ctx=RunContext(run_id="r", actor="t"), settings=Settings(files_location=f"file://{tmp_path}"),
                      params={}, stack=stack)
        listed = list(env.bucket("acme-uploads").describe())
    assert [(o.name, o.size) for o in listed] == [("users/1/a.pdf", 7)]


def test_a_subject_key_connection_airflow_cannot_read_is_not_called_unset(monkeypatch, capsys):
    """Found by a fault trial: a set but unreadable AIRFLOW_CONN_PRIVACY_SUBJECT_KEY (a bare key, JSON cut short)
    was reported as 'the subject key is not configured', sending on-call to set what was set. Its value (the key)
    is never repeated."""
    monkeypatch.delenv("AIRFLOW_VAR_PRIVACY_SUBJECT_KEY", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_PRIVACY_SUBJECT_KEY", '{"conn_type": "generic", "password": "k3y-0123456789abcdef')
    with pytest.raises(ConfigurationProblem) as err:
        runtime.secret("privacy_subject_key", purpose="subject-hashing")
    assert str(err.value).startswith("Airflow connection 'privacy_subject_key' cannot be read: "
                                     "AIRFLOW_CONN_PRIVACY_SUBJECT_KEY is set")
    assert "k3y-0123" not in str(err.value) + "".join(capsys.readouterr())


def test_a_postgres_connection_that_declares_no_type_still_connects(monkeypatch, fresh_db):
    """The type check refuses a connection of another type; one whose JSON names no type is tried as PostgreSQL, as
    it was before the check."""
    from urllib.parse import urlsplit

    parts = urlsplit(fresh_db)
    monkeypatch.setenv("AIRFLOW_CONN_TYPELESS", json.dumps(
        {"host": parts.hostname, "port": parts.port, "login": parts.username, "schema": parts.path.lstrip("/")}))
    with runtime.postgres("typeless") as conn:
        assert conn.execute("select current_database()").fetchone()[0] == parts.path.lstrip("/")


def test_a_databases_data_exception_is_said_without_the_value_it_quotes(fresh_db):
    """Found by a fault trial: a data exception's primary message quotes the value it could not take (a name read as
    a date, an address as a number, a name's bytes in another encoding), and database_said repeated it into task
    logs and records. The kind of refusal and the type or encoding stay; the value does not."""
    import psycopg

    from include.errors import database_said

    refusals = {"select 'Ada Lovelace'::date": 'invalid input syntax for type date: "…" (SQLSTATE 22007)',
                "select 'Ada Lovelace'::int": 'invalid input syntax for type integer: "…" (SQLSTATE 22P02)',
                "select convert_from('\\xe92050'::bytea, 'UTF8')":
                    'invalid byte sequence for encoding "UTF8": … (SQLSTATE 22021)',
                "select 'Lovelace.Ada'::inet": 'invalid input syntax for type inet: "…" (SQLSTATE 22P02)',
                "select '4155550132123'::int": 'value "…" is out of range for type integer (SQLSTATE 22003)'}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for statement, expected in refusals.items():
            with pytest.raises(psycopg.Error) as refused:
                conn.execute(statement)
            assert database_said(refused.value) == expected, statement
        # Names of the schema's own objects are no one's data: still said.
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("select * from no_such_table")
        assert database_said(refused.value) == 'relation "no_such_table" does not exist (SQLSTATE 42P01)'


@contextlib.contextmanager
def _silent_listener():
    """A TCP port that takes connections and never answers PostgreSQL's startup (as a store host behind a firewall
    that drops packets holds the connect): libpq's connect_timeout covers the whole startup."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # never accepted: the kernel completes the handshake, nothing ever answers
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _timed(fn, bound: float):
    """``fn()``'s exception (or None) and how long it took; ("still waiting", bound) when it outlasts ``bound``."""
    import threading
    import time

    said: list = []

    def run():
        started = time.monotonic()
        try:
            said.append((fn(), time.monotonic() - started))
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            said.append((exc, time.monotonic() - started))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    return said[0] if said else ("still waiting", bound)


def test_a_store_host_that_never_answers_is_given_up_after_the_connect_timeout(monkeypatch):
    """A store host that drops packets held each connect (a task's, a look at the compliance page: an API-server
    thread) for the OS's TCP timeout, about two minutes, or for ever once the handshake was done: the connection
    set no connect_timeout. It is bounded (CONNECT_TIMEOUT), then one sentence, retried as an outage."""
    from include.errors import ServiceUnreachable

    monkeypatch.setattr(runtime, "CONNECT_TIMEOUT", 2, raising=False)
    with _silent_listener() as port:
        monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "postgres", "schema": "postgres"}))
        said, took = _timed(lambda: runtime._open_postgres("compliance_db"), 8)
    assert isinstance(said, ServiceUnreachable) and took < 6, (said, took)
    assert str(said).startswith("the database of connection 'compliance_db' did not answer: ") and "\n" not in str(said)


def test_a_connections_own_connect_timeout_wins(monkeypatch):
    """A deployment's connect_timeout in the connection's extras is kept, not replaced by the bound."""
    monkeypatch.setattr(runtime, "CONNECT_TIMEOUT", 30, raising=False)
    with _silent_listener() as port:
        monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "postgres", "schema": "postgres",
             "extra": {"connect_timeout": "2"}}))
        said, took = _timed(lambda: runtime._open_postgres("compliance_db"), 8)
    assert said != "still waiting" and took < 6, (said, took)


def test_the_page_answers_a_store_that_never_answers_in_one_sentence_503(monkeypatch):
    """The look answers 503 with one sentence once the connect timeout passes, its thread free again."""
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.core_api.security import get_user
    from plugins import privacy_compliance as plugin

    monkeypatch.setattr(runtime, "CONNECT_TIMEOUT", 2, raising=False)
    monkeypatch.setattr(plugin, "may_read", lambda section, user: True)
    monkeypatch.setitem(plugin.app.dependency_overrides, plugin.PAGE_ACCESS.dependency, lambda: None)
    monkeypatch.setitem(plugin.app.dependency_overrides, get_user, lambda: None)
    client = TestClient(plugin.app, raise_server_exceptions=False)
    with _silent_listener() as port:
        monkeypatch.setenv("AIRFLOW_CONN_COMPLIANCE_DB", json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "postgres", "schema": "postgres"}))
        answer, took = _timed(lambda: client.get("/api/sections/requests"), 8)
    assert answer != "still waiting" and took < 6, (answer, took)
    assert answer.status_code == 503, answer.text[:300]
    detail = answer.json()["detail"]
    assert detail.startswith("the database of connection 'compliance_db' did not answer: ") and "\n" not in detail
