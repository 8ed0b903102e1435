-- Which anchors were written where: one row per anchor object the DAGs wrote (include/audit.py anchor_head).
-- The anchors themselves stay outside the database (that is their point); this record lets the compliance
-- page tell an evidence store that is new (no anchor was ever written at this location: the next run anchors
-- the head) from one whose anchors were removed (anchors were written here, and none or fewer are there now).
create table compliance.audit_anchors (
    location    text not null,                   -- the evidence location, gs://bucket/prefix or file:///folder
    name        text not null,                   -- the anchor object's name under it
    row_id      bigint not null,
    row_hash    text not null,
    anchored_at timestamptz not null,
    dag_id      text,
    run_id      text,
    primary key (location, name)
);
