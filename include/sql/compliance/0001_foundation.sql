-- The compliance store's foundation: the audit log, request deadline tracking and its escalation ledger.
-- Nothing here holds a data subject's email, name, phone or IP address: subjects appear as internal ids
-- (or keyed hashes once purged); staff addresses (assignees, the compliance team) are not subject data.

create table compliance.audit_log (
    id          bigint primary key,
    occurred_at timestamptz not null,
    actor       text not null,           -- 'airflow:<dag_id>' or 'cli:<os user>'
    action      text not null,           -- e.g. 'dsr.evaluated', 'dsr.escalation_sent'
    dag_id      text,
    run_id      text,
    task_id     text,
    details     jsonb not null default '{}'::jsonb,
    prev_hash   text not null,
    row_hash    text not null unique
);
create sequence compliance.audit_log_id_seq owned by compliance.audit_log.id;
create index audit_log_run on compliance.audit_log (dag_id, run_id);
create index audit_log_action on compliance.audit_log (action, occurred_at);

-- Append-only is enforced by the database, not by the goodwill of callers.
create function compliance.audit_log_refuse_change() returns trigger
language plpgsql as $$
begin
    raise exception 'compliance.audit_log is append-only: % is not allowed', tg_op
        using errcode = 'insufficient_privilege';
end $$;

create trigger audit_log_no_update before update on compliance.audit_log
    for each row execute function compliance.audit_log_refuse_change();
create trigger audit_log_no_delete before delete on compliance.audit_log
    for each row execute function compliance.audit_log_refuse_change();
create trigger audit_log_no_truncate before truncate on compliance.audit_log
    for each statement execute function compliance.audit_log_refuse_change();

-- A new row must name the current head of the chain as its predecessor. The writer holds the chain's
-- advisory lock while it computes the hash, so concurrent writers queue instead of forking the chain.
create function compliance.audit_log_check_chain() returns trigger
language plpgsql as $$
declare
    head text;
begin
    select row_hash into head from compliance.audit_log order by id desc limit 1;
    if new.prev_hash is distinct from coalesce(head, repeat('0', 64)) then
        raise exception 'compliance.audit_log: prev_hash does not continue the chain'
            using errcode = 'integrity_constraint_violation';
    end if;
    return new;
end $$;

create trigger audit_log_chain before insert on compliance.audit_log
    for each row execute function compliance.audit_log_check_chain();


-- One row per privacy request: its latest evaluation.
create table compliance.dsr_status (
    request_id      bigint primary key,
    regime          text,
    request_type    text,
    status          text,
    clock_start     date,
    ack_due         date,
    statutory_due   date,
    policy_due      date,
    effective_due   date,
    state           text not null check (state in ('awaiting_identity', 'on_track', 'due_soon', 'overdue',
                                                   'ack_overdue', 'closed_on_time', 'closed_late', 'invalid')),
    days_left       integer,
    extension       text not null default 'none' check (extension in ('none', 'valid', 'invalid')),
    flags           text[] not null default '{}',
    invalid_reason  text,
    assignee_email  text,                -- staff address the escalation goes to
    as_of           date not null,
    evaluated_at    timestamptz not null,
    run_id          text not null,
    check ((state = 'invalid') = (invalid_reason is not null))
);
create index dsr_status_state on compliance.dsr_status (state, days_left);

-- One row per evaluation run: the watermark that finds requests closed since the last run.
create table compliance.dsr_runs (
    run_id          text primary key,
    as_of           date not null,
    dry_run         boolean not null,
    started_at      timestamptz not null,
    finished_at     timestamptz,
    max_request_id  bigint,
    evaluated       integer not null default 0,
    changed         integer not null default 0,
    counts          jsonb not null default '{}'::jsonb
);

-- The escalation ledger: each (request, level) is emailed once. A row is claimed as 'pending' before
-- the send and marked 'sent' after it, so a crash re-sends at most the batch that was in flight.
create table compliance.dsr_escalations (
    request_id   bigint not null,
    level        text not null check (level in ('ack_overdue', 'due_soon', 'overdue')),
    recipient    text not null,
    recipient_is_team boolean not null,
    status       text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    due_date     date,
    days_left    integer,
    claimed_at   timestamptz not null,
    claimed_run  text not null,
    sent_at      timestamptz,
    message_id   text,
    error        text,
    primary key (request_id, level)
);
create index dsr_escalations_pending on compliance.dsr_escalations (status) where status = 'pending';

-- One digest per day to the compliance team.
create table compliance.dsr_digests (
    digest_date  date primary key,
    recipient    text not null,
    status       text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    counts       jsonb not null,
    claimed_at   timestamptz not null,
    claimed_run  text not null,
    sent_at      timestamptz,
    message_id   text,
    error        text
);
