-- On-call is told when a run fails: one row per failed run (the first failing task's one-sentence reason),
-- written by the task's failure callback and sent by the delivery engine. The primary key makes it once per
-- incident: a second task failing in the same run, or the same task failing again after a clear, adds
-- nothing. The reason is the task's own one-sentence failure with addresses, IP addresses and long digit
-- runs blanked out (include/alerts.py); no personal data.
create table compliance.run_alerts (
    dag_id       text not null,
    run_id       text not null,
    task_id      text not null,                   -- the first task whose failure was final
    reason       text not null,
    recipient    text not null,                   -- on-call (settings alert_email, else the compliance team)
    status       text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    failed_at    timestamptz not null,
    sent_at      timestamptz,
    message_id   text,
    error        text,
    primary key (dag_id, run_id)
);
create index run_alerts_pending on compliance.run_alerts (status) where status = 'pending';
