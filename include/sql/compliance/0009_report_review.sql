-- A report naming only an address never erases on its own an account whose own data says adult, nor several
-- accounts at once (households share addresses): such a report is recorded `needs_review` with the accounts it
-- names, and nothing of theirs is erased until a person confirms which account it meant (the purge's
-- confirm_user_ids): then `confirmed`, and the report is resolved once those accounts are purged.
alter table compliance.child_report_outcomes drop constraint child_report_outcomes_outcome_check;
alter table compliance.child_report_outcomes add constraint child_report_outcomes_outcome_check
    check (outcome in ('purged', 'no_match', 'already_gone', 'invalid', 'needs_review', 'confirmed'));
alter table compliance.child_report_outcomes
    add column user_ids bigint[] not null default '{}',      -- the accounts a needs_review report names
    add column confirmed_user_ids bigint[] not null default '{}'; -- those a person confirmed (confirm_user_ids)
create index child_report_outcomes_review on compliance.child_report_outcomes (report_id, recorded_at)
    where outcome = 'needs_review';
