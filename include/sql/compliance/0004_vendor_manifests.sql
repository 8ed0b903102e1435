-- Vendor data-sharing manifests: one row per (vendor, period) whose manifest was written, the
-- runs that wrote them, and the violation-email ledger (each (vendor, period) emailed once).
-- Subjects appear only as counts; the data files themselves live in the object store.

create table compliance.vendor_manifests (
    vendor_id           bigint not null,      -- as named by the shares (an unknown vendor id included)
    period_label        text not null,        -- '2026-11-24', '<start>--<end>', or 'undated'
    period_start        timestamptz,          -- half-open [start, end) in UTC; null for 'undated'
    period_end          timestamptz,
    vendor_known        boolean not null,     -- false: no vendors row has this id
    vendor_name         text,                 -- a company's name (vendors.name), not a data subject's
    vendor_kind         text,
    data_object         text not null,        -- object name under the evidence location
    data_uri            text not null,
    manifest_object     text not null,
    manifest_uri        text not null,
    data_sha256         text not null check (data_sha256 ~ '^[0-9a-f]{64}$'),
    data_bytes          bigint not null,
    content_sha256      text not null,        -- of manifest.json without generated_at and run_id
    row_count           bigint not null check (row_count > 0),
    subject_count       bigint not null,
    record_count        bigint not null,      -- sum of the shares' record counts
    counts_by_category  jsonb not null,
    violations          jsonb not null,       -- rule -> number of shares breaking it (every rule listed)
    violation_rows      bigint not null,      -- shares breaking at least one rule
    violation_examples  jsonb not null,       -- rule -> the first share ids (by shared_at, id) breaking it
    invalid_rows        jsonb not null,       -- problem -> number of dirty shares (flagged, never dropped)
    revision            integer not null default 1,  -- 1 + how many times the content changed since
    run_id              text not null,        -- the run that wrote the current objects
    generated_at        timestamptz not null,
    primary key (vendor_id, period_label),
    check ((period_label = 'undated') = (period_start is null)),
    check (period_start is null or period_start < period_end)
);
-- The compliance page lists manifests newest period first, for all vendors or one vendor.
create index vendor_manifests_by_period on compliance.vendor_manifests (period_start desc nulls last, vendor_id);
create index vendor_manifests_by_vendor on compliance.vendor_manifests (vendor_id, period_start desc nulls last);
create index vendor_manifests_with_violations on compliance.vendor_manifests (period_start desc nulls last)
    where violation_rows > 0;

-- One row per run: its period, what it planned and what each vendor's step did ("a period with no shares
-- writes nothing and says so" is read here). A dry run is recorded too, marked as such.
create table compliance.vendor_manifest_runs (
    run_id          text primary key,
    period_label    text not null,
    period_start    timestamptz not null,
    period_end      timestamptz not null,
    vendor_ids      bigint[] not null default '{}',   -- the run's targets; empty = every vendor of the period
    dry_run         boolean not null,
    started_at      timestamptz not null,
    finished_at     timestamptz,
    planned         integer not null default 0,
    outcomes        jsonb not null default '{}'::jsonb,  -- outcome -> number of (vendor, period) steps
    shares          bigint,                              -- shares in the period over the planned vendors
    shares_without_vendor bigint not null default 0,     -- shares in the period naming no vendor at all
    undated_shares  bigint not null default 0,           -- shares of the planned vendors no period can hold
    violations      jsonb not null default '{}'::jsonb
);
create index vendor_manifest_runs_period on compliance.vendor_manifest_runs (period_start desc, started_at desc);

-- The violation email ledger: one message per (vendor, period), to the compliance team. A row is recorded
-- in the transaction that records the manifest, sent through the delivery engine (claimed with
-- FOR UPDATE SKIP LOCKED), and marked sent or failed.
create table compliance.vendor_violation_notices (
    vendor_id     bigint not null,
    period_label  text not null,
    recipient     text not null,          -- the compliance team's address (staff, not a data subject)
    status        text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    claimed_at    timestamptz not null,
    claimed_run   text not null,
    sent_at       timestamptz,
    message_id    text,
    error         text,
    primary key (vendor_id, period_label)
);
create index vendor_violation_notices_pending on compliance.vendor_violation_notices (period_label, vendor_id)
    where status = 'pending';
