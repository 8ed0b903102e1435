-- The privacy requests a purged child's erasure unlinked: privacy_requests.id of every request naming the account
-- (user_id), read inside the erasing transaction before the erase rule nulls user_id and hashes requester_email.
-- A request filed for the child by a parent from the parent's own address keeps nothing that points at the child
-- once unlinked (its requester hash is the parent's address), so the fulfilment found no purge for it and recorded
-- it `no_account`; it now finds the purge by the request's id. Request ids are not personal data. Null for records
-- written before this migration (the fulfilment then matches an unlinked request by the child's address hash).
alter table compliance.child_purges add column request_ids bigint[];
create index child_purges_purged_requests on compliance.child_purges using gin (request_ids)
    where outcome = 'purged' and request_ids is not null;
