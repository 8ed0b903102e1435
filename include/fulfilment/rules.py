"""What each privacy request asks the company to do, as pure functions: :func:`decide` takes a request as read
and says which action carries it out, or which outcome it gets without acting, and why.

The rights (docs/rules.md, "Request fulfilment"):

- GDPR Art. 15 access, Art. 20 portability, CCPA §1798.110 know → ``export``: a package of every mapped
  category's rows and the vendors the data was shared with over the last 12 months.
- GDPR Art. 17 erasure, CCPA §1798.105 delete → ``erase``: the erasure engine, with its guards.
- GDPR Art. 18 restriction → ``restrict``: ``processing_restricted`` on the account.
- CCPA §1798.120 opt out of sale → ``opt_out``: ``do_not_sell`` and ``do_not_sell_at`` on the account.
- GDPR Art. 16 rectification, Art. 21 objection → ``manual``: a person must judge and act; the record says what.

A request is acted on only when it is ``in_progress`` with its identity verified (or never asked for): a
request ``verifying``, or whose identity was requested and not yet verified, is ``skipped``. A date the database
holds but Python cannot, an implausible date (:func:`implausible_dates`: after the run's time, or a receipt
before the earliest plausible date, worded as deadline tracking words them), a regime or type the policy does not
know, or a type its regime does not grant, makes the request ``invalid`` with the reason. Nothing here reads
a database or the clock: the caller says what time it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from typing import Sequence

from include.deadline_rules import REGIME_TYPES, DeadlinePolicy, RequestFacts

EXPORT = "export"
ERASE = "erase"
RESTRICT = "restrict"
OPT_OUT = "opt_out"
MANUAL = "manual"
NONE = "none"

ACTIONS = {
    "access": EXPORT, "portability": EXPORT, "know": EXPORT,
    "erasure": ERASE, "delete": ERASE,
    "restriction": RESTRICT,
    "opt_out_of_sale": OPT_OUT,
    "rectification": MANUAL, "objection": MANUAL,
}

# Outcomes of compliance.dsr_fulfilments. A fulfilled request is never acted on again and is marked completed.
EXPORTED = "exported"
ERASED = "erased"
RESTRICTED = "restricted"
OPTED_OUT = "opted_out"
FULFILLED = (EXPORTED, ERASED, RESTRICTED, OPTED_OUT)
HELD = "held"
APPROVAL_REQUIRED = "approval_required"
SKIPPED = "skipped"
INVALID = "invalid"
NO_ACCOUNT = "no_account"
INCOMPLETE = "incomplete"  # erased everywhere but a file in a bucket the settings do not allow: a person must act
OUTCOMES = (*FULFILLED, HELD, APPROVAL_REQUIRED, MANUAL, SKIPPED, INVALID, NO_ACCOUNT, INCOMPLETE)

OPEN_STATUSES = ("in_progress", "verifying")  # what a run picks up (verifying: to say it is skipped)

# The default of the setting ``earliest_plausible_date`` (include/config.py), deadline tracking's own default.
EARLIEST_PLAUSIBLE = DeadlinePolicy.earliest
# The request's dates that are read, in the order they are checked and reported.
DATE_COLUMNS = ("received_at", "identity_requested_at", "identity_verified_at")

# What a person must do, per request type that needs one (recorded as the reason of a `manual` outcome).
MANUAL_STEPS = {
    "rectification": ("rectification (GDPR Art. 16) needs a person: check what the requester says is inaccurate or "
                      "incomplete, correct it in the source systems, tell the vendors it was shared with (Art. 19), "
                      "then mark the request completed"),
    "objection": ("objection (GDPR Art. 21) needs a person: stop the processing objected to unless compelling "
                  "legitimate grounds override it (never for direct marketing), answer the requester, then mark the "
                  "request completed"),
}


@dataclass(frozen=True)
class ChildPurge:
    """The earlier erasure of a request's account, from its record: the child-data purge's
    (``compliance.child_purges``), or the fulfilment's of request ``request_id`` (``compliance.dsr_fulfilments``);
    the run, and the day it erased the account in the configured zone."""

    run_id: str
    day: date
    request_id: int | None = None  # the erasure request a fulfilment carried out; None: the child-data purge
    # the subject's export packages that erasure kept to be handed over: (the request each answers, its last day)
    kept: tuple[tuple[int, date], ...] = ()
    # rows that erasure (the child-data purge's or a fulfilment's) kept, tied to the account by an address another
    # account also has: (table, rows)
    kept_rows: tuple[tuple[str, int], ...] = ()

    def erased(self) -> str:
        if self.request_id is not None:
            return (f"the account and its data were erased by the fulfilment of request {self.request_id} "
                    f"(run {self.run_id}) on {self.day}")
        return f"the account and its data were erased by the child-data purge run {self.run_id} on {self.day}"


def kept_rows_words(rows: Sequence[tuple[str, int]]) -> str:
    """The rows an earlier erasure kept as tied to the account by an address another account also has (a family's
    address), in words: (table, rows) each; '' for none."""
    if not rows:
        return ""
    return ("the rows tied to the account by an address another account also has, which that erasure kept ("
            + ", ".join(f"{table}={n}" for table, n in sorted(rows)) + ")")


def kept_words(kept: Sequence[tuple[int, date]]) -> str:
    """The export packages an erasure kept to be handed over, in words: (request, last day) each; '' for none."""
    return ", ".join(f"the export package answering request {rid}, kept to be handed over until {until}"
                     for rid, until in sorted(kept))


@dataclass(frozen=True)
class Decision:
    action: str                 # export, erase, restrict, opt_out, manual, none
    outcome: str | None = None  # None: act on it; else the outcome it gets without acting
    reason: str | None = None

    @property
    def acts(self) -> bool:
        return self.outcome is None


def action_for(request_type: str | None) -> str:
    return ACTIONS.get(request_type or "", NONE)


def _in_zone(ts: datetime, tz: tzinfo) -> datetime:
    try:
        return ts.astimezone(tz)
    except OverflowError:  # within hours of year 1 or 9999: the zone's time does not exist, UTC's does
        return ts.astimezone(timezone.utc)


def _local_date(ts: datetime, tz: tzinfo) -> date:
    return _in_zone(ts, tz).date()


def _shown(ts: datetime, tz: tzinfo) -> str:
    return _in_zone(ts, tz).isoformat(sep=" ", timespec="seconds")


def implausible_dates(request: RequestFacts, now: datetime, earliest: date = EARLIEST_PLAUSIBLE,
                      tz: tzinfo = timezone.utc) -> list[str]:
    """Dates no real request can have (the rule "one bad row never stops the others"; deadline tracking's
    ``_implausible_dates`` and ``_order_problems``), one sentence each, starting with the column's name: a date
    after ``now`` (the time the run decides: nothing can be received or verified later than that, and a request
    is never acted on before its identity was verified), a receipt whose calendar date in ``tz`` is before
    ``earliest`` (the setting ``earliest_plausible_date``: a placeholder or a typo), and an identity step before
    the receipt, or a verification before its request. A date the reader could not read is None
    here: its own sentence is in ``request.read_problems``. A sentence never contains ``now``, so the same row gets
    the same reason on every run."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now has no time zone")
    problems = []
    for column in DATE_COLUMNS:
        value = getattr(request, column)
        if value is not None and value > now:
            problems.append(f"{column} {_shown(value, tz)} is in the future (after the time of this run)")
    received = request.received_at
    if received is not None and received <= now and _local_date(received, tz) < earliest:
        problems.append(f"received_at {_local_date(received, tz)} is before the earliest plausible date {earliest}")
    # Out of order, in deadline tracking's words: nothing can happen to a request before it was received.
    requested, verified = request.identity_requested_at, request.identity_verified_at
    for column, value in (("identity_requested_at", requested), ("identity_verified_at", verified)):
        if value is not None and received is not None and value < received:
            problems.append(f"{column} is before received_at")
    if requested is not None and verified is not None and verified < requested:
        problems.append("identity_verified_at is before identity_requested_at")
    return problems


