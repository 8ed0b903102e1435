"""The campaign ledger as the delivery engine sees it: claim a batch, mark it, and nothing else.

:func:`include.notify.delivery.deliver` opens one transaction per Mail Send request. Inside it,
:meth:`CampaignLedger.claim` locks the next pending rows in ``seq`` order (``FOR UPDATE SKIP LOCKED``, so
parallel senders and concurrent runs take disjoint batches), reads each recipient's address from the
operational database and checks it again — an account deleted or erased, an address changed or
suppressed, a child flagged since the campaign was built makes that row ``skipped`` with the reason — and
renders the payload. ``mark_sent`` / ``mark_failed`` update the rows and the campaign's counters in the
same transaction, which the engine commits with the audit entry.

Before the request leaves, the claim writes a ``notification_batches`` row on a second connection,
committed at once, naming the claiming transaction. If that transaction commits, it marked the row sent
or failed; if the sender dies between the send and the commit (SIGKILL, a lost worker, a timeout), the
row stays ``in_flight`` with a transaction that no longer runs: its recipients are pending again and the
next sender re-sends them — at most that one request — and the summary counts them as duplicates at risk.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, Mapping, Sequence

from psycopg import sql

from include.addresses import comparable, sending_problem
from include.audit import RunContext
from include.children.detection import reported_accounts_cte, verdict_columns
from include.datamap import DataMap
from include.notifications.messages import Renderer, common_name
from include.notifications.params import TEST
from include.notifications.recipients import CHILD_REASON
from include.notify.delivery import Batch
from include.notify.sendgrid_mailer import SendGridError, SendGridRejected

log = logging.getLogger("include.notifications")

LEDGER_NAME = "policy_change"
GONE = "account deleted or erased since the campaign was built"
ADDRESS_CHANGED = "address changed since the campaign was built"
NOT_A_TEST_RECIPIENT = "not among this run's test_recipients"
SUPPRESSED_NOW = "suppressed since the campaign was built"

# One window of the ledger at a time: with a bound on seq, the planner walks the (campaign_id, seq) index
# whatever its statistics say. Without it, once an ANALYZE has seen (almost) no pending rows — a resumed or
# nearly finished campaign — it estimates one match and prefers reading the whole table and sorting it,
# for every batch: at a million rows that is ~0.15 s a claim.
CLAIM_SQL = """
select seq, recipient, user_ids, ctid::text from compliance.notification_deliveries
where campaign_id = %(campaign)s and seq > %(after)s and seq <= %(upto)s and state = 'pending'
order by seq
limit %(limit)s
for update skip locked
"""
CLAIM_WINDOW = 10_000  # seq numbers one claim query examines (at least 4 batches' worth)

_FINISH = """
update compliance.notification_deliveries d
set state = %(state)s, message_id = %(message_id)s, batch_id = %(batch)s, attempts = d.attempts + %(attempts)s,
    reason = %(reason)s, finished_at = %(now)s
where d.ctid = any(%(tids)b::text[]::tid[]) and d.campaign_id = %(campaign)s and d.state = 'pending'
"""

_SKIP = """
update compliance.notification_deliveries d set state = 'skipped', reason = k.reason, finished_at = %(now)s
from unnest(%(tids)b::text[]::tid[], %(reasons)b::text[]) as k(tid, reason)
where d.ctid = k.tid and d.campaign_id = %(campaign)s and d.state = 'pending'
"""

_COUNTERS = """
update compliance.notification_campaigns
set sent = sent + %(sent)s, failed = failed + %(failed)s, skipped = skipped + %(skipped)s,
    pending = pending - %(sent)s - %(failed)s - %(skipped)s, updated_at = %(now)s
