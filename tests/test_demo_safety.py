"""Nobody's database wiped by mistake, no password printed: the demo's and the kit's database handling.

The demo and the benchmarks drop and recreate their database. They drop only a database the project created
(``devkit.database.MARK``, a COMMENT ON DATABASE); the demo uses the database its URL names (its own
``privacy_demo`` when the URL names the server's ``postgres``); a malformed URL is one sentence that quotes
none of it. These tests stop before any seeding or DAG run: where the old code went on (seeding, or
starting the embedded PostgreSQL instead of the server it was given), those steps raise.
"""
from __future__ import annotations

import contextlib
import os
import uuid

import pytest
from psycopg import sql

from devkit import database
from tests import scratch
from include.cli import EXIT_UNREACHABLE, EXIT_USAGE, main

SECRET = "DemoSECRETpw9"


pytestmark = pytest.mark.usefixtures("restore_logging")  # main() configures logging for a terminal


@pytest.fixture
def someone_elses_db(pg_server_url):
    """A database made by hand (no mark), holding a row someone cares about."""
    name = f"not_ours_{uuid.uuid4().hex[:10]}"
    with database.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    with database.connect(database.with_database(pg_server_url, name), autocommit=True) as conn:
        conn.execute("create table precious (v text); insert into precious values ('keep me')")
    yield name
    with database.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _still_there(server: str, name: str) -> bool:
    try:
        with database.connect(database.with_database(server, name)) as conn:
            return conn.execute("select v from precious").fetchone() == ("keep me",)
    except Exception:
        return False


@pytest.fixture
def no_demo_run(monkeypatch, tmp_path):
    """The demo must stop before it seeds or falls back to the embedded server; a unique demo database name."""
    def refuse(*args, **kwargs):
        raise AssertionError("the demo went on to seed a database")

    def no_embedded(*args, **kwargs):
        raise AssertionError("the demo fell back to the embedded PostgreSQL")

    monkeypatch.setattr("devkit.seed.demo_data.seed", refuse)
    monkeypatch.setattr("devkit.embedded_postgres.start_embedded", no_embedded)
    monkeypatch.setattr("devkit.demo.DEMO_DIR", tmp_path / "demo")
    monkeypatch.delenv("PRIVACY_PG_URL", raising=False)
    name = f"privacy_demo_safety_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("devkit.demo.DEMO_DB", name)
    return name


