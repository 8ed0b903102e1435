-- The keyed hash a ledger row was built for, when the row went to the address its account holds at send time
-- instead (the address changed mid-campaign; `recipient` is then the new address's hash, so the primary key still
-- keeps one row per address); null for every other row. Found by a trial: an account whose address changed between
-- the build and the send was skipped, and the person never told at the new address.
alter table compliance.notification_deliveries add column readdressed_from text collate "C";
