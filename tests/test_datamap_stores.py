"""The data map names stores (SPEC §3.1, issue 28): each entry may name its connection (default ``ops_db``),
columns may hold file locations, a row may be tied through another table; ``check-datamap`` and the DAGs'
pre-run check validate every named connection and say which one is wrong, in one sentence."""
from __future__ import annotations

import copy

import pytest
import yaml

from devkit.database import connect
from devkit.local_airflow import postgres_connection
from devkit.operational_schema import all_stores_datamap_raw
from include import erasure
from include.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main
from include.datamap import DataMapError, load_datamap, parse_datamap, validate_stores
from include.fulfilment import package
from include.seam import connections as runtime
from include.seam.task import readable_failures


@pytest.fixture
def raw():
    return all_stores_datamap_raw()


@pytest.fixture
def stores(three_stores):
    """Three databases: the operational one and SPEC §3.1's support desk and analytics (tests/conftest.py)."""
    return three_stores


def opener(urls):
    import contextlib

    @contextlib.contextmanager
    def open_connection(conn_id):
        with connect(urls[conn_id], autocommit=True) as conn:
            yield conn

    return open_connection


def test_the_map_of_every_store_parses_with_its_connections_files_and_join_path(raw):
    dm = parse_datamap(raw)
    assert dm.connections == ("ops_db", "support_db", "analytics_db")
    # The operational entries are what they were; the others are apart.
    assert {e.table for e in dm.personal_data} == {e.table for e in load_datamap().personal_data}
    assert [(e.connection, e.table) for e in dm.other_stores] == [
        ("support_db", "tickets"), ("support_db", "ticket_events"), ("analytics_db", "daily_usage")]
    tickets, events, usage = dm.other_stores
    assert (tickets.subject.column, tickets.subject.match) == ("requester_email", "email")
    assert (events.subject.match, events.subject.through, events.subject.references) == ("through", "tickets", "id")
    assert [(e.table, c) for e, c in dm.file_columns] == [("uploads", "storage_uri"), ("tickets", "attachment_uri")]
    assert dm.buckets == ("acme-uploads", "acme-support-attachments")
    assert tickets.label == "personal_data 'tickets' (connection 'support_db')"
    assert load_datamap().connections == ("ops_db", "support_db", "analytics_db")  # the default map names them all


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["personal_data"][11].update(connection="support db!"),
     "data map entry personal_data 'tickets': 'connection' must be an Airflow connection id"),
    (lambda r: r["personal_data"][11].update(connection=7),
     "data map entry personal_data 'tickets': 'connection' must be an Airflow connection id"),
    (lambda r: r["personal_data"][11].update(files="attachment_uri"),
     "data map entry personal_data 'tickets': 'files' must be a non-empty list of distinct column names"),
    (lambda r: r["personal_data"][11].update(files=["body_uri"]),
     "data map entry personal_data 'tickets' (connection 'support_db'): file column 'body_uri' must also be listed"),
    (lambda r: r["personal_data"][11].update(storage="gcs"),
     "data map entry personal_data 'tickets' (connection 'support_db'): unknown key(s) storage"),
    (lambda r: r["personal_data"][12]["subject"].update(through="tikets"),
     "data map entry personal_data 'ticket_events' (connection 'support_db'): subject.through names table 'tikets', "
     "which has no entry on connection 'support_db'"),
    (lambda r: r["personal_data"][12].update(connection="analytics_db"),
     "subject.through names table 'tickets', which has no entry on connection 'analytics_db'"),
    (lambda r: r["personal_data"].append({**copy.deepcopy(r["personal_data"][12]), "table": "ticket_notes",
                                          "subject": {"column": "event_id", "through": "ticket_events"}}),
     "subject.through must name a table tied to the account directly"),
    (lambda r: r.update(buckets=["Bad Bucket"]), "data map 'buckets' must list bucket names"),
    (lambda r: r["personal_data"].append(copy.deepcopy(r["personal_data"][13])), "the table is listed twice"),
])
def test_a_malformed_store_entry_is_refused_in_one_sentence_naming_it(raw, mutate, message):
    mutate(raw)
    with pytest.raises(DataMapError) as err:
        parse_datamap(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_one_table_name_may_live_in_two_stores(raw):
    raw["personal_data"].append({"table": "usage_events", "connection": "analytics_db", "subject": {"column": "user_id"},
                                 "categories": {"usage": ["feature"]}, "erase": "delete"})
    assert [e.table for e in parse_datamap(raw).entries_on("analytics_db")] == ["daily_usage", "usage_events"]


def test_every_connection_is_checked_and_the_wrong_one_is_named(raw, stores):
    dm = parse_datamap(raw)
    validate_stores(dm, opener(stores))
    with connect(stores["support_db"], autocommit=True) as conn:
        conn.execute("alter table ticket_events rename column ticket_id to case_id")
    with connect(stores["analytics_db"], autocommit=True) as conn:
        conn.execute("drop table daily_usage")
    with pytest.raises(DataMapError) as err:
        validate_stores(dm, opener(stores))
    assert err.value.problems == [
        "data map entry personal_data 'ticket_events' (connection 'support_db'): column 'ticket_id' does not exist "
        "in table public.ticket_events",
        "data map entry personal_data 'daily_usage' (connection 'analytics_db'): table public.daily_usage does not "
        "exist"]
    assert str(err.value) == (err.value.problems[0] + " (and problems on 1 more connection(s))")
    with connect(stores["support_db"], autocommit=True) as conn:
        conn.execute("alter table ticket_events rename column case_id to ticket_id")
    with pytest.raises(DataMapError) as err:
        validate_stores(dm, opener(stores))
    assert str(err.value) == ("none of the 1 tables the data map places on connection 'analytics_db' exists in its "
                              "database: does 'analytics_db' point at the right database?")


def test_a_join_path_to_a_missing_column_is_named(raw, stores):
    raw["personal_data"][12]["subject"]["references"] = "ticket_no"
    with pytest.raises(DataMapError, match="subject.references column 'ticket_no' does not exist in table "
                                           "public.tickets"):
        validate_stores(parse_datamap(raw), opener(stores))


def test_check_datamap_checks_every_connection(raw, stores, tmp_path, capsys, monkeypatch):
    path = tmp_path / "datamap.yaml"
    path.write_text(yaml.safe_dump(raw))
    base = ["check-datamap", "--datamap", str(path), "--url", stores["ops_db"]]
    monkeypatch.setenv("PRIVACY_STORE_URL_SUPPORT_DB", stores["support_db"])
    monkeypatch.setenv("PRIVACY_STORE_URL_ANALYTICS_DB", stores["analytics_db"])
    assert main(base) == EXIT_OK
    assert "3 more on support_db, analytics_db" in capsys.readouterr().out

    monkeypatch.delenv("PRIVACY_STORE_URL_ANALYTICS_DB")
    assert main(base) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "data map entry personal_data 'daily_usage' (connection 'analytics_db') is on connection 'analytics_db', " \
           "which has no URL here: set $PRIVACY_STORE_URL_ANALYTICS_DB to its PostgreSQL URL" in err

    monkeypatch.setenv("PRIVACY_STORE_URL_ANALYTICS_DB", "postgresql://postgres@127.0.0.1:1/nowhere")
    assert main(base) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "connection 'analytics_db' (data map entry personal_data 'daily_usage' (connection 'analytics_db')): " \
           "could not reach the database" in err

    with connect(stores["support_db"], autocommit=True) as conn:
        conn.execute("alter table tickets drop column attachment_uri")
    monkeypatch.setenv("PRIVACY_STORE_URL_ANALYTICS_DB", stores["analytics_db"])
    assert main(base) == EXIT_CHECK_FAILED
    assert ("data map problem: data map entry personal_data 'tickets' (connection 'support_db'): column "
            "'attachment_uri' does not exist in table public.tickets") in capsys.readouterr().err


def test_the_pre_run_check_names_a_missing_or_unreachable_store(raw, stores, tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    path = tmp_path / "datamap.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("PRIVACY_DATAMAP", str(path))
    monkeypatch.setenv("AIRFLOW_CONN_SUPPORT_DB", postgres_connection(stores["support_db"]))
    monkeypatch.setenv("AIRFLOW_CONN_ANALYTICS_DB", postgres_connection(stores["analytics_db"]))
    with connect(stores["ops_db"], autocommit=True) as ops:
        assert runtime.datamap(ops).connections == ("ops_db", "support_db", "analytics_db")

        monkeypatch.delenv("AIRFLOW_CONN_ANALYTICS_DB")
        with pytest.raises(AirflowFailException) as err:
            with readable_failures():
                runtime.datamap(ops)
        assert str(err.value) == (
            "Airflow connection 'analytics_db' is not defined: add it under Admin > Connections or set "
            "AIRFLOW_CONN_ANALYTICS_DB (data map entry personal_data 'daily_usage' (connection 'analytics_db') is "
            "stored there)")

        monkeypatch.setenv("AIRFLOW_CONN_ANALYTICS_DB", postgres_connection("postgresql://postgres@127.0.0.1:1/nowhere"))
        with pytest.raises(AirflowException) as err:
            with readable_failures():
                runtime.datamap(ops)
        assert not isinstance(err.value, AirflowFailException)  # a store that does not answer keeps the retries
        assert str(err.value).startswith("the database of connection 'analytics_db' did not answer:")
        assert "\n" not in str(err.value)


def test_the_erasure_and_the_export_reach_every_store_in_order(raw):
    """Issue 28 lifted the refusal: every store's tables are targets, a join path's rows before the rows they hang
    from; the export reads every store's categories."""
    dm = parse_datamap(raw)
    order = {conn: [t.label for t in ts] for conn, ts in erasure.store_targets(dm).items()}
    assert order["support_db"] == ["support_db:public.ticket_events", "support_db:public.tickets"]
    assert order["analytics_db"] == ["analytics_db:public.daily_usage"]
    assert order["ops_db"][-1] == "public.users"  # the account row last
    assert {p.label for p in package.parts(dm)} >= {"support_db:public.tickets", "support_db:public.ticket_events",
                                                    "analytics_db:public.daily_usage"}
