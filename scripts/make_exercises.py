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

``--check`` writes nothing and exits 1 if a committed version differs from what
would be generated (outputs and execution metadata are ignored).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCE, STUDENT, SOLUTION = (ROOT / "exercises" / name for name in ("source", "student", "solution"))
BEGIN, END, HINT = "### BEGIN SOLUTION", "### END SOLUTION", "### HINT:"
MARKDOWN_REGION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.DOTALL)
STUDENT_PROMPT = "*Write your answer here.*"


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


def _comparable(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the committed versions")
    args = parser.parse_args(argv)
    stale = []
    for source_path in sorted(SOURCE.glob("*.ipynb")):
        for folder, notebook in zip((STUDENT, SOLUTION), versions(source_path)):
            target = folder / source_path.name
            if args.check:
                if not target.exists() or _comparable(nbformat.read(target, as_version=4)) != _comparable(notebook):
                    stale.append(str(target.relative_to(ROOT)))
            else:
                folder.mkdir(parents=True, exist_ok=True)
                nbformat.write(notebook, target)
                print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run python scripts/make_exercises.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
