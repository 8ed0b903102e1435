"""Policy-change notifications without a scheduler: the steps against a real PostgreSQL and the SendGrid stand-in.

The recipients are checked against an oracle written from the rule in docs/rules.md (tests/notification_oracle.py: plain SQL
reads, email-validator and the child rules' pure reference functions), not against the product's own SQL.
"""
from __future__ import annotations

import html
import json
import threading
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import notification_oracle as oracle
import pytest

from devkit import database
from tests import scratch
from devkit.seed.demo_data import seed
from tests.conftest import ops_datamap, wait_answered
from tests.enum_codes import make_enums
from include import compliance_store
from include.addresses import WHITESPACE
from include.audit import RunContext
from include.config import Settings
from include.datamap import load_datamap
from include.campaign import steps as campaign
from include.campaign import messages, recipients, versions
from include.campaign.ledger import Audience, CampaignLedger, LedgerLinks, SenderShare
from include.campaign.messages import Notice, Renderer
from include.campaign.params import NotificationParams
from include.delivery.sendgrid_mailer import RetryPolicy, SendGridAuthError, SendGridMailer
from include.periods import ParamError, RunTiming
from include.step import Step
from include.subjects import address_hash

KEY = b"notification-test-key-0123456789"
TODAY = datetime.now(timezone.utc).date()
SETTINGS = Settings(notification_batch_size=100)


@pytest.fixture(scope="module")
def seeded(pg_server_url):
    """One seeded operational database (with the compliance store) for the module; each test its own version."""
    name = f"privacy_notify_{uuid.uuid4().hex[:10]}"
    url = database.create_database(pg_server_url, name)
    summary = seed(url, users=1500, seed=21, anchor=TODAY)
    with database.connect(url, autocommit=True) as conn:
        compliance_store.migrate(conn)
    yield {"url": url, "planted": summary["planted"]}
    scratch.drop_later(pg_server_url, name)


@pytest.fixture
def conns(seeded):
    with database.connect(seeded["url"], autocommit=True) as ops, \
            database.connect(seeded["url"], autocommit=True) as store, \
            database.connect(seeded["url"], autocommit=True) as side:
        yield ops, store, side


def ctx(run_id: str = "test-run", task_id: str = "send_batches") -> RunContext:
    return RunContext(run_id=run_id, actor="test", dag_id="policy_change_notifications", task_id=task_id)


def publish(ops, *, days_ago: int = 0, summary: str = "Adds <b>partners</b> & acquirers.") -> str:
    """A new policy version published just now (each test announces its own)."""
    label = f"t-{uuid.uuid4().hex[:8]}"
    ops.execute("""insert into policy_versions (id, version, published_at, effective_at, summary, url, body_sha256)
                   select coalesce(max(id), 0) + 1, %s, now() - make_interval(days => %s) - interval '1 minute',
                          now() + interval '30 days', %s, 'https://example.com/legal/privacy/' || %s, 'x'
                   from policy_versions""", (label, days_ago, summary, label))
    return label


def build(ops, store, label: str, *, today: date = TODAY, **params) -> dict:
    p = NotificationParams(today=today, policy_version=label, **params)
    found = campaign.find_version(ops, store, load_datamap(), p, datetime.now(timezone.utc))
    return campaign.build_recipients(Step(ctx=ctx(), settings=SETTINGS, params=p, ops=ops, store=store,
                                          datamap=load_datamap(), key=KEY), found)


def send(conns, sendgrid, built: dict, *, sender: int = 0, senders: int = 1, budget: int | None = None,
         run_id: str = "test-run", mailer=None, today: date = TODAY, **params) -> dict:
    ops, store, side = conns
    plan = {"campaign_id": built["campaign_id"], "sender": sender, "senders": senders, "budget": budget}
    mailer = mailer or SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
    return campaign.send_batches(Step(ctx=ctx(run_id), settings=SETTINGS, params=NotificationParams(today=today, **params),
                                      ops=ops, store=store, datamap=load_datamap(), key=KEY, mailer=mailer, side=side),
                                 plan)


# -- the oracle (tests/notification_oracle.py) -------------------------------------------------------------

def expected(ops) -> dict[str, set[int]]:
    return oracle.expected(ops, TODAY)


def received(sendgrid, campaign_id: int) -> Counter:
    return oracle.received(sendgrid.accepted(), campaign_id, batch_size=SETTINGS.notification_batch_size)


def ledger_rows(store, campaign_id: int) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in store.execute(
        "select recipient, state, reason, user_ids, message_id from compliance.notification_deliveries "
        "where campaign_id = %s", (campaign_id,))}


# -- parameters and messages ---------------------------------------------------------------------------

def test_the_trigger_form_is_resolved_or_refused_in_one_sentence():
    timing = RunTiming(run_after=datetime(2026, 11, 25, 12, tzinfo=timezone.utc))
    p = NotificationParams.resolve({"policy_version": " 2026.11 ", "test_recipients": [" QA@Example.com "],
                                    "max_recipients": 5}, Settings(), timing)
    assert (p.policy_version, p.test_recipients, p.max_recipients, p.scope, p.today) == (
        "2026.11", ("QA@Example.com",), 5, "test", date(2026, 11, 25))
    assert NotificationParams.resolve({}, Settings(), timing).scope == "live"
    for raw, words in (({"test_recipients": ["ok@example.com", "alpha beta"]}, "test_recipients[1] is not"),
                       ({"test_recipients": ["a@example.com", "A@EXAMPLE.COM"]}, "repeats test_recipients[0]"),
                       ({"test_recipients": ["a@bücher.de", "a@XN--BCHER-KVA.de"]}, "repeats test_recipients[0]"),
                       ({"test_recipients": ["ü@exämple.com"]}, "test_recipients[0]"),
                       ({"max_recipients": 0}, "max_recipients must be a whole number of at least 1"),
                       # Found by a fault trial: a test campaign capped below its addresses stayed 'sending' for good.
                       ({"test_recipients": ["a@example.com", "b@example.com"], "max_recipients": 1},
                        "max_recipients (1) is fewer than the 2 test_recipients"),
                       ({"policy_version": "  "}, "policy_version must be a version label")):
        with pytest.raises(ParamError) as err:
            NotificationParams.resolve(raw, Settings(), timing)
        assert words in str(err.value) and "alpha beta" not in str(err.value)  # the value is not echoed


def test_the_address_check_never_repeats_the_address_and_the_hasher_is_address_hash():
    from include.addresses import sending_problem
    from include.subjects import address_hasher

    assert sending_problem(" Kate.Smith@Example.COM ") is None
    assert sending_problem("kate.smith@exämple.com") is None  # an internationalised domain: sent in ASCII
    for bad in ("kate.smith@example", "kate smith@example.com", "kate.smith@@example.com", "kate.smith@examp le.com",
                "kåte.smith@example.com", "kåte.smith@exämple.com", "", None):
        problem = sending_problem(bad)
        assert problem and "kate" not in problem.lower() and "example" not in problem.lower(), (bad, problem)
    digest = address_hasher(KEY)
    for address in ("Kate@Example.com", " kate@example.com\t", "x@y.org"):
        assert digest(address) == address_hash(KEY, address)
    assert digest("Kate@Example.com") == digest("kate@example.com") != address_hash(b"another-key-0123456789", "kate@example.com")
    # Its precomputed HMAC states give hmac's digests for keys shorter than SHA-256's block, of it, and longer.
    for key in (b"k", bytes(range(64)), bytes(range(200)), "clé-ü".encode()):
        assert address_hasher(key)("Ünïcode@Example.com ") == address_hash(key, "Ünïcode@Example.com ")


def test_the_white_space_sql_trims_is_every_character_str_strip_removes():
    import sys

    assert WHITESPACE == "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def test_greetings_are_escaped_in_html_neutral_without_a_single_name():
    notice = Notice(7, "live", "2026.11", datetime(2026, 12, 24, 9, tzinfo=timezone.utc),
                    'Adds <script>x</script> & "partners"', "https://example.com/p?a=1&b=2")
    renderer = Renderer(notice, Settings(), "run-1")
    p = renderer.personalization("ann@example.com", 'Ann <b>"O\'Hara"</b> & Co')
    assert p["substitutions"]["%greeting%"] == 'Dear Ann <b>"O\'Hara"</b> & Co,'
    assert p["substitutions"]["%greeting_html%"] == html.escape('Dear Ann <b>"O\'Hara"</b> & Co,')
    payload = renderer.payload([p])
    text, body = payload["content"][0]["value"], payload["content"][1]["value"]
    assert "%greeting%" in text and "%greeting_html%" in body and "%greeting%" not in body
    assert "Adds <script>x</script> & \"partners\"" in text and "<script>" not in body
    assert "&lt;script&gt;" in body and "https://example.com/p?a=1&amp;b=2" in body and "24 December 2026" in text
    assert payload["custom_args"] == {"campaign": "policy-change", "campaign_id": "7", "policy_version": "2026.11",
                                      "scope": "live", "run_id": "run-1"}
    assert renderer.personalization("x@example.com", None)["substitutions"]["%greeting%"] == "Hello,"
    assert messages.common_name(["Ann Lee", " Ann  Lee "]) == "Ann Lee"
    assert messages.common_name(["Ann Lee", "Bo Lee"]) is None and messages.common_name([None, ""]) is None
    assert messages.display_name("x" * 101) is None and messages.display_name("A\x00\nB") == "A B"


def test_a_dynamic_template_gets_each_recipients_data_raw():
    notice = Notice(3, "live", "2026.11", None, "Summary & more", "https://example.com",
                    template_id="d-0123456789abcdef0123456789abcdef")
    renderer = Renderer(notice, Settings(), "run-1")
    payload = renderer.payload([renderer.personalization("ann@example.com", "Ann & Bo")])
    assert payload["template_id"] == notice.template_id and "content" not in payload and "subject" not in payload
    data = payload["personalizations"][0]["dynamic_template_data"]
    assert data["greeting"] == "Dear Ann & Bo," and data["name"] == "Ann & Bo"  # Handlebars escapes {{name}}
    assert data["summary"] == "Summary & more" and data["version"] == "2026.11"


# -- building the ledger -----------------------------------------------------------------------------------

def test_the_ledger_holds_exactly_the_eligible_addresses_and_a_reason_for_every_other(conns, seeded):
    ops, store, _ = conns
    label = publish(ops)
    built = build(ops, store, label)
    rows = ledger_rows(store, built["campaign_id"])
    eligible = expected(ops)
    pending = {r: v for r, v in rows.items() if v[0] == "pending"}
    assert set(pending) == {address_hash(KEY, a) for a in eligible}
    for address, ids in eligible.items():
        assert set(pending[address_hash(KEY, address)][2]) == ids
    assert built["pending"] == len(eligible) and built["total"] == len(rows)
    planted = seeded["planted"]

    by_user = {uid: row[:2] for row in rows.values() for uid in row[2]}

    def state_of(user_key):
        return {by_user.get(uid, ("absent",)) for uid in planted[user_key]}

    assert state_of("email_null") == {("absent",)}
    assert state_of("deleted") == {("absent",)}
    assert state_of("email_upper") == {("pending", None)} and state_of("email_mixed_case") == {("pending", None)}
    shared = rows[address_hash(KEY, "dup.shared@example.com")]
    assert shared[0] == "pending" and sorted(shared[2]) == sorted(planted["email_duplicate_ci"])
    malformed = state_of("email_malformed")
    assert len(malformed) == 5 and all(s == "skipped" and r.startswith("invalid address: ") for s, r in malformed)
    assert state_of("suppressed_same_case") == {("skipped", "suppressed: bounce")}
    assert state_of("suppressed_different_case") == {("skipped", "suppressed: spam_report"),
                                                     ("skipped", "suppressed: invalid")}
    assert state_of("children") == {("skipped", "child account (under 13)")}
    # 13 today, but signed up under 13: data collected from a child stays a child's data (docs/rules.md, "Children").
    assert state_of("teen_turned_13_today") == {("skipped", "child account (under 13)")}
    # Counters agree with the ledger, and no address is stored anywhere in the campaign's tables.
    counters = store.execute("select total, pending, skipped, sent, failed from compliance.notification_campaigns "
                             "where id = %s", (built["campaign_id"],)).fetchone()
    assert counters == (len(rows), len(pending), len(rows) - len(pending), 0, 0)
    stored = json.dumps(store.execute("select row_to_json(c)::text from compliance.notification_campaigns c")
                        .fetchall() + store.execute("select row_to_json(d)::text from "
                                                    "compliance.notification_deliveries d").fetchall()).lower()
    assert not [e for (e,) in ops.execute("select lower(email) from users where email is not null") if e in stored]


def test_a_dry_run_counts_what_the_campaign_would_hold_and_writes_nothing(conns):
    ops, store, _ = conns
    label = publish(ops)
    before = store.execute("select count(*) from compliance.notification_campaigns").fetchone()[0]
    dry = build(ops, store, label, dry_run=True)
    assert store.execute("select count(*) from compliance.notification_campaigns").fetchone()[0] == before
    assert dry["dry_run"] and dry["sample"]["recipient"] == messages.SAMPLE_ADDRESS
    assert "Dear Alex Example," in dry["sample"]["text"] and label in dry["sample"]["subject"]
    built = build(ops, store, label)
    assert (dry["recipients"], dry["eligible"]) == (built["total"], built["pending"]) == (built["total"],
                                                                                          len(expected(ops)))


def test_two_builders_at_once_make_one_campaign(seeded, conns):
    ops, store, _ = conns
    label = publish(ops)
    results, errors = [], []

    def one():
        try:
            with database.connect(seeded["url"], autocommit=True) as o, \
                    database.connect(seeded["url"], autocommit=True) as s:
                results.append(build(o, s, label))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert {r["campaign_id"] for r in results} and len({r["campaign_id"] for r in results}) == 1
    assert sorted(r["created_now"] for r in results) == [False, True]
    assert store.execute("select count(*) from compliance.notification_deliveries where campaign_id = %s",
                         (results[0]["campaign_id"],)).fetchone()[0] == results[0]["total"]


