"""How many learners one server holds: N learners log in to ``make hub`` at once and run lesson 00.

Usage: ``python benchmarks/bench_hub.py [--learners 8] [--server-gb 24] [--headroom-gb 2] [--json out.json]``
(or ``make bench-hub N=8``).

It starts the course's JupyterHub (``scripts/hub.py``: the proxy, the idle
culler, one JupyterLab server per learner as a process) on a free loopback port
in a temporary folder, with N learners. All N start at the same moment, one
thread each, and each does what a learner does at the start of a class,
through ``scripts/hub_client.py`` (as ``tests/test_hub.py`` does): log in
through the login form, have the hub start their server, pull the course with
the class link (nbgitpuller clones this repository's last commit), then run
lesson 00's code cells one by one in a kernel of their server, over its
websocket. The kernels stay running at the end, as a learner's open tab keeps
its kernel.

Times, per learner, from the moment they log in: their server ready, the course
pulled, the first figure on screen, the last cell done; and the lesson itself,
from asking for the kernel to the last cell.

Memory: every 0.5 s, every process of the hub (the hub, the proxy, the culler,
each learner's server, its kernels and the git of its pull) is read from
``/proc/PID/smaps_rollup``: resident memory (RSS), proportional set size (PSS:
a page shared by k processes counts 1/k in each, so a sum of PSS counts the
shared PyTorch libraries once, as the machine holds them) and unique memory
(USS). The peak of the total is reported; its PSS is what the class takes from
the server. A peak shorter than 0.5 s can be missed; each process's own
high-water mark (``VmHWM``) is summed as an upper bound.

From the peak: how many learners a server of ``--server-gb`` holds, leaving
``--headroom-gb`` for the operating system, the file cache and the teacher:
(server - headroom - the hub's own share) / (the rest per learner). Lesson 00
is one of the lighter lessons; the same sum with the README's budget of 1.8 GB
per learner (the largest lesson, plus a phone photo) is printed beside it.
Memory sets how many learners fit; the CPU sets how long each waits: with
everyone running cells at once, every cell takes about as many times longer
as there are learners per core, which the times above show.

Figures are GB of 2**30 bytes, as the README's Memory section. Times depend on
how busy the machine is: the load average at the start and the end is printed
with them. The hub and every process it started are stopped at the end, also
after a failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import hub  # noqa: E402 - scripts/hub.py
import hub_client  # noqa: E402 - scripts/hub_client.py

GB = 2**30
SAMPLE_EVERY_S = 0.5
#: The README's budget per learner (one notebook at a time, the largest lesson, plus a phone photo), in GB.
BUDGET_PER_LEARNER_GB = 1.8
DEFAULT_SERVER_GB = 24.0
DEFAULT_HEADROOM_GB = 2.0
#: Generous: a class of 16 on two cores starts its servers and kernels slowly.
SERVER_READY_S = 900
CELL_LIMIT_S = 900


# ---------------------------------------------------------------------------------------------------- memory

def read_memory(pid: int) -> dict[str, int] | None:
    """A process's RSS, PSS, USS and VmHWM in bytes (from /proc); ``None`` when it is gone or cannot be read.

    Where ``smaps_rollup`` cannot be read, PSS and USS are the RSS (an overestimate)."""
    memory: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                memory[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                memory[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    rss = memory.get("Rss", memory.get("VmRSS"))
    if rss is None:
        return None  # a zombie: no memory
    uss = memory["Private_Clean"] + memory["Private_Dirty"] if "Private_Clean" in memory else rss
    return {"rss": rss, "pss": memory.get("Pss", rss), "uss": uss, "hwm": memory.get("VmHWM", rss)}


def owner(cwd: str, homes: Path) -> str | None:
    """The learner whose home a process works in (their server, kernels, git), or ``None`` (the hub's own)."""
    try:
        relative = Path(cwd).relative_to(homes)
    except ValueError:
        return None
    return relative.parts[0] if relative.parts else None


@dataclass
class Sample:
    """One look at every process of the hub: bytes by who they are for (``"hub"`` or a learner's name)."""

    at: float
    rss: dict[str, int]
    pss: dict[str, int]
    uss: dict[str, int]
    processes: int


@dataclass
class MemoryLog:
    samples: list[Sample] = field(default_factory=list)
    #: The highest VmHWM seen of each process, by pid: (who, bytes).
    high_water: dict[int, tuple[str, int]] = field(default_factory=dict)

    def peak(self, kind: str = "pss") -> Sample | None:
        """The sample whose total (of ``kind``) is the highest."""
        return max(self.samples, key=lambda sample: sum(getattr(sample, kind).values()), default=None)


def sample(running: hub.Hub, log: MemoryLog) -> Sample:
    """Read every process of the hub once, add the sample to ``log`` and return it."""
    processes = {process.pid: process for process in hub._started_processes(running)}
    processes.setdefault(running.process.pid, None)
    homes = running.directory / "home"
    rss: dict[str, int] = {}
    pss: dict[str, int] = {}
    uss: dict[str, int] = {}
    for pid, process in processes.items():
        memory = read_memory(pid)
        if memory is None:
            continue
        who = "hub"
        if process is not None:
            try:
                who = owner(process.cwd(), homes) or "hub"
            except Exception:  # psutil.Error: gone meanwhile
                pass
        for totals, kind in ((rss, "rss"), (pss, "pss"), (uss, "uss")):
            totals[who] = totals.get(who, 0) + memory[kind]
        known = log.high_water.get(pid, (who, 0))
        log.high_water[pid] = (who if who != "hub" else known[0], max(known[1], memory["hwm"]))
    taken = Sample(time.monotonic(), rss, pss, uss, len(processes))
    log.samples.append(taken)
    return taken


class Sampler(threading.Thread):
    """Samples the hub's processes every ``every`` seconds until ``stop()``."""

    def __init__(self, running: hub.Hub, every: float = SAMPLE_EVERY_S):
        super().__init__(daemon=True)
        self.running, self.every, self.log, self.done = running, every, MemoryLog(), threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                sample(self.running, self.log)
            except Exception as error:  # a process that ended mid-read; never stop sampling for it
                print(f"memory sample skipped: {error!r}", file=sys.stderr)
            self.done.wait(self.every)

    def stop(self) -> MemoryLog:
        self.done.set()
        self.join(timeout=30)
        return self.log


# ---------------------------------------------------------------------------------------------------- learners

@dataclass
class Learner:
    """One learner's times in seconds from their login, or the error that stopped them."""

    name: str
    logged_in: float | None = None
    server_ready: float | None = None
    pulled: float | None = None
    first_figure: float | None = None
    done: float | None = None
    lesson: float | None = None  # from asking for the kernel to the last cell
    figures: int = 0
    errors: list = field(default_factory=list)
    failure: str | None = None
    kernel: str | None = None


def one_learner(running: hub.Hub, learner: Learner, start: threading.Event, servers: dict, tokens: dict) -> None:
    """What a learner does at the start of a class; fills ``learner`` in, never raises."""
    start.wait()
    began = time.monotonic()
    try:
        hub_client.log_in(running, learner.name)
        learner.logged_in = time.monotonic() - began
        hub_client.start_server(running, learner.name)
        url = hub_client.wait_for_servers(running, [learner.name], within=SERVER_READY_S)[learner.name]
        learner.server_ready = time.monotonic() - began
        token = hub_client.user_token(running, learner.name, note="bench_hub")
        base = running.url + url
        servers[learner.name], tokens[learner.name] = base, token
        events = hub_client.pull_course(base, token, within=SERVER_READY_S)
        if not events or events[-1].get("phase") != "finished":
            raise RuntimeError(f"the course's pull did not finish: {events[-3:]}")
        learner.pulled = time.monotonic() - began
        result = hub_client.run_notebook(base, token, hub_client.LESSON, cell_limit=CELL_LIMIT_S, shut_down=False)
        learner.kernel, learner.figures, learner.errors = result["kernel"], result["figures"], result["errors"]
        learner.done = result["done"] - began
        learner.lesson = result["done"] - result["started"]
        if result["first_figure"] is not None:
            learner.first_figure = result["first_figure"] - began
        if learner.errors:
            learner.failure = f"lesson 00 failed: {learner.errors[0]}"
        elif not learner.figures:
            learner.failure = "lesson 00 showed no figure"
    except Exception as error:  # reported in the table, with the learner's name
        learner.failure = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def run_class(running: hub.Hub, names: list[str], every: float = SAMPLE_EVERY_S) -> tuple[list[Learner], MemoryLog]:
    """All learners at once, one thread each, with the memory sampled meanwhile; the kernels are left running."""
    learners = [Learner(name) for name in names]
    start, servers, tokens = threading.Event(), {}, {}
    sampler = Sampler(running, every)
    sampler.start()
    threads = [threading.Thread(target=one_learner, args=(running, learner, start, servers, tokens), daemon=True)
               for learner in learners]
    try:
        for thread in threads:
            thread.start()
        start.set()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=1)  # a short wait, so that Ctrl-C reaches this thread
        # One more look with every kernel still running, as learners keep their tabs open.
        time.sleep(every)
        sample(running, sampler.log)
    finally:
        log = sampler.stop()
    return learners, log


