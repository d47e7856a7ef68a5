"""Grading a class: submissions per minute with one and with two notebooks at a time.

Usage: ``python benchmarks/bench_grading.py [--submissions N] [--jobs 1 2] [--no-fork]``
(or ``make bench-grading``; default 60 submissions, jobs 1 then 2).

Builds N submissions of four notebooks each (exercises a to d) in a temporary
folder, from the committed solution and student notebooks, mixed as a class
would hand them in: of every ten, six solutions, two with a wrong answer (a
solution notebook whose last cell replaces one of its functions with a wrong
one), one untouched student version (every check fails, cells raise) and one
that kills its kernel half-way. Each notebook is unique (a cell names its
student), and every run grades all of them (no cache), with the same code as
``make grade``: each notebook in a fresh kernel, in a temporary copy of its
folder. The time includes starting the kernel factory.

Prints, per ``--jobs`` setting: minutes, submissions per minute, notebooks per
minute, and the ratio of each rate to the first setting's; and whether the
course's budget (60 submissions of four notebooks in 12 minutes on a 2-core
machine) is met. Reported, never asserted: no test depends on this machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = "abcd"
BUDGET_MINUTES, BUDGET_SUBMISSIONS = 12, 60
#: A wrong answer per exercise, put in a cell after the student's own: plausible mistakes, each fails some checks.
WRONG = {
    "a": "def dominant_class(cams, class_names):\n    return {'left': class_names[0], 'right': class_names[0]}  # ignores the maps",
    "b": "_right_explain_file = explain_file\ndef explain_file(model, path):\n    name, overlay = _right_explain_file(model, path)\n"
         "    return name, overlay[..., ::-1].copy()  # BGR, as OpenCV writes",
    "c": "new_top_class = 'tabby'  # a guess instead of the model's answer",
    "d": "def first_localised_stage(shares, threshold=0.8):\n    return next((s for s in shares if shares[s] > threshold), None)  # > instead of >=",
}
KILL = "import os\nos._exit(1)  # the kernel dies, as after a segmentation fault"


def _notebook(folder: str, letter: str) -> tuple[str, nbformat.NotebookNode]:
    path = next((ROOT / "exercises" / folder).glob(f"exercise_{letter}_*.ipynb"))
    return path.name, nbformat.read(path, as_version=4)


def make_class(root: Path, submissions: int) -> list[Path]:
    """N submission folders with four notebooks each, six solutions, two wrong, one untouched, one crashing of every ten."""
    kinds = ["solution"] * 6 + ["wrong"] * 2 + ["untouched", "crashing"]
    folders = []
    for number in range(submissions):
        kind = kinds[number % len(kinds)]
        folder = root / f"student{number:03d}-{kind}"
        folder.mkdir(parents=True)
        for letter in EXERCISES:
            name, notebook = _notebook("student" if kind == "untouched" else "solution", letter)
            notebook.cells.insert(0, nbformat.v4.new_markdown_cell(f"Submitted by student {number}."))
            if kind == "wrong":
                notebook.cells.append(nbformat.v4.new_code_cell(WRONG[letter]))
            elif kind == "crashing":
                notebook.cells.insert(len(notebook.cells) // 2, nbformat.v4.new_code_cell(KILL))
            nbformat.write(notebook, folder / name)
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=BUDGET_SUBMISSIONS, help="submissions in the class (default %(default)s)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="settings of --jobs to compare (default: 1 2)")
    parser.add_argument("--no-fork", action="store_true", help="start each kernel as a new process, as without a kernel factory")
    parser.add_argument("--references", choices=["shared", "each", "both"], default="shared",
                        help="the checks' references computed once by the solutions' kernels and shared (the default), "
                             "computed in each kernel, or both, one after the other (default %(default)s)")
    args = parser.parse_args(argv)
    from utilities.grading import grade_class  # after argument parsing: --help stays fast

    print(f"Measured {time.strftime('%Y-%m-%d')}: {args.submissions} submissions x {len(EXERCISES)} notebooks, {os.cpu_count()} cores, "
          f"kernels {'started as new processes' if args.no_fork else 'forked from a factory'}", flush=True)
    rates = []
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        folders = make_class(Path(scratch), args.submissions)
        modes = ["shared", "each"] if args.references == "both" else [args.references]
        grades = {}
        for jobs, mode in itertools.product(args.jobs, modes):
            start = time.perf_counter()
            submissions = grade_class(folders, jobs=jobs, fork=not args.no_fork, progress=False, share_references=mode == "shared")
            minutes = (time.perf_counter() - start) / 60
            rate = args.submissions / minutes
            rates.append(rate)
            scores = {}
            for submission in submissions:
                kind = submission.name.split("-")[1]
                scores.setdefault(kind, set()).add(sum(submission.results[l].points for l in EXERCISES))
            # Every problem message of every notebook: the grades must not depend on how the references were had.
            grades[jobs, mode] = [(s.name, l, s.results[l].points, tuple(s.results[l].problems)) for s in submissions for l in EXERCISES]
            same = "" if len(grades) == 1 else f"; grades and messages the same as the first run: {grades[jobs, mode] == next(iter(grades.values()))}"
            print(f"--jobs {jobs}, references {mode}: {minutes:5.2f} min, {rate:5.1f} submissions/min, {rate * len(EXERCISES):5.1f} "
                  f"notebooks/min, rate x{rate / rates[0]:.2f} of the first run; points by kind: "
                  + ", ".join(f"{kind} {sorted(points)}" for kind, points in sorted(scores.items())) + same, flush=True)
            projected = BUDGET_SUBMISSIONS / rate
            print(f"  60 submissions would take {projected:.1f} min: budget of {BUDGET_MINUTES} min "
                  f"{'met' if projected <= BUDGET_MINUTES else 'NOT met'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
