"""The reference schema with its code columns of PostgreSQL enum types, as Rails, Django and Prisma schemas make them.

:func:`make_enums` turns each code column the DAGs compare, group or write (a request's ``status``, ``regime`` and
``request_type``, a share's ``category``, a vendor's ``kind`` and ``allowed_categories``, a report's and an upload's
``source``, a suppression's ``reason``) into an enum whose labels are the codes the project knows and every value the
column holds already (the seed's dirty ones too), so that the same rows read the same labels.
"""
from __future__ import annotations

from psycopg import sql

from include.datamap import CATEGORIES
from include.deadline_rules import CLOSED_STATUSES, OPEN_STATUSES, REGIME_TYPES

# (table, column) -> (enum type, the labels the project knows, whether the column is an array of it)
ENUM_CODES = {
    ("privacy_requests", "status"): ("request_status", sorted(OPEN_STATUSES | CLOSED_STATUSES), False),
    ("privacy_requests", "regime"): ("request_regime", [*sorted(REGIME_TYPES), "lgpd"], False),
    ("privacy_requests", "request_type"): ("request_kind", sorted(frozenset().union(*REGIME_TYPES.values())), False),
    ("data_shares", "category"): ("share_category", sorted(CATEGORIES), False),
    ("vendors", "allowed_categories"): ("share_category", sorted(CATEGORIES), True),
    ("vendors", "kind"): ("vendor_kind", ["service_provider", "third_party"], False),
    ("child_reports", "source"): ("report_source", ["automated", "parent", "support"], False),
    ("uploads", "source"): ("upload_source", ["google_drive", "upload"], False),
    ("email_suppressions", "reason"): ("suppression_reason", ["bounce", "invalid", "spam_report"], False),
}


def make_enums(conn) -> None:
    """Alter the code columns of the reference schema on ``conn`` (autocommit) to enum types, in one transaction."""
    labels: dict[str, set[str]] = {}
    for (table, column), (type_name, known, array) in ENUM_CODES.items():
        values = sql.SQL("select distinct unnest({c}) from {t}" if array else "select distinct {c} from {t}").format(
            c=sql.Identifier(column), t=sql.Identifier(table))
        labels.setdefault(type_name, set()).update(known, (v for (v,) in conn.execute(values) if v is not None))
    with conn.transaction():
        for type_name, names in labels.items():
            conn.execute(sql.SQL("create type {} as enum ({})").format(
                sql.Identifier(type_name), sql.SQL(", ").join(map(sql.Literal, sorted(names)))))
        for (table, column), (type_name, _, array) in ENUM_CODES.items():
            target = sql.SQL("{}[]" if array else "{}").format(sql.Identifier(type_name))
            conn.execute(sql.SQL("alter table {t} alter {c} type {type} using {c}::text{arr}::{type}").format(
                t=sql.Identifier(table), c=sql.Identifier(column), type=target,
                arr=sql.SQL("[]" if array else "")))
