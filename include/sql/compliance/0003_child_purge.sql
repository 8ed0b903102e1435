-- The child-data purge: its runs, one record per subject and run, what became of the reports
-- that named children, the downstream deletion notices owed to vendors, and the team's summary email.
-- A subject appears as its keyed hash (HMAC-SHA-256, include/subjects.py). The internal account id is
-- kept only while the account exists (a held or invalid account an operator must look at, a purge not
-- yet verified) and is removed once the purge is verified: the database refuses a verified purge that
-- still names its account. No email, name, phone, birth date or IP address is stored here.

-- One row per run: its parameters, its plan (hash and size) and how the plan was approved.
create table compliance.child_purge_runs (
    run_id          text primary key,
    as_of           date not null,
    run_type        text,                      -- Airflow's: scheduled runs are live, manual ones default to dry
    dry_run         boolean not null,
    targeted        boolean not null,          -- user_ids were given: only they were looked at
    max_subjects    integer,
    threshold       integer not null,          -- a plan erasing more subjects than this needs approval
    started_at      timestamptz not null,
    detected_at     timestamptz,
    planned_at      timestamptz,
    plan_hash       text check (plan_hash ~ '^[0-9a-f]{64}$'),
    plan_subjects   integer,                   -- subjects the plan erases
    plan_rows       bigint,                    -- their rows when planned (erased or redacted)
    approval        text check (approval in ('not_needed', 'plan_hash', 'review')),
    approval_state  text check (approval_state in ('not_needed', 'approved', 'waiting', 'rejected', 'timed_out',
                                                   'plan_changed')),
    approved_by     text,                      -- the reviewer (an Airflow user) or 'approve_plan parameter'
    approved_at     timestamptz,
    state           text not null check (state in ('detected', 'planned', 'dry_run', 'awaiting_approval',
                                                   'purging', 'purged', 'nothing_to_purge', 'rejected',
                                                   'plan_changed', 'failed')),
    counts          jsonb not null default '{}'::jsonb,
    finished_at     timestamptz
);
create index child_purge_runs_started on compliance.child_purge_runs (started_at);

-- One row per subject and run. `outcome` moves planned -> erasing -> purged within a live run; every
-- other outcome is final for that run:
--   planned            in this run's plan, not yet erased
--   erasing            its erasing transaction is about to commit with these counts (a record left here
--                      by a dead worker is settled by the next attempt: committed -> purged, else planned)
--   purged             erased from every mapped table, account row last, residual zero
--   held               an active legal hold: nothing touched
--   invalid            no rule could judge the account (e.g. a birth date in the future): `reason`
--   dry_run            a dry run's plan: nothing changed
--   deferred           beyond the run's max_subjects: the next run picks it up
--   approval_required  the plan needed a person's approval and did not get it (or changed since)
--   rejected           the reviewer rejected the plan (or its approval timed out: `reason`)
--   already_erased     gone by the time this run reached it (another run purged it)
--   not_eligible       no longer a child when re-checked under its claim
create table compliance.child_purges (
    run_id          text not null,
    subject_hash    text not null check (subject_hash ~ '^[0-9a-f]{64}$'),
    user_id         bigint,
    rules           text[] not null default '{}',
    problems        text[] not null default '{}',
    report_ids      bigint[] not null default '{}',
    outcome         text not null check (outcome in ('planned', 'erasing', 'purged', 'held', 'invalid', 'dry_run',
                                                      'deferred', 'approval_required', 'rejected', 'already_erased',
                                                      'not_eligible')),
    reason          text,
    planned_tables  jsonb not null default '{}'::jsonb,  -- schema.table -> {action, rows} when planned
    tables          jsonb,                               -- schema.table -> {action, rows} as erased
    rows_erased     bigint,
    kept            jsonb,                               -- rows tied by a shared address, left alone
    vendors         jsonb not null default '[]'::jsonb,  -- [{vendor_id, name, known, categories, shares}]
    holds           bigint[] not null default '{}',      -- active legal hold ids (outcome held)
    detected_at     timestamptz not null,
    purged_at       timestamptz,
    verified_at     timestamptz,                         -- the run's check after commit found nothing left
    updated_at      timestamptz not null,
    primary key (run_id, subject_hash),
    check ((outcome = 'purged') = (purged_at is not null)),
    check (verified_at is null or user_id is null),
    check (outcome <> 'invalid' or reason is not null)
);
create index child_purges_subject on compliance.child_purges (subject_hash);
create index child_purges_open on compliance.child_purges (run_id, outcome)
    where outcome in ('planned', 'erasing') or (outcome in ('purged', 'already_erased') and verified_at is null);

-- What became of each open report a run looked at (one row per run and report).
create table compliance.child_report_outcomes (
    run_id        text not null,
    report_id     bigint not null,
    outcome       text not null check (outcome in ('purged', 'no_match', 'already_gone', 'invalid')),
    reason        text,
    resolved      boolean not null,     -- this run set resolved_at in the operational database
    subject_hash  text,                 -- the purged subject the report led to
    recorded_at   timestamptz not null,
    primary key (run_id, report_id)
);

-- Downstream deletion notices: a vendor that received an erased subject's data must be told to delete it.
-- The compliance team sends them; a notice stays 'outstanding' here until it is marked sent.
create table compliance.vendor_deletion_notices (
    subject_hash  text not null,
    vendor_id     bigint not null,
    run_id        text not null,
    source        text not null,        -- the workflow that erased the subject, e.g. 'child_data_purge'
    vendor_name   text,
    vendor_known  boolean not null,     -- false: shares went to a vendor id that is not in the vendors table
    categories    text[] not null,
    shares        integer not null,
    status        text not null default 'outstanding' check (status in ('outstanding', 'sent')),
    created_at    timestamptz not null,
    sent_at       timestamptz,
    primary key (subject_hash, vendor_id, run_id)
);
create index vendor_deletion_notices_open on compliance.vendor_deletion_notices (vendor_id)
    where status = 'outstanding';

create view compliance.vendor_deletion_notices_outstanding as
select vendor_id, max(vendor_name) as vendor_name, bool_and(vendor_known) as vendor_known,
       count(distinct subject_hash) as subjects, sum(shares) as shares, min(created_at) as oldest
from compliance.vendor_deletion_notices
where status = 'outstanding'
group by vendor_id;

-- The compliance team's summary of a run: one email per run that purged anyone (delivery engine ledger).
create table compliance.child_purge_summaries (
    run_id       text primary key,
    recipient    text not null,
    status       text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    counts       jsonb not null,
    claimed_at   timestamptz not null,
    sent_at      timestamptz,
    message_id   text,
    error        text
);
