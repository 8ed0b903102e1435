-- The address of each purged child, as the keyed hash the notification ledger uses
-- (include.subjects.address_hash: HMAC-SHA-256 of the trimmed, lower-case address). A purged child has no
-- account left, but its address can live on in another account (a re-registration, a parent's account
-- using the child's address): every campaign built afterwards skips that address ("minus purged
-- children", docs/rules.md). Written with the erasure's evidence, before its transaction commits.
alter table compliance.child_purges
    add column address_hash text check (address_hash ~ '^[0-9a-f]{64}$');
create index child_purges_purged_address on compliance.child_purges (address_hash)
    where outcome = 'purged' and address_hash is not null;
