"""The grading command: ``python -m utilities.grading PATH ... [--jobs N] [--out DIR] [--json]`` (``make grade``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ..checks import EXERCISES
from ..checks.reference_store import MANIFEST_ENV, STORE_ENV, WRITE_ENV, manifest
from .cache import ResultCache, grader_fingerprint
from .kernels import DEFAULT_MEMORY_LIMIT, KernelFactory, can_fork_kernels
from .reports import Submission, score_table, write_feedback, write_gradebook
from .runner import NotebookResult, Status, grade_notebook

__all__ = ["NOTEBOOK_PATTERN", "default_jobs", "grading_model", "find_submissions", "grade_class", "main", "submission_notebooks"]

NOTEBOOK_PATTERN = re.compile(r"^exercise_([a-f])_.*\.ipynb$", re.IGNORECASE)

DESCRIPTION = """\
Grade folders of submitted exercise notebooks.

Each submission is a folder with some of the notebooks exercise_a_*.ipynb ..
exercise_f_*.ipynb (other files are copied along, and otherwise ignored). A
PATH that holds no exercise notebook is taken as a folder of submissions, one
sub-folder per student. Every notebook runs in its own fresh kernel, in a
temporary copy of its folder, top to bottom and past errors; then the
exercise's checks run on what it defined. Each exercise has one point per
check and one for a notebook whose cells all run without an error.

Writes OUT/gradebook.csv (one row per student), OUT/feedback/<student>.md,
OUT/results.json, and prints the table. Results are kept in OUT/.cache, keyed
by each notebook's content and the grader's code: grading again runs only new
or changed notebooks.

Exit code: 0 when the gradebook was written: every submission was graded,
including notebooks that crashed, timed out or killed their kernel (a
student's outcome, scored and named in the status columns and the feedback;
a missing notebook scores zero). 1 only with --strict, when some notebook
could not be run to the end. 2 for a usage error, 130 if interrupted.

Grading runs the students' code with your permissions. Run it in a
throw-away account, container or virtual machine.
"""


def grading_model() -> str:
    """The model every kernel of one run uses: ``GRADCAM_MODEL`` if set; else ResNet50 if its weights are on disk,
    else the bundled EfficientNet-Lite0. Fixed once, so that no kernel decides differently (a download finishing
    half-way through a class), and part of the cache's key."""
    from ..models import MODEL_ENV_VARIABLE, resnet50_weights_path

    return os.environ.get(MODEL_ENV_VARIABLE) or ("resnet50" if resnet50_weights_path().exists() else "efficientnet_lite0")