# -- sending -------------------------------------------------------------------------------------------

def test_two_senders_at_once_tell_every_eligible_address_exactly_once(seeded, conns, sendgrid):
    ops, store, _ = conns
    label = publish(ops)
    built = build(ops, store, label)
    sendgrid.inject(delay_seconds=0.05, count=1000)  # slow answers keep both senders busy at once
    reports, errors = [], []

    def sender(i):
        try:
            with database.connect(seeded["url"], autocommit=True) as o, \
                    database.connect(seeded["url"], autocommit=True) as s, \
                    database.connect(seeded["url"], autocommit=True) as side:
                reports.append(send((o, s, side), sendgrid, built, sender=i, senders=2))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    eligible = expected(ops)
    got = received(sendgrid, built["campaign_id"])
    assert set(got) == set(eligible) and set(got.values()) == {1}
    assert all(r["sent"] > 0 for r in reports), "both senders took batches"
    summary = campaign.summarize(store, ctx(), built["campaign_id"])
    assert (summary["sent"], summary["pending"], summary["finished"], summary["duplicates_at_risk"]) == (
        len(eligible), 0, True, 0)
    # Each ledger row names the message that carried it.
    by_message = {m["message_id"]: {p["to"][0]["email"].lower() for p in m["payload"]["personalizations"]}
                  for m in sendgrid.accepted()}
    for address in list(eligible)[:50]:
        message_id = ledger_rows(store, built["campaign_id"])[address_hash(KEY, address)][3]
        assert address in by_message[message_id]


def last_single_accounts(ops, store, built: dict, n: int) -> tuple[list[int], dict[int, str]]:
    """The accounts of the campaign's last ``n`` pending rows held by one account each, and their addresses."""
    pending = store.execute("""select user_ids[1] from compliance.notification_deliveries
                               where campaign_id = %s and state = 'pending' and cardinality(user_ids) = 1
                               order by seq desc limit %s""", (built["campaign_id"], n)).fetchall()
    ids = [uid for (uid,) in pending]
    return ids, dict(ops.execute("select id, email from users where id = any(%s)", (ids,)).fetchall())


def test_changes_after_the_build_are_honoured_at_send_time(conns, sendgrid):
    ops, store, _ = conns
    label = publish(ops)
    built = build(ops, store, label)
    (suppress, delete, rename, child, named), email = last_single_accounts(ops, store, built, 5)
    ops.execute("insert into email_suppressions (email, reason, created_at) values (upper(%s), 'bounce', now())",
                (email[suppress],))
    ops.execute("update users set deleted_at = now() where id = %s", (delete,))
    ops.execute("update users set email = %s where id = %s", (f"renamed.{rename}@example.org", rename))
    ops.execute("""insert into child_reports (id, user_id, source, reported_at)
                   select coalesce(max(id), 0) + 1, %s, 'parent', now() from child_reports""", (child,))
    # A report that names the account only by its address, spelt differently: the rule matches it all the same
    # (an account whose own data says nothing of its age: an address-only report never makes an adult a child).
    ages = ops.execute("select birth_date, declared_age from users where id = %s", (named,)).fetchone()
    ops.execute("update users set birth_date = null, declared_age = null where id = %s", (named,))
    ops.execute("""insert into child_reports (id, reported_email, source, reported_at)
                   select coalesce(max(id), 0) + 1, ' ' || upper(%s) || ' ', 'parent', now() from child_reports""",
                (email[named],))
    try:
        send(conns, sendgrid, built)
        got = received(sendgrid, built["campaign_id"])
        assert not {email[u].lower() for u in (suppress, delete, child, named)} & set(got)
        # The renamed account is told at the address it holds now, once (test_an_address_changed_mid_campaign_...).
        assert got[f"renamed.{rename}@example.org"] == 1 and email[rename].lower() not in got
        reasons = dict(store.execute("""select user_ids[1], reason from compliance.notification_deliveries
                                        where campaign_id = %s and state = 'skipped' and user_ids[1] = any(%s)""",
                                     (built["campaign_id"], [suppress, delete, rename, child, named])).fetchall())
        assert reasons == {suppress: "suppressed since the campaign was built (bounce)",
                           delete: "account deleted or erased since the campaign was built",
                           child: "child account (under 13)", named: "child account (under 13)"}
        assert len(got) == built["pending"] - 4
        summary = campaign.summarize(store, ctx(), built["campaign_id"])
        assert summary["finished"] and summary["skipped"] == built["total"] - built["pending"] + 4
    finally:
        ops.execute("delete from email_suppressions where lower(email) = lower(%s)", (email[suppress],))
        ops.execute("update users set deleted_at = null where id = %s", (delete,))
        ops.execute("update users set email = %s where id = %s", (email[rename], rename))
        ops.execute("delete from child_reports where user_id = %s and note is null and source = 'parent' "
                    "and reported_at > now() - interval '1 hour'", (child,))
        ops.execute("delete from child_reports where user_id is null and lower(btrim(reported_email)) = lower(%s) "
                    "and reported_at > now() - interval '1 hour'", (email[named],))
        ops.execute("update users set birth_date = %s, declared_age = %s where id = %s", (*ages, named))


def test_a_late_run_judges_children_as_of_the_day_it_sends_not_its_own_day(conns, sendgrid):
    """A run cleared or caught up days after its own day (Airflow keeps that day) reads the accounts as they are now:
    an account a child by what was recorded since its day (here a birth date after it, 'in the future' as of then) was
    judged as of the run's day, no rule caught it, and the policy email went to a child. The build and the senders
    now judge as of the later of the run's day and today (include.periods.acting_day), as the purge does."""
    ops, store, _ = conns
    own_day = TODAY - timedelta(days=30)
    born = TODAY - timedelta(days=10)  # after the run's own day, before the day it sends
    singles = sorted(next(iter(ids)) for ids in expected(ops).values() if len(ids) == 1)
    before = singles[-1]  # a child by what was recorded before the late build
    saved = {before: ops.execute("select email, birth_date, declared_age from users where id = %s",
                                 (before,)).fetchone()}
    ops.execute("update users set birth_date = %s, declared_age = null where id = %s", (born, before))
    try:
        built = build(ops, store, publish(ops), today=own_day)
        # A child by what was recorded after the build (the code before built the first account's row pending).
        after = next(u for u in last_single_accounts(ops, store, built, 2)[0] if u != before)
        saved[after] = ops.execute("select email, birth_date, declared_age from users where id = %s",
                                   (after,)).fetchone()
        ops.execute("update users set birth_date = %s, declared_age = null where id = %s", (born, after))
        send(conns, sendgrid, built, today=own_day)
        got = received(sendgrid, built["campaign_id"])
        assert not {saved[u][0].strip().lower() for u in (before, after)} & set(got)
        reasons = dict(store.execute("""select user_ids[1], reason from compliance.notification_deliveries
                                        where campaign_id = %s and user_ids[1] = any(%s)""",
                                     (built["campaign_id"], [before, after])).fetchall())
        assert reasons == {before: "child account (under 13)", after: "child account (under 13)"}
        assert len(got) == built["pending"] - 1
    finally:
        for uid, (_, birth, declared) in saved.items():
            ops.execute("update users set birth_date = %s, declared_age = %s where id = %s", (birth, declared, uid))


def test_an_address_changed_mid_campaign_is_told_once_at_the_new_address(conns, sendgrid):
    """Found by a trial: an account whose address changed between the build and the send was skipped ("address
    changed since the campaign was built") and the person never told. The row now goes to the address the account
    holds when it is sent, once: re-keyed to that address's hash (readdressed_from keeps the old one); an address
    that has a row of its own is told through that row (never twice); a new address the build would have left out
    (suppressed, invalid) is left out; and a sender run again sends nothing more."""
    ops, store, _ = conns
    label = publish(ops)
    built = build(ops, store, label)
    (moved, joins, pair_a, pair_b, to_suppressed, to_invalid, host), email = last_single_accounts(ops, store, built, 7)
    fresh, shared, suppressed = (f"moved.{moved}@example.org", f"pair.{pair_a}@example.org",
                                 f"barred.{to_suppressed}@example.org")
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())", (suppressed,))
    for uid, address in ((moved, fresh), (joins, " " + email[host].upper()), (pair_a, shared),
                         (pair_b, shared.upper()), (to_suppressed, suppressed), (to_invalid, "no-at-sign.example.org")):
        ops.execute("update users set email = %s where id = %s", (address, uid))
    try:
        send(conns, sendgrid, built)
        send(conns, sendgrid, built)  # a retry, or another run: nothing is sent twice
        got = received(sendgrid, built["campaign_id"])
        assert max(got.values()) == 1
        assert got[fresh] == 1 and got[shared] == 1 and got[email[host].strip().lower()] == 1
        assert not {email[u].lower() for u in (moved, joins, pair_a, pair_b, to_suppressed, to_invalid)} & set(got)
        assert suppressed not in got and len(got) == built["pending"] - 4
        rows = {r[0]: r[1:] for r in store.execute(
            """select user_ids[1], recipient, readdressed_from, state, reason, user_ids
               from compliance.notification_deliveries where campaign_id = %s and %s::bigint[] && user_ids""",
            (built["campaign_id"], [moved, joins, pair_a, pair_b, to_suppressed, to_invalid, host]))}
        assert rows[moved][:4] == (address_hash(KEY, fresh), address_hash(KEY, email[moved]), "sent", None)
        assert rows[host][2:] == ("sent", None, sorted([host, joins]))  # told through the row of its new address
        assert rows[joins][2:4] == ("skipped", "address changed since the campaign was built; the new address is "
                                               "told in its own row of the campaign")
        pair = {rows[pair_a][2], rows[pair_b][2]}
        assert pair == {"sent", "skipped"}
        assert {r[0] for r in (rows[pair_a], rows[pair_b]) if r[2] == "sent"} == {address_hash(KEY, shared)}
        assert rows[to_suppressed][2:4] == ("skipped", "address changed since the campaign was built; the new "
                                                       "address is suppressed (bounce)")
        assert rows[to_invalid][2] == "skipped" and rows[to_invalid][3].startswith(
            "address changed since the campaign was built; the new address is invalid: ")
        summary = campaign.summarize(store, ctx(), built["campaign_id"])
        assert summary["finished"] and summary["sent"] == built["pending"] - 4
    finally:
        ops.execute("delete from email_suppressions where lower(email) = %s", (suppressed,))
        for uid in (moved, joins, pair_a, pair_b, to_suppressed, to_invalid):
            ops.execute("update users set email = %s where id = %s", (email[uid], uid))


def test_an_account_leaving_an_address_its_row_shares_is_told_at_its_new_address(conns, sendgrid):
    """Found by a review: two accounts share an address (one ledger row), and one of them changes its address
    mid-campaign. The row went to the account still holding the address and the account that left was told
    nowhere; two accounts of one row leaving for two different addresses were both skipped ('its accounts hold
    different addresses now'). Each account that leaves now gets a ledger row of its own for the address it holds
    (readdressed_from: the row's key), checked and told as any address that changes mid-campaign."""
    ops, store, _ = conns
    tag = uuid.uuid4().hex[:8]
    shared, apart = f"share.{tag}@example.org", f"apart.{tag}@example.org"
    ids = [ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                          values (%s, 'An Adult', 'GB', '1980-01-01', now()) returning id""", (address,)).fetchone()[0]
           for address in (shared, shared.upper(), apart, " " + apart)]
    stays, leaves, first, second = ids
    moved = {leaves: f"left.{tag}@example.org", first: f"first.{tag}@example.org",
             second: f"second.{tag}@example.org"}
    try:
        built = build(ops, store, publish(ops))
        for uid, address in moved.items():
            ops.execute("update users set email = %s where id = %s", (address, uid))
        send(conns, sendgrid, built)
        send(conns, sendgrid, built, run_id="next-run")  # a second run sends nothing more
        got = received(sendgrid, built["campaign_id"])
        assert max(got.values()) == 1 and apart not in got
        assert {a: got[a] for a in (shared, *moved.values())} == dict.fromkeys((shared, *moved.values()), 1)
        rows = {tuple(r[0]): r[1:] for r in store.execute(
            """select user_ids, state, recipient, readdressed_from from compliance.notification_deliveries
               where campaign_id = %s and user_ids && %s::bigint[]""", (built["campaign_id"], ids))}
        assert rows == {(stays,): ("sent", address_hash(KEY, shared), None),
                        (leaves,): ("sent", address_hash(KEY, moved[leaves]), address_hash(KEY, shared)),
                        (first,): ("sent", address_hash(KEY, moved[first]), address_hash(KEY, apart)),
                        (second,): ("sent", address_hash(KEY, moved[second]), address_hash(KEY, apart))}
        summary = campaign.summarize(store, ctx("next-run"), built["campaign_id"])
        assert summary["finished"] and (summary["total"], summary["sent"]) == (built["total"] + 2,
                                                                                built["pending"] + 2)
    finally:
        ops.execute("delete from users where id = any(%s)", (ids,))


def test_a_row_for_a_leaving_account_waits_for_another_senders_added_rows_and_for_room_in_its_request(conns,
                                                                                                      sendgrid):
    """The rows added for accounts that leave a shared address take the seq numbers after the ledger's last, under an
    advisory lock per campaign taken without waiting: while another sender holds it, the row they leave stays
    pending (neither sent nor skipped) for a later claim. A request already full (here: the sender's share of
    max_recipients) is not stretched for an added row: it stays pending at its new address and a later claim sends
    it."""
    ops, store, _ = conns
    tag = uuid.uuid4().hex[:8]
    shared, left = f"share.{tag}@example.org", f"left.{tag}@example.org"
    ids = [ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                          values (%s, 'An Adult', 'GB', '1980-01-01', now()) returning id""", (shared,)).fetchone()[0]
           for _ in range(2)]
    try:
        built = build(ops, store, publish(ops))
        ops.execute("update users set email = %s where id = %s", (left, ids[1]))
        with store.transaction():  # another sender adding rows, in a request not yet committed
            store.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))",
                          (f"policy_change campaign {built['campaign_id']} rows added",))
            with database.connect(conns[0].info.dsn, autocommit=True) as other:
                send((ops, other, conns[2]), sendgrid, built)
        got = received(sendgrid, built["campaign_id"])
        assert (got[shared], got[left], len(got)) == (0, 0, built["pending"] - 1)
        state = "select state, recipient, readdressed_from, user_ids from compliance.notification_deliveries " \
                "where campaign_id = %s and user_ids && %s::bigint[] order by seq"
        assert store.execute(state, (built["campaign_id"], ids)).fetchall() == [
            ("pending", address_hash(KEY, shared), None, ids)]
        send(conns, sendgrid, built, budget=1, run_id="capped-run")
        got = received(sendgrid, built["campaign_id"])
        assert (got[shared], got[left]) == (1, 0)
        assert store.execute(state, (built["campaign_id"], ids)).fetchall() == [
            ("sent", address_hash(KEY, shared), None, ids[:1]),
            ("pending", address_hash(KEY, left), address_hash(KEY, shared), ids[1:])]
        send(conns, sendgrid, built)
        got = received(sendgrid, built["campaign_id"])
        assert (got[shared], got[left], max(got.values())) == (1, 1, 1)
        summary = campaign.summarize(store, ctx(), built["campaign_id"])
        assert summary["finished"] and (summary["total"], summary["sent"]) == (built["total"] + 1,
                                                                                built["pending"] + 1)
    finally:
        ops.execute("delete from users where id = any(%s)", (ids,))


