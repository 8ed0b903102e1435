"""The violation email: one message per (vendor, period) to the compliance team, through the delivery engine.

A ledger row (``compliance.vendor_violation_notices``) is recorded in the transaction that records a
manifest with violations; :class:`ViolationNoticeLedger` hands the pending rows of a run's scope to
:func:`include.delivery.engine.deliver`, one (vendor, period) per Mail Send request, claimed with
``FOR UPDATE SKIP LOCKED`` so that two runs never send one twice. A manifest rewritten later (late shares)
is not emailed again: the compliance page and the audit log show the new revision.

The message carries the vendor, the period, counts by rule, the first share ids breaking each rule and the
objects' URIs: no user id, email, name or other data of a subject.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from include.config import Settings
from include.mail import Addressee, Content, envelope, render_parts
from include.delivery.engine import Batch
from include.vendors.rules import VIOLATION_TEXT, VIOLATIONS


def record(store, *, vendor_id: int, period_label: str, recipient: str, run_id: str, now: datetime) -> bool:
    """Record the (vendor, period) notice once; True when it was new."""
    return store.execute(
        """insert into compliance.vendor_violation_notices (vendor_id, period_label, recipient, claimed_at, claimed_run)
           values (%s, %s, %s, %s, %s) on conflict (vendor_id, period_label) do nothing""",
        (vendor_id, period_label, recipient, now, run_id)).rowcount == 1


_SCOPE = ("n.period_label = any(%(labels)s) "
          "and (cardinality(%(ids)s::bigint[]) = 0 or n.vendor_id = any(%(ids)s::bigint[]))")

_CLAIM = f"""
select n.vendor_id, n.period_label, n.recipient, m.vendor_known, m.vendor_name, m.vendor_kind, m.violations,
       m.violation_rows, m.violation_examples, m.row_count, m.manifest_uri, m.data_uri, m.data_sha256
from compliance.vendor_violation_notices n
join compliance.vendor_manifests m using (vendor_id, period_label)
where n.status = 'pending' and {_SCOPE}
order by n.period_label, n.vendor_id
limit 1
for update of n skip locked
"""


class ViolationNoticeLedger:
    """``compliance.vendor_violation_notices`` for the delivery engine, limited to a run's periods and vendors."""

    name = "vendor_manifest.violation_notice"

    def __init__(self, settings: Settings, run_id: str, period_labels: Sequence[str], vendor_ids: Sequence[int] = ()):
        self.settings, self.run_id = settings, run_id
        self.params = {"labels": list(period_labels), "ids": list(vendor_ids)}

    def pending(self, conn) -> int:
        return conn.execute(f"select count(*) from compliance.vendor_violation_notices n "
                            f"where n.status = 'pending' and {_SCOPE}", self.params).fetchone()[0]

    def claim(self, conn) -> Batch | None:
        row = conn.execute(_CLAIM, self.params).fetchone()
        if row is None:
            return None
        (vendor_id, label, recipient, known, name, kind, violations, rows_broken, examples, rows, manifest_uri,
         data_uri, sha) = row
        payload = violation_payload(ViolationNotice(
            vendor_id=vendor_id, vendor_name=name, known=known, kind=kind,
            period_label=label, recipient=recipient, violations=violations, violation_rows=rows_broken,
            examples=examples, rows=rows, manifest_uri=manifest_uri, data_uri=data_uri, data_sha256=sha),
            settings=self.settings, run_id=self.run_id)
        return Batch(keys=[(vendor_id, label)], payload=payload,
                     evidence={"vendor_id": vendor_id, "period": label,
                               "violations": {k: v for k, v in violations.items() if v}})

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None:
        self._finish(conn, batch, status="sent", message_id=message_id, sent_at=sent_at)

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None:
        self._finish(conn, batch, status="failed", error=reason)

    def _finish(self, conn, batch: Batch, *, status: str, message_id: str | None = None,
                sent_at: datetime | None = None, error: str | None = None) -> None:
        (vendor_id, label), = batch.keys
        conn.execute("""update compliance.vendor_violation_notices set status = %s, message_id = %s, sent_at = %s,
                               error = %s
                        where vendor_id = %s and period_label = %s and status = 'pending'""",
                     (status, message_id, sent_at, error, vendor_id, label))


def vendor_title(vendor_id: int, name: str | None, known: bool, kind: str | None) -> str:
    if not known:
        return f"unknown vendor {vendor_id}"
    return f"{name or 'vendor'} (vendor {vendor_id}, {kind or 'kind not recorded'})"


@dataclass(frozen=True)
class ViolationNotice:
    """One (vendor, period)'s notice as recorded: the vendor, the period, whom to tell, the violations by rule,
    their first share ids, the share counts and the manifest's objects."""

    vendor_id: int
    vendor_name: str | None
    known: bool
    kind: str | None
    period_label: str
    recipient: str
    violations: dict
    violation_rows: int
    examples: dict
    rows: int
    manifest_uri: str
    data_uri: str
    data_sha256: str


def violation_payload(notice: ViolationNotice, *, settings: Settings, run_id: str) -> dict:
    """The Mail Send payload of one (vendor, period): counts by rule and the first share ids, never a subject."""
    n = notice
    vendor_id, vendor_name, known, kind, period_label = n.vendor_id, n.vendor_name, n.known, n.kind, n.period_label
    recipient, violations, examples = n.recipient, n.violations, n.examples
    violation_rows, rows = n.violation_rows, n.rows
    manifest_uri, data_uri, data_sha256 = n.manifest_uri, n.data_uri, n.data_sha256
    title = vendor_title(vendor_id, vendor_name, known, kind)
    broken = [(rule, violations.get(rule, 0)) for rule in VIOLATIONS if violations.get(rule, 0)]
    subject = (f"[Vendor sharing] {violation_rows} of {rows} share(s) to {title} in {period_label} "
               f"break a sharing rule")
    intro = (f"{violation_rows} of the {rows} share(s) to {title} in the period {period_label} break at least one "
             f"sharing rule of the privacy policy:")

    def ids(rule: str) -> str:
        shown = examples.get(rule) or []
        more = violations.get(rule, 0) - len(shown)
        return ", ".join(map(str, shown)) + (f" and {more} more" if more > 0 else "")

    parts = render_parts(
        "vendor_violations", intro=intro, manifest_uri=manifest_uri, data_uri=data_uri, data_sha256=data_sha256,
        broken=[(rule, VIOLATION_TEXT[rule], count, ids(rule)) for rule, count in broken])
    return envelope(settings, category="vendor-violations", run_id=run_id, content=Content(subject, parts),
                    to=Addressee(recipient, "vendor_violations", f"{vendor_id}/{period_label}",
                                 {"vendor_id": str(vendor_id), "period": period_label}))