def default_jobs() -> int:
    """The number of cores, but at most one kernel per 2 GB of memory (an exercise's kernel peaks near 1.5 GB)."""
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # not every system reports it
        return cores
    return max(1, min(cores, memory // (2 * 1024**3)))


def _exercise_notebooks(folder: Path) -> dict[str, list[Path]]:
    """Exercise letter -> the folder's notebooks for it (names of any case), newest first."""
    found: dict[str, list[Path]] = {}
    for path in folder.glob("*.ipynb"):
        match = NOTEBOOK_PATTERN.match(path.name)
        if match and path.is_file():
            found.setdefault(match.group(1).lower(), []).append(path)
    for paths in found.values():
        paths.sort(key=lambda path: (-path.stat().st_mtime, path.name))
    return found


def submission_notebooks(folder: Path, warn: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Exercise letter -> the submission's notebook for it.

    Notebooks in a sub-folder count when the folder itself has none (a student who handed in a folder
    inside the folder); of several notebooks for one exercise the most recently changed counts.

    Args:
        folder: one student's folder.
        warn: called with a message for each of these choices, for the teacher.

    Returns:
        The notebooks found; an exercise without one is missing from the dict.
    """
    found = _exercise_notebooks(folder)
    if not found:
        for sub_folder in sorted(p for p in folder.rglob("*") if p.is_dir() and ".ipynb_checkpoints" not in p.parts):
            found = _exercise_notebooks(sub_folder)
            if found:
                if warn:
                    warn(f"{folder.name}: graded the notebooks in its sub-folder {sub_folder.relative_to(folder)}")
                break
    for letter, paths in sorted(found.items()):
        if len(paths) > 1 and warn:
            others = ", ".join(path.name for path in paths[1:])
            warn(f"{folder.name}: {len(paths)} notebooks for exercise {letter}; graded the newest, {paths[0].name} (not {others})")
    return {letter: paths[0] for letter, paths in found.items()}


def find_submissions(paths: list[Path], exclude: Path | None = None, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Submission folders among the given paths (a folder of submissions counts for its sub-folders).

    A path with exercise notebooks, none of whose sub-folders has any, is one submission; otherwise each
    sub-folder is one (exercise notebooks lying next to them are ignored, with a warning).

    Args:
        paths: folders given by the teacher.
        exclude: a folder never taken as a submission (where the grades are written).
        warn: called with a message for each ignored notebook.

    Returns:
        The submission folders, in order.

    Raises:
        NotADirectoryError: a path is not a folder.
    """
    found = []
    for path in paths:
        if not path.is_dir():
            raise NotADirectoryError(f"{path} is not a folder: give the folder of submissions, or one submission's folder.")
        sub_folders = sorted(
            p for p in path.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (exclude is None or p.resolve() != exclude.resolve())
        )
        loose = sorted(p.name for paths_ in _exercise_notebooks(path).values() for p in paths_)
        if loose and not any(_exercise_notebooks(sub_folder) for sub_folder in sub_folders):
            found.append(path)  # one student's folder (its sub-folders hold data, not submissions)
            continue
        if loose and warn:
            warn(f"{path}: ignored {', '.join(loose)} next to the student folders (move them into a student's folder)")
        found.extend(sub_folders)
    return found


#: Notebooks of one exercise to grade from which its references are computed once and shared.
SHARE_FROM = 3
#: The solution notebooks, run first in a grading run to compute the checks' references once (see _shared_references).
SOLUTIONS = Path(__file__).resolve().parents[2] / "exercises" / "solution"


def _shared_references(stack: ExitStack, pool: ThreadPoolExecutor, letters: set[str], environment: dict[str, str],
                       timeout: float, **grading: object) -> dict[str, str]:
    """The students' kernel environment with the references of each exercise's solution, computed once.

    Each solution notebook runs in a kernel of its own with a new reference store to write
    (:mod:`utilities.checks.reference_store`); the students' kernels get the store and the manifest of its files'
    hashes, so each check reads its references instead of computing them again, and reads only what the
    solution's kernel wrote. Without the solution notebooks (an installed package), the environment is unchanged.
    """
    solutions = {letter: next(SOLUTIONS.glob(f"exercise_{letter}_*.ipynb"), None) for letter in sorted(letters)}
    solutions = {letter: path for letter, path in solutions.items() if path is not None}
    if not solutions:
        return environment
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="grading-references-")))
    writing = {**environment, STORE_ENV: str(folder), WRITE_ENV: "1"}
    for future in [pool.submit(grade_notebook, path, letter, timeout, environment=writing, **grading)
                   for letter, path in solutions.items()]:
        future.result()  # its grade is not used: only the references it left
    return {**environment, STORE_ENV: str(folder), MANIFEST_ENV: json.dumps(manifest(folder))}