def test_two_senders_moving_rows_to_one_new_address_at_once_tell_it_once(seeded, conns, sendgrid):
    """Pairs of accounts, one at the start of each sender's lane, take one new address each mid-campaign; two senders
    re-key their rows at the same moment: one takes the address (the primary key), the other leaves its row for a
    later claim (it waited for the first's request until 2026-12-07) and finds it told. Every new address gets one
    message and no sender fails."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    last = store.execute("select max(seq) from compliance.notification_deliveries where campaign_id = %s",
                         (built["campaign_id"],)).fetchone()[0]
    lanes = [[uid for (uid,) in store.execute(
        """select user_ids[1] from compliance.notification_deliveries
           where campaign_id = %s and state = 'pending' and cardinality(user_ids) = 1 and seq > %s
           order by seq limit 8""", (built["campaign_id"], start))] for start in (0, last // 2)]
    pairs = list(zip(*lanes))
    email = dict(ops.execute("select id, email from users where id = any(%s)", ([u for p in pairs for u in p],)))
    for i, pair in enumerate(pairs):
        for uid in pair:
            ops.execute("update users set email = %s where id = %s", (f"both.{i}.{pairs[0][0]}@example.org", uid))
    sendgrid.inject(delay_seconds=0.2, count=4)  # each sender's first request is slow: both hold their moves at once
    errors = []

    def sender(i):
        try:
            with database.connect(seeded["url"], autocommit=True) as o, \
                    database.connect(seeded["url"], autocommit=True) as s, \
                    database.connect(seeded["url"], autocommit=True) as side:
                send((o, s, side), sendgrid, built, sender=i, senders=2)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors
        got = received(sendgrid, built["campaign_id"])
        assert set(got.values()) == {1} and len(got) == built["pending"] - len(pairs)
        assert all(got[f"both.{i}.{pairs[0][0]}@example.org"] == 1 for i in range(len(pairs)))
        states = Counter(state for (state,) in store.execute(
            "select state from compliance.notification_deliveries where campaign_id = %s and user_ids && %s::bigint[]",
            (built["campaign_id"], [u for p in pairs for u in p])))
        assert states == {"sent": len(pairs), "skipped": len(pairs)}
        assert campaign.summarize(store, ctx(), built["campaign_id"])["finished"]
    finally:
        for uid, address in email.items():
            ops.execute("update users set email = %s where id = %s", (address, uid))


def first_batch_single_accounts(ops, store, built: dict, n: int) -> tuple[list[int], dict[int, str]]:
    """The accounts of ``n`` rows held by one account each among the campaign's first batch (the first
    ``notification_batch_size`` pending rows, which one claim takes together), in seq order, and their addresses."""
    pending = store.execute("""select user_ids[1] from (
                                   select user_ids, seq from compliance.notification_deliveries
                                   where campaign_id = %s and state = 'pending' order by seq limit %s) f
                               where cardinality(user_ids) = 1 order by seq limit %s""",
                            (built["campaign_id"], SETTINGS.notification_batch_size, n)).fetchall()
    ids = [uid for (uid,) in pending]
    return ids, dict(ops.execute("select id, email from users where id = any(%s)", (ids,)).fetchall())


def test_addresses_swapped_or_handed_on_within_one_batch_are_each_told_once(conns, sendgrid):
    """Found by a review: rows of one claimed batch whose accounts move to each other's addresses (two accounts swap
    them; one takes the address another leaves for a fresh one). The sender re-keyed them one by one by their physical
    address: the first hit the second's key (still held), was skipped as 'told in its own row' and added to that row,
    which moved the row, so its own re-key found nothing and it was skipped too. Nobody was told. Each new address
    now gets its one message."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    (a, b, takes, leaves), email = first_batch_single_accounts(ops, store, built, 4)
    fresh = f"fresh.{leaves}@example.org"
    moves = {a: email[b], b: email[a], takes: email[leaves], leaves: fresh}
    for uid, address in moves.items():
        ops.execute("update users set email = %s where id = %s", (address, uid))
    try:
        send(conns, sendgrid, built)
        send(conns, sendgrid, built)  # a second run sends nothing more
        got = received(sendgrid, built["campaign_id"])
        assert max(got.values()) == 1
        assert {address.strip().lower(): got[address.strip().lower()] for address in moves.values()} == {
            address.strip().lower(): 1 for address in moves.values()}
        rows = {uid: (state, recipient, readdressed) for uid, state, recipient, readdressed in store.execute(
            """select user_ids[1], state, recipient, readdressed_from from compliance.notification_deliveries
               where campaign_id = %s and user_ids[1] = any(%s)""", (built["campaign_id"], list(moves)))}
        assert rows == {uid: ("sent", address_hash(KEY, moves[uid]), address_hash(KEY, email[uid])) for uid in moves}
        summary = campaign.summarize(store, ctx(), built["campaign_id"])
        assert summary["finished"] and summary["sent"] == built["pending"]
    finally:
        for uid in moves:
            ops.execute("update users set email = %s where id = %s", (email[uid], uid))


