-- The shares a downstream deletion notice is about: data_shares.id of every share the vendor received of the
-- subject, read inside the erasing transaction before the rows go. The subject is only a keyed hash the vendor
-- cannot compute; the share ids are what the vendor manifests gave it (share_id per share), so they find the data
-- on the vendor's side without any personal data in the compliance store. Null for notices recorded before this
-- migration (their shares were erased with the subject and cannot be read back).
alter table compliance.vendor_deletion_notices add column share_ids bigint[];
