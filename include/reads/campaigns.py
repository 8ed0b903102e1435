"""Policy-change notification campaigns (``policy_change_notifications``, SPEC §4.4). A SKETCH until 0005 lands.

Shown only once both tables exist. Columns read (issue 15; adjust when the tables land):

    notification_campaigns(campaign_id, policy_version, started_at, finished_at, run_id)
    notification_deliveries(campaign_id, status in ('pending','sent','failed','skipped'), ...)

Counts come from the deliveries ledger, one campaign page at a time (an index on (campaign_id, status)
makes them index-only scans): sent / failed / skipped / total, and progress while a campaign runs.
"""
from __future__ import annotations

TABLES = ("compliance.notification_campaigns", "compliance.notification_deliveries")
DAG_ID = "policy_change_notifications"


def campaign_page(conn, *, limit: int = 20, offset: int = 0) -> dict:
    total = conn.execute("select count(*) from compliance.notification_campaigns").fetchone()[0]
    rows = conn.execute(
        """select c.campaign_id, c.policy_version, c.started_at, c.finished_at, c.run_id, d.sent, d.failed,
                  d.skipped, d.pending, d.total
           from (select * from compliance.notification_campaigns order by started_at desc, campaign_id
                 limit %s offset %s) c
           cross join lateral (
               select count(*) filter (where status = 'sent') as sent, count(*) filter (where status = 'failed') as failed,
                      count(*) filter (where status = 'skipped') as skipped,
                      count(*) filter (where status = 'pending') as pending, count(*) as total
               from compliance.notification_deliveries where campaign_id = c.campaign_id) d
           order by c.started_at desc, c.campaign_id""", (limit, offset)).fetchall()
    keys = ("campaign_id", "policy_version", "started_at", "finished_at", "run_id", "sent", "failed", "skipped",
            "pending", "total")
    result = []
    for row in rows:
        item = dict(zip(keys, row))
        done = item["sent"] + item["failed"] + item["skipped"]
        item["progress"] = f"{done}/{item['total']}" if item["finished_at"] is None else None
        result.append(item)
    return {"total": total, "rows": result}


def last_refreshed(conn):
    return conn.execute("select max(coalesce(finished_at, started_at)) from compliance.notification_campaigns"
                        ).fetchone()[0]
