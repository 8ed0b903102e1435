-- When an export package was uploaded: its record's first writing, pending (compliance.dsr_fulfilment_pending's
-- created_at) until the export's operational transaction is known to have committed. The record's recorded_at is
-- when it was finalized, days later when a worker died between the commit and the record and a later run settled
-- it, and retention counted from two moments: an erasure kept the package for delivery until upload +
-- export_retention_days (the pending record's time) or settle + those days (once recorded), and the expiry deleted
-- one not kept those days after the settle. Both now count from this moment. Null for records written before this
-- migration (their recorded_at stands in) and for every record without a package.
alter table compliance.dsr_fulfilments add column package_made_at timestamptz;
alter table compliance.dsr_fulfilments add constraint dsr_fulfilments_package_made_at_package
    check (package_made_at is null or package_object is not null);
