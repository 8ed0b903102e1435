-- A request's plan row may say `erased` without acting: an erasure request whose account and data the child-data
-- purge erased before it (the purge also removed the request's link to the account, so nothing carries the account
-- id). Found by an on-call trial: such requests were recorded `no_account` ("the request names no account"), which
-- hid that the company held the child's data and erased it; the record now names the purge run and its day.
alter table compliance.dsr_fulfilment_plans drop constraint dsr_fulfilment_plans_outcome_check;
alter table compliance.dsr_fulfilment_plans add constraint dsr_fulfilment_plans_outcome_check
    check (outcome in ('held', 'manual', 'skipped', 'invalid', 'no_account', 'erased'));
