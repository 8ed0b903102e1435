"""Personal data the data map does not name, planted in a seeded database so that discovery has something to find.

The demo and the discovery tests run :data:`PLANT_SQL` after seeding (a database seeded without it is what the
shipped data map covers completely). Values are made by the database itself from row ids; what each column holds
is written in :data:`PLANTED`, with a name chosen to mislead where the issue asks for one:

- ``crm_contacts`` (a CRM export nobody mapped; tied to an account by address, not by ``user_id``, so the erasure's
  check for forgotten tables is not what finds it): ``buyer`` holds postal addresses, ``contact_email`` emails;
  ``phone_model``, ``email_template_id`` and ``ip_allowlist_enabled`` are named like personal data and hold none;
- ``feedback.comment``: free text in which one row in twenty holds a postal address;
- ``support_messages.callback``: phone numbers in a mapped table's unmapped column;
- ``users.hw``: MAC addresses.
"""
from __future__ import annotations

# (table, column) -> the kind discovery must report; the decoys -> None.
PLANTED = {
    ("crm_contacts", "buyer"): "postal_address",
    ("crm_contacts", "contact_email"): "email",
    ("feedback", "comment"): "free_text",
    ("support_messages", "callback"): "phone",
    ("users", "hw"): "device_identifier",
    ("crm_contacts", "phone_model"): None,
    ("crm_contacts", "email_template_id"): None,
    ("crm_contacts", "ip_allowlist_enabled"): None,
}

PLANT_SQL = """
create table crm_contacts (
    id bigint primary key, buyer text, contact_email text, phone_model text, email_template_id integer,
    ip_allowlist_enabled boolean not null default false, created_at timestamptz not null default now());
insert into crm_contacts (id, buyer, contact_email, phone_model, email_template_id, ip_allowlist_enabled)
select i, (i % 9000 + 1) || ' ' || (array['Juniper', 'Alder', 'Birch', 'Hazel'])[i % 4 + 1] || ' '
          || (array['Street', 'Road', 'Avenue', 'Lane'])[i % 3 + 1] || ', Springfield',
       'crm.contact' || i || '@example.net',
       (array['Pixel 8', 'iPhone 15', 'Galaxy S24', 'Fairphone 5'])[i % 4 + 1], 1000 + i % 7, i % 2 = 0
from generate_series(1, 300) as i;

create table feedback (id bigint primary key, comment text not null, created_at timestamptz not null default now());
insert into feedback (id, comment)
select i, case when i % 20 = 0
               then 'Please send the replacement part to ' || (i % 500 + 3) || ' Rowan Road, Leeds, thanks.'
               else 'The export works well but the dashboard could load faster on Mondays, item ' || i || '.' end
from generate_series(1, 400) as i;

alter table support_messages add column callback text;
update support_messages set callback = '+44 20 7946 ' || lpad((id % 1000)::text, 4, '0');

alter table users add column hw text;
update users set hw = '02:00:5e:' || lpad(to_hex((id / 65536) % 256), 2, '0') || ':'
                      || lpad(to_hex((id / 256) % 256), 2, '0') || ':' || lpad(to_hex(id % 256), 2, '0');
"""


def plant(conn) -> dict:
    """Run :data:`PLANT_SQL` on ``conn`` (a seeded reference database); returns what it planted."""
    conn.execute(PLANT_SQL)
    return {f"{t}.{c}": kind for (t, c), kind in PLANTED.items()}
