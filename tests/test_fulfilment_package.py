"""The export package (include/fulfilment/package.py) on a real PostgreSQL: it holds exactly the subject's rows
(compared with SQL written here by hand, table by table) and nobody else's, awkward values survive, the bytes
are the same every time, and a subject with hundreds of thousands of rows is written in bounded memory."""
from __future__ import annotations

import csv
import io
import json
import tracemalloc
import zipfile
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from devkit.database import connect
from tests import scratch
from devkit.seed.demo_data import seed
from tests.conftest import ops_datamap
from include.fulfilment import package
from include.fulfilment.right_to_know import last_twelve_months, shared_with
pytest.register_assert_rewrite("tests.fulfilment_support")
from tests.fulfilment_support import expected, matches  # noqa: E402

TODAY = datetime.now(timezone.utc).date()


@pytest.fixture(scope="module")
def world(pg_server_url):
    import uuid

    from devkit import database

    name = f"privacy_pkg_{uuid.uuid4().hex[:10]}"
    url = database.create_database(pg_server_url, name)
    summary = seed(url, users=400, seed=3, anchor=TODAY)
    with connect(url, autocommit=True) as conn:
        conn.execute("set timezone = 'UTC'")
        yield {"conn": conn, "planted": summary["planted"], "dm": ops_datamap()}
    scratch.drop_later(pg_server_url, name)


