"""Make the student and solution versions of the exercises from one source.

Usage: ``python scripts/make_exercises.py [--check]``

Sources live in ``exercises/source/``. A code cell marks its solution with
nbgrader's convention::

    ### BEGIN SOLUTION
    ### HINT: what to use, without the answer
    ...solution code...
    ### END SOLUTION

and a markdown cell with ``<!-- BEGIN SOLUTION -->`` ... ``<!-- END SOLUTION -->``.

- ``exercises/solution/``: the source without the marker lines. Execute them
  afterwards (``python scripts/execute_notebooks.py exercises/solution/*.ipynb``);
  nbval checks them like the course notebooks.
- ``exercises/student/``: each code region replaced by
  ``raise NotImplementedError("<hint>")`` at the region's indentation, each
  markdown region by a prompt, outputs cleared.

Every source is also an nbgrader assignment notebook (cell metadata
``nbgrader``, schema 3): a cell with a solution region is a solution cell (a
Markdown one is also a grade cell, worth 0 points: nbgrader requires it; the
written answers are read, not scored), one autograded cell after the
``check_*`` cell shows the number of checks passed (``points``: the
exercise's number of checks), every other cell is locked, and grade ids are
unique. Both modes check this first and write nothing if a source breaks it;
``--add-nbgrader-metadata`` fills in what a new cell lacks (existing metadata
is kept) and adds a missing autograded cell. The versions keep the cells'
metadata. ``utilities/grading/nbgrader_course/`` turns the sources into an
nbgrader course folder.

``--check`` writes nothing and exits 1 if a committed version differs from what
would be generated (outputs and execution metadata are ignored; nbgrader metadata
is compared).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utilities.checks import CHECK_COUNTS  # noqa: E402 - after the repository is on the path
from utilities.grading.nbgrader_course import BEGIN, END, HINT, is_autograded  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from execute_notebooks import jupyterlab_metadata  # noqa: E402 - scripts/execute_notebooks.py, beside this script

SOURCE, STUDENT, SOLUTION = (ROOT / "exercises" / name for name in ("source", "student", "solution"))
MARKDOWN_REGION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.DOTALL)
STUDENT_PROMPT = "*Write your answer here.*"
# nbgrader treats any line containing these as a region's delimiter, whatever the comment mark.
NBGRADER_BEGIN, NBGRADER_END = "BEGIN SOLUTION", "END SOLUTION"
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]+$")  # nbgrader's schema allows only these characters
AUTOGRADED_SOURCE = '''# For grading with nbgrader: the checks once more, and the number of checks that pass,
# which nbgrader takes as this exercise's points (one per check).
from utilities.checks import points

points("{letter}", globals())'''


def _code_versions(source: str, where: str) -> tuple[str, str]:
    """(student, solution) versions of one code cell's source."""
    student: list[str] = []
    solution: list[str] = []
    region: list[str] | None = None
    indent, hint = "", "complete this part of the exercise"
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if region is not None:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution region.")
            region, indent, hint = [], line[: len(line) - len(line.lstrip())], "complete this part of the exercise"
        elif stripped == END:
            if region is None:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}.")
            student.append(f"{indent}raise NotImplementedError({hint!r})")
            region = None
        elif region is not None and stripped.startswith(HINT):
            hint = stripped[len(HINT) :].strip()
        elif region is not None:
            solution.append(line)
        else:
            student.append(line)
            solution.append(line)
    if region is not None:
        raise ValueError(f"{where}: {BEGIN} without {END}.")
    return "\n".join(student), "\n".join(solution)


