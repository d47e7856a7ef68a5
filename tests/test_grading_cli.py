"""The grading command on a class: full marks for the solutions, zero for untouched notebooks, files to hand back,
grading again only what changed, and exit codes that say whether anything could not be graded."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import write_notebook
from exercise_helpers import one_thread_kernels  # noqa: F401 - an autouse fixture
from utilities.grading.cli import find_submissions, main
from utilities.grading.runner import GRADED_TOTALS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The solution and student folders graded as a class of two, two notebooks at a time."""
    root = tmp_path_factory.mktemp("class")
    for name in ("solution", "student"):
        shutil.copytree(ROOT / "exercises" / name, root / "class" / name)
    out = root / "grades"
    code = main([str(root / "class"), "--jobs", "2", "--out", str(out)])
    return root, out, code


def test_solutions_get_full_marks_and_untouched_student_notebooks_zero(graded, capsys):
    _, out, code = graded
    assert code == 0
    with (out / "gradebook.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = {row["student"]: row for row in csv.DictReader(file)}
    total = sum(GRADED_TOTALS.values())
    assert rows["solution"]["points"] == str(total) and rows["solution"]["percent"] == "100.0"
    assert rows["student"]["points"] == "0"
    assert all(rows["solution"][f"{letter} status"] == "graded" for letter in GRADED_TOTALS)
    student = (out / "feedback" / "student.md").read_text()
    assert "cams_for_classes is not implemented yet" in student
    assert "cell 4 (`cams = cams_for_classes(model, image, CLASSES)`) raised NotImplementedError" in student
    assert "**36 of 36 points (100%).**".replace("36", str(total)) in (out / "feedback" / "solution.md").read_text()
    report = json.loads((out / "results.json").read_text())
    assert [s["student"] for s in report["submissions"]] == ["solution", "student"] and report["could_not_grade"] == []


def test_grading_again_runs_only_new_or_changed_notebooks(graded, capsys):
    root, out, _ = graded
    path = next((root / "class" / "student").glob("exercise_c_*.ipynb"))
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_markdown_cell("A late change."))
    nbformat.write(notebook, path)
    shutil.copytree(root / "class" / "solution", root / "class" / "late student")
    capsys.readouterr()
    assert main([str(root / "class"), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    fresh = {(s["student"], letter) for s in report["submissions"] for letter, r in s["exercises"].items() if not r["cached"]}
    assert fresh == {("student", "c")}  # the late student's notebooks are byte for byte the solutions: kept results
    assert [s["points"] for s in report["submissions"]] == [sum(GRADED_TOTALS.values()), sum(GRADED_TOTALS.values()), 0]


def test_a_notebook_that_could_not_be_run_to_the_end_makes_the_exit_code_1(tmp_path, capsys):
    write_notebook(tmp_path / "class" / "crashing" / "exercise_a_x.ipynb", "import os\nos._exit(3)")
    write_notebook(tmp_path / "class" / "fine" / "exercise_c_x.ipynb", "x = 1")
    (tmp_path / "class" / "empty").mkdir()
    assert main([str(tmp_path / "class"), "--out", str(tmp_path / "grades"), "--no-cache"]) == 1
    captured = capsys.readouterr()
    assert "Could not be run to the end (see the status columns): crashing/exercise_a_x.ipynb" in captured.err
    assert "crashing, exercise a: the notebook's kernel died" in captured.out
    assert "empty, exercise a: no notebook submitted" in captured.out
    assert not (tmp_path / "grades" / ".cache").exists()


def test_usage_errors_exit_with_2(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "grades")]) == 2
    assert "No submissions found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "missing")])
    assert stop.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_a_folder_of_submissions_and_single_submissions_are_both_found(tmp_path):
    write_notebook(tmp_path / "class" / "b" / "exercise_a_x.ipynb", "x = 1")
    write_notebook(tmp_path / "class" / "a" / "exercise_b_x.ipynb", "x = 1")
    (tmp_path / "class" / ".hidden").mkdir()
    write_notebook(tmp_path / "single" / "exercise_e_x.ipynb", "x = 1")
    found = find_submissions([tmp_path / "class", tmp_path / "single"])
    assert [p.name for p in found] == ["a", "b", "single"]
