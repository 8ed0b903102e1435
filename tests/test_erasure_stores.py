"""The erasure engine and the export across stores (SPEC §3.1, issue 28), on three real PostgreSQL databases and
files in folder buckets: every store's rows, then the files, then the account last; progress per store and per
file so a lost store resumes; a file already gone is fine; a foreign bucket leaves the subject incomplete; the
export holds every store's rows and every file with its size and SHA-256."""
from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from devkit.database import connect
from devkit.operational_schema import all_stores_datamap_raw
from include import compliance_store, erasure
from include.datamap import parse_datamap
from include.erasure.stores import StoresNotReachable
from include.fulfilment import package
from include.objectstore import FileObjectStore, FolderBuckets
from include.subjects import user_hash
from include.fulfilment.right_to_know import SharedWith, last_twelve_months

KEY = b"test-subject-key-0123456789"
NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
ADDRESS = "Kid.One@Example.org"


@pytest.fixture
def world(three_stores, tmp_path):
    yield from _world(three_stores, tmp_path)


def _world(three_stores, tmp_path):
    conns = {c: connect(url, autocommit=True) for c, url in three_stores.items()}
    conns["compliance"] = connect(three_stores["ops_db"], autocommit=True)  # the compliance store: its own connection
    compliance_store.migrate(conns["compliance"])
    buckets = FolderBuckets(tmp_path / "buckets")
    for b in ("acme-uploads", "acme-support-attachments", "elsewhere"):
        (tmp_path / "buckets" / b).mkdir(parents=True)
    for uid, email in ((1, ADDRESS), (2, "other@example.org")):
        add_subject(conns, buckets, uid, email)
    # The address rule everywhere: a ticket from the subject's address with a trailing tab, one with a no-break space.
    conns["support_db"].execute("""insert into tickets (id, requester_email, subject, body, attachment_uri, created_at)
                                   values (13, %s, 's', 'b', null, now()), (14, %s, 's', 'b', null, now())""",
                                (" kid.one@example.org\t", "\u00a0KID.ONE@example.org"))
    yield {"conns": conns, "buckets": buckets, "dm": parse_datamap(all_stores_datamap_raw()), "tmp": tmp_path,
           "evidence": FileObjectStore(f"file://{tmp_path}/evidence")}
    for conn in conns.values():
        conn.close()


def add_subject(conns, buckets, uid: int, email: str) -> None:
    ops, support, analytics = conns["ops_db"], conns["support_db"], conns["analytics_db"]
    ops.execute("insert into users (id, email, full_name, created_at) values (%s, %s, %s, now())",
                (uid, email, f"Person {uid}"))
    for n in (1, 2):
        uri = f"gs://acme-uploads/users/{uid}/{n}/notes.pdf"
        ops.execute("insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at) "
                    "values (%s, %s, 'notes.pdf', 'upload', %s, 5, now())", (uid * 10 + n, uid, uri))
        buckets.bucket("acme-uploads").put(uri.split("/", 3)[3], f"upload {uid}.{n}".encode() * 1000)
    ticket = uid * 10
    attachment = f"gs://acme-support-attachments/tickets/{ticket}/scan.png"
    support.execute("insert into tickets (id, requester_email, subject, body, attachment_uri, created_at) "
                    "values (%s, %s, 'help', 'please', %s, now())", (ticket, email.upper(), attachment))
    buckets.bucket("acme-support-attachments").put(attachment.split("/", 3)[3], b"scan %d" % uid)
    for n in (1, 2, 3):
        support.execute("insert into ticket_events (id, ticket_id, actor_email, note, created_at) "
                        "values (%s, %s, 'agent@acme.example', 'noted', now())", (ticket * 10 + n, ticket))
    for day in (1, 2):
        analytics.execute("insert into daily_usage values (%s, %s, 'export', 3, 60)", (uid, date(2026, 11, day)))


def access(world, connect_override=None, allowed=None) -> erasure.StoreAccess:
    conns = world["conns"]
    return erasure.StoreAccess(connect=connect_override or conns.__getitem__, buckets=world["buckets"],
                               allowed=frozenset(allowed or world["dm"].buckets), progress=conns["compliance"],
                               evidence=world["evidence"])


def erase(world, uid: int = 1, **kw):
    return erasure.erase_subject(world["conns"]["ops_db"], world["dm"], uid, KEY, at=NOW,
                                 options=erasure.EraseOptions(stores=access(world, **kw)))


def snapshot(conns) -> dict:
    tables = {"ops_db": ("users", "uploads"), "support_db": ("tickets", "ticket_events"), "analytics_db": ("daily_usage",)}
    return {f"{c}.{t}": conns[c].execute(f"select * from {t} order by 1, 2").fetchall()
            for c, ts in tables.items() for t in ts}


def resumed_to_the_same_end(world, conns) -> None:
    """The retry of an interrupted erasure: purged, every store's rows counted as in one go, nothing of the subject
    left in any store or bucket."""
    result = erase(world)
    assert result.outcome == erasure.PURGED
    counts = {t.table: t.rows for t in result.tables}
    assert (counts["support_db:public.tickets"], counts["support_db:public.ticket_events"],
            counts["analytics_db:public.daily_usage"]) == (3, 3, 2)
    assert left_of_subject(conns) == dict.fromkeys(("users", "uploads", "tickets", "events", "usage"), 0)
    assert world["buckets"].bucket("acme-uploads").list("users/1/") == []


def left_of_subject(conns) -> dict:
    return {"users": conns["ops_db"].execute("select count(*) from users where id = 1").fetchone()[0],
            "uploads": conns["ops_db"].execute("select count(*) from uploads where user_id = 1").fetchone()[0],
            "tickets": conns["support_db"].execute("select count(*) from tickets where id in (10, 13, 14)").fetchone()[0],
            "events": conns["support_db"].execute("select count(*) from ticket_events where ticket_id = 10").fetchone()[0],
            "usage": conns["analytics_db"].execute("select count(*) from daily_usage where user_id = 1").fetchone()[0]}


def others(snap: dict) -> dict:
    """Everything of subject 2 (nobody else touched)."""
    keep = {}
    for table, rows in snap.items():
        if table.endswith(("users", "uploads", "daily_usage")):
            keep[table] = [r for r in rows if (r[0] if table.endswith("users") else r[1] if table.endswith("uploads")
                                               else r[0]) == 2]
        elif table.endswith("ticket_events"):
            keep[table] = [r for r in rows if r[1] == 20]
        else:
            keep[table] = [r for r in rows if r[0] == 20]
    return keep


def test_every_store_then_the_files_then_the_account(world):
    conns, buckets = world["conns"], world["buckets"]
    before = snapshot(conns)
    result = erase(world)
    assert result.outcome == erasure.PURGED
    counts = {t.table: t.rows for t in result.tables}
    assert counts["support_db:public.tickets"] == 3  # by address: upper-case, a trailing tab, a no-break space
    assert counts["support_db:public.ticket_events"] == 3  # through their ticket
    assert counts["analytics_db:public.daily_usage"] == 2
    assert counts["public.uploads"] == 2 and counts["public.users"] == 1
    assert left_of_subject(conns) == dict.fromkeys(("users", "uploads", "tickets", "events", "usage"), 0)
    assert result.files_evidence() == {"deleted": 3}
    assert buckets.bucket("acme-uploads").list("users/1/") == []
    assert buckets.bucket("acme-support-attachments").list("tickets/10/") == []
    # Nobody else touched: subject 2's rows in every store and its files.
    assert others(snapshot(conns)) == others(before)
    assert len(buckets.bucket("acme-uploads").list("users/2/")) == 2
    assert buckets.bucket("acme-support-attachments").exists("tickets/20/scan.png")
    # Evidence per store and per file, by keyed hash.
    subject = user_hash(KEY, 1)
    progress = dict(conns["ops_db"].execute("""select store, rows_erased from compliance.erasure_store_progress
                                               where subject_hash = %s""", (subject,)).fetchall())
    assert progress == {"support_db": 6, "analytics_db": 2}
    states = conns["ops_db"].execute("""select state, count(*) from compliance.erasure_files where subject_hash = %s
                                        and done_at is not null group by 1""", (subject,)).fetchall()
    assert states == [("deleted", 3)]
    # A second erasure finds nothing more.
    assert erase(world).outcome == erasure.ALREADY_ERASED


def test_a_store_lost_mid_erasure_resumes_to_the_same_end(world, three_stores):
    conns = world["conns"]
    doomed = connect(three_stores["analytics_db"], autocommit=True)
    pid = doomed.info.backend_pid
    conns["support_db"].execute("select pg_terminate_backend(%s)", (pid,))
    lost = {**conns, "analytics_db": doomed}
    with pytest.raises(psycopg.OperationalError):
        erase(world, connect_override=lost.__getitem__)
    # Nothing reported erased: the account and its operational rows are there; the support desk (before it) is
    # erased and recorded, analytics untouched, no file deleted yet.
    left = left_of_subject(conns)
    assert (left["users"], left["uploads"], left["tickets"], left["usage"]) == (1, 2, 0, 2)
    assert world["buckets"].bucket("acme-uploads").list("users/1/")
    subject = user_hash(KEY, 1)
    assert conns["ops_db"].execute("select store from compliance.erasure_store_progress where subject_hash = %s",
                                   (subject,)).fetchall() == [("support_db",)]
    # The retry (the store is back) resumes: the same end, the evidence of both attempts.
    resumed_to_the_same_end(world, conns)


