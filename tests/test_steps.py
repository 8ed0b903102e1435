"""A step's task takes its inputs and its doc from the step's source, without importing it
(include/seam/steps.py); the source is parsed once per text, so an edited module is read anew."""
from __future__ import annotations

import importlib
import textwrap

import pytest

from include.seam import steps


@pytest.fixture
def step_module(tmp_path, monkeypatch):
    """A module of steps of this test's own, importable by name, and a way to rewrite it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "some_steps_of_this_test.py"

    def write(body: str) -> str:
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        importlib.invalidate_caches()
        return "some_steps_of_this_test"

    return write


def test_a_steps_inputs_and_doc_come_from_its_source_and_the_module_is_not_imported(step_module):
    module = step_module('''
        raise RuntimeError("imported")

        def plan(step, item, other):
            """Plan the work."""
    ''')
    assert steps.step_inputs(f"{module}:plan") == ("item", "other")
    assert steps.step_doc(f"{module}:plan") == "Plan the work."


def test_an_edited_step_module_is_read_anew(step_module):
    module = step_module('''
        def plan(step):
            """First."""
    ''')
    assert steps.step_doc(f"{module}:plan") == "First."
    assert steps.step_inputs(f"{module}:plan") == ()
    step_module('''
        def plan(step, item):
            """Second."""

        def settle(step):
            """Settle."""
    ''')
    assert steps.step_doc(f"{module}:plan") == "Second."
    assert steps.step_inputs(f"{module}:plan") == ("item",)
    assert steps.step_doc(f"{module}:settle") == "Settle."


def test_a_step_that_is_not_there_is_named(step_module):
    module = step_module('''
        def plan(step):
            pass
    ''')
    with pytest.raises(ValueError, match=f"step {module}:settle: {module} has no function settle"):
        steps.step_doc(f"{module}:settle")
    with pytest.raises(ValueError, match="step no_such_module_here:plan: no module no_such_module_here"):
        steps.step_inputs("no_such_module_here:plan")
