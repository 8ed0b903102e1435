"""The erasure workflow's tasks, built once for every DAG that erases people.

Both erasing DAGs (``child_data_purge``, ``dsr_fulfilment``) run the same five-part workflow around the erasure
engine and the shared erasure run (:mod:`include.erasure.run`)::

    plan ─▶ gate ─▶ review (a person)      ─┐
                 └▶ in advance (threshold,  ├─▶ erase ─▶ verify ─▶ finish
                    or the plan's hash)    ─┘

:func:`erasure_workflow` builds those tasks from an :class:`ErasureTasks` (the DAG's step module, parameters,
step names and approval task ids) and wires them; the DAG file adds only what is its own (the purge detects children before
planning and emails a summary after erasing; fulfilment exports before the gate). Each task calls one step of
the DAG's step module with the step context (:func:`include.seam.task.run_step`); the erasing and finishing
steps read the reviewer's answer from the review task.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from include.approvals import ERASE_AND_REPORT
from include.seam.steps import step_task


def erasing_run_timeout() -> timedelta:
    """How long an erasing run may take (its DAG's ``dagrun_timeout``): the reviewer's time
    (:func:`include.approvals.approval_timeout`, 8 hours unless the deployment says otherwise) and four hours to
    erase and report."""
    from include.approvals import approval_timeout

    return approval_timeout() + ERASE_AND_REPORT


@dataclass(frozen=True)
class ErasureTasks:
    """An erasing DAG's words for the shared workflow. Each step's task id is its function's name in ``module`` (a
    module of plain functions of the step context, which must also hold ``finish_run``); each task's doc is its
    step's docstring."""

    module: str                          # the DAG's step module, e.g. "include.children.purge"
    params: str                          # its typed parameters, "module:Class"
    what: str                            # what is erased, for the approval tasks' docs ("purge", "erasures")
    steps: tuple[str, str, str]          # the planning, erasing and verifying steps
    approval: tuple[str, str, str]       # the task ids of the gate, the reviewer, and approved in advance
    erase_pool: str | None = None


@dataclass(frozen=True)
class ErasureWorkflow:
    """The built tasks, for the DAG file to wire its own steps to."""

    plan: Any
    gate: Any
    review: Any
    in_advance: Any
    erase: Any
    verify: Any
    finish: Any


def erasure_workflow(spec: ErasureTasks) -> ErasureWorkflow:
    """plan → gate → review or in advance → erase → verify → finish, built and wired."""
    from include.seam.approval import erasure_approval

    plan_id, erase_id, verify_id = spec.steps
    gate_id, review_id, in_advance_id = spec.approval
    plan = step_task(f"{spec.module}:{plan_id}", spec.params)
    gate, review, in_advance = erasure_approval(
        plan, plan_task_id=plan_id, gate_task_id=gate_id, review_task_id=review_id, in_advance_task_id=in_advance_id,
        what=spec.what)
    erase = step_task(f"{spec.module}:{erase_id}", spec.params, approval_from=review_id,
                      trigger_rule="none_failed_min_one_success",
                      **({"pool": spec.erase_pool} if spec.erase_pool else {}))
    verify = step_task(f"{spec.module}:{verify_id}", spec.params)
    finish = step_task(f"{spec.module}:finish_run", spec.params, approval_from=review_id, trigger_rule="none_failed")
    [review, in_advance] >> erase
    erase >> verify >> finish
    return ErasureWorkflow(plan, gate, review, in_advance, erase, verify, finish)
