"""Execute notebooks top to bottom in place, as they are committed, and time each.

Usage: ``python scripts/execute_notebooks.py [--jobs N] [NOTEBOOK ...]`` (default:
all of notebooks/). ``--jobs 2`` runs two notebooks at a time, one kernel each,
which on 2 cores roughly halves the series' wall time: most of a short lesson's
time is its kernel starting and importing torch, which uses one core. With N
jobs each kernel gets its share of the cores as PyTorch threads (2 kernels with
2 threads each on 2 cores wait for each other), and the notebooks start longest
first, by the time their committed run took, so that no long lesson starts last
while the other kernels sit idle. Runs with the bundled model (``GRADCAM_MODEL=efficientnet_lite0``),
the model nbval uses, so committed outputs and test runs agree, and with static
figures in place of widgets (``GRADCAM_NONINTERACTIVE=1``). Lessons 10 and 10b
train small models, which ``train_classifier`` keeps in a cache on disk: a run
starts with an empty one of its own (unless ``GRADCAM_TRAINING_CACHE`` is set),
shared by its notebooks, so committed outputs and times are those of a run from
scratch, in which 10b loads 10's models.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def jupyterlab_metadata() -> dict:
    """The kernelspec and language_info that JupyterLab writes into a notebook when this environment's kernel starts.

    A notebook committed with anything else is marked changed the moment a learner opens it ("Save changes?" on
    close; autosave then writes it, and on a hub nbgitpuller keeps that copy instead of the teacher's fixes).
    """
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    return {
        "kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": "python3"},
        "language_info": dict(IPythonKernel.language_info),
    }


def committed_seconds(path: Path) -> float:
    """How long the notebook's committed run took, from nbclient's timestamps on its cells (0 if it has none)."""
    stamps = [
        (execution["iopub.execute_input"], execution["shell.execute_reply"])
        for cell in nbformat.read(path, as_version=4).cells
        if (execution := cell.get("metadata", {}).get("execution", {})).keys() >= {"iopub.execute_input", "shell.execute_reply"}
    ]
    if not stamps:
        return 0.0
    start, end = datetime.fromisoformat(stamps[0][0]), datetime.fromisoformat(stamps[-1][1])
    return (end - start).total_seconds()


def execute(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    # Immediate shutdown: a graceful one of a kernel that has loaded torch takes about 2 s more, after the last cell.
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", shutdown_kernel="immediate", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    elapsed = time.perf_counter() - start
    notebook.metadata.update(jupyterlab_metadata())
    nbformat.write(notebook, path)
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Execute notebooks top to bottom in place, as committed, and time each.")
    parser.add_argument("notebooks", nargs="*", help="notebooks to execute (default: every notebook in notebooks/)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="notebooks executed at a time, one kernel each (default: 1)")
    arguments = parser.parse_args(argv)
    paths = arguments.notebooks
    if arguments.jobs < 1:
        parser.error("--jobs must be 1 or more")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    os.environ["GRADCAM_MODEL"] = "efficientnet_lite0"
    # As under the tests (conftest.py): idle OpenMP threads sleep instead of spinning, which a busy machine punishes.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Committed outputs show static figures, which render anywhere (e.g. on GitHub).
    os.environ["GRADCAM_NONINTERACTIVE"] = "1"
    if arguments.jobs > 1:  # each kernel's share of the cores; torch reads it when the kernel imports it
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // arguments.jobs)))
    notebooks = [Path(p).resolve() for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    longest_first = sorted(notebooks, key=committed_seconds, reverse=True) if arguments.jobs > 1 else notebooks
    total = 0.0
    start = time.perf_counter()
    fresh_cache = tempfile.TemporaryDirectory(prefix="trained-models-")
    os.environ.setdefault("GRADCAM_TRAINING_CACHE", fresh_cache.name)  # see utilities.planted
    # Threads suffice: each notebook's work happens in its own kernel process.
    with fresh_cache, ThreadPoolExecutor(max_workers=arguments.jobs) as pool:
        futures = {pool.submit(execute, path): path for path in longest_first}
        for future in as_completed(futures):  # printed as each finishes
            path, seconds = futures[future], future.result()
            total += seconds
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            print(f"{shown}: {seconds:.1f} s", flush=True)
    wall = time.perf_counter() - start
    print(f"total: {total:.1f} s" + (f" of kernel time, {wall:.1f} s wall time with {arguments.jobs} at a time" if arguments.jobs > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
