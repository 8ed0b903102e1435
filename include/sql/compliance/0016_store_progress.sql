-- An erasure reaches every store the data map names (SPEC §3.1): other databases and the files the rows name.
-- No transaction spans stores, so each subject's progress is recorded here, per store and per file, as the
-- erasure goes: a worker killed half-way, or a store lost mid-erasure, resumes from here on the retry, and a
-- subject is erased only when every store's residual is zero and every file is verified gone.
-- Subjects appear as keyed hashes; files as their locations (gs://bucket/path), never by what they hold.

-- Per subject and store (the Airflow connection id): rows erased there so far, and when it was found empty.
create table compliance.erasure_store_progress (
    subject_hash  text not null check (subject_hash ~ '^[0-9a-f]{64}$'),
    store         text not null,                       -- the connection, e.g. support_db
    tables        jsonb not null default '{}'::jsonb,  -- schema.table -> rows erased (summed over attempts)
    rows_erased   bigint not null default 0,
    done_at       timestamptz,                         -- the residual in this store was zero
    updated_at    timestamptz not null,
    primary key (subject_hash, store)
);

-- Per subject and file: found (the rows naming it were read before they were erased), then deleted, gone
-- already (404), or not allowed (a bucket the settings do not list: a person must act).
create table compliance.erasure_files (
    subject_hash  text not null check (subject_hash ~ '^[0-9a-f]{64}$'),
    uri           text not null,                       -- gs://bucket/path (or file:// for an export package)
    kind          text not null check (kind in ('file', 'export_package')),
    source        text not null,                       -- connection:schema.table.column, or the evidence store
    state         text not null check (state in ('found', 'deleted', 'already_gone', 'not_allowed')),
    bytes         bigint,
    found_at      timestamptz not null,
    done_at       timestamptz,                         -- verified gone (deleted or already_gone)
    primary key (subject_hash, uri)
);
create index erasure_files_open on compliance.erasure_files (subject_hash) where done_at is null;

-- A subject with a file the erasure may not touch is 'incomplete' (its account and the operational rows stay,
-- so that a later run finishes once a person has dealt with the file).
alter table compliance.child_purges drop constraint child_purges_outcome_check;
alter table compliance.child_purges add constraint child_purges_outcome_check
    check (outcome in ('planned', 'erasing', 'purged', 'held', 'invalid', 'dry_run', 'deferred', 'approval_required',
                       'rejected', 'already_erased', 'not_eligible', 'incomplete'));
alter table compliance.dsr_fulfilments drop constraint dsr_fulfilments_outcome_check;
alter table compliance.dsr_fulfilments add constraint dsr_fulfilments_outcome_check
    check (outcome in ('exported', 'erased', 'restricted', 'opted_out', 'held', 'approval_required', 'manual',
                       'skipped', 'invalid', 'no_account', 'incomplete'));

-- Export packages are personal data: they expire after the export_retention_days setting, and an erasure deletes
-- the subject's earlier ones. When that happened:
alter table compliance.dsr_fulfilments add column package_deleted_at timestamptz;
create index dsr_fulfilments_packages on compliance.dsr_fulfilments (recorded_at)
    where package_object is not null and package_deleted_at is null;
