"""The grading command: full marks for the solutions, zero for untouched student notebooks, robust to bad submissions."""

from pathlib import Path

import nbformat

from utilities.grading import find_submissions, grade_submission, main, score_table

ROOT = Path(__file__).resolve().parents[1]


def test_solutions_get_full_marks_and_untouched_student_notebooks_zero(capsys):
    assert main([str(ROOT / "exercises" / "solution"), str(ROOT / "exercises" / "student")]) == 0
    table = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| s")}
    assert rows["solution"].split("|")[2:6] == ["   6/6 ", "   6/6 ", "   5/5 ", "   4/4 "]
    assert rows["solution"].rstrip().endswith("100% |")
    assert rows["student"].split("|")[2:6] == ["   0/6 ", "   0/6 ", "   0/5 ", "   0/4 "]
    assert rows["student"].rstrip().endswith("0% |")
    assert "student, exercise a: cams_for_classes is not implemented yet" in table


def _write(path: Path, source: str) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_crashing_and_hanging_notebooks_score_zero_without_stopping_the_others(tmp_path):
    bad = tmp_path / "class" / "bad student"
    bad.mkdir(parents=True)
    _write(bad / "exercise_a_cams.ipynb", "import os\nos._exit(3)")
    _write(bad / "exercise_b_folder.ipynb", "import time\ntime.sleep(60)")
    _write(bad / "exercise_c_pre.ipynb", "this is not python")
    (bad / "exercise_d_layers.ipynb").write_text("{ not a notebook")
    (tmp_path / "class" / "empty student").mkdir()
    submissions = [grade_submission(folder, timeout=5) for folder in find_submissions([tmp_path / "class"])]
    assert [s.name for s in submissions] == ["bad student", "empty student"]
    results = submissions[0].results
    assert "kernel died" in results["a"].problems[0]
    assert "longer than 5 s" in results["b"].problems[0]
    assert "does not define model, changed_preprocess, new_top_class" in results["c"].problems[0]
    assert "cannot read the notebook" in results["d"].problems[0]
    assert all(r.passed == [] for s in submissions for r in s.results.values())
    assert "no notebook submitted" in submissions[1].results["a"].problems[0]
    table = score_table(submissions)
    assert "| bad student   |   0/6 |" in table and "0% |" in table
