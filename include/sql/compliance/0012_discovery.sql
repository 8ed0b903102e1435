-- Personal-data discovery (DAG personal_data_discovery, include/discovery/): personal data the data map does not
-- name, mapped columns gone or no longer personal, and objects no row names. Never a sampled value: names, a
-- kind, a confidence and counts.

-- One row per finding, whatever the number of runs that saw it (two runs at once upsert the same row): its latest
-- confidence and counts, whether a person dismissed it (and why), and whether the compliance team was told.
create table compliance.discovery_findings (
    finding_id     bigserial primary key,
    finding_key    text not null unique,          -- connection:schema.table.column:finding
    connection_id  text not null,                  -- the Airflow connection of the database
    schema_name    text not null,
    table_name     text not null,
    column_name    text,                           -- null: the whole table (a mapped table gone)
    finding        text not null check (finding in ('unmapped', 'mapped_gone', 'mapped_not_personal')),
    kind           text check (kind in ('email', 'phone', 'person_name', 'postal_address', 'ip_address',
                                        'birth_date', 'device_identifier', 'free_text')),
    confidence     numeric(4, 3) not null check (confidence between 0 and 1),
    matched        integer not null check (matched >= 0),   -- sampled values that showed the kind
    sampled        integer not null check (sampled >= 0),   -- non-null values sampled
    suggestion     text not null default '',       -- the data-map YAML to paste
    status         text not null default 'open' check (status in ('open', 'dismissed', 'resolved')),
    first_run_id   text not null,
    last_run_id    text not null,
    first_seen_at  timestamptz not null,
    last_seen_at   timestamptz not null,
    resolved_at    timestamptz,                    -- a run scanned the table and no longer saw it
    dismissed_at   timestamptz,
    dismissed_by   text,
    dismiss_reason text,
    -- the email to the compliance team: pending until sent once; withdrawn when dismissed or resolved first
    notice         text not null default 'pending' check (notice in ('pending', 'sent', 'failed', 'withdrawn')),
    notice_sent_at timestamptz,
    message_id     text,
    notice_error   text,
    check ((status = 'dismissed') = (dismissed_at is not null and dismiss_reason is not null))
);
create index discovery_findings_open on compliance.discovery_findings (first_seen_at) where status = 'open';
create index discovery_findings_notice on compliance.discovery_findings (finding_id) where notice = 'pending';
create index discovery_findings_scope on compliance.discovery_findings (connection_id, schema_name, table_name);

-- What each run saw: its sightings of the findings, with the run's own confidence and counts.
create table compliance.discovery_run_findings (
    run_id      text not null,
    finding_id  bigint not null references compliance.discovery_findings (finding_id),
    kind        text,
    confidence  numeric(4, 3) not null,
    matched     integer not null,
    sampled     integer not null,
    primary key (run_id, finding_id)
);

-- One row per run: what was scanned and the object-storage orphans (per bucket: count, bytes, oldest).
create table compliance.discovery_runs (
    run_id        text primary key,
    scanned_at    timestamptz not null,
    connections   text[] not null,
    tables        integer not null,
    columns       integer not null,
    sampled_rows  bigint not null,
    findings      integer not null,
    new_findings  integer not null,
    problems      jsonb not null default '[]',
    orphans       jsonb                            -- null until the object storage was listed
);
