"""The operational reads of the manifests: which vendors a period has, and one vendor's shares, judged.

Every table and column comes through the data map (``records.data_shares``, ``vendors``, ``accounts``,
``child_reports``). A share's vendor, account and child status are joined in the database, and the rules
of :mod:`include.vendors.rules` are evaluated there, so one statement per (vendor, period) yields the
rows of the data file already judged; it is streamed out with ``COPY ... TO STDOUT`` (see
:mod:`include.vendors.datafile`), never held whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from psycopg import sql

from include import operational_rows as reading
from include.child_detection import child_user_ids_sql
from include.datamap import DataMap
from include.periods import Period
from include.vendors.rules import kind_problem, mask_columns, whole_count

UNDATED = "undated"

# The columns of the COPY, in order (the data file's columns, with the rule masks not yet spelled out).
COPY_COLUMNS = ("share_id", "user_id", "category", "purpose", "legal_basis", "record_count", "shared_at_us",
                "violation_mask", "problem_mask")


@dataclass(frozen=True)
class Scope:
    """What one manifest covers: a period ``[start, end)``, or a vendor's undated shares (no period holds them).

    ``child_as_of`` is the day the child rules are judged on: the period's last day in the configured zone
    (a child at signup stays a child, so for an account with a readable signup time this is the same as
    judging on the day of each share). Undated shares are judged on the run's own day, or today when the run acts
    later (:func:`include.vendors.manifests.write_manifest`)."""

    label: str
    start: datetime | None
    end: datetime | None
    child_as_of: date

    @classmethod
    def of_period(cls, period: Period, tz: tzinfo) -> "Scope":
        last_day = (period.end - timedelta(microseconds=1)).astimezone(tz).date()
        return cls(period.label, period.start, period.end, last_day)

    @classmethod
    def undated(cls, today: date) -> "Scope":
        return cls(UNDATED, None, None, today)

    @property
    def is_undated(self) -> bool:
        return self.start is None

    def params(self) -> dict:
        return {"start": self.start, "end": self.end, "as_of": self.child_as_of}


def _in_scope(dm: DataMap, scope: Scope, alias: str | None = "s") -> sql.Composable:
    shares = dm.record("data_shares")
    at = sql.Identifier(alias, shares.physical("shared_at")) if alias else shares.col("shared_at")
    if scope.is_undated:
        return sql.SQL("({at} is null or {outside})").format(at=at, outside=reading.out_of_range(at))
    return sql.SQL("{at} >= %(start)s and {at} < %(end)s").format(at=at)


def vendors_with_shares(ops, dm: DataMap, period: Period) -> dict[int | None, int]:
    """Vendor id -> number of shares in the period (``None`` for shares that name no vendor at all)."""
    shares = dm.record("data_shares")
    query = sql.SQL("select {v}, count(*) from {t} where {at} >= %(start)s and {at} < %(end)s group by 1").format(
        v=shares.col("vendor_id"), t=shares.ident, at=shares.col("shared_at"))
    return dict(ops.execute(query, {"start": period.start, "end": period.end}).fetchall())


def vendors_with_undated_shares(ops, dm: DataMap) -> dict[int | None, int]:
    """Vendor id -> number of shares whose ``shared_at`` no period can hold (missing, infinity, BC, > 9999)."""
    shares = dm.record("data_shares")
    at = shares.col("shared_at")
    query = sql.SQL("select {v}, count(*) from {t} where {at} is null or {outside} group by 1").format(
        v=shares.col("vendor_id"), t=shares.ident, at=at, outside=reading.out_of_range(at))
    return dict(ops.execute(query).fetchall())


def active_vendor_ids(ops, dm: DataMap) -> list[int]:
    vendors = dm.record("vendors")
    query = sql.SQL("select {id} from {t} where {active} order by 1").format(
        id=vendors.col("id"), t=vendors.ident, active=vendors.col("active"))
    return [row[0] for row in ops.execute(query)]


def known_vendor_ids(ops, dm: DataMap, vendor_ids) -> set[int]:
    """Those of ``vendor_ids`` that a vendors row has."""
    vendors = dm.record("vendors")
    query = sql.SQL("select {id} from {t} where {id} = any(%s::bigint[])").format(id=vendors.col("id"), t=vendors.ident)
    return {row[0] for row in ops.execute(query, (list(vendor_ids),))}


def has_shares(ops, dm: DataMap, vendor_id: int, scope: Scope) -> bool:
    shares = dm.record("data_shares")
    query = sql.SQL("select exists (select from {t} s where {v} = %(vendor)s and {scope})").format(
        t=shares.ident, v=sql.Identifier("s", shares.physical("vendor_id")), scope=_in_scope(dm, scope))
    return ops.execute(query, {"vendor": vendor_id, **scope.params()}).fetchone()[0]


@dataclass(frozen=True)
class VendorRow:
    """The vendor as the manifest describes it (``known`` is False when no vendors row has the id)."""

    vendor_id: int
    known: bool
    name: str | None = None
    kind: str | None = None
    dpa_signed_on: date | None = None
    allowed_categories: tuple[str, ...] | None = None
    active: bool | None = None
    problems: tuple[str, ...] = ()

    def as_manifest(self) -> dict:
        return {"id": self.vendor_id, "known": self.known, "name": self.name, "kind": self.kind,
                "dpa_signed_on": self.dpa_signed_on.isoformat() if self.dpa_signed_on else None,
                "allowed_categories": sorted(self.allowed_categories) if self.allowed_categories is not None else None,
                "active": self.active, "problems": list(self.problems)}


ALLOWED_CATEGORY_NULL = "allowed_categories holds a null, which allows nothing"


def vendor_row(ops, dm: DataMap, vendor_id: int, *, tz: str) -> VendorRow:
    """The vendor's row, read tolerantly (a DPA date Python cannot hold becomes None plus a problem); the DPA's day
    is the day it names, in the configured zone ``tz`` when the column holds a timestamptz (as the rules read it)."""
    vendors = dm.record("vendors")
    columns = ("name", "kind", "dpa_signed_on", "allowed_categories", "active")
    query = sql.SQL("select {cols} from {t} where {id} = %(vendor)s").format(
        cols=reading.select_list(vendors, columns), t=vendors.ident, id=vendors.col("id"))
    row = ops.execute(query, {"vendor": vendor_id, "tz": tz}).fetchone()
    if row is None:
        return VendorRow(vendor_id, known=False)
    name, kind, dpa, allowed, active, problems = row
    categories = None if allowed is None else tuple(c for c in allowed if c is not None)
    if categories is not None and len(categories) < len(allowed):
        # A null element allows nothing (the rules' SQL reads it so); said beside the vendor, not a crash.
        problems = (*problems, ALLOWED_CATEGORY_NULL)
    if (odd_kind := kind_problem(kind)) is not None:
        problems = (*problems, odd_kind)
    return VendorRow(vendor_id, True, name, kind, dpa, categories, active, tuple(problems))


def shares_select(dm: DataMap, scope: Scope) -> sql.Composable:
    """One vendor's shares in a scope, judged (violation and problem masks), ordered by (shared_at, id).

    Parameters: ``vendor``, ``start``/``end`` (a period), ``as_of`` and ``tz`` (see :func:`copy_params`).
    """
    shares, vendors, accounts = dm.record("data_shares"), dm.record("vendors"), dm.record("accounts")

    def S(name):  # noqa: N802
        return sql.Identifier("s", shares.physical(name))

    violations, problems = mask_columns(dm)
    at = S("shared_at")
    return sql.SQL("""
        with {children}
        select {id}, {user}, {category}, {purpose}, {basis}, {count},
               case when {readable} then (extract(epoch from {at}) * 1000000)::bigint end,
               {violations}, {problems}
        from {shares} s
        left join {vendors} v on {v_id} = {vendor}
        left join {accounts} u on {u_id} = {user}
        left join children c on c.user_id = {user}
        where {vendor} = %(vendor)s and {scope}
        order by {at} nulls last, {id}""").format(
        children=child_user_ids_sql(dm), id=S("id"), user=S("user_id"), category=S("category"),
        purpose=S("purpose"), basis=S("legal_basis"), count=whole_count(S("record_count")), readable=reading.in_range(at), at=at,
        violations=violations, problems=problems, shares=shares.ident, vendors=vendors.ident,
        v_id=sql.Identifier("v", vendors.physical("id")), vendor=S("vendor_id"), accounts=accounts.ident,
        u_id=sql.Identifier("u", accounts.physical("id")), scope=_in_scope(dm, scope))


def copy_statement(dm: DataMap, scope: Scope) -> sql.Composable:
    """``COPY (shares_select) TO STDOUT (FORMAT csv)``: the rows of one data file, as the server sends them."""
    return sql.SQL("copy ({}) to stdout (format csv)").format(shares_select(dm, scope))


def copy_params(vendor_id: int, scope: Scope, tz: str) -> dict:
    return {"vendor": vendor_id, "tz": tz, **scope.params()}