where id = %(campaign)s
returning total, sent, failed, skipped, pending
"""


@dataclass(frozen=True)
class Account:
    id: int
    email: str | None
    full_name: str | None
    deleted: bool
    child: bool  # caught by a child rule now (the purge's rules, include.children.detection)


@dataclass(frozen=True)
class Decision:
    seq: int
    address: str | None = None
    name: str | None = None
    skip: str | None = None


class CampaignLedger:
    """One sender's view of one campaign's ledger, for :func:`include.notify.delivery.deliver`.

    ``budget`` caps the rows this sender sends or fails (its share of ``max_recipients``); ``test_addresses``
    maps the keyed hash of each of a test run's addresses to the address (a test campaign has no accounts).
    """

    name = LEDGER_NAME

    def __init__(self, *, campaign_id: int, scope: str, renderer: Renderer, ops, dm: DataMap, side,
                 hasher: Callable[[str], str], ctx: RunContext, sender: str, batch_size: int,
                 budget: int | None = None, as_of: date | None = None, tz: str = "UTC",
                 test_addresses: Mapping[str, str] | None = None, progress_every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, window: int = CLAIM_WINDOW):
        if scope != TEST and as_of is None:
            # The child rules are applied on a day: without one they would catch nobody, silently.
            raise ValueError("a live campaign's ledger needs as_of, the day the child rules are applied on")
        self.campaign_id, self.scope, self.renderer = campaign_id, scope, renderer
        self.ops, self.dm, self.side, self.hasher, self.ctx = ops, dm, side, hasher, ctx
        self.sender, self.batch_size, self.budget = sender, batch_size, budget
        self.as_of, self.tz, self.test_addresses = as_of, tz, dict(test_addresses or {})
        self._accounts_sql: sql.Composable | None = None
        self.after = 0  # the watermark: the next claim starts past it
        self.window = max(window, 4 * batch_size)
        self._last_seq: int | None = None
        self.skipped = 0  # rows this sender skipped (committed or about to be)
        self._skipped_uncounted = 0
        self._batch_id: int | None = None
        self._tids: list[str] = []
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
        restarted = False
        while True:
            limit = self.batch_size if self.budget is None else min(self.batch_size, self.budget)
            rows = self._pending_rows(conn, limit) if limit > 0 else []
            if not rows:
                if not restarted and limit > 0:
                    restarted, self.after = True, 0  # once more from the start: rows a dead sender left pending
                    continue
                self._count_skips(conn)
                return None
            # A row's physical address is stable while this transaction holds its lock: marks go straight to it.
            tids = {row[0]: row[3] for row in rows}
            decisions = self.decide([row[:3] for row in rows])
            skips = [d for d in decisions if d.skip]
            if skips:
                conn.execute(_SKIP, {"campaign": self.campaign_id, "tids": [tids[d.seq] for d in skips],
                                     "reasons": [d.skip for d in skips], "now": self.ctx.now()})
                self.skipped += len(skips)
                self._skipped_uncounted += len(skips)
            sending = [d for d in decisions if not d.skip]
            if sending:
                self._tids = [tids[d.seq] for d in sending]
                return self._batch(conn, sending, skipped=len(skips))

    def _pending_rows(self, conn, limit: int) -> list[tuple]:
        """Up to ``limit`` pending rows past the watermark, locked, in seq order, window by window to the end.

        Rows another sender holds are passed over (SKIP LOCKED), and the watermark moves past them.
        """
        if self._last_seq is None:
            self._last_seq = conn.execute("select coalesce(max(seq), 0) from compliance.notification_deliveries "
                                          "where campaign_id = %s", (self.campaign_id,)).fetchone()[0]
        rows: list[tuple] = []
        while len(rows) < limit and self.after < self._last_seq:
            upto = min(self.after + self.window, self._last_seq)
            found = conn.execute(CLAIM_SQL, {"campaign": self.campaign_id, "after": self.after, "upto": upto,
                                             "limit": limit - len(rows)}).fetchall()
            rows += found
            self.after = found[-1][0] if len(rows) == limit else upto
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

    def decide(self, rows: Sequence[tuple[int, str, list[int]]]) -> list[Decision]:
        """For each claimed row: the address to send to and the greeting name, or why it is skipped now."""
        if self.scope == TEST:
            chosen = {seq: (self.test_addresses.get(recipient), None) for seq, recipient, _ in rows}
            skips = {seq: NOT_A_TEST_RECIPIENT for seq, (address, _) in chosen.items() if address is None}
        else:
            chosen, skips = self._live_holders(rows)
        suppressed = self._suppressed([a for seq, (a, _) in chosen.items() if a and seq not in skips])
        decisions = []
        for seq, _, _ in rows:
            if seq in skips:
                decisions.append(Decision(seq, skip=skips[seq]))
                continue
            address, name = chosen[seq]
            key = comparable(address)
            if key in suppressed:
                decisions.append(Decision(seq, skip=f"{SUPPRESSED_NOW} ({suppressed[key]})"))
            elif not address.isascii() and (problem := sending_problem(address)):
                decisions.append(Decision(seq, skip=f"invalid address: {problem}"))
            else:
                decisions.append(Decision(seq, address=address.strip(), name=name))
        return decisions

    def _live_holders(self, rows) -> tuple[dict[int, tuple[str | None, str | None]], dict[int, str]]:
        accounts = self._accounts({uid for _, _, ids in rows for uid in ids})
        chosen, skips = {}, {}
        for seq, recipient, user_ids in rows:
            live = [a for a in (accounts.get(uid) for uid in user_ids) if a is not None and not a.deleted]
            holders = [a for a in live if a.email is not None and self.hasher(a.email) == recipient]
            if not live:
                skips[seq] = GONE
            elif not holders:
                skips[seq] = ADDRESS_CHANGED
            elif any(a.child for a in live):
                skips[seq] = CHILD_REASON
            else:
                # The lowest account id's spelling; the greeting only if every holder has the same name.
                chosen[seq] = (holders[0].email, common_name(a.full_name for a in holders))
                continue
            chosen[seq] = (None, None)
        return chosen, skips

    def _accounts(self, ids: set[int]) -> dict[int, Account]:
        """The batch's accounts as they are now, each with whether a child rule catches it (read by key: the
        rule for reports that name an account by email looks only at these accounts' addresses)."""
        if not ids:
            return {}
        if self._accounts_sql is None:
            accounts = self.dm.record("accounts")
            rules, _ = verdict_columns(self.dm)
            self._accounts_sql = sql.SQL(
                "with {reported} select {id}, {email}, {name}, {deleted} is not null, cardinality({rules}) > 0 "
                "from {t} u left join reported rp on rp.user_id = {id} where {id} = any(%(ids)s::bigint[]) "
                "order by {id}").format(
                reported=reported_accounts_cte(self.dm, only_ids=True), rules=rules, t=accounts.ident,
                **{k: sql.Identifier("u", accounts.physical(c)) for k, c in
                   (("id", "id"), ("email", "email"), ("name", "full_name"), ("deleted", "deleted_at"))})
        # Planned for each batch's ids (never prepared): PostgreSQL's generic plan of the child rules' "these ids,
        # or all when none" filter took twice as long at a million accounts.
        rows = self.ops.execute(self._accounts_sql, {"ids": sorted(ids), "as_of": self.as_of, "tz": self.tz},
                                prepare=False)
        return {row[0]: Account(*row) for row in rows}

    def _suppressed(self, addresses: Sequence[str]) -> dict[str, str]:
        """The addresses among these that are suppressed now, by comparable form, with the reason."""
        if not addresses:
            return {}
        supp = self.dm.record("email_suppressions")
        query = sql.SQL("select k.key, min({reason}) from {t} s join unnest(%b::text[]) as k(key) "
                        "on lower(btrim({email})) = k.key group by k.key").format(
            reason=sql.Identifier("s", supp.physical("reason")), t=supp.ident,
            email=sql.Identifier("s", supp.physical("email")))
        return {key: reason or "no reason given" for key, reason in
                self.ops.execute(query, ([comparable(a) for a in addresses],))}

    # -- batches -------------------------------------------------------------------------------------

    def _batch(self, conn, sending: Sequence[Decision], *, skipped: int) -> Batch:
        renderer = self.renderer
        payload = renderer.payload([renderer.personalization(d.address, d.name) for d in sending])
        seqs = [d.seq for d in sending]
        xact = conn.execute("select pg_current_xact_id()").fetchone()[0]
        # Committed on its own before the request leaves: the trace a crash between send and commit leaves.
        self._batch_id = self.side.execute(
            """insert into compliance.notification_batches (campaign_id, run_id, sender, seqs, size, state, xact,
                                                            started_at)
               values (%s, %s, %s, %s, %s, 'in_flight', %s, %s) returning id""",
            (self.campaign_id, self.ctx.run_id, self.sender, seqs, len(seqs), xact, self.ctx.now())).fetchone()[0]
        self._http_attempts = 1
        return Batch(keys=seqs, payload=payload,
                     evidence={"campaign_id": self.campaign_id, "batch_id": self._batch_id, "first_seq": seqs[0],
                               "last_seq": seqs[-1], "skipped_at_send": skipped})

    def _finish(self, conn, batch: Batch, *, state: str, message_id: str | None, reason: str | None,
                now: datetime) -> None:
        marked = conn.execute(_FINISH, {"state": state, "message_id": message_id, "batch": self._batch_id,
                                        "attempts": self._http_attempts, "reason": reason, "now": now,
                                        "campaign": self.campaign_id, "tids": self._tids}).rowcount
        if marked != batch.size:  # the rows were locked by this transaction: nobody else can have marked them
            raise RuntimeError(f"campaign {self.campaign_id}: {marked} of {batch.size} claimed rows were still "
                               "pending when marked; the batch is rolled back")
        conn.execute("""update compliance.notification_batches
                        set state = %s, message_id = %s, http_attempts = %s, reason = %s, finished_at = %s
                        where id = %s""", (state, message_id, self._http_attempts, reason, now, self._batch_id))
        totals = self._counters(conn, sent=batch.size if state == "sent" else 0,
                                failed=batch.size if state == "failed" else 0)
        if self.budget is not None:
            self.budget -= batch.size
        self._sent += batch.size if state == "sent" else 0
        self._progress(totals)

    def _count_skips(self, conn) -> None:
        if self._skipped_uncounted:
            self._counters(conn, sent=0, failed=0)

    def _counters(self, conn, *, sent: int, failed: int) -> tuple[int, ...]:
        totals = conn.execute(_COUNTERS, {"sent": sent, "failed": failed, "skipped": self._skipped_uncounted,
                                          "now": self.ctx.now(), "campaign": self.campaign_id}).fetchone()
        self._skipped_uncounted = 0
        return totals

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
            if exc.status_code is not None:  # an answer, not a timeout: SendGrid did not take the request
                self._ledger.batch_not_sent(f"HTTP {exc.status_code}: {exc}")
            raise
        self._ledger._http_attempts = result.attempts
        return result
