"""A campaign's recipients, in bulk: the recipient rules over the whole account table in one pass.

Who is told (docs/rules.md, "Policy-change notices"): accounts not deleted, with a syntactically valid address, one message per
address however many accounts share it (compared case-insensitively), minus suppressed addresses, minus
children (purged children have no account left; flagged ones are found by
:func:`include.child_detection.child_user_ids_sql`, the purge's own rules).

How, for a million accounts:

1. One read-only snapshot of the operational database (REPEATABLE READ) gives the counts, the
   suppression list and a stream of ``(user id, address, is a child)`` for every live account with an
   address — one statement through the data map, read with a server-side cursor, never whole.
2. Each address is checked in Python, as it streams, with email-validator (the product's one syntax
   check, :func:`include.addresses.sending_problem`), and keyed-hashed
   (:func:`include.subjects.address_hasher`); the rows go to a temporary table with ``COPY``. The address
   itself never reaches the compliance store.
3. One ``INSERT … SELECT … GROUP BY`` folds accounts sharing an address into one ledger row (its
   ``user_ids``), decides each row's state by precedence (a child among its accounts, an exclusion, a
   suppression, else pending if one spelling is valid, else invalid) and numbers the rows (``seq``, the
   claim order) in account order, so that each batch's accounts are read back from neighbouring pages at
   send time — all in the transaction that creates the campaign, so a campaign is either built whole or
   not at all, and two runs building at once wait for each other on the campaign's unique index.

Syntax is checked here rather than at send time so that the campaign's totals are exact from the start,
the dry run counts what will really be sent, and the senders — who share the machine with SendGrid's
side of the conversation — do no parsing: at send time a hash match proves the address read back is the
one that was checked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Callable, Iterator, Mapping

from psycopg import sql
from psycopg.types.json import Jsonb

from include import operational_rows as reading
from include.addresses import mailbox, sending_problem
from include.child_detection import child_user_ids_sql
from include.datamap import DataMap
from include.campaign.params import LIVE, TEST
from include.periods import acting_day
from include.campaign.versions import PolicyVersion
from include.step import Step
from include.subjects import address_hasher

log = logging.getLogger("include.campaign")

FETCH = 20_000
WORK_MEM = "256MB"
# A ledger row's state comes from the best-ranked verdict among the accounts sharing its address.
CHILD, EXCLUDED, SUPPRESSED, OK, INVALID = "child", "excluded", "suppressed", "ok", "invalid"
RANKS = {CHILD: 1, EXCLUDED: 2, SUPPRESSED: 3, OK: 4, INVALID: 5}
CHILD_REASON = "child account (under 13)"
PURGED_CHILD = "address of a purged child"


@dataclass
class BuildCounts:
    """How the recipients were found: accounts (``accounts_*``) and ledger rows (``recipients_*``)."""

    accounts: int = 0
    accounts_deleted: int = 0
    accounts_without_address: int = 0
    accounts_read: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)      # per account
    recipients: dict[str, int] = field(default_factory=dict)      # per ledger row, by verdict

    @property
    def eligible(self) -> int:
        return self.recipients.get(OK, 0)

    @property
    def total(self) -> int:
        return sum(self.recipients.values())

    def as_dict(self) -> dict:
        return {"accounts": self.accounts, "accounts_deleted": self.accounts_deleted,
                "accounts_without_address": self.accounts_without_address, "accounts_read": self.accounts_read,
                "accounts_by_verdict": dict(sorted(self.by_verdict.items())),
                # Accounts folded into another's ledger row; none were read for a test campaign (it was -N).
                "accounts_sharing_an_address": self.accounts_read - self.total if self.accounts_read else 0,
                "recipients": self.total, "eligible": self.eligible,
                "recipients_by_verdict": dict(sorted(self.recipients.items()))}


def recipient_hasher(key: bytes) -> Callable[[str], str]:
    """The keyed hash a campaign's ledger names a recipient by (:func:`include.subjects.address_hash` of the address's
    :func:`include.addresses.mailbox` spelling): the same for every spelling SendGrid is given as one mailbox, so
    that ``jo@bücher.de`` and ``jo@xn--bcher-kva.de`` are one row, told once, never twice in one request (which
    SendGrid refuses whole)."""
    hasher = address_hasher(key)
    return lambda address: hasher(mailbox(address))


def exclusions(store) -> Mapping[str, str]:
    """Address hashes never to notify, with the reason: the addresses of purged children.

    A purged child has no account left, so the account read finds nothing to exclude — unless another
    account holds the same address (a re-registration, a parent's account using the child's address). The
    purge records the keyed hash of each purged child's address (``compliance.child_purges.address_hash``,
    the same key and form as here: :func:`include.subjects.address_hash`); every campaign built afterwards
    skips those addresses.
    """
    rows = store.execute("""select distinct address_hash from compliance.child_purges
                            where outcome = 'purged' and address_hash is not null""")
    return {digest: PURGED_CHILD for (digest,) in rows}


# -- the operational side: one snapshot ----------------------------------------------------------------

def _candidates_query(dm: DataMap) -> sql.Composable:
    """``(user_id, address, is_child, why the deletion time is unreadable or None)`` of every account with an
    address not deleted, and of every one whose ``deleted_at`` no calendar holds (``infinity``, a BC date): such a
    value says neither deleted nor not, so the account gets a ledger row skipped with that sentence instead of being
    counted as deleted and told nothing."""
    accounts = dm.record("accounts")
    u = {n: sql.Identifier("u", accounts.physical(n)) for n in ("id", "email", "deleted_at")}
    return sql.SQL("""
        with {children}
        select {id}, {email}, c.user_id is not null, {unreadable}
        from {accounts} u left join children c on c.user_id = {id}
        where ({deleted} is null or {outside}) and {email} is not null""").format(
        children=child_user_ids_sql(dm), id=u["id"], email=u["email"], deleted=u["deleted_at"],
        unreadable=reading.unreadable(u["deleted_at"], "deleted_at"), outside=reading.out_of_range(u["deleted_at"]),
        accounts=accounts.ident)


def _account_counts(ops, dm: DataMap) -> tuple[int, int, int]:
    accounts = dm.record("accounts")
    deleted = accounts.col("deleted_at")
    return ops.execute(sql.SQL("""
        select count(*), count(*) filter (where {deleted} is not null and not {outside}),
               count(*) filter (where ({deleted} is null or {outside}) and {email} is null)
        from {accounts}""").format(deleted=deleted, outside=reading.out_of_range(deleted),
                                   email=accounts.col("email"), accounts=accounts.ident)).fetchone()


def suppressions(ops, dm: DataMap, hasher) -> dict[str, str]:
    """Every suppressed address as its keyed hash, with the suppression's reason (the oldest, if several)."""
    supp = dm.record("email_suppressions")
    rows = ops.execute(sql.SQL("select {email}, {reason} from {t} where {email} is not null order by {created}")
                       .format(email=supp.col("email"), reason=supp.col("reason"), t=supp.ident,
                               created=supp.col("created_at")))
    found: dict[str, str] = {}
    for email, reason in rows:
        found.setdefault(hasher(email), f"suppressed: {reason or 'no reason given'}")
    return found