def test_an_address_whose_row_was_skipped_is_told_to_an_account_that_takes_it_if_it_passes_the_checks(conns,
                                                                                                     sendgrid):
    """Found by a review: an account that takes an address whose own row in the campaign was skipped was skipped in
    turn ('the new address has a row of its own that was not sent (skipped: …)'), whatever the skip was for: the
    address's only account deleted since (in an earlier request, or in the same one), a suppression lifted since the
    build, a child that has left the address since. The account is now judged on its own merits: its new address is
    checked as any address that changes (suppressed, invalid, a purged child's, held by a child), and when it passes,
    the skipped row gives way (its key becomes 'superseded:<seq>', readdressed_from keeps the address's; its state and
    reason stay) and the moving row takes the address and is sent."""
    ops, store, _ = conns
    tag = uuid.uuid4().hex[:8]
    lifted, family = f"lifted.{tag}@example.org", f"family.{tag}@example.org"
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())", (lifted,))
    made = [ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                           values (%s, 'Someone', 'GB', %s, now()) returning id""", (address, born)).fetchone()[0]
            for address, born in ((lifted, date(1980, 1, 1)), (family, TODAY - timedelta(days=5 * 365)))]
    email = {}
    try:
        built = build(ops, store, publish(ops))
        (gone, gone_in_batch, takes_in_batch), first = first_batch_single_accounts(ops, store, built, 3)
        (takes_gone, takes_lifted, takes_family), last = last_single_accounts(ops, store, built, 3)
        email = {**first, **last}
        ops.execute("delete from email_suppressions where email = %s", (lifted,))
        ops.execute("update users set email = %s where id = %s", (f"kid.{tag}@example.org", made[1]))
        ops.execute("update users set deleted_at = now() where id = any(%s)", ([gone, gone_in_batch],))
        taken = {takes_gone: email[gone], takes_in_batch: email[gone_in_batch], takes_lifted: lifted,
                 takes_family: family}
        for uid, address in taken.items():
            ops.execute("update users set email = %s where id = %s", (address, uid))
        send(conns, sendgrid, built)
        send(conns, sendgrid, built, run_id="next-run")  # a second run sends nothing more
        got = received(sendgrid, built["campaign_id"])
        assert max(got.values()) == 1 and f"kid.{tag}@example.org" not in got
        assert {a.strip().lower(): got[a.strip().lower()] for a in taken.values()} == {
            a.strip().lower(): 1 for a in taken.values()}
        assert not {email[u].strip().lower() for u in taken} & set(got)
        rows = {r[0]: r[1:] for r in store.execute(
            """select user_ids[1], state, reason, recipient, readdressed_from, seq
               from compliance.notification_deliveries where campaign_id = %s and user_ids[1] = any(%s)""",
            (built["campaign_id"], [gone, gone_in_batch, *made, *taken]))}
        for uid, address in taken.items():
            assert rows[uid][:4] == ("sent", None, address_hash(KEY, address), address_hash(KEY, email[uid]))
        gave_way = {uid: (state, reason) for uid, (state, reason, recipient, was, seq) in rows.items()
                    if recipient == f"superseded:{seq}" and was == address_hash(KEY, {
                        gone: email[gone], gone_in_batch: email[gone_in_batch], made[0]: lifted,
                        made[1]: family}.get(uid, ""))}
        assert gave_way == {gone: ("skipped", "account deleted or erased since the campaign was built"),
                            gone_in_batch: ("skipped", "account deleted or erased since the campaign was built"),
                            made[0]: ("skipped", "suppressed: bounce"),
                            made[1]: ("skipped", "child account (under 13)")}
        summary = campaign.summarize(store, ctx("next-run"), built["campaign_id"])
        assert summary["finished"] and summary["sent"] == built["pending"] - 2
    finally:
        ops.execute("delete from email_suppressions where email = %s", (lifted,))
        ops.execute("delete from users where id = any(%s)", (made,))
        for uid, address in email.items():
            ops.execute("update users set email = %s, deleted_at = null where id = %s", (address, uid))


def test_an_address_whose_row_failed_is_told_to_an_account_that_takes_it_once(conns, sendgrid):
    """Found by a review: an account that takes an address whose own row of the campaign FAILED (SendGrid refused its
    request with a 400, so nothing reached the address) was skipped as 'the new address has a row of its own that was
    not sent (failed: …)', the address's own account (still holding it, or gone) and the account that took it never
    told. The failed row now gives its key up as a skipped one does ('superseded:<seq>', readdressed_from keeps the
    address's key; its state and reason stay for the record) and the moving row takes the address: one message."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    sendgrid.inject(status=400, count=1)
    first = send(conns, sendgrid, built, budget=SETTINGS.notification_batch_size)
    assert first["failed"] == SETTINGS.notification_batch_size and first["sent"] == 0
    failed = store.execute("""select user_ids[1] from compliance.notification_deliveries
                              where campaign_id = %s and state = 'failed' and cardinality(user_ids) = 1
                              order by seq limit 2""", (built["campaign_id"],)).fetchall()
    (keeps, gone), (takes_kept, takes_gone) = [uid for (uid,) in failed], last_single_accounts(ops, store, built, 2)[0]
    email = dict(ops.execute("select id, email from users where id = any(%s)",
                             ([keeps, gone, takes_kept, takes_gone],)).fetchall())
    taken = {takes_kept: email[keeps], takes_gone: email[gone]}
    ops.execute("update users set deleted_at = now() where id = %s", (gone,))
    for uid, address in taken.items():
        ops.execute("update users set email = %s where id = %s", (address, uid))
    try:
        send(conns, sendgrid, built)
        send(conns, sendgrid, built, run_id="next-run")  # a second run sends nothing more
        got = received(sendgrid, built["campaign_id"])
        assert max(got.values()) == 1
        assert {a.strip().lower(): got[a.strip().lower()] for a in taken.values()} == {
            a.strip().lower(): 1 for a in taken.values()}
        rows = {r[0]: r[1:] for r in store.execute(
            """select user_ids[1], state, reason, recipient, readdressed_from, seq
               from compliance.notification_deliveries where campaign_id = %s and user_ids[1] = any(%s)""",
            (built["campaign_id"], [keeps, gone, *taken]))}
        for uid, address in taken.items():
            assert rows[uid][:4] == ("sent", None, address_hash(KEY, address), address_hash(KEY, email[uid]))
        for uid in (keeps, gone):
            state, reason, recipient, was, seq = rows[uid]
            assert (state, reason, recipient, was) == ("failed", "injected fault", f"superseded:{seq}",
                                                       address_hash(KEY, email[uid]))
        summary = campaign.summarize(store, ctx("next-run"), built["campaign_id"])
        assert summary["finished"] and summary["failed"] == SETTINGS.notification_batch_size
        assert summary["sent"] == built["pending"] - SETTINGS.notification_batch_size
    finally:
        ops.execute("update users set deleted_at = null where id = %s", (gone,))
        for uid in taken:
            ops.execute("update users set email = %s where id = %s", (email[uid], uid))


def test_an_address_changed_mid_campaign_to_one_a_child_holds_is_not_told(conns, sendgrid):
    """Found by a review: the build skips an address a child holds, whoever else holds it, but a row whose account
    moved mid-campaign to an address a child took too (a family's address) was checked against its own accounts only,
    re-keyed and sent: the policy email went to a child's address. It is now skipped with why."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    (adult, child), email = last_single_accounts(ops, store, built, 2)
    saved = ops.execute("select birth_date, declared_age from users where id = %s", (child,)).fetchone()
    family = f"family.{adult}@example.org"
    ops.execute("update users set email = %s, birth_date = %s, declared_age = null where id = %s",
                (family, date.today() - timedelta(days=5 * 365), child))
    ops.execute("update users set email = %s where id = %s", (" " + family.upper(), adult))
    try:
        send(conns, sendgrid, built)
        got = received(sendgrid, built["campaign_id"])
        assert family not in got and len(got) == built["pending"] - 2
        reasons = dict(store.execute("""select user_ids[1], reason from compliance.notification_deliveries
                                        where campaign_id = %s and user_ids[1] = any(%s)""",
                                     (built["campaign_id"], [adult, child])).fetchall())
        assert reasons == {adult: "address changed since the campaign was built; the new address is held by a "
                                  "child account (under 13)",
                           child: "child account (under 13)"}
        assert campaign.summarize(store, ctx(), built["campaign_id"])["finished"]
    finally:
        ops.execute("update users set email = %s, birth_date = %s, declared_age = %s where id = %s",
                    (email[child], *saved, child))
        ops.execute("update users set email = %s where id = %s", (email[adult], adult))


def test_a_row_whose_address_a_child_took_since_the_build_is_skipped_at_send_time(conns, sendgrid):
    """Found by a review: the build skips an address a child holds, whoever else holds it, and a row that moves
    mid-campaign is checked for a child holding its new address; but a row whose address does not move was checked
    against its own accounts only. A child that took the address since the build (an account registered since, spelt
    with other case and white space, or with the other form of an internationalised domain; a child whose own row
    was skipped moving to it) was not seen, and the policy email went to the child's address. Each such row is now
    skipped as a child's; an adult that takes the address since holds nothing back."""
    ops, store, _ = conns
    tag = uuid.uuid4().hex[:8]
    idn = f"family.{tag}@bücher.de"
    made = [ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                           values (%s, 'An Adult', 'DE', '1980-01-01', now()) returning id""", (idn,)).fetchone()[0]]
    email = {}
    try:
        built = build(ops, store, publish(ops))
        (new_child, moved_child, adult_joins), email = last_single_accounts(ops, store, built, 3)
        kid = store.execute("""select user_ids[1] from compliance.notification_deliveries
                               where campaign_id = %s and state = 'skipped' and reason = 'child account (under 13)'
                                 and cardinality(user_ids) = 1 order by seq limit 1""",
                            (built["campaign_id"],)).fetchone()[0]
        email.update(ops.execute("select id, email from users where id = %s", (kid,)).fetchall())
        ops.execute("update users set email = %s where id = %s", (" " + email[moved_child].upper(), kid))
        for address, born in ((email[new_child].upper() + " ", TODAY - timedelta(days=5 * 365)),
                              (f"family.{tag}@xn--bcher-kva.de", TODAY - timedelta(days=6 * 365)),
                              (email[adult_joins], date(1970, 5, 5))):
            made.append(ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                                       values (%s, 'Someone', 'GB', %s, now()) returning id""",
                                    (address, born)).fetchone()[0])
        send(conns, sendgrid, built)
        got = received(sendgrid, built["campaign_id"])
        assert not {email[new_child].strip().lower(), email[moved_child].strip().lower(), idn,
                    f"family.{tag}@xn--bcher-kva.de"} & set(got)
        assert got[email[adult_joins].strip().lower()] == 1 and max(got.values()) == 1
        reasons = {r[0]: r[1:] for r in store.execute(
            """select user_ids[1], state, reason from compliance.notification_deliveries
               where campaign_id = %s and user_ids[1] = any(%s)""",
            (built["campaign_id"], [new_child, moved_child, adult_joins, made[0]]))}
        now_a_childs = ("skipped", "child account (under 13): a child account holds the address now, besides the "
                                   "row's own")
        assert reasons == {new_child: now_a_childs, moved_child: now_a_childs, made[0]: now_a_childs,
                           adult_joins: ("sent", None)}
        summary = campaign.summarize(store, ctx(), built["campaign_id"])
        assert summary["finished"] and summary["reasons"]["child account (under 13)"] >= 3
    finally:
        ops.execute("delete from users where id = any(%s)", (made,))
        for uid, address in email.items():
            ops.execute("update users set email = %s where id = %s", (address, uid))


def test_an_address_changed_mid_campaign_to_another_spelling_of_one_a_child_holds_is_not_told(conns, sendgrid):
    """Found by a review: the build keys an address by its mailbox (include.addresses.mailbox: an internationalised
    domain in Unicode or in ASCII, composed or decomposed, is one mailbox), but the send-time look-up of the other
    holders of a row's new address compared the address only as it is spelt: an adult who took kid@bücher.de while a
    child (registered since the build) held kid@xn--bcher-kva.de was re-keyed and told, and SendGrid delivered the
    policy email to the child's mailbox. Each is now skipped as the build would skip the address."""
    from include.campaign.ledger import spellings

    assert spellings("Kid@XN--BCHER-KVA.DE") == {"kid@xn--bcher-kva.de", "kid@bücher.de", "kid@bu\u0308cher.de"}
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    adults, email = last_single_accounts(ops, store, built, 3)
    tag = uuid.uuid4().hex[:8]
    # (the child's spelling, the adult's): ASCII and Unicode, Unicode and ASCII (another case), decomposed and composed
    spelt = [(f"kid1.{tag}@xn--bcher-kva.de", f"kid1.{tag}@bücher.de"),
             (f"kid2.{tag}@bücher.de", f" KID2.{tag}@XN--BCHER-KVA.DE"),
             (f"kid3.{tag}@bu\u0308cher.de", f"kid3.{tag}@bücher.de")]
    children = [ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                               values (%s, 'A Child', 'DE', %s, now()) returning id""",
                            (child, TODAY - timedelta(days=5 * 365))).fetchone()[0] for child, _ in spelt]
    for uid, (_, taken) in zip(adults, spelt):
        ops.execute("update users set email = %s where id = %s", (taken, uid))
    try:
        send(conns, sendgrid, built)
        got = received(sendgrid, built["campaign_id"])
        assert not [a for a in got if tag in a] and len(got) == built["pending"] - 3
        reasons = dict(store.execute("""select user_ids[1], reason from compliance.notification_deliveries
                                        where campaign_id = %s and user_ids[1] = any(%s)""",
                                     (built["campaign_id"], adults)).fetchall())
        assert reasons == dict.fromkeys(adults, "address changed since the campaign was built; the new address is "
                                                "held by a child account (under 13)")
        assert campaign.summarize(store, ctx(), built["campaign_id"])["finished"]
    finally:
        ops.execute("delete from users where id = any(%s)", (children,))
        for uid in adults:
            ops.execute("update users set email = %s where id = %s", (email[uid], uid))


def test_two_senders_moving_rows_to_the_same_addresses_in_opposite_orders_both_finish(seeded, conns, sendgrid):
    """Found by a review: pairs of accounts, one in each sender's lane, take one new address each mid-campaign, the
    pairs in opposite orders in the two lanes. Each sender re-keys its rows in seq order: the first takes the first
    addresses, the second the last, and then each waits for a key the other holds. PostgreSQL ends that deadlock by
    failing one sender's statement, which failed its task. Both now finish, and every new address gets one message."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    last = store.execute("select max(seq) from compliance.notification_deliveries where campaign_id = %s",
                         (built["campaign_id"],)).fetchone()[0]
    lanes = [[uid for (uid,) in store.execute(
        """select user_ids[1] from compliance.notification_deliveries
           where campaign_id = %s and state = 'pending' and cardinality(user_ids) = 1 and seq > %s
           order by seq limit 12""", (built["campaign_id"], start))] for start in (0, last // 2)]
    pairs = list(zip(lanes[0], reversed(lanes[1])))
    email = dict(ops.execute("select id, email from users where id = any(%s)", ([u for p in pairs for u in p],)))
    for i, pair in enumerate(pairs):
        for uid in pair:
            ops.execute("update users set email = %s where id = %s", (f"crossed.{i}.{pairs[0][0]}@example.org", uid))
    errors = []

    def sender(i):
        try:
            with database.connect(seeded["url"], autocommit=True) as o, \
                    database.connect(seeded["url"], autocommit=True) as s, \
                    database.connect(seeded["url"], autocommit=True) as side:
                send((o, s, side), sendgrid, built, sender=i, senders=2)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(type(exc).__name__)

    try:
        # Both senders' first re-key waits on the purged children's table (read for each new address) until both
        # are there: they then move their rows at the same pace and meet in the middle.
        with database.connect(seeded["url"]) as blocker:
            blocker.execute("lock table compliance.child_purges in access exclusive mode")
            threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for _ in range(600):
                if store.execute("""select count(*) from pg_locks
                                    where relation = 'compliance.child_purges'::regclass and not granted"""
                                 ).fetchone()[0] == 2:
                    break
                time.sleep(0.05)
            blocker.commit()
        for t in threads:
            t.join(300)
        assert errors == []
        got = received(sendgrid, built["campaign_id"])
        assert set(got.values()) == {1}
        assert all(got[f"crossed.{i}.{pairs[0][0]}@example.org"] == 1 for i in range(len(pairs)))
        assert len(got) == built["pending"] - len(pairs)
        assert campaign.summarize(store, ctx(), built["campaign_id"])["finished"]
    finally:
        for uid, address in email.items():
            ops.execute("update users set email = %s where id = %s", (address, uid))


def test_an_address_whose_row_another_sender_has_locked_and_moves_away_is_told_at_its_new_holder(seeded, conns,
                                                                                                  sendgrid):
    """Found by a review: account A takes the address account B leaves for a fresh one, and B's row is locked by
    another sender that has claimed it and not yet re-keyed it. A's re-key met B's row (still holding the key,
    pending), the row's lock kept A's accounts out of it, and A's row was skipped as 'the new address is told in its
    own row'; the other sender then moved B's row to B's fresh address: the address A took was never told. A's row is
    now left pending while the row holding its new address is another sender's, and the next claim tells it."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    (takes, leaves), email = first_batch_single_accounts(ops, store, built, 2)
    fresh = f"fresh.{leaves}@example.org"
    ops.execute("update users set email = %s where id = %s", (email[leaves], takes))
    ops.execute("update users set email = %s where id = %s", (fresh, leaves))
    try:
        with database.connect(seeded["url"]) as other:  # another sender's claim, between its lock and its marks
            other.execute("""select 1 from compliance.notification_deliveries
                             where campaign_id = %s and user_ids = array[%s]::bigint[] for update""",
                          (built["campaign_id"], leaves))
            send(conns, sendgrid, built)
            other.rollback()
        send(conns, sendgrid, built, run_id="next-run")
        got = received(sendgrid, built["campaign_id"])
        assert (got[email[leaves].strip().lower()], got[fresh]) == (1, 1) and max(got.values()) == 1
        rows = dict(store.execute("""select user_ids[1], state from compliance.notification_deliveries
                                     where campaign_id = %s and user_ids[1] = any(%s)""",
                                  (built["campaign_id"], [takes, leaves])).fetchall())
        assert rows == {takes: "sent", leaves: "sent"}
        assert campaign.summarize(store, ctx("next-run"), built["campaign_id"])["finished"]
    finally:
        for uid in (takes, leaves):
            ops.execute("update users set email = %s where id = %s", (email[uid], uid))


class HeldInItsFirstRequest:
    """A mailer whose first request waits, before it leaves, for an advisory lock the test holds: the sender is then
    inside its request, holding its claim (and the rows it re-keyed) for as long as the test likes."""

    def __init__(self, mailer, url: str, lock: int):
        self.mailer, self.url, self.lock, self.held = mailer, url, lock, False

    def send(self, payload):
        if not self.held:
            self.held = True
            with database.connect(self.url, autocommit=True) as conn:
                conn.execute("select pg_advisory_lock(%s)", (self.lock,))
        return self.mailer.send(payload)


def test_a_sender_meeting_another_senders_re_key_leaves_the_row_for_later_instead_of_waiting(seeded, conns, sendgrid):
    """Found by a review: two accounts, one in each sender's lane, take one new address mid-campaign. The first sender
    re-keys its row to the address and makes its request; the second sender's re-key of its own row met the first's
    uncommitted key in the primary key's index and waited for the first sender's transaction, its whole SendGrid
    request included (a slow or retried request held every other sender that met one of its addresses). The second
    sender now leaves that row pending and goes on; a later claim finds the address told."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    last = store.execute("select max(seq) from compliance.notification_deliveries where campaign_id = %s",
                         (built["campaign_id"],)).fetchone()[0]
    first, second = [store.execute(
        """select user_ids[1] from compliance.notification_deliveries
           where campaign_id = %s and state = 'pending' and cardinality(user_ids) = 1 and seq > %s
           order by seq limit 1""", (built["campaign_id"], start)).fetchone()[0] for start in (0, last // 2)]
    email = dict(ops.execute("select id, email from users where id = any(%s)", ([first, second],)))
    meeting = f"meet.{first}@example.org"
    for uid in (first, second):
        ops.execute("update users set email = %s where id = %s", (meeting, uid))
    lock = 7_300_000 + first
    real = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
    errors, pids = [], {}

    def sender(i, mailer):
        try:
            with database.connect(seeded["url"], autocommit=True) as o, \
                    database.connect(seeded["url"], autocommit=True) as s, \
                    database.connect(seeded["url"], autocommit=True) as side:
                pids[i] = s.info.backend_pid
                send((o, s, side), sendgrid, built, sender=i, senders=2, mailer=mailer)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(type(exc).__name__)

    def until(condition) -> None:
        deadline = time.monotonic() + 120  # a bound on a hang, not a timing the test relies on
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)

    def waiting(pid) -> bool:
        return store.execute("select exists (select 1 from pg_locks where pid = %s and not granted)",
                             (pid,)).fetchone()[0]

    try:
        with database.connect(seeded["url"], autocommit=True) as holder:
            holder.execute("select pg_advisory_lock(%s)", (lock,))
            held = threading.Thread(target=sender, args=(0, HeldInItsFirstRequest(real, seeded["url"], lock)))
            held.start()
            until(lambda: store.execute("""select exists (select 1 from pg_locks where locktype = 'advisory'
                                                          and objid = %s and not granted)""", (lock,)).fetchone()[0])
            # The first sender is inside its first request, the row of `first` re-keyed to the address.
            other = threading.Thread(target=sender, args=(1, real))
            other.start()
            until(lambda: not other.is_alive() or (1 in pids and waiting(pids[1])))
            waited = other.is_alive()
            left = store.execute("""select state from compliance.notification_deliveries
                                    where campaign_id = %s and user_ids = array[%s]::bigint[]""",
                                 (built["campaign_id"], second)).fetchone()
            holder.execute("select pg_advisory_unlock(%s)", (lock,))
        held.join(300)
        other.join(300)
        assert not waited, "the second sender waited for the first sender's request"
        assert left == ("pending",) and errors == []
        send(conns, sendgrid, built, run_id="next-run")
        got = received(sendgrid, built["campaign_id"])
        assert got[meeting] == 1 and set(got.values()) == {1} and len(got) == built["pending"] - 1
        rows = {uid: (state, reason) for uid, state, reason in store.execute(
            """select user_ids[1], state, reason from compliance.notification_deliveries
               where campaign_id = %s and user_ids[1] = any(%s)""", (built["campaign_id"], [first, second]))}
        assert rows == {first: ("sent", None), second: (
            "skipped", "address changed since the campaign was built; the new address was told in its own row of "
                       "the campaign")}
        assert campaign.summarize(store, ctx("next-run"), built["campaign_id"])["finished"]
    finally:
        for uid, address in email.items():
            ops.execute("update users set email = %s where id = %s", (address, uid))


def test_a_suppression_spelt_with_other_white_space_is_honoured_at_send_time(conns, sendgrid):
    """Found by a QA trial: the build compares addresses trimmed of every white space character, the send-time
    check trimmed spaces only, so a suppression added mid-campaign with a tab (or an account's address ending in
    a line break, or a no-break space) was missed and the suppressed address emailed."""
    ops, store, _ = conns
    label = publish(ops)
    built = build(ops, store, label)
    (tabbed, broken, nbsp), email = last_single_accounts(ops, store, built, 3)
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'bounce', now())",
                (email[tabbed] + "\t",))
    ops.execute("update users set email = email || E'\\r\\n' where id = %s", (broken,))
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'spam_report', now())",
                (email[broken].upper(),))
    ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, 'unsubscribe', now())",
                ("\u00a0" + email[nbsp],))  # a no-break space only: not white space to the database's own classes
    try:
        send(conns, sendgrid, built)
        got = received(sendgrid, built["campaign_id"])
        assert not {email[u].lower() for u in (tabbed, broken, nbsp)} & set(got)
        reasons = dict(store.execute("""select user_ids[1], reason from compliance.notification_deliveries
                                        where campaign_id = %s and user_ids[1] = any(%s)""",
                                     (built["campaign_id"], [tabbed, broken, nbsp])).fetchall())
        assert reasons == {tabbed: "suppressed since the campaign was built (bounce)",
                           broken: "suppressed since the campaign was built (spam_report)",
                           nbsp: "suppressed since the campaign was built (unsubscribe)"}
        assert len(got) == built["pending"] - 3
    finally:
        ops.execute("delete from email_suppressions where created_at > now() - interval '1 hour' "
                    "and reason in ('bounce', 'spam_report', 'unsubscribe') and btrim(email, %s) <> email",
                    (WHITESPACE,))
        ops.execute("delete from email_suppressions where lower(email) = lower(%s)", (email[broken],))
        ops.execute("update users set email = %s where id = %s", (email[broken], broken))


