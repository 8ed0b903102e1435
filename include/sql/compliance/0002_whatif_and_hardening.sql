-- What-if evaluations (a run whose as_of is not its own day) are kept apart from the live status:
-- compliance.dsr_status changes only from live evaluations. One row per (run, request), pruned after the
-- `whatif_retention_days` setting.
create table compliance.dsr_whatif (
    run_id          text not null,
    request_id      bigint not null,
    regime          text,
    request_type    text,
    status          text,
    clock_start     date,
    ack_due         date,
    statutory_due   date,
    policy_due      date,
    effective_due   date,
    state           text not null,
    days_left       integer,
    extension       text not null default 'none',
    flags           text[] not null default '{}',
    invalid_reason  text,
    assignee_email  text,
    as_of           date not null,
    evaluated_at    timestamptz not null,
    primary key (run_id, request_id),
    check ((state = 'invalid') = (invalid_reason is not null))
);
create index dsr_whatif_evaluated_at on compliance.dsr_whatif (evaluated_at);

alter table compliance.dsr_runs add column what_if boolean not null default false;

-- The escalation ledger is read recipient by recipient when sending.
create index dsr_escalations_pending_recipient on compliance.dsr_escalations (lower(recipient), claimed_at)
    where status = 'pending';

-- A fingerprint of each live row's evaluation (a 64-bit hash of the compared columns): a run sends the
-- store (request id, fingerprint) pairs first, the store says which differ, and only those rows travel
-- in full. A repeated run with nothing changed writes nothing and moves little.
alter table compliance.dsr_status add column fingerprint bigint;