def decide(request: RequestFacts, account_exists: bool, *, now: datetime, earliest: date = EARLIEST_PLAUSIBLE,
           tz: tzinfo = timezone.utc, purged: ChildPurge | None = None) -> Decision:
    """The action that fulfils ``request``, or its outcome without acting (see the module doc), in this order:
    unreadable and implausible dates (every one, as of ``now``, ``earliest`` and ``tz``: see
    :func:`implausible_dates`), regime, type, type under its regime, identity, then the account. ``purged``: the
    child-data purge or fulfilment erasure that erased the request's account (the one it names, or whose link that
    erasure removed from it), if one did; its run and day are then the reason, and an erasure it left nothing of is
    ``erased``."""
    action = action_for(request.request_type)
    dates = [*request.read_problems, *implausible_dates(request, now, earliest, tz)]
    if dates:
        return Decision(action, INVALID, "; ".join(dates))
    regime, rtype = request.regime, request.request_type
    if regime not in REGIME_TYPES:
        return Decision(action, INVALID, f"unknown regime {regime!r} (known: {', '.join(sorted(REGIME_TYPES))})")
    if rtype not in ACTIONS:
        return Decision(action, INVALID, f"unknown request type {rtype!r} (known: {', '.join(ACTIONS)})")
    if rtype not in REGIME_TYPES[regime]:
        return Decision(action, INVALID, f"{rtype!r} is not a right under {regime.upper()} (its types: "
                                         f"{', '.join(sorted(REGIME_TYPES[regime]))}): correct the regime or the type")
    if request.status == "verifying" or (request.identity_requested_at is not None
                                         and request.identity_verified_at is None):
        return Decision(action, SKIPPED, "awaiting identity verification: nothing is done until the requester's "
                                         "identity is verified")
    if action == MANUAL:
        return Decision(action, MANUAL, MANUAL_STEPS[rtype])
    if purged is not None and (request.user_id is None or not account_exists):
        return _after_purge(action, purged, unlinked=request.user_id is None)
    if request.user_id is None:
        return Decision(action, NO_ACCOUNT, "the request names no account (user_id is empty): match the requester to "
                                            "an account and set user_id, or answer that no data is held")
    if not account_exists and action != ERASE:  # the plan looks at what is held of the id (account_gone)
        return Decision(action, NO_ACCOUNT, f"account {request.user_id} does not exist (erased, or never existed): "
                                            "check the request's user_id, or answer that no data is held")
    return Decision(action)


