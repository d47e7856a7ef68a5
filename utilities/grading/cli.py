"""The grading command: ``python -m utilities.grading PATH ... [--jobs N] [--out DIR] [--json]`` (``make grade``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from ..checks import EXERCISES
from .cache import ResultCache, grader_fingerprint
from .kernels import DEFAULT_MEMORY_LIMIT, KernelFactory, can_fork_kernels
from .reports import Submission, score_table, write_feedback, write_gradebook
from .runner import NotebookResult, Status, grade_notebook

__all__ = ["NOTEBOOK_PATTERN", "find_submissions", "grade_class", "main", "submission_notebooks"]

NOTEBOOK_PATTERN = re.compile(r"^exercise_([a-e])_.*\.ipynb$")

DESCRIPTION = """\
Grade folders of submitted exercise notebooks.

Each submission is a folder with some of the notebooks exercise_a_*.ipynb ..
exercise_e_*.ipynb (other files are copied along, and otherwise ignored). A
PATH that holds no exercise notebook is taken as a folder of submissions, one
sub-folder per student. Every notebook runs in its own fresh kernel, in a
temporary copy of its folder, top to bottom and past errors; then the
exercise's checks run on what it defined. Each exercise has one point per
check and one for a notebook whose cells all run without an error.

Writes OUT/gradebook.csv (one row per student), OUT/feedback/<student>.md,
OUT/results.json, and prints the table. Results are kept in OUT/.cache, keyed
by each notebook's content and the grader's code: grading again runs only new
or changed notebooks.

Exit code: 0 if every notebook was graded (a missing one scores zero), 1 if
any could not be run to the end (timed out, kernel died, unreadable: see the
status columns), 2 for a usage error.

Grading runs the students' code with your permissions. Run it in a
throw-away account, container or virtual machine.
"""


def submission_notebooks(folder: Path) -> dict[str, Path]:
    """Exercise letter -> the submission's notebook for it (the first by name, if several)."""
    notebooks: dict[str, Path] = {}
    for path in sorted(folder.glob("*.ipynb")):
        match = NOTEBOOK_PATTERN.match(path.name)
        if match:
            notebooks.setdefault(match.group(1), path)
    return notebooks


def find_submissions(paths: list[Path]) -> list[Path]:
    """Submission folders among the given paths (a folder of submissions counts for its sub-folders).

    Raises:
        NotADirectoryError: a path is not a folder.
    """
    found = []
    for path in paths:
        if not path.is_dir():
            raise NotADirectoryError(f"{path} is not a folder: give the folder of submissions, or one submission's folder.")
        if submission_notebooks(path):
            found.append(path)
        else:
            found.extend(sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")))
    return found


def grade_class(
    folders: list[Path],
    *,
    jobs: int = 1,
    timeout: float = 300,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    cache: ResultCache | None = None,
    fork: bool = True,
    progress: bool = True,
) -> list[Submission]:
    """Grade every exercise of every submission folder, ``jobs`` notebooks at a time, each in a fresh kernel.

    Args:
        folders: one folder per student.
        jobs: notebooks run at the same time.
        timeout: seconds any one cell may run.
        memory_limit: bytes of data each kernel may allocate (``None``: no limit).
        cache: where results are kept and looked up; ``None`` runs every notebook.
        fork: fork kernels from a :class:`KernelFactory` (Linux), instead of starting each as a new process.
        progress: show a progress bar on standard error.

    Returns:
        One :class:`Submission` per folder, in the given order; a missing notebook scores zero.
    """
    results: dict[tuple[int, str], NotebookResult] = {}
    pending: list[tuple[int, str, Path, str | None]] = []
    for index, folder in enumerate(folders):
        notebooks = submission_notebooks(folder)
        for letter in EXERCISES:
            if letter not in notebooks:
                results[index, letter] = NotebookResult(letter, "", Status.NOT_SUBMITTED, problems=["no notebook submitted"])
                continue
            key = cache.key(notebooks[letter], letter) if cache else None
            found = cache.get(key) if cache and key else None
            if found:
                results[index, letter] = found
            else:
                pending.append((index, letter, notebooks[letter], key))
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    with ExitStack() as stack:
        factory = None
        if pending and fork and can_fork_kernels():
            # The factory imports once what every kernel would import (about 4 s each), with one thread.
            factory = stack.enter_context(KernelFactory({**os.environ, "OMP_NUM_THREADS": "1"}))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, jobs)))
        futures = {
            pool.submit(grade_notebook, path, letter, timeout, factory=factory, memory_limit=memory_limit, threads=threads): (index, letter, key)
            for index, letter, path, key in pending
        }
        bar = stack.enter_context(tqdm(total=len(futures), unit="notebook", disable=not progress or not futures, file=sys.stderr))
        for future in as_completed(futures):
            index, letter, key = futures[future]
            results[index, letter] = result = future.result()
            if cache and key:
                cache.put(key, result)
            bar.update()
    return [Submission(folder.name, {letter: results[index, letter] for letter in EXERCISES}) for index, folder in enumerate(folders)]


def _report(submissions: list[Submission]) -> dict:
    return {
        "submissions": [
            {
                "student": s.name, "points": s.points, "max_points": s.total,
                "exercises": {letter: {**r.to_dict(), "points": r.points, "max_points": r.total} for letter, r in s.results.items()},
            }
            for s in submissions
        ],
        "could_not_grade": [f"{s.name}/{r.notebook}" for s in submissions for r in s.results.values() if r.status in Status.FAILURES],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utilities.grading", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="submission folders, or folders of them")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="notebooks graded at the same time (default: the number of cores, %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where the gradebook, feedback and cache go (default: ./grades)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds any one cell may run (default 300)")
    parser.add_argument(
        "--memory-limit", type=float, default=DEFAULT_MEMORY_LIMIT / 1024**3,
        help="GiB of data each notebook's kernel may allocate, 0 for no limit (default %(default)g; Linux)",
    )
    parser.add_argument("--no-cache", action="store_true", help="grade every notebook again, ignoring kept results")
    parser.add_argument("--no-fork", action="store_true", help="start every kernel as a new process instead of forking it (slower)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    args = parser.parse_args(argv)
    # A killed kernel leaves nbclient's message poller pending; asyncio would report it at exit as an error.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        folders = find_submissions(args.paths)
    except NotADirectoryError as error:
        parser.error(str(error))
    if not folders:
        print("No submissions found: give a folder with exercise_*.ipynb notebooks, or a folder of such folders.", file=sys.stderr)
        return 2
    memory_limit = int(args.memory_limit * 1024**3) or None
    cache = None if args.no_cache else ResultCache(args.out / ".cache", grader_fingerprint({"timeout": args.timeout, "memory_limit": memory_limit}))
    submissions = grade_class(folders, jobs=args.jobs, timeout=args.timeout, memory_limit=memory_limit, cache=cache, fork=not args.no_fork)
    report = _report(submissions)
    gradebook = write_gradebook(submissions, args.out / "gradebook.csv")
    feedback = write_feedback(submissions, args.out / "feedback")
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(score_table(submissions))
        reused = sum(r.cached for s in submissions for r in s.results.values())
        print(f"\nGradebook: {gradebook}\nFeedback: {len(feedback)} files in {feedback[0].parent}\n"
              f"Notebooks graded now: {sum(1 for s in submissions for r in s.results.values() if r.notebook and not r.cached)}, "
              f"results kept from before: {reused}")
    if report["could_not_grade"]:
        print("Could not be run to the end (see the status columns): " + ", ".join(report["could_not_grade"]), file=sys.stderr)
        return 1
    return 0
