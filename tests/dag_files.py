"""What each DAG file declares, read from its source (no import): the module of its steps and the class of its
trigger form (``STEPS, PARAMS = "include.<domain>.<module>", "include.<domain>.params:<Class>"``, the house
convention of docs/building-a-dag.md). The tests that must cover every DAG (its dry_run, its domain package) take
the list from here, so a new DAG is covered without a list kept by hand."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

DAGS = Path(__file__).resolve().parent.parent / "dags"


def declarations() -> dict[str, tuple[str, str]]:
    """{DAG file name: (STEPS, PARAMS)} for every file of dags/ (a file without the declaration is refused)."""
    found = {}
    for path in sorted(DAGS.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple)
                    and [getattr(t, "id", None) for t in node.targets[0].elts] == ["STEPS", "PARAMS"]):
                found[path.name] = tuple(ast.literal_eval(node.value))
                break
        else:
            raise AssertionError(f"dags/{path.name} does not declare STEPS, PARAMS (docs/building-a-dag.md)")
    return found


def params_classes() -> list[type]:
    """The trigger-form class of every DAG."""
    classes = []
    for _, params in declarations().values():
        module, _, name = params.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def domains() -> tuple[str, ...]:
    """Each DAG's own package of include/ (``include.<domain>``), from its steps."""
    return tuple(sorted({steps.split(".")[1] for steps, _ in declarations().values()}))
