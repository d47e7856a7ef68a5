"""Grade folders of submitted exercise notebooks: ``python -m utilities.grading PATH ...``.

Each submission is a folder with some of the notebooks
``exercise_a_*.ipynb`` .. ``exercise_e_*.ipynb`` (any other file is ignored).
A PATH that holds no exercise notebook is taken as a folder of submissions,
one sub-folder each. Every notebook runs in a fresh kernel, top to bottom and
past errors, then the exercise's checks run on what it defined. On top of the
checks, each exercise has one point for a notebook whose own cells all run
without an error; the notes name the first failing cell and its error. A
notebook that crashes its kernel or runs past the time limit scores zero for
its exercise, with the reason, and grading goes on.

**Grading runs the students' code** with your permissions. Run it in a
throw-away account, container or virtual machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .checks import CHECK_COUNTS, EXERCISES, CheckResult

__all__ = ["GRADED_TOTALS", "RUNS_WITHOUT_ERRORS", "Submission", "find_submissions", "grade_notebook", "grade_submission", "main", "score_table"]

NOTEBOOK_PATTERN = re.compile(r"^exercise_([a-e])_.*\.ipynb$")
RESULT_MARK = "GRADING-RESULT:"
#: The name of the extra point every graded exercise has.
RUNS_WITHOUT_ERRORS = "the notebook's cells run without errors"
#: Points per exercise when grading: its checks, and one for a notebook that runs without errors.
GRADED_TOTALS = {exercise: count + 1 for exercise, count in CHECK_COUNTS.items()}
GRADING_CELL = """\
import json as _grading_json
from utilities.checks import grade as _grade
_grading_result = _grade({exercise!r}, globals())
print({mark!r} + _grading_json.dumps({{"passed": _grading_result.passed, "problems": _grading_result.problems}}))
"""


@dataclass
class Submission:
    """One student's results, exercise letter -> result."""

    name: str
    results: dict[str, CheckResult]


def _zero(exercise: str, reason: str) -> CheckResult:
    return CheckResult(exercise, GRADED_TOTALS[exercise], problems=[reason])


def _cell_errors(cells: list) -> str:
    """Empty if no cell has an error output, else the first failing cell, its error, and how many cells failed."""
    failing = []
    for number, cell in enumerate(cells, start=1):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                failing.append((number, cell, output))
                break
    if not failing:
        return ""
    number, cell, output = failing[0]
    first_line = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    first_line = first_line if len(first_line) <= 60 else first_line[:57] + "..."
    error = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip().rstrip(":")
    error = error if len(error) <= 200 else error[:197] + "..."
    others = f" ({len(failing) - 1} later cell{'s' if len(failing) > 2 else ''} failed too)" if len(failing) > 1 else ""
    return f"cell {number} (`{first_line}`) raised {error}{others}"


def grade_notebook(path: Path, exercise: str, timeout: float = 300) -> CheckResult:
    """Run one notebook and its exercise's checks.

    Args:
        path: the notebook.
        exercise: its letter.
        timeout: seconds any one cell may run.

    Returns:
        The checks' result; zero points with a reason if the notebook cannot be run.
    """
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - a broken file is the student's problem, not the grader's
        return _zero(exercise, f"cannot read the notebook: {error}")
    notebook.cells.append(nbformat.v4.new_code_cell(GRADING_CELL.format(exercise=exercise, mark=RESULT_MARK)))
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
        # Immediate shutdown: a graceful one of a kernel that has loaded torch takes about 2 s more per submission.
        shutdown_kernel="immediate", resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except CellTimeoutError:
        return _zero(exercise, f"a cell ran longer than {timeout:g} s")
    except DeadKernelError:
        return _zero(exercise, "the notebook's kernel died (crashed or was killed)")
    except Exception as error:  # noqa: BLE001 - e.g. a kernel that never starts
        return _zero(exercise, f"the notebook could not be run: {type(error).__name__}: {error}")
    for output in notebook.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(RESULT_MARK):
                data = json.loads(line[len(RESULT_MARK) :])
                result = CheckResult(exercise, GRADED_TOTALS[exercise], data["passed"], data["problems"])
                errors = _cell_errors(notebook.cells[:-1])
                if errors:
                    result.problems.append(errors)
                else:
                    result.passed.append(RUNS_WITHOUT_ERRORS)
                return result
    return _zero(exercise, "the checks did not run (the notebook may have changed the grading environment)")


def grade_submission(folder: Path, timeout: float = 300) -> Submission:
    """Grade every exercise of one submission folder; a missing notebook scores zero."""
    notebooks = {}
    for path in sorted(folder.glob("*.ipynb")):
        match = NOTEBOOK_PATTERN.match(path.name)
        if match:
            notebooks.setdefault(match.group(1), path)
    results = {
        exercise: grade_notebook(notebooks[exercise], exercise, timeout) if exercise in notebooks else _zero(exercise, "no notebook submitted")
        for exercise in EXERCISES
    }
    return Submission(folder.name, results)


def find_submissions(paths: list[Path]) -> list[Path]:
    """Submission folders among the given paths (a folder of submissions counts for its sub-folders)."""
    found = []
    for path in paths:
        if not path.is_dir():
            raise SystemExit(f"{path} is not a folder.")
        if any(NOTEBOOK_PATTERN.match(p.name) for p in path.glob("*.ipynb")):
            found.append(path)
        else:
            found.extend(sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")))
    return found


def score_table(submissions: list[Submission]) -> str:
    """A Markdown table, one row per submission, one column per exercise, then the reasons for lost points."""
    letters = list(EXERCISES)
    width = max([len("submission")] + [len(s.name) for s in submissions])
    lines = [
        f"| {'submission':<{width}} | " + " | ".join(f"{letter:>5}" for letter in letters) + " | total |",
        f"|{'-' * (width + 2)}|" + "|".join("-" * 7 for _ in letters) + "|-------|",
    ]
    for submission in submissions:
        cells = [f"{len(submission.results[l].passed)}/{submission.results[l].total}" for l in letters]
        points = sum(len(r.passed) for r in submission.results.values())
        total = sum(r.total for r in submission.results.values())
        lines.append(f"| {submission.name:<{width}} | " + " | ".join(f"{c:>5}" for c in cells) + f" | {100 * points / total:4.0f}% |")
    notes = [
        f"- {submission.name}, exercise {letter}: {problem}"
        for submission in submissions
        for letter, result in submission.results.items()
        for problem in result.problems
    ]
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utilities.grading", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="submission folders, or folders of them")
    parser.add_argument("--timeout", type=float, default=300, help="seconds any one cell may run (default 300)")
    args = parser.parse_args(argv)
    submissions = [grade_submission(folder, args.timeout) for folder in find_submissions(args.paths)]
    if not submissions:
        print("No submissions found.", file=sys.stderr)
        return 1
    print(score_table(submissions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