def test_a_row_locked_in_another_store_is_a_busy_subject_within_the_erasures_lock_timeout(world, three_stores):
    """The caller's lock timeout holds in every store, not only the operational database: a support-desk row an
    application transaction holds makes the subject busy (the others go on; a later run takes it) within it, and
    nothing of the subject changes."""
    conns = world["conns"]
    with connect(three_stores["support_db"]) as app:  # an application transaction holding one of the subject's rows
        app.execute("update ticket_events set note = 'z' where ticket_id = 10")
        started = time.monotonic()
        with pytest.raises(erasure.SubjectBusy):
            erasure.erase_subject(conns["ops_db"], world["dm"], 1, KEY, at=NOW, options=erasure.EraseOptions(
                stores=access(world), lock_timeout_ms=200))
        waited = time.monotonic() - started
        app.rollback()
    assert waited < 5, waited  # 10 s, the other stores' fixed timeout, before
    assert left_of_subject(conns) == {"users": 1, "uploads": 2, "tickets": 3, "events": 3, "usage": 2}
    assert world["buckets"].bucket("acme-uploads").list("users/1/")


def test_a_file_already_gone_is_fine_and_a_foreign_bucket_leaves_the_subject_incomplete(world):
    conns, buckets = world["conns"], world["buckets"]
    buckets.bucket("acme-uploads").delete("users/1/1/notes.pdf")  # gone before the erasure: a 404 is fine
    conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at)
                               values (19, 1, 'x.pdf', 'upload', 'gs://elsewhere/x.pdf', 1, now())""")
    buckets.bucket("elsewhere").put("x.pdf", b"not ours to touch")
    result = erase(world)
    assert result.outcome == erasure.INCOMPLETE
    assert result.not_allowed == ("gs://elsewhere/x.pdf",)
    assert buckets.bucket("elsewhere").exists("x.pdf")  # not touched
    left = left_of_subject(conns)
    assert (left["users"], left["uploads"]) == (1, 3)  # the account stays for a later run to finish
    assert (left["tickets"], left["usage"]) == (3, 2)  # and every store's rows: nothing erased while a file is held
    assert len(buckets.bucket("acme-uploads").list("users/1/")) == 1
    # A person allows the bucket: the next erasure finishes, the file gone first.
    result = erase(world, allowed=["acme-uploads", "acme-support-attachments", "elsewhere"])
    assert result.outcome == erasure.PURGED
    assert not buckets.bucket("elsewhere").exists("x.pdf")
    assert result.files_evidence() == {"already_gone": 1, "deleted": 3}


def test_a_location_the_erasure_cannot_reach_says_so_and_a_mended_row_finishes_it(world):
    """Found by a fault trial: a location naming something unusable (another scheme, an invalid bucket) kept its
    subject incomplete with the reason of a bucket not allowed (allow it in file_buckets: no setting does), and
    once a person mended the row the location recorded before still held the subject back for good."""
    from include.erasure.stores import incomplete_reason

    conns = world["conns"]
    for n, uri in ((40, "s3://elsewhere/x.pdf"), (41, "gs://Not_A_Bucket/x.pdf"), (42, "gs://elsewhere/y.pdf")):
        conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes,
                                                        created_at) values (%s, 1, 'x', 'upload', %s, 1, now())""",
                                (n, uri))
    result = erase(world)
    assert result.outcome == erasure.INCOMPLETE and len(result.not_allowed) == 3
    reason = incomplete_reason(result.not_allowed)
    assert reason.startswith("3 file(s) of the subject the erasure may not touch: 1 in a bucket the settings do not "
                             "allow (elsewhere; allow it with the setting file_buckets); 2 at a location that is not "
                             "a gs:// object name")
    assert "correct or clear the location in its row" in reason and "x.pdf" not in reason
    # A person mends the rows: one location cleared, one corrected to an allowed bucket's file, the third row gone.
    world["buckets"].bucket("acme-uploads").put("users/1/fixed.pdf", b"fixed")
    conns["ops_db"].execute("update uploads set storage_uri = '' where id = 40")
    conns["ops_db"].execute("update uploads set storage_uri = 'gs://acme-uploads/users/1/fixed.pdf' where id = 41")
    conns["ops_db"].execute("delete from uploads where id = 42")
    result = erase(world)
    assert result.outcome == erasure.PURGED
    assert not world["buckets"].bucket("acme-uploads").exists("users/1/fixed.pdf")
    states = dict(conns["compliance"].execute("select uri, state from compliance.erasure_files where subject_hash = %s "
                                              "and uri not like 'gs://acme-%%'", (user_hash(KEY, 1),)).fetchall())
    assert states == {"s3://elsewhere/x.pdf": "unnamed", "gs://Not_A_Bucket/x.pdf": "unnamed",
                      "gs://elsewhere/y.pdf": "unnamed"}


