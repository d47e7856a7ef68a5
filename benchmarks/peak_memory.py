"""Resident memory and its peak for the benchmarks, from Linux's /proc (None elsewhere).

The peak is the kernel's high-water mark ``VmHWM``; writing 5 to
``/proc/PID/clear_refs`` resets it to the current resident size, so the peak
of one step is exact, even for copies too short-lived for polling to see.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["reset_peak", "status_kib"]


def status_kib(field: str, pid: int | str = "self") -> int | None:
    """A ``/proc/PID/status`` field in KiB (``"VmRSS"``, ``"VmHWM"``), or None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak(pid: int | str = "self") -> bool:
    """Reset the process's ``VmHWM`` to its current resident size; False where that is not possible."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False
