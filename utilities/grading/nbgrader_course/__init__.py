"""A ready nbgrader course folder made from the exercise sources, for grading on a JupyterHub.

``python -m utilities.grading.nbgrader_course OUT [--course-id ID] [--exercises a c ...] [--force]``
(``make nbgrader-course OUT=folder``) writes::

    OUT/nbgrader_config.py
    OUT/source/exercise_a/exercise_a_cams_for_classes.ipynb
    OUT/source/exercise_b/...

one nbgrader assignment per exercise. The sources in ``exercises/source/`` are
already nbgrader assignment notebooks (``scripts/make_exercises.py --check``
validates their cell metadata); two things are changed for nbgrader here:

- A ``### HINT: text`` line inside a solution region becomes a ``# Hint: text``
  comment just above the region's ``### BEGIN SOLUTION`` line, at the same
  indentation: nbgrader replaces the whole region with its stub, so a hint left
  inside would never reach the students.
- A Markdown cell with a ``<!-- BEGIN SOLUTION -->`` answer becomes the question
  (a locked cell) and the answer (a solution cell whose worked answer sits between
  nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``, so the released version
  shows a prompt in its place). Otherwise the students could edit the question too.

The written answers are worth 0 points: nbgrader requires a Markdown solution
cell to be a grade cell, but the course scores only the checks (one point each,
from the autograded cell); teachers read the answers, and comment on them, in
formgrader.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import nbformat
from nbformat.notebooknode import NotebookNode

__all__ = [
    "DEFAULT_COURSE_ID",
    "SOURCE_DIR",
    "CourseFolderError",
    "build_course",
    "course_config",
    "is_autograded",
    "main",
    "move_hints",
    "nbgrader_notebook",
    "split_answer",
]

#: The exercise sources (the repository's; ``utilities`` is installed editable).
SOURCE_DIR = Path(__file__).resolve().parents[3] / "exercises" / "source"
DEFAULT_COURSE_ID = "gradcam-course"
#: What the released notebooks show in place of a written answer: the prompt of the repository's student versions.
ANSWER_PROMPT = "*Write your answer here.*"
#: Seconds per cell when nbgrader runs a notebook; nbgrader's default, 30 s, is too short for a notebook
#: that loads a CNN and runs its checks on a busy hub.
CELL_TIMEOUT = 300

BEGIN, END, HINT = "### BEGIN SOLUTION", "### END SOLUTION", "### HINT:"
MARKDOWN_ANSWER = re.compile(r"<!-- BEGIN SOLUTION -->(.*?)<!-- END SOLUTION -->", re.DOTALL)
HINT_WIDTH = 100  # columns, so that a long hint stays readable in a code cell, which does not wrap lines

CONFIG_TEMPLATE = '''\
"""nbgrader configuration of the course "{course_id}", written by python -m utilities.grading.nbgrader_course.

