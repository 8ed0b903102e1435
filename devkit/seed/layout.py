"""Column order and arrow types of every table of the reference schema.

COPY reads the CSV by position, so the bulk generator's arrow tables list their columns in this order;
the hand-written rows are converted to arrow with these types.
"""
from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("s", tz="UTC")

S, I64, I32, I16, B, D = pa.string(), pa.int64(), pa.int32(), pa.int16(), pa.bool_(), pa.date32()
LAYOUT: dict[str, list[tuple[str, pa.DataType]]] = {
    "users": [("id", I64), ("email", S), ("full_name", S), ("company_name", S), ("phone", S), ("address", S),
              ("country", S), ("region", S), ("birth_date", D), ("declared_age", I16), ("created_at", TS),
              ("deleted_at", TS), ("do_not_sell", B), ("do_not_sell_at", TS), ("processing_restricted", B)],
    "privacy_requests": [("id", I64), ("user_id", I64), ("requester_email", S), ("regime", S),
                         ("request_type", S), ("received_at", TS), ("acknowledged_at", TS),
                         ("identity_requested_at", TS), ("identity_verified_at", TS), ("extended_at", TS),
                         ("extension_reason", S), ("status", S), ("completed_at", TS), ("assignee_email", S)],
    "uploads": [("id", I64), ("user_id", I64), ("filename", S), ("source", S), ("storage_uri", S),
                ("size_bytes", I64), ("created_at", TS)],
    "support_messages": [("id", I64), ("user_id", I64), ("email", S), ("phone", S), ("subject", S),
                         ("body", S), ("created_at", TS)],
    "usage_events": [("id", I64), ("user_id", I64), ("event_type", S), ("feature", S), ("api_calls", I32),
                     ("duration_ms", I32), ("occurred_at", TS)],
    "access_logs": [("id", I64), ("user_id", I64), ("ip_address", S), ("user_agent", S), ("isp", S),
                    ("referrer", S), ("occurred_at", TS)],
    "social_profiles": [("id", I64), ("user_id", I64), ("network", S), ("handle", S), ("profile_url", S)],
    "vendors": [("id", I64), ("name", S), ("kind", S), ("dpa_signed_on", D), ("allowed_categories", S),
                ("contact_email", S), ("active", B)],
    "data_shares": [("id", I64), ("vendor_id", I64), ("user_id", I64), ("category", S), ("purpose", S),
                    ("legal_basis", S), ("record_count", I32), ("shared_at", TS)],
    "child_reports": [("id", I64), ("user_id", I64), ("reported_email", S), ("source", S), ("note", S),
                      ("reported_at", TS), ("resolved_at", TS)],
    "legal_holds": [("id", I64), ("user_id", I64), ("reason", S), ("placed_at", TS), ("released_at", TS)],
    "policy_versions": [("id", I64), ("version", S), ("published_at", TS), ("effective_at", TS),
                        ("summary", S), ("url", S), ("body_sha256", S)],
    "email_suppressions": [("email", S), ("reason", S), ("created_at", TS)],
}
TABLES = list(LAYOUT)


def rows_table(table: str, rows: list[dict]) -> pa.Table:
    """Hand-written rows (dicts) as an arrow table of ``table``; a missing column is NULL."""
    schema = pa.schema(LAYOUT[table])
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