# ---------------------------------------------------------------------------------------------------- figures

@dataclass
class Capacity:
    """The peak memory (GB) split into the hub's own share and the learners', and how many a server holds."""

    total: float
    hub: float
    per_learner: float  # the learners' part of the peak, per learner (servers, kernels)
    all_per_learner: float  # the whole peak, hub included, per learner
    rss_total: float
    uss_total: float
    high_water_total: float
    server_gb: float
    headroom_gb: float
    learners: int  # by the measured peak
    learners_by_budget: int  # by the README's 1.8 GB per learner and the measured hub


def capacity(log: MemoryLog, count: int, server_gb: float = DEFAULT_SERVER_GB,
             headroom_gb: float = DEFAULT_HEADROOM_GB) -> Capacity:
    peak = log.peak("pss")
    if peak is None or count < 1:
        raise ValueError("no memory sample")
    total = sum(peak.pss.values()) / GB
    hub_share = peak.pss.get("hub", 0) / GB
    per_learner = (total - hub_share) / count
    free = server_gb - headroom_gb - hub_share
    rss_peak, uss_peak = log.peak("rss"), log.peak("uss")
    return Capacity(
        total=total, hub=hub_share, per_learner=per_learner, all_per_learner=total / count,
        rss_total=sum(rss_peak.rss.values()) / GB, uss_total=sum(uss_peak.uss.values()) / GB,
        high_water_total=sum(high for _, high in log.high_water.values()) / GB,
        server_gb=server_gb, headroom_gb=headroom_gb,
        learners=max(0, math.floor(free / per_learner)) if per_learner > 0 else 0,
        learners_by_budget=max(0, math.floor(free / BUDGET_PER_LEARNER_GB)))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f} s"
    return f"{min(values):.1f} to {max(values):.1f} s (median {statistics.median(values):.1f})"


