"""The violation email: one message per (vendor, period) to the compliance team, through the delivery engine.

An outbox row (kind ``vendor_manifest.violation_notice``, key ``<vendor id>/<period>``; read as
``compliance.vendor_violation_notices``) is recorded in the transaction that records a manifest with violations;
:func:`ledger` hands the pending rows of a run's scope to :func:`include.delivery.engine.deliver`, one
(vendor, period) per Mail Send request, claimed with ``FOR UPDATE SKIP LOCKED`` so that two runs never send one
twice. A manifest rewritten later (late shares) is not emailed again: the compliance page and the audit log show
the new revision; a pending notice whose manifest was rewritten with no violation left is withdrawn when it is
claimed, not sent (:func:`_no_longer_broken`). The ``undated`` manifest is the exception: no period that is ever
over holds its shares, so each revision of it with violations gets a notice of its own (key
``<vendor id>/undated/<revision>`` after the first), unless the vendor's undated notice is still waiting to be sent
(it is sent with the manifest as it is then).

The message carries the vendor, the period, counts by rule, the first share ids breaking each rule and the
objects' URIs: no user id, email, name or other data of a subject.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Sequence

from include.config import Settings
from include.mail import Addressee, Content, envelope, render_parts
from include.delivery.outbox import Entry, Outbox, OutboxLedger
from include.vendors.rules import VIOLATION_TEXT, VIOLATIONS
from include.vendors.source import UNDATED

OUTBOX = Outbox("vendor_manifest.violation_notice")

# A vendor's undated notice still waiting to be sent and free (a sender holding it has read the manifest already).
_PENDING_UNDATED = """select 1 from compliance.outbox where kind = %s and status = 'pending'
  and facts ->> 'period_label' = %s and (facts ->> 'vendor_id')::bigint = %s limit 1 for update skip locked"""


class Notice(NamedTuple):
    """Which manifest a notice tells of: the vendor, the period, and the revision it was recorded with."""

    vendor_id: int
    period_label: str
    revision: int = 1


def record(store, notice: Notice, *, recipient: str, run_id: str, now: datetime) -> bool:
    """Record the (vendor, period) notice once; True when it was new. Inside the transaction that records the
    manifest: a revision of the undated manifest is a notice of its own, unless one is still pending."""
    vendor_id, period_label, revision = notice
    key = f"{vendor_id}/{period_label}"
    if period_label == UNDATED:
        if store.execute(_PENDING_UNDATED, (OUTBOX.kind, UNDATED, vendor_id)).fetchone():
            return False  # locked until this transaction ends: it is sent with this revision
        key += f"/{revision}" if revision > 1 else ""
    return OUTBOX.record(store, key, recipient=recipient, at=now, run_id=run_id,
                         facts={"vendor_id": vendor_id, "period_label": period_label, "revision": revision})


# A run's periods and vendors (no periods: every period); a notice is recorded with its manifest (one transaction),
# and is sent with it.
_SCOPE = """(cardinality(%(labels)s::text[]) = 0 or o.facts ->> 'period_label' = any(%(labels)s))
  and (cardinality(%(ids)s::bigint[]) = 0 or (o.facts ->> 'vendor_id')::bigint = any(%(ids)s::bigint[]))
  and exists (select 1 from compliance.vendor_manifests m
              where m.vendor_id = (o.facts ->> 'vendor_id')::bigint and m.period_label = o.facts ->> 'period_label')"""

_MANIFEST = """
select vendor_known, vendor_name, vendor_kind, violations, violation_rows, violation_examples, row_count, manifest_uri,
       data_uri, data_sha256
from compliance.vendor_manifests where vendor_id = %s and period_label = %s
"""


def ledger(settings: Settings, run_id: str, period_labels: Sequence[str],
           vendor_ids: Sequence[int] = ()) -> OutboxLedger:
    """The notices of a run's periods and vendors (``period_labels`` empty: of every period) for the delivery
    engine, one (vendor, period) a message, read with the manifest as it is when it is sent."""

    def compose(conn, entries: Sequence[Entry]) -> tuple[dict, dict]:
        (entry,) = entries
        vendor_id, label = entry.facts["vendor_id"], entry.facts["period_label"]
        row = conn.execute(_MANIFEST, (vendor_id, label)).fetchone()
        if row is None:  # the scope saw it in this transaction; only a hand-edited store gets here
            raise LookupError(f"the violation notice of vendor {vendor_id} for {label} has no manifest")
        known, name, kind, violations, rows_broken, examples, rows, manifest_uri, data_uri, sha = row
        notice = ViolationNotice(
            vendor_id=vendor_id, vendor_name=name, known=known, kind=kind, period_label=label,
            recipient=entry.recipient, violations=violations, violation_rows=rows_broken, examples=examples,
            rows=rows, manifest_uri=manifest_uri, data_uri=data_uri, data_sha256=sha)
        return (violation_payload(notice, settings=settings, run_id=run_id),
                {"vendor_id": vendor_id, "period": label, "violations": {k: v for k, v in violations.items() if v}})

    notices = OUTBOX.ledger(compose, scope=_SCOPE, params={"labels": list(period_labels), "ids": list(vendor_ids)},
                            order="o.facts ->> 'period_label', (o.facts ->> 'vendor_id')::bigint")
    return notices.withdrawing(_no_longer_broken)


def _no_longer_broken(conn, entries: Sequence[Entry]) -> dict[str, str]:
    """The claimed notices whose manifest was rewritten since they were recorded (late shares withdrawn or
    corrected while SendGrid was down) and now has no share breaking a rule: withdrawn with why, not sent as "0 of N
    shares break a rule". A revision with violations again records the notice again (pending once more)."""
    moot = {}
    for e in entries:
        row = conn.execute("""select revision, violation_rows from compliance.vendor_manifests
                              where vendor_id = %s and period_label = %s""",
                           (e.facts["vendor_id"], e.facts["period_label"])).fetchone()
        if row is not None and row[1] == 0:
            moot[e.key] = (f"not sent: the manifest of {e.facts['period_label']} was rewritten (revision {row[0]}) and "
                           "no share of it breaks a rule any more")
    return moot


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
