"""A person approves a plan: Airflow's human-in-the-loop ``ApprovalOperator``, with its answer kept.

``ApprovalOperator`` returns the answer as its XCom when it is *Approve*, but on *Reject* (and on a timeout,
which applies the defaults) it skips its downstream tasks and leaves no XCom, so a later task cannot tell
a reviewer's rejection from nobody answering. :class:`PlanApproval` also pushes every answer under the XCom
key :data:`ANSWER_KEY`: ``{"chosen_options", "responded_by_user", "responded_at", "timed_out"}``.

Its defaults are always ``Reject``: a timeout never approves.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

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
