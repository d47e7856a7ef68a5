"""The gradebook CSV, the feedback files and the table say what each student earned and why."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from utilities.checks import CHECK_COUNTS, EXERCISES
from utilities.grading.reports import CHECK_NAMES, Submission, feedback_markdown, score_table, write_feedback, write_gradebook
from utilities.grading.runner import RUNS_WITHOUT_ERRORS, NotebookResult, Status

CHECKS = Path(__file__).resolve().parents[1] / "utilities" / "checks"


def test_check_names_list_every_check_each_exercise_can_pass():
    for letter in EXERCISES:
        names = CHECK_NAMES[letter]
        assert len(names) == CHECK_COUNTS[letter] + 1 and names[-1] == RUNS_WITHOUT_ERRORS and len(set(names)) == len(names)
        source = (CHECKS / f"exercise_{letter}.py").read_text()
        required = re.findall(r'require\(\s*"([^"]+)"', source) + re.findall(r'skip\(\s*\[([^\]]+)\]', source)
        named = {name for found in required for name in re.findall(r'"([^"]+)"', found) or [found]}
        assert named <= set(names), f"exercise {letter}: checks not in CHECK_NAMES: {named - set(names)}"


def _class() -> list[Submission]:
    full = {
        letter: NotebookResult(letter, f"exercise_{letter}.ipynb", Status.GRADED, passed=list(CHECK_NAMES[letter]))
        for letter in EXERCISES
    }
    partial = dict(full)
    partial["a"] = NotebookResult(
        "a", "exercise_a.ipynb", Status.GRADED, passed=["shape", "no NaN"],
        problems=["dominant_class looked at the wrong half", "dominant_class looked at the wrong half", "cell 3 (`x`) raised ValueError: bad"],
        failing_cells=[{"cell": 3, "first_line": "x", "run_as": 2, "error": "ValueError: bad", "traceback": "``` a fence ```\nValueError: bad"}],
        output="y" * 100, output_size=5_000_000,
    )
    partial["b"] = NotebookResult("b", "exercise_b.ipynb", Status.TIMED_OUT, problems=["a cell ran longer than 300 s"])
    partial["e"] = NotebookResult("e", "", Status.NOT_SUBMITTED, problems=["no notebook submitted"])
    return [Submission("Ada Lovelace", full), Submission("ada/lovelace", partial)]


def test_the_gradebook_has_a_row_per_student_and_a_column_per_check(tmp_path):
    path = write_gradebook(_class(), tmp_path / "gradebook.csv")
    with path.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    columns = list(rows[0])
    assert columns[0] == "student" and columns[-3:] == ["points", "max points", "percent"]
    assert columns[1 : len(CHECK_NAMES["a"]) + 3] == [f"a: {name}" for name in CHECK_NAMES["a"]] + ["a points", "a status"]
    maximum = sum(CHECK_COUNTS.values()) + len(EXERCISES)
    assert rows[0]["student"] == "Ada Lovelace" and rows[0]["points"] == rows[0]["max points"] == str(maximum) and rows[0]["percent"] == "100.0"
    second = rows[1]
    assert second["a: shape"] == "1" and second["a: normalised"] == "0" and second["a points"] == "2"
    assert second["a status"] == "graded; printed 5.0 MB of output; the feedback keeps the first 0 kB"
    assert second["b status"] == "timed out" and second["b points"] == "0" and second["e status"] == "not submitted"
    assert int(second["points"]) == maximum - (len(CHECK_NAMES["a"]) - 2) - len(CHECK_NAMES["b"]) - len(CHECK_NAMES["e"])


def test_feedback_gives_each_message_each_failing_cell_and_the_kept_output():
    text = feedback_markdown(_class()[1])
    assert text.startswith("# Feedback: ada/lovelace")
    assert "## Exercise a: 2/7 points (`exercise_a.ipynb`)" in text
    # every check is named, passed or not; the reasons follow, each once
    assert "- passed: shape" in text and "- **not yet**: normalised" in text and "- **not yet**: Grad-CAM at layer4" in text
    assert text.count("- dominant_class looked at the wrong half") == 1 and "Why not yet:" in text
    assert "Cell 3 (`x`, In [2] in the traceback) raised `ValueError: bad`:" in text
    assert "````\n``` a fence ```\nValueError: bad\n````" in text  # a longer fence than the traceback's own
    assert "What the notebook printed (the first 0 kB of 5.0 MB):" in text
    assert "*Timed out.*" in text and "a cell ran longer than 300 s" in text
    assert "weighs more" in text and "b 8" in text  # how the total is made


def test_an_untouched_notebook_is_one_line_and_written_answers_reach_student_and_teacher(tmp_path):
    results = {letter: NotebookResult(letter, "", Status.NOT_SUBMITTED, problems=["no notebook submitted"]) for letter in EXERCISES}
    results["a"] = NotebookResult("a", "exercise_a.ipynb", Status.NOT_ATTEMPTED, problems=["not attempted: ..."])
    results["b"] = NotebookResult("b", "exercise_b.ipynb", Status.GRADED, written_answers=["Because the maps\nare normalised.", ""])
    text = feedback_markdown(Submission("grace", results))
    section_a = text.split("## Exercise a")[1].split("## Exercise b")[0]
    assert section_a.strip().splitlines()[1:] == ["", "*Not attempted: every function still raises the template's NotImplementedError.*"]
    assert "Your written answer:\n\n> Because the maps\n> are normalised." in text and "*(none written)*" in text
    write_feedback([Submission("grace", results), Submission("alan", {"b": NotebookResult("b", "x.ipynb", Status.GRADED, written_answers=["No."])})], tmp_path / "feedback")
    teacher = (tmp_path / "written-answers.md").read_text()
    assert "## Exercise b" in teacher and "**grace:**" in teacher and "**alan:**\n\n> No." in teacher


def test_feedback_files_are_named_after_the_students_without_clashes(tmp_path):
    submissions = _class() + [Submission("ada lovelace", _class()[0].results)]
    names = [path.name for path in write_feedback(submissions, tmp_path)]
    assert names == ["Ada_Lovelace.md", "ada_lovelace.md", "ada_lovelace-2.md"]


def test_the_table_has_a_row_per_student_and_the_reasons_below():
    table = score_table(_class())
    assert "| Ada Lovelace |   7/7 |   8/8 |" in table and table.splitlines()[2].endswith(" 100% |")
    assert "- ada/lovelace, exercise b: a cell ran longer than 300 s" in table
