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
    assert "*Not attempted: every function still raises the template's NotImplementedError.*" in student
    assert "Traceback" not in student and len(student.splitlines()) < 40
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


def test_a_crashed_notebook_is_a_graded_outcome_exit_0_and_1_only_with_strict(tmp_path, capsys):
    write_notebook(tmp_path / "class" / "crashing" / "exercise_a_x.ipynb", "import os\nos._exit(3)")
    write_notebook(tmp_path / "class" / "fine" / "exercise_c_x.ipynb", "x = 1")
    (tmp_path / "class" / "empty").mkdir()
    assert main([str(tmp_path / "class"), "--out", str(tmp_path / "grades"), "--no-cache"]) == 0
    assert main([str(tmp_path / "class"), "--out", str(tmp_path / "grades"), "--no-cache", "--strict"]) == 1
    captured = capsys.readouterr()
    assert "Could not be run to the end (see the status columns): crashing/exercise_a_x.ipynb" in captured.err
    assert "crashing, exercise a: the notebook's kernel died while cell 1 (`import os`) was running" in captured.out
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


def test_the_default_number_of_jobs_follows_cores_and_memory(monkeypatch):
    import os

    from utilities.grading import cli

    gib = 1024**3
    pages = {"SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    pages["SC_PHYS_PAGES"] = 8 * gib // 4096
    assert cli.default_jobs() == 4  # 8 GB: four kernels of up to 2 GB, not sixteen
    pages["SC_PHYS_PAGES"] = 64 * gib // 4096
    assert cli.default_jobs() == 16
    pages["SC_PHYS_PAGES"] = gib // 4096
    assert cli.default_jobs() == 1


def test_the_teacher_is_told_which_notebooks_count(tmp_path):
    import os
    import time

    from utilities.grading.cli import submission_notebooks

    notes: list[str] = []
    older = write_notebook(tmp_path / "zoe" / "exercise_a_cams.ipynb", "x = 1")
    newer = write_notebook(tmp_path / "zoe" / "exercise_a_cams (1).ipynb", "x = 2")
    os.utime(older, (time.time() - 3600, time.time() - 3600))
    write_notebook(tmp_path / "zoe" / "Exercise_C_pre.ipynb", "x = 3")  # any case
    assert submission_notebooks(tmp_path / "zoe", notes.append) == {"a": newer, "c": tmp_path / "zoe" / "Exercise_C_pre.ipynb"}
    assert notes == ["zoe: 2 notebooks for exercise a; graded the newest, exercise_a_cams (1).ipynb (not exercise_a_cams.ipynb)"]
    nested = write_notebook(tmp_path / "dave" / "dave_submission" / "exercise_b_x.ipynb", "x = 1")
    assert submission_notebooks(tmp_path / "dave", notes.append) == {"b": nested}
    assert notes[-1] == "dave: graded the notebooks in its sub-folder dave_submission"


def test_stray_notebooks_and_the_grades_folder_are_not_students(tmp_path):
    notes: list[str] = []
    write_notebook(tmp_path / "class" / "exercise_a_template.ipynb", "x = 1")
    write_notebook(tmp_path / "class" / "alice" / "exercise_a_x.ipynb", "x = 1")
    write_notebook(tmp_path / "class" / "bob" / "exercise_b_x.ipynb", "x = 1")
    write_notebook(tmp_path / "class" / "grades" / "exercise_b_x.ipynb", "x = 1")
    found = find_submissions([tmp_path / "class"], exclude=tmp_path / "class" / "grades", warn=notes.append)
    assert [p.name for p in found] == ["alice", "bob"]
    assert notes == [f"{tmp_path / 'class'}: ignored exercise_a_template.ipynb next to the student folders (move them into a student's folder)"]
    write_notebook(tmp_path / "single" / "exercise_a_x.ipynb", "x = 1")
    (tmp_path / "single" / "images").mkdir()  # data next to the notebooks: still one submission
    assert find_submissions([tmp_path / "single"]) == [tmp_path / "single"]


def test_references_shared_from_the_solution_give_the_same_grades_and_messages(tmp_path):
    """Three solutions and a wrong answer of exercise c, graded with the references computed in each kernel and
    with those of the solution's kernel shared: the same points and the same messages; the store is not empty."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack

    from utilities.checks.reference_store import MANIFEST_ENV
    from utilities.grading.cli import _shared_references, grade_class

    solution = next((ROOT / "exercises" / "solution").glob("exercise_c_*.ipynb"))
    folders = []
    for name in ("first", "second", "third", "wrong"):
        (tmp_path / name).mkdir()
        notebook = nbformat.read(solution, as_version=4)
        if name == "wrong":
            notebook.cells.append(nbformat.v4.new_code_cell("def changed_preprocess(image):\n    return model.preprocess(image)"))
        nbformat.write(notebook, tmp_path / name / solution.name)
        folders.append(tmp_path / name)
    each = grade_class(folders, jobs=2, progress=False, share_references=False)
    shared = grade_class(folders, jobs=2, progress=False, share_references=True)
    results = [[(s.results["c"].points, s.results["c"].problems) for s in graded] for graded in (each, shared)]
    assert results[0] == results[1]
    assert [points for points, _ in results[0]] == [GRADED_TOTALS["c"]] * 3 + [results[0][3][0]] and results[0][3][0] < GRADED_TOTALS["c"]
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        environment = _shared_references(stack, pool, {"c"}, {}, 300, factory=None, memory_limit=None, threads=1)
        assert json.loads(environment[MANIFEST_ENV])  # the solution's checks left references to share
