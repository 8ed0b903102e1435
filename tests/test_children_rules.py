"""Who is a child: the rules at their boundaries, and the SQL detection held to them row for row."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from devkit.database import connect
from tests import scratch
from devkit.operational_schema import create_reference_schema
from include import child_detection as detection
from include.child_rules import (BIRTH_DATE_BEFORE_1900, BIRTH_DATE_IN_FUTURE, CREATED_BEFORE_BIRTH,
                                 DECLARED_AGE_NEGATIVE, DECLARED_UNDER_13, REPORTED, UNDER_13_AT_SIGNUP, UNDER_13_NOW,
                                 birthday, under_13_on)
from include.datamap import load_datamap
from tests.child_oracle import AccountFacts, classify

UTC = timezone.utc
AS_OF = date(2026, 11, 25)


def facts(birth=None, declared=None, created=datetime(2020, 1, 1, 12, tzinfo=UTC), reported=False, uid=1):
    return AccountFacts(uid, birth, declared, created, reported)


def test_a_birthday_today_counts_as_reached():
    assert under_13_on(date(2013, 11, 25), date(2026, 11, 24))
    assert not under_13_on(date(2013, 11, 25), date(2026, 11, 25))


def test_29_february_is_reached_on_1_march_in_other_years():
    assert birthday(date(2012, 2, 29), 13) == date(2025, 3, 1)
    assert under_13_on(date(2012, 2, 29), date(2025, 2, 28))
    assert not under_13_on(date(2012, 2, 29), date(2025, 3, 1))
    assert birthday(date(2000, 2, 29), 4) == date(2004, 2, 29)  # a leap year keeps the day


def test_each_rule_on_its_own():
    assert classify(facts(birth=date(2016, 1, 1)), AS_OF, UTC).rules == (UNDER_13_NOW, UNDER_13_AT_SIGNUP)
    # 20 now, but 11 when the account was created: a child's data stays a child's data.
    signed_up_young = facts(birth=date(2006, 6, 1), created=datetime(2017, 6, 1, 12, tzinfo=UTC))
    assert classify(signed_up_young, AS_OF, UTC).rules == (UNDER_13_AT_SIGNUP,)
    assert classify(facts(birth=date(1990, 1, 1), declared=12), AS_OF, UTC).rules == (DECLARED_UNDER_13,)
    assert classify(facts(birth=date(1990, 1, 1), declared=13), AS_OF, UTC).rules == ()
    assert classify(facts(reported=True), AS_OF, UTC).rules == (REPORTED,)
    assert classify(facts(birth=date(1990, 1, 1)), AS_OF, UTC).rules == ()


def test_an_account_created_before_its_holder_was_born_is_invalid_not_a_child():
    # Born 1990, the account dated 1985: the signup rule would call a 36-year-old a child (and the purge erase
    # them); either date is wrong, so nothing can be said of the age at signup.
    impossible = facts(birth=date(1990, 2, 16), created=datetime(1985, 1, 1, 12, tzinfo=UTC))
    verdict = classify(impossible, AS_OF, UTC)
    assert verdict.invalid and verdict.rules == () and verdict.problems == (CREATED_BEFORE_BIRTH,)
    # The other rules still apply: reported, it is a child, the problem noted beside.
    reported = facts(birth=date(1990, 2, 16), created=datetime(1985, 1, 1, 12, tzinfo=UTC), reported=True)
    assert classify(reported, AS_OF, UTC).rules == (REPORTED,)
    # Created on the day of birth (in the configured zone) is possible: under 13 at signup.
    newborn = facts(birth=date(2006, 6, 1), created=datetime(2006, 6, 1, 3, tzinfo=UTC))
    assert classify(newborn, AS_OF, UTC).rules == (UNDER_13_AT_SIGNUP,)
    assert classify(newborn, AS_OF, ZoneInfo("America/Los_Angeles")).problems == (CREATED_BEFORE_BIRTH,)


def test_signup_day_is_the_calendar_day_in_the_configured_zone():
    # Created 2019-06-01 03:00 UTC is still 31 May in Los Angeles: the day before the 13th birthday there.
    account = facts(birth=date(2006, 6, 1), created=datetime(2019, 6, 1, 3, tzinfo=UTC))
    assert classify(account, AS_OF, UTC).rules == ()
    assert classify(account, AS_OF, ZoneInfo("America/Los_Angeles")).rules == (UNDER_13_AT_SIGNUP,)


def test_a_creation_time_without_a_time_zone_is_read_as_utc_like_every_other_time(ops):
    """A ``created_at`` column of type ``timestamp`` (no zone) holds what the connection (UTC) reads: its signup day in
    the configured zone is that of the same UTC time. Before, ``AT TIME ZONE`` took it for a time in that zone and
    moved the day the other way: in Berlin an account opened at 00:30 UTC on its holder's 13th birthday was a child
    (and purged), in Los Angeles one opened at 19:00 on the eve of it was not."""
    _reset(ops)
    ops.execute("alter table users alter column created_at type timestamp using created_at at time zone 'UTC'")
    try:
        ops.execute("""insert into users (id, birth_date, created_at) values
                       (1, '2013-03-01', '2026-03-01 00:30'), (2, '2013-03-01', '2026-03-01 03:00')""")
        caught = {tz: {s.user_id: s.rules for s in detection.detect(ops, load_datamap(), as_of=AS_OF, tz=tz)}
                  for tz in ("UTC", "Europe/Berlin", "America/Los_Angeles")}
    finally:
        _reset(ops)
        ops.execute("alter table users alter column created_at type timestamptz using created_at at time zone 'UTC'")
    assert caught == {"UTC": {}, "Europe/Berlin": {},
                      "America/Los_Angeles": {1: (UNDER_13_AT_SIGNUP,), 2: (UNDER_13_AT_SIGNUP,)}}


def test_a_birth_date_stored_as_local_midnight_with_a_time_zone_is_that_day_in_the_configured_zone(ops):
    """A ``birth_date`` column of type ``timestamptz`` holding each birthday as midnight in the configured zone: the
    day is that day there. Before, ``::date`` took the day in the connection's zone (UTC): east of UTC every birth
    date was read a day early, so a child turning 13 tomorrow who signed up today was no child at all; west of UTC
    a baby born today was "born in the future" (the timestamp compared with the day's UTC midnight)."""
    _reset(ops)
    ops.execute("alter table users alter column birth_date type timestamptz using birth_date::timestamp at time zone 'UTC'")
    caught = {}
    try:
        for tz in ("UTC", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles"):
            _reset(ops)
            for uid, birth in ((1, "2013-11-26"), (2, "2013-11-25"), (3, "2026-11-25")):  # 13 tomorrow, today; born
                ops.execute("""insert into users (id, birth_date, created_at)
                               values (%(id)s, %(birth)s::timestamp at time zone %(tz)s,
                                       '2026-11-25 12:00'::timestamp at time zone %(tz)s)""",
                            {"id": uid, "birth": birth, "tz": tz})
            caught[tz] = {s.user_id: (s.rules, s.problems)
                          for s in detection.detect(ops, load_datamap(), as_of=AS_OF, tz=tz)}
    finally:
        _reset(ops)
        ops.execute("alter table users alter column birth_date type date using (birth_date at time zone 'UTC')::date")
    child = ((UNDER_13_NOW, UNDER_13_AT_SIGNUP), ())
    assert caught == {tz: {1: child, 3: child} for tz in caught}


@pytest.mark.parametrize("birth, declared, problem", [
    (AS_OF + timedelta(days=1), None, BIRTH_DATE_IN_FUTURE),
    (date(1899, 12, 31), None, BIRTH_DATE_BEFORE_1900),
    (None, -1, DECLARED_AGE_NEGATIVE),
])
def test_unusable_values_make_the_account_invalid_unless_another_rule_catches_it(birth, declared, problem):
    verdict = classify(facts(birth=birth, declared=declared), AS_OF, UTC)
    assert verdict.invalid and verdict.problems == (problem,)
    caught = classify(facts(birth=birth, declared=declared, reported=True), AS_OF, UTC)
    assert caught.child and caught.rules == (REPORTED,) and caught.problems == (problem,)
    assert not classify(facts(birth=date(1900, 1, 1)), AS_OF, UTC).invalid


# -- the SQL detection, on a real PostgreSQL ------------------------------------------------------------

@pytest.fixture(scope="module")
def ops(pg_server_url):
    import uuid

    from devkit import database

    name = f"privacy_children_{uuid.uuid4().hex[:10]}"
    url = database.create_database(pg_server_url, name)
    with connect(url, autocommit=True) as conn:
        create_reference_schema(conn)
        yield conn
    scratch.drop_later(pg_server_url, name)


def _reset(conn) -> None:
    conn.execute("truncate users, child_reports")


def _insert(conn, accounts: list[AccountFacts], emails: dict[int, str] | None = None) -> None:
    emails = emails or {}
    for a in accounts:
        conn.execute("insert into users (id, email, birth_date, declared_age, created_at) values (%s, %s, %s, %s, %s)",
                     (a.user_id, emails.get(a.user_id), a.birth_date, a.declared_age, a.created_at))
        if a.reported:
            conn.execute("insert into child_reports (user_id, source, reported_at) values (%s, 'parent', now())",
                         (a.user_id,))


births = st.one_of(st.none(), st.dates(date(1895, 1, 1), date(2028, 12, 31)),
                   st.sampled_from([date(2012, 2, 29), date(2013, 11, 25), date(2013, 11, 26), date(2013, 11, 24),
                                    date(2000, 2, 29), AS_OF, AS_OF + timedelta(days=1), date(1900, 1, 1)]))
creations = st.builds(lambda d, h: datetime.combine(d, time(h), UTC),
                      st.dates(date(2000, 1, 1), date(2026, 11, 25)), st.integers(0, 23))
accounts = st.builds(AccountFacts, user_id=st.just(0), birth_date=births,
                     declared_age=st.one_of(st.none(), st.integers(-2, 20)), created_at=creations,
                     reported=st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(accounts, min_size=1, max_size=40),
       tz=st.sampled_from(["UTC", "America/Los_Angeles", "Pacific/Kiritimati", "Europe/Dublin"]),
       as_of=st.sampled_from([AS_OF, date(2025, 3, 1), date(2025, 2, 28), date(2024, 2, 29)]))
def test_the_sql_detection_gives_the_rules_verdict_for_every_account(ops, batch, tz, as_of):
    # Every example also carries the boundaries: birthdays on, before and after the evaluation date and the
    # signup date, 29 February, and the oldest usable birth date.
    edges = [AccountFacts(0, b, None, datetime.combine(c, time(h), UTC), False)
             for b in (date(2012, 2, 29), date(2012, 3, 1), date(2012, 2, 28), as_of.replace(year=as_of.year - 13)
                       if (as_of.month, as_of.day) != (2, 29) else date(as_of.year - 13, 2, 28), date(1900, 1, 1))
             for c, h in ((date(2025, 2, 28), 23), (date(2025, 3, 1), 0), (date(2019, 6, 1), 12))]
    batch = [AccountFacts(i + 1, a.birth_date, a.declared_age, a.created_at, a.reported)
             for i, a in enumerate([*batch, *edges])]
    _reset(ops)
    _insert(ops, batch)
    found = {s.user_id: s for s in detection.detect(ops, load_datamap(), as_of=as_of, tz=tz)}
    for account in batch:
        verdict = classify(account, as_of, ZoneInfo(tz))
        subject = found.get(account.user_id)
        if not verdict.rules and not verdict.problems:
            assert subject is None, (account, subject)
        else:
            assert subject is not None and (subject.rules, subject.problems) == (verdict.rules, verdict.problems), (
                account, verdict, subject)


def test_values_python_cannot_hold_do_not_stop_the_detection(ops):
    _reset(ops)
    ops.execute("""insert into users (id, birth_date, declared_age, created_at) values
                   (1, 'infinity', null, now()), (2, '0100-01-01 BC', null, now()), (3, '2015-01-01', null, '-infinity'),
                   (4, '2016-01-01', null, now())""")
    found = {s.user_id: s for s in detection.detect(ops, load_datamap(), as_of=AS_OF, tz="UTC")}
    assert found[1].problems == ("birth_date holds infinity",) and not found[1].child
    assert found[2].problems == ("birth_date is a BC date",) and not found[2].child
    assert found[3].rules == (UNDER_13_NOW,) and found[3].problems == ("created_at holds -infinity",)
    assert found[4].rules == (UNDER_13_NOW, UNDER_13_AT_SIGNUP)


def test_reports_by_id_and_by_email_and_those_that_match_nobody(ops):
    _reset(ops)
    ops.execute("""insert into users (id, email, birth_date, created_at) values
                   (1, 'Kid@Example.com', '1990-01-01', now()), (2, ' kid@example.COM ', '1990-01-01', now()),
                   (3, 'other@example.com', '1990-01-01', now()), (4, 'named@example.com', '1990-01-01', now())""")
    ops.execute("""insert into child_reports (id, user_id, reported_email, source, reported_at, resolved_at) values
                   (10, null, 'KID@example.com ', 'support', now(), null),   -- matches accounts 1 and 2
                   (11, 4, null, 'parent', now(), null),                     -- by id
                   (12, null, 'nobody@example.org', 'parent', now(), null),  -- no such account
                   (13, 999, null, 'parent', now(), null),                   -- the account is gone
                   (14, 3, null, 'automated', now(), now()),                 -- resolved: ignored
                   (15, null, null, 'parent', now(), null),                  -- names nobody at all
                   (16, null, '', 'parent', now(), null),                    -- a blank address names nobody:
                   (17, null, '  ', 'support', now(), null),                 -- not the accounts 5 and 6
                   (18, null, ' SOLO@example.com', 'parent', now(), null),   -- one account, no age data
                   (19, null, 'other@example.com', 'parent', now(), null)    -- one account, an adult""")
    ops.execute("""insert into users (id, email, birth_date, created_at) values
                   (5, '', '1990-01-01', now()), (6, '   ', '1990-01-01', now()), (7, 'solo@example.com ', null, now())""")
    dm = load_datamap()
    found = {s.user_id: s.report_ids for s in detection.detect(ops, dm, as_of=AS_OF, tz="UTC")}
    # An address-only report names an account only when the address names it alone and its own data does not
    # say adult: report 10 names two adults (a household) and report 19 one adult: both wait for a person.
    assert found == {4: (11,), 7: (18,)}
    review = detection.reports_needing_review(ops, dm, as_of=AS_OF, tz="UTC")
    assert [(r.report_id, r.user_ids, r.confirmed) for r in review] == [(10, (1, 2), ()), (19, (3,), ())]
    assert "names 2 accounts (1, 2), whose own data says adult (1, 2)" in review[0].reason
    confirmed = {s.user_id: s.report_ids for s in detection.detect(ops, dm, as_of=AS_OF, tz="UTC", confirmed=[2])}
    assert confirmed == {2: (10,), 4: (11,), 7: (18,)}
    assert detection.unmatched_reports(ops, dm) == [detection.ReportOutcome(12, detection.NO_MATCH),
                                                    detection.ReportOutcome(13, detection.ALREADY_GONE)]
    assert detection.empty_reports(ops, dm) == [15, 16, 17]
    assert {s.user_id for s in detection.detect(ops, dm, as_of=AS_OF, tz="UTC", user_ids=[2, 3, 7])} == {7}