def _one_sentence(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_the_kit_never_drops_or_replaces_a_database_it_did_not_make(pg_server_url, someone_elses_db):
    """Before: `drop database ... with (force)` whatever the database held."""
    with pytest.raises(database.NotOurDatabase, match="was not created by privacy-ops"):
        database.create_database(pg_server_url, someone_elses_db, replace=True)
    with pytest.raises(database.NotOurDatabase):
        database.drop_database(pg_server_url, someone_elses_db)
    assert _still_there(pg_server_url, someone_elses_db)
    for protected in ("postgres", "template1"):
        with pytest.raises(database.NotOurDatabase):
            database.drop_database(pg_server_url, protected, server_is_ours=True)
    # On a server the kit started itself (the embedded one), every database is the project's.
    database.create_database(pg_server_url, someone_elses_db, replace=True, server_is_ours=True)
    assert not _still_there(pg_server_url, someone_elses_db)
    assert database.is_ours(pg_server_url, someone_elses_db) is True


def test_a_database_the_kit_made_is_marked_and_replaced_on_the_next_run(pg_server_url):
    name = f"privacy_marked_{uuid.uuid4().hex[:10]}"
    try:
        url = database.create_database(pg_server_url, name)
        assert database.is_ours(pg_server_url, name) is True
        with database.connect(url, autocommit=True) as conn:
            conn.execute("create table t (v int)")
        with pytest.raises(database.DatabaseExists):
            database.create_database(pg_server_url, name)
        url = database.create_database(pg_server_url, name, replace=True)  # the demo's re-run
        with database.connect(url) as conn:
            assert conn.execute("select to_regclass('t')").fetchone()[0] is None
        assert database.is_ours(pg_server_url, name) is True
    finally:
        database.drop_database(pg_server_url, name)
    assert database.is_ours(pg_server_url, name) is None


def test_the_demo_uses_the_database_its_url_names_and_its_own_for_postgres(no_demo_run):
    from devkit import demo

    assert demo.demo_database("postgresql://postgres@127.0.0.1:5432/postgres") == no_demo_run
    assert demo.demo_database("postgresql://postgres@127.0.0.1:5432") == no_demo_run
    assert demo.demo_database("postgresql://postgres@127.0.0.1:5432/my_demo") == "my_demo"
    assert demo.demo_database("postgresql://postgres@/postgres?host=/tmp&dbname=other") == "other"


def test_the_demo_refuses_the_database_its_url_names_when_the_project_did_not_make_it(
        pg_server_url, someone_elses_db, no_demo_run, monkeypatch, capsys):
    """Before: the URL's database was ignored and privacy_demo dropped and seeded instead."""
    url = database.with_database(pg_server_url, someone_elses_db)
    assert main(["demo", "--users", "50", "--pg-url", url]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert f"database {someone_elses_db!r} was not created by privacy-ops" in err, err
    monkeypatch.setenv("PRIVACY_PG_URL", url)
    assert main(["demo", "--users", "50"]) == EXIT_UNREACHABLE
    assert "was not created by privacy-ops" in _one_sentence(capsys.readouterr().err)
    assert _still_there(pg_server_url, someone_elses_db)
    assert database.is_ours(pg_server_url, no_demo_run) is None  # and no demo database was made instead


def test_the_demo_refuses_to_replace_its_own_name_when_someone_else_made_it(
        pg_server_url, someone_elses_db, no_demo_run, monkeypatch, capsys):
    """Before: `privacy_demo` was dropped `with (force)` whatever it held."""
    monkeypatch.setattr("devkit.demo.DEMO_DB", someone_elses_db)
    assert main(["demo", "--users", "50", "--pg-url", pg_server_url]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert "was not created by privacy-ops" in err and "$PRIVACY_DEMO_DB" in err, err
    assert _still_there(pg_server_url, someone_elses_db)


@pytest.mark.parametrize("bad, words", [
    (f"postgresql://postgres:Pw%zz{SECRET}@127.0.0.1:5432/postgres", "its password has a '%'"),
    (f"postgresql://postgres:{SECRET}@[::1/postgres", "IPv6"),
    (f"host=127.0.0.1 password={SECRET} dbname=postgres", "not a key=value connection string"),
])
def test_a_malformed_pg_url_is_a_usage_error_that_quotes_none_of_it(bad, words, no_demo_run, monkeypatch,
                                                                      capsys):
    """Before: a malformed --pg-url silently ran on the embedded PostgreSQL; the key=value form crashed."""
    assert main(["demo", "--pg-url", bad]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith("privacy-ops demo: --pg-url ") and words in err and SECRET not in err, err
    assert main(["ui", "--pg-url", bad]) == EXIT_USAGE
    assert SECRET not in _one_sentence(capsys.readouterr().err)
    monkeypatch.setenv("PRIVACY_PG_URL", bad)
    assert main(["demo"]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith("privacy-ops demo: $PRIVACY_PG_URL ") and SECRET not in err, err


def test_a_pg_url_where_nothing_answers_is_one_sentence_not_the_embedded_server(no_demo_run, capsys):
    assert main(["demo", "--pg-url", f"postgresql://postgres:{SECRET}@127.0.0.1:1/postgres"]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert "no PostgreSQL answers at postgresql://postgres:***@127.0.0.1:1/postgres (--pg-url)" in err, err


def test_demo_help_lists_the_environment_it_reads(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    for variable in ("PRIVACY_PG_URL", "PRIVACY_DEMO_DB", "PRIVACY_DEMO_DIR"):
        assert variable in out


def test_a_database_the_kit_makes_is_marked_and_scratch_and_so_is_a_clone_of_it(pg_server_url):
    """Marked (so the kit may drop it) and scratch (commits do not wait for the disk), also when cloned from a
    template, whose comment and settings CREATE DATABASE does not copy."""
    from tests.e2e_world import clone

    name = f"privacy_kit_{uuid.uuid4().hex[:10]}"
    url = database.create_database(pg_server_url, name)
    copy = None
    try:
        copy, copy_url = clone(pg_server_url, name)
        for target in (url, copy_url):
            with database.connect(target) as conn:
                assert conn.execute("show synchronous_commit").fetchone() == ("off",)
                assert conn.execute("select shobj_description(oid, 'pg_database') from pg_database "
                                    "where datname = current_database()").fetchone() == (database.MARK,)
    finally:
        if copy:
            database.drop_database(pg_server_url, copy)
        database.drop_database(pg_server_url, name)


def test_the_demos_closing_lines_name_every_login_and_where_the_page_is():
    """Issue 30: the demo's last message named only the admin login."""
    from pathlib import Path

    from devkit.demo import UI_LOGINS, where_to_look

    text = "\n".join(where_to_look("postgresql://postgres@127.0.0.1/privacy_demo", Path("/tmp/logs")))
    for user, (password, role) in UI_LOGINS.items():
        assert f"{user} / {password} ({role})" in text
    assert "viewer" in text and "/compliance/" in text and "Needs a person" in text
    # The command line reads the demo's database only when told its URL (its default is the server's postgres).
    assert "./dev privacy-ops findings --url 'postgresql://postgres@127.0.0.1/privacy_demo'" in text


def test_ui_unpause_says_scheduled_runs_start_within_a_minute_live_and_catch_up_is_bounded():
    """Issue 30: `--unpause` starts scheduled live purges and fulfilments within a minute; its output says so."""
    from devkit.demo import unpaused_note

    text = "\n".join(unpaused_note(3))
    assert "WITHIN A MINUTE" in text and "LIVE" in text and "child_data_purge erases" in text
    assert "dsr_fulfilment exports and erases" in text and "only the last 3 day(s)" in text


def test_init_ops_and_seed_never_drop_tables_the_kit_did_not_make(pg_server_url, someone_elses_db, capsys):
    """Found by a fault trial: `init-ops --replace` and `seed --replace` (and `seed` over an empty table that shares a
    reference name) dropped the tables of any database, `$PRIVACY_PG_URL`'s production one included."""
    url = database.with_database(pg_server_url, someone_elses_db)
    with database.connect(url, autocommit=True) as conn:
        conn.execute("create table users (id int, precious text); insert into users values (1, 'customer data')")
        conn.execute("create table vendors (id int)")  # empty, of another shape
    for argv in (["init-ops", "--url", url, "--replace"], ["seed", "--url", url, "--replace", "--users", "50"],
                 ["seed", "--url", url, "--users", "50"]):
        assert main(argv) == EXIT_USAGE, argv
        err = _one_sentence(capsys.readouterr().err)
        assert "was not created by privacy-ops" in err and "not dropped" in err, err
    with database.connect(url, autocommit=True) as conn:
        assert conn.execute("select precious from users").fetchone() == ("customer data",)
        assert conn.execute("select to_regclass('vendors')").fetchone()[0] is not None
        conn.execute("drop table users, vendors")
    # The tables the kit makes carry its mark: in someone else's database, init-ops then seed work as documented.
    assert main(["init-ops", "--url", url]) == 0
    assert main(["seed", "--url", url, "--users", "50"]) == 0
    assert main(["seed", "--url", url, "--users", "50", "--replace"]) == 0
    with database.connect(url, autocommit=True) as conn:
        assert conn.execute("select count(*) from users").fetchone()[0] >= 50
        assert conn.execute("select v from precious").fetchone() == ("keep me",)


def test_init_ops_and_seed_replace_refuse_in_one_sentence_when_another_table_depends_on_theirs(fresh_db, capsys):
    """Found by a fault trial: DependentObjectsStillExist with a traceback. A CASCADE would drop another table's
    foreign key: the kit drops only what it made."""
    assert main(["init-ops", "--url", fresh_db]) == 0
    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create table orders (id int, user_id bigint constraint orders_user references users (id))")
    capsys.readouterr()
    for argv in (["init-ops", "--replace"], ["seed", "--users", "20", "--replace"]):
        assert main([*argv, "--url", fresh_db]) == EXIT_USAGE, argv
        err = _one_sentence(capsys.readouterr().err)
        assert "constraint orders_user on table orders depends on table users; drop those first" in err, err
    with database.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from pg_constraint where conname = 'orders_user'").fetchone()[0] == 1


def test_seed_stores_writes_only_into_its_own_databases_and_finishes_a_half_seeded_one(pg_server_url, capsys):
    """Found by a fault trial: `seed-stores --if-empty` wrote tables and addresses into an existing database it did
    not make; interrupted, it left empty stores that `--if-empty` then took for seeded; over an unseeded database or
    run twice it printed a traceback."""
    name = f"privacy_stores_{uuid.uuid4().hex[:8]}"
    url = database.create_database(pg_server_url, name)
    support, analytics = f"{name}_support", f"{name}_analytics"
    try:
        assert main(["seed-stores", "--url", url]) == EXIT_USAGE  # nothing to build the stores from yet
        assert "seed it first" in _one_sentence(capsys.readouterr().err)
        assert database.is_ours(pg_server_url, support) is None  # and nothing made
        assert main(["seed", "--url", url, "--users", "60"]) == 0
        with database.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(support)))  # someone else's
        assert main(["seed-stores", "--url", url, "--if-empty"]) == EXIT_USAGE
        assert "was not created by privacy-ops" in _one_sentence(capsys.readouterr().err)
        with database.connect(database.with_database(pg_server_url, support)) as conn:
            assert conn.execute("select to_regclass('tickets')").fetchone()[0] is None
        with database.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {}").format(sql.Identifier(support)))
        capsys.readouterr()
        assert main(["seed-stores", "--url", url]) == 0
        assert main(["seed-stores", "--url", url]) == EXIT_USAGE  # twice: one sentence, not DatabaseExists
        assert "--if-empty" in _one_sentence(capsys.readouterr().err)
        # A seed cut off after the support desk: the analytics store is empty; --if-empty seeds both again.
        with database.connect(database.with_database(pg_server_url, analytics), autocommit=True) as conn:
            conn.execute("drop table daily_usage")
        assert main(["seed-stores", "--url", url, "--if-empty"]) == 0
        assert "not seeding" not in capsys.readouterr().out
        with database.connect(database.with_database(pg_server_url, analytics)) as conn:
            assert conn.execute("select count(*) from daily_usage").fetchone()[0] > 0
        assert main(["seed-stores", "--url", url, "--if-empty"]) == 0
        assert "not seeding (--if-empty)" in capsys.readouterr().out
    finally:  # all three are this test's own, the unmarked one included
        with database.connect(pg_server_url, autocommit=True) as conn:
            for db in (support, analytics, name):
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db)))


def test_ui_serves_only_a_database_the_demo_made(pg_server_url, someone_elses_db, monkeypatch, capsys):
    """Found by a fault trial: `ui --pg-url` started Airflow on any database that answered; with `--unpause` its
    scheduled purges and fulfilments would have erased there."""
    def went_on(*args, **kwargs):
        raise AssertionError("ui went on to start the stand-ins and Airflow")

    monkeypatch.setattr("devkit.standins.sendgrid_server.SendGridStandIn", went_on)
    assert main(["ui", "--pg-url", database.with_database(pg_server_url, someone_elses_db), "--unpause"]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert "was not created by privacy-ops" in err and "runs the DAGs live" in err, err
    assert _still_there(pg_server_url, someone_elses_db)


def test_ui_on_a_port_in_use_is_one_sentence_before_anything_starts(fresh_db, monkeypatch, tmp_path, capsys):
    """Found by a fault trial: the stand-ins, the metadata migration and four Airflow components started, then the
    API server's bind error scrolled past in their log and `ui` exited 3."""
    import socket

    def went_on(*args, **kwargs):
        raise AssertionError("ui went on to start the stand-ins and Airflow")

    monkeypatch.setattr("devkit.standins.sendgrid_server.SendGridStandIn", went_on)
    monkeypatch.setattr("devkit.demo.DEMO_DIR", tmp_path / "demo")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--pg-url", fresh_db, "--port", str(port)]) == EXIT_UNREACHABLE
    assert _one_sentence(capsys.readouterr().err) == (f"privacy-ops ui: port {port} on 127.0.0.1 is in use: give "
                                                      "--port another port")


def test_seed_if_empty_finishes_a_seed_that_was_cut_off(pg_server_url, capsys):
    """Found by a fault trial: a seed interrupted after its rows' commit left 14 of 44 indexes and the id sequences
    at 1 (an insert without an id then collided), and `seed --if-empty` (the Compose file's start) took it for
    seeded for good."""
    name = f"privacy_cutoff_{uuid.uuid4().hex[:8]}"
    url = database.create_database(pg_server_url, name)
    try:
        assert main(["seed", "--url", url, "--users", "60"]) == 0
        assert main(["seed", "--url", url, "--users", "60", "--if-empty"]) == 0
        assert "not seeding (--if-empty)" in capsys.readouterr().out  # seeded whole: left alone
        with database.connect(url, autocommit=True) as conn:  # what the interrupted seed left
            conn.execute("drop index users_created_at_idx")
            conn.execute("select setval(pg_get_serial_sequence('users', 'id'), 1, false)")
        assert main(["seed", "--url", url, "--users", "60", "--if-empty"]) == 0
        assert "a seed that did not finish: seeding it again" in capsys.readouterr().out
        with database.connect(url, autocommit=True) as conn:
            assert conn.execute("select to_regclass('users_created_at_idx')").fetchone()[0] is not None
            conn.execute("insert into users (email, created_at) values ('new.one@example.org', now())")  # no clash
    finally:
        database.drop_database(pg_server_url, name)


def test_the_demo_refuses_a_store_database_someone_else_made_before_it_makes_anything(pg_server_url, no_demo_run,
                                                                                      capsys):
    """Found by a fault trial: with `<db>_support` made by hand, the demo made and seeded its database, then stopped
    with a NotOurDatabase traceback."""
    support = f"{no_demo_run}_support"
    with database.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(support)))
    try:
        assert main(["demo", "--users", "50", "--pg-url", pg_server_url]) == EXIT_USAGE
        err = _one_sentence(capsys.readouterr().err)
        assert f"database {support!r} was not created by privacy-ops" in err, err
        assert database.is_ours(pg_server_url, no_demo_run) is None  # nothing made before the refusal
    finally:
        with database.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(support)))


