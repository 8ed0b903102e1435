"""The house rules of the code: which package may import which."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
