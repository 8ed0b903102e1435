"""Every DAG file imports cleanly, is documented and owned, retries, and touches nothing at import."""
from __future__ import annotations

import copy
import socket
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parent.parent / "dags"
EXPECTED = {"dsr_deadline_tracking", "vendor_sharing_manifests", "child_data_purge",
            "policy_change_notifications", "dsr_fulfilment", "personal_data_discovery"}


@pytest.fixture(scope="module")
def dagbag():
    """Parse the DAG folder with sockets and psycopg blocked: a DAG file must not reach a database or network."""
    import psycopg

    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise AssertionError("a DAG file opened a connection at import time")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(psycopg, "connect", refuse)
    try:
        bag = DagBag(dag_folder=str(DAGS))
    finally:
        mp.undo()
    return bag


def test_no_import_errors(dagbag):
    assert not dagbag.import_errors, dagbag.import_errors


def test_expected_dags_are_present(dagbag):
    assert EXPECTED <= set(dagbag.dag_ids)


def test_each_dag_is_documented_tagged_owned_and_retries(dagbag):
    for dag_id in dagbag.dag_ids:
        dag = dagbag.dags[dag_id]
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} has no real doc_md"
        assert dag.tags, f"{dag_id} has no tags"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            assert t.retries >= 1, f"{dag_id}.{t.task_id} does not retry"
            assert t.retry_exponential_backoff, f"{dag_id}.{t.task_id} retries without backoff"
            assert t.doc_md or t.doc or t.__doc__, f"{dag_id}.{t.task_id} is not described"


def test_every_dag_is_a_house_dag(dagbag):
    """The conf guard runs first (a setup task), the audit anchor last (its teardown), defaults are shared."""
    from include.seam.dag import ANCHOR_TASK, CONF_GUARD_TASK, DEFAULT_ARGS, TAGS

    for dag_id in dagbag.dag_ids:
        dag = dagbag.dags[dag_id]
        assert [t.task_id for t in dag.roots] == [CONF_GUARD_TASK], f"{dag_id}: the conf guard is not the only root"
        guard, anchor = dag.get_task(CONF_GUARD_TASK), dag.get_task(ANCHOR_TASK)
        assert guard.is_setup and anchor.is_teardown, f"{dag_id}: guard/anchor are not setup/teardown"
        downstream = guard.get_flat_relative_ids(upstream=False)
        assert downstream == {t.task_id for t in dag.tasks} - {CONF_GUARD_TASK}, f"{dag_id}: a task escapes the guard"
        assert anchor.get_flat_relative_ids(upstream=True) == {t.task_id for t in dag.tasks} - {ANCHOR_TASK}
        assert set(dag.tags) <= set(TAGS) and "privacy" in dag.tags, f"{dag_id}: tags outside the vocabulary"
        for t in dag.tasks:
            assert t.owner == DEFAULT_ARGS["owner"] and t.retries == DEFAULT_ARGS["retries"], f"{dag_id}.{t.task_id}"


