-- The rows a fulfilment's erasure kept because they are tied to the account by an address another account also has
-- (a family's address: its email suppression, say): schema.table -> rows, as compliance.child_purges.kept holds the
-- purge's. They were named only in the record's reason text, so a later erasure request of the same person (filed
-- before the erasure and unlinked by it, or naming the erased account after it) was told "nothing was left to
-- erase" while those rows were still held. The later request's reason now names them from here, as it names the
-- purge's. Table names and counts: no personal data. Null for records written before this migration, for an
-- erasure that kept nothing, for every record but the one carrying an erasure's tables, and for any other outcome.
alter table compliance.dsr_fulfilments add column kept_rows jsonb;
alter table compliance.dsr_fulfilments add constraint dsr_fulfilments_kept_rows_erased
    check (kept_rows is null or outcome = 'erased');
