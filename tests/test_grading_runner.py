"""One notebook graded: its checks, its errors named, and bad notebooks that cannot hurt the grader."""

from __future__ import annotations

from pathlib import Path

import nbformat

from conftest import write_notebook
from utilities.grading.reports import Submission, feedback_markdown, gradebook_rows, notes
from utilities.grading.runner import GRADED_TOTALS, OUTPUT_LIMIT, RUNS_WITHOUT_ERRORS, Status, grade_notebook


def test_a_cell_that_raises_costs_a_point_and_is_named_with_its_traceback(tmp_path, kernel_factory):
    path = write_notebook(tmp_path / "exercise_c_pre.ipynb", "x = 1", "batch = [1, 2, 3]\nbatch[5]", "y = 2")
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("# Exercise c"))  # cell numbers and In [n] now differ
    nbformat.write(notebook, path)
    result = grade_notebook(path, "c", factory=kernel_factory)
    assert result.status == Status.GRADED and result.total == GRADED_TOTALS["c"] and result.passed == []
    assert "does not define model, changed_preprocess, new_top_class" in result.problems[0]
    # the cell as the notebook shows it (third), and the number the traceback gives it (In [2])
    assert result.problems[-1] == "cell 3 (`batch = [1, 2, 3]`, In [2] in the traceback) raised IndexError: list index out of range"
    (cell,) = result.failing_cells
    assert cell["cell"] == 3 and "----> 2 batch[5]" in cell["traceback"] and "\x1b[" not in cell["traceback"]
    assert "Cell In[2]" in cell["traceback"]


def test_an_empty_notebook_earns_no_point_for_running_without_errors(tmp_path, kernel_factory):
    result = grade_notebook(write_notebook(tmp_path / "exercise_a_x.ipynb", "x = 1"), "a", factory=kernel_factory)
    assert result.status == Status.GRADED and RUNS_WITHOUT_ERRORS not in result.passed
    assert result.problems[-1] == "no point for running without errors: the notebook does not do the exercise"


def test_nbgraders_autograded_cell_is_left_to_the_graders_own_cell(tmp_path, kernel_factory):
    path = write_notebook(tmp_path / "exercise_a_x.ipynb", "x = 1", "raise RuntimeError('nbgrader cell')")
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[1].metadata["nbgrader"] = {"grade": True, "solution": False, "points": 6, "grade_id": "a_checks"}
    nbformat.write(notebook, path)
    result = grade_notebook(path, "a", factory=kernel_factory)
    assert result.failing_cells == []  # it would run the same checks again; the grader's cell runs them once


def test_the_handed_out_check_cell_is_left_to_the_graders_own_cell_and_a_changed_one_runs(tmp_path, kernel_factory):
    # The grader's cell runs the same checks: running the handed-out cell too would run them twice.
    define = "model = cams_for_classes = dominant_class = None\ndef check_a(*args):\n    print('check cell ran')"
    path = write_notebook(tmp_path / "exercise_a_x.ipynb", define, "check_a(model, cams_for_classes, dominant_class)\n")
    assert "check cell ran" not in grade_notebook(path, "a", factory=kernel_factory).output
    changed = write_notebook(tmp_path / "exercise_a_y.ipynb", define, "check_a(model, cams_for_classes, dominant_class)\nprint('mine')")
    assert grade_notebook(changed, "a", factory=kernel_factory).output == "check cell ran\nmine\n"
    other = write_notebook(tmp_path / "exercise_a_z.ipynb", define, "check_a(model, cams_for_classes, dominant_class)")
    assert grade_notebook(other, "b", factory=kernel_factory).output == "check cell ran\n"  # not b's check cell


def test_a_notebook_that_sleeps_forever_is_stopped_at_the_time_limit(tmp_path, kernel_factory):
    path = write_notebook(tmp_path / "exercise_b_x.ipynb", "import time\nwhile True:\n    time.sleep(1)")  # hangs however fast the machine
    result = grade_notebook(path, "b", timeout=3, factory=kernel_factory)
    assert result.status == Status.TIMED_OUT and result.passed == [] and result.problems == ["cell 1 (`import time`) ran longer than 3 s"]


