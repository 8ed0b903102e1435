"""The compliance team's email about a purge run: counts per outcome, per table and per vendor, never a
subject. Recorded once per run in the outbox (kind ``child_purge.summary``, key the run id; read as
``compliance.child_purge_summaries``) and sent by the delivery engine; until it is sent, each attempt of the step
records it again with the run's counts as they are then.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from include.config import Settings
from include.mail import Addressee, Content, envelope, render_parts
from include.delivery.outbox import Entry, Outbox, OutboxLedger

OUTBOX = Outbox("child_purge.summary")

OUTCOME_WORDS = {"purged": "purged", "held": "held (active legal hold)", "invalid": "invalid (no rule could judge)",
                 "deferred": "deferred (beyond max_subjects)", "already_erased": "already erased",
                 "not_eligible": "no longer a child when re-checked"}


def counts_for_run(store, run_id: str) -> dict:
    """What the email says, read from the store: outcomes, rows per table, vendors (this run, outstanding)."""
    outcomes = dict(store.execute("""select outcome, count(*) from compliance.child_purges where run_id = %s
                                     group by outcome order by outcome""", (run_id,)).fetchall())
    tables = dict(store.execute(
        """select t.key, sum((t.value ->> 'rows')::bigint) from compliance.child_purges c,
                  jsonb_each(c.tables) t
           where c.run_id = %s and c.outcome = 'purged' group by t.key order by t.key""", (run_id,)).fetchall())
    vendors = [{"vendor_id": v, "name": n, "known": k, "subjects": s, "outstanding": o}
               for v, n, k, s, o in store.execute(
                   """select n.vendor_id, max(n.vendor_name), bool_and(n.vendor_known), count(distinct n.subject_hash),
                             (select count(distinct o.subject_hash) from compliance.vendor_deletion_notices o
                              where o.vendor_id = n.vendor_id and o.status = 'outstanding')
                      from compliance.vendor_deletion_notices n where n.run_id = %s
                      group by n.vendor_id order by n.vendor_id""", (run_id,))]
    run = store.execute("""select as_of, plan_hash, approval, approved_by from compliance.child_purge_runs
                           where run_id = %s""", (run_id,)).fetchone()
    as_of, plan_hash, approval, approved_by = run
    return {"as_of": as_of.isoformat(), "plan_hash": plan_hash, "approval": approval, "approved_by": approved_by,
            "outcomes": outcomes, "tables": {k: int(v) for k, v in tables.items()}, "vendors": vendors}


def record(store, *, run_id: str, recipient: str, counts: dict, now: datetime) -> None:
    """Record the run's summary with its counts as they are now (:func:`counts_for_run`: the run's records, every
    attempt's work); a summary an earlier attempt recorded and could not send (SendGrid down) is said with them too,
    so that the one summary of the run carries its final counts after a cleared run purged more."""
    OUTBOX.record_current(store, run_id, recipient=recipient, facts={"run_id": run_id, "counts": counts}, at=now,
                          run_id=run_id)


def status(store, run_id: str) -> tuple[str, str | None] | None:
    return OUTBOX.status(store, run_id)


def _approval(counts: dict) -> str:
    how = counts.get("approval")
    if how == "review":
        return f"approved by {counts.get('approved_by') or 'a reviewer'}"
    if how == "plan_hash":
        return "approved in advance by its hash (approve_plan)"
    return "within the approval threshold"


def payload(counts: dict, settings: Settings, run_id: str) -> dict:
    outcomes = counts.get("outcomes", {})
    vendors = counts.get("vendors", [])
    purged, held = outcomes.get("purged", 0), outcomes.get("held", 0)
    subject = (f"Child-data purge {counts['as_of']}: {purged} purged, {held} held; deletion notices owed to "
               f"{len(vendors)} vendor(s)")
    outcome_items = [f"{OUTCOME_WORDS.get(k, k)}: {v}" for k, v in sorted(outcomes.items())] or ["no subjects"]
    tables = sorted(counts.get("tables", {}).items())

    def vendor_name(v: dict) -> str:
        return f"#{v['vendor_id']} {v['name']}" if v.get("known") else f"#{v['vendor_id']} (unknown vendor id)"

    parts = render_parts(
        "child_purge_summary", as_of=counts["as_of"], run_id=run_id, plan_hash=counts.get("plan_hash") or "-",
        outcomes=outcome_items, tables=tables, approval=_approval(counts),
        vendors=[(vendor_name(v), v["subjects"], v["outstanding"]) for v in vendors])
    return envelope(settings, category="child-purge-summary", run_id=run_id, content=Content(subject, parts),
                    to=Addressee(settings.compliance_team_email, "child_purge_summary", run_id, {"run_id": run_id}))


def ledger(settings: Settings, run_id: str) -> OutboxLedger:
    """The run's summary for the delivery engine: one message."""

    def compose(conn, entries: Sequence[Entry]) -> tuple[dict, dict]:
        (entry,) = entries
        counts = entry.facts["counts"]
        return (payload(counts, settings, run_id),
                {"run_id": run_id, "outcomes": counts.get("outcomes", {}),
                 "vendors": [v["vendor_id"] for v in counts.get("vendors", [])]})

    return OUTBOX.ledger(compose, scope="o.key = %(run)s", params={"run": run_id})