def test_max_recipients_caps_the_run_and_the_next_run_continues(conns, sendgrid):
    ops, store, _ = conns
    label = publish(ops)
    built = build(ops, store, label)
    plans = campaign.plan_senders(Step(ctx=ctx(), settings=SETTINGS, store=store,
                                       params=NotificationParams(today=TODAY, max_recipients=250)), built)
    assert [p["budget"] for p in plans] == [63, 63, 62, 62]
    sent = sum(send(conns, sendgrid, built, sender=p["sender"], senders=p["senders"], budget=p["budget"])["sent"]
               for p in plans)
    assert sent == 250 and sum(received(sendgrid, built["campaign_id"]).values()) == 250
    assert not campaign.summarize(store, ctx(), built["campaign_id"])["finished"]
    send(conns, sendgrid, built, run_id="next-run")
    got = received(sendgrid, built["campaign_id"])
    assert len(got) == built["pending"] and set(got.values()) == {1}
    assert campaign.summarize(store, ctx(), built["campaign_id"])["finished"]


def test_a_refused_request_fails_its_rows_and_the_campaign_goes_on(conns, sendgrid):
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    sendgrid.inject(status=400, count=1)
    report = send(conns, sendgrid, built)
    assert report["failed"] == SETTINGS.notification_batch_size and report["sent"] == built["pending"] - report["failed"]
    reasons = {r[0] for r in store.execute("select reason from compliance.notification_deliveries "
                                           "where campaign_id = %s and state = 'failed'", (built["campaign_id"],))}
    assert reasons == {"injected fault"}
    summary = campaign.summarize(store, ctx(), built["campaign_id"])
    assert summary["failed"] == SETTINGS.notification_batch_size and summary["finished"]


def test_a_refused_api_key_leaves_the_ledger_as_it_was(conns, sendgrid):
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    before = store.execute("select state, count(*) from compliance.notification_deliveries where campaign_id = %s "
                           "group by 1 order by 1", (built["campaign_id"],)).fetchall()
    wrong = SendGridMailer(api_key="SG.wrong", host=sendgrid.base_url, sleep=lambda s: None)
    with pytest.raises(SendGridAuthError):
        send(conns, sendgrid, built, mailer=wrong)
    assert store.execute("select state, count(*) from compliance.notification_deliveries where campaign_id = %s "
                         "group by 1 order by 1", (built["campaign_id"],)).fetchall() == before
    # SendGrid answered: nothing went out, so nothing is at risk of a duplicate.
    assert store.execute("select state from compliance.notification_batches where campaign_id = %s",
                         (built["campaign_id"],)).fetchall() == [("not_sent",)]
    assert campaign.summarize(store, ctx(), built["campaign_id"])["duplicates_at_risk"] == 0


def test_a_sender_dying_between_send_and_commit_re_sends_only_its_batch(seeded, conns, sendgrid):
    """What SIGKILL does, step by step: the request was accepted, the transaction that marks it never commits."""
    ops, store, side = conns
    built = build(ops, store, publish(ops))
    dm = load_datamap()
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)
    notice = Notice(built["campaign_id"], "live", built["policy_version"], None, None, None)
    from include.subjects import address_hasher

    doomed = database.connect(seeded["url"], autocommit=True)
    ledger = CampaignLedger(LedgerLinks(ops=ops, dm=dm, side=side, ctx=ctx("dead-run")),
                            Audience(campaign_id=built["campaign_id"], scope="live", renderer=Renderer(notice, SETTINGS, "r"), hasher=address_hasher(KEY), as_of=TODAY),
                            SenderShare(sender="send_batches[0]", batch_size=SETTINGS.notification_batch_size))
    tx = doomed.transaction()
    tx.__enter__()
    batch = ledger.claim(doomed)
    mailer.send(batch.payload)  # accepted by SendGrid...
    doomed.close()              # ...and the sender dies before its commit: the locks and the marks go with it
    assert received(sendgrid, built["campaign_id"]).total() == batch.size

    send(conns, sendgrid, built, run_id="retry-run")
    got = received(sendgrid, built["campaign_id"])
    assert set(got) == set(expected(ops))  # nobody missed
    twice = {a for a, n in got.items() if n == 2}
    assert len(twice) == batch.size and set(got.values()) == {1, 2}  # only the batch in flight, once more
    summary = campaign.summarize(store, ctx(), built["campaign_id"])
    assert (summary["duplicates_at_risk"], summary["unknown_batches"], summary["finished"]) == (batch.size, 1, True)
    assert store.execute("select duplicates_at_risk from compliance.notification_campaign_progress "
                         "where campaign_id = %s", (built["campaign_id"],)).fetchone() == (batch.size,)


