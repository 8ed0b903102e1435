"""The data map: its shape, and its check against a live database."""
from __future__ import annotations

import copy

import pytest
import yaml

from devkit.database import connect
from include.datamap import DataMapError, default_path, load_datamap, parse_datamap, validate_against_database
from devkit.operational_schema import create_reference_schema


@pytest.fixture
def raw():
    return yaml.safe_load(default_path().read_text())


@pytest.fixture
def ops(fresh_db):
    with connect(fresh_db, autocommit=True) as conn:
        create_reference_schema(conn)
        yield conn


def test_default_map_covers_every_personal_data_table_of_the_reference_schema():
    dm = load_datamap()
    mapped = {e.table for e in dm.personal_data}
    assert mapped == {"users", "uploads", "support_messages", "usage_events", "access_logs", "social_profiles",
                      "data_shares", "privacy_requests", "child_reports", "legal_holds", "email_suppressions"}
    assert {c for e in dm.personal_data for c in e.categories} == {
        "contact", "account", "content", "usage", "network", "social", "support"}
    assert dm.account_entry.table == "users"


def test_default_map_matches_the_reference_schema(ops):
    validate_against_database(load_datamap(), ops)


def test_a_report_is_tied_to_its_child_by_id_and_by_address():
    reports = next(e for e in load_datamap().personal_data if e.table == "child_reports")
    assert [(link.column, link.match) for link in reports.links] == [("user_id", "key"), ("reported_email", "email")]
    assert set(reports.erase.null) | set(reports.erase.hash) >= {"user_id", "reported_email"}


