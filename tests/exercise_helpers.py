"""Load the functions a solution notebook defines, without running the whole notebook."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
import torch

from utilities.grading.nbgrader_course import is_autograded

__all__ = ["SOLUTION_DIR", "one_thread", "one_thread_kernels", "solution_namespace"]

SOLUTION_DIR = Path(__file__).resolve().parents[1] / "exercises" / "solution"


def solution_namespace(stem_prefix: str) -> dict:
    """Run a solution notebook's setup cell and the cells that define its answers.

    That is the cells that define functions; in exercise c, whose answer ``new_top_class`` is read
    from the previous cell's output, every cell but the check.
    """
    path = next(SOLUTION_DIR.glob(f"{stem_prefix}*.ipynb"))
    cells = nbformat.read(path, as_version=4).cells
    # nbgrader's autograded cell runs the checks; the tests run them themselves
    code = [cell.source for cell in cells if cell.cell_type == "code" and not is_autograded(cell)]
    namespace: dict = {}
    exec(compile(code[0], str(path), "exec"), namespace)  # imports and the model
    run_all = path.name.startswith("exercise_c_")  # cheap: one forward pass per cell
    for source in code[1:]:
        if source.lstrip().startswith("def ") or (run_all and not source.lstrip().startswith("check_")):
            exec(compile(source, str(path), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run torch on one thread for a test module.

    On a busy machine torch's second thread spins waiting for a core; one thread was many times
    faster for these small inputs. Import this fixture into a test module to use it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def one_thread_kernels():
    """Start notebook kernels with one torch thread for a test module (see :func:`one_thread`)."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # kernels inherit the environment; torch reads it when it starts
    yield
    if before is None:
        del os.environ["OMP_NUM_THREADS"]
    else:
        os.environ["OMP_NUM_THREADS"] = before
