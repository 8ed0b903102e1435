"""The guards between an erasure plan and the erasure, the same for every DAG that erases people.

docs/rules.md, "Erasure": a dry run changes nothing; a run told to carry out one plan (``approve_plan``, the
hash a dry run printed) carries out that plan or nothing; a plan erasing more subjects than the threshold
waits for a person (Airflow's human-in-the-loop approval) unless it was approved by its hash; a timeout, a
rejection or a missing answer never approves; a table the data map forgot that holds a subject's rows stops
the plan before anything is erased.

Pure functions over what the plan and the reviewer's answer say; each DAG records the outcome in its own
ledger (:mod:`include.children.ledger`, :mod:`include.fulfilment.ledger`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from include.datamap import OPS_CONNECTION
from include.erasure.scope import split_label
from include.errors import NeedsOperator

APPROVE = "Approve"  # the option of Airflow's ApprovalOperator that approves


class PlanChanged(NeedsOperator):
    """The run was told to carry out one plan (``approve_plan``) and its plan is another."""


class NotApproved(NeedsOperator):
    """The erasure step was reached without the approval its plan needs."""


class ForgottenTable(NeedsOperator):
    """The data map misses a table that holds rows of the subjects to erase."""


def short(digest: str | None) -> str:
    """A plan hash as a person reads it in a log line or an error."""
    return f"{digest[:12]}…" if digest else "-"


def check_mapped(plan, *, nothing: str = "nothing was erased") -> None:
    """:class:`ForgottenTable` when a table missing from the data map holds rows of a subject the plan erases."""
    forgotten = sorted({t.table for s in plan.erasable for t in s.unmapped})
    if forgotten:
        holders = sum(1 for s in plan.erasable if s.unmapped)
        raise ForgottenTable(f"{', '.join(forgotten)} hold(s) rows of {holders} subject(s) to erase but the data map "
                             f"does not list it: add it to include/datamap.yaml with its erase rule ({nothing})")


# -- the gate: what a recorded plan may do next --------------------------------------------------------------

DRY_RUN = "dry_run"
PLAN_CHANGED = "plan_changed"
NOTHING_TO_ERASE = "nothing_to_erase"
PLANNED = "planned"
AWAITING_APPROVAL = "awaiting_approval"


@dataclass(frozen=True)
class Gate:
    state: str                  # one of the five above
    approval: str | None        # how it is approved: not_needed, plan_hash, review (None: nothing to approve)
    approval_state: str | None  # not_needed, approved, waiting, plan_changed


def gate(plan_hash: str, *, erasable: int, to_erase: int, params, threshold: int, rest_of_approved: bool = False
         ) -> Gate:
    """The guards, in order. ``erasable``: subjects the plan would erase (what the threshold counts); ``to_erase``:
    those this run still has to erase; ``params``: the run's ``dry_run`` and ``approve_plan``.
    ``rest_of_approved``: the plan is what is left of the approved one once other runs carrying it out erased
    their part (:func:`include.erasure.rest_of_approved`) — still that plan."""
    dry_run, approve_plan = params.dry_run, params.approve_plan
    review = "review" if erasable > threshold else "not_needed"
    if dry_run:
        return Gate(DRY_RUN, review if to_erase else None, None)
    if approve_plan and approve_plan != plan_hash and not rest_of_approved:
        return Gate(PLAN_CHANGED, "plan_hash", "plan_changed")
    if to_erase == 0:
        return Gate(NOTHING_TO_ERASE, None, None)
    if approve_plan:
        return Gate(PLANNED, "plan_hash", "approved")
    if review == "not_needed":
        return Gate(PLANNED, "not_needed", "not_needed")
    return Gate(AWAITING_APPROVAL, "review", "waiting")


def route(plan: Mapping, *, review_task_id: str, in_advance_task_id: str) -> str | None:
    """The task a run goes to once its plan is recorded: the reviewer, straight to the erasure, or nowhere.
    ``plan`` is the planning task's result: its ``state`` and ``to_erase``."""
    if plan["state"] == AWAITING_APPROVAL:
        return review_task_id
    if plan["state"] == PLANNED and plan["to_erase"]:
        return in_advance_task_id
    return None


