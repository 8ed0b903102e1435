-- A message that no longer holds when it is to be sent is 'withdrawn' (why in `error`), not sent: an escalation whose
-- request was completed, extended or acknowledged between the evaluation that recorded it and the send (or while
-- it waited pending for a SendGrid outage to end), checked against the operational database inside the claiming
-- transaction. It waits for nothing (not pending) and was refused by no one (not failed); recorded again, it is
-- pending again: a (request, level) that holds once more is emailed, still at most once. Found by a fault trial:
-- such escalations were sent, and the assignee got "overdue" for a request already answered.
alter table compliance.outbox drop constraint outbox_status_check,
    add constraint outbox_status_check check (status in ('pending', 'sent', 'failed', 'withdrawn'));