def test_a_location_that_names_no_file_never_holds_the_erasure_back(world):
    """Found by a fault trial: an empty location, 'gs://' or a bucket with no object name was kept not_allowed and
    the subject incomplete for good, with the reason of a bucket the settings do not allow."""
    conns = world["conns"]
    for n, uri in enumerate(("", "  ", "gs://", "gs://acme-uploads", "gs://acme-uploads/", "GS://elsewhere"), 30):
        conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes,
                                                        created_at) values (%s, 1, 'x', 'upload', %s, 1, now())""",
                                (n, uri))
    result = erase(world)
    assert result.outcome == erasure.PURGED and result.not_allowed == ()
    assert left_of_subject(conns) == dict.fromkeys(("users", "uploads", "tickets", "events", "usage"), 0)


def test_a_plan_counts_every_stores_rows_as_the_erasure_then_erases_them(world):
    """The plan a reviewer approves counts each store in its own database (not the operational one alone), with
    the predicate the engine erases by (the address rule, a ticket's events through the ticket)."""
    from include.erasure.guard import review_text

    conns, dm = world["conns"], world["dm"]
    planned = erasure.plan(conns["ops_db"], dm, [1, 2], KEY, at=NOW, stores=conns.__getitem__)
    mine = {t.table: t.rows for t in planned.subjects[0].tables}
    assert (mine["support_db:public.tickets"], mine["support_db:public.ticket_events"],
            mine["analytics_db:public.daily_usage"]) == (3, 3, 2)
    assert (mine["public.uploads"], mine["public.users"]) == (2, 1)
    assert planned.store_totals() == {"ops_db": 2 * 3, "support_db": 3 + 1 + 3 + 3, "analytics_db": 2 * 2}
    text = review_text("headline", planned.hash, planned.table_totals(), "nothing", [])
    assert "Rows per store: ops_db 6, analytics_db 4, support_db 10." in text
    assert "| support_db | public.tickets | 4 |" in text and "| ops_db | public.users | 2 |" in text
    result = erase(world)
    assert result.outcome == erasure.PURGED
    assert planned.subjects[0].tables == result.tables  # the same tables, counts and order the erasure reports
    with pytest.raises(StoresNotReachable, match="support_db, analytics_db but this plan was given no access"):
        erasure.plan(conns["ops_db"], dm, [2], KEY, at=NOW)


def test_a_plan_counts_each_store_in_one_snapshot(world, three_stores):
    """The plan's counts of a store are one moment of it, as its comment said and its transaction (of the default
    isolation, a snapshot per statement) did not give: a ticket with its events written between the count of the
    tickets and that of their events was half in the plan (in one table's count and not in the other's)."""
    conns, dm = world["conns"], world["dm"]
    meanwhile = connect(three_stores["support_db"], autocommit=True)

    class WritesMeanwhile:
        """The support desk's connection, with the application writing a ticket after the plan's first count."""

        def __init__(self, conn):
            self.conn, self.counted = conn, 0

        def transaction(self):
            return self.conn.transaction()

        def execute(self, query, params=None):
            cursor = self.conn.execute(query, params)
            if "count" in str(query.as_string(self.conn) if hasattr(query, "as_string") else query):
                self.counted += 1
                if self.counted == 1:
                    meanwhile.execute("""insert into tickets (id, requester_email, subject, body, created_at)
                                         values (15, %s, 'new', 'sent meanwhile', now())""", (ADDRESS,))
                    meanwhile.execute("""insert into ticket_events (id, ticket_id, actor_email, note, created_at)
                                         values (151, 15, 'agent@acme.example', 'noted', now()),
                                                (152, 15, 'agent@acme.example', 'noted', now())""")
            return cursor

    support = WritesMeanwhile(conns["support_db"])
    planned = erasure.plan(conns["ops_db"], dm, [1], KEY, at=NOW,
                           stores=lambda c: support if c == "support_db" else conns[c])
    meanwhile.close()
    assert support.counted >= 2
    mine = {t.table: t.rows for t in planned.subjects[0].tables}
    assert (mine["support_db:public.tickets"], mine["support_db:public.ticket_events"]) == (3, 3)


@pytest.mark.parametrize("blank", ["", "  ", "\t", "\u00a0"])
def test_a_subject_with_a_blank_address_is_tied_to_no_one_elses_blank_rows(world, blank):
    """An address that is blank once trimmed names nobody: erasing (and planning to erase) its account touches only
    the account's own rows by id, not every row of every store whose address is blank (other people's tickets
    and their events, an anonymous message, a suppression, another account's report)."""
    conns, dm = world["conns"], world["dm"]
    ops, support = conns["ops_db"], conns["support_db"]
    ops.execute("insert into users (id, email, created_at) values (3, %s, now())", (blank,))
    support.execute("""insert into tickets (id, requester_email, subject, body, created_at)
                       values (100, '', 's', 'from no one', now()), (101, ' ', 's', 'from no one', now())""")
    support.execute("insert into ticket_events (id, ticket_id, note, created_at) values (1000, 100, 'n', now())")
    ops.execute("""insert into support_messages (id, user_id, email, subject, body, created_at)
                   values (50, null, '', 's', 'a web form', now())""")
    ops.execute("insert into email_suppressions (email, reason, created_at) values ('', 'invalid', now())")
    ops.execute("""insert into child_reports (id, user_id, reported_email, source, reported_at)
                   values (7, 2, '', 'parent', now()), (8, null, ' ', 'support', now())""")
    def others() -> dict:
        return {t: c.execute(f"select * from {t} order by 1").fetchall() for c, t in (
            (support, "tickets"), (support, "ticket_events"), (ops, "support_messages"), (ops, "email_suppressions"),
            (ops, "child_reports"), (ops, "users where id <> 3"))}

    before = others()
    planned = erasure.plan(ops, dm, [3], KEY, at=NOW, stores=conns.__getitem__)
    assert {t.table: t.rows for t in planned.subjects[0].tables if t.rows} == {"public.users": 1}
    assert not planned.subjects[0].shared_address
    result = erase(world, 3)
    assert result.outcome == erasure.PURGED
    assert {t.table: t.rows for t in result.tables if t.rows} == {"public.users": 1}
    assert others() == before
    assert not ops.execute("select 1 from users where id = 3").fetchone()


def test_an_erasure_without_access_to_the_stores_is_refused_and_changes_nothing(world):
    before = snapshot(world["conns"])
    with pytest.raises(StoresNotReachable, match="nothing of the subject was erased"):
        erasure.erase_subject(world["conns"]["ops_db"], world["dm"], 1, KEY, at=NOW)
    assert snapshot(world["conns"]) == before


def test_an_earlier_export_package_is_deleted_with_the_subject(world):
    conns, evidence = world["conns"], world["evidence"]
    evidence.put("exports/request=7/package.zip", b"zip")
    conns["ops_db"].execute("""insert into compliance.dsr_fulfilments (request_id, action, outcome, subject_hash,
                                   package_object, package_uri, package_sha256, run_id, first_recorded_at, recorded_at)
                               values (7, 'export', 'exported', %s, 'exports/request=7/package.zip', 'file:///x',
                                       repeat('a', 64), 'r', now(), now())""", (user_hash(KEY, 1),))
    assert erase(world).outcome == erasure.PURGED
    assert not evidence.exists("exports/request=7/package.zip")
    assert conns["ops_db"].execute("select package_deleted_at from compliance.dsr_fulfilments").fetchone()[0] == NOW


def test_the_export_holds_every_store_and_every_file(world):
    conns, buckets = world["conns"], world["buckets"]
    buckets.bucket("acme-uploads").delete("users/1/2/notes.pdf")  # a missing file is listed, not a failure
    dm = world["dm"]
    who = package.subject(conns["ops_db"], dm, 1)
    shared = SharedWith(1, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ())
    about = package.About(5, "access", "gdpr", date(2026, 11, 25))
    path = world["tmp"] / "package.zip"
    built = package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm, about, who, shared,
                          str(path))
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(files["package.json"])
    assert manifest["files"] == list(files)
    tables = {t: n for c in manifest["categories"].values() for t, n in c["tables"].items()}
    assert tables["support_db:public.tickets"] == 3 and tables["support_db:public.ticket_events"] == 3
    assert tables["analytics_db:public.daily_usage"] == 2
    events = [r for t in json.loads(files["support.json"])["tables"] if t["table"] == "support_db:public.ticket_events"
              for r in t["rows"]]
    assert len(events) == 3
    stored = {f["location"]: f for f in manifest["stored_files"]}
    assert stored["gs://acme-uploads/users/1/2/notes.pdf"]["status"] == "missing"
    for uri in ("gs://acme-uploads/users/1/1/notes.pdf", "gs://acme-support-attachments/tickets/10/scan.png"):
        bucket, key = uri[5:].split("/", 1)
        data = buckets.bucket(bucket).get(key)
        f = stored[uri]
        assert (f["status"], f["bytes"], f["sha256"]) == ("included", len(data), hashlib.sha256(data).hexdigest())
        assert files[f["entry"]] == data
    assert len(built.stored_files) == 3
    assert not (world["tmp"] / "files").exists() or not list((world["tmp"] / "files").iterdir())


def test_files_stream_from_gcs_into_the_package_in_one_pass(three_stores, tmp_path, monkeypatch):
    """Through the Google provider's client against the emulator: a file of several ranged requests and a missing
    one. Each file goes from its bucket straight into its entry (stored as is, complete local
    headers), its size and SHA-256 as the bucket holds it; nothing is written beside the package (the folder it
    is in may hold anything, here a file where a temporary folder could have gone); the README and package.json
    come last, and the package's SHA-256 is that of its bytes."""
    import os
    import tracemalloc

    from devkit.standins.gcs_emulator import GCSEmulator
    from include.seam.storage import DOWNLOAD_CHUNK, GCSBuckets

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                       '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}')
    with GCSEmulator(default_bucket="acme-uploads", more_buckets=("acme-support-attachments",)) as gcs:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.base_url)
        conns = {c: connect(url, autocommit=True) for c, url in three_stores.items()}
        buckets = GCSBuckets()
        add_subject(conns, buckets, 1, ADDRESS)
        big = os.urandom(5 * DOWNLOAD_CHUNK + 12345)
        conns["ops_db"].execute("insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, "
                                "created_at) values (13, 1, 'f', 'upload', %s, 0, now())",
                                ("gs://acme-uploads/users/1/3/f.bin",))
        buckets.bucket("acme-uploads").put("users/1/3/f.bin", big)
        buckets.bucket("acme-uploads").delete("users/1/2/notes.pdf")
        dm = parse_datamap(all_stores_datamap_raw())
        folder = tmp_path / "export"
        folder.mkdir()
        (folder / "files").write_bytes(b"not a folder")
        path = folder / "package.zip"
        tracemalloc.start()
        try:
            built = package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm,
                                  package.About(5, "access", "gdpr", date(2026, 11, 25)),
                                  package.subject(conns["ops_db"], dm, 1),
                                  SharedWith(1, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ()),
                                  str(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        expected = {uri: buckets.bucket(uri[5:].split("/", 1)[0]).get(uri[5:].split("/", 1)[1])
                    for uri in ("gs://acme-uploads/users/1/1/notes.pdf", "gs://acme-uploads/users/1/3/f.bin",
                                "gs://acme-support-attachments/tickets/10/scan.png")}
        for conn in conns.values():
            conn.close()
    assert sorted(os.listdir(folder)) == ["files", "package.zip"] and (folder / "files").read_bytes() == b"not a folder"
    data = path.read_bytes()
    assert (built.sha256, built.bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        infos = {i.filename: i for i in zf.infolist()}
        files = {n: zf.read(n) for n in zf.namelist()}
    assert list(files)[-2:] == ["README.txt", "package.json"]
    manifest = json.loads(files["package.json"])
    assert manifest["files"] == list(files)
    stored = {f["location"]: f for f in manifest["stored_files"]}
    assert stored["gs://acme-uploads/users/1/2/notes.pdf"]["status"] == "missing"
    assert not any("/2/notes" in name for name in files)
    for uri, content in expected.items():
        f = stored[uri]
        assert (f["status"], f["bytes"], f["sha256"]) == ("included", len(content), hashlib.sha256(content).hexdigest())
        assert files[f["entry"]] == content
        assert infos[f["entry"]].compress_type == zipfile.ZIP_STORED
    assert not [i for i in infos.values() if i.flag_bits & 0x08]  # sizes in every local header, no data descriptor
    assert "(3 of 4)" in files["README.txt"].decode()
    assert peak < 4 * DOWNLOAD_CHUNK < len(big), f"peak Python memory {peak} bytes for a file of {len(big)}"


def test_an_empty_file_gets_an_empty_entry(world):
    """A file's entry is opened at its first byte (a missing one leaves none): an empty file still gets its own."""
    conns, buckets, dm = world["conns"], world["buckets"], world["dm"]
    buckets.bucket("acme-uploads").put("users/1/2/notes.pdf", b"")
    built = package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm,
                          package.About(5, "access", "gdpr", date(2026, 11, 25)),
                          package.subject(conns["ops_db"], dm, 1),
                          SharedWith(1, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ()),
                          str(world["tmp"] / "package.zip"))
    (empty,) = [f for f in built.stored_files if f.location == "gs://acme-uploads/users/1/2/notes.pdf"]
    assert (empty.status, empty.bytes, empty.sha256) == ("included", 0, hashlib.sha256(b"").hexdigest())
    with zipfile.ZipFile(built.path) as zf:
        assert zf.read(empty.entry) == b"" and empty.entry in built.files


def test_another_spelling_of_a_location_is_the_same_file_to_the_erasure_and_the_export(world):
    """Found by a fault trial: another account's row naming the subject's file with white space around it or an
    upper-case scheme was not seen as naming the same file, so the subject's erasure deleted that account's file
    and the export handed it over; a file two of the subject's rows named in two spellings was packed twice."""
    conns, buckets, dm = world["conns"], world["buckets"], world["dm"]
    mine, theirs = "gs://acme-uploads/users/1/1/notes.pdf", "gs://acme-uploads/users/1/2/notes.pdf"
    rows = ((50, 2, f" {mine.upper()[:5]}{mine[5:]}\t"),   # account 2 names the subject's first file, respelled
            (51, 1, f"GS://{theirs[5:]}"), (52, 1, f"  {theirs}"))  # the subject names its second one twice more
    for n, owner, uri in rows:
        conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes,
                                                        created_at) values (%s, %s, 'x', 'upload', %s, 1, now())""",
                                (n, owner, uri))
    built = package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm,
                          package.About(5, "access", "gdpr", date(2026, 11, 25)),
                          package.subject(conns["ops_db"], dm, 1),
                          SharedWith(1, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ()),
                          str(world["tmp"] / "package.zip"))
    stored = {f.location: f.status for f in built.stored_files}
    assert stored[mine] == "shared"  # another account's row names it: never read into the package
    assert [f.status for f in built.stored_files if f.location.strip().lower().endswith(theirs[5:])] == ["included"]
    result = erase(world)
    assert result.outcome == erasure.PURGED
    assert buckets.bucket("acme-uploads").exists("users/1/1/notes.pdf")  # account 2's row still names it
    assert not buckets.bucket("acme-uploads").exists("users/1/2/notes.pdf")


_ERASER = """
import sys
from datetime import datetime, timezone
from devkit.database import connect
from include import erasure
from include.datamap import parse_datamap
from devkit.operational_schema import all_stores_datamap_raw
from include.objectstore import FileObjectStore, FolderBuckets
ops_url, support_url, analytics_url, root = sys.argv[1:5]
conns = {"ops_db": connect(ops_url, autocommit=True), "support_db": connect(support_url, autocommit=True),
         "analytics_db": connect(analytics_url, autocommit=True)}
