-- The compliance page's Trends (include/reads/trends.py) count purged children by week: an index on when they
-- were purged, instead of reading every subject record of every run. (Closed requests by month due are about
-- half of dsr_status: a scan of the table is what the planner picks whatever the index, so there is none.)
create index child_purges_purged_at on compliance.child_purges (purged_at) where outcome = 'purged';
