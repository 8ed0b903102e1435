-- The privacy requests a fulfilment's erasure unlinked: privacy_requests.id of every request naming the account
-- (user_id), read inside the erasing transaction before the erase rule nulls user_id and hashes requester_email,
-- kept on the erasure's record (the request that carries its tables; `erased` only). A request of the same person
-- the run did not carry out (another type left for a later run, one received after the plan) keeps nothing that
-- points at the account once unlinked, so a later run recorded it `no_account` ("the request names no account")
-- though the fulfilment of request N had erased that account on day D; it now finds that erasure by the request's
-- id, as it finds the child-data purge's (0027). Request ids are not personal data. Null for records written
-- before this migration, for an erasure that found nothing left, and for any other outcome.
alter table compliance.dsr_fulfilments add column request_ids bigint[];
alter table compliance.dsr_fulfilments add constraint dsr_fulfilments_request_ids_erased
    check (request_ids is null or outcome = 'erased');
create index dsr_fulfilments_erased_requests on compliance.dsr_fulfilments using gin (request_ids)
    where outcome = 'erased' and request_ids is not null;
