-- The support desk's database (SPEC §3.1, connection `support_db`): a store of its own, beside the
-- operational database. A ticket is tied to an account only by its requester's address (the address
-- rule: include.addresses.comparable_sql, indexed on the identical expression); its events through
-- their ticket (ticket_events.ticket_id -> tickets.id). attachment_uri names a file in object storage.

create table tickets (
    id bigint primary key,
    requester_email text not null,
    subject text not null,
    body text not null,
    attachment_uri text null,
    created_at timestamptz not null
);

create table ticket_events (
    id bigint primary key,
    ticket_id bigint not null references tickets (id),
    actor_email text null,
    note text not null,
    created_at timestamptz not null
);

create index tickets_address_key_idx on tickets (lower(btrim(requester_email, E'\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000')));
create index ticket_events_ticket_id_idx on ticket_events (ticket_id);
