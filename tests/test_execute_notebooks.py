"""scripts/execute_notebooks.py: its command line (executing notebooks is tested by nbval on the committed outputs)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "execute_notebooks.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_help_describes_the_command_and_runs_nothing():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "notebooks to execute" in result.stdout


def test_a_missing_notebook_is_named_before_anything_runs(tmp_path):
    missing = tmp_path / "no_such_lesson.ipynb"
    result = run(str(missing))
    assert result.returncode == 2
    assert "no such notebook" in result.stderr and "no_such_lesson.ipynb" in result.stderr
    assert "Traceback" not in result.stderr