def build(world, user_id: int, tmp_path, as_of: date = TODAY, name: str = "p.zip") -> tuple[package.Package, dict]:
    conn, dm = world["conn"], world["dm"]
    who = package.subject(conn, dm, user_id)
    shared = shared_with(conn, dm, user_id, last_twelve_months(as_of, ZoneInfo("UTC")))
    built = package.build(conn, dm, package.About(77, "access", "gdpr", as_of), who, shared, str(tmp_path / name))
    with zipfile.ZipFile(built.path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    return built, files


def subjects(world) -> list[int]:
    p = world["planted"]
    return [p["requester_gdpr"][0], p["requester_ccpa"][0], p["do_not_sell"][0], p["child_by_report_email"][0],
            p["suppressed_different_case"][0], p["email_duplicate_ci"][0], p["email_null"][0], p["hold_active_adult"][0]]


def test_the_package_holds_exactly_the_subjects_rows(world, tmp_path):
    conn = world["conn"]
    # A row tied by an address three accounts share: none of them gets it.
    conn.execute("insert into email_suppressions (email, reason, created_at) values (' Dup.Shared@Example.com', "
                 "'bounce', now()) on conflict do nothing")
    for uid in subjects(world):
        built, files = build(world, uid, tmp_path, name=f"{uid}.zip")
        oracle = expected(conn, uid)
        matches(conn, files, uid, oracle)
        for (category, table), rows in oracle.items():
            assert built.rows[category][f"public.{table}"] == len(rows)
        manifest = json.loads(files["package.json"])
        assert manifest["files"] == list(built.files) == [i for i in files]
        assert manifest["request"] == {"id": 77, "type": "access", "regime": "gdpr"}


def test_nobody_elses_rows_are_in_the_package(world, tmp_path):
    """The oracle above says which rows; here: no other account's email, name or phone appears anywhere."""
    conn = world["conn"]
    uid = world["planted"]["requester_ccpa"][0]
    _, files = build(world, uid, tmp_path)
    text = b"\n".join(files.values()).decode().lower()
    mine = set(v.lower() for v in conn.execute("select email, full_name, phone from users where id = %s",
                                                 (uid,)).fetchone() if v)
    others = {v.lower() for row in conn.execute("select email, full_name, phone from users where id <> %s", (uid,))
              for v in row if v and len(v) >= 7} - mine
    assert len(others) > 500
    assert not [v for v in others if v in text]
    assert all(v in text for v in mine)


def test_rows_tied_by_a_shared_address_are_left_out_and_the_readme_says_so(world, tmp_path):
    conn, p = world["conn"], world["planted"]
    a, b = p["email_duplicate_ci"][:2]
    conn.execute("insert into email_suppressions (email, reason, created_at) values (' DUP.shared@example.com', "
                 "'bounce', now()) on conflict do nothing")
    who = package.subject(conn, world["dm"], a)
    assert who.shared_address and who.address is None
    built, files = build(world, a, tmp_path)
    assert built.rows["contact"]["public.email_suppressions"] == 0
    assert "Another account uses the same email address" in files["README.txt"].decode()
    solo = package.subject(conn, world["dm"], p["suppressed_same_case"][0])
    assert not solo.shared_address and solo.address == "bounced.user@example.org"
    built, files = build(world, solo.user_id, tmp_path, name="solo.zip")
    assert built.rows["contact"]["public.email_suppressions"] == 1
    assert "Another account" not in files["README.txt"].decode()
    assert b not in (a,)


def test_awkward_values_survive_exactly(world, tmp_path):
    """Quotes, backslashes, new lines, tabs, commas, non-Latin text, and dates Python cannot hold."""
    conn = world["conn"]
    uid = conn.execute("""insert into users (email, full_name, company_name, address, birth_date, created_at,
                                             deleted_at)
                          values ('odd@example.org', %s, %s, %s, '0044-03-15 BC', '-infinity', 'infinity')
                          returning id""",
                       ('Zoë "Z" O\'Brien\\n', "Back\\slash, Tab\tCo", "Line one\nLine two\r\n日本語 ✓")).fetchone()[0]
    conn.execute("insert into support_messages (user_id, subject, body, created_at) values (%s, %s, %s, now())",
                 (uid, "{\"json\": [1, 2]}", "ends with a backslash \\"))
    _, files = build(world, uid, tmp_path)
    contact = json.loads(files["contact.json"])["tables"][0]["rows"][0]
    assert contact["full_name"] == 'Zoë "Z" O\'Brien\\n'
    assert contact["company_name"] == "Back\\slash, Tab\tCo"
    assert contact["address"] == "Line one\nLine two\r\n日本語 ✓"
    account = json.loads(files["account.json"])["tables"][0]["rows"][0]
    assert (account["birth_date"], account["created_at"], account["deleted_at"]) == (
        "0044-03-15 BC", "-infinity", "infinity")
    support = json.loads(files["support.json"])["tables"][0]["rows"][0]
    assert support["subject"] == "{\"json\": [1, 2]}" and support["body"] == "ends with a backslash \\"
    row = next(csv.DictReader(io.StringIO(files["contact/users.csv"].decode(), newline="")))
    assert row["address"] == "Line one\nLine two\r\n日本語 ✓" and row["full_name"] == 'Zoë "Z" O\'Brien\\n'


def test_the_same_rows_give_the_same_bytes(world, tmp_path):
    uid = world["planted"]["requester_gdpr"][0]
    first, files = build(world, uid, tmp_path, name="a.zip")
    again, _ = build(world, uid, tmp_path, name="b.zip")
    assert (first.sha256, first.bytes) == (again.sha256, again.bytes)
    with zipfile.ZipFile(first.path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos][-2:] == ["README.txt", "package.json"]
    assert {(i.date_time, i.compress_type, i.create_system, i.external_attr >> 16) for i in infos} == {
        ((1980, 1, 1, 0, 0, 0), zipfile.ZIP_DEFLATED, 3, 0o644)}
    # Another day is another package (the README and the 12 months of sharing say which day).
    other, _ = build(world, uid, tmp_path, as_of=TODAY - timedelta(days=1), name="c.zip")
    assert other.sha256 != first.sha256
    # Rows inserted in another physical order still come out in the same order.
    conn = world["conn"]
    conn.execute("""update usage_events set duration_ms = duration_ms where user_id = %s""", (uid,))
    moved, _ = build(world, uid, tmp_path, name="d.zip")
    assert moved.sha256 == first.sha256


def test_a_large_subject_is_streamed_in_bounded_memory(world, tmp_path):
    """300,000 rows (over 50 MB of CSV and JSON) are written with a few MB of Python memory at most."""
    conn = world["conn"]
    uid = conn.execute("insert into users (email, created_at) values ('big@example.org', now()) returning id").fetchone()[0]
    conn.execute("""insert into usage_events (user_id, event_type, feature, api_calls, duration_ms, occurred_at)
                    select %s, 'api_call', 'feature_' || (g %% 37), g %% 11, g, now() - g * interval '1 second'
                    from generate_series(1, 200000) g""", (uid,))
    conn.execute("""insert into access_logs (user_id, ip_address, user_agent, isp, referrer, occurred_at)
                    select %s, '198.51.100.7', 'agent/' || (g %% 50), 'isp', null, now() - g * interval '1 second'
                    from generate_series(1, 100000) g""", (uid,))
    dm = world["dm"]
    who = package.subject(conn, dm, uid)
    shared = shared_with(conn, dm, uid, last_twelve_months(TODAY, ZoneInfo("UTC")))
    tracemalloc.start()
    try:
        built = package.build(conn, dm, package.About(9, "portability", "gdpr", TODAY), who, shared,
                              str(tmp_path / "big.zip"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with zipfile.ZipFile(built.path) as zf:
        content = sum(i.file_size for i in zf.infolist())
        with zf.open("usage/usage_events.csv") as fh:
            lines = sum(1 for _ in fh)
    assert built.rows["usage"]["public.usage_events"] == 200_000 and lines == 200_001
    assert built.rows["network"]["public.access_logs"] == 100_000
    assert content > 50_000_000
    assert peak < 8_000_000, f"peak Python memory {peak} bytes"



def test_rows_past_the_json_byte_budget_give_a_complete_package_the_same_bytes_as_one_batch(world, tmp_path,
                                                                                              monkeypatch):
    """Each category's JSON was joined in PostgreSQL a thousand rows to a text value, and a text value holds 1 GB at
    most: a subject with a thousand rows of a megabyte got no package (recorded incomplete, as a read the database
    refused). A batch now also ends once it passes JSON_BATCH_BYTES: with the budget lowered to 10 kB, 40 rows of
    3.2 kB come in batches of a few rows, and the package is complete and the same, byte for byte, as one batch."""
    conn, dm = world["conn"], world["dm"]
    uid = conn.execute("insert into users (email, created_at) values ('wide@example.org', '2026-01-02 03:04:05+00') "
                       "returning id").fetchone()[0]
    conn.execute("""insert into support_messages (user_id, subject, body, created_at)
                    select %s, 'wide ' || g, repeat(md5(g::text), 100),
                           '2026-01-02 03:04:05+00'::timestamptz + g * interval '1 minute'
                    from generate_series(1, 40) g""", (uid,))
    whole, _ = build(world, uid, tmp_path, name="whole.zip")
    budget = 10_000
    monkeypatch.setattr(package, "JSON_BATCH_BYTES", budget, raising=False)
    who = package.subject(conn, dm, uid)
    support = [p for p in package.parts(dm) if p.category == "support" and p.entry.table == "support_messages"]
    with conn.transaction():
        conn.execute("set local timezone = 'UTC'")
        chunks = list(package._category_json(package.Sources(conn), "support", support,
                                             {"user_id": uid, "email": who.address}))
    batches = [c for c in chunks if c.lstrip(b",").startswith(b"\n        {")]
    row = max(len(json.dumps(r).encode()) for r in json.loads(b"".join(chunks))["tables"][0]["rows"])
    assert len(batches) >= 10 and max(map(len, batches)) < budget + 2 * row, [len(b) for b in batches]
    split, files = build(world, uid, tmp_path, name="split.zip")
    assert split.rows["support"]["public.support_messages"] == 40
    matches(conn, files, uid)
    assert (split.sha256, split.bytes) == (whole.sha256, whole.bytes)


def test_a_stored_files_name_keeps_its_letters_in_any_script():
    from include.fulfilment.package import _entry_name

    assert _entry_name("users/5/Zoë Ångström – résumé.pdf") == "Zoë_Ångström_résumé.pdf"  # was Zo_ngstr_m_r_sum_.pdf
    assert _entry_name("users/5/Zoe\u0308.txt") == "Zoë.txt"                              # composed, one letter
    assert _entry_name("users/5/履歴書.pdf") == "履歴書.pdf"
    assert _entry_name("users/5/\u202egpj.exe") == "gpj.exe"                              # a direction mark is not kept
    assert _entry_name("users/5/../..") == "file"
    assert len(_entry_name("users/5/" + "é" * 300)) == 100


def test_a_store_in_another_encoding_is_exported_in_utf8_like_the_rest(world, pg_server_url, tmp_path):
    """A store whose database is LATIN1 (a legacy support desk or analytics database): the CSV came out in that
    store's encoding (COPY writes the connection's client encoding, the server's by default) while the JSON beside it
    was UTF-8, so the same note read ``Zo\\xe9`` in one file and ``Zoé`` in the other, and a reader of the CSV as
    UTF-8 (every spreadsheet's import, Python's csv) failed or showed mojibake."""
    import uuid

    import psycopg

    from devkit import database
    from include.datamap import parse_datamap
    from tests.conftest import ops_datamap_raw

    name = f"privacy_latin1_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database.with_database(pg_server_url, "postgres"), autocommit=True) as admin:
        admin.execute(f"create database {name} encoding 'LATIN1' template template0 locale 'C'")
        database.mark_as_ours(admin, name)
    try:
        with connect(database.with_database(pg_server_url, name), autocommit=True) as legacy:
            conn = world["conn"]
            uid = conn.execute("insert into users (email, created_at) values ('latin@example.org', now()) "
                               "returning id").fetchone()[0]
            legacy.execute("create table notes (user_id bigint, note text)")
            legacy.execute("insert into notes values (%s, 'Zoé paid ½')", (uid,))
            raw = ops_datamap_raw()
            raw["personal_data"].append({"table": "notes", "connection": "legacy_db", "subject": {"column": "user_id"},
                                         "categories": {"support": ["note"]}, "erase": "delete"})
            dm = parse_datamap(raw)
            who = package.subject(conn, dm, uid)
            shared = shared_with(conn, dm, uid, last_twelve_months(TODAY, ZoneInfo("UTC")))
            built = package.build(package.Sources(conn, {"legacy_db": legacy}.__getitem__), dm,
                                  package.About(5, "portability", "gdpr", TODAY), who, shared, str(tmp_path / "l.zip"))
            assert legacy.info.encoding in ("iso8859-1", "latin1", "latin-1")  # the connection's own is as it was
            with zipfile.ZipFile(built.path) as zf:
                csv_text = zf.read("support/legacy_db.notes.csv").decode("utf-8")
                (part,) = [t for t in json.loads(zf.read("support.json"))["tables"] if t["table"].endswith("notes")]
                readme = " ".join(zf.read("README.txt").decode().split())
        assert csv_text == "note\nZoé paid ½\n" and part["rows"] == [{"note": "Zoé paid ½"}]
        assert "Every file but those under files/ is UTF-8 text" in readme
    finally:
        scratch.drop_later(pg_server_url, name)


def test_the_oracle_reads_a_time_as_the_json_export_writes_it(pg_server_url):
    """The package oracle (tests/fulfilment_support.py ``json_like``) turns a time's text output into its JSON form.
    Python's isoformat always writes six digits of microseconds where PostgreSQL drops trailing zeros, so a row
    written at .388440 failed the comparison about one run in ten."""
    from tests.fulfilment_support import json_like

    values = ("2026-12-07 21:11:11.38844+00", "2026-12-07 21:11:11+00", "2026-12-07 21:11:11.000001+00",
              "2026-12-07 21:11:11.5+05:30")
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute("set time zone 'UTC'")
        for text in values:
            as_text, as_json = conn.execute("select %s::timestamptz::text, to_json(%s::timestamptz) #>> '{}'",
                                            (text, text)).fetchone()
            assert json_like(as_text) == as_json, text
            naive_text, naive_json = conn.execute("select %s::timestamp::text, to_json(%s::timestamp) #>> '{}'",
                                                  (text, text)).fetchone()
            assert json_like(naive_text) == naive_json, text