def test_a_request_answered_after_the_timeout_counts_its_rows_as_duplicates_at_risk(conns, sendgrid):
    """Found by a fault trial: SendGrid took a request and answered after the client's timeout; the retry was taken
    too, so a batch's recipients were told twice, and the campaign said no duplicate was at risk."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    # The late answer comes 3 s after its request, the client waits 1.5 s: a batch of a thousand recipients, checked
    # against SendGrid's schema by the stand-in, took more than 0.3 s on a loaded machine, and a second batch went
    # unanswered too.
    sendgrid.inject(answer_delay_seconds=3.0, count=1)
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None,
                            policy=RetryPolicy(timeout=1.5))
    send(conns, sendgrid, built, mailer=mailer)
    got = received(sendgrid, built["campaign_id"])
    assert set(got) == set(expected(ops))  # nobody missed
    twice = {a for a, n in got.items() if n == 2}
    assert 0 < len(twice) <= SETTINGS.notification_batch_size and set(got.values()) == {1, 2}
    summary = campaign.summarize(store, ctx(), built["campaign_id"])
    assert (summary["duplicates_at_risk"], summary["unknown_batches"], summary["finished"]) == (len(twice), 1, True)
    actions = [a for (a,) in store.execute("select action from compliance.audit_log where details ->> 'campaign_id' = %s",
                                           (str(built["campaign_id"]),))]
    assert actions.count("policy_change_at_risk") == 1
    wait_answered(sendgrid)


def test_a_request_refused_after_an_unanswered_attempt_counts_its_rows_as_duplicates_at_risk(conns, sendgrid):
    """SendGrid took a request and answered after the client's timeout, then refused the retry with a 400: the batch
    is marked failed, yet its recipients may have been told by the first attempt. Before, no unknown request row was
    written for it (only the audit log said so) and the campaign counted no duplicate at risk."""
    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    sendgrid.inject(answer_delay_seconds=3.0, count=1)
    sendgrid.inject(status=400, count=1)
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None,
                            policy=RetryPolicy(timeout=1.5))
    send(conns, sendgrid, built, mailer=mailer)
    got = received(sendgrid, built["campaign_id"])
    assert set(got) == set(expected(ops)) and set(got.values()) == {1}
    failed = store.execute("select seqs, size from compliance.notification_batches where campaign_id = %s "
                           "and state = 'failed'", (built["campaign_id"],)).fetchall()
    unknown = store.execute("select seqs, size, http_attempts from compliance.notification_batches "
                            "where campaign_id = %s and state = 'unknown'", (built["campaign_id"],)).fetchall()
    assert len(failed) == 1 and unknown == [(failed[0][0], failed[0][1], 1)]
    summary = campaign.summarize(store, ctx(), built["campaign_id"])
    assert (summary["failed"], summary["duplicates_at_risk"], summary["unknown_batches"]) == (failed[0][1],) * 2 + (1,)
    wait_answered(sendgrid)


def test_a_test_run_sends_only_to_its_addresses_and_touches_no_real_recipient(conns, sendgrid):
    ops, store, _ = conns
    label = publish(ops)
    live = build(ops, store, label)
    addresses = ("qa.one@example.net", "QA.Two@Example.net", "bounced.user@example.org")  # the last is suppressed
    test = build(ops, store, label, test_recipients=addresses)
    assert test["scope"] == "test" and test["campaign_id"] != live["campaign_id"]
    report = send(conns, sendgrid, test, test_recipients=addresses)
    got = received(sendgrid, test["campaign_id"])
    assert set(got) == {"qa.one@example.net", "qa.two@example.net"} and report["sent"] == 2
    assert received(sendgrid, live["campaign_id"]) == Counter()
    assert store.execute("select count(*) from compliance.notification_deliveries where campaign_id = %s "
                         "and state = 'pending'", (live["campaign_id"],)).fetchone()[0] == live["pending"]
    assert all(m["payload"]["custom_args"]["scope"] == "test" for m in sendgrid.accepted())


def test_a_scheduled_run_stops_when_the_newest_version_is_done(conns, sendgrid):
    ops, store, _ = conns
    label = publish(ops)
    now = datetime.now(timezone.utc)
    found = campaign.find_version(ops, store, load_datamap(), NotificationParams(today=TODAY), now)
    assert found["version"]["version"] == label
    built = build(ops, store, label)
    send(conns, sendgrid, built)
    campaign.summarize(store, ctx(), built["campaign_id"])
    assert campaign.find_version(ops, store, load_datamap(), NotificationParams(today=TODAY), now) is None
    # A run naming the version goes on, and finds nothing left to send.
    again = build(ops, store, label)
    assert again["campaign_id"] == built["campaign_id"] and not again["created_now"] and again["pending"] == 0
    assert send(conns, sendgrid, again)["sent"] == 0
    # A version published in the future can be previewed, not sent.
    ops.execute("update policy_versions set published_at = now() + interval '1 day' where version = %s", (label,))
    with pytest.raises(ParamError, match="is not published yet"):
        campaign.find_version(ops, store, load_datamap(), NotificationParams(today=TODAY, policy_version=label), now)
    assert campaign.find_version(ops, store, load_datamap(),
                                 NotificationParams(today=TODAY, policy_version=label, dry_run=True), now)
    ops.execute("update policy_versions set published_at = now() - interval '1 day' where version = %s", (label,))


def test_a_version_published_at_the_same_moment_as_a_newer_one_is_said_passed_over_not_silently_dropped(conns,
                                                                                                          caplog):
    """Found by a review: two versions published at the same moment (one published_at) and a scheduled run. The newer
    is decided by published_at, then id, whatever order the rows were written in (that part held already), and only it
    is announced; but the other was never announced and nothing said so. A scheduled run now names every published
    version passed over since the last announced one, and why, in its log; the run that builds the newest's campaign
    records them in its campaign_built audit entry; a run naming a passed-over version still announces it."""
    ops, store, _ = conns
    announced = publish(ops)
    ops.execute("update policy_versions set published_at = now() - interval '50 seconds' where version = %s",
                (announced,))
    build(ops, store, announced)
    tag = uuid.uuid4().hex[:8]
    first_id = ops.execute("select max(id) + 1 from policy_versions").fetchone()[0]
    # The higher id written first: the order rows were written in decides nothing.
    for vid, label in ((first_id + 1, f"tie-b-{tag}"), (first_id, f"tie-a-{tag}")):
        ops.execute("""insert into policy_versions (id, version, published_at, effective_at, summary, url, body_sha256)
                       values (%s, %s, date_trunc('second', now()) - interval '40 seconds', now() + interval '30 days',
                               'Tied.', 'https://example.com/legal/privacy/' || %s, 'x')""", (vid, label, label))
    try:
        now = datetime.now(timezone.utc)
        caplog.set_level("INFO", logger="include.campaign")
        found = campaign.find_version(ops, store, load_datamap(), NotificationParams(today=TODAY), now)
        assert found["version"]["version"] == f"tie-b-{tag}"
        said = [r.getMessage() for r in caplog.records if f"tie-a-{tag}" in r.getMessage()]
        assert said == [f"policy version tie-a-{tag} (id {first_id}) is not announced: version tie-b-{tag} (id "
                        f"{first_id + 1}) supersedes it, published at the same moment and entered after it (a higher "
                        "id), and a scheduled run announces only the newest published version; a run naming "
                        f"policy_version tie-a-{tag} announces it"]
        built = campaign.build_recipients(Step(ctx=ctx("tie-run", "build_recipients"), settings=SETTINGS,
                                               params=NotificationParams(today=TODAY), ops=ops, store=store,
                                               datamap=load_datamap(), key=KEY), found)
        (details,) = store.execute("""select details from compliance.audit_log
                                      where action = 'policy_change.campaign_built'
                                        and (details ->> 'campaign_id')::bigint = %s""",
                                   (built["campaign_id"],)).fetchone()
        assert details["passed_over"] == [{"id": first_id, "version": f"tie-a-{tag}",
                                           "published_at": found["version"]["published_at"],
                                           "superseded_by": first_id + 1}]
        # A run naming it announces it; then nothing is passed over any more.
        build(ops, store, f"tie-a-{tag}")
        caplog.clear()
        assert campaign.find_version(ops, store, load_datamap(), NotificationParams(today=TODAY), now)
        assert not [r for r in caplog.records if "is not announced" in r.getMessage()]
    finally:  # the later tests' versions are the newest again
        ops.execute("update policy_versions set published_at = published_at - interval '2 days' "
                    "where version = any(%s)", ([announced, f"tie-a-{tag}", f"tie-b-{tag}"],))


def test_a_policy_time_column_without_a_time_zone_is_read_as_utc_not_a_crash(conns):
    """``policy_versions`` with ``timestamp`` (no zone) columns: read as UTC, as every reader reads them. Before, a run
    naming the version compared the naive ``published_at`` with the run's aware time: a TypeError, with a traceback,
    on every try."""
    ops, store, _ = conns
    label = publish(ops)
    ops.execute("set time zone 'UTC'")  # as every connection of the product (include/seam/connections.py)
    ops.execute("alter table policy_versions alter column published_at type timestamp, "
                "alter column effective_at type timestamp")
    try:
        found = campaign.find_version(ops, store, load_datamap(), NotificationParams(today=TODAY, policy_version=label),
                                      datetime.now(timezone.utc))
    finally:
        ops.execute("alter table policy_versions alter column published_at type timestamptz, "
                    "alter column effective_at type timestamptz")
    assert found["version"]["version"] == label
    assert found["version"]["published_at"].endswith("+00:00") and found["version"]["effective_at"].endswith("+00:00")


def test_an_unusable_policy_row_is_refused_in_one_sentence(conns):
    ops, store, _ = conns
    label = publish(ops)
    ops.execute("update policy_versions set effective_at = 'infinity' where version = %s", (label,))
    from include.campaign.versions import UnusableVersion

    with pytest.raises(UnusableVersion, match=f"policy version {label} cannot be announced: effective_at holds "
                                              "infinity"):
        build(ops, store, label)
    ops.execute("delete from policy_versions where version = %s", (label,))
    with pytest.raises(ParamError, match="is not in policy_versions"):
        build(ops, store, label)


@pytest.mark.parametrize("typed", ["jane.doe@example.com", "Jane Doe", "+1 415 555 0100", "4155550100",
                                   "10.1.2.3", "2001:db8::1"])
def test_a_policy_version_that_names_nothing_is_not_repeated_when_it_may_be_personal_data(conns, typed):
    ops, _, _ = conns
    with pytest.raises(ParamError) as err:
        versions.named(ops, load_datamap(), typed)
    assert str(err.value) == ("the policy_version given (not repeated: it may be personal data) is not in "
                              "policy_versions")


def test_a_policy_version_label_that_names_nothing_is_quoted(conns):
    ops, _, _ = conns
    with pytest.raises(ParamError) as err:
        versions.named(ops, load_datamap(), "2026.13")
    assert str(err.value) == "policy_version '2026.13' is not in policy_versions"


@pytest.mark.parametrize(("url", "problem"), [
    (None, "url is empty"), ("  ", "url is empty"), ("javascript:alert(1)", "url is not a web address"),
    ("example.com/privacy", "url is not a web address"), ("https://", "url is not a web address"),
    # Found by a review: a template campaign copies the url into every recipient's data; one of 10 kB made every
    # full request over SendGrid's 30 MB, each refused and its recipients failed for good.
    ("https://example.com/p?" + "x" * 10_000, "its url is 10,022 bytes long as sent to SendGrid")])
def test_a_version_without_a_web_address_to_read_it_at_is_refused(conns, url, problem):
    """A notice must say where the whole policy is: no campaign, no ledger row, one sentence."""
    ops, store, _ = conns
    label = publish(ops)
    ops.execute("alter table policy_versions alter column url drop not null")  # the reference schema forbids NULL
    ops.execute("update policy_versions set url = %s where version = %s", (url, label))
    with pytest.raises(versions.UnusableVersion, match=f"policy version {label} cannot be announced: {problem}"):
        build(ops, store, label)
    assert not store.execute("select 1 from compliance.notification_campaigns where policy_version = %s",
                             (label,)).fetchone()
    ops.execute("update policy_versions set url = %s where version = %s", (" https://example.com/p\n", label))
    assert versions.named(ops, load_datamap(), label).url == "https://example.com/p"
    ops.execute("delete from policy_versions where version = %s", (label,))
    ops.execute("alter table policy_versions alter column url set not null")


def test_an_address_with_an_internationalised_domain_is_told_in_its_ascii_form(conns, sendgrid):
    """Found by a fault trial: probe4@bücher.de, a valid address whose mailbox SendGrid reaches as
    probe4@xn--bcher-kva.de, was skipped as 'not ASCII' and never told. Its domain is sent in ASCII (IDNA); a local
    part that is not ASCII still cannot be sent (SendGrid would need SMTPUTF8)."""
    from include.addresses import sendable

    assert sendable("Probe4@Bücher.de") == "Probe4@xn--bcher-kva.de" and sendable("a@b.org") == "a@b.org"
    ops, store, _ = conns
    first = ops.execute("select max(id) + 1 from users").fetchone()[0]
    ops.execute("""insert into users (id, email, full_name, birth_date, created_at)
                   values (%s, 'probe4@bücher.de', 'Ida Probe', '1980-01-01', now() - interval '2 years'),
                          (%s, 'jürgen@bücher.de', 'Jürgen Probe', '1980-01-01', now() - interval '2 years')""",
                (first, first + 1))
    try:
        built = build(ops, store, publish(ops))
        rows = ledger_rows(store, built["campaign_id"])
        assert rows[address_hash(KEY, "probe4@bücher.de")][0] == "pending"
        state, reason = rows[address_hash(KEY, "jürgen@bücher.de")][:2]
        assert state == "skipped" and "before the @-sign" in reason and "jürgen" not in reason
        send(conns, sendgrid, built)
        told = {p["to"][0]["email"] for m in sendgrid.accepted() for p in m["payload"]["personalizations"]}
        assert "probe4@xn--bcher-kva.de" in told and not {a for a in told if not a.isascii()}
        assert ledger_rows(store, built["campaign_id"])[address_hash(KEY, "probe4@bücher.de")][0] == "sent"
    finally:
        ops.execute("delete from users where id in (%s, %s)", (first, first + 1))


def test_one_mailbox_spelt_with_its_domain_in_unicode_and_in_ascii_is_told_once(conns, sendgrid):
    """dup@bücher.de and dup@xn--bcher-kva.de (and the domain in decomposed Unicode) are one mailbox: SendGrid is
    given each as dup@xn--bcher-kva.de. Two rows for it put the address twice in one request, which SendGrid refuses
    whole (every recipient of the batch failed), or tell the person twice from two requests."""
    ops, store, _ = conns
    first = ops.execute("select max(id) + 1 from users").fetchone()[0]
    spellings = ("dup@bücher.de", "DUP@XN--BCHER-KVA.DE", "dup@bu\u0308cher.de")
    for i, address in enumerate(spellings):
        ops.execute("""insert into users (id, email, full_name, birth_date, created_at)
                       values (%s, %s, 'Dee Up', '1980-01-01', now() - interval '2 years')""", (first + i, address))
    try:
        built = build(ops, store, publish(ops))
        send(conns, sendgrid, built)
        told = Counter(p["to"][0]["email"].lower() for m in sendgrid.accepted()
                       if m["payload"]["custom_args"]["campaign_id"] == str(built["campaign_id"])
                       for p in m["payload"]["personalizations"])
        assert told["dup@xn--bcher-kva.de"] == 1
        rows = ledger_rows(store, built["campaign_id"])
        assert not [r for r in rows.values() if r[0] == "failed"]
        assert [r[2] for r in rows.values() if first in (r[2] or [])] == [[first, first + 1, first + 2]]
    finally:
        ops.execute("delete from users where id between %s and %s", (first, first + len(spellings) - 1))


def test_exclusions_skip_an_address_whatever_account_holds_it(conns, monkeypatch):
    """The hook for purged children's addresses: an excluded hash is skipped with its reason."""
    ops, store, _ = conns
    planted_email = sorted(expected(ops))[0]  # an address that would otherwise be told
    monkeypatch.setattr(recipients, "exclusions",
                        lambda store: {address_hash(KEY, planted_email): "address of a purged child"})
    built = build(ops, store, publish(ops))
    row = ledger_rows(store, built["campaign_id"])[address_hash(KEY, planted_email)]
    assert row[:2] == ("skipped", "address of a purged child")


def test_a_purged_childs_address_is_skipped_whatever_account_holds_it_later(conns):
    """A child erased by the purge (through the erasure engine and the purge's ledger, as the DAG does), then a
    new account registered with the child's address in another case and with spaces: never told."""
    from include.children import ledger as purge_ledger
    from include.erasure import EraseOptions, erase_subject
    from include.erasure import run as erasure_run
    from include.subjects import user_hash

    ops, store, _ = conns
    now = datetime.now(timezone.utc)
    kid = ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                         values ('kid-purged@example.com', 'A Child', 'US', current_date - interval '10 years', now())
                         returning id""").fetchone()[0]
    run_id = f"manual__purge-{kid}"
    erasure_run.start_run(store, purge_ledger.WORKFLOW, erasure_run.RunStart(
        run_id=run_id, as_of=TODAY, run_type="manual", dry_run=False, threshold=50, started_at=now, targets=(kid,)))
    purge_ledger.record_detection(store, run_id, [purge_ledger.Detected(user_hash(KEY, kid), kid, ("under_13",), (),
                                                                        ())], [], at=now, counts={})
    result = erase_subject(ops, ops_datamap(), kid, KEY, at=now,
                           options=EraseOptions(before_commit=lambda r: purge_ledger.mark_erasing(store, run_id, r)))
    purge_ledger_ctx = RunContext(run_id=run_id, actor="test", dag_id="child_data_purge", now=lambda: now)
    assert purge_ledger.finish_subject(store, purge_ledger_ctx, run_id, result)
    assert result.address_hash == address_hash(KEY, "kid-purged@example.com")
    parent = ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                            values ('  Kid-Purged@Example.COM ', 'A Parent', 'US', '1980-01-01', now())
                            returning id""").fetchone()[0]
    try:
        built = build(ops, store, publish(ops))
        row = ledger_rows(store, built["campaign_id"])[address_hash(KEY, "kid-purged@example.com")]
        assert row[:3] == ("skipped", "address of a purged child", [parent])
        skipped = {r for r, v in ledger_rows(store, built["campaign_id"]).items() if v[1] == "address of a purged child"}
        assert skipped == {address_hash(KEY, "kid-purged@example.com")}
    finally:  # the module's other tests compare campaigns with an oracle of the operational rows alone
        ops.execute("delete from users where id = %s", (parent,))
        store.execute("delete from compliance.child_purges where run_id = %s", (run_id,))


