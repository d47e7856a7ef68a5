"""The kernel factory's process (``python -m utilities.grading.factory``); see :mod:`utilities.grading.kernels`.

It imports what every exercise notebook imports, says ``ready``, then reads one
JSON request per line on standard input and answers each with the process id
of a forked kernel. It stops, killing its kernels, when standard input closes.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys

from .kernels import PRELOADED_MODULES, _limit_memory

__all__ = ["serve"]


def _run_kernel(request: dict) -> None:
    """In the forked child: become a fresh ipykernel as ``ipykernel_launcher`` would; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the student's subprocesses must be waitable
        os.setsid()  # its own process group: killing the kernel kills what it started
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1 << 16)  # the factory's pipes are not the kernel's business
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _limit_memory(request["memory_limit"])
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit():
            import torch

            torch.set_num_threads(int(threads))  # torch read the factory's setting when it was imported
        sys.argv = ["ipykernel_launcher", *request["argv"]]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - nothing to report to: the grader sees a dead kernel
        code = 1
    finally:
        os._exit(code)


def serve() -> None:
    """Import, then fork a kernel per request until standard input closes."""
    for name in PRELOADED_MODULES:
        importlib.import_module(name)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # the factory's own folder, which `-m` added; IPython adds each notebook's folder itself
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped automatically: no zombies
    children: list[int] = []
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            try:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _run_kernel(request)
                children.append(pid)
                print(json.dumps({"pid": pid}), flush=True)
            except Exception as error:  # noqa: BLE001 - reported to the grader, who goes on
                print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
    finally:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


if __name__ == "__main__":
    try:
        serve()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the grader reports it
        sys.exit(130)