def versions(source_path: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """The (student, solution) notebooks made from one source notebook, without outputs."""
    notebook = nbformat.read(source_path, as_version=4)
    student, solution = copy.deepcopy(notebook), copy.deepcopy(notebook)
    for index, cell in enumerate(notebook.cells):
        where = f"{source_path.name}, cell {index}"
        if cell.cell_type == "code":
            student.cells[index].source, solution.cells[index].source = _code_versions(cell.source, where)
            for version in (student, solution):
                version.cells[index].outputs = []
                version.cells[index].execution_count = None
        elif cell.cell_type == "markdown":
            student.cells[index].source = MARKDOWN_REGION.sub(STUDENT_PROMPT, cell.source)
            solution.cells[index].source = cell.source.replace("<!-- BEGIN SOLUTION -->\n", "").replace("\n<!-- END SOLUTION -->", "")
    return student, solution


def _comparable(notebook: nbformat.NotebookNode) -> list[tuple[str, str, dict]]:
    # The nbgrader metadata too: a version made from an older source would carry stale grade ids or points.
    return [(cell.cell_type, cell.source, cell.metadata.get("nbgrader", {})) for cell in notebook.cells]


def exercise_letter(path: Path) -> str:
    """``"a"`` for ``exercise_a_cams_for_classes.ipynb``."""
    match = re.match(r"exercise_([a-z])_", path.name)
    if match is None:
        raise ValueError(f"{path.name}: an exercise's file name starts with exercise_<letter>_.")
    return match.group(1)


def has_solution_region(cell: NotebookNode) -> bool:
    """Whether a cell holds a solution region (code: ``### BEGIN SOLUTION``, Markdown: ``<!-- BEGIN SOLUTION -->``)."""
    if cell.cell_type == "code":
        return any(line.strip() == BEGIN for line in cell.source.splitlines())
    return MARKDOWN_REGION.search(cell.source) is not None


def _describe(index: int, cell: NotebookNode) -> str:
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "(empty)")
    return f"cell {index} ({cell.cell_type}, `{first[:50]}`)"


def nbgrader_problems(notebook: NotebookNode, letter: str, check_count: int) -> list[str]:
    """What keeps a source from being the nbgrader assignment notebook it should be; empty if nothing.

    Args:
        notebook: a source notebook.
        letter: its exercise's letter.
        check_count: its exercise's number of checks, the autograded cell's points.

    Returns:
        One message per problem, naming the cell and what to change.
    """
    problems = []
    grade_ids: dict[str, int] = {}
    autograded = []
    for index, cell in enumerate(notebook.cells):
        where = _describe(index, cell)
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            problems.append(f"{where} has no nbgrader metadata (run scripts/make_exercises.py --add-nbgrader-metadata).")
            continue
        if meta.get("schema_version") != 3 or not all(isinstance(meta.get(key), bool) for key in ("grade", "solution", "locked")):
            problems.append(f"{where}: nbgrader metadata needs schema_version 3 and true/false for grade, solution and locked.")
            continue
        grade_id = meta.get("grade_id", "")
        if not GRADE_ID.match(grade_id):
            problems.append(f"{where}: grade_id {grade_id!r} should be non-empty letters, digits, _ or -.")
        elif grade_id in grade_ids:
            problems.append(f"{where}: grade_id {grade_id!r} is also cell {grade_ids[grade_id]}'s; grade ids must be unique.")
        else:
            grade_ids[grade_id] = index
        if has_solution_region(cell):
            if not meta["solution"] or meta["locked"]:
                problems.append(f"{where} holds a solution region, so it must be a solution cell (solution: true, locked: false).")
            elif cell.cell_type == "code" and meta["grade"]:
                problems.append(f"{where}: a code solution cell is not graded itself (grade: false); the autograded cell scores it.")
            elif cell.cell_type == "markdown" and not (meta["grade"] and "points" in meta):
                problems.append(f"{where}: nbgrader requires a Markdown solution cell to be graded too (grade: true, points: 0).")
        elif meta["solution"]:
            problems.append(f"{where} is a solution cell without a solution region: nbgrader would replace all of it, "
                            "this script none of it; mark the solution with BEGIN/END SOLUTION, or lock the cell.")
        elif NBGRADER_BEGIN in cell.source or NBGRADER_END in cell.source:
            problems.append(f"{where} mentions BEGIN/END SOLUTION outside a solution region; nbgrader would take it for a delimiter.")
        elif is_autograded(cell):
            autograded.append(index)
            if not meta["locked"]:
                problems.append(f"{where}: the autograded cell must be locked (locked: true).")
            if meta.get("points") != check_count:
                problems.append(f"{where}: the autograded cell is worth {meta.get('points')} points; "
                                f"exercise {letter} has {check_count} checks, one point each.")
            if f'points("{letter}"' not in cell.source:
                problems.append(f'{where}: the autograded cell should show points("{letter}", globals()).')
        elif not meta["locked"] or meta["grade"]:
            problems.append(f"{where} is neither a solution cell nor the autograded cell, so it must be locked (locked: true, grade: false).")
    if len(autograded) != 1:
        found = f"{len(autograded)} (cells {', '.join(map(str, autograded))})" if autograded else "none"
        problems.append(f"exactly one autograded cell (code, grade: true, solution: false) is needed; found {found}.")
    return problems