def _stream(ops, dm: DataMap, *, as_of: date, tz: str) -> Iterator[list[tuple]]:
    """Chunks of :func:`_candidates_query`'s rows for every live account with an address (needs a transaction)."""
    with ops.cursor(name="notify_candidates") as cur:
        cur.itersize = FETCH
        cur.execute(_candidates_query(dm), {"as_of": as_of, "tz": tz})
        while True:
            chunk = cur.fetchmany(FETCH)
            if not chunk:
                return
            yield chunk


# -- the store side: staging, then one grouped insert ----------------------------------------------------

_STAGING = """create temp table notify_staging (user_id bigint not null, recipient text collate "C" not null,
                                                verdict text not null, reason text) on commit drop"""

_GROUPS = """
    select recipient, min(user_id) as first_user,
           min(case verdict when 'child' then 1 when 'excluded' then 2 when 'suppressed' then 3
                            when 'ok' then 4 else 5 end) as rank,
           array_agg(user_id order by user_id) as all_ids,
           array_agg(user_id order by user_id) filter (where verdict = 'ok') as ok_ids,
           min(reason) filter (where verdict = 'excluded') as excluded_reason,
           min(reason) filter (where verdict = 'suppressed') as suppressed_reason,
           min(reason) filter (where verdict = 'invalid') as invalid_reason
    from notify_staging group by recipient"""

