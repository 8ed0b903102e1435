"""What a share must not be (docs/rules.md, "Vendor sharing"), as pure functions and as the SQL the manifests run.

Violations — a share that should not have happened:

* ``category_not_allowed`` — the category is not in the vendor's ``allowed_categories`` (GDPR Art. 28(3)(a),
  processing only on documented instructions; CCPA §1798.100(d) contract terms);
* ``sp_without_dpa`` — a service provider with no DPA at all (GDPR Art. 28(3); CCPA §1798.140(ag));
* ``sp_dpa_after_share`` — a service provider whose DPA was signed after the day of the share (a DPA
  signed on the share's own day counts as in force, since a date cannot say which came first);
* ``opted_out_to_non_sp`` — the user had opted out of sale (``do_not_sell_at`` strictly before the share)
  and the recipient is not a service provider (CCPA §1798.120, §1798.135); an unknown vendor is not known
  to be a service provider, so it counts;
* ``child`` — the subject is a child by the child-purge rules (:mod:`include.child_detection`, one
  implementation), judged as of the period's last day (COPPA, 16 CFR §312);
* ``after_deletion`` — the account was deleted (``deleted_at``) strictly before the share (GDPR Art. 17);
* ``while_restricted`` — the account's processing is restricted (GDPR Art. 18); the schema keeps no time
  for a restriction, so the flag is read as it stands when the manifest is written;
* ``unknown_vendor`` — no vendor has the share's ``vendor_id``;
* ``inactive_vendor`` — the vendor is not active (``active`` is false or unknown);
* ``unknown_subject`` — the share names a user id no account has (or none): the company shared data about
  someone it cannot identify, so it can neither answer that person's requests nor prove the share was allowed
  (it is also the ``unknown_user`` problem below, as a dirty row).

Problems — a dirty row, counted and flagged, never dropped and never fatal:

* ``unknown_user`` — the share names a user id no account has (or none);
* ``unknown_category`` — the category is none of the seven categories of the privacy policy;
* ``record_count_invalid`` — the record count is missing, below 1, or not a whole number (:func:`whole_count`);
* ``shared_at_unreadable`` — ``shared_at`` is missing, ``infinity``, ``-infinity``, BC or after the year
  9999: no period holds it (such shares go to the vendor's ``undated`` manifest);
* ``opt_out_time_unknown`` — ``do_not_sell`` is set without ``do_not_sell_at``, so the opt-out rule cannot
  be judged for this share.

Comparisons are made by the database on the values it holds, so a ``deleted_at`` of ``-infinity`` still
counts as "deleted before every share". Each rule is one bit of an integer mask in the SQL; the bit order
is the order of :data:`VIOLATIONS` and :data:`PROBLEMS` and never changes (append only).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Sequence

from psycopg import sql

from include import operational_rows as reading
from include.addresses import comparable, comparable_sql
from include.datamap import CATEGORIES, DataMap

SERVICE_PROVIDER = "service_provider"
# The vendor kinds of the reference schema. A kind is read as written once trimmed and lower-cased (the address
# rule's trimming): ' Service_Provider' is a service provider, with the DPA rules of one; a kind outside this
# list is named among the vendor's problems and judged as not a service provider.
KINDS = (SERVICE_PROVIDER, "channel_partner", "consultant", "implementation_partner", "law_enforcement", "acquirer")


def kind_of(kind: str | None) -> str | None:
    """A vendor's kind as the rules read it: trimmed of white space and lower-cased (None stays None)."""
    return None if kind is None else comparable(kind)


def kind_problem(kind: str | None) -> str | None:
    """Why a vendor's kind is not one the rules know, or None."""
    if kind is None:
        return "kind is empty, so the vendor is judged as not a service provider"
    if kind_of(kind) not in KINDS:
        return f"kind {kind[:40]!r} is not one of {', '.join(KINDS)}, so the vendor is judged as not a service provider"
    return None

VIOLATIONS: tuple[str, ...] = (
    "category_not_allowed", "sp_without_dpa", "sp_dpa_after_share", "opted_out_to_non_sp", "child",
    "after_deletion", "while_restricted", "unknown_vendor", "inactive_vendor", "unknown_subject")
PROBLEMS: tuple[str, ...] = (
    "unknown_user", "unknown_category", "record_count_invalid", "shared_at_unreadable", "opt_out_time_unknown")

