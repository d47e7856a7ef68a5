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


def test_committed_seconds_read_the_committed_runs_cell_timestamps(tmp_path):
    """--jobs N starts the longest notebooks first, by how long their committed run took."""
    import nbformat

    sys.path.insert(0, str(SCRIPT.parent))
    from execute_notebooks import committed_seconds

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("2")])
    notebook.cells[1].metadata["execution"] = {"iopub.execute_input": "2026-12-05T06:00:00.500000Z", "shell.execute_reply": "2026-12-05T06:00:02Z"}
    notebook.cells[2].metadata["execution"] = {"iopub.execute_input": "2026-12-05T06:00:02Z", "shell.execute_reply": "2026-12-05T06:00:12.250000Z"}
    timed = tmp_path / "timed.ipynb"
    nbformat.write(notebook, timed)
    assert committed_seconds(timed) == 11.75  # from the first cell's start to the last cell's reply

    never_run = tmp_path / "never_run.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), never_run)
    assert committed_seconds(never_run) == 0.0
