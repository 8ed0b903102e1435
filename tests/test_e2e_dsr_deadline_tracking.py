"""End to end: seed a database, run ``dsr_deadline_tracking`` through Airflow for real, check what it did.

Airflow runs as an operator would run it (``airflow dags test`` in a child process, connections from
``AIRFLOW_CONN_*``), against a real PostgreSQL and the SendGrid stand-in reached through the SDK.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from include import audit
from devkit import local_airflow
from devkit.database import connect
from devkit.seed.demo_data import seed
from devkit.standins.sendgrid_server import SendGridStandIn

pytestmark = pytest.mark.e2e
DAG_ID = "dsr_deadline_tracking"
API_KEY = "SG.e2e-key"


@pytest.fixture(scope="module")
def world(pg_server_url, tmp_path_factory):
    """One seeded database, one stand-in and one Airflow home for the whole module (Airflow start-up is slow)."""
    import uuid

    from devkit import database

    name = f"privacy_e2e_{uuid.uuid4().hex[:10]}"
    url = database.create_database(pg_server_url, name)
    today = datetime.now(timezone.utc).date()
    summary = seed(url, users=1500, seed=11, anchor=today)
    home = tmp_path_factory.mktemp("airflow")
    # Users without GCS keep the audit anchors in a local folder: this module covers that path.
    evidence = tmp_path_factory.mktemp("evidence")
    with SendGridStandIn(api_key=API_KEY) as sendgrid:
        services = local_airflow.LocalServices(ops_url=url, compliance_url=url, sendgrid_url=sendgrid.base_url,
                                               sendgrid_api_key=API_KEY)
        env = local_airflow.airflow_env(home, services, settings={"evidence_location": f"file://{evidence}"})
        local_airflow.migrate_metadata(env)
        with connect(url, autocommit=True) as conn:
            yield {"url": url, "env": env, "sendgrid": sendgrid, "planted": summary["planted"], "conn": conn,
                   "today": today, "logs": home / "logs-e2e", "evidence": evidence}
    database.drop_database(pg_server_url, name)


def run_dag(world, name: str, conf: dict | None = None, env: dict | None = None):
    log_path = world["logs"] / f"{name}.log"
    result = local_airflow.dags_test(DAG_ID, env or world["env"], conf=conf, log_path=log_path)
    return local_airflow.run_state(result), log_path.read_text()


def personal_data(conn) -> set[str]:
    """Every email, name, phone and IP address of a data subject in the seeded database."""
    values: set[str] = set()
    for query in ("select email from users", "select full_name from users", "select phone from users",
                  "select requester_email from privacy_requests", "select email from support_messages",
                  "select phone from support_messages", "select host(ip_address) from access_logs",
                  "select reported_email from child_reports"):
        values |= {v.lower() for (v,) in conn.execute(query) if v and len(v) >= 7}
    return values


def test_first_run_records_every_request_and_escalates_once(world):
    state, log = run_dag(world, "first")
    assert state == "success", log[-3000:]
    conn, planted = world["conn"], world["planted"]

    total = conn.execute("select count(*) from privacy_requests").fetchone()[0]
    assert conn.execute("select count(*) from compliance.dsr_status").fetchone()[0] == total

    def states(key):
        return {r[0] for r in conn.execute("select state from compliance.dsr_status where request_id = any(%s)",
                                           (planted[key],))}

    assert states("request_gdpr_on_track") == {"on_track"}
    assert states("request_gdpr_due_soon") == {"due_soon"}
    assert states("request_gdpr_overdue") == {"overdue"}
    assert states("request_ccpa_ack_overdue") == {"ack_overdue"}
    assert states("request_gdpr_awaiting_identity") == {"awaiting_identity"}
    assert states("request_closed_on_time") == {"closed_on_time"}
    assert states("request_closed_late") == {"closed_late"}
    for key in ("request_received_in_future", "request_dates_out_of_order", "request_unknown_regime",
                "request_unknown_type", "request_regime_type_mismatch"):
        assert states(key) == {"invalid"}, key
    # Every invalid row carries its reason (the table's check constraint enforces it, this reads it).
    assert conn.execute("select count(*) from compliance.dsr_status where state = 'invalid' "
                        "and invalid_reason is null").fetchone()[0] == 0

    examples = planted["request_spec_example_by_name"]
    due = dict(conn.execute("select request_id, effective_due from compliance.dsr_status where request_id = any(%s)",
                            (list(examples.values()),)))
    assert due[examples["gdpr_2026-09-03"]] == date(2026, 10, 5)
    assert due[examples["gdpr_2026-03-31"]] == date(2026, 4, 30)
    assert due[examples["gdpr_2026-08-31"]] == date(2026, 9, 30)
    assert due[examples["gdpr_2026-10-30_extended"]] == date(2027, 2, 1)
    assert due[examples["ccpa_know_2026-03-02"]] == date(2026, 4, 2)
    assert due[examples["ccpa_opt_out_2026-03-02"]] == date(2026, 3, 23)

    # Escalations: one message per (request, level) that needs one, recorded as sent, plus one digest.
    needing = set(conn.execute("select request_id, state from compliance.dsr_status "
                               "where state in ('ack_overdue', 'due_soon', 'overdue')").fetchall())
    ledger = set(conn.execute("select request_id, level from compliance.dsr_escalations where status = 'sent'"))
    assert needing and ledger == needing
    accepted = world["sendgrid"].accepted()
    by_id = {m["message_id"]: m["payload"] for m in accepted}
    for rid, message_id in conn.execute("select request_id, message_id from compliance.dsr_escalations"):
        assert by_id[message_id]["custom_args"]["campaign"] == "dsr-escalation"
        assert f"#{rid} " in by_id[message_id]["content"][0]["value"]
    listed = sum(int(p["personalizations"][0]["custom_args"]["escalations"]) for p in by_id.values()
                 if p["custom_args"]["campaign"] == "dsr-escalation")
    assert listed == len(needing)
    digests = [m for m in accepted if m["payload"]["custom_args"]["campaign"] == "dsr-digest"]
    assert len(digests) == 1

    # No subject's personal data in the emails or in the task logs.
    pii = personal_data(conn)
    assert len(pii) > 1000  # the check below looks at real values
    mail_text = json.dumps([m["payload"] for m in accepted]).lower()
    log_text = log.lower()
    assert not [v for v in pii if v in mail_text]
    assert not [v for v in pii if v in log_text]
    assert audit.verify_chain(conn).ok

    # The head of the audit chain was anchored outside the database at the end of the run.
    from include.objectstore import FileObjectStore

    anchors = FileObjectStore(f"file://{world['evidence']}")
    assert anchors.list("audit-anchors/")
    assert audit.verify_chain(conn, anchors=anchors).ok


def test_repeated_run_sends_nothing_and_changes_nothing(world):
    conn = world["conn"]
    before_status = conn.execute("select * from compliance.dsr_status order by request_id").fetchall()
    before_mail = len(world["sendgrid"].accepted())
    state, log = run_dag(world, "repeat")
    assert state == "success", log[-3000:]
    assert len(world["sendgrid"].accepted()) == before_mail
    assert conn.execute("select * from compliance.dsr_status order by request_id").fetchall() == before_status
    assert "claimed 0 new escalation(s); 0 pending" in log
    assert "was already sent" in log


def test_manual_targeted_what_if_run_sends_nothing_and_leaves_the_live_status(world):
    conn, planted = world["conn"], world["planted"]
    target = planted["request_gdpr_on_track"][0]
    before_mail = len(world["sendgrid"].accepted())
    live = conn.execute("select * from compliance.dsr_status order by request_id").fetchall()
    state, log = run_dag(world, "what-if", conf={"as_of": "2030-01-01", "request_ids": [target], "dry_run": False})
    assert state == "success", log[-3000:]
    assert conn.execute("select state, as_of from compliance.dsr_whatif where request_id = %s",
                        (target,)).fetchone() == ("overdue", date(2030, 1, 1))
    assert conn.execute("select * from compliance.dsr_status order by request_id").fetchall() == live
    assert len(world["sendgrid"].accepted()) == before_mail
    assert "is not today" in log


def test_an_unknown_conf_key_stops_the_run_before_anything_happens(world):
    """{"dryrun": true} (for dry_run) used to be accepted, and the run went live."""
    conn = world["conn"]
    before = (conn.execute("select count(*) from compliance.audit_log").fetchone()[0],
              conn.execute("select count(*) from compliance.dsr_runs").fetchone()[0],
              len(world["sendgrid"].requests()))
    state, log = run_dag(world, "conf-typo", conf={"dryrun": True})
    assert state == "failed"
    assert ("trigger conf key 'dryrun' is not a parameter of dsr_deadline_tracking (its parameters: as_of, dry_run, "
            "request_ids)") in log
    assert (conn.execute("select count(*) from compliance.audit_log").fetchone()[0],
            conn.execute("select count(*) from compliance.dsr_runs").fetchone()[0],
            len(world["sendgrid"].requests())) == before


def test_two_runs_at_once_escalate_each_request_once(world):
    """Two `airflow dags test` started together used to email every escalation twice."""
    import re
    import threading

    conn = world["conn"]
    first_new = conn.execute("select max(id) + 1 from privacy_requests").fetchone()[0]
    for offset in range(8):
        conn.execute("""insert into privacy_requests (id, user_id, requester_email, regime, request_type, received_at,
                                                     status, assignee_email)
                        values (%s, null, 'nobody@example.org', 'gdpr', 'access', now() - interval '60 days',
                                'in_progress', %s)""", (first_new + offset, f"staff{offset % 3}@example.com"))
    new_ids = set(range(first_new, first_new + 8))
    before = len(world["sendgrid"].accepted())
    results = {}
    threads = [threading.Thread(target=lambda n=n: results.update({n: run_dag(world, n)})) for n in ("twin-a", "twin-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert [results[n][0] for n in ("twin-a", "twin-b")] == ["success", "success"], results
    emailed = [int(x) for m in world["sendgrid"].accepted()[before:]
               if m["payload"]["custom_args"]["campaign"] == "dsr-escalation"
               for x in re.findall(r"#(\d+) ", m["payload"]["content"][0]["value"])]
    assert sorted(emailed) == sorted(new_ids)


def test_bad_data_map_stops_the_run_with_one_clear_sentence(world, tmp_path):
    broken = tmp_path / "datamap.yaml"
    text = (Path(local_airflow.REPO) / "include" / "datamap.yaml").read_text()
    broken.write_text(text.replace("table: uploads", "table: uploadz"))
    env = {**world["env"], "PRIVACY_DATAMAP": str(broken)}
    state, log = run_dag(world, "bad-datamap", env=env)
    assert state == "failed"
    assert "data map entry personal_data 'uploadz': table public.uploadz does not exist" in log


def test_missing_connection_stops_the_run_with_one_clear_sentence(world):
    env = {k: v for k, v in world["env"].items() if k != "AIRFLOW_CONN_OPS_DB"}
    state, log = run_dag(world, "no-connection", env=env)
    assert state == "failed"
    assert "Airflow connection 'ops_db' is not defined" in log
