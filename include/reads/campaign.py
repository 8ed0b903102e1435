"""Policy-change notification campaigns: progress per campaign, and why recipients were left out.

Counts, ids, versions and dates only: the ledger holds no address, and nothing here reads one.
"""
from __future__ import annotations

TABLES = ("compliance.notification_campaigns", "compliance.notification_deliveries",
          "compliance.notification_batches")
DAG_ID = "policy_change_notifications"
SCOPES = ("live", "test")

# A failed or skipped row's reason names its kind first, then what varies: after ':' ("invalid address: <the
# validator's words>", "suppressed: <the suppression's reason>", SendGrid's "<field>: <message>"), after ';' (every
# "address changed since the campaign was built; <why>", whose why may hold ':' and parentheses of its own), or, for
# the kinds listed here, in parentheses at the end ("suppressed since the campaign was built (bounce)"). Other
# parentheses belong to the kind ("child account (under 13)").
KINDS_WITH_DETAIL_IN_PARENTHESES = ("suppressed since the campaign was built",)
REASON_KIND = (r"regexp_replace(split_part(split_part(reason, ':', 1), ';', 1), "
               r"'^(" + "|".join(KINDS_WITH_DETAIL_IN_PARENTHESES) + r") \(.*\)$', '\1')")

_CAMPAIGN_FIELDS = ("campaign_id", "scope", "policy_version_id", "policy_version", "state", "total", "sent", "failed",
                    "skipped", "pending", "done_percent", "unknown_batches", "duplicates_at_risk", "created_at",
                    "updated_at", "finished_at", "run_id")


def campaigns(conn, *, limit: int = 50, offset: int = 0, scope: str | None = None) -> list[dict]:
    """The newest campaigns first, with their progress (``compliance.notification_campaign_progress``)."""
    rows = conn.execute(
        f"""select {', '.join(_CAMPAIGN_FIELDS)} from compliance.notification_campaign_progress
            where %(scope)s::text is null or scope = %(scope)s
            order by created_at desc, campaign_id desc limit %(limit)s offset %(offset)s""",
        {"scope": scope, "limit": limit, "offset": offset}).fetchall()
    return [dict(zip(_CAMPAIGN_FIELDS, row)) for row in rows]


def campaign_page(conn, *, scope: str | None = None, limit: int = 20, offset: int = 0) -> dict:
    """One page of campaigns (newest first, with their progress) and how many there are in all."""
    total = conn.execute("""select count(*) from compliance.notification_campaigns
                            where %(scope)s::text is null or scope = %(scope)s""", {"scope": scope}).fetchone()[0]
    return {"total": total, "rows": campaigns(conn, limit=limit, offset=offset, scope=scope)}


def last_refreshed(conn):
    """When a campaign last moved (a batch marked, a campaign finished)."""
    return conn.execute("select max(updated_at) from compliance.notification_campaigns").fetchone()[0]


def campaign(conn, campaign_id: int) -> dict | None:
    """One campaign's progress, with how its recipients were found (``build_counts``)."""
    row = conn.execute(f"""select {', '.join(_CAMPAIGN_FIELDS)} from compliance.notification_campaign_progress
                           where campaign_id = %s""", (campaign_id,)).fetchone()
    if row is None:
        return None
    found = dict(zip(_CAMPAIGN_FIELDS, row))
    found["build_counts"] = conn.execute("select build_counts from compliance.notification_campaigns where id = %s",
                                         (campaign_id,)).fetchone()[0]
    return found


def reasons(conn, campaign_id: int, limit: int = 20) -> list[tuple[str, str, int]]:
    """Why recipients were failed or skipped: (state, the reason's kind, count), commonest first. The kind is the
    reason without what varies (:data:`REASON_KIND`): every ``address changed since the campaign was built; …`` is
    one kind, every ``invalid address: …`` another, whatever the suppression or the validator said.

    Reads the campaign's rows (one index range); for a campaign of a million rows this takes a few hundred
    milliseconds, so a page shows it on a campaign's own view, not in the list.
    """
    return conn.execute(
        f"""select state, {REASON_KIND}, count(*) from compliance.notification_deliveries
           where campaign_id = %s and state in ('failed', 'skipped')
           group by 1, 2 order by 3 desc, 1, 2 limit %s""", (campaign_id, limit)).fetchall()


def campaign_states(conn) -> dict[str, int]:
    """Live campaigns by state (``sending`` / ``finished``)."""
    return dict(conn.execute("select state, count(*) from compliance.notification_campaigns where scope = 'live' "
                             "group by state order by state"))
