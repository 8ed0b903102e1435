"""The campaign ledger as the delivery engine sees it: claim a batch, mark it, and nothing else.

:func:`include.delivery.engine.deliver` opens one transaction per Mail Send request. Inside it,
:meth:`CampaignLedger.claim` locks the next pending rows in ``seq`` order (``FOR UPDATE SKIP LOCKED``, so
parallel senders and concurrent runs take disjoint batches), reads each recipient's address from the
operational database and checks it again — an account deleted or erased, an address suppressed, a child
flagged since the campaign was built, a child account holding the row's address now besides its own accounts
makes that row ``skipped`` with the reason — and renders the payload. A row whose accounts hold another address
now goes to that address, checked as the build checks one, once: the row takes the new address's keyed hash
(``readdressed_from`` keeps the old one), so the primary key still keeps one row per address, and when the new
address already has a row of its own the person is told through that row (one skipped or failed, through which
nothing reached the address, gives its key up to the moving row). An account that leaves an address the other
accounts of its row keep gets a row of its own, added to the ledger by the claim, and goes to its new address the
same way. ``mark_sent`` / ``mark_failed`` update the rows and the campaign's counters
in the same transaction, which the engine commits with the audit entry.

Before the request leaves, the claim writes a ``notification_batches`` row on a second connection,
committed at once, naming the claiming transaction. If that transaction commits, it marked the row sent
or failed; if the sender dies between the send and the commit (SIGKILL, a lost worker, a timeout), the
row stays ``in_flight`` with a transaction that no longer runs: its recipients are pending again and the
next sender re-sends them — at most that one request — and the summary counts them as duplicates at risk.
"""
from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, Collection, Mapping, Sequence

import psycopg
from psycopg import sql

from include.addresses import comparable, comparable_sql, mailbox, sendable, sending_problem
from include.audit import RunContext
from include.child_detection import caught_column, reported_accounts_cte, verdict_column_names
from include.datamap import DataMap
from include.campaign.messages import Renderer, common_name, display_name
from include.campaign.params import TEST
from include.campaign.recipients import CHILD_REASON, PURGED_CHILD
from include.delivery.engine import Batch
from include.delivery.sendgrid_mailer import SendGridError, SendGridRejected
from include.operational_rows import as_text

log = logging.getLogger("include.campaign")

LEDGER_NAME = "policy_change"
GONE = "account deleted or erased since the campaign was built"
ADDRESS_CHANGED = "address changed since the campaign was built"
# Each begins with ADDRESS_CHANGED, then says why after a semicolon.
NO_ADDRESS_NOW = f"{ADDRESS_CHANGED}; the account holds none now"
TOLD_IN_ANOTHER_ROW = f"{ADDRESS_CHANGED}; the new address is told in its own row of the campaign"
# A row going to its own address, which a child account (none of the row's) holds now: the build skips such an address.
CHILD_HOLDS_NOW = f"{CHILD_REASON}: a child account holds the address now, besides the row's own"
NOT_A_TEST_RECIPIENT = "not among this run's test_recipients"
SUPPRESSED_NOW = "suppressed since the campaign was built"
NO_REASON = "no reason given"
# The key of a row added for accounts that left their row's address, until it takes their new address's (no address
# hashes to it): "splitting:<seq>".
SPLITTING = "splitting:"
# The key of a skipped or failed row whose address an account took since, and which a row moving to it took:
# "superseded:<seq>".
SUPERSEDED = "superseded:"

# One window of the ledger at a time: with a bound on seq, the planner walks the (campaign_id, seq) index
# whatever its statistics say. Without it, once an ANALYZE has seen (almost) no pending rows — a resumed or
# nearly finished campaign — it estimates one match and prefers reading the whole table and sorting it,
# for every batch: at a million rows that is ~0.15 s a claim.
CLAIM_SQL = """
select seq, recipient, user_ids, ctid::text, (select pg_current_xact_id()) from compliance.notification_deliveries
where campaign_id = %(campaign)s and seq > %(after)s and seq <= %(upto)s and state = 'pending'
order by seq
limit %(limit)s
for update skip locked
"""
CLAIM_WINDOW = 10_000  # seq numbers one claim query examines (at least 4 batches' worth)
# How long a re-key waits for another sender's uncommitted key before it leaves its row for a later claim: that
# sender holds the key until its request is answered and marked, so waiting longer only holds this one too.
REKEY_LOCK_TIMEOUT = "10ms"

# Lists of a batch's ids or row addresses go to the server as one joined string and are split there
# (string_to_array): psycopg dumps a list of 1,000 values element by element in Python. (A reason may hold
# any character, so reasons stay a list.)
_SKIP = """
update compliance.notification_deliveries d
set state = 'skipped', reason = k.reason, finished_at = %(now)s, skipped_by_run = %(run)s
from unnest(string_to_array(%(tids)s, ';')::tid[], %(reasons)b::text[]) as k(tid, reason)
where d.ctid = k.tid and d.campaign_id = %(campaign)s and d.state = 'pending'
"""

# ``added``: rows this sender added to the ledger (an account that left its row's address: CampaignLedger._split).
_COUNTERS = """
update compliance.notification_campaigns
set sent = sent + %(sent)s, failed = failed + %(failed)s, skipped = skipped + %(skipped)s, total = total + %(added)s,
    pending = pending + %(added)s - %(sent)s - %(failed)s - %(skipped)s, updated_at = %(now)s
where id = %(campaign)s
returning total, sent, failed, skipped, pending"""

# The batch's rows, its notification_batches row and the campaign's counters, marked in one statement; the
# rows marked are counted back, and the caller rolls the whole back unless it is all of them.
_FINISH = """
with marked as (
    update compliance.notification_deliveries d
    set state = %(state)s, message_id = %(message_id)s, batch_id = %(batch)s, attempts = d.attempts + %(attempts)s,
        reason = %(reason)s, finished_at = %(now)s
    where d.ctid = any(string_to_array(%(tids)s, ';')::tid[]) and d.campaign_id = %(campaign)s and d.state = 'pending'
    returning 1
), request as (
    update compliance.notification_batches
    set state = %(state)s, message_id = %(message_id)s, http_attempts = %(attempts)s, reason = %(reason)s,
        finished_at = %(now)s
    where id = %(batch)s
    returning 1
)""" + _COUNTERS + ", (select count(*) from marked), (select count(*) from request)"


# Pending rows no live request carries: the counter, less the rows of requests whose claiming transaction runs.
_LEFT = """
select c.pending - coalesce((select sum(b.size) from compliance.notification_batches b
                             where b.campaign_id = c.id and b.state = 'in_flight'
                               and pg_xact_status(b.xact) = 'in progress'), 0)
from compliance.notification_campaigns c where c.id = %(campaign)s"""

