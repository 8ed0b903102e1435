-- The run whose sender skipped a ledger row at send time (an account deleted, an address changed or suppressed, a
-- child flagged since the campaign was built); null for a row skipped when the campaign was built. With the runs of
-- notification_batches (what each request carried, sent or failed), a run's summary counts what the run did over
-- all its attempts, whatever was cleared or retried. Found by an on-call trial: the figures came from the senders'
-- results of their last attempts, so a run cleared and run again whole audited a summary saying it sent 0.
alter table compliance.notification_deliveries add column skipped_by_run text;
