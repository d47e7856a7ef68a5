"""benchmarks/bench_cam.py: a ratio whose spread straddles its target is reported as noise, not as a miss."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench_cam():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_cam", BENCHMARKS / "bench_cam.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_verdicts_read_the_middle_half_of_the_rounds_against_the_target():
    bench = _bench_cam()
    assert bench.verdict(1.10, 1.05, 1.16, 1.1) == "within noise of"
    assert bench.verdict(1.03, 1.01, 1.06, 1.1) == "meets"
    assert bench.verdict(1.30, 1.20, 1.40, 1.1) == "MISSES"
    median, lower, upper = bench._median_and_quartiles([1.0, 1.1, 1.2, 1.3, 5.0])
    assert lower <= median <= upper and median == 1.2
    assert bench._median_and_quartiles([1.0, 2.0]) == (1.5, 1.0, 2.0)
