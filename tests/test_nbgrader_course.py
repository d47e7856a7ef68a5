"""The nbgrader course: the sources' metadata, points(), and the course folder graded by nbgrader itself.

The course test builds exercise c only (its notebook runs fastest) and runs nbgrader 0.9.6 as a
subprocess, as a teacher would: generate_assignment, then three submissions (the solutions, a
plausible wrong answer from tests/wrong_answers/exercise_c.py with the autograded cell edited, the
untouched student version),
autograde and generate_feedback; the scores come from nbgrader's gradebook.
"""

from __future__ import annotations

import ast
import html
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest

from exercise_helpers import SOLUTION_DIR, one_thread, solution_namespace  # noqa: F401 - one_thread is an autouse fixture
from utilities.checks import CHECK_COUNTS, points
from utilities.grading.nbgrader_course import main, move_hints, nbgrader_notebook, split_answer

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "exercises" / "source"
ASSIGNMENT = "exercise_c"
NOTEBOOK = "exercise_c_preprocessing_matters.ipynb"
COURSE_ID = "test-course"
MAX_POINTS = CHECK_COUNTS["c"]

# A plausible wrong answer, "two changes: Resize(64) and no Normalize" of tests/wrong_answers/exercise_c.py,
# as a student would write it: it fails two of the six checks, each with its own message.
WRONG_ANSWER = {
    "c_changed_preprocess": '''def changed_preprocess(image):
    """The steps of model.preprocess with exactly one step changed: a float tensor (3, H, W)."""
    steps = list(model.preprocess.transforms)
    return v2.Compose([steps[0], v2.Resize(64, antialias=True), steps[2]])(image)''',
    "c_new_top_class": 'new_top_class = "joystick"',
}
WRONG_MESSAGES = [
    "changed_preprocess differs from model.preprocess in 2 steps",
    "'joystick' is a real class, but not what the model predicts with your pipeline",
]


def _generator():
    import runpy

    return runpy.run_path(str(ROOT / "scripts" / "make_exercises.py"))


def _nbgrader_env() -> dict[str, str]:
    env = dict(os.environ)
    # nbgrader runs the alembic executable from PATH when it creates its database.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"  # the kernels nbgrader starts: one torch thread is faster on a shared machine
    return env


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=_nbgrader_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _nbgrader(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "nbgrader", *arguments], cwd)


def _without_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def _submit(course: Path, student: str, replacements: dict[str, str]) -> None:
    """The released notebook with its cells of these grade ids replaced, as submitted/<student>/<assignment>/."""
    notebook = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        if grade_id in replacements:
            cell.source = replacements[grade_id]
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / NOTEBOOK)
    (folder / "timestamp.txt").write_text("2026-01-15 10:00:00.000000 UTC")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course folder made by the command, released, submitted by three students, autograded, with feedback."""
    course = tmp_path_factory.mktemp("nbgrader") / "course"
    made = _run([sys.executable, "-m", "utilities.grading.nbgrader_course", str(course), "--exercises", "c", "--course-id", COURSE_ID], ROOT)
    assert f"nbgrader generate_assignment {ASSIGNMENT}" in made.stdout
    _nbgrader("generate_assignment", ASSIGNMENT, cwd=course)
    source = nbformat.read(course / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    solutions = {cell.metadata["nbgrader"]["grade_id"]: _without_markers(cell.source) for cell in source.cells if cell.metadata["nbgrader"]["solution"]}
    _submit(course, "solver", solutions)
    # ... who also edits the locked autograded cell to claim full points: nbgrader restores it from its database.
    _submit(course, "mistaken", {**solutions, **WRONG_ANSWER, "c_checks": f"{MAX_POINTS}  # all points, please"})
    _submit(course, "untouched", {})
    _nbgrader("autograde", ASSIGNMENT, cwd=course)
    _nbgrader("generate_feedback", ASSIGNMENT, cwd=course)
    return course


def _score(course: Path, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=COURSE_ID) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return submission.score, submission.max_score


def test_a_written_answer_waits_for_the_teacher_but_is_worth_no_points(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=COURSE_ID) as gradebook:
        answers = {student: gradebook.find_grade("c_answer", NOTEBOOK.removesuffix(".ipynb"), ASSIGNMENT, student)
                   for student in ("solver", "untouched")}
        # an answer that was written needs reading in formgrader; an untouched prompt scores 0 by itself
        assert (answers["solver"].needs_manual_grade, answers["solver"].max_score) == (True, 0)
        assert (answers["untouched"].needs_manual_grade, answers["untouched"].auto_score) == (False, 0)


def _feedback(course: Path, student: str) -> str:
    return html.unescape((course / "feedback" / student / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")).read_text())


def test_the_solutions_get_full_points(course):
    assert _score(course, "solver") == (MAX_POINTS, MAX_POINTS)
    assert f"Exercise c: correct ({MAX_POINTS}/{MAX_POINTS} checks pass)." in _feedback(course, "solver")


def test_a_wrong_answer_gets_partial_points_and_the_feedback_names_the_mistakes(course):
    assert _score(course, "mistaken") == (MAX_POINTS - 2, MAX_POINTS)
    feedback = _feedback(course, "mistaken")
    assert f"Exercise c: {MAX_POINTS - 2}/{MAX_POINTS} checks pass." in feedback
    for message in WRONG_MESSAGES:
        assert message in feedback


def test_the_untouched_student_version_gets_zero(course):
    assert _score(course, "untouched") == (0, MAX_POINTS)
    feedback = _feedback(course, "untouched")
    assert f"Exercise c: 0/{MAX_POINTS} checks pass." in feedback and "NotImplementedError" in feedback


def _hint_comment(source: str) -> str:
    """The text of the ``# Hint:`` comment in a released solution cell, unwrapped."""
    comments = [line.strip().lstrip("#").strip() for line in source.splitlines() if line.strip().startswith("#") and "YOUR CODE HERE" not in line]
    return " ".join(comments).removeprefix("Hint: ")


