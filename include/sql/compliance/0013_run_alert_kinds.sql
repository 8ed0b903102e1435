-- A run is reported to on-call once per incident, and a run has two kinds: it failed (a task's failure was
-- final: 0011), or it was late (Airflow's deadline alert: not finished by its deadline, queued or running).
-- Each kind is once per run: a late run that later fails is told twice, once for each; a second failure or a
-- second miss of the same run adds nothing. A late run names no task.
alter table compliance.run_alerts add column kind text not null default 'failed' check (kind in ('failed', 'late'));
alter table compliance.run_alerts alter column task_id drop not null;
alter table compliance.run_alerts drop constraint run_alerts_pkey;
alter table compliance.run_alerts add primary key (dag_id, run_id, kind);
