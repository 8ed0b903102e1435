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

import ast
import importlib.util
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any


ERASE_AND_REPORT = timedelta(hours=4)


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


def step_task(target: str, params: str | None, *inputs: Any, **options: Any):
    """One task that runs one step (``module:function``) with the step context, called with ``inputs`` (the
    XCom of earlier tasks, handed to the step after ``step``); ``options`` as :func:`step_operator`'s."""
    return step_operator(target, params, **options)(*inputs)


def step_operator(target: str, params: str | None, *, approval_from: str | None = None, label: str | None = None,
                  kind: str | None = None, **task_kwargs):
    """The task (not yet called: call it, or ``.expand(...)`` it) that runs the step ``module:function``.

    Its task id is the function's name unless ``task_id`` is given, its doc the step's docstring, its arguments
    the step's own after ``step`` (``def write_vendor_manifest(step, item)`` makes a task of ``item``).
    ``label``: a mapped task instance's label in the UI, a format string over the step's arguments
    (``"vendor {item[vendor_id]}"``); ``kind``: another ``@task`` flavour (``"short_circuit"``); the rest goes
    to ``@task``."""
    import inspect

    from airflow.sdk import task

    task_id = task_kwargs.pop("task_id", target.rpartition(":")[2])
    names = step_inputs(target)
    if label is not None:
        task_kwargs["map_index_template"] = "{{ %s }}" % LABEL_KEY
    decorator = getattr(task, kind) if kind else task

    def step(*args: Any, **named: Any) -> Any:
        from include.seam.task import run_step, set_context

        inputs = dict(zip(names, args), **named)
        if label is not None:
            set_context(LABEL_KEY, label.format(**inputs))
        return run_step(target, params, *(inputs[n] for n in names), approval_from=approval_from)

    step.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    step.__name__ = task_id
    return decorator(task_id=task_id, doc_md=step_doc(target), **task_kwargs)(step)


LABEL_KEY = "step_label"  # the context key a mapped step's label is rendered from


def _step_def(target: str) -> ast.FunctionDef:
    module, _, name = target.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ValueError(f"step {target}: no module {module}")
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ValueError(f"step {target}: {module} has no function {name}")


def step_inputs(target: str) -> tuple[str, ...]:
    """The names of the step's arguments after ``step``: the task's inputs."""
    return tuple(a.arg for a in _step_def(target).args.args[1:])


def step_doc(target: str) -> str:
    """The docstring of the step ``module:function``, read from its source without importing it (parsing a DAG
    stays cheap); a step that is not there fails the DAG's import, naming it."""
    return ast.get_docstring(_step_def(target)) or ""


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
