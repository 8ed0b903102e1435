-- One erasure run, whichever DAG erases: the child-data purge and request fulfilment each kept a run table
-- with the same plan and approval columns (0003 child_purge_runs, 0006 dsr_fulfilment_runs). Both now live in
-- compliance.erasure_runs, written by include/erasure/run.py; the two old names stay, as views with their old
-- columns, for the compliance page, reports and outside checks. Each DAG keeps its own subject records
-- (child_purges, dsr_fulfilment_plans / dsr_fulfilments): they say different things.
create table compliance.erasure_runs (
    dag_id text not null check (dag_id in ('child_data_purge', 'dsr_fulfilment')),
    run_id text not null,
    -- As the two run tables had them: the run's day in the configured zone, Airflow's run type, a dry run.
    as_of date not null, run_type text, dry_run boolean not null,
    -- A targeted run was told which accounts (the purge) or requests (fulfilment) to act on: these.
    targeted boolean not null, targets bigint[] not null default '{}',
    max_subjects integer,                          -- the purge's cap on subjects erased in one run
    threshold integer not null,                    -- a plan erasing more subjects than this needs approval
    started_at timestamptz not null, detected_at timestamptz, planned_at timestamptz,
    plan_hash text check (plan_hash ~ '^[0-9a-f]{64}$'),
    plan_subjects integer, plan_rows bigint,       -- subjects the plan erases; their rows when planned
    approval text check (approval in ('not_needed', 'plan_hash', 'review')),
    approval_state text check (approval_state in ('not_needed', 'approved', 'waiting', 'rejected', 'timed_out',
                                                  'plan_changed')),
    approved_by text, approved_at timestamptz,     -- the reviewer (an Airflow user) or 'approve_plan parameter'
    state text not null,
    counts jsonb not null default '{}'::jsonb,
    finished_at timestamptz,
    primary key (dag_id, run_id),
    check ((dag_id = 'child_data_purge'
            and state in ('detected', 'planned', 'dry_run', 'awaiting_approval', 'purging', 'purged',
                          'nothing_to_purge', 'rejected', 'plan_changed', 'failed'))
        or (dag_id = 'dsr_fulfilment'
            and state in ('planning', 'dry_run', 'planned', 'awaiting_approval', 'plan_changed', 'done', 'rejected',
                          'failed')))
);
create index erasure_runs_started on compliance.erasure_runs (dag_id, started_at desc);

insert into compliance.erasure_runs (dag_id, run_id, as_of, run_type, dry_run, targeted, targets, max_subjects,
                                     threshold, started_at, detected_at, planned_at, plan_hash, plan_subjects,
                                     plan_rows, approval, approval_state, approved_by, approved_at, state, counts,
                                     finished_at)
select 'child_data_purge', run_id, as_of, run_type, dry_run, targeted, '{}', max_subjects, threshold, started_at,
       detected_at, planned_at, plan_hash, plan_subjects, plan_rows, approval, approval_state, approved_by,
       approved_at, state, counts, finished_at
from compliance.child_purge_runs;

insert into compliance.erasure_runs (dag_id, run_id, as_of, run_type, dry_run, targeted, targets, max_subjects,
                                     threshold, started_at, detected_at, planned_at, plan_hash, plan_subjects,
                                     plan_rows, approval, approval_state, approved_by, approved_at, state, counts,
                                     finished_at)
select 'dsr_fulfilment', run_id, as_of, run_type, dry_run, cardinality(request_ids) > 0, request_ids, null, threshold,
       started_at, null, planned_at, plan_hash, erase_subjects, null, approval, approval_state, approved_by,
       approved_at, state, counts, finished_at
from compliance.dsr_fulfilment_runs;

drop table compliance.child_purge_runs;
drop table compliance.dsr_fulfilment_runs;

-- The old names, with their old columns in their old order.
create view compliance.child_purge_runs as
    select run_id, as_of, run_type, dry_run, targeted, max_subjects, threshold, started_at, detected_at, planned_at,
           plan_hash, plan_subjects, plan_rows, approval, approval_state, approved_by, approved_at, state, counts,
           finished_at
    from compliance.erasure_runs where dag_id = 'child_data_purge';

create view compliance.dsr_fulfilment_runs as
    select run_id, as_of, run_type, dry_run, targets as request_ids, threshold, started_at, planned_at, plan_hash,
           plan_subjects as erase_subjects, approval, approval_state, approved_by, approved_at, state, counts,
           finished_at
    from compliance.erasure_runs where dag_id = 'dsr_fulfilment';
