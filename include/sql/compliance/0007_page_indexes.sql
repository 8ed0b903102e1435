-- The compliance page (plugins/privacy_compliance.py, include/reads): indexes for its paginated reads of
-- the tables that exist before it. Sections of later domains bring their indexes with their own tables.
--
-- compliance.dsr_status is rewritten by every hourly evaluation (an open request's days_left changes
-- daily), and each index is paid on every write: the page keeps to three. A regime or a type alone walks
-- the "overdue first" index and skips rows that do not match (at most one in nine match), which stays
-- fast at a few hundred thousand requests (bench/bench_page.py); regime and type together, and a
-- state, have indexes of their own, in the page's order.

-- Requests, "overdue first": the page orders by this exact expression (include/reads/deadlines.py _STATE_RANK),
-- then days left, then id.
create index dsr_status_page_order on compliance.dsr_status
    ((array_position('{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[], state)),
     days_left, request_id);
create index dsr_status_page_regime_type on compliance.dsr_status
    (regime, request_type, (array_position('{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[], state)),
     days_left, request_id);
-- With a state filter the order is days left, then id. It also serves the digest and the escalation
-- ledger's reads by state, so the foundation's (state, days_left) index goes.
create index dsr_status_page_state on compliance.dsr_status (state, days_left, request_id);
drop index compliance.dsr_status_state;

-- The newest live and what-if runs.
create index dsr_runs_finished on compliance.dsr_runs (what_if, finished_at desc);