# A claimed row to send now: (its physical address in the ledger, seq, the address, the greeting's name or None).
Sending = tuple[str, int, str, "str | None"]


def _suppression_reason(supp, key: sql.Composable) -> sql.Composable:
    """Why the address whose comparable form (the address rule, :func:`include.addresses.comparable`) is ``key`` is
    suppressed, or null: a probe of the suppressions' index on that same expression
    (:func:`include.addresses.comparable_sql`), so a suppression stored with a tab, a line break or a no-break space
    at an end is found like any other. The reason is read as the text of its label (a reason of an enum type refused
    the fallback's text)."""
    return sql.SQL("(select coalesce(min({r}), {none}) from {t} s where {k} = {key} having count(*) > 0)").format(
        r=as_text(sql.Identifier("s", supp.physical("reason"))), k=comparable_sql(sql.Identifier("s", supp.physical("email"))),
        none=sql.Literal(NO_REASON), t=supp.ident, key=key)


def spellings(address: str) -> set[str]:
    """The comparable forms (:func:`include.addresses.comparable`) of the spellings of ``address`` that name one mailbox
    to SendGrid: itself, and for an internationalised domain its Unicode form, composed and decomposed (NFC, NFD),
    and its ASCII form (one element for nearly every address)."""
    unicode = comparable(mailbox(address))
    return {comparable(address), unicode, unicodedata.normalize("NFD", unicode), comparable(sendable(address))}


def recipients_taken(store, campaign_id: int, run_id: str, sender: str, *, after_batch: int = 0) -> int:
    """The recipients this run's ``sender`` has already sent or failed, over all its attempts since the batch
    ``after_batch`` (the newest when its plan was made): a retried attempt gets the same plan, and its share of
    ``max_recipients`` is what the earlier attempts left of it."""
    return store.execute("""select coalesce(sum(size), 0) from compliance.notification_batches
                            where campaign_id = %s and run_id = %s and sender = %s and state in ('sent', 'failed')
                              and id > %s""",
                         (campaign_id, run_id, sender, after_batch)).fetchone()[0]


def run_taken(store, campaign_id: int, run_id: str) -> tuple[int, int]:
    """(the recipients this run has sent or failed so far, by every sender of every earlier plan; the newest batch
    of the campaign): what a plan made again (the run cleared and run again) takes off ``max_recipients``, and
    where its senders start counting their own."""
    taken, newest = store.execute(
        """select coalesce(sum(size) filter (where run_id = %s and state in ('sent', 'failed')), 0), coalesce(max(id), 0)
           from compliance.notification_batches where campaign_id = %s""", (run_id, campaign_id)).fetchone()
    return int(taken), int(newest)


def lane_bounds(last_seq: int, lane: int, lanes: int) -> tuple[int, int]:
    """Sender ``lane`` of ``lanes``: the seq numbers past the first and up to the second are its own to walk."""
    return last_seq * lane // lanes, last_seq * (lane + 1) // lanes


@dataclass(frozen=True)
class LedgerLinks:
    """Where a sender's ledger reads and records: the operational database and its data map, the second store
    connection (a request is recorded there before it leaves), the run's audit context."""

    ops: Any
    dm: DataMap
    side: Any
    ctx: RunContext


@dataclass(frozen=True)
class Audience:
    """Whom a campaign is for and what they get: its id and scope, the message renderer, the address hasher, the
    day the child rules are applied on (a live campaign), the time zone, a test run's addresses by keyed hash."""

    campaign_id: int
    scope: str
    renderer: Renderer
    hasher: Callable[[str], str]
    as_of: date | None = None
    tz: str = "UTC"
    test_addresses: Mapping[str, str] | None = None
    # The keyed hash of an address as it is spelt (include.subjects.address_hasher): a purged child's address is
    # recorded so, and an address an account takes mid-campaign is looked up among them under this spelling too.
    spelt_hasher: Callable[[str], str] | None = None


@dataclass(frozen=True)
class SenderShare:
    """One sender's part of the work: its name, the batch size, its share of the cap (``budget``), its lane of
    ``lanes`` and the claim window."""

    sender: str
    batch_size: int
    budget: int | None = None
    lane: int = 0
    lanes: int = 1
    window: int = CLAIM_WINDOW


class _KeyBusy(Exception):
    """Another sender is moving a row to or from the key a row of this batch would take (see ``_set_key``)."""


