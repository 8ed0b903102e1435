"""The erasure engine: erase a data subject everywhere the data map says, safely, and prove it.

One engine for every workflow that erases people (the child-data purge, request fulfilment's erasure and
delete requests), with the same guards:

- :func:`plan` (``include.erasure.plan``) — what erasing these subjects would do now: per subject every
  mapped table and its rows, legal holds, vendors to notify; a stable hash a person can approve.
- :func:`erase_subject` (``include.erasure.engine``) — one transaction per subject: claim the account row
  (``FOR UPDATE SKIP LOCKED``), re-check holds and the caller's eligibility, apply each table's erase rule
  (delete, or null / keyed-hash named columns), delete the account row last, count what is left in every
  mapped table (and every table the map forgot) and roll back with an error naming the table when
  anything is; idempotent (an erased subject is ``already_erased``).
- :func:`include.erasure.stores.erase_elsewhere` — inside that claim, before the operational rows: the other
  stores' rows (one transaction per store) and the files the rows name, each subject's progress recorded per
  store and per file in the compliance store so a crash or a lost store resumes on the retry; a file in a
  bucket the settings do not allow leaves the subject ``incomplete`` (nothing of it erased in any store).
- :func:`probe`, :func:`residual_by_keys` — settle a record left half-way by a dead worker, and check a
  finished purge again after it committed.

Nothing here imports Airflow or knows which workflow calls it: callers hook their own work into the
erasing transaction (``in_transaction``) and record the result before it commits (``before_commit``).
"""
from include.erasure.engine import (ALREADY_ERASED, CLAIMED_ELSEWHERE, HELD, INCOMPLETE, NOT_ELIGIBLE, PURGED, ErasureError,
                                    EraseOptions, ErasureResult, Probe, ResidualDataError, SubjectBusy, TableCount,
                                    erase_subject, probe, residual_by_keys)
from include.erasure.facts import VendorShare
from include.erasure.plan import Plan, SubjectPlan, plan, rest_of_approved
from include.erasure.scope import Target, Unmapped, discover_unmapped, store_targets, targets
from include.erasure.stores import StoreAccess, allowed_buckets, needs_access, residual_by_keys_elsewhere

__all__ = ["ALREADY_ERASED", "CLAIMED_ELSEWHERE", "HELD", "INCOMPLETE", "StoreAccess", "allowed_buckets", "needs_access",
           "residual_by_keys_elsewhere", "store_targets", "NOT_ELIGIBLE", "PURGED", "EraseOptions", "ErasureError",
           "ErasureResult",
           "Plan", "Probe", "ResidualDataError", "SubjectBusy", "SubjectPlan", "TableCount", "Target", "Unmapped",
           "VendorShare", "discover_unmapped", "erase_subject", "plan", "probe", "residual_by_keys", "rest_of_approved",
           "targets"]
