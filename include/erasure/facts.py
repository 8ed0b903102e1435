"""What the erasure needs to know about subjects besides their rows: legal holds, the vendors that
received their data and the privacy requests naming them. Each is read through the data map's records
(``legal_holds``, ``data_shares``, ``vendors``, ``privacy_requests``), for one subject inside its erasing
transaction or for many at once when planning.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from psycopg import sql

from include.datamap import DataMap
from include.operational_rows import as_text, out_of_range


@dataclass(frozen=True)
class VendorShare:
    """A vendor that received a subject's data: who must get a downstream deletion notice."""

    vendor_id: int
    name: str | None       # None when the vendor is unknown (a share to a vendor id that no longer exists)
    known: bool
    categories: tuple[str, ...]
    shares: int
    # data_shares.id of each share (ascending): what the vendor manifests gave the vendor as share_id, so the
    # notice tells the vendor which data to delete without naming the subject. Empty in records written before.
    share_ids: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return {"vendor_id": self.vendor_id, "name": self.name, "known": self.known,
                "categories": list(self.categories), "shares": self.shares, "share_ids": list(self.share_ids)}

    @classmethod
    def from_dict(cls, raw: dict) -> "VendorShare":
        return cls(int(raw["vendor_id"]), raw.get("name"), bool(raw.get("known")), tuple(raw.get("categories") or ()),
                   int(raw.get("shares") or 0), tuple(int(i) for i in raw.get("share_ids") or ()))


def active_holds(conn, dm: DataMap, user_ids: Sequence[int], at: datetime) -> dict[int, tuple[int, ...]]:
    """The active legal holds of each subject that has one: hold ids by user id.

    A hold is active until it is released (``released_at`` empty or still in the future); when it was
    placed does not matter, so a hold with a doubtful placement date still protects the data. A release time
    Python cannot hold (``-infinity``, a BC date) tells no real release either: such a hold still protects.
    """
    holds = dm.record("legal_holds")
    query = sql.SQL("""select {user}, array_agg({id} order by {id}) from {t}
                       where {user} = any(%(ids)s::bigint[])
                         and ({released} is null or {released} > %(at)s or {unreadable})
                       group by {user}""").format(
        user=holds.col("user_id"), id=holds.col("id"), t=holds.ident, released=holds.col("released_at"),
        unreadable=out_of_range(holds.col("released_at")))
    return {uid: tuple(ids) for uid, ids in conn.execute(query, {"ids": list(user_ids), "at": at})}


def vendor_shares(conn, dm: DataMap, user_ids: Sequence[int]) -> dict[int, tuple[VendorShare, ...]]:
    """Per subject, every vendor its data was shared with (``data_shares``), known vendor or not."""
    shares, vendors = dm.record("data_shares"), dm.record("vendors")
    query = sql.SQL("""
        select s.{user}, s.{vendor}, v.{name}, v.{vid} is not null,
               coalesce(array_agg(distinct s.{category}) filter (where s.{category} is not null), '{{}}'), count(*),
               array_agg(s.{id} order by s.{id})
        from {shares} s left join {vendors} v on v.{vid} = s.{vendor}
        where s.{user} = any(%(ids)s::bigint[])
        group by s.{user}, s.{vendor}, v.{vid}, v.{name}
        order by s.{user}, s.{vendor}""").format(
        # A category of an enum type, aggregated as it is, came back as one string ('{account,contact}').
        user=shares.col("user_id"), vendor=shares.col("vendor_id"), category=as_text(shares.col("category")),
        id=shares.col("id"),
        name=vendors.col("name"), vid=vendors.col("id"), shares=shares.ident, vendors=vendors.ident)
    found: dict[int, list[VendorShare]] = {}
    for uid, vendor_id, name, known, categories, n, ids in conn.execute(query, {"ids": list(user_ids)}):
        found.setdefault(uid, []).append(VendorShare(vendor_id, name, known, tuple(sorted(categories)), n,
                                                     tuple(i for i in ids if i is not None)))
    return {uid: tuple(v) for uid, v in found.items()}


def request_ids(conn, dm: DataMap, user_ids: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """Per subject, the ids of the privacy requests naming its account (``privacy_requests.user_id``), ascending:
    read inside the erasing transaction before the erase rule removes that link, they are how a request the
    erasure unlinked is told apart afterwards (ids only: no personal data)."""
    requests = dm.record("privacy_requests")
    query = sql.SQL("""select {user}, array_agg({id} order by {id}) from {t}
                       where {user} = any(%(ids)s::bigint[]) group by {user}""").format(
        user=requests.col("user_id"), id=requests.col("id"), t=requests.ident)
    return {uid: tuple(ids) for uid, ids in conn.execute(query, {"ids": list(user_ids)})}