def test_two_seed_stores_at_once_run_one_after_the_other(pg_server_url):
    """Found by a fault trial: both found no store databases and the second died creating them (UniqueViolation on
    pg_database, a traceback). seed-stores takes the kit's lock on the operational database, as seed and init-ops
    do: the second waits, then finds the stores and refuses in one sentence."""
    import subprocess
    import sys
    from pathlib import Path

    name = f"privacy_stores_{uuid.uuid4().hex[:8]}"
    url = database.create_database(pg_server_url, name)
    try:
        assert main(["seed", "--url", url, "--users", "300"]) == 0
        argv = [str(Path(sys.executable).parent / "privacy-ops"), "seed-stores", "--url", url]
        runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        done = sorted((run.wait(timeout=240), *run.communicate()) for run in runs)
        assert [code for code, _, _ in done] == [0, EXIT_USAGE], done
        assert "Traceback" not in done[0][2] + done[1][2]
        assert "already exists: pass --if-empty" in _one_sentence(done[1][2])
    finally:
        with database.connect(pg_server_url, autocommit=True) as conn:
            for db in (f"{name}_support", f"{name}_analytics", name):
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db)))


def _a_task_running(metadata, within: float) -> bool:
    """Whether a task instance of the demo's Airflow metadata (SQLite) is running within ``within`` seconds."""
    import sqlite3
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{metadata}?mode=ro", uri=True, timeout=1)) as conn:
                if conn.execute("select count(*) from task_instance where state = 'running'").fetchone()[0]:
                    return True
        except sqlite3.Error:  # not made yet, or being written
            pass
        time.sleep(0.05)
    return False


