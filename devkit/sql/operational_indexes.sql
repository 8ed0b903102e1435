-- Secondary indexes of the reference operational schema, kept apart from the tables so that a bulk
-- load can build them once after COPY (a sorted build) instead of maintaining them row by row.
-- Each one serves a lookup the DAGs make: per-subject erasure (user_id everywhere), the deadline
-- tracker's open/recent request scan, the manifest's per-vendor period scan, and e-mail matching,
-- which is case-insensitive throughout and therefore indexed on lower(email).
-- The address rule (an address is an account's when it equals the account's address trimmed of every
-- white-space character Python's str.strip() trims, and lower-cased) is one SQL expression,
-- include.addresses.comparable_sql(): lower(btrim(x, <those characters>)). Every column matched by
-- address carries an index on exactly that expression (`*_address_key_idx`; PostgreSQL uses an
-- expression index only for the identical expression, so the character list below must equal
-- include.addresses.WHITESPACE, which tests/test_address_rule.py checks): the account's address (is it
-- shared with another account?), the reports naming it, the support messages sent from it, and the
-- suppressions. docs/address-rule.md lists them for a deployment's own database.

create index users_lower_email_idx on users (lower(email));
create index users_address_key_idx on users (lower(btrim(email, E'\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000')));
create index users_created_at_idx on users (created_at);
create index users_deleted_at_idx on users (deleted_at) where deleted_at is not null;
create index users_birth_date_idx on users (birth_date);
create index users_declared_age_idx on users (declared_age) where declared_age is not null;

create index privacy_requests_user_id_idx on privacy_requests (user_id);
create index privacy_requests_received_at_idx on privacy_requests (received_at);
create index privacy_requests_status_idx on privacy_requests (status);
create index privacy_requests_completed_at_idx on privacy_requests (completed_at);

create index uploads_user_id_idx on uploads (user_id);

create index support_messages_user_id_idx on support_messages (user_id);
create index support_messages_lower_email_idx on support_messages (lower(email));
create index support_messages_address_key_idx on support_messages (lower(btrim(email, E'\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000')))
    where user_id is null;

create index usage_events_user_id_idx on usage_events (user_id);
create index usage_events_occurred_at_idx on usage_events (occurred_at);

create index access_logs_user_id_idx on access_logs (user_id);
create index access_logs_occurred_at_idx on access_logs (occurred_at);

create index social_profiles_user_id_idx on social_profiles (user_id);

create index data_shares_user_id_idx on data_shares (user_id);
create index data_shares_vendor_id_shared_at_idx on data_shares (vendor_id, shared_at);
create index data_shares_shared_at_idx on data_shares (shared_at);

create index child_reports_user_id_idx on child_reports (user_id);
create index child_reports_lower_reported_email_idx on child_reports (lower(reported_email));
create index child_reports_address_key_idx on child_reports (lower(btrim(reported_email, E'\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000')));
create index child_reports_reported_at_idx on child_reports (reported_at);

create index legal_holds_user_id_idx on legal_holds (user_id);

create index policy_versions_published_at_idx on policy_versions (published_at);

create index email_suppressions_lower_email_idx on email_suppressions (lower(email));
create index email_suppressions_address_key_idx on email_suppressions (lower(btrim(email, E'\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000')));
