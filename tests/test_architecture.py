"""The house rules of the code: which package may import which, and how much a function takes."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.dag_files import domains

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "include"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _product_modules() -> list[Path]:
    return sorted(p for p in PRODUCT.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_product_imports_nothing_from_the_dev_kit():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m == "devkit" or m.startswith("devkit."))
                 for p in _product_modules()}
    assert not {k: v for k, v in offenders.items() if v}


def test_every_product_module_imports_without_the_dev_kit():
    """As in the Airflow image, which is built without devkit/: every module of include/ still imports."""
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in _product_modules()]
    code = ("import importlib, sys\n"
            "sys.modules['devkit'] = None  # any import of the kit fails\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "from include.cli import build_parser\n"
            "build_parser()\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_airflow_is_imported_only_by_the_seam():
    """Domain modules are plain Python a unit test can call without a scheduler."""
    seam = PRODUCT / "seam"
    offenders = {}
    for path in _product_modules():
        if seam in path.parents:
            continue
        airflow = sorted(m for m in _imports(path) if m == "airflow" or m.startswith("airflow."))
        if airflow:
            offenders[str(path.relative_to(ROOT))] = airflow
    assert not offenders


# Each DAG's own package; they meet only through the shared modules (everything else in include/ but the two
# entry layers: the Airflow seam and the command line with the page it serves).
DOMAINS = domains()  # from the DAG files' STEPS: children, deadlines, fulfilment, vendors, campaign, discovery
ENTRY = ("seam", "cli", "page")


def _layer(module: str) -> str:
    part = module.split(".")[1] if module.startswith("include.") and module.count(".") >= 1 else ""
    if part in DOMAINS:
        return part
    return "entry" if part in ENTRY else "shared"


def _product_graph() -> dict[str, set[str]]:
    """module -> the product modules it imports (``from include.x import y`` is an edge to ``include.x.y`` when y
    is a module, else to ``include.x``)."""
    names = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in _product_modules()}
    graph = {}
    for name, path in names.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("include.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and (node.module == "include" or node.module.startswith("include.")):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in names else node.module)
        graph[name] = edges - {"include"}
    return graph


def test_no_domain_imports_another_and_shared_modules_import_no_domain():
    """A DAG's package imports only itself and the shared modules; the shared modules import no DAG's package and
    no entry layer (an upward import); only the seam, the command line and the page see every domain."""
    wrong = []
    for module, imported in _product_graph().items():
        mine = _layer(module)
        for other in imported:
            theirs = _layer(other)
            if mine == "entry" or theirs == mine or theirs == "shared":
                continue
            wrong.append(f"{module} -> {other}")
    assert not wrong, wrong


def test_the_product_has_no_import_cycle():
    graph = _product_graph()
    done, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # "from include.x import y" names a package whose module y is the real edge; both are in the graph
            if nxt in graph:
                visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert not cycles, cycles[:3]


MAX_PARAMETERS = 6  # more travel together in the step context (include/step.py) or an object of their own


def test_no_product_function_takes_more_than_six_parameters():
    """Counted as a caller sees them: positional, keyword-only and the * and ** catch-alls, not self or cls."""
    wide = []
    for path in _product_modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if p]
                if names[:1] in (["self"], ["cls"]):
                    names = names[1:]
                if len(names) > MAX_PARAMETERS:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({len(names)})")
    assert not wide, wide
