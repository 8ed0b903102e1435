"""The erasure workflow's tasks, built once for every DAG that erases people.

Both erasing DAGs (``child_data_purge``, ``dsr_fulfilment``) run the same five-part workflow around the erasure
engine and the shared erasure run (:mod:`include.erasure.run`)::

    plan ─▶ gate ─▶ review (a person)      ─┐
                 └▶ in advance (threshold,  ├─▶ erase ─▶ verify ─▶ finish
                    or the plan's hash)    ─┘

:func:`erasure_workflow` builds those tasks from an :class:`ErasureTasks` (the DAG's step module, parameters,
task ids and words) and wires them; the DAG file adds only what is its own (the purge detects children before
planning and emails a summary after erasing; fulfilment exports before the gate). Each task calls one step of
the DAG's step module with the step context (:func:`include.seam.task.run_step`); the erasing and finishing
steps read the reviewer's answer from the review task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class ErasureTasks:
    """An erasing DAG's words for the shared workflow. Each step's task id is the step's function name in
    ``steps`` (a module of plain functions of the step context)."""

    steps: str                   # the DAG's step module, e.g. "include.children.purge"
    params: str                  # its typed parameters, "module:Class"
    what: str                    # what is erased, for the tasks' docs ("purge", "erasures")
    plan: str                    # the planning step (plan_purge)
    erase: str                   # the erasing step (purge_subjects)
    verify: str                  # the check after commit (verify_purge)
    approval: Mapping[str, str] = field(default_factory=dict)  # gate, review, in_advance task ids
    docs: Mapping[str, str] = field(default_factory=dict)      # step -> the task's doc in the UI
    erase_pool: str | None = None

    def task_id(self, role: str) -> str:
        defaults = {"gate": "approval_gate", "review": "approve_plan", "in_advance": "approved_in_advance"}
        return self.approval.get(role, defaults[role])


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


def step_task(target: str, params: str | None, *, doc: str, approval_from: str | None = None, **task_kwargs):
    """One task that runs one step (``module:function``) with the step context; its task id is the function's
    name unless ``task_id`` is given."""
    from airflow.sdk import task

    task_id = task_kwargs.pop("task_id", target.rpartition(":")[2])

    @task(task_id=task_id, doc_md=doc, **task_kwargs)
    def step() -> Any:
        from include.seam.task import run_step

        return run_step(target, params, approval_from=approval_from)

    return step()


def erasure_workflow(spec: ErasureTasks) -> ErasureWorkflow:
    """plan → gate → review or in advance → erase → verify → finish, built and wired."""
    from include.seam.approval import erasure_approval

    review_id = spec.task_id("review")

    def doc(name: str) -> str:
        return spec.docs.get(name, "")

    plan = step_task(f"{spec.steps}:{spec.plan}", spec.params, doc=doc(spec.plan))
    gate, review, in_advance = erasure_approval(
        plan, plan_task_id=spec.plan, gate_task_id=spec.task_id("gate"), review_task_id=review_id,
        in_advance_task_id=spec.task_id("in_advance"), what=spec.what)
    erase = step_task(f"{spec.steps}:{spec.erase}", spec.params, doc=doc(spec.erase), approval_from=review_id,
                      trigger_rule="none_failed_min_one_success",
                      **({"pool": spec.erase_pool} if spec.erase_pool else {}))
    verify = step_task(f"{spec.steps}:{spec.verify}", spec.params, doc=doc(spec.verify))
    finish = step_task(f"{spec.steps}:finish_run", spec.params, doc=doc("finish_run"), approval_from=review_id,
                       trigger_rule="none_failed")
    [review, in_advance] >> erase
    erase >> verify >> finish
    return ErasureWorkflow(plan, gate, review, in_advance, erase, verify, finish)