def learners_table(learners: list[Learner], log: MemoryLog) -> str:
    """One row per learner: the times from their login, their peak memory, and what went wrong."""
    peaks: dict[str, float] = {}
    for taken in log.samples:
        for who, value in taken.pss.items():
            peaks[who] = max(peaks.get(who, 0.0), value / GB)
    rows = ["| learner | logged in | server ready | course pulled | first figure | last cell | lesson 00 | "
            "figures | peak memory (PSS) | result |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for learner in learners:
        rows.append(f"| {learner.name} | {_seconds(learner.logged_in)} | {_seconds(learner.server_ready)} | "
                    f"{_seconds(learner.pulled)} | {_seconds(learner.first_figure)} | {_seconds(learner.done)} | "
                    f"{_seconds(learner.lesson)} | {learner.figures} | "
                    f"{peaks.get(learner.name, 0.0):.2f} GB | {learner.failure or 'ok'} |")
    return "\n".join(rows)


def summary_table(learners: list[Learner], fit: Capacity) -> str:
    """The figures the README and the teacher's guide quote."""
    count = len(learners)
    first = [learner.first_figure for learner in learners if learner.first_figure is not None]
    done = [learner.done for learner in learners if learner.done is not None]
    lesson = [learner.lesson for learner in learners if learner.lesson is not None]
    ok = sum(learner.failure is None for learner in learners)
    rows = [
        f"| what | {learners_word(count)} at once |",
        "|---|---|",
        f"| learners who ran lesson 00 without an error, with figures | {ok} of {count} |",
        f"| login to the first figure | {_spread(first)}; slowest {max(first):.1f} s |" if first else
        "| login to the first figure | - |",
        f"| lesson 00, kernel start to last cell | {_spread(lesson)} |",
        f"| login to the last cell (the whole lesson) | {_spread(done)}; slowest {max(done):.1f} s |" if done else
        "| login to the last cell (the whole lesson) | - |",
        f"| peak memory, hub + proxy + all servers and kernels (PSS) | {fit.total:.2f} GB: hub, proxy and culler "
        f"{fit.hub:.2f} GB, servers and kernels {fit.total - fit.hub:.2f} GB |",
        f"| per learner | {fit.per_learner:.2f} GB (server and kernel); {fit.all_per_learner:.2f} GB with the hub's "
        "share |",
        f"| the same peak as RSS / USS; sum of each process's own peak | {fit.rss_total:.2f} / {fit.uss_total:.2f} GB; "
        f"{fit.high_water_total:.2f} GB (RSS counts shared libraries in every process) |",
        f"| learners a {fit.server_gb:g} GB server holds, {fit.headroom_gb:g} GB left for the system | "
        f"{fit.learners} by lesson 00's peak; {fit.learners_by_budget} at the README's {BUDGET_PER_LEARNER_GB} GB "
        "per learner (any lesson, a photo); the CPU, not memory, sets how long each waits |",
    ]
    return "\n".join(rows)


def machine_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{datetime.datetime.now().isoformat(timespec='minutes')}, {os.cpu_count()} cores, "
            f"load average {load[0]:.1f}")