dm = parse_datamap(all_stores_datamap_raw())
access = erasure.StoreAccess(connect=conns.__getitem__, buckets=FolderBuckets(root + "/buckets"),
                             allowed=frozenset(dm.buckets), progress=connect(ops_url, autocommit=True),
                             evidence=FileObjectStore("file://" + root + "/evidence"))
erasure.erase_subject(conns["ops_db"], dm, 1, b"test-subject-key-0123456789",
                      at=datetime(2026, 11, 25, 12, tzinfo=timezone.utc), options=erasure.EraseOptions(stores=access))
"""


def test_a_worker_killed_between_stores_resumes_to_the_same_end(world, three_stores):
    """SIGKILL after the support desk committed, while analytics is being erased: the account and the operational
    rows are intact (their transaction died with the worker), the support desk is erased and recorded, and the
    next erasure finishes with the same evidence as one in a single go."""
    import os
    import signal
    import subprocess
    import sys
    import time

    conns = world["conns"]
    conns["analytics_db"].execute("""
        create sequence slow_once;
        create function slow_once() returns trigger language plpgsql as $$
        begin
            if nextval('slow_once') = 1 then perform pg_sleep(60); end if;
            return old;
        end $$;
        create trigger slow_once before delete on daily_usage for each row execute function slow_once()""")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", _ERASER, three_stores["ops_db"], three_stores["support_db"],
                             three_stores["analytics_db"], str(world["tmp"])], env=env, start_new_session=True)
    subject = user_hash(KEY, 1)
    deadline = time.monotonic() + 30
    try:
        while not conns["compliance"].execute("select 1 from compliance.erasure_store_progress where subject_hash = %s "
                                              "and store = 'support_db'", (subject,)).fetchone():
            assert proc.poll() is None and time.monotonic() < deadline, "the eraser never reached the support desk"
            time.sleep(0.05)
        time.sleep(0.3)  # inside analytics' delete now
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # PostgreSQL ends the dead worker's sessions (the analytics one once its statement returns: end it now).
    conns["support_db"].execute("""select pg_terminate_backend(pid) from pg_stat_activity
                                   where datname = any(%s) and pid <> pg_backend_pid() and application_name = ''
                                     and backend_type = 'client backend' and state <> 'idle'""",
                                ([conns["analytics_db"].info.dbname],))
    time.sleep(0.2)
    left = left_of_subject(conns)
    assert (left["users"], left["uploads"], left["tickets"], left["events"], left["usage"]) == (1, 2, 0, 0, 2)
    assert world["buckets"].bucket("acme-uploads").list("users/1/")  # no file deleted before every store was done
    resumed_to_the_same_end(world, conns)


def test_a_file_is_erased_by_a_listing_a_delete_per_version_and_a_listing_that_verifies_it(three_stores, monkeypatch):
    """Through the Google provider's client against the emulator: each of the subject's files costs a listing of its
    versions (``versions=true``), a DELETE naming each version's generation, and a listing that finds none left;
    the bucket's soft delete policy is read once per bucket. (The engine used to send one DELETE without a
    generation and take its answer as the verification: in a bucket with Object Versioning that leaves the version
    noncurrent, so it verified nothing.) A file already gone costs no DELETE: its listing, and a listing of its
    soft-deleted copies, which the bucket still keeps until its record's ``recoverable_until``. The files are gone,
    and subject 2's are all there."""
    from devkit.standins.gcs_emulator import GCSEmulator
    from include.seam.storage import GCSBuckets

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                       '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}')
    with GCSEmulator(default_bucket="acme-uploads", more_buckets=("acme-support-attachments",)) as gcs:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.base_url)
        conns = {c: connect(url, autocommit=True) for c, url in three_stores.items()}
        conns["compliance"] = connect(three_stores["ops_db"], autocommit=True)
        compliance_store.migrate(conns["compliance"])
        buckets = GCSBuckets()
        for uid, email in ((1, ADDRESS), (2, "other@example.org")):
            add_subject(conns, buckets, uid, email)
        buckets.bucket("acme-uploads").delete("users/1/2/notes.pdf")  # already gone: fine
        dm = parse_datamap(all_stores_datamap_raw())
        gcs.requests.clear()
        result = erasure.erase_subject(conns["ops_db"], dm, 1, KEY, at=NOW, options=erasure.EraseOptions(
            stores=erasure.StoreAccess(connect=conns.__getitem__, buckets=GCSBuckets(), allowed=frozenset(dm.buckets),
                                       progress=conns["compliance"])))
        assert result.outcome == erasure.PURGED
        assert result.files_evidence() == {"deleted": 2, "already_gone": 1}
        subject_files = ("users/1/1/notes.pdf", "users/1/2/notes.pdf", "tickets/10/scan.png")
        on_files = [(method, status) for method, path, status in gcs.requests
                    if any(path.endswith("/o/" + name.replace("/", "%2F")) for name in subject_files)]
        # (GCS answers a delete 204; the emulator, 200.)
        assert sorted(on_files) == [("DELETE", 200), ("DELETE", 200)], gcs.requests
        listings = [path for method, path, _ in gcs.requests if method == "GET" and path.endswith("/o")]
        # The one already gone: its versions, then its soft-deleted copies (the bucket keeps them: 7 days by default).
        assert len(listings) == 2 * len(subject_files), gcs.requests
        until = dict(conns["compliance"].execute("select uri, recoverable_until from compliance.erasure_files"))
        assert all(until[f"gs://acme-uploads/users/1/{n}/notes.pdf"] > NOW for n in (1, 2)), until
        bucket_reads = [path for method, path, _ in gcs.requests if method == "GET" and path.endswith(
            ("/b/acme-uploads", "/b/acme-support-attachments"))]
        assert len(bucket_reads) == 2, gcs.requests  # each bucket's soft delete policy, once
        assert buckets.bucket("acme-uploads").list("users/1/") == []
        assert buckets.bucket("acme-uploads").list("users/2/") == ["users/2/1/notes.pdf", "users/2/2/notes.pdf"]
        assert buckets.bucket("acme-support-attachments").list("tickets/") == ["tickets/20/scan.png"]
        for conn in conns.values():
            conn.close()