def test_every_dag_tells_on_call_when_a_run_is_not_finished_by_its_deadline(monkeypatch):
    """Airflow 3's deadline alert: queued + the run's timeout, then include.seam.alerts.run_late in an executor
    (on by default; the tests, which run DAGs with dag.test(), turn it off: include/seam/dag.py)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import SyncCallback
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.delenv("PRIVACY_DEADLINE_ALERTS")
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors
    for dag_id in EXPECTED:
        dag = bag.dags[dag_id]
        assert DagSerialization.to_dict(dag)["dag"]["deadline"], dag_id
        (alert,) = dag.deadline
        assert isinstance(alert.reference, DagRunQueuedAtDeadline) and alert.interval == dag.dagrun_timeout, dag_id
        assert isinstance(alert.callback, SyncCallback) and alert.callback.path == "include.seam.alerts.run_late"


def test_every_pool_a_task_uses_is_in_pools_json(dagbag):
    import json

    pools = set(json.loads((DAGS.parent / "pools.json").read_text()))
    for dag_id in dagbag.dag_ids:
        for t in dagbag.dags[dag_id].tasks:
            assert t.pool == "default_pool" or t.pool in pools, f"{dag_id}.{t.task_id} uses an undefined pool {t.pool}"


def test_params_are_valid_and_described(dagbag):
    for dag_id in dagbag.dag_ids:
        dag = dagbag.dags[dag_id]
        dag.params.validate()  # a bad default does not show up as an import error
        for name, param in dag.params.items():
            param = dag.params.get_param(name)
            assert param.description or param.schema.get("description_md"), f"{dag_id} param {name} is undescribed"
            assert "type" in param.schema, f"{dag_id} param {name} has no JSON-schema type"


def test_scheduled_dags_do_not_race_or_catch_up(dagbag):
    dag = dagbag.dags["dsr_deadline_tracking"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.schedule == "@hourly" or str(dag.timetable.summary) == "@hourly"


def test_every_dag_runs_on_its_entry_in_include_schedules(dagbag):
    """The compliance page says how often each DAG runs from the same entry (include/schedules.py)."""
    from include.schedules import SCHEDULES

    assert set(SCHEDULES) == EXPECTED
    for dag_id, expression in SCHEDULES.items():
        dag = dagbag.dags[dag_id]
        cron = {"@hourly": "0 * * * *", "@daily": "0 0 * * *"}.get(expression, expression)
        assert dag.schedule == expression or getattr(dag.timetable, "expression", None) == cron, dag_id


def test_vendor_manifests_are_daily_interval_runs_that_catch_up_and_map_vendors_in_the_gcs_pool(dagbag):
    """Interval-based (each run covers its data interval), so catch-up back-fills missed days; one mapped task
    per vendor, bounded by the privacy_gcs pool."""
    from include.seam.dag import GCS_POOL, SENDGRID_POOL
    from include.seam.timetables import MANUAL_RUNS_FIRST, CatchUpWindowTimetable

    dag = dagbag.dags["vendor_sharing_manifests"]
    # @daily, each run covering a [00:00, 24:00) UTC day; catch-up bounded to the last 3 days (issue 30).
    assert isinstance(dag.timetable, CatchUpWindowTimetable) and dag.timetable.catch_up_periods == 3
    assert dag.timetable.expression == "0 0 * * *" and str(dag.timetable.timezone) == "UTC"
    # One run more than catch-up can start is left for a person's, whose tasks go first in every pool.
    assert dag.catchup is True and dag.max_active_runs == 4
    assert {t.weight_rule for t in dag.tasks} == {MANUAL_RUNS_FIRST}
    write = dag.get_task("write_vendor_manifest")
    assert write.pool == GCS_POOL and type(write).__name__.endswith("MappedOperator")
    assert dag.get_task("send_violation_emails").pool == SENDGRID_POOL
    assert [t.task_id for t in write.upstream_list] == ["plan_vendors"]
    # One vendor's failed step holds back neither the summary nor the others' emails: the results are gathered
    # when every step is done (all_done), the summary needs the plan itself, and the watcher fails the run.
    assert {t.task_id for t in write.downstream_list} == {"gather_vendor_results", "fail_run_if_a_task_failed"}
    assert dag.get_task("gather_vendor_results").trigger_rule == "all_done"
    summary = dag.get_task("summarize_period")
    assert summary.upstream_task_ids == {"plan_vendors", "gather_vendor_results"}
    assert summary.trigger_rule == "all_success"
    assert dag.get_task("send_violation_emails").upstream_task_ids == {"summarize_period"}
    assert dag.get_task("fail_run_if_a_task_failed").upstream_task_ids == {"write_vendor_manifest",
                                                                           "send_violation_emails"}


def test_the_bounded_catch_up_dag_serializes_as_the_scheduler_stores_it(dagbag):
    """The custom timetable and weight strategy are found again through the project's plugin."""
    from airflow.serialization.serialized_objects import DagSerialization

    from include.seam.timetables import CatchUpWindowTimetable, ManualRunsFirst

    stored = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags["vendor_sharing_manifests"]))
    assert isinstance(stored.timetable, CatchUpWindowTimetable) and stored.timetable.catch_up_periods == 3
    assert isinstance(stored.get_task("write_vendor_manifest").weight_rule, ManualRunsFirst)


