-- An erasure keeps the subject's export packages still within export_retention_days: a package is the controller's
-- answer to the subject's access (or know) request, kept only to hand it over. An erasure carried out with the
-- access request (one run) deleted it a moment after its upload, the request recorded `exported` and completed, so
-- the subject never got the copy they are owed. Such a package is recorded 'kept_for_delivery' (done: the erasure
-- does not delete it), with why and until when; the fulfilment's expiry deletes it then and records it 'deleted'.
alter table compliance.erasure_files drop constraint erasure_files_state_check,
    add constraint erasure_files_state_check
        check (state in ('found', 'deleted', 'already_gone', 'not_allowed', 'shared', 'unnamed', 'kept_for_delivery')),
    add column kept_until timestamptz,     -- a kept package: the end of its export_retention_days
    add column kept_reason text,           -- a kept package: why (the request it answers; no personal data)
    add constraint erasure_files_kept_check check ((state = 'kept_for_delivery') <= (kept_until is not null));
