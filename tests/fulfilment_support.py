"""Shared by the fulfilment's tests: the oracle of what an export package must hold, written by hand in SQL
for the reference schema (independent of the data map and of the package's own queries), and readers of a
package's files."""
from __future__ import annotations

import csv
import io
import json
import re

# Each (category, table)'s columns of one subject. %(u)s is the account id, %(e)s its address trimmed and
# lower-cased (null while another account has the same address).
ORACLE = {
    ("contact", "users"): ("email, full_name, company_name, phone, address", "id = %(u)s"),
    ("account", "users"): ("country, region, birth_date, declared_age, created_at, deleted_at, do_not_sell, "
                           "do_not_sell_at, processing_restricted", "id = %(u)s"),
    ("content", "uploads"): ("filename, source, storage_uri, size_bytes, created_at", "user_id = %(u)s"),
    ("support", "support_messages"): ("subject, body, created_at", "user_id = %(u)s"),
    ("contact", "support_messages"): ("email, phone", "user_id = %(u)s"),
    ("usage", "usage_events"): ("event_type, feature, api_calls, duration_ms, occurred_at", "user_id = %(u)s"),
    ("network", "access_logs"): ("ip_address, user_agent, isp, referrer, occurred_at", "user_id = %(u)s"),
    ("social", "social_profiles"): ("network, handle, profile_url", "user_id = %(u)s"),
    ("account", "data_shares"): ("category, purpose, record_count, shared_at", "user_id = %(u)s"),
    ("contact", "privacy_requests"): ("requester_email", "user_id = %(u)s"),
    ("contact", "child_reports"): ("reported_email", "user_id = %(u)s or lower(btrim(reported_email)) = %(e)s"),
    ("account", "legal_holds"): ("reason, placed_at, released_at", "user_id = %(u)s"),
    ("contact", "email_suppressions"): ("email", "lower(btrim(email)) = %(e)s"),
}


def expected(conn, user_id: int) -> dict[tuple[str, str], list[tuple]]:
    """The subject's rows per (category, table) as the database renders them (each type's output function, as
    COPY uses; NULL as an empty cell), sorted. Rows tied by address count only while no other account has it."""
    conn.execute("set timezone = 'UTC'")
    address = conn.execute("""select case when count(*) = 1 then min(lower(btrim(email))) end from users
                              where lower(btrim(email)) = (select lower(btrim(email)) from users where id = %s)""",
                           (user_id,)).fetchone()[0]
    found = {}
    for (category, table), (cols, where) in ORACLE.items():
        names = [c.strip() for c in cols.split(",")]
        rendered = ", ".join(f"format('%%s', {c})" for c in names)
        rows = conn.execute(f"select {rendered} from {table} where {where}", {"u": user_id, "e": address}).fetchall()
        found[(category, table)] = sorted(tuple(r) for r in rows)
    return found


def csv_rows(files: dict, category: str, table: str) -> list[tuple]:
    reader = csv.reader(io.StringIO(files[f"{category}/{table}.csv"].decode(), newline=""))
    header = next(reader)
    assert header == [c.strip() for c in ORACLE[(category, table)][0].split(",")]
    return sorted(tuple(r) for r in reader)


def json_rows(files: dict, category: str, table: str) -> list[tuple]:
    doc = json.loads(files[f"{category}.json"])
    (part,) = [t for t in doc["tables"] if t["table"] == f"public.{table}"]
    return sorted(tuple(_text(v) for v in row.values()) for row in part["rows"])


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def json_like(value: str) -> str:
    """The JSON export renders time stamps in ISO 8601 (``to_json``): a 'T' where text output has a space, and the
    offset with its minutes; the digits are PostgreSQL's either way (Python's isoformat would add trailing zeros)."""
    if len(value) > 18 and value[10] == " " and re.fullmatch(r"\d{4}-\d\d-\d\d", value[:10]):
        value = value[:10] + "T" + value[11:]
        return value + ":00" if re.search(r"[+-]\d\d$", value) else value
    return value


def matches(conn, files: dict, user_id: int, snapshot: dict | None = None) -> None:
    """Assert that a package's CSV and JSON hold exactly ``snapshot`` (default: the subject's rows now)."""
    oracle = snapshot if snapshot is not None else expected(conn, user_id)
    for (category, table), rows in oracle.items():
        assert csv_rows(files, category, table) == rows, (user_id, category, table)
        assert json_rows(files, category, table) == [tuple(json_like(v) for v in r) for r in rows], \
            (user_id, category, table)
