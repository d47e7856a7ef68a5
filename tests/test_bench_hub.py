"""benchmarks/bench_hub.py (make bench-hub): its arithmetic and tables, and one whole run with one learner.

The whole run starts a hub as tests/test_hub.py does and skips, with the same
line, where a hub cannot run (no Node.js or proxy, no git branch, no test
extras).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
GB = 2**30


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("bench_hub", BENCHMARKS / "bench_hub.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_hub"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def a_class(bench, hub_gb: float, learner_gb: list[float]):
    """A memory log of one sample: the hub's share and each learner's, in GB."""
    pss = {"hub": int(hub_gb * GB), **{name: int(gb * GB) for name, gb in zip(bench.learner_names(len(learner_gb)), learner_gb)}}
    log = bench.MemoryLog()
    log.samples.append(bench.Sample(0.0, rss=dict(pss), pss=pss, uss=dict(pss), processes=2 * len(learner_gb) + 3))
    log.samples.append(bench.Sample(1.0, rss={"hub": 1}, pss={"hub": 1}, uss={"hub": 1}, processes=1))
    return log


def test_learners_per_server_leave_the_headroom_and_the_hubs_share(bench):
    fit = bench.capacity(a_class(bench, 0.2, [0.8, 0.8]), 2, server_gb=24, headroom_gb=2)
    assert fit.total == pytest.approx(1.8, abs=1e-6) and fit.hub == pytest.approx(0.2, abs=1e-6)
    assert fit.per_learner == pytest.approx(0.8, abs=1e-6) and fit.all_per_learner == pytest.approx(0.9, abs=1e-6)
    assert fit.learners == 27  # (24 - 2 - 0.2) / 0.8 = 27.25
    assert fit.learners_by_budget == 12  # (24 - 2 - 0.2) / 1.8 = 12.1
    assert bench.capacity(a_class(bench, 0.2, [0.8, 0.8]), 2, server_gb=1, headroom_gb=2).learners == 0


def test_the_tables_show_every_learner_the_slowest_and_a_failure(bench):
    learners = [bench.Learner("learner01", 0.3, 6.6, 11.4, 23.4, 33.5, 22.0, 3),
                bench.Learner("learner02", 0.3, 7.5, None, None, None, None, 0, failure="RuntimeError: no pull")]
    log = a_class(bench, 0.2, [0.8, 0.7])
    rows = bench.learners_table(learners, log).splitlines()
    assert len(rows) == 4 and "| learner01 | 0.3 | 6.6 | 11.4 | 23.4 | 33.5 | 22.0 | 3 | 0.80 GB | ok |" in rows
    assert rows[3].startswith("| learner02 |") and "RuntimeError: no pull" in rows[3] and "| - |" in rows[3]
    summary = bench.summary_table(learners, bench.capacity(log, 2))
    assert "1 of 2" in summary and "slowest 23.4 s" in summary and "learners a 24 GB server holds" in summary
    assert all(row.startswith("|") and row.endswith("|") and row.count("|") == 3 for row in summary.splitlines())


def test_memory_is_read_from_proc_and_split_by_home(bench, tmp_path):
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc: Linux only")
    memory = bench.read_memory(os.getpid())
    assert memory is not None and 0 < memory["uss"] <= memory["pss"] <= memory["rss"] <= memory["hwm"]
    assert bench.read_memory(2**22 + 12345) is None  # no such process
    homes = tmp_path / "home"
    assert bench.owner(str(homes / "ada" / "gradcam-course" / "notebooks"), homes) == "ada"
    assert bench.owner(str(tmp_path), homes) is None
    assert bench.learner_names(2) == ["learner01", "learner02"] and bench.learner_names(100)[0] == "learner001"


def test_one_learner_runs_lesson_00_on_a_hub_and_everything_stops(bench, tmp_path, monkeypatch, capsys):
    import psutil

    import hub_client

    problem = hub_client.missing()
    if problem:
        pytest.skip(problem)
    # The hub's folder in the test's own: whatever still works in it at the end was left running.
    folder = tmp_path / "bench"
    folder.mkdir()
    monkeypatch.setattr(bench.tempfile, "mkdtemp", lambda prefix="": str(folder))
    out = tmp_path / "bench.json"
    assert bench.main(["--learners", "1", "--json", str(out)]) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert "| learner01 |" in printed and "learners a 24 GB server holds" in printed, printed
    figures = json.loads(out.read_text())
    learner = figures["learners"][0]
    assert learner["failure"] is None and learner["figures"] >= 1
    assert 0 < learner["logged_in"] <= learner["server_ready"] <= learner["pulled"] < learner["first_figure"]
    assert learner["first_figure"] <= learner["done"]
    assert figures["capacity"]["per_learner"] > 0.1  # a kernel with PyTorch and the model, and its server
    assert any("learner01" in taken["pss"] for taken in figures["samples"])
    left = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline"]):
        if (process.info.get("cwd") or "").startswith(str(folder)):
            left.append((process.info["pid"], process.info.get("cmdline")))
    assert left == [], f"still running after the benchmark: {left}"
    assert not folder.exists()