def _new_grade_id(letter: str, cell: NotebookNode, taken: set[str]) -> str:
    """A readable grade id: the function or name a solution cell defines, else the cell's id."""
    name = None
    if cell.cell_type == "code" and has_solution_region(cell):
        match = re.search(r"^(?:def\s+(\w+)|(\w+)\s*=)", cell.source, re.MULTILINE)
        name = match and (match.group(1) or match.group(2))
    elif cell.cell_type == "markdown" and has_solution_region(cell):
        name = "answer"
    candidate = f"{letter}_{name}" if name else f"{letter}_cell_{cell.get('id') or len(taken)}"
    while candidate in taken:
        candidate += "_"
    return candidate


def add_nbgrader_metadata(notebook: NotebookNode, letter: str, check_count: int) -> int:
    """Fill in the nbgrader metadata a source lacks, and add the autograded cell if there is none.

    Cells that have nbgrader metadata keep it. Returns the number of cells changed or added.
    """
    taken = {cell.metadata["nbgrader"].get("grade_id", "") for cell in notebook.cells if "nbgrader" in cell.metadata}
    changed = 0
    for cell in notebook.cells:
        if "nbgrader" in cell.metadata:
            continue
        solution = has_solution_region(cell)
        grade_id = _new_grade_id(letter, cell, taken)
        taken.add(grade_id)
        meta = {"grade": solution and cell.cell_type == "markdown", "grade_id": grade_id, "locked": not solution,
                "schema_version": 3, "solution": solution}
        if meta["grade"]:
            meta["points"] = 0  # written answers are read and commented in formgrader, not scored
        cell.metadata["nbgrader"] = meta
        changed += 1
    if not any(is_autograded(cell) for cell in notebook.cells):
        calls_check = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and cell.source.lstrip().startswith(f"check_{letter}(")]
        position = calls_check[-1] + 1 if calls_check else len(notebook.cells)
        cell = nbformat.v4.new_code_cell(AUTOGRADED_SOURCE.format(letter=letter))
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": f"{letter}_checks", "locked": True, "points": check_count,
                                     "schema_version": 3, "solution": False}
        notebook.cells.insert(position, cell)
        changed += 1
    return changed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the committed versions")
    parser.add_argument("--add-nbgrader-metadata", action="store_true",
                        help="fill in the sources' missing nbgrader metadata and autograded cells, then stop")
    args = parser.parse_args(argv)
    counts = CHECK_COUNTS
    sources = sorted(SOURCE.glob("*.ipynb"))
    if args.add_nbgrader_metadata:
        for source_path in sources:
            notebook = nbformat.read(source_path, as_version=4)
            changed = add_nbgrader_metadata(notebook, exercise_letter(source_path), counts[exercise_letter(source_path)])
            if changed:
                nbformat.write(notebook, source_path)
            print(f"{source_path.relative_to(ROOT)}: {changed} cells given nbgrader metadata")
        return 0
    invalid = []
    for source_path in sources:
        letter = exercise_letter(source_path)
        for problem in nbgrader_problems(nbformat.read(source_path, as_version=4), letter, counts[letter]):
            invalid.append(f"{source_path.relative_to(ROOT)}: {problem}")
    if invalid:
        print("not a valid nbgrader assignment notebook (nothing written):", *invalid, sep="\n  ")
        return 1
    stale = []
    for source_path in sources:
        for folder, notebook in zip((STUDENT, SOLUTION), versions(source_path)):
            target = folder / source_path.name
            if args.check:
                if not target.exists() or _comparable(nbformat.read(target, as_version=4)) != _comparable(notebook):
                    stale.append(str(target.relative_to(ROOT)))
            else:
                folder.mkdir(parents=True, exist_ok=True)
                notebook.metadata.update(jupyterlab_metadata())  # opened and closed in JupyterLab: no change
                nbformat.write(notebook, target)
                print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run python scripts/make_exercises.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
