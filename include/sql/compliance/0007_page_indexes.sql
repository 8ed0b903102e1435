-- The compliance page (plugins/privacy_compliance.py, include/reads): indexes for its paginated reads of
-- the tables that exist before it. Sections of later domains bring their indexes with their own tables.

-- Requests, "overdue first": the page orders by this exact expression (include/reads/dsr.py _STATE_RANK),
-- then days left, then id. One index per combination of the page's filters, each in the page's order, so
-- a page reads its rows from an index instead of sorting or filtering 200,000 rows.
create index dsr_status_page_order on compliance.dsr_status
    ((array_position('{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[], state)),
     days_left, request_id);
create index dsr_status_page_regime on compliance.dsr_status
    (regime, (array_position('{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[], state)),
     days_left, request_id);
create index dsr_status_page_type on compliance.dsr_status
    (request_type, (array_position('{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[], state)),
     days_left, request_id);
create index dsr_status_page_regime_type on compliance.dsr_status
    (regime, request_type, (array_position('{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[], state)),
     days_left, request_id);
-- With a state filter the order is days left, then id; (regime, type, state, ...) also serves the
-- filter choices and counts (regime x type x state) as an index-only scan.
create index dsr_status_page_state on compliance.dsr_status (state, days_left, request_id);
create index dsr_status_page_breakdown on compliance.dsr_status (regime, request_type, state, days_left, request_id);

-- The newest live and what-if runs.
create index dsr_runs_finished on compliance.dsr_runs (what_if, finished_at desc);