@pytest.mark.e2e
def test_ctrl_c_during_a_dag_run_ends_the_demo_at_once_in_one_sentence(pg_server_url, tmp_path):
    """Ctrl-C as a terminal sends it (SIGINT to the demo's process group) while a task of a DAG run runs (its
    state in the demo's metadata). Airflow's task runner took the KeyboardInterrupt as the task's failure and
    retried it a minute later; the demo then went on to its summary and exited 0."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    name = f"privacy_demo_ctrl_c_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PRIVACY_DEMO_DB=name, PRIVACY_DEMO_DIR=str(tmp_path / "demo"), PYTHONUNBUFFERED="1")
    url = database.with_database(pg_server_url, "postgres")
    demo = subprocess.Popen(
        [str(Path(sys.executable).parent / "privacy-ops"), "demo", "--users", "100", "--pg-url", url],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's foreground job
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("[4/5]"):  # the DAG runs begin
                break
        running = _a_task_running(tmp_path / "demo" / "airflow" / "airflow.db", within=60)
        assert running, "".join(lines)
        os.killpg(demo.pid, signal.SIGINT)  # while a task of the first run runs
        rest, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        for db in (name, f"{name}_support", f"{name}_analytics"):
            scratch.drop_later(pg_server_url, db)
    assert demo.returncode == 130, rest
    assert "[5/5]" not in rest and "Done in" not in rest, rest
    assert "interrupted: the demo stops here" in rest and "Traceback" not in rest, rest


def test_a_demo_beside_a_running_ui_of_the_same_folder_is_refused_before_it_touches_anything(no_demo_run, capsys):
    """A demo started while `privacy-ops ui` served the same folder dropped the database under it, emptied the
    evidence its page showed and replaced the metadata its scheduler used."""
    from devkit import demo

    with demo.demo_folder_to_itself("ui"):
        assert main(["demo", "--pg-url", "postgresql://postgres@127.0.0.1:5432/postgres"]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert f"`privacy-ops ui` (pid {os.getpid()}) is using the demo's folder" in err, err
    # Once the ui is gone, the folder is free again (the lock goes with the process, or here its file).
    with demo.demo_folder_to_itself("demo"):
        pass


def test_a_new_airflow_home_never_inherits_the_runs_of_an_earlier_one(tmp_path, monkeypatch):
    """The migrated SQLite metadata kept for new homes was copied from any home migrated again (a second demo, the
    ui after a demo), runs included: every later demo and test home inherited them, and a run left 'running' by an
    interrupted demo kept its DAG's scheduled runs from starting under `ui --unpause`. Airflow's two commands are a
    stand-in here (a script that makes the dag_run table); what is decided around them is the project's."""
    import sqlite3
    import stat

    from devkit import demo, local_airflow

    fake = tmp_path / "airflow"
    fake.write_text("#!/bin/sh\nexec python3 -c 'import os, sqlite3; c = sqlite3.connect(os.path.join("
                    "os.environ[\"AIRFLOW_HOME\"], \"airflow.db\")); c.execute(\"create table if not exists dag_run "
                    "(id integer primary key, state text)\"); c.commit()'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(local_airflow, "airflow_bin", lambda: str(fake))
    template = tmp_path / "cache" / "airflow-x.db"
    monkeypatch.setattr(local_airflow, "_metadata_template", lambda: template)

    def runs(home) -> int:
        with sqlite3.connect(home / "airflow.db") as conn:
            return conn.execute("select count(*) from dag_run").fetchone()[0]

    def migrated(name):
        home = tmp_path / name
        local_airflow.migrate_metadata({"AIRFLOW_HOME": str(home)})
        return home

    first = migrated("first")
    with sqlite3.connect(first / "airflow.db") as conn:
        conn.execute("insert into dag_run (state) values ('running')")
    migrated("first")  # the same home again (the ui after the demo): migrated, and kept to itself
    assert runs(first) == 1 and runs(migrated("second")) == 0
    with sqlite3.connect(template) as conn:  # a copy kept by an earlier release, runs and all
        conn.execute("insert into dag_run (state) values ('running')")
    assert runs(migrated("third")) == 0
    demo.fresh_airflow_metadata(first)  # a new demo in the first home starts from nothing too
    assert runs(migrated("first")) == 0
