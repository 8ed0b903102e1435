-- A dismissal is a person's judgement of the values a finding showed: "these are lab hardware ids, not a subject's
-- device". The kinds it was given for are kept (`dismissed_kinds`); a later run that sees the column hold another
-- kind (the column reused for email addresses) reopens the finding and tells the compliance team again, with the
-- dismissal in the audit log. Found by a review: a dismissed finding stayed dismissed whatever its column came to
-- hold, and personal data the map does not name went untold for good.
alter table compliance.discovery_findings add column dismissed_kinds text[] not null default '{}';
update compliance.discovery_findings set dismissed_kinds = array[coalesce(kind, '')] where status = 'dismissed';
