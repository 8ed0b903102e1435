"""The reference operational schema and the demo-data seeder, against a real PostgreSQL.

The planted rows are checked against the rules of docs/rules.md themselves (a small reference evaluation of the
deadline, child and sharing rules lives here), so that a planted case labelled ``due_soon`` really is due
soon on the anchor date, for any anchor.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
import uuid

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from devkit import database, operational_schema
from tests import scratch
from devkit.seed import demo_data
from devkit.seed.bulk import BulkGenerator
from devkit.seed.planted import plant

ANCHOR = dt.date(2026, 11, 25)
USERS = 2000

# the reference schema (docs/rules.md), verbatim: (column, type, nullable)
REFERENCE_SCHEMA = {
    "users": [
        ("id", "bigint", False), ("email", "text", True), ("full_name", "text", True),
        ("company_name", "text", True), ("phone", "text", True), ("address", "text", True),
        ("country", "character(2)", True), ("region", "text", True), ("birth_date", "date", True),
        ("declared_age", "smallint", True), ("created_at", "timestamp with time zone", False),
        ("deleted_at", "timestamp with time zone", True), ("do_not_sell", "boolean", False),
        ("do_not_sell_at", "timestamp with time zone", True), ("processing_restricted", "boolean", False),
    ],
    "privacy_requests": [
        ("id", "bigint", False), ("user_id", "bigint", True), ("requester_email", "text", False),
        ("regime", "text", False), ("request_type", "text", False),
        ("received_at", "timestamp with time zone", False), ("acknowledged_at", "timestamp with time zone", True),
        ("identity_requested_at", "timestamp with time zone", True),
        ("identity_verified_at", "timestamp with time zone", True), ("extended_at", "timestamp with time zone", True),
        ("extension_reason", "text", True), ("status", "text", False),
        ("completed_at", "timestamp with time zone", True), ("assignee_email", "text", True),
    ],
    "uploads": [
        ("id", "bigint", False), ("user_id", "bigint", False), ("filename", "text", False), ("source", "text", False),
        ("storage_uri", "text", False), ("size_bytes", "bigint", False), ("created_at", "timestamp with time zone", False),
    ],
    "support_messages": [
        ("id", "bigint", False), ("user_id", "bigint", True), ("email", "text", True), ("phone", "text", True),
        ("subject", "text", False), ("body", "text", False), ("created_at", "timestamp with time zone", False),
    ],
    "usage_events": [
        ("id", "bigint", False), ("user_id", "bigint", False), ("event_type", "text", False),
        ("feature", "text", False), ("api_calls", "integer", False), ("duration_ms", "integer", False),
        ("occurred_at", "timestamp with time zone", False),
    ],
    "access_logs": [
        ("id", "bigint", False), ("user_id", "bigint", True), ("ip_address", "inet", False),
        ("user_agent", "text", False), ("isp", "text", True), ("referrer", "text", True),
        ("occurred_at", "timestamp with time zone", False),
    ],
    "social_profiles": [
        ("id", "bigint", False), ("user_id", "bigint", False), ("network", "text", False),
        ("handle", "text", False), ("profile_url", "text", False),
    ],
    "vendors": [
        ("id", "bigint", False), ("name", "text", False), ("kind", "text", False), ("dpa_signed_on", "date", True),
        ("allowed_categories", "text[]", False), ("contact_email", "text", True), ("active", "boolean", False),
    ],
    "data_shares": [
        ("id", "bigint", False), ("vendor_id", "bigint", False), ("user_id", "bigint", False),
        ("category", "text", False), ("purpose", "text", False), ("legal_basis", "text", True),
        ("record_count", "integer", False), ("shared_at", "timestamp with time zone", False),
    ],
    "child_reports": [
        ("id", "bigint", False), ("user_id", "bigint", True), ("reported_email", "text", True),
        ("source", "text", False), ("note", "text", True), ("reported_at", "timestamp with time zone", False),
        ("resolved_at", "timestamp with time zone", True),
    ],
    "legal_holds": [
        ("id", "bigint", False), ("user_id", "bigint", False), ("reason", "text", False),
        ("placed_at", "timestamp with time zone", False), ("released_at", "timestamp with time zone", True),
    ],
    "policy_versions": [
        ("id", "bigint", False), ("version", "text", False), ("published_at", "timestamp with time zone", False),
        ("effective_at", "timestamp with time zone", False), ("summary", "text", False), ("url", "text", False),
        ("body_sha256", "text", False),
    ],
    "email_suppressions": [
        ("email", "text", False), ("reason", "text", False), ("created_at", "timestamp with time zone", False),
    ],
}
CATEGORIES = {"contact", "account", "content", "usage", "network", "social", "support"}
VENDOR_KINDS = {"service_provider", "channel_partner", "consultant", "implementation_partner",
                "law_enforcement", "acquirer"}
WELL_FORMED_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


# ------------------------------------------------------------------------------------------------
# Reference rules (docs/rules.md, no holiday calendar), used to check the planted labels
# ------------------------------------------------------------------------------------------------

GDPR_TYPES = {"access", "rectification", "erasure", "restriction", "objection", "portability"}
CCPA_TYPES = {"know", "delete", "opt_out_of_sale"}


def add_months(day: dt.date, months: int) -> dt.date:
    year, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month0 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_working_day(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def add_business_days(day: dt.date, n: int) -> dt.date:
    while n:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def deadline_state(r: dict, today: dt.date, due_soon_days: int = 7) -> tuple[str, dt.date | None]:
    """(state, effective due date) of one request on ``today``."""
    def d(name):
        return r[name].date() if r[name] is not None else None

    regime, kind = r["regime"], r["request_type"]
    if {"gdpr": GDPR_TYPES, "ccpa": CCPA_TYPES}.get(regime) is None or kind not in {"gdpr": GDPR_TYPES, "ccpa": CCPA_TYPES}[regime]:
        return "invalid", None
    received = d("received_at")
    if received > today:
        return "invalid", None
    later = ("acknowledged_at", "identity_requested_at", "identity_verified_at", "extended_at", "completed_at")
    if any(d(n) is not None and d(n) < received for n in later):
        return "invalid", None
    closed = r["status"] in ("completed", "rejected", "withdrawn")
    ack_due = None
    if regime == "gdpr":
        if r["identity_requested_at"] is not None and r["identity_verified_at"] is None:
            return ("closed_on_time" if closed else "awaiting_identity"), None
        start = d("identity_verified_at") if r["identity_requested_at"] is not None else received
        month = add_months(start, 1)
        if d("extended_at") is not None and d("extended_at") <= month:
            due = next_working_day(add_months(start, 3))
        else:
            due = next_working_day(month)
    else:
        ack_due = add_business_days(received, 10)
        valid_ext = d("extended_at") is not None and d("extended_at") <= received + dt.timedelta(days=45)
        if kind == "opt_out_of_sale":
            statutory = add_business_days(received, 15)
        else:
            statutory = received + dt.timedelta(days=90 if valid_ext else 45)
        policy = next_working_day(add_months(received, 1))
        due = statutory if valid_ext else min(statutory, policy)
    if closed:
        if r["completed_at"] is None:
            return "closed_on_time", due
        return ("closed_on_time" if d("completed_at") <= due else "closed_late"), due
    days_left = (due - today).days
    if days_left < 0:
        return "overdue", due
    if ack_due is not None and r["acknowledged_at"] is None and today > ack_due:
        return "ack_overdue", due
    return ("due_soon" if days_left <= due_soon_days else "on_track"), due


EXPECTED_STATE = {
    "request_gdpr_on_track": "on_track",
    "request_gdpr_due_soon": "due_soon",
    "request_gdpr_overdue": "overdue",
    "request_ccpa_on_track": "on_track",
    "request_ccpa_due_soon": "due_soon",
    "request_ccpa_overdue": "overdue",
    "request_ccpa_ack_overdue": "ack_overdue",
    "request_ccpa_opt_out_on_track": "on_track",
    "request_ccpa_opt_out_overdue": "overdue",
    "request_gdpr_awaiting_identity": "awaiting_identity",
    "request_gdpr_identity_verified_later": "on_track",
    "request_gdpr_valid_extension": "on_track",
    "request_ccpa_valid_extension": "on_track",
    "request_gdpr_invalid_extension": "overdue",
    "request_closed_on_time": "closed_on_time",
    "request_closed_late": "closed_late",
    "request_rejected": "closed_on_time",
    "request_received_in_future": "invalid",
    "request_dates_out_of_order": "invalid",
    "request_unknown_regime": "invalid",
    "request_unknown_type": "invalid",
    "request_regime_type_mismatch": "invalid",
}


def check_planted_request_states(rows: dict[int, dict], planted: dict, anchor: dt.date) -> None:
    for key, expected in EXPECTED_STATE.items():
        assert planted[key], key
        for request_id in planted[key]:
            state, _ = deadline_state(rows[request_id], anchor)
            assert state == expected, (anchor, key, request_id, state)
    # the extension and identity cases only differ from the plain rule because of those columns
    for request_id in planted["request_gdpr_identity_verified_later"]:
        plain = dict(rows[request_id], identity_requested_at=None, identity_verified_at=None)
        assert deadline_state(plain, anchor)[0] == "overdue"
    for request_id in planted["request_gdpr_valid_extension"] + planted["request_ccpa_valid_extension"]:
        assert deadline_state(dict(rows[request_id], extended_at=None), anchor)[0] == "overdue"
    for request_id in planted["request_gdpr_invalid_extension"]:
        r = rows[request_id]
        assert r["extended_at"].date() > add_months(r["received_at"].date(), 1)


def share_violations(share: dict, vendors: dict, users: dict, children: set[int]) -> set[str]:
    vendor, user = vendors.get(share["vendor_id"]), users[share["user_id"]]
    found = set()
    if vendor is None:
        return {"unknown_vendor"}
    if not vendor["active"]:
        found.add("inactive_vendor")
    if share["category"] not in vendor["allowed_categories"]:
        found.add("category_not_allowed")
    if vendor["kind"] == "service_provider" and (
            vendor["dpa_signed_on"] is None or vendor["dpa_signed_on"] > share["shared_at"].date()):
        found.add("no_dpa_before_share")
    if user["do_not_sell_at"] is not None and user["do_not_sell_at"] < share["shared_at"] \
            and vendor["kind"] != "service_provider":
        found.add("opted_out")
    if share["user_id"] in children:
        found.add("child")
    if user["deleted_at"] is not None and user["deleted_at"] < share["shared_at"]:
        found.add("after_deletion")
    if user["processing_restricted"]:
        found.add("restricted")
    return found


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(pg_server_url):
    """One seeded database shared by the read-only checks of this module."""
    name = f"privacy_test_seed_{uuid.uuid4().hex[:8]}"
    url = database.create_database(pg_server_url, name)
    try:
        summary = demo_data.seed(url, users=USERS, anchor=ANCHOR)
        yield url, summary
    finally:
        scratch.drop_later(pg_server_url, name)


def fetch(url: str, query, params=None) -> list[dict]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(query, params).fetchall()


def by_id(url: str, table: str) -> dict[int, dict]:
    return {r["id"]: r for r in fetch(url, sql.SQL("select * from {}").format(sql.Identifier(table)))}


def table_digests(url: str) -> dict[str, str]:
    out = {}
    with psycopg.connect(url) as conn:
        for table in operational_schema.table_names():
            key = "email" if table == "email_suppressions" else "id"
            out[table] = conn.execute(
                sql.SQL("select md5(coalesce(string_agg(t::text, E'\\n' order by t.{k}), '')) from {t} t")
                .format(k=sql.Identifier(key), t=sql.Identifier(table))).fetchone()[0]
    return out


# ------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------


def test_schema_matches_spec_exactly(fresh_db):
    with psycopg.connect(fresh_db) as conn:
        assert operational_schema.create_reference_schema(conn) == list(REFERENCE_SCHEMA)
    rows = fetch(fresh_db, """
        select table_name, column_name, data_type, udt_name, character_maximum_length, is_nullable,
               column_default, is_identity
        from information_schema.columns where table_schema = 'public' order by table_name, ordinal_position""")
    found: dict[str, list] = {}
    for r in rows:
        kind = r["data_type"]
        if kind == "ARRAY":
            kind = r["udt_name"].lstrip("_") + "[]"
        elif kind == "character":
            kind = f"character({r['character_maximum_length']})"
        found.setdefault(r["table_name"], []).append((r["column_name"], kind, r["is_nullable"] == "YES"))
    assert found == REFERENCE_SCHEMA

    defaults = {(r["table_name"], r["column_name"]): r["column_default"] for r in rows}
    assert defaults[("users", "do_not_sell")] == "false"
    assert defaults[("users", "processing_restricted")] == "false"
    keys = fetch(fresh_db, """
        select tc.table_name, tc.constraint_type, string_agg(k.column_name, ',') as cols
        from information_schema.table_constraints tc
        join information_schema.key_column_usage k using (constraint_schema, constraint_name)
        where tc.table_schema = 'public' group by 1, 2, tc.constraint_name""")
    primary = {r["table_name"]: r["cols"] for r in keys if r["constraint_type"] == "PRIMARY KEY"}
    assert primary == {t: ("email" if t == "email_suppressions" else "id") for t in REFERENCE_SCHEMA}
    assert {(r["table_name"], r["cols"]) for r in keys if r["constraint_type"] == "UNIQUE"} == {
        ("policy_versions", "version")}
    # dirty data must load: no foreign keys, no checks on the enumerations
    assert not [r for r in keys if r["constraint_type"] == "FOREIGN KEY"]
    checks = fetch(fresh_db, "select conname from pg_constraint where contype = 'c' "
                             "and connamespace = 'public'::regnamespace")
    assert checks == []


def test_indexes_cover_lookups(fresh_db):
    with psycopg.connect(fresh_db) as conn:
        operational_schema.create_reference_schema(conn)
    indexes = fetch(fresh_db, "select tablename, indexdef from pg_indexes where schemaname = 'public'")
    leading = {(r["tablename"], re.search(r"USING btree \((.+?)(?:,|\)$)", r["indexdef"]).group(1)) for r in indexes}
    for table, columns in REFERENCE_SCHEMA.items():
        if any(c == "user_id" for c, _, _ in columns):
            assert (table, "user_id") in leading, table
    for expected in [("users", "lower(email)"), ("privacy_requests", "received_at"), ("privacy_requests", "status"),
                     ("data_shares", "vendor_id"), ("data_shares", "shared_at"), ("access_logs", "occurred_at"),
                     ("usage_events", "occurred_at"), ("child_reports", "reported_at"),
                     ("child_reports", "lower(reported_email)"), ("email_suppressions", "lower(email)")]:
        assert expected in leading, expected
    assert any("(vendor_id, shared_at)" in r["indexdef"] for r in indexes)


def test_schema_refuses_existing_tables_unless_replace(fresh_db):
    with psycopg.connect(fresh_db) as conn:
        operational_schema.create_reference_schema(conn, with_indexes=False)
        with pytest.raises(operational_schema.SchemaExistsError, match="'users' already exists"):
            operational_schema.create_reference_schema(conn)
        conn.execute("insert into users (created_at) values (now())")
        conn.commit()
        operational_schema.create_reference_schema(conn, replace=True)
        assert conn.execute("select count(*) from users").fetchone()[0] == 0
        operational_schema.drop_reference_schema(conn)
        assert operational_schema.existing_tables(conn) == []


# ------------------------------------------------------------------------------------------------
# Seeded contents
# ------------------------------------------------------------------------------------------------


def test_row_counts_and_shape(seeded):
    url, summary = seeded
    rows = summary["rows"]
    assert rows["users"] == USERS
    assert summary["total_rows"] == sum(rows.values())
    for table in operational_schema.table_names():
        assert rows[table] > 0, table
    actual = fetch(url, "select (select count(*) from users) as users, (select count(*) from usage_events) as ev")[0]
    assert actual == {"users": USERS, "ev": rows["usage_events"]}
    assert 3 * USERS < rows["usage_events"] < 7 * USERS
    assert 2.5 * USERS < rows["access_logs"] < 6 * USERS
    assert USERS < rows["data_shares"] < 2 * USERS
    bounds = fetch(url, "select min(created_at) as lo, max(created_at) as hi from users where id > %s",
                   (summary["planted_rows"]["users"],))[0]
    start = dt.datetime.combine(ANCHOR, dt.time(0), dt.timezone.utc)
    assert start - dt.timedelta(days=731) < bounds["lo"] and bounds["hi"] < start
    us = fetch(url, "select count(*) filter (where country = 'US') as us, "
                    "count(*) filter (where country = 'US' and region = 'CA') as ca, count(*) as n from users")[0]
    assert 0.3 < us["us"] / us["n"] < 0.5 and 0.2 < us["ca"] / us["us"] < 0.45
    assert fetch(url, "select count(*) as n from access_logs where family(ip_address) = 6")[0]["n"] > 0


def test_planted_emails(seeded):
    url, summary = seeded
    p = summary["planted"]
    users = by_id(url, "users")
    assert all(users[i]["email"] is None for i in p["email_null"])
    for i in p["email_upper"]:
        assert users[i]["email"] == users[i]["email"].upper() and "@" in users[i]["email"]
    for i in p["email_mixed_case"]:
        e = users[i]["email"]
        assert e not in (e.lower(), e.upper())
    dups = {users[i]["email"] for i in p["email_duplicate_ci"]}
    assert len(dups) == len(p["email_duplicate_ci"]) >= 2 and len({e.lower() for e in dups}) == 1
    for kind, test in {
        "email_no_at": lambda e: "@" not in e,
        "email_double_at": lambda e: "@@" in e,
        "email_space": lambda e: " " in e,
        "email_trailing_dot": lambda e: e.endswith("."),
        "email_missing_tld": lambda e: "." not in e.split("@")[-1],
    }.items():
        assert p[kind] and all(test(users[i]["email"]) for i in p[kind]), kind
    assert sorted(p["email_malformed"]) == sorted(sum((p[k] for k in (
        "email_no_at", "email_double_at", "email_space", "email_trailing_dot", "email_missing_tld")), []))
    for i in p["email_malformed"]:
        assert not WELL_FORMED_EMAIL.match(users[i]["email"])
    # the bulk carries the same dirt at small rates
    dirty = summary["bulk_dirty"]
    for kind in ("email_null", "email_upper", "email_mixed_case", "email_duplicate_ci", "email_malformed"):
        assert dirty[kind] > 0, kind
    bulk_null = fetch(url, "select count(*) as n from users where email is null")[0]["n"] - len(p["email_null"])
    assert bulk_null == dirty["email_null"]


def children_by_rule(url: str, anchor: dt.date) -> dict[str, set[int]]:
    rules = {
        "birth_date": """select id from users where birth_date <= %(a)s
                         and extract(year from age(%(a)s, birth_date)) < 13""",
        "declared_age": "select id from users where declared_age < 13",
        "report_user_id": "select user_id from child_reports where resolved_at is null and user_id is not null",
        "report_email": """select u.id from child_reports r join users u on lower(u.email) = lower(r.reported_email)
                           where r.resolved_at is null""",
    }
    return {name: {r["id"] if "id" in r else r["user_id"] for r in fetch(url, q, {"a": anchor})}
            for name, q in rules.items()}


def test_planted_children_reports_and_holds(seeded):
    url, summary = seeded
    p = summary["planted"]
    by_rule = children_by_rule(url, ANCHOR)
    planted_ids = set(range(1, summary["planted_rows"]["users"] + 1))
    caught = {rule: ids & planted_ids for rule, ids in by_rule.items()}
    assert caught["birth_date"] == set(p["child_by_birth_date"] + p["child_birthday_tomorrow"]
                                       + p["child_with_active_hold"] + p["child_with_released_hold"])
    assert caught["declared_age"] == set(p["child_by_declared_age"])
    assert caught["report_user_id"] == set(p["child_by_report_user_id"])
    assert caught["report_email"] == set(p["child_by_report_email"])
    assert set().union(*caught.values()) == set(p["children"])
    # a declared-age child has an adult or unknown birth date; the report-by-email differs in case
    users = by_id(url, "users")
    assert {users[i]["birth_date"] is None for i in p["child_by_declared_age"]} == {True, False}
    reports = by_id(url, "child_reports")
    (by_email,) = p["child_report_by_email"]
    (child,) = p["child_by_report_email"]
    assert reports[by_email]["reported_email"] != users[child]["email"]
    assert reports[by_email]["reported_email"].lower() == users[child]["email"].lower()
    (no_match,) = p["child_report_no_match"]
    assert not fetch(url, "select 1 from users where lower(email) = lower(%s)", (reports[no_match]["reported_email"],))
    (resolved,) = p["child_report_resolved"]
    assert reports[resolved]["resolved_at"] is not None
    assert reports[resolved]["user_id"] in p["adult_with_resolved_report"]
    assert p["teen_turned_13_today"][0] not in by_rule["birth_date"]
    assert all(users[i]["birth_date"] > ANCHOR for i in p["birth_date_future"])
    holds = fetch(url, "select * from legal_holds")
    active = {h["user_id"] for h in holds if h["released_at"] is None}
    released = {h["user_id"] for h in holds if h["released_at"] is not None}
    assert set(p["child_with_active_hold"]) <= active and set(p["hold_active_adult"]) <= active
    assert set(p["child_with_released_hold"]) <= released - active
    # every planted child has rows to purge in every table that holds personal data
    for table in ("uploads", "support_messages", "usage_events", "access_logs", "social_profiles"):
        have = {r["user_id"] for r in fetch(url, sql.SQL("select distinct user_id from {}").format(sql.Identifier(table)))}
        assert set(p["children"]) <= have, table
    # and the bulk has children of every rule as well, counted in the summary
    dirty = summary["bulk_dirty"]
    assert len(by_rule["birth_date"] - planted_ids) == dirty["child_by_birth_date"] > 0
    assert dirty["child_by_declared_age"] > 0
    assert dirty["users_deleted"] > 0 and dirty["users_do_not_sell"] > 0 and dirty["users_processing_restricted"] > 0


def test_planted_user_flags(seeded):
    url, summary = seeded
    p = summary["planted"]
    users = by_id(url, "users")
    assert all(users[i]["deleted_at"] is not None for i in p["deleted"])
    assert all(users[i]["do_not_sell"] and users[i]["do_not_sell_at"] is not None for i in p["do_not_sell"])
    assert all(users[i]["processing_restricted"] for i in p["processing_restricted"])
    consistent = fetch(url, "select count(*) as n from users where do_not_sell <> (do_not_sell_at is not null)")
    assert consistent[0]["n"] == 0


def test_planted_requests(seeded):
    url, summary = seeded
    p = summary["planted"]
    rows = by_id(url, "privacy_requests")
    check_planted_request_states(rows, p, ANCHOR)
    planted = [rows[i] for i in range(1, summary["planted_rows"]["privacy_requests"] + 1)]
    assert {r["status"] for r in planted} == {"received", "verifying", "in_progress", "completed", "rejected", "withdrawn"}
    assert {r["request_type"] for r in planted} >= GDPR_TYPES | CCPA_TYPES | {"erase_everything"}
    assert {r["regime"] for r in planted} >= {"gdpr", "ccpa", "lgpd"}
    assert all(rows[i]["user_id"] is None for i in p["request_user_null"])
    assert {rows[i]["assignee_email"] for i in p["request_assignee_set"]} <= {"dpo@example.com", "privacy-team@example.com"}
    assert all(rows[i]["assignee_email"] is None for i in p["request_assignee_null"])
    month_ends = sorted((rows[i]["received_at"].month, rows[i]["received_at"].day) for i in p["request_month_end"])
    assert month_ends == [(1, 31), (3, 31), (8, 31)]
    assert sorted(rows[i]["received_at"].weekday() for i in p["request_weekend"]) == [5, 6]
    # The worked examples of docs/rules.md, at their absolute dates
    ex = {name: rows[i] for name, i in p["request_spec_example_by_name"].items()}
    assert deadline_state(ex["gdpr_2026-09-03"], dt.date(2026, 9, 10))[1] == dt.date(2026, 10, 5)
    assert deadline_state(ex["gdpr_2026-03-31"], dt.date(2026, 4, 1))[1] == dt.date(2026, 4, 30)
    assert deadline_state(ex["gdpr_2026-08-31"], dt.date(2026, 9, 1))[1] == dt.date(2026, 9, 30)
    assert deadline_state(ex["gdpr_2026-10-30_extended"], dt.date(2026, 11, 20))[1] == dt.date(2027, 2, 1)
    assert deadline_state(ex["ccpa_know_2026-03-02"], dt.date(2026, 3, 3))[1] == dt.date(2026, 4, 2)
    assert add_business_days(ex["ccpa_know_2026-03-02"]["received_at"].date(), 10) == dt.date(2026, 3, 16)
    assert deadline_state(ex["ccpa_opt_out_2026-03-02"], dt.date(2026, 3, 3))[1] == dt.date(2026, 3, 23)
    # bulk requests carry the same kinds of dirt
    dirty = summary["bulk_dirty"]
    assert dirty["request_unknown_regime"] + dirty["request_unknown_type"] + dirty["request_regime_type_mismatch"] > 0


@settings(max_examples=300, deadline=None)
@given(st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2032, 12, 31)))
def test_planted_request_labels_hold_for_any_anchor(anchor):
    planted = plant(anchor)
    rows = {r["id"]: r for r in planted.rows["privacy_requests"]}
    check_planted_request_states(rows, planted.keys, anchor)


def test_planted_vendors_and_shares(seeded):
    url, summary = seeded
    p = summary["planted"]
    vendors = by_id(url, "vendors")
    assert {v["kind"] for v in vendors.values()} == VENDOR_KINDS
    assert all(set(v["allowed_categories"]) <= CATEGORIES for v in vendors.values())
    assert any(v["dpa_signed_on"] is None for v in vendors.values())
    assert any(not v["active"] for v in vendors.values())
    for vid in summary["vendors"]["unknown_ids"]:
        assert vid not in vendors
    users, shares = by_id(url, "users"), by_id(url, "data_shares")
    children = set(p["children"])
    expected = {
        "share_category_not_allowed": {"category_not_allowed"},
        "share_sp_without_dpa": {"no_dpa_before_share"},
        "share_sp_dpa_after_share": {"no_dpa_before_share"},
        "share_opted_out_to_non_sp": {"opted_out"},
        "share_child": {"child"},
        "share_after_deletion": {"after_deletion"},
        "share_while_restricted": {"restricted"},
        "share_unknown_vendor": {"unknown_vendor"},
        "share_inactive_vendor": {"inactive_vendor"},
        "share_clean": set(),
    }
    for key, rules in expected.items():
        assert p[key], key
        for share_id in p[key]:
            assert share_violations(shares[share_id], vendors, users, children) == rules, (key, share_id)
    (after_dpa,) = p["share_sp_dpa_after_share"]
    assert vendors[shares[after_dpa]["vendor_id"]]["dpa_signed_on"] is not None
    # bulk: most shares are clean, each rule is broken somewhere
    bulk = [s for i, s in shares.items() if i > summary["planted_rows"]["data_shares"]]
    found = [share_violations(s, vendors, users, set()) for s in bulk]
    assert sum(not f for f in found) > 0.6 * len(bulk)
    broken = set().union(*found)
    assert broken >= {"category_not_allowed", "no_dpa_before_share", "opted_out", "after_deletion",
                      "restricted", "unknown_vendor", "inactive_vendor"}


def test_policy_versions_and_suppressions(seeded):
    url, summary = seeded
    p = summary["planted"]
    versions = fetch(url, "select * from policy_versions order by published_at")
    assert 3 <= len(versions) <= 4
    newest = versions[-1]
    assert newest["published_at"].date() == ANCHOR - dt.timedelta(days=1)
    assert newest["effective_at"] - newest["published_at"] == dt.timedelta(days=30)
    assert newest["version"] == summary["policy"]["current"] == "2026.11"
    assert all(re.fullmatch(r"[0-9a-f]{64}", v["body_sha256"]) for v in versions)
    assert len({v["body_sha256"] for v in versions}) == len(versions)

    suppressed = fetch(url, "select * from email_suppressions")
    assert {s["reason"] for s in suppressed} == {"bounce", "invalid", "spam_report"}
    exact = {s["email"] for s in suppressed}
    lowered = {s["email"].lower() for s in suppressed}
    assert len(lowered) == len(exact)
    users = by_id(url, "users")
    for i in p["suppressed_users"]:
        assert users[i]["email"].lower() in lowered
    for i in p["suppressed_different_case"]:
        assert users[i]["email"] not in exact
    assert summary["bulk_dirty"]["suppression_different_case"] > 0


# ------------------------------------------------------------------------------------------------
# Determinism, sequences, parameters
# ------------------------------------------------------------------------------------------------


def test_deterministic_per_seed(seeded, fresh_db, pg_server_url):
    url, summary = seeded
    again = demo_data.seed(fresh_db, users=USERS, anchor=ANCHOR)
    assert again["rows"] == summary["rows"] and again["planted"] == summary["planted"]
    assert again["bulk_dirty"] == summary["bulk_dirty"]
    assert table_digests(fresh_db) == table_digests(url)

    name = f"privacy_test_seed_{uuid.uuid4().hex[:8]}"
    other = database.create_database(pg_server_url, name)
    try:
        demo_data.seed(other, users=USERS, anchor=ANCHOR, seed=43)
        digests, base = table_digests(other), table_digests(url)
        assert digests["users"] != base["users"] and digests["usage_events"] != base["usage_events"]
        # fixed tables depend on the anchor only
        assert digests["vendors"] == base["vendors"] and digests["policy_versions"] == base["policy_versions"]
    finally:
        scratch.drop_later(pg_server_url, name)


def test_sequences_continue_after_loaded_ids(fresh_db):
    summary = demo_data.seed(fresh_db, users=300, anchor=ANCHOR, requests=80)
    assert summary["rows"]["privacy_requests"] == 80
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from pg_indexes where schemaname = 'public'").fetchone()[0] >= len(
            operational_schema.index_statements())
        for table in operational_schema.table_names():
            if table == "email_suppressions":
                continue
            top = conn.execute(sql.SQL("select max(id) from {}").format(sql.Identifier(table))).fetchone()[0]
            columns = {
                "users": "created_at) values (now()",
                "privacy_requests": "requester_email, regime, request_type, received_at, status) "
                                    "values ('x@example.com', 'gdpr', 'access', now(), 'received'",
                "policy_versions": "version, published_at, effective_at, summary, url, body_sha256) "
                                   "values ('9999.01', now(), now(), 's', 'u', 'h'",
            }.get(table)
            if columns is None:
                # every other table: copy an existing row without its id
                names = [c for c, _, _ in REFERENCE_SCHEMA[table] if c != "id"]
                cols = sql.SQL(", ").join(map(sql.Identifier, names))
                statement = sql.SQL("insert into {t} ({c}) select {c} from {t} order by id limit 1 returning id").format(
                    t=sql.Identifier(table), c=cols)
            else:
                statement = sql.SQL("insert into {} (" + columns + ") returning id").format(sql.Identifier(table))
            new_id = conn.execute(statement).fetchone()[0]
            assert new_id == top + 1, table
        conn.rollback()


def test_small_seed_has_no_planted_rows_and_refuses_existing_schema(fresh_db):
    summary = demo_data.seed(fresh_db, users=50, anchor=ANCHOR)
    assert summary["rows"]["users"] == 50 and summary["planted"] == {}
    with pytest.raises(operational_schema.SchemaExistsError):
        demo_data.seed(fresh_db, users=50, anchor=ANCHOR)
    again = demo_data.seed(fresh_db, users=60, anchor=ANCHOR, replace=True)
    assert again["rows"]["users"] == 60
    with pytest.raises(ValueError, match="planted"):
        demo_data.seed(fresh_db, users=300, anchor=ANCHOR, requests=3, replace=True)


def test_failed_seed_leaves_nothing_behind(fresh_db, monkeypatch):
    import threading

    def broken(self):
        raise RuntimeError("generator broke")

    monkeypatch.setattr(BulkGenerator, "usage_table", broken)
    with pytest.raises(RuntimeError, match="generator broke"):
        demo_data.seed(fresh_db, users=300, anchor=ANCHOR)
    assert not [t for t in threading.enumerate() if t.name == "seed-csv"]
    with psycopg.connect(fresh_db) as conn:
        assert operational_schema.existing_tables(conn) == []