_INSERT = f"""
with g as ({_GROUPS}),
ins as (
    insert into compliance.notification_deliveries (campaign_id, seq, recipient, user_ids, state, reason, finished_at)
    select %(campaign)s, row_number() over (order by first_user), recipient,
           case when rank = 4 then ok_ids else all_ids end,
           case when rank = 4 then 'pending' else 'skipped' end,
           case rank when 1 then %(child)s when 2 then excluded_reason when 3 then suppressed_reason
                     when 4 then null else invalid_reason end,
           case when rank = 4 then null else %(now)s::timestamptz end
    from g)
select rank, count(*) from g group by rank"""

_COUNT = f"select rank, count(*) from ({_GROUPS}) g group by rank"
_RANK_NAMES = {rank: name for name, rank in RANKS.items()}


def children_judged_on(step: Step) -> date:
    """The day the child rules judge the accounts as of: the run's own day (``step.params.today``), or today in the
    configured time zone when the run acts days after it (cleared, retried or caught up: Airflow keeps its day), as
    the purge does (:func:`include.periods.acting_day`). The accounts are read, and the notice sent, as they are now:
    judged as of an earlier day, an account a child by what was recorded since (a birth date after that day) would
    be emailed."""
    return acting_day(step.params.today, step.ctx.now(), step.settings.tz)


def stage(step: Step, excluded: Mapping[str, str] = {}) -> BuildCounts:
    """Read the accounts and write ``notify_staging`` (inside the caller's store transaction), applying the child
    rules as of :func:`children_judged_on` in the configured time zone."""
    ops, store, dm = step.ops, step.store, step.datamap
    as_of, tz = children_judged_on(step), step.settings.timezone
    hasher = address_hasher(step.key)
    counts = BuildCounts()
    verdicts = dict.fromkeys(RANKS, 0)
    with ops.transaction():
        ops.execute("set transaction isolation level repeatable read, read only")
        counts.accounts, counts.accounts_deleted, counts.accounts_without_address = _account_counts(ops, dm)
        suppressed = suppressions(ops, dm, recipient_hasher(step.key))
        store.execute(_STAGING)
        with store.cursor() as cur, cur.copy("copy notify_staging (user_id, recipient, verdict, reason) "
                                             "from stdin") as copy:
            for chunk in _stream(ops, dm, as_of=as_of, tz=tz):
                for user_id, address, child, unreadable in chunk:
                    spelling = mailbox(address)
                    recipient = hasher(spelling)
                    reason = None
                    if child:
                        verdict = CHILD
                    elif unreadable is not None:
                        verdict, reason = INVALID, unreadable
                    elif recipient in excluded or (spelling is not address and hasher(address) in excluded):
                        verdict, reason = EXCLUDED, excluded.get(recipient) or excluded[hasher(address)]
                    elif recipient in suppressed:
                        verdict, reason = SUPPRESSED, suppressed[recipient]
                    else:
                        problem = sending_problem(address)
                        verdict, reason = (OK, None) if problem is None else (INVALID, f"invalid address: {problem}")
                    verdicts[verdict] += 1
                    copy.write_row((user_id, recipient, verdict, reason))
                counts.accounts_read += len(chunk)
    counts.by_verdict = {k: v for k, v in verdicts.items() if v}
    return counts


def count_staged(store, counts: BuildCounts) -> BuildCounts:
    """What a campaign built from ``notify_staging`` would hold, without building it (a dry run)."""
    counts.recipients = {_RANK_NAMES[rank]: n for rank, n in store.execute(_COUNT)}
    return counts


# -- campaigns ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Campaign:
    id: int
    scope: str
    policy_version_id: int
    policy_version: str
    state: str
    total: int
    pending: int
    created_now: bool = False

    def as_dict(self) -> dict:
        return {"campaign_id": self.id, "scope": self.scope, "policy_version_id": self.policy_version_id,
                "policy_version": self.policy_version, "state": self.state, "total": self.total,
                "pending": self.pending, "created_now": self.created_now}


_CAMPAIGN_COLUMNS = "id, scope, policy_version_id, policy_version, state, total, pending"


def _create_campaign(store, version: PolicyVersion, *, scope: str, template_id: str | None, run_id: str,
                     now: datetime) -> int | None:
    conflict = ("(policy_version_id) where scope = 'live'" if scope == LIVE
                else "(policy_version_id, run_id) where scope = 'test'")
    row = store.execute(
        f"""insert into compliance.notification_campaigns
                (scope, policy_version_id, policy_version, published_at, effective_at, summary, url, template_id,
                 run_id, created_at, updated_at)
            values (%(scope)s, %(vid)s, %(version)s, %(published)s, %(effective)s, %(summary)s, %(url)s,
                    %(template)s, %(run)s, %(now)s, %(now)s)
            on conflict {conflict} do nothing
            returning id""",
        {"scope": scope, "vid": version.id, "version": version.version, "published": version.published_at,
         "effective": version.effective_at, "summary": version.summary, "url": version.url,
         "template": template_id, "run": run_id, "now": now}).fetchone()
    return row[0] if row else None


