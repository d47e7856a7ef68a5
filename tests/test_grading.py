"""The grading command: full marks for the solutions, zero for untouched student notebooks, robust to bad submissions."""

from pathlib import Path

import nbformat

from exercise_helpers import one_thread_kernels  # noqa: F401 - an autouse fixture
from utilities.grading import GRADED_TOTALS, find_submissions, grade_notebook, grade_submission, main, score_table

ROOT = Path(__file__).resolve().parents[1]


def test_solutions_get_full_marks_and_untouched_student_notebooks_zero(capsys):
    assert main([str(ROOT / "exercises" / "solution"), str(ROOT / "exercises" / "student")]) == 0
    table = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| s")}
    columns = slice(2, 2 + len(GRADED_TOTALS))  # one column per exercise, after the name
    full = [f"{total}/{total}".rjust(5) for total in GRADED_TOTALS.values()]
    zero = [f"0/{total}".rjust(5) for total in GRADED_TOTALS.values()]
    assert [cell.strip() for cell in rows["solution"].split("|")[columns]] == [cell.strip() for cell in full], table
    assert rows["solution"].rstrip().endswith("100% |")
    assert [cell.strip() for cell in rows["student"].split("|")[columns]] == [cell.strip() for cell in zero], table
    assert rows["student"].rstrip().endswith("0% |")
    assert "student, exercise a: cams_for_classes is not implemented yet" in table
    assert "student, exercise e: class_activation_maps is not implemented yet" in table
    assert "student, exercise a: cell 3 (`def cams_for_classes(model, image, class_names):`)" not in table  # a def runs fine
    assert "student, exercise a: cell 4 (`cams = cams_for_classes(model, image, CLASSES)`) raised NotImplementedError" in table


def _write(path: Path, *sources: str) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_a_cell_that_raises_costs_a_point_and_is_named(tmp_path):
    path = tmp_path / "exercise_c_pre.ipynb"
    _write(path, "x = 1", "batch = [1, 2, 3]\nbatch[5]", "y = 2")
    result = grade_notebook(path, "c")
    assert result.total == GRADED_TOTALS["c"] and result.passed == []
    assert "does not define model, changed_preprocess, new_top_class" in result.problems[0]
    assert result.problems[-1] == "cell 2 (`batch = [1, 2, 3]`) raised IndexError: list index out of range"


def test_crashing_and_broken_notebooks_score_zero_without_stopping_the_others(tmp_path):
    bad = tmp_path / "class" / "bad student"
    bad.mkdir(parents=True)
    _write(bad / "exercise_a_cams.ipynb", "import os\nos._exit(3)")
    _write(bad / "exercise_c_pre.ipynb", "this is not python")
    (bad / "exercise_d_layers.ipynb").write_text("{ not a notebook")
    (tmp_path / "class" / "empty student").mkdir()
    # The default time limit: generous, so a busy machine cannot turn a slow cell into a timeout.
    submissions = [grade_submission(folder) for folder in find_submissions([tmp_path / "class"])]
    assert [s.name for s in submissions] == ["bad student", "empty student"]
    results = submissions[0].results
    assert "kernel died" in results["a"].problems[0]
    assert "no notebook submitted" in results["b"].problems[0]
    assert "does not define model, changed_preprocess, new_top_class" in results["c"].problems[0]
    assert "cell 1 (`this is not python`) raised NameError" in results["c"].problems[-1]
    assert "cannot read the notebook" in results["d"].problems[0]
    assert all(r.passed == [] for s in submissions for r in s.results.values())
    assert "no notebook submitted" in submissions[1].results["a"].problems[0]
    table = score_table(submissions)
    assert f"| bad student   |   0/{GRADED_TOTALS['a']} |" in table and "0% |" in table


def test_a_hanging_cell_is_stopped_at_the_time_limit(tmp_path):
    path = tmp_path / "exercise_b_folder.ipynb"
    _write(path, "import time\nwhile True:\n    time.sleep(1)")  # hangs for real, however fast the machine
    result = grade_notebook(path, "b", timeout=5)
    assert result.passed == [] and result.problems == ["a cell ran longer than 5 s"]
