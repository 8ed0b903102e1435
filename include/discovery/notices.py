"""New findings are told to the compliance team once, through the shared delivery engine.

``compliance.discovery_findings.notice`` is the ledger: a finding is ``pending`` from the run that first saw it
until a message listing it is sent (``sent``) or refused (``failed``); a finding dismissed or resolved before that
is ``withdrawn``. The engine claims the pending rows ``FOR UPDATE SKIP LOCKED`` inside the transaction that sends
and marks them, so two runs at once, or a retried task, never tell a finding twice.
"""
from __future__ import annotations

from datetime import datetime

from include.config import Settings
from include.discovery.findings import digest
from include.mail import Addressee, Content, envelope, render_parts
from include.delivery.engine import Batch

BATCH = 200  # findings per message at most
KIND = "discovery_findings"

_PENDING = "status = 'open' and notice = 'pending'"


class FindingsLedger:
    """The pending findings, up to :data:`BATCH` per message to ``compliance_team_email``."""

    name = "discovery.findings_notice"

    def __init__(self, settings: Settings, run_id: str):
        self.settings, self.run_id = settings, run_id

    def pending(self, conn) -> int:
        return conn.execute(f"select count(*) from compliance.discovery_findings where {_PENDING}").fetchone()[0]

    def claim(self, conn) -> Batch | None:
        cur = conn.execute(
            f"""select finding_id, finding_key, connection_id, schema_name, table_name, column_name, finding, kind,
                       confidence, matched, sampled, suggestion
                from compliance.discovery_findings where {_PENDING}
                order by finding_id limit %s for update skip locked""", (BATCH,))
        names = [c.name for c in cur.description]
        rows = [dict(zip(names, r)) for r in cur]
        if not rows:
            return None
        for row in rows:
            table = row["table_name"] if row["schema_name"] == "public" else f"{row['schema_name']}.{row['table_name']}"
            row["where"] = f"{table}.{row['column_name']}" if row["column_name"] else table
        ids = [r["finding_id"] for r in rows]
        key = digest(r["finding_key"] for r in rows)
        parts = render_parts("discovery_findings", findings=rows, run_id=self.run_id)
        payload = envelope(self.settings, category="discovery", run_id=self.run_id,
                           content=Content(f"Personal-data discovery: {len(rows)} new finding(s)", parts),
                           to=Addressee(self.settings.compliance_team_email, KIND, key,
                                        {"findings": str(len(rows))}))
        return Batch(keys=ids, payload=payload, evidence={"finding_ids": ids})

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None:
        conn.execute(f"""update compliance.discovery_findings set notice = 'sent', notice_sent_at = %s, message_id = %s
                         where finding_id = any(%s) and {_PENDING}""", (sent_at, message_id, list(batch.keys)))

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None:
        conn.execute(f"""update compliance.discovery_findings set notice = 'failed', notice_error = %s
                         where finding_id = any(%s) and {_PENDING}""", (reason[:500], list(batch.keys)))
