"""End to end: seed a database, run ``dsr_deadline_tracking`` through Airflow for real, check what it did.

Airflow runs for real (``dag.test()`` in the test process, connections from ``AIRFLOW_CONN_*``; see
tests/e2e_world.py), against a real PostgreSQL and the SendGrid stand-in reached through the SDK. Each test
has a world of its own (a clone of the seeded database). Two runs at once are proven at function level
(tests/test_delivery.py::test_two_runs_at_once_send_each_escalation_and_the_digest_once, the same SQL claim).
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from include import audit, compliance_store
from devkit import local_airflow
from tests import e2e_world

pytestmark = pytest.mark.e2e
DAG_ID = "dsr_deadline_tracking"
API_KEY = "SG.e2e-key"


@pytest.fixture
def world(make_world):
    """A clone of the seeded database, a stand-in and the Airflow environment of this test's own.
    Users without GCS keep the audit anchors in a local folder: this module covers that path."""
    return make_world(DAG_ID, users=1500, seed=11, sendgrid_key=API_KEY)


def run_dag(world, name: str, conf: dict | None = None, env: dict | None = None):
    """A real run of the DAG (``dag.test()`` in this process): its state and its log."""
    return world.run(name, conf=conf, env=env)


def personal_data(conn) -> set[str]:
    """Every email, name, phone and IP address of a data subject in the seeded database."""
    return e2e_world.personal_data(conn)


def first_run(world) -> None:
    """The state a repeated run starts from: the first run's evaluations and escalations."""
    state, log = run_dag(world, "first")
    assert state == "success", log[-3000:]


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
    first_run(world)
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
    first_run(world)
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
    compliance_store.migrate(conn)  # the store as any earlier run left it, so that its counts can be compared
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


def test_an_unknown_conf_key_holding_personal_data_is_not_repeated(world):
    """A conf key that is not a parameter name (an address or a name pasted as a key) stops the run like a typo, and
    its sentence counts it without repeating it: it used to be quoted in the task log and the failure."""
    email, name = sorted(v for v in world["pii"] if "@" in v)[0], sorted(v for v in world["pii"] if " " in v)[0]
    state, log = run_dag(world, "conf-personal-key", conf={email: True, name: 1, "dryrun": True})
    assert state == "failed"  # the world's scan of the log found neither value (tests/e2e_world.py)
    assert ("trigger conf keys 'dryrun' and 2 more are not a parameter of dsr_deadline_tracking (its parameters: as_of, "
            "dry_run, request_ids; a key that is not a parameter name is not repeated: it may be personal data)") in log


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
    # On-call is told once, through the stand-in, with the DAG, the run, the task and the sentence (issue 30).
    alerts = [m["payload"] for m in world["sendgrid"].accepted()
              if m["payload"]["personalizations"][0].get("custom_args", {}).get("kind") == "run_alert"]
    assert len(alerts) == 1, alerts
    custom = alerts[0]["personalizations"][0]["custom_args"]
    assert custom["dag_id"] == "dsr_deadline_tracking" and custom["key"].startswith("dsr_deadline_tracking/")
    assert "Airflow connection 'ops_db' is not defined" in alerts[0]["content"][0]["value"]
