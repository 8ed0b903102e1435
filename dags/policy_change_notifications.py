"""Policy-change notifications: when a new privacy policy version is published, tell every user once, through SendGrid."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param

from include.runconf import COUNT_MAX
from include.seam.dag import SENDGRID_POOL, dry_run_param, prepare_store, privacy_dag
from include.seam.steps import step_operator, step_task

STEPS, PARAMS = "include.campaign.steps", "include.campaign.params:NotificationParams"


@privacy_dag(
    dag_id="policy_change_notifications",
    # Every 15 minutes (its entry in include/schedules.py) the first step looks for a published version without a
    # finished campaign and stops the run at once when there is none: no worker slot is held while waiting for a
    # publication.
    tags=["notifications", "email"],
    dagrun_timeout=timedelta(hours=6),
    params={
        "policy_version": Param(
            None, type=["null", "string"], minLength=1, title="Policy version",
            description_md="The `policy_versions.version` to announce, e.g. `2026.11`. Empty = the newest published "
                           "version. A version not yet published can only be previewed (dry run or test recipients).",
            section="Campaign"),
        "dry_run": dry_run_param(
            "Count the recipients (and why the others are left out) and render one sample message for a made-up "
            "recipient, in the task log. Nothing is written to the campaign tables and nothing is sent.",
            section="Campaign"),
        "max_recipients": Param(
            None, type=["null", "integer"], minimum=1, maximum=COUNT_MAX, title="At most this many recipients",
            description_md="Cap on the recipients this run sends to (shared between the parallel senders). Empty = "
                           "no cap. The rest stay pending: the next run continues the campaign. With test "
                           "addresses, at least their number (a test campaign is this run's alone).",
            section="Campaign"),
        "test_recipients": Param(
            [], type="array", items={"type": "string", "format": "email", "minLength": 3, "maxLength": 320},
            uniqueItems=True, title="Send only to these test addresses",
            description_md="Staff addresses to send the notice to, in a test campaign of this run's own: no real "
                           "recipient is read, sent to or marked. Empty = the real campaign.",
            section="Testing"),
    },
)
def policy_change_notifications():
    found = step_task(f"{STEPS}:find_policy_version", PARAMS, kind="short_circuit",
                      ignore_downstream_trigger_rules=False)
    prepare_store() >> found
    built = step_task(f"{STEPS}:build_recipients", PARAMS, found)
    plans = step_task(f"{STEPS}:plan_senders", PARAMS, built)
    reports = step_operator(f"{STEPS}:send_batches", PARAMS, label="sender {plan[sender]}",
                            pool=SENDGRID_POOL).expand(plan=plans)
    step_task(f"{STEPS}:summarize_campaign", None, built, reports)


policy_change_notifications()
