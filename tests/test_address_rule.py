"""One address rule everywhere (SPEC §3.1, issue 28): an address links rows to an account when it equals the
account's address after trimming every white-space character Python's ``str.strip()`` trims and ignoring case.

Erasure, export, child reports and the campaign's suppression check must agree on it, on a real PostgreSQL:
an address spelled with a trailing tab, a no-break space, a line break or upper case is the same address in
each. A support message with no ``user_id`` sent from the subject's address is the subject's (exported and
erased), unless another account still holds the address (then left, and the package's README says so).
"""
from __future__ import annotations

import json
import sys
import zipfile
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from psycopg import sql

from devkit.database import connect
from devkit.operational_schema import create_reference_schema
from tests.conftest import ops_datamap
from include import erasure
from include.addresses import WHITESPACE, comparable
from include import child_detection as detection
from include.fulfilment import package
from include.campaign.ledger import CampaignLedger
from include.fulfilment.right_to_know import last_twelve_months, shared_with

KEY = b"test-subject-key-0123456789"
NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
AS_OF = date(2026, 11, 25)

# One address, four spellings a mail provider treats as the same; the account holds the plain one.
SPELLINGS = {
    "trailing tab": "kid@example.com\t",
    "no-break space": "\u00a0kid@example.com",
    "line break": "kid@example.com\r\n",
    "upper case": " KID@Example.COM ",
}


@pytest.fixture
def ops(fresh_db):
    with connect(fresh_db, autocommit=True) as conn:
        create_reference_schema(conn)
        yield conn


@pytest.fixture
def dm():
    return ops_datamap()


def add_account(conn, uid: int, email: str | None, birth: str = "2016-01-01") -> None:
    conn.execute("insert into users (id, email, full_name, birth_date, created_at) values (%s, %s, %s, %s, %s)",
                 (uid, email, f"Person {uid}", birth, NOW - timedelta(days=100)))


def add_message(conn, user_id: int | None, email: str, body: str) -> None:
    conn.execute("insert into support_messages (user_id, email, subject, body, created_at) "
                 "values (%s, %s, 'help', %s, now())", (user_id, email, body))


def export(conn, dm, uid: int, tmp_path) -> tuple[package.Subject, dict[str, bytes]]:
    who = package.subject(conn, dm, uid)
    shared = shared_with(conn, dm, uid, last_twelve_months(AS_OF, ZoneInfo("UTC")))
    built = package.build(conn, dm, package.About(77, "access", "gdpr", AS_OF), who, shared,
                          str(tmp_path / f"p{uid}.zip"))
    with zipfile.ZipFile(built.path) as zf:
        return who, {n: zf.read(n) for n in zf.namelist()}