nbgrader reads it when it runs in this folder. The assignments' sources are in source/.
"""

import os

c = get_config()  # noqa: F821 - nbgrader provides get_config when it loads this file

c.CourseDirectory.course_id = {course_id!r}
# This file's folder, not a fixed path: the course keeps working when the folder is copied, e.g. onto the hub.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# Seconds per cell when nbgrader runs a notebook (autograde, validate). The exercises load a CNN and
# run their checks; nbgrader's default of 30 s is too short on a busy server.
c.Execute.timeout = {timeout}
# The prompt in place of a written answer, as in the repository's student versions.
c.ClearSolutions.text_stub = {prompt!r}
'''


def is_autograded(cell: NotebookNode) -> bool:
    """Whether a cell is nbgrader's autograded test cell: code, graded, not a solution.

    Args:
        cell: a notebook cell.

    Returns:
        True for the cell whose output nbgrader scores.
    """
    info = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(info.get("grade")) and not info.get("solution")


class CourseFolderError(Exception):
    """The course folder cannot be written (it exists and is not empty, or it is a file); nothing was written."""


def move_hints(source: str) -> str:
    """Move each ``### HINT:`` line of a code cell's solution regions above its ``### BEGIN SOLUTION`` line.

    The hint becomes a comment, ``# Hint: text`` (wrapped at about 100 columns), at the
    ``### BEGIN SOLUTION`` line's indentation, so it stays inside a function body.

    Args:
        source: a code cell's source with nbgrader solution regions.

    Returns:
        The source with the hints moved; everything else is unchanged.
    """
    lines: list[str] = []
    begin_at: int | None = None  # where in ``lines`` the current region's BEGIN line is
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == BEGIN:
            begin_at = len(lines)
        elif stripped == END:
            begin_at = None
        elif begin_at is not None and stripped.startswith(HINT):
            indent = lines[begin_at][: len(lines[begin_at]) - len(lines[begin_at].lstrip())]
            hint = stripped[len(HINT) :].strip()
            wrapped = textwrap.wrap(hint, width=max(40, HINT_WIDTH - len(indent) - len("# Hint: ")))
            comment = [f"{indent}# Hint: {wrapped[0]}"] + [f"{indent}#       {more}" for more in wrapped[1:]]
            lines[begin_at:begin_at] = comment
            begin_at += len(comment)
            continue
        lines.append(line)
    return "\n".join(lines)


def _markdown_cell(source: str, cell_id: str, nbgrader: dict) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source)
    cell.id = cell_id
    cell.metadata["nbgrader"] = nbgrader
    return cell


def split_answer(cell: NotebookNode) -> list[NotebookNode]:
    """Split a Markdown cell with ``<!-- BEGIN SOLUTION -->`` answers into locked text and answer cells.

    Each answer becomes a solution cell (graded, with the original cell's points, 0 in this
    course) holding the worked answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
    the text around it (the question) becomes locked Markdown cells.

    Args:
        cell: a Markdown cell of a source notebook, with its nbgrader metadata.

    Returns:
        The cells that replace it, in order; ``[cell]`` if it holds no answer.
    """
    parts = MARKDOWN_ANSWER.split(cell.source)  # text, answer, text, answer, ..., text
    if len(parts) == 1:
        return [cell]
    grade_id = cell.metadata["nbgrader"]["grade_id"]
    cell_id = cell.get("id", grade_id)
    points = cell.metadata["nbgrader"].get("points", 0)
    locked = {"grade": False, "locked": True, "schema_version": 3, "solution": False}
    cells = []
    for number, part in enumerate(parts):
        text = part.strip()
        suffix = "" if number <= 1 else f"_{number // 2 + 1}"  # the first question and answer keep short ids
        if number % 2 == 1:
            answer = {"grade": True, "grade_id": f"{grade_id}{suffix}", "locked": False, "points": points,
                      "schema_version": 3, "solution": True}
            cells.append(_markdown_cell(f"{BEGIN}\n{text}\n{END}", f"{cell_id}-answer{suffix}"[:64], answer))
        elif text:
            name = "question" if number == 0 else f"text{suffix}"
            cells.append(_markdown_cell(text, f"{cell_id}-{name}"[:64], {**locked, "grade_id": f"{grade_id}_{name}"}))
    return cells


def nbgrader_notebook(source_path: Path) -> NotebookNode:
    """The notebook for an nbgrader course's ``source/`` folder, made from an exercise source.

    Args:
        source_path: a notebook of ``exercises/source/``.

    Returns:
        The notebook with hints moved out of the solution regions, Markdown answers split
        off their questions, and no outputs.

    Raises:
        ValueError: a cell without nbgrader metadata (``scripts/make_exercises.py --check`` says more).
    """
    notebook = nbformat.read(source_path, as_version=4)
    cells: list[NotebookNode] = []
    for index, cell in enumerate(notebook.cells):
        if "nbgrader" not in cell.metadata:
            raise ValueError(f"{source_path.name}, cell {index}: no nbgrader metadata; run scripts/make_exercises.py --check.")
        cell = copy.deepcopy(cell)
        if cell.cell_type == "code":
            cell.source = move_hints(cell.source)
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            cells.append(cell)
        elif cell.cell_type == "markdown":
            cells.extend(split_answer(cell))
        else:
            cells.append(cell)
    notebook.cells = cells
    nbformat.validate(notebook)
    return notebook


def course_config(course_id: str) -> str:
    """The text of the course's ``nbgrader_config.py``."""
    return CONFIG_TEMPLATE.format(course_id=course_id, timeout=CELL_TIMEOUT, prompt=ANSWER_PROMPT)


