"""A class on one server: N learners run lesson 00 and exercise a at the same time.

Usage: ``python scripts/simulate_class.py [--learners 8]``.

Each learner is a process of its own that runs ``notebooks/00_quickstart.ipynb``
and then the solution of exercise a (``exercises/solution/exercise_a_...``),
each in a fresh kernel, as a learner in JupyterLab would (one notebook after the
other); all learners start together. A learner's results are correct when
lesson 00 runs without an error (its claims and checks hold) and exercise a
scores full points with the grader's checks (``utilities.grading``).

While they run, the resident memory of all their kernels together is read
every 0.2 s (not of the processes that drive the kernels, which stand in for
the learners' browsers). Printed: each learner's times, the slowest learner's total, the
peak memory of the whole class and per learner (kernels only; sizing a server
takes the largest lesson's kernel from ``make bench-memory``, see the README),
and the date. Exit status 0 when every learner finished with correct
results. Kernels run with the bundled model and static figures, one thread
each (``OMP_NUM_THREADS=1``), as a hub gives each learner a share of the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "00_quickstart.ipynb"
EXERCISE = ROOT / "exercises" / "solution" / "exercise_a_cams_for_classes.ipynb"


def learner(workdir: Path) -> dict:
    """One learner's work, in this process: lesson 00, then exercise a; times and results."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    sys.path.insert(0, str(ROOT))
    from utilities.grading import grade_notebook

    report: dict = {}
    start = time.perf_counter()
    notebook = nbformat.read(LESSON, as_version=4)
    try:
        NotebookClient(
            notebook, timeout=600, kernel_name="python3", shutdown_kernel="immediate",
            resources={"metadata": {"path": str(LESSON.parent)}},
        ).execute()
        report["lesson_00"] = "ran without errors"
    except CellExecutionError as error:
        report["lesson_00"] = f"FAILED: {str(error).strip().splitlines()[-1][:200]}"
    report["lesson_00_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    result = grade_notebook(EXERCISE, "a", timeout=600)
    report["exercise_a"] = f"{len(result.passed)}/{result.total} points" + (f": {result.problems}" if result.problems else "")
    report["exercise_a_full_points"] = not result.problems
    report["exercise_a_seconds"] = time.perf_counter() - start
    report["correct"] = report["lesson_00"] == "ran without errors" and report["exercise_a_full_points"]
    return report


def _class_memory(processes: list[psutil.Process]) -> float:
    """Resident memory (MB) of the learners' kernels (not of the processes that drive them, which a hub does not have)."""
    total = 0
    for process in processes:
        try:
            family = process.children(recursive=True)
        except psutil.Error:
            continue
        for member in family:
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
    return total / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=8, help="how many learners at the same time (default 8)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: run one learner, write its report
    args = parser.parse_args(argv)
    if args.worker:
        args.worker.write_text(json.dumps(learner(args.worker.parent)))
        return 0

    environment = dict(os.environ, GRADCAM_MODEL="efficientnet_lite0", GRADCAM_NONINTERACTIVE="1",
                       OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    with tempfile.TemporaryDirectory() as folder:
        reports = [Path(folder) / f"learner_{number}" / "report.json" for number in range(args.learners)]
        for report in reports:
            report.parent.mkdir()
        start = time.perf_counter()
        workers = [
            subprocess.Popen([sys.executable, __file__, "--worker", str(report)], env=environment,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for report in reports
        ]
        handles = [psutil.Process(worker.pid) for worker in workers]
        peak = 0.0
        stop = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _class_memory(handles))
                time.sleep(0.2)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        errors = [worker.communicate()[1] for worker in workers]
        stop.set()
        poller.join()
        wall = time.perf_counter() - start
        results = []
        for number, (report, error) in enumerate(zip(reports, errors)):
            if report.exists():
                results.append(json.loads(report.read_text()))
            else:
                results.append({"correct": False, "lesson_00": f"learner crashed: {error.strip()[-300:]}"})

    cores = psutil.cpu_count() or 1
    total_memory = psutil.virtual_memory().total / 2**30
    print(f"{args.learners} learners at once on {cores} cores, {total_memory:.0f} GB of memory")
    print(f"{'learner':<9}{'lesson 00 (s)':>14}{'exercise a (s)':>16}{'total (s)':>11}  results")
    totals = []
    for number, result in enumerate(results):
        total = result.get("lesson_00_seconds", float("nan")) + result.get("exercise_a_seconds", float("nan"))
        totals.append(total)
        print(f"{number:<9}{result.get('lesson_00_seconds', float('nan')):>14.1f}{result.get('exercise_a_seconds', float('nan')):>16.1f}"
              f"{total:>11.1f}  lesson 00 {result.get('lesson_00')}; exercise a {result.get('exercise_a', '-')}")
    correct = sum(bool(result.get("correct")) for result in results)
    print(f"correct results: {correct} of {args.learners}")
    print(f"slowest learner: {max(totals):.1f} s (all done after {wall:.1f} s)")
    print(f"peak memory of the class: {peak:.0f} MB, {peak / args.learners:.0f} MB per learner")
    print(f"(kernels of lesson 00 and exercise a only, without JupyterLab's servers; to size a server, use the "
          f"largest lesson's kernel from make bench-memory plus a server and a photo: README, 'Memory')")
    print(f"measured {time.strftime('%Y-%m-%d')}; time grows with learners per core ({args.learners / cores:.0f} here)")
    return 0 if correct == args.learners else 1


if __name__ == "__main__":
    sys.exit(main())
