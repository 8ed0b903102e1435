"""End to end: ``policy_change_notifications`` through Airflow for real, against the SendGrid stand-in.

Airflow runs for real (``dag.test()`` in the test process; ``airflow dags test`` in a child process for the
SIGKILL; connections and the subject key from ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``; tests/e2e_world.py),
each test on a world of its own, against a real PostgreSQL seeded with the dirty
demo data, and the SendGrid stand-in reached through the SDK. Who should have been told comes from the
oracle in ``tests/notification_oracle.py``; who was told comes from what the stand-in accepted. Two runs at
once are proven at function level (tests/test_notifications.py: two builders make one campaign, two senders tell
every eligible address exactly once).
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter

import notification_oracle as oracle
import pytest

from include import compliance_store

pytestmark = pytest.mark.e2e
DAG_ID = "policy_change_notifications"
API_KEY = "SG.e2e-notify-key"
BATCH = 100
SUBJECT_KEY = "e2e-subject-key-0123456789abcdef"


@pytest.fixture
def world(make_world):
    """A clone of the seeded database, a stand-in and the Airflow environment of this test's own; the compliance
    store migrated (as any earlier run leaves it), so that a test can watch the ledger while a run fills it."""
    world = make_world(DAG_ID, users=1500, seed=13, sendgrid_key=API_KEY, subject_key=SUBJECT_KEY, settings={
        "notification_batch_size": BATCH, "notification_senders": 2,
        # 429s are waited out for at most this long per sender before Airflow's retry takes over.
        "sendgrid_deadline_minutes": 5})
    compliance_store.migrate(world["conn"])
    return world


def run_dag(world, name: str, conf: dict | None = None) -> tuple[str | None, str]:
    """A real run (``dag.test()`` in this process); its log is scanned for the seeded personal data."""
    return world.run(name, conf=conf)


def first_run(world) -> None:
    """The state a second trigger starts from: the current policy's campaign, finished."""
    state, log = run_dag(world, "first")
    assert state == "success", log[-3000:]


def publish(conn) -> str:
    """A new policy version, published a minute ago: the newest, so a run without conf announces it."""
    label = f"2099.{uuid.uuid4().hex[:6]}"
    conn.execute("""insert into policy_versions (id, version, published_at, effective_at, summary, url, body_sha256)
                    select max(id) + 1, %s, now() - interval '1 minute', now() + interval '30 days',
                           'Adds <em>partners</em> & acquirers.', 'https://example.com/legal/privacy/' || %s, 'x'
                    from policy_versions""", (label, label))
    return label


def campaign_of(conn, label: str, scope: str = "live") -> dict:
    row = conn.execute("""select id, state, total, pending, sent, failed, skipped from compliance.notification_campaigns
                          where policy_version = %s and scope = %s""", (label, scope)).fetchone()
    return dict(zip(("id", "state", "total", "pending", "sent", "failed", "skipped"), row)) if row else {}


def received(world, campaign_id: int) -> Counter:
    return oracle.received(world["sendgrid"].accepted(), campaign_id, batch_size=BATCH)


def assert_everyone_told_once(world, label: str) -> dict:
    """Every eligible address got exactly one message of the campaign, no ineligible one got any."""
    conn = world["conn"]
    campaign = campaign_of(conn, label)
    got = received(world, campaign["id"])
    eligible = oracle.expected(conn, world["today"])
    assert set(got) == set(eligible), (len(got), len(eligible))
    assert set(got.values()) == {1}
    assert not set(got) & oracle.ineligible(conn, world["today"])
    assert campaign["state"] == "finished" and campaign["sent"] == len(eligible) and campaign["pending"] == 0
    return campaign


def personal_data(conn) -> set[str]:
    """Every email, name, phone and IP address of a data subject in the seeded database."""
    values: set[str] = set()
    for query in ("select email from users", "select full_name from users", "select phone from users",
                  "select requester_email from privacy_requests", "select email from support_messages",
                  "select phone from support_messages", "select host(ip_address) from access_logs",
                  "select reported_email from child_reports", "select email from email_suppressions"):
        values |= {v.lower() for (v,) in conn.execute(query) if v and len(v) >= 7}
    return values


def test_an_unknown_conf_key_stops_the_run_before_anything_is_read(world):
    state, log = run_dag(world, "conf-typo", conf={"dryrun": True})
    assert state == "failed"
    assert ("trigger conf key 'dryrun' is not a parameter of policy_change_notifications (its parameters: dry_run, "
            "max_recipients, policy_version, test_recipients)") in log
    assert world["sendgrid"].requests() == []


def test_a_policy_version_holding_personal_data_is_not_repeated(world):
    """An address pasted as policy_version (a string the form takes) names no version; the sentence used to quote it
    in the task log and the failure."""
    email = sorted(v for v in world["pii"] if "@" in v)[0]
    state, log = run_dag(world, "version-is-an-address", conf={"policy_version": email})
    assert state == "failed"  # the world's scan of the log found no personal data (tests/e2e_world.py)
    assert "the policy_version given (not repeated: it may be personal data) is not in policy_versions" in log
    mails = [m["payload"] for m in world["sendgrid"].accepted()]  # on-call's alert only, which does not repeat it
    assert [m["custom_args"].get("campaign") for m in mails] == ["run-alert"]
    assert email not in json.dumps(mails).lower()