def test_the_released_notebook_is_valid_python_with_the_hints_above_the_stubs(course):
    released = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    source = nbformat.read(SOURCE_DIR / NOTEBOOK, as_version=4)
    hints = [line.strip().removeprefix("### HINT:").strip() for cell in source.cells for line in cell.source.splitlines() if line.strip().startswith("### HINT:")]
    stubs = [cell.source for cell in released.cells if cell.cell_type == "code" and cell.metadata["nbgrader"]["solution"]]
    assert len(stubs) == len(hints) == 2
    for stub, hint in zip(stubs, hints):
        ast.parse(stub)  # still valid Python
        assert _hint_comment(stub) == hint
    # nbgrader's stub sits at the region's indentation: inside the function body
    assert stubs[0].splitlines()[-2:] == ["    # YOUR CODE HERE", "    raise NotImplementedError()"]
    assert stubs[1].splitlines()[-2:] == ["# YOUR CODE HERE", "raise NotImplementedError()"]
    for cell in released.cells:
        assert "SOLUTION" not in cell.source and "*Answer:*" not in cell.source


def test_the_question_is_locked_and_the_answer_is_a_prompt_worth_no_points(course):
    released = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    question, answer = released.cells[-2:]
    assert question.source.startswith("**To think about:**") and question.metadata["nbgrader"]["locked"]
    assert question.metadata["editable"] is False
    assert answer.source == "*Write your answer here.*"
    assert answer.metadata["nbgrader"]["solution"] and answer.metadata["nbgrader"]["points"] == 0


def test_hints_move_above_the_region_at_its_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    ### HINT: double it\n    return 2 * x\n    ### END SOLUTION\nprint(f(1))"
    assert move_hints(source) == "def f(x):\n    # Hint: double it\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\nprint(f(1))"
    long = "### BEGIN SOLUTION\n### HINT: " + "word " * 30 + "\nx = 1\n### END SOLUTION"
    moved = move_hints(long).split("\n")
    assert moved[0].startswith("# Hint: word") and moved[1].startswith("#       word") and moved[-3:] == ["### BEGIN SOLUTION", "x = 1", "### END SOLUTION"]
    assert all(len(line) <= 100 for line in moved)
    assert move_hints("x = 1  # ### HINT: outside a region stays") == "x = 1  # ### HINT: outside a region stays"


def test_a_markdown_answer_is_split_into_a_locked_question_and_an_answer_cell():
    cell = nbformat.v4.new_markdown_cell("**To think about:** why?\n\n<!-- BEGIN SOLUTION -->\n*Answer:* because.\n<!-- END SOLUTION -->")
    cell.id = "abc"
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "x_answer", "locked": False, "points": 0, "schema_version": 3, "solution": True}
    question, answer = split_answer(cell)
    assert question.source == "**To think about:** why?"
    assert question.metadata["nbgrader"] == {"grade": False, "grade_id": "x_answer_question", "locked": True, "schema_version": 3, "solution": False}
    assert answer.source == "### BEGIN SOLUTION\n*Answer:* because.\n### END SOLUTION"
    assert answer.metadata["nbgrader"] == {"grade": True, "grade_id": "x_answer", "locked": False, "points": 0, "schema_version": 3, "solution": True}
    assert question.id != answer.id


