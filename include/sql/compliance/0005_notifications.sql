-- Policy-change notification campaigns: one campaign per policy version, a ledger with one row
-- per (campaign, recipient), and one row per Mail Send request.
--
-- No address is stored here. A recipient is the keyed hash of its normalised address
-- (include.subjects.address_hash: HMAC-SHA-256 of the trimmed, lower-case address) plus the internal ids of
-- the accounts that held it when the campaign was built; the address itself is read from the operational
-- database at send time, when eligibility is checked again.

create table compliance.notification_campaigns (
    id                bigint generated always as identity primary key,
    scope             text not null check (scope in ('live', 'test')),  -- test: a run's test_recipients only
    policy_version_id bigint not null,
    policy_version    text not null,
    -- What the message says, copied from policy_versions when the campaign was built, so that every batch
    -- of one campaign says the same thing even if the row is edited mid-campaign.
    published_at      timestamptz,
    effective_at      timestamptz,
    summary           text,
    url               text,
    template_id       text,             -- SendGrid dynamic template, or null for the project's own templates
    run_id            text not null,    -- the run that built it
    state             text not null default 'sending' check (state in ('sending', 'finished')),
    -- Progress counters, changed in the same transaction as the ledger rows they count.
    total             integer not null default 0,
    pending           integer not null default 0,
    sent              integer not null default 0,
    failed            integer not null default 0,
    skipped           integer not null default 0,
    -- How the recipients were found: accounts read, deleted, without an address, invalid addresses,
    -- suppressed, children, accounts sharing an address. Counts only.
    build_counts      jsonb not null default '{}'::jsonb,
    created_at        timestamptz not null,
    updated_at        timestamptz not null,
    finished_at       timestamptz,
    check (total = pending + sent + failed + skipped),
    check (pending >= 0 and sent >= 0 and failed >= 0 and skipped >= 0),
    check ((state = 'finished') = (finished_at is not null))
);
-- One live campaign per policy version; a test campaign per (version, run).
create unique index notification_campaigns_live on compliance.notification_campaigns (policy_version_id)
    where scope = 'live';
create unique index notification_campaigns_test on compliance.notification_campaigns (policy_version_id, run_id)
    where scope = 'test';
create index notification_campaigns_created on compliance.notification_campaigns (created_at desc);

-- The ledger. Rows are claimed in seq order with SELECT ... FOR UPDATE SKIP LOCKED inside the transaction
-- that sends them and marks them. No index covers `state`, so marking a row is a HOT update: no index
-- entry is written, provided the page has room for the row's new version — fillfactor 40 leaves room for
-- every row of a page to be marked once (a sent row is ~190 bytes, a pending one ~150), which made marking
-- a batch of 1,000 three times cheaper than at 70. Claims walk (campaign_id, seq) from a watermark.
-- (campaign_id has no foreign key: its rows are written only by the transaction that creates the campaign,
-- and a per-row key check cost a tenth of the build of a million rows; recipient is compared bytewise.)
create table compliance.notification_deliveries (
    campaign_id  bigint not null,
    seq          integer not null,        -- claim order within the campaign
    recipient    text collate "C" not null,  -- keyed hash (hex) of the normalised address
    user_ids     bigint[] not null default '{}',  -- accounts that held the address at build time
    state        text not null default 'pending' check (state in ('pending', 'sent', 'failed', 'skipped')),
    reason       text,                    -- why failed or skipped, in words without the address
    attempts     smallint not null default 0,  -- HTTP attempts of the Mail Send requests answered for it
    message_id   text,                    -- SendGrid's X-Message-Id of the request that carried it
    batch_id     bigint,                  -- compliance.notification_batches.id of that request
    finished_at  timestamptz,
    primary key (campaign_id, recipient),
    unique (campaign_id, seq),
    check ((state in ('failed', 'skipped')) = (reason is not null))
) with (fillfactor = 40);

-- One row per Mail Send request. It is written, and committed on its own, *before* the request goes out,
-- with the id of the transaction that claims and marks its rows; that transaction marks it sent or failed
-- when it commits. A row still `in_flight` after its transaction ended is a request whose outcome nobody
-- knows (the sender died, or timed out, between the send and the commit): its rows were sent again, so
-- they are the "duplicates at risk". The summary turns such rows into `unknown`.
create table compliance.notification_batches (
    id            bigint generated always as identity primary key,
    campaign_id   bigint not null references compliance.notification_campaigns (id),
    run_id        text not null,
    sender        text not null,          -- task id and map index
    seqs          integer[] not null,     -- the ledger rows it carried
    size          integer not null,
    state         text not null check (state in ('in_flight', 'sent', 'failed', 'not_sent', 'unknown')),
    xact          xid8 not null,          -- the claiming transaction
    message_id    text,
    http_attempts smallint,
    reason        text,
    started_at    timestamptz not null,
    finished_at   timestamptz
);
create index notification_batches_campaign on compliance.notification_batches (campaign_id, id);
create index notification_batches_unsettled on compliance.notification_batches (campaign_id)
    where state in ('in_flight', 'unknown');

-- The compliance page's view: progress per campaign, and the rows of requests whose outcome is unknown.
create view compliance.notification_campaign_progress as
select c.id as campaign_id, c.scope, c.policy_version_id, c.policy_version, c.state, c.total, c.sent, c.failed,
       c.skipped, c.pending,
       round(100.0 * (c.sent + c.failed + c.skipped) / nullif(c.total, 0), 1) as done_percent,
       coalesce(r.batches, 0) as unknown_batches,
       coalesce(r.rows, 0) as duplicates_at_risk,
       c.created_at, c.updated_at, c.finished_at, c.run_id
from compliance.notification_campaigns c
left join lateral (
    select count(*) as batches, sum(b.size) as rows
    from compliance.notification_batches b
    where b.campaign_id = c.id
      and (b.state = 'unknown'
           or (b.state = 'in_flight' and pg_xact_status(b.xact) is distinct from 'in progress'))
) r on true;
