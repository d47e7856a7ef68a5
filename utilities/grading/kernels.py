"""Fresh Jupyter kernels for grading: limited in memory, and started in well under a second by forking.

Every graded notebook runs in its own new kernel process. Starting one the
usual way costs about 4 s here before the first cell runs: Python, IPython,
torch, torchvision and ``utilities`` are imported again every time. A
:class:`KernelFactory` is a process that imports all of them once and then
forks a new kernel for each notebook (Linux's ``fork``: the child shares the
parent's memory pages until it writes them). The kernel is still a new
process with empty globals, its own working directory and environment; only
the imports are done already.

Memory: each kernel's data segment (``RLIMIT_DATA``; on Linux it counts the
heap and every private writable mapping, so NumPy and torch allocations too)
is limited, so a notebook that allocates without end gets a ``MemoryError``
(or torch's "can't allocate memory") instead of taking the machine down.
Platforms without ``RLIMIT_DATA`` run without a limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

try:
    import resource
except ImportError:  # Windows: no resource limits
    resource = None  # type: ignore[assignment]

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

__all__ = ["DEFAULT_MEMORY_LIMIT", "KernelFactory", "can_fork_kernels", "limited_kernel_manager"]

#: Bytes of data a grading kernel may allocate (``RLIMIT_DATA``). The exercises' kernels use about 1.5 GB of it
#: (PyTorch's libraries alone map about 0.8 GB of writable data); 4 GB leaves room for a student's larger images.
DEFAULT_MEMORY_LIMIT = 4 * 1024**3

# Imported once in the factory, so a forked kernel starts with them: what every exercise notebook imports first;
# what PyTorch imports on the first backward pass with a given gradient (grad_cam's): SymPy, 0.3-0.5 s a kernel;
# and what IPython imports to show a traceback, which must work when a cell has used up the memory limit.
PRELOADED_MODULES = ("ipykernel.kernelapp", "matplotlib_inline.backend_inline", "matplotlib.pyplot", "utilities", "utilities.checks",
                     "torch.fx.experimental.symbolic_shapes", "torch.nested._internal.nested_tensor",
                     "pygments.formatters.terminal256", "pygments.lexers.python")


def can_fork_kernels() -> bool:
    """Whether kernels can be forked from a factory here (Linux; macOS's system libraries are not fork-safe)."""
    return sys.platform.startswith("linux")


def _limit_memory(limit: int | None) -> None:
    """In a kernel about to start: cap its data segment at ``limit`` bytes (no cap for ``None``).

    An account whose own hard limit is lower keeps that one: a process may not raise its hard limit.
    """
    if limit and resource is not None and hasattr(resource, "RLIMIT_DATA"):
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard if hard != resource.RLIM_INFINITY else limit))


class ForkedProcess:
    """The few parts of :class:`subprocess.Popen` that jupyter_client uses, for a kernel forked by a factory.

    The factory, not this process, is the kernel's parent and reaps it; so the kernel counts as alive
    while its process id exists.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None

    def poll(self) -> int | None:
        """None while the kernel runs, else its exit status (-1: unknown, the factory reaped it)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1  # exit status unknown: the factory reaped it
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the kernel has ended; :class:`subprocess.TimeoutExpired` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        """Signal the kernel and every process it started."""
        try:
            os.killpg(self.pid, signum)  # the kernel leads its own process group: its children go too
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """Kill the kernel and what it started."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """Ask the kernel and what it started to end."""
        self.send_signal(signal.SIGTERM)


class KernelFactory:
    """A process with the course's imports done, that forks a fresh kernel per notebook.

    Use it as a context manager; it is safe to use from several threads.

    Args:
        env: environment of the factory (and so of its kernels' imports), e.g. ``OMP_NUM_THREADS``.
    """

    def __init__(self, env: dict[str, str] | None = None) -> None:
        environment = dict(os.environ if env is None else env)
        # ipykernel reads JPY_PARENT_PID when imported. A forked kernel's parent is the factory, not this pid, so
        # ipykernel's poller falls back to watching for its parent to become init: a kernel then exits when the
        # factory is gone (where orphans go to init; the factory also kills its kernels when it stops).
        environment["JPY_PARENT_PID"] = str(os.getpid())
        environment.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "utilities.grading.factory"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment, text=True, bufsize=1,
        )
        self._lock = threading.Lock()
        ready = self._process.stdout.readline() if self._process.stdout else ""
        if not ready.startswith("ready"):
            self.close()
            raise RuntimeError(f"the kernel factory did not start (it said {ready.strip()!r}); grade with --no-fork instead")

    def start(self, argv: list[str], cwd: str, env: dict[str, str], memory_limit: int | None) -> ForkedProcess:
        """Fork a kernel that runs ``ipykernel_launcher argv`` in ``cwd`` with ``env``."""
        request = json.dumps({"argv": argv, "cwd": cwd, "env": env, "memory_limit": memory_limit})
        with self._lock:
            assert self._process.stdin and self._process.stdout
            self._process.stdin.write(request + "\n")
            self._process.stdin.flush()
            reply = json.loads(self._process.stdout.readline() or '{"error": "the kernel factory exited"}')
        if "error" in reply:
            raise RuntimeError(f"could not start a kernel: {reply['error']}")
        return ForkedProcess(reply["pid"])

    def close(self) -> None:
        """Stop the factory; it kills any kernel of its own still running."""
        if self._process.poll() is None:
            if self._process.stdin:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> "KernelFactory":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _GradingProvisioner(LocalProvisioner):
    """Starts the kernel with a memory limit, forked from a factory when one is given."""

    factory: KernelFactory | None = None
    memory_limit: int | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        if self.factory is None:
            limit = self.memory_limit
            if limit and os.name == "posix":  # preexec_fn exists only there
                kwargs["preexec_fn"] = lambda: _limit_memory(limit)
            return await super().launch_kernel(cmd, **kwargs)
        module = cmd.index("ipykernel_launcher") if "ipykernel_launcher" in cmd else None
        if module is None:
            raise RuntimeError(f"a forked kernel needs ipykernel's kernel command, not {cmd}")
        env = kwargs.get("env") or dict(os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        self.process = self.factory.start(cmd[module + 1 :], cwd, env, self.memory_limit)  # type: ignore[assignment]
        self.pid = self.pgid = self.process.pid  # type: ignore[union-attr]
        self.cwd = cwd
        return self.connection_info


def limited_kernel_manager(factory: KernelFactory | None, memory_limit: int | None) -> AsyncKernelManager:
    """A kernel manager for the ``python3`` kernel whose kernel is memory-limited and, with a factory, forked.

    Args:
        factory: where to fork kernels from; ``None`` starts each kernel as a new Python process.
        memory_limit: bytes of data the kernel may allocate, or ``None`` for no limit.

    Returns:
        A manager to hand to ``nbclient.NotebookClient(km=...)``.
    """
    manager = AsyncKernelManager(kernel_name="python3")
    manager.kernel_id = str(uuid.uuid4())
    provisioner = _GradingProvisioner(kernel_id=manager.kernel_id or "", kernel_spec=manager.kernel_spec, parent=manager)
    provisioner.factory, provisioner.memory_limit = factory, memory_limit
    manager.provisioner = provisioner
    return manager