@pytest.mark.parametrize("path", sorted(SOURCE_DIR.glob("*.ipynb")), ids=lambda p: p.stem[:10])
def test_every_course_notebook_passes_nbgraders_own_metadata_check(path):
    from nbgrader.nbgraderformat import MetadataValidator

    notebook = nbgrader_notebook(path)
    MetadataValidator().validate_nb(notebook)
    markdown_answers = [cell for cell in notebook.cells if cell.cell_type == "markdown" and cell.metadata["nbgrader"]["solution"]]
    assert len(markdown_answers) == 1 and "### BEGIN SOLUTION\n*Answer:*" in markdown_answers[0].source


def test_a_non_empty_folder_is_refused_unless_forced(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main([str(tmp_path), "--exercises", "c"]) == 2
    assert "is not empty" in capsys.readouterr().err and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert main([str(tmp_path), "--exercises", "c", "--force"]) == 0
    assert (tmp_path / "source" / ASSIGNMENT / NOTEBOOK).exists() and (tmp_path / "notes.txt").read_text() == "keep me"
    assert main([str(tmp_path / "new"), "--exercises", "z"]) == 2
    assert "no exercise z" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_points_prints_the_result_and_writes_nothing_on_stderr(capsys):
    namespace = solution_namespace("exercise_c_")
    capsys.readouterr()
    assert points("c", namespace) == MAX_POINTS
    original = namespace["changed_preprocess"]

    def noisy(image):
        warnings.warn("a warning nbgrader would count as an error", UserWarning)
        print("and a line on stderr", file=sys.stderr)
        return original(image)

    assert points("c", {**namespace, "changed_preprocess": noisy}) == MAX_POINTS
    assert points("c", {**namespace, "new_top_class": "tabby"}) == MAX_POINTS - 1
    out, err = capsys.readouterr()
    assert err == ""
    assert f"Exercise c: correct ({MAX_POINTS}/{MAX_POINTS} checks pass)." in out and "'tabby' is a real class" in out


@pytest.mark.parametrize("path", sorted(SOLUTION_DIR.glob("*.ipynb")), ids=lambda p: p.stem[:10])
def test_the_committed_solutions_show_full_points_in_their_autograded_cell(path):
    letter = path.name.split("_")[1]
    cells = [cell for cell in nbformat.read(path, as_version=4).cells if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code"]
    assert len(cells) == 1 and cells[0].metadata["nbgrader"]["points"] == CHECK_COUNTS[letter]
    results = [output for output in cells[0].outputs if output.output_type == "execute_result"]
    assert [result.data["text/plain"] for result in results] == [str(CHECK_COUNTS[letter])]
    assert not any(output.output_type == "error" or output.get("name") == "stderr" for output in cells[0].outputs)


def test_the_sources_are_valid_nbgrader_notebooks_and_broken_ones_are_named():
    generator = _generator()
    problems = generator["nbgrader_problems"]
    for path in sorted(SOURCE_DIR.glob("*.ipynb")):
        letter = path.name.split("_")[1]
        assert problems(nbformat.read(path, as_version=4), letter, CHECK_COUNTS[letter]) == [], path.name
    notebook = nbformat.read(SOURCE_DIR / NOTEBOOK, as_version=4)
    by_id = {cell.metadata["nbgrader"]["grade_id"]: cell for cell in notebook.cells}
    del by_id["c_cell_74f86395"].metadata["nbgrader"]
    by_id["c_changed_preprocess"].metadata["nbgrader"].update(solution=False, locked=True)
    by_id["c_checks"].metadata["nbgrader"]["points"] = 5
    by_id["c_cell_13676b85"].metadata["nbgrader"]["grade_id"] = "c_new_top_class"
    messages = "\n".join(problems(notebook, "c", MAX_POINTS))
    assert "cell 0 (markdown, `# Exercise c: preprocessing matters`) has no nbgrader metadata" in messages
    assert "cell 2 (code, `def changed_preprocess(image):`) holds a solution region, so it must be a solution cell" in messages
    assert "the autograded cell is worth 5 points; exercise c has 6 checks" in messages
    assert "grade_id 'c_new_top_class' is also cell 3's; grade ids must be unique" in messages
    notebook.cells = [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") != "c_checks"]
    assert "exactly one autograded cell (code, grade: true, solution: false) is needed; found none." in problems(notebook, "c", MAX_POINTS)