def test_a_file_shared_at_one_attempt_and_the_subjects_alone_at_the_next_is_deleted(world):
    """Found by a fault trial: a file another account's row named at the subject's first attempt was recorded shared,
    and kept as done for good: once that row was gone (the other account erased, or its row mended) the subject's
    next attempt, which found the file named by its rows alone, still left it in place and reported the subject
    erased."""
    conns, buckets = world["conns"], world["buckets"]
    mine = "gs://acme-uploads/users/1/1/notes.pdf"
    conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at)
                               values (50, 2, 'x', 'upload', %s, 1, now()),
                                      (19, 1, 'x.pdf', 'upload', 'gs://elsewhere/x.pdf', 1, now())""", (mine,))
    buckets.bucket("elsewhere").put("x.pdf", b"not ours to touch yet")
    result = erase(world)
    assert result.outcome == erasure.INCOMPLETE
    assert buckets.bucket("acme-uploads").exists("users/1/1/notes.pdf")  # account 2's row names it: left in place
    conns["ops_db"].execute("delete from uploads where id = 50")  # account 2's row no longer names it
    result = erase(world, allowed=["acme-uploads", "acme-support-attachments", "elsewhere"])
    assert result.outcome == erasure.PURGED
    assert not buckets.bucket("acme-uploads").exists("users/1/1/notes.pdf")
    states = dict(conns["compliance"].execute("select uri, state from compliance.erasure_files where subject_hash = %s",
                                              (user_hash(KEY, 1),)).fetchall())
    assert states[mine] == "deleted"


def test_a_file_another_account_names_by_the_next_attempt_is_left_in_place(world, three_stores):
    """The other way round: a file the subject's rows alone named when a first attempt recorded it (the attempt then
    lost a store), and another account's row names too by the retry, is that account's as well by then: left in
    place and recorded shared, not deleted as the first attempt found it."""
    conns, buckets = world["conns"], world["buckets"]
    theirs = "gs://acme-uploads/users/1/2/notes.pdf"
    doomed = connect(three_stores["analytics_db"], autocommit=True)
    conns["support_db"].execute("select pg_terminate_backend(%s)", (doomed.info.backend_pid,))
    with pytest.raises(psycopg.OperationalError):
        erase(world, connect_override={**conns, "analytics_db": doomed}.__getitem__)
    conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at)
                               values (50, 2, 'x', 'upload', %s, 1, now())""", (theirs,))
    result = erase(world)
    assert result.outcome == erasure.PURGED
    assert buckets.bucket("acme-uploads").exists("users/1/2/notes.pdf")  # account 2's row names it now
    assert not buckets.bucket("acme-uploads").exists("users/1/1/notes.pdf")
    states = dict(conns["compliance"].execute("select uri, state from compliance.erasure_files where subject_hash = %s",
                                              (user_hash(KEY, 1),)).fetchall())
    assert states[theirs] == "shared"


def fulfilment_run(world, run_id: str, request_ids: tuple[int, ...], erase: bool = True) -> dict:
    """dsr_fulfilment's steps in the DAG's order over the three stores (within the threshold: approved in advance)."""
    from include.audit import RunContext
    from include.config import Settings
    from include.fulfilment import steps
    from include.fulfilment.params import FulfilmentParams
    from include.step import Step

    conns = world["conns"]
    s = Step(ctx=RunContext(run_id=run_id, actor="test", dag_id="dsr_fulfilment", task_id="test"),
             settings=Settings(), params=FulfilmentParams(as_of=NOW.date(), request_ids=request_ids),
             ops=conns["ops_db"], store=conns["compliance"], datamap=world["dm"], key=KEY, objects=world["evidence"],
             databases={c: conns[c] for c in ("support_db", "analytics_db")}, buckets=world["buckets"])
    steps.plan_requests(s)
    fulfilled = steps.fulfil_requests(s, workdir=str(world["tmp"]))
    if not erase:  # nothing to erase: the DAG's branch skips the erasing tasks
        return fulfilled
    steps.erase_requests(s)
    steps.verify_erasures(s)
    return steps.finish_run(s)


def test_a_store_left_unclean_leaves_its_subject_incomplete_and_the_others_erased(world):
    """Found by a fault trial: rows of a subject written back into another store while it was erased there (its
    residual not zero: that store rolled back) failed the erasing task at once, so the subjects after it were never
    erased, verification and the run's end never ran, and the subject got no record; every later run stopped at it
    the same way. That subject alone is now incomplete, with the store's sentence."""
    from include.erasure.stores import SubjectsRefused

    conns = world["conns"]
    conns["analytics_db"].execute("""
        create function write_back() returns trigger language plpgsql as $$
        begin
            insert into daily_usage values (1, '2026-12-01', 'rollup', 0, 0) on conflict do nothing;
            return null;
        end $$;
        create trigger write_back after delete on daily_usage for each statement execute function write_back()""")
    for rid, uid in ((1, 1), (2, 2)):
        conns["ops_db"].execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type,
                                                                 received_at, status)
                                   values (%s, %s, 'x@example.org', 'gdpr', 'erasure', %s, 'in_progress')""",
                                (rid, uid, NOW.replace(day=20)))
    with pytest.raises(SubjectsRefused, match="^1 subject.s. to erase left incomplete: the object store refused a file "
                                              "of 0 of them, the database refused the erasure of 1"):
        fulfilment_run(world, "manual__unclean", (1, 2))
    got = dict(conns["compliance"].execute("select request_id, outcome from compliance.dsr_fulfilments"))
    assert got == {1: "incomplete", 2: "erased"}
    reason = conns["compliance"].execute("select reason from compliance.dsr_fulfilments where request_id = 1"
                                         ).fetchone()[0]
    assert reason.startswith("erasing a subject left 1 row(s) in analytics_db:public.daily_usage"), reason
    assert conns["ops_db"].execute("select count(*) from users where id = 1").fetchone()[0] == 1
    assert conns["ops_db"].execute("select count(*) from users where id = 2").fetchone()[0] == 0


def test_a_subject_another_store_refused_is_counted_once_and_not_as_the_object_stores(world):
    """Found by a fault trial: a subject whose erasure another store's database refused (its files recorded and not
    yet deleted: the files come after the stores) was counted twice at the run's end, once as refused by the object
    store, which had refused nothing: "2 subject(s) ... the object store refused a file of 1 of them"."""
    from include.erasure.stores import SubjectsRefused

    conns = world["conns"]
    conns["support_db"].execute("""
        create function keep_open() returns trigger language plpgsql as $$
        begin raise exception 'ticket is still open' using detail = old.requester_email; end $$;
        create trigger keep_open before delete on tickets for each row when (old.id = 10) execute function keep_open()""")
    for rid, uid in ((1, 1), (2, 2)):
        conns["ops_db"].execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type,
                                                                 received_at, status)
                                   values (%s, %s, 'x@example.org', 'gdpr', 'erasure', %s, 'in_progress')""",
                                (rid, uid, NOW.replace(day=20)))
    with pytest.raises(SubjectsRefused) as err:
        fulfilment_run(world, "manual__refused", (1, 2))
    assert str(err.value).startswith("1 subject(s) to erase left incomplete: the object store refused a file of 0 of "
                                     "them, the database refused the erasure of 1"), str(err.value)
    got = dict(conns["compliance"].execute("select request_id, outcome from compliance.dsr_fulfilments"))
    assert got == {1: "incomplete", 2: "erased"}
    assert world["buckets"].bucket("acme-uploads").list("users/1/")  # nothing of the subject's deleted


def test_the_export_reads_each_store_in_one_snapshot(world, three_stores, monkeypatch):
    """Found by a fault trial: the other stores were read in transactions of the default isolation (a snapshot per
    statement), so a ticket the subject sent while its package was written was in its JSON and not in its count
    (package.json) or its CSV. Each store is now read in one snapshot, as the operational database is."""
    conns, buckets, dm = world["conns"], world["buckets"], world["dm"]
    meanwhile = connect(three_stores["support_db"], autocommit=True)
    written = []
    category_json = package._category_json

    def with_a_ticket_meanwhile(src, category, mine, params, *rest):
        if category == "support" and not written:
            meanwhile.execute("""insert into tickets (id, requester_email, subject, body, created_at)
                                 values (15, %s, 'new', 'sent meanwhile', now())""", (ADDRESS,))
            written.append(15)
        yield from category_json(src, category, mine, params, *rest)

    monkeypatch.setattr(package, "_category_json", with_a_ticket_meanwhile)
    path = world["tmp"] / "package.zip"
    package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm,
                  package.About(5, "access", "gdpr", date(2026, 11, 25)), package.subject(conns["ops_db"], dm, 1),
                  SharedWith(1, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ()), str(path))
    meanwhile.close()
    assert written
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    counted = json.loads(files["package.json"])["categories"]["support"]["tables"]["support_db:public.tickets"]
    in_json = [r for t in json.loads(files["support.json"])["tables"] if t["table"] == "support_db:public.tickets"
               for r in t["rows"]]
    in_csv = files["support/support_db.tickets.csv"].decode().strip().splitlines()[1:]
    assert counted == len(in_json) == len(in_csv) == 3


def test_rows_kept_for_a_shared_address_are_named_in_every_store(world):
    """Found by a fault trial: while another account has the subject's address, its rows tied by address alone are
    kept (they may be the other person's), and the evidence names them (``kept``) — but only the operational
    database's: the support desk's tickets and their events, kept the same way, were missing, so the record said
    nothing was kept while three tickets of the address were left."""
    conns = world["conns"]
    conns["ops_db"].execute("insert into users (id, email, created_at) values (3, %s, now())", (f" {ADDRESS.upper()}",))
    result = erase(world)
    assert result.outcome == erasure.PURGED and result.shared_address
    left = left_of_subject(conns)
    assert (left["users"], left["tickets"], left["events"], left["usage"]) == (0, 3, 3, 0)
    kept = {t.table: t.rows for t in result.kept}
    assert kept == {"support_db:public.tickets": 3, "support_db:public.ticket_events": 3}


