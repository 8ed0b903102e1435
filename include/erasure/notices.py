"""The downstream deletion notices an erasure owes (GDPR Art. 17(2), Art. 19): marking them sent.

Every workflow that erases people (the child-data purge, request fulfilment) records in
``compliance.vendor_deletion_notices`` one ``outstanding`` notice per subject, vendor and run. The compliance team
sends them (outside the product) and records here that it did: one transaction per call, one audit entry, ids and
counts only.

A call marks exactly the notices the person was shown: ``privacy-ops deletion-notices --vendor N`` prints a listing
code for the vendor's outstanding notices (and one per run) (:func:`listing_codes`), and :func:`mark_sent` marks them
only while the outstanding notices in its scope still give that code. An erasure run recording more for the vendor
between the listing and the marking (a purge in progress, a run cleared and run again) changes the code: the call
marks nothing and says to list them again, rather than mark sent a notice no one sent.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

from include.errors import NeedsOperator

ACTION = "vendor_deletion_notices.marked_sent"


class NoticeError(NeedsOperator, ValueError):
    """Notices that cannot be marked: a vendor or run no notice names."""


@dataclass(frozen=True)
class Marked:
    """What one call marked sent: the vendor, how many notices and subjects, the runs (empty: nothing was owed)."""

    vendor_id: int
    notices: int
    subjects: int
    run_ids: tuple[str, ...]
    audit_id: int | None = None


def listing_code(notices: Iterable[tuple[str, str]]) -> str:
    """A short code for a set of outstanding notices, each ``(run_id, subject_hash)``: the same set, the same code."""
    digest = hashlib.sha256("\n".join(sorted(f"{run} {subject}" for run, subject in notices)).encode())
    return digest.hexdigest()[:12]


def listing_codes(conn, vendor_id: int) -> tuple[str, dict[str, str]]:
    """The listing code of the vendor's outstanding notices, and of each run's."""
    rows = conn.execute("""select run_id, subject_hash from compliance.vendor_deletion_notices
                           where vendor_id = %s and status = 'outstanding'""", (vendor_id,)).fetchall()
    runs: dict[str, list] = {}
    for run, subject in rows:
        runs.setdefault(run, []).append((run, subject))
    return listing_code(rows), {run: listing_code(pairs) for run, pairs in runs.items()}


def mark_sent(store, vendor_id: int, run_id: str | None = None, *, by: str, listed: str | None = None) -> Marked:
    """Mark the vendor's outstanding notices (of ``run_id``, else of every run) sent now, with one audit entry by
    ``by``, in one transaction. Idempotent: notices sent already are left as they are, and a call that finds none
    outstanding marks nothing (``notices == 0``) and writes no audit entry.

    ``listed``: the listing code the person was shown (:func:`listing_codes`, of the vendor or of ``run_id``); the
    notices are marked only if the outstanding ones still give it, else nothing is (NoticeError: list them again).

    NoticeError (one sentence) when no notice was ever recorded for the vendor (or for it in that run), the notices
    owed changed since they were listed, or ``by`` is longer than ``ACTOR_CHARS`` (refused, never cut: a name cut
    short may name someone else)."""
    from include.audit import ACTOR_CHARS, append

    by = " ".join((by or "").split()) or "unknown"
    if len(by) > ACTOR_CHARS:
        raise NoticeError(f"who sent the notices is named in {len(by)} characters; give at most {ACTOR_CHARS}")
    with store.transaction():
        known = store.execute(
            """select count(*) from compliance.vendor_deletion_notices
               where vendor_id = %s and (%s::text is null or run_id = %s)""", (vendor_id, run_id, run_id)).fetchone()[0]
        if not known:
            where = f" in run {run_id!r}" if run_id is not None else ""
            raise NoticeError(f"no deletion notice was ever recorded for vendor {vendor_id}{where} "
                              "(privacy-ops deletion-notices lists the notices owed)")
        rows = store.execute(
            """update compliance.vendor_deletion_notices set status = 'sent', sent_at = now()
               where vendor_id = %s and (%s::text is null or run_id = %s) and status = 'outstanding'
               returning subject_hash, run_id""", (vendor_id, run_id, run_id)).fetchall()
        if not rows:
            return Marked(vendor_id, 0, 0, ())
        if listed is not None and listing_code((r, s) for s, r in rows) != listed.strip().lower():
            where = f" of run {run_id!r}" if run_id is not None else ""
            # Raised inside the transaction: nothing stays marked.
            raise NoticeError(f"the deletion notices owed to vendor {vendor_id}{where} are not those listed with code "
                              f"{listed.strip()[:12]!r} (an erasure recorded more since, or some were marked sent): "
                              "nothing was marked; list them again with privacy-ops deletion-notices --vendor "
                              f"{vendor_id} and tell the vendor what it shows")
        runs = tuple(sorted({r for _, r in rows}))
        subjects = len({s for s, _ in rows})
        audit_id = append(store, ACTION, {"vendor_id": vendor_id, "notices": len(rows), "subjects": subjects,
                                          "run_ids": list(runs)}, actor=by)
    return Marked(vendor_id, len(rows), subjects, runs, audit_id)