VIOLATION_TEXT = {
    "category_not_allowed": "a category the vendor is not allowed to receive",
    "sp_without_dpa": "a service provider without a signed DPA",
    "sp_dpa_after_share": "a service provider whose DPA was signed after the share",
    "opted_out_to_non_sp": "a user who had opted out of sale, to a vendor that is not a service provider",
    "child": "a child's data",
    "after_deletion": "after the account was deleted",
    "while_restricted": "while the account's processing was restricted",
    "unknown_vendor": "to a vendor id that no vendor has",
    "inactive_vendor": "to an inactive vendor",
    "unknown_subject": "about a user id that no account has (someone the company cannot identify)",
}
PROBLEM_TEXT = {
    "unknown_user": "names a user id that no account has",
    "unknown_category": "has a category outside the privacy policy's seven",
    "record_count_invalid": "has a missing, non-positive or fractional record count",
    "shared_at_unreadable": "has a shared_at no period can hold (missing, infinity, BC or after 9999)",
    "opt_out_time_unknown": "is of a user opted out of sale at an unknown time",
}


def names(mask: int, vocabulary: Sequence[str]) -> tuple[str, ...]:
    """The rule names of a bit mask, in the vocabulary's order."""
    return tuple(name for bit, name in enumerate(vocabulary) if mask >> bit & 1)


def mask(found: Sequence[str], vocabulary: Sequence[str]) -> int:
    return sum(1 << vocabulary.index(name) for name in found)


# -- the rules as pure functions (the reference the SQL is held to by a property test) ------------------

@dataclass(frozen=True)
class VendorFacts:
    kind: str | None
    dpa_signed_on: date | None
    allowed_categories: tuple[str, ...] | None
    active: bool | None


@dataclass(frozen=True)
class UserFacts:
    deleted_at: datetime | None
    do_not_sell: bool | None
    do_not_sell_at: datetime | None
    processing_restricted: bool | None
    child: bool = False


@dataclass(frozen=True)
class ShareFacts:
    category: str | None
    record_count: int | None
    shared_at: datetime | None  # None: missing (the SQL compares infinity and BC values as PostgreSQL orders them)