def grade_class(
    folders: list[Path],
    *,
    jobs: int = 1,
    timeout: float = 300,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    cache: ResultCache | None = None,
    fork: bool = True,
    progress: bool = True,
    model: str | None = None,
    warn: Callable[[str], None] | None = None,
    share_references: bool = True,
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
        model: the model name every kernel gets as ``GRADCAM_MODEL`` (default: :func:`grading_model`).
        warn: called with a message for each choice the teacher should know about (see :func:`submission_notebooks`).
        share_references: for an exercise with at least :data:`SHARE_FROM` notebooks to grade, run its solution
            notebook first and let the students' kernels read the references its checks computed (see
            :func:`_shared_references`), instead of each computing them.

    Returns:
        One :class:`Submission` per folder, in the given order; a missing notebook scores zero.
    """
    results: dict[tuple[int, str], NotebookResult] = {}
    pending: list[tuple[int, str, Path, str | None]] = []
    for index, folder in enumerate(folders):
        notebooks = submission_notebooks(folder, warn)
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
    environment = {"GRADCAM_MODEL": model or grading_model()}
    with ExitStack() as stack:
        factory = None
        if pending and fork and can_fork_kernels():
            # The factory imports once what every kernel would import (about 4 s each), with one thread.
            factory = stack.enter_context(KernelFactory({**os.environ, **environment, "OMP_NUM_THREADS": "1"}))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, jobs)))
        # A solution's run costs about one notebook: it pays for itself from about three notebooks of its exercise on.
        counts = Counter(letter for _, letter, _, _ in pending)
        shared = {letter for letter, count in counts.items() if count >= SHARE_FROM}
        if shared and share_references:
            environment = _shared_references(stack, pool, shared, environment, timeout,
                                             factory=factory, memory_limit=memory_limit, threads=threads)
        futures = {
            pool.submit(
                grade_notebook, path, letter, timeout, factory=factory, memory_limit=memory_limit, threads=threads, environment=environment
            ): (index, letter, key)
            for index, letter, path, key in pending
        }
        bar = stack.enter_context(tqdm(total=len(futures), unit="notebook", disable=not progress or not futures, file=sys.stderr))
        try:
            for future in as_completed(futures):
                index, letter, key = futures[future]
                results[index, letter] = result = future.result()
                if cache and key:
                    cache.put(key, result)
                bar.update()
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()  # the ones not started; the running ones end with their kernels
            raise
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
    """The command line: grade, write the gradebook, feedback and JSON, print the table.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        0 if every notebook was graded, 1 if some could not be run to the end, 2 for a usage error, 130 if interrupted.
    """
    parser = argparse.ArgumentParser(prog="python -m utilities.grading", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="submission folders, or folders of them")
    parser.add_argument(
        "--jobs", "-j", type=int, default=default_jobs(),
        help="notebooks graded at the same time (default: the number of cores, at most one per 2 GB of memory: %(default)s here)",
    )
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where the gradebook, feedback and cache go (default: ./grades)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds any one cell may run (default 300)")
    parser.add_argument(
        "--memory-limit", type=float, default=DEFAULT_MEMORY_LIMIT / 1024**3,
        help="GiB of data each notebook's kernel may allocate, 0 for no limit (default %(default)g; Linux)",
    )
    parser.add_argument("--no-cache", action="store_true", help="grade every notebook again, ignoring kept results")
    parser.add_argument("--no-fork", action="store_true", help="start every kernel as a new process instead of forking it (slower)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument(
        "--strict", action="store_true",
        help="exit with 1 when some notebook could not be run to the end (timed out, kernel died, unreadable)",
    )
    args = parser.parse_args(argv)
    # A killed kernel leaves nbclient's message poller pending; asyncio would report it at exit as an error.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    def warn(message: str) -> None:
        print(f"Note: {message}", file=sys.stderr)

    try:
        folders = find_submissions(args.paths, exclude=args.out, warn=warn)
    except NotADirectoryError as error:
        parser.error(str(error))
    if not folders:
        print("No submissions found: give a folder with exercise_*.ipynb notebooks, or a folder of such folders.", file=sys.stderr)
        return 2
    memory_limit = int(args.memory_limit * 1024**3) or None
    model = grading_model()
    settings = {"timeout": args.timeout, "memory_limit": memory_limit, "model": model}
    cache = None if args.no_cache else ResultCache(args.out / ".cache", grader_fingerprint(settings))
    try:
        submissions = grade_class(
            folders, jobs=args.jobs, timeout=args.timeout, memory_limit=memory_limit, cache=cache, fork=not args.no_fork, model=model, warn=warn
        )
    except KeyboardInterrupt:
        print(f"\nInterrupted. Notebooks graded so far are kept in {args.out / '.cache'}: the same command goes on from there.", file=sys.stderr)
        return 130
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
        if args.strict:
            return 1
    return 0