def test_a_file_another_store_names_in_a_bucket_not_allowed_holds_the_subject_back_on_every_run(world):
    """Found by a fault trial: a ticket's attachment (the support desk's row) in a bucket the settings do not allow.
    The first run erases the support desk's rows, then finds the file not allowed and leaves the subject incomplete;
    the next run no longer found the file in any row (the erasure had removed the row naming it) and released it as
    unnamed, as if a person had mended the row: the subject was purged and its file left in the bucket."""
    conns, buckets = world["conns"], world["buckets"]
    conns["support_db"].execute("update tickets set attachment_uri = 'gs://elsewhere/tickets/10/scan.png' where id = 10")
    buckets.bucket("elsewhere").put("tickets/10/scan.png", b"a scan kept where the erasure may not go")
    first = erase(world)
    assert first.outcome == erasure.INCOMPLETE
    assert first.not_allowed == ("gs://elsewhere/tickets/10/scan.png",)
    again = erase(world)  # nobody allowed the bucket, nobody mended a row
    assert again.outcome == erasure.INCOMPLETE
    assert again.not_allowed == ("gs://elsewhere/tickets/10/scan.png",)
    assert left_of_subject(conns)["users"] == 1
    # Once a person allows the bucket, the next run deletes it and finishes.
    done = erase(world, allowed=["acme-uploads", "acme-support-attachments", "elsewhere"])
    assert done.outcome == erasure.PURGED
    assert not buckets.bucket("elsewhere").exists("tickets/10/scan.png")


def test_a_redacting_rule_on_another_store_keeps_its_rows_and_redacts_them(world):
    """Found by a fault trial: the data map may keep a store's rows and null or keyed-hash their columns (a support
    desk's tickets kept as evidence that a complaint was answered), as on the operational database. Another store's
    erasure deleted every row whatever the rule said (while the evidence called them redacted): rows the map keeps
    were gone for good."""
    from include.subjects import address_hash

    raw = all_stores_datamap_raw()
    tickets = next(e for e in raw["personal_data"] if e["table"] == "tickets")
    tickets["erase"] = {"hash": ["requester_email"], "set_null": ["attachment_uri"]}
    world["dm"] = parse_datamap(raw)
    conns = world["conns"]
    before = dict(conns["support_db"].execute("select id, requester_email from tickets where id in (10, 13, 14)"))
    result = erase(world)
    assert result.outcome == erasure.PURGED
    assert {t.table: (t.action, t.rows) for t in result.tables}["support_db:public.tickets"] == ("redact", 3)
    kept = {i: (e, a) for i, e, a in conns["support_db"].execute("select id, requester_email, attachment_uri from "
                                                                 "tickets where id in (10, 13, 14)")}
    assert kept == {i: (address_hash(KEY, before[i]), None) for i in (10, 13, 14)}
    assert conns["support_db"].execute("select count(*) from ticket_events where ticket_id = 10").fetchone()[0] == 0
    assert erase(world).outcome == erasure.ALREADY_ERASED  # redacted rows name nobody: nothing more to do


# What a legacy support desk's database holds: a name with an accent, and (SQL_ASCII keeps bytes as written) one
# written in Latin-1 beside UTF-8 text, as no UTF-8 text holds it.
ACCENTED = "Zoë Müller"
LATIN1_BYTES = b"Jos\xe9 Pe\xf1a"


@pytest.fixture(params=["LATIN1", "SQL_ASCII"])
def legacy_world(three_stores, pg_server_url, tmp_path, request):
    """The world of these tests with its support desk in a database whose encoding is not UTF-8 (LATIN1, or
    SQL_ASCII: no encoding checked), the reference tables in it; the subject's tickets there carry an accented name
    and an attachment whose name ends in a letter outside ASCII."""
    from devkit import database
    from devkit.operational_schema import create_store_schema
    from include.store_text import read_as_str
    from tests import scratch

    name = f"privacy_enc_{request.param.lower()}_{time.time_ns() % 10**10}"
    with connect(database.with_database(pg_server_url, "postgres"), autocommit=True) as admin:
        admin.execute(f"create database {name} template template0 encoding '{request.param}' "
                      "lc_collate 'C' lc_ctype 'C'")
        database.mark_as_ours(admin, name)
    try:
        url = database.with_database(pg_server_url, name)
        with connect(url, autocommit=True) as legacy:
            create_store_schema(legacy, "support_db")
        for w in _world({**three_stores, "support_db": url}, tmp_path):
            support, buckets = w["conns"]["support_db"], w["buckets"]
            read_as_str(support)  # the test's own reads: text as str in SQL_ASCII too
            attachment = "gs://acme-support-attachments/tickets/11/résumé.pdf"
            support.execute("insert into tickets (id, requester_email, subject, body, attachment_uri, created_at) "
                            "values (11, %s, 'cv', %s, %s, now()), (21, 'other@example.org', 'cv', %s, null, now())",
                            (ADDRESS, ACCENTED, attachment, ACCENTED))
            buckets.bucket("acme-support-attachments").put("tickets/11/résumé.pdf", b"cv")
            if request.param == "SQL_ASCII":
                support.execute("update tickets set subject = convert_from(%s, 'SQL_ASCII') where id in (11, 21)",
                                (LATIN1_BYTES,))
            yield {**w, "encoding": request.param}
    finally:
        scratch.drop_later(pg_server_url, name)


def test_a_subject_is_erased_from_a_store_whose_database_is_not_utf8(legacy_world):
    """Found by a fault trial: the erasure could not send its statements to a support desk in LATIN1 (the address
    rule names white space that encoding cannot hold: UnicodeEncodeError) and, in SQL_ASCII, read the attachment's
    location as bytes. The subject's tickets (by address: upper case, a trailing tab, a no-break space), their events
    and the attachment named in a non-ASCII letter are erased, verified, and nobody else's touched."""
    from include.addresses import comparable
    from include.erasure.stores import kept_elsewhere, residual_by_keys_elsewhere

    w = legacy_world
    conns, buckets, dm = w["conns"], w["buckets"], w["dm"]
    planned = erasure.plan(conns["ops_db"], dm, [1], KEY, at=NOW, stores=conns.__getitem__)
    assert {t.table: t.rows for t in planned.subjects[0].tables}["support_db:public.tickets"] == 4
    before = snapshot(conns)
    result = erase(w)
    assert result.outcome == erasure.PURGED
    counts = {t.table: t.rows for t in result.tables}
    assert (counts["support_db:public.tickets"], counts["support_db:public.ticket_events"]) == (4, 3)
    assert result.files_evidence() == {"deleted": 4}
    assert buckets.bucket("acme-support-attachments").list("tickets/11/") == []
    assert conns["support_db"].execute("select count(*) from tickets where id in (10, 11, 13, 14)").fetchone() == (0,)
    # Verified: nothing of the subject left in the store, by its address or its key.
    assert kept_elsewhere(dm, access(w), 1, comparable(ADDRESS)) == []
    assert residual_by_keys_elsewhere(dm, conns.__getitem__, [1]) == {}
    after = snapshot(conns)
    assert others(after) == others(before)
    assert [r[:4] for r in after["support_db.tickets"] if r[0] == 21] == \
        [r[:4] for r in before["support_db.tickets"] if r[0] == 21]
    # The store's address index (built through comparable_sql on it) serves the erasure's statement there.
    tickets = next(t for t in erasure.store_targets(dm)["support_db"] if t.entry.table == "tickets")
    with conns["support_db"].transaction():
        conns["support_db"].execute("set local enable_seqscan = off")
        plan = [r[0] for r in conns["support_db"].execute(psycopg.sql.SQL("explain ") + tickets.delete(),
                                                          {"user_id": 1, "email": comparable(ADDRESS)})]
    assert any("tickets_address_key_idx" in line for line in plan), plan