def judge(share: ShareFacts, vendor: VendorFacts | None, user: UserFacts | None, tz: tzinfo
          ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(violations, problems) of one share; ``vendor``/``user`` are None when no row has the share's id."""
    when = share.shared_at
    found: list[str] = []
    if vendor is not None:
        if share.category is None or share.category not in (vendor.allowed_categories or ()):
            found.append("category_not_allowed")
        if kind_of(vendor.kind) == SERVICE_PROVIDER and vendor.dpa_signed_on is None:
            found.append("sp_without_dpa")
        if (kind_of(vendor.kind) == SERVICE_PROVIDER and vendor.dpa_signed_on is not None and when is not None
                and vendor.dpa_signed_on > when.astimezone(tz).date()):
            found.append("sp_dpa_after_share")
    if user is not None:
        if (user.do_not_sell_at is not None and when is not None and user.do_not_sell_at < when
                and (vendor is None or kind_of(vendor.kind) != SERVICE_PROVIDER)):
            found.append("opted_out_to_non_sp")
        if user.child:
            found.append("child")
        if user.deleted_at is not None and when is not None and user.deleted_at < when:
            found.append("after_deletion")
        if user.processing_restricted:
            found.append("while_restricted")
    if vendor is None:
        found.append("unknown_vendor")
    elif vendor.active is not True:
        found.append("inactive_vendor")
    if user is None:
        found.append("unknown_subject")

    problems: list[str] = []
    if user is None:
        problems.append("unknown_user")
    if share.category not in CATEGORIES:
        problems.append("unknown_category")
    if share.record_count is None or share.record_count < 1:
        problems.append("record_count_invalid")
    if when is None:
        problems.append("shared_at_unreadable")
    if user is not None and user.do_not_sell and user.do_not_sell_at is None:
        problems.append("opt_out_time_unknown")
    return tuple(sorted(found, key=VIOLATIONS.index)), tuple(problems)


# -- the same rules in SQL -------------------------------------------------------------------------------

# The most digits of a record count read: a larger count is no plausible share, and a file's total of counts stays
# within the 64-bit integer its tally sums them in.
COUNT_DIGITS = 15


def whole_count(column: sql.Composable) -> sql.Composable:
    """SQL for a share's record count as a ``bigint``: an integer column's value as it is; from a column of another
    type (``numeric``, text: the data map lets types vary) a whole number (``3``, ``3.000``, `` 7 ``) of at most
    :data:`COUNT_DIGITS` digits, anything else (``2.5``, ``twelve``) NULL, which makes the row ``record_count_invalid``:
    read as it is, one such value failed the vendor's whole data file."""
    return sql.SQL(
        "(case when pg_typeof({c}) in ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) then {c}::bigint "
        "when btrim({c}::text) ~ {whole} then btrim({c}::text)::numeric::bigint end)").format(
        c=column, whole=sql.Literal(f"^[+-]?[0-9]{{1,{COUNT_DIGITS}}}([.]0*)?$"))


def _bits(conditions: dict[str, sql.Composable], vocabulary: Sequence[str]) -> sql.Composable:
    assert set(conditions) == set(vocabulary), "every rule needs its SQL"
    terms = [sql.SQL("(coalesce({}, false)::int << {})").format(conditions[name], sql.Literal(bit))
             for bit, name in enumerate(vocabulary)]
    return sql.SQL("(") + sql.SQL(" | ").join(terms) + sql.SQL(")")


def mask_columns(dm: DataMap) -> tuple[sql.Composable, sql.Composable]:
    """SQL for the violation and problem masks of a share aliased ``s``, joined (left) to its vendor ``v``,
    its account ``u`` and the ``children`` CTE as ``c``; needs the parameter ``%(tz)s``."""
    shares, vendors, accounts = dm.record("data_shares"), dm.record("vendors"), dm.record("accounts")

    def S(name):  # noqa: N802 - short column helpers keep the rules readable
        return sql.Identifier("s", shares.physical(name))

    def V(name):  # noqa: N802
        return sql.Identifier("v", vendors.physical(name))

    def U(name):  # noqa: N802
        return sql.Identifier("u", accounts.physical(name))

    # Codes as the text of their values: a column of an enum type (as an application's schema often makes a
    # category or a kind) has no = with text and no btrim, so compared as it is, every vendor's read failed.
    category, allowed = reading.as_text(S("category")), reading.as_text(V("allowed_categories"), array=True)
    sp = sql.Literal(SERVICE_PROVIDER)
    kind = comparable_sql(reading.as_text(V("kind")))  # the kind as kind_of reads it
    share_day = reading.local_day(S("shared_at"))
    violations = {
        "category_not_allowed": sql.SQL("{v_id} is not null and not coalesce({cat} = any({allowed}), false)").format(
            v_id=V("id"), cat=category, allowed=allowed),
        "sp_without_dpa": sql.SQL("{kind} = {sp} and {dpa} is null").format(
            kind=kind, sp=sp, dpa=V("dpa_signed_on")),
        # The DPA's day as it names it (a timestamptz: its day in the configured zone), against the share's day.
        "sp_dpa_after_share": sql.SQL("{kind} = {sp} and {dpa} > {day}").format(
            kind=kind, sp=sp, dpa=reading.day_of(V("dpa_signed_on")), day=share_day),
        "opted_out_to_non_sp": sql.SQL("{dns_at} < {at} and {kind} is distinct from {sp}").format(
            dns_at=U("do_not_sell_at"), at=S("shared_at"), kind=kind, sp=sp),
        "child": sql.SQL("c.user_id is not null"),
        "after_deletion": sql.SQL("{deleted} < {at}").format(deleted=U("deleted_at"), at=S("shared_at")),
        "while_restricted": U("processing_restricted"),
        "unknown_vendor": sql.SQL("{} is null").format(V("id")),
        "inactive_vendor": sql.SQL("{v_id} is not null and {active} is not true").format(
            v_id=V("id"), active=V("active")),
        "unknown_subject": sql.SQL("{} is null").format(U("id")),
    }
    problems = {
        "unknown_user": sql.SQL("{} is null").format(U("id")),
        "unknown_category": sql.SQL("{cat} is null or not ({cat} = any({known}::text[]))").format(
            cat=category, known=sql.Literal(sorted(CATEGORIES))),
        "record_count_invalid": sql.SQL("{n} is null or {n} < 1").format(n=whole_count(S("record_count"))),
        "shared_at_unreadable": sql.SQL("not coalesce({}, false)").format(reading.in_range(S("shared_at"))),
        "opt_out_time_unknown": sql.SQL("{dns} and {dns_at} is null").format(
            dns=U("do_not_sell"), dns_at=U("do_not_sell_at")),
    }
    return _bits(violations, VIOLATIONS), _bits(problems, PROBLEMS)