def against_threshold(subjects: int, threshold: int) -> str:
    """How a plan's size stands against the approval threshold, in words (a dry run's plan may be under it)."""
    if subjects > threshold:
        return f"more than the approval threshold of {threshold}: a person must approve it"
    return f"within the approval threshold of {threshold}: it needs no reviewer"


def review_text(headline: str, plan_hash: str, tables: Mapping[str, int], not_touched: str,
                vendors: list[str], rejected: str = "") -> str:
    """What the reviewer reads (Markdown): the headline, the hash, rows per store and per table (``tables`` by
    label: ``schema.table`` on the operational database, ``connection:schema.table`` elsewhere), what is left
    alone, the vendors to notify, and what each answer does. Callers pass counts, names of tables and vendors: no
    personal data."""
    by_store: dict[str, list[tuple[str, int]]] = {OPS_CONNECTION: []}
    for label, n in tables.items():
        store, table = split_label(label)
        by_store.setdefault(store, []).append((table, n))
    stores = [OPS_CONNECTION, *sorted(s for s in by_store if s != OPS_CONNECTION)]
    lines = [headline, "", f"Plan hash: `{plan_hash}`", "",
             "Rows per store: " + ", ".join(f"{s} {sum(n for _, n in by_store[s])}" for s in stores) + ".", "",
             "| store | table | rows |", "| --- | --- | ---: |"]
    lines += [f"| {store} | {table} | {n} |" for store in stores for table, n in by_store[store]]
    lines += ["", f"Not touched: {not_touched}"]
    if vendors:
        lines += ["", "Vendors to send a deletion notice: " + ", ".join(vendors) + "."]
    lines += ["", "**Approve** erases exactly this plan, subject by subject. **Reject** — or no answer before the "
                  f"timeout — erases nothing{rejected}."]
    return "\n".join(lines)


# -- the reviewer's answer -----------------------------------------------------------------------------------

def responder(answer: Mapping | None) -> str | None:
    """The Airflow user who answered the approval request (None: nobody, the timeout's default applied)."""
    user = (answer or {}).get("responded_by_user")
    if not user or (answer or {}).get("timed_out"):
        return None
    return str(user.get("name") or user.get("id")) if isinstance(user, Mapping) else str(user)


def reviewer(answer: Mapping | None) -> str | None:
    """Who approved, when the human-in-the-loop answer is an approval by a person; else None.

    A timeout applies the operator's default (Reject) with no user: that is never an approval, even if the
    default were changed.
    """
    if not answer or answer.get("timed_out") or list(answer.get("chosen_options") or []) != [APPROVE]:
        return None
    return responder(answer)


@dataclass(frozen=True)
class Approval:
    """How a recorded plan is approved when its erasure starts."""

    in_advance: bool            # within the threshold, or by its hash: no person was asked
    approved_by: str | None     # the reviewer, or "approve_plan parameter" for an approval by hash
    new: bool                   # approved by this answer: the caller records and audits it


def approval_of(run, answer: Mapping | None, what: str = "plan") -> Approval:
    """The plan's approval as the ``run`` recorded it (its ``approval``, ``approval_state``, ``plan_hash``,
    ``plan_subjects`` and ``threshold``: :class:`include.erasure.run.RunRecord`) and the reviewer's ``answer``,
    or :class:`NotApproved`: a plan above the threshold that no person approved is never erased."""
    approval, approval_state, plan_hash = run.approval, run.approval_state, run.plan_hash
    subjects, threshold = run.plan_subjects, run.threshold
    if approval in ("not_needed", "plan_hash") and approval_state in ("not_needed", "approved"):
        return Approval(True, "approve_plan parameter" if approval == "plan_hash" else None, False)
    if approval == "review":
        if approval_state == "approved":
            return Approval(False, None, False)
        who = reviewer(answer)
        if who is None:
            raise NotApproved(f"{what} {short(plan_hash)} erases {subjects} subject(s), more than the threshold of "
                              f"{threshold}, and no person approved it: nothing was erased")
        return Approval(False, who, True)
    raise NotApproved(f"{what} {short(plan_hash)} is not approved ({approval}, {approval_state}): nothing was erased")
