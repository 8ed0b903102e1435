-- When SendGrid refused a message (`failed_at`), beside when its run recorded it (`claimed_at`). The compliance page
-- counts a refused email, and a refused on-call alert, for a week from its refusal: a row pending through a SendGrid
-- outage of more than a week and refused only then was otherwise never counted. Found by an on-call trial. Rows
-- refused before this migration have none: they are counted from when they were recorded, as they were.
alter table compliance.outbox add column failed_at timestamptz;