def test_an_address_link_must_be_a_text_column(raw, ops):
    raw["personal_data"][8]["subject"]["also"] = [{"column": "resolved_at", "match": "email"}]
    raw["personal_data"][8]["erase"]["set_null"].append("resolved_at")
    with pytest.raises(DataMapError, match="subject column 'resolved_at' must be text to match emails"):
        validate_against_database(parse_datamap(raw), ops)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["personal_data"][1].update(table="uploadz"),
     "data map entry personal_data 'uploadz': table public.uploadz does not exist"),
    (lambda r: r["personal_data"][1]["categories"]["content"].append("filenme"),
     "data map entry personal_data 'uploads': column 'filenme' does not exist in table public.uploads"),
    (lambda r: r["records"]["privacy_requests"].update(columns={"received_at": "receivedAt"}),
     "data map entry records.privacy_requests: column 'receivedAt' does not exist"),
    (lambda r: r["records"]["vendors"].update(table="partners"),
     "data map entry records.vendors: table public.partners does not exist"),
    (lambda r: r["personal_data"][7]["erase"].update(set_null=["user_id", "received_at"]),
     "erase.set_null column 'received_at' is NOT NULL in the database"),
    (lambda r: r["personal_data"][7]["erase"].update(hash=["received_at"]),
     "erase.hash column 'received_at' is not a text column"),
])
def test_database_mismatch_names_the_entry(raw, ops, mutate, message):
    mutate(raw)
    with pytest.raises(DataMapError) as err:
        validate_against_database(parse_datamap(raw), ops)
    assert message in str(err.value)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["personal_data"][2]["categories"].update(gossip=["body"]), "unknown category 'gossip'"),
    (lambda r: r["personal_data"][2].update(erase="shred"), "'erase' must be 'delete' or a mapping"),
    (lambda r: r["personal_data"][7].update(erase={"hash": ["requester_email"]}),
     "must null or hash the subject column 'user_id'"),
    (lambda r: r["personal_data"][2].update(subject={"column": "user_id", "match": "phone"}),
     "subject.match must be 'key' or 'email'"),
    (lambda r: r["records"].pop("vendors"), "lacks role(s): vendors"),
    (lambda r: r["records"]["vendors"].update(columns={"colour": "x"}), "unknown column name(s) colour"),
    (lambda r: r.update(version=2), "version must be 1"),
    (lambda r: r["personal_data"].append(copy.deepcopy(r["personal_data"][1])), "the table is listed twice"),
    (lambda r: r["personal_data"].pop(0), "the accounts table has no personal_data entry"),
    (lambda r: r["personal_data"][8]["subject"].update(also=[{"column": "reported_email", "match": "phone"}]),
     "subject.also[0].match must be 'key' or 'email'"),
    (lambda r: r["personal_data"][8]["subject"].update(also=[{"column": "user_id"}]), "a subject column is listed twice"),
    (lambda r: r["personal_data"][8]["subject"].update(also=[{"column": "note", "match": "email"}]),
     "must null or hash the subject column 'note'"),
    (lambda r: r["personal_data"][8]["subject"].update(also=[{"column": "note", "also": []}]),
     "unknown subject.also[0] key(s) also"),
    (lambda r: r["personal_data"][0].update(erase={"set_null": ["id"]}), "the accounts table is erased by deleting"),
    # Found by a fault trial: a typo in records.accounts' id column got 'its entry must be subject: {column: uid}',
    # which led to the next error; the two names that differ are both named.
    (lambda r: r["records"]["accounts"].setdefault("columns", {}).update(id="uid"),
     "the accounts table's id column is 'uid' in records.accounts but 'id' in the subject of its entry personal_data 'users'"),
    (lambda r: r["personal_data"][7].update(erase={"set_null": ["user_id"], "hash": ["user_id"]}),
     "both nulled and hashed"),
    # A records role's columns or key of the wrong shape stopped the run with a ValueError or a TypeError traceback
    # (or further on, in the scan or the SQL), and a table name ending in a dot named a table of no name.
    (lambda r: r["records"]["vendors"].update(columns=["name", "kind"]),
     "data map entry records.vendors: 'columns' must map the workflow's column names to the table's"),
    (lambda r: r["records"]["vendors"].update(columns="name"),
     "data map entry records.vendors: 'columns' must map the workflow's column names to the table's"),
    (lambda r: r["records"]["vendors"].update(columns={"name": ["vendor_name"]}),
     "data map entry records.vendors: 'columns' must map the workflow's column names to the table's"),
    (lambda r: r["records"]["vendors"].update(columns={"name": ""}),
     "data map entry records.vendors: 'columns' must map the workflow's column names to the table's"),
    (lambda r: r["records"]["vendors"].update(key=7),
     "data map entry records.vendors: 'key' must be a column name"),
    (lambda r: r["records"]["vendors"].update(table="vendors."), "data map entry records.vendors: 'table' must be"),
    (lambda r: r["personal_data"][1].update(table=".uploads"), "data map entry personal_data[1]: 'table' must be"),
    # psycopg reads a '%' in a composed name as a placeholder: such a name failed every query with a parameter
    # (ProgrammingError: only '%s', '%b', '%t' are allowed as placeholders), a traceback in the first task.
    (lambda r: r["records"]["data_shares"].update(columns={"shared_at": "shared %at"}),
     "data map entry records.data_shares: the name 'shared %at' holds a '%'"),
    (lambda r: r["records"]["vendors"].update(table="vendors%"), "data map entry records.vendors: the name 'vendors%'"),
    (lambda r: r["personal_data"][1]["categories"]["content"].append("100%_done"),
     "data map entry personal_data 'uploads': the name '100%_done' holds a '%'"),
])
def test_malformed_map_is_refused_with_the_entry(raw, mutate, message):
    mutate(raw)
    with pytest.raises(DataMapError) as err:
        parse_datamap(raw)
    assert message in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(DataMapError, match="not found"):
        load_datamap(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("records: [unclosed")
    with pytest.raises(DataMapError, match="not valid YAML"):
        load_datamap(bad)


@pytest.mark.parametrize("twice", ["categories", "personal_data"])
def test_a_key_written_twice_is_refused_not_silently_dropped(tmp_path, twice):
    """Found by a fault trial: a second 'categories:' in the accounts entry kept only the last one (email, name,
    phone and address no longer mapped) and check-datamap said OK; a second 'personal_data:' was reported as the
    accounts table having no entry."""
    text = default_path().read_text(encoding="utf-8")
    if twice == "categories":
        text = text.replace("    categories:\n", "    categories:\n      account: [created_at]\n    categories:\n", 1)
    else:
        text += "\npersonal_data: []\n"
    doubled = tmp_path / "datamap.yaml"
    doubled.write_text(text, encoding="utf-8")
    with pytest.raises(DataMapError, match=rf"is not valid YAML: the key '{twice}' is written twice in one mapping "
                                           r"\(first at line \d+\): YAML would keep only the last at line \d+"):
        load_datamap(doubled)


def test_renamed_columns_are_read_through_the_map(raw, ops):
    ops.execute("alter table privacy_requests rename column received_at to created")
    raw["records"]["privacy_requests"]["columns"] = {"received_at": "created"}
    dm = parse_datamap(raw)
    validate_against_database(dm, ops)
    src = dm.record("privacy_requests")
    assert src.select_list(["id", "received_at"]).as_string(ops) == '"id" AS "id", "created" AS "received_at"'
