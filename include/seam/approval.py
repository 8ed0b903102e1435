"""A person approves a plan: Airflow's human-in-the-loop ``ApprovalOperator``, with its answer kept.

``ApprovalOperator`` returns the answer as its XCom when it is *Approve*, but on *Reject* (and on a timeout,
which applies the defaults) it skips its downstream tasks and leaves no XCom, so a later task cannot tell
a reviewer's rejection from nobody answering. :class:`PlanApproval` also pushes every answer under the XCom
key :data:`ANSWER_KEY`: ``{"chosen_options", "responded_by_user", "responded_at", "timed_out"}``.

Its defaults are always ``Reject``: a timeout never approves.

:func:`erasure_approval` builds the approval branch every erasing DAG runs between its plan and its
erasure — a branch on the plan's gate, a person's review, or approval in advance — so that the purge and
the fulfilment wire the same three tasks the same way.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

# The reviewer's time (plain Python, so that the compliance page can say it too).
from include.approvals import approval_timeout

ANSWER_KEY = "answer"


class PlanApproval(ApprovalOperator):
    """``ApprovalOperator`` (Reject by default) that records its answer, whatever it is, in XCom."""

    def __init__(self, *, response_timeout: timedelta, **kwargs: Any) -> None:
        if kwargs.pop("defaults", "Reject") not in ("Reject", ["Reject"]):
            raise ValueError("a plan approval's default answer (applied on timeout) must be Reject")
        super().__init__(defaults="Reject", response_timeout=response_timeout, **kwargs)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        if "error" not in event:
            responded_at = event.get("responded_at")
            context["ti"].xcom_push(key=ANSWER_KEY, value={
                "chosen_options": list(event.get("chosen_options") or []),
                "responded_by_user": event.get("responded_by_user"),
                "responded_at": responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
                "timed_out": bool(event.get("timedout")) or not event.get("responded_by_user"),
            })
        return super().execute_complete(context, event)


def erasure_approval(plan, *, plan_task_id: str, gate_task_id: str, review_task_id: str, in_advance_task_id: str,
                     what: str):
    """The approval branch between an erasure plan and the erasure; returns ``(gate, review, in_advance)``.

    ``plan`` is the planning task's output (its ``state``, ``to_erase``, ``approval_subject`` and
    ``approval_body``); ``what`` names what is erased, for the tasks' docs. The reviewer has
    :func:`approval_timeout` (the DAG's run timeout must outlast it). The gate
    (:func:`include.erasure.guard.route`) goes to the review when the plan is above the threshold, to
    ``in_advance`` when it is within it or approved by its hash, and nowhere for a dry run, a changed plan or
    nothing to erase. The erasing task downstream of both takes ``trigger_rule="none_failed_min_one_success"``
    and reads the answer under :data:`ANSWER_KEY` from ``review_task_id``.
    """
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import task

    @task.branch(task_id=gate_task_id,
                 doc_md=f"Above the approval threshold: a reviewer; within it or approved by hash: the {what}; "
                        "a dry run, a changed plan or nothing to erase: neither.")
    def gate(plan: dict) -> str | None:
        from include.erasure.guard import route

        return route(plan, review_task_id=review_task_id, in_advance_task_id=in_advance_task_id)

    review = PlanApproval(
        task_id=review_task_id,
        subject=f"{{{{ ti.xcom_pull(task_ids='{plan_task_id}')['approval_subject'] }}}}",
        body=f"{{{{ ti.xcom_pull(task_ids='{plan_task_id}')['approval_body'] }}}}",
        response_timeout=approval_timeout(),
        doc_md=f"A person approves or rejects the plan of the {what} (shown with its hash, rows per table and "
               "vendors). No answer within the timeout applies **Reject**: nothing is erased.",
    )
    in_advance = EmptyOperator(
        task_id=in_advance_task_id,
        doc_md=f"The plan of the {what} is within the approval threshold, or this run was given its hash "
               "(`approve_plan`).")
    branch = gate(plan)
    branch >> [review, in_advance]
    return branch, review, in_advance
