"""Policy-change notifications: when a new privacy policy version is published, tell every user once, through SendGrid."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, task

from include.runconf import COUNT_MAX
from include.seam.dag import SENDGRID_POOL, dry_run_param, prepare_store, privacy_dag


@privacy_dag(
    dag_id="policy_change_notifications",
    # Every 15 minutes the first step looks for a published version without a finished campaign and stops the
    # run at once when there is none: no worker slot is held while waiting for a publication.
    schedule="*/15 * * * *",
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
                           "no cap. The rest stay pending: the next run continues the campaign.",
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
    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def find_policy_version() -> dict | None:
        """Pick the version to announce (the named one, else the newest published); stop when its campaign is done."""
        from include.notifications import campaign
        from include.notifications.params import NotificationParams
        from include.seam.task import task_env

        with task_env(NotificationParams) as env:
            return campaign.find_version(env.ops, env.store, env.datamap, env.params, env.ctx.now())

    @task
    def build_recipients(found: dict) -> dict:
        """Build the campaign's ledger in bulk (a dry run: count and render a sample, write nothing)."""
        from include.notifications import campaign
        from include.notifications.params import NotificationParams
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        with task_env(NotificationParams) as env:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            return campaign.build(env.ops, env.store, env.datamap, key, env.settings, env.ctx, env.params, found)

    @task
    def plan_senders(built: dict) -> list[dict]:
        """Split the work between the parallel senders (setting notification_senders), with their shares of the cap."""
        from include.notifications import campaign
        from include.notifications.params import NotificationParams
        from include.seam.task import task_env

        with task_env(NotificationParams) as env:
            return campaign.plan_senders(env.settings, env.params, built)

    @task(pool=SENDGRID_POOL, map_index_template="sender {{ sender_index }}")
    def send_batches(plan: dict) -> dict:
        """Claim batches from the ledger, check each recipient again, send through SendGrid, mark; until none is left."""
        from airflow.sdk import get_current_context

        from include.notifications import campaign
        from include.notifications.params import NotificationParams
        from include.seam import connections
        from include.seam.task import task_env
        from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

        get_current_context()["sender_index"] = plan["sender"]
        # A second store connection records each request before it leaves (see include/notifications/ledger.py).
        with task_env(NotificationParams) as env, connections.compliance_db() as side:
            key = env.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
            return campaign.send(env.ops, env.store, side, env.datamap, key, env.mailer, env.settings, env.ctx,
                                 env.params, plan)

    @task
    def summarize_campaign(built: dict, reports: list[dict]) -> dict:
        """Recount the campaign from its ledger: sent, failed, skipped, pending, duplicates at risk; finish it."""
        from include.notifications import campaign
        from include.seam.task import task_env

        with task_env() as env:
            return campaign.summarize(env.store, env.ctx, built["campaign_id"], reports)

    found = find_policy_version()
    prepare_store() >> found
    built = build_recipients(found)
    summarize_campaign(built, send_batches.expand(plan=plan_senders(built)))


policy_change_notifications()
