-- Each store's progress row is written just before that store commits the subject's erasure there (begun), and
-- completed after it. A worker lost between the two left the retry finding nothing left in that store, and the
-- evidence counting none of the rows that attempt erased. The begun row now holds that attempt's rows per table
-- and the store's transaction (its pg_current_xact_id(), of the store's own server); the next attempt asks that
-- store pg_xact_status() of it and counts the rows only when it committed. NULL: no attempt left unrecorded.
alter table compliance.erasure_store_progress
    add column pending_xid xid8,
    add column pending_tables jsonb;