def test_the_store_reads_show_progress_and_reasons_without_addresses(conns, sendgrid):
    from include.reads import campaign as reads

    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    send(conns, sendgrid, built, budget=150)
    shown = reads.campaign(store, built["campaign_id"])
    assert (shown["state"], shown["sent"], shown["pending"], shown["duplicates_at_risk"]) == (
        "sending", 150, built["pending"] - 150, 0)
    assert shown["build_counts"]["eligible"] == built["pending"]
    assert reads.campaigns(store, limit=1)[0]["campaign_id"] == built["campaign_id"]
    assert reads.campaigns(store, scope="test", limit=500) == [c for c in reads.campaigns(store, limit=500)
                                                                if c["scope"] == "test"]
    why = {(state, reason) for state, reason, _ in reads.reasons(store, built["campaign_id"])}
    assert why == {("skipped", "child account (under 13)"), ("skipped", "suppressed"), ("skipped", "invalid address")}
    assert reads.campaign_states(store).get("sending", 0) >= 1
    assert reads.campaign(store, 10**9) is None


def test_the_reasons_are_grouped_by_their_kind_whatever_separates_it_from_the_detail(conns):
    """Found by a review: the store read of why recipients were left out (and the campaign summary's figures) grouped
    the reasons by their text before the first ':', while the reasons written since an address may change
    mid-campaign give their kind, then why after ';' (ADDRESS_CHANGED; ...), and one gives a suppression's own reason
    in parentheses: 'has a row of its own that was not sent (skipped: suppressed: bounce)' made a group cut inside
    its parentheses, and each suppression reason a group of its own. Every reason the code writes is grouped by its
    kind."""
    from include.campaign import ledger
    from include.reads import campaign as reads

    ops, store, _ = conns
    changed = ledger.ADDRESS_CHANGED
    written = {  # each reason the code writes (include/campaign/*.py), with a detail where it has one -> its group
        "invalid address: An email address must have an @-sign.": "invalid address",
        "suppressed: bounce": "suppressed", "suppressed: no reason given": "suppressed",
        recipients.CHILD_REASON: recipients.CHILD_REASON, recipients.PURGED_CHILD: recipients.PURGED_CHILD,
        "deleted_at holds infinity": "deleted_at holds infinity", "deleted_at is a BC date": "deleted_at is a BC date",
        ledger.GONE: ledger.GONE, ledger.NOT_A_TEST_RECIPIENT: ledger.NOT_A_TEST_RECIPIENT,
        f"{ledger.SUPPRESSED_NOW} (bounce)": ledger.SUPPRESSED_NOW,
        f"{ledger.SUPPRESSED_NOW} (spam_report)": ledger.SUPPRESSED_NOW,
        ledger.NO_ADDRESS_NOW: changed, ledger.TOLD_IN_ANOTHER_ROW: changed,
        f"{changed}; the new address was told in its own row of the campaign": changed,
        f"{changed}; the new address has a row of its own that was not sent (skipped: suppressed: bounce)": changed,
        f"{changed}; the new address has a row of its own that was not sent (failed: x: y)": changed,
        f"{changed}; the new address is suppressed (bounce)": changed,
        f"{changed}; the new address is invalid: The domain name … does not exist.": changed,
        f"{changed}; the new address is the {recipients.PURGED_CHILD}": changed,
        f"{changed}; the new address is held by a {recipients.CHILD_REASON}": changed,
    }
    failed = {"personalizations.0.to: Does not contain a valid address.; subject: too long": "personalizations.0.to",
              "rejected; the response body was not SendGrid's JSON error format": "rejected"}
    rows = [("skipped", r) for r in written] + [("failed", r) for r in failed]
    campaign_id = store.execute(
        """insert into compliance.notification_campaigns (scope, policy_version_id, policy_version, run_id, total,
                                                          skipped, failed, created_at, updated_at)
           values ('test', -1, 'reasons', %s, %s, %s, %s, now(), now()) returning id""",
        (f"reasons-{uuid.uuid4().hex[:8]}", len(rows), len(written), len(failed))).fetchone()[0]
    try:
        for seq, (state, reason) in enumerate(rows, start=1):
            store.execute("""insert into compliance.notification_deliveries (campaign_id, seq, recipient, state, reason)
                             values (%s, %s, %s, %s, %s)""", (campaign_id, seq, f"r{seq}", state, reason))
        want = Counter([("skipped", g) for g in written.values()] + [("failed", g) for g in failed.values()])
        assert {(state, kind): n for state, kind, n in reads.reasons(store, campaign_id, limit=100)} == want
        summary = campaign.summarize(store, ctx(), campaign_id)
        assert summary["reasons"] == dict(Counter(list(written.values()) + list(failed.values())).most_common())
    finally:
        store.execute("delete from compliance.notification_deliveries where campaign_id = %s", (campaign_id,))
        store.execute("delete from compliance.notification_campaigns where id = %s", (campaign_id,))


def test_a_claim_walks_the_ledger_index_even_when_statistics_say_nothing_is_pending(conns):
    """A resumed campaign: ANALYZE saw (almost) no pending row, and a few are pending again.

    Without a bound on seq the planner estimated one match and read the whole ledger, sorting it, for every
    batch (~0.15 s a claim at a million rows); the claim must stay an index walk however stale its statistics.
    """
    from include.campaign.ledger import CLAIM_SQL

    _, store, _ = conns
    campaign_id = -int(uuid.uuid4().int % 1_000_000_000)  # a campaign id of its own, never a real one
    store.execute("""insert into compliance.notification_deliveries (campaign_id, seq, recipient, state, finished_at)
                     select %s, g, md5(g::text) || md5((-g)::text), 'sent', now() from generate_series(1, 200000) g""",
                  (campaign_id,))
    try:
        store.execute("analyze compliance.notification_deliveries")
        store.execute("update compliance.notification_deliveries set state = 'pending', finished_at = null "
                      "where campaign_id = %s and seq in (17, 150000)", (campaign_id,))
        with store.transaction():
            plan = "\n".join(r[0] for r in store.execute(
                "explain " + CLAIM_SQL, {"campaign": campaign_id, "after": 0, "upto": 10_000, "limit": 1000}))
        assert "Index Scan" in plan and "Seq Scan" not in plan, plan
    finally:
        store.execute("delete from compliance.notification_deliveries where campaign_id = %s", (campaign_id,))


def test_a_sender_finds_pending_rows_scattered_across_many_windows(conns, sendgrid):
    """Claims go window by window; rows left pending far apart (a resumed campaign) are all found, in order."""
    ops, store, side = conns
    built = build(ops, store, publish(ops))
    scattered = [r[0] for r in store.execute(
        "select seq from compliance.notification_deliveries where campaign_id = %s and state = 'pending' "
        "order by seq", (built["campaign_id"],))][::97]
    store.execute("update compliance.notification_deliveries set state = 'sent', finished_at = now() "
                  "where campaign_id = %s and state = 'pending' and not seq = any(%s)",
                  (built["campaign_id"], scattered))
    store.execute("update compliance.notification_campaigns set sent = sent + pending - %s, pending = %s where id = %s",
                  (len(scattered), len(scattered), built["campaign_id"]))
    from include.subjects import address_hasher

    notice = Notice(built["campaign_id"], "live", built["policy_version"], None, None, None)
    ledger = CampaignLedger(LedgerLinks(ops=ops, dm=load_datamap(), side=side, ctx=ctx()),
                            Audience(campaign_id=built["campaign_id"], scope="live", renderer=Renderer(notice, SETTINGS, "r"), hasher=address_hasher(KEY), as_of=TODAY),
                            SenderShare(sender="send_batches[0]", batch_size=5, window=20))
    assert ledger.window == 20
    claimed = [seq for keys in claim_all(ledger, store) for seq in keys]
    assert claimed == scattered and len(claimed) > 5


def claim_all(ledger: CampaignLedger, store) -> list[list[int]]:
    """Claim and mark batches (nothing is sent) until the ledger has none left; each batch's seqs."""
    claimed = []
    while True:
        with store.transaction():
            batch = ledger.claim(store)
            if batch is None:
                return claimed
            claimed.append(list(batch.keys))
            ledger.mark_sent(store, batch, message_id="m", sent_at=datetime.now(timezone.utc))


def lane_ledger(conns, built: dict, *, lane: int, lanes: int, batch_size: int = 5) -> CampaignLedger:
    from include.subjects import address_hasher

    ops, _, side = conns
    notice = Notice(built["campaign_id"], "live", built["policy_version"], None, None, None)
    return CampaignLedger(LedgerLinks(ops=ops, dm=load_datamap(), side=side, ctx=ctx()),
                          Audience(campaign_id=built["campaign_id"], scope="live", renderer=Renderer(notice, SETTINGS, "r"), hasher=address_hasher(KEY), as_of=TODAY),
                          SenderShare(sender=f"send_batches[{lane}]", batch_size=batch_size, lane=lane, lanes=lanes, window=20))


def pending_and_last(store, campaign_id: int) -> tuple[list[int], int]:
    pending = [r[0] for r in store.execute(
        "select seq from compliance.notification_deliveries where campaign_id = %s and state = 'pending' "
        "order by seq", (campaign_id,))]
    last = store.execute("select max(seq) from compliance.notification_deliveries where campaign_id = %s",
                         (campaign_id,)).fetchone()[0]
    return pending, last