def _sources(exercises: Sequence[str] | None, source_dir: Path) -> dict[str, Path]:
    """Exercise letter -> its source notebook, for the letters asked for (all if None)."""
    found = {}
    for path in sorted(source_dir.glob("exercise_*_*.ipynb")):
        found[path.name.split("_")[1]] = path
    if not found:
        raise CourseFolderError(f"no exercise sources in {source_dir} (the repository's exercises/source/).")
    wanted = list(dict.fromkeys(exercises)) if exercises else list(found)
    unknown = [letter for letter in wanted if letter not in found]
    if unknown:
        raise CourseFolderError(f"no exercise {', '.join(unknown)}; the exercises are {', '.join(found)}.")
    return {letter: found[letter] for letter in wanted}


def build_course(
    out: Path,
    course_id: str = DEFAULT_COURSE_ID,
    exercises: Sequence[str] | None = None,
    force: bool = False,
    source_dir: Path = SOURCE_DIR,
) -> list[Path]:
    """Write an nbgrader course folder: ``nbgrader_config.py`` and one assignment per exercise in ``source/``.

    Args:
        out: the course folder; created if missing.
        course_id: nbgrader's course id.
        exercises: the exercises' letters, e.g. ``["a", "c"]``; all if None or empty.
        force: write into a folder that is not empty. ``nbgrader_config.py`` and the chosen
            assignments' ``source/`` folders are replaced; everything else (the gradebook,
            submissions, other assignments) is kept.
        source_dir: the exercise sources.

    Returns:
        The files written.

    Raises:
        CourseFolderError: ``out`` is a file, or a folder that is not empty (without ``force``),
            or an exercise does not exist; nothing was written.
    """
    sources = _sources(exercises, source_dir)
    if out.exists() and not out.is_dir():
        raise CourseFolderError(f"{out} is a file; give a folder for the course.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CourseFolderError(
            f"{out} is not empty; give a new or empty folder, or --force to replace its nbgrader_config.py and "
            "the assignments' source/ folders (the gradebook and submissions are kept)."
        )
    # Every notebook is made before anything is written, so a broken source leaves no half-written course.
    notebooks = {letter: nbgrader_notebook(path) for letter, path in sources.items()}
    out.mkdir(parents=True, exist_ok=True)
    config = out / "nbgrader_config.py"
    config.write_text(course_config(course_id))
    written = [config]
    for letter, notebook in notebooks.items():
        folder = out / "source" / f"exercise_{letter}"
        if folder.exists():
            shutil.rmtree(folder)  # so that a renamed notebook does not linger next to its new name
        folder.mkdir(parents=True)
        target = folder / sources[letter].name
        nbformat.write(notebook, target)
        written.append(target)
    return written


NEXT_STEPS = """\
Next steps, in {out} with nbgrader 0.9.6 installed and its environment's bin folder on PATH:
  cd {out}
  nbgrader generate_assignment {first}     # the student version, in release/{first}/
  nbgrader release_assignment {first}      # on the hub: to the students, through nbgrader's exchange
  nbgrader collect {first}                 # their submissions, into submitted/
  nbgrader autograde {first}               # runs each notebook; one point per check that passes
  nbgrader generate_feedback {first}       # HTML in feedback/
  nbgrader release_feedback {first}"""
AFTER_STEPS = """\
The written answers are worth 0 points: read and comment on them in formgrader.
See exercises/TEACHER_GUIDE.md, "Grading with nbgrader on a JupyterHub"."""


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 written, 2 usage error, nothing written)."""
    parser = argparse.ArgumentParser(
        prog="python -m utilities.grading.nbgrader_course",
        description="Write an nbgrader course folder with one assignment per exercise (see exercises/TEACHER_GUIDE.md).",
    )
    parser.add_argument("out", type=Path, help="the course folder to write (new or empty)")
    parser.add_argument("--course-id", default=DEFAULT_COURSE_ID, help=f"nbgrader's course id (default: {DEFAULT_COURSE_ID})")
    parser.add_argument("--exercises", nargs="+", metavar="LETTER", help="only these exercises, e.g. a c (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder: replaces nbgrader_config.py and the assignments' source/ folders")
    args = parser.parse_args(argv)
    try:
        written = build_course(args.out, args.course_id, args.exercises, args.force)
    except CourseFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    assignments = [path.parent.name for path in written[1:]]
    print(NEXT_STEPS.format(out=args.out, first=assignments[0]))
    if len(assignments) > 1:
        print(f"Likewise for {', '.join(assignments[1:])}.")
    print(AFTER_STEPS)
    return 0