def test_a_dry_run_counts_and_renders_a_sample_and_sends_nothing(world):
    state, log = run_dag(world, "dry-run", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    assert world["sendgrid"].requests() == []
    assert world["conn"].execute("select count(*) from compliance.notification_campaigns").fetchone()[0] == 0
    eligible = len(oracle.expected(world["conn"], world["today"]))
    assert "to send; skipped by reason" in log and f", {eligible} to send;" in log
    assert "Dear Alex Example," in log and f"version {world['policy']['current']}" in log


def test_the_first_run_tells_every_eligible_user_exactly_once(world):
    state, log = run_dag(world, "first")
    assert state == "success", log[-3000:]
    campaign = assert_everyone_told_once(world, world["policy"]["current"])
    # The planted dirt, as the ledger recorded it (reasons, no address).
    conn, planted = world["conn"], world["planted"]

    def reasons(key):
        return {r for (r,) in conn.execute(
            """select reason from compliance.notification_deliveries
               where campaign_id = %s and user_ids && %s::bigint[]""", (campaign["id"], planted[key]))}

    assert reasons("suppressed_same_case") == {"suppressed: bounce"}
    assert reasons("children") == {"child account (under 13)"}
    assert all(r.startswith("invalid address: ") for r in reasons("email_malformed")) and reasons("email_malformed")
    assert reasons("email_duplicate_ci") == {None}
    assert conn.execute("select count(*) from compliance.notification_deliveries where campaign_id = %s "
                        "and %s::bigint[] <@ user_ids", (campaign["id"], planted["email_duplicate_ci"])).fetchone() == (1,)
    # One personalization per recipient, greeting escaped in the HTML part, the campaign in custom_args.
    payloads = [m["payload"] for m in world["sendgrid"].accepted()]
    assert all(len(p["personalizations"]) <= BATCH for p in payloads) and len(payloads) >= campaign["sent"] / BATCH
    assert {p["custom_args"]["campaign_id"] for p in payloads} == {str(campaign["id"])}
    greetings = [s["substitutions"] for p in payloads for s in p["personalizations"]]
    assert all(g["%greeting%"].startswith(("Dear ", "Hello,")) for g in greetings)
    # Progress and the summary in the task log.
    assert f"campaign {campaign['id']} (live, policy {world['policy']['current']}) finished: {campaign['sent']} sent, " \
           "0 failed" in log
    assert "duplicates at risk: 0 recipient(s)" in log and "sent, 0 failed" in log


def test_a_second_trigger_sends_nothing(world):
    first_run(world)
    before = len(world["sendgrid"].requests())
    state, log = run_dag(world, "second-scheduled")
    assert state == "success", log[-3000:]
    assert "finished (" in log and "nothing to send" in log
    state, log = run_dag(world, "second-named", conf={"policy_version": world["policy"]["current"]})
    assert state == "success", log[-3000:]
    assert "was built by run" in log and "this run sent 0" in log
    assert len(world["sendgrid"].requests()) == before


def test_a_test_run_sends_only_to_its_addresses(world):
    label = publish(world["conn"])
    addresses = ["qa.one@example.net", "QA.Two@example.net"]
    state, log = run_dag(world, "test-recipients", conf={"policy_version": label, "test_recipients": addresses})
    assert state == "success", log[-3000:]
    test = campaign_of(world["conn"], label, scope="test")
    assert received(world, test["id"]) == Counter({"qa.one@example.net": 1, "qa.two@example.net": 1})
    assert campaign_of(world["conn"], label) == {}  # the real campaign was not even built
    world["conn"].execute("delete from policy_versions where version = %s", (label,))


def test_with_429_and_500_part_of_the_time_the_campaign_completes_the_same(world):
    sendgrid = world["sendgrid"]
    label = publish(world["conn"])
    sendgrid.inject(status=429, probability=0.25, seed=3, count=1000, reset_after_seconds=1)
    sendgrid.inject(status=500, probability=0.2, seed=4, count=1000)
    start = len(sendgrid.requests())
    try:
        state, log = run_dag(world, "faults", conf={"policy_version": label})
    finally:
        sendgrid.clear_faults()
    assert state == "success", log[-3000:]
    statuses = Counter(r["status"] for r in sendgrid.requests()[start:])
    assert statuses[429] >= 2 and statuses[500] >= 2 and statuses[202] >= 14, statuses
    assert_everyone_told_once(world, label)
    assert "waiting" in log and "SendGrid retry in" in log


def test_a_suppression_and_a_deletion_added_mid_campaign_are_honoured(world):
    conn, sendgrid = world["conn"], world["sendgrid"]
    label = publish(conn)
    sendgrid.inject(delay_seconds=0.3, count=1000)
    changed: dict = {}

    def change_late_recipients():
        """Once the first message of the campaign is out, suppress one late recipient and delete another."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not changed:
            campaign = campaign_of(conn, label)
            if campaign and received(world, campaign["id"]):
                rows = conn.execute("""select user_ids from compliance.notification_deliveries
                                       where campaign_id = %s and state = 'pending' and cardinality(user_ids) = 1
                                       order by seq desc limit 2""", (campaign["id"],)).fetchall()
                (suppress,), (delete,) = [r[0] for r in rows]
                emails = dict(conn.execute("select id, email from users where id = any(%s)", ([suppress, delete],)))
                conn.execute("insert into email_suppressions (email, reason, created_at) "
                             "values (upper(%s), 'spam_report', now())", (emails[suppress],))
                conn.execute("update users set deleted_at = now() where id = %s", (delete,))
                changed.update(suppress=(suppress, emails[suppress]), delete=(delete, emails[delete]))
            time.sleep(0.1)

    watcher = threading.Thread(target=change_late_recipients)
    watcher.start()
    try:
        state, log = run_dag(world, "mid-campaign", conf={"policy_version": label})
    finally:
        watcher.join(130)
        sendgrid.clear_faults()
    assert state == "success", log[-3000:]
    assert changed, "the campaign ended before the change could be made"
    campaign = campaign_of(conn, label)
    got = received(world, campaign["id"])
    assert changed["suppress"][1].lower() not in got and changed["delete"][1].lower() not in got
    reasons = dict(conn.execute("""select user_ids[1], reason from compliance.notification_deliveries
                                   where campaign_id = %s and user_ids[1] = any(%s)""",
                                (campaign["id"], [changed["suppress"][0], changed["delete"][0]])).fetchall())
    assert reasons == {changed["suppress"][0]: "suppressed since the campaign was built (spam_report)",
                       changed["delete"][0]: "account deleted or erased since the campaign was built"}
    # Everybody else still got exactly one message (the oracle now leaves these two out as well).
    assert_everyone_told_once(world, label)


@pytest.mark.children
def test_sigkill_mid_campaign_then_a_rerun_misses_nobody_and_repeats_at_most_one_batch(world):
    conn, sendgrid = world["conn"], world["sendgrid"]
    label = publish(conn)
    sendgrid.inject(delay_seconds=0.5, count=1000)  # slow answers: the kill lands while a batch is in flight
    proc = world.start("killed")  # `airflow dags test` in a child process (tests/e2e_world.py)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            campaign = campaign_of(conn, label)
            if campaign and sum(received(world, campaign["id"]).values()) >= 3 * BATCH:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the worker dies mid-campaign: no cleanup runs
    finally:
        proc.wait(30)
        sendgrid.clear_faults()
    killed_log = (world["logs"] / "killed.log").read_text().lower()
    assert not [v for v in world["pii"] if v in killed_log]  # the killed run's log is scanned too
    campaign = campaign_of(conn, label)
    assert campaign["state"] == "sending" and campaign["pending"] > 0
    state, log = run_dag(world, "after-kill")
    assert state == "success", log[-3000:]
    got = received(world, campaign["id"])
    eligible = oracle.expected(conn, world["today"])
    assert set(got) == set(eligible)  # nobody missed
    twice = {a for a, n in got.items() if n > 1}
    assert set(got.values()) <= {1, 2} and len(twice) <= BATCH
    if twice:  # the duplicates are the recipients of one request, the one in flight at the kill
        carriers = [m for m in sendgrid.accepted() if m["payload"]["custom_args"].get("campaign_id") == str(campaign["id"])
                    and twice <= {p["to"][0]["email"].lower() for p in m["payload"]["personalizations"]}]
        assert carriers
    at_risk = conn.execute("select duplicates_at_risk, unknown_batches from compliance.notification_campaign_progress "
                           "where campaign_id = %s", (campaign["id"],)).fetchone()
    assert at_risk[1] <= 1 and at_risk[0] >= len(twice)  # every actual duplicate was reported at risk
    assert f"duplicates at risk: {at_risk[0]} recipient(s) in {at_risk[1]} request(s)" in log


def test_no_personal_data_reaches_the_task_logs(world):
    """After a dry run (it renders a sample) and a live campaign; every run's log is also scanned as it ends."""
    state, log = run_dag(world, "dry-run", conf={"dry_run": True})
    assert state == "success", log[-3000:]
    first_run(world)
    pii = personal_data(world["conn"])
    assert len(pii) > 1000
    logs = {p.name: p.read_text().lower() for p in world["logs"].glob("*.log")}
    assert len(logs) >= 2
    leaks = {name: [v for v in pii if v in text] for name, text in logs.items()}
    assert not {k: v for k, v in leaks.items() if v}
    # Nor the compliance store's notification tables or the audit log.
    stored = json.dumps([world["conn"].execute(f"select row_to_json(t)::text from {t} t").fetchall() for t in (
        "compliance.notification_campaigns", "compliance.notification_deliveries", "compliance.notification_batches",
        "compliance.audit_log")]).lower()
    assert not [v for v in pii if v in stored]
