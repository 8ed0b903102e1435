-- The compliance page (plugins/privacy_compliance.py, include/reads): indexes for its paginated reads of
-- the tables that exist before it. Sections of later domains bring their indexes with their own tables.

-- Requests, "overdue first": the page orders by this exact expression (include/reads/dsr.py _STATE_RANK),
-- then days left, then id, so the first page is read from the index without sorting 200,000 rows.
create index dsr_status_page_order on compliance.dsr_status
    ((array_position('{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[], state)),
     days_left, request_id);

-- The filter choices and counts (regime x type x state), read by an index-only scan.
create index dsr_status_page_breakdown on compliance.dsr_status (regime, request_type, state);

-- The newest live and what-if runs.
create index dsr_runs_finished on compliance.dsr_runs (what_if, finished_at desc);