# ---------------------------------------------------------------------------------------------------- main

def learners_word(count: int) -> str:
    return f"{count} learner" + ("" if count == 1 else "s")


def learner_names(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"learner{index:0{width}d}" for index in range(1, count + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", "-n", type=int, default=8, help="learners logging in at once (default 8)")
    parser.add_argument("--server-gb", type=float, default=DEFAULT_SERVER_GB,
                        help=f"the server to size for, GB (default {DEFAULT_SERVER_GB:g})")
    parser.add_argument("--headroom-gb", type=float, default=DEFAULT_HEADROOM_GB,
                        help="left for the system, the file cache and the teacher, GB "
                             f"(default {DEFAULT_HEADROOM_GB:g})")
    parser.add_argument("--json", type=Path, help="also write the figures and every memory sample to this file")
    arguments = parser.parse_args(argv)
    if arguments.learners < 1:
        parser.error("--learners must be at least 1")
    problem = hub_client.missing()
    if problem:
        print(problem, file=sys.stderr)
        return 1

    names = learner_names(arguments.learners)
    before = machine_line()
    print(f"{learners_word(len(names))} log in at once to a hub on this machine ({before}) ...", flush=True)
    # A `kill` (or a CI job's timeout) stops the benchmark as Ctrl-C does, with the clean-up below.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if in_main_thread else None
    directory = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    running = None
    try:
        began = time.monotonic()
        running = hub.start(directory / "hub", hub.free_port(), names, ready_within=300)
        print(f"hub ready after {time.monotonic() - began:.1f} s: {running.url}", flush=True)
        learners, log = run_class(running, names)
        after = machine_line()
        fit = capacity(log, len(names), arguments.server_gb, arguments.headroom_gb)
    except KeyboardInterrupt:
        print("Interrupted: stopping the hub and every server and kernel ...", file=sys.stderr, flush=True)
        return 130
    except RuntimeError as error:  # the hub did not start: its log's end
        print(error, file=sys.stderr)
        return 1
    finally:
        if running is not None:
            hub_log = running.log()
            hub.stop(running)
        shutil.rmtree(directory, ignore_errors=True)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)

    print()
    print(f"## {learners_word(len(names))} on make hub ({before}; at the end: load average {after.rsplit(' ', 1)[-1]})")
    print()
    print(learners_table(learners, log))
    print()
    print("Times in seconds from each learner's login; lesson 00: from asking for the kernel to the last cell. "
          f"Memory sampled every {SAMPLE_EVERY_S} s ({len(log.samples)} samples), GB of 2**30 bytes.")
    print()
    print(summary_table(learners, fit))
    if arguments.json:
        arguments.json.write_text(json.dumps({
            "machine": {"before": before, "after": after}, "learners": [asdict(learner) for learner in learners],
            "capacity": asdict(fit), "samples": [asdict(taken) for taken in log.samples]}, indent=1) + "\n")
    failed = [learner for learner in learners if learner.failure]
    if failed:
        print(f"\n{learners_word(len(failed))} failed; the hub's log ends:\n{hub_log[-3000:]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
