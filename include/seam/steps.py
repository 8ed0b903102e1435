"""A DAG's task as one line: a task that runs one step of the step context (:mod:`include.step`).

    evaluate = step_task("include.deadlines.tracking:evaluate_requests", "include.deadlines.params:DsrParams")

:func:`step_task` (and :func:`step_operator`, for a task to ``.expand``) makes an Airflow task whose id is the
step's function name, whose doc in the UI is the step's docstring (read from its source, not imported, so parsing
a DAG stays cheap) and whose body is :func:`include.seam.task.run_step`: the step is imported when the task runs
and called with the task's step context and its inputs. A step that is not there fails the DAG's import, naming
it. The erasure workflow (:mod:`include.seam.erasure`) builds its tasks with it too.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path
from typing import Any


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
    (``"sender {plan[sender]}"``); ``kind``: another ``@task`` flavour (``"short_circuit"``); the rest goes
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
    node = _functions(Path(spec.origin).read_text(encoding="utf-8")).get(name)
    if node is None:
        raise ValueError(f"step {target}: {module} has no function {name}")
    return node


@functools.lru_cache(maxsize=64)
def _functions(source: str) -> dict[str, ast.FunctionDef]:
    """A module's top-level functions, parsed once per text of the module: a DAG's tasks mostly run steps of one
    module, and each task reads its step's inputs and doc (the module parsed anew for each made a DAG's parse
    twice as slow, and was a tenth of the quick test loop's CPU). Keyed by the text, an edited module is parsed
    anew."""
    return {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


def step_inputs(target: str) -> tuple[str, ...]:
    """The names of the step's arguments after ``step``: the task's inputs."""
    return tuple(a.arg for a in _step_def(target).args.args[1:])


def step_doc(target: str) -> str:
    """The docstring of the step ``module:function``, read from its source without importing it (parsing a DAG
    stays cheap); a step that is not there fails the DAG's import, naming it."""
    return ast.get_docstring(_step_def(target)) or ""