def support_bodies(files: dict[str, bytes]) -> set[str]:
    document = json.loads(files["support.json"])
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if "body" in node and isinstance(node["body"], str):
                found.add(node["body"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def suppressed(conn, dm, address: str) -> dict[str, str]:
    """The campaign's send-time suppression check (``CampaignLedger._suppressed``), on its own."""
    return CampaignLedger._suppressed(SimpleNamespace(ops=conn, dm=dm), [address])


# -- the rule itself ------------------------------------------------------------------------------------------


def test_the_sql_rule_trims_exactly_what_python_trims_over_every_code_point(ops):
    from include.addresses import comparable_sql

    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    # Every code point PostgreSQL text can hold (no NUL, no surrogate), on both ends of an address.
    chars = [chr(c) for c in range(1, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    trimmed = sql.SQL("select array_agg(c order by c) from unnest(%s::text[]) as t(c) "
                      "where {k} = 'a@b.c'").format(k=comparable_sql(sql.SQL("c || 'A@B.c' || c")))
    got = ops.execute(trimmed, (chars,)).fetchone()[0]
    assert sorted(got) == sorted(c for c in chars if comparable(f"{c}A@B.c{c}") == "a@b.c")
    for spelling in SPELLINGS.values():
        assert ops.execute(sql.SQL("select {}").format(comparable_sql(sql.Literal(spelling)))).fetchone()[0] \
            == comparable(spelling) == "kid@example.com"
    assert ops.execute(sql.SQL("select {}").format(comparable_sql(sql.Literal(None)))).fetchone()[0] is None


def test_every_address_key_index_is_built_on_the_rule_s_own_expression(ops):
    from include.addresses import comparable_sql

    indexes = ops.execute("""select c.relname, t.relname, pg_get_expr(i.indexprs, i.indrelid)
                             from pg_index i join pg_class c on c.oid = i.indexrelid join pg_class t on t.oid = i.indrelid
                             where c.relname like '%%\\_address\\_key\\_idx' order by 1""").fetchall()
    assert {(name, table) for name, table, _ in indexes} == {
        ("users_address_key_idx", "users"), ("support_messages_address_key_idx", "support_messages"),
        ("child_reports_address_key_idx", "child_reports"),
        ("email_suppressions_address_key_idx", "email_suppressions")}
    for name, table, expression in indexes:
        column = "reported_email" if table == "child_reports" else "email"
        ops.execute(sql.SQL("create index probe_idx on {} ({})").format(
            sql.Identifier(table), comparable_sql(sql.Identifier(column))))
        built = ops.execute("select pg_get_expr(i.indexprs, i.indrelid) from pg_index i "
                            "join pg_class c on c.oid = i.indexrelid where c.relname = 'probe_idx'").fetchone()[0]
        ops.execute("drop index probe_idx")
        assert built == expression, name


def test_the_indexes_serve_the_account_lookup_and_every_address_link(ops, dm):
    from include.addresses import comparable_sql

    for uid in range(1, 201):
        add_account(ops, uid, f"user{uid}@example.com", birth="1990-01-01")
    ops.execute("analyze")
    ops.execute("set enable_seqscan = off")
    lookup = sql.SQL("explain select id from users where {} = %s").format(comparable_sql(sql.Identifier("email")))
    plan = "\n".join(r[0] for r in ops.execute(lookup, ("user7@example.com",)))
    assert "users_address_key_idx" in plan, plan
    for target in erasure.targets(dm):
        if not target.by_email:
            continue
        plan = "\n".join(r[0] for r in ops.execute(sql.SQL("explain select {}").format(target.count()),
                                                    {"user_id": 7, "email": "user7@example.com"}))
        assert f"{target.entry.table}_address_key_idx" in plan, (target.label, plan)


# -- the rule in every workflow ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", list(SPELLINGS.values()), ids=list(SPELLINGS))
def test_every_workflow_matches_the_address_alike(ops, dm, tmp_path, spelling):
    add_account(ops, 1, "kid@example.com")
    add_account(ops, 2, "someone@example.com", birth="1990-01-01")
    add_message(ops, None, spelling, "sent from the kid's address, no account id")
    add_message(ops, 1, "kid@example.com", "sent from the account")
    add_message(ops, 2, spelling, "another account's message, from the kid's address")
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())", (spelling,))
    ops.execute("insert into child_reports (id, reported_email, source, reported_at) values (10, %s, 'parent', now())",
                (spelling,))

    # The suppression check finds it.
    assert suppressed(ops, dm, "kid@example.com") == {"kid@example.com": "bounce"}
    # The child rules: the report names account 1 (and is no unmatched report).
    found = {s.user_id: s.report_ids for s in detection.detect(ops, dm, as_of=AS_OF, tz="UTC")}
    assert found.get(1) == (10,)
    assert detection.unmatched_reports(ops, dm) == []
    # The export holds the message with no account id sent from the address, not the other account's.
    who, files = export(ops, dm, 1, tmp_path)
    assert not who.shared_address
    assert support_bodies(files) == {"sent from the kid's address, no account id", "sent from the account"}
    # The erasure erases the suppression, the report's link and the message; the other account's message stays.
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert result.outcome == erasure.PURGED
    left = [(e,) for (e,) in ops.execute("select email from email_suppressions")]
    assert left == [], "the suppression stored with white space was left behind"
    assert ops.execute("select body from support_messages order by id").fetchall() == [
        ("another account's message, from the kid's address",)]
    reports = ops.execute("select user_id, reported_email from child_reports").fetchall()
    assert len(reports) == 1 and reports[0][0] is None
    assert comparable(reports[0][1]) != "kid@example.com"  # the address was keyed-hashed


def test_the_suppression_stored_with_a_tab_is_erased_with_the_subject(ops, dm):
    add_account(ops, 1, "Person@Example.com")
    ops.execute("insert into email_suppressions (email, reason, created_at) values "
                "('person@example.com' || chr(9), 'bounce', now()), ('other@example.com', 'spam_report', now())")
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert result.outcome == erasure.PURGED
    assert ops.execute("select email from email_suppressions").fetchall() == [("other@example.com",)]


def test_a_message_tied_by_address_only_stays_while_another_account_holds_the_address(ops, dm, tmp_path):
    add_account(ops, 1, "shared@example.com")
    add_account(ops, 2, "SHARED@example.com\t", birth="1990-01-01")  # the same address, by the rule
    add_message(ops, None, "\u00a0shared@example.com", "whose is it?")
    add_message(ops, 1, "shared@example.com", "account 1's own")
    who, files = export(ops, dm, 1, tmp_path)
    assert who.shared_address
    assert support_bodies(files) == {"account 1's own"}
    readme = files["README.txt"].decode()
    assert "Another account uses the same email address as yours" in readme
    assert json.loads(files["package.json"])["rows_tied_by_address_left_out"] is True
    result = erasure.erase_subject(ops, dm, 1, KEY, at=NOW)
    assert result.outcome == erasure.PURGED and result.shared_address
    assert ops.execute("select body from support_messages").fetchall() == [("whose is it?",)]
    assert {k.table: k.rows for k in result.kept}["public.support_messages"] == 1


def test_a_report_whose_address_is_only_white_space_names_nobody(ops, dm):
    add_account(ops, 1, "\u00a0", birth=None)
    ops.execute("insert into child_reports (id, reported_email, source, reported_at) values "
                "(20, %s, 'parent', now()), (21, %s, 'parent', now())", ("\u00a0", "\u3000\t"))
    assert detection.empty_reports(ops, dm) == [20, 21]
    assert detection.unmatched_reports(ops, dm) == []
    assert detection.detect(ops, dm, as_of=AS_OF, tz="UTC") == []


def test_the_plan_hash_covers_whether_an_address_link_needs_an_empty_key(ops, dm):
    from include.datamap import parse_datamap
    from tests.conftest import ops_datamap_raw

    add_account(ops, 1, "kid@example.com")
    raw = ops_datamap_raw()  # the same map as dm but for the one rule: the hash must tell them apart
    messages = next(e for e in raw["personal_data"] if e["table"] == "support_messages")
    messages["subject"]["also"][0]["only_without_key"] = False
    wider = parse_datamap(raw)
    assert erasure.plan(ops, wider, [1], KEY, at=NOW).hash != erasure.plan(ops, dm, [1], KEY, at=NOW).hash