def test_parallel_senders_walk_their_own_lane_and_a_lone_one_then_reaches_every_row(conns):
    """Sender 1 of 2 starts half-way through the ledger (not behind sender 0's locked rows); alone, once its lane
    is done and rows no live request carries are still pending, it walks the rest from the start."""
    ops, store, side = conns
    built = build(ops, store, publish(ops))
    pending, last = pending_and_last(store, built["campaign_id"])
    ledger = lane_ledger(conns, built, lane=1, lanes=2)
    claimed = claim_all(ledger, store)
    flat = [seq for keys in claimed for seq in keys]
    assert claimed[0][0] > last // 2 and all(seq > last // 2 for seq in claimed[0])
    assert sorted(flat) == sorted(set(flat)) and len(flat) > 10
    skipped_now = store.execute("select count(*) from compliance.notification_deliveries where campaign_id = %s "
                                "and seq = any(%s) and state = 'skipped'", (built["campaign_id"], pending)).fetchone()[0]
    assert len(flat) + skipped_now == len(pending)  # every pending row: sent, or skipped at send time
    assert flat == sorted(s for s in flat if s > last // 2) + sorted(s for s in flat if s <= last // 2)
    with pytest.raises(ValueError, match="lane 2 of 2"):
        lane_ledger(conns, built, lane=2, lanes=2)


def test_a_sender_whose_lane_is_done_does_not_walk_the_ledger_again_when_nothing_is_left_outside_live_requests(
        conns, seeded):
    """A lone sender reads the ledger once (no second pass once nothing is pending); sender 0 of 2 stops after its
    own lane while every row left is in a request sender 1 is still making, and a sender that comes after sender 1
    died without marking them walks on to them."""
    ops, store, side = conns
    built = build(ops, store, publish(ops))
    _, last = pending_and_last(store, built["campaign_id"])
    alone = lane_ledger(conns, built, lane=0, lanes=1)
    assert claim_all(alone, store)
    assert alone.walked == last  # one pass

    built = build(ops, store, publish(ops))
    pending, last = pending_and_last(store, built["campaign_id"])
    second_half = [seq for seq in pending if seq > last // 2]
    with database.connect(seeded["url"]) as other:
        # Sender 1 claims every row of its lane for one request and is still making it (its transaction is open).
        holder = lane_ledger((ops, other, side), built, lane=1, lanes=2, batch_size=len(pending))
        held = holder.claim(other)
        assert held is not None and list(held.keys) == second_half
        first = lane_ledger(conns, built, lane=0, lanes=2)
        done = [seq for keys in claim_all(first, store) for seq in keys]
        assert done == [seq for seq in pending if seq <= last // 2]
        assert first.walked == last // 2  # its own lane, and not the rest of the ledger
        other.rollback()  # sender 1 dies before marking its rows: they are pending again
    after = lane_ledger(conns, built, lane=0, lanes=2)
    assert [seq for keys in claim_all(after, store) for seq in keys] == second_half


def test_a_live_ledger_without_the_day_of_the_child_rules_is_refused(conns):
    """Without as_of the child rules would compare against NULL and catch nobody: refused, not silent."""
    from include.subjects import address_hasher

    ops, _, side = conns
    notice = Notice(1, "live", "v", None, None, None)
    with pytest.raises(ValueError, match="needs as_of"):
        CampaignLedger(LedgerLinks(ops=ops, dm=load_datamap(), side=side, ctx=ctx()),
                       Audience(campaign_id=1, scope="live", renderer=Renderer(notice, SETTINGS, "r"), hasher=address_hasher(KEY)),
                       SenderShare(sender="s", batch_size=10))


def test_a_test_campaigns_counts_have_no_negative_figure():
    """Found by a fault trial: a test campaign (no account read, two addresses) logged and audited '-2 sharing an
    address with another'."""
    from include.campaign import recipients

    counts = recipients.BuildCounts(recipients={recipients.OK: 2}).as_dict()
    assert counts["accounts_sharing_an_address"] == 0 and counts["recipients"] == 2
    live = recipients.BuildCounts(accounts=5, accounts_read=5, recipients={recipients.OK: 4}).as_dict()
    assert live["accounts_sharing_an_address"] == 1


def test_a_version_too_large_for_sendgrid_is_refused_before_a_campaign_is_made(conns):
    """A version label of 10 KB went into every message's custom_args (SendGrid's limit is 10,000 bytes): every batch
    was refused and every recipient marked failed for good. A summary copied once per recipient of a template
    campaign can pass the 30 MB a request may hold the same way. Both are refused in one sentence, before a
    campaign or a ledger row exists; the label is not repeated whole."""
    ops, store, _ = conns
    label = publish(ops)
    long_label = label + "-" + "x" * 10_000
    ops.execute("update policy_versions set version = %s where version = %s", (long_label, label))
    with pytest.raises(versions.UnusableVersion) as err:
        build(ops, store, long_label)
    assert "its version label is 10,0" in str(err.value) and len(str(err.value)) < 400
    ops.execute("update policy_versions set version = %s, summary = %s where version = %s",
                (label, "é" * 10_001, long_label))
    with pytest.raises(versions.UnusableVersion, match="its summary is 60,006 bytes as sent to SendGrid"):
        build(ops, store, label)
    assert not store.execute("select 1 from compliance.notification_campaigns where policy_version like %s",
                             (label + "%",)).fetchone()
    with pytest.raises(ParamError) as unknown:
        build(ops, store, "y" * 5_000)
    assert len(str(unknown.value)) < 200
    ops.execute("delete from policy_versions where version = %s", (label,))


def test_a_summary_is_measured_as_the_sdk_sends_it_and_one_that_passes_fits_a_full_request(conns, sendgrid):
    """The SDK sends JSON with every non-ASCII character escaped (``é`` is ``\\u00e9``, 6 bytes; an emoji 12): a summary
    of 20,000 UTF-8 bytes in another alphabet passed the check and then took 40-60 MB a template request of 1,000
    recipients, so SendGrid refused every full batch (413) and marked its recipients failed for good."""
    ops, store, side = conns
    template = Settings(notification_batch_size=1000, notification_template_id="d-" + "0" * 32)
    label = publish(ops, summary="é" * 10_000)
    with pytest.raises(versions.UnusableVersion, match="its summary is 60,000 bytes as sent to SendGrid"):
        build(ops, store, label)
    # The largest summary that passes, in emoji (12 bytes each as sent), goes out in full requests, refused by nobody.
    largest = "😀" * 1_666 + "x" * 8
    ops.execute("update policy_versions set summary = %s where version = %s", (largest, label))
    p = NotificationParams(today=TODAY, policy_version=label)
    step = Step(ctx=ctx(), settings=template, params=p, ops=ops, store=store, datamap=load_datamap(), key=KEY,
                mailer=SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None),
                side=side)
    built = campaign.build_recipients(step, campaign.find_version(ops, store, load_datamap(), p,
                                                                  datetime.now(timezone.utc)))
    assert built["pending"] > 1000
    report = campaign.send_batches(step, {"campaign_id": built["campaign_id"], "sender": 0, "senders": 1,
                                          "budget": None})
    assert (report["failed"], report["sent"]) == (0, built["pending"])
    sizes = [len(m["payload"]["personalizations"]) for m in sendgrid.accepted()
             if m["payload"]["custom_args"].get("campaign_id") == str(built["campaign_id"])]
    assert sizes[0] == 1000 and sum(sizes) == built["pending"]
    assert sendgrid.accepted()[0]["payload"]["personalizations"][0]["dynamic_template_data"]["summary"] == largest


def test_a_suppression_added_mid_campaign_in_the_other_form_of_an_internationalised_domain_is_honoured(conns, sendgrid):
    """SendGrid reports an address as it was given it, with an internationalised domain in its ASCII form, so a bounce
    recorded mid-campaign reads ``jo@xn--bcher-kva.de`` for an account that holds ``jo@bücher.de``. The build compares
    the two as one mailbox; the send-time check compared the spellings as they are, so the suppressed address was
    emailed (a live row, and a test run's address, alike)."""
    ops, store, _ = conns
    tag = uuid.uuid4().hex[:8]
    unicode_held, ascii_held = f"idn.{tag}@bücher.de", f"idn2.{tag}@xn--bcher-kva.de"
    ids = [ops.execute("""insert into users (email, full_name, country, birth_date, created_at)
                          values (%s, 'An Adult', 'DE', '1980-01-01', now()) returning id""", (a,)).fetchone()[0]
           for a in (unicode_held, ascii_held)]
    test_address = f"qa.{tag}@bücher.de"
    try:
        label = publish(ops)
        built = build(ops, store, label)
        test_built = build(ops, store, label, test_recipients=(test_address,))
        rows = ledger_rows(store, built["campaign_id"])
        assert {rows[address_hash(KEY, a)][0] for a in (unicode_held, "idn2.%s@bücher.de" % tag)} == {"pending"}
        for spelt, reason in ((f"IDN.{tag}@XN--BCHER-KVA.DE", "bounce"), (f"idn2.{tag}@bücher.de", "spam_report"),
                              (f"qa.{tag}@xn--bcher-kva.de", "bounce")):
            ops.execute("insert into email_suppressions (email, reason, created_at) values (%s, %s, now())",
                        (spelt, reason))
        send(conns, sendgrid, built)
        send(conns, sendgrid, test_built, test_recipients=(test_address,))
        sent_to = {p["to"][0]["email"].lower() for m in sendgrid.accepted() for p in m["payload"]["personalizations"]}
        assert {f"idn.{tag}@xn--bcher-kva.de", ascii_held, f"qa.{tag}@xn--bcher-kva.de"} & sent_to == set()
        reasons = dict(store.execute("""select user_ids[1], reason from compliance.notification_deliveries
                                        where campaign_id = %s and user_ids[1] = any(%s)""",
                                     (built["campaign_id"], ids)).fetchall())
        assert reasons == {ids[0]: "suppressed since the campaign was built (bounce)",
                           ids[1]: "suppressed since the campaign was built (spam_report)"}
        assert store.execute("select state, reason from compliance.notification_deliveries where campaign_id = %s",
                             (test_built["campaign_id"],)).fetchall() == [
            ("skipped", "suppressed since the campaign was built (bounce)")]
    finally:  # the module's other tests compare campaigns with an oracle of the operational rows alone
        ops.execute("delete from users where id = any(%s)", (ids,))
        ops.execute("delete from email_suppressions where email ilike %s", (f"%.{tag}@%",))


class FailsAfterTwo:
    """The real mailer (one attempt a request) against ``sendgrid``, which starts failing (503) after two accepted
    requests: a sender that fails part-way."""

    def __init__(self, sendgrid):
        self.sendgrid, self.sent = sendgrid, 0
        self.mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url,
                                     policy=RetryPolicy(max_attempts=1), sleep=lambda s: None)

    def send(self, payload):
        if self.sent == 2:
            self.sendgrid.inject(status=503, count=1)
        self.sent += 1
        return self.mailer.send(payload)


def test_a_retried_sender_keeps_to_its_share_of_max_recipients(conns, sendgrid):
    """A sender that failed part-way (SendGrid kept failing: a transient fault, so Airflow retries the task) and is
    retried gets the same plan, share of the cap included: the retry must send only what the first attempt left of
    that share, or a run capped at 250 recipients sends to 450."""
    from include.delivery.sendgrid_mailer import SendGridUnavailable

    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    failing = FailsAfterTwo(sendgrid)
    mailer = failing.mailer  # the same client, for the retries

    with pytest.raises(SendGridUnavailable):
        send(conns, sendgrid, built, budget=250, run_id="capped-run", mailer=failing)
    assert received(sendgrid, built["campaign_id"]).total() == 200
    retry = send(conns, sendgrid, built, budget=250, run_id="capped-run", mailer=mailer)  # the task's retry
    assert retry["sent"] == 50 and received(sendgrid, built["campaign_id"]).total() == 250
    # The next run has a share of its own.
    assert send(conns, sendgrid, built, budget=100, run_id="next-run", mailer=mailer)["sent"] == 100


@pytest.mark.parametrize("value, said", [("infinity", "deleted_at holds infinity"),
                                         ("-infinity", "deleted_at holds -infinity"),
                                         ("0044-03-15 BC", "deleted_at is a BC date"),
                                         ("12000-01-01", "deleted_at is after the year 9999")])
def test_an_account_whose_deletion_time_python_cannot_hold_is_skipped_with_its_reason(conns, value, said):
    """A deletion time no calendar holds says neither deleted nor not (``infinity`` is a common "never" sentinel):
    the account gets its ledger row, skipped with the reason, instead of being counted as deleted and told nothing;
    every other account's row is as it would be."""
    ops, store, _ = conns
    label = publish(ops)
    uid, address = ops.execute("""select id, email from users u where deleted_at is null and email is not null
                                  and birth_date < current_date - 20 * 365 and declared_age is distinct from 0
                                  and coalesce(declared_age, 20) >= 13 and created_at > birth_date + 20 * 365
                                  and not exists (select from child_reports r where r.user_id = u.id)
                                  and (select count(*) from users o where lower(btrim(o.email)) =
                                       lower(btrim(u.email))) = 1 order by id limit 1 offset 7""").fetchone()
    before = build(ops, store, label, dry_run=True)
    ops.execute("update users set deleted_at = %s where id = %s", (value, uid))
    try:
        built = build(ops, store, label)
        rows = ledger_rows(store, built["campaign_id"])
        (mine,) = [r for r in rows.values() if uid in r[2]]
        assert mine[:2] == ("skipped", said) and address not in mine[1]
        assert sum(r[0] == "pending" for r in rows.values()) == before["recipients_by_verdict"]["ok"] - 1
        assert len(rows) == before["recipients"]
    finally:
        ops.execute("update users set deleted_at = null where id = %s", (uid,))


def test_a_cleared_run_keeps_to_max_recipients_when_it_plans_fewer_senders(conns, sendgrid):
    """Found by an on-call trial: a run capped by max_recipients, cleared in the Airflow UI and run again whole (the
    same run id). With few recipients left the new plan has fewer senders, each with a bigger share; a sender's
    share was lessened only by what that sender had taken before, so sender 0 took the others' shares again and
    the run sent past its cap."""
    ops, store, side = conns
    label = publish(ops)
    built = build(ops, store, label)
    cap = built["pending"] - 50  # the cleared run finds 50 left: one request of 100, so one sender
    capped = NotificationParams(today=TODAY, max_recipients=cap)
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.base_url, sleep=lambda s: None)

    def whole_run() -> tuple[int, int]:
        found = build(ops, store, label)
        s = Step(ctx=ctx("capped-run"), settings=SETTINGS, params=capped, ops=ops, store=store, datamap=load_datamap(),
                 key=KEY, mailer=mailer, side=side)
        plans = campaign.plan_senders(s, found)
        return len(plans), sum(campaign.send_batches(s, plan)["sent"] for plan in plans)

    assert whole_run() == (4, cap)
    assert whole_run() == (1, 0)  # the run cleared and run again: its cap is spent
    assert received(sendgrid, built["campaign_id"]).total() == cap


def test_a_runs_figures_are_what_all_its_attempts_did_whatever_was_cleared(conns, sendgrid):
    """Found by an on-call trial: `summarize_campaign` took "sent / failed / skipped this run" from its senders'
    results, i.e. their last attempts': a sender retried after a SendGrid outage lost what its first attempt sent,
    and the run cleared and run again whole audited a second summary saying it sent 0. The figures are counted from
    the ledger by run id, so every summary of the run says what the run did over all its attempts."""
    from include.delivery.sendgrid_mailer import SendGridUnavailable

    ops, store, _ = conns
    built = build(ops, store, publish(ops))
    run_id = f"cleared-{uuid.uuid4().hex[:8]}"
    (gone,), _ = last_single_accounts(ops, store, built, 1)
    ops.execute("update users set deleted_at = now() where id = %s", (gone,))  # skipped at send time
    failing = FailsAfterTwo(sendgrid)
    mailer = failing.mailer  # the same client, for the retries

    try:
        with pytest.raises(SendGridUnavailable):
            send(conns, sendgrid, built, run_id=run_id, mailer=failing)
        retry = send(conns, sendgrid, built, run_id=run_id, mailer=mailer)  # the task's retry
        assert retry["sent"] == built["pending"] - 201
        said = {"sent_this_run": built["pending"] - 1, "failed_this_run": 0, "skipped_this_run": 1}
        first = campaign.summarize(store, ctx(run_id), built["campaign_id"])
        assert {k: first[k] for k in said} == said
        campaign.summarize(store, ctx(run_id), built["campaign_id"])  # the summary cleared
        again = send(conns, sendgrid, built, run_id=run_id, mailer=mailer)  # the whole run cleared
        assert again["sent"] == 0
        campaign.summarize(store, ctx(run_id), built["campaign_id"])
        audited = [{k: d[k] for k in said} for (d,) in store.execute(
            "select details from compliance.audit_log where run_id = %s and action = 'policy_change.campaign_summary' "
            "order by id", (run_id,))]
        assert audited == [said] * 3
        other = campaign.summarize(store, ctx(f"next-{run_id}"), built["campaign_id"])  # another run did nothing
        assert (other["sent_this_run"], other["skipped_this_run"], other["sent"]) == (0, 0, built["pending"] - 1)
    finally:
        ops.execute("update users set deleted_at = null where id = %s", (gone,))


def test_a_suppression_reason_of_an_enum_type_is_honoured_at_send_time_like_text(seeded_clone, sendgrid):
    """Found by a fault trial: an application whose suppressions' reason (or requests' codes, shares' categories) is
    of a PostgreSQL enum type (as Rails, Django and Prisma schemas make them) failed every batch at send time
    ('invalid input value for enum suppression_reason: "no reason given"': the reason and its fallback text in one
    coalesce), and nobody was told. The same campaign is built and sent as with text columns."""
    ledgers, sent = [], []
    for enums in (False, True):
        url, _ = seeded_clone(users=600, seed=5, anchor=TODAY, store=True)
        with database.connect(url, autocommit=True) as ops, database.connect(url, autocommit=True) as store, \
                database.connect(url, autocommit=True) as side:
            if enums:
                make_enums(ops)
            built = build(ops, store, publish(ops))
            sent.append(send((ops, store, side), sendgrid, built))
            ledgers.append(store.execute("""select recipient, state, reason, user_ids from compliance.notification_deliveries
                                            where campaign_id = %s order by seq""", (built["campaign_id"],)).fetchall())
    assert sent[0]["sent"] > 0 and sent[1] == sent[0]
    assert ledgers[1] == ledgers[0] and any((r or "").startswith("suppressed: ") for _, _, r, _ in ledgers[0])
