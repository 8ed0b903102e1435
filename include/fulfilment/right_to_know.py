"""The CCPA right to know (Cal. Civ. Code §1798.110, §1798.115): which categories of a consumer's personal
information were disclosed, and to whom, over a period (by default the 12 months before the request).

:func:`shared_with` answers it for one account from the same data as the manifests (``data_shares``
through the data map, vendors joined the same way), for ``dsr_fulfilment``'s export packages and for
``privacy-ops right-to-know``. It returns vendor ids, names and kinds (companies, not data subjects),
categories, counts and dates: nothing else about the consumer.

An access or portability request (GDPR Art. 15(1)(c)) is owed every recipient the data "have been or will be
disclosed" to, with no period: its answer covers every share up to the day it is answered
(:func:`answer_period`, :data:`FROM_THE_START`). Each vendor comes with the purposes its shares recorded
(GDPR Art. 15(1)(a), CCPA §1798.110(a)(4)).

Shares whose time no period can hold (``infinity``, BC, after 9999; see :mod:`include.vendors.rules`)
cannot be placed inside or outside the period, so they are listed apart (``undated``) rather than left out; so
are shares dated after the period and after the present moment (a typed year, a clock off): a disclosure that
happened, at no time it can have.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from psycopg import sql

from include import operational_rows as reading
from include.datamap import DataMap
from include.periods import Period

MISSING_CATEGORY = "(missing)"
# The start of a period that holds every share Python can date (one before it is listed with the undated ones).
FROM_THE_START = datetime(1, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class VendorShares:
    """What one vendor received of the consumer's data in the period."""

    vendor_id: int
    known: bool  # False: the shares name a vendor id that no vendor has
    name: str | None
    kind: str | None
    categories: tuple[str, ...]
    shares: int
    records: int
    first_shared: datetime | None  # None for undated shares
    last_shared: datetime | None
    purposes: tuple[str, ...] = ()  # what the shares were for, as each recorded it ("(missing)" for none)


@dataclass(frozen=True)
class SharedWith:
    user_id: int
    period: Period
    account_exists: bool
    vendors: tuple[VendorShares, ...]
    undated: tuple[VendorShares, ...] = ()

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category disclosed in the period, sorted."""
        return tuple(sorted({c for v in self.vendors for c in v.categories}))

    @property
    def from_the_start(self) -> bool:
        """The period holds every dated share up to its end (an access request's answer), not twelve months."""
        return self.period.start == FROM_THE_START

    @property
    def shares(self) -> int:
        return sum(v.shares for v in self.vendors)


def last_twelve_months(today: date, tz: tzinfo) -> Period:
    """The 12 months up to and including ``today`` (from the same day a year earlier; 29 Feb -> 28 Feb).
    ValueError, in one sentence, for a day in year 1 (no year before it)."""
    if today.year == 1:
        raise ValueError(f"{today} is in year 1: there are no twelve months before it")
    try:
        since = today.replace(year=today.year - 1)
    except ValueError:
        since = today.replace(year=today.year - 1, day=28)
    return days_period(since, today, tz)


def since_receipt(received: datetime | None, today: date, tz: tzinfo) -> Period:
    """A request's right to know: the 12 months before the day it was received (CCPA §1798.130(a)(2)(B): "the
    12-month period preceding the business's receipt of the verifiable consumer request"), and on up to and
    including ``today``, the day it is answered (what was shared in between is told too). Without a receipt
    date, the 12 months up to ``today``."""
    day = today if received is None else min(received.astimezone(tz).date(), today)
    start = last_twelve_months(day, tz).start
    return Period(start, last_twelve_months(today, tz).end)


def answer_period(regime: str, received: datetime | None, today: date, tz: tzinfo) -> Period:
    """The shares a request's answer names: under the CCPA the 12 months before its receipt and on to ``today``
    (:func:`since_receipt`); otherwise (GDPR Art. 15(1)(c): the recipients the data "have been ... disclosed" to,
    no period) every share up to and including ``today``."""
    if regime == "ccpa":
        return since_receipt(received, today, tz)
    return Period(FROM_THE_START, days_period(today, today, tz).end)


def days_period(since: date, until: date, tz: tzinfo) -> Period:
    """The calendar days ``since`` .. ``until``, both included, in zone ``tz``. ValueError, in one sentence, when
    ``until`` is the calendar's last day (the period ends at the next midnight, which no date holds)."""
    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tz)

    if until == date.max:
        raise ValueError(f"{until} is the calendar's last day: name an earlier one")
    return Period(midnight(since), midnight(until + timedelta(days=1)))


_QUERY = """
select {vendor}, {v_id} is not null, {v_name}, {v_kind},
       array_agg(distinct coalesce({category}, {missing}) order by coalesce({category}, {missing})),
       count(*), coalesce(sum({records}), 0), {first}, {last},
       array_agg(distinct coalesce(nullif(btrim({purpose}), ''), {missing})
                 order by coalesce(nullif(btrim({purpose}), ''), {missing}))
from {shares} s left join {vendors} v on {v_id} = {vendor}
where {user} = %(user)s and {scope}
group by 1, 2, 3, 4
order by 1
"""


def shared_with(ops, dm: DataMap, user_id: int, period: Period) -> SharedWith:
    """The vendors (and categories) the account's data was shared with in ``period``."""
    shares, vendors, accounts = dm.record("data_shares"), dm.record("vendors"), dm.record("accounts")

    def S(name):  # noqa: N802
        return sql.Identifier("s", shares.physical(name))

    def V(name):  # noqa: N802
        return sql.Identifier("v", vendors.physical(name))

    at = S("shared_at")
    # Codes as the text of their labels (reading.as_text): a category of an enum type refused '(missing)'.
    common = dict(vendor=S("vendor_id"), v_id=V("id"), v_name=V("name"), v_kind=reading.as_text(V("kind")),
                  category=reading.as_text(S("category")),
                  purpose=S("purpose"), missing=sql.Literal(MISSING_CATEGORY), records=S("record_count"),
                  shares=shares.ident,
                  vendors=vendors.ident, user=S("user_id"))
    dated = sql.SQL(_QUERY).format(
        **common, first=sql.SQL("min({})").format(at), last=sql.SQL("max({})").format(at),
        scope=sql.SQL("{at} >= %(start)s and {at} < %(end)s").format(at=at))
    undated = sql.SQL(_QUERY).format(
        **common, first=sql.SQL("null::timestamptz"), last=sql.SQL("null::timestamptz"),
        scope=sql.SQL("({at} is null or {outside} or ({at} >= %(end)s and {at} > now()))").format(
            at=at, outside=reading.out_of_range(at)))
    params = {"user": user_id, "start": period.start, "end": period.end}
    exists = sql.SQL("select exists (select from {t} where {id} = %s)").format(t=accounts.ident,
                                                                               id=accounts.col("id"))
    return SharedWith(
        user_id=user_id, period=period, account_exists=ops.execute(exists, (user_id,)).fetchone()[0],
        vendors=tuple(_vendor_shares(row) for row in ops.execute(dated, params)),
        undated=tuple(_vendor_shares(row) for row in ops.execute(undated, params)))


def _vendor_shares(row) -> VendorShares:
    return VendorShares(*row[:4], tuple(row[4]), *row[5:9], purposes=tuple(row[9]))
