-- One outbox for the low-volume emails: escalations, the daily digest, purge summaries, vendor violation notices
-- and on-call alerts. Each had a ledger table of its own with the same life (pending → sent or failed, claimed
-- FOR UPDATE SKIP LOCKED by the delivery engine) and its own copy of the claim and mark code; now one table and
-- one ledger (include/delivery/outbox.py) keep it, and each email type keeps only what is its own: which rows it
-- records and what a claimed row says. The campaign's ledger (notification_deliveries, 0005) stays its own: a
-- million rows a campaign, claimed in seq order by lanes, marked as HOT updates.
--
-- A row is (kind, key): the kind is the ledger's name, also the audit actions' prefix ("dsr.escalation" writes
-- dsr.escalation_sent / _failed), the key what the message tells (123/overdue, 2026-11-25, a run id), so that
-- `on conflict (kind, key) do nothing` records each once whatever the runs. What is the kind's own (a request's
-- level and due date, a digest's counts, an alert's reason) is in `facts`. No data subject's personal data:
-- ids, dates, counts, and staff addresses (assignees, the compliance team, on-call) as before.
create table compliance.outbox (
    kind         text not null check (kind in ('dsr.escalation', 'dsr.digest', 'child_purge.summary',
                                               'vendor_manifest.violation_notice', 'run_alerts')),
    key          text not null,
    recipient    text not null,
    status       text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    facts        jsonb not null default '{}'::jsonb,
    claimed_at   timestamptz not null,            -- when it was recorded (an alert: when the run failed or was late)
    claimed_run  text not null,                   -- the run that recorded it
    sent_at      timestamptz,
    message_id   text,
    error        text,
    primary key (kind, key)
);
-- Claims (a kind's pending rows in the order they were recorded), the pending counts, and the compliance page's
-- reads through the views below: rows by status per kind, the failed ones with the oldest first.
create index outbox_kind_status on compliance.outbox (kind, status, claimed_at);
-- Escalations are sent recipient by recipient (one message lists all of a recipient's pending ones; 0002).
create index outbox_pending_recipient on compliance.outbox (kind, lower(recipient), claimed_at)
    where status = 'pending';

-- The rows of the old ledgers move over as they are: pending ones are sent by the next run, sent and failed ones
-- stay the record. Keys are built as the code builds them (include/deadlines/escalation.py and the others).
insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run, sent_at, message_id, error)
select 'dsr.escalation', request_id || '/' || level, recipient, status,
       jsonb_build_object('request_id', request_id, 'level', level, 'recipient_is_team', recipient_is_team,
                          'due_date', due_date, 'days_left', days_left),
       claimed_at, claimed_run, sent_at, message_id, error
from compliance.dsr_escalations;

insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run, sent_at, message_id, error)
select 'dsr.digest', to_char(digest_date, 'YYYY-MM-DD'), recipient, status,
       jsonb_build_object('digest_date', digest_date, 'counts', counts),
       claimed_at, claimed_run, sent_at, message_id, error
from compliance.dsr_digests;

-- A summary and an alert named no recording run: theirs is the run they are about.
insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run, sent_at, message_id, error)
select 'child_purge.summary', run_id, recipient, status, jsonb_build_object('run_id', run_id, 'counts', counts),
       claimed_at, run_id, sent_at, message_id, error
from compliance.child_purge_summaries;

insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run, sent_at, message_id, error)
select 'vendor_manifest.violation_notice', vendor_id || '/' || period_label, recipient, status,
       jsonb_build_object('vendor_id', vendor_id, 'period_label', period_label),
       claimed_at, claimed_run, sent_at, message_id, error
from compliance.vendor_violation_notices;

insert into compliance.outbox (kind, key, recipient, status, facts, claimed_at, claimed_run, sent_at, message_id, error)
select 'run_alerts', dag_id || '/' || run_id || '/' || kind, recipient, status,
       jsonb_build_object('dag_id', dag_id, 'run_id', run_id, 'kind', kind, 'task_id', task_id, 'reason', reason),
       failed_at, run_id, sent_at, message_id, error
from compliance.run_alerts;

drop table compliance.dsr_escalations, compliance.dsr_digests, compliance.child_purge_summaries,
           compliance.vendor_violation_notices, compliance.run_alerts;

-- The old names stay, as views with the old columns, names, types and order: the compliance page, the command
-- line and checks outside the product read them. They are for reading; the code writes the outbox.
create view compliance.dsr_escalations as
select (facts ->> 'request_id')::bigint as request_id, facts ->> 'level' as level, recipient,
       (facts ->> 'recipient_is_team')::boolean as recipient_is_team, status, (facts ->> 'due_date')::date as due_date,
       (facts ->> 'days_left')::integer as days_left, claimed_at, claimed_run, sent_at, message_id, error
from compliance.outbox where kind = 'dsr.escalation';

create view compliance.dsr_digests as
select (facts ->> 'digest_date')::date as digest_date, recipient, status, facts -> 'counts' as counts, claimed_at,
       claimed_run, sent_at, message_id, error
from compliance.outbox where kind = 'dsr.digest';

create view compliance.child_purge_summaries as
select facts ->> 'run_id' as run_id, recipient, status, facts -> 'counts' as counts, claimed_at, sent_at, message_id,
       error
from compliance.outbox where kind = 'child_purge.summary';

create view compliance.vendor_violation_notices as
select (facts ->> 'vendor_id')::bigint as vendor_id, facts ->> 'period_label' as period_label, recipient, status,
       claimed_at, claimed_run, sent_at, message_id, error
from compliance.outbox where kind = 'vendor_manifest.violation_notice';

create view compliance.run_alerts as
select facts ->> 'dag_id' as dag_id, facts ->> 'run_id' as run_id, facts ->> 'task_id' as task_id,
       facts ->> 'reason' as reason, recipient, status, claimed_at as failed_at, sent_at, message_id, error,
       facts ->> 'kind' as kind
from compliance.outbox where kind = 'run_alerts';
