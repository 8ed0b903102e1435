-- A file another account's row names too is left in place by an erasure (recorded 'shared', never deleted): it is
-- not the subject's alone, and deleting it would take another person's file (found by a fault trial).
alter table compliance.erasure_files drop constraint erasure_files_state_check,
    add constraint erasure_files_state_check
        check (state in ('found', 'deleted', 'already_gone', 'not_allowed', 'shared'));
