"""A learner's memory: the peak resident memory of each lesson's kernel.

Usage: ``python benchmarks/bench_notebook_memory.py [NOTEBOOK ...] [--cells N]``
(or ``make bench-memory``; default: every notebook in ``notebooks/``).

Each notebook runs top to bottom in a fresh kernel, as a learner's JupyterLab
runs it, with the bundled model and static figures (as
``scripts/execute_notebooks.py`` runs them; nothing is written back). The
kernel's resident memory is polled every 20 ms; on Linux the kernel's own
high-water mark (``VmHWM``) is also read after every cell and then reset, which
catches peaks shorter than the polling interval, and gives each cell's peak.

Prints one row per notebook: the kernel's peak, its own peak (anonymous memory,
``RssAnon``, polled: the heap and the tensors, without the mapped library files,
so it does not depend on the page cache), its memory after the last cell
(what it keeps holding while the learner moves on to the next notebook), the
cell that reached the peak, and the time from kernel start to the last cell.
``--cells N`` also lists each notebook's N cells with the highest peaks.

Budget from the course's issue tracker: every lesson's kernel at most
1.2 GB (1200 MB), reported, not asserted (a test may not depend on this
machine). Memory figures here are MB of 2**20 bytes.

Resident memory includes the pages of PyTorch's libraries that the kernel has
mapped, and how many it maps depends on the page cache: right after the
environment is installed, when the library files are wholly in the cache, the
same notebook shows about 225 MB more (measured: lesson 04 959 MB, and 733 MB
after ``sync; echo 1 > /proc/sys/vm/drop_caches``). Those pages are shared by
every kernel and given back under memory pressure. Compare runs made in the
same state of the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient
from peak_memory import reset_peak, status_kib

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MB = 1200


def _status_mb(pid: int, field: str) -> float | None:
    kib = status_kib(field, pid)
    return None if kib is None else kib / 1024


@dataclass
class KernelMemory:
    """Peak and per-cell resident memory of one kernel, in MB."""

    peak: float = 0.0
    anonymous_peak: float = 0.0  # polled RssAnon: the kernel's own memory, without mapped library files
    cells: list[tuple[int, float, float, str]] = field(default_factory=list)  # (cell index, peak, after, first line)
    final: float = 0.0


def measure(path: Path) -> tuple[KernelMemory, float]:
    notebook = nbformat.read(path, as_version=4)
    memory = KernelMemory()
    stop = threading.Event()
    pid_box: list[int] = []

    def poll() -> None:
        while not stop.is_set():
            if pid_box:
                try:
                    memory.peak = max(memory.peak, psutil.Process(pid_box[0]).memory_info().rss / 2**20)
                except psutil.Error:
                    pass
                memory.anonymous_peak = max(memory.anonymous_peak, _status_mb(pid_box[0], "RssAnon") or 0.0)
            time.sleep(0.02)

    def after_cell(cell, cell_index, **_) -> None:
        pid = pid_box[0] if pid_box else None
        if pid is None or cell.cell_type != "code":
            return
        peak = _status_mb(pid, "VmHWM")
        memory.anonymous_peak = max(memory.anonymous_peak, _status_mb(pid, "RssAnon") or 0.0)
        memory.final = _status_mb(pid, "VmRSS") or psutil.Process(pid).memory_info().rss / 2**20
        if peak is not None:
            memory.cells.append((cell_index, peak, memory.final, (cell.source.splitlines() or [""])[0][:60]))
            memory.peak = max(memory.peak, peak)
            reset_peak(pid)

    def before_cell(cell, cell_index, **_) -> None:
        if not pid_box and client.km is not None:
            pid_box.append(client.km.provisioner.pid)

    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=before_cell,
        on_cell_executed=after_cell,
    )
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        stop.set()
        poller.join()
    return memory, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--cells", type=int, default=0, help="also list each notebook's N cells with the highest peaks")
    parser.add_argument("--trace", action="store_true", help="also list every code cell in order: its peak and the memory after it")
    args = parser.parse_args()
    os.environ["GRADCAM_MODEL"] = "efficientnet_lite0"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["GRADCAM_NONINTERACTIVE"] = "1"
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))

    print(f"{'notebook':<40}{'peak (MB)':>10}{'own peak':>10}{'after last cell':>17}{'time (s)':>10}  peak cell")
    over = []
    for path in paths:
        memory, seconds = measure(path)
        top = max(memory.cells, key=lambda cell: cell[1], default=(None, 0.0, 0.0, ""))
        print(f"{path.name:<40}{memory.peak:>10.0f}{memory.anonymous_peak:>10.0f}{memory.final:>17.0f}{seconds:>10.1f}  {top[0]}: {top[3]}", flush=True)
        listed = memory.cells if args.trace else sorted(memory.cells, key=lambda cell: -cell[1])[: args.cells]
        for index, peak, after, line in listed:
            print(f"{'':<8}cell {index:>3}: peak {peak:6.0f} MB, after {after:6.0f} MB  {line}")
        if memory.peak > BUDGET_MB:
            over.append(path.name)
    print(f"Budget: every lesson's kernel at most {BUDGET_MB} MB: " + ("met." if not over else f"NOT met by {', '.join(over)}."))
    print(f"Measured {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, torch {version('torch')}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