def test_a_notebook_that_kills_its_kernel_scores_zero_with_the_reason(tmp_path, kernel_factory):
    path = write_notebook(tmp_path / "exercise_a_x.ipynb", "print('before')", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    result = grade_notebook(path, "a", factory=kernel_factory)
    assert result.status == Status.KERNEL_DIED and result.passed == []
    assert "kernel died while cell 2 (`import os, signal`) was running" in result.problems[0]
    assert result.output == "before\n"


def test_allocating_without_end_stops_at_the_memory_limit_and_the_notebook_goes_on(tmp_path, kernel_factory):
    path = write_notebook(
        tmp_path / "exercise_a_x.ipynb",
        "blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))",
        "import torch\nwhile True:\n    blocks.append(torch.ones(12_500_000))",
        "blocks.clear()\nprint('still running')",
    )
    result = grade_notebook(path, "a", factory=kernel_factory, memory_limit=1536 * 1024**2)
    assert result.status == Status.GRADED and result.memory_error
    assert [cell["cell"] for cell in result.failing_cells] == [1, 2]
    assert result.failing_cells[0]["error"].startswith("MemoryError")
    assert "can't allocate memory" in result.failing_cells[1]["error"]
    assert result.output == "still running\n"
    assert "a cell ran out of the memory limit" in feedback_markdown(Submission("s", {"a": result}))


def test_a_flood_of_output_is_counted_but_only_its_start_is_kept(tmp_path, kernel_factory):
    path = write_notebook(tmp_path / "exercise_a_x.ipynb", "import sys\nfor _ in range(20):\n    sys.stdout.write('x' * 1_000_000)")
    result = grade_notebook(path, "a", factory=kernel_factory)
    assert result.status == Status.GRADED and result.output_size == 20_000_000
    assert len(result.output) == OUTPUT_LIMIT and result.output_truncated
    assert "printed 20.0 MB of output; the feedback keeps the first 20 kB" in feedback_markdown(Submission("s", {"a": result}))


def test_files_written_or_deleted_by_a_notebook_leave_the_submission_untouched(tmp_path, kernel_factory):
    folder = tmp_path / "student"
    path = write_notebook(
        folder / "exercise_a_x.ipynb",
        "import os, shutil\nprint(open('data.txt').read())\nos.remove('data.txt')\nshutil.rmtree('images')\n"
        "open('new.txt', 'w').write('x')\n_ = open('exercise_a_x.ipynb', 'w').write('overwritten')",
    )
    (folder / "data.txt").write_text("the student's data")
    (folder / "images").mkdir()
    (folder / "images" / "cat.png").write_bytes(b"png")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = grade_notebook(path, "a", factory=kernel_factory)
    assert result.failing_cells == [] and result.output == "the student's data\n"  # it ran, on a copy
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_an_unreadable_notebook_scores_zero_without_a_kernel(tmp_path):
    path = tmp_path / "exercise_d_x.ipynb"
    path.write_text("{ not a notebook")
    result = grade_notebook(Path(path), "d")
    assert result.status == Status.UNREADABLE and "cannot read the notebook" in result.problems[0]


def test_a_notebook_that_replaces_sys_stdout_is_still_graded(tmp_path, kernel_factory):
    path = write_notebook(tmp_path / "exercise_a_x.ipynb", "import sys\nsys.stdout = open('log.txt', 'w')\nprint('to the log')")
    result = grade_notebook(path, "a", factory=kernel_factory)
    assert result.status == Status.GRADED and "does not define model, cams_for_classes" in result.problems[0]


def test_a_folder_with_dangling_or_looping_links_is_copied_with_them(tmp_path, kernel_factory):
    folder = tmp_path / "student"
    path = write_notebook(folder / "exercise_a_x.ipynb", "import os\nprint(sorted(os.listdir('.venv')))")
    (folder / ".venv").mkdir()
    (folder / ".venv" / "python3").symlink_to("/nonexistent/python3")
    (folder / ".venv" / "loop").symlink_to("..")
    result = grade_notebook(path, "a", factory=kernel_factory)
    assert result.status == Status.GRADED and result.output == "['loop', 'python3']\n"


def test_a_traceback_keeps_the_students_frames_and_leaves_out_the_librarys(tmp_path, kernel_factory):
    path = write_notebook(
        tmp_path / "exercise_a_x.ipynb",
        "import numpy as np\nfrom utilities import load_image\ndef mine(image):\n    return load_image(image.transpose(2, 0, 1))",
        "mine(np.zeros((64, 64, 3), dtype=np.uint8))",
    )
    traceback = grade_notebook(path, "a", factory=kernel_factory).failing_cells[0]["traceback"]
    assert "mine(np.zeros" in traceback and "return load_image(image.transpose" in traceback  # the student's cells
    assert "utilities" not in traceback.replace("from utilities import", "") and "site-packages" not in traceback
    assert "frame(s) inside the course's library or torch left out" in traceback
    assert traceback.rstrip().splitlines()[-1].startswith("ImageLoadError: ")


def test_an_untouched_notebook_is_not_attempted_in_one_line(tmp_path, kernel_factory):
    student = Path(__file__).resolve().parents[1] / "exercises" / "student" / "exercise_a_cams_for_classes.ipynb"
    (tmp_path / student.name).write_bytes(student.read_bytes())
    result = grade_notebook(tmp_path / student.name, "a", factory=kernel_factory)
    assert result.status == Status.NOT_ATTEMPTED and result.points == 0 and result.failing_cells == []
    assert result.problems == ["not attempted: every function still raises the template's NotImplementedError"]
    assert result.written_answers == [""]


def test_a_not_attempted_notebook_that_printed_reports_no_cut_output(tmp_path, kernel_factory):
    # An untouched template prints (a model loads, a summary shows) before its functions raise NotImplementedError:
    # the result drops that output, so it must not say that output was cut ("printed 0 kB ... keeps the first 0 kB").
    path = write_notebook(
        tmp_path / "exercise_c_pre.ipynb",
        "print('loading the model ...')",
        "def changed_preprocess(image):\n    raise NotImplementedError\nchanged_preprocess(None)",
    )
    result = grade_notebook(path, "c", factory=kernel_factory)
    assert result.status == Status.NOT_ATTEMPTED and result.output == ""
    assert not result.output_truncated and result.output_size == 0
    assert notes(result) == []
    (row,) = gradebook_rows([Submission("x", {"c": result})])[1]
    assert row["c status"] == Status.NOT_ATTEMPTED