class CampaignLedger:
    """One sender's view of one campaign's ledger, for :func:`include.delivery.engine.deliver`.

    ``budget`` caps the rows this sender sends or fails (its share of ``max_recipients``); ``test_addresses``
    maps the keyed hash of each of a test run's addresses to the address (a test campaign has no accounts).

    ``lane`` of ``lanes``: parallel senders each walk their own stretch of the ledger (sender 1 of 4 its second
    quarter), so none scans past rows another has just locked or sent. A sender whose lane is done walks the
    whole ledger once more only when rows are pending outside every live request (a slower lane, a dead sender's
    rows); otherwise it stops.
    """

    name = LEDGER_NAME

    def __init__(self, links: "LedgerLinks", audience: "Audience", share: "SenderShare", *,
                 progress_every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        campaign_id, scope, renderer, hasher = audience.campaign_id, audience.scope, audience.renderer, audience.hasher
        as_of, tz, test_addresses = audience.as_of, audience.tz, audience.test_addresses
        sender, batch_size, budget, window = share.sender, share.batch_size, share.budget, share.window
        lane, lanes = share.lane, share.lanes
        if scope != TEST and as_of is None:
            # The child rules are applied on a day: without one they would catch nobody, silently.
            raise ValueError("a live campaign's ledger needs as_of, the day the child rules are applied on")
        self.campaign_id, self.scope, self.renderer = campaign_id, scope, renderer
        self.ops, self.dm, self.side, self.hasher, self.ctx = links.ops, links.dm, links.side, hasher, links.ctx
        self.sender, self.batch_size, self.budget = sender, batch_size, budget
        self.as_of, self.tz, self.test_addresses = as_of, tz, dict(test_addresses or {})
        self.spelt_hasher = audience.spelt_hasher
        self._moves: dict[str, tuple[str, list[int]]] = {}  # a claimed row going to a new address: tid -> (hash, ids)
        # Accounts leaving their claimed row's address for one of their own, to get a row of their own: a stand-in tid
        # ("split:<seq>:<n>") -> (the seq of the row they leave, their ids), until _split adds the rows.
        self._splits: dict[str, tuple[int, list[int]]] = {}
        self._added_uncounted = 0  # rows added to the ledger in this transaction, not yet in the campaign's counters
        # Claimed rows moving to an address another sender holds the row of or re-keys rows to: left pending, by seq.
        self._later: set[int] = set()
        self._accounts_sql: bytes | None = None
        self._lock_timeout: str | None = None  # the connection's own lock_timeout, set again after each re-key
        if not 0 <= lane < max(lanes, 1):
            raise ValueError(f"lane {lane} of {lanes}: a lane is 0 to lanes - 1")
        self.lane, self.lanes = lane, max(lanes, 1)
        self.after = 0  # the watermark: the next claim starts past it ...
        self._end = 0   # ... and walks up to this seq; then the next of these (after, end) ranges
        self._ranges: list[tuple[int, int]] = []
        self._stop = 0  # where this sender's lane ends
        self.walked = 0  # seq numbers this sender has walked past (the ledger's length, for one pass)
        self.window = max(window, 4 * batch_size)
        self._last_seq: int | None = None
        self.skipped = 0  # rows this sender skipped (committed or about to be)
        self._skipped_uncounted = 0
        self._batch_id: int | None = None
        self._tids = ""  # the claimed rows' physical addresses, ';'-separated
        self._xact = None  # the claiming transaction's id
        self._http_attempts = 1
        self._progress_every, self._clock = progress_every, clock
        self._started = self._last_progress = clock()
        self._sent = 0

    # -- the Ledger protocol -----------------------------------------------------------------------

    def pending(self, conn) -> int:
        row = conn.execute("select pending from compliance.notification_campaigns where id = %s",
                           (self.campaign_id,)).fetchone()
        return row[0] if row else 0

    def claim(self, conn) -> Batch | None:
        """Lock the next pending rows, skip those no longer eligible, return the rest as one request."""
        walked_all = False
        while True:
            limit = self.batch_size if self.budget is None else min(self.batch_size, self.budget)
            rows = self._pending_rows(conn, limit) if limit > 0 else []
            if not rows:
                if not walked_all and limit > 0 and self._left_to_others(conn) > 0:
                    # Rows outside every live request are still pending: a lane not finished (or whose sender
                    # died), or rows another sender held and let go. Once, the whole ledger past this lane.
                    # (Rows added since this sender started lie past the end it read then.)
                    self._last_seq = conn.execute("select coalesce(max(seq), 0) from compliance.notification_deliveries"
                                                  " where campaign_id = %s", (self.campaign_id,)).fetchone()[0]
                    walked_all, self._ranges = True, [(self._stop, self._last_seq), (0, self._stop)]
                    self.after = self._end = 0
                    continue
                self._count_skips(conn)
                return None
            # A row's physical address is stable while this transaction holds its lock: marks go straight to it.
            sending, skips = self.decide(rows)
            if self._splits:
                rows, sending, skips = self._split(conn, rows, sending, skips)
            if self._moves:
                sending, skips = self._readdress(conn, rows, sending, skips)
            if len(sending) > limit:
                # Rows added for accounts that left a shared address, past a full request (or this sender's share of
                # max_recipients): pending at their new address for a later claim.
                sending = sorted(sending, key=lambda entry: entry[1] > self._last_seq)[:limit]
            if skips:
                conn.execute(_SKIP, {"campaign": self.campaign_id, "tids": ";".join(tid for tid, _ in skips),
                                     "reasons": [reason for _, reason in skips], "now": self.ctx.now(),
                                     "run": self.ctx.run_id})
                self.skipped += len(skips)
                self._skipped_uncounted += len(skips)
            if sending:
                return self._batch(conn, sending, skipped=len(skips))

    def _left_to_others(self, conn) -> int:
        """Pending rows of the campaign that no live request carries (read when this sender's lane is done).

        The campaign's ``pending`` counter, less this transaction's skips not yet counted, less the rows of
        every request in flight whose transaction still runs. More than 0: somebody must still walk to them.
        0: every row left is in a request a live sender is making (if it fails, its task's retry or the next
        run sends them), and this sender stops without reading the rest of the ledger.
        """
        return (conn.execute(_LEFT, {"campaign": self.campaign_id}).fetchone()[0] - self._skipped_uncounted
                + self._added_uncounted)

    def _pending_rows(self, conn, limit: int) -> list[tuple]:
        """Up to ``limit`` pending rows past the watermark, locked, in seq order, window by window through this
        sender's lane (then, once, through the ranges :meth:`claim` gives it).

        Rows another sender holds are passed over (SKIP LOCKED), and the watermark moves past them.
        """
        if self._last_seq is None:
            self._last_seq = conn.execute("select coalesce(max(seq), 0) from compliance.notification_deliveries "
                                          "where campaign_id = %s", (self.campaign_id,)).fetchone()[0]
            self.after, self._stop = lane_bounds(self._last_seq, self.lane, self.lanes)
            self._end = self._stop
        rows: list[tuple] = []
        while len(rows) < limit:
            if self.after >= self._end:
                if not self._ranges:
                    break
                self.after, self._end = self._ranges.pop(0)
                continue
            upto = min(self.after + self.window, self._end)
            found = conn.execute(CLAIM_SQL, {"campaign": self.campaign_id, "after": self.after, "upto": upto,
                                             "limit": limit - len(rows)}).fetchall()
            if found:
                self._xact = found[0][4]
            rows += found
            moved_to = found[-1][0] if len(rows) == limit else upto
            self.walked += moved_to - self.after
            self.after = moved_to
        return rows

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None:
        self._finish(conn, batch, state="sent", message_id=message_id, reason=None, now=sent_at)

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None:
        self._finish(conn, batch, state="failed", message_id=None, reason=reason, now=self.ctx.now())

    # -- what the engine's mailer is wrapped in ------------------------------------------------------

    def recording(self, mailer) -> "_RecordingMailer":
        """``mailer``, telling this ledger how each request ended (the HTTP attempts, a definite refusal)."""
        return _RecordingMailer(mailer, self)

    # -- eligibility at send time --------------------------------------------------------------------

    def decide(self, rows: Sequence[tuple]) -> tuple[list[Sending], list[tuple[str, str]]]:
        """Claimed rows ``(seq, recipient, user_ids, tid, xact)`` split into those to send now — ``(tid, seq, address,
        greeting name)`` — and those skipped now, ``(tid, reason)``, in claim order."""
        self._splits = {}
        if self.scope == TEST:
            chosen, skips = [], []
            for seq, recipient, _, tid, _ in rows:
                address = self.test_addresses.get(recipient)
                if address is None:
                    skips.append((tid, NOT_A_TEST_RECIPIENT))
                else:
                    chosen.append((tid, seq, address, None, None))
            chosen = self._suppressed_as_spelt(chosen, every=True)
        else:
            chosen, skips = self._live_holders(rows)
            chosen = self._suppressed_as_spelt(chosen, every=False)
        sending, moves = [], self._moves
        for tid, seq, address, name, suppression in chosen:
            if tid in moves:  # a new address: the build never checked it
                if suppression is not None:
                    skips.append((tid, f"{ADDRESS_CHANGED}; the new address is suppressed ({suppression})"))
                elif problem := sending_problem(address):
                    skips.append((tid, f"{ADDRESS_CHANGED}; the new address is invalid: {problem}"))
                else:
                    sending.append((tid, seq, address.strip(), name))
                continue
            if suppression is not None:
                skips.append((tid, f"{SUPPRESSED_NOW} ({suppression})"))
            elif not address.isascii() and (problem := sending_problem(address)):
                skips.append((tid, f"invalid address: {problem}"))
            else:
                sending.append((tid, seq, address.strip(), name))
        if moves:
            going = {tid for tid, _, _, _ in sending}
            self._moves = {tid: move for tid, move in moves.items() if tid in going}
        return sending, skips

    def _live_holders(self, rows) -> tuple[list[tuple], list[tuple[str, str]]]:
        """Each row's address, greeting name and suppression (or None) from its accounts as they are now, or why
        it is skipped.

        The address is the first holder's spelling (accounts in the row's order: lowest id first); the greeting
        is the holders' one name, or none when they have several.
        """
        accounts = self._accounts({uid for row in rows for uid in row[2]})
        hasher, chosen, skips = self.hasher, [], []
        self._moves = {}
        staying: dict[str, tuple[str, Sequence[int]]] = {}  # rows going to their own address: tid -> (it, accounts)
        known: set[int] = set()  # accounts holding their own row's address (so no other row's)
        for seq, recipient, user_ids, tid, _ in rows:
            if len(user_ids) == 1:  # most rows: one account holds the address
                account = accounts.get(user_ids[0])
                if account is None or account[2]:
                    skips.append((tid, GONE))
                elif account[0] is None or hasher(account[0]) != recipient:
                    self._moved(tid, seq, {user_ids[0]: account}, chosen, skips)
                elif account[3]:
                    skips.append((tid, CHILD_REASON))
                else:
                    chosen.append((tid, seq, account[0], display_name(account[1]), account[4]))
                    staying[tid] = (account[0], user_ids)
                    known.add(user_ids[0])
                continue
            live = {uid: accounts[uid] for uid in user_ids if uid in accounts and not accounts[uid][2]}
            holding = {uid: a for uid, a in live.items() if a[0] is not None and hasher(a[0]) == recipient}
            holders = list(holding.values())
            if not live:
                skips.append((tid, GONE))
                continue
            if not holders:
                self._moved(tid, seq, live, chosen, skips)
                continue
            leaving = {uid: a for uid, a in live.items()
                       if a[0] is not None and a[0].strip() and hasher(a[0]) != recipient}
            if leaving:  # accounts that left the address the others keep: each told where it is now, on its own
                self._split_off(seq, leaving, chosen, skips)
                live = {uid: a for uid, a in live.items() if uid not in leaving}
            if any(a[3] for a in live.values()):
                skips.append((tid, CHILD_REASON))
            else:
                chosen.append((tid, seq, holders[0][0], common_name(a[1] for a in holders), holders[0][4]))
                staying[tid] = (holders[0][0], user_ids)
                known.update(holding)
        # An address a child took since the build (no account of its row): skipped, as the build skips it.
        if held := self._children_hold(staying, known=known):
            skips += [(tid, CHILD_HOLDS_NOW) for tid, *_ in chosen if tid in held]
            chosen = [entry for entry in chosen if entry[0] not in held]
        return chosen, skips

    def _moved(self, tid: str, seq: int, live: Mapping[int, tuple], chosen: list, skips: list) -> None:
        """A row none of whose live accounts (``id -> account``, lowest id first) holds its address any more: to the
        address they hold now when they hold one (it is checked like the rest, then :meth:`_readdress` gives the row
        that address's hash), or skipped with why not. When they hold different addresses now, the row goes to the
        lowest id's, and the accounts holding others get rows of their own (:meth:`_split_off`)."""
        now = {uid: a for uid, a in live.items() if a[0] is not None and a[0].strip()}
        groups = self._by_address(now)
        if not groups:
            skips.append((tid, CHILD_REASON if any(a[3] for a in live.values()) else NO_ADDRESS_NOW))
            return
        (key, group), *others = groups.items()
        if others:
            self._split_off(seq, {uid: a for _, other in others for uid, a in other.items()}, chosen, skips)
        if any(a[3] for uid, a in live.items() if uid in group or uid not in now):
            skips.append((tid, CHILD_REASON))
            return
        first = next(iter(group.values()))
        self._moves[tid] = (key, sorted(group))
        chosen.append((tid, seq, first[0], common_name(a[1] for a in group.values()), first[4]))

    def _by_address(self, accounts: Mapping[int, tuple]) -> dict[str, dict[int, tuple]]:
        """``accounts`` (with an address, lowest id first) by the keyed hash of the address each holds now, the
        addresses in the order of their lowest account id."""
        groups: dict[str, dict[int, tuple]] = {}
        for uid, account in accounts.items():
            groups.setdefault(self.hasher(account[0]), {})[uid] = account
        return groups

    def _split_off(self, seq: int, leaving: Mapping[int, tuple], chosen: list, skips: list) -> None:
        """Accounts of the claimed row ``seq`` that hold another address than the row goes to now (``id -> account``,
        lowest id first): one stand-in per address they hold, for a row of their own that :meth:`_split` adds to the
        ledger; checked like any address that changed (a child among them: skipped as a child)."""
        for n, (key, group) in enumerate(self._by_address(leaving).items()):
            stand_in = f"split:{seq}:{n}"
            self._splits[stand_in] = (seq, sorted(group))
            if any(a[3] for a in group.values()):
                skips.append((stand_in, CHILD_REASON))
                continue
            first = next(iter(group.values()))
            self._moves[stand_in] = (key, sorted(group))
            chosen.append((stand_in, None, first[0], common_name(a[1] for a in group.values()), first[4]))

    def _split(self, conn, rows: list[tuple], sending: list[Sending],
               skips: list[tuple[str, str]]) -> tuple[list[tuple], list[Sending], list[tuple[str, str]]]:
        """Add a ledger row for each stand-in of :meth:`_split_off`: pending, its accounts, ``readdressed_from`` the key
        of the row they left, a key no address has (:data:`SPLITTING`) until :meth:`_readdress` gives it theirs; the
        rows they left keep the other accounts. Returns ``rows``, ``sending`` and ``skips`` with the added rows in them
        and every physical address as it is now.

        New rows take the seq numbers after the ledger's last, under a transaction-scoped advisory lock per campaign,
        taken without waiting: while another sender holds it (it is adding rows in a request not yet committed),
        the rows whose accounts leave are left pending, neither sent nor skipped, for a later claim."""
        splits, self._splits = self._splits, {}
        by_seq = {row[0]: row for row in rows}
        origins = {origin for origin, _ in splits.values()}
        if not conn.execute("select pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                            (f"{LEDGER_NAME} campaign {self.campaign_id} rows added",)).fetchone()[0]:
            dropped = set(splits) | {by_seq[origin][3] for origin in origins}
            self._moves = {tid: move for tid, move in self._moves.items() if tid not in dropped}
            log.info("campaign %d: %d row(s) some of whose accounts left the address for another left pending for a "
                     "later claim: another sender is adding rows to the ledger", self.campaign_id, len(origins))
            return (rows, [entry for entry in sending if entry[0] not in dropped],
                    [entry for entry in skips if entry[0] not in dropped])
        last = conn.execute("select coalesce(max(seq), 0) from compliance.notification_deliveries "
                            "where campaign_id = %s", (self.campaign_id,)).fetchone()[0]
        where: dict[str, tuple[str, int | None]] = {}  # a stand-in or an updated row's old physical address -> now
        left: dict[int, list[int]] = {}
        for stand_in, (origin, ids) in splits.items():
            last += 1
            tid = conn.execute("""insert into compliance.notification_deliveries
                                      (campaign_id, seq, recipient, user_ids, readdressed_from)
                                  values (%s, %s, %s, %s::bigint[], %s) returning ctid::text""",
                               (self.campaign_id, last, f"{SPLITTING}{last}", ids, by_seq[origin][1])).fetchone()[0]
            where[stand_in] = (tid, last)
            rows.append((last, f"{SPLITTING}{last}", ids, tid, by_seq[origin][4]))
            left.setdefault(origin, []).extend(ids)
        for origin, ids in left.items():
            where[by_seq[origin][3]] = (conn.execute(
                """update compliance.notification_deliveries
                   set user_ids = array(select u from unnest(user_ids) u where u <> all(%s::bigint[]) order by u)
                   where campaign_id = %s and seq = %s returning ctid::text""",
                (ids, self.campaign_id, origin)).fetchone()[0], origin)
        self._added_uncounted += len(splits)
        log.info("campaign %d: %d row(s) added for accounts that left their row's address for another",
                 self.campaign_id, len(splits))
        rows = [(seq, key, ids, where.get(tid, (tid,))[0], xact) for seq, key, ids, tid, xact in rows]
        self._moves = {where.get(tid, (tid,))[0]: move for tid, move in self._moves.items()}
        return (rows, [(*where.get(tid, (tid, seq)), address, name) for tid, seq, address, name in sending],
                [(where.get(tid, (tid,))[0], reason) for tid, reason in skips])

    def _readdress(self, conn, rows: Sequence[tuple], sending: list[Sending],
                   skips: list[tuple[str, str]]) -> tuple[list[Sending], list[tuple[str, str]]]:
        """``sending`` with each row going to a new address (:meth:`_moved`, checked in :meth:`decide`) re-keyed to that
        address's hash, its old one kept in ``readdressed_from``, and its new physical address; or, appended to
        ``skips``, why it does not go: the address of a purged child, or an address that has a row of its own in the
        campaign (told, or being told through that row; while it is pending, the row's accounts now name these too,
        so that it is sent to them whoever of its own accounts has left it; a skipped or failed such row, through
        which nothing reached the address, gives its key up instead, :meth:`_give_way`, and the moving row takes the
        address). Re-keyed in a savepoint:
        two senders moving rows to one address at once cannot both take it (the primary key), and the one that
        loses finds the other's row. Rows of this batch moving to each other's addresses (a swap, an address one
        account leaves and another takes) are re-keyed in an order that frees each key first (:meth:`_rekey`)."""
        kept: list[Sending] = []
        moving: dict[int, tuple[str, list[int]]] = {}
        for tid, seq, address, name in sending:
            move = self._moves.pop(tid, None)
            if move is None:
                kept.append((tid, seq, address, name))
                continue
            key, ids = move
            if self._purged_child(conn, address, key):
                skips.append((tid, f"{ADDRESS_CHANGED}; the new address is the {PURGED_CHILD}"))
                continue
            if self._child_holds(address, ids):
                skips.append((tid, f"{ADDRESS_CHANGED}; the new address is held by a {CHILD_REASON}"))
                continue
            moving[seq] = move
            kept.append((tid, seq, address, name))
        seqs = {row[3]: row[0] for row in rows}
        self._later = set()
        not_going = self._rekey(conn, rows, moving, {seqs[tid]: reason for tid, reason in skips})
        tids = {seq: tid for tid, seq in seqs.items()}
        skips = skips + [(tids[seq], reason) for seq, reason in not_going.items()]
        kept = [entry for entry in kept if entry[1] not in not_going and entry[1] not in self._later]
        if self._later:
            log.info("campaign %d: %d row(s) moving to a new address left pending for a later claim: another sender "
                     "holds the row of that address or is re-keying rows to it", self.campaign_id, len(self._later))
        # An updated row has a new physical address (a re-keyed one, and one of the claimed rows that now names more
        # accounts): the claimed rows, all locked by this transaction, are found again by seq.
        where = dict(conn.execute("""select seq, ctid::text from compliance.notification_deliveries
                                     where campaign_id = %s and seq = any(%s::integer[])""",
                                  (self.campaign_id, sorted(seqs.values()))).fetchall())
        return ([(where[seq], seq, address, name) for _, seq, address, name in kept],
                [(where[seqs[tid]], reason) for tid, reason in skips])

    def _rekey(self, conn, rows: Sequence[tuple], moving: Mapping[int, tuple[str, list[int]]],
               skipped: Mapping[int, str]) -> dict[int, str]:
        """Re-key the claimed rows ``moving`` (``seq -> (new key, accounts)``), by seq (an update moves a row); returns
        why each row that cannot take its key does not go (``seq -> reason``). ``skipped``: the batch's rows skipped
        now, by seq. A row whose key another moving row of the batch holds waits for that row to move; rows that
        wait for each other in a ring (a swap) have the first parked on a key no address has while the others move."""
        holder = {row[1]: row[0] for row in rows}  # key -> the claimed row holding it now
        old = {row[0]: row[1] for row in rows}
        todo, parked, not_going = list(moving), set(), {}
        later = self._later

        def waits(seq: int) -> bool:
            held_by = holder.get(moving[seq][0])
            return held_by is not None and held_by != seq and held_by in todo

        while todo:
            ready = next((seq for seq in [*sorted(parked.intersection(todo)), *todo] if not waits(seq)), None)
            if ready is None:
                ring = todo[0]  # every row left waits for another's key: following them leads into a ring
                while not self._in_ring(ring, holder, moving):
                    ring = holder[moving[ring][0]]
                self._set_key(conn, ring, f"readdressing:{ring}", None)
                del holder[old[ring]]
                parked.add(ring)
                continue
            todo.remove(ready)
            key, ids = moving[ready]
            took = self._set_key(conn, ready, key, old[ready], quietly=True, announce=True)
            held_by = holder.get(key)
            skipped_now = held_by if held_by in skipped or held_by in not_going else None
            if took is False and self._give_way(conn, key, skipped_now):
                # The address's own row was skipped (now, or before): the accounts moving to it are judged on their
                # own (checked in _readdress), and the skipped row gave its key up.
                holder.pop(key, None)
                took = self._set_key(conn, ready, key, old[ready], quietly=True, announce=True) or None
            if took:
                if holder.get(old[ready]) == ready:
                    del holder[old[ready]]
                holder[key] = ready
                continue
            if took is None and ready not in parked:
                later.add(ready)  # neither sent nor skipped: pending, past this sender's watermark (see claim)
                continue
            if ready in parked and not self._set_key(conn, ready, old[ready], None, quietly=True):
                raise RuntimeError(f"campaign {self.campaign_id}: a row of this batch could not take back its own "
                                   "key after its new address was taken; the batch is rolled back")
            if skipped_now is not None:
                why = skipped.get(held_by) or not_going[held_by]
                not_going[ready] = f"{ADDRESS_CHANGED}; the new address has a row of its own that was not sent " \
                                   f"(skipped: {why})"
            elif (why := self._told_elsewhere(conn, key, ids)) is None:
                later.add(ready)
            else:
                not_going[ready] = why
        return not_going

    @staticmethod
    def _in_ring(seq: int, holder: Mapping[str, int], moving: Mapping[int, tuple[str, list[int]]]) -> bool:
        """Whether following the rows' keys from ``seq`` (each to the row holding its new key) comes back to it."""
        seen, at = set(), seq
        while at in moving and at not in seen:
            seen.add(at)
            at = holder.get(moving[at][0])
            if at == seq:
                return True
        return False

    def _set_key(self, conn, seq: int, key: str, was: str | None, *, quietly: bool = False,
                 announce: bool = False) -> bool | None:
        """Give the claimed row ``seq`` the key ``key`` (``readdressed_from``: ``was``, unless the row already names
        the key it was built for: a row added for accounts that left their row's address), in a savepoint; False when
        the key is taken (``quietly``) or the row is no longer pending; None (``quietly``) when the key is another
        sender's at this moment (a row it re-keyed to it, or away from it, in a request not yet committed).

        The primary key's index makes a statement that meets another transaction's uncommitted key wait for that
        transaction, and a sender's transaction lasts its whole SendGrid request. So a row moving to an address
        (``announce``: the moves of :meth:`_rekey`) first takes a transaction-scoped advisory lock on the key it
        leaves (``was``) and on the key it takes, without waiting: when another sender holds either, the row is left
        for a later claim. The locks of an attempt that fails go with its savepoint; those of a move last until the
        request's commit. Should the update meet an uncommitted key all the same (a change outside these moves), it
        gives up after :data:`REKEY_LOCK_TIMEOUT` (``lock_timeout``, set for the savepoint alone)."""
        if self._lock_timeout is None:
            self._lock_timeout = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
        try:
            with conn.transaction():
                if announce and not conn.execute(
                        "select pg_try_advisory_xact_lock(hashtextextended(%s, 0)) "
                        "and pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                        (self._key_lock(was), self._key_lock(key))).fetchone()[0]:
                    raise _KeyBusy  # takes back the savepoint, and the lock of the pair this sender got with it
                conn.execute("select set_config('lock_timeout', %s, true)", (REKEY_LOCK_TIMEOUT,))
                took = conn.execute(
                    """update compliance.notification_deliveries
                       set recipient = %s, readdressed_from = coalesce(readdressed_from, %s)
                       where campaign_id = %s and seq = %s and state = 'pending' returning 1""",
                    (key, was, self.campaign_id, seq)).fetchone() is not None
                conn.execute("select set_config('lock_timeout', %s, true)", (self._lock_timeout,))
                return took
        except psycopg.errors.UniqueViolation:
            if not quietly:
                raise
            return False
        except (_KeyBusy, psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            # Another sender holds the key in a request not yet committed (or, re-keying rows to these addresses in
            # another order, waits for a key this one holds): nothing of this statement is left (the savepoint,
            # with the lock_timeout), and the row stays pending for a later claim.
            if not quietly:
                raise
            return None

    def _key_lock(self, key: str | None) -> str:
        """What the advisory lock of a key of this campaign's ledger is taken on (see :meth:`_set_key`)."""
        return f"{LEDGER_NAME} campaign {self.campaign_id} key {key}"

    def _purged_child(self, conn, address: str, key: str) -> bool:
        keys = {key} | ({self.spelt_hasher(address)} if self.spelt_hasher else set())
        return conn.execute("""select exists (select 1 from compliance.child_purges
                                              where outcome = 'purged' and address_hash = any(%s))""",
                            (sorted(keys),)).fetchone()[0]

    def _child_holds(self, address: str, ids: list[int]) -> bool:
        """Whether an account other than ``ids`` that holds ``address`` now is a child by the rules
        (:meth:`_children_hold`, for one address)."""
        return bool(self._children_hold({address: (address, ids)}))

    def _children_hold(self, wanted: Mapping[Any, tuple[str, Sequence[int]]], *, known: Collection[int] = ()) -> set:
        """The keys of ``wanted`` (any key -> (an address, the accounts of its row)) whose address an account other than
        the row's own holds now that is a child by the rules: the build skips an address a child holds whoever else
        holds it. The holders are those the build puts in the address's row, of the same mailbox (the ledger's key,
        :func:`include.campaign.recipients.recipient_hasher`), looked up under each spelling of it (:func:`spellings`:
        ``kid@bücher.de``, ``kid@xn--bcher-kva.de``, the domain decomposed; an address in ASCII with no ``xn--`` has
        one) by the accounts' index on the address rule, for all of ``wanted`` in one statement. ``known``: accounts
        known to hold their own row's address, so no other: left out of the answer (a whole batch's, nearly all of it)
        by a hashed anti-join (``<> all(array)`` compares each holder with every id: ~50 ms a batch of 1,000, not ~3)."""
        forms: dict[str, list] = {}  # a spelling's comparable form -> the keys of wanted whose address it spells
        target = {}
        for k, (address, _) in wanted.items():
            target[k] = self.hasher(address)
            if address.isascii() and "xn--" not in address.lower():
                forms.setdefault(comparable(address), []).append(k)
            else:
                for form in spellings(address):
                    forms.setdefault(form, []).append(k)
        if not forms:
            return set()
        accounts = self.dm.record("accounts")
        uid_col = sql.Identifier(accounts.physical("id"))
        holders = self.ops.execute(sql.SQL(
            "select {id}, {email} from {t} where {key} = any(%b::text[]) "
            "and {id} not in (select unnest(string_to_array(%s, ',')::bigint[]))").format(
            id=uid_col, email=sql.Identifier(accounts.physical("email")), t=accounts.ident,
            key=comparable_sql(sql.Identifier(accounts.physical("email")))),
            (sorted(forms), ",".join(map(str, sorted(known))))).fetchall()
        others: dict[Any, set[int]] = {}
        for uid, email in holders:
            key = self.hasher(email)
            for k in forms.get(comparable(email), ()):
                if target[k] == key and uid not in wanted[k][1]:
                    others.setdefault(k, set()).add(uid)
        if not others:
            return set()
        found = self._accounts(set().union(*others.values()))
        return {k for k, ids in others.items()
                if any(found[uid][3] and not found[uid][2] for uid in ids if uid in found)}

    def _give_way(self, conn, key: str, seq: int | None) -> bool:
        """Give the key ``key`` up for an account that has taken its address: the row holding it is ``seq``, a claimed
        row of this batch skipped now, or else a row skipped before or failed (SendGrid refused its request: nothing
        reached the address), not locked by another sender, which may be giving it up too. Its key becomes
        ``superseded:<its seq>``, ``readdressed_from`` keeps ``key``, its state, reason and accounts stay. False when
        there is no such row."""
        which = "seq = %(seq)s and state = 'pending'" if seq is not None else "state in ('skipped', 'failed')"
        return conn.execute(f"""update compliance.notification_deliveries
                                set recipient = %(superseded)s || seq,
                                    readdressed_from = coalesce(readdressed_from, recipient)
                                where ctid = (select ctid from compliance.notification_deliveries
                                              where campaign_id = %(campaign)s and recipient = %(key)s and {which}
                                              for update skip locked)""",
                            {"campaign": self.campaign_id, "key": key, "seq": seq,
                             "superseded": SUPERSEDED}).rowcount == 1

    def _told_elsewhere(self, conn, key: str, ids: list[int]) -> str | None:
        """Why a row whose accounts took an address that has a row of its own (``key``) is skipped; a pending such
        row now also names the accounts ``ids``. None when that row is another sender's now (locked, or re-keyed
        since): it may yet be skipped or moved away, so the row waiting for its address stays pending."""
        other = conn.execute("""select state from compliance.notification_deliveries
                                where campaign_id = %s and recipient = %s""", (self.campaign_id, key)).fetchone()
        if other is None:  # the row that held the key was re-keyed by a transaction that has ended since
            return None
        state, = other
        if state == "pending":
            joined = conn.execute("""update compliance.notification_deliveries d
                            set user_ids = array(select distinct u from unnest(d.user_ids || %s::bigint[]) u order by u)
                            where ctid = (select ctid from compliance.notification_deliveries
                                          where campaign_id = %s and recipient = %s and state = 'pending'
                                          for update skip locked)""", (ids, self.campaign_id, key)).rowcount
            return TOLD_IN_ANOTHER_ROW if joined else None
        if state == "sent":
            return f"{ADDRESS_CHANGED}; the new address was told in its own row of the campaign"
        # Skipped or failed, and locked: another sender's row is taking the address (:meth:`_give_way`).
        return None

    def _accounts(self, ids: set[int]) -> dict[int, tuple[str | None, str | None, bool, bool, str | None]]:
        """The batch's accounts as they are now: ``id -> (email, full name, deleted, caught by a child rule,
        why the address is suppressed or None)``, in one statement read by key.

        The accounts are read once into a CTE; the child rules' reports are matched against those accounts
        only, and the suppression list is looked up by each account's address in its comparable form (the address
        rule, as :func:`include.addresses.comparable` gives it in the build): one probe of the suppressions' index
        on that expression per account.
        """
        if not ids:
            return {}
        if self._accounts_sql is None:
            # A batch's statement reads ~1,000 rows by key: compiling it (PostgreSQL's JIT, which its cost estimate
            # may call for) takes longer than running it.
            self.ops.execute("set jit = off")
            accounts, supp = self.dm.record("accounts"), self.dm.record("email_suppressions")
            names = dict.fromkeys([*verdict_column_names(self.dm), accounts.physical("full_name"),
                                   accounts.physical("deleted_at")])
            self._accounts_sql = sql.SQL(
                "with batch as materialized (select {columns}, {email_key} as email_key from {t} u "
                "                            where {id} = any(string_to_array(%(ids)s, ',')::bigint[])), "
                "{reported} "
                "select {id}, {email}, {name}, {deleted} is not null, {caught}, {suppressed} "
                "from batch u left join reported rp on rp.user_id = {id}"
            ).format(email_key=comparable_sql(sql.Identifier("u", accounts.physical("email"))),
                suppressed=_suppression_reason(supp, sql.SQL("u.email_key")),
                columns=sql.SQL(", ").join(sql.Identifier("u", n) for n in names), t=accounts.ident,
                reported=reported_accounts_cte(self.dm, within=sql.Identifier("batch")), caught=caught_column(self.dm),
                no_reason=sql.Literal(NO_REASON),
                **{k: sql.Identifier("u", accounts.physical(c)) for k, c in
                   (("id", "id"), ("email", "email"), ("name", "full_name"), ("deleted", "deleted_at"))}
            ).as_bytes(self.ops)
        # Prepared: the generic plan reads the batch's accounts by key whatever the ids (parsing and planning the
        # statement afresh for each batch cost ~0.5 ms more).
        rows = self.ops.execute(self._accounts_sql, {"ids": ",".join(map(str, sorted(ids))), "as_of": self.as_of, "tz": self.tz},
                                prepare=True)
        return {row[0]: row[1:] for row in rows}

    def _suppressed_as_spelt(self, chosen: list[tuple], *, every: bool) -> list[tuple]:
        """``chosen`` with the suppression of each address not yet found suppressed, looked up under every spelling
        SendGrid is given as its mailbox (:func:`spellings`): for a test run's addresses all of them; for a live
        batch, whose accounts' statement looked the address up as it is spelt, the others, which only an
        internationalised domain has. SendGrid reports an address as it was given it (``jo@xn--bcher-kva.de``),
        so that is how a bounce is often recorded for an account holding ``jo@bücher.de``, and the build took
        both as one mailbox."""
        wanted: dict[str, list[int]] = {}
        for i, (_, _, address, _, suppression) in enumerate(chosen):
            if suppression is not None:
                continue
            if every:
                keys = spellings(address)
            elif address.isascii() and "xn--" not in address.lower():  # nearly all: one spelling (2 ms a batch less)
                continue
            else:
                keys = spellings(address) - {comparable(address)}
            for key in keys:
                wanted.setdefault(key, []).append(i)
        found = self._suppressed(sorted(wanted))
        if not found:
            return chosen
        chosen = list(chosen)
        for key, reason in sorted(found.items()):
            for i in wanted[key]:
                tid, seq, address, name, suppression = chosen[i]
                if suppression is None:
                    chosen[i] = (tid, seq, address, name, reason)
        return chosen

    def _suppressed(self, addresses: Sequence[str]) -> dict[str, str]:
        """The addresses among these that are suppressed now, by comparable form, with the reason (a test run's
        addresses, which no account holds, and other spellings of a live batch's; its own come with its accounts)."""
        if not addresses:
            return {}
        supp = self.dm.record("email_suppressions")
        query = sql.SQL("select * from ("
                        "  select k.key, {suppressed} as reason from unnest(%b::text[]) as k(key)"
                        ") x where x.reason is not null").format(suppressed=_suppression_reason(supp, sql.SQL("k.key")))
        return dict(self.ops.execute(query, ([comparable(a) for a in addresses],)))

    # -- batches -------------------------------------------------------------------------------------

    def _batch(self, conn, sending: Sequence[Sending], *, skipped: int) -> Batch:
        personalization = self.renderer.personalization
        payload = self.renderer.payload([personalization(address, name) for _, _, address, name in sending])
        seqs = [seq for _, seq, _, _ in sending]
        self._tids = ";".join(tid for tid, _, _, _ in sending)
        xact = self._xact  # this transaction's id, read with the claimed rows
        # Committed on its own before the request leaves: the trace a crash between send and commit leaves.
        self._batch_id = self.side.execute(
            """insert into compliance.notification_batches (campaign_id, run_id, sender, seqs, size, state, xact,
                                                            started_at)
               values (%s, %s, %s, string_to_array(%s, ',')::integer[], %s, 'in_flight', %s, %s) returning id""",
            (self.campaign_id, self.ctx.run_id, self.sender, ",".join(map(str, seqs)), len(seqs), xact,
             self.ctx.now())).fetchone()[0]
        self._http_attempts = 1
        return Batch(keys=seqs, payload=payload,
                     evidence={"campaign_id": self.campaign_id, "batch_id": self._batch_id, "first_seq": seqs[0],
                               "last_seq": seqs[-1], "skipped_at_send": skipped})

    def _finish(self, conn, batch: Batch, *, state: str, message_id: str | None, reason: str | None,
                now: datetime) -> None:
        *totals, marked, recorded = conn.execute(_FINISH, {
            "state": state, "message_id": message_id, "batch": self._batch_id, "attempts": self._http_attempts,
            "reason": reason, "now": now, "campaign": self.campaign_id, "tids": self._tids,
            "sent": batch.size if state == "sent" else 0, "failed": batch.size if state == "failed" else 0,
            "skipped": self._skipped_uncounted, "added": self._added_uncounted}).fetchone()
        if marked != batch.size or recorded != 1:
            # The rows were locked by this transaction: nobody else can have marked them.
            raise RuntimeError(f"campaign {self.campaign_id}: {marked} of {batch.size} claimed rows were still "
                               f"pending when marked and {recorded} request row of 1 was found; the batch is "
                               "rolled back")
        self._skipped_uncounted = self._added_uncounted = 0
        if self.budget is not None:
            self.budget -= batch.size
        self._sent += batch.size if state == "sent" else 0
        self._progress(totals)

    def _count_skips(self, conn) -> None:
        """Rows skipped (and added) since the last marked batch, into the campaign's counters (no batch follows)."""
        if self._skipped_uncounted or self._added_uncounted:
            conn.execute(_COUNTERS, {"sent": 0, "failed": 0, "skipped": self._skipped_uncounted,
                                     "added": self._added_uncounted, "now": self.ctx.now(),
                                     "campaign": self.campaign_id})
            self._skipped_uncounted = self._added_uncounted = 0

    def mark_at_risk(self, conn, batch: Batch, *, unanswered: int, sent: bool) -> None:
        """Requests of this batch that got no answer (the delivery engine's rule): each is a Mail Send request whose
        outcome nobody knows, recorded as one ``unknown`` request row, so its rows count as duplicates at risk.
        When no attempt was answered, the batch's own row stays ``in_flight`` (its transaction is gone) and the
        summary turns it ``unknown``: the last unanswered request is that row. When another attempt was answered
        (accepted: ``sent``; or refused, the row already ``failed`` in this transaction) every unanswered request
        gets its own row: a refused batch's recipients may have been told by the first, unanswered one."""
        (state,) = conn.execute("select state from compliance.notification_batches where id = %s",
                                (self._batch_id,)).fetchone()
        rows = unanswered if sent or state != "in_flight" else unanswered - 1
        for _ in range(rows):
            conn.execute(
                """insert into compliance.notification_batches (campaign_id, run_id, sender, seqs, size, state, xact,
                                                                http_attempts, reason, started_at, finished_at)
                   select campaign_id, run_id, sender, seqs, size, 'unknown', xact, 1, %s, started_at, %s
                   from compliance.notification_batches where id = %s""",
                ("SendGrid did not answer this request; it may have delivered it", self.ctx.now(), self._batch_id))

    def batch_not_sent(self, reason: str) -> None:
        """SendGrid answered and refused the request as a whole (401/403/429/5xx): nothing was sent."""
        if self._batch_id is not None:
            self.side.execute("update compliance.notification_batches set state = 'not_sent', reason = %s, "
                              "finished_at = %s where id = %s and state = 'in_flight'",
                              (reason[:500], self.ctx.now(), self._batch_id))

    def _progress(self, totals: tuple[int, ...]) -> None:
        now = self._clock()
        if now - self._last_progress < self._progress_every:
            return
        self._last_progress = now
        total, sent, failed, skipped, pending = totals
        rate = self._sent / (now - self._started) if now > self._started else 0.0
        log.info("campaign %d: %d/%d done (%d sent, %d failed, %d skipped, %d pending); %s sent %d at %.0f/s",
                 self.campaign_id, sent + failed + skipped, total, sent, failed, skipped, pending, self.sender,
                 self._sent, rate)


class _RecordingMailer:
    def __init__(self, mailer, ledger: CampaignLedger):
        self._mailer, self._ledger = mailer, ledger

    def send(self, payload: dict[str, Any]):
        try:
            result = self._mailer.send(payload)
        except SendGridRejected:
            raise  # the engine marks the batch failed in its transaction
        except SendGridError as exc:
            if exc.status_code is not None and not exc.unanswered:  # only answers: SendGrid did not take it
                self._ledger.batch_not_sent(f"HTTP {exc.status_code}: {exc}")
            raise
        self._ledger._http_attempts = result.attempts
        return result