def existing(store, version_id: int, *, scope: str = LIVE, run_id: str | None = None) -> Campaign | None:
    where = "scope = 'live'" if scope == LIVE else "scope = 'test' and run_id = %(run)s"
    row = store.execute(f"select {_CAMPAIGN_COLUMNS} from compliance.notification_campaigns "
                        f"where policy_version_id = %(vid)s and {where}", {"vid": version_id, "run": run_id}).fetchone()
    return Campaign(*row) if row else None


def _record_totals(store, campaign_id: int, counts: BuildCounts, now: datetime) -> None:
    skipped = counts.total - counts.eligible
    state = "sending" if counts.eligible else "finished"
    store.execute("""update compliance.notification_campaigns
                     set total = %s, pending = %s, skipped = %s, build_counts = %s, state = %s, updated_at = %s,
                         finished_at = case when %s = 'finished' then %s end
                     where id = %s""",
                  (counts.total, counts.eligible, skipped, Jsonb(counts.as_dict()), state, now, state, now,
                   campaign_id))


def build_live(step: Step, version: PolicyVersion) -> tuple[Campaign, BuildCounts | None]:
    """The live campaign of ``version``: built now (whole, in one transaction) or found as an earlier run left it."""
    store, template_id = step.store, step.settings.notification_template_id
    run_id, now = step.ctx.run_id, step.ctx.now()
    with store.transaction():
        campaign_id = _create_campaign(store, version, scope=LIVE, template_id=template_id, run_id=run_id, now=now)
        if campaign_id is None:  # built by an earlier run, or by one that held the index until it committed
            return existing(store, version.id), None
        counts = stage(step, excluded=exclusions(store))
        store.execute(f"set local work_mem = '{WORK_MEM}'")  # the grouping sorts a million rows in memory
        counts.recipients = {_RANK_NAMES[rank]: n for rank, n in store.execute(
            _INSERT, {"campaign": campaign_id, "child": CHILD_REASON, "now": now})}
        _record_totals(store, campaign_id, counts, now)
    # The planner must know the campaign's rows before the senders' claims and updates are planned.
    store.execute("analyze compliance.notification_deliveries")
    return replace(existing(store, version.id), created_now=True), counts


def build_test(step: Step, version: PolicyVersion) -> tuple[Campaign, BuildCounts | None]:
    """A run's own campaign for its ``test_recipients``: no account is read, no real recipient is touched."""
    ops, store, dm, addresses = step.ops, step.store, step.datamap, step.params.test_recipients
    template_id, run_id, now = step.settings.notification_template_id, step.ctx.run_id, step.ctx.now()
    hasher = recipient_hasher(step.key)
    with store.transaction():
        campaign_id = _create_campaign(store, version, scope=TEST, template_id=template_id, run_id=run_id, now=now)
        if campaign_id is None:  # the same run, retried
            return existing(store, version.id, scope=TEST, run_id=run_id), None
        suppressed = suppressions(ops, dm, hasher)
        counts = BuildCounts(accounts_read=0)
        with store.cursor() as cur, cur.copy("copy compliance.notification_deliveries (campaign_id, seq, recipient, "
                                             "state, reason, finished_at) from stdin") as copy:
            for seq, address in enumerate(addresses, start=1):
                recipient = hasher(address)
                reason = suppressed.get(recipient)
                verdict = SUPPRESSED if reason else OK
                counts.recipients[verdict] = counts.recipients.get(verdict, 0) + 1
                copy.write_row((campaign_id, seq, recipient, "skipped" if reason else "pending", reason,
                                now if reason else None))
        _record_totals(store, campaign_id, counts, now)
    return replace(existing(store, version.id, scope=TEST, run_id=run_id), created_now=True), counts


def count_live(step: Step) -> BuildCounts:
    """A dry run: what the live campaign would hold if it were built now (nothing is written)."""
    store = step.store
    with store.transaction(force_rollback=True):
        counts = stage(step, excluded=exclusions(store))
        store.execute(f"set local work_mem = '{WORK_MEM}'")
        return count_staged(store, counts)