def test_a_package_is_exported_from_a_store_whose_database_is_not_utf8(legacy_world):
    """Found by a fault trial: no access request of a subject with tickets in a support desk in LATIN1 or SQL_ASCII
    was exported. LATIN1 refused the address rule's white space (character ... has no equivalent in encoding
    "LATIN1"); SQL_ASCII, asked for UTF-8, refused to send a ticket written in Latin-1 (invalid byte sequence for
    encoding "UTF8"): each request left incomplete, run after run. Both packages are written now, the other request's
    too: accented names intact, and in SQL_ASCII a byte no UTF-8 text holds read as its Latin-1 character, the
    package saying which tables held such bytes."""
    w = legacy_world
    conns = w["conns"]
    for rid, uid in ((1, 1), (2, 2)):
        conns["ops_db"].execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type,
                                                                 received_at, identity_verified_at, status)
                                   values (%s, %s, 'x@example.org', 'gdpr', 'access', %s, %s, 'in_progress')""",
                                (rid, uid, NOW.replace(day=20), NOW.replace(day=20)))
    assert fulfilment_run(w, "manual__legacy_export", (1, 2), erase=False)["outcomes"] == {"exported": 2}
    got = dict(conns["compliance"].execute("select request_id, outcome from compliance.dsr_fulfilments"))
    assert got == {1: "exported", 2: "exported"}
    with zipfile.ZipFile(io.BytesIO(w["evidence"].get(package.object_name(1)))) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(files["package.json"])
    tables = {t: n for c in manifest["categories"].values() for t, n in c["tables"].items()}
    assert (tables["support_db:public.tickets"], tables["support_db:public.ticket_events"]) == (4, 3)
    tickets = [r for t in json.loads(files["support.json"])["tables"] if t["table"] == "support_db:public.tickets"
               for r in t["rows"]]
    cv = [r for r in tickets if r["body"] == ACCENTED]
    assert len(cv) == 1
    csv_text = files["support/support_db.tickets.csv"].decode("utf-8")
    assert ACCENTED in csv_text
    stored = {f["location"]: f for f in manifest["stored_files"]}
    assert stored["gs://acme-support-attachments/tickets/11/résumé.pdf"]["status"] == "included"
    if w["encoding"] == "SQL_ASCII":
        assert cv[0]["subject"] == LATIN1_BYTES.decode("latin-1") == "José Peña" and "José Peña" in csv_text
        assert manifest["text_read_as_latin1"] == ["support_db:public.tickets"]
        assert "Latin-1" in files["README.txt"].decode()
    else:
        assert "text_read_as_latin1" not in manifest


def test_an_address_the_stores_encoding_cannot_hold_matches_nothing_there_and_stops_no_one(legacy_world):
    """Found by a fault trial: a subject whose address holds a letter LATIN1 has not (``ł``: no row of that store can
    hold it) could not be sent to a support desk in LATIN1: the plan failed (UnicodeEncodeError), a traceback retried
    three times, and every subject of the run with it; the same subject's export was refused by the store. So was a
    file of the subject named in such letters, which the erasure and the export look for in every store. Such an
    address (or location) now matches nothing there: the subject is erased from every store, its file deleted, its
    package exported, and the others' work goes on."""
    w = legacy_world
    conns = w["conns"]
    conns["ops_db"].execute("insert into users (id, email, full_name, created_at) values (3, 'łucja@example.org', "
                            "'Łucja', now())")
    conns["analytics_db"].execute("insert into daily_usage values (3, '2026-11-01', 'export', 3, 60)")
    # A file named in letters LATIN1 has not either: no ticket of that store can name it.
    conns["ops_db"].execute("insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at) "
                            "values (31, 3, 'łódź.pdf', 'upload', 'gs://acme-uploads/users/3/łódź.pdf', 2, now())")
    w["buckets"].bucket("acme-uploads").put("users/3/łódź.pdf", b"pl")
    requests = ((1, 3, "access"), (2, 3, "erasure"), (3, 1, "erasure"), (4, 2, "access"))
    for rid, uid, kind in requests:
        conns["ops_db"].execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type,
                                                                 received_at, identity_verified_at, status)
                                   values (%s, %s, 'x@example.org', 'gdpr', %s, %s, %s, 'in_progress')""",
                                (rid, uid, kind, NOW.replace(day=20), NOW.replace(day=20)))
    fulfilment_run(w, "manual__unheld_address", tuple(r for r, _, _ in requests))
    got = dict(conns["compliance"].execute("select request_id, outcome from compliance.dsr_fulfilments"))
    assert got == {1: "exported", 2: "erased", 3: "erased", 4: "exported"}
    with zipfile.ZipFile(io.BytesIO(w["evidence"].get(package.object_name(1)))) as zf:
        manifest = json.loads(zf.read("package.json"))
    tables = {t: n for c in manifest["categories"].values() for t, n in c["tables"].items()}
    assert (tables["support_db:public.tickets"], tables["analytics_db:public.daily_usage"]) == (0, 1)
    assert [f["status"] for f in manifest["stored_files"]] == ["included"]
    assert w["buckets"].bucket("acme-uploads").list("users/3/") == []
    assert conns["ops_db"].execute("select count(*) from users where id in (1, 3)").fetchone() == (0,)
    assert conns["analytics_db"].execute("select count(*) from daily_usage where user_id in (1, 3)").fetchone() == (0,)
    assert conns["support_db"].execute("select count(*) from tickets where id in (10, 11, 13, 14)").fetchone() == (0,)
    assert conns["support_db"].execute("select count(*) from tickets where id in (20, 21)").fetchone() == (2,)


def test_the_data_map_is_checked_against_a_store_whose_database_is_not_utf8(legacy_world, pg_server_url):
    """Found by a fault trial: every DAG's prepare_store (and check-datamap) refused a support desk in SQL_ASCII that
    holds every table and column the map names: the catalogue's names came back as bytes, so "none of the 2 tables
    the data map places on connection 'support_db' exists in its database", a setup fault failing every run at once.
    The map fits it, as it fits the same store in LATIN1; a column really missing there is still named."""
    import contextlib

    from include.datamap import DataMapError, validate_stores

    conns = legacy_world["conns"]
    url = conns["support_db"].info.dsn

    @contextlib.contextmanager
    def store(conn_id):
        if conn_id != "support_db":
            yield conns[conn_id]
            return
        with connect(url, autocommit=True) as fresh:  # as prepare_store opens it: nothing registered on it before
            yield fresh

    validate_stores(legacy_world["dm"], store)
    conns["support_db"].execute("alter table ticket_events drop column note")
    with pytest.raises(DataMapError, match="column 'note' does not exist in table public.ticket_events"):
        validate_stores(legacy_world["dm"], store)


def test_a_redacting_rule_on_a_store_whose_database_is_not_utf8_hashes_its_text(legacy_world):
    """A store's rule may keyed-hash columns (rows kept as evidence). In SQL_ASCII the values came to the erasure as
    bytes, and their hash was of the bytes' Python repr (``b'...'``): no hash the same value gets anywhere else."""
    from include.subjects import address_hash

    w = legacy_world
    raw = all_stores_datamap_raw()
    tickets = next(e for e in raw["personal_data"] if e["table"] == "tickets")
    tickets["erase"] = {"hash": ["requester_email", "subject"], "set_null": ["attachment_uri"]}
    tickets.pop("files")  # a store with no file column: nothing else reads its text before its rows are erased
    w["dm"] = parse_datamap(raw)
    support = w["conns"]["support_db"]
    before = {i: (e, s) for i, e, s in support.execute("select id, requester_email, subject from tickets "
                                                        "where id in (10, 11, 13, 14)")}
    url = support.info.dsn
    with connect(url, autocommit=True) as fresh:  # as a run opens it: no loader of the test's own
        assert erase({**w, "conns": {**w["conns"], "support_db": fresh}}).outcome == erasure.PURGED
    after = {i: (e, s) for i, e, s in support.execute("select id, requester_email, subject from tickets "
                                                       "where id in (10, 11, 13, 14)")}
    assert after == {i: (address_hash(KEY, e), address_hash(KEY, s)) for i, (e, s) in before.items()}


def test_every_version_of_a_file_in_a_versioned_bucket_is_erased_and_its_soft_delete_window_recorded(three_stores,
                                                                                                     monkeypatch):
    """Found by a fault trial, through the Google provider's client against the emulator (which keeps versions as
    GCS does): in a bucket with Object Versioning, ``Blob.delete`` without a generation leaves the live version
    noncurrent, and a version the application replaced or deleted stays too; the erasure recorded each file
    ``deleted`` (or ``already_gone``) and the subject purged while every copy was still in the bucket. Now each
    version of the object is listed (``versions=true``) and deleted by its generation, and a listing after it finds
    none left. The bucket's soft delete (7 days by default) keeps deleted versions recoverable by the bucket's owner
    and no client can shorten it: each file's record says until when (``recoverable_until``) and how many versions
    went. Subject 2's files and versions are all there."""
    from google.cloud import storage

    from devkit.standins.gcs_emulator import GCSEmulator
    from include.seam.storage import GCSBuckets

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                       '{"conn_type":"google_cloud_platform","extra":{"is_anonymous":true,"project":"test-project"}}')
    with GCSEmulator(default_bucket="acme-uploads", more_buckets=("acme-support-attachments",)) as gcs:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.base_url)
        client = storage.Client(project="test-project", credentials=None)
        uploads = client.bucket("acme-uploads")
        uploads.versioning_enabled = True
        uploads.patch()
        conns = {c: connect(url, autocommit=True) for c, url in three_stores.items()}
        conns["compliance"] = connect(three_stores["ops_db"], autocommit=True)
        compliance_store.migrate(conns["compliance"])
        buckets = GCSBuckets()
        for uid, email in ((1, ADDRESS), (2, "other@example.org")):
            add_subject(conns, buckets, uid, email)
            buckets.bucket("acme-uploads").put(f"users/{uid}/1/notes.pdf", b"a second version")  # first: noncurrent
        uploads.blob("users/1/2/notes.pdf").delete()  # the application's delete: the version stays, noncurrent

        def versions(prefix: str) -> list[str]:
            return sorted(b.name for b in client.list_blobs(uploads, prefix=prefix, versions=True))

        assert versions("users/1/") == ["users/1/1/notes.pdf", "users/1/1/notes.pdf", "users/1/2/notes.pdf"]
        dm = parse_datamap(all_stores_datamap_raw())
        started = datetime.now(timezone.utc)
        result = erasure.erase_subject(conns["ops_db"], dm, 1, KEY, at=NOW, options=erasure.EraseOptions(
            stores=erasure.StoreAccess(connect=conns.__getitem__, buckets=buckets, allowed=frozenset(dm.buckets),
                                       progress=conns["compliance"])))
        assert result.outcome == erasure.PURGED
        assert result.files_evidence() == {"deleted": 3}  # the one the application deleted had a version left
        assert versions("users/1/") == []
        assert versions("users/2/") == ["users/2/1/notes.pdf", "users/2/1/notes.pdf", "users/2/2/notes.pdf"]
        recorded = dict(((uri, (n, until)) for uri, n, until in conns["compliance"].execute(
            "select uri, versions_deleted, recoverable_until from compliance.erasure_files")))
        assert {uri: n for uri, (n, _) in recorded.items()} == {"gs://acme-uploads/users/1/1/notes.pdf": 2,
                                                                "gs://acme-uploads/users/1/2/notes.pdf": 1,
                                                                "gs://acme-support-attachments/tickets/10/scan.png": 1}
        week = timedelta(days=7)
        assert all(started + week <= until <= datetime.now(timezone.utc) + week for _, until in recorded.values())
        for conn in conns.values():
            conn.close()


