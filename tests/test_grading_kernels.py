"""Grading kernels: fresh processes forked from a factory, memory-limited, never left running."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_notebook
from utilities.grading.kernels import KernelFactory, can_fork_kernels
from utilities.grading.runner import Status, grade_notebook

pytestmark = pytest.mark.skipif(not can_fork_kernels(), reason="kernels are forked only on Linux")


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether the process has ended (a killed process may take a moment to disappear)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_each_notebook_gets_a_fresh_kernel_in_its_own_folder(tmp_path, kernel_factory):
    first = write_notebook(tmp_path / "one" / "exercise_a_x.ipynb", "import os\nleftover = 1\nprint(os.getpid(), os.getcwd())")
    second = write_notebook(
        tmp_path / "two" / "exercise_a_x.ipynb", "import os\nprint(os.getpid(), os.getcwd(), 'leftover' in globals())"
    )
    one = grade_notebook(first, "a", factory=kernel_factory)
    two = grade_notebook(second, "a", factory=kernel_factory)
    pid_one, cwd_one = one.output.split()
    pid_two, cwd_two, leftover = two.output.split()
    assert pid_one != pid_two and leftover == "False"  # a new process, with none of the other notebook's globals
    assert cwd_one != cwd_two and Path(cwd_one).name == "submission"  # each in a temporary copy of its folder
    assert not Path(cwd_one).exists() and _gone(int(pid_one)) and _gone(int(pid_two))


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "new process"])
def test_the_kernel_runs_under_the_memory_limit(tmp_path, kernel_factory, forked):
    path = write_notebook(tmp_path / "exercise_a_x.ipynb", "import resource\nprint(resource.getrlimit(resource.RLIMIT_DATA)[0])")
    limit = 3 * 1024**3 + 12345
    result = grade_notebook(path, "a", factory=kernel_factory if forked else None, memory_limit=limit)
    assert result.output.strip() == str(limit)
    unlimited = grade_notebook(path, "a", factory=kernel_factory if forked else None, memory_limit=None)
    assert unlimited.output.strip() == str(resource.getrlimit(resource.RLIMIT_DATA)[0])


def test_the_kernel_and_what_it_started_are_killed_after_grading(tmp_path, kernel_factory):
    path = write_notebook(
        tmp_path / "exercise_a_x.ipynb",
        "import os, subprocess\nchild = subprocess.Popen(['sleep', '600'])\nprint(os.getpid(), child.pid)",
    )
    result = grade_notebook(path, "a", factory=kernel_factory)
    kernel, child = (int(pid) for pid in result.output.split())
    assert result.status == Status.GRADED
    assert _gone(kernel) and _gone(child)


def test_the_factory_kills_its_kernels_when_it_stops(tmp_path):
    with KernelFactory({**os.environ, "OMP_NUM_THREADS": "1"}) as factory:
        kernel = factory.start(["-f", str(tmp_path / "kernel.json")], str(tmp_path), dict(os.environ), None)
        assert kernel.poll() is None  # running: it would wait for a client forever
    assert _gone(kernel.pid) and kernel.poll() is not None


def test_an_accounts_lower_hard_limit_is_kept():
    import subprocess
    import sys

    code = (
        "import resource\n"
        "from utilities.grading.kernels import _limit_memory\n"
        "resource.setrlimit(resource.RLIMIT_DATA, (3 * 1024**3, 3 * 1024**3))\n"
        "_limit_memory(4 * 1024**3)\n"
        "print(resource.getrlimit(resource.RLIMIT_DATA))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert shown == f"({3 * 1024**3}, {3 * 1024**3})"


def test_the_factory_imports_what_the_first_backward_pass_would_import(tmp_path):
    # A kernel forked after these imports must not pay for them again: grad_cam's backward pass (a gradient given
    # for the score) imports SymPy through torch.fx the first time, 0.3-0.5 s of each graded notebook.
    script = (
        "import importlib, sys, torch\n"
        "from utilities.grading.kernels import PRELOADED_MODULES\n"
        "for name in PRELOADED_MODULES: importlib.import_module(name)\n"
        "before = set(sys.modules)\n"
        "x = torch.ones(3, requires_grad=True)\n"
        "torch.autograd.grad((x * 2).sum(), x, grad_outputs=torch.ones(()))\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]", done.stdout