def account_gone(action: str, user_id: int, held: str) -> Decision:
    """A request naming account ``user_id``, which does not exist, with no earlier erasure of it known: ``held`` says
    what of its id is still held (rows per table where the data map names them, beside the privacy requests naming
    it; for an erasure, export packages too), '' nothing. Nothing held: ``no_account``, as any request naming no
    account (erasing would only redact the requests' own rows, and the record would say the requester's data was
    erased). Else an erasure erases it, and the reason says why; any other request still names no account (an export,
    a restriction, an opt-out need one), and its reason names what is held and what a person does with it: never
    "answer that no data is held"."""
    gone = f"account {user_id} does not exist (erased, or never existed)"
    if not held:
        return Decision(action, NO_ACCOUNT, f"{gone} and nothing the data map names carries its id: check the "
                                            "request's user_id, or answer that no data is held")
    if action == ERASE:
        return Decision(action, None, f"{gone} but data of its id is still held ({held})")
    return Decision(action, NO_ACCOUNT, f"{gone} but data of its id is still held ({held}): with no account, "
                                        f"{_BY_HAND.get(action, 'a person acts on that data')}; an erasure request "
                                        "erases it")


# What a person does by hand for a request whose account is gone and whose data is still held.
_BY_HAND = {EXPORT: "no package is made: a person answers with that data, read by the id (privacy-ops right-to-know "
                    "lists its shares)",
            RESTRICT: "a person restricts the processing of that data by hand",
            OPT_OUT: "a person keeps that data from being sold"}


def _after_purge(action: str, purged: ChildPurge, *, unlinked: bool) -> Decision:
    """A request whose account the child-data purge (or an earlier fulfilment's erasure) erased. An erasure: done
    already when that erasure also removed the request's link (``unlinked``: nothing carries the account id), else
    the engine erases what still carries it (this request's own row, at least) and the record names the earlier
    erasure. Anything else: no data is held."""
    kept = kept_words(purged.kept)
    if action == ERASE:
        if unlinked:  # what that erasure left held: rows of a shared address, packages kept to be handed over
            held = " and ".join(w for w in (kept_rows_words(purged.kept_rows), kept) if w)
            return Decision(action, ERASED, f"{purged.erased()}: nothing was left to erase"
                                            f"{f' but {held}' if held else ''}")
        return Decision(action)
    if kept:
        return Decision(action, NO_ACCOUNT, f"nothing is held but {kept}: {purged.erased()}; answer that nothing "
                                            f"else is held and that it was erased on {purged.day}")
    return Decision(action, NO_ACCOUNT, f"nothing is held: {purged.erased()}; answer that no data is held and "
                                        f"that it was erased on {purged.day}")