def test_a_file_named_in_one_unicode_form_and_stored_in_the_other_is_exported_and_erased_never_already_gone(world):
    """Found by a fault trial: a row naming a file in NFD (``e`` and a combining diaeresis, as macOS writes names)
    while the object is stored in NFC (``ë``, one code point), or the reverse. Object names are compared byte for
    byte, so the named one was a 404: the export listed the file ``missing`` and the erasure recorded it
    ``already_gone`` and purged the subject while the file stayed in the bucket. Now a name that is a 404 is looked
    up in the other normalisation form too: the file is packed and deleted. A file another account's row names in
    the other form is that account's too (``shared``): left in place and never read into the package."""
    import unicodedata

    conns, buckets, dm = world["conns"], world["buckets"], world["dm"]
    uploads = buckets.bucket("acme-uploads")
    named = {"users/1/3/Zoe\u0308-passport.pdf": "NFC", "users/1/4/Am\u00e9lie-visa.pdf": "NFD",
             "users/1/5/Ren\u00e9e-letter.pdf": "NFD"}
    for n, (key, stored_as) in enumerate(named.items(), 53):
        conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes,
                                                        created_at) values (%s, 1, 'x', 'upload', %s, 1, now())""",
                                (n, f"gs://acme-uploads/{key}"))
        uploads.put(unicodedata.normalize(stored_as, key), f"file {n}".encode())
    theirs = unicodedata.normalize("NFD", "gs://acme-uploads/users/1/5/Ren\u00e9e-letter.pdf")
    conns["ops_db"].execute("""insert into uploads (id, user_id, filename, source, storage_uri, size_bytes, created_at)
                               values (60, 2, 'x', 'upload', %s, 1, now())""", (theirs,))
    built = package.build(package.Sources(conns["ops_db"], conns.__getitem__, buckets), dm,
                          package.About(5, "access", "gdpr", date(2026, 11, 25)),
                          package.subject(conns["ops_db"], dm, 1),
                          SharedWith(1, last_twelve_months(date(2026, 11, 25), timezone.utc), True, ()),
                          str(world["tmp"] / "package.zip"))
    stored = {f.location: (f.status, f.bytes) for f in built.stored_files}
    assert stored["gs://acme-uploads/users/1/3/Zoe\u0308-passport.pdf"] == ("included", len(b"file 53"))
    assert stored["gs://acme-uploads/users/1/4/Am\u00e9lie-visa.pdf"] == ("included", len(b"file 54"))
    assert stored["gs://acme-uploads/users/1/5/Ren\u00e9e-letter.pdf"][0] == "shared"
    result = erase(world)
    assert result.outcome == erasure.PURGED
    states = dict(conns["compliance"].execute("select uri, state from compliance.erasure_files"))
    assert states["gs://acme-uploads/users/1/3/Zoe\u0308-passport.pdf"] == "deleted"
    assert states["gs://acme-uploads/users/1/4/Am\u00e9lie-visa.pdf"] == "deleted"
    assert states["gs://acme-uploads/users/1/5/Ren\u00e9e-letter.pdf"] == "shared"
    assert uploads.list("users/1/") == [unicodedata.normalize("NFD", "users/1/5/Ren\u00e9e-letter.pdf")]


@pytest.mark.parametrize("crash", ["before_its_files", "before_its_progress"])
def test_a_file_whose_row_an_earlier_attempt_erased_is_never_released_as_unnamed(world, three_stores, monkeypatch,
                                                                                  crash):
    """A first attempt erased the support desk's rows (the ticket naming its attachment among them) and died before
    the files (analytics lost), or right after the support desk's commit, before its progress was recorded; then
    the attachment's bucket left the setting file_buckets. The retry no longer found the file in any row and released
    it as unnamed, as if a person had mended the row: the subject purged, its file left in the bucket."""
    from include.erasure import stores

    conns, buckets = world["conns"], world["buckets"]
    if crash == "before_its_files":
        doomed = connect(three_stores["analytics_db"], autocommit=True)
        conns["support_db"].execute("select pg_terminate_backend(%s)", (doomed.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            erase(world, connect_override={**conns, "analytics_db": doomed}.__getitem__)
    else:
        with monkeypatch.context() as m:
            m.setattr(stores, "done", lambda *a: (_ for _ in ()).throw(RuntimeError("worker lost")))
            with pytest.raises(RuntimeError):
                erase(world)
    assert left_of_subject(conns)["tickets"] == 0 and left_of_subject(conns)["users"] == 1
    attachment = "gs://acme-support-attachments/tickets/10/scan.png"
    again = erase(world, allowed=["acme-uploads"])
    assert again.outcome == erasure.INCOMPLETE
    assert again.not_allowed == (attachment,)
    reason = stores.incomplete_reason(again.not_allowed)
    assert "allow it with the setting file_buckets" in reason and "Nothing of the subject was erased" not in reason
    assert buckets.bucket("acme-support-attachments").exists("tickets/10/scan.png")
    assert left_of_subject(conns)["users"] == 1
    # Once a person allows the bucket again, the next run deletes the file and finishes.
    if crash == "before_its_files":
        resumed_to_the_same_end(world, conns)  # every attempt counted
    else:
        assert erase(world).outcome == erasure.PURGED
        assert left_of_subject(conns) == dict.fromkeys(("users", "uploads", "tickets", "events", "usage"), 0)
    assert not buckets.bucket("acme-support-attachments").exists("tickets/10/scan.png")


def test_a_row_locked_in_a_later_store_leaves_the_earlier_ones_erased_and_the_retry_finishes(world, three_stores):
    """One transaction per store: when analytics' row stays locked past the lock timeout, the support desk (before
    it) has already committed. The subject is busy and its sentence says so (it said nothing of it changed); the
    account, the operational rows and the files stay, and the next run finishes with every attempt's rows counted."""
    conns = world["conns"]
    with connect(three_stores["analytics_db"]) as app:  # an application transaction holding one of its rows
        app.execute("select * from daily_usage where user_id = 1 for update")
        with pytest.raises(erasure.SubjectBusy) as busy:
            erasure.erase_subject(conns["ops_db"], world["dm"], 1, KEY, at=NOW, options=erasure.EraseOptions(
                stores=access(world), lock_timeout_ms=200))
        app.rollback()
    assert "nothing of it changed" not in str(busy.value)
    assert "other stores erased before it stay erased" in str(busy.value)
    assert left_of_subject(conns) == {"users": 1, "uploads": 2, "tickets": 0, "events": 0, "usage": 2}
    assert world["buckets"].bucket("acme-uploads").list("users/1/")
    assert conns["compliance"].execute("select store from compliance.erasure_store_progress where subject_hash = %s "
                                       "and done_at is not null", (user_hash(KEY, 1),)).fetchall() == [("support_db",)]
    resumed_to_the_same_end(world, conns)


@pytest.mark.parametrize("crash", ["after_its_commit", "before_its_commit"])
def test_a_stores_rows_an_attempt_erased_are_counted_once_whether_or_not_its_commit_was_recorded(world, monkeypatch,
                                                                                                crash):
    """A first attempt erased the support desk's rows and the worker was lost right after that store's commit, before
    its progress row was completed: the retry found nothing left there and recorded 0 rows, the evidence counting
    none of the six rows that attempt erased. Lost instead just before the commit (the store rolled back), the rows
    are erased by the retry and counted once, never with the lost attempt's too."""
    from include.erasure import stores

    conns = world["conns"]
    with monkeypatch.context() as m:
        if crash == "after_its_commit":
            m.setattr(stores, "done", lambda *a: (_ for _ in ()).throw(RuntimeError("worker lost")))
        else:
            begun = stores.begun

            def begun_then_lost(*a):
                begun(*a)
                raise RuntimeError("worker lost")

            m.setattr(stores, "begun", begun_then_lost)
        with pytest.raises(RuntimeError):
            erase(world)
    assert left_of_subject(conns)["tickets"] == (0 if crash == "after_its_commit" else 3)
    resumed_to_the_same_end(world, conns)
    progress = dict(conns["compliance"].execute("""select store, rows_erased from compliance.erasure_store_progress
                                                   where subject_hash = %s""", (user_hash(KEY, 1),)).fetchall())
    assert progress == {"support_db": 6, "analytics_db": 2}
