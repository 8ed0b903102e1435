-- A location an earlier erasure attempt recorded that the subject's rows no longer name (a person corrected or
-- cleared it, or removed the row), and that the erasure may not touch, is recorded 'unnamed' and done: it held the
-- subject 'incomplete' for good once the row was mended (found by a fault trial).
alter table compliance.erasure_files drop constraint erasure_files_state_check,
    add constraint erasure_files_state_check
        check (state in ('found', 'deleted', 'already_gone', 'not_allowed', 'shared', 'unnamed'));