def test_vendor_manifests_trigger_form_refuses_bad_input(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["vendor_sharing_manifests"]
    for bad in ({"period_start": "2026-02-30"}, {"vendor_ids": [0]}, {"vendor_ids": ["7"]}, {"vendor_ids": [7, 7]},
                {"dry_run": "no"}):
        with pytest.raises(ParamValidationError):
            _with(dag.params, bad)
    _with(dag.params, {"period_start": "2026-11-01", "period_end": "2026-11-08", "vendor_ids": [7, 9001],
                       "dry_run": True})


def test_child_data_purge_is_daily_and_its_approval_never_approves_by_itself(dagbag):
    """A timeout applies the approval's defaults: they must be Reject, or no answer would erase children."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from include.seam.approval import PlanApproval

    dag = dagbag.dags["child_data_purge"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    approve = dag.get_task("approve_purge")
    assert isinstance(approve, ApprovalOperator) and isinstance(approve, PlanApproval)
    assert approve.defaults == ["Reject"] and approve.response_timeout is not None
    with pytest.raises(ValueError, match="must be Reject"):
        PlanApproval(task_id="x", subject="s", defaults="Approve", response_timeout=approve.response_timeout)
    assert dag.dagrun_timeout > approve.response_timeout
    # The purge waits for the reviewer or the in-advance path; nothing erases before the gate.
    assert dag.get_task("purge_subjects").upstream_task_ids == {"approve_purge", "approved_in_advance"}
    assert dag.get_task("approval_gate").downstream_task_ids == {"approve_purge", "approved_in_advance"}
    assert dag.params["dry_run"] is True  # a person who changes nothing gets a dry run


def test_child_data_purge_form_refuses_bad_input(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["child_data_purge"]
    for bad in ({"max_subjects": 0}, {"user_ids": [0]}, {"approve_plan": "abc"}, {"approve_plan": "A" * 64},
                {"dry_run": "no"}):
        with pytest.raises(ParamValidationError):
            _with(dag.params, bad)
    _with(dag.params, {"dry_run": False, "user_ids": [3, 4], "max_subjects": 10, "approve_plan": "a" * 64})


def test_dsr_fulfilment_is_daily_erases_only_after_its_gate_and_its_approval_never_approves_by_itself(dagbag):
    from include.seam.approval import PlanApproval
    from include.seam.dag import GCS_POOL

    dag = dagbag.dags["dsr_fulfilment"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    approve = dag.get_task("approve_erasure")
    assert isinstance(approve, PlanApproval) and approve.defaults == ["Reject"]
    assert dag.dagrun_timeout > approve.response_timeout
    assert dag.get_task("erase_requests").upstream_task_ids == {"approve_erasure", "erasure_approved_in_advance"}
    assert dag.get_task("erasure_gate").downstream_task_ids == {"approve_erasure", "erasure_approved_in_advance"}
    # The other requests are fulfilled before the gate, so a reviewer who takes a day delays only the erasures.
    assert dag.get_task("fulfil_requests").downstream_task_ids == {"erasure_gate"}
    assert dag.get_task("fulfil_requests").pool == GCS_POOL
    assert dag.get_task("finish_run").trigger_rule == "none_failed"
    assert dag.params["dry_run"] is False and dag.params["request_ids"] == []


def test_dsr_fulfilment_form_refuses_bad_input(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["dsr_fulfilment"]
    for bad in ({"request_ids": [0]}, {"request_ids": ["5"]}, {"request_ids": [5, 5]}, {"approve_plan": "abc"},
                {"approve_plan": "A" * 64}, {"dry_run": "no"}):
        with pytest.raises(ParamValidationError):
            _with(dag.params, bad)
    _with(dag.params, {"dry_run": True, "request_ids": [3, 4], "approve_plan": "a" * 64})


def _with(params, values):
    params = copy.deepcopy(params)
    for key, value in values.items():
        params[key] = value
    params.validate()


def test_trigger_form_refuses_bad_input(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["dsr_deadline_tracking"]
    for bad in ({"as_of": "2026-13-45"}, {"request_ids": ["x"]}, {"request_ids": [0]}, {"dry_run": "yes"}):
        with pytest.raises(ParamValidationError):
            _with(dag.params, bad)
    _with(dag.params, {"as_of": "2026-11-25", "request_ids": [1, 2], "dry_run": True})
    _with(dag.params, {"as_of": None, "request_ids": []})


def test_dag_files_import_nothing_heavy_at_parse_time():
    import subprocess
    import sys

    code = ("import sys, runpy\n"
            + "".join(f"runpy.run_path({str(path)!r})\n" for path in sorted(DAGS.glob("*.py")))
            + "heavy = [m for m in ('pandas', 'pyarrow', 'psycopg', 'sendgrid', 'holidays', 'google.cloud.storage', 'airflow.providers.google.cloud.hooks') "
            "if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported while parsing: {out.stdout}"


def test_notifications_look_every_quarter_hour_and_send_through_the_pool(dagbag):
    from include.seam.dag import SENDGRID_POOL

    dag = dagbag.dags["policy_change_notifications"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.schedule == "*/15 * * * *"
    send = dag.get_task("send_batches")
    assert send.pool == SENDGRID_POOL and send.is_mapped
    # The first step decides whether there is anything to do; nothing downstream runs otherwise.
    find = dag.get_task("find_policy_version")
    assert find.downstream_task_ids == {"build_recipients"} and "prepare_store" in find.upstream_task_ids
    assert [t.pool for t in dag.tasks if t.task_id != "send_batches"] == ["default_pool"] * (len(dag.tasks) - 1)


def test_notification_trigger_form_refuses_bad_input(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["policy_change_notifications"]
    for bad in ({"policy_version": ""}, {"max_recipients": 0}, {"max_recipients": "5"}, {"dry_run": "yes"},
                {"test_recipients": "qa@example.com"}, {"test_recipients": ["not-an-address"]},
                {"test_recipients": ["qa@example.com", "qa@example.com"]}):
        with pytest.raises(ParamValidationError):
            _with(dag.params, bad)
    _with(dag.params, {"policy_version": "2026.11", "max_recipients": 10, "dry_run": True,
                       "test_recipients": ["qa@example.com"]})
    _with(dag.params, {"policy_version": None, "max_recipients": None, "test_recipients": []})


def _uses_mailer(fn) -> bool:
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return any(isinstance(n, ast.Attribute) and n.attr == "mailer" for n in ast.walk(tree))


def _emailing_tasks(path, dag) -> set[str]:
    """The tasks of a DAG file whose function hands the mailer to its step (``env.mailer``), or whose step (run
    through the step context, include.seam.steps.step_task) takes the mailer from it (``step.mailer``)."""
    import ast

    from include.seam.task import _named

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(n, ast.Attribute) and n.attr == "mailer" for n in ast.walk(node)):
            found.add(node.name)
    for task in (dag.tasks if dag is not None else ()):
        fn = getattr(task, "python_callable", None)
        cells = dict(zip(getattr(getattr(fn, "__code__", None), "co_freevars", ()),
                         (c.cell_contents for c in (getattr(fn, "__closure__", None) or ()))))
        if isinstance(cells.get("target"), str) and _uses_mailer(_named(cells["target"])):
            found.add(task.task_id)
    return found


def test_every_task_that_sends_email_is_in_the_sendgrid_pool(dagbag):
    """SendGrid's rate limit is one for the account: every sending task shares the pool that bounds it."""
    from pathlib import Path

    from include.seam.dag import SENDGRID_POOL

    checked = 0
    for path in sorted((Path(__file__).resolve().parent.parent / "dags").glob("*.py")):
        dag = dagbag.dags.get(path.stem)
        for task_id in _emailing_tasks(path, dag):
            if dag is not None and dag.has_task(task_id):
                assert dag.get_task(task_id).pool == SENDGRID_POOL, f"{path.stem}.{task_id} sends email outside the pool"
                checked += 1
    assert checked >= 5  # escalations, digest, purge summary, violation emails, campaign senders


def test_an_erasing_run_outlives_the_reviewers_time_the_deployment_sets(monkeypatch):
    """PRIVACY_APPROVAL_TIMEOUT_HOURS is read when the DAG is parsed; the run's own timeout follows it, or a
    long review would be cut off by the run's timeout before the reviewer's time is up."""
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("PRIVACY_APPROVAL_TIMEOUT_HOURS", "72")
    bag = DagBag(dag_folder=str(DAGS))
    for dag_id, review in (("child_data_purge", "approve_purge"), ("dsr_fulfilment", "approve_erasure")):
        dag = bag.dags[dag_id]
        assert dag.get_task(review).response_timeout == timedelta(hours=72)
        assert dag.dagrun_timeout >= timedelta(hours=72) + timedelta(hours=1)
    monkeypatch.setenv("PRIVACY_APPROVAL_TIMEOUT_HOURS", "eight")
    errors = DagBag(dag_folder=str(DAGS)).import_errors
    assert {Path(p).name for p in errors} == {"child_data_purge.py", "dsr_fulfilment.py"}
    assert all("PRIVACY_APPROVAL_TIMEOUT_HOURS must be a number of hours" in e for e in errors.values())


def test_every_dag_file_declares_its_steps_and_its_form():
    """The tests that must cover every DAG (its dry_run, its domain package) find it by this declaration."""
    from tests.dag_files import declarations, params_classes

    found = declarations()
    assert set(found) == {p.name for p in DAGS.glob("*.py")}
    for name, (steps, params) in found.items():
        assert steps.startswith("include.") and params.split(":")[0].startswith(steps.rsplit(".", 1)[0] + "."), name
    assert len(params_classes()) == len(found)
