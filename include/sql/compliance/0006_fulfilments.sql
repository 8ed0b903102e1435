-- Request fulfilment (dsr_fulfilment): what was done for each privacy request, the plan of each
-- run (a dry run's results live only there), and the records waiting for their operational transaction.
-- A subject appears as its keyed hash (HMAC-SHA-256, include/subjects.py). An erased subject's account id
-- is kept only until the erasure is verified after commit (the database refuses a verified row that still
-- names it). No email, name, phone, birth date or IP address is stored here; an export package's content
-- lives only in the object store, under exports/request=<id>/package.zip.

-- One row per run: its parameters, its erasure plan (hash, size) and how that plan was approved.
create table compliance.dsr_fulfilment_runs (
    run_id          text primary key,
    as_of           date not null,                 -- the run's day (the 12-month window of the right to know)
    run_type        text,
    dry_run         boolean not null,
    request_ids     bigint[] not null default '{}', -- a targeted run acts only on these
    threshold       integer not null,              -- a plan erasing more subjects than this needs approval
    started_at      timestamptz not null,
    planned_at      timestamptz,
    plan_hash       text check (plan_hash ~ '^[0-9a-f]{64}$'),
    erase_subjects  integer,                       -- subjects the plan erases (existing accounts, no hold)
    approval        text check (approval in ('not_needed', 'plan_hash', 'review')),
    approval_state  text check (approval_state in ('not_needed', 'approved', 'waiting', 'rejected', 'timed_out',
                                                   'plan_changed')),
    approved_by     text,                          -- the reviewer (an Airflow user) or 'approve_plan parameter'
    approved_at     timestamptz,
    state           text not null check (state in ('planning', 'dry_run', 'planned', 'awaiting_approval',
                                                   'plan_changed', 'done', 'rejected', 'failed')),
    counts          jsonb not null default '{}'::jsonb,
    finished_at     timestamptz
);
create index dsr_fulfilment_runs_started on compliance.dsr_fulfilment_runs (started_at desc);

-- What a run decided for each request it picked up, before acting: its work list (a retry of the run carries
-- out this plan), and for a dry run its whole result (a dry run writes nothing else).
--   outcome null   to act on: export, erase, restrict, opt_out
--   otherwise      decided without acting: held, manual, skipped, invalid, no_account
create table compliance.dsr_fulfilment_plans (
    run_id          text not null,
    request_id      bigint not null,
    regime          text,
    request_type    text,
    action          text not null check (action in ('export', 'erase', 'restrict', 'opt_out', 'manual', 'none')),
    outcome         text check (outcome in ('held', 'manual', 'skipped', 'invalid', 'no_account')),
    reason          text,
    subject_hash    text check (subject_hash ~ '^[0-9a-f]{64}$'),
    planned_tables  jsonb,                         -- erasures: schema.table -> {action, rows} when planned
    vendors         jsonb,                         -- erasures: [{vendor_id, name, known, categories, shares}]
    holds           bigint[] not null default '{}', -- held: the active legal hold ids
    primary key (run_id, request_id),
    check (outcome is null or reason is not null)
);

-- One row per request: the latest outcome. A fulfilled request (exported, erased, restricted, opted_out) is
-- never acted on again; any other outcome is looked at again by the next run and rewritten only if it changed.
--   exported           the export package is in the object store (package_uri, package_sha256)
--   erased             erased through the erasure engine, account row last, nothing left (erased_tables)
--   restricted         processing_restricted set on the account
--   opted_out          do_not_sell and do_not_sell_at set on the account
--   held               an erasure under an active legal hold (holds): nothing touched
--   approval_required  an erasure whose plan needed a person's approval and did not get it
--   manual             rectification or objection: a person must act (reason says what)
--   skipped            awaiting identity verification
--   invalid            unknown regime or type, a type the regime does not grant, an unreadable date
--   no_account         the request names no account, or one that does not exist
create table compliance.dsr_fulfilments (
    request_id          bigint primary key,
    regime              text,
    request_type        text,
    action              text not null check (action in ('export', 'erase', 'restrict', 'opt_out', 'manual', 'none')),
    outcome             text not null check (outcome in ('exported', 'erased', 'restricted', 'opted_out', 'held',
                                                         'approval_required', 'manual', 'skipped', 'invalid',
                                                         'no_account')),
    reason              text,
    subject_hash        text check (subject_hash ~ '^[0-9a-f]{64}$'),
    user_id             bigint,                    -- erased: the account id until the erasure is verified
    package_object      text,                      -- object name under the evidence location
    package_uri         text,
    package_sha256      text check (package_sha256 ~ '^[0-9a-f]{64}$'),
    package_bytes       bigint,
    package_rows        jsonb,                     -- category -> schema.table -> rows in the package
    erased_tables       jsonb,                     -- schema.table -> {action, rows}
    rows_erased         bigint,
    vendors             jsonb not null default '[]'::jsonb,  -- vendors owed a deletion notice (erased)
    holds               bigint[] not null default '{}',      -- active legal hold ids (held)
    request_completed   boolean not null default false,      -- this DAG marked the request completed
    run_id              text not null,             -- the run that recorded this outcome
    first_recorded_at   timestamptz not null,
    recorded_at         timestamptz not null,      -- when this outcome was recorded (a fulfilment: when done)
    verified_at         timestamptz,               -- erased: checked again after commit, nothing left
    check ((outcome = 'exported') = (package_sha256 is not null)),
    check (outcome <> 'erased' or (erased_tables is not null and rows_erased is not null)),
    check (verified_at is null or user_id is null),
    check (user_id is null or outcome = 'erased'),
    check (outcome in ('exported', 'erased', 'restricted', 'opted_out') or reason is not null)
);
-- The compliance page: newest first, by outcome newest first, by run.
create index dsr_fulfilments_recent on compliance.dsr_fulfilments (recorded_at desc, request_id desc);
create index dsr_fulfilments_outcome on compliance.dsr_fulfilments (outcome, recorded_at desc, request_id desc);
create index dsr_fulfilments_run on compliance.dsr_fulfilments (run_id, recorded_at desc, request_id desc);
create index dsr_fulfilments_unverified on compliance.dsr_fulfilments (request_id) where user_id is not null;
create index dsr_fulfilments_subject on compliance.dsr_fulfilments (subject_hash);

-- A fulfilment's record, written before its operational transaction commits (the transaction id says which
-- one): a worker that dies between that commit and the final record leaves the row here, and the next attempt
-- settles it by asking PostgreSQL whether the transaction committed (txid_status).
create table compliance.dsr_fulfilment_pending (
    request_id      bigint primary key,
    run_id          text not null,
    ops_xid         bigint not null,
    record          jsonb not null,                -- the compliance.dsr_fulfilments row to write
    created_at      timestamptz not null
);
