-- The analytics database (SPEC §3.1, connection `analytics_db`; large): daily usage per account and
-- feature, tied to an account by user_id (the primary key's first column serves a subject's rows).

create table daily_usage (
    user_id bigint not null,
    day date not null,
    feature text not null,
    api_calls int not null,
    seconds_active int not null,
    primary key (user_id, day, feature)
);
