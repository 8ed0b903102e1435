"""The ``privacy-ops`` command line against a real PostgreSQL."""
from __future__ import annotations

import itertools
import re
import uuid

import pytest

from include import audit
from devkit import database
from tests import scratch
from include.cli import (EXIT_CHECK_FAILED, EXIT_CODES, EXIT_OK, EXIT_OVER_LIMIT, EXIT_UNREACHABLE, EXIT_USAGE,
                         build_parser, main)


pytestmark = pytest.mark.usefixtures("restore_logging")  # main() configures logging for a terminal


@pytest.fixture
def new_db_url(pg_server_url):
    name = f"privacy_cli_{uuid.uuid4().hex[:10]}"
    yield database.with_database(pg_server_url, name)
    scratch.drop_later(pg_server_url, name)


def test_init_ops_creates_the_reference_schema(new_db_url, capsys, three_stores, monkeypatch):
    # The default data map names SPEC §3.1's other stores too: check-datamap takes their URLs from the environment.
    monkeypatch.setenv("PRIVACY_STORE_URL_SUPPORT_DB", three_stores["support_db"])
    monkeypatch.setenv("PRIVACY_STORE_URL_ANALYTICS_DB", three_stores["analytics_db"])
    assert main(["init-ops", "--url", new_db_url, "--create-database"]) == 0
    with database.connect(new_db_url) as conn:
        tables = {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'public'")}
    assert {"users", "privacy_requests", "data_shares", "email_suppressions"} <= tables
    assert "reference operational schema created" in capsys.readouterr().out
    assert main(["check-datamap", "--url", new_db_url]) == 0


def test_seed_if_empty_then_store_and_audit(fresh_db, capsys):
    assert main(["seed", "--url", fresh_db, "--users", "300", "--anchor", "2026-11-25", "--if-empty"]) == 0
    with database.connect(fresh_db) as conn:
        users = conn.execute("select count(*) from users").fetchone()[0]
    assert users == 300
    assert main(["seed", "--url", fresh_db, "--users", "300", "--if-empty"]) == 0
    assert "not seeding" in capsys.readouterr().out

    assert main(["migrate-store", "--url", fresh_db]) == 0
    assert main(["migrate-store", "--url", fresh_db]) == 0
    assert "already current" in capsys.readouterr().out
    with database.connect(fresh_db, autocommit=True) as conn:
        for i in range(3):
            audit.append(conn, "cli.test", {"i": i}, actor="cli-test")
    assert main(["verify-audit", "--url", fresh_db]) == 0
    assert "audit log OK: 3 row(s)" in capsys.readouterr().out

    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table compliance.audit_log disable trigger user")
        conn.execute("update compliance.audit_log set action = 'forged' where id = (select min(id) from compliance.audit_log)")
    assert main(["verify-audit", "--url", fresh_db]) == 1
    assert "audit log BROKEN after 0 good row(s)" in capsys.readouterr().err


def test_check_datamap_reports_the_entry(fresh_db, tmp_path, capsys):
    assert main(["init-ops", "--url", fresh_db]) == 0
    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table support_messages rename column body to message")
    assert main(["check-datamap", "--url", fresh_db]) == EXIT_CHECK_FAILED
    assert "data map entry personal_data 'support_messages': column 'body' does not exist" in capsys.readouterr().err


def _one_sentence(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_unreachable_database_is_one_sentence_and_exit_3(capsys):
    assert main(["migrate-store", "--url", "postgresql://postgres@127.0.0.1:1/nowhere"]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith("privacy-ops migrate-store: could not reach the database at postgresql://postgres@127.0.0.1:1/")


def test_a_refused_login_says_refused_not_unreachable(capsys):
    url = "postgresql://no_such_role_for_tests:s3cret@127.0.0.1:5432/postgres"
    assert main(["migrate-store", "--url", url]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert err == ("privacy-ops migrate-store: the database at postgresql://no_such_role_for_tests:***@127.0.0.1:5432/"
                   'postgres refused the connection: FATAL: role "no_such_role_for_tests" does not exist; correct the '
                   "login, password or database name")



@pytest.mark.parametrize("does, setting, code, said", [
    ("perform repeat('ada.lovelace@example.org ', 100000000)", None, EXIT_OVER_LIMIT,
     "the database refused the work as over one of its limits (a value over PostgreSQL's 1 GB limit): requested "
     "length too large (SQLSTATE 54000); running it again would only repeat it"),
    ("perform pg_sleep(2)", "statement_timeout = '100ms'", EXIT_UNREACHABLE,
     "the database canceled a statement (statement_timeout): canceling statement due to statement timeout "
     "(SQLSTATE 57014)"),
    ("perform pg_terminate_backend(pg_backend_pid())", None, EXIT_UNREACHABLE, "lost the database: "),
    ("perform lastval()", None, EXIT_OVER_LIMIT,
     "the database refused the work as an object it needs is not in the state the work requires (object not in "
     "prerequisite state): lastval is not yet defined in this session (SQLSTATE 55000); running it again would only "
     "repeat it")])
def test_what_the_database_said_mid_command_is_said_by_its_kind(fresh_db, capsys, does, setting, code, said):
    """Every OperationalError was "lost the database" (exit 3), a value over PostgreSQL's 1 GB (SQLSTATE 54000) and a
    statement timeout among them: said by its kind, the program limit exiting 4 (running it again repeats it), never
    with the statement's values. The database does it from an event trigger on migrate-store's first DDL."""
    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"""create function refuse_ddl() returns event_trigger language plpgsql as $$
                         begin {does}; end $$;
                         create event trigger refuse_ddl on ddl_command_start execute function refuse_ddl()""")
        if setting:
            conn.execute(f"alter database {fresh_db.rsplit('/', 1)[1]} set {setting}")
    assert main(["migrate-store", "--url", fresh_db]) == code
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith(f"privacy-ops migrate-store: {said}"), err
    assert "lovelace" not in err


def test_malformed_url_is_a_usage_error(capsys):
    assert main(["verify-audit", "--url", "not a url"]) == EXIT_USAGE
    assert "must be a PostgreSQL URL" in _one_sentence(capsys.readouterr().err)
    for bad in ("postgresql://postgres@127.0.0.1:5432/db?nosuch=1", "postgresql://postgres@127.0.0.1:port/db",
                "postgresql://[bad/db"):
        assert main(["verify-audit", "--url", bad]) == EXIT_USAGE
        assert "is not a usable PostgreSQL URL" in _one_sentence(capsys.readouterr().err)


def test_a_malformed_url_from_the_environment_is_a_set_up_problem(monkeypatch, capsys):
    """The flag is the user's mistake (2); the same URL in $PRIVACY_PG_URL is the set-up's (3), named as such."""
    monkeypatch.setenv("PRIVACY_PG_URL", "notaurl://x")
    assert main(["verify-audit"]) == EXIT_UNREACHABLE
    assert "$PRIVACY_PG_URL must be a PostgreSQL URL" in _one_sentence(capsys.readouterr().err)
    monkeypatch.setenv("PRIVACY_PG_URL", "postgresql://postgres@127.0.0.1:port/db")
    assert main(["whatif"]) == EXIT_UNREACHABLE
    assert "$PRIVACY_PG_URL is not a usable PostgreSQL URL" in _one_sentence(capsys.readouterr().err)
    assert main(["verify-audit", "--url", "notaurl://x"]) == EXIT_USAGE
    assert "--url must be a PostgreSQL URL" in _one_sentence(capsys.readouterr().err)


def test_a_data_map_file_that_is_not_there_is_a_usage_error(tmp_path, capsys):
    assert main(["check-datamap", "--datamap", str(tmp_path / "nowhere.yaml")]) == EXIT_USAGE
    assert "data map file not found" in _one_sentence(capsys.readouterr().err)


def test_verify_audit_without_a_store_says_so(fresh_db, monkeypatch, capsys):
    assert main(["verify-audit", "--url", fresh_db]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert "has no compliance store" in err and "privacy-ops migrate-store" in err
    # The bare command defaults to the server's `postgres` database, which has no store either.
    monkeypatch.delenv("PRIVACY_PG_URL", raising=False)
    monkeypatch.setattr("include.cli.DEFAULT_URL", fresh_db.rsplit("/", 1)[0] + "/postgres")
    assert main(["verify-audit"]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert "database 'postgres' has no compliance store" in err
    # Not told to create one there: the compliance schema does not belong in the server's own database.
    assert "migrate-store" not in err and "point --url (or $PRIVACY_PG_URL) at the database" in err


def test_seed_into_the_schema_init_ops_created(fresh_db, capsys):
    assert main(["init-ops", "--url", fresh_db]) == EXIT_OK
    assert main(["seed", "--url", fresh_db, "--users", "200", "--anchor", "2026-11-25"]) == EXIT_OK
    with database.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from users").fetchone()[0] == 200
    capsys.readouterr()
    # Seeding over data is refused in one sentence; --replace reseeds.
    assert main(["seed", "--url", fresh_db, "--users", "150", "--anchor", "2026-11-25"]) == EXIT_USAGE
    assert "pass --replace" in _one_sentence(capsys.readouterr().err)
    assert main(["init-ops", "--url", fresh_db]) == EXIT_USAGE
    assert "already exists" in _one_sentence(capsys.readouterr().err)
    assert main(["seed", "--url", fresh_db, "--users", "150", "--anchor", "2026-11-25", "--replace"]) == EXIT_OK
    with database.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from users").fetchone()[0] == 150


def test_check_datamap_on_the_wrong_database_is_short(fresh_db, capsys):
    assert main(["check-datamap", "--url", fresh_db]) == EXIT_CHECK_FAILED
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert "none of the 13 mapped tables exists in this database: is this the operational database?" in first
    assert len(first) < 200 and "--details" in err
    assert main(["check-datamap", "--url", fresh_db, "--details"]) == EXIT_CHECK_FAILED
    assert capsys.readouterr().err.count("\n  - data map entry") == 19


def test_usage_errors_exit_2_in_one_sentence(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["seed", "--users", "many"])
    assert exit_.value.code == EXIT_USAGE
    assert "'many' is not a whole number" in _one_sentence(capsys.readouterr().err)
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-command"])
    assert exit_.value.code == EXIT_USAGE


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_and_flag_is_described():
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"migrate-store", "verify-audit", "check-datamap", "init-ops", "seed", "standins", "demo", "ui",
            "stop-db"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"privacy-ops {name} {'/'.join(action.option_strings)} is not described"


def test_the_readme_command_table_matches_the_parser():
    """docs/cli.md (linked from the README) lists every command with every flag it takes, and nothing the parser lacks."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    assert "(docs/cli.md)" in (root / "README.md").read_text(), "the README no longer links the command line page"
    page = (root / "docs" / "cli.md").read_text()
    table = page.split("<!-- commands -->")[1].split("<!-- /commands -->")[0]
    documented = {}
    for line in table.splitlines():
        match = re.match(r"\| `privacy-ops ([a-z-]+)` \| ([^|]*)\|", line)
        if match:
            documented[match.group(1)] = set(re.findall(r"--[a-z-]+", match.group(2)))
    for name, sub in _subparsers(build_parser()).items():
        flags = {opt for a in sub._actions for opt in a.option_strings if opt.startswith("--") and opt != "--help"}
        assert documented.get(name) == flags, f"docs/cli.md row of {name}: {documented.get(name)} != {flags}"
    assert set(documented) == set(_subparsers(build_parser()))


def test_the_help_gives_every_reason_for_exit_1_that_docs_cli_md_gives(capsys):
    """Found trying the demo: `whatif --run-id` naming no run, and `deletion-notices --vendor` naming no vendor, exit 1
    as docs/cli.md says, but `privacy-ops --help` gave exit 1 as "the check failed (audit chain broken, data map
    mismatch)" only, so the code read as a failed check. The help now says what the page says."""
    with pytest.raises(SystemExit):
        main(["--help"])
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("  1  "))
    assert "the id asked for names nothing" in line, line
    assert "names nothing" in EXIT_CODES[EXIT_CHECK_FAILED]


def test_no_command_prints_a_password(fresh_db, capsys, monkeypatch):
    """Trust authentication accepts any password, so a URL with one reaches the real server."""
    secret = "Sup3rSecretPassw0rd"
    with_password = fresh_db.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
    down = f"postgresql://postgres:{secret}@127.0.0.1:1/nowhere"
    runs = [["init-ops", "--url", with_password], ["seed", "--url", with_password, "--users", "100", "--if-empty"],
            ["migrate-store", "--url", with_password], ["verify-audit", "--url", with_password],
            ["check-datamap", "--url", with_password], ["migrate-store", "--url", down],
            ["verify-audit", "--url", down], ["seed", "--url", down], ["init-ops", "--url", down, "--create-database"]]
    for argv in runs:
        main(argv)
        out = capsys.readouterr()
        assert secret not in out.out + out.err, argv
    monkeypatch.setenv("PRIVACY_PG_URL", with_password)
    main(["verify-audit"])
    out = capsys.readouterr()
    assert secret not in out.out + out.err


# -- issue 25: no secret printed, no bad value as a traceback ------------------------------------------

SECRET = "SECRETpw42"
MALFORMED = {
    # a stray % in the password: libpq quotes the token back, password and all
    f"postgresql://postgres:Pw%zz{SECRET}@127.0.0.1:5432/postgres": "its password has a '%'",
    # a broken IPv6 host: libpq's message quotes the whole URL
    f"postgresql://postgres:{SECRET}@[::1/postgres": "IPv6",
    # a key=value string: echoed in full before
    f"host=127.0.0.1 password={SECRET} dbname=postgres": "not a key=value connection string",
    f"postgresql://postgres:{SECRET}@127.0.0.1:99999/postgres": "its port",
    f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres?nosuch=1": "libpq does not know ('nosuch')",
    # a value libpq refuses before it connects: a connection failure (exit 3) before, not a malformed --url
    f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres?sslmode=bogus":
        "its sslmode is not one of disable, allow, prefer, require, verify-ca, verify-full",
    f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres?keepalives=x": "its keepalives is not a whole number",
    # ... and three more a trial found exiting 3 (at connect: a refused method list, an address, a socket option)
    f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres?require_auth=x": "its require_auth is not a list of",
    f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres?require_auth=!password,md5": "its require_auth",
    f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres?hostaddr=abc": "its hostaddr is not a numeric IP",
    f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres?keepalives_idle=-3": "its keepalives_idle is negative",
}


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_is_named_by_its_flag_or_variable_and_never_quoted(url, monkeypatch, capsys):
    assert main(["migrate-store", "--url", url]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith("privacy-ops migrate-store: --url ") and MALFORMED[url] in err, err
    assert SECRET not in err and url not in err
    monkeypatch.setenv("PRIVACY_PG_URL", url)
    assert main(["verify-audit"]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith("privacy-ops verify-audit: $PRIVACY_PG_URL ") and MALFORMED[url] in err, err
    assert SECRET not in err
    # The dev kit's commands, which take the server part of the URL first, too.
    assert main(["init-ops", "--create-database"]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert "$PRIVACY_PG_URL" in err and SECRET not in err


def test_a_limit_or_id_too_large_for_the_database_is_a_usage_error(capsys):
    """Before: NumericValueOutOfRange with a traceback, exit 1."""
    answers = []
    for value in ("-1", "99999999999999999999"):
        with pytest.raises(SystemExit) as exit_:
            main(["whatif", "--limit", value])
        assert exit_.value.code == EXIT_USAGE
        answers.append(_one_sentence(capsys.readouterr().err).replace(value, "N"))
    assert answers[0] == answers[1] and "is not a whole number from 1 to 9223372036854775807" in answers[0]
    with pytest.raises(SystemExit) as exit_:
        main(["right-to-know", "--user-id", "99999999999999999999"])
    assert exit_.value.code == EXIT_USAGE
    _one_sentence(capsys.readouterr().err)


@pytest.mark.parametrize("dates, said", [(["--since", "2000-01-01", "--until", "9999-12-31"], "calendar's last day"),
                                         (["--until", "0001-01-01"], "no twelve months before it")])
def test_right_to_know_at_the_edge_of_the_calendar_is_a_usage_error(fresh_db, capsys, dates, said):
    """Found by a fault trial: OverflowError or 'year 0 is out of range' with a traceback, exit 1 (a failed check)."""
    assert main(["right-to-know", "--url", fresh_db, "--user-id", "5", *dates]) == EXIT_USAGE
    assert said in _one_sentence(capsys.readouterr().err)


def test_a_limit_at_the_largest_bigint_works(fresh_db, capsys):
    assert main(["migrate-store", "--url", fresh_db]) == EXIT_OK
    capsys.readouterr()
    assert main(["whatif", "--url", fresh_db, "--limit", "9223372036854775807"]) == EXIT_OK
    assert "no what-if runs are kept" in capsys.readouterr().out


@pytest.mark.parametrize("content, where", [("version: 1\nrecords: [a, b\n", "line 3, column 1"),
                                            ("version: 1\n\tpersonal_data: x\n", "line 2, column 1"),
                                            ("a: b: c\n", "line 1, column 5")])
def test_a_data_map_that_is_not_yaml_is_one_sentence_naming_the_file_and_the_place(content, where, tmp_path,
                                                                                      capsys):
    """Before: the parser's five lines (its marks and a quote of the file)."""
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    assert main(["check-datamap", "--datamap", str(path)]) == EXIT_CHECK_FAILED
    err = _one_sentence(capsys.readouterr().err)
    assert f"data map {path} is not valid YAML: " in err and err.endswith(where), err


def test_a_data_map_that_is_not_text_is_one_sentence(tmp_path, capsys):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage\x80")
    assert main(["check-datamap", "--datamap", str(path)]) == EXIT_CHECK_FAILED
    assert f"data map {path} is not a text file" in _one_sentence(capsys.readouterr().err)
    assert main(["check-datamap", "--datamap", str(tmp_path)]) == EXIT_USAGE  # not a file: the flag is wrong
    assert f"data map {tmp_path} cannot be read" in _one_sentence(capsys.readouterr().err)


def test_a_driver_message_never_carries_the_password(capsys):
    """A server that refuses: what reaches the user is scrubbed of the URL's password."""
    from include import pg_url

    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/x?sslpassword={SECRET}2"
    message = f'could not connect with "{url}" password={SECRET} ({SECRET}2)'
    assert SECRET not in pg_url.scrub(message, url)
    assert SECRET not in pg_url.redact(url) and pg_url.redact(url).startswith("postgresql://postgres:***@127.0.0.1:1")
    assert main(["migrate-store", "--url", url]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert SECRET not in err and "could not reach the database at postgresql://postgres:***@127.0.0.1:1/x" in err


def test_dev_runs_a_command_where_it_was_called_from(tmp_path):
    """Found by trying the README as a newcomer: `../dev privacy-ops check-datamap --datamap maps/x.yaml` said the
    file was not found, because ./dev ran every command from the repository's root."""
    import subprocess
    from pathlib import Path

    dev = Path(__file__).resolve().parent.parent / "dev"
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "x.yaml").write_text("version: 1\n")
    done = subprocess.run([str(dev), "python", "-c", "import os; print(os.getcwd()); print(open('maps/x.yaml').read())"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [str(tmp_path), "version: 1"]


def test_a_password_with_a_hash_or_an_at_sign_is_never_printed(fresh_db, capsys, monkeypatch):
    """Found by a fault trial: URLs were redacted with urllib's reading, not libpq's: a password with '#' (libpq takes
    it as it is; urllib cuts a fragment there) was printed whole, and one with a raw '@' (libpq's host then starts
    after its first '@') was printed in part through libpq's message."""
    hashed = f"postgresql://nouser:pa#{SECRET}@127.0.0.1:1/nowhere"
    assert main(["verify-audit", "--url", hashed]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert SECRET not in err and "postgresql://nouser:***@127.0.0.1:1/nowhere" in err, err
    at_sign = f"postgresql://postgres:pa@{SECRET}@127.0.0.1:1/x"
    assert main(["migrate-store", "--url", at_sign]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert SECRET not in err and "has an '@' that is not percent-encoded (write it as %40)" in err, err
    from include import pg_url

    message = f'could not translate host name "{SECRET}@127.0.0.1" to address'
    assert SECRET not in pg_url.scrub(message, at_sign)
    # The database a command names is the one libpq connects to (?dbname= included, a '#' in the password too).
    name = fresh_db.rsplit("/", 1)[1]
    via_query = fresh_db.rsplit("/", 1)[0] + f"/postgres?dbname={name}"
    assert main(["migrate-store", "--url", via_query]) == EXIT_OK
    assert f"database '{name}'" in capsys.readouterr().out


def test_an_object_store_location_with_credentials_is_never_repeated(fresh_db, capsys):
    """Found by a fault trial: `--anchors 's3://KEY:SECRET@bucket/x'` was quoted back whole; then a signed query
    string (`?sig=SECRET`) still was."""
    assert main(["migrate-store", "--url", fresh_db]) == EXIT_OK
    capsys.readouterr()
    for location in (f"s3://AKIAXXXX:{SECRET}@bucket/x", f"gs://user:{SECRET}@bucket/x",
                     f"s3://AKIAXXXX:{SECRET}@bucket/x?sig={SECRET}"):
        assert main(["verify-audit", "--url", fresh_db, "--anchors", location]) != EXIT_OK
        err = _one_sentence(capsys.readouterr().err)
        assert SECRET not in err and "AKIAXXXX" not in err and "***@bucket/x" in err, err


def test_check_datamap_checks_the_file_the_dags_read(fresh_db, capsys, monkeypatch, tmp_path):
    """Found by a fault trial: check-datamap read the packaged map whatever $PRIVACY_DATAMAP said ('data map OK' for
    a file that does not exist), while the DAGs, discover and right-to-know read $PRIVACY_DATAMAP."""
    monkeypatch.setenv("PRIVACY_DATAMAP", str(tmp_path / "nowhere.yaml"))
    assert main(["check-datamap", "--url", fresh_db]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert err.startswith("privacy-ops check-datamap: data map problem ($PRIVACY_DATAMAP): ") and "nowhere.yaml" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrecords: [a, b\n")
    monkeypatch.setenv("PRIVACY_DATAMAP", str(broken))
    assert main(["check-datamap", "--url", fresh_db]) == EXIT_CHECK_FAILED
    assert "is not valid YAML" in _one_sentence(capsys.readouterr().err)


def test_a_store_behind_the_code_an_edited_migration_and_a_refusing_server_are_one_sentence(fresh_db, capsys):
    """Found by a fault trial: each was a traceback (UndefinedTable, MigrationError, InsufficientPrivilege), exit 1."""
    from include import compliance_store

    with database.connect(fresh_db, autocommit=True) as conn:
        compliance_store.migrate(conn, upto=11)
    assert main(["findings", "--url", fresh_db]) == EXIT_UNREACHABLE
    err = _one_sentence(capsys.readouterr().err)
    assert "is at migration 11 but the code needs" in err and "run `privacy-ops migrate-store`" in err, err
    assert main(["migrate-store", "--url", fresh_db]) == EXIT_OK
    capsys.readouterr()
    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute("update compliance.schema_migrations set checksum = 'edited' where version = 3")
    assert main(["migrate-store", "--url", fresh_db]) == EXIT_UNREACHABLE
    assert "0003_child_purge was changed after it was applied" in _one_sentence(capsys.readouterr().err)
    with database.connect(fresh_db, autocommit=True) as conn:
        conn.execute("update compliance.schema_migrations set checksum = %s where version = 3",
                     (compliance_store.available_migrations()[2].checksum,))
    for options, argv in (("-c%20role%3Dpg_monitor", ["findings"]),
                          ("-c%20default_transaction_read_only%3Don", ["dismiss-finding", "--id", "1", "--reason",
                                                                       "not personal", "--by", "dpo"])):
        url = f"{fresh_db}?options={options}"
        assert main([argv[0], "--url", url, *argv[1:]]) == EXIT_UNREACHABLE, argv
        err = _one_sentence(capsys.readouterr().err)
        assert "the database refused: " in err, err


def test_a_data_map_that_never_ends_or_is_huge_is_refused_before_it_is_read(tmp_path, capsys):
    """Found by a fault trial: `check-datamap --datamap /dev/zero` read until the kernel killed the process."""
    assert main(["check-datamap", "--datamap", "/dev/zero"]) == EXIT_USAGE  # not a file: the flag is wrong
    assert "data map /dev/zero is not a regular file" in _one_sentence(capsys.readouterr().err)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (17 * 2**20) + b"\n")
    assert main(["check-datamap", "--datamap", str(big)]) == EXIT_CHECK_FAILED
    assert "is larger than 16 MiB: not a data map" in _one_sentence(capsys.readouterr().err)


@pytest.mark.parametrize("argv", [
    ["findings", "--url", ""], ["check-datamap", "--datamap", " "], ["verify-audit", "--anchors", ""],
    ["whatif", "--run-id", ""], ["dismiss-finding", "--id", "1", "--reason", "", "--by", "dpo"],
    ["dismiss-finding", "--id", "1", "--reason", "x" * 501, "--by", "dpo"],
    ["dismiss-finding", "--id", "1", "--reason", "not personal", "--by", ""],
    ["ui", "--port", "99999"], ["standins", "--sendgrid-port", "-1"], ["ui", "--pg-url", ""],
    ["ui", "--port", "0"]])  # found by a trial: it printed 'open http://localhost:0
def test_an_empty_or_impossible_value_is_a_usage_error_not_a_silent_default(argv, capsys):
    """Found by a fault trial: `--url ''` read $PRIVACY_PG_URL's database (or the server's postgres), `--by ''` was
    audited as 'person:' for good, a 501-character reason exited 1, `ui --port 99999` printed an address that cannot
    work and a negative port a traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err and ": argument --" in err, err


@pytest.mark.parametrize("argv, said", [
    (["seed", "--seed", "-1"], "'-1' is not a random seed"), (["demo", "--seed", "-1"], "'-1' is not a random seed"),
    (["seed-stores", "--seed", "-29"], "'-29' is not a random seed"),
    (["seed", "--users", "1000000000"], "give at most 10,000,000"), (["demo", "--users", "10000001"], "at most"),
    (["seed", "--anchor", "0001-01-02"], "is not a date from 0101-01-01 to 9989-12-31"),
    (["seed", "--anchor", "9999-12-30"], "is not a date from 0101-01-01 to 9989-12-31")])
def test_a_seed_argument_out_of_range_is_a_usage_error_naming_the_range(argv, said, capsys):
    """Found by a fault trial: a negative seed was numpy's ValueError, an anchor at the calendar's edge an
    OverflowError, each with a traceback; a billion users were killed by the kernel, out of memory. (Nothing answers
    at the URL: without the check, the command stops there.)"""
    flag = "--pg-url" if argv[0] == "demo" else "--url"
    with pytest.raises(SystemExit) as exit_:
        main([*argv, flag, "postgresql://postgres@127.0.0.1:1/nowhere"])
    assert exit_.value.code == EXIT_USAGE
    assert said in _one_sentence(capsys.readouterr().err)


def test_seed_requests_fewer_than_the_planted_ones_is_a_usage_error_before_any_connection(capsys):
    """Found by a fault trial: the seed's ValueError with a traceback, exit 1. Nothing answers at this URL: the
    check comes first."""
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    assert main(["seed", "--url", url, "--users", "300", "--requests", "5"]) == EXIT_USAGE
    assert "--requests 5 is fewer than the 45 planted requests" in _one_sentence(capsys.readouterr().err)


@pytest.mark.parametrize("anchor, policy_day", [("0101-01-01", "0100-12-31"), ("9989-12-31", "9989-12-30")])
def test_seed_works_at_either_end_of_the_anchors_it_takes(fresh_db, capsys, anchor, policy_day):
    assert main(["seed", "--url", fresh_db, "--users", "300", "--anchor", anchor]) == EXIT_OK
    with database.connect(fresh_db) as conn:  # the newest policy version is published the day before the anchor
        assert str(conn.execute("select max(published_at)::date from policy_versions").fetchone()[0]) == policy_day


@pytest.mark.parametrize("flag", ["--sendgrid-port", "--gcs-port"])
def test_standins_on_a_port_in_use_is_one_sentence(flag, capsys):
    """Found by a fault trial: the bind's OSError (Address already in use) with a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--gcs-port" if flag == "--sendgrid-port" else "--sendgrid-port"
        assert main(["standins", flag, str(port), other, "0"]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.splitlines()[-1] == f"privacy-ops standins: port {port} on 127.0.0.1 is in use: give {flag} another port"


def test_two_seeds_of_one_database_at_once_run_one_after_the_other(fresh_db):
    """Found by a fault trial: both found no tables, and the second died creating them (UniqueViolation, with a
    traceback). The second now waits, then finds the first one's data and refuses as if run after it."""
    import subprocess
    import sys
    from pathlib import Path

    argv = [str(Path(sys.executable).parent / "privacy-ops"), "seed", "--url", fresh_db, "--users", "20000"]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = sorted((run.wait(timeout=240), *run.communicate()) for run in runs)
    assert [code for code, _, _ in done] == [EXIT_OK, EXIT_USAGE], done
    (_, _, first_err), (_, waited_out, waited_err) = done
    assert "Traceback" not in first_err + waited_err, done
    assert "already holds data in the reference tables; pass --replace" in _one_sentence(waited_err)
    assert "is running: waiting for it to finish" in waited_out
    with database.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from users").fetchone()[0] == 20000


def test_two_init_ops_of_one_database_at_once_run_one_after_the_other(fresh_db):
    """Found by a fault trial (five times in five): both found no tables and the second died creating them
    (UniqueViolation on pg_type, a traceback). init-ops, seed and seed-stores now take the same lock on the
    database: the second waits, then finds the first one's tables and refuses as if run after it."""
    import subprocess
    import sys
    from pathlib import Path

    argv = [str(Path(sys.executable).parent / "privacy-ops"), "init-ops", "--url", fresh_db]
    for _ in range(2):
        with database.connect(fresh_db, autocommit=True) as conn:
            conn.execute("drop schema public cascade")
            conn.execute("create schema public")
        runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        done = sorted((run.wait(timeout=120), *run.communicate()) for run in runs)
        assert [code for code, _, _ in done] == [EXIT_OK, EXIT_USAGE], done
        assert "Traceback" not in done[0][2] + done[1][2]
        assert "already exists (and 12 more reference tables); pass --replace" in _one_sentence(done[1][2])


@pytest.mark.parametrize("argv", [
    ["demo", "--url", f"postgresql://u:{SECRET}@h/db"],          # --url where demo takes --pg-url
    ["verify-audit", f"postgresql://u:{SECRET}@h/db"],           # the URL without its flag
    ["verify-audit", "--urll", f"postgresql://u:{SECRET}@h/db"],  # a misspelt flag
    ["right-to-know", "--user-id", "jane.doe@example.com"]])
def test_an_argument_argparse_refuses_is_never_echoed_with_its_password_or_address(argv, capsys):
    """Found by a fault trial: argparse's sentence quoted what was typed, so swapping --url and --pg-url, or a
    misspelt flag, printed the database password, and a mistyped user id printed an address."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert SECRET not in err and "jane.doe" not in err and err.startswith("privacy-ops"), err


def test_a_run_id_or_table_that_names_nothing_is_never_echoed_with_an_address(fresh_db, capsys):
    """An address pasted as `whatif --run-id` or `discover --table` names nothing; the sentence saying so quoted it."""
    main(["init-ops", "--url", fresh_db])
    main(["migrate-store", "--url", fresh_db])
    capsys.readouterr()
    typed = "jane.doe@example.com"
    assert main(["whatif", "--url", fresh_db, "--run-id", typed]) == EXIT_CHECK_FAILED
    err = _one_sentence(capsys.readouterr().err)
    assert "no what-if results for run '…' (pruned, or not a what-if run)" in err and "jane.doe" not in err, err
    assert main(["whatif", "--url", fresh_db, "--run-id", "manual__2026-11-25"]) == EXIT_CHECK_FAILED
    assert "no what-if results for run 'manual__2026-11-25'" in _one_sentence(capsys.readouterr().err)
    assert main(["discover", "--url", fresh_db, "--table", typed, "--table", "nosuch"]) == EXIT_USAGE
    err = _one_sentence(capsys.readouterr().err)
    assert "--table …, nosuch: no scanned database has such a table" in err and "jane.doe" not in err, err


def test_credentials_in_a_setting_or_an_encoded_url_key_are_never_repeated():
    """Found by a fault trial: a location setting holding a key was quoted whole in the refusal (task logs, the
    page, on-call's alert); an alert kept a URL's query string; redact() missed 'pass%77ord' (libpq reads it as
    password)."""
    from include import alerts, pg_url
    from include.config import Settings, SettingsError

    with pytest.raises(SettingsError) as refused:
        Settings.from_json(f'{{"evidence_location": "s3://AKIAEXAMPLE:{SECRET}@bucket/x?X-Goog-Credential={SECRET}"}}')
    assert SECRET not in str(refused.value) and "evidence_location must be" in str(refused.value)
    said = alerts.scrub(f"could not read gs://bucket/x?X-Goog-Credential={SECRET} nor https://u:{SECRET}@host/p")
    assert SECRET not in said and "gs://bucket/x?***" in said
    assert SECRET not in pg_url.redact(f"postgresql://u@127.0.0.1:1/x?pass%77ord={SECRET}")


@pytest.mark.parametrize("argv, command", [
    (["right-to-know", "--user", "5"], "right-to-know"),        # taken as --user-id before
    (["right-to-know", "--userid", "5", "--user-id", "5"], "right-to-know"),
    (["demo", "--user", "50"], "demo"),                        # taken as --users before
])
def test_an_option_the_command_does_not_take_is_refused_by_name_never_guessed(argv, command, capsys):
    """argparse took a prefix of an option for the option ('--user' for '--user-id', or the demo's '--users'), and
    an unknown option was refused pointing at `privacy-ops --help` rather than the command's own."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"privacy-ops {command}: unrecognized arguments: {argv[1]}") and \
        err.rstrip().endswith(f"(see privacy-ops {command} --help)"), err


# -- downstream deletion notices: listed, and marked sent through the audit log ------------------------

def _notice(conn, subject: int, vendor: int, run_id: str, *, name="Adtech Ltd", categories=("contact",), shares=1,
            source="child_data_purge", at="2026-11-25 12:00+00", share_ids=None):
    conn.execute("""insert into compliance.vendor_deletion_notices (subject_hash, vendor_id, run_id, source,
                        vendor_name, vendor_known, categories, shares, created_at)
                    values (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                 (f"{subject:064x}", vendor, run_id, source, name, name is not None, list(categories), shares, at))
    if share_ids is not None:  # a notice recorded since migration 0024
        conn.execute("""update compliance.vendor_deletion_notices set share_ids = %s
                        where subject_hash = %s and vendor_id = %s and run_id = %s""",
                     (share_ids, f"{subject:064x}", vendor, run_id))


@pytest.fixture
def notices_db(fresh_db, capsys):
    assert main(["migrate-store", "--url", fresh_db]) == EXIT_OK
    with database.connect(fresh_db, autocommit=True) as conn:
        _notice(conn, 1, 4, "scheduled__a", shares=2, at="2026-11-20 08:00+00")
        _notice(conn, 2, 4, "scheduled__a", categories=("usage",))
        _notice(conn, 1, 4, "manual__fulfil", source="dsr_fulfilment", categories=("account", "contact"), shares=3,
                at="2026-11-26 09:30+00")
        _notice(conn, 3, 9, "scheduled__a", name=None, categories=())
    capsys.readouterr()
    return fresh_db


# A name the command line takes whole (--by: at most 100 characters), with a ticket number at its end.
LONG_NAME = ("Dana Example, Data Protection Officer, for the Privacy Office (ticket PRIV-2026-12345) " + "x" * 100)[:100]


def test_the_demo_summary_counts_every_notice_owed_apart_and_names_the_command_that_lists_them(notices_db):
    """Found trying the demo: its summary gave "vendor deletion notices outstanding: 114" at the end of the line of
    the child-data purge's last live run, though 20 of them came from request erasures, and named no command (the
    discovery line names `privacy-ops findings`). Now the notices have a line of their own saying whose they are
    and which commands list them and mark them sent."""
    from devkit.demo import _domain_lines

    with database.connect(notices_db, autocommit=True) as conn:
        lines = _domain_lines(conn)
    purge = next(line for line in lines if line.startswith("child-data purge (last live run): "))
    assert "notice" not in purge, purge
    assert [line for line in lines if "deletion notice" in line] == [
        "vendor deletion notices outstanding (of purges and request erasures): 4 (3 subject(s), 2 vendor(s)); "
        "`privacy-ops deletion-notices` lists them, `privacy-ops mark-notices-sent` records them sent"]
    assert lines.index(purge) + 1 == next(i for i, line in enumerate(lines) if "deletion notice" in line)


def test_mark_notices_sent_records_the_whole_name_it_was_given(notices_db, capsys):
    """Found trying the demo: --by takes up to 100 characters, but the audit entry's actor ('person:' and the name)
    was cut at 100, so a name of 94 or more lost its end (a ticket number, a surname) without a word. Now the
    entry names whoever --by named, whole."""
    assert len(LONG_NAME) == 100
    assert main(["mark-notices-sent", "--url", notices_db, "--vendor", "4", "--listed",
                 _listed(notices_db, 4, capsys), "--by", LONG_NAME]) == EXIT_OK
    capsys.readouterr()
    with database.connect(notices_db, autocommit=True) as conn:
        (actor,) = conn.execute("""select actor from compliance.audit_log
                                   where action = 'vendor_deletion_notices.marked_sent'""").fetchone()
    assert actor == f"person:{LONG_NAME}"
    assert main(["verify-audit", "--url", notices_db]) == EXIT_OK
    # Past what any --by gives, the function refuses in one sentence rather than record a name cut short.
    from include.erasure.notices import NoticeError, mark_sent

    with database.connect(notices_db, autocommit=True) as conn, pytest.raises(NoticeError, match="at most 120"):
        mark_sent(conn, 9, by="x" * 121)
        assert conn.execute("select count(*) from compliance.vendor_deletion_notices "
                            "where vendor_id = 9 and status = 'sent'").fetchone()[0] == 0


@pytest.mark.parametrize("name", ["Ada Lovelace\nperson:someone-else", "Ada\rLovelace", "Ada\x1b[2KLovelace",
                                  "Ada\u2028Lovelace"], ids=["newline", "return", "escape", "line-separator"])
def test_a_name_with_a_line_break_or_a_control_character_is_refused(notices_db, capsys, name):
    """Found by a fault trial: --by took a newline (or a terminal escape) and recorded it in the audit entry's actor,
    where a listing or a log line printing it would show a second, forged line. A name is one line of printable
    characters: refused as a usage error, nothing marked or dismissed."""
    listed = _listed(notices_db, 4, capsys)
    with pytest.raises(SystemExit) as exit_:
        main(["mark-notices-sent", "--url", notices_db, "--vendor", "4", "--listed", listed, "--by", name])
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--by" in err and "line break or control character" in err, err
    with pytest.raises(SystemExit) as exit_:
        main(["dismiss-finding", "--url", notices_db, "--id", "1", "--reason", "not personal", "--by", name])
    assert exit_.value.code == EXIT_USAGE
    capsys.readouterr()
    with database.connect(notices_db, autocommit=True) as conn:
        assert conn.execute("select count(*) from compliance.vendor_deletion_notices "
                            "where status = 'sent'").fetchone()[0] == 0


def test_deletion_notices_lists_what_each_vendor_is_owed(notices_db, capsys):
    """Before: no command listed the notices; the page gave one count and nothing said which vendor was owed what."""
    assert main(["deletion-notices", "--url", notices_db]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "vendor 4 Adtech Ltd: 2 subject(s), 6 share(s), 2 run(s); categories: account, contact, usage; "
        "oldest 2026-11-20 08:00 UTC",
        "    runs: scheduled__a, manual__fulfil",
        "vendor 9 (unknown vendor id): 1 subject(s), 1 share(s), 1 run(s); categories: -; oldest 2026-11-25 12:00 UTC",
        "    runs: scheduled__a"]
    assert main(["deletion-notices", "--url", notices_db, "--vendor", "4"]) == EXIT_OK
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("    ")]  # not the shares
    assert out[0].startswith("vendor 4 Adtech Ltd: 2 subject(s)")
    assert out[1] == ("  run scheduled__a (child_data_purge, recorded 2026-11-20 08:00 UTC): 2 subject(s), 3 share(s); "
                      "categories: contact, usage")
    assert out[2] == ("  run manual__fulfil (dsr_fulfilment, recorded 2026-11-26 09:30 UTC): 1 subject(s), 3 share(s); "
                      "categories: account, contact")
    assert "privacy-ops mark-notices-sent --vendor 4" in out[3]
    # A vendor no notice names: one sentence, exit 1 (as an id naming nothing elsewhere).
    assert main(["deletion-notices", "--url", notices_db, "--vendor", "77"]) == EXIT_CHECK_FAILED
    assert "no deletion notice was ever recorded for vendor 77" in _one_sentence(capsys.readouterr().err)
    # A vendor whose notices were all marked sent by hand, without a time (the only way before mark-notices-sent):
    # said so, not a TypeError from formatting the missing time.
    with database.connect(notices_db, autocommit=True) as conn:
        _notice(conn, 8, 12, "scheduled__a")
        conn.execute("update compliance.vendor_deletion_notices set status = 'sent' where vendor_id = 12")
    assert main(["deletion-notices", "--url", notices_db, "--vendor", "12"]) == EXIT_OK
    assert capsys.readouterr().out == ("vendor 12 is owed no deletion notice: its 1 notice(s) were marked sent, with no "
                                       "time recorded (marked outside privacy-ops mark-notices-sent)\n")
    with database.connect(notices_db) as conn:  # it reads only
        assert conn.execute("select count(*) from compliance.vendor_deletion_notices "
                            "where status = 'outstanding'").fetchone()[0] == 4


def test_deletion_notices_for_a_vendor_lists_the_share_ids_it_should_delete(notices_db, capsys):
    """Before: a notice held the subject's keyed hash (which the vendor cannot compute) and counts, nothing the
    vendor could find the data by. Now the ids of the shares it received (the manifests' share_id), per run; a
    notice recorded before migration 0024 says it has none."""
    with database.connect(notices_db, autocommit=True) as conn:
        _notice(conn, 5, 4, "scheduled__b", share_ids=[31, 7], at="2026-11-27 10:00+00")
        _notice(conn, 6, 4, "scheduled__b", share_ids=[12], at="2026-11-27 10:00+00")
    assert main(["deletion-notices", "--url", notices_db, "--vendor", "4"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    run_b = out.index("  run scheduled__b (child_data_purge, recorded 2026-11-27 10:00 UTC): 2 subject(s), 2 share(s); "
                      "categories: contact")
    assert out[run_b + 1] == "    share ids to delete: 7, 12, 31"
    run_a = next(i for i, line in enumerate(out) if line.startswith("  run scheduled__a "))
    assert out[run_a + 1] == ("    share ids not recorded for 2 subject(s) (erased before migration 0024; their shares "
                              "were erased with them)")


def test_a_runs_thousands_of_share_ids_are_listed_in_lines_a_terminal_shows(notices_db, capsys):
    """Found in a review: every share id of a run went on one line (100,000 ids: a line of 700 kB, unreadable and
    cut by terminals and ticket forms). They are wrapped under the heading, every id there once."""
    ids = list(range(1_000_000, 1_003_000))
    with database.connect(notices_db, autocommit=True) as conn:
        _notice(conn, 7, 4, "scheduled__many", share_ids=ids, at="2026-11-28 10:00+00")
    assert main(["deletion-notices", "--url", notices_db, "--vendor", "4"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("  run scheduled__many "))
    assert out[at + 1] == "    share ids to delete (3000):"
    lines = list(itertools.takewhile(lambda line: line.startswith("      "), out[at + 2:]))
    assert lines and all(len(line) <= 120 for line in lines)
    assert [int(i) for line in lines for i in line.replace(",", " ").split()] == ids


def _listed(url: str, vendor: int, capsys, run: str | None = None) -> str:
    """The listing code privacy-ops deletion-notices --vendor prints (the vendor's, or one run's)."""
    assert main(["deletion-notices", "--url", url, "--vendor", str(vendor)]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    if run is None:
        return re.search(r"--listed ([0-9a-f]{12}) ", out[-1]).group(1)
    at = next(i for i, line in enumerate(out) if line.startswith(f"  run {run} ("))
    return next(line.split(": ")[-1] for line in out[at + 1:] if line.startswith("    listing code of this run's"))


def test_mark_notices_sent_records_it_once_in_the_audit_log(notices_db, capsys):
    """Before: a notice could leave 'outstanding' only by hand-written SQL, outside the hash-chained audit log."""
    from datetime import datetime, timedelta, timezone

    from include.reads import attention, children

    def owed_on_the_page(conn):
        item = next(i for i in attention.needs_a_person(conn, now=datetime.now(timezone.utc),
                                                        approval_timeout=timedelta(hours=1))
                    if i.key == "deletion_notices")
        assert "privacy-ops mark-notices-sent" in item.note
        return item.count

    with database.connect(notices_db, autocommit=True) as conn:
        assert children.notices_owed(conn) == {"notices": 4, "subjects": 3, "vendors": 2}
        assert owed_on_the_page(conn) == 4
    assert main(["mark-notices-sent", "--url", notices_db, "--vendor", "4", "--run", "scheduled__a",
                 "--listed", _listed(notices_db, 4, capsys, "scheduled__a"), "--by", "Dana (DPO)"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == ("marked 2 deletion notice(s) to vendor 4 sent (2 subject(s); run(s) "
                                               "scheduled__a); recorded in the audit log")
    with database.connect(notices_db, autocommit=True) as conn:
        assert children.notices_owed(conn) == {"notices": 2, "subjects": 2, "vendors": 2}
        assert owed_on_the_page(conn) == 2
        sent = conn.execute("""select count(*), count(sent_at) from compliance.vendor_deletion_notices
                               where status = 'sent'""").fetchone()
        assert sent == (2, 2)
    # The rest of the vendor's notices; then a second call marks nothing and says so (no second audit entry).
    listed = _listed(notices_db, 4, capsys)
    assert main(["mark-notices-sent", "--url", notices_db, "--vendor", "4", "--listed", listed, "--by", "Dana (DPO)"]
                ) == EXIT_OK
    assert "marked 1 deletion notice(s) to vendor 4 sent (1 subject(s); run(s) manual__fulfil)" in \
        capsys.readouterr().out
    assert main(["mark-notices-sent", "--url", notices_db, "--vendor", "4", "--listed", listed, "--by", "Dana (DPO)"]
                ) == EXIT_OK
    assert capsys.readouterr().out.strip() == ("nothing marked: vendor 4 has no outstanding deletion notice (all were "
                                               "marked sent already)")
    with database.connect(notices_db, autocommit=True) as conn:
        assert children.notices_owed(conn) == {"notices": 1, "subjects": 1, "vendors": 1}
        entries = conn.execute("""select actor, details from compliance.audit_log
                                  where action = 'vendor_deletion_notices.marked_sent' order by id""").fetchall()
    assert entries == [("person:Dana (DPO)", {"vendor_id": 4, "notices": 2, "subjects": 2, "run_ids": ["scheduled__a"]}),
                       ("person:Dana (DPO)", {"vendor_id": 4, "notices": 1, "subjects": 1,
                                              "run_ids": ["manual__fulfil"]})]
    assert main(["verify-audit", "--url", notices_db]) == EXIT_OK
    capsys.readouterr()
    assert main(["deletion-notices", "--url", notices_db, "--vendor", "4"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("vendor 4 is owed no deletion notice: its 3 notice(s) were marked sent")
    # An unknown vendor, or a run that recorded nothing for it: refused in one sentence, nothing written.
    for argv, said in ((["--vendor", "77"], "no deletion notice was ever recorded for vendor 77 "),
                       (["--vendor", "9", "--run", "manual__fulfil"],
                        "no deletion notice was ever recorded for vendor 9 in run 'manual__fulfil'")):
        assert main(["mark-notices-sent", "--url", notices_db, *argv, "--listed", listed, "--by", "dpo"]
                    ) == EXIT_CHECK_FAILED
        assert said in _one_sentence(capsys.readouterr().err)
    with database.connect(notices_db, autocommit=True) as conn:
        assert children.notices_owed(conn) == {"notices": 1, "subjects": 1, "vendors": 1}
    for argv in (["--vendor", "4", "--by", ""], ["--vendor", "x", "--by", "dpo"], ["--by", "dpo"],
                 ["--vendor", "4", "--run", "", "--by", "dpo"], ["--vendor", "4", "--listed", "x1", "--by", "dpo"],
                 ["--vendor", "4", "--by", "dpo"]):
        with pytest.raises(SystemExit) as exit_:
            main(["mark-notices-sent", "--url", notices_db, *argv])
        assert exit_.value.code == EXIT_USAGE
        _one_sentence(capsys.readouterr().err)


def test_mark_notices_sent_marks_only_the_notices_listed_not_those_recorded_since(notices_db, capsys):
    """Found by a review: mark-notices-sent marked every outstanding notice of the vendor (or run) at the time it ran.
    A purge recording notices for the same vendor between the listing and the marking (a run in progress, a run
    cleared and run again under its id) had them marked sent, though the vendor was never told their share ids: an
    Art. 17(2) notice lost for good. The listing's code names what was listed; a changed set marks nothing."""
    listed = _listed(notices_db, 4, capsys)
    run_listed = _listed(notices_db, 4, capsys, "scheduled__a")
    with database.connect(notices_db, autocommit=True) as conn:  # the purge goes on: one more subject for vendor 4
        _notice(conn, 7, 4, "scheduled__a", share_ids=[99], at="2026-11-20 08:05+00")
    for argv in (["--listed", listed], ["--run", "scheduled__a", "--listed", run_listed]):
        assert main(["mark-notices-sent", "--url", notices_db, "--vendor", "4", *argv, "--by", "dpo"]
                    ) == EXIT_CHECK_FAILED
        said = _one_sentence(capsys.readouterr().err)
        assert "are not those listed" in said and "list them again" in said
    with database.connect(notices_db, autocommit=True) as conn:
        assert conn.execute("""select count(*) from compliance.vendor_deletion_notices
                               where vendor_id = 4 and status = 'outstanding'""").fetchone()[0] == 4
        assert conn.execute("select count(*) from compliance.audit_log "
                            "where action = 'vendor_deletion_notices.marked_sent'").fetchone()[0] == 0
    # Listed again (the new subject's share id shown), then marked: all four, once.
    assert main(["deletion-notices", "--url", notices_db, "--vendor", "4"]) == EXIT_OK
    assert "    share ids to delete: 99" in capsys.readouterr().out.splitlines()
    assert main(["mark-notices-sent", "--url", notices_db, "--vendor", "4", "--listed", _listed(notices_db, 4, capsys),
                 "--by", "dpo"]) == EXIT_OK
    assert "marked 4 deletion notice(s) to vendor 4 sent" in capsys.readouterr().out


def test_a_very_long_value_is_not_repeated_whole_and_an_interruption_is_one_sentence(fresh_db, capsys, monkeypatch):
    """Found by a fault trial: a value that names nothing was quoted back whole, however long: a 100,000-character
    `--run-id` made a 100 kB "sentence" (`--anchors gs://...`: twice that), and argparse's refusals of a long `--since`
    or a misspelt flag did the same. What is typed is now quoted up to 120 characters, then "… (N characters)". And
    Ctrl-C ended a command with no word and exit 130, which neither the help nor docs/cli.md listed."""
    main(["migrate-store", "--url", fresh_db])
    capsys.readouterr()
    long = "r" * 100_000
    for argv, code in ((["whatif", "--url", fresh_db, "--run-id", long], EXIT_CHECK_FAILED),
                       (["mark-notices-sent", "--url", fresh_db, "--vendor", "1", "--listed", "abcdefabcdef", "--by",
                         "me", "--run", long], EXIT_CHECK_FAILED),
                       (["verify-audit", "--url", fresh_db, "--anchors", "gs://" + long], EXIT_USAGE),
                       (["right-to-know", "--url", fresh_db, "--user-id", "1", "--since", long], EXIT_USAGE),
                       (["whatif", "--url", fresh_db, "--" + long], EXIT_USAGE)):
        try:
            got = main(argv)
        except SystemExit as exc:
            got = exc.code
        assert got == code, argv[:3]
        err = _one_sentence(capsys.readouterr().err)
        assert len(err) < 1000 and "… (100,0" in err, err[:300]

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("include.cli.cmd_findings", interrupted)
    assert main(["findings", "--url", fresh_db]) == 130
    assert _one_sentence(capsys.readouterr().err).startswith("privacy-ops findings: interrupted (Ctrl-C)")
    assert 130 in EXIT_CODES
