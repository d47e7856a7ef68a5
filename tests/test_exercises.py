"""One source, two versions: the generator, and the student notebooks' stubs."""

import ast
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from exercise_helpers import SOLUTION_DIR, one_thread_kernels  # noqa: F401 - an autouse fixture

ROOT = Path(__file__).resolve().parents[1]
STUDENT_DIR = ROOT / "exercises" / "student"


def _generator():
    import runpy

    return runpy.run_path(str(ROOT / "scripts" / "make_exercises.py"))


def test_committed_versions_match_the_sources():
    assert _generator()["main"](["--check"]) == 0


def test_generator_replaces_regions_keeping_indentation_and_hints():
    code_versions = _generator()["_code_versions"]
    source = "def f(x):\n    ### BEGIN SOLUTION\n    ### HINT: double it\n    return 2 * x\n    ### END SOLUTION\nprint(f(1))"
    student, solution = code_versions(source, "test")
    assert student == "def f(x):\n    raise NotImplementedError('double it')\nprint(f(1))"
    assert solution == "def f(x):\n    return 2 * x\nprint(f(1))"


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION"])
def test_generator_refuses_unbalanced_markers(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        _generator()["_code_versions"](source, "cell 3")


def test_every_exercise_has_both_versions_and_hides_solutions():
    students = sorted(p.name for p in STUDENT_DIR.glob("*.ipynb"))
    assert students == sorted(p.name for p in SOLUTION_DIR.glob("*.ipynb"))
    assert [name[:10] for name in students] == ["exercise_a", "exercise_b", "exercise_c", "exercise_d", "exercise_e", "exercise_f"]
    for path in STUDENT_DIR.glob("*.ipynb"):
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "*Answer:*" not in text


def _stub_hints(notebook):
    hints = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and getattr(node.exc.func, "id", "") == "NotImplementedError":
                    hints.add(ast.literal_eval(node.exc.args[0]))
    return hints


@pytest.mark.parametrize("path", sorted(STUDENT_DIR.glob("*.ipynb")), ids=lambda p: p.stem[:10])
def test_student_notebooks_raise_each_stub_and_nothing_else(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True, shutdown_kernel="immediate", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs if output.output_type == "error"]
    assert {error.ename for error in errors} == {"NotImplementedError"}, [f"{e.ename}: {e.evalue}" for e in errors]
    assert {error.evalue for error in errors} == _stub_hints(notebook)
